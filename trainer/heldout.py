"""Whether the shard pairs ``trainer eval --shards`` scores were held out from a run's training.

``eval --shards FOLDER`` scores the last shard of FOLDER, the one ``fit``
leaves out of training and validates on — but only when the run trained on
FOLDER as its first shard folder with neither GoPro data nor ``--val-shards``
to validate on (``trainer.data._shard_split``).  Given ``--gopro``, the run
trained on every shard, the last one included: scoring it measures how well
the generator fits its training pairs, not how it generalises.  The run's data
settings (``DataConfig`` fields) come from its training checkpoint.
"""
from __future__ import annotations

from pathlib import Path

import trainer.checkpoint as checkpoint
from trainer.run_folder import LAST


def training_data(checkpoint_path: str | Path, state: dict) -> dict | None:
    """The DataConfig fields (as saved) of the run that trained the checkpoint:
    its own record (last.pt, a model folder's config.json), else that of the run's
    last.pt beside a best.pt of an older version, else None."""
    record = (state.get("data") or {}).get("config")
    if record is not None:
        return record
    beside = Path(checkpoint_path).with_name(LAST)
    # Only a best.pt has a run folder around it (a model folder's data settings are its own).
    if state.get("kind") != "generator" or beside.resolve() == Path(checkpoint_path).resolve() \
            or not beside.is_file():
        return None
    try:
        return (checkpoint.load(beside).get("data") or {}).get("config")
    except checkpoint.CheckpointError:
        return None


def shards_held_out(data: dict | None, folder: str | Path) -> tuple[bool | None, str]:
    """(held out?, one line saying so and why) for the last shard of ``folder``
    against the run's data settings ``data`` (None: unknown)."""
    if data is None:
        return None, ("whether these pairs were held out from training is unknown: the checkpoint does not "
                      "record its training data and no last.pt of its run is beside it")
    folder = Path(folder).resolve()
    trained = [Path(p).resolve() for p in data.get("shards") or ()]
    mix = data.get("mix") or (2, 1)
    if folder not in trained or not mix[0]:
        if data.get("val_shards") and Path(data["val_shards"]).resolve() == folder:
            return True, ("held out from training: the run validated on this folder (--val-shards) and never trained on it "
                          "(its best.pt was chosen on it)")
        return True, "held out from training: the run did not train on this folder"
    if trained[0] == folder and not data.get("gopro") and not data.get("val_shards"):
        return True, ("held out from training: the run left this last shard out of training and validated on it "
                      "(its best.pt was chosen on it)")
    if data.get("gopro") or data.get("val_shards"):
        why = "the run validated on " + ("GoPro test/" if data.get("gopro") else "--val-shards") + \
              ", so it held no shard out"
    else:
        why = f"the run held out the last shard of its first folder, {trained[0]}, not this one"
    return False, (f"NOT held out: the run trained on these pairs ({why}); the scores measure its fit to "
                   "training data, not how it generalises")

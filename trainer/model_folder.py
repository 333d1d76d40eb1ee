"""The model folder: a generator's weights as a folder any loader can read without unpickling.

``trainer export --model-folder DIR`` writes (docs/export.md)::

    DIR/model.safetensors  the generator's state dict (safetensors: a JSON header and raw
                           tensors; reading it runs no code, unlike a pickled torch.save file)
    DIR/config.json        format name and version, the Generator's keyword arguments at the
                           top level (huggingface_hub's PyTorchModelHubMixin passes config.json's
                           keys to __init__), the weights' SHA-256, and what the run recorded:
                           step, training settings, data settings, validation scores
    DIR/README.md          the model card, made from config.json alone (``trainer.model_card``)

``read`` gives back a dict laid out like a generator checkpoint (``kind ==
"model-folder"``: ``step``, ``generator``, ``config``, ``scores``, ``data``),
so that ``trainer eval`` and ``deblur`` treat both alike.  A folder that is
not whole (a file missing, JSON that does not parse, weights whose SHA-256 is
not the recorded one, values no Generator takes) is a CheckpointError of one line.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from trainer.checkpoint import CheckpointError
from trainer.errors import TrainerError

FORMAT = "deblurgan-model-folder"
#: Raised when a key changes meaning or a reader must know a new one; readers refuse newer versions.
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"


def _architecture_keys() -> tuple[str, ...]:
    from trainer.config import TrainConfig, generator_settings

    return tuple(generator_settings(TrainConfig()))


# --- config.json ---------------------------------------------------------------------


def _plain(value):
    """``value`` with non-finite floats as the strings "inf", "-inf", "nan" (strict JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _number(value):
    """Inverse of ``_plain`` for one score."""
    return float(value) if isinstance(value, str) and value in ("inf", "-inf", "nan") else value


def make_config(state: dict, checkpoint_path: str | os.PathLike, data_config: dict | None,
                data_folders: dict[str, dict], weights_sha256: str) -> dict:
    """config.json's dict for the checkpoint ``state`` read from ``checkpoint_path``.

    ``data_config``: the run's DataConfig fields (``trainer.eval_settings.run_data_config``)
    or None; ``data_folders``: ``describe_data_folders``'s result; ``weights_sha256``: hex
    digest of model.safetensors.
    """
    from trainer.config import generator_settings, to_primitive, train_config_from

    train_config = to_primitive(train_config_from(state.get("config", {})))
    schedule = state.get("schedule") or {}
    return _plain({
        "format": FORMAT, "format_version": VERSION,
        **generator_settings(train_config_from(state.get("config", {}))),
        "weights_sha256": weights_sha256,
        "step": int(state["step"]),
        "planned_steps": schedule.get("total_steps", train_config.get("steps")),
        "checkpoint": {"path": str(checkpoint_path), "kind": state.get("kind")},
        "train_config": train_config,
        "data_config": data_config,
        "data_folders": data_folders,
        "scores": state.get("scores"),
        "best": state.get("best"),
    })


def parse_config(text: str, where: str) -> dict:
    """config.json's dict from its text, checked: CheckpointError (naming ``where``) on JSON
    that does not parse, another format, a newer version, or Generator arguments that no
    Generator takes.  Scores stored as "inf" come back as floats."""
    from trainer.config import TrainConfig
    from trainer.data import DataConfig

    try:
        config = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not the config.json of a model folder of this toolkit "
                              f"(format {config.get('format') if isinstance(config, dict) else None!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{where}: format_version is {version!r}, not an integer")
    if version > VERSION:
        raise CheckpointError(f"{where}: model folder version {version} is newer than this toolkit reads ({VERSION})")
    missing = [k for k in (*_architecture_keys(), "step", "weights_sha256") if k not in config]
    if missing:
        raise CheckpointError(f"{where}: missing {', '.join(missing)}")
    kinds = {"ngf": int, "n_blocks": int, "norm": str, "skips": bool, "dropout": (int, float), "step": int,
             "weights_sha256": str}
    for key, kind in kinds.items():
        value = config[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise CheckpointError(f"{where}: {key} is {value!r}, not what a Generator takes")
    try:
        TrainConfig(**{k: config[k] for k in _architecture_keys()})
    except TrainerError as e:
        raise CheckpointError(f"{where}: {e}") from None
    data = config.get("data_config")
    if data is not None:
        known = {name for name in DataConfig.__dataclass_fields__}
        try:
            DataConfig(**{k: v for k, v in data.items() if k in known})
        except (TrainerError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{where}: data_config is not one this toolkit reads ({e})") from None
    for key in ("scores", "best"):
        if isinstance(config.get(key), dict):
            config[key] = {k: _number(v) for k, v in config[key].items()}
    return config


def card_of(config: dict) -> str:
    """README.md of the model folder whose config.json is ``config`` (``trainer.model_card``)."""
    from trainer.model_card import model_card

    return model_card(config, files=(WEIGHTS, CONFIG), architecture={k: config[k] for k in _architecture_keys()})


# --- the folder -------------------------------------------------------------------------


def write(folder: str | os.PathLike, state: dict, checkpoint_path: str | os.PathLike) -> dict:
    """Write the model folder of checkpoint ``state`` (read from ``checkpoint_path``) at
    ``folder``, atomically (blurgen.plumbing.files.atomic_folder: an existing folder is
    replaced whole, so the caller decides whether it may be).  Returns config.json's dict."""
    from safetensors.torch import save

    from blurgen.plumbing.files import atomic_folder
    from trainer.eval_settings import run_data_config
    from trainer.model_card import describe_data_folders, recorded_fingerprints
    from trainer.output import naming

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state["generator"].items()}
    weights = save(tensors, metadata={"format": "pt"})   # what safetensors.torch.save_model and transformers write
    data_config = run_data_config(checkpoint_path, state)
    folders = describe_data_folders(data_config, recorded_fingerprints(checkpoint_path, state))
    config = make_config(state, checkpoint_path, data_config, folders, hashlib.sha256(weights).hexdigest())
    contents = {WEIGHTS: weights, CONFIG: (json.dumps(config, indent=1, allow_nan=False) + "\n").encode(),
                CARD: card_of(config).encode()}
    with naming(folder), atomic_folder(folder) as tmp:
        for name, data in contents.items():
            with naming(tmp / name):   # a full disk names the file (under ``folder``: atomic_folder)
                (tmp / name).write_bytes(data)
    return config


def is_model_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a config.json naming this format (what ``--overwrite`` may replace)."""
    try:
        return json.loads((Path(folder) / CONFIG).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read(folder: str | os.PathLike) -> dict:
    """A model folder as a generator checkpoint's dict (module doc), never unpickling:
    config.json by ``json``, the weights by ``safetensors`` after their SHA-256 is checked
    against config.json's.  CheckpointError (one line) on anything missing or damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: no {name} (not a whole model folder of `trainer export --model-folder`)")
    config = parse_config((folder / CONFIG).read_text(encoding="utf-8", errors="replace"), str(folder / CONFIG))
    weights = (folder / WEIGHTS).read_bytes()
    if hashlib.sha256(weights).hexdigest() != config["weights_sha256"]:
        raise CheckpointError(f"{folder / WEIGHTS}: damaged (its SHA-256 is not the one {CONFIG} records)")
    try:
        tensors = load(weights)
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"{folder / WEIGHTS}: not a safetensors file ({str(e).splitlines()[0]})") from None
    state = {"kind": "model-folder", "step": config["step"], "generator": tensors,
             "config": {k: config[k] for k in _architecture_keys()},
             "scores": config.get("scores"), "best": config.get("best"), "model_folder": config}
    if config.get("data_config") is not None:
        state["data"] = {"config": config["data_config"]}
    return state

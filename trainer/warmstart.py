"""Warm starts: a new run (``trainer fit --init-from CHECKPOINT``) that takes
its networks' weights from another run's checkpoint and nothing else.

The new run has its own schedule (the learning rate starts again at the top
of its own ``--steps``), fresh Adam moments, its own data stream and step
counter: what DeblurGAN's authors did to fine-tune, and what extends a
finished run (``--resume`` continues a run exactly and so cannot change its
length).  A training checkpoint (last.pt) gives the generator and the
critic; a generator checkpoint (best.pt) gives the generator, and the critic
starts from its initialisation.
"""
from __future__ import annotations

import os

from torch import nn

import trainer.checkpoint as checkpoint
from trainer.checkpoint import CheckpointError


def load_initial_weights(path: str | os.PathLike, generator: nn.Module, critic: nn.Module, cfg) -> str:
    """Copy the weights of checkpoint ``path`` into ``generator`` and ``critic``
    (plain modules, already on their device); returns what was taken, for
    the run's start-up message ("generator and critic of step 120 of ...").

    Raises CheckpointError (one line) if the file is not a checkpoint, or
    holds networks of another architecture than ``cfg`` (a TrainConfig)
    builds: the line names the settings that differ.
    """
    from trainer.config import ARCHITECTURE_FIELDS, train_config_from

    state = checkpoint.load(path)
    theirs = train_config_from(state.get("config", {}))
    taken = []
    for name, module in (("generator", generator), ("critic", critic)):
        if name not in state:
            continue
        # Compared as settings, not left to load_state_dict: --norm and --skips change no shape.
        differ = [f"{a.flag} {getattr(theirs, a.field)} (this run: {getattr(cfg, a.field)})"
                  for a in ARCHITECTURE_FIELDS[name] if getattr(theirs, a.field) != getattr(cfg, a.field)]
        try:
            if differ:
                raise RuntimeError(", ".join(differ))
            module.load_state_dict(state[name])
        except RuntimeError as exc:
            detail = ", ".join(differ) or str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path}: its {name} has another architecture: {detail}; "
                                  "give the same network settings (or --preset) as that run") from None
        taken.append(name)
    if "generator" not in taken:
        raise CheckpointError(f"{path}: holds no generator weights")
    what = " and ".join(taken) + (" (critic from its initialisation)" if "critic" not in taken else "")
    return f"{what} of step {state.get('step', '?')} of {path}"

"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a dict of tensors and plain containers (str, int, float, bool,
None, list, tuple, dict), so ``torch.load(path, weights_only=True)`` reads it
without unpickling arbitrary objects.  Files are written to a temporary name,
fsynced and renamed over the old one: a run killed at any instant (kill -9
included) leaves either the previous checkpoint or the new one, never half of
one.

Layout of a training checkpoint (``kind == "training"``)::

    step            int, generator steps done; also the index of the next batch
    epoch           int, epochs done
    generator, critic                    state dicts
    opt_generator, opt_critic            Adam state dicts
    schedule        {"lr", "total_steps", "decay_start"} (see trainer.loop.learning_rate)
    rng             {"python", "numpy", "torch", "cuda"} generator states
    data            {"config": DataConfig fields, "next_batch": int, "world_size": int,
                     "fingerprints": {folder: fingerprint} of every data folder (trainer.provenance;
                     absent in checkpoints written before it, which --resume does not check)}
    config          TrainConfig fields
    best            {"psnr", "ssim", "step"} of the best validation so far (or None)

A generator checkpoint (``kind == "generator"``, the run's best.pt) holds only
generator, config, step, the validation scores and data {"config"} (since
issue 12; ``trainer eval`` validates as the run did); ``trainer eval`` and
``trainer deblur`` take either kind, and a model folder (``trainer.model_folder``:
the generator as safetensors, for shipping; ``trainer.weights`` reads both forms).
"""
from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blurgen.plumbing import files
from trainer.errors import TrainerError
from trainer.output import naming

FORMAT = "deblurgan-checkpoint"
VERSION = 1


class CheckpointError(TrainerError):
    """A checkpoint file is missing, unreadable or not one of ours (one-line message)."""


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(module, "module") and isinstance(module.module, nn.Module):   # DDP
            module = module.module
        elif hasattr(module, "_orig_mod"):                                          # torch.compile
            module = module._orig_mod
        else:
            return module


def rng_state() -> dict:
    """States of the python, numpy (legacy global), torch and CUDA generators, as plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` returned (CUDA states only where devices exist)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def save(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename).

    On a full disk: OSError naming ``path``, and the previous file is untouched.
    """
    path = Path(path)
    # Serialised in memory first: torch.save into a file turns a full disk into
    # an "unexpected pos" RuntimeError; a plain write() raises OSError ENOSPC.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with naming(path), files.atomic_path(path, durable=True) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; CheckpointError on anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    if not zipfile.is_zipfile(path):  # what torch.save has written since PyTorch 1.6
        with open(path, "rb") as f:
            zip_start = f.read(4) == b"PK\x03\x04"
        raise CheckpointError(f"{path}: " + ("truncated or damaged (its end is missing)" if zip_start
                                             else "not a PyTorch checkpoint"))
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        # torch's own messages run to a paragraph: keep their first sentence.
        first = str(e).split(". ")[0].splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: damaged or not a checkpoint of this toolkit ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a DeblurGAN checkpoint of this toolkit")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than "
                              f"this toolkit reads ({VERSION})")
    return state


# What --resume reads of a training checkpoint: key -> its keys that must be there.
TRAINING_KEYS = {"step": (), "epoch": (), "generator": (), "critic": (), "opt_generator": ("state", "param_groups"),
                 "opt_critic": ("state", "param_groups"), "rng": ("python", "numpy", "torch", "cuda"),
                 "data": ("config", "world_size"), "config": (), "best": ()}


def load_training(path: str | os.PathLike, map_location="cpu") -> dict:
    """``load`` for ``--resume``: also CheckpointError, naming what is missing,
    if the file is not a training checkpoint or lacks part of one (a
    generator-only best.pt copied to last.pt, a file written by other code)."""
    state = load(path, map_location)
    if state.get("kind") != "training":
        raise CheckpointError(f"{path}: a {state.get('kind', 'unknown')} checkpoint, not a training "
                              "one (last.pt); it cannot be resumed")
    missing = [key for key in TRAINING_KEYS if key not in state]
    missing += [f"{key}.{sub}" for key, subs in TRAINING_KEYS.items() if isinstance(state.get(key), dict)
                for sub in subs if sub not in state[key]]
    missing += [key for key, subs in TRAINING_KEYS.items() if subs and key in state
                and not isinstance(state[key], dict)]
    if missing:
        raise CheckpointError(f"{path}: incomplete training checkpoint (missing or damaged: "
                              f"{', '.join(missing)}); it cannot be resumed")
    return state


def training_state(*, step: int, epoch: int, generator: nn.Module, critic: nn.Module,
                   opt_generator: torch.optim.Optimizer, opt_critic: torch.optim.Optimizer,
                   schedule: dict, config: dict, data: dict, best: dict | None) -> dict:
    """The dict a training checkpoint holds (see the module docstring)."""
    return {
        "format": FORMAT, "version": VERSION, "kind": "training",
        "step": int(step), "epoch": int(epoch),
        "generator": unwrap(generator).state_dict(),
        "critic": unwrap(critic).state_dict(),
        "opt_generator": opt_generator.state_dict(),
        "opt_critic": opt_critic.state_dict(),
        "schedule": dict(schedule),
        "rng": rng_state(),
        "data": dict(data),
        "config": dict(config),
        "best": None if best is None else dict(best),
    }


def generator_state(*, step: int, generator: nn.Module, config: dict, scores: dict,
                    data: dict | None = None) -> dict:
    """A generator-only checkpoint (the run's best.pt); ``data``: {"config": DataConfig
    fields} of the run, so that ``trainer eval`` scores as the run validated."""
    state = {
        "format": FORMAT, "version": VERSION, "kind": "generator",
        "step": int(step),
        "generator": unwrap(generator).state_dict(),
        "config": dict(config),
        "scores": {k: float(v) for k, v in scores.items()},
    }
    if data is not None:
        state["data"] = dict(data)
    return state


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """(Generator in eval mode on ``device``, checkpoint dict) from either kind of checkpoint
    file (a model folder too: ``trainer.weights.load``)."""
    state = load(path)
    return generator_from(state, path, device), state


def generator_from(state: dict, path: str | os.PathLike, device: str | torch.device = "cpu"):
    """The Generator (eval mode, on ``device``) that ``state["config"]`` (TrainConfig
    fields) describes, with the weights ``state["generator"]``; CheckpointError naming
    ``path`` when they do not fit."""
    from trainer.config import generator_settings, train_config_from
    from trainer.models import Generator

    cfg = train_config_from(state.get("config", {}))
    generator = Generator(**generator_settings(cfg))
    try:
        generator.load_state_dict(state["generator"])
    except (KeyError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else "no generator weights"
        raise CheckpointError(f"{path}: generator weights do not fit its config ({first})") from None
    return generator.to(device).eval()

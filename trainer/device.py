"""The torch device a command runs on, from its ``--device`` name.

One home for the names ``trainer`` accepts (auto, cpu, cuda, cuda:N) and the
one-line error on any other: ``trainer eval``, ``deblur`` and ``export`` use it
as is, and ``trainer.cluster.resolve_device`` adds each rank's GPU under
torchrun.  Imports torch only: the inference commands need no training code.
"""
from __future__ import annotations

import torch

from trainer.errors import TrainerError


class DeviceError(TrainerError):
    """A ``--device`` this machine cannot give (one line, for the user)."""


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """'auto' -> CUDA if available, else the CPU; 'cuda' -> GPU ``local_rank`` when
    given (a rank of a torchrun run), else the current CUDA device; 'cpu' and
    'cuda:N' as they are.  DeviceError on CUDA without a GPU or an unknown name."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda: no CUDA device is available (use --device cpu)")
        if name == "cuda":
            name = f"cuda:{torch.cuda.current_device() if local_rank is None else local_rank}"
    elif name != "cpu":
        raise DeviceError(f"unknown device {name!r} (auto, cpu, cuda or cuda:N)")
    return torch.device(name)

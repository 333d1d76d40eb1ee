"""A generator from either form of its weights: a checkpoint file or a model folder.

``trainer deblur``, ``eval`` and ``export`` take both wherever they take
``--checkpoint`` (also spelled ``--model``); ``trainer.load_generator`` is this
for plain Python.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

import trainer.checkpoint as checkpoint
import trainer.model_folder as model_folder


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(Generator in eval mode on ``device``, its checkpoint dict) from ``path``: a folder is
    read as a model folder (``trainer.model_folder.read``, no unpickling), a file as a
    checkpoint (``trainer.checkpoint.load``).  CheckpointError (one line) otherwise."""
    state = model_folder.read(path) if Path(path).is_dir() else checkpoint.load(path)
    return checkpoint.generator_from(state, path, device), state

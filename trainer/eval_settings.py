"""The settings that change what ``trainer eval`` scores, where each one comes
from, and their one-line description for the summary.

A run validates on GoPro frames resized by its ``--gopro-scale`` (0.5 by
default) and its ``--gopro-blur``; scoring the same checkpoint at another
scale gives another number (half-size frames are less blurred in pixels).
So ``eval --gopro`` of a run's checkpoint takes the run's own values unless
a flag says otherwise, and the summary names every setting that moves a
score: the checkpoint, the frames' scale and blur, the tiling, the metric
conventions (whole image, no border crop, data range 255).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trainer.checkpoint as checkpoint
from trainer.checkpoint import CheckpointError
from trainer.run_folder import LAST

#: eval's values where neither a flag nor the run gives one: full-resolution
#: frames and the plain blur, as published GoPro results are scored.
DEFAULTS = {"gopro_scale": 1.0, "gopro_blur": "blur"}


def run_data_config(path: str | os.PathLike, state: dict) -> dict | None:
    """The DataConfig fields (a dict) of the run that wrote checkpoint ``path``
    (``state``, already loaded), or None if they cannot be known.

    A training checkpoint (last.pt) and a best.pt of this version carry them
    (``state["data"]["config"]``); for an older best.pt they are read from
    the last.pt beside it, the run folder's own.
    """
    data = state.get("data")
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        return data["config"]
    sibling = Path(path).with_name(LAST)
    if state.get("kind") != "generator" or sibling == Path(path) or not sibling.is_file():
        return None
    try:
        other = checkpoint.load(sibling)
    except CheckpointError:
        return None
    data = other.get("data")
    if other.get("kind") == "training" and isinstance(data, dict) and isinstance(data.get("config"), dict):
        return data["config"]
    return None


@dataclass(frozen=True)
class Setting:
    value: object
    source: str      # "flag", "run" (the run's validation setting) or "default"


def resolve(given: dict, run_data: dict | None) -> dict[str, Setting]:
    """Each setting of ``DEFAULTS``: the flag's value where ``given[name]`` is not
    None, else the run's (``run_data``, from ``run_data_config``), else the default."""
    settings = {}
    for name, default in DEFAULTS.items():
        if given.get(name) is not None:
            settings[name] = Setting(given[name], "flag")
        elif run_data is not None and run_data.get(name) is not None:
            settings[name] = Setting(run_data[name], "run")
        else:
            settings[name] = Setting(default, "default")
    return settings


_WHERE = {"flag": "as given", "run": "the run's validation setting", "default": "eval's default"}


def describe(checkpoint_path, state: dict, settings: dict[str, Setting] | None, tile: int, overlap: int) -> str:
    """One line: everything besides the pairs that changes a score.  ``settings``:
    ``resolve``'s result where GoPro frames are scored (--gopro), else None."""
    parts = [f"checkpoint {checkpoint_path} ({state.get('kind', '?')}, generator of step {state.get('step', '?')})"]
    if settings is not None:
        scale, blur = settings["gopro_scale"], settings["gopro_blur"]
        parts.append(f"GoPro frames resized x{float(scale.value):g} ({_WHERE[scale.source]}; --gopro-scale)")
        parts.append(f"blurred frames {blur.value} ({_WHERE[blur.source]}; --gopro-blur)")
    parts.append(f"restored whole up to {tile} px a side, larger in tiles overlapping by {overlap} px")
    parts.append("scores over the whole image (no border crop), data range 255")
    return "settings: " + "; ".join(parts)

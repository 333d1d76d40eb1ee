"""The rolling shutter (``--rolling-shutter LO-HI``, issue 24.1) as the modes take it: a setting
of the uniform and shake modes, not a mode of its own.

Its one option is added to ``synthesize`` by the registry (``blurgen.modes``,
:data:`SHARED_SETTINGS`), which refuses it with the modes that do not take it
(those whose :attr:`~blurgen.modes.base.BlurMode.settings` do not name it); each mode
that does reads it into a field of its own settings (:func:`rolling_from`), draws each
sample's readout from the sample's own stream and records it (:func:`rolling_meta`).
The physics: :mod:`blurgen.physics.rolling`.
"""
from __future__ import annotations

import click
import numpy as np

from blurgen.physics.realism import parse_range
from blurgen.physics.rolling import RollingShutter

#: The option's parameter name, as modes list it in their ``settings``.
SETTING = "rolling_shutter"
FLAG = "--rolling-shutter"

OPTION = click.option(FLAG, SETTING, default=None, metavar="LO-HI",
                      help="Rolling shutter: each row exposed later than the one above, the last row a readout "
                           "drawn in LO-HI exposures (e.g. 0.1-0.5) after the first; with the uniform mode's fresh "
                           "kernels and with --shake (docs/modes.md).")


def rolling_from(values: dict) -> RollingShutter | None:
    """The RollingShutter of ``synthesize``'s option values, None without the option
    (ValueError or RealismError, one line, on a bad range)."""
    text = values.get(SETTING)
    if text is None:
        return None
    return RollingShutter(*parse_range(text, SETTING, "0.1-0.5", kind=float))


def draw_readout(rolling: RollingShutter | None, seed: int, image: int, crop: int) -> float | None:
    """Sample (image, crop)'s readout fraction, or None without a rolling shutter."""
    return None if rolling is None else rolling.draw(seed, image, crop)


def rolling_meta(readout: float | None) -> dict:
    """The sample's field: ``rolling_readout`` (float64, exposures), only with the option."""
    return {} if readout is None else {"rolling_readout": np.float64(readout)}


def rolling_arguments(rolling: RollingShutter | None) -> dict:
    """What a manifest records: ``rolling_shutter: [LO, HI]``, only with the option."""
    return {} if rolling is None else {SETTING: rolling.arguments()}


def describe_rolling(args: dict) -> str:
    """``inspect``'s words for a folder's rolling shutter ('' without one)."""
    if args.get(SETTING) is None:
        return ""
    lo, hi = args[SETTING]
    return (f"; rolling shutter: the last row starts {lo:g}-{hi:g} exposures after the first "
            "(sharp = the centre row's mean position)")

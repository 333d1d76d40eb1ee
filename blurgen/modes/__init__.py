"""The blur modes of ``synthesize``, each in a module of its own and registered here once.

A mode makes a sample (blurred, sharp, kernel, meta) from a source photo and
the sample's (image, crop) index, drawing everything from its own random
stream: ``default_rng([seed, image, crop])`` for the uniform mode,
``default_rng([seed, TAG, image, crop])`` with a tag per other mode, so that
no mode's draws move another's.  The realism spec (``cfg.realism``,
:mod:`blurgen.physics.realism`) works around every mode's blur.  What a mode is:
:class:`blurgen.modes.base.BlurMode`; how to add one: docs/modes.md.

``synthesize`` (its options, the run), ``inspect`` and the docs read
:data:`MODES`; nothing else lists the modes.
"""
from __future__ import annotations

import numpy as np

import blurgen.modes.rolling as rolling
from blurgen.modes.base import BlurMode, Photo
from blurgen.modes.objects import OBJECTS
from blurgen.modes.shake import SHAKE
from blurgen.modes.sharp_only import SHARP_ONLY
from blurgen.modes.uniform import UNIFORM
from blurgen.physics.realism import Realism
from blurgen.runs.shard_run import SynthError

#: Every mode by name, the default first, in the order ``synthesize --help`` lists their options.
MODES: dict[str, BlurMode] = {mode.name: mode for mode in (UNIFORM, SHAKE, OBJECTS, SHARP_ONLY)}
DEFAULT_MODE = UNIFORM.name
#: Settings that several modes take (not asking for a mode of their own): parameter name ->
#: (flag, click option).  A mode takes those its :attr:`BlurMode.settings` names.
SHARED_SETTINGS = {rolling.SETTING: (rolling.FLAG, rolling.OPTION)}
#: The modes ``trainer fit --online`` offers: those that blur a window of one photo.
ONLINE_MODES: tuple[str, ...] = tuple(name for name, mode in MODES.items() if mode.online)

__all__ = ["MODES", "DEFAULT_MODE", "ONLINE_MODES", "SHARP_ONLY", "BlurMode", "Photo", "get_mode", "mode_options",
           "mode_from_options", "recorded_mode", "describe_arguments", "describe_sample"]


def get_mode(name: str) -> BlurMode:
    """The registered mode ``name``; SynthError (one line, naming the modes there are) if none."""
    try:
        return MODES[name]
    except KeyError:
        raise SynthError(f"unknown blur mode {name!r}; known: {', '.join(MODES)}") from None


def mode_options(command):
    """Decorator: every mode's options and the shared settings, added to a command (``synthesize``)."""
    for _, option in reversed(SHARED_SETTINGS.values()):
        command = option(command)
    for mode in reversed(MODES.values()):
        for option in reversed(mode.options):
            command = option(command)
    return command


def mode_from_options(values: dict) -> tuple[str, object]:
    """(mode name, its settings) that a command line's option ``values`` ask for: the one
    mode whose own options are given, else the default; its settings include the shared ones
    (:data:`SHARED_SETTINGS`), which ask for no mode.  SynthError if two modes are asked for,
    or a shared setting is given to a mode that does not take it."""
    own = {name: value for name, value in values.items() if name not in SHARED_SETTINGS}
    asked = [mode for mode in MODES.values() if mode.spec_from(own) is not None]
    if len(asked) > 1:
        first, second = asked[:2]
        if first.name == DEFAULT_MODE:  # asked for by a setting of the default mode (--defocus)
            raise SynthError(f"{first.flag} is a setting of the {first.name} mode: it cannot be combined with "
                             f"{second.flag}")
        raise SynthError(f"{second.flag} cannot be combined with {first.flag}: one blur mode per run")
    mode = asked[0] if asked else MODES[DEFAULT_MODE]
    for name, (flag, _) in SHARED_SETTINGS.items():
        if values.get(name) is not None and name not in mode.settings:
            takers = " and ".join(m.name for m in MODES.values() if name in m.settings)
            raise SynthError(f"{flag} applies to the {takers} modes: it cannot be combined with {mode.flag}")
    return mode.name, mode.spec_from(values)


def recorded_mode(args: dict) -> BlurMode:
    """The mode a ``synthesize`` folder's manifest arguments were made with."""
    return next(mode for mode in reversed(MODES.values()) if mode.recorded(args))


def describe_arguments(args: dict) -> str:
    """How a ``synthesize`` folder was made, in a few readable lines (from its manifest's arguments)."""
    if not args:
        return "made with: (no arguments recorded)"
    if args.get("full"):
        samples = "whole photos less the kernel's margin"
    else:
        samples = f"{args.get('crops_per_image')} random {args.get('crop')}x{args.get('crop')} crop(s) per photo"
    if args.get("downscale", 1) != 1:
        samples += f", photos downscaled by {args['downscale']:g}"
    realism = Realism.from_arguments(args).labels()
    return (f"made from {args.get('src')}: {samples}\n{recorded_mode(args).describe(args)}; seed {args.get('seed')}, "
            f"shards of {args.get('shard_size')}\nrealism: {', '.join(realism) or 'none (as DeblurGAN)'}")


def describe_sample(sample: dict, width: int = 100) -> str:
    """One sample's recorded parameters in a few compact lines (``blurgen inspect``), for any mode.

    Scalars and vectors of up to 4 values are written ``name=value`` (3 significant digits);
    larger arrays by their shape; the images, the kernel and the source path are left out.
    """
    parts = []
    for name in sorted(sample):
        if name in ("blurred", "sharp", "kernel", "source"):
            continue
        value = np.asarray(sample[name])
        if value.dtype.kind in "OUS":
            text = str(value)
        elif value.size > 4:
            text = "x".join(map(str, value.shape)) + " values"
        elif value.dtype.kind == "b":
            text = str(bool(value)) if value.ndim == 0 else str(value.tolist())
        elif value.dtype.kind in "iu":
            text = str(value.tolist())
        else:
            text = f"{float(value):.3g}" if value.ndim == 0 else "[" + ", ".join(f"{v:.3g}" for v in value.ravel()) + "]"
        parts.append(f"{name}={text}")
    lines, line = [], ""
    for part in parts:
        if line and len(line) + 1 + len(part) > width:
            lines.append(line)
            line = part
        else:
            line = f"{line} {part}".strip()
    return "\n".join("  " + ln for ln in lines + ([line] if line else []))

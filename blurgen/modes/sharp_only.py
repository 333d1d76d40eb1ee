"""The sharp-only mode (``--sharp-only``): the sharp crops (or images) alone, no blur, no kernel,
for ``trainer fit --online``, which blurs them itself with a fresh kernel per draw.

Sample (image i, crop c) draws its crop position from ``default_rng([seed, i, c])``, as the
uniform mode does: the crops are those a uniform run with 1-px kernels would take.
"""
from __future__ import annotations

import click
import numpy as np

from blurgen.modes.base import BlurMode, Photo, crop_box, too_small, upscale_to
from blurgen.runs.shard_run import SynthError


class SharpOnly(BlurMode):
    name = "sharp-only"
    flag = "--sharp-only"
    summary = "sharp images only (no blur, no kernel): for `trainer fit --online`"
    options = (click.option("--sharp-only", is_flag=True,
                            help="Store sharp images only (no blur, no kernel) for `trainer fit --online`."),)

    def spec_from(self, values: dict):
        return True if values.get("sharp_only") else None

    def check(self, cfg) -> None:
        r = cfg.realism
        given = [name for name, on in (("--kernels", cfg.kernel_bank is not None), ("--linear", r.linear),
                                       ("--saturate", r.saturate), ("--noise", r.noise),
                                       ("--jpeg-quality", r.jpeg_quality is not None),
                                       ("--camera", r.camera is not None)) if on]
        if given:
            raise SynthError(f"--sharp-only stores no blurred image: {given[0]} does not apply "
                             "(give the blur settings to `trainer fit --online`)")

    def arguments(self, cfg) -> dict:
        return {"kernel_spec": None, "sharp_only": True}

    def kernel_size(self, cfg) -> int:
        return 1  # no blur, no margin

    def prepare(self, photo: Photo, cfg, shared) -> Photo:
        pixels, factor = photo.pixels, 1.0
        h, w = pixels.shape[:2]
        need = 1 if cfg.full else cfg.crop
        if (h < need or w < need) and cfg.small == "upscale":
            pixels, factor = upscale_to(pixels, need)
            h, w = pixels.shape[:2]
        if h < need or w < need:
            raise too_small(w, h, "one pixel" if cfg.full else f"a {cfg.crop} crop")
        return photo._replace(pixels=pixels, factor=factor)

    def sample(self, photo: Photo, crop: int, j: int, cfg, shared) -> tuple:
        rng = np.random.default_rng([cfg.seed, photo.index, crop])
        y0, x0, y1, x1 = crop_box(rng, *photo.pixels.shape[:2], cfg.crop, cfg.full)
        return None, photo.pixels[y0:y1, x0:x1], None, {"source": photo.rel,
                                                         "crop_box": np.array([y0, x0, y1, x1], np.int32)}

    def recorded(self, args: dict) -> bool:
        return bool(args.get("sharp_only"))


SHARP_ONLY = SharpOnly()

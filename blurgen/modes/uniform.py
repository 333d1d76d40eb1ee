"""The uniform mode: one Boracchi & Foi kernel per sample, fresh or drawn from a bank (DeblurGAN).

Sample (image i, crop c) draws, from ``default_rng([seed, i, c])`` in this
order: the crop position, the kernel (a bank index, or one draw that keeps
the order the same with a fresh kernel), the realism levels.  Its fresh
kernel is number ``i * crops_per_image + c`` of the run's counter-based kernel
stream (``kernel_seeds(seed, ...)``), made for the whole shard at once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from blurgen.modes.base import BlurMode, Photo, crop_box, too_small, upscale_to
from blurgen.physics.kernels import KernelBatch, kernel_seeds, make_kernels, read_bank
from blurgen.plumbing.caches import FileCache
from blurgen.sources import SkipImage

# blur (OpenCV, SciPy) is imported where a sample is made: the command lines import the
# modes, for their options, as they start.
_BANKS = FileCache(size=2)


def bank(path: Path) -> KernelBatch:
    """The kernels of the bank at ``path``, read once per process (while the file is unchanged)."""
    return _BANKS.get(path, lambda: read_bank(path)[0])


def fresh_line(spec: dict) -> str:
    """How fresh kernels were drawn, in words (``inspect``), from a manifest's ``kernel_spec``."""
    drawn = lambda v: "drawn" if v is None else f"{v:g}"  # noqa: E731
    return (f"fresh {spec.get('size')}x{spec.get('size')} kernels (max-len {spec.get('max_len', 0):g}, "
            f"iters {spec.get('iters')}, expl {drawn(spec.get('expl'))}, fraction {drawn(spec.get('fraction'))})")


class Uniform(BlurMode):
    name = "uniform"
    summary = "one uniform kernel per sample, fresh (Boracchi & Foi) or from a --kernels bank (DeblurGAN)"
    online = online_kernel = True

    def spec_from(self, values: dict):
        return None  # the default: chosen when no other mode is

    def arguments(self, cfg) -> dict:
        return {"kernel_spec": None} if cfg.kernel_bank is not None else {}

    def kernel_size(self, cfg) -> int:
        return cfg.kernel_spec.size if cfg.kernel_bank is None else bank(cfg.kernel_bank).psf.shape[-1]

    def shard(self, cfg, task) -> tuple[KernelBatch | None, KernelBatch | None]:
        """(the shard's fresh kernels, None) or (None, the bank)."""
        if cfg.kernel_bank is not None:
            return None, bank(cfg.kernel_bank)
        per = cfg.samples_per_image
        count = (task.stop_image - task.first_image) * per
        return make_kernels(kernel_seeds(cfg.seed, count, start=task.first_image * per), cfg.kernel_spec), None

    def prepare(self, photo: Photo, cfg, shared) -> Photo:
        k = self.kernel_size(cfg)
        pixels, factor = photo.pixels, 1.0
        h, w = pixels.shape[:2]
        need = (k - 1) + (1 if cfg.full else cfg.crop)
        if (h < need or w < need) and cfg.small == "upscale":
            pixels, factor = upscale_to(pixels, need)
            h, w = pixels.shape[:2]
        if h < need or w < need:
            if within_reach(cfg, h, w):
                return photo._replace(extra="reach")
            raise too_small(w, h, "the kernel" if cfg.full else f"a {cfg.crop} crop plus the kernel's {k - 1} px margin")
        return photo._replace(pixels=pixels, factor=factor)

    def sample(self, photo: Photo, crop: int, j: int, cfg, shared) -> tuple:
        if photo.extra == "reach":
            return reach_sample(photo, crop, j, cfg, shared)
        from blurgen.physics import blur

        pixels, i = photo.pixels, photo.index
        before, after = blur.margins(self.kernel_size(cfg))
        rng = np.random.default_rng([cfg.seed, i, crop])
        y0, x0, y1, x1 = crop_box(rng, *pixels.shape[:2], cfg.crop, cfg.full, before, after)
        kernel = draw_kernel(rng, j, *shared)
        region = pixels[y0 - before : y1 + after, x0 - before : x1 + after]
        return pair(region, pixels[y0:y1, x0:x1], kernel, (y0, x0, y1, x1), cfg, rng, photo, crop)

    def blur_window(self, window, psf, margins, spec, realism, rng, effects, cam) -> tuple[np.ndarray, dict]:
        return realism.blur(window, psf, rng, effects, cam), {}

    def recorded(self, args: dict) -> bool:
        return True  # the mode of any synthesize folder that records no other

    def describe(self, args: dict) -> str:
        if args.get("kernel_bank"):
            return f"kernels drawn from the bank {args['kernel_bank']}"
        return fresh_line(args.get("kernel_spec") or {})


def draw_kernel(rng: np.random.Generator, j: int, fresh: KernelBatch | None,
                bank: KernelBatch | None) -> tuple[np.ndarray, dict, int]:
    """(psf (k, k) float32, its parameters, its bank index or -1) of the shard's sample ``j``:
    the fresh kernel ``fresh.psf[j]``, or one drawn from ``bank`` with ``rng``.  One draw
    either way, so that the later draws (the effects) are the same in both modes."""
    if bank is None:
        rng.integers(0, 1)
        return fresh.psf[j], {k: v[j] for k, v in fresh.params().items()}, -1
    index = int(rng.integers(0, len(bank)))
    return bank.psf[index], {k: v[index] for k, v in bank.params().items()}, index


def pair(region: np.ndarray, sharp: np.ndarray, kernel: tuple, box: tuple[int, int, int, int], cfg,
         rng: np.random.Generator, photo: Photo, crop: int) -> tuple:
    """(blurred, sharp, psf, meta) of a crop.  ``region``: the window ``box`` (y0, x0, y1, x1)
    plus the PSF's margins (``blur.margins``); ``kernel``: :func:`draw_kernel`'s; the realism
    levels are drawn from ``rng`` now, the camera's settings from the sample's camera stream."""
    psf, params, bank_index = kernel
    realism = cfg.realism
    effects = realism.draw(rng)
    cam = realism.draw_camera(realism.camera_rng([cfg.seed, photo.index, crop]))
    blurred, sharp = realism.blur(region, psf, rng, effects, cam), realism.sharp(sharp, cam)
    meta = {"source": photo.rel, "crop_box": np.array(box, np.int32), "kernel_index": bank_index,
            "linear": realism.in_linear_light, **{f"kernel_{k}": v for k, v in params.items()}, **effects,
            **({} if cam is None else cam.draw.meta())}
    if cfg.small == "upscale":  # a field only then: other runs keep their bytes
        meta["upscale"] = np.float32(photo.factor)
    return blurred, sharp, psf, meta


def within_reach(cfg, h: int, w: int) -> bool:
    """Whether an h x w photo smaller than a crop plus the kernel's whole margin (k - 1 px) may
    still give crops with the margin its drawn kernels reach (:func:`reach_sample`): crops, not
    ``--full``, with ``--small skip`` (``upscale`` enlarges such photos, as before), when it
    holds a crop at all."""
    return not (cfg.full or cfg.small != "skip") and min(h, w) >= cfg.crop


def reach_sample(photo: Photo, crop: int, j: int, cfg, shared) -> tuple:
    """Crop c of a photo too small for a crop plus the kernel's whole k - 1 px margin: the
    kernel is drawn first, and the crop placed where the pixels its taps reach
    (``blur.support_margins``) lie inside the photo (issue 22.3).  Photos that hold the whole
    margin never come here: their samples stay as they were.  SkipImage("too-small") if the
    photo cannot hold the crop plus that reach."""
    from blurgen.physics import blur

    pixels, side = photo.pixels, cfg.crop
    rng = np.random.default_rng([cfg.seed, photo.index, crop])
    kernel = draw_kernel(rng, j, *shared)
    before, after = blur.margins(kernel[0].shape[0])
    top, bottom, left, right = blur.support_margins(kernel[0])
    h, w = pixels.shape[:2]
    if h < side + top + bottom or w < side + left + right:
        raise SkipImage("too-small", f"{w}x{h} is smaller than a {side} crop plus its kernel's reach "
                                     f"({top}+{bottom} px tall, {left}+{right} px wide)")
    y0 = top + int(rng.integers(0, h - top - bottom - side + 1))
    x0 = left + int(rng.integers(0, w - left - right - side + 1))
    y1, x1 = y0 + side, x0 + side
    # The blur reads only the taps' reach (blur.trim_to_support): the rest of the k - 1 px
    # margin that `region` must span is padding it never reads.
    padded = np.pad(pixels, ((before, after), (before, after), (0, 0)), mode="edge")
    region = padded[y0 : y1 + before + after, x0 : x1 + before + after]
    return pair(region, pixels[y0:y1, x0:x1], kernel, (y0, x0, y1, x1), cfg, rng, photo._replace(factor=1.0), crop)


UNIFORM = Uniform()

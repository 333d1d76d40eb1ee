"""The uniform mode: one Boracchi & Foi kernel per sample, fresh or drawn from a bank (DeblurGAN).

Sample (image i, crop c) draws, from ``default_rng([seed, i, c])`` in this
order: the crop position, the kernel (a bank index, or one draw that keeps
the order the same with a fresh kernel), the realism levels.  Its fresh
kernel is number ``i * crops_per_image + c`` of the run's counter-based kernel
stream (``kernel_seeds(seed, ...)``), made for the whole shard at once.

Defocus (``--defocus LO-HI``, issue 24.2) is a setting of this mode's blur, not a
mode of its own: its option sits in :attr:`Uniform.options` and its settings, a
:class:`blurgen.physics.defocus.DefocusSpec`, are the mode's ``cfg.spec`` (None
without it), so the registry, ``SynthConfig`` and ``build_shard`` know nothing
of it: an effect of one mode is that mode's module plus its physics.  With it,
each sample's kernel is the motion PSF (fresh or from the bank) convolved with
a disk of a radius drawn from the sample's own stream
``default_rng([seed, DEFOCUS_TAG, i, c])`` (the draws above are untouched);
the stored kernel, and so the crop's margin, grows by ``2 * ceil(HI)`` px, and
the sample records ``defocus_radius``.  Without it nothing is drawn, stored or
recorded that was not before.

The rolling shutter (``--rolling-shutter LO-HI``, issue 24.1) is a setting of this mode too
(and of the shake mode: :mod:`blurgen.modes.rolling`), a field of the mode's settings
(:class:`UniformSpec`): each sample draws its readout from its own stream, and with a readout
> 0 its rows are blurred by the bands of :mod:`blurgen.physics.rolling` (the kernel's
trajectory continued past the exposure, drawn for the shard in one batch); the crop's margin
grows to that motion's reach (``rolling.grid_side``), the stored kernel is the centre row's
PSF.  With fresh kernels only (a bank holds PSFs, not their trajectories); with ``--defocus``
the scene goes through the disk before the rows' motion (margin and stored kernel grow by
``2 * ceil(HI)`` as without it).  A readout range of 0 (``--rolling-shutter 0``) gives today's pixels exactly,
plus the field ``rolling_readout``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import click
import numpy as np

import blurgen.modes.rolling as _rolling
from blurgen.modes.base import BlurMode, Photo, crop_box, too_small, upscale_to
from blurgen.physics import rolling as rolling_physics
from blurgen.physics.defocus import DefocusSpec, disk_psf
from blurgen.physics.kernels import KernelBatch, kernel_seeds, make_kernels, make_kernels_with_tracks, read_bank
from blurgen.physics.realism import parse_range
from blurgen.plumbing.caches import FileCache
from blurgen.runs.shard_run import SynthError
from blurgen.sources import SkipImage

# blur (OpenCV, SciPy) is imported where a sample is made: the command lines import the
# modes, for their options, as they start.
_BANKS = FileCache(size=2)


def bank(path: Path) -> KernelBatch:
    """The kernels of the bank at ``path``, read once per process (while the file is unchanged)."""
    return _BANKS.get(path, lambda: read_bank(path)[0])


@dataclass(frozen=True)
class UniformSpec:
    """The uniform mode's settings (``cfg.spec``; None when it has none): defocus
    (``--defocus``) and the rolling shutter (``--rolling-shutter``), each None when not given."""

    defocus: DefocusSpec | None = None
    rolling: rolling_physics.RollingShutter | None = None


class ShardKernels(NamedTuple):
    """What a shard's samples share: its fresh kernels or the bank (the other None), and with
    a rolling shutter the fresh kernels' trajectories continued past the exposure (one
    (N_j,) complex64 array per sample, ``kernels.make_kernels_with_tracks``)."""

    fresh: KernelBatch | None
    bank: KernelBatch | None
    tracks: list | None = None


def defocus_of(cfg) -> DefocusSpec | None:
    """The run's defocus settings (``--defocus``), or None."""
    return None if cfg.spec is None else cfg.spec.defocus


def rolling_of(cfg) -> rolling_physics.RollingShutter | None:
    """The run's rolling shutter (``--rolling-shutter``), or None."""
    return None if cfg.spec is None else cfg.spec.rolling


def rolling_on(cfg) -> bool:
    """Whether samples may have a readout > 0 (a range with HI > 0)."""
    rolling = rolling_of(cfg)
    return rolling is not None and rolling.active


def fresh_line(spec: dict) -> str:
    """How fresh kernels were drawn, in words (``inspect``), from a manifest's ``kernel_spec``."""
    drawn = lambda v: "drawn" if v is None else f"{v:g}"  # noqa: E731
    return (f"fresh {spec.get('size')}x{spec.get('size')} kernels (max-len {spec.get('max_len', 0):g}, "
            f"iters {spec.get('iters')}, expl {drawn(spec.get('expl'))}, fraction {drawn(spec.get('fraction'))})")


class Uniform(BlurMode):
    name = "uniform"
    summary = "one uniform kernel per sample, fresh (Boracchi & Foi) or from a --kernels bank (DeblurGAN)"
    online = online_kernel = True
    settings = (_rolling.SETTING,)
    options = (
        click.option("--defocus", default=None, metavar="LO-HI",
                     help="Defocus with the motion: each kernel convolved with a disk (circle of confusion) of a "
                          "radius drawn in LO-HI px; the kernel grows by 2*HI px (docs/modes.md)."),
    )
    #: The option that asks for this mode's own settings (the mode is the default without it).
    flag = "--defocus"

    def spec_from(self, values: dict):
        """A UniformSpec with ``--defocus`` or ``--rolling-shutter``, else None (the default mode all the same)."""
        defocus = None
        if values.get("defocus") is not None:
            defocus = DefocusSpec(*parse_range(values["defocus"], "defocus", "1-4"))
        rolling = _rolling.rolling_from(values)
        return None if defocus is None and rolling is None else UniformSpec(defocus, rolling)

    def check(self, cfg) -> None:
        if cfg.spec is not None and not isinstance(cfg.spec, UniformSpec):
            raise SynthError(f"the uniform mode's settings are a UniformSpec or None, got {type(cfg.spec).__name__}")
        if rolling_on(cfg) and cfg.kernel_bank is not None:
            raise SynthError("--rolling-shutter needs the kernels' trajectories: it takes fresh kernels, not --kernels")

    def arguments(self, cfg) -> dict:
        args = {"kernel_spec": None} if cfg.kernel_bank is not None else {}
        defocus = defocus_of(cfg)
        if defocus is not None:  # a key only with --defocus: other manifests keep their bytes
            args["defocus"] = [defocus.lo, defocus.hi]
        return {**args, **_rolling.rolling_arguments(rolling_of(cfg))}

    def kernel_size(self, cfg) -> int:
        k = cfg.kernel_spec.size if cfg.kernel_bank is None else bank(cfg.kernel_bank).psf.shape[-1]
        return k if defocus_of(cfg) is None else defocus_of(cfg).grow(k)

    @staticmethod
    def _side(cfg, shared) -> int:
        """The side whose margins (``blur.margins``) a crop needs: :meth:`kernel_size` from the
        shard's own kernels (per photo and per sample, without asking the bank's cache, a stat
        of its file, again), or with a rolling shutter the grid of its rows' PSFs."""
        if rolling_on(cfg):
            spec, defocus = cfg.kernel_spec, defocus_of(cfg)
            side = rolling_physics.grid_side(spec.max_len, spec.iters, rolling_of(cfg).hi)
            return side if defocus is None else defocus.grow(side)
        k = (shared.fresh if shared.fresh is not None else shared.bank).psf.shape[-1]
        return k if defocus_of(cfg) is None else defocus_of(cfg).grow(k)

    def shard(self, cfg, task) -> ShardKernels:
        """The shard's fresh kernels (with a rolling shutter, and their continued trajectories), or the bank."""
        if cfg.kernel_bank is not None:
            return ShardKernels(None, bank(cfg.kernel_bank))
        per = cfg.samples_per_image
        count = (task.stop_image - task.first_image) * per
        seeds = kernel_seeds(cfg.seed, count, start=task.first_image * per)
        if not rolling_on(cfg):
            return ShardKernels(make_kernels(seeds, cfg.kernel_spec), None)
        fresh, tracks = make_kernels_with_tracks(seeds, cfg.kernel_spec, rolling_of(cfg).hi)
        return ShardKernels(fresh, None, tracks)

    def prepare(self, photo: Photo, cfg, shared) -> Photo:
        k = self._side(cfg, shared)
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
        before, after = blur.margins(self._side(cfg, shared))
        rng = np.random.default_rng([cfg.seed, i, crop])
        y0, x0, y1, x1 = crop_box(rng, *pixels.shape[:2], cfg.crop, cfg.full, before, after)
        kernel = defocused(draw_kernel(rng, j, shared.fresh, shared.bank), cfg, i, crop)
        region = pixels[y0 - before : y1 + after, x0 - before : x1 + after]
        readout = _rolling.draw_readout(rolling_of(cfg), cfg.seed, i, crop)
        if readout:  # > 0: the rows' bands, their centre row's PSF stored (through the disk with --defocus)
            defocus, radius = defocus_of(cfg), kernel[3]
            disk = None if radius is None else disk_psf(radius, defocus.disk_size)
            side = region.shape[0] - (y1 - y0) + 1 - (0 if disk is None else len(disk) - 1)
            bands, centre = rolling_bands(shared.tracks[j], shared.fresh.fraction[j], readout, y1 - y0, side,
                                          cfg.kernel_spec)
            bands = (*bands, disk)
            kernel = (centre if disk is None else defocus.apply(centre, radius), *kernel[1:])
        else:
            bands = None
        return pair(region, pixels[y0:y1, x0:x1], kernel, (y0, x0, y1, x1), cfg, rng, photo, crop,
                    readout=readout, bands=bands)

    def online_spec(self, settings: dict):
        """``defocus=LO-HI`` (px), the one online setting: the rolling shutter needs the walks
        continued past the exposure, which the online kernels do not keep."""
        from blurgen.physics.realism import RealismError

        unknown = sorted(set(settings) - {"defocus"})
        if unknown:
            raise ValueError(f"the uniform mode has no online setting {unknown[0]!r} (it has defocus)")
        if "defocus" not in settings:
            return None
        try:
            return UniformSpec(defocus=DefocusSpec(*parse_range(settings["defocus"], "defocus", "1-4")))
        except RealismError:
            raise ValueError(f"uniform setting defocus must look like LO-HI (e.g. 1-4), got "
                             f"{settings['defocus']!r}") from None

    def online_margin(self, kernel_size: int, spec) -> int:
        defocus = None if spec is None else spec.defocus
        return (kernel_size if defocus is None else defocus.grow(kernel_size)) - 1

    def blur_window(self, window, psf, margins, spec, realism, rng, effects, cam) -> tuple[np.ndarray, dict]:
        defocus = None if spec is None else spec.defocus
        if defocus is None:
            return realism.blur(window, psf, rng, effects, cam), {}
        radius = float(rng.uniform(defocus.lo, defocus.hi))  # after the effects and the camera, before the noise
        return realism.blur(window, defocus.apply(psf, radius), rng, effects, cam), {"defocus_radius": radius}

    def recorded(self, args: dict) -> bool:
        return True  # the mode of any synthesize folder that records no other

    def describe(self, args: dict) -> str:
        if args.get("kernel_bank"):
            line = f"kernels drawn from the bank {args['kernel_bank']}"
        else:
            line = fresh_line(args.get("kernel_spec") or {})
        if args.get("defocus") is not None:
            lo, hi = args["defocus"]
            line += f", each through a disk of defocus radius {lo}-{hi} px"
        return line + _rolling.describe_rolling(args)


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


def defocused(kernel: tuple, cfg, image: int, crop: int) -> tuple:
    """:func:`draw_kernel`'s ``kernel`` as the sample's blur, with its defocus radius appended:
    with ``--defocus`` (``cfg.spec``) the motion PSF through the disk of the sample's radius
    (drawn from its own stream) on the run's grid; else the kernel as it was, radius None."""
    psf, params, index = kernel
    defocus = defocus_of(cfg)
    if defocus is None:
        return psf, params, index, None
    radius = defocus.draw(cfg.seed, image, crop)
    return defocus.apply(psf, radius), params, index, radius


def rolling_bands(track: np.ndarray, fraction: float, readout: float, rows: int, side: int,
                  spec) -> tuple[tuple[np.ndarray, list], np.ndarray]:
    """((band PSFs (B, s, s), their row ranges, ``side``: the grid the crop's margins are for), the
    centre row's PSF (k, k) float32) of a sample whose fresh kernel's continued trajectory is
    ``track`` (``ShardKernels.tracks``)."""
    from blurgen.physics import psf as _psf

    exposed = int(_psf.exposed_samples(spec.iters, np.array([fraction]))[0])
    speed = exposed * spec.max_len / (spec.iters - 1)  # Boracchi & Foi's walk: constant speed
    psfs, spans = rolling_physics.band_psfs(track, exposed, readout, rows, speed)
    window = rolling_physics.centre_window(track, exposed, readout)
    window = (window - window.mean()).astype(np.complex64)  # centred on its mean, as make_kernels' are
    centre = _psf.rasterize(window[:, None], spec.size)[0]
    return (psfs, spans, side), centre


def pair(region: np.ndarray, sharp: np.ndarray, kernel: tuple, box: tuple[int, int, int, int], cfg,
         rng: np.random.Generator, photo: Photo, crop: int, readout: float | None = None,
         bands: tuple | None = None) -> tuple:
    """(blurred, sharp, psf, meta) of a crop.  ``region``: the window ``box`` (y0, x0, y1, x1)
    plus the PSF's margins (``blur.margins``); ``kernel``: :func:`defocused`'s; the realism
    levels are drawn from ``rng`` now, the camera's settings from the sample's camera stream.
    ``bands``: a rolling shutter's (PSFs, row ranges, their grid's side, the defocus disk or None)
    (:func:`rolling_bands`), applied to ``region`` in place of the one PSF, between the same
    realism steps; ``readout``: recorded."""
    psf, params, bank_index, radius = kernel
    realism = cfg.realism
    effects = realism.draw(rng)
    cam = realism.draw_camera(realism.camera_rng([cfg.seed, photo.index, crop]))
    if bands is None:
        blurred = realism.blur(region, psf, rng, effects, cam)
    else:
        psfs, spans, side, disk = bands
        if disk is None:
            sub, psfs = rolling_physics.trim_bands(region, psfs, side)  # convert only the pixels the blur reads
            sub = realism.working(sub, effects, cam)
        else:
            # Out of focus: the lens blurs the scene the rows then see moving (both shift-invariant
            # on the sensor), so the disk first, then each row's motion.
            from blurgen.physics import blur

            sub, psfs = rolling_physics.trim_bands(blur.convolve_valid(realism.working(region, effects, cam), disk),
                                                   psfs, side)
        blurred = realism.finish(rolling_physics.blur_bands(sub, psfs, spans), rng, effects, cam)
    sharp = realism.sharp(sharp, cam)
    meta = {"source": photo.rel, "crop_box": np.array(box, np.int32), "kernel_index": bank_index,
            "linear": realism.in_linear_light, **{f"kernel_{k}": v for k, v in params.items()}, **effects,
            **({} if cam is None else cam.draw.meta())}
    if cfg.small == "upscale":  # a field only then: other runs keep their bytes
        meta["upscale"] = np.float32(photo.factor)
    if radius is not None:  # with --defocus only, likewise
        meta["defocus_radius"] = np.float32(radius)
    meta.update(_rolling.rolling_meta(readout))  # with --rolling-shutter only, likewise
    return blurred, sharp, psf, meta


def within_reach(cfg, h: int, w: int) -> bool:
    """Whether an h x w photo smaller than a crop plus the kernel's whole margin (k - 1 px) may
    still give crops with the margin its drawn kernels reach (:func:`reach_sample`): crops, not
    ``--full``, with ``--small skip`` (``upscale`` enlarges such photos, as before), when it
    holds a crop at all."""
    return not (cfg.full or cfg.small != "skip" or rolling_on(cfg)) and min(h, w) >= cfg.crop


def reach_sample(photo: Photo, crop: int, j: int, cfg, shared) -> tuple:
    """Crop c of a photo too small for a crop plus the kernel's whole k - 1 px margin: the
    kernel is drawn first, and the crop placed where the pixels its taps reach
    (``blur.support_margins``) lie inside the photo (issue 22.3).  Photos that hold the whole
    margin never come here: their samples stay as they were.  SkipImage("too-small") if the
    photo cannot hold the crop plus that reach."""
    from blurgen.physics import blur

    pixels, side = photo.pixels, cfg.crop
    rng = np.random.default_rng([cfg.seed, photo.index, crop])
    kernel = defocused(draw_kernel(rng, j, shared.fresh, shared.bank), cfg, photo.index, crop)
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
    readout = _rolling.draw_readout(rolling_of(cfg), cfg.seed, photo.index, crop)  # 0: the reach path is global
    return pair(region, pixels[y0:y1, x0:x1], kernel, (y0, x0, y1, x1), cfg, rng, photo._replace(factor=1.0), crop,
                readout=readout)


UNIFORM = Uniform()

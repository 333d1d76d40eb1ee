"""What a blur mode is, and the geometry every mode shares.

A mode turns a source photo into samples (blurred, sharp, kernel, meta).
``synthesize`` loads and downscales each photo, then asks the run's mode:

1. :meth:`BlurMode.shard` once per shard: what its samples share (a shard's
   fresh kernels, a kernel bank);
2. :meth:`BlurMode.prepare` once per photo: the photo as the mode samples it
   (upscaled with ``--small upscale``), or SkipImage for the whole photo;
3. :meth:`BlurMode.sample` once per crop: one sample, drawn from the crop's
   own random stream, or SkipImage for that crop alone.

A mode also says which options it takes (:attr:`BlurMode.options`, click
decorators added to ``synthesize``), how those become its settings
(:meth:`BlurMode.spec_from`), what it refuses (:meth:`BlurMode.check`), how a
manifest records it (:meth:`BlurMode.arguments`) and how ``inspect`` describes
a folder made with it (:meth:`BlurMode.describe`).  docs/modes.md shows a
whole mode.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from blurgen.sources import SkipImage

#: How ``--small upscale`` enlarges a photo: bicubic (Keys 1981), the interpolation
#: super-resolution data sets (DIV2K's bicubic track) and most image tools use; it keeps edges
#: sharper than bilinear without Lanczos' wider ringing.  The sharp target of such a
#: photo is still softer than a real photo of that size: its samples record their
#: factor (``upscale``) so that they can be told apart or left out.
UPSCALE_INTERPOLATION = "bicubic"


class Photo(NamedTuple):
    """A source photo as a mode samples it: (H, W, 3) uint8 RGB pixels, its path relative to
    ``--src``, its index in the run's list, its ``--small upscale`` factor (1: as it was), and
    whatever the mode prepared for its crops."""

    pixels: np.ndarray
    rel: str
    index: int
    factor: float = 1.0
    extra: object = None


class BlurMode:
    """A blur mode (module doc).  Subclasses set :attr:`name`, :attr:`summary` and
    :attr:`options` and define :meth:`spec_from`, :meth:`sample` and :meth:`describe`; the
    other methods have defaults that suit a mode with no settings of its own."""

    #: The registry's key, and ``SynthConfig.mode``.
    name: str = ""
    #: One line for ``docs/modes.md`` and the registry's listing.
    summary: str = ""
    #: click option decorators this mode adds to ``synthesize``.
    options: tuple[Callable, ...] = ()
    #: The option that asks for the mode (named when two are asked for).
    flag: str = ""
    #: The shared settings it takes (parameter names of ``blurgen.modes.SHARED_SETTINGS``, e.g.
    #: ``rolling_shutter``), read by its :meth:`spec_from`; the registry refuses the others.
    settings: tuple[str, ...] = ()
    #: Whether ``trainer fit --online`` can blur a window of one photo with it (:meth:`blur_window`).
    online: bool = False
    #: Whether its online blur takes the draw's uniform kernel (made in batches, ``blurgen.runs.online``).
    online_kernel: bool = False

    def spec_from(self, values: dict):
        """The mode's settings from ``synthesize``'s option values (by parameter name), or
        None where the command line does not ask for this mode.  The registry asks first
        without the shared settings (whether the mode is asked for), then, of the mode it
        chose, with them."""
        return None

    def check(self, cfg) -> None:
        """SynthError for settings of ``cfg`` this mode cannot take (called by SynthConfig)."""

    def arguments(self, cfg) -> dict:
        """What a manifest records of the mode, merged into ``cfg.arguments()`` (only keys
        of its own, or overrides of shared ones: the manifests of other modes stay as they were)."""
        return {}

    def inputs(self, cfg) -> dict:
        """Files the mode reads besides the photos, as ``{name: checksum}``: a resume over a
        changed one is refused."""
        return {}

    def check_inputs(self, cfg) -> None:
        """Read the mode's own input files in full, before any work (SynthError if unusable)."""

    def kernel_size(self, cfg) -> int:
        """Side of the PSF stored with each sample (1 where none is)."""
        return cfg.kernel_spec.size

    def shard(self, cfg, task):
        """What the samples of shard ``task`` share (a shard's fresh kernels); None by default."""
        return None

    def prepare(self, photo: Photo, cfg, shared) -> Photo:
        """The photo as the mode samples it; SkipImage to skip it whole.  Default: as it is."""
        return photo

    def sample(self, photo: Photo, crop: int, j: int, cfg, shared) -> tuple:
        """Sample ``crop`` of ``photo``, the shard's sample ``j``: (blurred (h, w, 3) uint8 or
        None, sharp (h, w, 3) uint8, kernel (k, k) float32 or None, meta dict).  SkipImage
        where this crop cannot be made."""
        raise NotImplementedError

    def online_spec(self, settings: dict):
        """The mode's settings for online blur from ``KEY=VALUE`` pairs (``--online-mode-settings``);
        ValueError naming an unknown key or a bad value."""
        if settings:
            raise ValueError(f"the {self.name} mode takes no settings, got {', '.join(settings)}")
        return None

    def online_margin(self, kernel_size: int, spec) -> int:
        """Extra source pixels per side of an online crop, in all, for a ``kernel_size`` px kernel
        and the mode's online settings ``spec``: k - 1 (the kernel's reach), unless the mode's
        blur reaches further."""
        return kernel_size - 1

    def blur_window(self, window: np.ndarray, psf: np.ndarray | None, margins: tuple[int, int], spec, realism,
                    rng: np.random.Generator, effects: dict, cam) -> tuple[np.ndarray, dict]:
        """``trainer fit --online``: (the blurred crop (c, c, 3) uint8, the draw's own meta) of a
        sharp window (H, W, 3) uint8 that holds the crop plus ``margins`` (before, after) px on each
        side; ``psf`` the draw's kernel where :attr:`online_kernel`; every draw from ``rng``
        (after ``effects`` and the camera ``cam`` were drawn from it)."""
        raise NotImplementedError

    def recorded(self, args: dict) -> bool:
        """Whether a folder's manifest arguments were made with this mode."""
        return False

    def describe(self, args: dict) -> str:
        """How the samples of a folder made with this mode were blurred (``blurgen inspect``)."""
        return self.summary


def crop_box(rng: np.random.Generator, h: int, w: int, crop: int, full: bool, before: int = 0,
             after: int = 0) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of a sample in an h x w image less ``before``/``after`` px of margin
    on each side: the whole of it with ``full``, else a ``crop`` x ``crop`` window at a
    position drawn from ``rng`` (the image must hold crop + margins).  Two draws either
    way, so that turning ``full`` on or off leaves every later draw as it was."""
    if full:
        rng.integers(0, 1, size=2)
        return before, before, h - after, w - after
    y0 = before + int(rng.integers(0, h - before - after - crop + 1))
    x0 = before + int(rng.integers(0, w - before - after - crop + 1))
    return y0, x0, y0 + crop, x0 + crop


def too_small(width: int, height: int, what: str, note: str = "", things: str = "") -> SkipImage:
    """The one "too-small" skip: ``{width}x{height} [things ]is smaller than {what}{note}``
    (``things``: "frames are" for video; a photo by default)."""
    verb = f"{things} are" if things else "is"
    return SkipImage("too-small", f"{width}x{height} {verb} smaller than {what}{note}")


def upscale_to(photo: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Enlarge ``photo`` ((h, w, 3) uint8) with bicubic interpolation so that
    its short side is ``side`` px, keeping its aspect ratio (each side rounded
    up, so neither falls short).  Returns (the photo, the factor)."""
    import cv2

    h, w = photo.shape[:2]
    factor = side / min(h, w)
    size = (max(side, math.ceil(w * factor - 1e-9)), max(side, math.ceil(h * factor - 1e-9)))
    # cv2's bicubic saturates to 0..255 on uint8: its overshoot at edges is clipped, not wrapped.
    return cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC), factor

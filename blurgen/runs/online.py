"""Blur on the fly: a fresh Boracchi & Foi kernel and fresh sensor effects per training draw.

``trainer fit --online`` reads a sharp window of side ``crop + k - 1`` (the
crop plus a k-px PSF's margins, ``blur.margins``) and turns it here into an
aligned (blurred, sharp) pair of side ``crop``: a true convolution on that
window alone, so the blurred crop has no border artefact.  Everything random
about draw j -- the kernel and the effect levels (and the noise itself) -- is
a pure function of (seed, j, attempt):

* the kernel's seed is number j of the counter-based stream (SplitMix64,
  :mod:`blurgen.physics.streams`) whose base is ``SeedSequence([seed, ONLINE_TAG,
  attempt])``, and its PSF ``make_kernels(seed, spec)`` -- so a kernel comes
  out the same whatever batch it is made in, and a batch of kernels is made
  in one vectorised call (about 6 ms a 21-px kernel in batches of six here,
  against 22 ms one at a time);
* the effect levels, then the camera's settings (with one), and the noise
  come from ``default_rng([seed, ONLINE_TAG, j, attempt])``, drawn as
  ``synthesize`` draws them (:meth:`blurgen.physics.realism.Realism.draw`).

The blur itself is :meth:`blurgen.physics.realism.Realism.blur`, the one ``synthesize``
writes shards with: one code path for both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blurgen.modes import DEFAULT_MODE, MODES, ONLINE_MODES
from blurgen.physics import blur, streams
from blurgen.physics.kernels import KernelBatch, KernelSpec, make_kernels
from blurgen.physics.psf import max_extent
from blurgen.physics.realism import Realism

#: Keeps the online streams apart from every other stream of the same seed.
ONLINE_TAG = 0x6F6E6C6E


def kernel_size_for_crop(crop: int) -> int:
    """The default online PSF side for crops of side ``crop``: a quarter of it,
    rounded up to odd (DeblurGAN's 64-px kernels on 256-px crops), at least 3."""
    return max(3, (int(crop) // 4) | 1)


@dataclass(frozen=True)
class OnlineBlur:
    """How a training draw is blurred.

    kernel_size : PSF side k in pixels (>= 3); trajectories up to
        ``max_extent(k)`` px (k - 2 for odd k), anxiety and exposure fraction
        drawn per kernel as DeblurGAN draws them.
    realism : linear light, saturation, noise, JPEG or RSBlur's camera pipeline
        around the blur, as ``synthesize`` applies them (:mod:`blurgen.physics.realism`);
        with a camera both crops come back in its tone curve.
    mode : a blur mode of ``blurgen.modes.ONLINE_MODES`` (one that blurs a window of one
        photo): ``uniform``, the draw's kernel; ``shake``, non-uniform camera shake
        inside the window (its margin is the kernel's, k - 1).
    spec : the mode's settings (``blurgen.physics.shake.ShakeSpec`` for ``shake``; for ``uniform`` a
        ``UniformSpec`` with defocus: each draw's kernel through a disk of a radius drawn from
        the draw's generator), None for its defaults.
    """

    kernel_size: int
    realism: Realism = Realism()
    mode: str = DEFAULT_MODE
    spec: object = None

    def __post_init__(self):
        if int(self.kernel_size) != self.kernel_size or self.kernel_size < 3:
            raise ValueError(f"online kernel size must be an integer >= 3, got {self.kernel_size}")
        if self.mode not in ONLINE_MODES:
            raise ValueError(f"online blur mode must be one of {', '.join(ONLINE_MODES)}, got {self.mode!r}")

    @property
    def blur_mode(self):
        return MODES[self.mode]

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(size=self.kernel_size, max_len=max_extent(self.kernel_size))

    @property
    def margin(self) -> int:
        """Extra source pixels per side of a crop, in all: k - 1, or what the mode's blur reaches
        (``--online-mode-settings defocus=LO-HI``: the kernel grown by the disk)."""
        return self.blur_mode.online_margin(self.kernel_size, self.spec)

    def kernel_seeds(self, seed: int, draws) -> np.ndarray:
        """(n,) uint64 kernel seeds of ``draws`` [(j, attempt), ...] of the stream ``seed``."""
        out = np.empty(len(draws), np.uint64)
        bases: dict[int, np.ndarray] = {}
        for n, (j, attempt) in enumerate(draws):
            if attempt not in bases:
                bases[attempt] = np.random.SeedSequence([seed, ONLINE_TAG, attempt]).generate_state(1, np.uint64)
            out[n] = streams.stream_u64(bases[attempt], int(j), 1)[0, 0]
        return out

    def kernels(self, seed: int, draws) -> KernelBatch | None:
        """The PSFs (n, k, k) float32 (and parameters) of ``draws`` [(j, attempt), ...]; None
        for a mode that draws its blur otherwise (it needs no kernel)."""
        if not self.blur_mode.online_kernel:
            return None
        return make_kernels(self.kernel_seeds(seed, draws), self.kernel_spec)

    def rng(self, seed: int, j: int, attempt: int = 0) -> np.random.Generator:
        """The generator of draw j's effect levels and noise."""
        return np.random.default_rng([seed, ONLINE_TAG, int(j), int(attempt)])

    def blur(self, window: np.ndarray, psf: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
        """(blurred, sharp, effects) of one draw.

        window : (c + m, c + m, 3) uint8 RGB, the sharp crop plus the blur's margins, m = :attr:`margin`.
        psf : (k, k) float32, the draw's kernel (None for a mode that needs none).
        rng : the draw's generator (:meth:`rng`); the effect levels are drawn first.

        Returns the (c, c, 3) uint8 blurred and sharp crops, aligned, and the drawn effect levels.
        """
        realism = self.realism
        effects = realism.draw(rng)
        before, after = blur.margins(self.margin + 1)
        sharp = np.ascontiguousarray(window[before:window.shape[0] - after, before:window.shape[1] - after])
        # The camera's settings and noise come after the effect levels, from the same generator:
        # draw j stays a pure function of (seed, j, attempt).
        cam = realism.draw_camera(rng)
        blurred, meta = self.blur_mode.blur_window(window, psf, (before, after), self.spec, realism, rng, effects, cam)
        return blurred, realism.sharp(sharp, cam), {**effects, **({} if cam is None else cam.draw.meta()), **meta}

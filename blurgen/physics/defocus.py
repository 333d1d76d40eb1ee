"""Defocus: the circle of confusion, alone and combined with a motion PSF.

A lens focused at another depth than the scene spreads each scene point over
a disk, its circle of confusion; with a thin lens and a round aperture the
disk is uniform (geometric optics: no diffraction rings, no cat's-eye
vignetting).  A camera that moves while out of focus spreads each point over
the disk swept along the motion path: the blur is the motion PSF convolved
with the disk (both are linear, shift-invariant blurs of the same exposure).

:func:`disk_psf` rasterises a disk of radius R by its area on each pixel
(supersampled :data:`SUPERSAMPLE` x :data:`SUPERSAMPLE` times per pixel), so a
radius between whole pixels changes the kernel smoothly; :func:`defocus_psf`
convolves a motion PSF with it.  Both keep the convention of
:mod:`blurgen.physics.psf`: sum 1, centre of mass on pixel (k // 2, k // 2).

Numpy only: the command lines import this module (through the uniform mode) as
they start.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Stream tag of a sample's defocus radius (ASCII "DFOC"): the radius of sample (image i, crop c)
#: is drawn from ``default_rng([seed, DEFOCUS_TAG, i, c])``, so the sample's other streams
#: (crop, kernel, effects, camera) draw what they drew without defocus.
DEFOCUS_TAG = 0x44464F43

#: Sub-pixel samples per pixel side for the disk's area coverage (16 x 16 = 256 a pixel:
#: each pixel's coverage within 1/256 of its area).
SUPERSAMPLE = 16


def disk_side(radius: float) -> int:
    """Side (odd) of the smallest grid that holds a disk of ``radius`` px centred on a pixel."""
    return 2 * math.ceil(max(float(radius), 0.0)) + 1


def disk_psf(radius: float, size: int | None = None) -> np.ndarray:
    """A uniform disk of ``radius`` px, anti-aliased by its area on each pixel.

    size : side of the grid (odd is best: the disk is then symmetric about its centre
        pixel), at least :func:`disk_side`; default that side.
    Returns (size, size) float32, sums to 1, centred on pixel (size // 2, size // 2).
    A radius of 0 (or one too small to reach beyond the centre pixel) is the identity:
    a single 1 in the centre.
    """
    radius = float(radius)
    if not radius >= 0:  # NaN too
        raise ValueError(f"a defocus radius must be >= 0, got {radius}")
    size = disk_side(radius) if size is None else int(size)
    if size < disk_side(radius):
        raise ValueError(f"a disk of radius {radius:g} px needs a grid of {disk_side(radius)} px, got {size}")
    c = size // 2
    # Sample positions within a pixel, relative to its centre: (s + 0.5) / S - 0.5.
    sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5
    offsets = (np.arange(size) - c)[:, None] + sub[None, :]  # (size, S): pixel, sample -> position
    inside = (offsets[:, None, :, None] ** 2 + offsets[None, :, None, :] ** 2) <= radius * radius
    coverage = inside.mean(axis=(2, 3))
    if coverage.sum() == 0:  # a disk smaller than the sample spacing: all its light on the centre pixel
        coverage[c, c] = 1.0
    return (coverage / coverage.sum()).astype(np.float32)


def defocus_psf(motion_psf: np.ndarray, radius: float, size: int | None = None) -> np.ndarray:
    """The PSF of a motion ``motion_psf`` ((k, k), centred on (k // 2, k // 2)) seen through a
    defocus disk of ``radius`` px: their full 2-D convolution, normalised to sum 1.

    size : side of the disk's grid (odd, >= :func:`disk_side` of ``radius``); default that
        side.  Runs pass the side of their largest radius, so that every sample's kernel has
        the same side.
    Returns (k + size - 1, k + size - 1) float32, centred on its pixel
    ((k + size - 1) // 2, ...) for odd ``size``.  Radius 0 with the default size gives
    ``motion_psf`` itself, unchanged (the same array values, not renormalised).
    """
    motion = np.asarray(motion_psf, dtype=np.float32)
    disk = disk_psf(radius, size)
    d = disk.shape[0]
    if d == 1:
        return motion.copy()
    k = motion.shape[0]
    out = np.zeros((k + d - 1, k + d - 1), np.float64)
    rows, cols = np.flatnonzero(motion.any(axis=1)), np.flatnonzero(motion.any(axis=0))
    if rows.size:
        # Only the motion's non-zero box is convolved (a 64-px kernel is mostly zeros), as a
        # sum of shifted copies, one per non-zero tap of the disk:
        # out[y, x] = sum_ij disk[i, j] * motion[y - i, x - j].
        r0, c0 = rows[0], cols[0]
        m = motion[r0 : rows[-1] + 1, c0 : cols[-1] + 1].astype(np.float64)
        h, w = m.shape
        box = out[r0 : r0 + h + d - 1, c0 : c0 + w + d - 1]
        for i, j in zip(*np.nonzero(disk)):
            box[i : i + h, j : j + w] += float(disk[i, j]) * m
    total = out.sum()
    return (out / total if total > 0 else out).astype(np.float32)


@dataclass(frozen=True)
class DefocusSpec:
    """How to draw defocus (``synthesize --defocus LO-HI``): each sample's radius, in px,
    uniformly in [lo, hi] (whole pixels at the ends; the radius itself is a float)."""

    lo: int = 0
    hi: int = 0

    def __post_init__(self):
        if not 0 <= self.lo <= self.hi:
            raise ValueError(f"--defocus must be LO-HI with 0 <= LO <= HI (radii in px), got {self.lo}-{self.hi}")

    @property
    def disk_size(self) -> int:
        """Side of every sample's disk grid: that of the largest radius, ``2 * ceil(hi) + 1``."""
        return disk_side(self.hi)

    def grow(self, k: int) -> int:
        """Side of the combined kernel of a motion PSF of side ``k``: ``k + 2 * ceil(hi)``."""
        return k + self.disk_size - 1

    def draw(self, seed: int, image: int, crop: int) -> float:
        """The radius of sample (``image``, ``crop``), from its own stream (:data:`DEFOCUS_TAG`)."""
        return float(np.random.default_rng([seed, DEFOCUS_TAG, image, crop]).uniform(self.lo, self.hi))

    def apply(self, motion_psf: np.ndarray, radius: float) -> np.ndarray:
        """``motion_psf`` through the disk of ``radius`` on this spec's grid (:func:`defocus_psf`)."""
        return defocus_psf(motion_psf, radius, self.disk_size)

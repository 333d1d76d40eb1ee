"""Rasterisation: from trajectory samples to a point-spread function (PSF).

The PSF of an exposure fraction f is the distribution of the camera position
over the first f of the exposure: the first ``round(f * iters)`` trajectory
samples, each splatted onto the pixel grid with bilinear weights.  Bilinear
splatting preserves the first moment exactly, so shifting the samples to put
their mean at the grid centre puts the PSF's centre of mass there too: a
blurred image stays aligned with its sharp image (no shift of the content).
The PSF sums to 1, so blurring keeps the image's brightness.
"""
from __future__ import annotations

import numpy as np

_BLOCK = 64


def exposed_samples(iters: int, fraction: np.ndarray) -> np.ndarray:
    """Number of trajectory samples seen in an exposure fraction: (n,) int64 in [2, iters]."""
    return np.clip(np.rint(np.asarray(fraction) * iters).astype(np.int64), 2, iters)


def max_extent(size: int) -> float:
    """Longest trajectory (px) whose centred PSF always fits a ``size``×``size`` grid.

    A path of length L at constant speed lies within L/2 of its mean (each
    sample's mean distance to the others is at most L/2), and bilinear splatting
    needs one more pixel beyond the sample.
    """
    return float(size - 3)


def rasterize(points: np.ndarray, size: int) -> np.ndarray:
    """Splat every sample of each trajectory onto a centred ``size``×``size`` grid.

    Parameters
    ----------
    points : (samples, n) complex
        The exposed trajectory samples x + iy in pixels (step-major, as
        :attr:`blurgen.trajectory.Trajectories.points`).
    size : int
        Side of the PSF in pixels.

    Returns
    -------
    (n, size, size) float32
        Non-negative PSFs that sum to 1, rows = y, columns = x, each with its
        centre of mass at ((size - 1) / 2, (size - 1) / 2).

    Raises
    ------
    ValueError
        If a centred trajectory does not fit the grid.
    """
    samples, n = points.shape
    centre = (size - 1) / 2
    psf = np.empty((n, size, size), np.float32)
    # Kernel-major blocks of a few hundred kernels: each block's bins (a few MB)
    # stay in cache while its samples are accumulated.
    for start in range(0, n, _BLOCK):
        block = np.ascontiguousarray(points[:, start : start + _BLOCK].T)  # (m, samples)
        m = len(block)
        mean = block.mean(axis=1, dtype=np.complex128, keepdims=True)
        # Offsets from the mean are small (< size / 2), so float32 keeps them to ~1e-6 px.
        block += (complex(centre, centre) - mean).astype(np.complex64)
        x, y = block.real, block.imag
        if min(x.min(), y.min()) < 0 or max(x.max(), y.max()) >= size - 1:
            raise ValueError(
                f"a trajectory does not fit a {size}x{size} PSF; use a larger size or a shorter max_len"
            )
        ix, iy = x.astype(np.int64), y.astype(np.int64)  # floor: coordinates are >= 0
        fx, fy = (x - ix).astype(np.float64), (y - iy).astype(np.float64)
        gx, gy = 1 - fx, 1 - fy
        base = (np.arange(m) * (size * size))[:, None] + iy * size + ix
        index = np.stack([base, base + 1, base + size, base + size + 1], axis=-1)
        weight = np.stack([gx * gy, fx * gy, gx * fy, fx * fy], axis=-1)
        acc = np.bincount(index.ravel(), weights=weight.ravel(), minlength=m * size * size)
        psf[start : start + m] = (acc * (1.0 / samples)).reshape(m, size, size)  # each sample's weights sum to 1
    return psf


def centre_of_mass(psf: np.ndarray) -> np.ndarray:
    """Centre of mass (y, x) in pixels of PSFs (..., k, k): (..., 2) float64."""
    psf = np.asarray(psf, dtype=np.float64)
    k = psf.shape[-1]
    total = psf.sum(axis=(-2, -1))
    grid = np.arange(k, dtype=np.float64)
    cy = (psf.sum(axis=-1) * grid).sum(axis=-1) / total
    cx = (psf.sum(axis=-2) * grid).sum(axis=-1) / total
    return np.stack([cy, cx], axis=-1)

"""Rasterisation: from trajectory samples to a point-spread function (PSF).

The PSF of an exposure fraction f is the distribution of the camera position
over the first f of the exposure: the first ``round(f * iters)`` trajectory
samples, each splatted onto the pixel grid with bilinear weights.  Bilinear
splatting preserves the first moment exactly, so shifting the samples to put
their mean at the grid centre puts the PSF's centre of mass there too: a
blurred image stays aligned with its sharp image (no shift of the content).
The PSF sums to 1, so blurring keeps the image's brightness.

The centre is the pixel ``size // 2`` — for even sizes half a pixel past the
geometric centre (size - 1) / 2 — so that a convolution anchored at that
pixel moves nothing: a half-pixel centre would shift every blurred image by
half a pixel against its sharp image.
"""
from __future__ import annotations

import numpy as np

_BLOCK = 64


def exposed_samples(iters: int, fraction: np.ndarray) -> np.ndarray:
    """Number of trajectory samples seen in an exposure fraction: (n,) int64 in [2, iters]."""
    return np.clip(np.rint(np.asarray(fraction) * iters).astype(np.int64), 2, iters)


def centre(size: int) -> int:
    """The pixel (row = column) where a PSF of side ``size`` has its centre of mass."""
    return size // 2


def max_extent(size: int) -> float:
    """Longest trajectory (px) whose centred PSF always fits a ``size``×``size`` grid.

    A path of length L at constant speed lies within L/2 of its mean (each
    sample's mean distance to the others is at most L/2), and bilinear splatting
    needs one more pixel beyond the sample.
    """
    c = centre(size)
    return float(min(2 * c, 2 * (size - 1 - c) - 1))


def rasterize(points: np.ndarray, size: int, anchor: np.ndarray | None = None) -> np.ndarray:
    """Splat every sample of each trajectory onto a centred ``size``×``size`` grid.

    Parameters
    ----------
    points : (samples, n) complex
        The exposed trajectory samples x + iy in pixels (step-major, as
        :attr:`blurgen.physics.trajectory.Trajectories.points`).
    size : int
        Side of the PSF in pixels.
    anchor : (n,) complex or None
        The point of each trajectory put on the centre pixel; None: its mean
        (the centred PSF).  A rolling shutter's rows share one anchor, so that
        their PSFs keep their offsets from each other.

    Returns
    -------
    (n, size, size) float32
        Non-negative PSFs that sum to 1, rows = y, columns = x, each with its
        centre of mass at pixel (size // 2, size // 2) (with ``anchor``: its
        anchor there).

    Raises
    ------
    ValueError
        If a centred trajectory does not fit the grid.
    """
    samples, n = points.shape
    mid = centre(size)
    psf = np.empty((n, size, size), np.float32)
    # Kernel-major blocks of a few hundred kernels: each block's bins (a few MB)
    # stay in cache while its samples are accumulated.
    for start in range(0, n, _BLOCK):
        # A lone trajectory's transpose is already contiguous: then no copy, and the shift below
        # moves the caller's points (kept so: the kernels' recorded lengths were measured on them).
        block = np.ascontiguousarray(points[:, start : start + _BLOCK].T)  # (m, samples)
        m = len(block)
        if anchor is None:
            mean = block.mean(axis=1, dtype=np.complex128, keepdims=True)
        else:
            mean = np.asarray(anchor, np.complex128)[start : start + m, None]
        # Offsets from the mean are small (< size / 2), so float32 keeps them to ~1e-6 px.
        block += (complex(mid, mid) - mean).astype(np.complex64)
        xy = block.view(np.float32).reshape(m, samples, 2)  # (x, y) pairs, no copy
        if xy.min() < 0 or xy.max() >= size - 1:
            raise ValueError(
                f"a trajectory does not fit a {size}x{size} PSF; use a larger size or a shorter max_len"
            )
        ixy = xy.astype(np.int32)  # floor: coordinates are >= 0
        fxy = xy - ixy
        cell = (ixy[..., 1] * size + ixy[..., 0] + (np.arange(m, dtype=np.int32) * (size * size))[:, None]).ravel()
        # Successive samples are ~max_len/iters apart (0.03 px by default), so
        # they come in long runs within one pixel.  The bilinear weights are
        # bilinear in (fx, fy): a run's four corner weights follow from its
        # sums of 1, fx, fy and fx*fy, and the histogram gets one entry per
        # run and corner instead of one per sample and corner.
        new_run = np.empty(cell.size, bool)
        new_run[0] = True
        np.not_equal(cell[1:], cell[:-1], out=new_run[1:])
        starts = np.flatnonzero(new_run)
        count = np.diff(starts, append=cell.size).astype(np.float64)
        fx = np.ascontiguousarray(fxy[..., 0]).ravel()
        fy = np.ascontiguousarray(fxy[..., 1]).ravel()
        sx = np.add.reduceat(fx, starts, dtype=np.float64)
        sy = np.add.reduceat(fy, starts, dtype=np.float64)
        sxy = np.add.reduceat(fx * fy, starts, dtype=np.float64)
        c = cell[starts].astype(np.intp)
        index = np.concatenate([c, c + 1, c + size, c + size + 1])
        weight = np.concatenate([count - sx - sy + sxy, sx - sxy, sy - sxy, sxy])
        acc = np.bincount(index, weights=weight, minlength=m * size * size)
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

"""A rolling shutter: every image row exposed over its own window of the camera's motion.

A CMOS sensor starts and reads its rows one after the other.  Time ``t`` is
measured in exposures (each row integrates light for a time 1); the readout
fraction ``R`` is the time from the start of the sample's first row to the start
of its last.  Row ``y`` of a sample of ``h`` rows (the crop, or the whole image
with ``--full``; not the full sensor: a crop of a taller frame whose readout is
``R_f`` sees ``R = R_f (h - 1) / (H - 1)``) integrates over

    [d_y, d_y + 1],    d_y = R * y / (h - 1)    (d = 0 for a single row),

so the camera's motion must be known over [0, 1 + R].  The motion models
continue their walk past the exposure's end: a Boracchi & Foi trajectory is
the same random walk, with the same step and the same random stream, drawn
for ``(1 + R)`` times as many samples (:func:`extended_samples`), so the first
row sees exactly the global-shutter trajectory and the later rows its
continuation.

**The sharp target** is the scene at the camera's mean position over the
*centre row's* window [R/2, R/2 + 1] (the centroid of that row's motion; the
continuous row (h - 1)/2, so also for an even h): what the blurred image's
centre row shows, blurred about its own place, as the global-shutter modes
centre their kernels on the motion's mean.  Every row's motion is measured
from that position, so the sharp image stays the photo itself (never
resampled) and a model trained on the pairs learns to undo the skew as well
as the blur.  R = 0 is the global shutter, exactly.

Uniform translation (:func:`band_psfs`, :func:`blur_bands`).  A row's blur is
the trajectory's positions over its window, splatted as a PSF (relative to the
sharp target, so not centred on its own mean).  Rows are blurred in bands
that share the PSF of the band's middle row.  A row whose delay differs by
``δ`` from its band's sees every sample of its window displaced by at most
``v δ`` px (v: the walk's constant speed, px per exposure), so the bands are
made narrow enough that ``v δ <= BAND_SHIFT`` px for every row (plus at most half
a walk step, 0.015 px for the default kernels: a band's window starts at the
sample nearest its delay); with R = 0 there is one band, the global-shutter blur.

Non-uniform shake (:func:`average_rows`).  Each pose of the (extended) walk is
warped once, onto the rows whose windows hold it, so row y averages exactly
the ``count`` consecutive poses of its own window: the same number as a global
shutter, with no banding (time is quantised at one pose, which moves no point
more than the shake's ``step``).

Numpy only at import: the command lines import this module (through the modes)
as they start; OpenCV and SciPy are imported where images are blurred.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Stream tag of a sample's readout (ASCII "ROLL"): sample (image i, crop c) draws its readout
#: from ``default_rng([seed, ROLLING_TAG, i, c])`` in every mode, so its other streams (crop,
#: kernel, shake, effects, camera) draw what they drew without a rolling shutter.
ROLLING_TAG = 0x524F4C4C

#: Largest readout fraction taken: the motion then spans three exposures, and the crop's
#: margin grows with it (:func:`reach`).
MAX_READOUT = 2.0

#: Most pixels a row's blur is displaced by sharing its band's PSF (uniform mode).
BAND_SHIFT = 0.25


@dataclass(frozen=True)
class RollingShutter:
    """How to draw a rolling shutter (``synthesize --rolling-shutter LO-HI``): each sample's
    readout fraction uniformly in [lo, hi] (exposures: the time between the start of its first
    and of its last row, in units of a row's exposure time)."""

    lo: float = 0.0
    hi: float = 0.0

    def __post_init__(self):
        if not 0 <= self.lo <= self.hi <= MAX_READOUT:
            raise ValueError(f"--rolling-shutter must be LO-HI with 0 <= LO <= HI <= {MAX_READOUT:g} (readout as a "
                             f"fraction of the exposure), got {self.lo:g}-{self.hi:g}")

    @property
    def active(self) -> bool:
        """Whether any sample can have a readout: with HI = 0 every sample is the global shutter's."""
        return self.hi > 0

    def draw(self, seed: int, image: int, crop: int) -> float:
        """The readout fraction of sample (``image``, ``crop``), from its own stream (:data:`ROLLING_TAG`)."""
        return float(np.random.default_rng([seed, ROLLING_TAG, image, crop]).uniform(self.lo, self.hi))

    def arguments(self) -> list[float]:
        """As a manifest records it: ``[lo, hi]``."""
        return [self.lo, self.hi]


def row_delays(rows: int, readout: float) -> np.ndarray:
    """(rows,) float64: the start ``d_y = readout * y / (rows - 1)`` of each row's window, exposures."""
    if rows < 2:
        return np.zeros(rows)
    return readout * np.arange(rows) / (rows - 1)


# --- uniform translation (a Boracchi & Foi trajectory) -----------------------------------------


def extended_samples(exposed: int, readout: float) -> int:
    """Trajectory samples a rolling shutter of ``readout`` reads when a window holds ``exposed``
    samples (sample j at time j / exposed): the last row's window ends at sample
    ``readout * exposed + exposed - 1``, plus one for the interpolation between samples."""
    return math.ceil(exposed * (1 + readout)) + 1


def reach(max_len: float, iters: int, readout: float) -> float:
    """Farthest (px) any row's trajectory sample lies from the sharp target, for walks of
    ``max_len`` px over ``iters`` samples and a readout up to ``readout``.

    The walk moves at the constant speed v = max_len / (iters - 1) px a sample, at most
    ``iters`` samples an exposure.  The target c is the mean of the centre row's window W
    (length 1); a sample at time t lies within v * mean_{s in W} |t - s| of c, which is at
    most v (tau + 1/2) for t at a distance tau from W, and tau <= readout / 2 on [0, 1 + readout].
    """
    return max_len * iters / (iters - 1) * (1 + readout) / 2


def grid_side(max_len: float, iters: int, readout: float) -> int:
    """Odd side of the PSF grid (and so of the crop's margin, ``blur.margins``) that holds
    every row's PSF of :func:`band_psfs`: the reach plus one pixel for bilinear splatting."""
    return 2 * math.ceil(reach(max_len, iters, readout)) + 3


def positions(points: np.ndarray, start: np.ndarray, exposed: int) -> np.ndarray:
    """(exposed, m) complex128: the trajectory at sample indices ``start[i] + k`` (k = 0 ..
    exposed - 1), linearly interpolated between the samples ``points`` (N,) complex (the walk is
    a polyline through them).  ``start`` (m,) float64, >= 0, with ``start + exposed`` < N."""
    p = np.asarray(points, np.complex128)
    out = np.empty((exposed, len(start)), np.complex128)
    for i, s in enumerate(np.asarray(start, np.float64)):
        first = min(int(s), len(p) - exposed - 1)
        frac = s - first  # the same for every k of the window: slices, not fancy indexing
        out[:, i] = p[first : first + exposed] + frac * (p[first + 1 : first + exposed + 1] - p[first : first + exposed])
    return out


def bands(rows: int, readout: float, speed: float) -> list[tuple[int, int]]:
    """[(first, stop)] row ranges, equal in size, that share one PSF: narrow enough that a row's
    delay differs from its band's middle row's by at most ``BAND_SHIFT / speed`` exposures
    (``speed``: px per exposure), so no sample of its window moves more than :data:`BAND_SHIFT` px."""
    span = readout * speed  # px every sample moves between the first row and the last
    if rows < 2 or span <= 0:
        return [(0, rows)]
    per_band = int(2 * BAND_SHIFT * (rows - 1) / span) + 1  # (per_band - 1) / 2 rows either side of the middle
    count = math.ceil(rows / per_band)
    edges = np.linspace(0, rows, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def centre_window(points: np.ndarray, exposed: int, readout: float) -> np.ndarray:
    """(exposed,) complex128: the centre row's window of the trajectory (delay readout / 2); its
    mean is the sharp target."""
    return positions(points, np.array([readout / 2 * exposed]), exposed)[:, 0]


def band_psfs(points: np.ndarray, exposed: int, readout: float, rows: int,
              speed: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The PSFs of a rolling shutter's row bands, relative to the sharp target.

    points : (N,) complex, the trajectory's samples x + iy in px (at least
        :func:`extended_samples` of them); exposed : samples a row's window holds;
    rows : the sample's rows; speed : px per exposure (:func:`bands`).
    A band's window starts at the sample nearest its middle row's delay (time quantised at
    one sample, 1 / exposed of an exposure: a displacement of at most half a walk step, 0.015
    px for the default kernels) and holds ``exposed`` samples, splatted as :func:`window_psfs` does.
    Returns ((B, s, s) float32, each summing to 1, the target on pixel (s // 2, s // 2), s odd
    and the smallest that holds them (at most :func:`grid_side`'s); the B bands' row ranges).
    """
    spans = bands(rows, readout, speed)
    delays = row_delays(rows, readout)
    starts = np.rint([(delays[a] + delays[b - 1]) / 2 * exposed for a, b in spans]).astype(np.int64)
    offsets = np.asarray(points, np.complex128) - centre_window(points, exposed, readout).mean()
    seen = offsets[starts.min() : starts.max() + exposed]
    far = max(float(np.abs(seen.real).max()), float(np.abs(seen.imag).max()))
    return window_psfs(offsets, starts, exposed, 2 * math.ceil(far) + 3), spans


def window_psfs(offsets: np.ndarray, starts: np.ndarray, exposed: int, size: int) -> np.ndarray:
    """(B, size, size) float32: the bilinear splat (as ``psf.rasterize``'s) of the samples
    ``offsets[starts[b] : starts[b] + exposed]`` (px from the grid's centre pixel size // 2),
    each summing to 1.

    Windows of nearby rows share most of their samples, so every sample is splatted once: into
    the segment between two consecutive window ends that holds it; a window's PSF is then the
    difference of two cumulative sums over the segments."""
    mid = size // 2
    edges = np.unique(np.concatenate([starts, starts + exposed]))
    xy = offsets[edges[0] : edges[-1]] + complex(mid, mid)
    x, y = xy.real, xy.imag
    if min(x.min(), y.min()) < 0 or max(x.max(), y.max()) >= size - 1:
        raise ValueError(f"a window does not fit a {size}x{size} PSF")
    ix, iy = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - ix, y - iy
    segment = np.searchsorted(edges, np.arange(edges[0], edges[-1]), side="right") - 1
    cell = segment * (size * size) + iy * size + ix
    count = (len(edges) - 1) * size * size
    acc = np.zeros(count)
    for shift, weight in ((0, (1 - fx) * (1 - fy)), (1, fx * (1 - fy)), (size, (1 - fx) * fy), (size + 1, fx * fy)):
        acc += np.bincount(cell + shift, weights=weight, minlength=count)
    cumulative = np.zeros((len(edges), size * size))
    np.cumsum(acc.reshape(-1, size * size), axis=0, out=cumulative[1:])
    first, last = np.searchsorted(edges, starts), np.searchsorted(edges, starts + exposed)
    return ((cumulative[last] - cumulative[first]) * (1 / exposed)).reshape(-1, size, size).astype(np.float32)


def trim_bands(region: np.ndarray, psfs: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``(region, psfs)`` cut down to the box the PSFs' taps reach together, as
    ``blur.trim_to_support`` does for one PSF (views): region (h + side - 1, w + side - 1[, C])
    (the margins of a grid of odd ``side``), psfs (B, s, s) on a centred grid of odd s <= side
    -> (h + a - 1, w + b - 1[, C]), (B, a, b)."""
    from blurgen.physics import blur

    if psfs.shape[-1] > side:
        raise ValueError(f"PSFs of side {psfs.shape[-1]} reach beyond the margins of a {side}-px grid")
    o = (side - psfs.shape[-1]) // 2  # the region's margins beyond the PSFs' grid
    region = region[o : region.shape[0] - o, o : region.shape[1] - o]
    sub, _ = blur.trim_to_support(region, psfs.sum(axis=0))
    support = psfs.any(axis=0)
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    return sub, psfs[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def blur_bands(region: np.ndarray, psfs: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Each band of rows blurred by its own PSF: ``blur.convolve_valid`` of the band's rows.

    region : (h + a - 1, w + b - 1, C) float32, the output window plus the PSFs' margins;
    psfs : (B, a, b); spans : the bands' (first, stop) output rows.  Returns (h, w, C) float32.
    Small supports are filtered directly band by band; larger ones through FFTs, the rows'
    transform along x taken once for all bands (:func:`_fft_bands`).
    """
    from blurgen.physics import blur

    a, b = psfs.shape[-2:]
    if a * b > blur.DIRECT_MAX_TAPS and len(spans) > 1:
        return _fft_bands(region, psfs, spans)
    h, w = region.shape[0] - (a - 1), region.shape[1] - (b - 1)
    out = np.empty((h, w, *region.shape[2:]), np.float32)
    for kernel, (first, stop) in zip(psfs, spans):
        out[first:stop] = blur.convolve_valid(region[first : stop + a - 1], kernel)
    return out


def _fft_bands(region: np.ndarray, psfs: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """:func:`blur_bands` by FFTs: every row's real FFT along x once; then, for all bands in one
    batch, an FFT along y of the rows each band reads (its rows plus a - 1), the product with
    its PSF's spectrum and the inverse along y; one inverse along x for all rows.  The y
    transforms are circular, of a length L >= the rows a band reads: a valid output row never
    wraps, and the rows gathered past a band's own (to fill L) are never read by them."""
    from scipy import fft

    a, b = psfs.shape[-2:]
    h, w = region.shape[0] - (a - 1), region.shape[1] - (b - 1)
    width = fft.next_fast_len(region.shape[1], real=True)
    rows = fft.rfft(region, width, axis=1)  # (h + a - 1, F, C)
    length = fft.next_fast_len(max(stop - first for first, stop in spans) + a - 1)
    firsts = np.array([first for first, _ in spans])
    gather = np.minimum(firsts[:, None] + np.arange(length), len(rows) - 1)  # (B, L)
    spectrum = fft.fft(rows[gather], axis=1, overwrite_x=True)  # (B, L, F, C)
    spectrum *= fft.fft(fft.rfft(psfs, width, axis=2), length, axis=1)[..., None]
    full = fft.ifft(spectrum, axis=1, overwrite_x=True)
    out = np.empty((h, *rows.shape[1:]), rows.dtype)
    for band, (first, stop) in enumerate(spans):
        out[first:stop] = full[band, a - 1 : a - 1 + stop - first]
    return fft.irfft(out, width, axis=1)[:, b - 1 : b - 1 + w].astype(np.float32, copy=False)


# --- non-uniform shake (homographies) -----------------------------------------------------------


def row_windows(rows: int, readout: float, per_exposure: int) -> np.ndarray:
    """(rows,) int64: the first pose of each row's window, poses spaced 1 / ``per_exposure``
    exposures apart (row y averages poses ``first[y] .. first[y] + per_exposure``)."""
    return np.rint(row_delays(rows, readout) * per_exposure).astype(np.int64)


def average_rows(region: np.ndarray, H: np.ndarray, origin: tuple[int, int], box: tuple[int, int, int, int],
                 first: np.ndarray, count: int) -> np.ndarray:
    """Row y of the output: the mean of the sharp image warped by ``H[first[y] : first[y] + count]``.

    region, H, origin, box as ``blurgen.physics.shake.average_warps`` (bilinear, edges
    replicated); first : (rows,) non-decreasing int64 (:func:`row_windows`), the last window
    within ``H``.  Each pose is warped once, onto the rows whose windows hold it.
    Returns (y1 - y0, x1 - x0, C) float32.
    """
    import cv2

    y0, x0, y1, x1 = box
    oy, ox = origin
    if first[-1] + count > len(H):
        raise ValueError(f"the last row's window needs {first[-1] + count} poses, got {len(H)}")
    to_region = np.array([[1.0, 0, -ox], [0, 1.0, -oy], [0, 0, 1.0]])
    acc = np.zeros((y1 - y0, x1 - x0, region.shape[2]), np.float32)
    src = np.ascontiguousarray(region, dtype=np.float32)
    for i, h in enumerate(H):
        lo = int(np.searchsorted(first, i - count, side="right"))  # rows with first > i - count ...
        hi = int(np.searchsorted(first, i, side="right"))  # ... and first <= i
        if lo >= hi:
            continue
        to_photo = np.array([[1.0, 0, x0], [0, 1.0, y0 + lo], [0, 0, 1.0]])  # output rows lo.. -> photo
        M = to_region @ np.linalg.inv(h) @ to_photo
        acc[lo:hi] += cv2.warpPerspective(src, M, (x1 - x0, hi - lo), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                          borderMode=cv2.BORDER_REPLICATE).reshape(hi - lo, x1 - x0, -1)
    acc *= np.float32(1 / count)
    return acc

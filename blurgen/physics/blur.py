"""Blurring and the sensor effects around it: pure functions on float images.

Images here are float32 (H, W, 3) RGB in [0, 1] unless a docstring says
otherwise.  A PSF of side k has its centre of mass on pixel (k // 2, k // 2)
(:mod:`blurgen.physics.psf`), and :func:`convolve_valid` anchors the convolution on
that pixel, so blurring moves nothing: a bright dot at p becomes the PSF
centred at p.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import fft

# Supports of up to this many taps (bounding box) are convolved directly with
# OpenCV's filter2D, larger ones by FFT.  OpenCV itself switches to a slower
# DFT path above ~128 taps.  Measured on 256x256x3 crops, one core: 11x11 or
# 4x30 direct ~1.2 ms, 12x12 through filter2D's DFT 5.6 ms, our FFT ~1.9 ms
# for any support up to 64x64 (scipy.signal.fftconvolve 4.7 ms).
DIRECT_MAX_TAPS = 121


def margins(k: int) -> tuple[int, int]:
    """Pixels of source needed (before, after) an output window, per axis, for a PSF of side ``k``."""
    return k - 1 - k // 2, k // 2


def support_margins(psf: np.ndarray) -> tuple[int, int, int, int]:
    """Pixels of source (top, bottom, left, right) that a blur by ``psf`` ((k, k), centred
    on pixel (k // 2, k // 2)) reads around an output window: the reach of its non-zero
    taps, not of its whole array (``margins``: k - 1 in all; for 200 default 64-px
    kernels top plus bottom was 9 px at the median, 36 at most).  A PSF without non-zero
    taps reads the window alone."""
    rows, cols = np.flatnonzero(psf.any(axis=1)), np.flatnonzero(psf.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    a, b = psf.shape
    return (max(0, int(rows[-1]) - a // 2), max(0, a // 2 - int(rows[0])),
            max(0, int(cols[-1]) - b // 2), max(0, b // 2 - int(cols[0])))


def convolve_valid(region: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """True convolution of ``region`` with ``psf``, keeping only fully supported pixels.

    Parameters
    ----------
    region : (H + a - 1, W + b - 1) or (H + a - 1, W + b - 1, C) float32
        The output window plus the kernel's margins (``margins(k)`` on each
        side for a (k, k) PSF).
    psf : (a, b) float
        The blur kernel (not flipped: the kernel stored is the blur applied).

    Returns
    -------
    (H, W[, C]) float32 — ``out[y, x] = sum_ij psf[i, j] * region[y + a-1 - i, x + b-1 - j]``.
    """
    h, w = region.shape[0] - (psf.shape[0] - 1), region.shape[1] - (psf.shape[1] - 1)
    if not psf.any():
        return np.zeros((h, w, *region.shape[2:]), np.float32)
    sub, support = trim_to_support(region, psf)
    sub = np.ascontiguousarray(sub, dtype=np.float32)
    support = np.ascontiguousarray(support, dtype=np.float32)
    if support.size <= DIRECT_MAX_TAPS:
        # Direct filtering: filter2D correlates, and correlating with the
        # flipped kernel anchored at its top-left tap is the convolution above.
        out = cv2.filter2D(sub, cv2.CV_32F, support[::-1, ::-1].copy(), anchor=(0, 0),
                           borderType=cv2.BORDER_CONSTANT)
        out = out.reshape(sub.shape)[:h, :w]
    else:
        out = _fft_convolve_valid(sub, support)
    return out.astype(np.float32, copy=False)


def trim_to_support(region: np.ndarray, psf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(region, psf)`` cut down to the PSF's non-zero box, for the same valid convolution.

    A 64x64 camera-shake PSF is mostly zeros (a typical support is ~15 px
    across) and the cost of a convolution grows with the kernel's area, so
    only its support and the part of the region that support reaches are
    kept.  ``region`` is (H + a - 1, W + b - 1[, C]) for an (a, b) ``psf``;
    the results are views.  A PSF without non-zero taps comes back whole.
    """
    rows, cols = np.flatnonzero(psf.any(axis=1)), np.flatnonzero(psf.any(axis=0))
    if rows.size == 0:
        return region, psf
    a, b = psf.shape
    h, w = region.shape[0] - (a - 1), region.shape[1] - (b - 1)
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    sub = region[a - r1 : a - r1 + h + (r1 - r0) - 1, b - c1 : b - c1 + w + (c1 - c0) - 1]
    return sub, psf[r0:r1, c0:c1]


def _fft_convolve_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid-mode convolution through real FFTs over the two image axes.

    Measured faster than OpenCV's DFT path for kernels over ~10 px; written on
    scipy.fft rather than scipy.signal.fftconvolve, whose import alone takes
    half a second in every worker process.
    """
    kh, kw = kernel.shape
    h, w = image.shape[:2]
    shape = (fft.next_fast_len(h, real=True), fft.next_fast_len(w, real=True))
    spectrum = fft.rfft2(image, shape, axes=(0, 1))
    kspec = fft.rfft2(kernel, shape)
    if image.ndim == 3:
        kspec = kspec[:, :, None]
    full = fft.irfft2(spectrum * kspec, shape, axes=(0, 1))
    return full[kh - 1 : h, kw - 1 : w]


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    image = np.asarray(image, dtype=np.float32)
    return np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(image: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1); input clipped to [0, 1]."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    return np.where(image <= 0.0031308, image * 12.92, 1.055 * image ** (1 / 2.4) - 0.055).astype(np.float32)


#: uint8 code value -> linear light, float32 (the same values as
#: ``srgb_to_linear(v * float32(1 / 255))``, 5x faster as a table look-up).
LINEAR_LUT = srgb_to_linear(np.arange(256, dtype=np.float32) * np.float32(1 / 255))

# Exact 8-bit sRGB encoding by table.  Code v + 1 starts where the curve
# crosses (v + 0.5) / 255: _CODE_EDGES[v], in linear light.  A table over 4096
# bins of [0, 1] gives the code at each bin's start; the curve is never steeper
# than 12.92 * 255 = 3295 codes per unit (0.8 per bin), so no bin holds two
# edges and one comparison with the next edge finishes the job.
_MIDPOINTS = (np.arange(255) + 0.5) / 255
_CODE_EDGES = np.append(np.where(_MIDPOINTS <= 0.04045, _MIDPOINTS / 12.92,
                                 ((_MIDPOINTS + 0.055) / 1.055) ** 2.4), np.inf).astype(np.float32)
_BINS = 4096
_CODE_AT_BIN = np.searchsorted(_CODE_EDGES, np.arange(_BINS + 1, dtype=np.float32) / _BINS,
                               side="right").astype(np.uint8)


def encode_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear light -> 8-bit sRGB code values: ``round(255 * srgb(x))``, uint8.

    Clipped to [0, 1] first (the sensor saturates).  Exact to the rounding of
    the true curve (up to float32 ties), and ~2x faster than
    ``to_uint8(linear_to_srgb(x))``, which is off by one code now and then.
    """
    x = np.clip(linear, 0.0, 1.0, dtype=np.float32)
    code = _CODE_AT_BIN[(x * np.float32(_BINS)).astype(np.int32)]
    code += x >= _CODE_EDGES[code]
    return code


def boost_highlights(linear: np.ndarray, gain: float, threshold: float = 0.95) -> np.ndarray:
    """Give clipped highlights back some of the light the sensor lost.

    A sharp photo's (nearly) saturated pixels stood for scene points brighter
    than the sensor could record; multiplying them by ``gain`` before blurring,
    then clipping after (:func:`saturate`), makes lamps and glints smear into
    bright saturated streaks as in real blurred photos instead of dim smudges.
    A pixel counts as saturated when its largest channel is >= ``threshold``
    (linear light; 0.95 is sRGB 249 of 255), so that coloured lights count too; all
    its channels are boosted alike, keeping its hue.
    """
    peak = np.maximum(np.maximum(linear[..., 0], linear[..., 1]), linear[..., 2])
    return np.where((peak >= threshold)[..., None], linear * np.float32(gain), linear)


def saturate(linear: np.ndarray) -> np.ndarray:
    """Clip to the sensor's range [0, 1]."""
    return np.clip(linear, 0.0, 1.0)


def add_sensor_noise(image: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson-Gaussian noise: variance ``shot * x + read**2`` at intensity x (Foi et al. 2008).

    The Poisson part is taken in its Gaussian approximation, exact enough above a
    few photons.  Returns float32, clipped to [0, 1].
    """
    std = np.sqrt(np.maximum(shot * image, 0.0) + np.float32(read) ** 2)
    noisy = image + std * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-compress an (H, W, 3) uint8 RGB image as JPEG at ``quality`` (1-100) and decode it."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, rounded (not truncated: a grey of 128/255 stays 128)."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)

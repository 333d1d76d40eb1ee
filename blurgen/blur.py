"""Blurring and the sensor effects around it: pure functions on float images.

Images here are float32 (H, W, 3) RGB in [0, 1] unless a docstring says
otherwise.  A PSF of side k has its centre of mass on pixel (k // 2, k // 2)
(:mod:`blurgen.psf`), and :func:`convolve_valid` anchors the convolution on
that pixel, so blurring moves nothing: a bright dot at p becomes the PSF
centred at p.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import fft


def margins(k: int) -> tuple[int, int]:
    """Pixels of source needed (before, after) an output window, per axis, for a PSF of side ``k``."""
    return k - 1 - k // 2, k // 2


def convolve_valid(region: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """True convolution of ``region`` with ``psf``, keeping only fully supported pixels.

    Parameters
    ----------
    region : (H + k - 1, W + k - 1) or (H + k - 1, W + k - 1, C) float32
        The output window plus ``margins(k)`` on each side.
    psf : (k, k) float
        The blur kernel (not flipped: the kernel stored is the blur applied).

    Returns
    -------
    (H, W[, C]) float32 — ``out[y, x] = sum_ij psf[i, j] * region[y + k-1 - i, x + k-1 - j]``.
    """
    k = psf.shape[0]
    h, w = region.shape[0] - (k - 1), region.shape[1] - (k - 1)
    rows, cols = np.nonzero(psf)
    if rows.size == 0:
        return np.zeros((h, w, *region.shape[2:]), np.float32)
    # Only the kernel's support matters: a 64x64 camera-shake PSF is mostly
    # zeros (a typical support is ~15 px), and the cost grows with its area.
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    support = np.ascontiguousarray(psf[r0:r1, c0:c1], dtype=np.float32)
    sub = region[k - r1 : k - r1 + h + (r1 - r0) - 1, k - c1 : k - c1 + w + (c1 - c0) - 1]
    sub = np.ascontiguousarray(sub, dtype=np.float32)
    if max(support.shape) <= 10:
        # Direct filtering (OpenCV goes direct below 11x11): filter2D correlates,
        # and correlating with the flipped kernel anchored at its top-left tap
        # is the convolution above.
        out = cv2.filter2D(sub, cv2.CV_32F, support[::-1, ::-1].copy(), anchor=(0, 0),
                           borderType=cv2.BORDER_CONSTANT)
        out = out.reshape(sub.shape)[:h, :w]
    else:
        out = _fft_convolve_valid(sub, support)
    return out.astype(np.float32, copy=False)


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


def boost_highlights(linear: np.ndarray, gain: float, threshold: float = 0.95) -> np.ndarray:
    """Give clipped highlights back some of the light the sensor lost.

    A sharp photo's saturated pixels (linear luminance >= ``threshold``) stood for
    scene points brighter than the sensor could record; multiplying them by
    ``gain`` before blurring, then clipping after (:func:`saturate`), makes light
    sources smear into bright saturated streaks as in real blurred photos.
    """
    luma = linear @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return np.where((luma >= threshold)[..., None], linear * np.float32(gain), linear)


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

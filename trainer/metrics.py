"""Image quality metrics, each under the name of the convention it follows.

Deblurring papers report "PSNR" and "SSIM" computed in several incompatible
ways; the same restored GoPro frames move by 0.02 in SSIM between two of them.
So every metric here is named for its convention, and ``docs/metrics.md``
says which papers used which.  All take a restored image and its sharp ground
truth as uint8 RGB arrays of shape (H, W, 3) and use the whole image (no
border crop) with a data range of 255.

psnr          10 log10(255² / MSE) over every pixel and channel (RGB).
psnr_y        the same on BT.601 luma Y in [16, 235] (BasicSR's ``test_y_channel``).
ssim_skimage  skimage defaults: 7×7 uniform window, sample covariance, per
              channel then averaged.  The JSON key ``ssim`` is this one.
ssim_gopro    skimage with an 11-tap Gaussian window (σ = 1.5) and population
              covariance, as Nah et al. recommend for GoPro.
ssim_matlab   MATLAB's ``ssim`` on an RGB array: the image is one 3-D volume
              smoothed by an 11×11×11 Gaussian (σ = 1.5, replicate padding)
              across rows, columns *and* colour channels (MPRNet, Restormer;
              BasicSR/NAFNet's ``ssim3d`` port).
cw_ssim       complex-wavelet SSIM as ``pyssim`` 0.4 computes it, which is
              what DeblurGAN's reported 0.958 is.

A new metric is one function here with ``@metric(name, description)`` above
it: ``METRICS`` and ``DESCRIPTIONS`` are filled by that decorator only, and
``trainer eval --metrics``, its help and its reports read them.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from scipy import fft as sp_fft
from skimage.metrics import structural_similarity

DATA_RANGE = 255.0


#: Every metric by name, in the order reports list them (the order of registration).
#: Filled by ``@metric`` only.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {}

#: One line per metric for reports and JSON: what the number is.  Filled by ``@metric`` only.
DESCRIPTIONS: dict[str, str] = {}

#: Scored whatever ``--metrics`` asks for: the JSON keys ``psnr`` and ``ssim`` every report carries.
ALWAYS = ("psnr", "ssim_skimage")


def metric(name: str, description: str):
    """Register the decorated function as metric ``name``: f(restored, sharp) -> float
    of two uint8 (H, W, 3) RGB images.  ``description`` is its one line in reports and
    JSON (what the number is: unit, convention).  A new metric is one function and this
    decorator; ``trainer eval --metrics`` and its help read the registry."""
    def register(function):
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = function
        DESCRIPTIONS[name] = description
        return function
    return register


def _check_pair(restored: np.ndarray, sharp: np.ndarray) -> None:
    restored, sharp = np.asarray(restored), np.asarray(sharp)
    if restored.shape != sharp.shape:
        raise ValueError(f"image shapes differ: {restored.shape} vs {sharp.shape}")
    if restored.dtype != np.uint8 or sharp.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 images, got {restored.dtype} and {sharp.dtype}")
    if restored.ndim != 3 or restored.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) RGB images, got shape {restored.shape}")


def _psnr_of(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE * DATA_RANGE / mse)


@metric("psnr",
        "PSNR, dB, RGB, whole image, range 255")
def psnr(restored: np.ndarray, sharp: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 (H, W, 3) RGB images.

    PSNR = 10 * log10(255**2 / MSE), the MSE taken over every pixel and
    channel.  Identical images give ``float('inf')`` (as skimage does), so a
    mean over a set containing an exact match is inf rather than a silently
    made-up cap.
    """
    _check_pair(restored, sharp)
    return _psnr_of(restored, sharp)


def luma_bt601(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 (H, W, 3) RGB image: float64 (H, W) in [16, 235].

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, unrounded -- MATLAB's
    ``rgb2ycbcr`` and BasicSR's ``to_y_channel`` (which also keep the float).
    """
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


@metric("psnr_y",
        "PSNR, dB, BT.601 luma (Y in [16, 235]), range 255")
def psnr_y(restored: np.ndarray, sharp: np.ndarray) -> float:
    """PSNR in dB on the BT.601 luma channel (``luma_bt601``), data range 255.

    The super-resolution convention, used by BasicSR-based deblurring code
    when ``test_y_channel`` is on; typically 1-2 dB above RGB ``psnr``.
    """
    _check_pair(restored, sharp)
    return _psnr_of(luma_bt601(restored), luma_bt601(sharp))


@metric("ssim_skimage",
        "SSIM, skimage defaults (7x7 uniform window, sample covariance), per channel")
def ssim_skimage(restored: np.ndarray, sharp: np.ndarray) -> float:
    """skimage's SSIM with its defaults, in [-1, 1].

    A 7×7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, computed
    per channel and averaged, data range 255.  Both sides must be at least
    7 pixels.  This is the ``ssim`` of ``trainer eval``'s JSON.
    """
    _check_pair(restored, sharp)
    return float(structural_similarity(restored, sharp, channel_axis=-1,
                                       data_range=DATA_RANGE))


# The JSON key "ssim" and every caller before the variants were named.
ssim = ssim_skimage


@metric("ssim_gopro",
        "SSIM, 11-tap Gaussian sigma 1.5, population covariance, per channel (Nah et al.)")
def ssim_gopro(restored: np.ndarray, sharp: np.ndarray) -> float:
    """SSIM as the GoPro dataset's authors recommend computing it, in [-1, 1].

    skimage's ``structural_similarity`` with ``gaussian_weights=True``
    (σ = 1.5, an 11-tap window), ``use_sample_covariance=False``, per channel
    then averaged, data range 255 -- Wang et al.'s original definition.
    Both sides must be at least 11 pixels.
    """
    _check_pair(restored, sharp)
    return float(structural_similarity(restored, sharp, channel_axis=-1, data_range=DATA_RANGE,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    return cv2.getGaussianKernel(size, sigma).ravel().astype(np.float64)


@metric("ssim_matlab",
        "SSIM, MATLAB ssim on RGB: 11x11x11 Gaussian sigma 1.5 over rows, columns, channels")
def ssim_matlab(restored: np.ndarray, sharp: np.ndarray) -> float:
    """SSIM of MATLAB's ``ssim`` called on two RGB arrays, in [-1, 1].

    MATLAB treats an H×W×3 array as a volume: the local means and
    (population) variances come from an 11×11×11 Gaussian (σ = 1.5) with
    replicate padding along rows, columns and the three colour channels, and
    the SSIM map is averaged over the whole volume (no crop).  K1 = 0.01,
    K2 = 0.03, data range 255.  Mixing colours in the window is why this
    variant scores higher than per-channel SSIM on the same images.
    """
    _check_pair(restored, sharp)
    taps = _gaussian_taps()
    # Along the colour axis the 11 taps with replicate padding reduce to a
    # 3×3 mixing matrix: channel c takes taps[j] of channel clip(c + j - 5, 0, 2).
    mixing = np.zeros((3, 3))
    for c in range(3):
        for j, tap in enumerate(taps):
            mixing[c, min(max(c + j - len(taps) // 2, 0), 2)] += tap

    def smooth(volume: np.ndarray) -> np.ndarray:
        spatial = cv2.sepFilter2D(volume, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_REPLICATE)
        return spatial @ mixing.T

    x, y = restored.astype(np.float64), sharp.astype(np.float64)
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    mu_x, mu_y = smooth(x), smooth(y)
    var_x = smooth(x * x) - mu_x * mu_x
    var_y = smooth(y * y) - mu_y * mu_y
    cov = smooth(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def luma_pil(image: np.ndarray) -> np.ndarray:
    """Pillow's ``convert("L")`` of a uint8 (H, W, 3) RGB image: uint8 (H, W).

    L = round(0.299 R + 0.587 G + 0.114 B) in Pillow's fixed point
    (weights 19595, 38470, 7471 over 2**16), which is what pyssim works on.
    """
    rgb = np.asarray(image).astype(np.uint32)
    luma = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
    return (luma >> 16).astype(np.uint8)


def ricker(points: int, width: float) -> np.ndarray:
    """The Ricker ("Mexican hat") wavelet of ``scipy.signal.ricker``: float64 (points,).

    A = 2 / (sqrt(3 a) pi^(1/4)), psi(t) = A (1 - t²/a²) exp(-t² / 2a²),
    sampled at t = i - (points - 1) / 2.  (SciPy removed it in 1.15.)
    """
    t = np.arange(points) - (points - 1.0) / 2.0
    amplitude = 2.0 / (math.sqrt(3.0 * width) * math.pi ** 0.25)
    return amplitude * (1.0 - t * t / width ** 2) * np.exp(-t * t / (2.0 * width ** 2))


@metric("cw_ssim",
        "CW-SSIM, pyssim 0.4 (Ricker widths 1-30 on Pillow luma), as DeblurGAN reports")
def cw_ssim(restored: np.ndarray, sharp: np.ndarray, *, widths: int = 30, k: float = 0.01) -> float:
    """Complex-wavelet SSIM as pyssim 0.4 computes it (DeblurGAN's "SSIM"), in [0, 1].

    pyssim converts both images to Pillow luma, flattens each row-major into
    one 1-D signal and takes its continuous wavelet transform with Ricker
    wavelets of widths 1..30 (``scipy.signal.cwt``: for width a, a wavelet
    of min(10 a, N) samples convolved in 'same' mode).  With c1, c2 the
    coefficients of the two signals at one position over all widths,

        CW-SSIM = mean over positions of
            (2 Σ|c1||c2| + k) / (Σ|c1|² + Σ|c2|² + k)
          × (2 |Σ c1 c2*| + k) / (2 Σ|c1 c2*| + k),      k = 0.01.

    The Ricker wavelet is real, so this is not the complex steerable-pyramid
    CW-SSIM of Sampat et al. (2009) despite the name; it is insensitive to
    small shifts, which is why it reads much higher than SSIM.  (pyssim 0.5+
    switched to PyWavelets' 'mexh' wavelet and gives other values.)
    """
    _check_pair(restored, sharp)
    sig1 = luma_pil(restored).ravel().astype(np.float64)
    sig2 = luma_pil(sharp).ravel().astype(np.float64)
    n = sig1.size
    # scipy.signal.cwt convolves once per width; transforming each signal
    # once and multiplying by every wavelet's transform gives the same
    # 'same'-mode convolutions (to ~1e-12) at about a third of the cost.
    lengths = [min(10 * width, n) for width in range(1, widths + 1)]
    size = sp_fft.next_fast_len(n + max(lengths) - 1, real=True)
    spectrum1, spectrum2 = sp_fft.rfft(sig1, size), sp_fft.rfft(sig2, size)
    cross = np.zeros(n)
    abs_cross = np.zeros(n)
    power = np.zeros(n)
    for width, length in zip(range(1, widths + 1), lengths):
        wavelet = sp_fft.rfft(ricker(length, width)[::-1], size)
        start = (length - 1) // 2
        c1 = sp_fft.irfft(spectrum1 * wavelet, size)[start:start + n]
        c2 = sp_fft.irfft(spectrum2 * wavelet, size)[start:start + n]
        product = c1 * c2
        cross += product
        abs_cross += np.abs(product)
        power += c1 * c1 + c2 * c2
    magnitude = (2.0 * abs_cross + k) / (power + k)
    phase = (2.0 * np.abs(cross) + k) / (2.0 * abs_cross + k)
    return float(np.mean(magnitude * phase))


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"all"`` or a comma-separated list of ``METRICS`` names -> names in ``METRICS`` order.

    ``ALWAYS`` (``psnr`` and ``ssim_skimage``) are always included: they are the
    JSON keys ``psnr`` and ``ssim`` every report carries.  Raises ValueError naming an
    unknown metric.
    """
    if text.strip() == "all":
        return tuple(METRICS)
    wanted = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(wanted - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)} or all")
    wanted |= set(ALWAYS)
    return tuple(name for name in METRICS if name in wanted)

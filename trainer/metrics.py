"""Image quality metrics in the convention the DeblurGAN paper reports.

Both metrics compare a restored image with its sharp ground truth as uint8
RGB arrays of shape (H, W, 3), over the whole image (no border crop), with a
data range of 255 -- the convention of Kupyn et al. (2018) and of the GoPro
benchmark tables they compare against.  Values are not comparable with
figures computed on the Y channel or on cropped borders.
"""
from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

DATA_RANGE = 255.0


def _check_pair(restored: np.ndarray, sharp: np.ndarray) -> None:
    restored, sharp = np.asarray(restored), np.asarray(sharp)
    if restored.shape != sharp.shape:
        raise ValueError(f"image shapes differ: {restored.shape} vs {sharp.shape}")
    if restored.dtype != np.uint8 or sharp.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 images, got {restored.dtype} and {sharp.dtype}")
    if restored.ndim != 3 or restored.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) RGB images, got shape {restored.shape}")


def psnr(restored: np.ndarray, sharp: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 (H, W, 3) RGB images.

    PSNR = 10 * log10(255**2 / MSE), the MSE taken over every pixel and
    channel.  Identical images give ``float('inf')`` (as skimage does), so a
    mean over a set containing an exact match is inf rather than a silently
    made-up cap.
    """
    _check_pair(restored, sharp)
    diff = restored.astype(np.float64) - sharp.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE * DATA_RANGE / mse)


def ssim(restored: np.ndarray, sharp: np.ndarray) -> float:
    """Structural similarity of two uint8 (H, W, 3) RGB images, in [-1, 1].

    skimage's SSIM (Wang et al. 2004) with its defaults -- a 7x7 uniform
    window, sample covariance, K1 = 0.01, K2 = 0.03 -- computed per channel
    and averaged, data range 255.  This is what DeblurGAN's evaluation used.
    Both sides must be at least 7 pixels.
    """
    _check_pair(restored, sharp)
    return float(structural_similarity(restored, sharp, channel_axis=-1,
                                       data_range=DATA_RANGE))

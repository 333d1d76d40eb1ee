"""PSNR and SSIM against hand formulas and an independent sliding-window SSIM."""
import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from trainer.metrics import psnr, ssim


def _images(seed=0, shape=(24, 31, 3)):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.integers(-20, 21, shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    return a, b


def test_psnr_matches_hand_formula():
    a, b = _images()
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-10)
    assert psnr(a, b) == psnr(b, a)


def test_psnr_known_values():
    zeros = np.zeros((8, 8, 3), np.uint8)
    # Every pixel off by 255: MSE = 255^2, PSNR = 0 dB.
    assert psnr(zeros, np.full_like(zeros, 255)) == pytest.approx(0.0, abs=1e-12)
    # Every pixel off by 1: MSE = 1, PSNR = 20 log10(255) = 48.1308 dB.
    assert psnr(zeros, np.ones_like(zeros)) == pytest.approx(48.130803608679, abs=1e-9)
    # Half the pixels off by 2: MSE = 2.
    b = zeros.copy()
    b[:4] = 2
    assert psnr(zeros, b) == pytest.approx(10 * math.log10(255 ** 2 / 2), abs=1e-12)


def test_psnr_identical_is_inf():
    a, _ = _images()
    assert psnr(a, a.copy()) == math.inf


def _reference_ssim(x, y, win=7, k1=0.01, k2=0.03, data_range=255.0):
    """Wang et al. (2004) SSIM written out window by window: 7x7 uniform
    windows with sample (N-1) statistics, mean over valid windows and channels."""
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    values = []
    for ch in range(x.shape[-1]):
        wx = sliding_window_view(x[..., ch].astype(np.float64), (win, win)).reshape(-1, win * win)
        wy = sliding_window_view(y[..., ch].astype(np.float64), (win, win)).reshape(-1, win * win)
        mx, my = wx.mean(1), wy.mean(1)
        vx, vy = wx.var(1, ddof=1), wy.var(1, ddof=1)
        cov = ((wx - mx[:, None]) * (wy - my[:, None])).sum(1) / (win * win - 1)
        s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
        values.append(s.mean())
    return float(np.mean(values))


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_reference(seed):
    a, b = _images(seed)
    assert ssim(a, b) == pytest.approx(_reference_ssim(a, b), abs=1e-9)


def test_ssim_identical_is_one_and_bounded():
    a, b = _images(2)
    assert ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-12)
    assert -1.0 <= ssim(a, b) < 1.0
    assert ssim(a, 255 - a) < 0.0  # inverted contrast


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_rejects_mismatched_inputs(metric):
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        metric(a, np.zeros((16, 15, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        metric(a.astype(np.float32), a.astype(np.float32))
    with pytest.raises(ValueError, match="RGB"):
        metric(a[..., 0], a[..., 0])

"""Every metric against an independent computation: hand formulas, a sliding-window
SSIM, skimage's colour conversion and PSNR, a 3-D convolution in torch, and
values computed with pyssim 0.4 itself."""
import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from trainer.metrics import (
    METRICS,
    cw_ssim,
    luma_pil,
    parse_metrics,
    psnr,
    psnr_y,
    ricker,
    ssim,
    ssim_gopro,
    ssim_matlab,
    ssim_skimage,
)


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


@pytest.mark.parametrize("metric", list(METRICS.values()))
def test_rejects_mismatched_inputs(metric):
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        metric(a, np.zeros((16, 15, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        metric(a.astype(np.float32), a.astype(np.float32))
    with pytest.raises(ValueError, match="RGB"):
        metric(a[..., 0], a[..., 0])


def test_ssim_is_the_skimage_variant():
    a, b = _images(3)
    assert ssim(a, b) == ssim_skimage(a, b)


def test_psnr_y_matches_skimage_luma_and_psnr():
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _images(4)
    ya, yb = rgb2ycbcr(a)[..., 0], rgb2ycbcr(b)[..., 0]  # float Y in [16, 235]
    assert psnr_y(a, b) == pytest.approx(peak_signal_noise_ratio(ya, yb, data_range=255), abs=1e-9)
    assert psnr_y(a, a.copy()) == math.inf


def _reference_gaussian_ssim(x, y):
    """Per-channel SSIM with an 11-tap Gaussian window (sigma 1.5) and population
    statistics, written out window by window over the valid (uncropped) windows."""
    from scipy.signal.windows import gaussian

    g = gaussian(11, 1.5)
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for ch in range(3):
        wx = sliding_window_view(x[..., ch].astype(np.float64), (11, 11))
        wy = sliding_window_view(y[..., ch].astype(np.float64), (11, 11))
        mx, my = (wx * w).sum((-1, -2)), (wy * w).sum((-1, -2))
        vx = (wx * wx * w).sum((-1, -2)) - mx ** 2
        vy = (wy * wy * w).sum((-1, -2)) - my ** 2
        cov = (wx * wy * w).sum((-1, -2)) - mx * my
        s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
        values.append(s.mean())
    return float(np.mean(values))


@pytest.mark.parametrize("seed", [0, 5])
def test_ssim_gopro_matches_window_by_window_reference(seed):
    a, b = _images(seed)
    assert ssim_gopro(a, b) == pytest.approx(_reference_gaussian_ssim(a, b), abs=1e-9)
    assert abs(ssim_gopro(a, b) - ssim_skimage(a, b)) > 1e-5  # a different window


def _reference_ssim_3d(x, y):
    """BasicSR/NAFNet's ``ssim3d`` written with torch: one Conv3d with an
    11x11x11 Gaussian (sigma 1.5), replicate padding, over the (H, W, C) volume."""
    import cv2
    import torch
    import torch.nn.functional as F

    g = cv2.getGaussianKernel(11, 1.5).ravel()
    kernel = torch.from_numpy(np.einsum("i,j,k->ijk", g, g, g))[None, None]

    def smooth(v):
        v = torch.from_numpy(v)[None, None]
        return F.conv3d(F.pad(v, (5,) * 6, mode="replicate"), kernel)[0, 0].numpy()

    x, y = x.astype(np.float64), y.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = smooth(x), smooth(y)
    vx, vy, cov = smooth(x * x) - mx ** 2, smooth(y * y) - my ** 2, smooth(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


@pytest.mark.parametrize("seed", [0, 6])
def test_ssim_matlab_matches_3d_convolution(seed):
    a, b = _images(seed)
    assert ssim_matlab(a, b) == pytest.approx(_reference_ssim_3d(a, b), abs=1e-9)
    assert ssim_matlab(a, a.copy()) == pytest.approx(1.0, abs=1e-12)


def _pattern_pair(h, w):
    """Deterministic images without a random generator, so that the same pixels
    could be fed to pyssim 0.4 in another environment: a pattern and a
    horizontally box-blurred, 1-px shifted copy of it."""
    y, x = np.mgrid[0:h, 0:w]
    chans = [(x * p + y * q + ((x * y) % (13 + c)) * r) % 256
             for c, (p, q, r) in enumerate([(7, 13, 5), (11, 3, 9), (2, 17, 4)])]
    a = np.stack(chans, axis=-1).astype(np.float64)
    b = np.roll(sum(np.roll(a, s, axis=1) for s in range(-2, 3)) / 5.0, 1, axis=0)
    return a.astype(np.uint8), np.floor(b + 0.5).astype(np.uint8)


# pyssim 0.4 (scipy 1.14, Pillow 13): SSIM(Image.fromarray(a)).cw_ssim_value(Image.fromarray(b)).
@pytest.mark.parametrize("shape, expected", [((37, 53), 0.6838633689042668),
                                             ((64, 48), 0.6716207573407452)])
def test_cw_ssim_matches_pyssim(shape, expected):
    a, b = _pattern_pair(*shape)
    assert cw_ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert cw_ssim(b, a) == pytest.approx(expected, abs=1e-12)


def test_cw_ssim_matches_direct_convolution():
    """The FFT shortcut against scipy.signal.cwt's loop written with np.convolve."""
    a, b = _images(7, shape=(9, 11, 3))
    s1, s2 = (luma_pil(im).ravel().astype(np.float64) for im in (a, b))
    n, k = s1.size, 0.01
    rows1, rows2 = [], []
    for width in range(1, 31):
        wavelet = ricker(min(10 * width, n), width)[::-1]
        start = (len(wavelet) - 1) // 2
        rows1.append(np.convolve(s1, wavelet)[start:start + n])
        rows2.append(np.convolve(s2, wavelet)[start:start + n])
    c1, c2 = np.array(rows1), np.array(rows2)
    expected = np.mean((2 * np.sum(np.abs(c1) * np.abs(c2), 0) + k)
                       / (np.sum(c1 ** 2, 0) + np.sum(c2 ** 2, 0) + k)
                       * (2 * np.abs(np.sum(c1 * c2, 0)) + k) / (2 * np.sum(np.abs(c1 * c2), 0) + k))
    assert cw_ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert cw_ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-12)


def test_luma_pil_matches_pillow():
    from PIL import Image

    a, _ = _images(8)
    assert np.array_equal(luma_pil(a), np.asarray(Image.fromarray(a).convert("L")))


def test_parse_metrics():
    assert parse_metrics("all") == tuple(METRICS)
    assert parse_metrics("cw_ssim") == ("psnr", "ssim_skimage", "cw_ssim")
    with pytest.raises(ValueError, match="unknown metric 'ssim3'"):
        parse_metrics("psnr,ssim3")

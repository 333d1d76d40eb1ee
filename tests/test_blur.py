"""blurgen.physics.blur against independent references: scipy's convolve2d, the sRGB curve in float64, noise statistics."""
import numpy as np
import pytest
from scipy import signal

from blurgen.physics import blur


def srgb8_reference(linear):
    """round(255 * sRGB(x)) in float64, IEC 61966-2-1."""
    x = np.clip(np.asarray(linear, np.float64), 0, 1)
    return np.rint(255 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)).astype(np.uint8)


@pytest.mark.parametrize("support", [(3, 3), (4, 30), (11, 11), (5, 30), (12, 12), (1, 40), (33, 17)])
def test_direct_and_fft_paths_are_the_same_true_convolution(support):
    # A k x k PSF whose non-zero taps fill a smaller, off-centre box: supports up
    # to 121 taps take the direct path, larger ones the FFT.
    rng = np.random.default_rng(sum(support))
    k = max(support) + 3
    psf = np.zeros((k, k), np.float32)
    psf[1 : 1 + support[0], 2 : 2 + support[1]] = rng.random(support) + 0.1
    psf /= psf.sum()
    region = rng.random((30 + k - 1, 20 + k - 1, 3)).astype(np.float32)
    want = np.stack([signal.convolve2d(region[..., c].astype(np.float64), psf, mode="valid") for c in range(3)], -1)
    got = blur.convolve_valid(region, psf)
    assert got.shape == (30, 20, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_srgb8_encoding_is_the_rounded_curve():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(1_000_000), rng.random(200_000) * 0.005,
                        [0.0, 1.0, -0.5, 3.0, 0.0031308], blur.LINEAR_LUT]).astype(np.float32)
    got, want = blur.encode_srgb8(x), srgb8_reference(x)
    assert got.dtype == np.uint8 and got.shape == x.shape
    off = np.flatnonzero(got != want)
    assert off.size <= 20  # float32 ties only: values within a few ulp of a rounding edge
    assert np.abs(got[off].astype(int) - want[off]).max(initial=0) <= 1
    np.testing.assert_array_equal(blur.encode_srgb8(blur.LINEAR_LUT), np.arange(256))  # every code round-trips


def test_linear_lut_is_the_srgb_curve():
    codes = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(blur.LINEAR_LUT, blur.srgb_to_linear(codes))
    c = np.arange(256) / 255
    reference = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(blur.LINEAR_LUT, reference, rtol=1e-5, atol=1e-7)


def test_highlights_are_boosted_by_their_brightest_channel():
    image = np.array([[[1.0, 0.1, 0.05], [0.96, 0.96, 0.96], [0.5, 0.5, 0.5], [0.2, 0.94, 0.3]]], np.float32)
    out = blur.boost_highlights(image, 3.0)
    np.testing.assert_allclose(out[0, 0], image[0, 0] * 3)  # a saturated red lamp, hue kept
    np.testing.assert_allclose(out[0, 1], image[0, 1] * 3)
    np.testing.assert_array_equal(out[0, 2:], image[0, 2:])  # mid-grey and a not-quite-clipped green stay


def test_sensor_noise_has_the_poisson_gaussian_variance():
    rng = np.random.default_rng(1)
    shot, read = 0.01, 0.02
    for level in (0.1, 0.5):
        noisy = blur.add_sensor_noise(np.full((400, 400, 3), level, np.float32), shot, read, rng)
        assert noisy.mean() == pytest.approx(level, abs=2e-3)
        assert noisy.var() == pytest.approx(shot * level + read**2, rel=0.03)


def test_trimming_to_the_support_changes_nothing():
    rng = np.random.default_rng(4)
    psf = np.zeros((16, 16), np.float32)
    psf[9:12, 3:14] = rng.random((3, 11))  # off-centre, wider than tall
    psf /= psf.sum()
    region = rng.random((40 + 15, 30 + 15, 3)).astype(np.float32)
    sub, support = blur.trim_to_support(region, psf)
    assert support.shape == (3, 11) and sub.shape == (40 + 2, 30 + 10, 3)
    np.testing.assert_allclose(blur.convolve_valid(sub, support), blur.convolve_valid(region, psf), atol=1e-6)
    want = np.stack([signal.convolve2d(region[..., c].astype(np.float64), psf, mode="valid") for c in range(3)], -1)
    np.testing.assert_allclose(blur.convolve_valid(sub, support), want, atol=2e-6)

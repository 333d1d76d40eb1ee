"""The evaluation report picture: where it crops, what it picks, what it draws."""
import numpy as np
import pytest

from trainer.report import _GAIN, _LOSS, eval_report, gain_histogram, worst_region


def test_worst_region_finds_the_blurred_patch():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    blurred = sharp.copy()
    blurred[70:110, 100:140] = 128   # the only place that differs
    top, left = worst_region(blurred, sharp, 40)
    assert (top, left) == (70, 100)
    # A window larger than the image is clipped to it.
    assert worst_region(blurred, sharp, 500) == (0, 0)


def _has_colour(image, colour):
    return bool(np.all(image == np.array(colour, np.uint8), axis=-1).any())


def test_histogram_colours_gains_and_losses():
    both = gain_histogram([-0.5, 0.2, 0.3, 1.0], width=400)
    assert both.shape == (200, 400, 3) and _has_colour(both, _GAIN) and _has_colour(both, _LOSS)
    gains_only = gain_histogram([0.2, 0.4], width=400)
    assert _has_colour(gains_only, _GAIN) and not _has_colour(gains_only, _LOSS)
    assert not _has_colour(gain_histogram([], width=400), _GAIN)


def test_report_shows_best_and_worst_once_each():
    rng = np.random.default_rng(1)
    pairs, rows = [], []
    for i, gain in enumerate([0.5, -0.2, 1.5, 0.1]):
        sharp = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
        pairs.append((f"img{i}", sharp // 2, sharp))
        rows.append({"psnr": 30 + gain, "input_psnr": 30.0})
    restored = []
    picture = eval_report(rows, pairs, lambda image: restored.append(image) or image, examples=2, side=32)
    # Best two by gain: 1.5 (img2), 0.5 (img0); worst two: -0.2 (img1), 0.1 (img3).
    assert [next(i for i, p in enumerate(pairs) if p[1] is im) for im in restored] == [2, 0, 1, 3]
    assert picture.dtype == np.uint8 and picture.shape[1] == 3 * 32 + 2 * 4
    with pytest.raises(ValueError, match="rows for"):
        eval_report(rows[:2], pairs, lambda image: image)

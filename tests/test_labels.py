"""Legible lettering and labelled pictures (issue 12.13, 12.14): curves' digits in a font
with an open zero, show-kernels' grid at one scale fitting the terminal, and labelled
kernels.png / samples.png."""
import cv2
import numpy as np
import pytest

from blurgen.lettering import put_text, text_size


def enclosed_regions(text, size):
    """How many light regions ``text`` encloses when drawn at ``size`` (a '0' encloses one, an '8' two)."""
    w, h = text_size(text, size)
    image = np.full((h + 12, w + 12, 3), 255, np.uint8)
    put_text(image, text, (6, h + 6), size, (40, 40, 40))
    light = (image[..., 0] > 160).astype(np.uint8)
    count, _ = cv2.connectedComponents(light, connectivity=4)
    return count - 2   # less the background around the glyph and the label 0


@pytest.mark.parametrize("size", [11, 13])
def test_zero_is_an_open_oval_at_label_sizes(size):
    """Issue 12.14: OpenCV's Hershey zero is slashed; at label size "step 100" read "step 1ØØ"."""
    assert enclosed_regions("0", size) == 1 and enclosed_regions("8", size) == 2
    assert enclosed_regions("1", size) == 0 and enclosed_regions("7", size) == 0


def test_curves_and_report_are_lettered_without_hershey(monkeypatch):
    """Issue 12.14: the curves drew their labels with cv2.putText's slashed-zero font."""
    from trainer import curves

    def hershey(*args, **kwargs):
        raise AssertionError("cv2.putText used")

    monkeypatch.setattr(cv2, "putText", hershey)
    steps = np.arange(0, 1001, 100)
    series = {"val/psnr": (steps, 20 + steps / 1000), "val/input_psnr": (steps, np.full(len(steps), 19.0)),
              "train/content_loss": (steps, 1 / (1 + steps))}
    image = curves.plot_curves(series)
    assert image.dtype == np.uint8 and (image < 128).any()   # lettering and curves drawn


def test_put_text_draws_at_the_baseline_within_the_picture():
    image = np.full((30, 80, 3), 255, np.uint8)
    put_text(image, "step 100", (2, 20), 11, (0, 0, 0))
    ys, xs = np.nonzero(image[..., 0] < 128)
    assert ys.max() <= 22 and ys.min() >= 10 and xs.min() >= 2   # letters sit on the baseline y = 20
    put_text(image, "off the edge", (70, 5), 11, (0, 0, 0))      # clipped, no error

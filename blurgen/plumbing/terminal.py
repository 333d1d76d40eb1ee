"""Pictures in the terminal: images drawn with Unicode half blocks and ANSI colours.

Each character cell shows two pixels stacked vertically: the upper half block
"▀" in the foreground colour of the top pixel over the background colour of the
bottom one, so an image of H×W pixels takes W columns and H/2 rows.  Without
colour (output is not a terminal, or ``NO_COLOR`` is set; https://no-color.org)
each cell is one character of an ASCII brightness ramp instead.
"""
from __future__ import annotations

import os
import shutil
import sys

import cv2
import numpy as np

_RAMP = " .:-=+*#%@"
_UPPER_HALF = "\u2580"
_RESET = "\x1b[0m"


def use_color(stream=None) -> bool:
    """Colour iff ``stream`` (default stdout) is a terminal and ``NO_COLOR`` is unset or empty."""
    stream = sys.stdout if stream is None else stream
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) array, uint8 or float in [0, 1] -> (H, W, 3) float32 in [0, 1]."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    image = np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    return image


def _resize(image: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Resize to ``cols`` × ``2 * rows`` pixels: area-averaged when shrinking, blocky when enlarging."""
    h, w = image.shape[:2]
    size = (max(1, cols), max(2, 2 * rows))
    shrink = size[0] <= w and size[1] <= h
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)


def _cells(image: np.ndarray, color: bool) -> list[str]:
    """Lines of one image already resized to (2 * rows, cols, 3)."""
    top, bottom = image[0::2], image[1::2]
    if color:
        t = np.rint(top * 255).astype(np.int32)
        b = np.rint(bottom * 255).astype(np.int32)
        lines = []
        for tr, br in zip(t, b):
            cells = [
                f"\x1b[38;2;{a[0]};{a[1]};{a[2]}m\x1b[48;2;{c[0]};{c[1]};{c[2]}m{_UPPER_HALF}"
                for a, c in zip(tr.tolist(), br.tolist())
            ]
            lines.append("".join(cells) + _RESET)
        return lines
    luma = (top + bottom) @ np.array([0.2126, 0.7152, 0.0722], np.float32) / 2  # Rec. 709
    idx = np.minimum((luma * len(_RAMP)).astype(np.int32), len(_RAMP) - 1)
    return ["".join(_RAMP[i] for i in row) for row in idx]


def render_images(
    images: list[np.ndarray],
    width: int | None = None,
    color: bool | None = None,
    labels: list[str] | None = None,
    gap: int = 2,
    max_rows: int | None = None,
) -> str:
    """Draw images side by side, scaled together so they fit ``width`` columns.

    Parameters
    ----------
    images : list of (H, W) or (H, W, 3) arrays
        uint8, or float in [0, 1] (values outside are clipped).  2-D arrays are
        drawn in grey.
    width : int or None
        Total columns; ``None`` fits the terminal (80 when unknown).
    color : bool or None
        24-bit colour half blocks, or an ASCII ramp; ``None`` decides with
        :func:`use_color`.
    labels : list of str or None
        One caption per image, drawn under it (cut to the image's width).
    gap : int
        Blank columns between images.
    max_rows : int or None
        Cap on the text rows an image may take (each row is two pixels);
        ``None``: 24 or, when less, what keeps the images' aspect ratio.

    Returns
    -------
    str
        The picture, lines joined by newlines, no trailing newline.
    """
    if not images:
        return ""
    color = use_color() if color is None else color
    width = width or shutil.get_terminal_size((80, 24)).columns
    rgb = [to_rgb_float(im) for im in images]
    total_w = sum(im.shape[1] for im in rgb)
    avail = max(len(rgb), width - gap * (len(rgb) - 1))
    max_h = max(im.shape[0] for im in rgb)
    max_rows = max_rows or 24
    # One scale for all images, so that pixels of equal size look equal; never
    # more than what fits the width, nor taller than max_rows text rows.
    scale = min(avail / total_w, 2 * max_rows / max_h)
    drawn = []
    for im in rgb:
        cols = max(1, int(im.shape[1] * scale))
        rows = max(1, int(round(im.shape[0] * scale / 2)))
        drawn.append(_cells(_resize(im, cols, rows), color))
    rows = max(len(d) for d in drawn)
    widths = [int(im.shape[1] * scale) or 1 for im in rgb]
    lines = []
    for r in range(rows):
        parts = [d[r] if r < len(d) else " " * w for d, w in zip(drawn, widths)]
        lines.append((" " * gap).join(parts).rstrip() if not color else (" " * gap).join(parts))
    if labels:
        caps = [(lab or "")[:w].ljust(w) for lab, w in zip(labels, widths)]
        lines.append((" " * gap).join(caps).rstrip())
    return "\n".join(lines)


def fit_to_terminal(text: str, stream=None) -> str:
    """``text`` wrapped at word boundaries to the terminal's width when ``stream`` (default
    stdout) is a terminal, continuation lines indented by two spaces; unchanged otherwise,
    so that a log keeps one line per message."""
    import textwrap

    stream = sys.stdout if stream is None else stream
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return text
    width = shutil.get_terminal_size((80, 24)).columns
    return "\n".join(textwrap.fill(line, width=width, subsequent_indent="  ", break_on_hyphens=False)
                     for line in text.split("\n"))

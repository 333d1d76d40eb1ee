"""An evaluation as a picture: the best and worst restorations, and the spread of gains.

``trainer eval --png report.png`` draws, for the images whose PSNR gained
most and least, blurred | restored | sharp crops side by side with their
PSNR, and under them a histogram of the per-image PSNR gain (restored minus
blurred, dB), so that a mean gain can be told apart from a few big wins
over many losses.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from blurgen.plumbing.lettering import put_text

_INK = (40, 40, 40)
_PAPER = 255
_GAIN = (44, 160, 44)
_LOSS = (214, 39, 40)


def worst_region(blurred: np.ndarray, sharp: np.ndarray, side: int) -> tuple[int, int]:
    """(top, left) of the ``side``-square window where the blurred image is furthest
    from the sharp one (largest mean absolute difference): where the blur shows."""
    h, w = sharp.shape[:2]
    side_y, side_x = min(side, h), min(side, w)
    error = np.abs(blurred.astype(np.float32) - sharp.astype(np.float32)).mean(axis=2)
    local = cv2.boxFilter(error, -1, (side_x, side_y), normalize=True, borderType=cv2.BORDER_CONSTANT)
    # Window centres must keep the window inside the image.
    valid = local[side_y // 2: h - (side_y - side_y // 2) + 1, side_x // 2: w - (side_x - side_x // 2) + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(y), int(x)


def _caption(width: int, text: str, height: int = 22) -> np.ndarray:
    strip = np.full((height, width, 3), _PAPER, np.uint8)
    put_text(strip, text, (4, height - 7), 13, _INK)
    return strip


def _example_row(name: str, row: dict, blurred: np.ndarray, restored: np.ndarray, sharp: np.ndarray,
                 side: int, gap: int) -> np.ndarray:
    top, left = worst_region(blurred, sharp, side)
    crops = [im[top:top + side, left:left + side] for im in (blurred, restored, sharp)]
    h, w = crops[0].shape[:2]
    tiles = []
    for crop in crops:   # images narrower than the window are padded to keep the columns
        tile = np.full((h, side, 3), _PAPER, np.uint8)
        tile[:, :w] = crop
        tiles.append(tile)
    spacer = np.full((h, gap, 3), _PAPER, np.uint8)
    images = np.concatenate([tiles[0], spacer, tiles[1], spacer, tiles[2]], axis=1)
    gain = row["psnr"] - row["input_psnr"]
    text = (f"{name}: blurred {row['input_psnr']:.2f} dB | restored {row['psnr']:.2f} dB ({gain:+.2f}) | sharp")
    return np.concatenate([_caption(images.shape[1], text), images], axis=0)


def gain_histogram(gains: Sequence[float], width: int, height: int = 200, bins: int = 20) -> np.ndarray:
    """uint8 (height, width, 3) RGB bar chart of ``gains`` (dB): green bars above 0, red below."""
    gains = np.asarray([g for g in gains if np.isfinite(g)], np.float64)
    canvas = np.full((height, width, 3), _PAPER, np.uint8)
    title = f"per-image PSNR gain, dB (restored - blurred), {len(gains)} images"
    if len(gains):
        title += f": mean {gains.mean():+.2f}, {int((gains > 0).sum())} gained"
    put_text(canvas, title, (8, 16), 13, _INK)
    if not len(gains):
        return canvas
    low, high = min(gains.min(), 0.0), max(gains.max(), 0.0)
    if high - low < 1e-6:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(gains, bins=bins, range=(low, high))
    left, right, top, bottom = 40, width - 12, 28, height - 26
    scale_x = (right - left) / (high - low)
    peak = max(int(counts.max()), 1)
    for count, a, b in zip(counts, edges[:-1], edges[1:]):
        x0, x1 = left + (a - low) * scale_x, left + (b - low) * scale_x
        y0 = bottom - (bottom - top) * count / peak
        colour = _GAIN if (a + b) / 2 > 0 else _LOSS
        cv2.rectangle(canvas, (int(x0) + 1, int(y0)), (max(int(x1) - 1, int(x0) + 1), bottom), colour, -1)
    zero = int(left - low * scale_x)
    cv2.line(canvas, (zero, top), (zero, bottom), _INK, 1)
    cv2.line(canvas, (left, bottom), (right, bottom), _INK, 1)
    for value in (low, 0.0, high):
        x = int(left + (value - low) * scale_x)
        put_text(canvas, f"{value:+.2f}", (max(0, x - 18), height - 8), 12, _INK)
    put_text(canvas, str(peak), (4, top + 10), 12, _INK)
    return canvas


def eval_report(rows: Sequence[dict], pairs: Sequence, restore: Callable[[np.ndarray], np.ndarray], *,
                examples: int = 3, side: int = 192, gap: int = 4) -> np.ndarray:
    """The report picture: uint8 (H, W, 3) RGB.

    rows: ``score_pairs`` rows in the order of ``pairs`` (sequence of (name,
    blurred, sharp), read again here); restore: blurred uint8 (H, W, 3) ->
    restored uint8 (H, W, 3), e.g. ``trainer.evaluate.restore`` bound to a
    generator.  The ``examples`` images with the largest and the smallest
    PSNR gain are shown (each once), cropped to the ``side``-px square where
    the blur is strongest.
    """
    if len(rows) != len(pairs):
        raise ValueError(f"{len(rows)} rows for {len(pairs)} pairs")
    order = sorted(range(len(rows)), key=lambda i: rows[i]["psnr"] - rows[i]["input_psnr"], reverse=True)
    best = order[:examples]
    worst = [i for i in order[::-1][:examples] if i not in best]
    width = 3 * side + 2 * gap
    parts = [_caption(width, f"best {len(best)} by PSNR gain: crops where the blur is strongest")]
    for label, chosen in (("best", best), ("worst", worst)):
        if label == "worst" and chosen:
            parts.append(_caption(width, f"worst {len(chosen)} by PSNR gain, the worst first"))
        for i in chosen:
            name, blurred, sharp = pairs[i]
            parts.append(_example_row(name, rows[i], blurred, restore(blurred), sharp, side, gap))
            parts.append(np.full((gap, width, 3), _PAPER, np.uint8))
    parts.append(gain_histogram([r["psnr"] - r["input_psnr"] for r in rows], width))
    return np.concatenate(parts, axis=0)


def write_eval_report(path, rows: Sequence[dict], pairs: Sequence, restore: Callable[[np.ndarray], np.ndarray],
                      **options) -> None:
    """Draw ``eval_report(rows, pairs, restore, **options)`` into the PNG ``path``, atomically;
    a failed write (a full disk) raises an OSError naming ``path``."""
    from blurgen.plumbing.pictures import write_png
    from trainer.output import naming

    picture = eval_report(rows, pairs, restore, **options)
    with naming(path):
        write_png(path, picture)

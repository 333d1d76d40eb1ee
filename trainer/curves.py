"""Training progress as pictures: the run's scalars as a PNG of curves, and
sparklines for the terminal.

The scalars are those of ``scalars.csv`` (step, name, value), the text twin of
the TensorBoard log, so a run can be looked at without TensorBoard.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np

from blurgen.plumbing.lettering import put_text, text_size
from trainer.errors import TrainerError

Series = dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (steps int64, values float64), by step

SPARK = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"  # ▁▂▃▄▅▆▇█
SPARK_ASCII = "_.-~=+*#"

# (series drawn, reference series drawn dashed or None, title) per panel.
PANELS = (
    ("val/psnr", "val/input_psnr", "validation PSNR, dB (dashed: blurred input)"),
    ("train/content_loss", None, "content loss"),
    ("train/wasserstein", None, "Wasserstein estimate D(real) - D(fake)"),
    ("train/gradient_penalty", None, "gradient penalty"),
    ("train/grad_ratio", None, "GAN balance |dL_GAN/dG| / |d(lambda L_X)/dG| at the output"),
    # Do no harm: a model that sharpens already sharp images shows here (inf: returned unchanged).
    ("val/sharp_psnr_min", "val/sharp_psnr", "sharp inputs: worst PSNR of G(sharp) vs sharp, dB (dashed: mean)"),
)

_INK = (40, 40, 40)
_GRID = (225, 225, 225)
_LINE = (31, 119, 180)
_RAW = (174, 199, 232)
_REFERENCE = (150, 150, 150)
# Letter sizes (px): titles, and the axis labels.
_TITLE, _LABEL = 13, 11


class ScalarsError(TrainerError):
    """A scalars.csv that cannot be read (one line, for the user)."""


def series_from_rows(rows) -> Series:
    """Group (step, name, value) rows into per-name series sorted by step."""
    grouped: dict[str, list[tuple[int, float]]] = {}
    for step, name, value in rows:
        grouped.setdefault(name, []).append((int(step), float(value)))
    out = {}
    for name, points in grouped.items():
        points.sort(key=lambda p: p[0])
        steps, values = zip(*points)
        out[name] = (np.asarray(steps, np.int64), np.asarray(values, np.float64))
    return out


def read_scalars(path: str | os.PathLike) -> Series:
    """The series of a ``scalars.csv``.  Raises ScalarsError on a file that is not one."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row]
    except OSError as exc:
        raise ScalarsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not rows or rows[0] != ["step", "name", "value"]:
        raise ScalarsError(f"{path}: not a scalars.csv (header step,name,value)")
    try:
        return series_from_rows(rows[1:])
    except (TypeError, ValueError) as exc:
        raise ScalarsError(f"{path}: a row is not step,name,value ({exc})") from None


def sparkline(values, width: int = 40, ascii: bool = False) -> str:
    """One character per value (per bin of values when there are more than
    ``width``), low to high from the series' minimum to its maximum."""
    chars = SPARK_ASCII if ascii else SPARK
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return ""
    if values.size > width:
        values = np.array([b.mean() for b in np.array_split(values, width)])
    lo, hi = values.min(), values.max()
    if hi == lo:
        return chars[len(chars) // 2] * values.size
    levels = np.rint((values - lo) / (hi - lo) * (len(chars) - 1)).astype(int)
    return "".join(chars[i] for i in levels)


def smooth(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with the weight of a ``span``-point window
    (as pandas' ``ewm(span=...)``, adjusted so the start is not pulled to 0)."""
    from scipy.signal import lfilter

    decay = 1.0 - 2.0 / (span + 1.0)
    values = np.asarray(values, np.float64)
    weighted = lfilter([1.0], [1.0, -decay], values)          # sum_k decay^k v[i-k]
    weights = lfilter([1.0], [1.0, -decay], np.ones_like(values))
    return weighted / weights


def _dashed(image: np.ndarray, points: np.ndarray, colour, dash: float = 6.0) -> None:
    """Draw the polyline ``points`` (n, 2) dashed: ``dash`` pixels on, ``dash`` off."""
    if len(points) == 1:
        cv2.circle(image, tuple(map(int, points[0])), 2, colour, -1, cv2.LINE_AA)
        return
    travelled = 0.0
    for a, b in zip(points[:-1].astype(np.float64), points[1:].astype(np.float64)):
        length = float(np.hypot(*(b - a)))
        t = 0.0
        while t < length:
            phase = (travelled + t) % (2 * dash)
            piece = min(length - t, 2 * dash - phase if phase >= dash else dash - phase)
            if phase < dash:
                p, q = a + (b - a) * (t / length), a + (b - a) * ((t + piece) / length)
                cv2.line(image, tuple(np.rint(p).astype(int)), tuple(np.rint(q).astype(int)), colour, 1,
                         cv2.LINE_AA)
            t += piece
        travelled += length


def nice_ticks(low: float, high: float, count: int = 4) -> np.ndarray:
    """About ``count`` round values (steps of 1, 2 or 5 times a power of ten) within
    [low, high], ascending; the axis labels of a chart."""
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        return np.array([low], np.float64)
    raw = (high - low) / max(count, 1)
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = np.ceil(low / step - 1e-9) * step
    ticks = np.arange(first, high + step * 1e-9, step)
    return np.round(ticks, 12) + 0.0   # no "-0"


def _tick_label(value: float) -> str:
    return f"{value:.6g}" if abs(value) < 1e5 else f"{value:.3g}"


def _panel(series: Series, name: str, reference: str | None, title: str, size: tuple[int, int]) -> np.ndarray:
    """One chart, (height, width, 3) uint8 RGB: ``name`` over its steps (raw and
    smoothed when it is noisy), ``reference`` dashed."""
    width, height = size
    image = np.full((height, width, 3), 255, np.uint8)
    put_text(image, title, (8, 16), _TITLE, _INK)
    left, right, top, bottom = 58, width - 12, 28, height - 24
    cv2.rectangle(image, (left, top), (right, bottom), _GRID, 1)
    if name not in series:
        put_text(image, "(not logged yet)", (left + 10, (top + bottom) // 2), _LABEL + 1, _REFERENCE)
        return image
    drawn = [series[name]] + ([series[reference]] if reference in series else [])
    all_steps = np.concatenate([s for s, _ in drawn])
    all_values = np.concatenate([v for _, v in drawn])
    keep = np.isfinite(all_values)
    if not keep.any():
        return image
    x0, x1 = all_steps.min(), max(all_steps.max(), all_steps.min() + 1)
    y0, y1 = all_values[keep].min(), all_values[keep].max()
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def to_pixels(steps, values):
        ok = np.isfinite(values)
        px = left + (steps[ok] - x0) / (x1 - x0) * (right - left)
        py = bottom - (values[ok] - y0) / (y1 - y0) * (bottom - top)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    if reference in series:
        _dashed(image, to_pixels(*series[reference]), _REFERENCE)
    steps, values = series[name]
    finite = np.isfinite(values)  # a diverged step must not blank the smoothed curve after it
    steps, values = steps[finite], values[finite]
    if len(values) > 20:  # noisy training scalars: raw underneath, smoothed on top
        cv2.polylines(image, [to_pixels(steps, values)], False, _RAW, 1, cv2.LINE_AA)
        values = smooth(values, span=max(5, len(values) // 20))
    points = to_pixels(steps, values)
    cv2.polylines(image, [points], False, _LINE, 2, cv2.LINE_AA)
    for p in points if len(points) <= 20 else []:
        cv2.circle(image, tuple(map(int, p)), 2, _LINE, -1, cv2.LINE_AA)
    # Round values on both axes, with light grid lines, not only the extremes.
    for value in nice_ticks(y0 + pad, y1 - pad):
        y = int(round(bottom - (value - y0) / (y1 - y0) * (bottom - top)))
        cv2.line(image, (left + 1, y), (right - 1, y), _GRID, 1)
        label = _tick_label(value)
        put_text(image, label, (left - 4 - text_size(label, _LABEL)[0], y + 4), _LABEL, _INK)
    for value in nice_ticks(float(x0), float(all_steps.max())):
        x = int(round(left + (value - x0) / (x1 - x0) * (right - left)))
        label = _tick_label(value)
        put_text(image, label, (min(max(x - text_size(label, _LABEL)[0] // 2, 2), width - 2 - text_size(label, _LABEL)[0]),
                                height - 8), _LABEL, _INK)
    put_text(image, "step", (4, height - 8), _LABEL, _REFERENCE)   # what the x axis counts
    return image


def plot_curves(series: Series, panels=PANELS, panel_size: tuple[int, int] = (400, 220),
                columns: int = 2) -> np.ndarray:
    """The panels (name, reference or None, title) as a grid: (H, W, 3) uint8 RGB."""
    charts = [_panel(series, name, ref, title, panel_size) for name, ref, title in panels]
    while len(charts) % columns:
        charts.append(np.full_like(charts[0], 255))
    rows = [np.concatenate(charts[i : i + columns], axis=1) for i in range(0, len(charts), columns)]
    return np.concatenate(rows, axis=0)

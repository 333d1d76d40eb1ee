"""Looking at kernels: display scaling, per-kernel lines and a bank summary."""
from __future__ import annotations

import numpy as np

from blurgen.physics.kernels import KernelBatch

_BAR = "\u2588"


def parse_index(text: str | None, n: int) -> np.ndarray:
    """Parse ``"5"``, ``"0-7,12"`` into sorted unique kernel indices in [0, n).

    A single number means "from this index on".  Raises ``ValueError`` on bad
    text or an index out of range.
    """
    if not text:
        return np.arange(n)
    out: list[int] = []
    try:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if len(parts) == 1 and "-" not in parts[0]:
            start = int(parts[0])
            if not 0 <= start < n:
                raise ValueError
            return np.arange(start, n)
        for p in parts:
            lo, _, hi = p.partition("-")
            lo_i = int(lo)
            hi_i = int(hi) if hi else lo_i
            if lo_i > hi_i:
                raise ValueError
            out.extend(range(lo_i, hi_i + 1))
    except ValueError:
        raise ValueError(f"--index must look like 5 or 0-7,12 with indices in [0, {n - 1}], got {text!r}") from None
    idx = np.unique(np.asarray(out, dtype=np.int64))
    if idx.size == 0 or idx[0] < 0 or idx[-1] >= n:
        raise ValueError(f"--index must look like 5 or 0-7,12 with indices in [0, {n - 1}], got {text!r}")
    return idx


def display_crops(psf: np.ndarray, gamma: float = 0.5) -> list[np.ndarray]:
    """Kernels ready to look at: a common centred window around their support,
    each scaled to its own peak and gamma-lifted so faint tails show.

    psf : (n, k, k) float — returns n (w, w) float32 arrays in [0, 1].
    """
    k = psf.shape[-1]
    support = psf.max(axis=0) > 0
    if support.any():
        ys, xs = np.nonzero(support)
        c = k // 2
        half = int(max(np.abs(ys - c).max(), np.abs(xs - c).max())) + 1
    else:
        half = k // 2
    lo = max(0, k // 2 - half)
    hi = min(k, k // 2 + half + 1)  # symmetric about the centre pixel, where the centre of mass sits
    out = []
    for p in psf:
        win = p[lo:hi, lo:hi].astype(np.float32)
        peak = win.max()
        out.append((win / peak) ** gamma if peak > 0 else win)
    return out


#: The per-kernel table: (header, width, format) per column; 77 characters a line.
_COLUMNS = (("#", 5, "{:<5d}"), ("seed", 20, "{:>20d}"), ("expl", 6, "{:6.3f}"), ("fraction", 8, "{:8.2f}"),
            ("length px", 9, "{:9.1f}"), ("extent px", 9, "{:9.1f}"), ("big shakes", 10, "{:10d}"))


def kernel_table(batch: KernelBatch, index) -> list[str]:
    """A header and one line per kernel of ``batch`` (labelled by ``index``): seed,
    anxiety, exposure fraction, trajectory length, extent and big shakes; under 80 columns."""
    lines = ["  ".join(f"{name:<{width}s}" if name == "#" else f"{name:>{width}s}"
                       for name, width, _ in _COLUMNS).rstrip()]
    for i, k in enumerate(index):
        values = (int(k), int(batch.seed[i]), float(batch.expl[i]), float(batch.fraction[i]),
                  float(batch.length[i]), float(batch.extent[i]), int(batch.big_shakes[i]))
        lines.append("  ".join(fmt.format(v) for (_, _, fmt), v in zip(_COLUMNS, values)).rstrip())
    return lines


def histogram(values: np.ndarray, bins: int | np.ndarray = 8, width: int = 30, unit: str = "") -> list[str]:
    """Text histogram: one line per bin, ``[lo, hi)  ████ count``."""
    values = np.asarray(values, dtype=np.float64)
    counts, edges = np.histogram(values, bins=bins)
    top = max(1, counts.max())
    lines = []
    for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
        bar = _BAR * int(round(width * c / top))
        lines.append(f"  {lo:7.2f} – {hi:7.2f}{unit:3s} {bar:<{width}s} {c}")
    return lines


def counts_line(name: str, values: np.ndarray) -> str:
    """``name: v×count, ...`` over the distinct values of ``values`` (a few of them)."""
    distinct, counts = np.unique(np.asarray(values), return_counts=True)
    return f"{name}: " + ", ".join(f"{v:g}×{c}" for v, c in zip(distinct, counts))


def distribution(name: str, values: np.ndarray, unit: str = "", few: int = 8) -> list[str]:
    """A quantity over a bank: its values with their counts when it takes at most ``few``
    of them (a histogram of 8 bins for 3 values says less), else a histogram."""
    title = f"{name}{' (' + unit + ')' if unit else ''}"
    rounded = np.round(np.asarray(values, np.float64), 1)   # 59.99999 and 60 are one length
    if len(np.unique(rounded)) <= few:
        return [counts_line(title, rounded)]
    return [title, *histogram(values, unit=unit)]


def bank_summary(batch: KernelBatch, spec_text: str = "") -> str:
    """Distribution of anxiety, exposure fraction, length, extent and big shakes over a bank, as text."""
    n = len(batch)
    lines = [f"{n} kernels{': ' + spec_text if spec_text else ''}",
             counts_line("expl (anxiety)", batch.expl), counts_line("exposure fraction", batch.fraction)]
    lines += distribution("trajectory length", batch.length, "px")
    lines += distribution("big shakes per kernel", batch.big_shakes.astype(np.int64))
    lines += distribution("extent, the larger side of the bounding box", batch.extent, "px")
    return "\n".join(lines)


def grid_layout(n: int, columns: int, lines: int, gap: int = 2, largest: int = 24,
                smallest: int = 8) -> tuple[int, int]:
    """(cell, per_row) of a terminal grid of ``n`` kernels: every kernel drawn
    ``cell`` columns wide and ``cell / 2`` text rows tall (cell even), the
    largest cell up to ``largest`` whose rows, a label line under each, fit
    ``lines`` (the terminal's height less what is printed besides); never
    smaller than ``smallest``, however short the terminal."""
    for cell in range(largest - largest % 2, smallest - 1, -2):
        per_row = max(1, min(n, (columns + gap) // (cell + gap)))
        if -(-n // per_row) * (cell // 2 + 1) <= lines:
            return cell, per_row
    return smallest, max(1, min(n, (columns + gap) // (smallest + gap)))


def grid_blocks(crops: list[np.ndarray], labels: list[str], columns: int, lines: int,
                color: bool | None = None, gap: int = 2) -> list[str]:
    """The rows of a terminal grid of kernel crops (``display_crops``), each a
    text block of pictures with their labels under them, all drawn at one
    scale (a last, partial row too) and together fitting ``lines`` rows where
    possible (``grid_layout``)."""
    import cv2

    from blurgen.plumbing.terminal import render_images

    cell, per_row = grid_layout(len(crops), columns, lines, gap)
    # Resized here to exactly cell x cell, so that render_images draws every one at scale 1.
    shrink = cell <= max(c.shape[0] for c in crops)
    sized = [cv2.resize(c, (cell, cell), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)
             for c in crops]
    blocks = []
    for start in range(0, len(sized), per_row):
        chunk = sized[start : start + per_row]
        blocks.append(render_images(chunk, width=len(chunk) * (cell + gap) - gap, color=color,
                                    labels=labels[start : start + per_row], gap=gap, max_rows=cell // 2))
    return blocks

"""Progress of long work, for a terminal or for a log: one helper for every command.

In a terminal, :func:`progress_bar` is a tqdm bar redrawn in place.  When the
stream is not a terminal (a log file, a pipe, a batch scheduler's output),
redrawing in place means carriage returns: a log then holds one line of
thousands of characters.  There it is a :class:`PlainProgress` instead, which
writes a whole, short line every few seconds (count, rate, ETA) and a last one
at the end.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Iterable

#: Seconds between two lines of a :class:`PlainProgress`.
LOG_INTERVAL = 5.0


def is_terminal(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
                 unit: str = "it", file=None, initial: int = 0, disable: bool = False, leave: bool = True,
                 smoothing: float = 0.3, interval: float = LOG_INTERVAL):
    """A progress bar on ``file`` (default stderr): tqdm's in a terminal, else a
    :class:`PlainProgress` writing a line every ``interval`` seconds.

    Both take tqdm's usual calls: ``update(n)``, ``close()``, ``n``, ``total``
    (settable), ``set_postfix(...)``, iteration over ``iterable``, ``with``.
    """
    file = sys.stderr if file is None else file
    if is_terminal(file):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, file=file, initial=initial, disable=disable,
                    leave=leave, dynamic_ncols=True, smoothing=smoothing)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, file=file, initial=initial,
                         disable=disable, interval=interval)


class PlainProgress:
    """Progress as whole lines: ``pairs: 1,200/4,000 (30%), 85.3 pair/s, ETA 0:00:33``.

    A line is written at the first update after ``interval`` seconds since the
    last one, and at ``close()`` (if anything was counted since).  Standard
    output is flushed first, so that lines of the command's own output
    (block-buffered when it is not a terminal) come out whole and in order.
    """

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
                 unit: str = "it", file=None, initial: int = 0, disable: bool = False,
                 interval: float = LOG_INTERVAL):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.file = sys.stderr if file is None else file
        self.n = self._start_n = self._shown_n = initial
        self.disable, self.interval = disable, interval
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._write(now)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def refresh(self) -> None:
        """Nothing to redraw: lines go out on their own schedule."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n != self._shown_n:
            self._write(time.monotonic())

    def line(self, now: float | None = None) -> str:
        """The progress so far, in one line."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = (self.n - self._start_n) / elapsed
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            text = f"{head}{self.n:,}/{self.total:,} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            text = f"{head}{self.n:,} {self.unit}"
        text += f", {_rate(rate, self.unit)}, {_clock(elapsed)} elapsed"
        if self.total and self.n < self.total:
            text += f", ETA {_clock((self.total - self.n) / rate) if rate > 0 else '?'}"
        return text + (f" [{self.postfix}]" if self.postfix else "")

    def _write(self, now: float) -> None:
        self._last, self._shown_n = now, self.n
        if self.disable:
            return
        sys.stdout.flush()
        self.file.write(self.line(now) + "\n")
        self.file.flush()


def _rate(rate: float, unit: str) -> str:
    if 0 < rate < 1:
        return f"{1 / rate:.3g} s/{unit}"
    return f"{rate:,.3g} {unit}/s" if rate < 1000 else f"{rate:,.0f} {unit}/s"


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

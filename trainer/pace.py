"""What a newly started run will cost: the size of its networks, a warning
when the paper's networks are about to train on a CPU, and the measured step
rate with the time left, once a few steps have run (``trainer fit``).

The numbers are measured on the run itself, never guessed from the hardware:
the first step is left out (memory allocation, cuDNN autotuning and lazy
initialisation make it several times slower than the others), and the rate
is the wall time of the steps after it, checkpoints included, so the ETA is
what the clock will show if the run goes on as it started (validations,
which come every epoch, are not in it).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

#: Generators above this many parameters count as "the paper's size" for the
#: CPU warning: the paper's is 11.4 M, the tiny preset's 0.1 M; a paper-sized
#: generator step takes seconds on a CPU (tens of hours for a short run).
LARGE_GENERATOR = 2_000_000


def cpu_warning(device: torch.device, generator_parameters: int) -> str | None:
    """One warning line when networks of the paper's size are to train on a CPU, else None."""
    if device.type != "cpu" or generator_parameters < LARGE_GENERATOR:
        return None
    return (f"warning: networks of the paper's size (a {generator_parameters / 1e6:.1f} M-parameter generator) "
            "train slowly on a CPU (a full run takes days); for a first run use --preset tiny (minutes on a CPU), "
            "or a GPU")


def duration(seconds: float) -> str:
    """A duration for people: '42 s', '7 min 5 s', '3 h 20 min', '2 d 5 h'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, m = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {m} min"
    days, h = divmod(hours, 24)
    return f"{days} d {h} h"


class Pace:
    """Measures the step rate of a run after ``warmup`` steps and says it once.

    ``update(done)`` after each generator step (``done``: steps done so far)
    returns None until ``measure`` steps after the warm-up ones have run, or
    ``patience`` seconds have passed with at least one (a paper-sized step on
    a CPU takes many seconds), then once the line "pace: ... ETA ...".
    """

    def __init__(self, start: int, total: int, *, warmup: int = 1, measure: int = 5,
                 patience: float = 30.0, clock: Callable[[], float] = time.perf_counter):
        self.start, self.total = start, total
        self.warmup, self.measure, self.patience = warmup, measure, patience
        self.clock = clock
        self.timed_from: tuple[int, float] | None = None   # (steps done, time) when timing began
        self.said = False

    def update(self, done: int) -> str | None:
        if self.said or done >= self.total:
            return None
        if self.timed_from is None:
            if done - self.start >= self.warmup:
                self.timed_from = (done, self.clock())
            return None
        first, began = self.timed_from
        steps, seconds = done - first, self.clock() - began
        if steps < self.measure and not (seconds >= self.patience and steps >= 1):
            return None
        self.said = True
        per_step = seconds / steps
        left = self.total - done
        return (f"pace: {per_step:.3g} s/step ({1 / per_step if per_step > 0 else float('inf'):.3g} steps/s, "
                f"measured over steps {first + 1}-{done}); ETA {duration(left * per_step)} "
                f"for the {left} steps left of {self.total} (validations not included)")

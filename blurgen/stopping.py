"""Stopping long runs cleanly on Ctrl-C (SIGINT) and a scheduler's SIGTERM.

Python's default SIGINT handler raises KeyboardInterrupt wherever the main
thread happens to be, and that may be inside a callback that cannot raise
(an h5py weakref callback, a ``__del__``): the exception is then printed as
"Exception ignored in: ..." and the run goes on to the end, exit 0.  So the
commands replace it: the handler only sets a :class:`StopFlag`, and the work
loops call :meth:`StopFlag.check` between units of work (a batch of kernels,
a sample, a shard), which raises :class:`Interrupted` there — at a point where
the usual cleanup (``with`` blocks, temporary files) runs normally.

::

    with stop_on_signals() as stop:      # in the CLI, main thread only
        for unit in work:
            stop.check()
            do(unit)
"""
from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Iterator

#: What the commands stop on: Ctrl-C, and a batch scheduler's time limit.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Raised by :meth:`StopFlag.check` once a stop signal arrived.  A
    KeyboardInterrupt, so that code that cleans up after Ctrl-C does so after
    this too; ``signum`` is the signal that asked for the stop."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopFlag:
    """Set (by a signal handler, or by hand) when the run should stop; read between units of work."""

    def __init__(self):
        self.signum: int | None = None

    def set(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop was asked for."""
        if self.signum is not None:
            raise Interrupted(self.signum)


def check(stop: StopFlag | None) -> None:
    """``stop.check()``, for code that may run without a flag (``stop=None``)."""
    if stop is not None:
        stop.check()


@contextmanager
def stop_on_signals(signums=SIGNALS) -> Iterator[StopFlag]:
    """For the block, make ``signums`` set the yielded flag instead of raising;
    the previous handlers are restored after it.  Main thread only (a rule of
    Python's ``signal`` module).  Later signals of a run that is already
    stopping are absorbed: the run is on its way out through its cleanup.
    """
    flag = StopFlag()

    def handler(signum, frame):
        flag.set(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def signals_blocked(signums=SIGNALS) -> Iterator[None]:
    """Hold ``signums`` pending (not lost) for the block.  Processes started in
    it inherit the blocked mask, so a spawned worker cannot be hit by Ctrl-C
    before it has set up its own handling; it unblocks them itself."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """Have the kernel send ``signum`` to this process when ``parent`` dies, however
    it dies (kill -9, the out-of-memory killer).  A pool worker (SIGKILL) must not
    outlive the run that owns its output folder, or it renames a shard of the dead
    run into a folder a new run has taken over (issue 22.17); a training rank
    (SIGTERM, trainer.cluster) must stop and save rather than train on as an
    orphan.  Linux only (``PR_SET_PDEATHSIG``); elsewhere :func:`orphaned` is the
    check.  If ``parent`` died before the request took effect, the signal's
    effect comes now."""
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if orphaned(parent):
        if signum == signal.SIGKILL:
            os._exit(1)
        os.kill(os.getpid(), signum)


def orphaned(parent: int) -> bool:
    """Whether ``parent``, the process that started this one, has died (this one
    was handed to another parent: init, or a subreaper)."""
    return os.getppid() != parent

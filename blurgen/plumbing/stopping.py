"""Stopping long runs cleanly: the one stop mechanism of both command lines.

Stop signals: Ctrl-C (SIGINT), a scheduler's preemption (SIGTERM; Slurm and
Kubernetes send it, often to every process of the job) and Slurm's
``--signal`` warning (SIGUSR1 unless told otherwise).  The first asks the run
to stop at its next unit of work; a second Ctrl-C stops at once
(KeyboardInterrupt wherever the run is); a repeated SIGTERM or SIGUSR1
changes nothing, since a scheduler may send both, or send them again, while
the run is already on its way out.  Worker processes ignore them
(:func:`ignore_in_worker`): the run's main process alone decides.

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
import threading
from contextlib import contextmanager
from typing import Iterator

#: What the commands stop on: Ctrl-C, a batch scheduler's time limit, and its warning before it.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class Interrupted(KeyboardInterrupt):
    """Raised by :meth:`StopFlag.check` once a stop signal arrived.  A
    KeyboardInterrupt, so that code that cleans up after Ctrl-C does so after
    this too; ``signum`` is the signal that asked for the stop."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopFlag:
    """Set (by a signal handler, or by hand) when the run should stop; read between units of work.
    ``signum`` is the first stop signal received."""

    def __init__(self):
        self.signum: int | None = None

    def set(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = signum

    def handle(self, signum: int, frame=None) -> None:
        """The signal handler: the first signal sets the flag; a second Ctrl-C raises
        KeyboardInterrupt (the user does not want to wait); any other repeat is absorbed."""
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        return self.signum is not None

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
def stop_on_signals(flag: StopFlag | None = None, signums=SIGNALS) -> Iterator[StopFlag]:
    """For the block, make ``signums`` set ``flag`` (a new :class:`StopFlag` if None, and
    yielded) instead of raising (:meth:`StopFlag.handle`); the previous handlers are
    restored after it.  Off the main thread (where Python cannot install handlers) the
    flag is yielded untouched by signals."""
    flag = StopFlag() if flag is None else flag
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag.handle) for s in signums}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def ignore_in_worker(keep: tuple = ()) -> None:
    """A worker process's start-up: ignore the stop signals (but ``keep``).

    Ctrl-C reaches the whole foreground process group and schedulers preempt
    a job by signalling every process of it.  A worker killed that way breaks
    the run mid-unit (a DataLoader raises "worker killed" before the step can
    be saved; a pool loses its shard); ignoring them leaves the decision to
    the main process, which finishes its unit, saves and ends its workers.
    ``keep``: signals the main process itself uses to end a worker (a shard
    pool's SIGTERM)."""
    for signum in SIGNALS:
        if signum not in keep:
            signal.signal(signum, signal.SIG_IGN)


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

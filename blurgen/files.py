"""Atomic file writes: a file is either complete under its name or absent."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_name(path: str | os.PathLike) -> Path:
    """``.NAME.tmp-PID`` beside ``path``: hidden, and unique per process."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block ends.

    If the block raises (including KeyboardInterrupt, which is how Ctrl-C and
    SIGTERM arrive), the temporary file is removed and ``path`` is untouched.
    ``durable=True`` fsyncs the file and its folder, so that a power cut
    cannot bring back the old content under the new name.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        try:
            fd = os.open(path.parent, os.O_RDONLY)
        except OSError:  # some platforms cannot open a folder
            return
        try:
            os.fsync(fd)
        except OSError:  # nor fsync one, on some file systems: the file itself is safe
            pass
        finally:
            os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)

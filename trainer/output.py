"""Errors of writing output files, named.

A full disk (ENOSPC) or a quota shows up at ``write()``/``close()`` of a file
that opened fine, and Python's OSError then carries no file name; the CLI
could only say "No space left on device" without saying where.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise an OSError of the block that names no file as one naming ``path``
    (same errno and strerror), so that it ends in one line saying where."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None

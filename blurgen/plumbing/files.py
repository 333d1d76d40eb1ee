"""Atomic file writes: a file is either complete under its name or absent."""

from __future__ import annotations

import errno
import glob
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from blurgen.errors import BlurgenError


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
        try:
            yield tmp
        except OSError as exc:
            # The user never asked for the temporary: a full disk there is one on ``path``.
            if exc.filename is None or Path(exc.filename) != tmp:
                raise
            raise OSError(exc.errno, exc.strerror, str(path)) from None
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


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder to fill; it becomes ``path`` when the block ends.

    An existing ``path`` is swapped out and removed only then: no reader ever
    sees a half-written folder under the name.  If the block raises, the
    temporary folder is removed and ``path`` is untouched; an OSError on a file
    inside the temporary names the file under ``path`` (a full disk on
    ``path/x``, not on ``.path.tmp-PID/x``).
    """
    import shutil

    path = Path(path)
    tmp = temporary_name(path)
    shutil.rmtree(tmp, ignore_errors=True)   # a leftover of this pid's earlier, killed self
    try:
        try:
            tmp.mkdir()
            yield tmp
        except OSError as exc:
            named = None if exc.filename is None else Path(exc.filename)
            if named == tmp:
                raise OSError(exc.errno, exc.strerror, str(path)) from None
            if named is None or named.parent != tmp:
                raise
            raise OSError(exc.errno, exc.strerror, str(path / named.name)) from None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str, errors: str = "strict") -> None:
    """Write ``text`` to ``path`` atomically, as UTF-8 (``errors`` as for ``str.encode``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors=errors)


# --- temporaries left by killed runs ------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (or not yet reaped) process on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but belongs to another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries ``.NAME.tmp-PID`` of ``path`` whose PID is not a
    live process on this machine (a run killed with kill -9, or by the
    out-of-memory killer, leaves them).  Returns the removed paths.

    Only safe to call while holding a lock (:func:`exclusive_lock`) that every
    writer of ``path`` takes — its own, or its folder's manifest's for a shard:
    the PID only says something about this machine, and a process on another
    host writing into a shared network folder has a PID that means nothing
    here.  The lock keeps such a writer out (see ``docs/shards.md``).  A PID
    that was reused by an unrelated live process keeps its file: a leak until
    that process ends, never the loss of a file still being written.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid = tmp.name.rpartition("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


# --- one writer per output -------------------------------------------------------


class Busy(BlurgenError):
    """Another live process holds the lock of an output (the message is one line)."""


def lock_name(path: str | os.PathLike) -> Path:
    """``.NAME.lock`` beside ``path``: the lock file of the output ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def exclusive_lock(path: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Hold the advisory lock of the output ``path`` (the file ``.NAME.lock``
    beside it) for the block; raise :class:`Busy` at once, naming the
    holder's PID and host, if another process holds it.

    The lock is ``flock``: the kernel drops it when its holder dies, however
    (kill -9 included), so a lock is never stale; Linux maps it onto NFS
    byte-range locks, so it also keeps out a writer on another host of a
    shared folder.  Where the file system refuses locks (ENOLCK, EOPNOTSUPP:
    NFS mounted ``nolock``, some FUSE file systems) the block runs unlocked,
    as it did before locks existed.  The lock file holds ``PID HOST`` of its
    holder and is removed when the block ends.  ``what`` names the output
    in the error message (default: ``path``).
    """
    import fcntl
    import socket

    lock = lock_name(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = _busy(fd, lock, what or path)
            os.close(fd)
            raise Busy(message) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            break  # no locks on this file system: run unlocked
        # The previous holder removes the file when it is done; if it did so
        # between our open and our flock, we hold a lock on a file nobody else
        # can open any more: start again on the current one.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds without the note, which only names the holder
            pass
        yield
    finally:
        # Removed while still locked: whoever opened it meanwhile sees the
        # file gone after its flock, above, and retries.
        lock.unlink(missing_ok=True)
        os.close(fd)


def _busy(fd: int, lock: Path, what) -> str:
    """The one-line refusal naming the holder of the lock open as ``fd``."""
    holder = os.pread(fd, 200, 0).decode(errors="replace").split()
    who = f"PID {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another process (PID not written yet)"
    return f"{what} is being written by {who}; wait for it to finish or stop it (lock: {lock})"


def check_unlocked(path: str | os.PathLike, what: str = "") -> None:
    """Raise :class:`Busy` (as :func:`exclusive_lock` does) if another process holds the
    lock of ``path``; take nothing.  For a run about to delete files of another output."""
    import fcntl

    lock = lock_name(path)
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Busy(_busy(fd, lock, what or path)) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
    finally:
        os.close(fd)  # also drops the lock, if we took it


# --- a full disk -----------------------------------------------------------------

#: errno values that mean "no room to write": a full disk, a full quota, or a
#: file-size limit (ulimit -f, a batch scheduler's).
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def error_number(exc: BaseException) -> int | None:
    """The errno behind an OSError, also one that h5py raised without it set
    (HDF5 reports the failed write(2) as ``errno = 28`` in the message, and
    h5py raises some of those as RuntimeError)."""
    number = getattr(exc, "errno", None)
    if number is None:
        match = re.search(r"errno = (\d+)", str(exc))
        number = int(match[1]) if match else None
    return number


def no_room(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for want of room (:data:`NO_ROOM`)."""
    return error_number(exc) in NO_ROOM


def describe_os_error(exc: BaseException) -> str:
    """One line for an OSError (HDF5's messages span lines): ``strerror`` of its errno."""
    number = error_number(exc)
    if number:
        return os.strerror(number)
    return " ".join(str(exc).split())


def close_hdf5(f, flush: bool = True) -> None:
    """Close an ``h5py.File`` open for writing, also after a write failed.

    HDF5 2.0 leaves a file whose closing failed (a full disk: closing writes
    the cached chunks and metadata) half closed, and the process then dies
    of a segmentation fault when h5py frees its objects.  So the file is
    flushed first, while every object is still open (``flush=True``), and if
    that fails, or ``flush=False`` (the writing failed or was interrupted),
    its descriptor is pointed at /dev/null before closing: the close then
    succeeds, and what HDF5 still held is dropped — the caller is
    about to remove the temporary file anyway.  A failed flush is raised as
    OSError with the errno HDF5 reported.
    """
    if flush:
        try:
            flush_hdf5(f)
        except OSError:
            _discard_writes(f)
            _close_or_abandon(f)
            raise
    else:
        _discard_writes(f)
        _close_or_abandon(f)
        return
    f.close()


def flush_hdf5(obj) -> None:
    """Write out what HDF5 caches for an h5py File or Dataset.  A failed write
    is raised as OSError with the errno HDF5 reported (h5py raises some as
    RuntimeError without one); other errors are raised as they come."""
    try:
        obj.flush()
    except (OSError, RuntimeError) as exc:  # h5py raises a failed flush as either
        number = error_number(exc)
        if number is None:
            raise
        raise OSError(number, os.strerror(number), obj.file.filename) from None


# Files that HDF5 could not close (see _close_or_abandon); never freed, on purpose.
_ABANDONED: list = []


def _close_or_abandon(f) -> None:
    """Close ``f``; if HDF5 refuses (a flush that failed half-way leaves its
    metadata cache unable to flush again: "slist already enabled"), keep the
    object alive for the rest of the process instead, because freeing it
    would crash the process.  Its descriptor already points to /dev/null, and
    its temporary file is removed by the caller (unlinking works on an open
    file), so only a little memory is lost."""
    try:
        f.close()
    except (OSError, RuntimeError):  # only after a write already failed: the run reports that one
        _ABANDONED.append(f)


def _discard_writes(f) -> None:
    """Point an open h5py file's descriptor at /dev/null, so that HDF5 can close it
    whatever room the disk (or a file-size limit) leaves: its writes then succeed
    and go nowhere.  (An in-memory file would do on a full disk, but not under a
    file-size limit, which applies to every file.)"""
    if not f.id.valid:
        return
    try:
        fd = f.id.get_vfd_handle()
    except (OSError, RuntimeError, ValueError):  # not the sec2 (POSIX) driver: no descriptor to swap
        return
    if not isinstance(fd, int):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)

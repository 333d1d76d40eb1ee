"""LMDB environments of PNG images in BasicSR's format, written so that a killed writer resumes.

The format, as BasicSR's ``basicsr/utils/lmdb_util.py`` (``make_lmdb_from_imgs``)
writes it and ``basicsr/data/data_util.py`` (``paired_paths_from_lmdb``) and
``basicsr/utils/file_client.py`` (``LmdbBackend``) read it; NAFNet carries the
same code:

* ``NAME.lmdb/`` is an LMDB environment (``data.mdb``, ``lock.mdb``) whose
  keys are image names without extension, ASCII-encoded, and whose values are
  the bytes of ``cv2.imencode('.png', bgr, [cv2.IMWRITE_PNG_COMPRESSION, level])``
  (OpenCV's BGR channel order; the reader decodes them with ``cv2.imdecode``).
* ``NAME.lmdb/meta_info.txt``: one line per image, ``KEY.png (h,w,c) level``.
  The readers take the key of a line as ``line.split('.')[0]``, so a key holds
  no dot; a paired data set is two environments with the same key set.
* ``make_lmdb_from_imgs`` sizes the map as 10 × the encoded size of one image
  × the number of images.

BasicSR writes an environment in one go and refuses an existing folder; here
values are committed in batches (:func:`put_all`), a resume skips the keys
already there (:func:`keys`), the map grows when it fills, and ``meta_info.txt``
is written atomically at the end from the keys the environment holds
(:func:`write_meta_info`), so that a reader never sees a listed key that is
missing.  The ``lmdb`` package is optional (``pip install 'blurgen[lmdb]'``).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

from blurgen.errors import BlurgenError
from blurgen.plumbing import files

META_INFO = "meta_info.txt"
#: zlib level of the PNG values: make_lmdb_from_imgs' default (``compress_level=1``).
PNG_LEVEL = 1
#: make_lmdb_from_imgs' map size: this many times the bytes of the images.
MAP_FACTOR = 10
#: The channels of a PNG by its IHDR colour type, as ``cv2.imread(..., IMREAD_UNCHANGED)`` gives them.
_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


class LmdbError(BlurgenError):
    """The lmdb package is missing, or an environment cannot be opened or written (one line)."""


def require():
    """The ``lmdb`` module, or LmdbError (one line with the install hint) when it is not installed."""
    try:
        import lmdb
    except ImportError:
        raise LmdbError("the lmdb layout needs the Python package lmdb: pip install 'blurgen[lmdb]'") from None
    return lmdb


def open_env(path: str | os.PathLike):
    """The LMDB environment at folder ``path`` (made if missing), for writing.  LmdbError if it
    cannot be opened (not an LMDB folder, a damaged one, no permission)."""
    lmdb = require()
    try:
        # The map starts small and grows as put_all needs; an existing environment opens at its own size.
        return lmdb.open(str(path), map_size=1 << 20, subdir=True)
    except lmdb.Error as exc:
        raise LmdbError(f"{path}: cannot open as LMDB ({_one_line(exc)})") from None


def keys(env) -> set[str]:
    """Every key of ``env``, as text."""
    with env.begin() as txn:
        return {key.decode("ascii") for key in txn.cursor().iternext(keys=True, values=False)}


def reserve(env, nbytes: int) -> None:
    """Make ``env``'s map at least ``MAP_FACTOR`` × ``nbytes`` (make_lmdb_from_imgs' rule for
    ``nbytes`` of values in all); it never shrinks.  No transaction of ``env`` may be open."""
    size = MAP_FACTOR * int(nbytes)
    if size > env.info()["map_size"]:
        env.set_mapsize(size)


def put_all(env, items: list[tuple[str, bytes]], where: str | os.PathLike = "") -> None:
    """Store ``items`` [(key, value)] in ``env`` in one transaction (all or none), doubling
    the map and trying again when it is full.  Keys are ASCII without dots and spaces
    (ValueError otherwise: the readers could not find them).  LmdbError on a failed write
    (a full disk), naming ``where``."""
    lmdb = require()
    for key, _value in items:
        check_key(key)
    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in items:
                    txn.put(key.encode("ascii"), value)
            return
        except lmdb.MapFullError:
            env.set_mapsize(2 * env.info()["map_size"])
        except lmdb.Error as exc:
            raise LmdbError(f"{where or env.path()}: could not write ({_one_line(exc)})") from None


def check_key(key: str) -> None:
    """ValueError unless ``key`` is a key BasicSR's readers find: ASCII, no dot (meta_info lines are
    split at the first dot), no white space (nor at the first space), not empty."""
    if not key or not key.isascii() or "." in key or any(c.isspace() for c in key):
        raise ValueError(f"{key!r} is not a BasicSR LMDB key (ASCII, no dot, no white space)")


def png_shape(data: bytes | memoryview) -> tuple[int, int, int]:
    """(height, width, channels) of a PNG from its header (the IHDR chunk, bytes 16-25).
    ValueError if ``data`` does not start as a PNG does."""
    head = bytes(data[:26])
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or head[25] not in _CHANNELS:
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", head[16:24])
    return height, width, _CHANNELS[head[25]]


def meta_info(env, level: int = PNG_LEVEL) -> str:
    """``meta_info.txt`` of ``env``: ``KEY.png (h,w,c) level`` for each key in key order (LMDB's
    byte order), the shape read from each value's PNG header."""
    lines = []
    with env.begin(buffers=True) as txn:
        for key, value in txn.cursor():
            h, w, c = png_shape(value)
            lines.append(f"{bytes(key).decode('ascii')}.png ({h},{w},{c}) {level}\n")
    return "".join(lines)


def write_meta_info(env, folder: str | os.PathLike, level: int = PNG_LEVEL) -> None:
    """Write :func:`meta_info` as ``folder/meta_info.txt``, atomically."""
    files.write_text(Path(folder) / META_INFO, meta_info(env, level))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

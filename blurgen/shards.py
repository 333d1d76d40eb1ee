"""The shard format: HDF5 files of aligned (blurred, sharp) pairs, plus their manifest.

This module owns the format; ``blurgen synthesize`` writes through it and the
trainer reads through it.  The layout is documented in ``docs/shards.md``.

A shard folder holds ``shard-NNNNN.h5`` files and a ``manifest.json`` that lists
the finished ones with their sample counts and SHA-256 checksums.  A shard is
written under a temporary name and renamed when complete, and the manifest is
rewritten atomically after it, so a folder never lists a half-written shard.

Images are stored uncompressed, one sample per chunk: measured on this
project's machine, reading random 256×256 pairs ran at ~9,600 pairs/s per core
uncompressed against ~700 with LZF and ~550 with gzip-1, for a saving of only
15-26 % of disk (see README, Benchmarks).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

FORMAT = "blurgen.shard"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "blurgen.shards"

# Chunk side for whole images (--full): random crops then read only the tiles
# they touch.
_TILE = 128


class ShardError(ValueError):
    """A shard or shard folder that cannot be read; the message is one line."""


@dataclass(frozen=True)
class ShardInfo:
    """A finished shard: its path and number of samples."""

    path: Path
    count: int
    checksum: str = ""


def shard_name(index: int) -> str:
    """File name of shard ``index``: ``shard-00042.h5``."""
    return f"shard-{index:05d}.h5"


def file_checksum(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as ``"sha256:<hex>"``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


# --- writing -----------------------------------------------------------------


def write_shard(
    path: str | os.PathLike,
    blurred: np.ndarray | Sequence[np.ndarray],
    sharp: np.ndarray | Sequence[np.ndarray],
    kernels: np.ndarray,
    meta: dict[str, np.ndarray] | None = None,
    attrs: dict | None = None,
) -> str:
    """Write one shard atomically (temporary file, then rename) and return its checksum.

    Parameters
    ----------
    path : path of the shard to write (``shard-NNNNN.h5``).
    blurred, sharp : (N, H, W, 3) uint8 RGB arrays (crops), or sequences of N
        (H_i, W_i, 3) uint8 arrays of varying sizes (whole images); pair i of
        both must have the same shape.
    kernels : (N, k, k) float32 — the PSF that blurred each sample.
    meta : name -> (N,) or (N, ...) array of per-sample fields (``source``
        strings, ``crop_box`` (N, 4) ints, kernel seed and parameters, realism
        settings...).  Names must not clash with ``blurred``, ``sharp``,
        ``kernel`` or ``shape``.
    attrs : file attributes (str, int, float, bool, or anything JSON-able).

    Returns
    -------
    str — ``"sha256:<hex>"`` of the written file.
    """
    import h5py

    path = Path(path)
    n = len(blurred)
    if len(sharp) != n or len(kernels) != n:
        raise ValueError(f"blurred, sharp and kernels must have the same length ({n}, {len(sharp)}, {len(kernels)})")
    for b, s in zip(blurred, sharp):
        if b.shape != s.shape or b.dtype != np.uint8 or s.dtype != np.uint8 or b.ndim != 3 or b.shape[2] != 3:
            raise ValueError(f"pairs must be equal-shaped (H, W, 3) uint8, got {b.shape} {b.dtype} / {s.shape} {s.dtype}")
    fixed = isinstance(blurred, np.ndarray) and isinstance(sharp, np.ndarray) and blurred.ndim == 4
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            if fixed:
                for name, images in (("blurred", blurred), ("sharp", sharp)):
                    chunks = (1, *images.shape[1:]) if n else None
                    f.create_dataset(name, data=images, chunks=chunks)
            else:
                for name, images in (("blurred", blurred), ("sharp", sharp)):
                    group = f.create_group(name)
                    for i, image in enumerate(images):
                        h, w = image.shape[:2]
                        group.create_dataset(f"{i:06d}", data=image, chunks=(min(h, _TILE), min(w, _TILE), 3))
                f.create_dataset("shape", data=np.array([b.shape[:2] for b in blurred], np.int32).reshape(n, 2))
            f.create_dataset("kernel", data=np.asarray(kernels, np.float32), compression="gzip", shuffle=True)
            for name, values in (meta or {}).items():
                if name in ("blurred", "sharp", "kernel", "shape"):
                    raise ValueError(f"meta field {name!r} clashes with a dataset of the format")
                values = np.asarray(values)
                if len(values) != n:
                    raise ValueError(f"meta field {name!r} has {len(values)} rows, expected {n}")
                if values.dtype.kind in "UO":
                    f.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype("utf-8"))
                else:
                    f.create_dataset(name, data=values)
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["count"] = n
            f.attrs["layout"] = "crops" if fixed else "images"
            for key, value in (attrs or {}).items():
                f.attrs[key] = value if isinstance(value, (str, int, float, bool, np.generic)) else json.dumps(value)
        checksum = file_checksum(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return checksum


# --- the manifest --------------------------------------------------------------


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The folder's manifest as a dict, or None if there is none.  Raises ShardError if it is unreadable."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or "shards" not in manifest:
        raise ShardError(f"{path}: not a blurgen shard manifest")
    return manifest


def write_manifest(folder: str | os.PathLike, manifest: dict) -> None:
    """Write ``manifest.json`` atomically.  ``manifest["shards"]`` maps shard file
    name to ``{"count": int, "checksum": str, "bytes": int}``."""
    path = Path(folder) / MANIFEST
    manifest = {"format": MANIFEST_FORMAT, "format_version": FORMAT_VERSION, **manifest}
    tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def find_shards(folder: str | os.PathLike) -> list[ShardInfo]:
    """The finished shards the folder's manifest lists, in name order.

    Raises ShardError with a one-line message if the folder, its manifest or a
    listed shard is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ShardError(f"{folder}: no such shard folder")
    manifest = read_manifest(folder)
    if manifest is None:
        raise ShardError(f"{folder}: no {MANIFEST} (not a shard folder made by `blurgen synthesize`)")
    infos = []
    for name, entry in sorted(manifest["shards"].items()):
        path = folder / name
        if not path.is_file():
            raise ShardError(f"{path}: listed in {MANIFEST} but missing")
        infos.append(ShardInfo(path, int(entry["count"]), entry.get("checksum", "")))
    if not infos:
        raise ShardError(f"{folder}: the manifest lists no finished shard")
    return infos


# --- reading -------------------------------------------------------------------


class ShardReader:
    """Reads one shard.  The HDF5 file opens lazily on first access and the
    reader pickles without its handle, so a reader built before DataLoader
    workers fork is safe: each worker opens its own handle.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = None
        self._layout = self._count = self._shape = None

    def __getstate__(self):
        return {"path": self.path, "_file": None, "_layout": None, "_count": None, "_shape": None}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def file(self):
        if self._file is None:
            import h5py

            try:
                f = h5py.File(self.path, "r")
            except OSError as exc:
                raise ShardError(f"{self.path}: not a readable shard ({exc})") from None
            if f.attrs.get("format") != FORMAT:
                f.close()
                raise ShardError(f"{self.path}: not a blurgen shard")
            if int(f.attrs.get("format_version", 0)) > FORMAT_VERSION:
                f.close()
                raise ShardError(f"{self.path}: shard format {f.attrs['format_version']} is newer than this blurgen reads")
            self._file = f
            # Attribute look-ups cost ~0.1 ms each in h5py: read them once per open.
            self._layout = str(f.attrs["layout"])
            self._count = int(f.attrs["count"])
            self._shape = tuple(int(s) for s in f["blurred"].shape[1:3]) if self._layout == "crops" else None
        return self._file

    @property
    def layout(self) -> str:
        """``"crops"`` (one (N, H, W, 3) array) or ``"images"`` (one array per sample)."""
        self.file
        return self._layout

    @property
    def attrs(self) -> dict:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.file.attrs.items()}

    def __len__(self) -> int:
        self.file
        return self._count

    def _check(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for {self.path.name} ({n} samples)")
        return i % n

    def image_shape(self, i: int) -> tuple[int, int]:
        """(H, W) of sample ``i``."""
        i = self._check(i)
        if self.layout == "crops":
            return self._shape
        return tuple(int(s) for s in self.file["shape"][i])

    def read_pair(self, i: int, box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(blurred, sharp) of sample ``i``, uint8 (h, w, 3) RGB.

        ``box`` = (y0, x0, y1, x1) reads only that window (only the chunks it
        touches are read from disk).
        """
        i = self._check(i)
        window = (slice(None), slice(None)) if box is None else (slice(box[0], box[2]), slice(box[1], box[3]))
        try:
            if self.layout == "crops":
                return self.file["blurred"][(i, *window)], self.file["sharp"][(i, *window)]
            key = f"{i:06d}"
            return self.file["blurred"][key][window], self.file["sharp"][key][window]
        except (OSError, KeyError) as exc:
            raise ShardError(f"{self.path}: sample {i} unreadable ({exc})") from None

    def fields(self) -> list[str]:
        """Names of the per-sample fields besides the images."""
        return sorted(k for k in self.file.keys() if k not in ("blurred", "sharp", "shape"))

    def read_sample(self, i: int) -> dict:
        """Every stored field of sample ``i``: ``blurred``, ``sharp``, ``kernel`` and the meta fields."""
        i = self._check(i)
        blurred, sharp = self.read_pair(i)
        sample = {"blurred": blurred, "sharp": sharp}
        for name in self.fields():
            value = self.file[name][i]
            sample[name] = value.decode("utf-8") if isinstance(value, bytes) else value
        return sample

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._layout = self._count = self._shape = None


# --- checking ------------------------------------------------------------------


def verify_shard(path: str | os.PathLike, entry: dict) -> str | None:
    """Check one shard against its manifest entry; return a one-line problem or None.

    Reads every sample: checksum, sample count, shapes and dtypes of the
    images, and that each stored kernel is a PSF (non-negative, sums to 1).
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    if entry.get("checksum") and file_checksum(path) != entry["checksum"]:
        return "checksum differs from the manifest (file changed or damaged)"
    try:
        with ShardReader(path) as reader:
            n = len(reader)
            if n != int(entry.get("count", n)):
                return f"{n} samples, the manifest says {entry['count']}"
            kernels = reader.file["kernel"][()]
            if kernels.shape[0] != n or kernels.dtype != np.float32:
                return f"kernel dataset has shape {kernels.shape} {kernels.dtype}, expected ({n}, k, k) float32"
            if n and (kernels.min() < 0 or np.abs(kernels.sum(axis=(1, 2)) - 1).max() > 1e-4):
                return "a stored kernel is not a normalised PSF"
            for i in range(n):
                blurred, sharp = reader.read_pair(i)
                if blurred.dtype != np.uint8 or sharp.dtype != np.uint8 or blurred.shape != sharp.shape \
                        or blurred.ndim != 3 or blurred.shape[2] != 3:
                    return f"sample {i}: bad images {blurred.shape} {blurred.dtype} / {sharp.shape} {sharp.dtype}"
    except (ShardError, OSError, KeyError, ValueError) as exc:
        return str(exc).replace(str(path) + ": ", "")
    return None


def verify_folder(folder: str | os.PathLike, progress=None) -> tuple[int, list[tuple[str, str]]]:
    """Verify every shard the folder's manifest lists: (shards checked, [(name, problem)])."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise ShardError(f"{folder}: no {MANIFEST} (not a shard folder made by `blurgen synthesize`)")
    problems = []
    for name, entry in sorted(manifest["shards"].items()):
        problem = verify_shard(folder / name, entry)
        if problem:
            problems.append((name, problem))
        if progress:
            progress(1)
    return len(manifest["shards"]), problems

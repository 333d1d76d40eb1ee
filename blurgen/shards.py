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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from blurgen import files

FORMAT = "blurgen.shard"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "blurgen.shards"

#: Datasets of the format itself; per-sample meta fields may not take these names.
CORE_DATASETS = ("blurred", "sharp", "kernel", "shape")

# Chunk side for whole images (--full): random crops then read only the tiles
# they touch.
_TILE = 128
_PART_MANIFEST = re.compile(r"manifest\.part-(\d+)-of-(\d+)\.json")


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


class ShardWriter:
    """Writes one shard sample by sample, so that a shard never has to fit in memory.

    ::

        with ShardWriter(path, crop=(256, 256), attrs={...}, kernel_size=64) as writer:
            writer.add(blurred, sharp, kernel, {"source": "a.jpg", "crop_box": box})
        writer.checksum   # "sha256:<hex>" of the finished file

    The file is written as ``.NAME.tmp-PID`` beside ``path`` and renamed when
    the ``with`` block ends normally; on an exception the temporary file is
    removed and ``path`` is left as it was.  Images go to disk as they come;
    only the small per-sample fields (kernels, meta) are held until the end.

    Parameters
    ----------
    path : the shard to write.
    crop : (H, W) of every sample, for the ``crops`` layout ((N, H, W, 3)
        datasets chunked one sample per chunk), or None for the ``images``
        layout (one dataset per sample, any size, in 128×128 tiles).
    attrs : file attributes (str, int, float, bool, or anything JSON-able).
    kernel_size : side k of the PSFs (gives an empty shard its (0, k, k) ``kernel``).
    fields : name -> array whose dtype and trailing shape an empty shard's
        meta field takes (a shard with samples takes them from the samples).
    expected : samples expected, if known: the crop datasets are allocated
        that large at once and trimmed at the end (any number may be added).
    """

    # Crops are written in batches of this many samples (6 MB of 256x256
    # pairs): one h5py call per sample costs as much again as the writing.
    _BATCH = 16

    def __init__(self, path: str | os.PathLike, crop: tuple[int, int] | None = None, attrs: dict | None = None,
                 kernel_size: int = 1, fields: dict[str, np.ndarray] | None = None, expected: int = 0):
        self.path = Path(path)
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.attrs = dict(attrs or {})
        self.kernel_size = int(kernel_size)
        self.fields = {name: np.asarray(v) for name, v in (fields or {}).items()}
        self.expected = max(0, int(expected))
        self.count = 0
        self.checksum: str | None = None
        self._tmp = files.temporary_name(self.path)
        self._file = None
        self._kernels: list[np.ndarray] = []
        self._meta: dict[str, list] = {}
        self._shapes: list[tuple[int, int]] = []
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # crops not yet on disk
        self._written = 0  # crops on disk
        # Every dataset made stays referenced until the file is closed: h5py
        # closes a dataset whose last reference goes, HDF5 then writes its
        # cached chunks, and a write that fails there (a full disk) is only
        # printed ("Exception ignored") and leaves HDF5 broken.  Held here,
        # they are written by the explicit flush of files.close_hdf5, which
        # reports the failure.
        self._datasets: list = []

    def __enter__(self) -> "ShardWriter":
        import h5py

        self._file = h5py.File(self._tmp, "w")
        if self.crop is not None:
            h, w = self.crop
            for name in ("blurred", "sharp"):
                self._datasets.append(self._file.create_dataset(name, (self.expected, h, w, 3), np.uint8,
                                                                chunks=(1, h, w, 3), maxshape=(None, h, w, 3)))
        else:
            for name in ("blurred", "sharp"):
                self._file.create_group(name)
        return self

    def add(self, blurred: np.ndarray, sharp: np.ndarray, kernel: np.ndarray, meta: dict | None = None) -> None:
        """Append one pair: equal-shaped (H, W, 3) uint8 RGB images, the (k, k) PSF, and its meta
        fields (the same names for every sample; values of a fixed shape)."""
        if blurred.shape != sharp.shape or blurred.dtype != np.uint8 or sharp.dtype != np.uint8 \
                or blurred.ndim != 3 or blurred.shape[2] != 3:
            raise ValueError(f"pairs must be equal-shaped (H, W, 3) uint8, got "
                             f"{blurred.shape} {blurred.dtype} / {sharp.shape} {sharp.dtype}")
        meta = meta or {}
        if self.count == 0:
            for name in meta:
                if name in CORE_DATASETS:
                    raise ValueError(f"meta field {name!r} clashes with a dataset of the format")
            self._meta = {name: [] for name in meta}
        elif meta.keys() != self._meta.keys():
            raise ValueError(f"sample {self.count} has the meta fields {sorted(meta)}, "
                             f"the shard's are {sorted(self._meta)}")
        i = self.count
        if self.crop is not None:
            if blurred.shape[:2] != self.crop:
                raise ValueError(f"sample {i} is {blurred.shape[:2]}, the shard holds {self.crop} crops")
            self._pending.append((blurred, sharp))
            if len(self._pending) == self._BATCH:
                self._flush()
        else:
            h, w = blurred.shape[:2]
            for name, image in (("blurred", blurred), ("sharp", sharp)):
                # Written out now, where a failure raises, so that dropping it is safe
                # (holding one per sample would hold their cached chunks too).
                files.flush_hdf5(self._file[name].create_dataset(f"{i:06d}", data=image,
                                                                 chunks=(min(h, _TILE), min(w, _TILE), 3)))
            self._shapes.append((h, w))
        self._kernels.append(np.asarray(kernel, np.float32))
        for name, value in meta.items():
            self._meta[name].append(value)
        self.count += 1

    def _flush(self) -> None:
        """Write the pending crops to disk."""
        if not self._pending:
            return
        first, stop = self._written, self._written + len(self._pending)
        for k, name in enumerate(("blurred", "sharp")):
            ds = self._file[name]
            if ds.shape[0] < stop:
                ds.resize(stop, axis=0)
            ds[first:stop] = np.stack([pair[k] for pair in self._pending])
        self._pending.clear()
        self._written = stop

    def _finish(self) -> None:
        import h5py

        f, n = self._file, self.count
        if self.crop is not None:
            self._flush()
            for name in ("blurred", "sharp"):
                f[name].resize(n, axis=0)
        else:
            self._datasets.append(f.create_dataset("shape", data=np.array(self._shapes, np.int32).reshape(n, 2)))
        kernels = np.stack(self._kernels) if n else np.zeros((0, self.kernel_size, self.kernel_size), np.float32)
        # PSFs are mostly zeros: gzip with byte shuffling stores them ~10x smaller.
        self._datasets.append(f.create_dataset("kernel", data=kernels, compression="gzip", shuffle=True,
                                               chunks=(min(n, 64), *kernels.shape[1:]) if n else None))
        columns = {name: np.asarray(values) for name, values in self._meta.items()} if n else self.fields
        for name, values in columns.items():
            if name in CORE_DATASETS:
                raise ValueError(f"meta field {name!r} clashes with a dataset of the format")
            if values.dtype.kind in "UO":
                self._datasets.append(f.create_dataset(name, data=values.astype(object),
                                                       dtype=h5py.string_dtype("utf-8")))
            else:
                self._datasets.append(f.create_dataset(name, data=values))
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["count"] = n
        f.attrs["layout"] = "crops" if self.crop is not None else "images"
        for key, value in self.attrs.items():
            f.attrs[key] = value if isinstance(value, (str, int, float, bool, np.generic)) else json.dumps(value)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            finished = False
            try:
                if exc_type is None:
                    self._finish()
                    finished = True
            finally:
                # Closes without crashing after a failed write (a full disk).
                files.close_hdf5(self._file, flush=finished)
            if exc_type is None:
                self.checksum = file_checksum(self._tmp)
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)


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
    str — ``"sha256:<hex>"`` of the written file.  (:class:`ShardWriter`
    writes the same layout one sample at a time.)
    """
    n = len(blurred)
    if len(sharp) != n or len(kernels) != n:
        raise ValueError(f"blurred, sharp and kernels must have the same length ({n}, {len(sharp)}, {len(kernels)})")
    meta = {name: np.asarray(values) for name, values in (meta or {}).items()}
    for name, values in meta.items():
        if len(values) != n:
            raise ValueError(f"meta field {name!r} has {len(values)} rows, expected {n}")
    fixed = isinstance(blurred, np.ndarray) and isinstance(sharp, np.ndarray) and blurred.ndim == 4
    kernel_size = np.shape(kernels)[-1] if np.ndim(kernels) == 3 else 1
    with ShardWriter(path, crop=blurred.shape[1:3] if fixed else None, attrs=attrs, kernel_size=kernel_size,
                     fields=meta, expected=n) as writer:
        for i in range(n):
            writer.add(blurred[i], sharp[i], kernels[i], {name: values[i] for name, values in meta.items()})
    return writer.checksum


# --- the manifest --------------------------------------------------------------


def manifest_name(part: tuple[int, int] = (0, 1)) -> str:
    """``manifest.json`` for a whole run; ``manifest.part-I-of-N.json`` for part I of N
    (``synthesize --part I/N``), so that the parts of a job array can share a folder."""
    i, n = part
    return MANIFEST if n == 1 else f"manifest.part-{i}-of-{n}.json"


def manifest_part(name: str) -> tuple[int, int] | None:
    """The part (i, n) whose manifest is called ``name``; (0, 1) for ``manifest.json``, None for another name."""
    if name == MANIFEST:
        return (0, 1)
    match = _PART_MANIFEST.fullmatch(name)
    return (int(match[1]), int(match[2])) if match else None


def part_manifests(folder: str | os.PathLike) -> dict[tuple[int, int], str]:
    """The per-part manifests in ``folder``: {(i, n): file name}, in part order."""
    found = {}
    for path in Path(folder).glob("manifest.part-*-of-*.json"):
        part = manifest_part(path.name)
        if part is not None:
            found[part] = path.name
    return dict(sorted(found.items()))


def read_manifest(folder: str | os.PathLike, name: str = MANIFEST) -> dict | None:
    """The manifest ``name`` of ``folder`` as a dict, or None if there is none.

    Raises ShardError if it exists but is unreadable.
    """
    path = Path(folder) / name
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT \
            or not isinstance(manifest.get("shards"), dict):
        raise ShardError(f"{path}: not a blurgen shard manifest")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ShardError(f"{path}: manifest format {manifest['format_version']} is newer than this blurgen reads")
    return manifest


def write_manifest(folder: str | os.PathLike, manifest: dict, name: str = MANIFEST) -> None:
    """Write a manifest atomically.  ``manifest["shards"]`` maps shard file
    name to ``{"count": int, "checksum": str, "bytes": int}``."""
    path = Path(folder) / name
    manifest = {"format": MANIFEST_FORMAT, "format_version": FORMAT_VERSION, **manifest}
    files.write_text(path, json.dumps(manifest, indent=1, sort_keys=True))


def same_dataset(a: dict, b: dict) -> bool:
    """Whether two manifests' arguments describe one data set (parts of it, or all of it)."""
    def strip(m):
        return {k: v for k, v in (m.get("arguments") or {}).items() if k != "part"}
    return strip(a) == strip(b)


def read_manifests(folder: str | os.PathLike) -> dict[str, dict]:
    """Every manifest of ``folder``, {file name: manifest}: ``manifest.json`` alone,
    or the part manifests (parts of one ``--part I/N`` data set), or {}.

    Raises ShardError if the folder mixes a whole run with parts, or parts of
    different data sets.
    """
    folder = Path(folder)
    whole = read_manifest(folder)
    parts = {name: read_manifest(folder, name) for name in part_manifests(folder).values()}
    if whole is not None and parts:
        raise ShardError(f"{folder}: holds both {MANIFEST} and part manifests ({next(iter(parts))}); "
                         "they are different data sets")
    if whole is not None:
        return {MANIFEST: whole}
    counts = {n for _, n in part_manifests(folder)}
    first = next(iter(parts.values()), None)
    if len(counts) > 1 or any(not same_dataset(first, m) for m in parts.values()):
        raise ShardError(f"{folder}: its part manifests are of different data sets "
                         "(other arguments or another number of parts)")
    return parts


def _listed_shards(folder: Path) -> list[tuple[str, str, dict]]:
    """(shard name, manifest name, manifest entry) of every listed shard, in name order."""
    manifests = read_manifests(folder)
    if not manifests:
        raise ShardError(f"{folder}: no {MANIFEST} (not a shard folder made by `blurgen synthesize`)")
    listed = [(shard, name, entry) for name, m in manifests.items() for shard, entry in m["shards"].items()]
    return sorted(listed)


def find_shards(folder: str | os.PathLike) -> list[ShardInfo]:
    """The finished shards the folder's manifest(s) list, in name order.

    The parts of a ``--part`` data set that share a folder are read as one.
    Raises ShardError with a one-line message if the folder, its manifest or a
    listed shard is missing, or if no shard is listed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ShardError(f"{folder}: no such shard folder")
    infos = []
    for shard, manifest, entry in _listed_shards(folder):
        path = folder / shard
        if not path.is_file():
            raise ShardError(f"{path}: listed in {manifest} but missing")
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
        self._pair = None  # (blurred, sharp) h5py datasets of the crops layout
        self._raw = False  # crops stored uncompressed, one per chunk: read chunks directly

    def __getstate__(self):
        return {"path": self.path, "_file": None, "_layout": None, "_count": None, "_shape": None,
                "_pair": None, "_raw": False}

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
            # Attribute and dataset look-ups cost ~0.1 ms each in h5py, as much
            # as reading a 256x256 pair: do them once per open.
            self._layout = str(f.attrs["layout"])
            self._count = int(f.attrs["count"])
            if self._layout == "crops":
                self._pair = (f["blurred"], f["sharp"])
                self._shape = tuple(int(s) for s in self._pair[0].shape[1:3])
                whole = (1, *self._shape, 3)
                self._raw = all(ds.chunks == whole and ds.compression is None and not ds.shuffle
                                and not ds.fletcher32 and ds.scaleoffset is None for ds in self._pair)
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
            if self._raw:
                return self._read_chunk(0, i, window), self._read_chunk(1, i, window)
            if self.layout == "crops":
                return self._pair[0][(i, *window)], self._pair[1][(i, *window)]
            key = f"{i:06d}"
            return self.file["blurred"][key][window], self.file["sharp"][key][window]
        except (OSError, KeyError) as exc:
            raise ShardError(f"{self.path}: sample {i} unreadable ({exc})") from None

    def _read_chunk(self, which: int, i: int, window: tuple[slice, slice]) -> np.ndarray:
        # An uncompressed sample is one chunk of raw bytes: reading it whole and
        # cutting the window in memory is 2x faster than an h5py selection.
        _, data = self._pair[which].id.read_direct_chunk((i, 0, 0, 0))
        image = np.frombuffer(data, np.uint8).reshape(*self._shape, 3)
        return image[window].copy()

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
            self._layout = self._count = self._shape = self._pair = None
            self._raw = False


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
    """Verify every shard the folder's manifest(s) list: (shards checked, [(name, problem)])."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ShardError(f"{folder}: no such shard folder")
    listed = _listed_shards(folder)
    problems = []
    for name, _, entry in listed:
        problem = verify_shard(folder / name, entry)
        if problem:
            problems.append((name, problem))
        if progress:
            progress(1)
    return len(listed), problems

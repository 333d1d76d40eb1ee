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

Since format version 2 every stored chunk of image bytes has its own xxh3-64
hash (``sample_hash`` for crops, ``tile_hash`` per 128-px tile for whole
images), checked on every read: a flipped byte in the pixels raises
:class:`DamagedSample` instead of handing back wrong pixels.  Version-1 shards
(no hashes) are still read, unchecked.

Format version 3 marks *sharp-only* shards (``synthesize --sharp-only``, for
``trainer fit --online``): the attribute ``sharp_only``, a ``sharp`` image per
sample and its hash, no ``blurred`` image and no ``kernel``.
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
import xxhash

from blurgen.errors import BlurgenError
from blurgen.plumbing import files

FORMAT = "blurgen.shard"
#: 2: per-sample (crops) or per-tile (whole images) xxh3-64 hashes of the pixels.
FORMAT_VERSION = 2
#: 3: sharp-only shards (``synthesize --sharp-only``: no ``blurred``, no
#: ``kernel``), so that an older reader refuses them in one line.  Shards with
#: pairs are still written as version 2, byte for byte as before.
SHARP_ONLY_VERSION = 3
#: The newest shard format this module reads.
READ_VERSION = 3
#: The hash of the image chunks, recorded in each shard's ``sample_hash_algorithm``.
SAMPLE_HASH = "xxh3_64"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "blurgen.shards"

#: Datasets of the format itself; per-sample meta fields may not take these names.
CORE_DATASETS = ("blurred", "sharp", "kernel", "shape", "sample_hash", "tile_hash", "tile_start")

# Chunk side for whole images (--full): random crops then read only the tiles
# they touch.
_TILE = 128
_PART_MANIFEST = re.compile(r"manifest\.part-(\d+)-of-(\d+)\.json")
# What a manifest may list: a plain file name in the folder, never a path.
_SHARD_NAME = re.compile(r"shard-\d{5,}\.h5")


class ShardError(BlurgenError):
    """A shard or shard folder that cannot be read; the message is one line."""


class SampleOutOfRange(ShardError, IndexError):
    """A sample index past the end of a shard (e.g. a manifest that lists more
    samples than the shard holds); an IndexError too, for sequence protocols."""


class DamagedSample(ShardError):
    """One sample's stored pixels do not match their hash (flipped bytes, a bad
    disk sector): the rest of the shard may be fine.  The message is one line."""


def chunk_hash(data) -> int:
    """xxh3-64 of a chunk's raw bytes (any C-contiguous buffer), as an int.

    xxh3 rather than the standard library's zlib.crc32: measured on this
    project's machine, crc32 hashes ~1 GB/s, which would make reading a
    256x256 pair several times slower; xxh3 does ~20 GB/s (bench/loader.py
    --verify prints the read rates with and without the check).
    """
    return xxhash.xxh3_64_intdigest(data)


def tile_hashes(image: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """Hashes of the HDF5 chunks of an (H, W, 3) uint8 image stored in chunks of
    ``tile`` = (th, tw, 3): (ceil(H/th), ceil(W/tw)) uint64.  HDF5 stores an
    edge chunk whole, padded with the fill value 0, so edge tiles are hashed
    padded with zeros."""
    h, w = image.shape[:2]
    th, tw = tile
    out = np.empty((-(-h // th), -(-w // tw)), np.uint64)
    padded = np.zeros((th, tw, 3), np.uint8)
    for ty in range(out.shape[0]):
        for tx in range(out.shape[1]):
            part = image[ty * th:(ty + 1) * th, tx * tw:(tx + 1) * tw]
            if part.shape[:2] == (th, tw):
                out[ty, tx] = chunk_hash(np.ascontiguousarray(part))
            else:
                padded[:] = 0
                padded[:part.shape[0], :part.shape[1]] = part
                out[ty, tx] = chunk_hash(padded)
    return out


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
    sharp_only : store sharp images only (format version 3): ``add`` takes
        None for the blurred image and the kernel.
    """

    # Crops are written in batches of this many samples (6 MB of 256x256
    # pairs): one h5py call per sample costs as much again as the writing.
    _BATCH = 16

    def __init__(self, path: str | os.PathLike, crop: tuple[int, int] | None = None, attrs: dict | None = None,
                 kernel_size: int = 1, fields: dict[str, np.ndarray] | None = None, expected: int = 0,
                 sharp_only: bool = False):
        self.path = Path(path)
        self.sharp_only = bool(sharp_only)
        self._images = ("sharp",) if self.sharp_only else ("blurred", "sharp")
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.attrs = dict(attrs or {})
        self.kernel_size = int(kernel_size)
        self.fields = {name: np.asarray(v) for name, v in (fields or {}).items()}
        self.expected = max(0, int(expected))
        self.count = 0
        self.checksum: str | None = None
        self._tmp = files.temporary_name(self.path)
        self._file = None
        self._discard = False
        self._kernels: list[np.ndarray] = []
        self._meta: dict[str, list] = {}
        self._shapes: list[tuple[int, int]] = []
        self._hashes: list[tuple[int, ...]] = []  # (blurred, sharp) or (sharp,) hash of each crop
        self._tiles: list[np.ndarray] = []  # (tiles, 2) hashes of each whole image's tiles
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
            for name in self._images:
                self._datasets.append(self._file.create_dataset(name, (self.expected, h, w, 3), np.uint8,
                                                                chunks=(1, h, w, 3), maxshape=(None, h, w, 3)))
        else:
            for name in self._images:
                self._file.create_group(name)
        return self

    def add(self, blurred: np.ndarray, sharp: np.ndarray, kernel: np.ndarray, meta: dict | None = None) -> None:
        """Append one pair: equal-shaped (H, W, 3) uint8 RGB images, the (k, k) PSF, and its meta
        fields (the same names for every sample; values of a fixed shape).  A sharp-only
        writer takes None for ``blurred`` and ``kernel``."""
        if self.sharp_only:
            if blurred is not None or kernel is not None:
                raise ValueError("a sharp-only shard stores no blurred image and no kernel")
            blurred = sharp  # the checks below are the sharp image's; nothing of it is stored twice
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
            images = (sharp,) if self.sharp_only else (blurred, sharp)
            self._pending.append(images)
            # A crop is one chunk: its C-order bytes are the chunk's bytes.
            self._hashes.append(tuple(chunk_hash(np.ascontiguousarray(image)) for image in images))
            if len(self._pending) == self._BATCH:
                self._flush()
        else:
            h, w = blurred.shape[:2]
            tile = (min(h, _TILE), min(w, _TILE))
            images = (sharp,) if self.sharp_only else (blurred, sharp)
            for name, image in zip(self._images, images):
                # Written out now, where a failure raises, so that dropping it is safe
                # (holding one per sample would hold their cached chunks too).
                files.flush_hdf5(self._file[name].create_dataset(f"{i:06d}", data=image, chunks=(*tile, 3)))
            self._tiles.append(np.stack([tile_hashes(image, tile).ravel() for image in images], 1))
            self._shapes.append((h, w))
        if not self.sharp_only:
            self._kernels.append(np.asarray(kernel, np.float32))
        for name, value in meta.items():
            self._meta[name].append(value)
        self.count += 1

    def discard(self) -> None:
        """Write nothing: the ``with`` block then ends by removing the temporary
        file, and ``path`` is left as it was (a shard with no samples is not
        worth a file; see :func:`is_fileless`)."""
        self._discard = True

    def _flush(self) -> None:
        """Write the pending crops to disk."""
        if not self._pending:
            return
        first, stop = self._written, self._written + len(self._pending)
        for k, name in enumerate(self._images):
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
            for name in self._images:
                f[name].resize(n, axis=0)
            self._datasets.append(f.create_dataset("sample_hash", data=np.array(self._hashes, np.uint64)
                                                   .reshape(n, len(self._images))))
        else:
            self._datasets.append(f.create_dataset("shape", data=np.array(self._shapes, np.int32).reshape(n, 2)))
            # All samples' tile hashes in one dataset (row-major tiles, sample
            # after sample), read once per open: a dataset per sample would cost
            # an HDF5 look-up per read.
            sizes = [len(t) for t in self._tiles]
            self._datasets.append(f.create_dataset(
                "tile_start", data=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)))
            self._datasets.append(f.create_dataset(
                "tile_hash", data=np.concatenate(self._tiles) if n else np.zeros((0, len(self._images)), np.uint64)))
        if not self.sharp_only:
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
        f.attrs["format_version"] = SHARP_ONLY_VERSION if self.sharp_only else FORMAT_VERSION
        f.attrs["count"] = n
        f.attrs["layout"] = "crops" if self.crop is not None else "images"
        f.attrs["sample_hash_algorithm"] = SAMPLE_HASH
        if self.sharp_only:  # absent from shards with pairs: their bytes stay as they were
            f.attrs["sharp_only"] = True
        for key, value in self.attrs.items():
            f.attrs[key] = value if isinstance(value, (str, int, float, bool, np.generic)) else json.dumps(value)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            finished = False
            try:
                if exc_type is None and not self._discard:
                    self._finish()
                    finished = True
            finally:
                # Closes without crashing after a failed write (a full disk).
                files.close_hdf5(self._file, flush=finished)
            if exc_type is None and not self._discard:
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
    version = manifest.get("format_version", 0)
    if not _is_int(version):
        raise ShardError(f"{path}: format_version is {version!r}, not an integer")
    if version > FORMAT_VERSION:
        raise ShardError(f"{path}: manifest format {manifest['format_version']} is newer than this blurgen reads")
    for shard, entry in manifest["shards"].items():
        problem = _entry_problem(shard, entry)
        if problem:
            raise ShardError(f"{path}: {problem}")
    return manifest


def is_fileless(entry: dict) -> bool:
    """Whether a manifest entry stands for a shard with no samples, which has
    no file: ``{"count": 0, "bytes": 0}`` (every photo of its range was
    skipped).  Such a shard is finished; readers skip it.  (Before, such shards
    were written as files of a few KB; those entries have their real ``bytes``.)"""
    return entry.get("count") == 0 and entry.get("bytes") == 0 and "checksum" not in entry


def unfinished(manifests: dict[str, dict]) -> str | None:
    """What a shard folder's manifests (:func:`read_manifests`) still lack, in
    one line (the lines of :func:`incomplete` joined), or None when complete."""
    return "; ".join(incomplete(manifests)) or None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry_problem(shard: str, entry) -> str | None:
    """What is wrong with one ``shards`` entry of a manifest, or None."""
    if not _SHARD_NAME.fullmatch(shard):
        # Above all no path: "../x.h5" would read (and --overwrite delete) outside the folder.
        return f"lists {shard!r}, which is not a shard file name (shard-NNNNN.h5 in the folder itself)"
    if not isinstance(entry, dict):
        return f"the entry of {shard} is {type(entry).__name__} {entry!r}, not an object"
    if not _is_int(entry.get("count")) or entry["count"] < 0:
        return f"{shard} has count {entry.get('count')!r}, not an integer >= 0"
    for key, kind in (("checksum", str), ("bytes", int)):
        if key in entry and not (isinstance(entry[key], kind) and not isinstance(entry[key], bool)):
            return f"{shard} has {key} {entry[key]!r}, not {'a string' if kind is str else 'an integer'}"
    return None


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


def folder_manifests(folder: str | os.PathLike) -> dict[str, dict]:
    """The manifest(s) of a shard folder (a whole run, or the parts of a --part run), or ShardError."""
    if not Path(folder).is_dir():
        raise ShardError(f"{folder}: no such shard folder")
    manifests = read_manifests(folder)
    if not manifests:
        raise ShardError(f"{folder}: no manifest.json (not a shard folder made by `blurgen synthesize`)")
    return manifests


def incomplete(manifests: dict[str, dict]) -> list[str]:
    """What the data set of a folder's manifests (:func:`read_manifests`) still
    lacks, one line each, [] when complete: for a ``--part I/N`` data set, every
    part of 0..N-1 without a manifest (not started, or run elsewhere and not
    copied in) and every part that lists fewer shards than it planned (still
    running, or stopped); for a whole run, the planned shards not listed."""
    lines = []
    parts = {manifest_part(name): m for name, m in manifests.items()}
    for n in sorted({n for _, n in parts if n > 1}):
        for i in range(n):
            if (i, n) not in parts:
                lines.append(f"part {i}/{n} missing (no {manifest_name((i, n))}; not started, "
                             "or written to another folder)")
    for (i, n), m in sorted(parts.items()):
        built, planned = len(m["shards"]), m.get("planned", len(m["shards"]))
        if built < planned:
            who = f"part {i}/{n}" if n > 1 else "the run is"
            lines.append(f"{who} incomplete: {planned - built} of its {planned} planned shards not built "
                         "(still running, or stopped: run its command again to finish)")
    return lines


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
    listed = _listed_shards(folder)
    for shard, manifest, entry in listed:
        path = folder / shard
        if is_fileless(entry):
            continue
        if not path.is_file():
            raise ShardError(f"{path}: listed in {manifest} but missing")
        infos.append(ShardInfo(path, int(entry["count"]), entry.get("checksum", "")))
    if not infos and listed:
        raise ShardError(f"{folder}: its shards hold no pairs (every photo was skipped; see skipped*.tsv)")
    if not infos:
        raise ShardError(f"{folder}: the manifest lists no finished shard")
    return infos


def sample_offsets(infos: Sequence[ShardInfo]) -> np.ndarray:
    """(len(infos) + 1,) int64: where each shard's samples start in the global
    numbering of ``infos`` taken in order (the last entry is the total)."""
    return np.concatenate([[0], np.cumsum([int(s.count) for s in infos])]).astype(np.int64)


def locate_sample(offsets: np.ndarray, index: int) -> tuple[int, int]:
    """(shard number, sample index in that shard) of global sample ``index``,
    given :func:`sample_offsets`.  IndexError outside [0, total)."""
    index = int(index)
    if not 0 <= index < int(offsets[-1]):
        raise IndexError(f"sample {index} out of range ({int(offsets[-1])} samples)")
    k = int(np.searchsorted(offsets, index, side="right")) - 1
    return k, index - int(offsets[k])


# --- reading -------------------------------------------------------------------


# What h5py raises on a damaged file: OSError for most HDF5 errors, but
# RuntimeError, ValueError or KeyError for some damaged object headers and
# B-trees (seen flipping bytes of a shard; tests/test_faults_data.py).
_H5_ERRORS = (OSError, RuntimeError, ValueError, KeyError)


class ShardReader:
    """Reads one shard.  The HDF5 file opens lazily on first access and the
    reader pickles without its handle, so a reader built before DataLoader
    workers fork is safe: each worker opens its own handle.

    ``verify`` (default True) checks every image chunk read against its stored
    hash (format version 2) and raises :class:`DamagedSample` on a mismatch;
    version-1 shards have no hashes and are read unchecked.
    """

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        self.path = Path(path)
        self.verify = bool(verify)
        self._file = None
        self._layout = self._count = self._shape = None
        self._pair = None  # (blurred, sharp) h5py datasets of the crops layout
        self._raw = False  # crops stored uncompressed, one per chunk: read chunks directly
        self._hashes = None  # (N, 2) uint64 hashes of the crops, when stored and verified
        self._hashed = False  # whole images with tile hashes (checked if verify)
        self._tile_hash = self._tile_start = self._sizes = None  # their hashes, where each starts, (H, W)
        self._sharp_only = False

    def __getstate__(self):
        return {"path": self.path, "verify": self.verify, "_file": None, "_layout": None, "_count": None,
                "_sharp_only": False,
                "_shape": None, "_pair": None, "_raw": False, "_hashes": None, "_hashed": False,
                "_tile_hash": None, "_tile_start": None, "_sizes": None}

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
                raise ShardError(f"{self.path}: not a readable shard ({_one_line(exc)})") from None
            try:
                self._open(f)
            except ShardError:
                raise
            except _H5_ERRORS as exc:
                raise ShardError(f"{self.path}: damaged shard structure ({_one_line(exc)})") from None
            finally:
                if self._layout is None:
                    # A handle left open would make HDF5 serve this path from
                    # its cache of open files, even after the file is replaced.
                    f.close()
                    self._count = self._shape = self._pair = self._hashes = None
                    self._tile_hash = self._tile_start = self._sizes = None
                    self._raw = self._hashed = self._sharp_only = False
            self._file = f
        return self._file

    def _open(self, f) -> None:
        """Check the format of the open file ``f`` and cache its layout; sets
        ``_layout`` last, only when everything is in order."""
        if f.attrs.get("format") != FORMAT:
            raise ShardError(f"{self.path}: not a blurgen shard")
        if int(f.attrs.get("format_version", 0)) > READ_VERSION:
            raise ShardError(f"{self.path}: shard format {f.attrs['format_version']} is newer than this blurgen reads")
        # Attribute and dataset look-ups cost ~0.1 ms each in h5py, as much
        # as reading a 256x256 pair: do them once per open.
        layout = str(f.attrs["layout"])
        self._count = int(f.attrs["count"])
        version = int(f.attrs.get("format_version", 1))
        hashed = version >= 2 and self.verify
        self._sharp_only = bool(f.attrs.get("sharp_only", False))
        columns = 1 if self._sharp_only else 2  # hashes per sample: (blurred,) sharp
        if layout == "crops":
            self._pair = (None if self._sharp_only else self._dataset(f, "blurred"), self._dataset(f, "sharp"))
            self._shape = tuple(int(s) for s in self._pair[1].shape[1:3])
            whole = (1, *self._shape, 3)
            self._raw = all(ds.chunks == whole and _unfiltered(ds) for ds in self._pair if ds is not None)
            if hashed:
                # (N, 2) uint64: 16 bytes a sample, read once per open.
                self._hashes = self._dataset(f, "sample_hash")[()]
                if self._hashes.shape != (self._count, columns):
                    raise ShardError(f"{self.path}: sample_hash has shape {self._hashes.shape}, "
                                     f"expected ({self._count}, {columns})")
                self._hashes = _as_pair_columns(self._hashes)
        elif layout == "images":
            # Format 2 whole images are read tile by tile, checked or not
            # (unchecked only for benchmarks): so the check is the only difference.
            self._hashed = version >= 2
            if self._hashed:
                self._sizes = self._dataset(f, "shape")[()]
                self._tile_start = self._dataset(f, "tile_start")[()]
                self._tile_hash = self._dataset(f, "tile_hash")[()]
                if self._sizes.shape != (self._count, 2) or self._tile_start.shape != (self._count + 1,) \
                        or self._tile_hash.shape != (int(self._tile_start[-1]), columns):
                    raise ShardError(f"{self.path}: shape, tile_start and tile_hash do not agree")
                self._tile_hash = _as_pair_columns(self._tile_hash)
        else:
            raise ShardError(f"{self.path}: unknown layout {layout!r}")
        self._layout = layout

    @property
    def layout(self) -> str:
        """``"crops"`` (one (N, H, W, 3) array) or ``"images"`` (one array per sample)."""
        self.file  # noqa: B018 -- opening the file reads the layout
        return self._layout

    @property
    def sharp_only(self) -> bool:
        """Whether the shard holds sharp images only (``synthesize --sharp-only``)."""
        self.file  # noqa: B018 -- opening the file reads the kind
        return self._sharp_only

    @property
    def attrs(self) -> dict:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.file.attrs.items()}

    def __len__(self) -> int:
        self.file  # noqa: B018 -- opening the file reads the count
        return self._count

    def _check(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise SampleOutOfRange(f"{self.path}: sample {i} out of range ({n} samples; "
                                   "does its manifest list more?)")
        return i % n

    def image_shape(self, i: int) -> tuple[int, int]:
        """(H, W) of sample ``i``."""
        i = self._check(i)
        if self.layout == "crops":
            return self._shape
        return tuple(int(s) for s in self.file["shape"][i])

    def image_shapes(self) -> np.ndarray:
        """(N, 2) int (H, W) of every sample, in one read."""
        if self.layout == "crops":
            return np.tile(np.array(self._shape, np.int64), (len(self), 1))
        try:
            shapes = self._dataset(self.file, "shape")[()]
        except _H5_ERRORS as exc:
            raise ShardError(f"{self.path}: damaged shard structure ({_one_line(exc)})") from None
        if shapes.shape != (len(self), 2):
            raise ShardError(f"{self.path}: shape has shape {shapes.shape}, expected ({len(self)}, 2)")
        return shapes.astype(np.int64)

    def read_pair(self, i: int, box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(blurred, sharp) of sample ``i``, uint8 (h, w, 3) RGB.

        ``box`` = (y0, x0, y1, x1) reads only that window (only the chunks it
        touches are read from disk).  A sharp-only shard has no blurred image:
        ShardError (one line, pointing to ``trainer fit --online``).
        """
        i = self._check(i)
        if self.sharp_only:
            raise ShardError(f"{self.path}: holds sharp images only (synthesize --sharp-only), no blurred "
                             "image to read; train on it with `trainer fit --online`")
        return self._read_image(0, i, box), self._read_image(1, i, box)

    def read_sharp(self, i: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The sharp image of sample ``i`` (only the window ``box``), uint8 (h, w, 3) RGB;
        reads (and checks) nothing of the blurred image.  Works on every shard."""
        return self._read_image(1, self._check(i), box)

    def _read_image(self, which: int, i: int, box: tuple[int, int, int, int] | None) -> np.ndarray:
        """Image ``which`` (0: blurred, 1: sharp) of sample ``i`` (already checked), window ``box``."""
        window = (slice(None), slice(None)) if box is None else (slice(box[0], box[2]), slice(box[1], box[3]))
        try:
            if self._raw:
                return self._read_chunk(which, i, window)
            if self.layout == "crops":
                if self._hashes is None:
                    return self._pair[which][(i, *window)]
                # Filtered crops (not written by this module): hash the whole sample.
                return self._checked(self._pair[which][i], i, which)[window]
            if self._hashed:
                return self._read_tiles(which, i, box)
            return self.file[("blurred", "sharp")[which]][f"{i:06d}"][window]
        except ShardError:
            raise
        except _H5_ERRORS as exc:
            raise ShardError(f"{self.path}: sample {i} unreadable ({_one_line(exc)})") from None

    def _dataset(self, group, name: str):
        """``group[name]``, which must be a dataset: a flipped byte in an object
        header can turn it into another kind of object."""
        import h5py

        obj = group[name]
        if not isinstance(obj, h5py.Dataset):
            raise ShardError(f"{self.path}: damaged shard structure ({name} is not a dataset)")
        return obj

    def _checked(self, image: np.ndarray, i: int, which: int) -> np.ndarray:
        if chunk_hash(np.ascontiguousarray(image)) != int(self._hashes[i, which]):
            raise self._damaged(i, which)
        return image

    def _damaged(self, i: int, which: int, where: str = "") -> DamagedSample:
        name = ("blurred", "sharp")[which]
        return DamagedSample(f"{self.path}: sample {i} is damaged (its {name} image{where} "
                             "does not match its stored hash)")

    def _read_chunk(self, which: int, i: int, window: tuple[slice, slice]) -> np.ndarray:
        # An uncompressed sample is one chunk of raw bytes: reading it whole and
        # cutting the window in memory is 2x faster than an h5py selection.
        _, data = self._pair[which].id.read_direct_chunk((i, 0, 0, 0))
        if self._hashes is not None and chunk_hash(data) != int(self._hashes[i, which]):
            raise self._damaged(i, which)
        if len(data) != self._shape[0] * self._shape[1] * 3:
            raise ShardError(f"{self.path}: sample {i} unreadable (chunk of {len(data)} bytes, "
                             f"expected {self._shape[0] * self._shape[1] * 3})")
        image = np.frombuffer(data, np.uint8).reshape(*self._shape, 3)
        return image[window].copy()

    def _read_tiles(self, which: int, i: int, box: tuple[int, int, int, int] | None) -> np.ndarray:
        """The window ``box`` of whole image ``i`` (0: blurred, 1: sharp) of a
        format-2 shard, reading and checking only the 128-px tiles it touches."""
        import h5py

        h, w = (int(v) for v in self._sizes[i])
        th, tw = min(h, _TILE), min(w, _TILE)
        across = -(-w // tw)
        hashes = self._tile_hash[self._tile_start[i]:self._tile_start[i + 1], which]
        if len(hashes) != -(-h // th) * across:
            raise ShardError(f"{self.path}: sample {i} has {len(hashes)} tile hashes for a {w}x{h} image")
        # The low-level open costs a fraction of h5py's Group look-up.
        ds = h5py.h5d.open(self.file.id, f"{('blurred', 'sharp')[which]}/{i:06d}".encode())
        y0, x0, y1, x1 = (0, 0, h, w) if box is None else box
        y0, x0, y1, x1 = max(0, y0), max(0, x0), min(h, y1), min(w, x1)
        out = np.empty((max(0, y1 - y0), max(0, x1 - x0), 3), np.uint8)
        for ty in range(y0 // th, -(-y1 // th)):
            for tx in range(x0 // tw, -(-x1 // tw)):
                _, data = ds.read_direct_chunk((ty * th, tx * tw, 0))
                if self.verify and chunk_hash(data) != int(hashes[ty * across + tx]):
                    raise self._damaged(i, which, f" tile ({ty}, {tx})")
                if len(data) != th * tw * 3:
                    raise ShardError(f"{self.path}: sample {i} unreadable (a tile of {len(data)} bytes)")
                tile = np.frombuffer(data, np.uint8).reshape(th, tw, 3)
                ya, yb = max(y0, ty * th), min(y1, (ty + 1) * th)
                xa, xb = max(x0, tx * tw), min(x1, (tx + 1) * tw)
                out[ya - y0:yb - y0, xa - x0:xb - x0] = tile[ya - ty * th:yb - ty * th, xa - tx * tw:xb - tx * tw]
        return out

    def fields(self) -> list[str]:
        """Names of the per-sample fields besides the images."""
        return sorted(k for k in self.file.keys() if k == "kernel" or k not in CORE_DATASETS)

    def read_sample(self, i: int) -> dict:
        """Every stored field of sample ``i``: ``blurred``, ``sharp``, ``kernel`` and the meta
        fields (a sharp-only shard: ``sharp`` and the meta fields)."""
        i = self._check(i)
        if self.sharp_only:
            sample = {"sharp": self.read_sharp(i)}
        else:
            blurred, sharp = self.read_pair(i)
            sample = {"blurred": blurred, "sharp": sharp}
        for name in self.fields():
            try:
                value = self.file[name][i]
            except (OSError, KeyError, ValueError, RuntimeError) as exc:
                # Flipped bytes in a field's (filtered) storage: h5py's own error, as one line.
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ShardError(f"{self.path}#{i}: its {name!r} field cannot be read ({first})") from None
            sample[name] = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
        return sample

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._layout = self._count = self._shape = self._pair = self._hashes = None
            self._tile_hash = self._tile_start = self._sizes = None
            self._raw = self._hashed = self._sharp_only = False


class ShardReaders:
    """One process's open :class:`ShardReader` s of a list of shards, opened on first use.

    ``readers[k]`` is the reader of ``paths[k]``.  A dataset keeps one of these
    and DataLoader workers copy it: pickled, it carries no reader (h5py handles
    do not travel); forked, a worker finds its parent's readers, keeps them
    referenced but never uses or closes them (closing would run HDF5's clean-up
    on the parent's state) and opens its own.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], verify: bool = True):
        self.paths = [Path(p) for p in paths]
        self.verify = bool(verify)
        self._open: dict[int, ShardReader] = {}
        self._pid = os.getpid()
        self._inherited: list = []

    def __getitem__(self, k: int) -> ShardReader:
        if os.getpid() != self._pid:
            self._inherited.append(self._open)
            self._open, self._pid = {}, os.getpid()
        if k not in self._open:
            self._open[k] = ShardReader(self.paths[k], verify=self.verify)
        return self._open[k]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def opened(self) -> list[int]:
        """Shard numbers this process has opened."""
        return sorted(self._open) if os.getpid() == self._pid else []

    def close(self) -> None:
        """Close what this process opened (they reopen on the next read)."""
        if os.getpid() == self._pid:
            for reader in self._open.values():
                reader.close()
        self._open.clear()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_open"], state["_inherited"] = {}, []
        return state


def _as_pair_columns(hashes: np.ndarray) -> np.ndarray:
    """(N, 2) hashes (blurred, sharp) as stored, or a sharp-only shard's (N, 1)
    with a column of zeros in front (never compared: no blurred image is read)."""
    if hashes.shape[1] == 2:
        return hashes
    return np.concatenate([np.zeros_like(hashes), hashes], axis=1)


def _unfiltered(ds) -> bool:
    """Whether an h5py dataset stores its chunks as raw bytes (no filter)."""
    return ds.compression is None and not ds.shuffle and not ds.fletcher32 and ds.scaleoffset is None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- checking ------------------------------------------------------------------


def verify_shard(path: str | os.PathLike, entry: dict) -> str | None:
    """Check one shard against its manifest entry; return a one-line problem or None.

    Reads every sample: checksum, sample count, shapes and dtypes of the
    images, each image's stored hashes (format 2), that each stored kernel is
    a PSF (finite, non-negative, sums to 1) and that every floating-point
    field is finite.  A sharp-only shard has no blurred image and no kernel
    to check: its sharp images are.
    """
    path = Path(path)
    if is_fileless(entry):
        return None  # no samples, no file
    if not path.is_file():
        return "missing"
    if entry.get("checksum") and file_checksum(path) != entry["checksum"]:
        return "checksum differs from the manifest (file changed or damaged)"
    try:
        with ShardReader(path) as reader:
            n = len(reader)
            if n != int(entry.get("count", n)):
                return f"{n} samples, the manifest says {entry['count']}"
            if not reader.sharp_only:
                kernels = reader._dataset(reader.file, "kernel")[()]
                if kernels.shape[0] != n or kernels.dtype != np.float32:
                    return f"kernel dataset has shape {kernels.shape} {kernels.dtype}, expected ({n}, k, k) float32"
                from blurgen.physics.kernels import check_psfs

                problem = check_psfs(kernels)
                if problem:
                    return f"stored {problem}"
            for name in reader.fields():
                values = reader._dataset(reader.file, name)[()]
                if values.dtype.kind in "fc" and not np.isfinite(values).all():
                    first = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
                    return f"field {name!r} of sample {first} is not finite"
            for i in range(n):
                if reader.sharp_only:
                    sharp = reader.read_sharp(i)
                    blurred = sharp  # the checks below, of the one image there is
                else:
                    blurred, sharp = reader.read_pair(i)
                if blurred.dtype != np.uint8 or sharp.dtype != np.uint8 or blurred.shape != sharp.shape \
                        or blurred.ndim != 3 or blurred.shape[2] != 3:
                    return f"sample {i}: bad images {blurred.shape} {blurred.dtype} / {sharp.shape} {sharp.dtype}"
    except ShardError as exc:
        return str(exc).replace(str(path) + ": ", "")
    except _H5_ERRORS as exc:
        return f"unreadable ({_one_line(exc)})"
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


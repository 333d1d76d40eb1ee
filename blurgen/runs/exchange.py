"""Pairs in and out of shards: ``blurgen export`` and ``blurgen import-pairs``.

``export`` writes a shard folder's pairs into ``OUT/<split>/`` in one of the
layouts of :mod:`blurgen.runs.peer_layouts`: by default the GOPRO_Large layout
that DeblurGAN-v2 and ``trainer fit --gopro`` read::

    OUT/<split>/<shard stem>/blur/000000.png   (the blurred image)
    OUT/<split>/<shard stem>/sharp/000000.png  (the sharp image of the same name)

one "sequence" folder per shard, one frame per sample (its index in the
shard); or BasicSR's and NAFNet's paired folders (``basicsr``) or LMDB
environments (``lmdb``).  Every layout resumes: an interrupted export run again
writes only the pairs not there yet.

``import-pairs`` reads a folder of blurred images and a folder of sharp ones,
paired by file stem as ``trainer eval --pairs`` pairs them
(:func:`blurgen.sources.match_by_stem`), into shards of the usual format with
a manifest, so that real pairs (GoPro, RealBlur, HIDE, your own) mix with
synthetic ones in ``trainer fit --shards`` and pass ``blurgen verify``.
Pairs are whole images (layout ``images``); the PSF of a real pair is
unknown, so each sample's ``kernel`` is a 1x1 placeholder of 1 and its
``kernel_known`` field False (docs/shards.md).
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from blurgen import shards
from blurgen.plumbing import files, stopping
from blurgen.plumbing.stopping import StopFlag
from blurgen.runs import shard_run
from blurgen.runs.shard_run import ShardJob, ShardTask, Summary, SynthError
from blurgen.shards import ShardError
from blurgen.sources import (
    EXTENSIONS,
    MAX_PIXELS,
    SkipImage,
    check_name,
    folder_images,
    load_rgb,
    match_by_stem,
    name_bytes,
)

#: Beside the sequence folders of an export: which shards it came from (a resume
#: into an export of other shards is refused).  A file, so the GoPro readers,
#: which look at folders only, pass over it.
EXPORT_RECORD = "blurgen-export.json"
#: The key of ``manifest["skipped"]`` for images without a partner (they belong to no shard).
UNPAIRED = "unpaired"
#: The kernel stored for a real pair: the 1x1 identity, a valid PSF that claims nothing.
UNKNOWN_KERNEL = np.ones((1, 1), np.float32)


@dataclass
class ExportSummary:
    pairs: int = 0       # pairs in the shard folder
    written: int = 0     # pairs written now
    existing: int = 0    # pairs already there (an earlier, interrupted export)
    outputs: list = field(default_factory=list)  # the folders written, as the layout names them


def export_folder(folder: str | os.PathLike, out: str | os.PathLike, split: str = "train", layout: str = "gopro",
                  progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None,
                  stop: StopFlag | None = None) -> ExportSummary:
    """Write every listed shard of ``folder`` as pairs under ``out/split`` in ``layout``, a key of
    :data:`blurgen.runs.peer_layouts.LAYOUTS` (module doc).

    ``on_start(pairs)`` is called once the shards are listed, ``progress(1)``
    after each pair; ``stop`` is checked before each pair
    (:class:`~blurgen.plumbing.stopping.Interrupted`; what was written is complete).
    Raises ShardError for an unknown layout, an unreadable shard folder or
    shard, an ``out/split`` that holds an export of other shards or of a layout
    that cannot share it, and a failed write (a full disk); the layout's
    BlurgenError when a package it needs is missing.
    """
    from blurgen.runs.peer_layouts import LAYOUTS

    if layout not in LAYOUTS:
        raise ShardError(f"unknown export layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    chosen = LAYOUTS[layout]
    chosen.require()
    infos = shards.find_shards(folder)
    root = Path(out) / split
    if not split or Path(split).name != split or split.startswith("."):
        raise ShardError(f"bad split name {split!r}: a plain folder name such as train or test")
    _check_pairs(infos)  # before anything is written: a refused export leaves no trace
    record = {"source": str(Path(folder).resolve()), "shards": {i.path.name: i.checksum for i in infos}}
    summary = ExportSummary(pairs=sum(i.count for i in infos), outputs=chosen.outputs(root))
    try:
        root.mkdir(parents=True, exist_ok=True)
        # One export per folder at a time: two of different shard folders would both pass the
        # record check below before either wrote its record, and mix (issue 22.20).
        with files.exclusive_lock(root / EXPORT_RECORD, what=str(root)):
            _claim(root, record, layout, LAYOUTS)
            if on_start:
                on_start(summary.pairs)
            # closing: whatever stops the loop, the writer finishes (an LMDB commits) under the lock.
            with closing(chosen.write(infos, root, stop)) as pairs:
                for written in pairs:
                    if written:
                        summary.written += 1
                    else:
                        summary.existing += 1
                    if progress:
                        progress(1)
    except files.Busy as exc:
        raise ShardError(str(exc)) from None
    except OSError as exc:
        raise ShardError(f"{root}: could not write ({files.describe_os_error(exc)}); what was written is "
                         "complete: run the same command again to resume") from None
    return summary


def _check_pairs(infos: list) -> None:
    """ShardError if a shard holds sharp images only (``synthesize --sharp-only``): no pairs to export."""
    for info in infos:
        with shards.ShardReader(info.path) as reader:
            if reader.sharp_only:
                raise ShardError(f"{info.path}: holds sharp images only (synthesize --sharp-only), no pairs to "
                                 "export; nothing written")


def _claim(root: Path, record: dict, layout: str, layouts: dict) -> None:
    """Write ``record`` as ``root``'s export record, with the layouts written there so far plus
    ``layout``; raise ShardError if ``root`` holds an export of other shards, or one of a layout
    that cannot share its split folder with ``layout``.  Called holding the record's lock."""
    before = root / EXPORT_RECORD
    written = set()
    if before.exists():
        try:
            old = json.loads(before.read_text())
        except ValueError:
            old = None
        if not isinstance(old, dict) or old.get("shards") != record["shards"]:
            raise ShardError(f"{root} holds an export of other shards ({before}); choose another folder")
        written = set(old.get("layouts", ["gopro"]))  # records of earlier versions: the gopro layout
    together = written | {layout}
    alone = [name for name in sorted(together) if not getattr(layouts.get(name), "shares_split", False)]
    if len(together) > 1 and alone:
        raise ShardError(f"{root} holds an export in the {', '.join(sorted(written))} layout, and the {alone[0]} "
                         "layout shares its split folder with no other; choose another folder")
    files.write_text(before, json.dumps({**record, "layouts": sorted(together)}, indent=1, sort_keys=True))


# --- import ------------------------------------------------------------------------


def plan_import(blur_dir: str | os.PathLike, sharp_dir: str | os.PathLike) -> tuple[list, list]:
    """(pairs [(stem, blurred path, sharp path)] sorted by stem, skip rows
    [relative path, reason, detail] of the images without a partner).

    Reasons: ``no-sharp-partner``, ``no-blurred-partner``, ``duplicate-stem``
    (``a.png`` and ``a.jpg`` on one side: neither is used).  ShardError for a
    missing folder or one without images.
    """
    listed = {}
    for role, folder in (("blurred", Path(blur_dir)), ("sharp", Path(sharp_dir))):
        if not folder.is_dir():
            raise ShardError(f"{folder}: no such folder ({role} images)")
        listed[role] = folder_images(folder)
        if not listed[role]:
            raise ShardError(f"{folder}: no images ({', '.join(EXTENSIONS)}) in this folder")
    match = match_by_stem(listed["blurred"], listed["sharp"])
    rows = []
    for role, path, other in match.duplicates:
        rows.append([_label(role, path.name), "duplicate-stem", f"{other.name} has the same stem"])
    by_stem = {role: {p.stem: p for p in paths} for role, paths in listed.items()}
    for stem in match.no_sharp:
        rows.append([_label("blurred", by_stem["blurred"][stem].name), "no-sharp-partner",
                     f"no image named {stem} in {sharp_dir}"])
    for stem in match.no_blurred:
        rows.append([_label("sharp", by_stem["sharp"][stem].name), "no-blurred-partner",
                     f"no image named {stem} in {blur_dir}"])
    return match.pairs, sorted(rows)


def _label(role: str, name: str) -> str:
    return f"{'blur' if role == 'blurred' else 'sharp'}/{name}"


def _digest(pairs: list) -> str:
    """``"sha256:<hex>"`` of the pairs' names and file sizes: a resume over other files is refused."""
    digest = hashlib.sha256()
    for _stem, b, s in pairs:
        sizes = []
        for path in (b, s):
            try:
                sizes.append(path.stat().st_size)
            except OSError:
                sizes.append(-1)
        digest.update(name_bytes(f"{b.name}\t{sizes[0]}\t{s.name}\t{sizes[1]}\n"))  # a name that is not UTF-8 too
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class ImportConfig:
    """What ``import-pairs`` makes: the pairs of ``blur_dir`` and ``sharp_dir`` in shards
    of ``shard_size`` pairs; images over ``max_pixels`` are skipped."""

    blur_dir: Path
    sharp_dir: Path
    shard_size: int = 1000
    max_pixels: int = MAX_PIXELS

    def __post_init__(self):
        if int(self.shard_size) != self.shard_size or self.shard_size < 1:
            raise ShardError(f"--shard-size must be >= 1, got {self.shard_size}")

    def arguments(self) -> dict:
        return {"command": "blurgen import-pairs", "blur_dir": str(Path(self.blur_dir).resolve()),
                "sharp_dir": str(Path(self.sharp_dir).resolve()), "shard_size": int(self.shard_size),
                "max_pixels": int(self.max_pixels)}


def build_import_shard(task: ShardTask, pairs: list, cfg: ImportConfig, out: Path,
                       progress: Callable[[int, int], None] | None = None, stop: StopFlag | None = None) -> dict:
    """Write the pairs of shard ``task`` atomically: its manifest entry plus ``skipped`` rows.

    A pair is skipped (reported, not stored) when either image cannot be
    decoded (:func:`blurgen.sources.load_rgb`'s reasons) or the two differ in
    size (``size-mismatch``).  ``progress(made, dropped)`` after each pair.
    """
    skipped = []
    path = out / task.name
    empty = {"source": np.zeros(0, dtype=object), "sharp_source": np.zeros(0, dtype=object),
             "kernel_known": np.zeros(0, bool)}
    attrs = {"shard": task.index, "arguments": cfg.arguments(), "origin": "pairs",
             "kernel": "unknown: a 1x1 placeholder of 1 (kernel_known is False)"}
    with shards.ShardWriter(path, crop=None, attrs=attrs, kernel_size=1, fields=empty) as writer:
        for _stem, b, s in pairs[task.first_image:task.stop_image]:
            stopping.check(stop)
            try:
                images = []
                for role, p in (("blurred", b), ("sharp", s)):
                    try:
                        check_name(p.name)  # its sample stores it
                        images.append(load_rgb(p, cfg.max_pixels))
                    except SkipImage as exc:
                        raise SkipImage(exc.reason, f"{_label(role, p.name)}: {exc.detail}") from None
                blurred, sharp = images
                if blurred.shape != sharp.shape:
                    raise SkipImage("size-mismatch", f"blurred {blurred.shape[1]}x{blurred.shape[0]}, "
                                                     f"sharp {sharp.shape[1]}x{sharp.shape[0]}")
            except SkipImage as exc:
                skipped.append([_label("blurred", b.name), exc.reason, exc.detail])
                made = 0
            else:
                writer.add(blurred, sharp, UNKNOWN_KERNEL,
                           {"source": b.name, "sharp_source": s.name, "kernel_known": False})
                made = 1
            if progress:
                progress(made, 1 - made)
    return {"name": task.name, "count": writer.count, "checksum": writer.checksum, "bytes": path.stat().st_size,
            "skipped": skipped}


def import_pairs(blur_dir: str | os.PathLike, sharp_dir: str | os.PathLike, out: str | os.PathLike,
                 shard_size: int = 1000, overwrite: bool = False, max_pixels: int = MAX_PIXELS,
                 progress: Callable[[int, int], None] | None = None, on_start: Callable[[int], None] | None = None,
                 stop: StopFlag | None = None, repair: bool = False) -> Summary:
    """Bring a paired set into shards in ``out`` (module doc) with the shard-run engine
    (:func:`blurgen.runs.shard_run.run`: resume, ``repair``, ``overwrite``, stop, progress).

    Shard s holds the pairs s·shard_size … of the stem-sorted pair list (fewer
    when pairs are skipped); ``Summary.images`` counts the matched pairs.  The
    manifest records the arguments and a digest of the file names and sizes; a
    resume over changed folders is refused unless ``overwrite``.  Skipped pairs
    and unpaired images are listed in the manifest and ``skipped.tsv``.  Raises
    ShardError (one line) for bad folders, SynthError for a conflicting, busy
    or full ``out``.
    """
    cfg = ImportConfig(Path(blur_dir), Path(sharp_dir), shard_size, max_pixels)
    pairs, unpaired = plan_import(blur_dir, sharp_dir)
    inputs = {"sources": _digest(pairs)}

    def settle(out: Path, manifest: dict, items: list) -> tuple[list, list[ShardTask], None]:
        if manifest["shards"] and manifest.get("inputs") != inputs:
            raise SynthError(f"{out / shards.MANIFEST} lists shards made from other files in the folders; pass "
                             "--overwrite to start afresh, or choose another --out")
        manifest["inputs"] = inputs
        if unpaired:
            manifest["skipped"][UNPAIRED] = unpaired
        return items, job.plan(len(items)), None

    job = ShardJob(arguments=cfg.arguments(), part=(0, 1), samples_per_item=1, items_per_shard=cfg.shard_size,
                   build=build_import_shard, config=cfg, settle=settle)
    return shard_run.run(job, out, pairs, overwrite=overwrite, repair=repair, progress=progress,
                         on_start=on_start, stop=stop)


def describe_arguments(args: dict) -> str:
    """How an ``import-pairs`` folder was made, in a few lines (from its manifest's arguments)."""
    return (f"imported pairs: blurred from {args.get('blur_dir')}, sharp from {args.get('sharp_dir')}; "
            f"whole images, shards of {args.get('shard_size')}\nkernels unknown (1x1 placeholders)")

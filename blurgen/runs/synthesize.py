"""``blurgen synthesize``: a folder of sharp photos -> shards of aligned (blurred, sharp) pairs.

The work is planned from the sorted list of source files alone: shard s holds
the samples of images ``s * images_per_shard ...``, and sample (image i, crop
c) draws everything random — crop position, kernel, sensor effects — from its
own generator ``default_rng([seed, i, c])`` and its fresh kernel from
``kernel_seeds(seed, 1, start=i * crops_per_image + c)`` (``--camera``: its
settings and noise from ``default_rng([seed, i, c, CAMERA_STREAM])``).  So the output is the
same, byte for byte, whatever the number of workers or the order in which
shards finish, and a run interrupted at any moment (Ctrl-C, kill -9) resumes
by building only the shards its manifest does not list yet.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from blurgen import shards
from blurgen.modes import DEFAULT_MODE, BlurMode, Photo, get_mode
from blurgen.modes.sharp_only import SHARP_ONLY
from blurgen.physics.kernels import BankError, KernelSpec, check_bank
from blurgen.physics.realism import Realism
from blurgen.plumbing import stopping
from blurgen.plumbing.caches import FileCache
from blurgen.plumbing.stopping import StopFlag
from blurgen.runs import shard_run
from blurgen.runs.shard_run import ShardTask, Summary, SynthError
from blurgen.sources import EXTENSIONS, MAX_PIXELS, PhotoSource, SkipImage, name_bytes, open_source

#: ``--small``: what becomes of photos smaller than a crop (plus the kernel's margin).
SMALL_POLICIES = ("skip", "upscale")


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesize.  Everything here decides the output; see ``arguments``.

    src : folder of source photos (searched recursively), or a zip of them (read in place).
    crop : side of the square crops in pixels (ignored with ``full``).
    crops_per_image : crops taken from each photo.
    full : keep whole images (less the kernel's margin) instead of crops.
    downscale : resize factor applied to each photo first (area averaging).
    small : what becomes of a photo smaller than a crop plus the kernel's
        margin: ``"skip"`` it (listed in the skip report), or ``"upscale"`` it
        (bicubic, see :data:`blurgen.modes.base.UPSCALE_INTERPOLATION`) until its short side fits.
    shard_size : samples per shard.
    seed : seed of every random draw.
    part : (i, n) — build only shards s with s % n == i.
    kernel_bank : a bank from ``blurgen make-kernels`` to draw kernels from, or
        None to draw a fresh kernel per sample with ``kernel_spec``.
    realism : linear light, saturation, noise, JPEG or the camera pipeline around
        every mode's blur (:class:`blurgen.physics.realism.Realism`).
    max_pixels : larger images are skipped (decompression bomb guard).
    mode : the blur mode, a name of ``blurgen.modes.MODES``: ``uniform`` (one kernel per
        sample, fresh or from ``kernel_bank``), ``shake``, ``objects``, ``sharp-only``, ...
    spec : the mode's own settings (``shake``: a ``blurgen.physics.shake.ShakeSpec``; ``objects``: a
        ``blurgen.physics.objects.ObjectSpec``; None for modes without any).
    """

    src: Path
    crop: int = 256
    crops_per_image: int = 1
    full: bool = False
    downscale: float = 1.0
    small: str = "skip"
    shard_size: int = 1000
    seed: int = 0
    part: tuple[int, int] = (0, 1)
    kernel_bank: Path | None = None
    kernel_spec: KernelSpec = field(default_factory=KernelSpec)
    realism: Realism = field(default_factory=Realism)
    max_pixels: int = MAX_PIXELS
    mode: str = DEFAULT_MODE
    spec: object = None

    def __post_init__(self):
        if self.crop < 4 and not self.full:
            raise SynthError(f"--crop must be >= 4, got {self.crop}")
        if self.crops_per_image < 1:
            raise SynthError(f"--crops-per-image must be >= 1, got {self.crops_per_image}")
        if not 0 < self.downscale <= 1:
            raise SynthError(f"--downscale must be in (0, 1], got {self.downscale}")
        if self.small not in SMALL_POLICIES:
            raise SynthError(f"--small must be one of {', '.join(SMALL_POLICIES)}, got {self.small!r}")
        shard_run.check_run_settings(self.shard_size, self.seed, self.part)
        get_mode(self.mode).check(self)

    @property
    def blur_mode(self) -> BlurMode:
        return get_mode(self.mode)

    @property
    def samples_per_image(self) -> int:
        return 1 if self.full else self.crops_per_image

    @property
    def images_per_shard(self) -> int:
        return max(1, self.shard_size // self.samples_per_image)

    def arguments(self) -> dict:
        """The settings that decide the output, as JSON values (recorded in the manifest)."""
        args = {}
        for name, value in asdict(self).items():
            # The realism spec flat and in the order of earlier versions (camera after
            # max_pixels), the mode's own keys last: the JSON in each shard, and so its bytes,
            # stay as they were.
            if name in ("realism", "mode", "spec"):
                continue
            if name == "max_pixels":
                realism = self.realism.arguments()
                camera_name = realism.pop("camera", None)
                args.update(realism, max_pixels=value)
                if camera_name is not None:
                    args["camera"] = camera_name
                continue
            args[name] = value
        args["src"] = str(Path(self.src).resolve())
        args["kernel_bank"] = None if self.kernel_bank is None else str(Path(self.kernel_bank).resolve())
        if self.kernel_bank is not None:
            args["kernel_spec"] = None
        if self.full:
            args["crop"] = args["crops_per_image"] = None
        if self.small == "skip":  # the default: recorded only when not, so that older runs resume
            del args["small"]
        args.update(self.blur_mode.arguments(self))
        return json.loads(json.dumps(args))


# --- one sample ------------------------------------------------------------------


# --- one shard -------------------------------------------------------------------


_SOURCES = FileCache(size=1)


def _photo_source(src: Path) -> PhotoSource:
    """The photos under ``src``, opened once per worker process: a zip's member list is read
    once, not per shard."""
    return _SOURCES.get(src, lambda: open_source(src))


def build_shard(task: ShardTask, images: list[str], cfg: SynthConfig, out: Path,
                progress: Callable[[int, int], None] | None = None, stop: StopFlag | None = None) -> dict:
    """Synthesize one shard with the run's blur mode and write it atomically.  Returns its
    manifest entry plus ``skipped``: [(relative path, reason, detail)].  A shard whose photos
    were all skipped is not written: its entry is ``{"count": 0, "bytes": 0}``
    (``shards.is_fileless``).

    ``progress(made, dropped)`` is called after each source image: the pairs
    it gave, and the pairs it was planned to give but did not (skipped: the
    total to expect shrinks by that much).  ``stop`` is checked
    before each sample: once set, the shard's temporary file is removed and
    :class:`~blurgen.plumbing.stopping.Interrupted` raised.
    """
    mode, k_per = cfg.blur_mode, cfg.samples_per_image
    count = (task.stop_image - task.first_image) * k_per
    shared = mode.shard(cfg, task)
    source = _photo_source(cfg.src)
    skipped, upscaled = [], 0
    attrs = {"shard": task.index, "arguments": cfg.arguments(), "images": [task.first_image, task.stop_image]}
    empty = {"source": np.zeros(0, dtype=object), "crop_box": np.zeros((0, 4), np.int32)}
    path = out / task.name
    # Samples go to disk as they are made: a worker holds one photo and a few
    # crops, not a whole shard (1000 crops of 256x256 would be 400 MB).
    with shards.ShardWriter(path, crop=None if cfg.full else (cfg.crop, cfg.crop), attrs=attrs,
                            kernel_size=mode.kernel_size(cfg), fields=empty, expected=count,
                            sharp_only=mode is SHARP_ONLY) as writer:
        for i in range(task.first_image, task.stop_image):
            stopping.check(stop)
            try:
                photo = mode.prepare(_load(source, images[i], i, cfg), cfg, shared)
            except SkipImage as exc:
                skipped.append((images[i], exc.reason, exc.detail))
                if progress is not None:
                    progress(0, k_per)
                continue
            made, failed, enlarged = 0, [], photo.factor != 1
            for c in range(k_per):
                stopping.check(stop)
                try:
                    sample = mode.sample(photo, c, (i - task.first_image) * k_per + c, cfg, shared)
                except SkipImage as exc:
                    failed.append((c, exc))
                    continue
                writer.add(*sample)
                made += 1
                enlarged = enlarged or bool(sample[3].get("upscale", 1) != 1)
            if failed:
                skipped.append(photo_skip(photo.rel, failed, k_per))
            upscaled += int(enlarged)
            if progress is not None:
                progress(made, k_per - made)
        if writer.count == 0:
            writer.discard()
    if writer.count == 0:
        path.unlink(missing_ok=True)  # an empty shard file an older blurgen wrote
        entry = {"name": task.name, "count": 0, "bytes": 0}
    else:
        entry = {"name": task.name, "count": writer.count, "checksum": writer.checksum,
                 "bytes": path.stat().st_size}
    if upscaled:
        entry["upscaled"] = upscaled
    return {**entry, "skipped": skipped}


def _load(source: PhotoSource, rel: str, index: int, cfg: SynthConfig) -> Photo:
    """Photo ``index`` of the run, decoded (SkipImage if it cannot be) and downscaled."""
    import cv2

    pixels = source.load(rel, cfg.max_pixels)
    if cfg.downscale != 1:
        h, w = pixels.shape[:2]
        size = (max(1, round(w * cfg.downscale)), max(1, round(h * cfg.downscale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return Photo(pixels, rel, index)


#: The skip report's reason for a photo that gave some of its crops, not all (the modes
#: whose crops can fail one by one: ``--shake``, ``--objects``); not a skipped photo.
SOME_CROPS = "some-crops"


def photo_skip(rel: str, failed: list[tuple[int, SkipImage]], crops: int) -> tuple[str, str, str]:
    """The skip report's one row for photo ``rel`` whose crops ``failed`` ([(crop, SkipImage)])
    of ``crops``: the first failure's reason if none was made, else :data:`SOME_CROPS`; the
    detail names the crops that failed (one row per photo, not per crop: issue 22.2)."""
    first = failed[0][1]
    if crops == 1:
        return rel, first.reason, first.detail
    which = ", ".join(str(c) for c, _ in failed)
    if len(failed) == crops:
        return rel, first.reason, f"every crop ({crops}); crop {failed[0][0]}: {first.detail}"
    reasons = ", ".join(sorted({exc.reason for _, exc in failed}))
    return rel, SOME_CROPS, f"crop(s) {which} of {crops} not made ({reasons}); crop {failed[0][0]}: {first.detail}"


def sources_digest(src: Path | PhotoSource, images: list[str]) -> str:
    """``"sha256:<hex>"`` of the sorted relative paths and sizes of the source files
    (``src``: a folder, or a :class:`~blurgen.sources.PhotoSource`: the same photos in a
    folder and in a zip give the same digest)."""
    source = src if isinstance(src, PhotoSource) else open_source(src)
    digest = hashlib.sha256()
    for rel in images:
        size = source.size(rel) if source is not None else -1
        digest.update(name_bytes(f"{rel}\t{size}\n"))  # a name that is not UTF-8 too
    return "sha256:" + digest.hexdigest()


def photo_sets(out: Path, cfg: SynthConfig, images: list[str], manifest: dict, bank: str | None,
               append: bool, plan: Callable[..., list[ShardTask]]) -> tuple[list[str], list[ShardTask], int]:
    """(the run's photos in index order, its shard plan, the photos ``append`` added now).

    A run starts with one photo set, every photo under ``cfg.src`` (sorted),
    recorded as the digest ``manifest["inputs"]["sources"]``.  Each
    ``--append`` that finds photos outside the run's sets adds a set: those
    photos (sorted), listed in ``manifest["photo_sets"]`` with the range of new
    shards they go into, numbered after every shard and photo before them.
    The first set is what ``cfg.src`` holds less the added sets' photos, and
    must still match its digest: resuming over a changed folder would mix
    two data sets (SynthError).  Without ``append``, added photos are refused.
    """
    src = _photo_source(cfg.src)
    sets = manifest.get("photo_sets") or []
    later = {p for entry in sets[1:] for p in entry["photos"]}
    first = [p for p in images if p not in later]
    inputs = {"sources": sources_digest(src, first), "kernel_bank": bank}
    inputs.update(cfg.blur_mode.inputs(cfg))  # only the modes that read files: the inputs of others stay as they were
    started = bool(manifest["shards"] or sets)
    if not started:  # nothing built yet: the folder's current photos are the run's
        manifest["inputs"] = inputs
    before = manifest["inputs"]
    if started:
        for key, what in (("kernel_bank", "the --kernels bank"), ("objects", "the --objects annotations"),
                          ("gyro", "the --gyro logs")):
            if before.get(key) != inputs.get(key):
                raise SynthError(f"{what} changed since {out} was started; pass --overwrite to start afresh, "
                                 "or choose another --out")
        for entry in sets[1:]:
            if sources_digest(src, entry["photos"]) != entry["sources"]:
                raise SynthError(f"photos that --append added to {out} (shards {entry['shards'][0]}-"
                                 f"{entry['shards'][1] - 1}) changed or are gone under --src; pass --overwrite "
                                 "to start afresh, or choose another --out")
        if before.get("sources") != inputs["sources"]:
            if not append:
                raise SynthError(f"the photos under --src changed since {out} was started; pass --append to put "
                                 "added photos into new shards, --overwrite to start afresh, or choose another --out")
            first = _first_set_photos(out, manifest, sets, images)
            if sources_digest(src, first) != before["sources"]:
                raise SynthError(f"photos that {out} was made from changed or are gone under --src (--append only "
                                 "adds photos); pass --overwrite to start afresh, or choose another --out")
    per = cfg.images_per_shard
    tasks, ordered = plan(len(first)), list(first)
    for entry in sets[1:]:
        tasks += plan(len(entry["photos"]), entry["shards"][0], len(ordered))
        ordered += entry["photos"]
    known = set(ordered)
    new = [p for p in images if p not in known] if append else []
    if new:
        if not sets:
            sets = manifest["photo_sets"] = [{"sources": before["sources"], "images": len(first),
                                              "shards": [0, math.ceil(len(first) / per)]}]
        start = sets[-1]["shards"][1]
        sets.append({"sources": sources_digest(src, new), "images": len(new),
                     "shards": [start, start + math.ceil(len(new) / per)], "photos": new})
        tasks += plan(len(new), start, len(ordered))
        ordered += new
    return ordered, tasks, len(new)


def _first_set_photos(out: Path, manifest: dict, sets: list, images: list[str]) -> list[str]:
    """The photos of a run's first set, in ``images``' order, read back from
    its finished shards (each sample's ``source``) and skip records: the
    manifest keeps only their digest."""
    count = sets[0]["shards"][1] if sets else manifest.get("planned", len(manifest["shards"]))
    names = [shards.shard_name(s) for s in range(count)]
    missing = [name for name in names if name not in manifest["shards"]]
    if missing:
        raise SynthError(f"{out} is not finished ({len(missing)} of {count} shards to build): finish it first "
                         "with the same command, without --append and without the photos added since")
    photos = set()
    for name in names:
        photos.update(row[0] for row in manifest["skipped"].get(name, []))
        if shards.is_fileless(manifest["shards"][name]):
            continue
        try:
            with shards.ShardReader(out / name) as reader:
                photos.update(v.decode() if isinstance(v, bytes) else str(v)
                              for v in reader.file["source"][()])
        except (shards.ShardError, OSError, KeyError) as exc:
            raise SynthError(f"{out / name}: cannot read its photos' names ({exc}); run `blurgen verify {out}`") from None
    return [p for p in images if p in photos]


#: Bytes a pair takes in a shard besides its pixels (its PSF, gzip-compressed,
#: the per-sample fields, hashes, HDF5's chunk index), and bytes of a shard's
#: own structure: measured on shards of 32-px crops of this version, 15- and
#: 64-px kernels (~460-500 B a pair, ~23 KB a shard).
PAIR_OVERHEAD = 500
SHARD_OVERHEAD = 23_000
#: The same for a whole image (--full: two datasets of its own; ~5.9 KB measured).
IMAGE_OVERHEAD = 6_000
#: Photos whose headers are read to estimate the size of a --full run.
SIZE_SAMPLE = 64


def estimate_bytes(cfg: SynthConfig, photos: list[str], n_shards: int = 0) -> int:
    """About how many bytes the shards of ``photos`` take: an estimate, and
    an upper one where photos are skipped (they give no pairs).

    Shards store pixels uncompressed (see ``blurgen.shards``): a pair of
    crops is 2 * 3 * crop**2 bytes (393,216 for 256 px) plus
    :data:`PAIR_OVERHEAD`, and each of the ``n_shards`` shards
    :data:`SHARD_OVERHEAD`.  Whole images (``full``) are sized from the
    headers of up to :data:`SIZE_SAMPLE` photos spread evenly over the list.
    """
    shared = n_shards * SHARD_OVERHEAD
    if not cfg.full:
        return shared + len(photos) * cfg.crops_per_image * (6 * cfg.crop ** 2 + PAIR_OVERHEAD)
    k = cfg.blur_mode.kernel_size(cfg)
    source = _photo_source(cfg.src)  # a folder or a zip (a zip's photos were not found by path: issue 22.25)
    picks = sorted({round(x) for x in np.linspace(0, len(photos) - 1, min(len(photos), SIZE_SAMPLE))}) if photos else []
    areas = []
    for i in picks:
        try:
            h, w = source.image_size(photos[i], cfg.max_pixels)  # the header only
        except SkipImage:
            continue  # a file the run will skip
        w, h = (max(0, round(v * cfg.downscale) - k + 1) for v in (w, h))
        areas.append(_padded(w) * _padded(h))  # HDF5 stores edge tiles whole
    return shared + (round(len(photos) * (6 * float(np.mean(areas)) + IMAGE_OVERHEAD)) if areas else 0)


def _padded(side: int, tile: int = 128) -> int:
    """A side of a whole image as stored: in tiles of min(side, 128) px."""
    step = min(side, tile) or 1
    return -(-side // step) * step


def synthesize(cfg: SynthConfig, out: str | os.PathLike, workers: int = 1, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None, on_start: Callable[[int], None] | None = None,
               repair: bool = False, stop: StopFlag | None = None, append: bool = False,
               space_check: bool = True, on_plan: Callable[[int, int, int], None] | None = None,
               settings: str | None = None) -> Summary:
    """Build (or finish) the shards of ``cfg`` in ``out``: the shard-run engine
    (:func:`blurgen.runs.shard_run.run`: lock, plan, resume, ``repair``, workers, stop,
    progress, the size estimate, ``on_plan`` and the ``settings`` file) with each photo's
    crops as its samples.

    ``append``: photos under ``cfg.src`` that the run's photo set(s) do not
    hold go into new shards after the existing ones (which stay as they are);
    ``manifest["photo_sets"]`` records each set and its shards.

    Raises SynthError for a bad source folder, output folder or kernel bank, a
    folder that another live run is writing, and a full disk (finished shards
    are kept; the same command resumes).
    """
    out = Path(out)
    src = Path(cfg.src)
    source = _photo_source(src) if src.exists() else None
    if source is None:
        raise SynthError(f"{src}: a file; --src expects a folder of photos (searched recursively) or a zip of them"
                         if src.exists() else f"{src}: no such folder or zip file")
    images = source.names()
    if not images:
        raise SynthError(f"{src}: no images ({', '.join(e.lstrip('.') for e in EXTENSIONS)})")
    if cfg.kernel_bank is not None:
        try:
            check_bank(cfg.kernel_bank)  # every PSF, before any work: a NaN would blacken whole shards
        except BankError as exc:
            raise SynthError(str(exc)) from None
    cfg.blur_mode.check_inputs(cfg)
    if append and cfg.part[1] > 1:
        raise SynthError("--append adds to a whole run, not to a --part of one")
    job = shard_job(cfg, append)
    return shard_run.run(job, out, images, workers=workers, overwrite=overwrite, repair=repair, progress=progress,
                         on_start=on_start, stop=stop, space_check=space_check, on_plan=on_plan, settings=settings)


def shard_job(cfg: SynthConfig, append: bool = False) -> shard_run.ShardJob:
    """``synthesize``'s description for the shard-run engine: each photo gives its crops
    (:func:`build_shard`); the photo sets (``--append``) and the size estimate are its own."""
    bank = None if cfg.kernel_bank is None else shards.file_checksum(cfg.kernel_bank)

    def settle(out: Path, manifest: dict, images: list[str]) -> tuple[list[str], list, int | None]:
        fresh = not (manifest["shards"] or manifest.get("photo_sets"))  # --append on nothing: a plain start
        images, tasks, appended = photo_sets(out, cfg, images, manifest, bank, append, job.plan)
        return images, tasks, None if fresh or not append else appended

    job = shard_run.ShardJob(arguments=cfg.arguments(), part=cfg.part, samples_per_item=cfg.samples_per_image,
                             items_per_shard=cfg.images_per_shard, build=build_shard, config=cfg, settle=settle,
                             estimate=lambda photos, n_shards: estimate_bytes(cfg, photos, n_shards))
    return job

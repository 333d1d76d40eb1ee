"""``blurgen synthesize``: a folder of sharp photos -> shards of aligned (blurred, sharp) pairs.

The work is planned from the sorted list of source files alone: shard s holds
the samples of images ``s * images_per_shard ...``, and sample (image i, crop
c) draws everything random — crop position, kernel, sensor effects — from its
own generator ``default_rng([seed, i, c])`` and its fresh kernel from
``kernel_seeds(seed, 1, start=i * crops_per_image + c)``.  So the output is the
same, byte for byte, whatever the number of workers or the order in which
shards finish, and a run interrupted at any moment (Ctrl-C, kill -9) resumes
by building only the shards its manifest does not list yet.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from blurgen import blur, files, shards, stopping
from blurgen.kernels import BankError, KernelBatch, KernelSpec, check_bank, kernel_seeds, make_kernels, read_bank
from blurgen.sources import MAX_PIXELS, SkipImage, find_images, load_rgb
from blurgen.stopping import StopFlag

SKIP_REPORT = "skipped.tsv"

# Ranges of the realism options, drawn per sample (log-uniform for noise:
# from a clean daylight shot to a dim indoor one).
SATURATION_GAIN = (1.5, 4.0)
NOISE_SHOT = (1e-4, 1e-2)  # variance per unit of signal, signal in [0, 1]
NOISE_READ = (1e-3, 2e-2)  # standard deviation


class SynthError(ValueError):
    """A problem with the arguments or the folders (one line, for the user)."""


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesize.  Everything here decides the output; see ``arguments``.

    src : folder of source photos (searched recursively).
    crop : side of the square crops in pixels (ignored with ``full``).
    crops_per_image : crops taken from each photo.
    full : keep whole images (less the kernel's margin) instead of crops.
    downscale : resize factor applied to each photo first (area averaging).
    shard_size : samples per shard.
    seed : seed of every random draw.
    part : (i, n) — build only shards s with s % n == i.
    kernel_bank : a bank from ``blurgen make-kernels`` to draw kernels from, or
        None to draw a fresh kernel per sample with ``kernel_spec``.
    linear : blur in linear light (undo the sRGB curve, blur, redo it).
    saturate : boost clipped highlights, blur, clip (in linear light).
    noise : add Poisson-Gaussian sensor noise of a random level.
    jpeg_quality : (lo, hi) — re-compress the blurred image at a quality drawn
        in [lo, hi], or None.
    max_pixels : larger images are skipped (decompression bomb guard).
    """

    src: Path
    crop: int = 256
    crops_per_image: int = 1
    full: bool = False
    downscale: float = 1.0
    shard_size: int = 1000
    seed: int = 0
    part: tuple[int, int] = (0, 1)
    kernel_bank: Path | None = None
    kernel_spec: KernelSpec = field(default_factory=KernelSpec)
    linear: bool = False
    saturate: bool = False
    noise: bool = False
    jpeg_quality: tuple[int, int] | None = None
    max_pixels: int = MAX_PIXELS

    def __post_init__(self):
        if self.crop < 4 and not self.full:
            raise SynthError(f"--crop must be >= 4, got {self.crop}")
        if self.crops_per_image < 1:
            raise SynthError(f"--crops-per-image must be >= 1, got {self.crops_per_image}")
        if not 0 < self.downscale <= 1:
            raise SynthError(f"--downscale must be in (0, 1], got {self.downscale}")
        if self.shard_size < 1:
            raise SynthError(f"--shard-size must be >= 1, got {self.shard_size}")
        if self.seed < 0:
            raise SynthError(f"--seed must be >= 0, got {self.seed}")
        i, n = self.part
        if not (n >= 1 and 0 <= i < n):
            raise SynthError(f"--part must be i/n with 0 <= i < n, got {i}/{n}")
        if self.jpeg_quality is not None:
            lo, hi = self.jpeg_quality
            if not 1 <= lo <= hi <= 100:
                raise SynthError(f"--jpeg-quality must be LO-HI with 1 <= LO <= HI <= 100, got {lo}-{hi}")

    @property
    def samples_per_image(self) -> int:
        return 1 if self.full else self.crops_per_image

    @property
    def images_per_shard(self) -> int:
        return max(1, self.shard_size // self.samples_per_image)

    def arguments(self) -> dict:
        """The settings that decide the output, as JSON values (recorded in the manifest)."""
        args = asdict(self)
        args["src"] = str(Path(self.src).resolve())
        args["kernel_bank"] = None if self.kernel_bank is None else str(Path(self.kernel_bank).resolve())
        if self.kernel_bank is not None:
            args["kernel_spec"] = None
        if self.full:
            args["crop"] = args["crops_per_image"] = None
        return json.loads(json.dumps(args))


@dataclass
class Summary:
    images: int = 0
    samples: int = 0
    shards_built: int = 0
    shards_total: int = 0
    shards_done_before: int = 0
    shards_redone: list = field(default_factory=list)  # listed shards rebuilt: truncated, or bad (--repair)
    repair_differs: list = field(default_factory=list)  # rebuilt shards whose bytes differ from the record
    skipped: Counter = field(default_factory=Counter)
    bytes: int = 0
    seconds: float = 0.0


# --- one sample ------------------------------------------------------------------


def blur_sample(region: np.ndarray, psf: np.ndarray, cfg: SynthConfig, rng: np.random.Generator,
                effects: dict) -> np.ndarray:
    """Blur one source window and apply the sensor effects.

    region : (h + k - 1, w + k - 1, 3) uint8 RGB — the output window plus the
        PSF's margins (``blur.margins``).
    psf : (k, k) float32, centred on pixel (k // 2, k // 2).
    effects : the sample's drawn settings (saturation_gain, noise_shot,
        noise_read, jpeg_quality); 0 where an option is off.

    Returns (h, w, 3) uint8 RGB.
    """
    region, psf = blur.trim_to_support(region, psf)  # convert only the pixels the blur reads
    linear = cfg.linear or cfg.saturate
    if linear:
        image = blur.LINEAR_LUT[region]
    else:
        image = region.astype(np.float32) * np.float32(1 / 255)
    if cfg.saturate:
        image = blur.boost_highlights(image, effects["saturation_gain"])
    blurred = blur.convolve_valid(image, psf)
    if cfg.saturate:
        blurred = blur.saturate(blurred)
    if cfg.noise:
        # Noise arises on the sensor, in linear light, whatever space the blur used.
        raw = blurred if linear else blur.srgb_to_linear(np.clip(blurred, 0.0, 1.0))
        blurred = blur.add_sensor_noise(raw, effects["noise_shot"], effects["noise_read"], rng)
    out = blur.encode_srgb8(blurred) if linear or cfg.noise else blur.to_uint8(blurred)
    if cfg.jpeg_quality is not None:
        out = blur.jpeg_roundtrip(out, effects["jpeg_quality"])
    return out


def _draw_effects(cfg: SynthConfig, rng: np.random.Generator) -> dict:
    # Drawn in a fixed order whatever is switched on, so turning one option on
    # leaves the others' draws as they were.
    gain = rng.uniform(*SATURATION_GAIN)
    shot = math.exp(rng.uniform(*np.log(NOISE_SHOT)))
    read = math.exp(rng.uniform(*np.log(NOISE_READ)))
    lo, hi = cfg.jpeg_quality or (0, 0)
    quality = int(rng.integers(lo, hi + 1))
    return {
        "saturation_gain": gain if cfg.saturate else 0.0,
        "noise_shot": shot if cfg.noise else 0.0,
        "noise_read": read if cfg.noise else 0.0,
        "jpeg_quality": quality,
    }


# --- one shard -------------------------------------------------------------------


@dataclass(frozen=True)
class ShardTask:
    index: int
    first_image: int
    stop_image: int

    @property
    def name(self) -> str:
        return shards.shard_name(self.index)


def plan_shards(n_images: int, cfg: SynthConfig) -> list[ShardTask]:
    """Every shard of the data set that this ``--part`` builds, in order."""
    per = cfg.images_per_shard
    i, n = cfg.part
    total = math.ceil(n_images / per)
    return [ShardTask(s, s * per, min(n_images, (s + 1) * per)) for s in range(total) if s % n == i]


_BANK_CACHE: dict[str, KernelBatch] = {}


def _bank(path: Path) -> KernelBatch:
    # One read per worker process, not per shard.
    key = str(path)
    if key not in _BANK_CACHE:
        _BANK_CACHE[key] = read_bank(path)[0]
    return _BANK_CACHE[key]


def build_shard(task: ShardTask, images: list[str], cfg: SynthConfig, out: Path,
                progress: Callable[[int], None] | None = None, stop: StopFlag | None = None) -> dict:
    """Synthesize one shard and write it atomically.  Returns its manifest entry
    plus ``skipped``: [(relative path, reason, detail)].

    ``progress(k)`` is called after each source image with the number of
    samples it was planned to give (made or skipped).  ``stop`` is checked
    before each sample: once set, the shard's temporary file is removed and
    :class:`~blurgen.stopping.Interrupted` raised.
    """
    import cv2

    k_per = cfg.samples_per_image
    count = (task.stop_image - task.first_image) * k_per
    if cfg.kernel_bank is None:
        fresh = make_kernels(kernel_seeds(cfg.seed, count, start=task.first_image * k_per), cfg.kernel_spec)
        kernel_size = cfg.kernel_spec.size
    else:
        bank = _bank(cfg.kernel_bank)
        kernel_size = bank.psf.shape[-1]
    before, after = blur.margins(kernel_size)
    skipped = []
    attrs = {"shard": task.index, "arguments": cfg.arguments(), "images": [task.first_image, task.stop_image]}
    empty = {"source": np.zeros(0, dtype=object), "crop_box": np.zeros((0, 4), np.int32)}
    path = out / task.name
    # Samples go to disk as they are made: a worker holds one photo and a few
    # crops, not a whole shard (1000 crops of 256x256 would be 400 MB).
    with shards.ShardWriter(path, crop=None if cfg.full else (cfg.crop, cfg.crop), attrs=attrs,
                            kernel_size=kernel_size, fields=empty, expected=count) as writer:
        for i in range(task.first_image, task.stop_image):
            stopping.check(stop)
            rel = images[i]
            try:
                photo = load_rgb(Path(cfg.src) / rel, cfg.max_pixels)
            except SkipImage as exc:
                skipped.append((rel, exc.reason, exc.detail))
                if progress is not None:
                    progress(k_per)
                continue
            if cfg.downscale != 1:
                h, w = photo.shape[:2]
                size = (max(1, round(w * cfg.downscale)), max(1, round(h * cfg.downscale)))
                photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
            h, w = photo.shape[:2]
            side = None if cfg.full else cfg.crop
            need = (kernel_size - 1) + (side or 1)
            if h < need or w < need:
                what = "the kernel" if cfg.full else f"a {cfg.crop} crop plus the kernel's {kernel_size - 1} px margin"
                skipped.append((rel, "too-small", f"{w}x{h} is smaller than {what}"))
                if progress is not None:
                    progress(k_per)
                continue
            for c in range(k_per):
                stopping.check(stop)
                rng = np.random.default_rng([cfg.seed, i, c])
                if cfg.full:
                    y0, x0, y1, x1 = before, before, h - after, w - after
                    rng.integers(0, 1, size=2)  # keep the draw order of crops
                else:
                    y0 = before + int(rng.integers(0, h - need + 1))
                    x0 = before + int(rng.integers(0, w - need + 1))
                    y1, x1 = y0 + cfg.crop, x0 + cfg.crop
                j = (i - task.first_image) * k_per + c
                if cfg.kernel_bank is None:
                    rng.integers(0, 1)
                    psf, params, bank_index = fresh.psf[j], {k: v[j] for k, v in fresh.params().items()}, -1
                else:
                    bank_index = int(rng.integers(0, len(bank)))
                    psf, params = bank.psf[bank_index], {k: v[bank_index] for k, v in bank.params().items()}
                effects = _draw_effects(cfg, rng)
                region = photo[y0 - before : y1 + after, x0 - before : x1 + after]
                meta = {"source": rel, "crop_box": np.array([y0, x0, y1, x1], np.int32), "kernel_index": bank_index,
                        "linear": cfg.linear or cfg.saturate, **{f"kernel_{k}": v for k, v in params.items()},
                        **effects}
                writer.add(blur_sample(region, psf, cfg, rng, effects), photo[y0:y1, x0:x1], psf, meta)
            if progress is not None:
                progress(k_per)
    return {"name": task.name, "count": writer.count, "checksum": writer.checksum, "bytes": path.stat().st_size,
            "skipped": skipped}


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the platform has
    one (a batch scheduler's allocation, taskset), else all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _single_threaded():
    import cv2

    cv2.setNumThreads(1)  # one process per core already


_PROGRESS = None  # in a pool worker: the queue its per-image progress goes to


def _worker_init(progress_queue):
    global _PROGRESS
    _single_threaded()
    # Ctrl-C and a scheduler's SIGTERM reach the whole process group.  A
    # worker killed at a random point may die holding a lock of the pool's
    # queues, and the parent then hangs for ever in terminate() (seen twice in
    # 45 tries of SIGTERM to the group).  So workers leave the group: the parent alone gets
    # those signals and stops the pool in order (terminate() sends SIGTERM,
    # which kills a worker at once, in C, printing nothing; the parent then
    # removes its temporary file).  The parent started us with SIGINT and
    # SIGTERM blocked (``signals_blocked``), so none could land before this
    # point; one that arrived meanwhile is delivered at the unblock, here,
    # where no lock is held.  SIGINT is ignored, should one be sent to a
    # worker alone.
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping.SIGNALS)
    _PROGRESS = progress_queue


def _run_task(args):
    return build_shard(*args, progress=_PROGRESS.put)


# --- the whole run ---------------------------------------------------------------------


def sources_digest(src: Path, images: list[str]) -> str:
    """``"sha256:<hex>"`` of the sorted relative paths and sizes of the source files."""
    digest = hashlib.sha256()
    for rel in images:
        try:
            size = (src / rel).stat().st_size
        except OSError:
            size = -1
        digest.update(f"{rel}\t{size}\n".encode())
    return "sha256:" + digest.hexdigest()


def output_names(part: tuple[int, int]) -> tuple[str, str]:
    """(manifest, skip report) file names of a run: ``manifest.json`` and
    ``skipped.tsv``, or ``manifest.part-I-of-N.json`` and ``skipped.part-I-of-N.tsv``
    for part I of N, so that the parts of a job array can share one folder."""
    i, n = part
    return shards.manifest_name(part), SKIP_REPORT if n == 1 else f"skipped.part-{i}-of-{n}.tsv"


def make_output_folder(out: Path) -> None:
    """Create ``out`` (and its parents) if needed; SynthError if it cannot be, or is not writable."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynthError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise SynthError(f"{out}: not writable")


def prepare_output(out: Path, cfg: SynthConfig, overwrite: bool, tasks: list[ShardTask]) -> dict:
    """Check or create the output folder and return this run's manifest (new or resumed).

    Refuses an output that holds another data set — its own manifest with
    other arguments, a whole run where parts are being built or the reverse,
    parts of another data set — unless ``overwrite``: then those manifests
    and this run's own, their skip reports and this run's planned shards are
    removed, and the run starts afresh (a whole run
    also removes every shard the old manifests list; a part never touches the
    shards of other parts).
    """
    out = Path(out)
    make_output_folder(out)
    own, report = output_names(cfg.part)
    args = cfg.arguments()
    conflicts = {}  # manifest name -> manifest (None: unreadable) of another data set or run
    for name in [shards.MANIFEST, *shards.part_manifests(out).values()]:
        if not (out / name).exists():
            continue
        try:
            manifest = shards.read_manifest(out, name)
        except shards.ShardError:
            manifest = None
        if name == own:  # --overwrite starts afresh even over the same arguments
            ok = not overwrite and manifest is not None and manifest.get("arguments") == args
        else:  # another part of the same data set is a sibling, anything else is in the way
            ok = manifest is not None and cfg.part[1] > 1 and name != shards.MANIFEST \
                and shards.same_dataset(manifest, {"arguments": args})
        if not ok:
            conflicts[name] = manifest
    if conflicts and not overwrite:
        name, manifest = next(iter(conflicts.items()))
        if manifest is None:
            why = "is not a readable manifest"
        elif name == own:
            old = manifest.get("arguments") or {}
            why = f"lists shards made with other arguments (differs in: {', '.join(_differences(old, args))})"
        else:
            why = "belongs to another data set" if cfg.part[1] > 1 or name == shards.MANIFEST else "is a part of a --part run"
        raise SynthError(f"{out / name} {why}; pass --overwrite to start afresh, or choose another --out")
    doomed = {t.name for t in tasks}
    for name, manifest in conflicts.items():
        if cfg.part[1] == 1 and manifest is not None:  # a whole run owns the folder
            doomed.update(manifest["shards"])
        (out / name).unlink(missing_ok=True)
        (out / output_names(shards.manifest_part(name))[1]).unlink(missing_ok=True)
    if conflicts:
        for name in doomed:
            (out / name).unlink(missing_ok=True)
        (out / report).unlink(missing_ok=True)
    # Temporary files a killed run of this part left (never another part's,
    # nor those of a live process: see files.remove_stale_temporaries).
    for name in [own, report, *(t.name for t in tasks)]:
        files.remove_stale_temporaries(out / name)
    if own in conflicts or not (out / own).exists():
        return {"arguments": args, "shards": {}, "skipped": {}}
    return shards.read_manifest(out, own)


def _differences(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def write_skip_report(out: Path, manifest: dict, name: str = SKIP_REPORT) -> None:
    """Write the skip report ``name`` atomically: a header ``path reason detail``
    and a row per skipped image, tab-separated, one line per row.  A field
    holding a tab, a line break or a double quote (a file may be named so) is
    written in double quotes with its quotes doubled (RFC 4180 quoting, as
    Python's ``csv.reader(f, delimiter="\\t")`` and spreadsheets read it)."""
    rows = [row for shard in sorted(manifest["skipped"]) for row in manifest["skipped"][shard]]
    text = io.StringIO()
    minimal = csv.writer(text, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    # QUOTE_MINIMAL leaves a carriage return bare when lines end in "\n" alone:
    # such a row is quoted field by field.
    every = csv.writer(text, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_ALL)
    minimal.writerow(["path", "reason", "detail"])
    for row in rows:
        (every if any("\r" in str(field) for field in row) else minimal).writerow(row)
    files.write_text(out / name, text.getvalue())


def _next_result(results, stop: StopFlag | None) -> dict:
    """The next finished shard of a pool's ``imap_unordered``, checking ``stop``
    every 0.1 s meanwhile (a plain ``next`` would sleep through the signal)."""
    while True:
        stopping.check(stop)
        try:
            return results.next(timeout=0.1)
        except multiprocessing.TimeoutError:
            pass


def _relay(queue, progress: Callable[[int], None] | None, done: threading.Event) -> None:
    """Pass the workers' progress messages on until ``done`` is set and the queue is empty.

    The end is an Event, not a message: putting one takes the queue's write
    lock, which a worker killed mid-put (the pool's terminate()) holds for ever.
    """
    while not (done.is_set() and queue.empty()):
        if queue.empty():
            time.sleep(0.05)
            continue
        n = queue.get()
        if progress:
            progress(n)


def needs_building(out: Path, tasks: list[ShardTask], manifest: dict, repair: bool = False,
                   progress: Callable[[int], None] | None = None) -> tuple[list[ShardTask], list[str]]:
    """(the tasks to build, the names of listed shards among them).

    A shard is built if the manifest does not list it, if its file is missing,
    or if its size is not the recorded one (cheap: a truncated or extended
    file).  With ``repair`` every listed shard is also verified in full
    (``shards.verify_shard``: checksum, samples, kernels) and rebuilt if bad;
    ``progress(1)`` is called after each shard verified.
    """
    todo, redo = [], []
    for task in tasks:
        entry = manifest["shards"].get(task.name)
        path = out / task.name
        if entry is None:
            todo.append(task)
            continue
        bad = not path.is_file() or ("bytes" in entry and path.stat().st_size != entry["bytes"])
        if not bad and repair:
            bad = shards.verify_shard(path, entry) is not None
            if progress:
                progress(1)
        if bad:
            todo.append(task)
            redo.append(task.name)
    return todo, redo


def synthesize(cfg: SynthConfig, out: str | os.PathLike, workers: int = 1, overwrite: bool = False,
               progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None,
               repair: bool = False, stop: StopFlag | None = None) -> Summary:
    """Build (or finish) the shards of ``cfg`` in ``out``.

    A listed shard whose file is missing or not of its recorded size is built
    again; ``repair`` also verifies every listed shard in full and rebuilds
    the bad ones (synthesis is deterministic: the same bytes as the originals;
    ``Summary.repair_differs`` names any that came out different).

    ``on_start(samples_to_do)`` is called once the work is planned and
    ``progress(samples)`` after each source image (from a helper thread when
    ``workers`` > 1).  ``stop`` is checked between samples (one worker) or
    every 0.1 s (a pool): once set, the shards in progress are dropped,
    finished ones kept, and :class:`~blurgen.stopping.Interrupted` raised.

    One run at a time per ``--part`` of a folder: the run holds the lock of
    its manifest (``.manifest.json.lock``, ``.manifest.part-I-of-N.json.lock``)
    from start to end.  Raises SynthError for a bad source folder, output
    folder or kernel bank, a folder that another live run is writing, and a
    full disk (finished shards are kept; the same command resumes).
    """
    out = Path(out)
    src = Path(cfg.src)
    if src.is_file():
        raise SynthError(f"{src}: a file; --src expects a folder of photos (searched recursively)")
    if not src.is_dir():
        raise SynthError(f"{src}: no such folder")
    images = find_images(src)
    if not images:
        raise SynthError(f"{src}: no images ({', '.join(e.lstrip('.') for e in ('.jpg', '.png', '.bmp', '.tif', '.webp'))})")
    if cfg.kernel_bank is not None:
        try:
            check_bank(cfg.kernel_bank)  # every PSF, before any work: a NaN would blacken whole shards
        except BankError as exc:
            raise SynthError(str(exc)) from None
    make_output_folder(out)
    manifest_file = output_names(cfg.part)[0]
    i, n = cfg.part
    try:
        with files.exclusive_lock(out / manifest_file, what=f"{out}" + (f" (part {i}/{n})" if n > 1 else "")):
            if overwrite:  # may delete the files of the whole run or of the parts: none may be running
                for other in [shards.MANIFEST, *shards.part_manifests(out).values()]:
                    if other != manifest_file:
                        files.check_unlocked(out / other, what=f"{out} ({other})")
            return _synthesize_locked(cfg, out, images, workers, overwrite, progress, on_start, stop, repair)
    except files.Busy as exc:
        raise SynthError(str(exc)) from None
    except OSError as exc:
        if not files.no_room(exc):
            raise
        raise SynthError(f"{out}: could not write ({files.describe_os_error(exc)}); finished shards are kept: "
                         "free some space and run the same command again to resume") from None


def _synthesize_locked(cfg: SynthConfig, out: Path, images: list[str], workers: int, overwrite: bool,
                       progress: Callable[[int], None] | None, on_start: Callable[[int], None] | None,
                       stop: StopFlag | None, repair: bool) -> Summary:
    """The run of :func:`synthesize`, once it holds the output's lock."""
    src = Path(cfg.src)
    inputs = {"sources": sources_digest(src, images),
              "kernel_bank": None if cfg.kernel_bank is None else shards.file_checksum(cfg.kernel_bank)}
    tasks = plan_shards(len(images), cfg)
    manifest = prepare_output(out, cfg, overwrite, tasks)
    manifest_file, report_file = output_names(cfg.part)
    # The plan is a function of the sorted file list: resuming over another
    # list (photos added, removed or replaced) would mix two data sets.
    before = manifest.setdefault("inputs", inputs)
    if manifest["shards"] and before != inputs:
        what = "the photos under --src" if before.get("sources") != inputs["sources"] else "the --kernels bank"
        raise SynthError(f"{what} changed since {out} was started; pass --overwrite to start afresh, "
                         "or choose another --out")
    manifest["planned"] = len(tasks)
    # Written before any work: the arguments are on record, and the parts of a
    # job array see each other.
    shards.write_manifest(out, manifest, manifest_file)
    summary = Summary(images=len(images), shards_total=len(tasks))
    todo, summary.shards_redone = needs_building(out, tasks, manifest, repair)
    recorded = {name: manifest["shards"][name].get("checksum") for name in summary.shards_redone}
    summary.shards_done_before = len(tasks) - len(todo)
    if on_start:
        on_start(sum((t.stop_image - t.first_image) * cfg.samples_per_image for t in todo))
    started = time.perf_counter()
    jobs = [(t, images, cfg, out) for t in todo]

    def record(result: dict) -> None:
        name, skipped = result.pop("name"), result.pop("skipped")
        if recorded.get(name) and result["checksum"] != recorded[name]:
            summary.repair_differs.append(name)
        manifest["shards"][name] = result
        if skipped:
            manifest["skipped"][name] = skipped
        shards.write_manifest(out, manifest, manifest_file)
        write_skip_report(out, manifest, report_file)
        summary.shards_built += 1

    if workers <= 1 or len(jobs) <= 1:
        _single_threaded()
        for job in jobs:
            stopping.check(stop)
            record(build_shard(*job, progress=progress, stop=stop))
    else:
        ctx = multiprocessing.get_context("spawn")  # no OpenCV/HDF5 state crosses a fork
        queue = ctx.SimpleQueue()
        done = threading.Event()
        relay = threading.Thread(target=_relay, args=(queue, progress, done), daemon=True)
        relay.start()
        try:
            with stopping.signals_blocked():  # see _worker_init
                pool = ctx.Pool(min(workers, len(jobs)), initializer=_worker_init, initargs=(queue,))
            with pool:
                results = pool.imap_unordered(_run_task, jobs)
                for _ in jobs:
                    record(_next_result(results, stop))
        finally:
            done.set()
            relay.join(timeout=5)
            # After an interruption the pool's workers are terminated (and
            # joined) by now: their half-written shards can go.
            for task in todo:
                files.remove_stale_temporaries(out / task.name)
    if not (out / report_file).exists():
        write_skip_report(out, manifest, report_file)
    summary.seconds = time.perf_counter() - started
    for name, entry in manifest["shards"].items():
        summary.samples += entry["count"]
        summary.bytes += entry["bytes"]
    for rows in manifest["skipped"].values():
        summary.skipped.update(reason for _, reason, _ in rows)
    return summary


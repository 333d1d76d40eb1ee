"""Training and validation data: synthetic shard pairs mixed with GoPro frames.

The training stream is a sequence of *draws* j = 0, 1, 2, ...  Draw j is a
pure function of (seed, j) and the data on disk:

* its source -- synthetic (the shards) or GoPro -- follows a fixed pattern
  of period a + b for ``mix = (a, b)``, with the a synthetic slots spread
  evenly (Bresenham), so every window of a + b consecutive draws holds
  exactly a synthetic and b GoPro draws, not only on average;
* its sample is the next one of that source's own shuffled pass: the c-th
  draw from a source of n samples takes ``perm_e[c % n]``, where ``perm_e``
  (epoch e = c // n) is a permutation from
  ``default_rng([seed, PERMUTATION_TAG, source, e])``;
* its crop offset and horizontal flip come from ``default_rng([seed,
  DRAW_TAG, j])`` (:func:`blurgen.shards.augment.draw_crop_flip`, order ``INTEGERS``).

Generator step k of rank r (of ``world_size``) takes the draws
``(k * world_size + r) * B + t`` for t < B, so ranks read disjoint draws and
a run resumed at step k sees exactly what the uninterrupted run saw.

Samples are read inside DataLoader workers; every HDF5 file is opened lazily
by the worker that reads it, and the dataset pickles without open handles.

A synthetic sample whose pixels fail their stored hash (format-2 shards) is
skipped: the draw takes instead the sample ``default_rng([seed,
REDRAW_TAG, j, attempt]).integers(n)`` of the same source, with a crop box
and flip from ``default_rng([seed, DRAW_TAG, j, attempt])`` -- still a pure
function of (seed, j) and the data on disk, so a run stays deterministic and
resumable.  Each skip is logged as a warning; the stream stops with a
DataError once more than ``max_damaged`` samples were skipped.

With ``online`` (``trainer fit --online``), a synthetic draw reads only the
sharp image of its sample -- a window of side crop + k - 1, its position
drawn as above so that the window fits -- and blurs it in the worker with a
fresh Boracchi & Foi kernel of side k and fresh sensor effects
(:mod:`blurgen.runs.online`): kernel and effects are a pure function of (seed, j,
attempt) too, so an online run resumes exactly, and no blurred pair repeats.
GoPro draws stay real pairs; validation pairs are never blurred online.
"""
from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from blurgen.physics.realism import Realism, RealismError, parse_range
from blurgen.plumbing.stopping import ignore_in_worker
from blurgen.shards import DamagedSample, ShardError
from blurgen.shards.augment import INTEGERS, crop_pair, draw_crop_flip, flip_pair
from blurgen.shards.index import ShardIndex, check_shard
from trainer.errors import TrainerError
from trainer.gopro import BLUR_FOLDERS, GoProError, GoProPair, read_gopro_pair, scaled_size, scan_gopro
from trainer.tensors import to_tensor

SYNTHETIC, GOPRO = 0, 1
SOURCE_NAMES = ("synthetic", "GoPro")
# Stream tags keep the permutation and per-draw random streams apart even
# when their other seed words coincide.
PERMUTATION_TAG = 0x7065726D
DRAW_TAG = 0x64726177
REDRAW_TAG = 0x72647277
SHARP_TAG = 0x73687270
#: Replacement draws tried for one draw whose samples are damaged, before giving up.
MAX_REDRAWS = 8
#: Damaged samples a training stream skips before it stops (see train_batches).
MAX_DAMAGED = 100

log = logging.getLogger(__name__)


class DataError(TrainerError):
    """Unusable data settings or data (one line, meant for the user)."""


def _shards():
    """The module blurgen.shards (``shards`` names lists of shards in this module)."""
    from blurgen import shards
    return shards


def _shard_problem(where: str, exc: Exception) -> DataError:
    # ShardError messages already name the file (and sample).
    return DataError(str(exc) if isinstance(exc, _shards().ShardError) else f"{where}: cannot read ({exc})")


def parse_mix(text: str) -> tuple[int, int]:
    """``"2:1"`` -> (2, 1): synthetic : GoPro draws.  DataError on bad text or ``0:0``."""
    parts = str(text).strip().split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = (int(p) for p in parts)
    except ValueError:
        raise DataError(f"bad mix {text!r}: expected SYNTHETIC:GOPRO, e.g. 2:1, 1:0 or 0:1") from None
    return _check_mix((a, b))


def parse_settings(text: str | None) -> dict:
    """``"max_angle=2,max_shift=1"`` -> {"max_angle": "2", "max_shift": "1"} (a mode's settings,
    ``--online-mode-settings``); the values are the mode's to read.  ValueError on bad text."""
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"online mode settings must look like KEY=VALUE[,KEY=VALUE], got {text!r}")
        out[key.strip()] = value.strip()
    return out


def _check_mix(mix) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in mix)
    except (TypeError, ValueError):
        raise DataError(f"bad mix {mix!r}: expected two integers, e.g. (2, 1)") from None
    if a < 0 or b < 0 or a + b == 0:
        raise DataError(f"bad mix {a}:{b}: both parts must be >= 0 and not both 0")
    return a, b


@dataclass
class DataConfig:
    """Where the training pairs come from and how they are cut.

    shards: shard folders (each with a manifest.json) of synthetic pairs.
    gopro: a GOPRO_Large root (``train/`` for training, ``test/`` for validation).
    mix: synthetic : GoPro draws, exact over every window of a + b draws.
    crop: side of the square random crops in pixels (a multiple of 4).
    batch_size: pairs per generator step and rank.
    flip: random horizontal flips (the same for both images of a pair).
    gopro_scale: GoPro frames are resized by this (area averaging) before cropping.
    gopro_blur: ``"blur"`` or ``"blur_gamma"`` (see trainer.gopro).
    workers: DataLoader worker processes (0: read in the calling process).
    seed: seed of the draw stream.
    val_shards: a shard folder to validate on (all its shards, whole
        samples); then no training shard is held out.  Without it, validation
        uses GoPro ``test/``, or else the last shard of the first folder.
    allow_partial: use shard folders that ``blurgen synthesize`` has not
        finished (``blurgen verify``'s "not built yet"); refused otherwise.
    online: blur the synthetic draws in the workers (module doc); the shards'
        sharp images are read, any blurred ones ignored.
    online_kernel_size: PSF side of the online blur; None: a quarter of the
        crop rounded up to odd (resolved when ``online`` is set).
    online_linear, online_saturate, online_noise, online_jpeg_quality: the
        sensor effects of ``blurgen synthesize``, drawn per draw.
    online_camera: blur through RSBlur's camera pipeline with this camera's
        calibration (``synthesize --camera``), or None.
    sharp_fraction: share of the draws, in [0, 1), whose blurred image is
        replaced by its sharp one (an identity pair: teaches the model to
        leave sharp input alone); drawn per draw from (seed, j), the
        validation pairs never.
    online_mode: the blur mode of the online draws, one of ``blurgen.modes.ONLINE_MODES``
        (``uniform``: the draw's kernel; ``shake``: non-uniform camera shake inside the
        window the kernel's margin gives).
    online_mode_settings: the mode's settings, ``KEY=VALUE[,KEY=VALUE]`` (``shake``: the
        fields of ``blurgen.physics.shake.ShakeSpec``, e.g. ``max_angle=2``); None: its defaults.
    """

    shards: tuple[Path, ...] = ()
    gopro: Path | None = None
    mix: tuple[int, int] = (2, 1)
    crop: int = 256
    batch_size: int = 1
    flip: bool = True
    gopro_scale: float = 0.5
    gopro_blur: str = "blur"
    workers: int = 2
    seed: int = 0
    val_shards: Path | None = None
    allow_partial: bool = False
    online: bool = False
    online_kernel_size: int | None = None
    online_linear: bool = False
    online_saturate: bool = False
    online_noise: bool = False
    online_jpeg_quality: tuple[int, int] | None = None
    online_camera: str | None = None
    online_mode: str = "uniform"
    online_mode_settings: str | None = None
    sharp_fraction: float = 0.0

    def __post_init__(self):
        # Accept what a CLI or a JSON checkpoint hands over (str paths, lists, "2:1").
        if self.shards is None:
            self.shards = ()
        elif isinstance(self.shards, (str, Path)):
            self.shards = (self.shards,)
        self.shards = tuple(Path(p) for p in self.shards)
        self.gopro = None if self.gopro is None else Path(self.gopro)
        self.val_shards = None if self.val_shards is None else Path(self.val_shards)
        self.mix = parse_mix(self.mix) if isinstance(self.mix, str) else _check_mix(self.mix)
        if int(self.crop) != self.crop or self.crop < 4 or self.crop % 4:
            raise DataError(f"bad crop {self.crop}: must be a positive multiple of 4 "
                            "(the generator downsamples twice by 2)")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise DataError(f"bad batch size {self.batch_size}: must be >= 1")
        if not self.gopro_scale > 0:
            raise DataError(f"bad GoPro scale {self.gopro_scale}: must be > 0")
        if self.gopro_blur not in BLUR_FOLDERS:
            raise DataError(f"bad GoPro blur variant {self.gopro_blur!r}: "
                            f"choose from {', '.join(BLUR_FOLDERS)}")
        if int(self.workers) != self.workers or self.workers < 0:
            raise DataError(f"bad worker count {self.workers}: must be >= 0")
        if int(self.seed) != self.seed or self.seed < 0:
            raise DataError(f"bad seed {self.seed}: must be an integer >= 0")
        self.crop, self.batch_size = int(self.crop), int(self.batch_size)
        self.workers, self.seed = int(self.workers), int(self.seed)
        self.gopro_scale, self.flip = float(self.gopro_scale), bool(self.flip)
        if not 0 <= self.sharp_fraction < 1:
            raise DataError(f"bad sharp fraction {self.sharp_fraction}: must be in [0, 1)")
        self.sharp_fraction = float(self.sharp_fraction)
        self._check_online()

    def _check_online(self) -> None:
        try:
            self.online_jpeg_quality = parse_range(self.online_jpeg_quality, "jpeg_quality")
        except RealismError as exc:
            raise DataError(exc.spelled(prefix="online-")) from None
        self.online = bool(self.online)
        self.online_mode = self.online_mode or "uniform"
        extras = [name for name in ("online_kernel_size", "online_linear", "online_saturate", "online_noise",
                                    "online_jpeg_quality", "online_camera", "online_mode_settings")
                  if getattr(self, name) not in (None, False)] + (["online_mode"] if self.online_mode != "uniform" else [])
        if not self.online:
            if extras:
                raise DataError(f"{extras[0].replace('_', '-')} applies to online blur only: add --online")
            return
        from blurgen.runs.online import kernel_size_for_crop
        if self.online_kernel_size is None:
            self.online_kernel_size = kernel_size_for_crop(self.crop)
        try:
            self.online_blur()
        except RealismError as exc:
            raise DataError(exc.spelled(prefix="online-")) from None
        except ValueError as exc:
            raise DataError(str(exc)) from None
        self.online_kernel_size = int(self.online_kernel_size)

    def online_blur(self):
        """The blurgen.runs.online.OnlineBlur of these settings, or None without ``online``.  The
        realism settings are flat fields here, one per option of ``fit`` (as a run's config
        records them), and become one :class:`blurgen.physics.realism.Realism`, validated there."""
        if not self.online:
            return None
        from blurgen.modes import MODES
        from blurgen.runs.online import OnlineBlur

        mode = MODES.get(self.online_mode)
        spec = None if mode is None else mode.online_spec(parse_settings(self.online_mode_settings))
        return OnlineBlur(kernel_size=self.online_kernel_size,
                          realism=Realism(linear=self.online_linear, saturate=self.online_saturate,
                                          noise=self.online_noise, jpeg_quality=self.online_jpeg_quality,
                                          camera=self.online_camera),
                          mode=self.online_mode, spec=spec)


# --- the draw schedule (pure) ----------------------------------------------------


def mix_pattern(mix: tuple[int, int]) -> np.ndarray:
    """(a + b,) bool, True where a draw is synthetic; the a True slots spread evenly.

    Slot p is synthetic iff floor((p + 1) a / n) - floor(p a / n) == 1 with
    n = a + b.  The stream repeats this pattern, so any a + b consecutive
    draws form a rotation of it and hold exactly a synthetic draws.
    """
    a, b = _check_mix(mix)
    n = a + b
    p = np.arange(n)
    return ((p + 1) * a) // n - (p * a) // n == 1


class DrawPlan:
    """Maps a global draw index to (source, sample index); pure and picklable."""

    def __init__(self, mix: tuple[int, int], sizes: tuple[int, int], seed: int):
        self.pattern = mix_pattern(mix)
        self.sizes = tuple(int(s) for s in sizes)
        self.seed = int(seed)
        for source, share in enumerate(mix):
            if share and not self.sizes[source]:
                raise DataError(f"no {SOURCE_NAMES[source]} pairs to draw from")
        is_source = (self.pattern, ~self.pattern)  # indexed by SYNTHETIC, GOPRO
        # before[s][p]: how many slots of source s precede slot p in one period.
        self._before = [np.concatenate([[0], np.cumsum(m)[:-1]]) for m in is_source]
        self._per_period = [int(m.sum()) for m in is_source]
        self._permutations: dict[tuple[int, int], np.ndarray] = {}

    def source(self, j: int) -> int:
        return SYNTHETIC if self.pattern[j % len(self.pattern)] else GOPRO

    def locate(self, j: int) -> tuple[int, int]:
        """(source, sample index) of draw j >= 0."""
        period, slot = divmod(int(j), len(self.pattern))
        source = self.source(j)
        count = period * self._per_period[source] + int(self._before[source][slot])
        epoch, position = divmod(count, self.sizes[source])
        return source, int(self._permutation(source, epoch)[position])

    def _permutation(self, source: int, epoch: int) -> np.ndarray:
        key = (source, epoch)
        if key not in self._permutations:
            if len(self._permutations) >= 4:  # a worker only moves forward; keep a few epochs
                self._permutations.pop(next(iter(self._permutations)))
            rng = np.random.default_rng([self.seed, PERMUTATION_TAG, source, epoch])
            self._permutations[key] = rng.permutation(self.sizes[source])
        return self._permutations[key]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_permutations"] = {}
        return state


# --- the sources ---------------------------------------------------------------------


class ShardSource(ShardIndex):
    """Synthetic pairs from HDF5 shards (a blurgen.shards.index.ShardIndex: each process
    opens its own readers lazily) for the draws.

    Built from blurgen.shards.ShardInfo (path, count) and, from ``_check_shards``,
    their samples' sizes (read on first need otherwise).  Read errors are raised as DataError naming the shard file and
    sample, pixels that fail their hash as blurgen.shards.DamagedSample.
    ``verify`` False skips the hash check (for benchmarks).
    """

    def size(self, i: int) -> tuple[int, int]:
        try:
            return super().size(i)
        except (ShardError, OSError, KeyError) as exc:
            raise _shard_problem(self.name(i), exc) from None

    def read(self, i: int, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self.read_pair(i, box)
        except DamagedSample:
            raise
        except (ShardError, OSError, KeyError) as exc:
            raise _shard_problem(self.name(i), exc) from None

    def read_sharp(self, i: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """The window ``box`` of sample i's sharp image (online blur; any shard)."""
        try:
            return super().read_sharp(i, box)
        except DamagedSample:
            raise
        except (ShardError, OSError, KeyError) as exc:
            raise _shard_problem(self.name(i), exc) from None


class GoProSource:
    """Real pairs from GoPro frames, resized by ``scale`` before cropping."""

    def __init__(self, pairs: Sequence[GoProPair], scale: float):
        self.pairs = list(pairs)
        self.scale = scale

    def __len__(self) -> int:
        return len(self.pairs)

    def name(self, i: int) -> str:
        return str(self.pairs[i].blurred)

    def size(self, i: int) -> tuple[int, int]:
        return scaled_size(self.pairs[i].size, self.scale)

    def read(self, i: int, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        return crop_pair(*read_gopro_pair(self.pairs[i], self.scale), box)

    def close(self) -> None:
        pass


# --- the dataset ---------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """What draw j reads: ``box`` is (y0, x0, y1, x1) in the (scaled) sample --
    the crop, or for an online draw the crop plus the kernel's margins."""

    index: int
    source: int
    sample: int
    box: tuple[int, int, int, int]
    flip: bool
    attempt: int = 0
    online: bool = False


class DrawDataset(Dataset):
    """Map-style dataset whose item j is draw j: (blurred, sharp, damaged) with
    uint8 (crop, crop, 3) RGB images and ``damaged`` the one-line reports of
    the damaged samples skipped on the way (usually empty; see the module doc).

    A sample that cannot be read yields a one-line error string instead, so
    that the calling process can raise a clean DataError rather than a
    worker traceback.  ``online`` (a blurgen.runs.online.OnlineBlur) blurs the
    synthetic draws here; the DataLoader fetches a batch at once
    (``__getitems__``), so that its kernels are made in one vectorised call.
    """

    def __init__(self, plan: DrawPlan, sources: tuple, crop: int, flip: bool, seed: int, online=None,
                 sharp_fraction: float = 0.0):
        self.plan, self.sources = plan, sources
        self.crop, self.flip, self.seed = crop, flip, seed
        self.online = online
        self.sharp_fraction = sharp_fraction

    def is_sharp(self, j: int) -> bool:
        """Whether draw j is an identity pair (blurred := sharp), from (seed, j) alone."""
        return self.sharp_fraction > 0 and \
            bool(np.random.default_rng([self.seed, SHARP_TAG, int(j)]).random() < self.sharp_fraction)

    def window(self, source: int) -> int:
        """Side of what a draw of ``source`` reads: the crop, plus k - 1 for online blur."""
        return self.crop + (self.online.margin if self.online is not None and source == SYNTHETIC else 0)

    def draw(self, j: int, attempt: int = 0) -> Draw:
        """The source, sample, crop box and flip of draw j (reads only the sample's size);
        ``attempt`` > 0: its replacement number ``attempt`` for a damaged sample."""
        source, sample = self.plan.locate(j)
        if attempt:
            n = len(self.sources[source])
            sample = int(np.random.default_rng([self.seed, REDRAW_TAG, int(j), attempt]).integers(n))
        height, width = self.sources[source].size(sample)
        side = self.window(source)
        if height < side or width < side:
            raise DataError(f"{self.sources[source].name(sample)} is {width}x{height}, "
                            f"smaller than the {self.crop}x{self.crop} crop"
                            + (f" plus the online kernel's {side - self.crop} px margin" if side > self.crop else ""))
        seeds = [self.seed, DRAW_TAG, int(j)] + ([attempt] if attempt else [])
        box, flip, _ = draw_crop_flip(np.random.default_rng(seeds), (height, width), side,
                                      hflip=self.flip, order=INTEGERS)
        return Draw(int(j), source, sample, box, flip, int(attempt), side > self.crop)

    def _read(self, j: int):
        """(draw, images, damaged reports) of draw j, or a one-line error: images are
        (blurred, sharp) crops, or for an online draw the sharp window alone."""
        damaged = []
        for attempt in range(MAX_REDRAWS + 1):
            try:
                d = self.draw(j, attempt)
                source = self.sources[d.source]
                images = source.read_sharp(d.sample, d.box) if d.online else source.read(d.sample, d.box)
                return d, images, damaged
            except DamagedSample as exc:
                damaged.append(str(exc))
            except (DataError, GoProError, OSError) as exc:
                return f"draw {j}: {exc}"
        return (f"draw {j}: {len(damaged)} damaged samples in a row (the last: {damaged[-1]}); "
                "run `blurgen verify` on the shard folders")

    def __getitem__(self, j: int):
        return self.__getitems__([j])[0]

    def __getitems__(self, indices) -> list:
        """Draws ``indices``, each as ``__getitem__`` gives it (the DataLoader's batched fetch)."""
        reads = [self._read(int(j)) for j in indices]
        online = [r for r in reads if not isinstance(r, str) and r[0].online]
        # One call for the batch's kernels; each kernel depends on its own (seed, j, attempt) only.
        kernels = self.online.kernels(self.seed, [(d.index, d.attempt) for d, _, _ in online]) if online else None
        psfs = iter(kernels.psf) if kernels is not None else itertools.repeat(None)
        items = []
        for read in reads:
            if isinstance(read, str):
                items.append(read)
                continue
            d, images, damaged = read
            if d.online:
                blurred, sharp, _ = self.online.blur(images, next(psfs), self.online.rng(self.seed, d.index, d.attempt))
            else:
                blurred, sharp = images
            if blurred.shape != (self.crop, self.crop, 3) or sharp.shape != blurred.shape:
                items.append(f"draw {d.index}: {self.sources[d.source].name(d.sample)} gave crops of shape "
                             f"{blurred.shape} and {sharp.shape}, expected {(self.crop, self.crop, 3)}")
                continue
            if self.is_sharp(d.index):
                blurred = sharp
            blurred, sharp = flip_pair(blurred, sharp, d.flip)
            items.append((blurred, sharp, damaged))
        return items

    def close(self) -> None:
        for source in self.sources:
            if source is not None:
                source.close()


def collate_draws(items: list) -> dict:
    """Stacks draws into {"blurred", "sharp"} tensors plus "damaged" (the reports
    of the damaged samples skipped), or {"error": message} if one failed."""
    for item in items:
        if isinstance(item, str):
            return {"error": item}
    return {"blurred": to_tensor(np.stack([b for b, _, _ in items])),
            "sharp": to_tensor(np.stack([s for _, s, _ in items])),
            "damaged": [report for _, _, reports in items for report in reports]}


class DrawSampler(Sampler):
    """Yields the draw indices of one rank from generator step ``start`` on, forever."""

    def __init__(self, start: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.batch_size = start, batch_size
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        step = self.start
        while True:
            first = (step * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            step += 1


# --- assembling the sources from a config ---------------------------------------------


def _find_shards(folder: Path, allow_partial: bool = True) -> list:
    """The shards of ``folder`` that hold pairs; DataError if it is broken, or
    unfinished (shards or parts still to build) and not ``allow_partial``."""
    shards = _shards()
    try:
        found = [s for s in shards.find_shards(folder) if s.count > 0]
        missing = None if allow_partial else shards.unfinished(shards.read_manifests(folder))
    except shards.ShardError as exc:
        raise DataError(str(exc)) from None
    if missing:
        raise DataError(f"{folder} is unfinished: {missing}; or pass --allow-partial to use the "
                        f"{len(found)} shards it has")
    return found


def _shard_split(cfg: DataConfig) -> tuple[list, object | None]:
    """(training shards, held-out validation shard or None).

    Without GoPro data or a validation folder, the last shard of the first
    folder is held out for validation and left out of training.
    """
    folders = [_find_shards(f, cfg.allow_partial) for f in cfg.shards]
    if cfg.gopro is not None or cfg.val_shards is not None or not folders or not folders[0]:
        return [s for f in folders for s in f], None
    held_out = folders[0][-1]
    return folders[0][:-1] + [s for f in folders[1:] for s in f], held_out


def _check_shards(infos: Sequence, crop: int | None, margin: int = 0, pairs: bool = True) -> list[np.ndarray]:
    """Check every shard of ``infos`` (blurgen.shards.index.check_shard): catches
    unreadable and truncated files (HDF5 checks the file's stored end), shards
    holding fewer samples than their manifest lists, (``crop`` given) a first
    sample smaller than the crop plus ``margin`` (online blur's k - 1), and
    (``pairs``) sharp-only shards, before any step or worker starts.  Opened
    and closed here; DataError names the shard.  Returns each shard's (count, 2)
    sample sizes (H, W), for ShardSource."""
    sizes = []
    for info in infos:
        try:
            facts = check_shard(info)
        except (ShardError, OSError, KeyError, IndexError) as exc:
            raise _shard_problem(str(info.path), exc) from None
        if pairs and facts.sharp_only:
            raise DataError(f"{info.path}: holds sharp images only (synthesize --sharp-only): "
                            + ("train on it with --online" if crop is not None else
                               "validation needs fixed pairs; give --val-shards or --gopro"))
        # The other samples are checked as they are drawn (DrawDataset.draw).
        if crop is not None and len(facts.sizes):
            height, width = (int(v) for v in facts.sizes[0])
            if height < crop + margin or width < crop + margin:
                raise DataError(f"{info.path}: samples are {width}x{height}, smaller than the {crop}x{crop} crop"
                                + (f" plus the online kernel's {margin} px margin" if margin else ""))
        sizes.append(facts.sizes)
    return sizes


def training_sources(cfg: DataConfig) -> tuple[ShardSource | None, GoProSource | None]:
    """The (synthetic, GoPro) training sources of ``cfg``; None for a source with mix share 0.

    Raises DataError (or GoProError) if a source with a nonzero share is
    missing, empty or broken.
    """
    a, b = cfg.mix
    synthetic = gopro = None
    if a:
        if not cfg.shards:
            raise DataError(f"mix {a}:{b} draws synthetic pairs but no shard folder was given")
        shards, held_out = _shard_split(cfg)
        if not shards:
            why = (f" ({held_out.path} is held out for validation; add shards, "
                   "or give GoPro data to validate on)" if held_out else "")
            raise DataError(f"no synthetic training pairs in {', '.join(map(str, cfg.shards))}{why}")
        online = cfg.online_blur()
        sizes = _check_shards(shards, cfg.crop, margin=online.margin if online else 0, pairs=online is None)
        synthetic = ShardSource(shards, sizes=sizes)
    if b:
        if cfg.gopro is None:
            raise DataError(f"mix {a}:{b} draws GoPro pairs but no GoPro folder was given")
        gopro = GoProSource(scan_gopro(cfg.gopro, "train", cfg.gopro_blur), cfg.gopro_scale)
        for i in range(len(gopro)):
            height, width = gopro.size(i)
            if height < cfg.crop or width < cfg.crop:
                raise DataError(f"{gopro.name(i)}: {width}x{height} after scaling by "
                                f"{cfg.gopro_scale:g}, smaller than the {cfg.crop}x{cfg.crop} crop")
    return synthetic, gopro


def describe_sources(cfg: DataConfig, sources: tuple) -> list[str]:
    """What a run trains on, one line per source, for ``fit``'s header: pair counts,
    folders, online blur and its effects; and a line for data given but not drawn."""
    synthetic, gopro = sources
    a, b = cfg.mix
    lines = [f"training data, mixed {a}:{b} (synthetic:GoPro, exact in every {a + b} draws):"]
    if synthetic is not None:
        online = cfg.online_blur()
        if online is None:
            blur = "fixed pairs"
        else:
            effects = online.realism.labels()
            how = (f"a fresh {online.kernel_size}-px kernel per draw" if online.mode == "uniform" else
                   f"{online.blur_mode.summary} per draw, inside a {online.margin}-px margin")
            defocus, rolling = getattr(online.spec, "defocus", None), getattr(online.spec, "rolling", None)
            if defocus is not None:
                how += f" through a defocus disk of radius {defocus.lo}-{defocus.hi} px"
            if rolling is not None:
                how += f", a rolling shutter (readout {rolling.lo:g}-{rolling.hi:g} exposures)"
            blur = ", ".join([f"blurred on the fly by {how}", *effects])
        n = len(synthetic.paths)
        lines.append(f"  synthetic: {len(synthetic)} pairs in {n} shard{'' if n == 1 else 's'} of "
                     f"{', '.join(map(str, cfg.shards))} ({blur})")
    elif cfg.shards:
        lines.append(f"  synthetic: none drawn (mix {a}:{b}): --shards {' '.join(map(str, cfg.shards))} unused")
    if gopro is not None:
        lines.append(f"  GoPro: {len(gopro)} train/ pairs of {cfg.gopro} ({cfg.gopro_blur}, scale {cfg.gopro_scale:g})")
    elif cfg.gopro is not None:
        lines.append(f"  GoPro: none drawn (mix {a}:{b}): {cfg.gopro} gives only the validation pairs")
    return lines


def build_dataset(cfg: DataConfig, sources: tuple | None = None) -> DrawDataset:
    """The map-style dataset of all draws of ``cfg`` (nothing opened yet);
    ``sources``: what ``training_sources(cfg)`` returned, if it already ran."""
    synthetic, gopro = training_sources(cfg) if sources is None else sources
    sizes = (len(synthetic) if synthetic else 0, len(gopro) if gopro else 0)
    plan = DrawPlan(cfg.mix, sizes, cfg.seed)
    return DrawDataset(plan, (synthetic, gopro), cfg.crop, cfg.flip, cfg.seed, cfg.online_blur(),
                       sharp_fraction=cfg.sharp_fraction)


def train_batches(cfg: DataConfig, *, start: int = 0, rank: int = 0, world_size: int = 1,
                  max_damaged: int = MAX_DAMAGED, sources: tuple | None = None
                  ) -> Iterator[dict[str, torch.Tensor]]:
    """Infinite stream of training batches from generator step ``start`` on.

    Each batch is {"blurred": float32 (B, 3, crop, crop) in [-1, 1], "sharp":
    same}, B = cfg.batch_size; batch k is a pure function of (cfg, k, rank,
    world_size) and the data, so ``train_batches(cfg, start=k)`` resumes a
    run exactly.  Rank r of world_size reads its own disjoint draws.  Reads
    happen in cfg.workers DataLoader workers (memory pinned when CUDA is
    available).  Settings and data are checked before this returns; a
    sample that breaks later raises DataError from the iterator.

    Damaged samples (pixels that fail their hash) are replaced by other draws
    (module doc) and logged as warnings; each batch's ``"damaged_total"`` is the
    count skipped so far by this stream, and once it passes ``max_damaged``
    the iterator raises DataError.

    ``sources``: what ``training_sources(cfg)`` returned, if the caller ran it
    already (``fit`` does, for the epoch length): they are checked then, and
    need not be found and opened again.
    """
    if not (0 <= rank < world_size):
        raise DataError(f"bad rank {rank} for world size {world_size}")
    if start < 0:
        raise DataError(f"bad start step {start}: must be >= 0")
    dataset = build_dataset(cfg, sources)
    # Workers fork.  They must not call cv2.setNumThreads: after a fork it
    # waits forever on the parent's idle OpenCV pool threads (seen here);
    # plain OpenCV calls in the worker are fine.
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=DrawSampler(start, cfg.batch_size, rank, world_size),
        collate_fn=collate_draws,
        num_workers=cfg.workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers else None,
        worker_init_fn=_ignore_stop_signals,
    )
    return _stream(loader, dataset, max_damaged)


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader worker start-up: the stop signals are the main process's to act on
    (``blurgen.plumbing.stopping.ignore_in_worker``).  Workers still exit when the main process
    dies (torch's watchdog) and on SIGKILL."""
    ignore_in_worker()


def _stream(loader: DataLoader, dataset: DrawDataset, max_damaged: int) -> Iterator[dict[str, torch.Tensor]]:
    skipped = 0
    batches = iter(loader)
    try:
        for batch in batches:
            if "error" in batch:
                raise DataError(batch["error"])
            for report in batch.pop("damaged"):
                skipped += 1
                log.warning("skipped a damaged sample (%d so far): %s", skipped, report)
                if skipped > max_damaged:
                    raise DataError(f"more than {max_damaged} damaged samples skipped (the last: {report}); "
                                    "run `blurgen verify` on the shard folders")
            batch["damaged_total"] = skipped
            yield batch
    finally:
        # Workers ignore SIGTERM (_ignore_stop_signals), so multiprocessing's
        # terminate() at interpreter exit cannot end them and its join() would
        # wait forever: shut them down here, on every way out.  (The persistent
        # iterator outlives this generator whenever an exception keeps its
        # frame alive.)
        shut_down = getattr(batches, "_shutdown_workers", None)
        if shut_down is not None:
            shut_down()
        dataset.close()  # the handles workers=0 opened in this process


def epoch_length(cfg: DataConfig, world_size: int = 1, sources: tuple | None = None) -> int:
    """Generator steps in one epoch: enough draws to see every training pair at least once.

    With mix a:b over n synthetic and m GoPro pairs that is
    max(ceil(n (a+b) / a), ceil(m (a+b) / b)) draws (a source with share 0
    left out), divided by batch_size * world_size and rounded up; the
    smaller source is revisited within the epoch.  ``sources``: as for
    ``train_batches``.
    """
    synthetic, gopro = training_sources(cfg) if sources is None else sources
    total = sum(cfg.mix)
    draws = max(math.ceil(len(src) * total / share)
                for src, share in zip((synthetic, gopro), cfg.mix) if share)
    return math.ceil(draws / (cfg.batch_size * world_size))


# --- validation --------------------------------------------------------------------------


class ValPairs(Sequence):
    """Held-out pairs, read on access: item i is (name, blurred, sharp), uint8 (H, W, 3) RGB.

    Behaves like a read-only list (len, indexing, slicing, iteration) but
    keeps nothing in memory, so a full GoPro test set costs no RAM.
    """

    def __init__(self, names: list[str], read: Callable[[int], tuple[np.ndarray, np.ndarray]],
                 description: str = ""):
        self.names, self._read = names, read
        self.description = description   # where the pairs come from, for a person

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        blurred, sharp = self._read(i)
        return self.names[i], blurred, sharp


def _spread(n: int, limit: int | None) -> list[int]:
    # An evenly spaced subset covers every sequence, where the first `limit`
    # frames would all come from one.
    if limit is None or limit >= n:
        return list(range(n))
    if limit <= 0:
        return []
    return sorted(set(np.linspace(0, n - 1, limit).round().astype(int).tolist()))


def val_pairs(cfg: DataConfig, limit: int | None = None) -> ValPairs:
    """The held-out set: every shard of cfg.val_shards if set, else GoPro
    ``test/`` (scaled by gopro_scale) if cfg.gopro is set, else the last
    shard of the first shard folder (left out of training).

    Whole images, not crops.  ``limit`` keeps that many pairs spread evenly
    over the set (all when None).  Every shard of the set is opened and
    checked here (DataError naming it), so that a broken held-out shard stops
    a run before its first step rather than at its first validation.  Names are ``sequence/frame.png`` for GoPro
    and ``shard_file#index`` for shards.
    """
    if cfg.val_shards is not None:
        held = _find_shards(cfg.val_shards, cfg.allow_partial)
        if not held:
            raise DataError(f"{cfg.val_shards}: no pairs to validate on")
        _check_shards(held, crop=None)   # now, not at the first validation an epoch later
        everything = ShardSource(held)   # only for its index -> (shard, sample) map
        located = [everything.locate(i) for i in _spread(len(everything), limit)]
        located = [(held[k], local) for k, local in located]
        return ValPairs([f"{Path(info.path).name}#{local}" for info, local in located],
                        lambda i: _read_whole_pair(*located[i]),
                        f"{len(located)} of the {len(everything)} pairs of {cfg.val_shards} (--val-shards)")
    if cfg.gopro is not None:
        pairs = scan_gopro(cfg.gopro, "test", cfg.gopro_blur)
        chosen = [pairs[i] for i in _spread(len(pairs), limit)]
        scale = cfg.gopro_scale
        return ValPairs([p.name for p in chosen], lambda i: read_gopro_pair(chosen[i], scale),
                        f"{len(chosen)} of the {len(pairs)} GoPro test/ pairs ({cfg.gopro_blur}, scale {scale:g})")
    if not cfg.shards:
        raise DataError("no validation data: give a GoPro folder or a shard folder")
    _, held_out = _shard_split(cfg)
    if held_out is None:
        raise DataError(f"{cfg.shards[0]}: no shards to validate on")
    _check_shards([held_out], crop=None)
    indices = _spread(held_out.count, limit)
    return ValPairs([f"{Path(held_out.path).name}#{i}" for i in indices],
                    lambda i: _read_whole_pair(held_out, indices[i]),
                    f"{len(indices)} of the {held_out.count} pairs of {held_out.path}, "
                    "held out of training (the first folder's last shard)")


def _read_whole_pair(info, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) of sample ``index`` of shard ``info``; the file is opened
    per pair, so no handle outlives the call."""
    shards = _shards()
    reader = shards.ShardReader(info.path)
    try:
        return reader.read_pair(index)
    except (shards.ShardError, OSError, KeyError) as exc:
        raise _shard_problem(f"{info.path}#{index}", exc) from None
    finally:
        reader.close()

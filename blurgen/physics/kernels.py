"""Camera-shake blur kernels (PSFs) and the kernel-bank file.

``make_kernels`` turns seeds into normalised, centred PSFs by drawing random
trajectories (:mod:`blurgen.physics.trajectory`) and rasterising the exposed part
(:mod:`blurgen.physics.psf`).  A kernel bank is an HDF5 file of such PSFs with every
kernel's seed and parameters (layout in ``docs/kernel-bank.md``).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from blurgen.errors import BlurgenError
from blurgen.physics import psf as _psf
from blurgen.physics import rolling
from blurgen.physics import streams
from blurgen.physics.trajectory import draw_fraction, random_trajectories
from blurgen.plumbing import files, stopping
from blurgen.plumbing.stopping import StopFlag

BANK_FORMAT = "blurgen.kernel-bank"
BANK_VERSION = 1

#: How far a stored PSF's sum may stray from 1 (float32 rounding of up to
#: 121 x 121 taps stays below 1e-5).
SUM_TOLERANCE = 1e-4

# Trajectories are drawn in batches of this many kernels: large enough that the
# per-step numpy calls are amortised, small enough to stay within ~100 MB at
# iters = 2000.
_BATCH = 4096


class BankError(BlurgenError):
    """A file that is not a readable kernel bank."""


#: DeblurGAN's trajectory length (px) for its 64x64 kernels.
DEFAULT_MAX_LEN = 60.0


def default_max_len(size: int) -> float:
    """Trajectory length (px) of kernels of side ``size`` when none is given: DeblurGAN's
    60 px, or the longest a centred ``size`` x ``size`` PSF holds when that is shorter.
    The one rule of ``make-kernels --size`` and ``synthesize --kernel-size``; sizes below
    3 are left to ``KernelSpec`` to refuse."""
    return min(DEFAULT_MAX_LEN, _psf.max_extent(size)) if size >= 3 else DEFAULT_MAX_LEN


@dataclass(frozen=True)
class KernelSpec:
    """How to draw kernels.  ``None`` for ``expl`` or ``fraction`` draws it per kernel.

    size : side of the PSF in pixels (>= 3).
    iters : trajectory samples (>= 2).
    max_len : trajectory length in pixels (0 < max_len <= size - 3 for even
        sizes, size - 2 for odd ones, so a centred PSF always fits).
    expl : anxiety (>= 0; 0 = straight blur), or None for DeblurGAN's set
        {0.003, 0.005, 0.007, 0.008, 0.009, 0.01}.
    fraction : exposure fraction in (0, 1], or None for {1/10, 1/2, 1}.
    """

    size: int = 64
    iters: int = 2000
    max_len: float = 60.0
    expl: float | None = None
    fraction: float | None = None

    def __post_init__(self):
        if self.size < 3:
            raise ValueError(f"size must be >= 3, got {self.size}")
        if self.iters < 2:
            raise ValueError(f"iters must be >= 2, got {self.iters}")
        if not 0 < self.max_len <= _psf.max_extent(self.size):
            raise ValueError(
                f"max-len must be in (0, {_psf.max_extent(self.size):g}] for size {self.size} "
                f"(the centred kernel must fit), got {self.max_len:g}"
            )
        if self.expl is not None and not self.expl >= 0:
            raise ValueError(f"expl must be >= 0, got {self.expl}")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")


@dataclass(frozen=True)
class KernelBatch:
    """``n`` kernels with their seeds and parameters.

    psf : (n, size, size) float32, >= 0, each sums to 1, centre of mass at pixel (size // 2, size // 2).
    seed : (n,) uint64 — regenerates the kernel with the same spec.
    expl, fraction : (n,) float64 — anxiety and exposure fraction.
    length : (n,) float64 — length (px) of the exposed part of the trajectory.
    extent : (n,) float64 — larger side (px) of the exposed part's bounding box.
    big_shakes : (n,) int32 — big shakes within the exposed part.
    centripetal, prob_big_shake, gaussian_shake, init_angle : (n,) float64.
    """

    psf: np.ndarray
    seed: np.ndarray
    expl: np.ndarray
    fraction: np.ndarray
    length: np.ndarray
    extent: np.ndarray
    big_shakes: np.ndarray
    centripetal: np.ndarray
    prob_big_shake: np.ndarray
    gaussian_shake: np.ndarray
    init_angle: np.ndarray

    def __len__(self) -> int:
        return len(self.seed)

    def params(self) -> dict[str, np.ndarray]:
        """Every per-kernel field but the PSF itself, name -> (n,) array."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "psf"}


def kernel_seeds(seed: int, n: int, start: int = 0) -> np.ndarray:
    """Seeds of kernels ``start .. start + n - 1`` of the stream named by ``seed``.

    Kernel i's seed depends on (seed, i) only, so any slice of a bank can be
    regenerated alone, by any process.  Returns (n,) uint64.
    """
    if n < 0 or start < 0:
        raise ValueError("n and start must be >= 0")
    base = streams.seed_sequence_base(seed)
    return streams.stream_u64(np.array([base]), start, n)[:, 0]


def make_kernels(seeds: np.ndarray, spec: KernelSpec = KernelSpec()) -> KernelBatch:
    """One random-trajectory kernel per seed (see :class:`KernelBatch`)."""
    return _make_kernels(seeds, spec)


def make_kernels_with_tracks(seeds: np.ndarray, spec: KernelSpec, readout: float) -> tuple[KernelBatch, list]:
    """:func:`make_kernels`'s kernels (the same, byte for byte) and each one's trajectory
    continued past its exposure for a rolling shutter's readout up to ``readout``
    (:mod:`blurgen.physics.rolling`): kernel j's (N_j,) complex64 samples, of which its
    exposure sees the first ``psf.exposed_samples(spec.iters, fraction[j])``.  One walk per
    kernel: the kernel is rasterised from its first samples."""
    tracks: list = []
    return _make_kernels(seeds, spec, tracks, readout), tracks


def _make_kernels(seeds: np.ndarray, spec: KernelSpec, tracks: list | None = None, readout: float = 0.0) -> KernelBatch:
    seeds = np.atleast_1d(np.asarray(seeds, dtype=np.uint64))
    # One output array, filled batch by batch: a concatenation at the end
    # would allocate and copy every PSF a second time (a third of the run
    # time for 8,192 kernels, profiled).
    psf = np.empty((len(seeds), spec.size, spec.size), np.float32)
    parts = [_make_batch(seeds[i : i + _BATCH], spec, psf[i : i + _BATCH], tracks, readout)
             for i in range(0, len(seeds), _BATCH)]
    if len(parts) <= 1:
        return parts[0] if parts else _make_batch(seeds, spec, psf)
    return KernelBatch(psf=psf, **{name: np.concatenate([getattr(b, name) for b in parts]) for name in parts[0].params()})


def _make_batch(seeds: np.ndarray, spec: KernelSpec, psf: np.ndarray, tracks: list | None = None,
                readout: float = 0.0) -> KernelBatch:
    """Kernels of ``seeds``, their PSFs written into ``psf`` (len(seeds), size, size) float32;
    with ``tracks`` (a list), their trajectories continued for ``readout`` appended to it."""
    n = len(seeds)
    fraction = draw_fraction(seeds, spec.fraction)
    exposed = _psf.exposed_samples(spec.iters, fraction)

    out = {
        "psf": psf,  # every row is written below: each kernel is in one exposure group
        "length": np.zeros(n),
        "extent": np.zeros(n),
        "big_shakes": np.zeros(n, np.int32),
    }
    params = {}
    continued = [None] * n
    # Kernels of one exposure share a trajectory length, so each group is one
    # rectangular batch, and no step past the exposure is ever simulated (but
    # for a rolling shutter's, with ``tracks``).
    for samples in np.unique(exposed):
        group = np.flatnonzero(exposed == samples)
        drawn = int(samples) if tracks is None else rolling.extended_samples(int(samples), readout)
        traj = random_trajectories(seeds[group], spec.iters, spec.max_len, spec.expl, samples=drawn)
        points = traj.points[: int(samples)]
        for column, j in enumerate(group if tracks is not None else ()):
            continued[j] = traj.points[:, column].copy()  # before rasterize shifts a lone one in place
        out["psf"][group] = _psf.rasterize(points, spec.size)
        out["length"][group] = np.abs(np.diff(points, axis=0)).sum(axis=0, dtype=np.float64)
        width = np.ptp(points.real, axis=0)
        height = np.ptp(points.imag, axis=0)
        out["extent"][group] = np.maximum(width, height)
        out["big_shakes"][group] = traj.big_shake[: int(samples) - 1].sum(axis=0)
        for name in ("expl", "centripetal", "prob_big_shake", "gaussian_shake", "init_angle"):
            params.setdefault(name, np.zeros(n))[group] = getattr(traj, name)
    if n == 0:
        params = {name: np.zeros(0) for name in ("expl", "centripetal", "prob_big_shake", "gaussian_shake", "init_angle")}
    if tracks is not None:
        tracks.extend(continued)
    return KernelBatch(seed=seeds, fraction=fraction, **out, **params)


# --- the kernel-bank file -----------------------------------------------------


def write_bank(
    path: str | os.PathLike,
    n: int,
    seed: int,
    spec: KernelSpec,
    attrs: dict | None = None,
    progress: Callable[[int], None] | None = None,
    stop: StopFlag | None = None,
) -> None:
    """Generate ``n`` kernels of stream ``seed`` and write them as a bank at ``path``.

    The file is written under a temporary name beside ``path`` and renamed
    when complete, so an interrupted run never leaves a half-written bank.
    ``progress(k)`` is called after each batch of ``k`` kernels; ``stop`` is
    checked between batches (and before the rename), raising
    :class:`~blurgen.plumbing.stopping.Interrupted` once set.

    The run holds ``path``'s lock (a second writer of the same bank gets
    :class:`~blurgen.plumbing.files.Busy`) and first removes the temporaries that
    killed runs left beside ``path``.  A write that fails (a full disk) is
    raised as OSError after the HDF5 file is closed and the temporary removed.
    """
    path = Path(path)
    with files.exclusive_lock(path):
        files.remove_stale_temporaries(path)
        with files.atomic_path(path) as tmp:
            _write_bank_file(tmp, n, seed, spec, attrs, progress, stop)
            stopping.check(stop)  # a stop during the last batch: no bank rather than a run that ignored Ctrl-C


def _write_bank_file(tmp: Path, n: int, seed: int, spec: KernelSpec, attrs: dict | None,
                     progress: Callable[[int], None] | None, stop: StopFlag | None) -> None:
    import h5py

    f = h5py.File(tmp, "w")
    written = False
    try:
        chunk = (max(1, min(n, 64)), spec.size, spec.size)
        ds = f.create_dataset(
            "kernels", (n, spec.size, spec.size), np.float32, chunks=chunk,
            compression="gzip", compression_opts=4, shuffle=True,
        )
        columns = None
        for start in range(0, n, _BATCH):
            stopping.check(stop)
            batch = make_kernels(kernel_seeds(seed, min(_BATCH, n - start), start), spec)
            ds[start : start + len(batch)] = batch.psf
            if columns is None:
                columns = {k: f.create_dataset(k, (n,), v.dtype) for k, v in batch.params().items()}
            for k, v in batch.params().items():
                columns[k][start : start + len(batch)] = v
            if progress:
                progress(len(batch))
        f.attrs["format"] = BANK_FORMAT
        f.attrs["format_version"] = BANK_VERSION
        f.attrs["seed"] = seed
        f.attrs["spec"] = json.dumps(asdict(spec))
        for k, v in (attrs or {}).items():
            f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)
        written = True
    finally:
        files.close_hdf5(f, flush=written)


def read_bank(path: str | os.PathLike, index=None, psf: bool = True) -> tuple[KernelBatch, dict]:
    """Read a kernel bank: (kernels, attributes).

    ``index`` (a slice or sorted int array) reads only those kernels;
    ``psf=False`` reads only their parameters (``psf`` is then (n, 0, 0)),
    cheap for summaries of large banks.  Raises :class:`BankError` with a
    one-line reason if ``path`` is not a kernel bank, or if a PSF it reads is
    not one (NaN/Inf, a negative tap, a sum off 1: see :func:`check_psfs`).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != BANK_FORMAT:
                raise BankError(f"{path}: not a kernel bank (made by `blurgen make-kernels`)")
            sel = slice(None) if index is None else index
            data = {name: f[name][sel] for name in (fl.name for fl in fields(KernelBatch)) if name != "psf"}
            data["psf"] = f["kernels"][sel] if psf else np.zeros((len(data["seed"]), 0, 0), np.float32)
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    except BankError:
        raise
    except (OSError, KeyError) as exc:
        raise BankError(f"{path}: not a readable kernel bank ({exc})") from None
    if psf:
        numbers = _bank_numbers(index, len(data["seed"]))
        problem = check_psfs(data["psf"], numbers)
        if problem:
            raise BankError(f"{path}: {problem}")
    return KernelBatch(**data), attrs


def _bank_numbers(index, n: int) -> np.ndarray:
    """Bank numbers of the ``n`` kernels that ``index`` (None, a slice or an int array) selected."""
    if index is None:
        return np.arange(n)
    if isinstance(index, slice):
        start, step = index.start or 0, index.step or 1
        return start + step * np.arange(n)
    return np.asarray(index)


def check_psfs(psf: np.ndarray, numbers: np.ndarray | None = None) -> str | None:
    """Whether every kernel is a PSF: finite, no negative tap, sums to 1 within
    :data:`SUM_TOLERANCE`.  Returns a one-line problem naming the first bad
    kernel (by its entry in ``numbers``, default its position), or None.

    psf : (n, k, k) float array.
    """
    psf = np.asarray(psf)
    if psf.size == 0:
        return None
    numbers = np.arange(len(psf)) if numbers is None else numbers
    flat = psf.reshape(len(psf), -1)
    # NaN compares false with everything: test finiteness first and explicitly.
    finite = np.isfinite(flat).all(axis=1)
    negative = finite & (flat.min(axis=1) < 0)
    sums = flat.sum(axis=1, dtype=np.float64)
    off = finite & ~negative & (np.abs(sums - 1) > SUM_TOLERANCE)
    bad = np.flatnonzero(~finite | negative | off)
    if not len(bad):
        return None
    i = int(bad[0])
    if not finite[i]:
        why = "holds NaN or Inf"
    elif negative[i]:
        why = f"has a negative tap ({flat[i].min():.3g})"
    else:
        why = f"sums to {sums[i]:.6g}, not 1"
    more = f" ({len(bad) - 1} more bad kernels)" if len(bad) > 1 else ""
    return f"kernel {int(numbers[i])} is not a PSF: it {why}{more}"


def check_bank(path: str | os.PathLike, batch: int = _BATCH) -> int:
    """Read every PSF of a bank, ``batch`` kernels at a time, and check it
    (:func:`check_psfs`).  Returns the number of kernels; raises
    :class:`BankError` with a one-line reason naming the first bad kernel."""
    count = len(read_bank(path, psf=False)[0])
    for start in range(0, count, batch):
        read_bank(path, slice(start, min(count, start + batch)))
    return count

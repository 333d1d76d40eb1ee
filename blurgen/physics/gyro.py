"""Recorded camera shake: gyroscope logs -> the rotations of a non-uniform shake.

GyroBlur-Synth (CVPR 2025) drives blur with real hand motion.  A log of angular
velocity (a phone app's or an IMU logger's CSV) is read once
(:func:`read_log`), cut into gap-free stretches, and for each sample an
exposure-long window is drawn from it (:func:`draw_window`) and integrated to the
camera's orientation at the knots of :class:`blurgen.physics.shake.Shake`
(:func:`knot_angles`); the shake mode then averages the homographies of those
poses exactly as for its random walks.  docs/modes.md ("Recorded camera shake")
documents the file format, units, axes, integration and gaps.

**Format.** A header row (after any blank or ``#`` lines) names the columns;
columns are found by name, in any order, others ignored.  Time: ``time``,
``timestamp``, ``t``, ``seconds_elapsed`` or ``elapsed``, with an optional unit
as a suffix (``time_ms``, ``timestamp_ns``) or in brackets (``Time (s)``,
``time [ms]``): s, ms, us or ns; without one it is read from the median step
(:data:`TIME_STEP_RANGES`: any rate of 20 Hz to 5 kHz is unambiguous).  Angular
velocity: three columns ``x y z`` behind one of :data:`AXIS_PREFIXES`
(``gx``, ``x``, ``wx``, ``gyro_x``, ``Gyroscope x (rad/s)``,
``rotationRateX``), in rad/s or deg/s: named in brackets in the header, or by
``units``, else rad/s (what Android's and iOS's APIs give).

**Axes.** Phone IMUs (Android, iOS) measure about x to the right of the screen,
y up it and z out of it, towards the user; our camera frame
(:func:`blurgen.physics.shake.rotation`) has x right, y down and z along the
optical axis.  For the rear camera of a phone held upright the camera's axes are
the phone's (x, -y, -z): ``axes="x,-y,-z"``, the default.

**Integration.** Angular velocity is taken as linear between samples.  The
window's knot times and the samples inside it make one grid; on each of its
intervals the rotation is the exponential of the mean rate times the interval
(the trapezoid rule; exact for a rotation about a fixed axis) plus Magnus'
second term h²/12 · ω_a × ω_b (for an axis that turns within the interval), and
the intervals' rotations are composed (quaternions, body frame), not summed.
The poses are then centred on their mean orientation, as the random walks are.

Pure functions of numpy arrays, plus the readers at the edge and one cache of
read logs per process.
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from blurgen.errors import BlurgenError
from blurgen.plumbing.caches import FileCache

#: Names of the time column (letters and digits only, lower case), the first found used.
TIME_NAMES = ("time", "timestamp", "t", "secondselapsed", "elapsed")
#: Names implying their time unit.
TIME_NAME_UNITS = {"secondselapsed": "s"}
#: Time units, in seconds.
TIME_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
#: A time column without a unit: the unit whose range holds the median step (20 Hz to 5 kHz each).
TIME_STEP_RANGES = (("s", 2e-4, 0.05), ("ms", 0.2, 50.0), ("us", 200.0, 5e4), ("ns", 2e5, 5e7))
#: What comes before x, y, z in the angular velocity's column names (letters only, lower case).
AXIS_PREFIXES = ("", "g", "w", "gyro", "gyroscope", "omega", "rotationrate", "motionrotationrate",
                 "angularvelocity")
#: Angular velocity units, in rad/s.
RATE_UNITS = {"rad/s": 1.0, "rads": 1.0, "rad/sec": 1.0, "deg/s": math.pi / 180, "°/s": math.pi / 180,
              "dps": math.pi / 180, "deg/sec": math.pi / 180}
#: ``units``: ``auto`` reads the header, else rad/s.
UNIT_CHOICES = ("auto", "rad/s", "deg/s")
#: A step longer than this many times the log's median step is a gap (a stall of the logger, a pause).
GAP_FACTOR = 3.0
#: Longest exposure, seconds.
MAX_EXPOSURE = 10.0
#: The axes of a phone's rear camera held upright: camera x = phone x, y = -phone y, z = -phone z.
PHONE_AXES = "x,-y,-z"


class GyroError(BlurgenError):
    """A gyroscope log or setting that cannot be used (one line, for the user)."""


@dataclass(frozen=True)
class GyroSpec:
    """Recorded camera shake (``synthesize --shake nonuniform --gyro``).

    path : a CSV log, or a folder of them (``*.csv``, searched recursively).
    exposure : (lo, hi) seconds; each sample's exposure is drawn uniformly in [lo, hi].
    units : the angular velocity's unit, one of :data:`UNIT_CHOICES`.
    axes : the gyroscope axes along the camera's x (right), y (down), z (forward), e.g. ``"x,-y,-z"``.
    gap : a step longer than ``gap`` times the median step splits a log (:data:`GAP_FACTOR`).
    """

    path: str
    exposure: tuple[float, float] = (1 / 30, 1 / 30)
    units: str = "auto"
    axes: str = PHONE_AXES
    gap: float = GAP_FACTOR

    def __post_init__(self):
        lo, hi = self.exposure
        if not 0 < lo <= hi <= MAX_EXPOSURE:
            raise GyroError(f"--exposure must be SECONDS or LO-HI with 0 < LO <= HI <= {MAX_EXPOSURE:g}, "
                            f"got {lo:g}-{hi:g}")
        if self.units not in UNIT_CHOICES:
            raise GyroError(f"--gyro-units must be one of {', '.join(UNIT_CHOICES)}, got {self.units!r}")
        axis_matrix(self.axes)
        if not self.gap > 1:
            raise GyroError(f"the gap factor must be > 1, got {self.gap:g}")


def parse_exposure(text: str) -> tuple[float, float]:
    """``"1/30"``, ``"0.02"`` or ``"1/60-1/15"`` -> (lo, hi) seconds; GyroError on bad text."""
    parts = re.split(r"(?<![eE])-", str(text).strip())
    try:
        values = [_number(p) for p in parts]
    except (ValueError, ZeroDivisionError):
        values = []
    if len(values) not in (1, 2):
        raise GyroError(f"--exposure must be SECONDS or LO-HI seconds (e.g. 1/30 or 1/60-1/15), got {text!r}")
    return values[0], values[-1]


def _number(text: str) -> float:
    num, slash, den = text.strip().partition("/")
    return float(num) / float(den) if slash else float(num)


def axis_matrix(axes: str) -> np.ndarray:
    """(3, 3) float64 M with ω_camera = M @ ω_gyro, from ``"x,-y,-z"`` (the gyro axis, signed, along the
    camera's x, y, z).  GyroError unless it names each axis once and is a rotation (no mirror)."""
    items = [a.strip().lower() for a in str(axes).split(",")]
    M = np.zeros((3, 3))
    for row, item in enumerate(items if len(items) == 3 else []):
        m = re.fullmatch(r"([+-]?)([xyz])", item)
        if m is None:
            break
        M[row, "xyz".index(m[2])] = -1.0 if m[1] == "-" else 1.0
    if not (np.abs(M).sum(axis=0) == 1).all() or round(np.linalg.det(M)) != 1:
        raise GyroError(f"--gyro-axes must name the gyro axes along the camera's x, y, z, each once, signed, "
                        f"without a mirror (e.g. {PHONE_AXES}), got {axes!r}")
    return M


@dataclass(frozen=True)
class GyroLog:
    """One log, read.

    name : as samples record it (its path relative to the ``--gyro`` folder, or its file name).
    t : (n,) float64 seconds from the first sample, increasing.
    omega : (n, 3) float64 rad/s about the camera's x (right), y (down), z (forward) axes.
    stretches : (m, 2) int64 first and last sample of each gap-free stretch.
    """

    name: str
    t: np.ndarray
    omega: np.ndarray
    stretches: np.ndarray

    @property
    def durations(self) -> np.ndarray:
        """(m,) float64 seconds of each stretch."""
        return self.t[self.stretches[:, 1]] - self.t[self.stretches[:, 0]]


# --- reading -------------------------------------------------------------------------------


def _column(name: str) -> tuple[str, str]:
    """(key: letters and digits, lower case; unit in brackets, lower case, or "") of a header name."""
    name = name.strip().strip("\"'")
    m = re.fullmatch(r"(.*?)\s*[(\[]\s*([^)\]]*?)\s*[)\]]", name)
    base, unit = (m[1], m[2]) if m else (name, "")
    return re.sub(r"[^a-z0-9]", "", base.lower().replace("µ", "u")), unit.replace(" ", "").lower()


def _layout(header: list[str], path: str, units: str) -> tuple[int, str | None, list[int], float]:
    """(time column, its unit or None, the x y z columns, rad/s per unit) of a header row."""
    columns = [_column(h) for h in header]
    expected = ("expected a header row naming a time column and three angular velocity columns, e.g. "
                "time,gx,gy,gz (docs/modes.md)")
    time, time_unit = None, None
    for base in TIME_NAMES:
        for i, (key, unit) in enumerate(columns):
            suffix = key[len(base):] if key.startswith(base) else None
            if suffix in ("", *TIME_UNITS) and time is None:
                time, time_unit = i, unit or suffix or TIME_NAME_UNITS.get(base)
        if time is not None:
            break
    if time is None:
        raise GyroError(f"{path}: no time column in the header {','.join(header)[:120]!r}; {expected}")
    if time_unit and time_unit not in TIME_UNITS:
        raise GyroError(f"{path}: unknown time unit {time_unit!r} (s, ms, us or ns)")
    axes = []
    for axis in "xyz":
        found = [i for i, (key, _) in enumerate(columns) if i != time and key in {p + axis for p in AXIS_PREFIXES}]
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise GyroError(f"{path}: {what} angular velocity column for {axis} in the header "
                            f"{','.join(header)[:120]!r}; {expected}")
        axes.append(found[0])
    named = {columns[i][1] for i in axes} - {""}
    if len(named) > 1 or not named <= set(RATE_UNITS):
        raise GyroError(f"{path}: angular velocity units {', '.join(sorted(named))} (expected one of rad/s, deg/s)")
    unit = named.pop() if named else None
    if units != "auto" and unit is not None and RATE_UNITS[unit] != RATE_UNITS[units]:
        raise GyroError(f"{path}: the header says {unit}, --gyro-units {units}")
    scale = RATE_UNITS[units if units != "auto" else unit or "rad/s"]
    return time, time_unit, axes, scale


def parse_log(lines: list[str], path: str, units: str = "auto", axes: str = PHONE_AXES,
              gap: float = GAP_FACTOR, name: str | None = None, delimiter: str = ",") -> GyroLog:
    """A :class:`GyroLog` from the text lines of a CSV log (module doc); GyroError naming ``path``
    and what was expected when they cannot be read.  A header without commas but with tabs or
    semicolons sets the delimiter; with those, a decimal comma is read as a point."""
    rows = ((n, row) for n, row in enumerate(csv.reader(lines, delimiter=delimiter), 1)
            if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#"))
    first = next(rows, None)
    if first is None:
        raise GyroError(f"{path}: empty; expected a header row such as time,gx,gy,gz and rows of numbers")
    header = first[1]
    if len(header) == 1 and delimiter == ",":  # not comma-separated: tabs or semicolons
        for sep in ("\t", ";"):
            if sep in header[0]:
                return parse_log(lines, path, units, axes, gap, name, sep)
    time, time_unit, columns, scale = _layout(header, path, units)
    wanted = [time, *columns]
    numbers, where = [], []
    for n, row in rows:
        try:
            numbers.append([float(row[c] if delimiter == "," else row[c].replace(",", ".")) for c in wanted])
        except (ValueError, IndexError):
            raise GyroError(f"{path}: line {n}: expected numbers in columns "
                            f"{', '.join(header[c].strip() for c in wanted)}") from None
        where.append(n)
    data = np.array(numbers, np.float64).reshape(-1, 4)
    if len(data) < 2:
        raise GyroError(f"{path}: fewer than two samples")
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if len(bad):
        raise GyroError(f"{path}: line {where[bad[0]]}: a value that is not a finite number")
    t = data[:, 0] - data[0, 0]
    back = np.flatnonzero(np.diff(t) <= 0)
    if len(back):
        raise GyroError(f"{path}: line {where[back[0] + 1]}: the time does not increase")
    step = float(np.median(np.diff(t)))
    if time_unit is None:
        time_unit = next((u for u, lo, hi in TIME_STEP_RANGES if lo <= step <= hi), None)
        if time_unit is None:
            raise GyroError(f"{path}: cannot tell the time unit from the median step {step:g} (a rate of 20 Hz to "
                            "5 kHz in s, ms, us or ns is read unambiguously): name it in the header, e.g. time_ms "
                            "or 'time (s)'")
    t = t * TIME_UNITS[time_unit]
    omega = data[:, 1:] * scale @ axis_matrix(axes).T
    return GyroLog(name or Path(path).name, t, omega, split_stretches(t, gap))


def split_stretches(t: np.ndarray, gap: float = GAP_FACTOR) -> np.ndarray:
    """(m, 2) int64 first and last index of the gap-free stretches of increasing times ``t`` (n,):
    a step longer than ``gap`` times the median step ends one."""
    dt = np.diff(t)
    cut = np.flatnonzero(dt > gap * np.median(dt))
    first = np.concatenate([[0], cut + 1])
    last = np.concatenate([cut, [len(t) - 1]])
    return np.stack([first, last], axis=1).astype(np.int64)


def read_log(path: str | Path, units: str = "auto", axes: str = PHONE_AXES, gap: float = GAP_FACTOR,
             name: str | None = None) -> GyroLog:
    """:func:`parse_log` of a file; GyroError if it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GyroError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from None
    return parse_log(lines, str(path), units, axes, gap, name)


def log_files(path: str | Path) -> list[tuple[Path, str]]:
    """(file, name recorded) of each log under ``path``: the file itself, or a folder's ``*.csv``
    (recursively, sorted by relative path).  GyroError if there is none."""
    path = Path(path)
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        raise GyroError(f"{path}: no such gyroscope log or folder")
    found = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.suffix.lower() == ".csv"
                   and p.is_file())
    if not found:
        raise GyroError(f"{path}: no gyroscope logs (*.csv) in this folder")
    return [(p, rel) for rel, p in found]


def logs_checksum(path: str | Path) -> str:
    """``"sha256:<hex>"`` of the log (its bytes), or of a folder's logs (each name and its bytes' digest)."""
    files = log_files(path)
    if Path(path).is_file():
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for file, rel in files:
        digest.update(f"{rel}\0{hashlib.sha256(file.read_bytes()).hexdigest()}\n".encode())
    return "sha256:" + digest.hexdigest()


#: Logs read by this process, by file (while each is unchanged).
_LOGS = FileCache(size=256)


def load_logs(spec: GyroSpec, span: float = 1.0) -> list[GyroLog]:
    """Every log of ``spec.path``, read once per process; GyroError if one cannot be read or has no
    gap-free stretch as long as the longest window: the longest exposure times ``span``
    (:func:`window_span`: more than 1 with a rolling shutter)."""
    logs = []
    needed = spec.exposure[1] * span
    for file, rel in log_files(spec.path):
        log = _LOGS.get(file, lambda f=file, r=rel: read_log(f, spec.units, spec.axes, spec.gap, r),
                        rel, spec.units, spec.axes, spec.gap)
        longest = float(log.durations.max())
        if longest < needed:
            what = "the longest exposure" + (" and the rolling shutter's readout" if span > 1 else "")
            raise GyroError(f"{file}: no gap-free stretch of {needed:g} s ({what}); its "
                            f"longest is {longest:g} s (a gap: a step over {spec.gap:g}x the median step)")
        logs.append(log)
    return logs


# --- windows ---------------------------------------------------------------------------------


class Window(NamedTuple):
    """An exposure's window: log ``log`` (index into the logs), from ``start`` s (after its first sample)
    for ``exposure`` s."""

    log: int
    start: float
    exposure: float


def draw_window(logs: list[GyroLog], exposure: tuple[float, float], rng: np.random.Generator,
                span: float = 1.0) -> Window:
    """An exposure drawn uniformly in ``exposure`` (lo, hi) s, then a window of ``span`` exposures
    (1; more for a rolling shutter's rows, :func:`knot_angles`) uniformly among every place in
    ``logs`` where it lies inside one gap-free stretch.  Two draws from ``rng``, in this order.
    A stretch just as long as the window holds one place; the logs must hold one (:func:`load_logs`)."""
    length = float(rng.uniform(exposure[0], exposure[1]))
    u01 = float(rng.uniform())
    needed = length * span
    starts, rooms, owners = [], [], []
    for i, log in enumerate(logs):
        s0 = log.t[log.stretches[:, 0]]
        ok = log.durations >= needed
        starts.append(s0[ok])
        rooms.append(log.durations[ok] - needed)
        owners.append(np.full(ok.sum(), i))
    starts, rooms, owners = (np.concatenate(a) for a in (starts, rooms, owners))
    if not len(starts):
        raise GyroError(f"no gap-free stretch of {needed:g} s in the gyroscope logs")
    cum = np.cumsum(rooms)
    u = u01 * cum[-1]
    k = min(int(np.searchsorted(cum, u, side="right")), len(cum) - 1) if cum[-1] > 0 else 0
    start = starts[k] + min(max(u - (cum[k] - rooms[k]), 0.0), rooms[k])
    return Window(int(owners[k]), float(start), length)


# --- integration -------------------------------------------------------------------------------


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a ⊗ b of (..., 4) quaternions (w, x, y, z)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_exp(v: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) of rotation vectors ``v`` (..., 3) (axis · angle, radians)."""
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    half = theta / 2
    sinc = np.where(theta > 1e-12, np.sin(half) / np.where(theta > 1e-12, theta, 1.0), 0.5 - theta**2 / 48)
    return np.concatenate([np.cos(half), v * sinc], axis=-1)


def quat_log(q: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3), angles in [0, π], of unit quaternions (..., 4)."""
    q = np.where(q[..., :1] < 0, -q, q)
    s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(s, q[..., :1])
    scale = np.where(s > 1e-12, angle / np.where(s > 1e-12, s, 1.0), 2.0)
    return q[..., 1:] * scale


def quat_conj(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def cumulative_product(q: np.ndarray) -> np.ndarray:
    """(n, 4) running products q_0 ⊗ q_1 ⊗ … ⊗ q_i of (n, 4) quaternions (a prefix scan by doubling:
    log2 n vectorised steps)."""
    out = q.copy()
    d = 1
    while d < len(out):
        out[d:] = quat_mul(out[:-d], out[d:])
        d *= 2
    return out


def orientations(log: GyroLog, times: np.ndarray) -> np.ndarray:
    """(k, 4) unit quaternions: the camera's orientation at ``times`` (k,) increasing s, relative to
    that at ``times[0]`` (camera to reference frame), integrating ``log.omega`` (module doc)."""
    inside = log.t[(log.t > times[0]) & (log.t < times[-1])]
    grid = np.union1d(times, inside)
    rate = np.stack([np.interp(grid, log.t, log.omega[:, i]) for i in range(3)], axis=1)
    h = np.diff(grid)[:, None]
    # Magnus' expansion for a rate linear in time over each interval: the trapezoid rule, plus the
    # term of an axis that turns (0 about a fixed axis); what it leaves is of 5th order in h.
    steps = quat_exp((rate[1:] + rate[:-1]) / 2 * h + h**2 / 12 * np.cross(rate[:-1], rate[1:]))
    running = cumulative_product(np.concatenate([[[1.0, 0, 0, 0]], steps]))
    return running[np.searchsorted(grid, times)]


def centred_pose_angles(q: np.ndarray, iterations: int = 4, about: np.ndarray | None = None) -> np.ndarray:
    """(k, 3) rotation vectors (pitch, yaw, roll: about the camera's x, y, z) of the image's poses for
    camera orientations ``q`` (k, 4), relative to the mean orientation q̄ of ``about`` (default: of
    ``q`` itself; the Karcher mean: the rotation vectors of q̄⁻¹ q_k average to 0 over ``about``).
    A camera turned by Q sees the scene turned by Q⁻¹, so a pose's angles are log(q_k⁻¹ q̄); they
    average to 0 as the random walks' do."""
    about = q if about is None else about
    mean = about[0]
    for _ in range(iterations):
        mean = quat_mul(mean, quat_exp(quat_log(quat_mul(quat_conj(mean), about)).mean(axis=0)))
    return quat_log(quat_mul(quat_conj(q), mean))


def window_span(knots: int, readout: float) -> float:
    """Exposures of log a window covers: 1, or with a rolling shutter's ``readout`` > 0 the
    :func:`blurgen.physics.shake.rolling_knots` knots at ``knots - 1`` segments an exposure."""
    if readout == 0:
        return 1.0
    return (math.ceil((knots - 1) * (1 + readout)) + 1) / (knots - 1)


def knot_angles(log: GyroLog, start: float, exposure: float, knots: int, readout: float = 0.0) -> np.ndarray:
    """(n, 3) float64 radians (pitch, yaw, roll), centred: the poses of ``log`` from ``start`` s on
    at knots ``exposure / (knots - 1)`` s apart (the ``angles`` of
    :class:`blurgen.physics.shake.Shake`).  ``readout`` 0: n = ``knots``, the window [start, start +
    exposure], centred on its mean.  ``readout`` > 0 (a rolling shutter): the knots go on past the
    exposure to cover ``window_span`` exposures, as the random walks do
    (:func:`blurgen.physics.shake.centred_walks`), centred on the centre row's window, which
    starts ``readout / 2`` exposures in."""
    span = window_span(knots, readout)
    n = int(round(span * (knots - 1))) + 1
    times = start + exposure * np.arange(n) / (knots - 1)
    if readout == 0:
        return centred_pose_angles(orientations(log, times))
    centre = start + exposure * (readout / 2 + np.linspace(0.0, 1.0, knots))
    grid = np.union1d(times, centre)
    q = orientations(log, grid)
    return centred_pose_angles(q[np.searchsorted(grid, times)], about=q[np.searchsorted(grid, centre)])

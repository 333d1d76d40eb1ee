"""Recorded camera shake from gyroscope logs (`blurgen.physics.gyro`, `synthesize --shake nonuniform --gyro`).

Every log here is made by the test (synthetic motion); nothing is downloaded.
"""
import math
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_shake import write_photos
from test_synthesize import datasets, one_run_equals_two_parts

from blurgen.modes.shake import gyro_shake, shake_seeds
from blurgen.physics import gyro, shake
from blurgen.physics.realism import Realism
from blurgen.runs.synthesize import SynthConfig, synthesize
from cli import blurgen

RATE = 200  # Hz


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def write_log(path: Path, t: np.ndarray, omega: np.ndarray, header: str = "time,gx,gy,gz") -> Path:
    """A CSV of times ``t`` (s) and rates ``omega`` (n, 3) rad/s in the plainest layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{ti:.6f},{a:.8f},{b:.8f},{c:.8f}" for ti, (a, b, c) in zip(t, omega)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def constant(rate: tuple[float, float, float], seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * RATE)) / RATE
    return t, np.tile(np.asarray(rate, np.float64), (len(t), 1))


def wobbly(seconds: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth made-up hand motion about all three axes, rad/s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f, phase, amp = rng.uniform(1, 10, (2, 3)), rng.uniform(0, 6, (2, 3)), rng.uniform(0.1, 0.6, (2, 3))
    return t, (amp[:, None] * np.sin(2 * np.pi * f[:, None] * t[None, :, None] + phase[:, None])).sum(axis=0)


def streak(rate, exposure: float = 0.05, focal: float = 500.0, side: int = 201):
    """(streak length, end-to-end displacement (x, y)) of the principal point under a constant ``rate``."""
    log = gyro.parse_log(["time,gx,gy,gz"] + [f"{x},{rate[0]},{rate[1]},{rate[2]}" for x in np.arange(200) / RATE],
                         "mem")
    angles = gyro.knot_angles(log, 0.2, exposure, 64)
    H = shake.poses(shake.Shake(angles, np.zeros((64, 2)), 0, 0, 0), shake.intrinsics(focal, side, side), side, side, 0.5)
    c = (side - 1) / 2
    q = shake.apply(H, np.array([[c, c]]))[:, 0]
    return shake.streak_length(H, (c, c)), q[-1] - q[0]


def test_a_turn_about_the_vertical_axis_is_a_horizontal_streak_of_f_theta():
    omega, exposure, focal = 0.6, 0.05, 500.0
    theta = omega * exposure
    length, moved = streak((0.0, omega, 0.0), exposure, focal)
    assert length == pytest.approx(focal * theta, abs=0.5)
    assert length == pytest.approx(2 * focal * math.tan(theta / 2), rel=1e-6)  # exact for a centred pure yaw
    # Turning left (positive about the phone's up axis) moves the scene right, along the row.
    assert moved[0] == pytest.approx(length, rel=1e-6) and abs(moved[1]) < 1e-9
    length, moved = streak((omega, 0.0, 0.0), exposure, focal)  # about the phone's x: a vertical streak
    assert abs(moved[0]) < 1e-9 and abs(moved[1]) == pytest.approx(focal * theta, abs=0.5)
    length, _ = streak((0.0, 0.0, omega), exposure, focal)  # about the optical axis: the centre stays put
    assert length < 1e-9


def test_the_stored_psf_of_a_constant_turn_has_the_predicted_length(tmp_path):
    # End to end: --full keeps the crop centred on the photo, so its centre PSF is the principal point's.
    omega, exposure, focal = 0.6, 0.1, 100.0
    log = write_log(tmp_path / "turn.csv", *constant((0.0, omega, 0.0)))
    spec = shake.ShakeSpec(focal=focal, gyro=gyro.GyroSpec(str(log), (exposure, exposure)))
    cfg = SynthConfig(src=write_photos(tmp_path / "src", 2), full=True, shard_size=10, mode="shake", spec=spec)
    synthesize(cfg, tmp_path / "out")
    with h5py.File(tmp_path / "out" / "shard-00000.h5") as f:  # whole images sit in groups: read fields by name
        centre, kernels, exposures = f["shake_blur_centre"][()], f["kernel"][()], f["gyro_exposure"][()]
    assert len(centre) == 2
    np.testing.assert_allclose(centre, focal * omega * exposure, atol=0.5)
    for psf in kernels.astype(np.float64):
        rows, cols = psf.sum(axis=1), psf.sum(axis=0)
        x = np.arange(len(cols))
        assert rows[31:34].sum() > 0.999  # on the centre row (bilinear: and its neighbours)
        var = (cols * (x - (cols * x).sum()) ** 2).sum()
        # A uniform streak of length L has variance L^2 / 12; bilinear splatting adds up to 1/4 px^2.
        assert math.sqrt(12 * var) == pytest.approx(focal * omega * exposure, abs=0.5)
    assert (exposures == exposure).all()


def test_integration_composes_rotations_like_a_fine_reference():
    # Independent reference: the body-frame rate, linear between samples, applied in 20,000 small steps
    # with OpenCV's Rodrigues.
    t, omega = wobbly(0.6)
    omega *= 8  # a fast motion, so that the order of rotations matters
    log = gyro.GyroLog("mem", t, omega, gyro.split_stretches(t))
    start, exposure = 0.1117, 0.3
    times = start + exposure * np.linspace(0, 1, 64)
    got = gyro.orientations(log, times)
    fine = np.linspace(start, start + exposure, 20001)
    rate = np.stack([np.interp(fine, t, omega[:, i]) for i in range(3)], axis=1)
    steps = (rate[1:] + rate[:-1]) / 2 * np.diff(fine)[:, None]
    R = np.eye(3)
    for step in steps:
        R = R @ cv2.Rodrigues(step)[0]
    np.testing.assert_allclose(shake.rotation(gyro.quat_log(got[-1])), R, atol=1e-7)  # the longest composition
    assert np.degrees(np.linalg.norm(gyro.quat_log(got[-1]))) > 10  # not a trivially small rotation
    # The rates summed instead (no composition) would be off by far more than the tolerance here.
    assert np.abs(shake.rotation(steps.sum(axis=0)) - R).max() > 1e-3


def test_pose_angles_are_centred():
    t, omega = wobbly(1.0, seed=3)
    log = gyro.GyroLog("mem", t, omega, gyro.split_stretches(t))
    angles = gyro.knot_angles(log, 0.3, 0.2, 64)
    np.testing.assert_allclose(angles.mean(axis=0), 0, atol=1e-10)
    assert np.ptp(angles, axis=0).min() > 1e-3


def test_windows_never_cross_a_gap(tmp_path):
    t = np.arange(1000) / RATE
    t = t[(t < 1.0) | (t >= 1.2)]  # a gap of 0.2 s
    t = t[(t < 2.0) | (t >= 2.5)]
    t = t[(t < 2.52) | (t >= 2.6)]  # a stretch of 0.02 s: shorter than any exposure drawn
    t = t[(t < 3.0) | (t >= 3.3)]
    log = gyro.GyroLog("mem", t, np.zeros((len(t), 3)), gyro.split_stretches(t))
    assert len(log.stretches) == 5
    ends = [(t[a], t[b]) for a, b in log.stretches]
    rng = np.random.default_rng(0)
    hits = np.zeros(len(ends), int)
    for _ in range(3000):
        w = gyro.draw_window([log], (0.03, 0.3), rng)
        assert 0.03 <= w.exposure <= 0.3
        inside = [i for i, (a, b) in enumerate(ends) if a <= w.start and w.start + w.exposure <= b + 1e-12]
        assert len(inside) == 1, (w, ends)
        hits[inside[0]] += 1
    assert hits[2] == 0 and (np.delete(hits, 2) > 0).all()  # the short stretch is never drawn, the others are
    # A log whose stretches are all shorter than the exposure is one line.
    path = write_log(tmp_path / "short.csv", t, np.zeros((len(t), 3)))
    with pytest.raises(gyro.GyroError, match=r"short\.csv: no gap-free stretch of 2 s .* longest is 1\.695 s"):
        gyro.load_logs(gyro.GyroSpec(str(path), (2.0, 2.0)))


def test_the_gap_factor_is_three_median_steps():
    t = np.array([0, 1, 2, 3, 5.9, 6.9, 7.9, 11.0, 12.0])
    assert gyro.split_stretches(t).tolist() == [[0, 6], [7, 8]]  # 2.9 is no gap, 3.1 is


def variants(t: np.ndarray, omega: np.ndarray) -> dict[str, tuple[list[str], dict]]:
    """The same motion written as several apps and loggers write it: (lines, read_log options)."""
    deg = np.degrees(omega)
    ns = (t * 1e9).round().astype(np.int64)
    epoch = 1_700_000_000_000_000_000 + ns
    rows = lambda fmt, *cols: [fmt.format(*v) for v in zip(*(c.tolist() for c in cols))]  # noqa: E731
    x, y, z = omega.T
    return {
        "plain": (["time,gx,gy,gz", *rows("{},{!r},{!r},{!r}", t, x, y, z)], {}),
        "ns, deg/s by option": (["timestamp, x, y, z", *rows("{}, {!r}, {!r}, {!r}", ns, *deg.T)], {"units": "deg/s"}),
        "phyphox": (['"Time (s)","Gyroscope x (rad/s)","Gyroscope y (rad/s)","Gyroscope z (rad/s)","Absolute (rad/s)"',
                     *rows('"{!r}","{!r}","{!r}","{!r}","{!r}"', t, x, y, z, np.linalg.norm(omega, axis=1))], {}),
        "Sensor Logger": (["time,seconds_elapsed,z,y,x", *rows("{},{!r},{!r},{!r},{!r}", epoch, t, z, y, x)], {}),
        "ms in the name, deg/s in brackets, semicolons, decimal commas, comments":
            (["# exported by a logger", "time_ms;wx [deg/s];wy [deg/s];wz [deg/s]",
              *[r.replace(".", ",") for r in rows("{!r};{!r};{!r};{!r}", t * 1e3, *deg.T)]], {}),
        "ms from the step, iOS names": (["t,rotationRateX,rotationRateY,rotationRateZ",
                                         *rows("{!r},{!r},{!r},{!r}", t * 1e3, x, y, z)], {}),
    }


def test_units_and_column_variants_read_to_the_same_rotations():
    t, omega = wobbly(0.5, seed=1)
    reference = gyro.parse_log(variants(t, omega)["plain"][0], "plain")
    angles = gyro.knot_angles(reference, 0.1, 0.2, 64)
    assert np.abs(angles).max() > 0.005
    for name, (lines, options) in variants(t, omega).items():
        log = gyro.parse_log(lines, name, **options)
        np.testing.assert_allclose(log.t, reference.t, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(log.omega, reference.omega, atol=1e-9, err_msg=name)
        # 1e-7 rad: Sensor Logger's nanoseconds since 1970 hold 256 ns steps as float64 (0.3 ppm of a 5 ms step).
        np.testing.assert_allclose(gyro.knot_angles(log, 0.1, 0.2, 64), angles, atol=1e-7, err_msg=name)
    # Phone axes to camera axes: y up becomes y down, z out of the screen becomes the optical axis' opposite.
    np.testing.assert_allclose(reference.omega, omega * [1, -1, -1])
    landscape = gyro.parse_log(variants(t, omega)["plain"][0], "plain", axes="-y,-x,-z")
    np.testing.assert_allclose(landscape.omega, np.stack([-omega[:, 1], -omega[:, 0], -omega[:, 2]], axis=1))


@pytest.mark.parametrize("text, message", [
    ("a,b,c\n1,2,3\n", "no time column in the header 'a,b,c'; expected a header row"),
    ("time,gx,gy\n0,1,2\n0.01,1,2\n", "no angular velocity column for z"),
    ("time,x,y,z,gx\n0,1,2,3,4\n", "more than one angular velocity column for x"),
    ("time,gx,gy,gz\n0,1,2,3\n0.005,1,oops,3\n", "line 3: expected numbers in columns time, gx, gy, gz"),
    ("time,gx,gy,gz\n0,1,2,3\n0.005,1,2\n", "line 3: expected numbers"),
    ("time,gx,gy,gz\n0,1,2,3\n0.005,1,nan,3\n", "line 3: a value that is not a finite number"),
    ("time,gx,gy,gz\n0,1,2,3\n0.005,1,2,3\n0.005,1,2,3\n", "line 4: the time does not increase"),
    ("time (min),gx,gy,gz\n0,1,2,3\n1,1,2,3\n", "unknown time unit 'min'"),
    ("time,gx (rpm),gy (rpm),gz (rpm)\n0,1,2,3\n0.005,1,2,3\n", "angular velocity units rpm"),
    ("time,gx,gy,gz\n0,1,2,3\n100,1,2,3\n200,1,2,3\n", "cannot tell the time unit from the median step 100"),
    ("time,gx,gy,gz\n0,1,2,3\n", "fewer than two samples"),
    ("", "empty; expected a header row"),
])
def test_bad_logs_are_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(gyro.GyroError, match=None) as info:
        gyro.read_log(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("extra, message", [
    (["--gyro", "{bad}"], "bad.csv: no time column"),
    (["--gyro", "{short}"], "short.csv: no gap-free stretch of 0.0333333 s"),
    (["--gyro", "{missing}"], "missing.csv: no such gyroscope log or folder"),
    (["--gyro", "{empty}"], "no gyroscope logs (*.csv) in this folder"),
    (["--gyro", "{good}", "--gyro-units", "rad/s"], "the header says deg/s, --gyro-units rad/s"),
    (["--gyro", "{good}", "--exposure", "1/0"], "--exposure must be SECONDS or LO-HI"),
    (["--gyro", "{good}", "--exposure", "0.2-0.1"], "--exposure must be SECONDS or LO-HI with 0 < LO <= HI"),
    (["--gyro", "{good}", "--gyro-axes", "x,y,-z"], "--gyro-axes must name the gyro axes"),  # a mirror
    (["--gyro", "{good}", "--gyro-axes", "x,x,z"], "--gyro-axes must name the gyro axes"),
])
def test_cli_errors_are_one_line(tmp_path, extra, message):
    src = write_photos(tmp_path / "src", 1)
    (tmp_path / "bad.csv").write_text("a,b,c\n1,2,3\n")
    write_log(tmp_path / "short.csv", *constant((0, 1, 0), 0.02))
    write_log(tmp_path / "good.csv", *constant((0, 1, 0)), header="time,gx (deg/s),gy (deg/s),gz (deg/s)")
    (tmp_path / "empty").mkdir()
    names = {k: tmp_path / f"{k}.csv" for k in ("bad", "short", "missing", "good")} | {"empty": tmp_path / "empty"}
    result = run("synthesize", "--src", src, "--out", tmp_path / "out", "--shake", "nonuniform",
                 *[a.format(**names) for a in extra])
    assert result.exit_code != 0 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_gyro_needs_the_shake_mode(tmp_path):
    log = write_log(tmp_path / "log.csv", *constant((0, 1, 0)))
    result = run("synthesize", "--src", write_photos(tmp_path / "src", 1), "--out", tmp_path / "out", "--gyro", log)
    assert result.exit_code != 0 and "--gyro is a setting of --shake nonuniform" in result.output
    assert len(result.output.strip().splitlines()) == 1


GYRO_ARGS = ["--shake", "nonuniform", "--crop", "40", "--kernel-size", "25", "--crops-per-image", "2",
             "--shard-size", "4", "--workers", "1", "--exposure", "1/30-1/10", "--focal", "150"]


def test_deterministic_resumable_recorded_and_shown(tmp_path):
    src = write_photos(tmp_path / "src", 3)
    logs = tmp_path / "logs"
    write_log(logs / "a.csv", *wobbly(1.0, seed=4))
    write_log(logs / "walk" / "b.csv", *wobbly(2.0, seed=5))
    args = ["synthesize", "--src", src, "--gyro", logs, *GYRO_ARGS, "--linear", "--noise"]
    a = one_run_equals_two_parts(run, args, tmp_path)
    names = np.concatenate([a[(s, "gyro_log")] for s, k in a if k == "gyro_log"]).astype(str)
    assert set(names) == {"a.csv", "walk/b.csv"}  # relative to the folder; both drawn
    starts = np.concatenate([a[(s, "gyro_start")] for s, k in a if k == "gyro_start"])
    exposures = np.concatenate([a[(s, "gyro_exposure")] for s, k in a if k == "gyro_exposure"])
    assert ((exposures >= 1 / 30) & (exposures <= 1 / 10)).all() and len(set(exposures)) == len(exposures)
    assert (starts >= 0).all() and (starts + exposures <= np.where(names == "a.csv", 0.995, 1.995) + 1e-9).all()
    blurred, sharp = a[("shard-00000.h5", "blurred")], a[("shard-00000.h5", "sharp")]
    assert all(np.abs(blurred[i].astype(int) - sharp[i]).mean() > 0 for i in range(len(blurred)))
    # The recorded window gives back the recorded trajectory.
    log = gyro.read_log(logs / str(names[0]), name=str(names[0]))
    np.testing.assert_allclose(a[("shard-00000.h5", "shake_trajectory")][0][:, :3],
                               gyro.knot_angles(log, starts[0], exposures[0], 64), atol=1e-6)
    shown = run("inspect", tmp_path / "a", "--samples", "2")
    assert shown.exit_code == 0, shown.output
    for part in ("recorded by the gyroscope logs", "exposure 0.03333-0.1 s", "gyro_log=", "gyro_start=",
                 "gyro_exposure="):
        assert part in shown.output, shown.output
    assert run("verify", tmp_path / "a").exit_code == 0
    # A changed log is refused on resume.
    write_log(logs / "a.csv", *wobbly(1.0, seed=6))
    again = run(*args, "--out", tmp_path / "b", "--part", "1/2")
    assert again.exit_code != 0 and "the --gyro logs changed since" in again.output
    assert len(again.output.strip().splitlines()) == 1


def test_combines_with_the_camera_and_jpeg(tmp_path):
    src = write_photos(tmp_path / "src", 2)
    log = write_log(tmp_path / "log.csv", *wobbly(1.0, seed=7))
    result = run("synthesize", "--src", src, "--out", tmp_path / "out", "--gyro", log, *GYRO_ARGS,
                 "--camera", "a7r3", "--jpeg-quality", "70-90")
    assert result.exit_code == 0, result.output
    data = datasets(tmp_path / "out")
    assert "gyro_start" in {k for _, k in data} and "jpeg_quality" in {k for _, k in data}


def test_the_gyro_draws_come_from_the_mode_stream_in_order(monkeypatch):
    t, omega = wobbly(1.0)
    spec = shake.ShakeSpec(max_shift=3.0, gyro=gyro.GyroSpec("unused.csv", (0.02, 0.05)))
    log = gyro.GyroLog("mem", t, omega, gyro.split_stretches(t))
    rng = np.random.default_rng(9)
    exposure, u, shift = rng.uniform(0.02, 0.05), rng.uniform(), rng.uniform(0, 3.0)
    monkeypatch.setattr(gyro, "load_logs", lambda s, span=1.0: [log])
    drawn, recorded = gyro_shake(shake_seeds(0, 1, 2), spec, np.random.default_rng(9))
    assert recorded["gyro_exposure"] == exposure and drawn.shift_length == shift
    assert recorded["gyro_start"] == pytest.approx(u * (t[-1] - exposure))
    np.testing.assert_allclose(drawn.shifts.mean(axis=0), 0, atol=1e-12)
    path = np.abs(np.diff(drawn.shifts[:, 0] + 1j * drawn.shifts[:, 1])).sum()
    assert path == pytest.approx(shift, rel=1e-5)
    # The translation is the walk the shake draws without --gyro (its third), at the drawn length.
    unit = shake.draw_shake(shake_seeds(0, 1, 2), shake.ShakeSpec(max_shift=1.0), np.random.default_rng(0))
    np.testing.assert_allclose(drawn.shifts / shift, unit.shifts / unit.shift_length, atol=1e-9)


def test_without_gyro_the_manifest_and_inputs_are_as_before(tmp_path):
    cfg = SynthConfig(src=tmp_path, mode="shake", spec=shake.ShakeSpec(), realism=Realism())
    args = cfg.arguments()
    assert "gyro" not in args and set(args["shake"]) == {"max_angle", "focal", "knots", "max_shift", "step"}
    assert cfg.blur_mode.inputs(cfg) == {}


def test_the_example_log_reads(tmp_path):
    example = Path(__file__).resolve().parents[1] / "data" / "gyro-example.csv"
    log = gyro.read_log(example)
    assert len(log.stretches) == 2 and log.durations.min() > 1.0  # the made-up stall splits it in two
    assert 0.1 < np.abs(log.omega).max() < 0.3


def test_with_a_rolling_shutter_the_window_goes_on_and_is_centred_on_the_centre_row():
    """A constant yaw rate w: with readout R the knots run 1 + R exposures (and a little more,
    as the random walks', ``shake.rolling_knots``), and the yaw is 0 at the middle of the centre
    row's window, which starts R/2 exposures in: a pose's yaw is w times its time from there."""
    w, exposure, start, knots = 0.6, 0.05, 0.2, 64
    log = gyro.parse_log(["time,gx,gy,gz"] + [f"{x},0,{w},0" for x in np.arange(400) / RATE], "mem")
    for readout in (0.25, 0.5):
        angles = gyro.knot_angles(log, start, exposure, knots, readout)
        assert len(angles) == shake.rolling_knots(knots, readout)
        t = exposure * np.arange(len(angles)) / (knots - 1)
        middle = exposure * (readout / 2 + 0.5)
        yaw = angles[:, 1]
        np.testing.assert_allclose(np.abs(yaw), w * np.abs(t - middle), atol=1e-9)
        assert np.sign(yaw[0]) == -np.sign(yaw[-1])
    np.testing.assert_allclose(gyro.knot_angles(log, start, exposure, knots, 0.0),
                               gyro.knot_angles(log, start, exposure, knots), atol=0)


def test_gyro_with_a_rolling_shutter(tmp_path):
    """--rolling-shutter 0 gives the gyro run's bytes; a readout gives other blurred images (skewed; and
    other crops, as the margin grows with the motion the rows see), records its readout, and needs
    log stretches of (1 + R) exposures."""
    src = write_photos(tmp_path / "src", 2)
    log = write_log(tmp_path / "log.csv", *wobbly(1.0, seed=8))
    args = ["synthesize", "--src", src, "--shake", "nonuniform", "--gyro", log, "--exposure", "1/20",
            "--crop", "48", "--crops-per-image", "2", "--workers", "1"]
    for name, extra in (("plain", []), ("zero", ["--rolling-shutter", "0"]), ("rolling", ["--rolling-shutter", "0.5"])):
        result = run(*args, *extra, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
    plain, zero, rolling = (datasets(tmp_path / n) for n in ("plain", "zero", "rolling"))
    for key in plain:
        assert np.array_equal(plain[key], zero[key]), key
    key = ("shard-00000.h5", "blurred")
    assert not np.array_equal(plain[key], rolling[key])
    assert (rolling[("shard-00000.h5", "rolling_readout")] == 0.5).all()
    starts, exposures = rolling[("shard-00000.h5", "gyro_start")], rolling[("shard-00000.h5", "gyro_exposure")]
    span = gyro.window_span(64, 0.5)
    assert (starts + exposures * span <= 0.995 + 1e-9).all()
    short = write_log(tmp_path / "short.csv", *wobbly(0.08, seed=9))   # holds 1/20 s, not 1.5/20 s
    result = run("synthesize", "--src", src, "--shake", "nonuniform", "--gyro", short, "--exposure", "1/20",
                 "--rolling-shutter", "0.5", "--out", tmp_path / "short")
    assert result.exit_code != 0 and "rolling shutter" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output

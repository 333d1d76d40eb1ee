"""Non-uniform camera shake (`blurgen.physics.shake`, `synthesize --shake nonuniform`)."""
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from test_synthesize import datasets, one_run_equals_two_parts

from blurgen import modes
from blurgen.modes.shake import shake_seeds
from blurgen.physics import shake
from blurgen.physics.realism import Realism
from blurgen.runs.synthesize import SynthConfig, synthesize
from cli import blurgen


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def write_photos(folder: Path, n: int, size=(90, 110), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img{i:03d}.png"), cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC))
    return folder


def roll_poses(theta: float, n: int, K: np.ndarray) -> np.ndarray:
    """Homographies of a roll swept at constant speed from -theta/2 to theta/2."""
    angles = np.zeros((n, 3))
    angles[:, 2] = np.linspace(-theta / 2, theta / 2, n)
    return shake.homographies(angles, np.zeros((n, 2)), K)


def blur_points(points, side: int, H: np.ndarray) -> np.ndarray:
    image = np.zeros((side, side, 1), np.float32)
    for x, y in points:
        image[y, x] = 1.0
    return shake.average_warps(image, H, (0, 0), (0, 0, side, side))[..., 0]


def test_in_plane_rotation_keeps_the_centre_sharp_and_draws_an_arc_of_length_r_theta():
    side, r, theta = 61, 20, 0.6  # principal point on pixel (30, 30)
    c = (side - 1) // 2
    K = shake.intrinsics(100.0, side, side)
    H = roll_poses(theta, 241, K)
    out = blur_points([(c, c), (c + r, c)], side, H)
    assert out[c, c] == pytest.approx(1.0, abs=1e-4)  # the centre does not move
    ys, xs = np.mgrid[:side, :side]
    ring = np.hypot(xs - c, ys - c) > 3
    w = np.where(ring, out, 0).astype(np.float64)
    assert w.sum() == pytest.approx(1.0, abs=1e-3)  # the averaged point keeps its light
    radius = np.hypot(xs - c, ys - c)
    assert (w * radius).sum() / w.sum() == pytest.approx(r, abs=0.1)  # along the circle of radius r
    phi = np.arctan2(ys - c, xs - c)
    mean = (w * phi).sum() / w.sum()
    var_tangent = (w * (r * (phi - mean)) ** 2).sum() / w.sum()
    # A uniform streak of length L has variance L^2 / 12; bilinear interpolation adds a tent (1/6 px^2).
    length = math.sqrt(12 * (var_tangent - 1 / 6))
    assert length == pytest.approx(r * theta, abs=0.3)
    assert shake.streak_length(H, (c + r, c)) == pytest.approx(r * theta, rel=1e-3)
    assert shake.streak_length(H, (c, c)) == pytest.approx(0, abs=1e-9)


def test_blur_grows_with_the_distance_from_the_centre():
    side = 61
    K = shake.intrinsics(100.0, side, side)
    H = roll_poses(0.3, 50, K)
    lengths = [shake.streak_length(H, (30 + d, 30)) for d in (0, 5, 10, 20, 30)]
    assert lengths == sorted(lengths) and lengths[0] < 1e-9 and lengths[-1] == pytest.approx(9.0, rel=1e-3)


def test_homography_of_a_pure_translation_is_a_shift():
    K = shake.intrinsics(80.0, 40, 30)
    H = shake.homographies(np.zeros((1, 3)), np.array([[3.0, -2.0]]), K)
    np.testing.assert_allclose(H[0], [[1, 0, 3], [0, 1, -2], [0, 0, 1]], atol=1e-12)
    image = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    out = shake.average_warps(image, H, (0, 0), (5, 5, 25, 35))
    np.testing.assert_allclose(out, image[5 + 2 : 25 + 2, 5 - 3 : 35 - 3], atol=1e-6)


def test_a_small_yaw_moves_the_principal_point_by_f_tan_theta():
    K = shake.intrinsics(500.0, 101, 81)
    theta = math.radians(1.5)
    H = shake.homographies(np.array([[0.0, theta, 0.0]]), np.zeros((1, 2)), K)
    moved = shake.apply(H, np.array([[50.0, 40.0]]))[0, 0]
    np.testing.assert_allclose(moved, [50 + 500 * math.tan(theta), 40], atol=1e-9)
    np.testing.assert_allclose(shake.rotation(np.array([0.0, theta, 0.0])),
                               cv2.Rodrigues(np.array([0.0, theta, 0.0]))[0], atol=1e-12)


def test_the_stored_psf_is_the_blur_of_a_dot_at_the_crop_centre():
    side = 71
    K = shake.intrinsics(70.0, side, side)
    drawn = shake.draw_shake(shake_seeds(3, 0, 0), shake.ShakeSpec(max_angle=4.0), np.random.default_rng(1))
    H = shake.poses(drawn, K, side, side, 0.5)
    point = (45, 28)
    out = blur_points([point], side, H)
    psf = shake.point_psf(H, point, 21)
    assert psf.sum() == pytest.approx(1, abs=1e-5) and psf.min() >= 0
    window = out[point[1] - 10 : point[1] + 11, point[0] - 10 : point[0] + 11]
    assert window.sum() == pytest.approx(1, abs=1e-3)
    assert np.abs(window - psf).max() < 0.01


def test_the_trajectory_is_centred_and_bounded_by_max_angle():
    spec = shake.ShakeSpec(max_angle=2.0, max_shift=5.0)
    drawn = shake.draw_shake(shake_seeds(0, 4, 1), spec, np.random.default_rng(0))
    np.testing.assert_allclose(drawn.angles.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(drawn.shifts.mean(axis=0), 0, atol=1e-12)
    oop = np.abs(np.diff(drawn.angles[:, 0] + 1j * drawn.angles[:, 1])).sum()
    assert math.degrees(oop) == pytest.approx(drawn.oop_angle, rel=1e-5) and drawn.oop_angle <= 2.0
    assert math.degrees(np.abs(np.diff(drawn.angles[:, 2])).sum()) <= drawn.roll_angle * (1 + 1e-5)
    assert np.abs(np.diff(drawn.shifts[:, 0] + 1j * drawn.shifts[:, 1])).sum() == pytest.approx(drawn.shift_length, rel=1e-5)


def test_zero_rotation_gives_blurred_equal_to_sharp(tmp_path):
    src = write_photos(tmp_path / "src", 2)
    cfg = SynthConfig(src=src, crop=32, crops_per_image=2, shard_size=10, realism=Realism(linear=True),
                      mode="shake", spec=shake.ShakeSpec(max_angle=0.0))
    synthesize(cfg, tmp_path / "out")
    data = datasets(tmp_path / "out")
    assert np.array_equal(data[("shard-00000.h5", "blurred")], data[("shard-00000.h5", "sharp")])
    kernel = data[("shard-00000.h5", "kernel")]
    assert (kernel[:, 32, 32] == 1).all()  # the centre PSF is a delta


def test_shake_mode_is_deterministic_recorded_and_verifiable(tmp_path):
    src = write_photos(tmp_path / "src", 3)
    args = ["synthesize", "--src", src, "--shake", "nonuniform", "--max-angle", "3", "--max-shift", "2",
            "--crop", "40", "--kernel-size", "25", "--crops-per-image", "2", "--shard-size", "4", "--workers", "1"]
    a = one_run_equals_two_parts(run, args, tmp_path)
    blurred, sharp = a[("shard-00000.h5", "blurred")], a[("shard-00000.h5", "sharp")]
    assert all(np.abs(blurred[i].astype(int) - sharp[i]).mean() > 0 for i in range(len(blurred)))
    traj = a[("shard-00000.h5", "shake_trajectory")]
    assert traj.shape == (4, 64, 5) and not np.array_equal(traj[0], traj[1])
    assert (a[("shard-00000.h5", "shake_focal")] == 110).all()  # the longer side
    assert (a[("shard-00000.h5", "shake_poses")] >= 64).all()
    corner, centre = a[("shard-00000.h5", "shake_blur_corner")], a[("shard-00000.h5", "shake_blur_centre")]
    assert (corner > 0).all() and (centre > 0).all()
    verify = run("verify", tmp_path / "a")
    assert verify.exit_code == 0, verify.output
    shown = run("inspect", tmp_path / "a", "--samples", "2")
    assert shown.exit_code == 0 and "non-uniform camera shake" in shown.output and "shake_roll_angle" in shown.output


def test_uniform_mode_records_no_shake_arguments(tmp_path):
    # Manifests of the existing modes are as before (a resumed run compares them).
    args = SynthConfig(src=tmp_path).arguments()
    assert "shake" not in args
    assert SynthConfig(src=tmp_path, mode="shake", spec=shake.ShakeSpec()).arguments()["shake"]["max_angle"] == 1.0


@pytest.mark.parametrize("extra, message", [
    (["--max-angle", "-1"], "--max-angle must be in [0, 30]"),
    (["--focal", "0"], "--focal must be > 0"),
    (["--kernels", "bank.h5"], "--kernels does not apply to --shake nonuniform"),
])
def test_shake_errors_are_one_line(tmp_path, extra, message):
    src = write_photos(tmp_path / "src", 1)
    result = run("synthesize", "--src", src, "--out", tmp_path / "out", "--shake", "nonuniform", *extra)
    assert result.exit_code != 0 and message in result.output and len(result.output.strip().splitlines()) == 1


def test_photos_too_small_for_the_shake_margin_are_skipped(tmp_path):
    src = write_photos(tmp_path / "src", 1, size=(40, 40))
    result = run("synthesize", "--src", src, "--out", tmp_path / "out", "--shake", "nonuniform", "--max-angle", "20",
                 "--crop", "36", "--workers", "1")
    # Its only photo skipped: nothing made, which is an error (issue 22.5).
    assert result.exit_code == 2 and "too-small" in result.output and "nothing made" in result.output
    assert "shake's" in (tmp_path / "out" / "skipped.tsv").read_text()


def test_describe_sample_is_compact_for_every_field_kind():
    sample = {"blurred": np.zeros((4, 4, 3)), "kernel": np.ones((3, 3)), "source": "a.jpg", "linear": np.True_,
              "shake_focal": np.float64(640.0), "shake_poses": np.int64(64), "crop_box": np.arange(4, dtype=np.int32),
              "shake_angle_range": np.array([0.12345, 1.0, 2.5]), "shake_trajectory": np.zeros((64, 5), np.float32),
              "object_image": "x/y.png"}
    text = modes.describe_sample(sample, width=60)
    assert "blurred" not in text and "a.jpg" not in text and "kernel=" not in text
    for part in ("linear=True", "shake_focal=640", "shake_poses=64", "crop_box=[0, 1, 2, 3]",
                 "shake_angle_range=[0.123, 1, 2.5]", "shake_trajectory=64x5 values", "object_image=x/y.png"):
        assert part in text
    assert all(len(line) <= 62 for line in text.splitlines())

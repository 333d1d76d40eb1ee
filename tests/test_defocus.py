"""Defocus with motion (``synthesize --defocus LO-HI``, issue 24.2): the disk, its
convolution with the motion PSF, and the uniform mode's samples made with it."""
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_mode_hashes import corpus, folder_hash, with_zero_setting
from test_video import samples

from blurgen.physics import blur
from blurgen.physics.defocus import DefocusSpec, defocus_psf, disk_psf, disk_side
from blurgen.physics.kernels import KernelSpec, make_kernels
from blurgen.sources import load_rgb
from cli import blurgen

SMALL = ["--kernel-size", "15", "--iters", "200", "--max-len", "10", "--crop", "32"]
SPEC = KernelSpec(size=15, iters=200, max_len=10.0)


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def moments(psf: np.ndarray) -> tuple[float, float, float]:
    """(E[x], E[y], E[x^2 + y^2]) of a PSF about its pixel (k // 2, k // 2)."""
    k = psf.shape[0]
    y, x = np.indices(psf.shape) - k // 2
    w = psf.astype(np.float64)
    return float((w * x).sum()), float((w * y).sum()), float((w * (x * x + y * y)).sum())


# --- the disk -----------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0, 0.4, 1, 1.5, 2.5, 4, 7.3])
def test_the_disk_sums_to_one_and_is_centred(radius):
    for size in (None, disk_side(radius) + 4):
        disk = disk_psf(radius, size)
        assert disk.dtype == np.float32 and disk.shape[0] == disk.shape[1] == (size or 2 * np.ceil(radius) + 1)
        assert abs(float(disk.sum(dtype=np.float64)) - 1) < 1e-6 and disk.min() >= 0
        ex, ey, _ = moments(disk)
        assert abs(ex) < 1e-6 and abs(ey) < 1e-6
        np.testing.assert_allclose(disk, disk[::-1, ::-1], atol=1e-9)  # symmetric about its centre pixel
        np.testing.assert_allclose(disk, disk.T, atol=1e-9)


@pytest.mark.parametrize("radius, tolerance", [(2, 0.06), (3, 0.03), (4.5, 0.03), (8, 0.02), (12.5, 0.02)])
def test_the_radius_comes_back_from_the_second_moment(radius, tolerance):
    # A uniform disk of radius R has E[r^2] = R^2 / 2.
    _, _, second = moments(disk_psf(radius))
    assert abs(np.sqrt(2 * second) / radius - 1) < tolerance


def test_the_disk_is_anti_aliased_by_area():
    disk = disk_psf(4)
    inside = 1 / (np.pi * 16)  # a pixel wholly inside holds its share of the disk's area
    assert abs(disk[4, 4] / inside - 1) < 0.02
    edge = disk[(disk > 0) & (disk < 0.95 * disk.max())]
    assert len(edge) >= 12  # partly covered pixels along the rim, not a hard 0/1 disk
    # A radius between whole pixels changes the disk a little, smoothly.
    a, b = disk_psf(3.0, 9), disk_psf(3.1, 9)
    assert 0 < np.abs(a - b).max() < 0.2 * a.max()
    with pytest.raises(ValueError):
        disk_psf(3, 5)


def test_defocus_of_a_point_is_the_disk_and_of_a_line_is_the_line_thickened():
    delta = np.zeros((15, 15), np.float32)
    delta[7, 7] = 1
    np.testing.assert_allclose(defocus_psf(delta, 3)[3:18, 3:18], np.pad(disk_psf(3), 4), atol=1e-7)
    line = np.zeros((15, 15), np.float32)
    line[7, 3:12] = 1 / 9
    combined = defocus_psf(line, 3)
    assert combined.shape == (21, 21) and abs(float(combined.sum(dtype=np.float64)) - 1) < 1e-6
    rows, cols = np.flatnonzero(combined.any(axis=1)), np.flatnonzero(combined.any(axis=0))
    assert len(rows) == 2 * 3 + 1 and len(cols) == 9 + 2 * 3
    ex, ey, _ = moments(combined)
    assert abs(ex) < 1e-5 and abs(ey) < 1e-5  # still centred on (k // 2, k // 2)
    assert defocus_psf(line, 0) is not line and np.array_equal(defocus_psf(line, 0), line)  # radius 0: unchanged


# --- synthesize --defocus ------------------------------------------------------------------------


def horizontal_bank(path: Path, length: int = 9) -> Path:
    """A bank (make-kernels' format) whose every 15x15 kernel is a straight horizontal path of
    ``length`` px centred on (7, 7)."""
    res = run("make-kernels", "--out", path, "-n", 4, "--size", 15, "--iters", 200, "--max-len", 10, "--seed", 1)
    assert res.exit_code == 0, res.output
    line = np.zeros((15, 15), np.float32)
    line[7, 7 - length // 2 : 7 - length // 2 + length] = 1 / length
    with h5py.File(path, "r+") as f:
        f["kernels"][...] = line
    return path


@pytest.mark.parametrize("radius", [2, 3])
def test_a_point_light_becomes_the_motion_path_thickened_by_the_disk(tmp_path, radius):
    src = tmp_path / "src"
    src.mkdir()
    image = np.zeros((48, 48, 3), np.uint8)
    image[24, 24] = 255
    cv2.imwrite(str(src / "point.png"), image)
    bank = horizontal_bank(tmp_path / "line.h5")
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--kernels", bank, "--full", "--linear", "--workers", 1,
              "--defocus", f"{radius}-{radius}")
    assert res.exit_code == 0, res.output
    (s,) = samples(out)
    k = 15 + 2 * radius
    assert s["kernel"].shape == (k, k) and float(s["defocus_radius"]) == radius
    y0, x0, y1, x1 = s["crop_box"]
    assert (y0, x0, y1, x1) == (k // 2, k // 2, 48 - k // 2, 48 - k // 2)  # the margin of the grown kernel
    lit = s["blurred"][..., 0] > 0
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    assert len(rows) == 2 * radius + 1  # the disk's height
    assert len(cols) == 9 + 2 * radius  # the path plus the disk's radius at each end
    # Centred where the point was, and exactly the stored kernel there (linear light, 8-bit sRGB).
    cy, cx = 24 - y0, 24 - x0
    assert (rows[0] + rows[-1]) / 2 == cy and (cols[0] + cols[-1]) / 2 == cx
    want = np.zeros(lit.shape, np.float32)
    want[cy - k // 2 : cy - k // 2 + k, cx - k // 2 : cx - k // 2 + k] = s["kernel"]
    assert np.abs(s["blurred"][..., 0].astype(int) - blur.encode_srgb8(want).astype(int)).max() <= 1
    line = np.zeros((15, 15), np.float32)
    line[7, 3:12] = 1 / 9
    np.testing.assert_array_equal(s["kernel"], defocus_psf(line, radius, 2 * radius + 1))


def test_fresh_kernels_through_the_disk_keep_the_crop_margin_valid(tmp_path):
    src = corpus(tmp_path / "src")
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--crops-per-image", 2, "--seed", 4,
              "--defocus", "1-4", *SMALL)
    assert res.exit_code == 0, res.output
    made = samples(out)
    assert len(made) == 6
    spec = DefocusSpec(1, 4)
    with h5py.File(next(out.glob("shard-*.h5"))) as f:
        assert json.loads(f.attrs["arguments"])["defocus"] == [1, 4]
    for n, s in enumerate(made):
        i, c = divmod(n, 2)
        radius = float(s["defocus_radius"])
        assert s["defocus_radius"].dtype == np.float32 and np.float32(spec.draw(4, i, c)) == s["defocus_radius"]
        assert 1 <= radius <= 4
        motion = make_kernels(np.array([s["kernel_seed"]], np.uint64), SPEC).psf[0]
        np.testing.assert_array_equal(s["kernel"], defocus_psf(motion, radius, 9))
        k = s["kernel"].shape[0]
        assert k == 15 + 2 * 4
        # The blurred crop is the source window (the grown kernel's margins) through the stored kernel.
        photo = load_rgb(src / s["source"])
        y0, x0, y1, x1 = s["crop_box"]
        before, after = blur.margins(k)
        assert y0 >= before and x0 >= before and y1 + after <= photo.shape[0] and x1 + after <= photo.shape[1]
        window = photo[y0 - before : y1 + after, x0 - before : x1 + after].astype(np.float32) / 255
        want = blur.to_uint8(blur.convolve_valid(window, s["kernel"]))
        assert np.abs(s["blurred"].astype(int) - want.astype(int)).max() <= 1
    res = run("inspect", out, "--samples", 1)
    assert res.exit_code == 0 and "defocus radius 1-4 px" in res.output and "defocus_radius=" in res.output


def test_zero_radius_gives_exactly_todays_output(tmp_path):
    for added, args_a, args_b in with_zero_setting(tmp_path, [], ["--defocus", "0"]):
        assert set(added) == {"defocus_radius"} and not added["defocus_radius"].any()
        assert args_b.pop("defocus") == [0, 0] and args_b == args_a
        assert list(args_b) == list(args_a)  # the keys before it in their order: defocus comes last


@pytest.mark.parametrize("extra", [["--camera", "a7r3", "--jpeg-quality", "70-90"], ["--linear", "--noise"]])
def test_defocus_combines_with_the_realism_options_and_any_workers(tmp_path, extra):
    src = corpus(tmp_path / "src", n=4)
    args = ["--src", src, *SMALL, "--crops-per-image", 2, "--shard-size", 2, "--defocus", "1-3", *extra]
    one, two = tmp_path / "one", tmp_path / "two"
    res = run("synthesize", "--out", one, "--workers", 1, *args)
    assert res.exit_code == 0, res.output
    assert run("synthesize", "--out", two, "--workers", 2, *args).exit_code == 0
    assert folder_hash(one) == folder_hash(two)
    made = samples(one)
    assert len(made) == 8 and all(1 <= float(s["defocus_radius"]) <= 3 for s in made)
    assert len({float(s["defocus_radius"]) for s in made}) == 8  # drawn per sample
    assert all(s["kernel"].shape == (21, 21) and bool(s["linear"]) for s in made)


@pytest.mark.parametrize("value, message", [("4-2", "0 <= LO <= HI"), ("x", "--defocus must look like LO-HI"),
                                            ("-1-3", "--defocus must look like LO-HI"),
                                            ("1.5-3", "--defocus must look like LO-HI")])
def test_a_bad_range_is_a_one_line_error(tmp_path, value, message):
    src = corpus(tmp_path / "src", n=1)
    res = run("synthesize", "--src", src, "--out", tmp_path / "out", *SMALL, "--defocus", value)
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_defocus_is_refused_with_another_mode(tmp_path):
    src = corpus(tmp_path / "src", n=1)
    res = run("synthesize", "--src", src, "--out", tmp_path / "out", *SMALL, "--defocus", "1-2",
              "--shake", "nonuniform")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert res.output.strip() == ("error: --defocus is a setting of the uniform mode: it cannot be combined with "
                                  "--shake")

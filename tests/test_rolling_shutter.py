"""A rolling shutter (``synthesize --rolling-shutter LO-HI``, issue 24.1): each row's own
exposure window, for the uniform mode's trajectories and for non-uniform shake."""
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_mode_hashes import corpus, folder_hash, with_zero_setting
from test_video import samples

from blurgen.physics import rolling, shake
from blurgen.physics.psf import rasterize
from blurgen.physics.rolling import RollingShutter
from blurgen.physics.trajectory import random_trajectories
from cli import blurgen

SMALL = ["--kernel-size", "15", "--iters", "200", "--max-len", "10", "--crop", "32", "--workers", "1"]
SHAKE = ["--shake", "nonuniform", "--max-angle", "0.6", "--max-shift", "2"]


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def edge_image(rows: int, cols: int, at: float) -> np.ndarray:
    """(rows, cols, 1) float32: 0 left of column ``at``, 1 from it on (a vertical step edge)."""
    image = (np.arange(cols) >= at).astype(np.float32)
    return np.repeat(image[None, :, None], rows, axis=0)


def crossing(row: np.ndarray) -> float:
    """The x (px, sub-pixel, linear between pixels) where a rising ``row`` first reaches 0.5."""
    i = int(np.argmax(row >= 0.5))
    return i - 1 + (0.5 - row[i - 1]) / (row[i] - row[i - 1])


# --- the physics ------------------------------------------------------------------------------


def pan(speed: float, exposed: int, readout: float) -> np.ndarray:
    """A straight horizontal trajectory at ``speed`` px per exposure, sampled ``exposed`` times an
    exposure, long enough for ``readout``."""
    n = rolling.extended_samples(exposed, readout)
    return (np.arange(n) * speed / exposed).astype(np.complex64)


@pytest.mark.parametrize("speed, readout", [(12.0, 0.5), (20.0, 1.0), (8.0, 0.25)])
def test_a_pan_shears_a_vertical_edge_by_speed_times_readout(speed, readout):
    # A camera panning right at v px per exposure: row y's window starts v * R * y / (h - 1) px
    # later along the path, so the edge's 50 % crossing moves by v * R from the top row to
    # the bottom one, and the centre row's is where the sharp edge is.
    h, w, exposed = 41, 80, 400
    k = rolling.grid_side(speed * (exposed - 1) / exposed, exposed, readout)
    psfs, spans = rolling.band_psfs(pan(speed, exposed, readout), exposed, readout, h, speed)
    before = k - 1 - k // 2  # blur.margins(k)[0]
    region = edge_image(h + k - 1, w + k - 1, before + 30)
    blurred = rolling.blur_bands(*rolling.trim_bands(region, psfs, k), spans)[..., 0]
    top, middle, bottom = crossing(blurred[0]), crossing(blurred[h // 2]), crossing(blurred[-1])
    assert abs((bottom - top) - speed * readout) <= 0.5, (top, bottom)
    assert abs(middle - 29.5) <= 0.5  # the sharp edge: pixel 30 is the first at 1, the 50 % mark half a px left
    assert len(spans) > 1


def test_a_translating_shake_shears_the_edge_the_same_way():
    # The shake path: poses that only translate, at a constant v px per exposure.
    speed, readout, h, w, per_exposure = 16.0, 0.5, 33, 80, 64
    poses = np.arange(int(per_exposure * (1 + readout)) + 2)
    shifts = np.stack([poses * speed / per_exposure, np.zeros(len(poses))], axis=1)
    shifts[:, 0] -= shifts[int(readout / 2 * per_exposure) : int(readout / 2 * per_exposure) + per_exposure + 1, 0].mean()
    H = shake.homographies(np.zeros((len(poses), 3)), shifts, shake.intrinsics(100.0, w, h))
    first = rolling.row_windows(h, readout, per_exposure)
    m = 20
    region = edge_image(h + 2 * m, w + 2 * m, m + 30)
    blurred = rolling.average_rows(region, H, (0, 0), (m, m, m + h, m + w), first, per_exposure + 1)[..., 0]
    top, middle, bottom = crossing(blurred[0]), crossing(blurred[h // 2]), crossing(blurred[-1])
    assert abs((bottom - top) - speed * readout) <= 0.5, (top, bottom)
    assert abs(middle - 29.5) <= 0.5


@pytest.mark.parametrize("readout", [0.0, 0.3, 2.0])
def test_no_motion_gives_the_sharp_image(readout):
    rng = np.random.default_rng(0)
    h, w, exposed = 24, 30, 100
    k = rolling.grid_side(1.0, exposed, readout)
    still = np.zeros(rolling.extended_samples(exposed, readout), np.complex64)
    psfs, spans = rolling.band_psfs(still, exposed, readout, h, speed=0.0)
    region = rng.random((h + k - 1, w + k - 1, 3), dtype=np.float32)
    before = k - 1 - k // 2
    sharp = region[before : before + h, before : before + w]
    np.testing.assert_array_equal(rolling.blur_bands(*rolling.trim_bands(region, psfs, k), spans), sharp)
    H = np.tile(np.eye(3), (int(50 * (1 + readout)) + 1, 1, 1))
    first = rolling.row_windows(h, readout, 50)
    got = rolling.average_rows(region, H, (0, 0), (before, before, before + h, before + w), first, 51)
    np.testing.assert_allclose(got, sharp, atol=1e-6)


def test_bands_stay_within_their_bound_of_the_exact_per_row_blur(monkeypatch):
    # Every row its own PSF (BAND_SHIFT tiny) against the bands: a row's blur moves by at most
    # BAND_SHIFT px, so on an image of gradient g it changes by at most g * BAND_SHIFT.
    seeds = np.array([7], np.uint64)
    exposed, readout, h, w = 300, 0.8, 48, 40
    points = random_trajectories(seeds, 300, 12.0, samples=rolling.extended_samples(exposed, readout)).points[:, 0]
    speed = 12.0 * exposed / 299
    k = rolling.grid_side(12.0, 300, readout)
    y, x = np.mgrid[: h + k - 1, : w + k - 1]
    region = (0.5 + 0.5 * np.sin(x / 5.0) * np.cos(y / 7.0)).astype(np.float32)[..., None]
    gradient = 0.5 * np.hypot(1 / 5.0, 1 / 7.0)  # the largest slope of the image, per px
    psfs, spans = rolling.band_psfs(points, exposed, readout, h, speed)
    assert 1 < len(spans) < h
    banded = rolling.blur_bands(*rolling.trim_bands(region, psfs, k), spans)
    monkeypatch.setattr(rolling, "BAND_SHIFT", 1e-9)
    psfs, spans = rolling.band_psfs(points, exposed, readout, h, speed)
    assert len(spans) == h
    exact = rolling.blur_bands(*rolling.trim_bands(region, psfs, k), spans)
    diff = np.abs(banded - exact).max()
    assert 0 < diff <= gradient * 0.25 + 1e-4


def test_zero_readout_through_the_rolling_path_is_the_global_blur():
    # The row machinery itself at a vanishing readout: one band, today's centred PSF.
    seeds = np.array([3], np.uint64)
    points = random_trajectories(seeds, 200, 10.0, samples=rolling.extended_samples(200, 1e-12)).points[:, 0]
    psfs, spans = rolling.band_psfs(points, 200, 1e-12, 32, speed=10.0)
    assert spans == [(0, 32)]
    today = rasterize(random_trajectories(seeds, 200, 10.0).points, 15)[0]
    s = psfs.shape[-1]
    assert s <= 15
    np.testing.assert_allclose(psfs[0], today[7 - s // 2 : 8 + s // 2, 7 - s // 2 : 8 + s // 2], atol=1e-6)
    assert today.sum() - today[7 - s // 2 : 8 + s // 2, 7 - s // 2 : 8 + s // 2].sum() < 1e-6
    # and the shake's: every row the same window, as average_warps.
    rng = np.random.default_rng(1)
    region = rng.random((60, 70, 3), dtype=np.float32)
    drawn = shake.draw_shake(np.array([1, 2, 3], np.uint64), shake.ShakeSpec(max_angle=0.5), np.random.default_rng(2))
    H = shake.poses(drawn, shake.intrinsics(70.0, 70, 60), 70, 60, 0.5)
    box = (10, 12, 50, 58)
    want = shake.average_warps(region, H, (0, 0), box)
    got = rolling.average_rows(region, H, (0, 0), box, np.zeros(40, np.int64), len(H))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_walk_continues_past_its_end():
    seeds = np.array([5, 6], np.uint64)
    whole = random_trajectories(seeds, 100, 8.0).points
    longer = random_trajectories(seeds, 100, 8.0, samples=250).points
    np.testing.assert_array_equal(longer[:100], whole)
    steps = np.abs(np.diff(longer, axis=0))
    np.testing.assert_allclose(steps, 8.0 / 99, rtol=1e-4)  # the same step past the end


def test_the_shake_walk_is_centred_on_the_centre_rows_window():
    spec = shake.ShakeSpec(max_angle=1.0, max_shift=3.0)
    seeds = np.array([1, 2, 3], np.uint64)
    drawn = shake.draw_shake(seeds, spec, np.random.default_rng(4), readout=0.5)
    knots = len(drawn.angles)
    assert knots == shake.rolling_knots(64, 0.5) == 97  # ceil(63 * 1.5) + 2
    at = 0.25 * 63 + np.arange(64)
    for column in (drawn.angles[:, 1], drawn.shifts[:, 0]):
        assert abs(np.interp(at, np.arange(knots), column).mean()) < 1e-12
    # The same walks as the global shutter's, only continued and shifted.
    still = shake.draw_shake(seeds, spec, np.random.default_rng(4))
    offset = drawn.angles[:64] - still.angles
    np.testing.assert_allclose(offset, offset[:1].repeat(64, axis=0), atol=1e-12)


def test_the_readout_spec():
    spec = RollingShutter(0.1, 0.5)
    draws = [spec.draw(3, i, c) for i in range(20) for c in range(2)]
    assert all(0.1 <= d <= 0.5 for d in draws) and len(set(draws)) == 40
    assert spec.draw(3, 4, 1) == RollingShutter(0.1, 0.5).draw(3, 4, 1)
    assert not RollingShutter(0, 0).active and RollingShutter(0, 0).draw(1, 2, 3) == 0.0
    for lo, hi in ((0.5, 0.1), (-0.1, 0.2), (0, 2.5), (0, float("nan"))):
        with pytest.raises(ValueError):
            RollingShutter(lo, hi)


# --- synthesize -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], SHAKE], ids=["uniform", "shake"])
def test_zero_readout_gives_exactly_todays_output(tmp_path, mode):
    for added, args_a, args_b in with_zero_setting(tmp_path, mode, ["--rolling-shutter", "0"]):
        assert set(added) == {"rolling_readout"}
        assert added["rolling_readout"].dtype == np.float64 and not added["rolling_readout"].any()
        assert args_b.pop("rolling_shutter") == [0, 0] and args_b == args_a


@pytest.mark.parametrize("mode", [[], SHAKE], ids=["uniform", "shake"])
def test_samples_record_their_readout_and_are_deterministic(tmp_path, mode):
    src = corpus(tmp_path / "src", n=2, size=(112, 120))
    args = ["synthesize", "--src", src, *SMALL, "--crops-per-image", 2, "--seed", 9, "--rolling-shutter", "0.1-0.5",
            *mode]
    one, two, split, plain = tmp_path / "one", tmp_path / "two", tmp_path / "split", tmp_path / "plain"
    res = run(*args, "--out", one)
    assert res.exit_code == 0, res.output
    assert run(*args, "--out", two).exit_code == 0
    assert folder_hash(one) == folder_hash(two)
    # Shards of one photo: other kernel batches, the same samples (each walk depends on its seed alone).
    assert run(*args, "--out", split, "--shard-size", 2).exit_code == 0
    for a, b in zip(samples(one), samples(split), strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)
    assert run("synthesize", "--src", src, *SMALL, "--crops-per-image", 2, "--seed", 9, *mode,
               "--out", plain).exit_code == 0
    made, before = samples(one), samples(plain)
    assert len(made) == len(before) == 4
    spec = RollingShutter(0.1, 0.5)
    for n, (s, p) in enumerate(zip(made, before)):
        i, c = divmod(n, 2)
        assert s["rolling_readout"] == spec.draw(9, i, c) and 0.1 <= s["rolling_readout"] <= 0.5
        assert s["source"] == p["source"]
        assert not np.array_equal(s["blurred"], p["blurred"])  # the rows see other parts of the motion
        assert s["kernel"].shape == p["kernel"].shape
        assert abs(float(s["kernel"].sum(dtype=np.float64)) - 1) < 1e-5
    with h5py.File(next(one.glob("shard-*.h5"))) as f:
        assert json.loads(f.attrs["arguments"])["rolling_shutter"] == [0.1, 0.5]
    res = run("inspect", one, "--samples", 1)
    assert res.exit_code == 0 and "rolling shutter: the last row starts 0.1-0.5 exposures" in res.output
    assert "rolling_readout=" in res.output


def test_it_combines_with_the_camera_and_the_other_realism_options(tmp_path):
    src = corpus(tmp_path / "src", n=2, size=(112, 120))
    for extra in (["--camera", "a7r3", "--jpeg-quality", "70-90"], ["--linear", "--noise", *SHAKE]):
        out = tmp_path / "-".join(extra[:2])
        res = run("synthesize", "--src", src, "--out", out, *SMALL, "--rolling-shutter", "0.2-0.4", *extra)
        assert res.exit_code == 0, res.output
        made = samples(out)
        assert len(made) == 2 and all(0.2 <= s["rolling_readout"] <= 0.4 for s in made)
        assert all(bool(s["linear"]) for s in made)


def test_a_still_scene_row_by_row_matches_the_shake_with_no_rotation(tmp_path):
    # --max-angle 0 and no shift: every pose the identity, so every row is the sharp crop.
    src = corpus(tmp_path / "src", n=1, size=(112, 120))
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, *SMALL, "--shake", "nonuniform", "--max-angle", "0",
              "--rolling-shutter", "0.5-1")
    assert res.exit_code == 0, res.output
    (s,) = samples(out)
    assert 0.5 <= s["rolling_readout"] <= 1
    assert np.abs(s["blurred"].astype(int) - s["sharp"].astype(int)).max() <= 1


@pytest.mark.parametrize("extra, message", [
    (["--rolling-shutter", "0.5-0.1"], "0 <= LO <= HI"),
    (["--rolling-shutter", "x"], "--rolling-shutter must look like LO-HI"),
    (["--rolling-shutter", "0-3"], "HI <= 2"),
    (["--rolling-shutter", "0.1-0.2", "--objects", "ann.json"], "--rolling-shutter applies to the uniform and shake "
                                                               "modes: it cannot be combined with --objects"),
    (["--rolling-shutter", "0.1-0.2", "--sharp-only"], "cannot be combined with --sharp-only"),
    (["--rolling-shutter", "0.1-0.2", "--kernels", "bank.h5"], "not --kernels"),
])
def test_what_it_refuses_is_a_one_line_error(tmp_path, extra, message):
    src = corpus(tmp_path / "src", n=1)
    (tmp_path / "bank.h5").write_bytes(b"")
    res = run("synthesize", "--src", src, "--out", tmp_path / "out", *SMALL,
              *[str(tmp_path / a) if a.endswith((".json", ".h5")) else a for a in extra])
    assert res.exit_code != 0 and message in res.output, res.output
    errors = [line for line in res.output.splitlines() if not line.startswith("warning:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in res.output


def test_kernels_with_their_tracks_are_todays_kernels():
    from blurgen.physics.kernels import KernelSpec, kernel_seeds, make_kernels, make_kernels_with_tracks
    from blurgen.physics.psf import exposed_samples

    spec = KernelSpec(size=15, iters=200, max_len=10.0)
    seeds = kernel_seeds(9, 7)
    today = make_kernels(seeds, spec)
    kernels, tracks = make_kernels_with_tracks(seeds, spec, 0.5)
    for name, value in today.params().items():
        np.testing.assert_array_equal(getattr(kernels, name), value, err_msg=name)
    np.testing.assert_array_equal(kernels.psf, today.psf)
    for j, track in enumerate(tracks):
        n = int(exposed_samples(200, today.fraction[j : j + 1])[0])
        assert len(track) == rolling.extended_samples(n, 0.5)
        np.testing.assert_allclose(np.abs(np.diff(track.astype(complex))), 10.0 / 199, rtol=1e-3)  # one walk
        np.testing.assert_array_equal(track, random_trajectories(seeds[j : j + 1], 200, 10.0, samples=len(track)).points[:, 0])


def test_the_bands_by_fft_are_each_bands_own_convolution():
    from blurgen.physics import blur

    rng = np.random.default_rng(5)
    psfs = rng.random((4, 13, 17), dtype=np.float32)
    psfs /= psfs.sum(axis=(1, 2), keepdims=True)
    spans = [(0, 3), (3, 10), (10, 11), (11, 30)]
    region = rng.random((30 + 12, 41 + 16, 3), dtype=np.float32)
    want = np.concatenate([blur._fft_convolve_valid(region[a : b + 12], k) for k, (a, b) in zip(psfs, spans)])
    got = rolling.blur_bands(region, psfs, spans)
    assert got.dtype == np.float32 and got.shape == (30, 41, 3)
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_window_psfs_are_the_rasterised_windows():
    # Against psf.rasterize (the kernels' splat), one window at a time, anchored on the grid's centre.
    points = random_trajectories(np.array([11], np.uint64), 200, 10.0, samples=320).points[:, 0].astype(complex)
    offsets = points - points[150]
    starts = np.array([0, 37, 38, 120])
    got = rolling.window_psfs(offsets, starts, 200, 25)
    for psf, s in zip(got, starts):
        want = rasterize(offsets[s : s + 200, None].astype(np.complex64), 25, anchor=np.zeros(1))[0]
        np.testing.assert_allclose(psf, want, atol=1e-6)
    with pytest.raises(ValueError):
        rolling.window_psfs(offsets, starts, 200, 9)


def along(walk: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The polyline through ``walk``'s samples at fractional sample indices ``t`` (np.interp)."""
    index = np.arange(len(walk))
    return np.interp(t, index, walk.real) + 1j * np.interp(t, index, walk.imag)


@pytest.mark.parametrize("defocus", [None, 2], ids=["in-focus", "defocus"])
def test_a_uniform_sample_is_each_rows_own_blur(tmp_path, monkeypatch, defocus):
    # End to end against a reference built here: each row's PSF from the kernel's walk (regenerated
    # from its recorded seed, continued), over the row's own window, relative to the centre row's
    # mean position, convolved with the source window (first through the disk with --defocus).
    # Every row its own band (BAND_SHIFT tiny).
    from blurgen.physics import blur
    from blurgen.physics.defocus import defocus_psf, disk_psf
    from blurgen.sources import load_rgb

    monkeypatch.setattr(rolling, "BAND_SHIFT", 1e-9)
    src = corpus(tmp_path / "src", n=2, size=(112, 120))
    out = tmp_path / "out"
    extra = [] if defocus is None else ["--defocus", f"{defocus}-{defocus}"]
    res = run("synthesize", "--src", src, "--out", out, *SMALL, "--fraction", 1, "--rolling-shutter", "0.3-0.9", *extra)
    assert res.exit_code == 0, res.output
    for s in samples(out):
        readout, n = float(s["rolling_readout"]), 200
        walk = random_trajectories(np.array([s["kernel_seed"]], np.uint64), 200, 10.0,
                                   samples=rolling.extended_samples(n, 0.9)).points[:, 0].astype(complex)
        target = along(walk, readout / 2 * n + np.arange(n)).mean()
        k = rolling.grid_side(10.0, 200, 0.9)
        d = 1 if defocus is None else 2 * defocus + 1
        before, after = blur.margins(k + d - 1)
        y0, x0, y1, x1 = s["crop_box"]
        window = load_rgb(src / s["source"])[y0 - before : y1 + after, x0 - before : x1 + after].astype(np.float32) / 255
        if defocus is not None:
            window = blur.convolve_valid(window, disk_psf(defocus))
            centre = (along(walk, readout / 2 * n + np.arange(n)) - target).astype(np.complex64)
            motion = rasterize((centre - centre.mean())[:, None], 15)[0]
            np.testing.assert_allclose(s["kernel"], defocus_psf(motion, defocus), atol=1e-6)
        for y in range(0, 32, 5):
            delay = readout * y / 31
            row = (along(walk, round(delay * n) + np.arange(n)) - target).astype(np.complex64)
            psf = rasterize(row[:, None], k, anchor=np.zeros(1))[0]
            want = blur.to_uint8(blur.convolve_valid(window[y : y + k], psf))[0]
            assert np.abs(s["blurred"][y].astype(int) - want.astype(int)).max() <= 1, y
        np.testing.assert_array_equal(s["sharp"], load_rgb(src / s["source"])[y0:y1, x0:x1])

"""RSBlur's camera pipeline (blurgen/physics/camera.py) and `blurgen synthesize --camera`."""
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_synthesize import SMALL, datasets, write_photos

from blurgen import shards
from blurgen.physics import blur, camera, cameras
from blurgen.physics.realism import Realism
from blurgen.runs.synthesize import SynthConfig, synthesize
from blurgen.sources import load_rgb
from cli import blurgen

CAM = cameras.get_camera("a7r3")
DELTA = np.ones((1, 1), np.float32)
# RSBlur's a7r3_xyz2cam.mat ("final_xyz2cam"), as loaded with scipy.io.loadmat.
RSBLUR_XYZ2CAM = np.array([[1.69541757, -0.47160184, -0.12843299],
                           [-0.48838234, 1.21303059, 0.23067161],
                           [-0.12672319, 0.21350242, 0.83295296]])


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def smooth_field(shape=(64, 64), seed=0) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1], slowly varying (little for a demosaic to get wrong)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((*shape, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 12, borderType=cv2.BORDER_REFLECT)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min())


def smooth_image(lo=60, hi=190) -> np.ndarray:
    """:func:`smooth_field` as (H, W, 3) uint8 codes in [lo, hi]."""
    return np.rint(lo + (hi - lo) * smooth_field()).astype(np.uint8)


# --- the steps ------------------------------------------------------------------------


def test_colour_matrix_is_rsblurs_a7r3_and_keeps_white():
    np.testing.assert_allclose(CAM.xyz_to_camera, RSBLUR_XYZ2CAM, atol=1e-7)
    for cam in cameras.CAMERAS.values():
        np.testing.assert_allclose(cam.rgb_to_camera @ np.ones(3), np.ones(3), atol=1e-12)


def test_colour_matrix_and_white_balance_invert_exactly():
    rng = np.random.default_rng(0)
    linear = rng.uniform(0.05, 0.6, (16, 16, 3)).astype(np.float32)  # camera values stay inside [0, 1]
    cam = camera.rgb_to_camera(linear, CAM)
    assert 0 < cam.min() and cam.max() < 1
    np.testing.assert_allclose(camera.camera_to_rgb(cam, CAM), linear, atol=2e-6)
    raw = rng.random((10, 12)).astype(np.float32)
    for pattern in camera.BAYER_PATTERNS:
        there = camera.white_balance(raw, pattern, 1 / 2.2, 1 / 1.7)
        np.testing.assert_allclose(camera.white_balance(there, pattern, 2.2, 1.7), raw, rtol=1e-6)


def test_mosaic_and_white_balance_follow_the_bayer_layout():
    rng = np.random.default_rng(1)
    cam = rng.random((6, 8, 3)).astype(np.float32)
    layouts = {"RGGB": "RG/GB", "BGGR": "BG/GR", "GRBG": "GR/BG", "GBRG": "GB/RG"}
    for pattern, rows in layouts.items():
        grid = rows.split("/")
        raw = camera.mosaic(cam, pattern)
        balanced = camera.white_balance(raw, pattern, 3.0, 5.0)
        for y in range(6):
            for x in range(8):
                colour = grid[y % 2][x % 2]
                assert raw[y, x] == cam[y, x, "RGB".index(colour)]
                assert balanced[y, x] == pytest.approx(raw[y, x] * {"R": 3.0, "G": 1.0, "B": 5.0}[colour])


def test_demosaic_of_a_flat_colour_and_of_linear_ramps_is_exact():
    flat = np.full((20, 22, 3), [0.2, 0.55, 0.35], np.float32)
    yy, xx = np.mgrid[0:30, 0:30].astype(np.float32)
    ramps = np.stack([0.2 + 0.01 * yy + 0.003 * xx, 0.5 - 0.004 * yy + 0.006 * xx, 0.1 + 0.002 * yy], -1)
    for pattern in camera.BAYER_PATTERNS:
        np.testing.assert_allclose(camera.demosaic(camera.mosaic(flat, pattern), pattern), flat, atol=1e-6)
        out = camera.demosaic(camera.mosaic(ramps, pattern), pattern)
        # Malvar-He-Cutler is bilinear interpolation plus a Laplacian correction: exact on planes
        # (away from the mirrored 2-pixel border).
        np.testing.assert_allclose(out[2:-2, 2:-2], ramps[2:-2, 2:-2], atol=1e-5)


def test_isp_round_trip_without_noise_returns_the_input():
    linear = 0.05 + 0.5 * smooth_field()  # unquantised: 8-bit steps are edges to a demosaic
    for pattern in camera.BAYER_PATTERNS:
        draw = camera.CameraDraw(1.0, 2.1, 1.7, pattern, 0.0, 0.0)
        out = camera.isp_round_trip(linear, CAM, draw, rng=None)
        error = np.abs(out - linear)
        # Exact on planes (above), so off by the order of the curvature; the
        # 2-pixel border is interpolated from a mirrored mosaic.
        curvature = max(np.abs(np.diff(linear, 2, axis=0)).max(), np.abs(np.diff(linear, 2, axis=1)).max())
        assert curvature < 3e-3
        assert error[2:-2, 2:-2].max() < 1.5 * curvature and error.max() < 5e-3


def test_noise_variance_is_shot_times_signal_plus_read_squared():
    rng = np.random.default_rng(2)
    shot, read = 2e-4, 3e-3
    for level in (0.05, 0.4):
        raw = np.full((400, 400), level, np.float32)
        noisy = camera.add_poisson_gaussian(raw, shot, read, rng)
        assert noisy.mean() == pytest.approx(level, abs=1e-4)
        assert noisy.var() == pytest.approx(shot * level + read**2, rel=0.03)


def test_saturated_channels_are_boosted_then_stay_noise_free():
    region = np.full((48, 48, 3), 90, np.uint8)
    region[8:40, 8:40] = 255
    mask = camera.saturation_mask(region)
    boosted = camera.boost_saturated(blur.LINEAR_LUT[region], mask, 0.7)
    assert np.allclose(boosted[mask], 1.7) and np.array_equal(boosted[~mask], blur.LINEAR_LUT[region][~mask])
    psf = np.full((1, 5), 0.2, np.float32)  # a horizontal streak, 5 px
    draw = camera.CameraDraw(0.7, 2.1, 1.7, "RGGB", 5 * CAM.shot, 5 * CAM.read)
    out = camera.simulate(region, psf, CAM, draw, np.random.default_rng(3))
    white = camera.tone_map(np.ones(3, np.float32), CAM)
    inside = out[10:38, 10:32]
    assert (inside == white).all()  # clipped: no noise at all
    grey = out[2:6, 2:40].astype(float)
    assert grey.std() > 0.5  # noise elsewhere
    # The boost spreads the highlight: output column 37 averages region columns
    # 37-41, three of them saturated: 3 * 1.7 / 5 > 1 clips, 3 * 1.3 / 5 does not.
    assert (out[12:36, 37] == white).all() and (out[12:36, 38] < white).all()
    dimmer = camera.simulate(region, psf, CAM, camera.CameraDraw(0.3, 2.1, 1.7, "RGGB", 0, 0), None)
    assert (dimmer[12:36, 37] < white).all() and (dimmer[12:36, 36] == white).all()


def test_no_blur_and_no_noise_give_the_sharp_image():
    flat = np.full((24, 24, 3), [30, 140, 200], np.uint8)
    smooth = smooth_image()
    for pattern in camera.BAYER_PATTERNS:
        draw = camera.CameraDraw(1.2, 2.0, 1.8, pattern, 0.0, 0.0)
        assert np.array_equal(camera.simulate(flat, DELTA, CAM, draw, None), camera.render_sharp(flat, CAM))
        diff = np.abs(camera.simulate(smooth, DELTA, CAM, draw, None).astype(int) - camera.render_sharp(smooth, CAM))
        # 8-bit steps are small edges to the demosaic, and the A7R3 curve is
        # steep (up to 8.7x in the shadows): a few codes here and there.
        assert diff.mean() < 0.5 and (diff <= 1).mean() > 0.97 and diff.max() <= 8


def test_tone_curves():
    codes = np.arange(256, dtype=np.uint8)
    # sRGB camera: the sharp image comes back unchanged.
    assert np.array_equal(camera.render_sharp(codes, cameras.get_camera("a7r3-rsblur")), codes)
    # A7R3: RSBlur's polynomial, evaluated independently in float64.
    linear = blur.srgb_to_linear(codes / 255.0).astype(np.float64)
    want = np.rint(np.clip(np.polynomial.polynomial.polyval(linear, CAM.tone), 0, 1) * 255)
    assert np.abs(camera.render_sharp(codes, CAM).astype(int) - want).max() <= 1
    with pytest.raises(ValueError, match="known: a7r3, a7r3-rsblur"):
        cameras.get_camera("nikon")


# --- synthesize --camera ------------------------------------------------------------------


def test_camera_runs_are_deterministic_resumable_and_record_their_parameters(tmp_path):
    src = write_photos(tmp_path / "src", 4)
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--src", src, "--workers", 1, "--shard-size", 2, "--camera", "--jpeg-quality", "80-90", *SMALL]
    assert run("synthesize", "--out", a, *args).exit_code == 0
    assert run("synthesize", "--out", b, *args).exit_code == 0
    first = datasets(a)
    assert_same(first, datasets(b))
    (a / "shard-00001.h5").unlink()  # resume rebuilds it, byte for byte
    assert run("synthesize", "--out", a, *args).exit_code == 0
    assert_same(first, datasets(a))
    assert json.loads((a / "manifest.json").read_text())["arguments"]["camera"] == "a7r3"
    images = sorted(p.relative_to(src).as_posix() for p in src.rglob("img*"))
    for info in shards.find_shards(a):
        with shards.ShardReader(info.path) as r:
            for k in range(len(r)):
                s = r.read_sample(k)
                i = images.index(s["source"])
                draw = camera.draw_parameters(CAM, Realism.camera_rng([0, i, 0]))  # the sample's own stream
                assert s["camera_saturation_alpha"] == draw.saturation_alpha
                assert (s["camera_red_gain"], s["camera_blue_gain"]) == (draw.red_gain, draw.blue_gain)
                assert (s["camera_shot"], s["camera_read"]) == (draw.shot, draw.read)
                bayer = s["camera_bayer"]
                assert (bayer.decode() if isinstance(bayer, bytes) else bayer) == draw.bayer
                assert 80 <= s["jpeg_quality"] <= 90 and s["linear"]
                y0, x0, y1, x1 = s["crop_box"]
                photo = load_rgb(src / s["source"])
                assert np.array_equal(s["sharp"], camera.render_sharp(photo[y0:y1, x0:x1], CAM))
    res = run("inspect", a, "--samples", 2)
    assert res.exit_code == 0 and "camera a7r3 (RSBlur pipeline" in res.output
    assert res.output.count("camera: saturation alpha") == 2


def test_other_modes_keep_their_arguments_and_fields(tmp_path):
    src = write_photos(tmp_path / "src", 2)
    out = tmp_path / "out"
    assert run("synthesize", "--src", src, "--out", out, "--workers", 1, "--noise", *SMALL).exit_code == 0
    assert "camera" not in json.loads((out / "manifest.json").read_text())["arguments"]
    with h5py.File(out / "shard-00000.h5") as f:
        assert not any(name.startswith("camera") for name in f)
        assert "camera" not in f.attrs["arguments"]


@pytest.mark.parametrize("args, message", [
    (["--camera", "--linear"], "leave out --linear"),
    (["--camera", "a7r3", "--saturate", "--noise"], "leave out --saturate --noise"),
    (["--camera", "nikon"], "unknown camera 'nikon'"),
])
def test_camera_refuses_what_it_models_itself(tmp_path, args, message):
    src = write_photos(tmp_path / "src", 1)
    res = run("synthesize", "--src", src, "--out", tmp_path / "out", *args)
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


# --- the camera pipeline in the other synthesis modes (issue 10) -----------------------------


def _shards(folder):
    import h5py

    out = {}
    for path in sorted(Path(folder).glob("shard-*.h5")):
        with h5py.File(path) as f:
            for name, ds in f.items():
                out.setdefault(name, []).append(ds[()])
    return {name: np.concatenate(v) for name, v in out.items()}


def test_non_uniform_shake_develops_through_the_camera(tmp_path):
    """Issue 10: `--shake nonuniform --camera`: the camera's linear light and saturation before
    the warps, its raw noise and development after them, its tone curve on both images.  With no
    rotation the warps are the identity, so the pair is the camera pipeline of an unblurred crop."""
    from test_shake import write_photos as write_shake_photos

    from blurgen.modes.shake import SHAKE_TAG
    from blurgen.physics import shake

    src = write_shake_photos(tmp_path / "src", 2)
    base = dict(src=src, crop=32, crops_per_image=2, shard_size=10, realism=Realism(camera="a7r3"))
    synthesize(SynthConfig(**base, mode="shake", spec=shake.ShakeSpec(max_angle=0.0)), tmp_path / "still", workers=1)
    data = _shards(tmp_path / "still")
    for n, (rel, box) in enumerate(zip(data["source"], data["crop_box"])):
        photo = cv2.cvtColor(cv2.imread(str(src / rel.decode())), cv2.COLOR_BGR2RGB)
        crop = photo[box[0]:box[2], box[1]:box[3]]
        cam, draw, rng = base["realism"].draw_camera(Realism.camera_rng([0, SHAKE_TAG, n // 2, n % 2]))
        # The identity warps average to the crop up to float32 rounding, which the Poisson draw
        # and the 8-bit rounding turn into a rare difference of one code.
        expected = camera.develop(camera.working(crop, draw), cam, draw, rng).astype(int)
        difference = np.abs(data["blurred"][n].astype(int) - expected)
        assert difference.max() <= 1 and difference.mean() < 0.01
        np.testing.assert_array_equal(data["sharp"][n], camera.render_sharp(crop, cam))
        assert data["camera_bayer"][n].decode() == draw.bayer and data["camera_shot"][n] == draw.shot
    # With rotation: the same crops and trajectories as without the camera (its draws are its own).
    synthesize(SynthConfig(**base, mode="shake", spec=shake.ShakeSpec(max_angle=2.0)), tmp_path / "cam", workers=1)
    synthesize(SynthConfig(**{**base, "realism": Realism(linear=True)}, mode="shake", spec=shake.ShakeSpec(max_angle=2.0)),
               tmp_path / "plain", workers=1)
    cam, plain = _shards(tmp_path / "cam"), _shards(tmp_path / "plain")
    np.testing.assert_array_equal(cam["shake_trajectory"], plain["shake_trajectory"])
    np.testing.assert_array_equal(cam["crop_box"], plain["crop_box"])
    assert not np.array_equal(cam["blurred"], plain["blurred"])


def test_moving_objects_develop_through_the_camera(tmp_path):
    """Issue 10: `--objects --camera`: the layers in the camera's linear light, its development
    after the layered blur; the sharp composite in its tone curve.  With the sRGB curve
    (`a7r3-rsblur`) the sharp image is the --linear mode's, to the rounding of the curve."""
    from test_objects import SMALL, write_annotations, write_scene_photos

    src = write_scene_photos(tmp_path / "src", 3)
    ann = write_annotations(tmp_path / "ann.json", src)
    common = ["synthesize", "--src", src, "--objects", ann, *SMALL, "--crops-per-image", "2", "--workers", "1"]
    assert run(*common, "--camera", "a7r3-rsblur", "--out", tmp_path / "cam").exit_code == 0
    assert run(*common, "--camera", "a7r3-rsblur", "--out", tmp_path / "again").exit_code == 0
    assert run(*common, "--linear", "--out", tmp_path / "lin").exit_code == 0
    cam, again, lin = _shards(tmp_path / "cam"), _shards(tmp_path / "again"), _shards(tmp_path / "lin")
    np.testing.assert_array_equal(cam["blurred"], again["blurred"])          # the raw noise too
    np.testing.assert_array_equal(cam["object_box"], lin["object_box"])      # the same scenes
    assert np.abs(cam["sharp"].astype(int) - lin["sharp"]).max() <= 1
    assert not np.array_equal(cam["blurred"], lin["blurred"])
    assert {"camera_bayer", "camera_shot", "camera_read"} <= set(cam)

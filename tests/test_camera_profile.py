"""Camera profiles (blurgen/physics/camera_profile.py), `--camera FILE.json` and
`blurgen camera-profile PHOTO.dng` (blurgen/physics/dng.py), on DNGs the tests write."""
import json
import math
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_mode_hashes import SMALL, corpus, dataset_names
from test_video import pan_frames, texture, write_frames

from blurgen.physics import camera, camera_profile, cameras, dng
from blurgen.physics.realism import Realism, RealismError
from cli import blurgen

tifffile = pytest.importorskip("tifffile")

A7R3 = cameras.get_camera("a7r3")
# LibRaw's adobe_coeff of the A7R III (cameras._A7R3_LIBRAW), written as a DNG's ColorMatrix.
A7R3_LIBRAW = (6640, -1847, -503, -5238, 13010, 2474, -993, 1673, 6527)
# Another matrix (an illuminant-A calibration of a made-up camera), to see which one is taken.
OTHER = (9000, -3000, -800, -4000, 12000, 2000, -500, 1200, 5000)


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def srational(values, den=10000):
    """SRATIONAL/RATIONAL values as tifffile's extratags take them: numerator, denominator, ..."""
    out = []
    for v in values:
        out += [int(v), den]
    return out


def write_dng(path, *, matrices=((A7R3_LIBRAW, 21),), neutral=(400, 1000, 600), noise=None, iso=None,
              baseline=None, forward=False, dng_version=True):
    """A small raw-like DNG: a 16x16 uint16 mosaic and the calibration tags with the types the DNG
    specification gives them (ColorMatrix SRATIONAL, CalibrationIlluminant SHORT, AsShotNeutral
    RATIONAL, NoiseProfile DOUBLE, BaselineExposure SRATIONAL, ISOSpeedRatings SHORT).
    ``matrices``: ((adobe_coeff-like integers, illuminant), ...) as ColorMatrix1, 2;
    ``neutral``: AsShotNeutral x 1000."""
    tags = [(50706, "B", 4, (1, 4, 0, 0), True)] if dng_version else []
    tags.append((50708, "s", 0, "Testcam X1", True))
    for k, (matrix, illuminant) in enumerate(matrices, 1):
        tags.append((50720 + k, "2i", 9, srational(matrix), True))
        tags.append((50777 + k, "H", 1, illuminant, True))
    if neutral is not None:
        tags.append((50728, "2I", 3, srational(neutral, 1000), True))
    if noise is not None:
        tags.append((51041, "d", len(noise), tuple(noise), True))
    if iso is not None:
        tags.append((34855, "H", 1, iso, True))
    if baseline is not None:
        tags.append((50730, "2i", 1, (int(baseline * 100), 100), True))
    if forward:
        tags.append((50964, "2i", 9, srational((5000, 3000, 1500, 2000, 7000, 1000, 0, 1000, 8000)), True))
    raw = np.random.default_rng(0).integers(0, 4096, (16, 16), dtype=np.uint16)
    tifffile.imwrite(path, raw, extratags=tags)
    return path


NOISE = (1.0e-4, 2.0e-6, 1.2e-4, 2.5e-6, 1.4e-4, 3.0e-6)  # (S, O) for R, G, B


# --- the format ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(cameras.CAMERAS))
def test_the_built_in_cameras_round_trip_exactly(tmp_path, name):
    cam = cameras.get_camera(name)
    back = camera_profile.from_dict(json.loads(json.dumps(camera_profile.to_dict(cam))))
    assert back == cam
    assert np.array_equal(back.xyz_to_camera, cam.xyz_to_camera)  # bit for bit, not to a tolerance
    assert (back.red_gain, back.blue_gain, back.shot, back.read, back.tone) == (
        cam.red_gain, cam.blue_gain, cam.shot, cam.read, cam.tone)
    path = tmp_path / f"{name}.json"
    camera_profile.save(cam, path)
    assert camera_profile.load(path) == cam
    assert json.loads(path.read_text())["format"] == camera_profile.FORMAT


def test_a_profile_not_normalised_is_normalised_and_a_changed_camera_differs():
    data = camera_profile.to_dict(A7R3)
    data["xyz_to_camera"] = (np.array(A7R3_LIBRAW).reshape(3, 3) / 10000).tolist()  # as a DNG holds it
    cam = camera_profile.from_dict(data)
    np.testing.assert_allclose(cam.xyz_to_camera, A7R3.xyz_to_camera, rtol=1e-12)
    np.testing.assert_allclose(cam.rgb_to_camera @ np.ones(3), np.ones(3), rtol=1e-12)
    data["noise"]["shot"] = 2e-4
    assert camera_profile.from_dict(data) != A7R3


def test_gain_pairs_draw_only_the_listed_pairs_and_noise_tables_one_entry():
    pairs = ((2.1, 1.5), (1.8, 1.9), (2.6, 1.4))
    table = ((100.0, 1e-4, 1e-3), (800.0, 8e-4, 4e-3))
    cam = cameras.Camera("list", "", A7R3.xyz_to_camera, None, None, None, None, gain_pairs=pairs, noise_iso=table)
    rng = np.random.default_rng(0)
    draws = [camera.draw_parameters(cam, rng) for _ in range(300)]
    assert {(d.red_gain, d.blue_gain) for d in draws} == set(pairs)  # every pair, and nothing else
    for d in draws:
        # shot and read come from the same entry, each 0.5-1.5 x its calibration
        entry = [e for e in table if 0.5 * e[1] <= d.shot <= 1.5 * e[1]]
        assert len(entry) == 1 and 0.5 * entry[0][2] <= d.read <= 1.5 * entry[0][2]
    assert {e[0] for d in draws for e in table if 0.5 * e[1] <= d.shot <= 1.5 * e[1]} == {100.0, 800.0}
    data = camera_profile.to_dict(cam)
    assert data["white_balance"] == {"pairs": [list(p) for p in pairs]}
    assert data["noise"] == {"iso": {"100": [1e-4, 1e-3], "800": [8e-4, 4e-3]}}
    assert camera_profile.from_dict(json.loads(json.dumps(data))) == cam


def test_noise_ranges_are_drawn_inside_them():
    data = camera_profile.to_dict(A7R3)
    data["noise"] = {"shot": [1e-4, 2e-4], "read": [0.0, 0.0]}
    cam = camera_profile.from_dict(data)
    rng = np.random.default_rng(1)
    draws = [camera.draw_parameters(cam, rng) for _ in range(200)]
    assert all(1e-4 <= d.shot <= 2e-4 and d.read == 0.0 for d in draws)
    assert max(d.shot for d in draws) - min(d.shot for d in draws) > 5e-5


BAD = {
    "missing key": (lambda d: d.pop("noise"), "'noise': missing"),
    "wrong shape": (lambda d: d.__setitem__("xyz_to_camera", [[1, 0, 0], [0, 1, 0]]), "'xyz_to_camera'"),
    "non-finite": (lambda d: d["noise"].__setitem__("shot", float("nan")), "'noise.shot': must be finite"),
    "gain <= 0": (lambda d: d["white_balance"].__setitem__("red_gain", [0.0, 2.0]),
                  "'white_balance.red_gain': must be > 0"),
    "lo > hi": (lambda d: d["white_balance"].__setitem__("blue_gain", [2.0, 1.0]), "lo <= hi"),
    "unknown key": (lambda d: d.__setitem__("noize", {}), "'noize': unknown"),
    "format": (lambda d: d.__setitem__("format", "something"), "'format'"),
    "newer version": (lambda d: d.__setitem__("version", 99), "newer than this blurgen reads"),
    "tone": (lambda d: d.__setitem__("tone", "gamma"), "'tone'"),
    "singular": (lambda d: d.__setitem__("xyz_to_camera", [[1, 1, 1], [1, 1, 1], [1, 1, 1]]), "singular"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_profile_is_one_line_naming_the_file_and_the_key(tmp_path, case):
    change, says = BAD[case]
    data = camera_profile.to_dict(A7R3)
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    res = run("synthesize", "--src", tmp_path, "--out", tmp_path / "out", "--camera", path)
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and res.output.startswith("error: --camera: ")
    assert str(path) in res.output and says in res.output, res.output


def test_a_missing_or_broken_file_and_an_unknown_name_are_one_line(tmp_path):
    (tmp_path / "broken.json").write_text('{"format": ')
    for value, says in ((tmp_path / "missing.json", "no such camera profile"), (tmp_path / "broken.json", "not JSON"),
                        ("nikon", "known: a7r3, a7r3-rsblur, or a profile FILE.json")):
        res = run("synthesize", "--src", tmp_path, "--out", tmp_path / "out", "--camera", value)
        assert res.exit_code == 2 and res.output.count("\n") == 1 and says in res.output, res.output
    with pytest.raises(RealismError, match="--online-camera: .*missing.json: no such"):
        try:
            Realism(camera=str(tmp_path / "missing.json"))
        except RealismError as exc:
            raise RealismError(exc.option, exc.spelled("online-")) from None


def test_a_built_in_name_wins_over_a_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a7r3").write_text("not a profile")
    assert Realism(camera="a7r3").camera == "a7r3"
    camera_profile.save(A7R3, tmp_path / "mine")  # an existing file without .json is a profile too
    assert Realism(camera="mine").camera == A7R3


# --- --camera FILE.json -------------------------------------------------------------------------------


def shard_contents(folder):
    """{shard name: ({dataset: bytes-exact array}, {attribute: value})} of a shard folder."""
    out = {}
    for path in sorted(folder.glob("shard-*.h5")):
        with h5py.File(path) as f:
            out[path.name] = ({name: f[name][()] for name in dataset_names(f)}, dict(f.attrs))
    return out


def assert_same_pixels(named, filed, profile):
    """Every dataset (pixels, kernels, recorded draws) equal; the attributes equal but for the
    camera, recorded by name for the built-in and by the profile's content for the file."""
    a, b = shard_contents(named), shard_contents(filed)
    assert a.keys() == b.keys() and a
    for shard in a:
        (data_a, attrs_a), (data_b, attrs_b) = a[shard], b[shard]
        assert data_a.keys() == data_b.keys() and "blurred" in data_a
        for name in data_a:
            assert data_a[name].dtype == data_b[name].dtype and np.array_equal(data_a[name], data_b[name]), name
        args_a, args_b = json.loads(attrs_a.pop("arguments")), json.loads(attrs_b.pop("arguments"))
        assert args_a.pop("camera") == "a7r3" and args_b.pop("camera") == profile
        assert args_a == args_b and attrs_a == attrs_b


def test_a_profile_file_synthesizes_the_bytes_of_the_named_camera_and_resumes_only_unchanged(tmp_path):
    src = corpus(tmp_path / "src")
    profile = tmp_path / "a7r3.json"
    camera_profile.save(A7R3, profile)
    common = ["synthesize", "--src", src, *SMALL, "--jpeg-quality", "70-90"]
    assert run(*common, "--out", tmp_path / "named", "--camera", "a7r3").exit_code == 0
    res = run(*common, "--out", tmp_path / "filed", "--camera", profile)
    assert res.exit_code == 0, res.output
    assert_same_pixels(tmp_path / "named", tmp_path / "filed", camera_profile.to_dict(A7R3))
    manifest = json.loads((tmp_path / "filed" / "manifest.json").read_text())
    assert manifest["arguments"]["camera"] == camera_profile.to_dict(A7R3)  # the content, not the path
    shown = run("inspect", tmp_path / "filed", "--samples", "1")
    assert shown.exit_code == 0 and "camera profile 'a7r3'" in shown.output
    moved = tmp_path / "elsewhere.json"
    profile.rename(moved)
    assert run(*common, "--out", tmp_path / "filed", "--camera", moved).exit_code == 0  # same content: resumes
    edited = camera_profile.to_dict(A7R3)
    edited["noise"]["read"] = 1e-3
    moved.write_text(json.dumps(edited))
    refused = run(*common, "--out", tmp_path / "filed", "--camera", moved)
    assert refused.exit_code == 2 and "camera" in refused.output, refused.output


def test_average_takes_a_profile_file_too(tmp_path):
    src = tmp_path / "clips"
    write_frames(src / "clip0", pan_frames(texture(32, 72, seed=0), 18, width=36, step=1))
    profile = tmp_path / "a7r3.json"
    camera_profile.save(A7R3, profile)
    args = ["average", "--src", src, "--frames", "3-7", "--crop", "24", "--windows-per-clip", "2",
            "--crops-per-window", "2", "--workers", "1", "--shard-size", "4", "--seed", "2"]
    assert run(*args, "--out", tmp_path / "named", "--camera", "a7r3").exit_code == 0
    res = run(*args, "--out", tmp_path / "filed", "--camera", profile)
    assert res.exit_code == 0, res.output
    assert_same_pixels(tmp_path / "named", tmp_path / "filed", camera_profile.to_dict(A7R3))


def test_trainer_online_camera_takes_a_profile_file(tmp_path):
    from trainer.data import DataConfig, DataError

    profile = tmp_path / "mine.json"
    camera_profile.save(cameras.get_camera("a7r3-rsblur"), profile)
    cfg = DataConfig(shards=(tmp_path,), crop=32, online=True, online_camera=str(profile))
    assert cfg.online_blur().realism.camera == cameras.get_camera("a7r3-rsblur")
    profile.write_text("{}")
    with pytest.raises(DataError, match="--online-camera: .*mine.json: key 'format'"):
        DataConfig(shards=(tmp_path,), crop=32, online=True, online_camera=str(profile))


# --- blurgen camera-profile ------------------------------------------------------------------------


def test_the_tag_numbers_are_tifffiles_names_for_them():
    assert {name: tifffile.TIFF.TAGS[code] for name, code in dng.TAGS.items()} == {name: name for name in dng.TAGS}


def test_a_dng_gives_its_matrix_gains_and_noise(tmp_path):
    photo = write_dng(tmp_path / "a.dng", matrices=((OTHER, 17), (A7R3_LIBRAW, 21)), neutral=(400, 1000, 625),
                      noise=NOISE, iso=400, baseline=-0.5, forward=True)
    out = tmp_path / "mine.json"
    res = run("camera-profile", photo, "--out", out)
    assert res.exit_code == 0, res.output
    cam = camera_profile.load(out)
    # The D65 matrix (ColorMatrix2 here), scaled as LibRaw's adobe_coeff is: the built-in A7R III's.
    assert np.array_equal(cam.xyz_to_camera, A7R3.xyz_to_camera)
    assert cam.red_gain == (2.5, 2.5) and cam.blue_gain == (1.6, 1.6)  # n_G / n_R, n_G / n_B
    s, o = np.mean(NOISE[::2]), np.mean(NOISE[1::2])
    assert cam.shot == pytest.approx(s, rel=1e-12) and cam.read == pytest.approx(math.sqrt(o), rel=1e-12)
    assert cam.name == "Testcam X1" and cam.tone is None
    source = json.loads(out.read_text())["source"]
    assert source["photos"][0]["iso"] == 400 and source["photos"][0]["baseline_exposure"] == -0.5
    assert "ColorMatrix2 (D65)" in source["colour_matrix"] and "forward_matrix" in source
    # What a sample draws: the photo's gains, noise around its calibration.
    draw = camera.draw_parameters(cam, np.random.default_rng(0))
    assert (draw.red_gain, draw.blue_gain) == (2.5, 1.6) and 0.5 * s <= draw.shot <= 1.5 * s


def test_two_matrices_without_d65_are_blended_at_6500_k_in_inverse_temperature(tmp_path):
    photo = write_dng(tmp_path / "a.dng", matrices=((OTHER, 17), (A7R3_LIBRAW, 22)), noise=NOISE)  # A, D75
    matrix, how = dng.colour_matrix(dng.read_tags(photo))
    g = (1 / 6500 - 1 / 7500) / (1 / 2850 - 1 / 7500)  # the weight of the 2850 K matrix
    want = g * np.array(OTHER).reshape(3, 3) / 1e4 + (1 - g) * np.array(A7R3_LIBRAW).reshape(3, 3) / 1e4
    want = want / (want @ (cameras.SRGB_TO_XYZ @ np.ones(3)))[:, None]
    np.testing.assert_allclose(matrix, want, rtol=1e-12)
    assert "blended" in how


def test_gain_spread_widens_one_photo_and_several_photos_give_pairs_and_a_noise_table(tmp_path):
    one = write_dng(tmp_path / "one.dng", neutral=(500, 1000, 500), noise=NOISE, iso=100)
    res = run("camera-profile", one, "--out", tmp_path / "wide.json", "--gain-spread", "0.1", "--name", "mine")
    assert res.exit_code == 0, res.output
    wide = camera_profile.load(tmp_path / "wide.json")
    assert wide.name == "mine"
    assert wide.red_gain == pytest.approx((1.8, 2.2)) and wide.blue_gain == pytest.approx((1.8, 2.2))
    two = write_dng(tmp_path / "two.dng", neutral=(400, 1000, 800), noise=[2 * v for v in NOISE], iso=800)
    three = write_dng(tmp_path / "three.dng", neutral=(250, 1000, 500), noise=[4 * v for v in NOISE], iso=800)
    res = run("camera-profile", one, two, three, "--out", tmp_path / "many.json")
    assert res.exit_code == 0, res.output
    many = camera_profile.load(tmp_path / "many.json")
    assert many.gain_pairs == ((2.0, 2.0), (2.5, 1.25), (4.0, 2.0))
    s, o = np.mean(NOISE[::2]), np.mean(NOISE[1::2])
    (iso_a, shot_a, read_a), (iso_b, shot_b, read_b) = many.noise_iso  # ISO 800: the mean of two photos
    assert (iso_a, iso_b) == (100, 800)
    assert shot_a == pytest.approx(s) and read_a == pytest.approx(math.sqrt(o))
    assert shot_b == pytest.approx(3 * s) and read_b == pytest.approx(math.sqrt(3 * o))
    refused = run("camera-profile", one, two, "--out", tmp_path / "x.json", "--gain-spread", "0.1")
    assert refused.exit_code == 2 and "--gain-spread" in refused.output


def test_a_dng_without_the_optional_tags_says_which_in_one_line(tmp_path):
    bare = write_dng(tmp_path / "bare.dng")  # no NoiseProfile
    res = run("camera-profile", bare, "--out", tmp_path / "p.json")
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "bare.dng: no NoiseProfile tag (51041): give --shot and --read" in res.output
    res = run("camera-profile", bare, "--out", tmp_path / "p.json", "--shot", "1e-4", "--read", "2e-3")
    assert res.exit_code == 0, res.output
    assert (camera_profile.load(tmp_path / "p.json").shot, camera_profile.load(tmp_path / "p.json").read) == (1e-4, 2e-3)
    for photo, says in ((write_dng(tmp_path / "n.dng", neutral=None, noise=NOISE), "no AsShotNeutral tag (50728)"),
                        (write_dng(tmp_path / "m.dng", matrices=(), noise=NOISE), "no ColorMatrix1 tag (50721)"),
                        (write_dng(tmp_path / "t.tif", dng_version=False), "not a DNG (no DNGVersion tag"),
                        (tmp_path / "missing.dng", "no such file")):
        res = run("camera-profile", photo, "--out", tmp_path / "q.json")
        assert res.exit_code == 2 and res.output.count("\n") == 1 and says in res.output, res.output
    (tmp_path / "junk.dng").write_bytes(b"not a tiff at all")
    res = run("camera-profile", tmp_path / "junk.dng", "--out", tmp_path / "q.json")
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "junk.dng: not a readable DNG" in res.output


def test_without_tifffile_the_command_says_how_to_install_it(tmp_path, monkeypatch):
    photo = write_dng(tmp_path / "a.dng", noise=NOISE)
    monkeypatch.setitem(sys.modules, "tifffile", None)  # import fails
    res = run("camera-profile", photo, "--out", tmp_path / "p.json")
    assert res.exit_code == 2 and "pip install 'blurgen[dng]'" in res.output and res.output.count("\n") == 1

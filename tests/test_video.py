"""`blurgen average` (blurgen/runs/video.py): pairs from video, on tiny clips the tests write."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from test_synthesize import datasets

from blurgen import shards
from blurgen.plumbing.stopping import Interrupted, StopFlag
from blurgen.runs import video
from cli import blurgen


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def texture(h: int, w: int, seed: int = 0, cells: int = 6) -> np.ndarray:
    """(h, w, 3) uint8 smooth random colour texture (cubic upsampling of noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // cells), max(2, w // cells), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def pan_frames(base: np.ndarray, n: int, width: int, step: int = 1) -> list[np.ndarray]:
    """Frame t = base[:, step·t : step·t + width]: the scene moves ``step`` px left a frame."""
    return [np.ascontiguousarray(base[:, step * t : step * t + width]) for t in range(n)]


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    """Lossless PNG frames named f0.png … f{n-1}.png (unpadded: natural order matters)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"f{t}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def write_video(path: Path, frames: list[np.ndarray]) -> bool:
    """An FFV1 (lossless) video through OpenCV's FFmpeg back end; False if this build cannot write one."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 30, (w, h))
    if not writer.isOpened():
        return False
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path.is_file() and path.stat().st_size > 0


def samples(folder: Path) -> list[dict]:
    out = []
    for info in shards.find_shards(folder):
        with shards.ShardReader(info.path) as r:
            out += [r.read_sample(i) for i in range(len(r))]
    return out


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


# Independent references: the sRGB curve written out, and a box filter over shifts.
def srgb_decode(v):
    v = np.asarray(v, np.float64) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(x):
    x = np.clip(x, 0, 1)
    return np.rint(255 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)).astype(np.uint8)


def box_blur_reference(base: np.ndarray, first: int, taps: int, width: int, step: float = 1.0) -> np.ndarray:
    """Mean, in linear light, of ``base`` shifted by first, first+step, … (``taps`` shifts), cut to ``width``."""
    lin = srgb_decode(base)
    acc = np.zeros((base.shape[0], width, 3))
    for j in range(taps):
        s = first + j * step
        i, f = int(np.floor(s)), s - np.floor(s)
        shifted = lin[:, i : i + width] * (1 - f) + (lin[:, i + 1 : i + 1 + width] * f if f else 0)
        acc += shifted
    return srgb_encode(acc / taps)


# --- the core ---------------------------------------------------------------------------


@pytest.mark.parametrize("response", ["srgb", "gamma:2.2", "gamma:1"])
def test_response_round_trip(response):
    table = video.linear_table(response)
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(video.encode(table[codes], response), codes)
    assert table[0] == 0 and table[255] == pytest.approx(1) and np.all(np.diff(table) > 0)
    if response == "srgb":  # against the IEC 61966-2-1 curve written out here
        np.testing.assert_allclose(table, srgb_decode(codes), rtol=1e-6, atol=1e-9)
    else:
        g = float(response.split(":")[1])
        np.testing.assert_allclose(table, (codes / 255.0) ** g, rtol=1e-6, atol=1e-9)


def test_parse_response_and_odd_counts():
    assert video.parse_response(" sRGB ") == "srgb" and video.parse_response("gamma:2.20") == "gamma:2.2"
    for bad in ["linear", "gamma:", "gamma:-1", "gamma:nan", "gamma:0"]:
        with pytest.raises(video.SynthError):
            video.parse_response(bad)
    assert list(video.odd_counts((7, 13))) == [7, 9, 11, 13]
    assert list(video.odd_counts((8, 8))) == []
    assert list(video.odd_counts((6, 9))) == [7, 9]


def test_pan_one_pixel_a_frame_is_the_box_blur_of_that_length():
    base = texture(40, 80, seed=3, cells=3)
    frames = pan_frames(base, 9, width=48)
    blurred = video.average_frames(frames, "srgb")
    reference = box_blur_reference(base, 0, 9, 48)
    diff = np.abs(blurred.astype(int) - reference)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # float32 sums against float64: a rare tie
    # ... and not the average of the codes (the blur is in linear light).
    codes = np.rint(np.mean(np.stack(frames).astype(np.float64), axis=0)).astype(int)
    assert np.abs(codes - reference).max() >= 3


def test_static_clip_with_interpolation_stays_sharp():
    frame = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    for response in ("srgb", "gamma:2.2"):
        assert np.array_equal(video.average_frames([frame] * 5, response, interpolate=2), frame)


def test_interpolation_removes_the_ghosts_of_a_fast_pan():
    # 4 px a frame: five frames average into five copies 4 px apart (ghosts);
    # a real exposure smears the scene along the whole 16 px path.
    base = texture(64, 140, seed=5, cells=8)
    frames = pan_frames(base, 5, width=96, step=4)
    truth = box_blur_reference(base, 0, 17, 96).astype(float)  # every 1 px shift along the path
    inner = (slice(8, -8), slice(8, -24))  # away from the borders, where the flow sees content leave
    err = {k: np.abs(video.average_frames(frames, "srgb", interpolate=k).astype(float) - truth)[inner].mean()
           for k in (0, 3)}
    assert err[0] > 2 and err[3] < 0.2 * err[0], err  # K = 3 puts a frame at every 1 px of the path


def test_window_draws_are_deterministic_inside_the_clip():
    cfg = video.AverageConfig(src=Path("."), frames=(3, 7), windows_per_clip=4, seed=2)
    draws = [(n, first) for _, n, first in video.draw_windows(5, 100, cfg)]
    assert draws == [(n, first) for _, n, first in video.draw_windows(5, 100, cfg)]
    assert draws != [(n, first) for _, n, first in video.draw_windows(6, 100, cfg)]
    for w, (n, first) in enumerate(draws):
        assert n in (3, 5, 7) and 25 * w <= first and first + n <= 25 * (w + 1)  # inside its quarter
    # A clip shorter than the windows: they overlap but stay inside it.
    for _, n, first in video.draw_windows(0, 8, cfg):
        assert 0 <= first and first + n <= 8


def test_natural_order_of_frames(tmp_path):
    for name in ["f10.png", "f2.png", "f1.png", "x.txt"]:
        (tmp_path / "clip" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "clip" / name).write_bytes(b"")
    (tmp_path / "a.MP4").write_bytes(b"")
    (tmp_path / ".hidden.mp4").write_bytes(b"")
    assert video.find_clips(tmp_path) == [video.Clip("a.MP4"), video.Clip("clip", ("f1.png", "f2.png", "f10.png"))]


# --- the command ----------------------------------------------------------------------------


def test_static_clip_gives_blurred_equal_to_sharp(tmp_path):
    frame = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    src = tmp_path / "src"
    write_frames(src / "still", [frame] * 20)
    for response in ("srgb", "gamma:2.2"):
        out = tmp_path / response.replace(":", "")
        res = run("average", "--src", src, "--out", out, "--frames", "3-9", "--response", response, "--crop", 24,
                  "--windows-per-clip", 3, "--crops-per-window", 2, "--workers", 1)
        assert res.exit_code == 0, res.output
        got = samples(out)
        assert len(got) == 6
        for s in got:
            assert np.array_equal(s["blurred"], s["sharp"])
            assert s["response"] == response and s["blur_model"] == "video"


def test_pan_clip_pairs_are_box_blurs_with_their_parameters_recorded(tmp_path):
    base = texture(48, 120, seed=7, cells=3)
    src = tmp_path / "src"
    write_frames(src / "pan", pan_frames(base, 40, width=64))  # f0 … f39: natural order matters
    out = tmp_path / "out"
    res = run("average", "--src", src, "--out", out, "--frames", "5-11", "--crop", 32, "--windows-per-clip", 4,
              "--workers", 1, "--seed", 3)
    assert res.exit_code == 0, res.output
    got = samples(out)
    assert len(got) == 4 and {int(s["frames"]) for s in got} <= {5, 7, 9, 11}
    for s in got:
        n, first = int(s["frames"]), int(s["first_frame"])
        y0, x0, y1, x1 = (int(v) for v in s["crop_box"])
        assert s["source"] == "pan" and int(s["sharp_frame"]) == first + n // 2 and int(s["interpolate"]) == 0
        assert np.array_equal(s["sharp"], base[y0:y1, first + n // 2 + x0 : first + n // 2 + x1])
        reference = box_blur_reference(base[y0:y1], first + x0, n, x1 - x0)
        diff = np.abs(s["blurred"].astype(int) - reference)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99
        assert s["kernel"].shape == (1, 1) and s["kernel"][0, 0] == 1  # the placeholder
    assert shards.verify_folder(out) == (1, [])


def test_video_file_gives_the_same_pairs_as_its_frames(tmp_path):
    frames = pan_frames(texture(40, 100, seed=2), 24, width=48, step=2)
    (tmp_path / "v").mkdir()
    if not write_video(tmp_path / "v" / "clip.avi", frames):
        pytest.skip("this OpenCV build cannot write FFV1 video")
    write_frames(tmp_path / "f" / "clip", frames)
    args = ["--frames", "3-7", "--crop", 24, "--windows-per-clip", 3, "--workers", 1, "--interpolate", 1]
    for name in ("v", "f"):
        res = run("average", "--src", tmp_path / name, "--out", tmp_path / f"out-{name}", *args)
        assert res.exit_code == 0, res.output
    from_video, from_frames = samples(tmp_path / "out-v"), samples(tmp_path / "out-f")
    assert len(from_video) == 3
    for a, b in zip(from_video, from_frames):
        assert np.array_equal(a["blurred"], b["blurred"]) and np.array_equal(a["sharp"], b["sharp"])
        assert a["source"] == "clip.avi" and int(a["first_frame"]) == int(b["first_frame"])


def _clips(src: Path, n: int, length: int = 16) -> Path:
    for c in range(n):
        write_frames(src / f"clip{c:02d}", pan_frames(texture(24, 60, seed=c), length, width=28, step=1))
    return src


def test_same_bytes_whatever_the_workers_and_another_seed_differs(tmp_path):
    src = _clips(tmp_path / "src", 4)
    args = ["--frames", "3-5", "--crop", 16, "--windows-per-clip", 2, "--shard-size", 2, "--interpolate", 1]
    for name, workers, seed in (("a", 1, 0), ("b", 2, 0), ("c", 1, 1)):
        res = run("average", "--src", src, "--out", tmp_path / name, *args, "--workers", workers, "--seed", seed)
        assert res.exit_code == 0, res.output
    a, b, c = (datasets(tmp_path / name) for name in "abc")
    assert len(a) > 0
    assert_same(a, b)
    assert not np.array_equal(a[("shard-00000.h5", "blurred")], c[("shard-00000.h5", "blurred")])


def test_interrupted_run_resumes_to_the_same_bytes(tmp_path):
    src = _clips(tmp_path / "src", 6)
    cfg = video.AverageConfig(src=src, frames=(3, 5), crop=16, windows_per_clip=2, shard_size=2)
    stop, seen = StopFlag(), []

    def progress(n, dropped=0):
        seen.append(n)
        if len(seen) == 3:  # mid-way through the third shard
            stop.set()

    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        video.average(cfg, out, progress=progress, stop=stop)
    listed = json.loads((out / "manifest.json").read_text())["shards"]
    assert 0 < len(listed) < 6 and not list(out.glob(".*tmp*"))
    (out / ".shard-00005.h5.tmp-99999").write_bytes(b"half a shard")  # as a kill -9 leaves it
    summary = video.average(cfg, out)
    assert summary.shards_done_before == len(listed) and summary.shards_built == 6 - len(listed)
    assert not list(out.glob(".*tmp*"))
    video.average(cfg, tmp_path / "whole")
    assert_same(datasets(out), datasets(tmp_path / "whole"))
    # The trainer reads the folder.
    from trainer.data import DataConfig, build_dataset

    item = build_dataset(DataConfig(shards=(out,), mix=(1, 0), crop=16, workers=0))[0]
    assert item[0].shape == (16, 16, 3) and item[1].shape == (16, 16, 3)


def test_skipped_clips_are_counted_and_reported(tmp_path):
    src = _clips(tmp_path / "src", 1)
    write_frames(src / "short", pan_frames(texture(24, 60), 4, width=28))
    (src / "broken.mp4").write_bytes(b"this is no video")
    (src / "empty.mkv").write_bytes(b"")
    res = run("average", "--src", src, "--out", tmp_path / "out", "--frames", "5-7", "--crop", 16, "--workers", 1,
              "--windows-per-clip", 2)
    assert res.exit_code == 0, res.output
    assert "skipped 3 clips of 4 (empty 1, too-short 1, unreadable 1)" in res.output
    rows = (tmp_path / "out" / "skipped.tsv").read_text().splitlines()
    assert rows[0] == "path\treason\tdetail" and {r.split("\t")[0] for r in rows[1:]} == {"short", "broken.mp4", "empty.mkv"}
    assert len(samples(tmp_path / "out")) == 2
    res = run("verify", tmp_path / "out")
    assert res.exit_code == 0 and "OK" in res.output
    res = run("inspect", tmp_path / "out", "--samples", 1)
    assert res.exit_code == 0, res.output
    assert "video frames averaged in linear light" in res.output and "sharp = frame" in res.output


def test_average_that_makes_nothing_fails_and_writes_no_shard(tmp_path):
    """Issue 22.5: `average` over clips smaller than the crop exited 0 and wrote an empty
    shard-00000.h5 that verify called OK.  Now: no shard file, and a non-zero exit whose last
    line says why."""
    src = _clips(tmp_path / "src", 2)  # 24 x 28 frames
    out = tmp_path / "out"
    res = CliRunner().invoke(blurgen, ["average", "--src", str(src), "--out", str(out), "--frames", "3-5",
                                       "--crop", "32", "--workers", "1"])
    assert res.exit_code == 2, res.output
    assert "skipped 2 clips of 2 (too-small 2)" in res.output
    assert res.output.strip().splitlines()[-1] == f"error: {out}: nothing made: every clip was skipped (see {out}/skipped.tsv)"
    assert not list(out.glob("shard-*"))


@pytest.mark.parametrize("setup, args, message", [
    (None, [], "no such folder"),
    ("empty", [], "no videos"),
    ("clips", ["--frames", "8-8"], "no odd count"),
    ("clips", ["--frames", "seven"], "--frames must look like LO-HI"),
    ("clips", ["--response", "log"], "--response must be srgb or gamma:G"),
    ("clips", ["--interpolate", "-1"], "--interpolate must be >= 0"),
])
def test_average_errors_are_one_line(tmp_path, setup, args, message):
    src = tmp_path / "src"
    if setup == "empty":
        src.mkdir()
        (src / "notes.txt").write_text("no clips here")
    elif setup == "clips":
        _clips(src, 1)
    res = run("average", "--src", src, "--out", tmp_path / "out", "--workers", 1, *args)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.output


def test_other_arguments_and_synthesize_output_are_refused(tmp_path):
    src = _clips(tmp_path / "src", 1)
    args = ["--src", src, "--out", tmp_path / "out", "--crop", 16, "--frames", "3-5", "--workers", 1]
    assert run("average", *args, "--windows-per-clip", 1).exit_code == 0
    res = run("average", *args, "--windows-per-clip", 2)
    assert res.exit_code == 2 and "differs in: windows_per_clip" in res.output
    assert run("average", *args, "--windows-per-clip", 2, "--overwrite").exit_code == 0


def test_camera_develops_the_long_exposure(tmp_path):
    """Issue 10: `average --camera NAME`: the frames averaged in the camera's linear light (its
    saturation boost included), then its raw noise and development; both images in its tone
    curve.  A static clip's long exposure is its frame, so the pair is the camera pipeline of
    that frame, unblurred; the windows and crops are those of a run without --camera."""
    from blurgen.physics import camera, cameras
    from blurgen.physics.realism import Realism

    frame = texture(40, 48, seed=3)
    src = tmp_path / "src"
    write_frames(src / "still", [frame] * 20)
    args = ["average", "--src", src, "--frames", "3-9", "--crop", 24, "--windows-per-clip", 3,
            "--crops-per-window", 2, "--workers", 1]
    assert run(*args, "--camera", "a7r3", "--out", tmp_path / "cam").exit_code == 0
    assert run(*args, "--out", tmp_path / "plain").exit_code == 0
    cam_samples, plain = samples(tmp_path / "cam"), samples(tmp_path / "plain")
    cam = cameras.get_camera("a7r3")
    last = None
    for s, p in zip(cam_samples, plain):
        assert np.array_equal(s["crop_box"], p["crop_box"]) and s["first_frame"] == p["first_frame"]
        if s["window"] != last:   # one camera setting per window, its noise drawn crop after crop
            rng = Realism.camera_rng([0, 0, int(s["window"])])
            draw, last = camera.draw_parameters(cam, rng), s["window"]
        y0, x0, y1, x1 = s["crop_box"]
        crop = frame[y0:y1, x0:x1]
        expected = camera.develop(camera.working(crop, draw), cam, draw, rng).astype(int)
        assert np.abs(s["blurred"].astype(int) - expected).max() <= 1   # float32 sums of N equal frames
        np.testing.assert_array_equal(s["sharp"], camera.render_sharp(crop, cam))
        assert s["camera_bayer"] == draw.bayer
    res = CliRunner().invoke(blurgen, [str(a) for a in [*args, "--camera", "a7r3", "--response", "gamma:2.2",
                                                         "--out", tmp_path / "bad"]])
    assert res.exit_code == 2 and "--camera reads the frames as sRGB" in res.output


def test_a_run_killed_before_its_first_shard_takes_the_clips_added_since(tmp_path):
    """Issue 22.22: `average` stopped before its first shard, a clip added, the re-run completed
    -- and every later run was refused ("the clips under --src changed"): the manifest kept the
    clips of the first start.  Now a run that has built nothing takes the clips as they are."""
    src = _clips(tmp_path / "src", 2)
    cfg = video.AverageConfig(src=src, frames=(3, 5), crop=16, windows_per_clip=1, shard_size=1)
    stop = StopFlag()
    stop.set()
    with pytest.raises(Interrupted):
        video.average(cfg, tmp_path / "out", stop=stop)
    write_frames(src / "clip99", pan_frames(texture(24, 60, seed=9), 16, width=28))
    assert video.average(cfg, tmp_path / "out").shards_built == 3
    again = video.average(cfg, tmp_path / "out")
    assert again.shards_built == 0 and again.shards_done_before == 3


def test_a_huge_frames_range_is_no_memory_error(tmp_path):
    """Issue 22.22: `--frames 1-2000000001` listed a billion odd counts and ended in a
    MemoryError traceback.  The counts are now drawn without being listed (the same draws):
    every clip is too short, and the run says so in one line."""
    src = _clips(tmp_path / "src", 1)
    res = CliRunner().invoke(blurgen, ["average", "--src", str(src), "--out", str(tmp_path / "out"),
                                       "--frames", "1-2000000001", "--crop", "16", "--workers", "1"])
    assert res.exit_code == 2 and "skipped 1 clip of 1 (too-short 1)" in res.output, res.output
    assert "Traceback" not in res.output and "nothing made" in res.output.splitlines()[-1]
    assert video.odd_span((1, 2000000001)) == (1, 1000000001)
    assert list(video.odd_counts((6, 9))) == [7, 9]

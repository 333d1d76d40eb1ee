"""What `trainer deblur` writes (issue 22, items 10, 13 and 23): an image in its own
channels (grey stays grey, alpha is kept), videos whole or not at all (odd sides, damaged
inputs, a full disk, SIGTERM), and a summary that counts images and videos."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cli
from trainer import checkpoint
from trainer.config import TrainConfig, to_primitive
from trainer.models import Generator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    """A small generator that changes its input a little (not the identity)."""
    torch.manual_seed(0)
    generator = Generator(8, 1, dropout=0.0)
    with torch.no_grad():
        for p in generator.parameters():
            p.mul_(0.1)
    path = tmp_path_factory.mktemp("deblur-outputs") / "g.pt"
    checkpoint.save(path, checkpoint.generator_state(step=1, generator=generator,
                                                     config=to_primitive(TrainConfig(ngf=8, n_blocks=1, dropout=0.0)),
                                                     scores={"psnr": 20.0}))
    return path


def deblur(*args):
    return CliRunner().invoke(cli.trainer, ["deblur", *map(str, args), "--device", "cpu"])


def write_video(path, frames, fourcc="mp4v"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


def frames(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_grey_stays_grey_and_alpha_is_kept(tmp_path, generator_file):
    """Issue 22.10: RGBA lost its alpha and grey came back RGB, with no notice."""
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    rgba = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    grey_alpha = np.dstack([grey, rng.integers(0, 256, (20, 24), dtype=np.uint8)])
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "la.png")
    result = deblur(tmp_path / "grey.png", tmp_path / "rgba.png", tmp_path / "la.png",
                    "--checkpoint", generator_file, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out_grey = np.asarray(Image.open(tmp_path / "out" / "grey.png"))
    out_rgba = np.asarray(Image.open(tmp_path / "out" / "rgba.png"))
    out_la = np.asarray(Image.open(tmp_path / "out" / "la.png"))
    assert out_grey.shape == (20, 24) and not np.array_equal(out_grey, grey)   # restored, in grey
    assert np.abs(out_grey.astype(int) - grey).mean() < 20
    assert out_rgba.shape == (20, 24, 4) and np.array_equal(out_rgba[..., 3], rgba[..., 3])
    assert out_la.shape == (20, 24, 4) and np.array_equal(out_la[..., 3], grey_alpha[..., 1])
    assert np.array_equal(out_la[..., 0], out_la[..., 2])   # a grey image with alpha: equal colour channels


def test_a_video_with_odd_sides_keeps_every_pixel_and_says_so(tmp_path):
    """Issue 22.23: a 65x49 video came out 64x48: OpenCV's writer cuts odd sides.
    (OpenCV cannot write an odd-sized video either, so the source here is a frame sequence.)"""
    from trainer.evaluate import deblur_video

    for i, frame in enumerate(frames(3, 49, 65)):
        Image.fromarray(frame).save(tmp_path / f"f{i:03d}.png")
    target = tmp_path / "odd.mp4"
    count, note = deblur_video(tmp_path / "f%03d.png", target, lambda frame: frame)
    capture = cv2.VideoCapture(str(target))
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (66, 50)
    ok, first = capture.read()
    capture.release()
    assert count == 3 and ok
    assert note == f"{target}: 65x49 frames written as 66x50 (MPEG-4 needs even sides; the last row or column repeated)"


def test_the_summary_counts_videos_and_frames(tmp_path, generator_file):
    """Issue 22.13: a video deblur said "wrote 1 image(s) ... per image"."""
    source = tmp_path / "clip.mp4"
    write_video(source, frames(4, 48, 64))
    result = deblur(source, "--checkpoint", generator_file, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "wrote 1 video to" in result.stdout and "s per frame on cpu (mean over 3 frames" in result.stdout


def test_a_damaged_video_is_listed_not_written_short(tmp_path, generator_file):
    """Issue 22.23: a damaged input was silently cut short (15 of 40 frames, exit 0)."""
    source = tmp_path / "damaged.avi"
    write_video(source, frames(40, 48, 64), fourcc="MJPG")
    data = source.read_bytes()
    source.write_bytes(data[: int(len(data) * 0.4)])   # the header still says 40 frames
    result = deblur(source, "--checkpoint", generator_file, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "damaged.avi: only 15 of its 40 frames could be decoded (a damaged file); nothing written" in result.stderr
    assert not list((tmp_path / "out").iterdir())


def test_a_video_on_a_full_disk_is_one_line_and_no_broken_file(tmp_path, generator_file, small_disk):
    """Issue 22.23: on a full disk video deblur exited 0 with a broken 100 KB mp4, which
    --skip-existing then kept."""
    source = tmp_path / "clip.mp4"
    write_video(source, frames(30, 96, 128))
    disk = small_disk(1)
    (disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 48 * 1024))
    result = deblur(source, "--checkpoint", generator_file, "--out", disk / "out")
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {disk}/out/clip.mp4: No space left on device\n"
    assert not [p for p in (disk / "out").iterdir()]


def test_sigterm_during_a_video_leaves_no_temporary(tmp_path, generator_file):
    """Issue 22.23: SIGTERM left `.NAME.tmp-PID.mp4` behind for good."""
    source = tmp_path / "long.mp4"
    write_video(source, frames(400, 192, 256))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "import cli; cli.trainer()", "deblur", str(source),
                             "--checkpoint", str(generator_file), "--out", str(out), "--device", "cpu"],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(".long.tmp-*.mp4")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted (SIGTERM)" in stderr and "--skip-existing" in stderr
    assert "Traceback" not in stderr
    assert not list(out.iterdir())

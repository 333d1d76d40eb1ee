"""Restoring images of any size (padding, tiling), scoring, and the `trainer
eval` / `trainer deblur` commands end to end on a tiny GoPro-layout folder."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import cli
from trainer import checkpoint
from trainer.config import TrainConfig, to_primitive
from trainer.evaluate import evaluate, pad_for_generator, restore
from trainer.metrics import METRICS, psnr, ssim
from trainer.models import Generator


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def identity_generator(ngf=8, n_blocks=1):
    """A real generator whose last conv is zero: output = input (the global skip)."""
    torch.manual_seed(0)
    g = Generator(ngf, n_blocks).eval()
    last = [m for m in g.modules() if isinstance(m, nn.Conv2d)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return g


@pytest.mark.parametrize("size,padded", [((37, 53), (40, 56)), ((40, 44), (40, 44)), ((5, 3), (8, 8)),
                                         ((1, 9), (8, 12))])
def test_padding_to_multiples_of_4(size, padded):
    im = image(*size)
    out = pad_for_generator(im)
    assert out.shape == (*padded, 3)
    assert np.array_equal(out[:size[0], :size[1]], im)
    if size == (37, 53):   # reflection, not zeros: row 37 mirrors row 35
        assert np.array_equal(out[37, :53], im[35]) and np.array_equal(out[:37, 53], im[:, 51])


@pytest.mark.parametrize("size", [(37, 53), (40, 44), (5, 3), (1, 1)])
def test_restore_any_size(size):
    g = identity_generator()
    im = image(*size, seed=1)
    out = restore(g, im)
    assert out.shape == im.shape and out.dtype == np.uint8
    assert np.array_equal(out, im)    # identity network: padding and cropping lose nothing
    # A trained-looking generator changes the image but keeps the size.
    torch.manual_seed(1)
    assert restore(Generator(8, 1).eval(), im).shape == im.shape


class Pointwise(nn.Module):
    """A per-pixel operator: tiling must not change its output at all."""

    def forward(self, x):
        return torch.tanh(1.5 * x.flip(1))


def test_tiles_blend_to_the_whole_image_result():
    im = image(70, 101, seed=2)
    whole = restore(Pointwise(), im, tile=2048)
    tiled = restore(Pointwise(), im, tile=32, overlap=8)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    # The real generator (InstanceNorm per tile) stays close to its whole-image result.
    torch.manual_seed(3)
    g = Generator(8, 1).eval()
    assert psnr(restore(g, im, tile=48, overlap=16), restore(g, im)) > 25
    with pytest.raises(ValueError, match="multiple of 4"):
        restore(g, im, tile=30)


def test_evaluate_scores_against_the_metrics():
    pairs = [(f"p{i}", image(24, 28, seed=i), image(24, 28, seed=10 + i)) for i in range(3)]
    scores, example = evaluate(identity_generator(), pairs)
    assert scores["count"] == 3
    assert scores["psnr"] == pytest.approx(np.mean([psnr(b, s) for _, b, s in pairs]))
    assert scores["ssim"] == pytest.approx(np.mean([ssim(b, s) for _, b, s in pairs]))
    assert scores["input_psnr"] == pytest.approx(scores["psnr"])   # identity restores nothing
    assert all(np.array_equal(a, b) for a, b in zip(example, (pairs[0][1], pairs[0][1], pairs[0][2])))


# --- the commands -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gopro(make_gopro):
    return make_gopro("eval", seed=1, size=(36, 52), train_sequences=1, test_sequences=1, frames=3)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    cfg = TrainConfig(ngf=8, n_blocks=1, ndf=8)
    torch.manual_seed(4)
    path = tmp_path_factory.mktemp("ck") / "best.pt"
    checkpoint.save(path, checkpoint.generator_state(step=7, generator=Generator(8, 1), config=to_primitive(cfg),
                                                     scores={"psnr": 20.0}))
    return path


def test_eval_json(gopro, generator_file, tmp_path):
    result = CliRunner().invoke(cli.trainer, ["eval", "--checkpoint", str(generator_file), "--gopro", str(gopro),
                                              "--device", "cpu", "--json", "--csv", str(tmp_path / "scores.csv"),
                                              "--png", str(tmp_path / "report.png")])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    bands = scores.pop("bands")
    described = scores.pop("metrics")
    assert set(described) == set(METRICS)
    assert scores.pop("ssim_variant") == "ssim_skimage" and scores.pop("step") == 7
    assert "GOPRO_Large/test" in scores.pop("pairs")
    assert scores.pop("device") == "cpu" and scores.pop("seconds_per_image") > 0
    # No run settings in this checkpoint: eval's defaults, and it says so.
    assert scores.pop("settings")["gopro_scale"] == {"value": 1.0, "from": "default"}
    assert set(scores) == {"psnr", "ssim", "input_psnr", "input_ssim", "count", "sharp_psnr", "sharp_psnr_min",
                           *(m for m in METRICS), *("input_" + m for m in METRICS)}
    assert scores["sharp_psnr_min"] <= scores["sharp_psnr"]   # the untrained generator changes sharp input
    assert scores["count"] == 3 and all(np.isfinite(v) for v in scores.values())
    assert scores["ssim"] == scores["ssim_skimage"]
    assert sum(b["count"] for b in bands) == 3
    # The bands' pair-weighted means are the overall means.
    assert sum(b["count"] * b["gain"] for b in bands) / 3 == pytest.approx(scores["psnr"] - scores["input_psnr"])
    # Independent check: restore and score the same pairs here.
    generator, _ = checkpoint.load_generator(generator_file)
    blurred = sorted((gopro / "test").glob("*/blur/*.png"))
    sharp = [p.parent.parent / "sharp" / p.name for p in blurred]
    read = lambda p: np.asarray(Image.open(p).convert("RGB"))  # noqa: E731
    restored = [restore(generator, read(b)) for b in blurred]
    for name, metric in METRICS.items():
        assert scores[name] == pytest.approx(np.mean([metric(r, read(s)) for r, s in zip(restored, sharp)]))
        assert scores["input_" + name] == pytest.approx(
            np.mean([metric(read(b), read(s)) for b, s in zip(blurred, sharp)]))
    with open(tmp_path / "scores.csv") as handle:
        table = list(csv.DictReader(handle))
    assert np.asarray(Image.open(tmp_path / "report.png")).shape[1] == 3 * 192 + 2 * 4
    assert len(table) == 3 and float(table[0]["cw_ssim"]) == pytest.approx(
        METRICS["cw_ssim"](restored[0], read(sharp[0])), abs=1e-6)

    text = CliRunner().invoke(cli.trainer, ["eval", "--checkpoint", str(generator_file), "--gopro", str(gopro),
                                            "--device", "cpu", "--limit", "2", "--metrics", "psnr_y"])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["psnr", "psnr_y", "ssim_skimage"]
    assert "2 pairs" in text.stdout and "cw_ssim" not in text.stdout
    sharp_line = next(line for line in lines if line.startswith("sharp inputs"))
    mean, worst = (float(w.split()[0]) for w in sharp_line.split("mean ")[1].split(", worst "))
    each = [METRICS["psnr"](restore(generator, read(s)), read(s)) for s in sharp]   # an untrained model: ~16 dB
    assert worst <= mean and min(each) - 0.01 <= worst <= max(each) + 0.01 and mean < 30
    bad = CliRunner().invoke(cli.trainer, ["eval", "--checkpoint", str(generator_file), "--gopro", str(gopro),
                                           "--metrics", "ssim3d"])
    assert bad.exit_code != 0 and "unknown metric 'ssim3d'" in bad.output


def test_deblur_writes_pngs_of_the_input_sizes(tmp_path, generator_file):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sizes = {"odd.png": (37, 53), "small.jpg": (6, 9), "wide.png": (20, 150)}
    for name, size in sizes.items():
        Image.fromarray(image(*size)).save(inputs / name)
    Image.fromarray(image(12, 12)[..., 0]).save(tmp_path / "grey.png")
    out = tmp_path / "out"
    args = ["deblur", str(inputs), str(tmp_path / "grey.png"), "--checkpoint", str(generator_file),
            "--out", str(out), "--device", "cpu", "--tile", "64", "--overlap", "16"]
    result = CliRunner().invoke(cli.trainer, args)
    assert result.exit_code == 0, result.output
    assert "wrote 4 images to" in result.stdout and "s per image on cpu (mean over 3 images" in result.stdout
    for name, (h, w) in sizes.items():
        restored = np.asarray(Image.open(out / (Path(name).stem + ".png")))
        assert restored.shape == (h, w, 3)
    assert np.asarray(Image.open(out / "grey.png")).shape == (12, 12)   # grey in, grey out
    # Outputs are not overwritten without --overwrite, and the message says so in one line.
    again = CliRunner().invoke(cli.trainer, args)
    assert again.exit_code == 2 and again.stderr.count("\n") == 1 and "--overwrite" in again.stderr
    assert CliRunner().invoke(cli.trainer, args + ["--overwrite"]).exit_code == 0


@pytest.mark.parametrize("problem,message", [("missing", "no such checkpoint"),
                                             ("garbage", "not a PyTorch checkpoint"),
                                             ("truncated", "truncated or damaged"),
                                             ("no-data", "")])
def test_command_errors_are_one_line(tmp_path, gopro, generator_file, problem, message):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 64)
    truncated = tmp_path / "truncated.pt"  # as an interrupted copy leaves it
    truncated.write_bytes(Path(generator_file).read_bytes()[:4096])
    ck = {"missing": tmp_path / "nope.pt", "garbage": garbage, "truncated": truncated,
          "no-data": generator_file}[problem]
    data = [] if problem == "no-data" else ["--gopro", str(gopro)]
    result = CliRunner().invoke(cli.trainer, ["eval", "--checkpoint", str(ck), *data, "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_scores_by_band_groups_pairs_by_their_input_psnr():
    from trainer.evaluate import scores_by_band

    rows = [{"name": str(i), "psnr": p + g, "ssim": 0.5, "input_psnr": p, "input_ssim": 0.4}
            for i, (p, g) in enumerate([(22.0, 1.0), (24.9, 3.0), (25.0, 0.5), (41.0, -2.0), (36.0, 0.0)])]
    bands = scores_by_band(rows)
    assert [(b["band"], b["count"]) for b in bands] == [("< 25 dB", 2), ("25-30 dB", 1), (">= 35 dB", 2)]
    assert [b["gain"] for b in bands] == pytest.approx([2.0, 0.5, -1.0])
    assert bands[0]["input_psnr"] == pytest.approx(23.45)


def test_deblur_restores_a_video_frame_by_frame(tmp_path):
    import cv2

    frames = [image(48, 64, seed=i) for i in range(5)]
    source = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (64, 48))
    for frame in frames:
        writer.write(frame[:, :, ::-1].copy())
    writer.release()
    torch.manual_seed(0)
    path = tmp_path / "identity.pt"
    checkpoint.save(path, checkpoint.generator_state(step=1, generator=Generator(8, 1, init="identity"),
                                                     config=to_primitive(TrainConfig(ngf=8, n_blocks=1)),
                                                     scores={"psnr": 20.0}))
    result = CliRunner().invoke(cli.trainer, ["deblur", str(source), "--checkpoint", str(path),
                                              "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    restored = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        restored.append(bgr[:, :, ::-1])
    capture.release()
    # The identity generator returns its input: what comes back is the input
    # clip through the codec twice, frame for frame.
    assert len(restored) == 5 and restored[0].shape == (48, 64, 3)
    original = cv2.VideoCapture(str(source))
    for frame in restored:
        ok, bgr = original.read()
        assert ok and psnr(frame.copy(), bgr[:, :, ::-1].copy()) > 25
    assert not list((tmp_path / "out").glob(".*"))   # no temporary left


def test_eval_json_to_a_full_disk_is_one_line(gopro, generator_file):
    """Issue 11.7: stdout redirected to a full disk failed only in Python's final
    flush ("Exception ignored ..."); now one line and a non-zero exit."""
    import subprocess
    import sys

    with open("/dev/full", "w") as full:   # every write: ENOSPC
        done = subprocess.run([sys.executable, "-c", "import cli; cli.trainer()", "eval", "--checkpoint",
                               str(generator_file), "--gopro", str(gopro), "--device", "cpu", "--json",
                               "--metrics", "psnr"], stdout=full, stderr=subprocess.PIPE, text=True,
                              cwd=Path(cli.__file__).parent, timeout=120)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == "error: standard output: No space left on device"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


class _Offset(nn.Module):
    """Adds ``grey`` grey levels (of 255) to every pixel: a model that changes sharp input."""

    def __init__(self, grey: float):
        super().__init__()
        self.grey = grey

    def forward(self, x):
        return torch.clamp(x + self.grey / 127.5, -1, 1)


def test_sharp_input_score_is_the_generator_on_the_sharp_image():
    """Do no harm: the sharp image itself through the generator, PSNR vs itself."""
    from trainer.evaluate import mean_scores, score_pairs, sharp_input_psnr

    sharp = np.full((16, 20, 3), 100, np.uint8)
    assert sharp_input_psnr(identity_generator(), sharp) == float("inf")     # returned unchanged
    assert sharp_input_psnr(_Offset(2.0), sharp) == pytest.approx(20 * np.log10(255 / 2.0))   # 42.11 dB
    pairs = [(f"p{i}", image(16, 20, seed=i), np.full((16, 20, 3), 60 + 50 * i, np.uint8)) for i in range(3)]
    pairs[2] = ("p2", pairs[2][1], np.full((16, 20, 3), 254, np.uint8))  # clipping: 1 grey level off
    rows, _ = score_pairs(_Offset(2.0), pairs, sharp_input=True)
    assert [r["sharp_psnr"] for r in rows] == pytest.approx([42.11, 42.11, 48.13], abs=0.01)
    scores = mean_scores(rows)
    assert scores["sharp_psnr"] == pytest.approx((2 * 42.1102 + 48.1308) / 3, abs=1e-3)
    assert scores["sharp_psnr_min"] == pytest.approx(42.11, abs=0.01)
    assert "sharp_psnr" not in score_pairs(_Offset(2.0), pairs)[0][0]      # off unless asked
    scores, _ = evaluate(_Offset(2.0), pairs)                              # validation's scores have it
    assert scores["sharp_psnr_min"] == pytest.approx(42.11, abs=0.01)

"""Benchmark sets as their papers read them, and RealBlur's aligned scoring."""
import json
import math

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cli
from trainer import checkpoint
from trainer.benchmarks import BenchmarkError, folder_pairs, open_eval_set, realblur_benchmark, realblur_scores
from trainer.config import TrainConfig, to_primitive
from trainer.metrics import psnr
from trainer.models import Generator


def texture(h=96, w=128, seed=0):
    """A smooth, structured RGB image (ECC needs gradients to lock on)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth * 255, 0, 255).astype(np.uint8)


def shifted(image, dx, dy):
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def test_realblur_alignment_undoes_a_shift_and_a_gain():
    sharp = texture()
    restored = np.clip(shifted(sharp, 1.5, -1.0).astype(np.float32) * 0.85, 0, 255).astype(np.uint8)
    scores = realblur_scores(restored, sharp)
    assert scores["ecc_converged"]
    # Unaligned, the shift and the 15 % darkening dominate; aligned and
    # rescaled, what is left is interpolation and rounding.
    assert psnr(restored, sharp) < 22
    assert scores["psnr_realblur"] > psnr(restored, sharp) + 10
    assert scores["ssim_realblur"] > 0.97


def test_realblur_psnr_is_the_masked_mse_formula_when_nothing_moves():
    sharp = texture(seed=1)
    rng = np.random.default_rng(2)
    restored = np.clip(sharp.astype(int) + rng.integers(-6, 7, sharp.shape), 0, 255).astype(np.uint8)
    scores = realblur_scores(restored, sharp)
    # Zero-mean noise: the intensity scale is ~1 and the warp ~identity, so
    # the protocol's PSNR is the plain one (within the rescaling's effect).
    assert scores["psnr_realblur"] == pytest.approx(psnr(restored, sharp), abs=0.1)
    assert realblur_scores(sharp, sharp)["psnr_realblur"] == math.inf


def make_realblur(root, variant="J", count=3):
    scenes = root / f"RealBlur-{variant}_ECC_IMCORR_centroid_itensity_ref"
    lines = []
    for i in range(count):
        folder = scenes / f"scene{i:03d}"
        (folder / "gt").mkdir(parents=True)
        (folder / "blur").mkdir()
        sharp = texture(48, 64, seed=i)
        Image.fromarray(sharp).save(folder / "gt" / "gt_1.png")
        Image.fromarray(cv2.blur(sharp, (5, 5))).save(folder / "blur" / "blur_1.png")
        lines.append(f"{folder.relative_to(root)}/gt/gt_1.png {folder.relative_to(root)}/blur/blur_1.png")
    (root / f"RealBlur_{variant}_test_list.txt").write_text("\n".join(lines) + "\n")
    return root


def test_realblur_reads_its_list(tmp_path):
    root = make_realblur(tmp_path / "RealBlur")
    pairs = realblur_benchmark(root, "J")
    assert pairs.names == ["scene000/blur_1.png", "scene001/blur_1.png", "scene002/blur_1.png"]
    name, blurred, sharp = pairs[1]
    assert np.array_equal(sharp, texture(48, 64, seed=1)) and blurred.shape == sharp.shape


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "RealBlur_J_test_list.txt").unlink(), "RealBlur_J_test_list.txt: missing"),
    (lambda root: next(root.rglob("blur_1.png")).unlink(), "no such file"),
    (lambda root: (root / "RealBlur_J_test_list.txt").write_text("only-one-field.png\n"), ":1: expected"),
    (lambda root: (root / "RealBlur_J_test_list.txt").write_text("../x.png ../y.png\n"), "is outside"),
])
def test_realblur_layout_errors_name_what_is_missing(tmp_path, damage, message):
    root = make_realblur(tmp_path / "RealBlur")
    damage(root)
    with pytest.raises(BenchmarkError, match=message):
        realblur_benchmark(root, "J")


def test_folder_pairs_match_by_stem(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "s").mkdir()
    for i, stem in enumerate(["a", "c", "b"]):
        Image.fromarray(texture(20, 24, seed=i)).save(tmp_path / "b" / f"{stem}.png")
        Image.fromarray(texture(20, 24, seed=i + 10)).save(tmp_path / "s" / f"{stem}.jpg", quality=100)
    pairs = folder_pairs(tmp_path / "b", tmp_path / "s")
    assert pairs.names == ["a.png", "b.png", "c.png"]
    assert np.array_equal(pairs[2][1], texture(20, 24, seed=1))
    (tmp_path / "s" / "c.jpg").unlink()
    with pytest.raises(BenchmarkError, match="no image named c"):
        folder_pairs(tmp_path / "b", tmp_path / "s")


def test_exactly_one_source():
    with pytest.raises(BenchmarkError, match="give one of"):
        open_eval_set()
    with pytest.raises(BenchmarkError, match="got --benchmark, --gopro"):
        open_eval_set(benchmark=("gopro", "x"), gopro="y")
    with pytest.raises(BenchmarkError, match="unknown benchmark 'hide'"):
        open_eval_set(benchmark=("hide", "x"))


def test_eval_realblur_cli(tmp_path):
    root = make_realblur(tmp_path / "RealBlur")
    path = tmp_path / "best.pt"
    torch.manual_seed(0)
    checkpoint.save(path, checkpoint.generator_state(step=3, generator=Generator(8, 1, init="identity"),
                                                     config=to_primitive(TrainConfig(ngf=8, n_blocks=1)),
                                                     scores={"psnr": 20.0}))
    result = CliRunner().invoke(cli.trainer, ["eval", "--checkpoint", str(path), "--benchmark", "realblur-j",
                                              str(root), "--metrics", "psnr", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["count"] == 3 and "ECC homography" in scores["pairs"]
    assert {"psnr_realblur", "ssim_realblur"} <= set(scores["metrics"])
    # The identity generator returns its input: aligned or not, restored = blurred.
    assert scores["psnr"] == pytest.approx(scores["input_psnr"])
    assert scores["psnr_realblur"] >= scores["psnr"] - 0.05
    missing = CliRunner().invoke(cli.trainer, ["eval", "--checkpoint", str(path), "--benchmark", "realblur-r",
                                               str(root)])
    assert missing.exit_code != 0 and "RealBlur_R_test_list.txt: missing" in missing.output

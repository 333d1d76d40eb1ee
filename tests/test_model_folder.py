"""Issue 23.2: weights as a model folder (model.safetensors, config.json, README.md).

The folder restores what its checkpoint restores, loads without unpickling,
fails in one line when broken, is accepted by deblur/eval/export, describes its
run in a model card, and loads through huggingface_hub's mixin offline."""
import inspect
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cli
from trainer import checkpoint, load_generator, model_folder
from trainer.config import generator_settings, make_configs, to_primitive
from trainer.models import Generator

ROOT = Path(__file__).resolve().parents[1]
SCORES = {"psnr": 25.5, "ssim": 0.8125, "ssim_skimage": 0.8125, "input_psnr": 24.25, "input_ssim": 0.75,
          "input_ssim_skimage": 0.75, "sharp_psnr": math.inf, "sharp_psnr_min": 41.5, "count": 2}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A finished shard folder of 2 shards of 2 pairs of 32 px crops, with --noise."""
    tmp = tmp_path_factory.mktemp("mf_shards")
    rng = np.random.default_rng(0)
    (tmp / "src").mkdir()
    for i in range(4):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp / "src" / f"{i}.png"), cv2.resize(small, (48, 40), interpolation=cv2.INTER_CUBIC))
    res = CliRunner().invoke(cli.blurgen, ["synthesize", "--src", str(tmp / "src"), "--out", str(tmp / "shards"),
                                           "--shard-size", "2", "--crop", "32", "--kernel-size", "9", "--iters",
                                           "100", "--max-len", "6", "--workers", "1", "--noise"])
    assert res.exit_code == 0, res.output
    return (tmp / "shards").resolve()


@pytest.fixture(scope="module")
def run(tmp_path_factory, shards):
    """best.pt of a tiny-preset run on ``shards`` (validated on its held-out last shard) with
    known scores, a generator that visibly changes its input, and its exported model folder."""
    base = tmp_path_factory.mktemp("mf_run")
    cfg, data = make_configs("tiny", data={"shards": (shards,), "mix": (1, 0), "crop": 32})
    torch.manual_seed(3)
    generator = Generator(**generator_settings(cfg))
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = base / "best.pt"
    checkpoint.save(path, checkpoint.generator_state(step=7, generator=generator, config=to_primitive(cfg),
                                                     scores=SCORES, data={"config": to_primitive(data)}))
    result = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), "--model-folder", str(base / "model")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in base.iterdir()) == ["best.pt", "model"]   # no temporary left
    return path, base / "model"


def test_the_folder_restores_exactly_what_the_checkpoint_restores(run):
    path, folder = run
    x = torch.rand(2, 3, 24, 36, generator=torch.Generator().manual_seed(1)) * 2 - 1
    from_checkpoint, _ = checkpoint.load_generator(path)
    with torch.no_grad():
        expected = from_checkpoint(x)
        assert torch.equal(load_generator(folder)(x), expected)
        assert torch.equal(load_generator(path)(x), expected)   # the same entry point takes a .pt
        assert (expected - x).abs().max() > 0.05                 # it does something


def test_config_json_round_trips_and_names_generator_arguments(run):
    path, folder = run
    text = (folder / "config.json").read_text()
    assert "Infinity" not in text and "NaN" not in text          # strict JSON: inf is the string "inf"
    config = model_folder.parse_config(text, "config.json")
    assert config["format"] == "deblurgan-model-folder" and config["format_version"] == 1
    assert config["scores"] == SCORES and config["step"] == 7
    state = checkpoint.load(path)
    assert config["data_config"] == state["data"]["config"] and config["train_config"] == state["config"]
    # The architecture keys are exactly Generator's arguments (what the hub mixin passes to __init__).
    arguments = set(inspect.signature(Generator.__init__).parameters) - {"self"}
    architecture = {k: config[k] for k in ("ngf", "n_blocks", "norm", "skips", "dropout")}
    assert set(architecture) <= arguments and "init" not in config
    assert architecture == {"ngf": 16, "n_blocks": 2, "norm": "none", "skips": True, "dropout": 0.0}
    assert model_folder.card_of(config) == (folder / "README.md").read_text()


def test_loading_a_folder_never_unpickles(run, monkeypatch):
    _, folder = run

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled")

    class Refused(pickle.Unpickler):
        def __init__(self, *args, **kwargs):
            refuse()

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", Refused)
    assert isinstance(load_generator(folder), Generator)


def broken_copy(folder: Path, tmp_path: Path, how: str) -> Path:
    copy = tmp_path / "broken"
    copy.mkdir()
    for name in ("model.safetensors", "config.json", "README.md"):
        (copy / name).write_bytes((folder / name).read_bytes())
    config = json.loads((copy / "config.json").read_text())
    if how == "no-weights":
        (copy / "model.safetensors").unlink()
    elif how == "no-config":
        (copy / "config.json").unlink()
    elif how == "bad-json":
        (copy / "config.json").write_text(json.dumps(config)[:-20])
    elif how == "flipped-byte":
        data = bytearray((copy / "model.safetensors").read_bytes())
        data[len(data) // 2] ^= 0x10
        (copy / "model.safetensors").write_bytes(bytes(data))
    elif how == "wrong-shape":
        (copy / "config.json").write_text(json.dumps({**config, "ngf": 8}))
    elif how == "wrong-type":
        (copy / "config.json").write_text(json.dumps({**config, "n_blocks": "two"}))
    elif how == "newer":
        (copy / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    elif how == "other-format":
        (copy / "config.json").write_text(json.dumps({"hidden_size": 4}))
    return copy


BROKEN = {"no-weights": "no model.safetensors", "no-config": "no config.json", "bad-json": "not valid JSON",
          "flipped-byte": "model.safetensors: damaged (its SHA-256 is not the one config.json records)",
          "wrong-shape": "generator weights do not fit its config", "wrong-type": "n_blocks is 'two'",
          "newer": "model folder version 99 is newer than this toolkit reads (1)",
          "other-format": "not the config.json of a model folder of this toolkit"}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_a_broken_folder_is_one_line(run, tmp_path, how):
    _, folder = run
    broken = broken_copy(folder, tmp_path, how)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    result = CliRunner().invoke(cli.trainer, ["deblur", str(tmp_path / "a.png"), "--model", str(broken),
                                              "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and BROKEN[how] in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_deblur_eval_and_export_take_the_folder(run, shards, tmp_path):
    path, folder = run
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "odd.png")
    outputs = {}
    for name, option, weights in (("pt", "--checkpoint", path), ("folder", "--model", folder),
                                  ("folder2", "--checkpoint", folder)):
        result = CliRunner().invoke(cli.trainer, ["deblur", str(tmp_path / "odd.png"), option, str(weights),
                                                  "--out", str(tmp_path / name), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        outputs[name] = np.asarray(Image.open(tmp_path / name / "odd.png"))
    assert np.array_equal(outputs["pt"], outputs["folder"]) and np.array_equal(outputs["pt"], outputs["folder2"])

    scored = {}
    for name, weights in (("pt", path), ("folder", folder)):
        result = CliRunner().invoke(cli.trainer, ["eval", "--model", str(weights), "--shards", str(shards),
                                                  "--device", "cpu", "--metrics", "psnr", "--json"])
        assert result.exit_code == 0, result.output
        scored[name] = json.loads(result.stdout)
    for key in ("psnr", "ssim", "input_psnr", "sharp_psnr", "count", "held_out", "held_out_why", "step"):
        assert scored["folder"][key] == scored["pt"][key], key
    assert scored["folder"]["held_out"] is True   # from the data settings config.json keeps

    result = CliRunner().invoke(cli.trainer, ["export", "--model", str(folder), "--onnx", str(tmp_path / "g.onnx")])
    assert result.exit_code == 0, result.output
    assert "onnxruntime matches PyTorch" in result.stdout and (tmp_path / "g.onnx").is_file()


def test_the_model_card_names_steps_data_and_labelled_scores(run, shards):
    path, folder = run
    card = (folder / "README.md").read_text()
    assert "# DeblurGAN generator, step 7" in card and f"from `{path}` (a generator checkpoint)" in card
    assert "- steps: 7 generator steps" in card
    assert "- preset: tiny (closest; differs in crop 32 (preset: 80); checkpoints do not record --preset" in card
    assert "- content loss: psnr, weight 10.0" in card
    assert "- GoPro: none" in card and "- online blur: no" in card
    assert "synthetic:GoPro draws mixed 1:0; 32x32 crops, batch 6" in card
    assert (f"- shard folder {shards}: made by blurgen synthesize; blur uniform: " in card
            and "realism: noise (read from its manifest at export; not checked against the run" in card)
    assert (f"- protocol: trainer fit's validation at step 7: mean over 2 pairs of the last shard of {shards}, "
            "whole samples") in card
    assert "- scale: as stored in the shards (no resize)" in card
    assert "- held out: yes: held out from training: the run left this last shard out of training" in card
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in card.splitlines()
            if line.startswith("| ") and not line.startswith("| score")}
    assert rows["psnr"] == ["25.50", "restored vs sharp (PSNR, dB, RGB, whole image, range 255) |"]
    assert rows["input_psnr"][0] == "24.25" and rows["input_psnr"][1].startswith("blurred input vs sharp (PSNR")
    assert rows["ssim"][0] == "0.8125" and "SSIM, skimage defaults" in rows["ssim"][1]
    assert rows["sharp_psnr"][0] == "inf" and rows["sharp_psnr_min"][0] == "41.50"
    assert "ssim_skimage" not in rows and "count" not in rows   # ssim is ssim_skimage: listed once


def test_a_card_without_data_settings_says_what_it_does_not_know():
    """A best.pt older than issue 12 records no data settings: the card invents no label."""
    cfg, _ = make_configs("paper", train={"ngf": 8, "n_blocks": 1})
    state = {"kind": "generator", "step": 3, "config": to_primitive(cfg), "scores": {"psnr": 20.0}}
    card = model_folder.card_of(model_folder.make_config(state, "old/best.pt", None, {}, "0" * 64))
    assert "- data: not recorded by the checkpoint" in card
    assert "the run's validation pairs (the checkpoint does not record which)" in card
    assert "- held out: unknown: the checkpoint does not record its data settings" in card
    assert "- preset: paper (closest; differs in n_blocks 1 (preset: 9), ngf 8 (preset: 64)" in card


def test_the_last_pt_card_labels_its_best_validation_as_another_step(shards):
    cfg, data = make_configs("tiny", data={"shards": (shards,), "gopro": "/data/GOPRO_Large", "crop": 32,
                                           "online": True, "online_noise": True, "online_mode": "shake"})
    state = {"kind": "training", "step": 300, "config": to_primitive(cfg), "schedule": {"total_steps": 300},
             "best": {"psnr": 30.25, "ssim": 0.9, "step": 200}, "data": {"config": to_primitive(data)}}
    card = model_folder.card_of(model_folder.make_config(state, "run/last.pt", to_primitive(data), {}, "0" * 64))
    assert "- steps: 300 generator steps of 300 planned" in card
    assert "- online blur: yes, mode shake, kernel size 9; realism: noise (the shards' sharp images only" in card
    assert "- GoPro: /data/GOPRO_Large (blur frames, resized x0.5)" in card
    assert ("trainer fit's validation at step 200: mean over up to 8 pairs spread over GoPro test/ of "
            "/data/GOPRO_Large (blur frames)") in card
    assert "its generator is that of its last step, 300, not of the best" in card
    assert "- scale: frames resized x0.5 (area averaging; --gopro-scale)" in card
    assert "- held out: yes: training draws GoPro pairs from train/ only" in card
    assert "| psnr | 30.25 | restored vs sharp (PSNR" in card


def test_export_replaces_only_a_model_folder_and_only_with_overwrite(run, tmp_path):
    path, folder = run
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text(json.dumps({"format": "deblurgan-model-folder", "stale": True}))
    refused = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), "--model-folder", str(target)])
    assert refused.exit_code == 2 and f"{target} exists; pass --overwrite" in refused.stderr
    replaced = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), "--model-folder", str(target),
                                                "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert (target / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]   # the old folder and temporary are gone
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"keep me")
    kept = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), "--model-folder", str(other),
                                            "--overwrite"])
    assert kept.exit_code == 2 and "is not a model folder: not replaced" in kept.stderr
    assert (other / "keep.jpg").read_bytes() == b"keep me"


def test_huggingface_hub_mixin_loads_the_folder_offline(run):
    pytest.importorskip("huggingface_hub")
    _, folder = run
    code = ("import sys, torch; from trainer.hub import DeblurGANGenerator; from trainer import load_generator; "
            f"m = DeblurGANGenerator.from_pretrained({str(folder)!r}); g = load_generator({str(folder)!r}); "
            "x = torch.rand(1, 3, 16, 20) * 2 - 1; "
            "print('equal', torch.equal(m(x), g(x)), 'training', m.training)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(folder.parent / "hf-home")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "equal True training False" in done.stdout
    assert not (folder.parent / "hf-home").exists()   # nothing fetched or cached


def test_a_failed_write_leaves_the_old_folder_and_no_temporary(tmp_path):
    from blurgen.plumbing.files import atomic_folder

    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("killed half-way")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (target / "a").read_text() == "old"


def test_export_on_a_full_disk_is_one_line_naming_the_file(run, small_disk):
    path, _ = run
    disk = small_disk(1)
    (disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))
    target = disk / "model"
    result = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), "--model-folder", str(target)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {target / 'model.safetensors'}: No space left on device\n"
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]   # no temporary left

"""`trainer fit` refuses unfinished shard folders; `trainer eval --shards` says
whether the pairs it scores were held out from the run's training."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cli
from trainer import checkpoint
from trainer.config import TrainConfig, to_primitive
from trainer.data import DataConfig, DataError, epoch_length
from trainer.models import Generator


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A finished shard folder of 4 shards of 2 pairs of 32 px crops."""
    tmp = tmp_path_factory.mktemp("heldout")
    rng = np.random.default_rng(0)
    for i in range(8):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        (tmp / "src").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp / "src" / f"{i}.png"), cv2.resize(small, (64, 56), interpolation=cv2.INTER_CUBIC))
    res = CliRunner().invoke(cli.blurgen, ["synthesize", "--src", str(tmp / "src"), "--out", str(tmp / "shards"),
                                           "--shard-size", "2", "--crop", "32", "--kernel-size", "9", "--iters",
                                           "100", "--max-len", "6", "--workers", "1"])
    assert res.exit_code == 0, res.output
    return tmp / "shards"


def unfinished_copy(folder: Path, tmp_path: Path) -> Path:
    """The folder as a run killed before its last shard leaves it."""
    partial = tmp_path / "partial"
    partial.mkdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in list(manifest["shards"])[:3]:
        (partial / name).write_bytes((folder / name).read_bytes())
    manifest["shards"] = {k: v for k, v in manifest["shards"].items() if k in list(manifest["shards"])[:3]}
    (partial / "manifest.json").write_text(json.dumps(manifest))
    return partial


# --- fit: unfinished folders ---------------------------------------------------------


def test_fit_refuses_a_folder_verify_calls_unfinished_in_one_line(folder, tmp_path):
    partial = unfinished_copy(folder, tmp_path)
    verify = CliRunner().invoke(cli.blurgen, ["verify", str(partial)])
    assert "the run is incomplete: 1 of its 4 planned shards not built" in verify.output
    res = CliRunner().invoke(cli.trainer, ["fit", "--preset", "tiny", "--shards", str(partial), "--mix", "1:0",
                                           "--crop", "32", "--steps", "1", "--workers", "0", "--device", "cpu",
                                           "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output
    assert f"{partial} is unfinished: the run is incomplete: 1 of its 4 planned shards not built" in lines[0]
    assert "--allow-partial" in lines[0] and "the 3 shards it has" in lines[0]
    assert not (tmp_path / "run" / "last.pt").exists()


def test_allow_partial_uses_what_an_unfinished_folder_has(folder, tmp_path):
    partial = unfinished_copy(folder, tmp_path)
    cfg = dict(mix=(1, 0), crop=32, batch_size=1, workers=0)
    with pytest.raises(DataError, match="is unfinished"):
        epoch_length(DataConfig(shards=(partial,), **cfg))
    # 3 shards of 2 pairs, the last held out for validation: 4 training pairs.
    assert epoch_length(DataConfig(shards=(partial,), allow_partial=True, **cfg)) == 4
    assert epoch_length(DataConfig(shards=(folder,), **cfg)) == 6


# --- eval: held out or not -----------------------------------------------------------


def test_the_verdict_follows_how_the_run_split_its_data(folder, tmp_path):
    from trainer.heldout import shards_held_out

    other = tmp_path / "other"
    base = {"shards": [str(folder)], "gopro": None, "val_shards": None, "mix": [2, 1]}
    held, why = shards_held_out(base, folder)
    assert held is True and "left this last shard out of training" in why
    held, why = shards_held_out({**base, "gopro": "/data/GOPRO_Large"}, folder)
    assert held is False and why.startswith("NOT held out") and "GoPro test/" in why
    held, why = shards_held_out({**base, "val_shards": str(other)}, folder)
    assert held is False and "--val-shards" in why
    held, why = shards_held_out({**base, "shards": [str(other), str(folder)]}, folder)
    assert held is False and str(other) in why
    assert shards_held_out({**base, "val_shards": str(folder), "shards": [str(other)]}, folder)[0] is True
    assert shards_held_out({**base, "shards": [str(other)]}, folder) == (
        True, "held out from training: the run did not train on this folder")
    assert shards_held_out({**base, "gopro": "/g", "mix": [0, 1]}, folder)[0] is True
    assert shards_held_out(None, folder)[0] is None


def write_run(run: Path, data: DataConfig | None) -> None:
    """A run folder: last.pt with the run's data settings (as fit saves them), best.pt without."""
    run.mkdir()
    cfg = to_primitive(TrainConfig(ngf=8, n_blocks=1, ndf=8))
    torch.manual_seed(0)
    state = checkpoint.generator_state(step=3, generator=Generator(8, 1), config=cfg, scores={"psnr": 1.0})
    checkpoint.save(run / "best.pt", state)
    if data is not None:
        checkpoint.save(run / "last.pt", {**state, "data": {"config": to_primitive(data), "world_size": 1}})


def evaluate(checkpoint_path: Path, folder: Path, *extra):
    res = CliRunner().invoke(cli.trainer, ["eval", "--checkpoint", str(checkpoint_path), "--shards", str(folder),
                                           "--device", "cpu", "--metrics", "psnr", *extra])
    assert res.exit_code == 0, res.output
    return res.stdout


def test_eval_says_training_pairs_are_not_held_out(folder, tmp_path):
    gopro_run = tmp_path / "gopro_run"
    write_run(gopro_run, DataConfig(shards=(folder.resolve(),), gopro=tmp_path / "GOPRO_Large"))
    for name in ("last.pt", "best.pt"):  # best.pt takes the settings of its run's last.pt
        out = evaluate(gopro_run / name, folder)
        assert "NOT held out: the run trained on these pairs (the run validated on GoPro test/" in out
        assert "held-out shard" not in out and f"last shard of {folder}" in out
    scores = json.loads(evaluate(gopro_run / "last.pt", folder, "--json"))
    assert scores["held_out"] is False
    split_run = tmp_path / "split_run"
    write_run(split_run, DataConfig(shards=(folder.resolve(),)))
    out = evaluate(split_run / "best.pt", folder)
    assert "held out from training: the run left this last shard out of training" in out
    assert json.loads(evaluate(split_run / "last.pt", folder, "--json"))["held_out"] is True
    lone = tmp_path / "lone"
    write_run(lone, None)
    assert "is unknown" in evaluate(lone / "best.pt", folder)

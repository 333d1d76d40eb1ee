"""bench/learning.py --train-mode / --held-out-mode / --cross: pairs made with any mode's
options, and the cross-mode table (every run scored on every mode's held-out pairs)."""
import json
from pathlib import Path

import h5py
import pytest

from blurgen.commands import blur_settings
from blurgen.physics.realism import Realism
from blurgen.physics.shake import ShakeSpec
from blurgen.plumbing.command_line import UserError



@pytest.fixture(scope="module")
def bench(learning_bench):
    return learning_bench


def test_blur_settings_reads_mode_and_realism_options_as_synthesize_does():
    assert blur_settings([]) == dict(mode="uniform", spec=None, realism=Realism())
    got = blur_settings(["--shake", "nonuniform", "--max-angle", "2", "--camera", "a7r3", "--jpeg-quality", "80-90"])
    assert got["mode"] == "shake" and isinstance(got["spec"], ShakeSpec) and got["spec"].max_angle == 2.0
    assert got["realism"] == Realism(camera="a7r3", jpeg_quality=(80, 90))
    assert blur_settings(["--defocus", "1-3"])["spec"].defocus.hi == 3
    assert blur_settings(["--rolling-shutter", "0.1-0.5"])["spec"].rolling.hi == 0.5


@pytest.mark.parametrize("arguments, says", [
    (["--crop", "64"], "not --crop"),
    (["--max-angle", "x"], "'x' is not a valid float"),
    (["--shake", "nonuniform", "--objects", "a.json"], "one blur mode per run"),
    (["--jpeg-quality", "0-50"], "--jpeg-quality must be"),
])
def test_blur_settings_refuses_in_one_line(arguments, says):
    with pytest.raises(UserError) as caught:
        blur_settings(arguments)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_build_data_makes_each_part_with_its_own_options(bench, tmp_path):
    """The fixed split with --held-out-mode: plain training pairs, camera held-out pairs, in
    folders named for their options (and SynthConfig built from them: the path that broke
    when the camera became part of the realism spec)."""
    train, held = bench.build_data(tmp_path, 9, 0, 1, 1, "", "--camera a7r3-rsblur --jpeg-quality 90-90")
    assert (train.name, held.name) == ("train-shards", "held-out-shards-camera-a7r3-rsblur-jpeg-quality-90-90")
    for folder, camera in ((train, None), (held, "a7r3-rsblur")):
        args = json.loads((folder / "manifest.json").read_text())["arguments"]
        assert args.get("camera") == camera
        with h5py.File(next(folder.glob("*.h5"))) as f:
            assert len(f["blurred"]) == (15 if folder == train else 2)


def test_cross_table_scores_every_run_on_every_held_out_set(bench, tmp_path, monkeypatch, capsys):
    built, trained = {}, []

    def build(root, kernel_size, seed, train_crops, held_out_crops, train_mode, held_out_mode):
        assert train_mode == held_out_mode
        built[train_mode] = (Path(f"train{train_mode}"), Path(f"held{train_mode}"))
        return built[train_mode]

    def train(name, out, train_shards, held_out, args, changes):
        trained.append((str(train_shards), args.seed))
        return {"generator": str(train_shards), "data_config": None, "seconds": 1.0, "settings": {}}

    # gain = 1 on the mode trained on, 0.25 elsewhere, + 0.5 for the repeat's seed
    def score_on(generator, data_cfg, held_out):
        seed = trained[-1][1]
        gain = (1.0 if generator.removeprefix("train") == str(held_out).removeprefix("held") else 0.25) + 0.5 * seed
        return {"input_psnr": 30.0, "psnr": 30.0 + gain, "count": 48}

    monkeypatch.setattr(bench, "build_data", build)
    monkeypatch.setattr(bench, "train", train)
    monkeypatch.setattr(bench, "score_on", score_on)
    assert bench.main(["--cross", "plain=", "shake=--shake nonuniform", "--repeat", "plain", "--runs", "gan",
                       "--out", str(tmp_path), "--steps", "10"]) == 0
    assert list(built) == ["", "--shake nonuniform"]
    assert trained == [("train", 0), ("train--shake nonuniform", 0), ("train", 1)]
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "cross.json").read_text())
    cells = saved["cells"]
    assert cells["gan: plain"]["plain"]["gain"] == 1.0 and cells["gan: plain"]["shake"]["gain"] == 0.25
    assert cells["gan: shake"]["shake"]["gain"] == 1.0 and cells["gan: shake"]["plain"]["gain"] == 0.25
    assert cells["gan: plain (seed 1)"]["plain"]["gain"] == 1.5
    assert "gains differ by 0.50 dB at most" in out


def test_cross_options_are_checked_before_any_work(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--cross", "plain=", "bad=--crop 64", "--out", str(tmp_path / "never")])
    assert "not --crop" in capsys.readouterr().err and not (tmp_path / "never").exists()
    with pytest.raises(SystemExit):
        bench.main(["--cross", "plain=", "--repeat", "shake", "--out", str(tmp_path / "never")])

"""`trainer eval` of a run's checkpoint scores GoPro frames as the run validated them and
prints every setting that changes a score (issue 12.11)."""
import json
import shutil

import pytest
from click.testing import CliRunner

import cli
from trainer import checkpoint
from trainer.config import make_configs
from trainer.eval_settings import Setting, resolve
from trainer.loop import fit


@pytest.fixture(scope="module")
def run_at_half_scale(make_gopro, tmp_path_factory, one_torch_thread):
    """A 2-step tiny run that validated on GoPro frames resized x0.5 (48x64 -> 24x32)."""
    gopro = make_gopro("evalscale", seed=0, size=(48, 64), train_sequences=1, test_sequences=1, frames=3)
    out = tmp_path_factory.mktemp("evalscale") / "run"
    fit(*make_configs("tiny", dict(out=out, steps=2, device="cpu", content_loss="l1", preview=False,
                                   val_limit=0, log_every=1),
                      dict(gopro=gopro, mix="0:1", crop=16, batch_size=1, gopro_scale=0.5, workers=0)))
    return out, gopro


def evaluate(checkpoint_path, gopro, *flags):
    result = CliRunner().invoke(cli.trainer, ["eval", "--checkpoint", str(checkpoint_path), "--gopro", str(gopro),
                                              "--device", "cpu", "--metrics", "psnr", *flags])
    assert result.exit_code == 0, result.output
    return result


def test_eval_of_a_run_scores_at_the_runs_scale_and_says_so(run_at_half_scale):
    """Issue 12.11: eval scored at --gopro-scale 1 what training validated at 0.5 (23.46 vs
    23.94 dB for one checkpoint) and did not print the scale."""
    out, gopro = run_at_half_scale
    default = json.loads(evaluate(out / "best.pt", gopro, "--json").stdout)
    assert default["settings"]["gopro_scale"] == {"value": 0.5, "from": "run"}
    assert default["settings"]["gopro_blur"] == {"value": "blur", "from": "run"}
    half = json.loads(evaluate(out / "best.pt", gopro, "--json", "--gopro-scale", "0.5").stdout)
    full = json.loads(evaluate(out / "best.pt", gopro, "--json", "--gopro-scale", "1").stdout)
    assert default["psnr"] == half["psnr"] and default["input_psnr"] == half["input_psnr"]
    assert full["settings"]["gopro_scale"] == {"value": 1.0, "from": "flag"}   # an explicit flag wins
    assert full["input_psnr"] != pytest.approx(half["input_psnr"], abs=1e-3)
    # The run's own validation scored the same pairs the same way.
    assert checkpoint.load(out / "best.pt")["scores"]["psnr"] == pytest.approx(default["psnr"], abs=1e-4)

    text = evaluate(out / "last.pt", gopro).stdout
    line = [row for row in text.splitlines() if row.startswith("settings: ")]
    assert len(line) == 1 and f"checkpoint {out / 'last.pt'} (training, generator of step 2)" in line[0]
    assert "GoPro frames resized x0.5 (the run's validation setting; --gopro-scale)" in line[0]
    assert "no border crop" in line[0] and "tiles overlapping by 128 px" in line[0]


def test_an_older_best_pt_takes_the_settings_of_the_last_pt_beside_it(run_at_half_scale, tmp_path):
    out, gopro = run_at_half_scale
    old = checkpoint.load(out / "best.pt")
    del old["data"]   # as best.pt was written before issue 12
    checkpoint.save(tmp_path / "best.pt", old)
    alone = json.loads(evaluate(tmp_path / "best.pt", gopro, "--json").stdout)
    assert alone["settings"]["gopro_scale"] == {"value": 1.0, "from": "default"}
    shutil.copy(out / "last.pt", tmp_path / "last.pt")
    beside = json.loads(evaluate(tmp_path / "best.pt", gopro, "--json").stdout)
    assert beside["settings"]["gopro_scale"] == {"value": 0.5, "from": "run"}


def test_resolve_prefers_the_flag_then_the_run_then_the_default():
    assert resolve({"gopro_scale": 2.0}, {"gopro_scale": 0.5, "gopro_blur": "blur_gamma"}) == {
        "gopro_scale": Setting(2.0, "flag"), "gopro_blur": Setting("blur_gamma", "run")}
    assert resolve({}, None)["gopro_scale"] == Setting(1.0, "default")

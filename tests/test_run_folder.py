"""The run folder (trainer.run_folder) and fit's start-up: the names come
without the training loop, the training sources are found once, and a resumed
run takes this machine's Adam implementation."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer import checkpoint, data, loop
from trainer.config import TrainConfig, make_configs
from trainer.losses import make_content_loss
from trainer.run_folder import LAST, SCALARS, Progress

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gopro(make_gopro):
    """A GOPRO_Large-layout folder: 6 training and 3 test pairs of 48x64."""
    return make_gopro("run_folder", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


def test_run_folder_names_are_read_without_importing_torch():
    """`trainer curves` needs a file name: it imported the whole training loop (torch, seconds)."""
    code = ("import sys, trainer.run_folder as r; "
            "assert 'torch' not in sys.modules and 'trainer.loop' not in sys.modules; print(r.SCALARS)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SCALARS == "scalars.csv" and LAST == "last.pt"


def test_fit_finds_and_checks_the_training_sources_once(tmp_path, gopro, monkeypatch):
    """fit found and checked the training data twice at start-up: once for the epoch
    length, again for the loader (every GoPro pair's size, every shard opened)."""
    scans = []
    real = data.scan_gopro

    def counted(root, split, *args, **kwargs):
        scans.append(split)
        return real(root, split, *args, **kwargs)

    monkeypatch.setattr(data, "scan_gopro", counted)
    train_cfg, data_cfg = make_configs(
        "tiny", dict(out=tmp_path / "run", steps=1, device="cpu", content_loss="l1", preview=False, val_limit=1),
        dict(gopro=gopro, mix="0:1", crop=32, batch_size=1, gopro_scale=1.0, workers=0))
    assert loop.fit(train_cfg, data_cfg)["step"] == 1
    assert scans.count("train") == 1 and scans.count("test") == 1


def test_resume_takes_this_machines_adam_implementation(tmp_path):
    """Runs use fused Adam on every device; a last.pt written before (the CPU's
    per-tensor Adam) or by a CUDA-graph run (capturable Adam) resumes with plain
    fused Adam: the choice is this run's, not the checkpoint's."""
    cfg = TrainConfig(ngf=8, n_blocks=1, ndf=8)
    torch.manual_seed(0)
    gan = loop.build_gan(cfg, torch.device("cpu"), make_content_loss("l1"))
    state = checkpoint.training_state(
        step=3, epoch=1, generator=gan.generator, critic=gan.critic, opt_generator=gan.opt_generator,
        opt_critic=gan.opt_critic, schedule={}, config={}, data={}, best=None)
    for key in ("opt_generator", "opt_critic"):
        for group in state[key]["param_groups"]:   # as an older CPU run, or a CUDA-graph run, saves them
            group["fused"], group["foreach"], group["capturable"] = None, True, True
    resumed = loop.build_gan(cfg, torch.device("cpu"), make_content_loss("l1"))
    progress = loop.restore(resumed, state, tmp_path / LAST, on_cuda=False)
    assert progress == Progress(step=3, epoch=1, best=None)
    for opt in (resumed.opt_generator, resumed.opt_critic):
        assert all(group["fused"] is True and group["foreach"] is None and group["capturable"] is False
                   for group in opt.param_groups)

"""Faults of training and its commands (issue 11): preemption by a signal to the
whole process group, broken data found at start-up, full disks, broken inputs.
Each test's docstring names the defect it guards."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainer import checkpoint
from trainer.config import make_configs
from trainer.loop import fit, resume_configs

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12   # two epochs of the 6-pair GoPro set below


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Runs here and in the subprocesses use one thread: on a busy 2-core machine two
    OpenMP threads per run make a tiny step 10x slower, and equal thread counts keep
    the runs compared here bit-identical."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def gopro(make_gopro):
    """A GOPRO_Large-layout folder: 6 training and 3 test pairs of 48x64."""
    return make_gopro("faults", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


def fit_args(out, gopro, workers=1, steps=STEPS):
    """``trainer fit`` arguments of a tiny CPU run that logs every step."""
    return ["fit", "--out", str(out), "--gopro", str(gopro), "--mix", "0:1", "--preset", "tiny",
            "--crop", "32", "--batch-size", "1", "--gopro-scale", "1", "--workers", str(workers),
            "--device", "cpu", "--content-loss", "l1", "--no-preview", "--val-limit", "1",
            "--steps", str(steps), "--log-every", "1", "--checkpoint-every", "100"]


def fit_configs(out, gopro):
    """The configs ``fit_args`` gives, for runs in this process (no workers)."""
    return make_configs("tiny", dict(out=out, steps=STEPS, device="cpu", content_loss="l1", preview=False,
                                     val_limit=1, log_every=1, checkpoint_every=100),
                        dict(gopro=gopro, mix="0:1", crop=32, batch_size=1, gopro_scale=1.0, workers=0))


@pytest.fixture(scope="module")
def uninterrupted(gopro, tmp_path_factory):
    """last.pt of the run of ``fit_args`` done in one go, in this process."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    fit(*fit_configs(out, gopro))
    return checkpoint.load(out / "last.pt")


def assert_same_training_state(a, b):
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    for key in ("generator", "critic"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), f"{key}.{name}"
    for key in ("opt_generator", "opt_critic"):
        for index, state in a[key]["state"].items():
            for name, value in state.items():
                assert torch.equal(value, b[key]["state"][index][name]), f"{key}.{index}.{name}"
    assert a["best"] == b["best"]


def logged_steps(path):
    """Steps of the train/ rows of a scalars.csv (empty while it does not exist)."""
    try:
        with open(path, newline="") as f:
            return [int(r["step"]) for r in csv.DictReader(f) if r["name"].startswith("train/")]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def start_fit(args, cwd):
    """``trainer fit`` in its own session (process group), as a batch job runs."""
    return subprocess.Popen([sys.executable, "-c", "import cli; cli.trainer()", *args], cwd=cwd,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def preempt_group(tmp_path, gopro, uninterrupted, signum):
    """Start a run with a loader worker, signal its whole process group after step 2,
    check the clean stop, resume it here and compare with the uninterrupted run."""
    out = tmp_path / "run"
    proc = start_fit(fit_args(out, gopro, workers=1), tmp_path)
    deadline = time.monotonic() + 120
    while max(logged_steps(out / "scalars.csv"), default=0) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not reach step 2"
        time.sleep(0.02)
    os.killpg(proc.pid, signum)
    stdout, stderr = proc.communicate(timeout=120)

    name = signal.Signals(signum).name
    assert "Traceback" not in stderr and "killed by signal" not in stderr, stderr
    assert proc.returncode == 128 + signum, stderr
    done = max(logged_steps(out / "scalars.csv"))
    assert 2 <= done < STEPS
    assert f"stopped by {name} at step {done} of {STEPS}" in stdout
    assert checkpoint.load(out / "last.pt")["step"] == done   # the step it finished, saved

    train_cfg, data_cfg = resume_configs(out, {"device": "cpu"}, {"workers": 0})
    assert fit(train_cfg, data_cfg, resume=True)["step"] == STEPS
    assert_same_training_state(checkpoint.load(out / "last.pt"), uninterrupted)


def test_sigterm_to_the_process_group_saves_the_finished_step(tmp_path, gopro, uninterrupted):
    """Issue 11.2: SIGTERM to the whole process group (how Slurm preempts) killed the
    DataLoader workers first; the main process died of "DataLoader worker killed"
    with a traceback and no stop checkpoint.  Now: the finished step is saved,
    exit 143, and the resumed run matches the uninterrupted one bit for bit."""
    preempt_group(tmp_path, gopro, uninterrupted, signal.SIGTERM)


def test_sigusr1_to_the_process_group_saves_the_finished_step(tmp_path, gopro, uninterrupted):
    """Issue 11.2: SIGUSR1 (Slurm's --signal warning) killed the run and its workers
    without a checkpoint.  Now it stops like SIGTERM: step saved, exit 138, exact resume."""
    preempt_group(tmp_path, gopro, uninterrupted, signal.SIGUSR1)

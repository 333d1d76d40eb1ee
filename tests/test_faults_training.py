"""Faults of training and its commands (issue 11): preemption by a signal to the
whole process group, broken data found at start-up, full disks, broken inputs.
Each test's docstring names the defect it guards."""
import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from trainer import checkpoint
from trainer.config import make_configs
from trainer.loop import fit, resume_configs

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12   # two epochs of the 6-pair GoPro set below


# One thread here, as in the subprocesses (OMP_NUM_THREADS=1).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gopro(make_gopro):
    """A GOPRO_Large-layout folder: 6 training and 3 test pairs of 48x64."""
    return make_gopro("faults", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


def fit_args(out, gopro, workers=1, steps=STEPS):
    """``trainer fit`` arguments of a tiny CPU run that logs every step."""
    return ["fit", "--out", str(out), "--gopro", str(gopro), "--mix", "0:1", "--preset", "tiny",
            "--crop", "32", "--batch-size", "1", "--gopro-scale", "1", "--workers", str(workers),
            "--device", "cpu", "--content-loss", "l1", "--content-weight", "10", "--no-preview", "--val-limit", "1",
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


def test_ctrl_c_to_the_process_group_saves_the_step_and_exits_130(tmp_path, gopro, uninterrupted):
    """Issue 12.10: an interrupted run must not exit 0 as a finished one does.  Ctrl-C
    (SIGINT to the terminal's process group): the finished step saved, exit 130 (the
    shell's code for Ctrl-C, as `synthesize` gives), exact resume."""
    preempt_group(tmp_path, gopro, uninterrupted, signal.SIGINT)


def test_sigusr1_to_the_process_group_saves_the_finished_step(tmp_path, gopro, uninterrupted):
    """Issue 11.2: SIGUSR1 (Slurm's --signal warning) killed the run and its workers
    without a checkpoint.  Now it stops like SIGTERM: step saved, exit 138, exact resume."""
    preempt_group(tmp_path, gopro, uninterrupted, signal.SIGUSR1)


# --- 11.4: broken validation data ------------------------------------------------------------


def make_shards(folder, counts, side=40, seed=0):
    """A shard folder of random crops (blurred = sharp // 2) with its manifest."""
    import numpy as np

    from blurgen.shards import shard_name, write_manifest, write_shard

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    manifest = {}
    for k, n in enumerate(counts):
        sharp = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        checksum = write_shard(folder / shard_name(k), sharp // 2, sharp, np.zeros((n, 5, 5), np.float32),
                               {"source": np.array([f"photo{i}.jpg" for i in range(n)])})
        manifest[shard_name(k)] = {"count": n, "checksum": checksum,
                                   "bytes": (folder / shard_name(k)).stat().st_size}
    write_manifest(folder, {"shards": manifest})
    return folder


def count_steps(monkeypatch):
    """Counts calls of loop.train_step (which still trains)."""
    from trainer import loop

    calls = []
    real = loop.train_step
    monkeypatch.setattr(loop, "train_step", lambda *a: calls.append(1) or real(*a))
    return calls


def test_truncated_held_out_shard_stops_fit_before_the_first_step(tmp_path, monkeypatch):
    """Issue 11.4: the held-out shard was opened only at the first validation, so a
    truncated one let fit train an epoch and die before its checkpoint, on every
    retry.  Now fit names it before any step and writes nothing."""
    from blurgen.shards import shard_name
    from trainer.data import DataError

    folder = make_shards(tmp_path / "shards", [4, 2])
    held_out = folder / shard_name(1)              # the last shard: validation's
    data = held_out.read_bytes()
    held_out.write_bytes(data[: len(data) // 2])
    train_cfg, data_cfg = make_configs("tiny", dict(out=tmp_path / "run", steps=8, device="cpu",
                                                    content_loss="l1", preview=False),
                                       dict(shards=(folder,), mix="1:0", crop=32, workers=0))
    steps = count_steps(monkeypatch)
    with pytest.raises(DataError, match=r"shard-00001\.h5: not a readable shard") as info:
        fit(train_cfg, data_cfg)
    assert "\n" not in str(info.value)
    assert steps == [] and not (tmp_path / "run").exists()


def test_truncated_validation_folder_stops_fit_before_the_first_step(tmp_path, gopro, monkeypatch):
    """Issue 11.4: the same for a --val-shards folder whose shard lost its end."""
    from blurgen.shards import shard_name
    from trainer.data import DataError

    folder = make_shards(tmp_path / "val", [2, 2])
    data = (folder / shard_name(0)).read_bytes()
    (folder / shard_name(0)).write_bytes(data[:-1000])
    train_cfg, data_cfg = fit_configs(tmp_path / "run", gopro)
    data_cfg.val_shards = folder
    steps = count_steps(monkeypatch)
    with pytest.raises(DataError, match=r"val/shard-00000\.h5"):
        fit(train_cfg, data_cfg)
    assert steps == [] and not (tmp_path / "run").exists()


def test_failing_validation_keeps_the_step_it_validates(tmp_path, gopro, uninterrupted, monkeypatch):
    """Issue 11.4: fit validated before it saved, so a validation that failed (a pair
    unreadable by then) lost the epoch's steps.  Now the checkpoint comes first, and
    --resume goes on from it with the weights of the uninterrupted run."""
    from trainer import loop
    from trainer.data import DataError

    def broken(*args, **kwargs):
        raise DataError("GOPRO_Large/test/x.png: cannot decode image")

    monkeypatch.setattr(loop, "evaluate", broken)
    out = tmp_path / "run"
    with pytest.raises(DataError, match="cannot decode"):
        fit(*fit_configs(out, gopro))
    assert checkpoint.load(out / "last.pt")["step"] == 6       # the end of epoch 1
    monkeypatch.undo()
    train_cfg, data_cfg = resume_configs(out, {"device": "cpu"}, {"workers": 0})
    fit(train_cfg, data_cfg, resume=True)
    resumed = checkpoint.load(out / "last.pt")
    assert_same_training_state(dict(resumed, best=None), dict(uninterrupted, best=None))


# --- 11.9: broken inputs give one line -------------------------------------------------------


def run_trainer(args):
    import cli

    return CliRunner().invoke(cli.trainer, [str(a) for a in args])


def one_error_line(result):
    """The single 'error: ...' line of a failed command (asserts there is no traceback)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    # Progress bars and fit's opening summary aside, the stderr ends in one error line.
    lines = [line for line in result.stderr.strip().splitlines()
             if line.strip() and not re.match(r"^[\w ]+:\s*\d+%\|", line)]
    errors = [line for line in lines if line.startswith("error: ")]
    assert "Traceback" not in result.stderr and len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


@pytest.mark.parametrize("missing", ["opt_critic", "data", "rng"])
def test_resume_from_a_checkpoint_missing_keys_is_one_line(tmp_path, uninterrupted, missing):
    """Issue 11.9: `trainer fit --resume` on a last.pt missing a key ended in a KeyError
    traceback.  Now one line naming the file and the missing key, exit 2."""
    (tmp_path / "run").mkdir()
    checkpoint.save(tmp_path / "run" / "last.pt", {k: v for k, v in uninterrupted.items() if k != missing})
    result = run_trainer(["fit", "--out", tmp_path / "run", "--resume", "--device", "cpu"])
    line = one_error_line(result)
    assert result.exit_code == 2 and "last.pt: incomplete training checkpoint" in line and missing in line


def test_resume_from_a_generator_checkpoint_is_one_line(tmp_path, uninterrupted):
    """Issue 11.9: a best.pt copied over last.pt (no optimiser, data or rng state) gave a
    KeyError traceback on --resume."""
    from trainer.models import Generator

    cfg, _ = fit_configs(tmp_path / "run", Path("unused"))
    generator = Generator(ngf=cfg.ngf, n_blocks=cfg.n_blocks, dropout=cfg.dropout, norm=cfg.norm)
    (tmp_path / "run").mkdir()
    checkpoint.save(tmp_path / "run" / "last.pt", checkpoint.generator_state(
        step=6, generator=generator, config=uninterrupted["config"], scores={"psnr": 20.0}))
    result = run_trainer(["fit", "--out", tmp_path / "run", "--resume", "--device", "cpu"])
    assert result.exit_code == 2 and "not a training one" in one_error_line(result)


def png_claiming(width, height):
    """A 60-byte PNG whose header claims width x height RGB pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [20000, 10000], ids=["over-twice-the-limit", "over-the-limit"])
def test_deblur_refuses_a_decompression_bomb_in_one_line(tmp_path, uninterrupted, side):
    """Issue 11.9: `trainer deblur` on an image whose header claims a huge size ended
    in Pillow's DecompressionBombError traceback (or, between 1x and 2x Pillow's
    limit, tried to decode it).  Now a line naming the file, nothing written for it, and
    exit 1 (issue 12.12: unreadable inputs are listed at the end, the others restored)."""
    checkpoint.save(tmp_path / "last.pt", uninterrupted)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(side, side))
    result = run_trainer(["deblur", bomb, "--checkpoint", tmp_path / "last.pt", "--out", tmp_path / "out",
                          "--device", "cpu"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert lines[-2].startswith(f"could not read {bomb}: ") and "decompression bomb" in lines[-2]
    assert lines[-1] == "error: 1 of 1 inputs could not be read (listed above)"
    assert not list((tmp_path / "out").glob("*.png"))


# --- 11.7: full disks ------------------------------------------------------------------------


def test_fit_on_a_full_disk_is_one_line_and_keeps_last_pt(small_disk, gopro):
    """Issue 11.7: fit on a full disk died of torch's "unexpected pos" RuntimeError
    traceback.  Now one line naming the file, exit 2, and the previous last.pt
    (step 2; the tiny run's last.pt is ~4.5 MB, two do not fit in 8 MiB) intact."""
    run = small_disk(8) / "run"
    args = [a if a != str(STEPS) else "12" for a in fit_args(run, gopro, workers=0)]
    result = run_trainer(args[:args.index("--checkpoint-every")] + ["--checkpoint-every", "2"])
    line = one_error_line(result)
    assert result.exit_code == 2 and line == f"error: {run}/last.pt: No space left on device"
    assert checkpoint.load(run / "last.pt")["step"] == 2
    assert not [p for p in run.iterdir() if p.name.startswith(".")]   # no temporary file left


def test_deblur_on_a_full_disk_is_one_line(small_disk, tmp_path, uninterrupted):
    """Issue 11.7: trainer deblur --out on a full disk: one line naming the PNG, exit 2."""
    import numpy as np

    from blurgen.plumbing.pictures import write_png

    checkpoint.save(tmp_path / "last.pt", uninterrupted)
    photo = write_png(tmp_path / "photo.png", np.random.default_rng(0).integers(0, 256, (256, 256, 3), np.uint8))
    out = small_disk(1) / "out"
    out.mkdir()
    (out / "filler").write_bytes(b"\0" * (1024 * 1024 - 4096 * 2))   # leaves less than the PNG needs
    result = run_trainer(["deblur", photo, "--checkpoint", tmp_path / "last.pt", "--out", out, "--device", "cpu"])
    line = one_error_line(result)
    assert result.exit_code == 2 and line == f"error: {out}/photo.png: No space left on device"
    assert sorted(p.name for p in out.iterdir()) == ["filler"]


def test_curves_png_on_a_full_disk_is_one_line(small_disk, tmp_path):
    """Issue 11.7: trainer curves --png on a full disk: one line naming the PNG, exit 2."""
    from trainer.loop import ScalarLog

    log = ScalarLog(tmp_path, start=0)
    for step in range(1, 6):
        log.scalars(step, {"train/content_loss": 1.0 / step, "val/psnr": 20.0 + step})
    log.close()
    disk = small_disk(1)
    (disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 4096))
    result = run_trainer(["curves", tmp_path, "--png", disk / "curves.png"])
    line = one_error_line(result)
    assert result.exit_code == 2 and line == f"error: {disk}/curves.png: No space left on device"
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_checkpoint_write_failing_with_enospc_names_the_file(tmp_path, monkeypatch):
    """Issue 11.7 (simulated ENOSPC, for machines that cannot mount a tmpfs): a failed
    checkpoint write raises OSError naming last.pt and leaves the previous one intact."""
    import builtins
    import errno

    path = tmp_path / "last.pt"
    checkpoint.save(path, {"format": checkpoint.FORMAT, "version": 1, "step": 1})
    real_open = builtins.open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(checkpoint, "open", lambda p, mode="r", *a: FullDisk(real_open(p, mode, *a)),
                        raising=False)
    with pytest.raises(OSError) as info:
        checkpoint.save(path, {"format": checkpoint.FORMAT, "version": 1, "step": 2})
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]

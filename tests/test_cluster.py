"""Training where users run it (issue 19): a requeued job's same command plus
--resume, stops under torchrun and `trainer launch` (gloo on the CPU), Slurm's
copies, one run per folder, and a two-node rendezvous on one host.  Each test's
docstring names the defect it guards."""
import csv
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from trainer import checkpoint
from trainer.cluster import ClusterError, StopRequest, check_not_slurm_copies
from trainer.config import make_configs
from trainer.launch import split_arguments
from trainer.loop import fit, resume_configs
from trainer.run_folder import RunError, RunFolder

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gopro(make_gopro):
    """A GOPRO_Large-layout folder: 6 training and 3 test pairs of 48x64."""
    return make_gopro("cluster", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from test_faults_training import make_shards

    return make_shards(tmp_path_factory.mktemp("cluster-shards") / "shards", [4, 4], side=40)


def fit_args(out, gopro, steps=4, workers=0, extra=()):
    """A tiny CPU run's ``trainer fit`` options, as a job script would write them."""
    return ["--out", str(out), "--gopro", str(gopro), "--mix", "0:1", "--preset", "tiny", "--crop", "32",
            "--batch-size", "1", "--gopro-scale", "1", "--workers", str(workers), "--device", "cpu",
            "--content-loss", "l1", "--content-weight", "10", "--no-preview", "--val-limit", "1", "--steps", str(steps), "--log-every", "1",
            "--checkpoint-every", "100", *extra]


# --- 1: the same command plus --resume ---------------------------------------------------------


def test_the_runs_own_options_are_accepted_on_resume(tmp_path, gopro, shards, monkeypatch):
    """Issue 19.1: `--resume` refused the run's own --mix ("cannot change mix ... (2, 1)"),
    --shards and --gopro (printed as PosixPath tuples), and --preset outright: a requeued
    job, which runs the same command plus --resume, could not continue."""
    monkeypatch.chdir(tmp_path)
    command = ["fit", *fit_args("run", os.path.relpath(gopro, tmp_path), steps=2),
               "--shards", os.path.relpath(shards, tmp_path), "--mix", "2:1"]
    first = CliRunner().invoke(cli.trainer, command)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli.trainer, [*command, "--resume"])
    assert again.exit_code == 0, again.output
    assert "finished at step 2 of 2" in again.stdout

    changed = CliRunner().invoke(cli.trainer, [*command, "--mix", "1:1", "--resume"])
    assert changed.exit_code == 2
    assert "cannot change mix when resuming (the run used 2:1, not 1:1)" in changed.stderr
    other = [str(gopro) if word == os.path.relpath(shards, tmp_path) else word for word in command]
    elsewhere = CliRunner().invoke(cli.trainer, [*other, "--resume"])
    assert elsewhere.exit_code == 2 and "PosixPath" not in elsewhere.stderr
    assert f"the run used {shards.resolve()}, not {Path(gopro).resolve()})" in elsewhere.stderr
    # A preset's value that differs from the run's is named, and where it came from.
    other_preset = [c if c != "tiny" else "paper" for c in command]
    refused = CliRunner().invoke(cli.trainer, [*other_preset, "--resume"])
    assert refused.exit_code == 2 and "(--preset paper)" in refused.stderr


def test_resume_configs_compare_values_not_spellings(tmp_path, gopro):
    train, data = make_configs("tiny", dict(out=tmp_path / "run", steps=1, device="cpu", content_loss="l1",
                                            preview=False, val_limit=1),
                               dict(gopro=gopro, mix="0:1", crop=32, batch_size=1, gopro_scale=1.0, workers=0))
    fit(train, data)
    same, same_data = resume_configs(tmp_path / "run", {"lr": train.lr, "log_every": 7},
                                     {"mix": "0:1", "gopro": str(gopro), "workers": 1})
    assert same.log_every == 7 and same_data.workers == 1 and same_data.mix == (0, 1)
    with pytest.raises(RunError, match=r"cannot change crop when resuming \(the run used 32, not 64\)"):
        resume_configs(tmp_path / "run", {}, {"crop": 64})


def test_a_changed_world_size_names_the_way_forward(tmp_path, gopro):
    """Issue 19.5: a changed number of processes was refused with no way forward."""
    train, data = make_configs("tiny", dict(out=tmp_path / "run", steps=1, device="cpu", content_loss="l1",
                                            preview=False, val_limit=1),
                               dict(gopro=gopro, mix="0:1", crop=32, batch_size=1, gopro_scale=1.0, workers=0))
    fit(train, data)
    with pytest.raises(RunError, match=r"of 1 processes, not 2: .* --init-from .*last\.pt --out NEW_RUN"):
        RunFolder(train, data, world_size=2).read_last("cpu")


# --- 4: Slurm's copies, and one run per folder ------------------------------------------------


@pytest.mark.parametrize("env, refused", [
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, True),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "4"}, True),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "1"}, False),   # srun --ntasks=1
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, False),
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "RANK": "1", "WORLD_SIZE": "4"}, False),  # torchrun's rank
])
def test_slurm_copies_are_refused_ranks_are_not(env, refused):
    if refused:
        with pytest.raises(ClusterError, match="Slurm started .* copies .* trainer launch"):
            check_not_slurm_copies(env)
    else:
        check_not_slurm_copies(env)


def test_srun_copies_of_fit_end_in_one_line(tmp_path, gopro, monkeypatch):
    """Issue 19.4: `srun trainer fit` with 2 tasks ran two independent runs in one folder."""
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    result = CliRunner().invoke(cli.trainer, ["fit", *fit_args(tmp_path / "run", gopro)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "srun --ntasks-per-node=1 trainer launch" in result.stderr
    assert not (tmp_path / "run").exists()


def start(args, env=None):
    """A command of this project in its own session, as a batch job runs it."""
    return subprocess.Popen([sys.executable, "-c", "import cli; cli.trainer()", *args], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(env or {})),
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def logged_steps(path):
    try:
        with open(path, newline="") as f:
            return [int(r["step"]) for r in csv.DictReader(f) if r["name"] == "train/lr"]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def wait_for_step(proc, out, step, timeout=120):
    deadline = time.monotonic() + timeout
    while max(logged_steps(out / "scalars.csv"), default=0) < step:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the run did not reach step {step}"
        time.sleep(0.05)


def test_a_second_run_in_a_running_runs_folder_is_refused(tmp_path, gopro):
    """Issue 19.4: nothing kept two runs out of one folder (interleaved scalars.csv rows,
    two TensorBoard event files)."""
    out = tmp_path / "run"
    proc = start(["fit", *fit_args(out, gopro, steps=100000)])
    try:
        wait_for_step(proc, out, 1)
        for extra in ([], ["--resume"]):
            second = CliRunner().invoke(cli.trainer, ["fit", *fit_args(out, gopro), *extra])
            assert second.exit_code == 2, second.output
            assert re.search(rf"run folder {re.escape(str(out))} is being written by PID {proc.pid} on ",
                             second.stderr), second.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not (out / ".last.pt.lock").exists()


# --- 2, 3: stops under torchrun ---------------------------------------------------------------


def torchrun(args, launcher):
    """``trainer launch ARGS`` or plain torchrun (``python -m torch.distributed.run``) on ``trainer fit``."""
    if launcher == "trainer launch":
        return start(["launch", *args])
    options, fit_options = split_arguments(args)
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *options, "-m", "trainer", "fit",
                             *fit_options], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def processes_of(out):
    """PIDs of live processes whose command line names ``out``: the ranks and their workers."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(out).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def assert_all_gone(out, timeout=60):
    deadline = time.monotonic() + timeout
    while processes_of(out):
        assert time.monotonic() < deadline, f"orphans still running: {processes_of(out)}"
        time.sleep(0.1)


@pytest.mark.parametrize("launcher, signum, to", [
    ("torchrun", signal.SIGTERM, "launcher"),             # 19.2: torchrun forwards SIGTERM; the ranks saved nothing
    ("torchrun", signal.SIGUSR1, "launcher"),             # 19.3: torchrun dies; its ranks trained on as orphans
    ("trainer launch", signal.SIGUSR1, "every process"),  # 19.3: Slurm's --signal reaches every process
])
def test_a_stop_signal_under_torchrun_saves_the_finished_step(tmp_path, gopro, launcher, signum, to):
    """Issues 19.2 and 19.3: under torchrun, SIGTERM kept only the last periodic checkpoint
    and SIGUSR1 killed torchrun and left the ranks training on.  Now every rank stops after
    the same step, rank 0 saves it, and no process is left; `trainer launch` exits 128 + N."""
    out = tmp_path / "run"
    proc = torchrun(["--nproc-per-node", "2", "fit", *fit_args(out, gopro, steps=100000, workers=1)], launcher)
    wait_for_step(proc, out, 3)
    if to == "launcher":
        os.kill(proc.pid, signum)
    else:
        for pid in [proc.pid, *processes_of(out)]:
            os.kill(pid, signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert_all_gone(out)
    done = max(logged_steps(out / "scalars.csv"))
    assert checkpoint.load(out / "last.pt")["step"] == done >= 3
    if launcher == "torchrun":   # its own SignalException traceback, if any, is all it prints
        assert stderr.count("Traceback") == stderr.count("SignalException: Process"), stderr
    else:
        assert "Traceback" not in stderr, stderr
    # A peer may have been stopped by the launcher's SIGTERM first: rank 0 names the signal it stopped on.
    assert re.search(rf"stopped by SIG(TERM|USR1) at step {done} of 100000", stdout), stdout
    if launcher == "trainer launch":
        assert proc.returncode == 128 + signum, stderr


# --- 6: several nodes -------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_meet_through_a_c10d_rendezvous_on_one_host(tmp_path, gopro):
    """Issue 19.6: two `trainer launch --nnodes 2` processes (one "node" each) join one run
    through the c10d rendezvous, as the sbatch script starts them on two machines."""
    out = tmp_path / "run"
    port = free_port()
    nodes = [start(["launch", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test-job", "fit",
                    *fit_args(out, gopro, steps=3)]) for _ in range(2)]
    results = [node.communicate(timeout=180) for node in nodes]
    for node, (_stdout, stderr) in zip(nodes, results):
        assert node.returncode == 0, stderr
    assert sum("finished at step 3 of 3" in stdout for stdout, _ in results) == 1   # rank 0 speaks
    state = checkpoint.load(out / "last.pt")
    assert state["step"] == 3 and state["data"]["world_size"] == 2


def test_the_sbatch_scripts_launch_line_is_valid_torchrun():
    """The documented sbatch script's `trainer launch` options parse as torchrun's, and it requeues."""
    from torch.distributed import run as torchrun_module

    script = (ROOT / "docs" / "slurm" / "train.sbatch").read_text()
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert "#SBATCH --signal=USR1@120" in script and "--requeue" in script
    command = script.split("srun --kill-on-bad-exit=0 trainer launch", 1)[1].split(" || ")[0]
    env = {"SLURM_NNODES": "2", "GPUS_PER_NODE": "4", "HEAD": "node1", "SLURM_JOB_ID": "7", "OUT": "runs/paper"}
    command = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], command.replace('"${RESUME[@]}"', "--resume"))
    options, fit_options = split_arguments(shlex.split(command.replace("\\\n", " ")))
    args = torchrun_module.parse_args([*options, "-m", "trainer", "fit", *fit_options])
    assert (args.nnodes, args.nproc_per_node, args.rdzv_backend) == ("2", "4", "c10d")
    assert "--resume" in script


def test_stop_request_agrees_across_ranks_without_a_group():
    stop = StopRequest(enabled=False)
    assert not stop.agreed()
    stop.handle(signal.SIGUSR1, None)
    assert stop.agreed() and stop.signum == signal.SIGUSR1
    stop.handle(signal.SIGTERM, None)   # a repeated signal changes nothing
    assert stop.signum == signal.SIGUSR1
    with pytest.raises(KeyboardInterrupt):
        stop.handle(signal.SIGINT, None)   # a second Ctrl-C stops at once

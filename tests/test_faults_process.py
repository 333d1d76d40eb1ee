"""Issue 11, items 5-8: two runs on one folder, kill -9 / SIGTERM / Ctrl-C, a full disk,
odd file names in the skip report — for the blurgen commands that write."""
import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from blurgen import shards
from blurgen.physics.kernels import KernelSpec, write_bank
from blurgen.plumbing import files
from cli import blurgen

ROOT = Path(__file__).resolve().parents[1]
# Small, slow-enough kernels: a run lasts a few seconds, so that it can be hit mid-way.
SLOW = ["--kernel-size", "15", "--iters", "2000", "--max-len", "10", "--crop", "32", "--shard-size", "1"]
FAST = ["--kernel-size", "15", "--iters", "200", "--max-len", "10"]


def command(*args) -> list[str]:
    return [sys.executable, "-c", "from cli import blurgen; blurgen()", *(str(a) for a in args)]


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def write_photos(folder: Path, n: int, side: int = 48, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img{i:03d}.png"), cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC))
    return folder


def wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp-*"))


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def one_line_error(stderr: str) -> str:
    """The last line of stderr (progress bars come before it), after checking
    that no traceback or ignored exception was printed."""
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1]


# --- 5: one run per --part of a folder -------------------------------------------------------------


def test_second_synthesize_on_one_folder_is_refused_naming_the_holder(tmp_path):
    """Issue 11.5: a second `synthesize` on the --out (and --part) of a live run deleted the
    first's temporary files and killed it; now it is refused with one line naming the PID."""
    src = write_photos(tmp_path / "src", 30)
    out = tmp_path / "out"
    first = subprocess.Popen(command("synthesize", "--src", src, "--out", out, "--workers", 1, *SLOW), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: temporaries(out)), "the first run never started a shard"
        res = run("synthesize", "--src", src, "--out", out, "--workers", 1, *SLOW)
        assert res.exit_code == 2
        assert f"is being written by PID {first.pid} on " in res.output and len(res.output.splitlines()) == 1
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err[-2000:]
    assert len(json.loads((out / "manifest.json").read_text())["shards"]) == 30
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries, no lock file


def test_parts_of_one_folder_still_run_at_the_same_time(tmp_path):
    """Issue 11.5: the lock is per --part, so the parts of a job array may share a folder
    while they run (and a run of the same part is refused)."""
    src = write_photos(tmp_path / "src", 30)
    out = tmp_path / "out"
    first = subprocess.Popen(command("synthesize", "--src", src, "--out", out, "--workers", 1, "--part", "0/2",
                                     *SLOW), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: temporaries(out))
        res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--part", "0/2", *SLOW)
        assert res.exit_code == 2 and f"(part 0/2) is being written by PID {first.pid}" in res.output
        res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--part", "1/2", *SLOW)
        assert res.exit_code == 0, res.output
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err[-2000:]
    assert len(shards.find_shards(out)) == 30


def test_overwrite_is_refused_while_another_part_runs(tmp_path):
    """Issue 11.5: a whole run with --overwrite deletes the parts' files; it is refused while a
    part is running, naming its PID, and the part finishes intact."""
    src = write_photos(tmp_path / "src", 20)
    out = tmp_path / "out"
    part = subprocess.Popen(command("synthesize", "--src", src, "--out", out, "--workers", 1, "--part", "1/2",
                                    *SLOW), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: temporaries(out))
        res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--overwrite", *SLOW)
        assert res.exit_code == 2
        assert f"(manifest.part-1-of-2.json) is being written by PID {part.pid} on " in res.output
        _, err = part.communicate(timeout=120)
    finally:
        part.kill()
    assert part.returncode == 0, err[-2000:]
    assert len(json.loads((out / "manifest.part-1-of-2.json").read_text())["shards"]) == 10


def test_lock_is_not_stale_after_kill_9(tmp_path):
    """Issue 11.5: a run killed with kill -9 leaves its lock file, but not its lock: the next
    run goes ahead (and removes the file at its end)."""
    path = tmp_path / "bank.h5"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from blurgen.plumbing import files\n"
                               "with files.exclusive_lock(sys.argv[1]):\n print('locked', flush=True); time.sleep(60)",
                               str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    with pytest.raises(files.Busy, match=f"PID {holder.pid} on "):
        with files.exclusive_lock(path):
            pass
    holder.kill()
    holder.wait()
    assert files.lock_name(path).exists()
    write_bank(path, 3, 0, KernelSpec(size=9, iters=50, max_len=5.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.h5"]


# --- 6: temporaries of killed runs, SIGTERM, Ctrl-C ------------------------------------------------

KERNELS = ["--size", "32", "--iters", "300", "--max-len", "20"]


def test_make_kernels_removes_the_temporary_a_kill_9_left(tmp_path):
    """Issue 11.6: `make-kernels` killed with kill -9 left `.NAME.tmp-PID` (up to 93 MB) for
    ever; the next run removes it, but not the temporary of a live process."""
    out = tmp_path / "bank.h5"
    proc = subprocess.Popen(command("make-kernels", "-n", 200000, "--out", out, *KERNELS), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: temporaries(tmp_path))
    proc.kill()
    proc.wait()
    left = temporaries(tmp_path)
    assert left == [f".bank.h5.tmp-{proc.pid}"]
    live = tmp_path / f".bank.h5.tmp-{os.getppid()}"  # a live process: as a run still writing holds it
    live.write_bytes(b"in flight")
    res = run("make-kernels", "-n", 10, "--out", out, *KERNELS)
    assert res.exit_code == 0, res.output
    assert temporaries(tmp_path) == [live.name]


def test_stale_temporaries_are_those_of_dead_processes(tmp_path):
    """Issue 11.6: only temporaries whose PID is not a live process are removed."""
    path = tmp_path / "shard-00001.h5"
    dead = tmp_path / f".shard-00001.h5.tmp-{dead_pid()}"
    alive = tmp_path / f".shard-00001.h5.tmp-{os.getppid()}"
    other = tmp_path / f".shard-00002.h5.tmp-{dead_pid()}"
    for p in (dead, alive, other):
        p.write_bytes(b"x")
    assert files.remove_stale_temporaries(path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


def interrupt(cmd, folder: Path, signum: int, delay: float, group: bool = False):
    """Start ``cmd``, wait until it writes a temporary in ``folder``, wait ``delay`` s more,
    send ``signum`` (to its whole process group with ``group``); return (returncode, stderr,
    seconds from the signal to the exit)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=group)
    try:
        assert wait_for(lambda: temporaries(folder)), "the run never started writing"
        time.sleep(delay)
        sent = time.perf_counter()
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        return proc.returncode, err, time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()


DELAYS = [0.0, 0.01, 0.02, 0.05, 0.08, 0.12, 0.2, 0.3]


def test_ctrl_c_always_stops_make_kernels(tmp_path):
    """Issue 11.6: Ctrl-C was sometimes swallowed ("Exception ignored in: ... WeakValueDictionary")
    and `make-kernels` went on to 100 %, exit 0.  Now every try stops it at once, one line, exit
    130, nothing written."""
    for k, delay in enumerate(DELAYS):
        out = tmp_path / f"bank{k}.h5"
        rc, err, seconds = interrupt(command("make-kernels", "-n", 200000, "--out", out, *KERNELS),
                                     tmp_path, signal.SIGINT, delay)
        assert rc == 130, (delay, err[-2000:])
        assert one_line_error(err) == f"interrupted (Ctrl-C): nothing written to {out}"
        assert seconds < 5
        assert not out.exists() and not temporaries(tmp_path)


def test_sigterm_stops_make_kernels_and_removes_its_temporary(tmp_path):
    """Issue 11.6: SIGTERM (a scheduler's time limit) killed `make-kernels` outright and left its
    temporary file; now it stops like Ctrl-C, removing it."""
    out = tmp_path / "bank.h5"
    rc, err, _ = interrupt(command("make-kernels", "-n", 200000, "--out", out, *KERNELS), tmp_path,
                           signal.SIGTERM, 0.05)
    assert rc == 130 and one_line_error(err) == f"interrupted (SIGTERM): nothing written to {out}"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_always_stops_synthesize_with_one_worker(tmp_path):
    """Issue 11.6: Ctrl-C was swallowed once in eleven tries of `synthesize --workers 1`; now
    every try stops it promptly with one line, exit 130, finished shards kept, no temporary."""
    src = write_photos(tmp_path / "src", 40)
    for k, delay in enumerate(DELAYS):
        out = tmp_path / f"out{k}"
        rc, err, seconds = interrupt(command("synthesize", "--src", src, "--out", out, "--workers", 1, *SLOW),
                                     out, signal.SIGINT, delay)
        assert rc == 130, (delay, err[-2000:])
        assert one_line_error(err).startswith("interrupted (Ctrl-C): finished shards are kept")
        assert seconds < 5
        assert not temporaries(out)
        listed = json.loads((out / "manifest.json").read_text())["shards"]
        assert len(listed) < 40 and all((out / name).is_file() for name in listed)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_signal_to_the_process_group_stops_synthesize_workers(tmp_path, signum):
    """Issue 11.6: Ctrl-C or SIGTERM sent to the whole process group of `synthesize --workers 2`
    (as a terminal or a batch scheduler does) stops parent and workers: one line, exit 130,
    no temporary left, and the same command finishes the job."""
    src = write_photos(tmp_path / "src", 12)
    out = tmp_path / "out"
    cmd = command("synthesize", "--src", src, "--out", out, "--workers", 2, *SLOW)
    rc, err, seconds = interrupt(cmd, out, signum, 0.1, group=True)
    assert rc == 130, err[-2000:]
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    assert one_line_error(err).startswith(f"interrupted ({name}): ")  # issue 21.4: SIGUSR1 killed it
    assert seconds < 10
    assert not temporaries(out) and not files.lock_name(out / "manifest.json").exists()
    assert run("synthesize", "--src", src, "--out", out, "--workers", 1, *SLOW).exit_code == 0  # same output
    assert len(shards.find_shards(out)) == 12


# --- 7: a full disk ----------------------------------------------------------------------------------


@pytest.fixture(params=["tmpfs", "file-size-limit"])
def small_disk(request, tmp_path):
    """(folder, limit): a folder with little room.  ``tmpfs``: a real 2 MB tmpfs (skipped
    where mounting is not allowed), ``limit(n)`` is None; ``file-size-limit``: ``limit(n)`` is
    a preexec_fn that keeps every file of the command under n bytes (RLIMIT_FSIZE), so that
    write(2) fails mid-file as on a full disk (EFBIG instead of ENOSPC), on any machine."""
    folder = tmp_path / "small"
    folder.mkdir()
    if request.param == "tmpfs":
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(folder)]))
        yield folder, lambda nbytes: None
    else:
        def limit(nbytes):
            return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
        yield folder, limit


def fill(folder: Path) -> None:
    """Leave almost no room in a small tmpfs (a file-size limit needs no filling)."""
    if os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize < 64 << 20:
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)


def run_limited(cmd, preexec):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=preexec, timeout=120)


def test_make_kernels_on_a_full_disk_ends_on_one_line(small_disk):
    """Issue 11.7: `make-kernels` on a full disk printed HDF5's two-line error and died of a
    segmentation fault (exit 139); now one line naming the file, exit 2, no temporary."""
    folder, limit = small_disk
    preexec = limit(1 << 20)
    out = folder / "bank.h5"
    done = run_limited(command("make-kernels", "-n", 9000, "--out", out, "--size", 64, "--iters", 300,
                               "--max-len", 20), preexec)
    assert done.returncode == 2, done.stderr[-3000:]
    assert one_line_error(done.stderr).startswith(f"error: {out}: could not write (")
    assert not [p for p in folder.iterdir() if p.name != "filler"]


@pytest.mark.parametrize("workers", [1, 2])
def test_synthesize_on_a_full_disk_ends_on_one_line(small_disk, workers, tmp_path):
    """Issue 11.7: `synthesize` on a full disk gave a traceback (several workers) or a
    segmentation fault (one worker); now one line naming the folder, exit 2, the finished
    shards listed and intact, no temporary, and the same command resumes once there is room."""
    folder, limit = small_disk
    preexec = limit(200_000)  # a shard is about 400 kB
    src = write_photos(tmp_path / "src", 24, side=200)
    out = folder / "shards"
    # --no-space-check: the disk fills during the run (as when other writers share it)
    args = ["synthesize", "--src", src, "--out", out, "--workers", workers, "--shard-size", 4, "--crop", 128,
            "--no-space-check", *FAST]
    done = run_limited(command(*args), preexec)
    assert done.returncode == 2, done.stderr[-3000:]
    line = one_line_error(done.stderr)
    assert line.startswith(f"error: {out}: could not write (") and "run the same command again" in line
    assert not temporaries(out) and not files.lock_name(out / "manifest.json").exists()
    checked, problems = shards.verify_folder(out)
    assert problems == [] and checked < 6


def test_synthesize_full_images_on_a_full_disk_ends_on_one_line(small_disk, tmp_path):
    """Issue 11.7: the same with whole images (--full), written one dataset per sample."""
    folder, limit = small_disk
    preexec = limit(200_000)
    src = write_photos(tmp_path / "src", 24, side=200)
    out = folder / "shards"
    done = run_limited(command("synthesize", "--src", src, "--out", out, "--workers", 1, "--shard-size", 5,
                               "--full", "--no-space-check", *FAST), preexec)
    assert done.returncode == 2, done.stderr[-3000:]
    assert one_line_error(done.stderr).startswith(f"error: {out}: could not write (")
    assert not temporaries(out)


def test_show_kernels_and_inspect_png_on_a_full_disk_end_on_one_line(small_disk, tmp_path):
    """Issue 11.7: `show-kernels --png` and `inspect --png` on a full disk ended in a traceback;
    now one line naming the PNG, exit 2, no temporary."""
    folder, limit = small_disk
    bank = tmp_path / "bank.h5"
    write_bank(bank, 16, 0, KernelSpec(size=64, iters=300, max_len=40.0))
    src = write_photos(tmp_path / "src", 6, side=300)
    data = tmp_path / "shards"
    assert run("synthesize", "--src", src, "--out", data, "--workers", 1, "--crop", 256, *FAST).exit_code == 0
    fill(folder)
    for args, png in ((["show-kernels", bank, "--png"], folder / "kernels.png"),
                      (["inspect", data, "--samples", 6, "--png"], folder / "samples.png")):
        done = run_limited(command(*args, png), limit(2000))
        assert done.returncode == 2, done.stderr[-3000:]
        assert one_line_error(done.stderr) == f"error: {png}: could not write ({os.strerror(27 if limit(1) else 28)})"
        assert not png.exists() and not temporaries(folder)


# --- 8: the skip report --------------------------------------------------------------------------


def test_skip_report_keeps_file_names_with_tabs_and_newlines(tmp_path):
    """Issue 11.8: `skipped.tsv` wrote file names holding a tab or a line break as they were,
    so its rows could not be read back; now such fields are quoted (RFC 4180 style)."""
    src = write_photos(tmp_path / "src", 2)
    odd = ["tab\there.png", "line\nbreak.jpg", 'quote".png', "cr\rhere.png"]
    for name in odd:
        (src / name).write_text("not an image")
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--crop", 32, *FAST)
    assert res.exit_code == 0, res.output
    with open(out / "skipped.tsv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["path", "reason", "detail"]
    assert sorted(row[0] for row in rows[1:]) == sorted(odd)
    assert all(len(row) == 3 for row in rows)


# --- issue 22: pool workers that outlive their run, or die under it ------------------------------------

def slow_shards(tmp_path: Path) -> tuple[Path, list]:
    """(photos, options) of a run of two shards of several seconds each (160 crops of 256 px
    blurred by 64-px kernels), so that a worker is caught mid-shard."""
    bank = tmp_path / "bank.h5"
    write_bank(bank, 16, 0, KernelSpec(size=64, iters=300, max_len=40.0))
    return write_photos(tmp_path / "src", 80, side=400), ["--kernels", bank, "--crops-per-image", 4,
                                                          "--shard-size", 160, "--workers", 2]


def worker_pids(folder: Path) -> set[int]:
    """The PIDs of the processes writing shards in ``folder`` (their temporaries' names)."""
    return {int(name.rpartition("-")[2]) for name in temporaries(folder)}


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie that nobody reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_pool_workers_die_with_a_run_killed_by_kill_9(tmp_path):
    """Issue 22.17: after kill -9 of `synthesize --workers 2`, its workers built on as orphans and,
    about a second later, renamed their shards into the folder that a new run with --overwrite had
    taken (verify: "checksum differs"; 16 samples read from a 48-sample file).  Now the kernel
    kills them with the run (PR_SET_PDEATHSIG), and the new run's data set verifies."""
    src, options = slow_shards(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(command("synthesize", "--src", src, "--out", out, *options),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(worker_pids(out)) == 2), "the workers never started a shard"
        pids = worker_pids(out)
        proc.kill()
        proc.wait()
        assert wait_for(lambda: not any(running(pid) for pid in pids), timeout=2), "the workers outlived the run"
    finally:
        proc.kill()
    res = run("synthesize", "--src", src, "--out", out, "--workers", 2, "--overwrite", "--crop", 32,
              "--shard-size", 40, *FAST)
    assert res.exit_code == 0, res.output
    time.sleep(1)  # where an orphan would have renamed its shard by now
    assert shards.verify_folder(out) == (2, [])
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("shard-")) == ["shard-00000.h5", "shard-00001.h5"]


def test_a_pool_worker_killed_by_kill_9_ends_the_run_in_one_line(tmp_path):
    """Issue 22.18: a pool worker killed as the out-of-memory killer does (SIGKILL) left the run
    waiting for ever for its shard ("384/384 (100%)", no exit).  Now the run ends at once in one
    line naming how the worker died, exit 2, no temporary, no lock; the finished shards verify."""
    src, options = slow_shards(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(command("synthesize", "--src", src, "--out", out, *options),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(worker_pids(out)) == 2), "the workers never started a shard"
        os.kill(min(worker_pids(out)), signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 2, err[-2000:]
    line = one_line_error(err)
    assert line.startswith("error: a worker process died (killed by SIGKILL") and "run the same command" in line
    assert not temporaries(out) and not files.lock_name(out / "manifest.json").exists()
    assert shards.verify_folder(out)[1] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_sigterm_stops_average_inside_a_long_window(tmp_path, signum):
    """Issue 22.22: `average --interpolate 200000` checked for a stop only between windows, and a
    window took minutes: SIGTERM and Ctrl-C were ignored (only kill -9 stopped it).  Now the stop
    is checked before each averaged frame: exit 130 at once, one line, no temporary.  Issue 21.4:
    Slurm's SIGUSR1 warning killed it; now it stops it the same way."""
    src = tmp_path / "src" / "clip"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(3):
        cv2.imwrite(str(src / f"f{t}.png"), rng.integers(0, 256, (24, 28, 3), dtype=np.uint8))
    out = tmp_path / "out"
    cmd = command("average", "--src", src.parent, "--out", out, "--frames", "3-3", "--interpolate", 200000,
                  "--crop", 16, "--windows-per-clip", 1, "--workers", 1)
    rc, err, seconds = interrupt(cmd, out, signum, 0.5)
    assert rc == 130, err[-2000:]
    assert one_line_error(err).startswith(f"interrupted ({signal.Signals(signum).name}): finished shards are kept")
    assert seconds < 5 and not temporaries(out)


def test_one_stop_mechanism_for_both_command_lines():
    """Issue 21.4: blurgen's StopFlag and the trainer's StopRequest were two mechanisms (only the
    trainer's knew SIGUSR1 and the second Ctrl-C).  Now there is one: the first signal sets the
    flag, a repeated SIGTERM/SIGUSR1 changes nothing, a second Ctrl-C stops at once."""
    from blurgen.plumbing.stopping import SIGNALS, StopFlag
    from trainer.cluster import StopRequest

    assert set(SIGNALS) == {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1}
    for flag in (StopFlag(), StopRequest(enabled=False)):
        assert isinstance(flag, StopFlag) and not flag
        flag.handle(signal.SIGUSR1)
        flag.handle(signal.SIGTERM)
        assert flag.signum == signal.SIGUSR1
        with pytest.raises(KeyboardInterrupt):
            flag.handle(signal.SIGINT)


def test_workers_ignore_the_stop_signals_but_those_kept():
    code = ("import os, signal, time\nfrom blurgen.plumbing.stopping import ignore_in_worker\n"
            "ignore_in_worker(keep=(signal.SIGTERM,))\n"
            "for s in (signal.SIGINT, signal.SIGUSR1):\n    os.kill(os.getpid(), s)\n"
            "time.sleep(0.1)\nprint('alive')\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(5)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout == "alive\n" and done.returncode == -signal.SIGTERM, done.stderr

"""bench/gpu_check.sh's reduced CPU form runs end to end, so the GPU check cannot rot
before a GPU session runs its full form."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_gpu_check_runs_every_part_on_the_cpu(tmp_path):
    out = tmp_path / "check"
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--device", "cpu", "--quick", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    summary = (out / "summary.txt").read_text()
    assert done.returncode == 0, summary
    parts = ("train_step", "launches", "data", "fit", "resume", "deblur")
    assert summary.count("   exit 0 after") == len(parts)
    assert all((out / f"{part}.txt").is_file() for part in parts)
    assert "bit for bit equal" in (out / "resume.txt").read_text()
    assert "fewer)" in (out / "launches.txt").read_text()
    assert (out / "fit-run" / "last.pt").is_file()


def test_gpu_check_refuses_a_missing_out(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--quick"], capture_output=True, text=True)
    assert done.returncode == 2 and "--out" in done.stderr

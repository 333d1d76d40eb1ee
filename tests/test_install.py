"""The Makefile's install: PyTorch's CPU-only build on request, nothing else changed."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU = "https://download.pytorch.org/whl/cpu"


def dry_run(tmp_path, *args) -> list[str]:
    # A copy without .venv, so that make plans the install; -n runs nothing.
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    # Under `make test` this make is a sub-make: without --no-print-directory and a clean
    # environment it would print "make[1]: Entering directory ..." lines of its own.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "test", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_torch_index_installs_the_cpu_build_first_and_only_when_asked(tmp_path):
    plain = dry_run(tmp_path)
    assert not any("torch" in line for line in plain)
    cpu = dry_run(tmp_path, f"TORCH_INDEX={CPU}")
    torch_line = next(i for i, line in enumerate(cpu) if "torch torchvision" in line)
    assert cpu[torch_line].endswith(f"--index-url {CPU}")
    project = next(i for i, line in enumerate(cpu) if "-e '.[test]'" in line)
    assert torch_line < project  # torch is there before pip resolves the project's dependencies
    assert [line for line in cpu if "torch torchvision" not in line] == plain
    assert CPU in (ROOT / "README.md").read_text()

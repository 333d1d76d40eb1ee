"""What `trainer fit` draws fits the terminal (issue 22.14): at 80x24 no line wraps, the
progress bar keeps its bar and count, a validation preview takes a quarter of the height;
at 200x60 the bar shows every statistic.  Run in tmux, read back with capture-pane."""
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


@pytest.fixture(scope="module")
def gopro(make_gopro):
    return make_gopro("layout", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


def screen_of(command, width, height, done, timeout=180):
    """The joined lines (wrapped lines put back together) of ``command`` run in a tmux
    window of width x height, once ``done`` appears on it."""
    session = f"layout-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(width), "-y", str(height),
                    f"{command}; sleep 60"], check=True, env=dict(os.environ, TERM="xterm-256color"))
    try:
        deadline = time.monotonic() + timeout
        while True:
            text = subprocess.run(["tmux", "capture-pane", "-p", "-J", "-t", session], capture_output=True,
                                  text=True, check=True).stdout
            if done in text:
                return text.rstrip("\n").split("\n")
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def fit_command(out, gopro):
    return (f"cd {ROOT} && OMP_NUM_THREADS=1 PYTHONPATH={ROOT} {sys.executable} -c 'import cli; cli.trainer()' "
            f"fit --out {out} --gopro {gopro} --mix 0:1 --preset tiny --crop 32 --batch-size 1 --gopro-scale 1 "
            "--workers 0 --device cpu --content-loss l1 --val-limit 1 --steps 40 --val-every 20 --log-every 5")


@pytest.mark.parametrize("width, height", [(80, 24), (200, 60)])
def test_fit_fits_the_terminal(tmp_path, gopro, width, height):
    lines = screen_of(fit_command(tmp_path / "run", gopro), width, height, "finished at step 40")
    assert max(len(line) for line in lines) <= width, [line for line in lines if len(line) > width]
    bar = [line for line in lines if line.startswith("fit: 100%|")]
    assert bar and "█" in bar[-1] and "40/40" in bar[-1], lines
    assert ("W=" in bar[-1]) == (width >= 120) and "content=" in bar[-1]
    preview = [line for line in lines if "▀" in line]
    assert 0 < len(preview) <= 2 * max(4, height // 4 - 1)   # two validations
    assert any(line.startswith("  ") for line in lines)      # long messages wrapped at words, indented


@pytest.mark.parametrize("width, height", [(80, 24), (200, 60)])
def test_show_kernels_keeps_its_drawings_on_the_screen(tmp_path, width, height):
    """Issue 22.14: `show-kernels --index 0-15` printed 76-88 lines: at 80x24 and 200x60 the
    drawings scrolled away and only the histograms remained; 84-character parameter lines
    wrapped at 80 columns; the length histogram had 8 bins for 3 values."""
    bank = tmp_path / "k.h5"
    made = subprocess.run([sys.executable, "-c", "import cli; cli.blurgen()", "make-kernels", "-n", "50",
                           "--out", str(bank), "--iters", "500"], cwd=ROOT, capture_output=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert made.returncode == 0, made.stderr
    command = (f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} -c 'import cli; cli.blurgen()' "
               f"show-kernels {bank} --index 0-15; echo DONE")
    lines = screen_of(command, width, height, "DONE")
    assert max(len(line) for line in lines) <= width
    labels = [line for line in lines if line.startswith("#0") or line.startswith("#8")]
    assert len(labels) == 2 and any("▀" in line for line in lines)   # every drawing still on screen
    if height >= 60:
        assert any(line.startswith("trajectory length (px): ") for line in lines)   # 3 values, 3 counts


def test_inspect_wraps_at_words_within_80_columns(tmp_path):
    """Issue 22.14: `inspect` wrapped its parameter lines mid-word at 80 columns; issue 22.15:
    its pictures never said "blurred"."""
    import numpy as np
    from PIL import Image

    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8)).save(src / "a.png")
    made = subprocess.run([sys.executable, "-c", "import cli; cli.blurgen()", "synthesize", "--src", str(src),
                           "--out", str(tmp_path / "shards"), "--crop", "48", "--kernel-size", "15",
                           "--iters", "200", "--workers", "1"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert made.returncode == 0, made.stderr
    command = (f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} -c 'import cli; cli.blurgen()' "
               f"inspect {tmp_path / 'shards'} --samples 1; echo DONE")
    lines = screen_of(command, 80, 24, "DONE")
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("blurred ") and "sharp" in line and "kernel x" in line for line in lines)
    assert any(line.startswith("  kernel_") for line in lines)   # parameters wrapped at words, indented


def test_synthesize_wraps_its_lines_at_words_within_80_columns(tmp_path):
    """Issue 22.14: synthesize's "planned: ..." line (about 120 characters) wrapped mid-word."""
    import numpy as np
    from PIL import Image

    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (96, 96, 3), np.uint8)).save(src / f"{i}.png")
    command = (f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} -c 'import cli; cli.blurgen()' synthesize "
               f"--src {src} --out {tmp_path / 'shards'} --crop 48 --kernel-size 15 --iters 200 --workers 1; "
               "echo DONE")
    lines = screen_of(command, 80, 24, "DONE")
    assert max(len(line) for line in lines) <= 80, lines
    assert any(line.startswith("planned: 3 pairs") for line in lines)
    assert any(line.startswith("  ") for line in lines)   # the rest of it, indented under it

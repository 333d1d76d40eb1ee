"""The kernel-bank file, `blurgen make-kernels` / `show-kernels`, and terminal pictures."""
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from blurgen.physics.kernels import BankError, KernelSpec, kernel_seeds, make_kernels, read_bank, write_bank
from blurgen.plumbing import terminal
from cli import blurgen

SMALL = ["--size", "24", "--iters", "300", "--max-len", "20"]


def run(*args, **kw):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False, **kw)


def test_bank_roundtrip(tmp_path):
    spec = KernelSpec(size=24, iters=300, max_len=20.0)
    path = tmp_path / "bank.h5"
    write_bank(path, 50, seed=9, spec=spec, attrs={"note": "x"})
    batch, attrs = read_bank(path)
    expected = make_kernels(kernel_seeds(9, 50), spec)
    np.testing.assert_array_equal(batch.psf, expected.psf)
    for name, values in expected.params().items():
        np.testing.assert_array_equal(getattr(batch, name), values)
    assert attrs["seed"] == 9 and json.loads(attrs["spec"])["size"] == 24 and attrs["note"] == "x"
    part, _ = read_bank(path, np.array([3, 7]))
    np.testing.assert_array_equal(part.psf, expected.psf[[3, 7]])


def test_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "bank.h5"

    def boom(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_bank(path, 10, 0, KernelSpec(size=24, iters=300, max_len=20.0), progress=boom)
    assert list(tmp_path.iterdir()) == []


def test_read_bank_refuses_other_files(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["kernels"] = np.zeros((2, 3, 3))
    text = tmp_path / "text.h5"
    text.write_text("hello")
    for path in (other, text, tmp_path / "missing.h5"):
        with pytest.raises(BankError):
            read_bank(path)


def test_make_kernels_cli_writes_documented_layout(tmp_path):
    out = tmp_path / "k.h5"
    res = run("make-kernels", "-n", 20, "--seed", 4, "--out", out, *SMALL)
    assert res.exit_code == 0, res.output
    with h5py.File(out) as f:
        assert f["kernels"].shape == (20, 24, 24) and f["kernels"].dtype == np.float32
        for col in ("seed", "expl", "fraction", "length", "extent", "big_shakes"):
            assert f[col].shape == (20,)
        assert json.loads(f.attrs["arguments"])["n"] == 20
        assert f.attrs["format"] == "blurgen.kernel-bank"
    # Re-running needs --overwrite; with it the result is identical.
    assert run("make-kernels", "-n", 20, "--seed", 4, "--out", out, *SMALL).exit_code == 2
    first = read_bank(out)[0].psf
    assert run("make-kernels", "-n", 20, "--seed", 4, "--out", out, "--overwrite", *SMALL).exit_code == 0
    np.testing.assert_array_equal(read_bank(out)[0].psf, first)


@pytest.mark.parametrize(
    "args, message",
    [
        (["-n", 0], "-n must be >= 1"),
        (["--size", 2], "size must be >= 3"),
        (["--iters", 1], "iters must be >= 2"),
        (["--fraction", 0], "fraction must be in (0, 1]"),
        (["--fraction", 1.01], "fraction must be in (0, 1]"),
    ],
)
def test_make_kernels_bad_values(tmp_path, args, message):
    res = run("make-kernels", "--out", tmp_path / "k.h5", *args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "k.h5").exists()


def test_make_kernels_unwritable_output(tmp_path):
    res = run("make-kernels", "-n", 2, "--out", tmp_path / "no" / "k.h5")
    assert res.exit_code == 2 and "no such folder" in res.output


def test_show_kernels(tmp_path):
    out = tmp_path / "k.h5"
    run("make-kernels", "-n", 30, "--out", out, *SMALL)
    png = tmp_path / "sheet.png"
    res = run("show-kernels", out, "--index", "2-5,9", "--png", png)
    assert res.exit_code == 0, res.output
    assert "\x1b[" not in res.output  # not a terminal: plain ASCII
    rows = {line.split()[0] for line in res.output.splitlines() if line[:1].isdigit() and "   " in line}
    assert {"2", "3", "4", "5", "9"} <= rows and "6" not in rows   # the table's rows
    assert all(f"#{i}" in res.output for i in (2, 3, 4, 5, 9)) and "#6" not in res.output   # the grid's labels
    assert "30 kernels" in res.output and "big shakes per kernel" in res.output
    import cv2

    sheet = cv2.imread(str(png))
    assert sheet is not None and sheet.shape[1] > 5 * 24
    res = run("show-kernels", out, "--index", "40")
    assert res.exit_code == 2 and "--index" in res.output


def test_show_kernels_refuses_non_bank(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x00" * 100)
    res = run("show-kernels", bad)
    assert res.exit_code == 2 and "not a readable kernel bank" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_terminal_rendering():
    img = np.zeros((8, 16), np.float32)
    img[:, 8:] = 1.0
    text = terminal.render_images([img], width=16, color=False)
    lines = text.splitlines()
    assert len(lines) == 4  # two pixel rows per text row
    assert all(line.startswith(" " * 8) and line.endswith("@" * 8) for line in lines)
    colour = terminal.render_images([np.dstack([img] * 3)], width=16, color=True, labels=["x"])
    assert "\x1b[38;2;255;255;255m" in colour and "\u2580" in colour
    assert colour.splitlines()[-1] == "x"


def test_no_color_env(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert terminal.use_color(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not terminal.use_color(Tty())

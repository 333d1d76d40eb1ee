"""`blurgen synthesize / inspect / verify`, on small photos the tests write."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import signal as sps

from blurgen import shards
from blurgen.physics.blur import convolve_valid, linear_to_srgb, srgb_to_linear
from blurgen.physics.kernels import KernelSpec, read_bank, write_bank
from blurgen.sources import load_rgb
from cli import blurgen

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--kernel-size", "15", "--iters", "200", "--max-len", "10", "--crop", "32"]
SPEC = KernelSpec(size=15, iters=200, max_len=10.0)


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def write_photos(folder: Path, n: int, size=(80, 96), seed=0) -> Path:
    """n random smooth colour photos as JPEG/PNG, in two sub-folders."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        image = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        ext = ".png" if i % 3 == 0 else ".jpg"
        cv2.imwrite(str(sub / f"img{i:03d}{ext}"), image)
    return folder


def datasets(folder: Path) -> dict:
    """Every dataset of every shard, by (shard, name) — for byte-level comparisons."""
    out = {}
    for path in sorted(folder.glob("shard-*.h5")):
        with h5py.File(path) as f:
            for name, ds in f.items():
                out[(path.name, name)] = ds[()]
    return out


def one_run_equals_two_parts(run, args: list, tmp_path: Path) -> dict:
    """``synthesize ARGS`` in one run (into tmp_path/a) and as parts 0/2 + 1/2 (into tmp_path/b):
    asserts that both give the same datasets byte for byte; returns the one run's (``datasets``).
    ``run``: the test module's CLI runner, ``run(*args) -> click Result``."""
    for out, part in (("a", []), ("b", ["--part", "0/2"]), ("b", ["--part", "1/2"])):
        result = run(*args, "--out", tmp_path / out, *part)
        assert result.exit_code == 0, result.output
    a, b = datasets(tmp_path / "a"), datasets(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    return a


def listed_shards(folder: Path) -> dict:
    """The shards manifest.json lists so far ({} while there is none)."""
    try:
        return json.loads((folder / "manifest.json").read_text())["shards"]
    except (OSError, ValueError):
        return {}


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


# --- blur ---------------------------------------------------------------------


def test_convolve_valid_is_a_true_convolution():
    rng = np.random.default_rng(0)
    for k in (5, 15, 16):  # direct and FFT paths, odd and even sides
        psf = np.zeros((k, k), np.float32)
        psf[1 : k - 1, 2 : k - 2] = rng.random((k - 2, k - 4))  # support smaller than the kernel
        psf /= psf.sum()
        region = rng.random((40 + k - 1, 30 + k - 1, 3)).astype(np.float32)
        want = np.stack([sps.convolve2d(region[..., ch], psf, mode="valid") for ch in range(3)], axis=-1)
        np.testing.assert_allclose(convolve_valid(region, psf), want, atol=1e-5)


def test_srgb_roundtrip():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=2e-6)
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-4)


# --- synthesize ---------------------------------------------------------------


def test_flat_grey_stays_exactly_grey(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "grey.png"), np.full((70, 70, 3), 128, np.uint8))
    for extra in ([], ["--linear"], ["--saturate"]):
        out = tmp_path / f"out{len(extra)}{extra[:1]}"
        assert run("synthesize", "--src", src, "--out", out, "--workers", 1, *SMALL, *extra).exit_code == 0
        with shards.ShardReader(out / "shard-00000.h5") as r:
            blurred, sharp = r.read_pair(0)
        assert (blurred == 128).all() and (sharp == 128).all()


def test_a_dot_blurs_into_the_stored_kernel_where_the_dot_was(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    image = np.zeros((60, 60, 3), np.uint8)
    image[30, 29] = 255
    cv2.imwrite(str(src / "dot.png"), image)
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--full", "--expl", "0.01", *SMALL)
    assert res.exit_code == 0, res.output
    with shards.ShardReader(out / "shard-00000.h5") as r:
        sample = r.read_sample(0)
    y0, x0, y1, x1 = sample["crop_box"]
    blurred = sample["blurred"][..., 0].astype(np.float64) / 255
    k = sample["kernel"].shape[0]
    want = np.zeros_like(blurred)
    cy, cx = 30 - y0, 29 - x0  # the dot, in the output window
    want[cy - k // 2 : cy - k // 2 + k, cx - k // 2 : cx - k // 2 + k] = sample["kernel"]
    assert np.abs(blurred - want).max() <= 0.5 / 255 + 1e-6  # equal up to 8-bit rounding
    ys, xs = np.indices(blurred.shape)
    assert abs((blurred * ys).sum() / blurred.sum() - cy) < 0.05  # centre of mass where the dot was
    assert abs((blurred * xs).sum() / blurred.sum() - cx) < 0.05


def test_blurred_crop_equals_source_convolved_with_stored_kernel(tmp_path):
    src = write_photos(tmp_path / "src", 3)
    out = tmp_path / "out"
    assert run("synthesize", "--src", src, "--out", out, "--workers", 1, "--crops-per-image", 2, *SMALL).exit_code == 0
    checked = 0
    for info in shards.find_shards(out):
        with shards.ShardReader(info.path) as r:
            for i in range(len(r)):
                s = r.read_sample(i)
                photo = load_rgb(src / s["source"]).astype(np.float64) / 255
                y0, x0, y1, x1 = s["crop_box"]
                k = s["kernel"].shape[0]
                window = photo[y0 - (k - 1 - k // 2) : y1 + k // 2, x0 - (k - 1 - k // 2) : x1 + k // 2]
                want = np.stack([sps.convolve2d(window[..., c], s["kernel"], mode="valid") for c in range(3)], -1)
                assert np.abs(s["blurred"] - np.rint(want * 255)).max() <= 1
                np.testing.assert_array_equal(s["sharp"], load_rgb(src / s["source"])[y0:y1, x0:x1])
                checked += 1
    assert checked == 6


def test_same_output_whatever_the_workers_and_parts(tmp_path):
    src = write_photos(tmp_path / "src", 6)
    args = ["--shard-size", 2, "--crops-per-image", 2, *SMALL]
    assert run("synthesize", "--src", src, "--out", tmp_path / "w1", "--workers", 1, *args).exit_code == 0
    assert run("synthesize", "--src", src, "--out", tmp_path / "w2", "--workers", 2, *args).exit_code == 0
    one = datasets(tmp_path / "w1")
    assert_same(one, datasets(tmp_path / "w2"))
    m1 = json.loads((tmp_path / "w1" / "manifest.json").read_text())
    m2 = json.loads((tmp_path / "w2" / "manifest.json").read_text())
    assert m1["shards"] == m2["shards"]
    # Two parts build disjoint shards that together are the whole.
    parts = {}
    for i in (0, 1):
        assert run("synthesize", "--src", src, "--out", tmp_path / f"p{i}", "--workers", 1, "--part", f"{i}/2", *args).exit_code == 0
        parts.update(datasets(tmp_path / f"p{i}"))
    assert_same(one, parts)
    # The shard size only regroups the same samples.
    assert run("synthesize", "--src", src, "--out", tmp_path / "z3", "--workers", 1, "--shard-size", 3,
               *args[2:]).exit_code == 0
    regrouped = datasets(tmp_path / "z3")
    for name in ("blurred", "sharp", "kernel", "crop_box"):
        np.testing.assert_array_equal(np.concatenate([v for (_, n), v in sorted(one.items()) if n == name]),
                                      np.concatenate([v for (_, n), v in sorted(regrouped.items()) if n == name]))
    # Another seed gives other samples.
    assert run("synthesize", "--src", src, "--out", tmp_path / "s1", "--workers", 1, "--seed", 1, *args).exit_code == 0
    assert not np.array_equal(datasets(tmp_path / "s1")[("shard-00000.h5", "blurred")], one[("shard-00000.h5", "blurred")])


def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path):
    src = write_photos(tmp_path / "src", 40, size=(48, 48))
    args = ["--shard-size", "1", "--workers", "1", "--kernel-size", "15", "--iters", "2000", "--max-len", "10", "--crop", "32"]
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "from cli import blurgen; blurgen()", "synthesize", "--src", str(src), "--out", str(out), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not listed_shards(out):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    listed = json.loads((out / "manifest.json").read_text())["shards"]
    assert 0 < len(listed) < 40, "the run was not interrupted mid-way"
    (out / ".shard-00039.h5.tmp-99999").write_bytes(b"half a shard")  # as a kill leaves it
    res = run("synthesize", "--src", src, "--out", out, *args[:2], *args[4:])
    assert res.exit_code == 0, res.output
    assert "already done" in res.output
    assert not list(out.glob(".*tmp*"))
    full = tmp_path / "full"
    assert run("synthesize", "--src", src, "--out", full, *args[:2], *args[4:]).exit_code == 0
    assert_same(datasets(out), datasets(full))


def test_skip_report_and_odd_images(tmp_path):
    src = write_photos(tmp_path / "src", 2)
    rgb = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0]).save(src / "grey.png")
    Image.fromarray(rgb).convert("CMYK").save(src / "cmyk.jpg")
    (src / "zero.jpg").write_bytes(b"")
    (src / "notes.png").write_text("hello")
    (src / "tiny.png").write_bytes(cv2.imencode(".png", rgb[:20, :20])[1].tobytes())
    good = (src / "cmyk.jpg").read_bytes()
    (src / "cut.jpg").write_bytes(good[: len(good) // 3])
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--workers", 1, *SMALL)
    assert res.exit_code == 0, res.output
    report = (out / "skipped.tsv").read_text().splitlines()
    rows = {line.split("\t")[0]: line.split("\t")[1] for line in report[1:]}
    assert rows == {"cut.jpg": "corrupt", "notes.png": "not-an-image", "tiny.png": "too-small", "zero.jpg": "empty"}
    assert "skipped 4 images" in res.output
    assert sum(i.count for i in shards.find_shards(out)) == 4  # 2 photos + grey + cmyk


def test_kernel_bank_and_realism_options_are_recorded(tmp_path):
    src = write_photos(tmp_path / "src", 2)
    bank = tmp_path / "bank.h5"
    write_bank(bank, 20, 5, SPEC)
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--kernels", bank, "--crop", 32,
              "--noise", "--saturate", "--jpeg-quality", "70-80")
    assert res.exit_code == 0, res.output
    kernels = read_bank(bank)[0]
    with shards.ShardReader(out / "shard-00000.h5") as r:
        for i in range(len(r)):
            s = r.read_sample(i)
            np.testing.assert_array_equal(s["kernel"], kernels.psf[s["kernel_index"]])
            assert s["kernel_seed"] == kernels.seed[s["kernel_index"]]
            assert 70 <= s["jpeg_quality"] <= 80 and s["noise_read"] > 0 and s["saturation_gain"] >= 1.5
            assert s["linear"]


def test_full_images_keep_all_but_the_kernel_margin(tmp_path):
    src = write_photos(tmp_path / "src", 2, size=(50, 70))
    out = tmp_path / "out"
    assert run("synthesize", "--src", src, "--out", out, "--workers", 1, "--full", *SMALL).exit_code == 0
    with shards.ShardReader(out / "shard-00000.h5") as r:
        assert r.layout == "images"
        assert r.image_shape(0) == (50 - 14, 70 - 14)
        assert tuple(r.read_sample(0)["crop_box"]) == (7, 7, 43, 63)


def test_verify_catches_a_damaged_shard_and_inspect_draws(tmp_path):
    src = write_photos(tmp_path / "src", 4)
    out = tmp_path / "out"
    assert run("synthesize", "--src", src, "--out", out, "--workers", 1, "--shard-size", 2, *SMALL).exit_code == 0
    res = run("verify", out)
    assert res.exit_code == 0 and "2 shards OK" in res.output
    res = run("inspect", out, "--samples", 2, "--png", tmp_path / "grid.png")
    assert res.exit_code == 0 and "4 pairs in 2 shards" in res.output and "compression none" in res.output
    assert cv2.imread(str(tmp_path / "grid.png")).shape[0] > 64
    path = out / "shard-00001.h5"
    data = bytearray(path.read_bytes())
    middle = slice(len(data) // 2, len(data) // 2 + 64)
    data[middle] = bytes(b ^ 0xFF for b in data[middle])  # flip a run of bytes (zeroing may change nothing)
    path.write_bytes(bytes(data))
    res = run("verify", out)
    assert res.exit_code == 1
    assert "BAD shard-00001.h5" in res.output and "shard-00000.h5" not in res.output


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (lambda p: None, ["--src", "{tmp}/missing"], "no such folder"),
        (lambda p: (p / "empty").mkdir(), ["--src", "{tmp}/empty"], "no images"),
        (lambda p: (p / "afile").write_text("x"), ["--out", "{tmp}/afile/out"], "cannot create the output folder"),
        (lambda p: None, ["--part", "2/2"], "--part must be"),
        (lambda p: None, ["--part", "x"], "--part must look like"),
        (lambda p: None, ["--jpeg-quality", "90-20"], "--jpeg-quality"),
        (lambda p: None, ["--crops-per-image", "0"], "--crops-per-image"),
    ],
)
def test_synthesize_errors_are_one_line(tmp_path, setup, args, message):
    write_photos(tmp_path / "src", 1)
    setup(tmp_path)
    base = {"--src": str(tmp_path / "src"), "--out": str(tmp_path / "out")}
    extra = [a.replace("{tmp}", str(tmp_path)) for a in args]
    for i in range(0, len(extra), 2):
        base.pop(extra[i], None)
    res = run("synthesize", *[x for kv in base.items() for x in kv], *extra, *SMALL)
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_other_arguments_against_existing_output_are_refused(tmp_path):
    src = write_photos(tmp_path / "src", 1)
    out = tmp_path / "out"
    assert run("synthesize", "--src", src, "--out", out, "--workers", 1, *SMALL).exit_code == 0
    res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--seed", 3, *SMALL)
    assert res.exit_code == 2 and "other arguments (differs in: seed)" in res.output
    res = run("synthesize", "--src", src, "--out", out, "--workers", 1, "--seed", 3, "--overwrite", *SMALL)
    assert res.exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["arguments"]["seed"] == 3


def test_overwrite_starts_afresh_even_with_the_same_arguments(tmp_path):
    src = write_photos(tmp_path / "src", 4)
    out = tmp_path / "out"
    args = ["--src", src, "--out", out, "--workers", 1, "--shard-size", 2, *SMALL]
    assert run("synthesize", *args).exit_code == 0
    first = datasets(out)
    damaged = bytearray((out / "shard-00000.h5").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (out / "shard-00000.h5").write_bytes(bytes(damaged))
    (out / "stray.h5").write_bytes(b"not ours")
    res = run("synthesize", *args)  # a resume checks sizes only (verify and --repair read the bytes)
    assert res.exit_code == 0 and (out / "shard-00000.h5").read_bytes() == bytes(damaged)
    res = run("synthesize", *args, "--overwrite")
    assert res.exit_code == 0, res.output
    assert_same(datasets(out), first)
    assert run("verify", out).exit_code == 0
    assert (out / "stray.h5").read_bytes() == b"not ours"  # only what the run owns goes


def test_resuming_over_changed_photos_is_refused(tmp_path):
    src = write_photos(tmp_path / "src", 4)
    out = tmp_path / "out"
    args = ["--workers", 1, "--shard-size", 2, *SMALL]
    assert run("synthesize", "--src", src, "--out", out, *args).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["shards"]["shard-00001.h5"]  # as if killed before the last shard
    (out / "manifest.json").write_text(json.dumps(manifest))
    write_photos(tmp_path / "more", 1, seed=9)
    (tmp_path / "more" / "b" / "img000.png").rename(src / "b" / "img000a.png")  # sorts into the first shard
    res = run("synthesize", "--src", src, "--out", out, *args)
    assert res.exit_code == 2 and "the photos under --src changed" in res.output
    (src / "b" / "img000a.png").unlink()
    res = run("synthesize", "--src", src, "--out", out, *args)
    assert res.exit_code == 0 and "1 were already done" in res.output


def test_parts_of_a_job_array_share_one_folder(tmp_path):
    src = write_photos(tmp_path / "src", 5)
    args = ["--workers", 1, "--shard-size", 2, *SMALL]
    assert run("synthesize", "--src", src, "--out", tmp_path / "whole", *args).exit_code == 0
    shared = tmp_path / "shared"
    for i in (1, 0):
        res = run("synthesize", "--src", src, "--out", shared, "--part", f"{i}/2", *args)
        assert res.exit_code == 0, res.output
    assert sorted(p.name for p in shared.glob("manifest*")) == ["manifest.part-0-of-2.json", "manifest.part-1-of-2.json"]
    assert [i.path.name for i in shards.find_shards(shared)] == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    assert_same(datasets(shared), datasets(tmp_path / "whole"))
    res = run("verify", shared)
    assert res.exit_code == 0 and "3 shards OK" in res.output
    # A part of another data set, or a whole run, is refused; --overwrite on a whole run takes the folder.
    res = run("synthesize", "--src", src, "--out", shared, "--part", "0/2", "--seed", 5, *args)
    assert res.exit_code == 2 and "manifest.part-0-of-2.json lists shards made with other arguments" in res.output
    res = run("synthesize", "--src", src, "--out", shared, *args)
    assert res.exit_code == 2 and "is a part of a --part run" in res.output
    res = run("synthesize", "--src", src, "--out", shared, "--overwrite", *args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in shared.iterdir()) == ["config.yaml", "manifest.json", "shard-00000.h5",
                                                        "shard-00001.h5", "shard-00002.h5", "skipped.tsv"]


def test_kernel_length_defaults_to_what_a_small_kernel_fits(tmp_path):
    src = write_photos(tmp_path / "src", 1)
    res = run("synthesize", "--src", src, "--out", tmp_path / "out", "--workers", 1,
              "--kernel-size", 15, "--iters", 200, "--crop", 32)
    assert res.exit_code == 0, res.output
    spec = json.loads((tmp_path / "out" / "manifest.json").read_text())["arguments"]["kernel_spec"]
    assert spec["size"] == 15 and spec["max_len"] == 13.0  # 60 px would not fit a 15x15 PSF


def test_terminated_pool_run_stops_cleanly_and_resumes(tmp_path):
    # SIGTERM (a scheduler's time limit) takes the Ctrl-C path: workers stopped,
    # their half-written shards removed, no traceback, exit 130.
    src = write_photos(tmp_path / "src", 30, size=(48, 48))
    out = tmp_path / "out"
    args = ["--shard-size", "1", "--workers", "2", "--kernel-size", "15", "--iters", "2000", "--max-len", "10",
            "--crop", "32"]
    cmd = [sys.executable, "-c", "from cli import blurgen; blurgen()", "synthesize", "--src", str(src),
           "--out", str(out), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not listed_shards(out):
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"Traceback" not in err and b"interrupted" in err
    assert 0 < len(listed_shards(out)) < 30, "the run was not interrupted mid-way"
    assert not list(out.glob(".*tmp*"))
    assert run("synthesize", "--src", src, "--out", out, *args).exit_code == 0
    assert len(listed_shards(out)) == 30


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_default_workers_follow_the_cpu_allocation():
    # A batch scheduler (or taskset) may grant fewer cores than the machine has.
    from blurgen.runs.shard_run import available_cores

    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert available_cores() == 1
    finally:
        os.sched_setaffinity(0, before)
    assert available_cores() == len(before)

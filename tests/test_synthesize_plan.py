"""`blurgen synthesize` planning: size estimate and free-space check, --small,
--append, progress counted in pairs, no files for shards without pairs, and
progress written as plain lines when the output is not a terminal."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from blurgen import shards
from blurgen.modes.base import upscale_to
from blurgen.physics.kernels import KernelSpec
from blurgen.runs import shard_run
from blurgen.runs import synthesize as synth
from blurgen.sources import find_images, load_rgb
from cli import blurgen

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--kernel-size", "15", "--iters", "200", "--max-len", "10", "--crop", "32", "--workers", "1"]
NEED = 32 + 15 - 1  # a crop plus the kernel's margin


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def photo(path: Path, h: int, w: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
    return path


def photos(folder: Path, names, size=(60, 72), seed=0) -> Path:
    for k, name in enumerate(names):
        photo(folder / name, *size, seed=seed + k)
    return folder


def file_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.h5"))}


def sources(path: Path) -> set:
    with h5py.File(path) as f:
        return {s.decode() for s in f["source"][()]}


# --- 7: progress in pairs; no file for a shard without pairs -----------------------


def test_shards_whose_photos_are_all_skipped_are_not_written(tmp_path):
    src = photos(tmp_path / "src", ["a.png", "d.png"])
    photo(src / "b.png", 20, 20, seed=5)  # too small for a 32 crop
    (src / "c.jpg").write_bytes(b"")  # empty
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--shard-size", 1, *SMALL)
    assert res.exit_code == 0, res.output
    listed = json.loads((out / "manifest.json").read_text())["shards"]
    assert sorted(listed) == [shards.shard_name(i) for i in range(4)]
    assert listed["shard-00001.h5"] == {"count": 0, "bytes": 0}
    assert listed["shard-00002.h5"] == {"count": 0, "bytes": 0}
    assert sorted(p.name for p in out.glob("shard-*.h5")) == ["shard-00000.h5", "shard-00003.h5"]
    assert [i.path.name for i in shards.find_shards(out)] == ["shard-00000.h5", "shard-00003.h5"]
    res = run("verify", out)
    assert res.exit_code == 0 and "4 shards OK" in res.output and "not built yet" not in res.output
    again = run("synthesize", "--src", src, "--out", out, "--shard-size", 1, *SMALL)
    assert again.exit_code == 0 and "built 0 shards now, 4 were already done" in again.output
    assert run("inspect", out, "--samples", 1).exit_code == 0


def test_progress_counts_pairs_and_drops_what_skipped_photos_would_have_given(tmp_path):
    src = photos(tmp_path / "src", ["a.png", "b.png", "c.png"])
    photo(src / "bb.png", 20, 30, seed=7)
    cfg = synth.SynthConfig(src=src, crop=32, crops_per_image=3, shard_size=6,
                            kernel_spec=KernelSpec(size=15, iters=200, max_len=10.0))
    seen = {"made": 0, "dropped": 0}

    def progress_cb(made, dropped):
        seen["made"] += made
        seen["dropped"] += dropped

    planned = []
    summary = synth.synthesize(cfg, tmp_path / "out", progress=progress_cb, on_start=planned.append)
    assert planned == [12] and summary.samples == 9
    assert seen == {"made": 9, "dropped": 3}
    # Through the command: the bar's last line reads pairs made of pairs to come.
    res = CliRunner().invoke(blurgen, ["synthesize", "--src", str(src), "--out", str(tmp_path / "cli"),
                                       "--crops-per-image", "3", "--shard-size", "6", *SMALL])
    assert res.exit_code == 0, res.output
    assert "pairs: 9/9 pair (100%)" in res.output
    rate = float(re.search(r"([\d.,]+) pairs/s with", res.output)[1].replace(",", ""))
    assert rate > 0


# --- 4: planned size, free space ------------------------------------------------------


def test_planned_size_is_printed_and_close_to_what_is_written(tmp_path):
    src = photos(tmp_path / "src", [f"{i}.png" for i in range(6)])
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--crops-per-image", 2, "--shard-size", 4, *SMALL)
    assert res.exit_code == 0, res.output
    said = float(re.search(r"planned: 12 pairs, about ([\d.,]+) MB on disk \(an estimate", res.output)[1])
    written = sum(p.stat().st_size for p in out.glob("shard-*.h5"))
    assert abs(said * 1e6 - written) < 0.1 * written + 0.05e6
    # A 256 px crop is 2 x 3 x 256^2 bytes of pixels, stored uncompressed.
    cfg = synth.SynthConfig(src=src, crop=256)
    assert synth.estimate_bytes(cfg, ["x"] * 1000, 1) == 1000 * (393_216 + synth.PAIR_OVERHEAD) + synth.SHARD_OVERHEAD


def test_whole_image_size_is_estimated_from_the_photos_headers(tmp_path):
    src = photos(tmp_path / "src", ["a.png", "b.png"], size=(50, 70))
    cfg = synth.SynthConfig(src=src, full=True, shard_size=2, kernel_spec=KernelSpec(size=15, iters=200, max_len=10.0))
    estimate = synth.estimate_bytes(cfg, find_images(src), 1)
    assert estimate == 2 * (6 * (50 - 14) * (70 - 14) + synth.IMAGE_OVERHEAD) + synth.SHARD_OVERHEAD
    assert synth._padded(300) == 384 and synth._padded(100) == 100
    summary = synth.synthesize(cfg, tmp_path / "out")
    assert abs(estimate - summary.bytes) < 0.1 * summary.bytes


def test_too_little_free_space_is_refused_in_one_line(tmp_path, monkeypatch):
    src = photos(tmp_path / "src", ["a.png", "b.png"])
    out = tmp_path / "out"
    monkeypatch.setattr(shard_run, "free_bytes", lambda path: 10_000)
    res = run("synthesize", "--src", src, "--out", out, *SMALL)
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert "2 pairs planned need about" in res.output and "10.0 KB free" in res.output
    assert "--no-space-check" in res.output
    assert not list(out.glob("shard-*")) and not (out / "manifest.json").exists()
    res = run("synthesize", "--src", src, "--out", out, "--no-space-check", *SMALL)
    assert res.exit_code == 0, res.output
    assert len(shards.find_shards(out)) == 1
    # Resuming a finished run plans nothing and needs no room.
    assert run("synthesize", "--src", src, "--out", out, *SMALL).exit_code == 0


# --- 5: --small skip|upscale -----------------------------------------------------------


def test_small_photos_are_skipped_by_default_and_counted(tmp_path):
    src = photos(tmp_path / "src", ["a.png"])
    photo(src / "small.png", 30, 40, seed=3)
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, *SMALL)
    assert res.exit_code == 0, res.output
    assert "skipped 1 image of 2 (too-small 1)" in res.output and "--small upscale" in res.output
    with shards.ShardReader(out / "shard-00000.h5") as r:
        assert len(r) == 1 and "upscale" not in r.fields()
    args = json.loads((out / "manifest.json").read_text())["arguments"]
    assert "small" not in args  # the default leaves the record (and older runs' resumes) as they were


def test_small_photos_upscaled_bicubic_record_their_factor(tmp_path):
    src = photos(tmp_path / "src", ["a.png"])
    photo(src / "small.png", 30, 40, seed=3)
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--small", "upscale", *SMALL)
    assert res.exit_code == 0, res.output
    assert "upscaled 1 photos" in res.output and "bicubic" in res.output and "skipped 1" not in res.output
    assert json.loads((out / "manifest.json").read_text())["arguments"]["small"] == "upscale"
    with shards.ShardReader(out / "shard-00000.h5") as r:
        samples = {r.read_sample(i)["source"]: r.read_sample(i) for i in range(len(r))}
    assert samples["a.png"]["upscale"] == 1.0
    s = samples["small.png"]
    assert s["upscale"] == pytest.approx(NEED / 30)
    # Reference: OpenCV's bicubic resize to a short side of NEED (40 x 46/30 = 61.33 -> 62 px).
    big = cv2.resize(load_rgb(src / "small.png"), (62, NEED), interpolation=cv2.INTER_CUBIC)
    y0, x0, y1, x1 = s["crop_box"]
    np.testing.assert_array_equal(s["sharp"], big[y0:y1, x0:x1])
    assert y1 - y0 == 32 and x1 - x0 == 32


@pytest.mark.parametrize("mode", [["--shake", "nonuniform"], ["--objects", "objects.json"]])
def test_small_upscale_applies_to_the_shake_and_objects_modes(tmp_path, mode):
    """Issue 22.1: with --shake nonuniform (and --objects) the too-small photos were skipped
    although --small upscale was given ("...; --small upscale keeps the too-small ones").  Now they
    are upscaled as in the uniform mode, and each sample records its factor; the photos that fit
    are untouched (factor 1, the same pixels as without the option)."""
    from test_objects import write_annotations

    src = photos(tmp_path / "src", ["img000.png", "img001.png", "img002.png"], size=(96, 112))
    photo(src / "small.png", 30, 40, seed=3)
    mode = [str(tmp_path / m) if m.endswith(".json") else m for m in mode]
    if "--objects" in mode:
        write_annotations(Path(mode[1]), src)
    out = {small: tmp_path / f"out-{small}" for small in ("skip", "upscale")}
    for small, folder in out.items():
        res = run("synthesize", "--src", src, "--out", folder, "--small", small, *mode, *SMALL)
        assert res.exit_code == 0, res.output
    assert "upscaled 1 photos" in res.output and "skipped 1" not in res.output and "--small upscale" not in res.output
    with shards.ShardReader(out["upscale"] / "shard-00000.h5") as r:
        samples = {r.read_sample(i)["source"]: r.read_sample(i) for i in range(len(r))}
    with shards.ShardReader(out["skip"] / "shard-00000.h5") as r:
        plain = {r.read_sample(i)["source"]: r.read_sample(i) for i in range(len(r))}
    assert set(samples) == set(plain) | {"small.png"} and samples["small.png"]["upscale"] > 1
    for name in plain:
        assert samples[name]["upscale"] == 1.0
        np.testing.assert_array_equal(samples[name]["blurred"], plain[name]["blurred"])


def test_skips_are_counted_in_photos_not_crops(tmp_path):
    """Issue 22.2: with --crops-per-image 3, a too-small photo was reported three times ("skipped
    52 images" of 60; skipped.tsv listed each photo once per crop), and the summary said "from 60
    images" when 27 were skipped.  Now one row per photo, counted once, and the summary says how
    many photos gave the pairs."""
    src = photos(tmp_path / "src", ["a.png", "b.png"], size=(96, 112))
    photo(src / "small.png", 30, 40, seed=3)
    out = tmp_path / "out"
    res = run("synthesize", "--src", src, "--out", out, "--shake", "nonuniform", "--crops-per-image", 3, *SMALL)
    assert res.exit_code == 0, res.output
    assert "6 pairs in 1 shard" in res.output and "from 2 of 3 images;" in res.output
    assert "skipped 1 image of 3 (too-small 1)" in res.output
    rows = (out / "skipped.tsv").read_text().splitlines()[1:]
    assert len(rows) == 1 and rows[0].startswith("small.png\ttoo-small\tevery crop (3); crop 0: 40x30 is smaller")


def test_a_photo_that_gives_some_of_its_crops_is_one_row_and_not_a_skipped_photo():
    """Issue 22.2: a photo whose crops fail one by one (--shake, --objects) is one row of the
    skip report, "some-crops", naming the crops; it is not counted as skipped."""
    from blurgen.sources import SkipImage

    failed = [(1, SkipImage("object-mask", "instance 3: an empty mask"))]
    assert synth.photo_skip("a.png", failed, 3) == (
        "a.png", "some-crops", "crop(s) 1 of 3 not made (object-mask); crop 1: instance 3: an empty mask")
    assert synth.photo_skip("a.png", failed, 1) == ("a.png", "object-mask", "instance 3: an empty mask")


def test_upscale_to_keeps_the_aspect_ratio_and_fits():
    image = np.zeros((30, 61, 3), np.uint8)
    out, factor = upscale_to(image, 46)
    assert out.shape == (46, 94, 3) and factor == pytest.approx(46 / 30)


# --- 6: --append -------------------------------------------------------------------------


def test_append_puts_new_photos_in_new_shards_and_leaves_the_old_ones_alone(tmp_path):
    src = photos(tmp_path / "src", ["a.png", "c.png", "e.png", "g.png"])
    photo(src / "f.png", 20, 20, seed=9)  # skipped: its name is known only from the skip record
    out = tmp_path / "out"
    args = ["--src", src, "--out", out, "--shard-size", 2, *SMALL]
    assert run("synthesize", *args).exit_code == 0
    old = file_bytes(out)
    assert sorted(old) == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    photos(src, ["b.png", "d.png", "h/z.png"], seed=20)  # sort among the old ones
    res = run("synthesize", *args)
    assert res.exit_code == 2 and "pass --append" in res.output
    res = run("synthesize", *args, "--append")
    assert res.exit_code == 0, res.output
    assert "3 new photos" in res.output
    now = file_bytes(out)
    assert {k: now[k] for k in old} == old  # byte-identical
    assert sorted(set(now) - set(old)) == ["shard-00003.h5", "shard-00004.h5"]
    assert sources(out / "shard-00003.h5") | sources(out / "shard-00004.h5") == {"b.png", "d.png", "h/z.png"}
    manifest = json.loads((out / "manifest.json").read_text())
    sets = manifest["photo_sets"]
    assert [s["shards"] for s in sets] == [[0, 3], [3, 5]]
    assert sets[1]["photos"] == ["b.png", "d.png", "h/z.png"] and sets[0]["images"] == 5
    assert manifest["planned"] == 5
    assert run("verify", out).exit_code == 0
    # The appended samples draw as photos 5, 6, 7 of the run: the same bytes whoever appends.
    twin = tmp_path / "twin"
    shutil.copytree(out, twin)
    for name in ("shard-00003.h5", "shard-00004.h5"):
        (twin / name).unlink()
    manifest["shards"] = {k: v for k, v in manifest["shards"].items() if k in old}
    (twin / "manifest.json").write_text(json.dumps(manifest))
    assert run("synthesize", "--src", src, "--out", twin, "--shard-size", 2, *SMALL).exit_code == 0
    assert file_bytes(twin) == now
    # The same command again resumes (nothing to do), with or without --append.
    res = run("synthesize", *args)
    assert res.exit_code == 0 and "5 were already done" in res.output
    before = (out / "manifest.json").read_text()
    res = run("synthesize", *args, "--append")
    assert res.exit_code == 0 and "nothing appended" in res.output
    assert file_bytes(out) == now and json.loads((out / "manifest.json").read_text()) == json.loads(before)
    # A second append adds a third set after the second.
    photos(src, ["0.png"], seed=40)
    assert run("synthesize", *args, "--append").exit_code == 0
    sets = json.loads((out / "manifest.json").read_text())["photo_sets"]
    assert [s["shards"] for s in sets] == [[0, 3], [3, 5], [5, 6]]
    assert sources(out / "shard-00005.h5") == {"0.png"} and {k: file_bytes(out)[k] for k in now} == now


def test_append_with_no_new_photos_changes_nothing(tmp_path):
    src = photos(tmp_path / "src", ["a.png", "b.png"])
    out = tmp_path / "out"
    args = ["--src", src, "--out", out, "--shard-size", 1, *SMALL]
    assert run("synthesize", *args).exit_code == 0
    old, manifest = file_bytes(out), (out / "manifest.json").read_text()
    res = run("synthesize", *args, "--append")
    assert res.exit_code == 0 and "no photos under" in res.output and "nothing appended" in res.output
    assert file_bytes(out) == old and json.loads((out / "manifest.json").read_text()) == json.loads(manifest)
    assert "photo_sets" not in json.loads(manifest)


def test_append_refuses_removed_or_changed_photos_and_unfinished_runs(tmp_path):
    src = photos(tmp_path / "src", ["a.png", "b.png", "c.png"])
    out = tmp_path / "out"
    args = ["--src", src, "--out", out, "--shard-size", 1, *SMALL]
    assert run("synthesize", *args).exit_code == 0
    (src / "b.png").unlink()
    photos(src, ["d.png"], seed=7)
    res = run("synthesize", *args, "--append")
    assert res.exit_code == 2 and "changed or are gone" in res.output
    photos(src, ["b.png"], seed=1)  # b.png as it was
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["shards"]["shard-00002.h5"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    res = run("synthesize", *args, "--append")
    assert res.exit_code == 2 and "is not finished" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert "--append adds to a whole run" in run("synthesize", *args, "--append", "--part", "0/2").output


# --- 3: progress as plain lines in a log ---------------------------------------------------


def test_plain_progress_lines_give_count_rate_and_eta():
    from blurgen.plumbing import progress

    class Log:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return False

    log = Log()
    bar = progress.progress_bar(total=40, unit="pair", desc="pairs", file=log, interval=0)
    assert isinstance(bar, progress.PlainProgress)
    bar.update(10)
    bar.total -= 10
    bar.update(5)
    bar.close()
    lines = log.text.splitlines()
    assert "\r" not in log.text and len(lines) == 2
    assert lines[0].startswith("pairs: 10/40 pair (25%), ") and "pair/s" in lines[0] and "ETA" in lines[0]
    assert lines[1].startswith("pairs: 15/30 pair (50%), ")


def test_every_progress_bar_goes_through_the_helper():
    for path in [ROOT / "cli.py", *ROOT.glob("blurgen/*.py"), *ROOT.glob("trainer/*.py")]:
        if path.name == "progress.py":
            continue
        assert not re.search(r"\btqdm\(", path.read_text()), f"{path.name} draws its own tqdm bar"


def test_commands_writing_to_a_log_print_short_lines_without_carriage_returns(tmp_path):
    src = photos(tmp_path / "src", [f"{i}.png" for i in range(3)])
    code = "from cli import blurgen; blurgen()"
    for args in (["make-kernels", "-n", "30", "--size", "15", "--iters", "200", "--max-len", "10",
                  "--out", str(tmp_path / "bank.h5"), "--preview"],
                 ["synthesize", "--src", str(src), "--out", str(tmp_path / "out"), "--shard-size", "1", *SMALL],
                 ["verify", str(tmp_path / "out")]):
        done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        text = done.stdout + done.stderr
        assert "\r" not in text, args[0]
        assert max(len(line) for line in text.splitlines()) <= 200, args[0]
        assert re.search(r"^\S+: \d+/\d+ \w+ \(100%\), .*/s", done.stderr, re.M), done.stderr


def test_append_on_an_empty_folder_is_a_plain_start(tmp_path):
    src = photos(tmp_path / "src", ["a.png", "b.png"])
    res = run("synthesize", "--src", src, "--out", tmp_path / "out", "--append", *SMALL)
    assert res.exit_code == 0 and "--append" not in res.output
    assert sum(i.count for i in shards.find_shards(tmp_path / "out")) == 2


def test_synthesize_that_makes_nothing_fails_naming_the_reason(tmp_path):
    """Issue 22.5 (as for `average`): a run whose photos are all skipped exited 0.  Now its
    last line says that nothing was made and why, exit 2, and no shard file is written."""
    src = tmp_path / "src"
    photo(src / "small.png", 30, 40, seed=3)
    out = tmp_path / "out"
    res = CliRunner().invoke(blurgen, ["synthesize", "--src", str(src), "--out", str(out), *SMALL])
    assert res.exit_code == 2 and "skipped 1 image of 1 (too-small 1)" in res.output
    assert res.output.strip().splitlines()[-1] == f"error: {out}: nothing made: every image was skipped (see {out}/skipped.tsv)"
    assert not list(out.glob("shard-*"))


def test_inspect_refuses_a_negative_sample_count(tmp_path):
    """Issue 22.9: `inspect --samples -1` was accepted (and drew nothing); now one line, exit 2."""
    src = photos(tmp_path / "src", ["a.png"])
    out = tmp_path / "out"
    assert run("synthesize", "--src", src, "--out", out, *SMALL).exit_code == 0
    res = CliRunner().invoke(blurgen, ["inspect", str(out), "--samples", "-1"])
    assert res.exit_code == 2 and res.output == "error: --samples must be >= 0, got -1\n"


def test_inspect_and_verify_wording(tmp_path):
    """Issue 22.13: verify of a whole run stopped early said "the run incomplete … (1 part(s)
    missing or unfinished)" without --part; inspect said "1 source images skipped", and counted
    the images of sharp-only shards as "pairs"."""
    src = photos(tmp_path / "src", ["a.png", "b.png"])
    photo(src / "small.png", 30, 40, seed=3)
    out = tmp_path / "out"
    assert run("synthesize", "--src", src, "--out", out, "--shard-size", 1, *SMALL).exit_code == 0
    res = run("inspect", out, "--samples", 0)
    assert "1 source image skipped (too-small 1;" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["shards"]["shard-00002.h5"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    res = CliRunner().invoke(blurgen, ["verify", str(out)])
    assert res.exit_code == 1 and "INCOMPLETE: the run is incomplete: 1 of its 3 planned shards" in res.output
    assert "the data set is incomplete (the run is unfinished)" in res.output and "part(s)" not in res.output
    sharp = tmp_path / "sharp"
    assert run("synthesize", "--src", src, "--out", sharp, "--sharp-only", *SMALL).exit_code == 0
    res = run("inspect", sharp, "--samples", 0)
    assert "  shard-00000.h5       2 images" in res.output and " pairs " not in res.output


# --- issue 22.3: the margin a photo needs is its kernel's reach ----------------------------


def _digest(folder: Path, leave_out: str) -> str:
    import hashlib

    h = hashlib.sha256()
    for info in shards.find_shards(folder):
        with shards.ShardReader(info.path) as r:
            for i in range(len(r)):
                s = r.read_sample(i)
                if s["source"] != leave_out:
                    for key in ("blurred", "sharp", "kernel", "crop_box"):
                        h.update(np.ascontiguousarray(s[key]).tobytes())
    return h.hexdigest()[:16]


def test_photos_within_the_kernels_reach_are_used_and_the_others_keep_their_bytes(tmp_path):
    """Issue 22.3: a photo was dropped unless it held a crop plus the kernel array's whole
    k - 1 px margin (63 px for the default 64-px kernels), though a short shake's taps reach
    ~10 px.  Now a photo short of that margin gives the crops whose drawn kernel's reach fits
    (``blur.support_margins``), blurred exactly as from a large photo; the photos that held the
    whole margin give the same samples as before (digests taken with the code before the change)."""
    from blurgen.physics import blur
    from blurgen.physics.kernels import write_bank

    src = tmp_path / "src"
    photo(src / "a.png", 140, 150, seed=1)
    photo(src / "b.png", 130, 128, seed=2)
    photo(src / "z.png", 80, 90, seed=3)  # short of 64 + 63, not of 64 + a short shake's reach
    write_bank(tmp_path / "bank.h5", 8, 0, KernelSpec(size=64, iters=200, max_len=10.0))
    base = ["--crop", 64, "--crops-per-image", 2, "--workers", 1]
    modes = {"fresh": (["--kernel-size", 64, "--iters", 200, "--max-len", 10], "e88f772cdb47a3bf"),
             "bank": (["--kernels", tmp_path / "bank.h5", "--linear", "--noise"], "8599a0127cbb9149")}
    for name, (extra, before) in modes.items():
        res = run("synthesize", "--src", src, "--out", tmp_path / name, *base, *extra)
        assert res.exit_code == 0, res.output
        assert _digest(tmp_path / name, "z.png") == before
        assert "6 pairs in 1 shard" in res.output and "skipped 1" not in res.output
    with shards.ShardReader(tmp_path / "fresh" / "shard-00000.h5") as r:
        used = [r.read_sample(i) for i in range(len(r)) if r.read_sample(i)["source"] == "z.png"]
    z = load_rgb(src / "z.png")
    for s in used:
        y0, x0, y1, x1 = (int(v) for v in s["crop_box"])
        top, bottom, left, right = blur.support_margins(s["kernel"])
        assert top + bottom < 63 and y0 >= top and y1 + bottom <= 80 and x0 >= left and x1 + right <= 90
        region, psf = blur.trim_to_support(np.zeros((64 + 63, 64 + 63), np.float32), s["kernel"])
        real = z[y0 - top : y1 + bottom, x0 - left : x1 + right].astype(np.float32) / 255
        expected = blur.to_uint8(blur.convolve_valid(real, psf))
        np.testing.assert_array_equal(s["blurred"], expected)


def test_support_margins_are_the_reach_of_the_taps():
    from blurgen.physics import blur

    psf = np.zeros((9, 9), np.float32)
    psf[3:6, 4] = 1 / 3  # a vertical 3-px streak through the centre (4, 4)
    assert blur.support_margins(psf) == (1, 1, 0, 0)
    full = np.full((9, 9), 1 / 81, np.float32)
    assert blur.support_margins(full) == (4, 4, 4, 4) and sum(blur.margins(9)) == 8

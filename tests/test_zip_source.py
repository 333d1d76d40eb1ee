"""`synthesize --src photos.zip`: photos read straight out of a zip (issue 13, item 3)."""
import csv
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner
from test_synthesize import datasets

from blurgen.sources import FolderSource, ZipSource, open_source
from cli import blurgen

SMALL = ["--kernel-size", "15", "--iters", "200", "--max-len", "10", "--crop", "32", "--shard-size", "2"]


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def write_photos(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        image = cv2.resize(small, (72, 60), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(sub / f"img{i}{'.png' if i % 3 == 0 else '.JPG'}"), image)
    (folder / "notes.txt").write_text("not a photo")
    return folder


def zip_folder(folder: Path, path: Path, top: str = "", method=zipfile.ZIP_DEFLATED) -> Path:
    """A zip of the folder's files, under ``top/`` if given, plus macOS's hidden clutter."""
    with zipfile.ZipFile(path, "w", method) as z:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                z.write(file, f"{top}{file.relative_to(folder).as_posix()}")
        z.writestr("__MACOSX/._img0.png", b"resource fork")
    return path


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=str(key))


def test_a_zip_gives_the_same_shards_as_its_folder(tmp_path):
    src = write_photos(tmp_path / "photos", 5)
    flat = zip_folder(src, tmp_path / "flat.zip")
    nested = zip_folder(src, tmp_path / "train2017.zip", top="train2017/")
    names = FolderSource(src).names()
    assert names == ZipSource(flat).names() == ZipSource(nested).names() == open_source(nested).names()
    assert open_source(tmp_path / "photos" / "notes.txt") is None
    runs = {}
    for name, source, workers in (("folder", src, 1), ("flat", flat, 1), ("nested", nested, 2)):
        out = tmp_path / name
        res = run("synthesize", "--src", source, "--out", out, "--workers", workers, *SMALL)
        assert res.exit_code == 0, res.output
        runs[name] = out
    reference = datasets(runs["folder"])
    assert len(reference) > 10
    for name in ("flat", "nested"):
        assert_same(datasets(runs[name]), reference)
        manifest = json.loads((runs[name] / "manifest.json").read_text())
        assert manifest["inputs"] == json.loads((runs["folder"] / "manifest.json").read_text())["inputs"]
    # Resume: a second run over the zip has nothing to do.
    res = run("synthesize", "--src", nested, "--out", runs["nested"], "--workers", 1, *SMALL)
    assert res.exit_code == 0 and "3 were already done" in res.output


def test_a_corrupt_zip_member_is_skipped_and_reported(tmp_path):
    src = write_photos(tmp_path / "photos", 4)
    path = zip_folder(src, tmp_path / "photos.zip", method=zipfile.ZIP_STORED)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("a/img1.JPG")
    data = bytearray(path.read_bytes())
    # Past the local header (30 bytes + name + extra): a byte of the JPEG's data.
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    res = run("synthesize", "--src", path, "--out", out, "--workers", 1, *SMALL)
    assert res.exit_code == 0, res.output
    assert "skipped 1 image of " in res.output and "(corrupt 1)" in res.output
    with open(out / "skipped.tsv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[1][:2] == ["a/img1.JPG", "corrupt"] and "CRC" in rows[1][2]
    assert sum(len(v) for v in datasets(out).values() if v.ndim == 4) // 2 == 3   # the other 3 photos
    res = run("synthesize", "--src", tmp_path / "nope.zip", "--out", tmp_path / "o2", *SMALL)
    assert res.exit_code == 2 and "no such folder or zip file" in res.output


def test_a_member_longer_than_its_header_says_is_read_in_bounded_memory(tmp_path):
    """Issue 22.25: a zip member whose header claims 100 bytes but whose deflate stream holds
    64 MB was decompressed whole before being cut to its size (2.2 GB for a larger one).  Now
    it is read a piece at a time: its CRC refuses it ("corrupt") with little memory held."""
    import struct
    import tracemalloc

    from blurgen.sources import SkipImage

    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("photos/a.png", b"\0" * (64 << 20))
    path.write_bytes(path.read_bytes().replace(struct.pack("<I", 64 << 20), struct.pack("<I", 100)))
    source = ZipSource(path)
    assert source.size("a.png") == 100
    tracemalloc.start()
    try:
        source.load("a.png")
        raise AssertionError("the member was not refused")
    except SkipImage as exc:
        assert exc.reason == "corrupt" and "CRC" in exc.detail
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_whole_images_from_a_zip_are_counted_by_the_space_check(tmp_path, monkeypatch):
    """Issue 22.25: `--src photos.zip --full` estimated 0 bytes (the photos' headers were looked
    for as files beside the zip), so the free-space check never refused it.  Now the headers are
    read in the zip, and the estimate is the folder's."""
    from blurgen.runs import shard_run
    from blurgen.runs import synthesize as synth

    folder = write_photos(tmp_path / "photos", 6)
    archive = zip_folder(folder, tmp_path / "photos.zip")
    estimates = {}
    for name, src in (("folder", folder), ("zip", archive)):
        cfg = synth.SynthConfig(src=src, full=True, kernel_spec=synth.KernelSpec(size=15, iters=200, max_len=10))
        estimates[name] = synth.estimate_bytes(cfg, open_source(src).names(), 1)
    assert estimates["zip"] == estimates["folder"] > 6 * 6 * 58 * 46
    monkeypatch.setattr(shard_run, "free_bytes", lambda path: 10_000)
    res = run("synthesize", "--src", archive, "--out", tmp_path / "out", "--full", *SMALL)
    assert res.exit_code == 2 and "free some space" in res.output

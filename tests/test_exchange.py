"""`blurgen export` and `blurgen import-pairs` (issue 13, item 2)."""
import csv
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from blurgen import shards
from blurgen.shards.dataset import PairDataset
from blurgen.sources import load_rgb
from cli import blurgen
from trainer.benchmarks import folder_pairs
from trainer.data import DataConfig, build_dataset, val_pairs
from trainer.gopro import read_gopro_pair, scan_gopro


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def make_folder(folder: Path, full=False) -> dict:
    """Two shards of random pairs (crops, or whole images of varied sizes); {shard name: [(blurred, sharp)]}."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    content, listed = {}, {}
    for k, n in enumerate((3, 2)):
        shapes = [(20 + 5 * i, 30 - 3 * i) if full else (24, 24) for i in range(n)]
        pairs = [(rng.integers(0, 256, (*hw, 3), dtype=np.uint8), rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
                 for hw in shapes]
        name = shards.shard_name(k)
        b, s = [p[0] for p in pairs], [p[1] for p in pairs]
        checksum = shards.write_shard(folder / name, b if full else np.stack(b), s if full else np.stack(s),
                                      np.full((n, 3, 3), 1 / 9, np.float32))
        listed[name] = {"count": n, "checksum": checksum}
        content[name] = pairs
    shards.write_manifest(folder, {"shards": listed})
    return content


def imported(folder: Path) -> list:
    """Every (blurred, sharp) pair of a shard folder, in order."""
    out = []
    for info in shards.find_shards(folder):
        with shards.ShardReader(info.path) as r:
            out += [r.read_pair(i) for i in range(len(r))]
    return out


def test_export_then_import_gives_identical_pixels(tmp_path):
    for full in (False, True):
        src, out = tmp_path / f"src{full}", tmp_path / f"png{full}"
        content = make_folder(src, full=full)
        res = run("export", src, "--to", "folder", out)
        assert res.exit_code == 0 and "5 pairs; wrote 5 now" in res.output, res.output
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))[:2] == [
            "train/shard-00000/blur/000000.png", "train/shard-00000/blur/000001.png"]
        assert not list(out.rglob(".*tmp*"))
        for name, pairs in content.items():
            seq = out / "train" / Path(name).stem
            back = tmp_path / f"back{full}{name}"
            res = run("import-pairs", seq / "blur", seq / "sharp", "--out", back, "--shard-size", 2)
            assert res.exit_code == 0, res.output
            got = imported(back)
            assert len(got) == len(pairs)
            for (b, s), (b0, s0) in zip(got, pairs):
                np.testing.assert_array_equal(b, b0)
                np.testing.assert_array_equal(s, s0)
            assert run("verify", back).exit_code == 0


def test_an_export_is_read_by_the_trainers_gopro_and_pairs_readers(tmp_path):
    content = make_folder(tmp_path / "src")
    out = tmp_path / "GOPRO_Large"
    for split in ("train", "test"):
        assert run("export", tmp_path / "src", "--to", "folder", out, "--split", split).exit_code == 0
    pairs = scan_gopro(out, "train")
    assert [p.name for p in pairs] == ["shard-00000/000000.png", "shard-00000/000001.png", "shard-00000/000002.png",
                                       "shard-00001/000000.png", "shard-00001/000001.png"]
    expected = [pair for name in sorted(content) for pair in content[name]]
    for pair, (b0, s0) in zip(pairs, expected):
        b, s = read_gopro_pair(pair)
        np.testing.assert_array_equal(b, b0)
        np.testing.assert_array_equal(s, s0)
    held = val_pairs(DataConfig(gopro=out, gopro_scale=1.0))   # what `trainer fit --gopro` validates on
    np.testing.assert_array_equal(held[4][2], expected[4][1])
    training = build_dataset(DataConfig(gopro=out, mix=(0, 1), crop=12, gopro_scale=1.0, workers=0))
    assert training[0][0].shape == (12, 12, 3)
    evaluated = folder_pairs(out / "train" / "shard-00001" / "blur", out / "train" / "shard-00001" / "sharp")
    np.testing.assert_array_equal(evaluated[1][1], content["shard-00001.h5"][1][0])


def test_export_resumes_and_refuses_another_data_set(tmp_path):
    make_folder(tmp_path / "src")
    out = tmp_path / "png"
    assert run("export", tmp_path / "src", "--to", "folder", out).exit_code == 0
    lost = out / "train" / "shard-00001" / "sharp" / "000001.png"
    lost.unlink()
    res = run("export", tmp_path / "src", "--to", "folder", out)
    assert res.exit_code == 0 and "wrote 1 now, 4 were already there" in res.output
    assert lost.is_file()
    other = tmp_path / "other"
    other.mkdir()
    checksum = shards.write_shard(other / "shard-00000.h5", np.zeros((1, 8, 8, 3), np.uint8),
                                  np.zeros((1, 8, 8, 3), np.uint8), np.ones((1, 1, 1), np.float32))
    shards.write_manifest(other, {"shards": {"shard-00000.h5": {"count": 1, "checksum": checksum}}})
    res = run("export", other, "--to", "folder", out)
    assert res.exit_code == 2 and res.output.startswith("error: ") and "export of other shards" in res.output
    res = run("export", tmp_path / "nope", "--to", "folder", out)
    assert res.exit_code == 2 and "no such shard folder" in res.output


def write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def test_import_skips_and_reports_unusable_pairs_and_mixes_with_training(tmp_path):
    rng = np.random.default_rng(1)
    images = {stem: rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for stem in "abcdefg"}
    for stem, image in images.items():
        write(tmp_path / "blur" / f"{stem}.png", image)
        if stem != "b":   # b: no sharp partner
            write(tmp_path / "sharp" / f"{stem}.jpg" if stem == "f" else tmp_path / "sharp" / f"{stem}.png",
                  image[:20] if stem == "c" else 255 - image)   # c: sizes differ
    write(tmp_path / "sharp" / "z.png", images["a"])   # no blurred partner
    (tmp_path / "blur" / "d.png").write_bytes((tmp_path / "blur" / "d.png").read_bytes()[:60])   # d: corrupt
    out = tmp_path / "shards"
    res = run("import-pairs", tmp_path / "blur", tmp_path / "sharp", "--out", out, "--shard-size", 2)
    assert res.exit_code == 0, res.output
    assert "4 pairs in 3 shards from 6 matched" in res.output
    assert "skipped 4 (corrupt 1, no-blurred-partner 1, no-sharp-partner 1, size-mismatch 1)" in res.output
    with open(out / "skipped.tsv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["path", "reason", "detail"]
    assert {(r[0], r[1]) for r in rows[1:]} == {("blur/b.png", "no-sharp-partner"), ("sharp/z.png", "no-blurred-partner"),
                                               ("blur/c.png", "size-mismatch"), ("blur/d.png", "corrupt")}
    with shards.ShardReader(out / "shard-00001.h5") as r:   # pairs d (skipped) and e
        assert len(r) == 1
        sample = r.read_sample(0)
    assert sample["source"] == "e.png" and sample["sharp_source"] == "e.png" and not sample["kernel_known"]
    np.testing.assert_array_equal(sample["kernel"], [[1.0]])
    np.testing.assert_array_equal(sample["sharp"], 255 - images["e"])
    f_pair = imported(out)[2]   # a, e, f, g
    np.testing.assert_array_equal(f_pair[1], load_rgb(tmp_path / "sharp" / "f.jpg"))
    assert run("verify", out).exit_code == 0
    res = run("inspect", out, "--samples", 1)
    assert res.exit_code == 0 and "imported pairs" in res.output
    # What `trainer fit --shards` reads, and the plain dataset.
    training = build_dataset(DataConfig(shards=(out, out), mix=(1, 0), crop=16, workers=0))
    assert training[0][0].shape == (16, 16, 3)
    assert len(PairDataset(out, crop=16)) == 4
    # A second run resumes (nothing to do); changed folders are refused.
    res = run("import-pairs", tmp_path / "blur", tmp_path / "sharp", "--out", out, "--shard-size", 2)
    assert res.exit_code == 0 and "built 0 shards now, 3 were already done" in res.output
    write(tmp_path / "blur" / "y.png", images["a"])
    write(tmp_path / "sharp" / "y.png", images["a"])
    res = run("import-pairs", tmp_path / "blur", tmp_path / "sharp", "--out", out, "--shard-size", 2)
    assert res.exit_code == 2 and "other files in the folders" in res.output
    res = run("import-pairs", tmp_path / "blur", tmp_path / "sharp", "--out", out, "--shard-size", 2, "--overwrite")
    assert res.exit_code == 0 and "5 pairs in 4 shards from 7 matched" in res.output
    res = run("import-pairs", tmp_path / "nope", tmp_path / "sharp", "--out", out)
    assert res.exit_code == 2 and "no such folder (blurred images)" in res.output


def test_two_exports_into_one_folder_never_mix(tmp_path, monkeypatch):
    """Issue 22.20: two `export`s of different shard folders into one folder both exited 0 in 2
    of ~35 tries: each checked the folder's record before the other wrote its own, and the PNGs
    of both data sets mixed.  Here the second export starts exactly in that window (while the
    first writes its record); it is refused, naming the first, and the folder holds one data set."""
    from blurgen.plumbing import files
    from blurgen.runs import exchange

    make_folder(tmp_path / "a")
    other = tmp_path / "b"
    other.mkdir()
    checksum = shards.write_shard(other / "shard-00000.h5", np.zeros((1, 8, 8, 3), np.uint8),
                                  np.zeros((1, 8, 8, 3), np.uint8), np.ones((1, 1, 1), np.float32))
    shards.write_manifest(other, {"shards": {"shard-00000.h5": {"count": 1, "checksum": checksum}}})
    out = tmp_path / "png"
    write_text, second = files.write_text, []

    def racing(path, text):
        if Path(path).name == exchange.EXPORT_RECORD and not second:
            second.append(None)
            second[0] = run("export", other, "--to", out)
        write_text(path, text)

    monkeypatch.setattr(files, "write_text", racing)
    assert run("export", tmp_path / "a", "--to", "folder", out).exit_code == 0
    res = second[0]
    assert res.exit_code == 2 and res.output.startswith(f"error: {out / 'train'} is being written by PID ")
    assert sorted(p.name for p in (out / "train").iterdir()) == ["blurgen-export.json", "shard-00000", "shard-00001"]
    assert len(list((out / "train" / "shard-00000" / "blur").iterdir())) == 3


def test_a_refused_export_of_sharp_only_shards_writes_nothing(tmp_path):
    """Issue 22.20: exporting sharp-only shards was refused only at the first pair, after the
    export record and the folders were written, and that record then refused every later
    export into the folder.  Now it is refused before anything is written."""
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(src / f"{i}.png")
    sharp = tmp_path / "sharp"
    assert run("synthesize", "--src", src, "--out", sharp, "--sharp-only", "--crop", 32, "--workers", 1).exit_code == 0
    out = tmp_path / "png"
    res = run("export", sharp, "--to", "folder", out)
    assert res.exit_code == 2 and "holds sharp images only" in res.output and len(res.output.splitlines()) == 1
    assert not out.exists()
    make_folder(tmp_path / "pairs")
    assert run("export", tmp_path / "pairs", "--to", "folder", out).exit_code == 0


def test_export_takes_one_path_after_to(tmp_path):
    """Issue 22.13: `--to` took two arguments, `folder OUT`, "folder" its only value.  Now
    `--to OUT`; the old spelling still works, anything else is one line."""
    make_folder(tmp_path / "src")
    res = run("export", tmp_path / "src", "--to", tmp_path / "a")
    assert res.exit_code == 0 and (tmp_path / "a" / "train" / "shard-00000" / "blur" / "000000.png").is_file()
    assert run("export", tmp_path / "src", "--to", "folder", tmp_path / "b").exit_code == 0
    assert (tmp_path / "b" / "train" / "shard-00001" / "sharp" / "000001.png").is_file()
    res = run("export", tmp_path / "src", "--to", tmp_path / "c", "extra")
    assert res.exit_code == 2 and res.output == (
        "error: unexpected argument(s): extra (export FOLDER --to [LAYOUT] OUT, LAYOUT one of gopro, basicsr, lmdb)\n")

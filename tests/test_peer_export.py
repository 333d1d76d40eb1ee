"""`blurgen export --to basicsr|lmdb` read back the way BasicSR and NAFNet read them (issue 23, parts 3-4).

The readers are re-implemented here from BasicSR's code (basicsr/data/data_util.py
paired_paths_from_folder and paired_paths_from_lmdb, basicsr/utils/misc.py scandir,
basicsr/utils/file_client.py HardDiskBackend and LmdbBackend, basicsr/utils/img_util.py
imfrombytes; NAFNet carries the same), not taken from our writer, and every pair is
compared to the shard's pixels exactly.
"""
import json
import os
import sys
from os import path as osp
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_exchange import make_folder, run

from blurgen.runs import basicsr_lmdb
from blurgen.plumbing.stopping import StopFlag
from blurgen.runs.exchange import EXPORT_RECORD, export_folder


def expected_pairs(content: dict) -> dict:
    """{BasicSR name: (blurred, sharp)} of make_folder's content: shard stem, '_', the 6-digit index."""
    return {f"{Path(shard).stem}_{i:06d}": pair for shard, pairs in content.items() for i, pair in enumerate(pairs)}


# --- BasicSR's readers, from its code --------------------------------------------------------


def scandir(dir_path):
    """basicsr.utils.scandir(dir_path): the files of the folder itself, hidden names left out."""
    return [entry.name for entry in os.scandir(dir_path) if not entry.name.startswith(".") and entry.is_file()]


def paired_paths_from_folder(folders, keys, filename_tmpl):
    input_folder, gt_folder = folders
    input_key, gt_key = keys
    input_paths, gt_paths = scandir(input_folder), scandir(gt_folder)
    assert len(input_paths) == len(gt_paths)
    paths = []
    for gt_path in gt_paths:
        basename, ext = osp.splitext(osp.basename(gt_path))
        input_name = f"{filename_tmpl.format(basename)}{ext}"
        assert input_name in input_paths, f"{input_name} is not in {input_key}_paths"
        paths.append({f"{input_key}_path": osp.join(input_folder, input_name),
                      f"{gt_key}_path": osp.join(gt_folder, gt_path)})
    return paths


def paired_paths_from_lmdb(folders, keys):
    input_folder, gt_folder = folders
    input_key, gt_key = keys
    assert input_folder.endswith(".lmdb") and gt_folder.endswith(".lmdb")
    with open(osp.join(input_folder, "meta_info.txt")) as fin:
        input_lmdb_keys = [line.split(".")[0] for line in fin]
    with open(osp.join(gt_folder, "meta_info.txt")) as fin:
        gt_lmdb_keys = [line.split(".")[0] for line in fin]
    assert set(input_lmdb_keys) == set(gt_lmdb_keys), "Keys in lq_folder and gt_folder are different."
    return [{f"{input_key}_path": key, f"{gt_key}_path": key} for key in sorted(input_lmdb_keys)]


def imfrombytes(content):
    """imfrombytes(content, 'color') then img2tensor's bgr2rgb: uint8 RGB."""
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_lmdb(folder: Path) -> dict:
    """{key: value bytes} of an environment, opened as LmdbBackend opens it."""
    import lmdb

    env = lmdb.open(str(folder), readonly=True, lock=False, readahead=False)
    try:
        with env.begin(write=False) as txn:
            return {key.decode("ascii"): bytes(value) for key, value in txn.cursor()}
    finally:
        env.close()


# --- the checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True])
def test_basicsr_folders_pair_by_name_as_paired_paths_from_folder_does(tmp_path, full):
    content = make_folder(tmp_path / "src", full=full)
    res = run("export", tmp_path / "src", "--to", "basicsr", tmp_path / "out")
    assert res.exit_code == 0 and "5 pairs; wrote 5 now" in res.output, res.output
    root = tmp_path / "out" / "train"
    assert sorted(p.name for p in root.iterdir()) == [EXPORT_RECORD, "input", "target"]
    expected = expected_pairs(content)
    paths = paired_paths_from_folder([str(root / "input"), str(root / "target")], ["lq", "gt"], "{}")
    assert sorted(Path(p["gt_path"]).stem for p in paths) == sorted(expected)
    for p in paths:
        blurred, sharp = expected[Path(p["gt_path"]).stem]
        for side, image in (("lq_path", blurred), ("gt_path", sharp)):
            got = imfrombytes(Path(p[side]).read_bytes())  # HardDiskBackend.get: the file's bytes
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, image)


@pytest.mark.parametrize("full", [False, True])
def test_lmdb_reads_as_paired_paths_from_lmdb_and_lmdb_backend_do(tmp_path, full):
    content = make_folder(tmp_path / "src", full=full)
    res = run("export", tmp_path / "src", "--to", "lmdb", tmp_path / "GoPro", "--split", "test")
    assert res.exit_code == 0 and "5 pairs; wrote 5 now" in res.output, res.output
    lq, gt = tmp_path / "GoPro" / "test" / "input.lmdb", tmp_path / "GoPro" / "test" / "target.lmdb"
    expected = expected_pairs(content)
    paths = paired_paths_from_lmdb([str(lq), str(gt)], ["lq", "gt"])
    assert [p["gt_path"] for p in paths] == sorted(expected)
    envs = {"lq_path": read_lmdb(lq), "gt_path": read_lmdb(gt)}
    for p in paths:
        blurred, sharp = expected[p["gt_path"]]
        for side, image in (("lq_path", blurred), ("gt_path", sharp)):
            value = envs[side][p[side]]
            np.testing.assert_array_equal(imfrombytes(value), image)
            # The value is make_lmdb_from_imgs' own: cv2.imencode of the BGR image at compress_level 1.
            ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            assert ok and value == encoded.tobytes()
    for folder in (lq, gt):
        lines = (folder / "meta_info.txt").read_text().splitlines()
        # paired_paths_from_meta_info_file's rule gives the name with its extension; then "(h,w,c) level".
        assert [line.split(" ")[0] for line in lines] == [f"{key}.png" for key in sorted(expected)]
        for line in lines:
            name, shape, level = line.split(" ")
            h, w, c = expected[name[:-4]][0].shape
            assert (shape, level) == (f"({h},{w},{c})", "1")


def tree(root: Path) -> dict:
    """{relative path: bytes} of the files under ``root``, LMDB environments as {key: value} (their
    data.mdb depends on the commits), lock files left out."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".lmdb":
            out[rel] = read_lmdb(path)
        elif path.parent.suffix == ".lmdb" and path.name != "meta_info.txt":
            continue  # data.mdb, lock.mdb
        elif path.is_file() and not path.name.endswith(".lock"):
            out[rel] = path.read_bytes()
    return out


@pytest.mark.parametrize("how", ["flag", "second Ctrl-C"])
@pytest.mark.parametrize("layout", ["gopro", "basicsr", "lmdb"])
def test_a_stopped_export_resumes_to_what_one_run_writes(tmp_path, layout, how):
    """Stopped after 2 pairs by the stop flag (checked before the next pair), or by a
    KeyboardInterrupt outside the writer (in the progress bar): the 2 pairs are kept."""
    make_folder(tmp_path / "src", full=True)
    export_folder(tmp_path / "src", tmp_path / "once", layout=layout)
    stop, done = StopFlag(), []

    def progress(n):
        done.append(n)
        if len(done) == 2:
            if how == "flag":
                stop.set()
            else:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_folder(tmp_path / "src", tmp_path / "twice", layout=layout, progress=progress, stop=stop)
    assert len(done) == 2
    if layout == "lmdb":
        assert not (tmp_path / "twice" / "train" / "input.lmdb" / "meta_info.txt").exists()  # written at the end
    again = export_folder(tmp_path / "src", tmp_path / "twice", layout=layout)
    assert (again.pairs, again.existing, again.written) == (5, 2, 3)
    once, twice = tree(tmp_path / "once"), tree(tmp_path / "twice")
    assert once.keys() == twice.keys() and len(once) > 2
    for key in once:
        if not key.endswith(EXPORT_RECORD):
            assert once[key] == twice[key], key


def test_lmdb_resumes_after_a_crash_between_commits(tmp_path):
    """A kill -9 leaves some keys in one environment and not in the other, and no meta_info.txt."""
    import lmdb

    make_folder(tmp_path / "src")
    export_folder(tmp_path / "src", tmp_path / "once", layout="lmdb")
    export_folder(tmp_path / "src", tmp_path / "out", layout="lmdb")
    root = tmp_path / "out" / "train"
    for name, lost in (("input.lmdb", ["shard-00001_000001"]), ("target.lmdb", ["shard-00000_000002",
                                                                                 "shard-00001_000001"])):
        env = lmdb.open(str(root / name))
        with env.begin(write=True) as txn:
            for key in lost:
                assert txn.delete(key.encode("ascii"))
        env.close()
        (root / name / "meta_info.txt").unlink()
    again = export_folder(tmp_path / "src", tmp_path / "out", layout="lmdb")
    assert (again.existing, again.written) == (3, 2)
    once, out = tree(tmp_path / "once"), tree(tmp_path / "out")
    assert {k: v for k, v in once.items() if EXPORT_RECORD not in k} == {
        k: v for k, v in out.items() if EXPORT_RECORD not in k}


def test_the_older_spellings_still_write_the_gopro_layout(tmp_path):
    make_folder(tmp_path / "src")
    for words in (["a"], ["folder", "b"], ["gopro", "c"]):
        res = run("export", tmp_path / "src", "--to", *[tmp_path / w if w in "abc" else w for w in words])
        assert res.exit_code == 0, res.output
        assert (tmp_path / words[-1] / "train" / "shard-00001" / "sharp" / "000001.png").is_file()
    files = [sorted(p.relative_to(tmp_path / w).as_posix() for p in (tmp_path / w).rglob("*.png")) for w in "abc"]
    assert files[0] == files[1] == files[2] and len(files[0]) == 10
    for words, message in ((["lmdb"], "--to lmdb needs the output folder"),
                           (["zarr", "x"], "unexpected argument(s): x (export FOLDER --to [LAYOUT] OUT, LAYOUT one of"),
                           (["basicsr", "x", "y"], "unexpected argument(s): y")):
        res = run("export", tmp_path / "src", "--to", *words)
        assert res.exit_code == 2 and res.output.startswith("error: ") and message in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1


def test_without_lmdb_the_lmdb_layout_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    make_folder(tmp_path / "src")
    monkeypatch.setitem(sys.modules, "lmdb", None)  # import lmdb raises ImportError
    res = run("export", tmp_path / "src", "--to", "lmdb", tmp_path / "out")
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        "error: the lmdb layout needs the Python package lmdb: pip install 'blurgen[lmdb]'"]
    assert not (tmp_path / "out").exists()


def test_peer_layouts_share_a_split_folder_and_gopro_does_not(tmp_path):
    make_folder(tmp_path / "src")
    assert run("export", tmp_path / "src", "--to", "basicsr", tmp_path / "out").exit_code == 0
    assert run("export", tmp_path / "src", "--to", "lmdb", tmp_path / "out").exit_code == 0
    record = json.loads((tmp_path / "out" / "train" / EXPORT_RECORD).read_text())
    assert record["layouts"] == ["basicsr", "lmdb"]
    res = run("export", tmp_path / "src", "--to", tmp_path / "out")
    assert res.exit_code == 2 and "shares its split folder with no other" in res.output
    assert not (tmp_path / "out" / "train" / "shard-00000").exists()
    assert run("export", tmp_path / "src", "--to", tmp_path / "gopro").exit_code == 0
    res = run("export", tmp_path / "src", "--to", "basicsr", tmp_path / "gopro")
    assert res.exit_code == 2 and "holds an export in the gopro layout" in res.output


def test_the_lmdb_map_grows_and_keys_are_what_basicsr_can_find(tmp_path):
    env = basicsr_lmdb.open_env(tmp_path / "x.lmdb")
    start = env.info()["map_size"]
    big = [(f"k{i}", bytes([i]) * (1 << 20)) for i in range(4)]  # 4 MiB into a 1 MiB map
    basicsr_lmdb.put_all(env, big)
    assert env.info()["map_size"] > start and basicsr_lmdb.keys(env) == {"k0", "k1", "k2", "k3"}
    env.close()
    for key in ("a.b", "a b", "é", ""):
        with pytest.raises(ValueError):
            basicsr_lmdb.check_key(key)
    ok, png = cv2.imencode(".png", np.zeros((7, 5, 3), np.uint8))
    assert basicsr_lmdb.png_shape(png.tobytes()) == (7, 5, 3)

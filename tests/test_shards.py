"""The shard format: writing, reading windows, the manifest, and one-line errors."""
import pickle

import numpy as np
import pytest

from blurgen import shards


def make(tmp_path, n=3, shape=(12, 10)):
    rng = np.random.default_rng(0)
    blurred = rng.integers(0, 256, (n, *shape, 3), dtype=np.uint8)
    sharp = rng.integers(0, 256, (n, *shape, 3), dtype=np.uint8)
    kernels = np.full((n, 5, 5), 1 / 25, np.float32)
    meta = {"source": np.array([f"dir/ä{i}.jpg" for i in range(n)]), "crop_box": np.arange(4 * n).reshape(n, 4)}
    path = tmp_path / shards.shard_name(0)
    checksum = shards.write_shard(path, blurred, sharp, kernels, meta, {"arguments": {"seed": 1}})
    shards.write_manifest(tmp_path, {"shards": {path.name: {"count": n, "checksum": checksum}}})
    return path, blurred, sharp


def test_roundtrip_windows_and_fields(tmp_path):
    path, blurred, sharp = make(tmp_path)
    assert shards.file_checksum(path) == shards.find_shards(tmp_path)[0].checksum
    with shards.ShardReader(path) as r:
        assert len(r) == 3 and r.image_shape(2) == (12, 10) and r.layout == "crops"
        b, s = r.read_pair(1, box=(2, 3, 9, 8))
        np.testing.assert_array_equal(b, blurred[1, 2:9, 3:8])
        np.testing.assert_array_equal(s, sharp[1, 2:9, 3:8])
        sample = r.read_sample(2)
        assert sample["source"] == "dir/ä2.jpg" and list(sample["crop_box"]) == [8, 9, 10, 11]
        assert sample["kernel"].shape == (5, 5)
        with pytest.raises(IndexError):
            r.read_pair(3)
    assert not list(tmp_path.glob(".*tmp*"))


def test_reader_pickles_without_its_handle(tmp_path):
    path, blurred, _ = make(tmp_path)
    r = shards.ShardReader(path)
    len(r)  # opens the file
    clone = pickle.loads(pickle.dumps(r))
    assert clone._file is None
    np.testing.assert_array_equal(clone.read_pair(0)[0], blurred[0])
    r.close()
    clone.close()


def test_whole_images_of_different_sizes(tmp_path):
    images = [np.full((7, 9, 3), 1, np.uint8), np.full((300, 260, 3), 2, np.uint8)]
    path = tmp_path / "shard-00000.h5"
    shards.write_shard(path, images, images, np.ones((2, 3, 3), np.float32) / 9)
    with shards.ShardReader(path) as r:
        assert r.layout == "images" and r.image_shape(1) == (300, 260)
        assert r.read_pair(1, box=(250, 200, 300, 260))[0].shape == (50, 60, 3)


def test_errors_are_shard_errors(tmp_path):
    with pytest.raises(shards.ShardError, match="no such shard folder"):
        shards.find_shards(tmp_path / "nope")
    with pytest.raises(shards.ShardError, match="no manifest.json"):
        shards.find_shards(tmp_path)
    path, _, _ = make(tmp_path)
    path.unlink()
    with pytest.raises(shards.ShardError, match="listed in manifest.json but missing"):
        shards.find_shards(tmp_path)
    other = tmp_path / "other.h5"
    other.write_text("x")
    with pytest.raises(shards.ShardError, match="not a readable shard"):
        len(shards.ShardReader(other))
    with pytest.raises(ValueError, match="equal-shaped"):
        shards.write_shard(tmp_path / "bad.h5", np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 4, 5, 3), np.uint8),
                           np.zeros((1, 3, 3), np.float32))


def test_verify_reports_count_and_checksum_problems(tmp_path):
    path, _, _ = make(tmp_path)
    assert shards.verify_folder(tmp_path) == (1, [])
    manifest = shards.read_manifest(tmp_path)
    manifest["shards"][path.name]["count"] = 4
    manifest["shards"][path.name]["checksum"] = ""
    shards.write_manifest(tmp_path, manifest)
    checked, problems = shards.verify_folder(tmp_path)
    assert problems == [(path.name, "3 samples, the manifest says 4")]


def test_streamed_shard_equals_one_written_at_once_and_a_failure_leaves_nothing(tmp_path):
    rng = np.random.default_rng(2)
    n = 37  # more than one write batch, not a multiple of it
    blurred = rng.integers(0, 256, (n, 8, 6, 3), dtype=np.uint8)
    sharp = rng.integers(0, 256, (n, 8, 6, 3), dtype=np.uint8)
    kernels = rng.random((n, 5, 5)).astype(np.float32)
    boxes = rng.integers(0, 99, (n, 4)).astype(np.int32)
    whole = shards.write_shard(tmp_path / "a.h5", blurred, sharp, kernels, {"crop_box": boxes}, {"seed": 3})
    with shards.ShardWriter(tmp_path / "b.h5", crop=(8, 6), attrs={"seed": 3}, kernel_size=5, expected=40) as w:
        for i in range(n):
            w.add(blurred[i], sharp[i], kernels[i], {"crop_box": boxes[i]})
    assert w.count == n and w.checksum == shards.file_checksum(tmp_path / "b.h5")
    with shards.ShardReader(tmp_path / "a.h5") as a, shards.ShardReader(tmp_path / "b.h5") as b:
        assert len(b) == n and b.attrs == a.attrs
        for name in ("blurred", "sharp", "kernel", "crop_box"):
            np.testing.assert_array_equal(b.file[name][()], a.file[name][()])
    assert whole == shards.file_checksum(tmp_path / "a.h5")

    with pytest.raises(RuntimeError):
        with shards.ShardWriter(tmp_path / "c.h5", crop=(8, 6)) as w:
            w.add(blurred[0], sharp[0], kernels[0])
            raise RuntimeError("the worker died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]


def test_empty_shard_keeps_its_fields(tmp_path):
    empty = np.zeros((0, 8, 8, 3), np.uint8)
    shards.write_shard(tmp_path / "e.h5", empty, empty, np.zeros((0, 7, 7), np.float32),
                       {"source": np.zeros(0, dtype=object), "crop_box": np.zeros((0, 4), np.int32)})
    with shards.ShardReader(tmp_path / "e.h5") as r:
        assert len(r) == 0 and r.file["kernel"].shape == (0, 7, 7)
        assert r.file["crop_box"].shape == (0, 4) and r.file["blurred"].shape == (0, 8, 8, 3)


def test_raw_chunk_reads_equal_h5py_reads_and_compressed_shards_still_read(tmp_path):
    import h5py

    path, blurred, sharp = make(tmp_path, n=4, shape=(9, 7))
    compressed = tmp_path / "lzf.h5"
    with h5py.File(path) as src, h5py.File(compressed, "w") as dst:
        for name in src:
            options = {"compression": "lzf", "chunks": (1, 9, 7, 3)} if name in ("blurred", "sharp") else {}
            dst.create_dataset(name, data=src[name][()], **options)
        dst.attrs.update(src.attrs)
    for p in (path, compressed):
        with shards.ShardReader(p) as r:
            assert len(r) == 4 and r._raw == (p == path)
            for i, box in ((0, None), (3, (2, 1, 8, 6)), (-1, (0, 0, 9, 7))):
                b, s = r.read_pair(i, box=box)
                window = np.s_[:, :] if box is None else np.s_[box[0] : box[2], box[1] : box[3]]
                np.testing.assert_array_equal(b, blurred[i][window])
                np.testing.assert_array_equal(s, sharp[i][window])
                assert b.flags.writeable and s.flags.writeable

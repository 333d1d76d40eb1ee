"""blurgen.shards.index, what PairDataset and the trainer's ShardSource share (issue 21.5):
one numbering, one size cache, one check of each shard, one DamagedSample."""
import json
import pickle

import h5py
import numpy as np
import pytest
from test_dataset import make_folder

import trainer.data
from blurgen import shards
from blurgen.shards.dataset import PairDataset
from blurgen.shards.index import ShardIndex, check_shard
from trainer.data import DataError, ShardSource


def damage(path, sample):
    """Flip one byte of the stored sharp pixels of ``sample`` (crops layout)."""
    with h5py.File(path, "r") as f:
        offset = f["sharp"].id.get_chunk_info_by_coord((sample, 0, 0, 0)).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 9)
        value = fh.read(1)[0]
        fh.seek(offset + 9)
        fh.write(bytes([value ^ 0xFF]))


def test_both_datasets_report_the_one_damaged_sample_class(tmp_path):
    make_folder(tmp_path / "s", n_shards=1)
    damage(tmp_path / "s" / shards.shard_name(0), 2)
    with pytest.raises(shards.DamagedSample) as plain:
        PairDataset(tmp_path / "s", crop=8)[2]
    source = ShardSource(shards.find_shards(tmp_path / "s"))
    with pytest.raises(shards.DamagedSample) as trained:
        source.read(2, (0, 0, 8, 8))
    with pytest.raises(shards.DamagedSample):
        source.read_sharp(2, (0, 0, 8, 8))
    assert type(plain.value) is type(trained.value) is shards.DamagedSample
    assert str(plain.value) == str(trained.value)
    assert "sample 2 is damaged" in str(trained.value) and "\n" not in str(trained.value)
    # Defined once: the trainer names blurgen's class, it has no copy of its own.
    assert trainer.data.DamagedSample is shards.DamagedSample
    source.read(1, (0, 0, 8, 8))   # the other samples read
    source.close()


def test_sizes_are_read_once_per_shard_and_outlive_close_and_pickling(tmp_path):
    content = make_folder(tmp_path / "s", n_shards=2, n=3, side=20, full=True)
    infos = shards.find_shards(tmp_path / "s")
    index = ShardIndex(infos)
    assert len(index) == 6 and index.locate(4) == (1, 1) and index.name(4).endswith("shard-00001.h5#1")
    assert [index.size(i) for i in range(6)] == [content[i][1].shape[:2] for i in range(6)]
    assert index.readers.opened == [0, 1]
    index.close()
    clone = pickle.loads(pickle.dumps(index))
    assert [clone.size(i) for i in range(6)] == [index.size(i) for i in range(6)]
    assert clone.readers.opened == [] and index.readers.opened == []   # answered from the cache
    # Handed over by the pre-check, sizes open nothing at all.
    seeded = ShardIndex(infos, sizes=[check_shard(info).sizes for info in infos])
    assert [seeded.size(i) for i in range(6)] == [index.size(i) for i in range(6)]
    assert seeded.readers.opened == []
    np.testing.assert_array_equal(seeded.read_pair(5, (1, 2, 4, 6))[1], content[5][1][1:4, 2:6])


def test_one_check_of_each_shard_for_both_datasets(tmp_path):
    make_folder(tmp_path / "c", n_shards=1, n=4, side=16)
    make_folder(tmp_path / "w", n_shards=1, n=2, side=20, full=True)
    crops, = shards.find_shards(tmp_path / "c")
    facts = check_shard(crops)
    assert facts.layout == "crops" and not facts.sharp_only and facts.sizes.tolist() == [[16, 16]] * 4
    assert check_shard(shards.find_shards(tmp_path / "w")[0]).sizes.tolist() == [[20, 20], [27, 23]]
    manifest = json.loads((tmp_path / "c" / shards.MANIFEST).read_text())
    manifest["shards"]["shard-00000.h5"]["count"] = 9
    (tmp_path / "c" / shards.MANIFEST).write_text(json.dumps(manifest))
    message = "shard-00000.h5: holds 4 samples, its manifest lists 9"
    with pytest.raises(shards.ShardError, match=message):
        check_shard(shards.find_shards(tmp_path / "c")[0])
    with pytest.raises(shards.ShardError, match=message):
        PairDataset(tmp_path / "c")
    with pytest.raises(DataError, match=message):
        trainer.data.train_batches(trainer.data.DataConfig(shards=(tmp_path / "c",), mix=(1, 0), crop=8,
                                                           workers=0, val_shards=tmp_path / "w"))

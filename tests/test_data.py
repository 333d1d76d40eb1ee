"""The training stream: exact mix, determinism, resume, ranks, worker-safe HDF5, validation sets."""
import itertools
import pickle
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from blurgen.shards import ShardReader, find_shards, shard_name, write_manifest, write_shard
from trainer.data import (
    GOPRO,
    SYNTHETIC,
    DataConfig,
    DataError,
    DrawPlan,
    DrawSampler,
    build_dataset,
    epoch_length,
    mix_pattern,
    parse_mix,
    train_batches,
    val_pairs,
)
from trainer.gopro import read_gopro_pair, scan_gopro

CROP = 16


def make_shard_folder(folder, counts, size, seed, whole_images=False):
    """Shards of random pairs (blurred = sharp // 2) with their manifest.

    ``whole_images``: the variable-size layout, sample i being (size[0] + i, size[1] - i).
    """
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    manifest = {}
    for k, n in enumerate(counts):
        if whole_images:
            sharp = [rng.integers(0, 256, (size[0] + i, size[1] - i, 3), dtype=np.uint8) for i in range(n)]
            blurred = [s // 2 for s in sharp]
        else:
            sharp = rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)
            blurred = sharp // 2
        checksum = write_shard(folder / shard_name(k), blurred, sharp, np.zeros((n, 5, 5), np.float32),
                               {"source": np.array([f"photo{i}.jpg" for i in range(n)])})
        manifest[shard_name(k)] = {"count": n, "checksum": checksum,
                                   "bytes": (folder / shard_name(k)).stat().st_size}
    write_manifest(folder, {"shards": manifest})
    return folder


@pytest.fixture(scope="module")
def gopro(make_gopro):
    return make_gopro("gopro", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two shard folders: 5 + 4 + 3 crops (40x48), and 6 whole images (36x36 ... 41x31)."""
    base = tmp_path_factory.mktemp("shards")
    first = make_shard_folder(base / "first", [5, 4, 3], size=(40, 48), seed=1)
    second = make_shard_folder(base / "second", [6], size=(36, 36), seed=2, whole_images=True)
    return first, second


def _cfg(shards, gopro, **kw):
    kw.setdefault("crop", CROP)
    kw.setdefault("workers", 0)
    return DataConfig(shards=shards, gopro=gopro, **kw)


def _take(stream, n):
    return list(itertools.islice(stream, n))


# --- settings -------------------------------------------------------------------------


def test_parse_mix():
    assert parse_mix("2:1") == (2, 1) and parse_mix(" 1:0 ") == (1, 0) and parse_mix("0:1") == (0, 1)
    for bad in ("2", "a:b", "0:0", "-1:2", "2:1:1", ""):
        with pytest.raises(DataError):
            parse_mix(bad)


def test_config_checks_and_coercion(tmp_path):
    cfg = DataConfig(shards=[str(tmp_path)], gopro=str(tmp_path), mix="3:1")
    assert cfg.shards == (tmp_path,) and cfg.gopro == tmp_path and cfg.mix == (3, 1)
    assert DataConfig(shards=None).shards == () and DataConfig(mix=[1, 0]).mix == (1, 0)
    for bad in (dict(crop=30), dict(crop=0), dict(batch_size=0), dict(gopro_scale=0),
                dict(gopro_blur="sharp"), dict(workers=-1), dict(mix=(0, 0)), dict(seed=-1)):
        with pytest.raises(DataError):
            DataConfig(**bad)


def test_missing_source_for_nonzero_share(shards, gopro):
    with pytest.raises(DataError, match="no shard folder"):
        train_batches(_cfg((), gopro, mix=(2, 1)))
    with pytest.raises(DataError, match="no GoPro folder"):
        train_batches(_cfg(shards, None, mix=(2, 1)))
    with pytest.raises(DataError, match="manifest"):
        train_batches(_cfg((gopro,), gopro, mix=(1, 1)))  # not a shard folder
    with pytest.raises(DataError, match="smaller than the 64x64 crop"):
        train_batches(_cfg((), gopro, mix=(0, 1), crop=64))  # 64x48 frames at scale 0.5


# --- the mix --------------------------------------------------------------------------


@pytest.mark.parametrize("mix", [(2, 1), (1, 2), (3, 2), (5, 3), (1, 4), (4, 2)])
def test_mix_is_exact_in_every_window(mix):
    a, b = mix
    sources = np.array([DrawPlan(mix, (7, 5), 0).source(j) for j in range(3000)])
    windows = np.lib.stride_tricks.sliding_window_view(sources == SYNTHETIC, a + b)
    assert np.all(windows.sum(1) == a)
    assert len(mix_pattern(mix)) == a + b


def test_stream_draws_exactly_two_to_one(shards, gopro):
    dataset = build_dataset(_cfg(shards, gopro, mix=(2, 1)))
    sources = np.array([dataset.draw(j).source for j in range(3000)])
    assert (sources == SYNTHETIC).sum() == 2000 and (sources == GOPRO).sum() == 1000
    assert np.all(np.lib.stride_tricks.sliding_window_view(sources == SYNTHETIC, 3).sum(1) == 2)


def test_single_source_mixes(shards, gopro):
    only_shards = build_dataset(_cfg(shards, gopro, mix=(1, 0)))
    only_gopro = build_dataset(_cfg(shards, gopro, mix=(0, 1)))
    assert {only_shards.draw(j).source for j in range(200)} == {SYNTHETIC}
    assert {only_gopro.draw(j).source for j in range(200)} == {GOPRO}
    assert only_shards.sources[GOPRO] is None and only_gopro.sources[SYNTHETIC] is None


def test_each_source_is_a_shuffled_pass_per_epoch():
    plan = DrawPlan((2, 1), (7, 5), seed=3)
    synthetic = [plan.locate(j)[1] for j in range(60) if plan.source(j) == SYNTHETIC]
    gopro = [plan.locate(j)[1] for j in range(60) if plan.source(j) == GOPRO]
    passes = [synthetic[k:k + 7] for k in range(0, 35, 7)] + [gopro[k:k + 5] for k in range(0, 20, 5)]
    assert all(sorted(p) == list(range(len(p))) for p in passes)  # every sample once per pass
    assert len({tuple(p) for p in passes[:5]}) > 1  # reshuffled between passes


# --- determinism, resume and ranks ------------------------------------------------------


def test_draws_are_a_pure_function_of_seed_and_index(shards, gopro):
    cfg = _cfg(shards, gopro)
    first, second = build_dataset(cfg), build_dataset(cfg)
    order = [917, 3, 400, 3, 12]  # any order, repeats included
    backwards = {j: second.draw(j) for j in reversed(order)}
    assert [first.draw(j) for j in order] == [backwards[j] for j in order]
    other = build_dataset(_cfg(shards, gopro, seed=1))
    assert [first.draw(j) for j in range(30)] != [other.draw(j) for j in range(30)]
    flips = [first.draw(j).flip for j in range(200)]
    assert 60 < sum(flips) < 140
    unflipped = build_dataset(_cfg(shards, gopro, flip=False))
    for j in range(50):  # turning flips off keeps the crops
        assert unflipped.draw(j).box == first.draw(j).box and not unflipped.draw(j).flip


def _expected_batch(dataset, draws):
    """The batch of these draw indices, read independently: whole images, cropped here."""
    blurred, sharp = [], []
    for j in draws:
        d = dataset.draw(j)
        if d.source == SYNTHETIC:
            shard, local = dataset.sources[SYNTHETIC].locate(d.sample)
            reader = ShardReader(dataset.sources[SYNTHETIC].paths[shard])
            b, s = reader.read_pair(local)
            reader.close()
        else:
            b, s = read_gopro_pair(dataset.sources[GOPRO].pairs[d.sample], 0.5)
        y0, x0, y1, x1 = d.box
        b, s = b[y0:y1, x0:x1], s[y0:y1, x0:x1]
        if d.flip:
            b, s = b[:, ::-1], s[:, ::-1]
        blurred.append(b)
        sharp.append(s)
    as_tensor = lambda x: torch.from_numpy(np.stack(x).transpose(0, 3, 1, 2).copy()).float() / 127.5 - 1  # noqa: E731
    return as_tensor(blurred), as_tensor(sharp)


def test_batches_hold_the_drawn_crops(shards, gopro):
    cfg = _cfg(shards, gopro, batch_size=3)
    dataset = build_dataset(cfg)
    for k, batch in enumerate(_take(train_batches(cfg), 4)):
        assert batch["blurred"].shape == (3, 3, CROP, CROP) and batch["blurred"].dtype == torch.float32
        assert batch["blurred"].is_contiguous()
        blurred, sharp = _expected_batch(dataset, range(3 * k, 3 * k + 3))
        assert torch.allclose(batch["blurred"], blurred, atol=1e-6)
        assert torch.allclose(batch["sharp"], sharp, atol=1e-6)
        assert -1.0 <= batch["sharp"].min() and batch["sharp"].max() <= 1.0


def test_resume_matches_uninterrupted_stream(shards, gopro):
    cfg = _cfg(shards, gopro, batch_size=2)
    full = _take(train_batches(cfg), 40)  # past one pass over every source
    resumed = _take(train_batches(cfg, start=33), 7)
    for a, b in zip(full[33:], resumed):
        assert torch.equal(a["blurred"], b["blurred"]) and torch.equal(a["sharp"], b["sharp"])


def test_ranks_read_disjoint_draws(shards, gopro):
    sampler = lambda r: list(itertools.islice(iter(DrawSampler(5, 2, r, 3)), 20))  # noqa: E731
    ranks = [sampler(r) for r in range(3)]
    assert not set(ranks[0]) & set(ranks[1]) and not set(ranks[1]) & set(ranks[2])
    assert sorted(sum(ranks, [])) == list(range(30, 90))  # together: steps 5.. of one stream
    cfg = _cfg(shards, gopro)
    single = _take(train_batches(cfg), 8)
    rank1 = _take(train_batches(cfg, rank=1, world_size=2), 4)
    for k in range(4):  # rank 1 of 2, batch 1: global draw 2k + 1
        assert torch.equal(rank1[k]["blurred"], single[2 * k + 1]["blurred"])


def test_two_workers_match_in_process_reading(shards, gopro):
    cfg = _cfg(shards, gopro, batch_size=2)
    dataset = build_dataset(cfg)
    dataset.draw(0), dataset[0], dataset[1]  # opens shard files in this process
    clone = pickle.loads(pickle.dumps(dataset))  # h5py handles cannot pickle: proves none travel
    assert dataset.sources[SYNTHETIC].readers.opened and clone.sources[SYNTHETIC].readers.opened == []
    expected = _take(train_batches(cfg, start=3), 12)
    # Idle OpenCV pool threads in the parent at fork time once hung workers
    # that touched OpenCV's thread settings.
    cv2.resize(np.zeros((1200, 1600, 3), np.uint8), (800, 600), interpolation=cv2.INTER_AREA)
    time.sleep(0.3)
    parallel = _take(train_batches(DataConfig(**{**cfg.__dict__, "workers": 2}), start=3), 12)
    for a, b in zip(expected, parallel):
        assert torch.equal(a["blurred"], b["blurred"]) and torch.equal(a["sharp"], b["sharp"])


def test_unreadable_sample_is_one_line_error(tmp_path, gopro):
    import shutil
    root = tmp_path / "G"
    shutil.copytree(gopro, root)
    cfg = _cfg((), root, mix=(0, 1))
    stream = train_batches(cfg)  # frames listed and checked here
    broken = scan_gopro(root)[build_dataset(cfg).draw(0).sample].blurred
    broken.write_bytes(broken.read_bytes()[:200])  # header intact, pixels cut
    with pytest.raises(DataError, match=r"draw 0: .*a damaged image") as info:
        next(stream)
    assert "\n" not in str(info.value) and broken.name in str(info.value)


# --- epochs and validation ----------------------------------------------------------------


def test_epoch_length(shards, gopro):
    # 18 training samples without holding out (GoPro validates), 6 GoPro train frames.
    assert epoch_length(_cfg(shards, gopro, mix=(2, 1))) == max(27, 18)
    assert epoch_length(_cfg(shards, gopro, mix=(1, 2))) == max(54, 9)
    assert epoch_length(_cfg(shards, gopro, mix=(1, 0), batch_size=4)) == 5  # ceil(18 / 4)
    assert epoch_length(_cfg(shards, gopro, mix=(0, 1)), world_size=4) == 2  # ceil(6 / 4)
    # Without GoPro the last shard of the first folder (3 samples) is held out.
    assert epoch_length(_cfg(shards, None, mix=(1, 0))) == 15


def test_shard_validation_holds_out_the_last_shard(shards):
    first, second = shards
    cfg = _cfg(shards, None, mix=(1, 0))
    held_out = find_shards(first)[-1]
    pairs = val_pairs(cfg)
    assert len(pairs) == held_out.count == 3
    assert [name for name, _, _ in pairs] == [f"{Path(held_out.path).name}#{i}" for i in range(3)]
    reader = ShardReader(held_out.path)
    name, blurred, sharp = pairs[2]
    expected = reader.read_pair(2)
    reader.close()
    assert np.array_equal(blurred, expected[0]) and np.array_equal(sharp, expected[1])
    assert blurred.dtype == np.uint8 and blurred.shape == (40, 48, 3)
    dataset = build_dataset(cfg)
    trained = {Path(p) for p in dataset.sources[SYNTHETIC].paths}
    assert Path(held_out.path) not in trained and len(trained) == 3
    with pytest.raises(DataError, match="held out"):
        train_batches(_cfg((second,), None, mix=(1, 0)))  # its only shard validates


def test_validation_folder_spans_its_shards_and_holds_nothing_out(shards, gopro, tmp_path):
    first, second = shards
    held = make_shard_folder(tmp_path / "held", [2, 3], size=(24, 28), seed=9)
    # Given a validation folder, it wins over GoPro test/ and the hold-out.
    cfg = _cfg((first,), gopro, mix=(1, 0), val_shards=held)
    pairs = val_pairs(cfg)
    assert pairs.names == ["shard-00000.h5#0", "shard-00000.h5#1", "shard-00001.h5#0",
                           "shard-00001.h5#1", "shard-00001.h5#2"]
    reader = ShardReader(find_shards(held)[1].path)
    expected = reader.read_pair(2)
    reader.close()
    assert all(np.array_equal(a, b) for a, b in zip(pairs[4][1:], expected))
    assert val_pairs(cfg, limit=3).names == ["shard-00000.h5#0", "shard-00001.h5#0", "shard-00001.h5#2"]
    no_gopro = _cfg((first,), None, mix=(1, 0), val_shards=held)
    assert len(build_dataset(no_gopro).sources[SYNTHETIC].paths) == 3   # all of first trains
    with pytest.raises(DataError, match="nowhere: no such shard folder"):
        val_pairs(_cfg((first,), None, mix=(1, 0), val_shards=tmp_path / "nowhere"))


def test_gopro_validation_is_the_scaled_test_split(gopro):
    cfg = _cfg((), gopro, mix=(0, 1))
    pairs = val_pairs(cfg)
    listed = scan_gopro(gopro, "test")
    assert len(pairs) == len(listed) == 3 and pairs.names == [p.name for p in listed]
    name, blurred, sharp = pairs[-1]
    assert blurred.shape == sharp.shape == (24, 32, 3) and blurred.dtype == np.uint8
    assert np.array_equal(blurred, read_gopro_pair(listed[-1], 0.5)[0])
    assert len(val_pairs(cfg, limit=2)) == 2 and val_pairs(cfg, limit=2).names == [listed[0].name, listed[2].name]
    assert [n for n, _, _ in pairs[:2]] == pairs.names[:2]
    gamma = val_pairs(DataConfig(gopro=gopro, mix=(0, 1), gopro_blur="blur_gamma", crop=CROP))
    assert not np.array_equal(gamma[0][1], pairs[0][1])


def test_whole_image_shards_smaller_than_the_crop(tmp_path, gopro):
    # Whole-image layout: sample i is (20 + i) x (20 - i); sample 5 is 15 wide.
    folder = make_shard_folder(tmp_path / "full", [6], size=(20, 20), seed=5, whole_images=True)
    stream = train_batches(_cfg((folder,), gopro, mix=(1, 0)))
    with pytest.raises(DataError, match=r"shard-00000.h5#5 is 15x25, smaller than the 16x16 crop"):
        _take(stream, 6)  # the first pass visits every sample


def test_damaged_shard_stops_at_start(tmp_path, gopro):
    folder = make_shard_folder(tmp_path / "bad", [2, 2], size=(16, 16), seed=6)
    (folder / shard_name(1)).write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match=r"shard-00001.h5: not a readable shard") as info:
        train_batches(_cfg((folder,), gopro, mix=(1, 1)))
    assert "\n" not in str(info.value)


def test_sharp_fraction_makes_identity_pairs_per_draw(shards):
    """--sharp-fraction: a share of the draws comes as (sharp, sharp), chosen from (seed, j)
    alone; the other draws and every crop box stay what they were without it."""
    plain = build_dataset(_cfg(shards, None, mix=(1, 0)))
    mixed = build_dataset(_cfg(shards, None, mix=(1, 0), sharp_fraction=0.3))
    chosen = [mixed.is_sharp(j) for j in range(400)]
    assert 80 < sum(chosen) < 160                                  # ~0.3 of 400
    assert chosen == [build_dataset(_cfg(shards, None, mix=(1, 0), sharp_fraction=0.3)).is_sharp(j)
                      for j in range(400)]
    assert not any(plain.is_sharp(j) for j in range(400))
    for j in range(12):
        (b0, s0, _), (b1, s1, _) = plain[j], mixed[j]
        assert np.array_equal(s0, s1) and mixed.draw(j) == plain.draw(j)
        assert np.array_equal(b1, s1 if chosen[j] else b0)
    assert not np.array_equal(plain[0][0], plain[0][1])           # the shards' blurred differ from sharp
    for bad in (-0.1, 1.0):
        with pytest.raises(DataError, match="sharp fraction"):
            _cfg(shards, None, mix=(1, 0), sharp_fraction=bad)


def test_only_the_tiny_preset_trains_on_identity_pairs():
    from trainer.config import make_configs

    assert make_configs("paper")[1].sharp_fraction == 0.0      # the paper's data, unchanged
    assert make_configs("tiny")[1].sharp_fraction == 0.2
    assert make_configs("tiny", data={"sharp_fraction": 0.0})[1].sharp_fraction == 0.0

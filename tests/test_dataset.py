"""blurgen.shards.dataset.PairDataset: shards from plain PyTorch (issue 13, item 1)."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from blurgen import shards
from blurgen.shards.dataset import PairDataset

ROOT = Path(__file__).resolve().parents[1]


def coordinates(n: int, h: int, w: int, first: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8 sharp images whose pixels say where they are: (y, x, sample)."""
    y, x = np.mgrid[:h, :w]
    return np.stack([np.stack([y, x, np.full_like(y, first + i)], -1) for i in range(n)]).astype(np.uint8)


def make_folder(folder: Path, n_shards=2, n=5, side=40, full=False) -> dict:
    """A shard folder whose sharp pixels encode (y, x, global index) and whose blurred
    image is 255 - sharp; returns {global index: (blurred, sharp)}."""
    folder.mkdir(parents=True, exist_ok=True)
    content, listed = {}, {}
    for k in range(n_shards):
        if full:
            sharp = [coordinates(1, side + 7 * i, side + 3 * i, k * n + i)[0] for i in range(n)]
        else:
            sharp = list(coordinates(n, side, side, k * n))
        blurred = [255 - s for s in sharp]
        name = shards.shard_name(k)
        images = (blurred, sharp) if full else (np.stack(blurred), np.stack(sharp))
        checksum = shards.write_shard(folder / name, *images, np.full((n, 3, 3), 1 / 9, np.float32))
        listed[name] = {"count": n, "checksum": checksum}
        content.update({k * n + i: (blurred[i], sharp[i]) for i in range(n)})
    shards.write_manifest(folder, {"shards": listed})
    return content


def expected(content, data, i):
    """Item i by an independent route: slice the written arrays with the drawn box, flip."""
    box, hflip, vflip = data.draw(i)
    blurred, sharp = content[i]
    if box is not None:
        blurred, sharp = (im[box[0]:box[2], box[1]:box[3]] for im in (blurred, sharp))
    if hflip:
        blurred, sharp = blurred[:, ::-1], sharp[:, ::-1]
    if vflip:
        blurred, sharp = blurred[::-1], sharp[::-1]
    return blurred, sharp


def test_a_plain_conv_trains_one_step_through_a_dataloader_with_workers(tmp_path):
    make_folder(tmp_path / "a")
    make_folder(tmp_path / "b", n_shards=1)
    data = PairDataset([tmp_path / "a", tmp_path / "b"], crop=16, vflip=True, seed=3)
    assert len(data) == 15
    torch.manual_seed(0)
    net = nn.Conv2d(3, 3, 3, padding=1)
    before = net.weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loader = DataLoader(data, batch_size=4, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
    blurred, sharp = next(iter(loader))
    assert blurred.shape == sharp.shape == (4, 3, 16, 16) and blurred.dtype == torch.float32
    assert 0 <= blurred.min() and blurred.max() <= 1
    torch.testing.assert_close(blurred, 1 - sharp)  # the pair stayed aligned through crops and flips
    loss = nn.functional.l1_loss(net(blurred), sharp)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(net.weight, before)


def test_items_are_the_same_in_any_process_and_for_any_worker_count(tmp_path):
    make_folder(tmp_path / "s")
    data = PairDataset(tmp_path / "s", crop=12, seed=7)
    main = [data[i] for i in range(len(data))]   # opens handles in this process before the fork
    for workers in (0, 2):
        got = [pair for batch in DataLoader(data, batch_size=3, num_workers=workers) for pair in zip(*batch)]
        for (b, s), (b0, s0) in zip(got, main):
            assert torch.equal(b, b0) and torch.equal(s, s0)
    again = PairDataset(tmp_path / "s", crop=12, seed=7)
    assert all(torch.equal(again[i][0], main[i][0]) for i in range(len(data)))
    other = PairDataset(tmp_path / "s", crop=12, seed=8)
    assert [other.draw(i) for i in range(10)] != [data.draw(i) for i in range(10)]
    data.set_epoch(1)
    assert [data.draw(i) for i in range(10)] != [again.draw(i) for i in range(10)]
    data.close()


def test_crops_come_from_the_same_box_in_both_images(tmp_path):
    content = make_folder(tmp_path / "s")
    data = PairDataset(tmp_path / "s", crop=12, hflip=True, vflip=True, seed=1, output="uint8")
    boxes, flips = set(), set()
    for i in range(len(data)):
        blurred, sharp = data[i]
        want_b, want_s = expected(content, data, i)
        np.testing.assert_array_equal(sharp, want_s)
        np.testing.assert_array_equal(blurred, want_b)
        box, hflip, vflip = data.draw(i)
        assert sharp.dtype == np.uint8 and sharp.shape == (12, 12, 3)
        # The pixels themselves say where they came from: the box, and the sample.
        corner = sharp[-1 if vflip else 0, -1 if hflip else 0]
        assert tuple(corner) == (box[0], box[1], i)
        boxes.add(box)
        flips.add((hflip, vflip))
    assert len(boxes) > 5 and len(flips) == 4


def test_whole_images_of_varied_sizes_and_their_crops(tmp_path):
    content = make_folder(tmp_path / "s", n_shards=1, n=3, side=20, full=True)
    whole = PairDataset(tmp_path / "s", hflip=False, output="uint8")
    for i in range(3):
        np.testing.assert_array_equal(whole[i][1], content[i][1])
    assert torch.equal(PairDataset(tmp_path / "s", hflip=False)[2][1],
                       torch.from_numpy(content[2][1].transpose(2, 0, 1).copy()).float() / 255)
    cropped = PairDataset(tmp_path / "s", crop=20, output="uint8", seed=4)
    for i in range(3):
        np.testing.assert_array_equal(cropped[i][1], expected(content, cropped, i)[1])
    with pytest.raises(shards.ShardError, match="sample 0 is 20x20, smaller than the 21x21 crop"):
        PairDataset(tmp_path / "s", crop=21)


def test_a_damaged_sample_raises_the_packages_error(tmp_path):
    make_folder(tmp_path / "s", n_shards=1)
    path = tmp_path / "s" / shards.shard_name(0)
    with h5py.File(path, "r") as f:
        offset = f["sharp"].id.get_chunk_info_by_coord((2, 0, 0, 0)).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 9)
        value = fh.read(1)[0]
        fh.seek(offset + 9)
        fh.write(bytes([value ^ 0xFF]))
    data = PairDataset(tmp_path / "s", crop=8)
    data[1]
    with pytest.raises(shards.DamagedSample, match="sample 2 is damaged"):
        data[2]
    with pytest.raises(shards.DamagedSample):   # also through a worker
        list(DataLoader(data, batch_size=5, num_workers=1))


def test_importing_blurgen_shards_imports_neither_torch_nor_the_dataset():
    """Issue 21.5: shards.py re-exported PairDataset through a module __getattr__, an
    import circle with dataset.py; the format module now knows nothing of datasets."""
    code = ("import sys, blurgen.shards; assert 'torch' not in sys.modules; "
            "assert 'blurgen.shards.dataset' not in sys.modules; assert not hasattr(blurgen.shards, 'PairDataset')")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)

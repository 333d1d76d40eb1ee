"""Shard folders as a plain ``torch.utils.data.Dataset``: :class:`PairDataset`.

For training code of any kind (BasicSR, NAFNet, a hand-written loop) that
wants this project's pairs without the ``trainer`` package::

    from torch.utils.data import DataLoader
    from blurgen.shards.dataset import PairDataset

    data = PairDataset(["shards/"], crop=256, seed=0)
    for blurred, sharp in DataLoader(data, batch_size=16, shuffle=True, num_workers=4):
        ...  # float32 (16, 3, 256, 256) in [0, 1]

Item i is a pure function of (seed, epoch, i) and the data on disk: its crop
box and flips come from ``numpy.random.default_rng([seed, PAIR_TAG, epoch,
i])`` (:func:`blurgen.shards.augment.draw_crop_flip`, order ``UNIFORMS``), whatever
process reads it, so a loader with any ``num_workers`` gives the same pairs.
HDF5 files are opened lazily by the process that reads them; the dataset
pickles without its handles, and a worker forked from a parent that had
already read drops the inherited handles and opens its own (h5py handles
must not cross a fork).

torch is imported here only: ``import blurgen.shards`` stays light (and
does not import this module).  The shard bookkeeping -- numbering, sizes,
readers, the check of each shard -- is :mod:`blurgen.shards.index`, shared
with the trainer.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from blurgen import shards
from blurgen.shards.augment import UNIFORMS, draw_crop_flip, flip_pair
from blurgen.shards.index import ShardIndex, check_shard

#: Stream tag of the crop and flip draws ("pair"), kept apart from other streams of the same seed.
PAIR_TAG = 0x70616972
OUTPUTS = ("tensor", "uint8")


class PairDataset(Dataset):
    """Aligned (blurred, sharp) pairs from one or more shard folders.

    Parameters
    ----------
    folders : a shard folder (``blurgen synthesize`` or ``blurgen import-pairs``
        output, or the parts of a ``--part`` run sharing one folder) or a
        sequence of them; their finished shards are numbered in order.
    crop : side of a square random crop, in pixels (the same box in both
        images), or None for whole samples (then a batch needs samples of one
        size: ``batch_size=1`` for whole images of varied sizes).
    hflip, vflip : random horizontal / vertical flips, each with probability
        1/2, the same for both images of a pair.
    seed : seed of the crop and flip draws.
    output : ``"tensor"``: float32 (3, H, W) tensors in [0, 1] (x / 255);
        ``"uint8"``: uint8 (H, W, 3) RGB numpy arrays as stored.
    verify : check each chunk read against its stored hash (format 2); a
        mismatch raises :class:`blurgen.shards.DamagedSample`.

    Item i is ``(blurred, sharp)``.  Every shard is opened once here to check
    it (sample count, and sizes against ``crop``) and closed again; a problem
    raises :class:`blurgen.shards.ShardError` in one line naming the shard.
    Reading a damaged sample raises ``DamagedSample`` (a ShardError); inside
    DataLoader workers torch re-raises it in the calling process.
    """

    def __init__(self, folders: str | os.PathLike | Sequence[str | os.PathLike], crop: int | None = None,
                 hflip: bool = True, vflip: bool = False, seed: int = 0, output: str = "tensor",
                 verify: bool = True):
        if isinstance(folders, (str, os.PathLike)):
            folders = [folders]
        if crop is not None and (int(crop) != crop or crop < 1):
            raise ValueError(f"crop must be a positive integer or None, got {crop!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.folders = [Path(f) for f in folders]
        if not self.folders:
            raise ValueError("give at least one shard folder")
        self.crop = None if crop is None else int(crop)
        self.hflip, self.vflip = bool(hflip), bool(vflip)
        self.seed, self.output, self.verify = int(seed), output, bool(verify)
        self.epoch = 0
        infos = [info for folder in self.folders for info in shards.find_shards(folder)]
        sizes = [self._check(info) for info in infos]
        self.index = ShardIndex(infos, verify=self.verify, sizes=sizes)

    def _check(self, info: shards.ShardInfo) -> np.ndarray:
        """Check one shard (:func:`blurgen.shards.index.check_shard`) and its samples
        against ``crop``; returns its samples' (H, W)."""
        sizes = check_shard(info, verify=False).sizes
        if self.crop is not None and len(sizes) and sizes.min() < self.crop:
            j = int(np.flatnonzero(sizes.min(axis=1) < self.crop)[0])
            raise shards.ShardError(f"{info.path}: sample {j} is {sizes[j, 1]}x{sizes[j, 0]}, "
                                    f"smaller than the {self.crop}x{self.crop} crop")
        return sizes

    @property
    def infos(self) -> list[shards.ShardInfo]:
        """The shards read, in the order their samples are numbered."""
        return self.index.infos

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Draw other crops and flips for epoch ``epoch`` (as DistributedSampler's set_epoch):
        call it before iterating a DataLoader, whose workers copy the dataset when they
        start (not with ``persistent_workers=True``, whose workers keep the epoch they began with)."""
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[Path, int]:
        """(shard path, sample index in it) of item ``index``."""
        k, local = self.index.locate(index)
        return self.index.paths[k], local

    def draw(self, index: int) -> tuple[tuple[int, int, int, int] | None, bool, bool]:
        """(crop box (y0, x0, y1, x1) or None for the whole sample, hflip, vflip) of item
        ``index``: a pure function of (seed, epoch, index) and the sample's size."""
        self.index.locate(index)   # IndexError outside the dataset, crop or not
        rng = np.random.default_rng([self.seed, PAIR_TAG, self.epoch, int(index)])
        size = None if self.crop is None else self.index.size(index)
        return draw_crop_flip(rng, size, self.crop, hflip=self.hflip, vflip=self.vflip, order=UNIFORMS)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(blurred, sharp) of item ``index`` as uint8 (H, W, 3) RGB arrays, cropped and flipped."""
        if index < 0:
            index += len(self)
        box, hflip, vflip = self.draw(index)
        blurred, sharp = flip_pair(*self.index.read_pair(index, box=box), hflip, vflip)
        return np.ascontiguousarray(blurred), np.ascontiguousarray(sharp)

    def __getitem__(self, index: int):
        blurred, sharp = self.read(index)
        if self.output == "uint8":
            return blurred, sharp
        return to_unit_tensor(blurred), to_unit_tensor(sharp)

    def close(self) -> None:
        """Close the HDF5 files this process opened (they reopen on the next read)."""
        self.index.close()


def to_unit_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1] (x / 255)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)

"""The samples of a list of shards as one numbered collection, for datasets over shards.

Both shard datasets -- :class:`blurgen.shards.dataset.PairDataset` and the
trainer's ``ShardSource`` -- stand on this: a :class:`ShardIndex` numbers the
samples of its shards 0..N-1 in order and says where sample i lives, its
size and its pixels; :func:`check_shard` is the one look a dataset takes at
each shard before reading from it.  What a dataset then refuses (a crop too
large, a sharp-only shard) and how it words it stay with the dataset.

Pixels that fail their stored hash raise :class:`blurgen.shards.DamagedSample`
from here, whichever dataset reads them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blurgen.shards import ShardError, ShardInfo, ShardReader, ShardReaders, locate_sample, sample_offsets


@dataclass(frozen=True)
class ShardFacts:
    """What :func:`check_shard` found in one shard.

    layout : ``"crops"`` or ``"images"``.
    sharp_only : whether it holds sharp images only (``synthesize --sharp-only``).
    sizes : (count, 2) int64 (H, W) in pixels of the samples its manifest lists.
    """

    layout: str
    sharp_only: bool
    sizes: np.ndarray


def check_shard(info: ShardInfo, verify: bool = True) -> ShardFacts:
    """Open shard ``info``, check that it holds the samples its manifest entry
    lists, read the sizes of those samples (one read), and close it again.

    ``verify``: open it as a verifying reader would (for the crops layout that
    reads and checks the table of stored hashes too).  Raises ShardError, one
    line naming the shard, if it cannot be read or holds too few samples.
    """
    with ShardReader(info.path, verify=verify) as reader:
        held = len(reader)
        if held < info.count:
            raise ShardError(f"{info.path}: holds {held} samples, its manifest lists {info.count}")
        sizes = reader.image_shapes()[:info.count] if info.count else np.zeros((0, 2), np.int64)
        return ShardFacts(reader.layout, reader.sharp_only, sizes)


class ShardIndex:
    """Samples of ``infos`` numbered 0..N-1, shard after shard; each process
    opens its own readers on first use (:class:`blurgen.shards.ShardReaders`),
    so an index pickles and forks into DataLoader workers safely.

    Parameters
    ----------
    infos : the shards (path, manifest count), in order.
    verify : check pixels against their stored hashes as they are read
        (:class:`blurgen.shards.DamagedSample` on a mismatch).
    sizes : per shard, the (count, 2) (H, W) of its samples as
        :func:`check_shard` found them, or None to read them on first need.
    """

    def __init__(self, infos: Sequence[ShardInfo], verify: bool = True,
                 sizes: Sequence[np.ndarray | None] | None = None):
        self.infos = list(infos)
        self.paths = [Path(info.path) for info in self.infos]
        self.offsets = sample_offsets(self.infos)
        self.readers = ShardReaders(self.paths, verify=verify)
        # The one size cache: shard number -> (n, 2) int64 (H, W) of its samples.
        # A reader never changes a shard, so its sizes are read once (by the
        # pre-check, or all at once on first need) and never invalidated: they
        # outlive close() and travel with the index into workers, unlike handles.
        self._sizes: dict[int, np.ndarray] = {k: np.asarray(s, np.int64) for k, s in enumerate(sizes or ())
                                              if s is not None}

    @property
    def verify(self) -> bool:
        """Whether pixels are checked as read; changing it applies to readers opened after."""
        return self.readers.verify

    @verify.setter
    def verify(self, value: bool) -> None:
        self.readers.verify = bool(value)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(shard number, sample index in that shard) of sample ``i``; IndexError outside [0, N)."""
        return locate_sample(self.offsets, i)

    def name(self, i: int) -> str:
        """``path/shard-NNNNN.h5#local`` of sample ``i``, for messages."""
        k, local = self.locate(i)
        return f"{self.paths[k]}#{local}"

    def reader(self, k: int, local: int):
        """This process's reader of shard ``k``, about to read its sample ``local``; ShardError
        if the shard holds fewer samples than its manifest lists (it changed since the pre-check)."""
        reader = self.readers[k]
        if local >= len(reader):
            count = int(self.offsets[k + 1] - self.offsets[k])
            raise ShardError(f"{self.paths[k]}: the manifest lists {count} samples, the shard holds {len(reader)}")
        return reader

    def size(self, i: int) -> tuple[int, int]:
        """(H, W) in pixels of sample ``i``."""
        k, local = self.locate(i)
        sizes = self._sizes.get(k)
        if sizes is None:
            sizes = self._sizes[k] = self.reader(k, local).image_shapes()
        return int(sizes[local, 0]), int(sizes[local, 1])

    def read_pair(self, i: int, box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(blurred, sharp) uint8 (h, w, 3) RGB of sample ``i``: the window ``box`` =
        (y0, x0, y1, x1) only (only the chunks it touches are read), or whole."""
        k, local = self.locate(i)
        return self.reader(k, local).read_pair(local, box=box)

    def read_sharp(self, i: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The sharp image of sample ``i`` (window ``box``), uint8 (h, w, 3) RGB; works on every shard."""
        k, local = self.locate(i)
        return self.reader(k, local).read_sharp(local, box=box)

    def close(self) -> None:
        """Close the files this process opened (they reopen on the next read); sizes stay known."""
        self.readers.close()

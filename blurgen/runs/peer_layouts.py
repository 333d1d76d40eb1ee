"""The layouts ``blurgen export`` writes pairs in: one writer per layout, one registry line each.

Under the split folder ``OUT/<split>/``:

* ``gopro``: ``<shard stem>/blur/NNNNNN.png`` and ``<shard stem>/sharp/NNNNNN.png``, the
  GOPRO_Large layout (``trainer fit --gopro``, DeblurGAN-v2);
* ``basicsr``: ``input/<shard stem>_NNNNNN.png`` and ``target/`` the same name, the paired
  folders of BasicSR's and NAFNet's ``PairedImageDataset`` (``io_backend: disk``);
* ``lmdb``: ``input.lmdb/`` and ``target.lmdb/``, keys ``<shard stem>_NNNNNN``, the same
  dataset's ``io_backend: lmdb`` (:mod:`blurgen.runs.basicsr_lmdb`).

``input`` holds the blurred images (BasicSR's ``lq``) and ``target`` the sharp
ones (``gt``): NAFNet's names for its GoPro folders (``datasets/GoPro/train/input``,
``datasets/GoPro/test/target.lmdb``).  NNNNNN is the sample's index in its
shard, so a name is unique across the shards of a folder and the same in every
export.  Images are 8-bit RGB PNG, lossless.

A writer takes the shards, the split folder and a stop flag, and yields one
bool per pair, in shard then index order: True if written now, False if
already there (a resumed export).  The folder layouts write each PNG
atomically, so a file present is complete; the LMDB layout commits in batches
and skips the keys both environments hold (:mod:`blurgen.runs.basicsr_lmdb`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from blurgen import shards
from blurgen.plumbing import stopping
from blurgen.runs import basicsr_lmdb
from blurgen.plumbing.stopping import StopFlag

#: The peers' folders (and, with ``.lmdb``, environments) of blurred and of sharp images.
INPUT, TARGET = "input", "target"
#: The LMDB layout commits after this many bytes of PNG (both sides): what a kill -9 can cost.
COMMIT_BYTES = 32 << 20

Writer = Callable[[list, Path, "StopFlag | None"], Iterator[bool]]


def pair_name(stem: str, index: int) -> str:
    """``shard-00000_000042``: the file name (less ``.png``) and LMDB key of sample ``index`` of
    the shard of file stem ``stem`` in the peers' layouts.  Shard stems are ``shard-NNNNN``
    (the manifest allows no other), so the name is ASCII without dots, as BasicSR's LMDB
    readers need."""
    return f"{stem}_{index:06d}"


def write_gopro(infos: list, root: Path, stop: StopFlag | None = None) -> Iterator[bool]:
    """``root/<stem>/blur/NNNNNN.png`` and ``root/<stem>/sharp/NNNNNN.png``, one sequence per shard."""
    return _file_pairs(infos, stop, lambda stem, i: tuple(root / stem / side / f"{i:06d}.png"
                                                         for side in ("blur", "sharp")))


def write_basicsr(infos: list, root: Path, stop: StopFlag | None = None) -> Iterator[bool]:
    """``root/input/<stem>_NNNNNN.png`` (blurred) and ``root/target/`` the same name (sharp)."""
    return _file_pairs(infos, stop, lambda stem, i: tuple(root / side / f"{pair_name(stem, i)}.png"
                                                         for side in (INPUT, TARGET)))


def write_lmdb(infos: list, root: Path, stop: StopFlag | None = None) -> Iterator[bool]:
    """``root/input.lmdb`` (blurred) and ``root/target.lmdb`` (sharp) in BasicSR's format, each
    with its ``meta_info.txt``, written once every pair is in.

    Pairs are committed in batches of about ``COMMIT_BYTES`` (input first, then target); on a
    stop or an error the pairs read so far are committed first.  A resume skips the pairs
    whose key both environments hold, and puts the others again whole.  LmdbError for an
    environment that cannot be opened or written.
    """
    folders = [root / f"{side}.lmdb" for side in (INPUT, TARGET)]
    envs = []
    try:
        for folder in folders:
            envs.append(basicsr_lmdb.open_env(folder))
        present = basicsr_lmdb.keys(envs[0]) & basicsr_lmdb.keys(envs[1])
        total = sum(int(info.count) for info in infos)
        pending, size = [], 0

        def commit() -> None:
            batch = list(pending)
            pending.clear()  # a failed commit is not retried by the cleanup below
            if not batch:
                return
            for side, (env, folder) in enumerate(zip(envs, folders)):
                # make_lmdb_from_imgs' rule, from the mean size of this batch's images.
                basicsr_lmdb.reserve(env, sum(len(b[1][side]) for b in batch) * total // len(batch))
                basicsr_lmdb.put_all(env, [(key, values[side]) for key, values in batch], folder)

        try:
            for info in infos:
                with shards.ShardReader(info.path) as reader:
                    for i in range(info.count):
                        stopping.check(stop)
                        key = pair_name(info.path.stem, i)
                        if key in present:
                            yield False
                            continue
                        values = [_png(image) for image in reader.read_pair(i)]
                        pending.append((key, values))
                        size += sum(len(v) for v in values)
                        if size >= COMMIT_BYTES:
                            commit()
                            size = 0
                        yield True
        finally:
            commit()  # the pairs read so far are whole: keep them for the resume, however we leave
        for env, folder in zip(envs, folders):
            basicsr_lmdb.write_meta_info(env, folder)
    finally:
        for env in envs:
            env.close()


def _png(image) -> bytes:
    from blurgen.plumbing.pictures import encode_png

    return encode_png(image, basicsr_lmdb.PNG_LEVEL)


def _file_pairs(infos: list, stop: StopFlag | None, place: Callable[[str, int], tuple[Path, Path]]) -> Iterator[bool]:
    """Write every pair as the two PNGs ``place(shard stem, index)``, skipping the pairs whose
    two files exist (complete: each PNG is written atomically)."""
    from blurgen.plumbing.pictures import write_png

    for info in infos:
        for target in place(info.path.stem, 0):  # the folders, even of a shard without pairs
            target.parent.mkdir(parents=True, exist_ok=True)
        with shards.ShardReader(info.path) as reader:
            for i in range(info.count):
                stopping.check(stop)
                targets = place(info.path.stem, i)
                if all(t.is_file() for t in targets):
                    yield False
                    continue
                for target, image in zip(targets, reader.read_pair(i)):
                    write_png(target, image)
                yield True


@dataclass(frozen=True)
class Layout:
    """One layout: its writer (module doc), the folders a reader is pointed at (given the split
    folder), whether it may share its split folder with other layouts, and a check run before
    anything is written (raises BlurgenError when a package it needs is missing)."""

    write: Writer
    outputs: Callable[[Path], list[Path]]
    shares_split: bool = True
    require: Callable[[], object] = lambda: None


LAYOUTS: dict[str, Layout] = {
    # GOPRO readers take every folder of the split for a sequence: nothing else may be there.
    "gopro": Layout(write_gopro, lambda root: [root], shares_split=False),
    "basicsr": Layout(write_basicsr, lambda root: [root / INPUT, root / TARGET]),
    "lmdb": Layout(write_lmdb, lambda root: [root / f"{INPUT}.lmdb", root / f"{TARGET}.lmdb"],
                   require=basicsr_lmdb.require),
}

"""Check: BasicSR's or NAFNet's own ``PairedImageDataset`` reads ``blurgen export --to basicsr``
and ``--to lmdb`` back to the shards' exact pixels.

    python bench/peer_readers.py --source PATH/TO/BasicSR      # or a NAFNet checkout

``--source`` is the root of a checkout (the folder holding its ``basicsr/`` package);
nothing is installed.  The packages ``basicsr`` and ``basicsr.data`` are made
without running their ``__init__`` (which imports every network, and wants a
generated ``version.py``); ``basicsr.utils`` is imported as it is (it needs
torch, cv2, lmdb, yaml).  Two shards of random pairs, crops and whole images
of varied sizes, are exported in both layouts and read with the dataset in
phase ``val`` (whole images, compared pixel for pixel) and ``train``
(random 32x32 crops, flips and rotations: the pair's names and the crop
shapes are checked there).  Not a test: tests download nothing, and neither
project is a dependency.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blurgen import shards  # noqa: E402
from blurgen.runs.exchange import export_folder  # noqa: E402
from blurgen.runs.peer_layouts import INPUT, TARGET, pair_name  # noqa: E402


def load_dataset_class(source: Path):
    """``basicsr.data.paired_image_dataset.PairedImageDataset`` from the checkout at ``source``."""
    for name, folder in (("basicsr", source / "basicsr"), ("basicsr.data", source / "basicsr" / "data")):
        if not folder.is_dir():
            sys.exit(f"{folder}: missing (--source is the root of a BasicSR or NAFNet checkout)")
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    from basicsr.data.paired_image_dataset import PairedImageDataset

    return PairedImageDataset


def make_shards(folder: Path) -> dict:
    """Two shards of random uint8 pairs (whole images of varied sizes); {pair name: (blurred, sharp)}."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    listed, pairs = {}, {}
    for k, n in enumerate((4, 3)):
        shapes = [(40 + 7 * i, 64 - 5 * i) for i in range(n)]
        b = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in shapes]
        s = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in shapes]
        name = shards.shard_name(k)
        checksum = shards.write_shard(folder / name, b, s, np.full((n, 3, 3), 1 / 9, np.float32))
        listed[name] = {"count": n, "checksum": checksum}
        pairs.update({pair_name(Path(name).stem, i): (b[i], s[i]) for i in range(n)})
    shards.write_manifest(folder, {"shards": listed})
    return pairs


def to_uint8(tensor) -> np.ndarray:
    """The dataset's (3, H, W) float RGB in [0, 1] back to (H, W, 3) uint8."""
    return np.rint(tensor.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, required=True)
    args = parser.parse_args()
    dataset_class = load_dataset_class(args.source.resolve())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pairs = make_shards(tmp / "shards")
        for layout, backend, suffix in (("basicsr", "disk", ""), ("lmdb", "lmdb", ".lmdb")):
            export_folder(tmp / "shards", tmp / layout, layout=layout)
            root = tmp / layout / "train"
            for phase in ("val", "train"):
                opt = {"dataroot_lq": str(root / f"{INPUT}{suffix}"), "dataroot_gt": str(root / f"{TARGET}{suffix}"),
                       "io_backend": {"type": backend}, "filename_tmpl": "{}", "phase": phase, "scale": 1,
                       "gt_size": 32, "use_hflip": True, "use_flip": True, "use_rot": True}
                dataset = dataset_class(opt)
                assert len(dataset) == len(pairs), (len(dataset), len(pairs))
                seen = set()
                for k in range(len(dataset)):
                    item = dataset[k]
                    name = Path(str(item["gt_path"])).stem
                    assert name == Path(str(item["lq_path"])).stem, item
                    seen.add(name)
                    lq, gt = to_uint8(item["lq"]), to_uint8(item["gt"])
                    if phase == "val":
                        assert np.array_equal(lq, pairs[name][0]) and np.array_equal(gt, pairs[name][1]), name
                    else:
                        assert lq.shape == gt.shape == (32, 32, 3), (lq.shape, gt.shape)
                assert seen == set(pairs)
                print(f"{layout} ({backend}), phase {phase}: {len(dataset)} pairs"
                      + (", pixels equal to the shards'" if phase == "val" else ", 32x32 crops"))


if __name__ == "__main__":
    main()

"""Benchmark: what finding and checking the training data costs ``trainer fit``
at start-up (trainer.data.training_sources), which fit now does once where it
did it twice (once for the epoch length, again for the loader).

    python bench/fit_startup.py [--shards 200] [--gopro-frames 200] [--repeat 3]

Builds, in a temporary folder, a shard folder of --shards small HDF5 shards
(4 pairs of 64x64 each: the cost is per shard file, opened and its first
sample looked at) and a GOPRO_Large-layout folder of --gopro-frames training
pairs (PNG headers read for every pair), then times training_sources on each
(best of --repeat, warm file cache).
"""
from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

from blurgen.shards import ShardWriter, shard_name, write_manifest
from trainer.data import DataConfig, training_sources

ROOT = Path(__file__).resolve().parents[1]


def make_shards(folder: Path, n: int, per_shard: int = 4, size: int = 64) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    listed = {}
    for k in range(n):
        with ShardWriter(folder / shard_name(k), crop=(size, size)) as writer:
            for _ in range(per_shard):
                image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                writer.add(image, image, np.full((3, 3), 1 / 9, np.float32))
        listed[shard_name(k)] = {"count": per_shard, "checksum": writer.checksum}
    write_manifest(folder, {"shards": listed})
    return folder


def make_gopro(root: Path, frames: int) -> Path:
    spec = importlib.util.spec_from_file_location("make_gopro_sample", ROOT / "data" / "make_gopro_sample.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    builder.build_sample(root, seed=0, size=(72, 96), train_sequences=4, test_sequences=1,
                         frames=max(1, frames // 4))
    return root


def best_time(cfg: DataConfig, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        training_sources(cfg)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--gopro-frames", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = make_shards(tmp / "shards", args.shards + 1)   # the last one is held out
        gopro = make_gopro(tmp / "GOPRO_Large", args.gopro_frames)
        for name, cfg in ((f"{args.shards} shards", DataConfig(shards=(shards,), mix=(1, 0), crop=32)),
                          (f"GoPro, {args.gopro_frames} pairs", DataConfig(gopro=gopro, mix=(0, 1), crop=32))):
            seconds = best_time(cfg, args.repeat)
            print(f"{name}: training_sources {seconds * 1e3:.0f} ms a call; fit's start-up saves one call")


if __name__ == "__main__":
    main()

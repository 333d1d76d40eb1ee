"""Benchmark: training batches per second of trainer.data.train_batches.

    python bench/loader.py [--seconds 4] [--workers 0 1 2] [--step-ms 120]
    python bench/loader.py --shards SHARDS/ --gopro GOPRO_Large/   # on real data

Without --shards/--gopro it first builds, in a temporary folder, HDF5 shards
of 256x256 pairs (with blurgen.shards, the format `blurgen synthesize`
writes) and a GOPRO_Large-layout folder of 1280x720 PNG frames (GoPro's
size, made by data/make_gopro_sample.py).  It then times batch-1 256x256
crops -- the paper's setting -- from shards only (mix 1:0), GoPro only (0:1,
frames halved first as the paper does) and the 2:1 mix, each with 0, 1 and 2
DataLoader workers, after a warm-up that covers worker start-up.  With
--step-ms (the time of one full training step, e.g. from bench/train_step.py)
it prints whether the loader keeps up.

Frames built from upscaled sample photos compress better than real GoPro
footage, so real PNG decoding is somewhat slower than measured here.
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from trainer.data import DataConfig, DataError, build_dataset, train_batches  # noqa: E402
from trainer.gopro import GoProError, scan_gopro  # noqa: E402


def _load_builder():
    spec = importlib.util.spec_from_file_location("make_gopro_sample", ROOT / "data" / "make_gopro_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_gopro(folder: Path, builder) -> Path:
    root = folder / "GOPRO_Large"
    builder.build_sample(root, seed=0, size=(720, 1280), train_sequences=2, test_sequences=1, frames=3)
    return root


def make_shards(folder: Path, builder, shards: int = 2, per_shard: int = 100, crop: int = 256) -> Path:
    """Shard folder of random 256x256 crops of the sample photos, blurred by a 9x9 box.

    The blur only needs to look like data: shards are stored uncompressed,
    so reading speed does not depend on the content.
    """
    import cv2
    from blurgen.shards import shard_name, write_manifest, write_shard

    folder = folder / "shards"
    folder.mkdir()
    photos = [builder.load_photo(name) for name in builder.TRAIN_PHOTOS + builder.TEST_PHOTOS]
    rng = np.random.default_rng(0)
    manifest = {}
    for k in range(shards):
        sharp = np.empty((per_shard, crop, crop, 3), np.uint8)
        for i in range(per_shard):
            photo = photos[rng.integers(len(photos))]
            y0 = rng.integers(0, photo.shape[0] - crop + 1)
            x0 = rng.integers(0, photo.shape[1] - crop + 1)
            sharp[i] = photo[y0:y0 + crop, x0:x0 + crop]
        blurred = np.stack([cv2.blur(s, (9, 9)) for s in sharp])
        kernels = np.full((per_shard, 9, 9), 1 / 81, np.float32)
        checksum = write_shard(folder / shard_name(k), blurred, sharp, kernels)
        manifest[shard_name(k)] = {"count": per_shard, "checksum": checksum,
                                   "bytes": (folder / shard_name(k)).stat().st_size}
    write_manifest(folder, {"shards": manifest})
    return folder


def measure(cfg: DataConfig, seconds: float, warmup: int = 8) -> float:
    """Batches per second of train_batches(cfg) after ``warmup`` batches."""
    stream = train_batches(cfg)
    for _ in itertools.islice(stream, warmup):
        pass
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(stream)
        count += 1
    rate = count / (time.perf_counter() - start)
    stream.close()
    return rate


def measure_reads(cfg: DataConfig, seconds: float) -> float:
    """Draws per second of the dataset read directly in this process (no DataLoader)."""
    dataset = build_dataset(cfg)
    dataset[0]
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dataset[count + 1]
        count += 1
    dataset.close()
    return count / (time.perf_counter() - start)


def main() -> None:
    try:
        run()
    except (DataError, GoProError) as exc:
        sys.exit(f"error: {exc}")


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=Path, help="a shard folder to read (default: build one)")
    ap.add_argument("--gopro", type=Path, help="a GOPRO_Large root to read (default: build one)")
    ap.add_argument("--seconds", type=float, default=4.0, help="timing per configuration")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--step-ms", type=float, help="time of one training step, to compare with")
    args = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        builder = _load_builder()
        t = time.perf_counter()
        shards = args.shards or make_shards(Path(tmp), builder)
        gopro = args.gopro or make_gopro(Path(tmp), builder)
        print(f"data ready in {time.perf_counter() - t:.1f} s: shards {shards}, GoPro {gopro}")
        print(f"machine: {os.cpu_count()} cores visible, torch {torch.__version__}, "
              f"batch {args.batch_size}, crop {args.crop}")
        print(f"{'source':<22}{'draws/s in-process':>20}" + "".join(f"{f'{w} workers':>14}" for w in args.workers)
              + "   (batches/s)")
        height, width = scan_gopro(gopro)[0].size
        for label, mix in (("shards (1:0)", (1, 0)), (f"GoPro {width}x{height} (0:1)", (0, 1)),
                           ("mix (2:1)", (2, 1))):
            base = dict(shards=(shards,), gopro=gopro, mix=mix, crop=args.crop, batch_size=args.batch_size)
            reads = measure_reads(DataConfig(**base, workers=0), args.seconds / 2)
            rates = [measure(DataConfig(**base, workers=w), args.seconds) for w in args.workers]
            line = f"{label:<22}{reads:>20.1f}" + "".join(f"{r:>14.1f}" for r in rates)
            if args.step_ms:
                line += f"   loader/step rate: {max(rates) * args.step_ms / 1000:.2f}x"
            print(line)
    if args.step_ms:
        print(f"a training step of {args.step_ms:g} ms needs {1000 / args.step_ms:.1f} batches/s")


if __name__ == "__main__":
    main()

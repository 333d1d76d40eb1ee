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

    python bench/loader.py --online --crop 80 --batch-size 6 --workers 1

adds rows for ``trainer fit --online`` (the shards' sharp crops blurred in
the workers, a fresh kernel of a quarter of the crop per draw, batch kernels
made in one call) beside the shard rows, and prints samples/s too.

    python bench/loader.py --verify [--seconds 4]

times instead what checking the per-sample hashes (shard format 2) costs:
random 256x256 pairs read by ShardReader from a crops shard, the draws of
the training dataset (in-process), and random 256x256 crops of whole
1280x720 images (--full shards, checked per 128-px tile), each with the
check on and off, and the ratio; plus the same pair reads hashed with
zlib.crc32 instead, the standard library's alternative.
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
    """Draws per second of the dataset read directly in this process (no DataLoader),
    a batch at a time as the DataLoader fetches them."""
    dataset = build_dataset(cfg)
    dataset[0]
    count, start, b = 0, time.perf_counter(), cfg.batch_size
    while time.perf_counter() - start < seconds:
        dataset.__getitems__(range(1 + count, 1 + count + b))
        count += b
    dataset.close()
    return count / (time.perf_counter() - start)


def _rate(fn, seconds: float) -> float:
    """Calls of fn(k) per second, k = 0, 1, 2, ..., after one untimed call."""
    fn(0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += 1
        fn(count)
    return count / (time.perf_counter() - start)


def _best(fns: dict, seconds: float, rounds: int = 3) -> dict:
    """Best rate of each fn over ``rounds`` rounds that take them in turn, so
    that other work on the machine weighs on all of them alike."""
    best = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = max(best[name], _rate(fn, seconds / rounds))
    return best


def measure_verification(folder: Path, seconds: float) -> None:
    """Print read rates with and without the hash check, and their ratio."""
    import zlib

    from blurgen.shards import ShardReader, find_shards, shard_name, write_shard

    path = find_shards(folder)[0].path
    order = np.random.default_rng(0).integers(0, 100, 1 << 20)
    off, on = ShardReader(path, verify=False), ShardReader(path, verify=True)

    def crc(k):
        b, s = off.read_pair(int(order[k]))
        zlib.crc32(b), zlib.crc32(s)
    pairs = _best({"off": lambda k: off.read_pair(int(order[k])), "on": lambda k: on.read_pair(int(order[k])),
                   "crc32": crc}, seconds)
    off.close(), on.close()
    print(f"best of 3 rounds of {seconds / 3:g} s each, one core")
    print(f"{'random 256x256 reads/s':<44}{'unchecked':>12}{'checked':>12}{'ratio':>8}")
    print(f"{'ShardReader.read_pair, crops (xxh3-64)':<44}{pairs['off']:>12,.0f}{pairs['on']:>12,.0f}"
          f"{pairs['on'] / pairs['off']:>8.3f}")
    print(f"{'  the same, hashed with zlib.crc32':<44}{pairs['off']:>12,.0f}{pairs['crc32']:>12,.0f}"
          f"{pairs['crc32'] / pairs['off']:>8.3f}")

    datasets = {}
    for verify in (False, True):
        datasets[verify] = build_dataset(DataConfig(shards=(folder,), mix=(1, 0), crop=256, workers=0,
                                                    val_shards=folder))
        datasets[verify].sources[0].verify = verify
    draws = _best({v: (lambda k, d=d: d[k]) for v, d in datasets.items()}, seconds)
    for d in datasets.values():
        d.close()
    print(f"{'training draws (DrawDataset, in-process)':<44}{draws[False]:>12,.0f}{draws[True]:>12,.0f}"
          f"{draws[True] / draws[False]:>8.3f}")

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(4)]
    full = folder.parent / "full"
    full.mkdir(exist_ok=True)
    write_shard(full / shard_name(0), images, images, np.full((4, 3, 3), 1 / 9, np.float32))
    boxes = [(int(y), int(x), int(y) + 256, int(x) + 256)
             for y, x in zip(rng.integers(0, 720 - 256, 4096), rng.integers(0, 1280 - 256, 4096))]
    readers = {v: ShardReader(full / shard_name(0), verify=v) for v in (False, True)}
    crops = _best({v: (lambda k, r=r: r.read_pair(k % 4, box=boxes[k % 4096])) for v, r in readers.items()},
                  seconds)
    for r in readers.values():
        r.close()
    print(f"{'crops of 1280x720 images (--full, 128-px tiles)':<44}{crops[False]:>12,.0f}{crops[True]:>12,.0f}"
          f"{crops[True] / crops[False]:>8.3f}")


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
    ap.add_argument("--verify", action="store_true", help="time the per-sample hash check instead")
    ap.add_argument("--online", action="store_true", help="add rows for online blur (trainer fit --online)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.verify:
        with tempfile.TemporaryDirectory() as tmp:
            measure_verification(args.shards or make_shards(Path(tmp), _load_builder()), args.seconds)
        return

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
        rows = [("shards (1:0)", (1, 0), False), (f"GoPro {width}x{height} (0:1)", (0, 1), False),
                ("mix (2:1)", (2, 1), False)]
        if args.online:
            rows[1:1] = [("shards online (1:0)", (1, 0), True)]
            rows.append(("mix online (2:1)", (2, 1), True))
        for label, mix, online in rows:
            base = dict(shards=(shards,), gopro=gopro, mix=mix, crop=args.crop, batch_size=args.batch_size,
                        online=online)
            reads = measure_reads(DataConfig(**base, workers=0), args.seconds / 2)
            rates = [measure(DataConfig(**base, workers=w), args.seconds) for w in args.workers]
            line = f"{label:<22}{reads:>20.1f}" + "".join(f"{r:>14.1f}" for r in rates)
            if args.online:
                line += "   samples/s: " + ", ".join(f"{r * args.batch_size:.0f}" for r in rates)
            if args.step_ms:
                line += f"   loader/step rate: {max(rates) * args.step_ms / 1000:.2f}x"
            print(line)
    if args.step_ms:
        print(f"a training step of {args.step_ms:g} ms needs {1000 / args.step_ms:.1f} batches/s")


if __name__ == "__main__":
    main()

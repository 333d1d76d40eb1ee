"""Benchmark: pairs/s of `blurgen synthesize` against the I/O floor, on 1 and on all workers.

    python bench/synthesize.py [--photos 240] [--workers N]

Builds a folder of COCO-sized (640x480) JPEG photos from scikit-image's sample
images, then times, for 256x256 crops (one per photo, fresh 64x64 kernels):

* synthesize with 1 worker and with all workers;
* the I/O floor: decoding the same JPEGs and writing the same crops, unblurred,
  through the same shard writer (one process);
* the trainer's side: random 256x256 crop reads from the shards (warm page cache).
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))
from blurgen import shards  # noqa: E402
from blurgen.sources import find_images, load_rgb  # noqa: E402
from blurgen.synthesize import SynthConfig, synthesize  # noqa: E402
from make_sample_photos import main as make_photos  # noqa: E402


def io_floor(src: Path, out: Path, crop: int, shard_size: int) -> float:
    """Decode every photo, cut one crop, write shards unblurred: pairs/s."""
    images = find_images(src)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for s in range(0, len(images), shard_size):
        batch = []
        for rel in images[s : s + shard_size]:
            photo = load_rgb(src / rel)
            y, x = rng.integers(0, photo.shape[0] - crop + 1), rng.integers(0, photo.shape[1] - crop + 1)
            batch.append(photo[y : y + crop, x : x + crop])
        crops = np.stack(batch)
        shards.write_shard(out / shards.shard_name(s // shard_size), crops, crops,
                           np.zeros((len(crops), 64, 64), np.float32), {"source": np.array(images[s : s + shard_size])})
    return len(images) / (time.perf_counter() - started)


def crop_reads(folder: Path, crop: int, seconds: float = 3.0) -> float:
    infos = shards.find_shards(folder)
    readers = [shards.ShardReader(i.path) for i in infos]
    rng = np.random.default_rng(0)
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        r = readers[rng.integers(len(readers))]
        h, w = r.image_shape(0)
        y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        r.read_pair(int(rng.integers(len(r))), box=(y, x, y + crop, x + crop))
        n += 1
    return n / (time.perf_counter() - started)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=800)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    shard_size = 40
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photos(["--out", str(tmp / "photos"), "-n", str(args.photos), "--seed", "0"])
        cfg = SynthConfig(src=tmp / "photos", crop=args.crop, shard_size=shard_size)
        rates = {}
        for workers in sorted({1, args.workers}):
            started = time.perf_counter()
            synthesize(cfg, tmp / f"shards{workers}", workers=workers)
            rates[workers] = args.photos / (time.perf_counter() - started)
        (tmp / "floor").mkdir()
        floor = io_floor(tmp / "photos", tmp / "floor", args.crop, shard_size)
        reads = crop_reads(tmp / "shards1", args.crop)
    print(f"machine: {os.cpu_count()} cores; {args.photos} photos 640x480 JPEG, {args.crop}x{args.crop} crops, "
          f"fresh 64x64 kernels, shards of {shard_size}")
    print(f"I/O floor (decode + write, unblurred, 1 process) : {floor:8.1f} pairs/s")
    for workers, rate in rates.items():
        print(f"synthesize, {workers} worker{'s' if workers > 1 else ' '}                       : {rate:8.1f} pairs/s"
              f"  ({rate / workers:6.1f} per worker, {rate / floor:4.2f}x the floor)")
    if len(rates) > 1:
        print(f"scaling 1 -> {args.workers} workers                        : {rates[args.workers] / rates[1]:8.2f}x")
    print(f"trainer-side random {args.crop} crop reads (warm cache)     : {reads:8.0f} pairs/s on 1 core")


if __name__ == "__main__":
    main()

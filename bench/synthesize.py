"""Benchmark: pairs/s of `blurgen synthesize` against the I/O floor, on 1 and on all workers.

    python bench/synthesize.py [--photos 800] [--workers N] [--repeats 3]

Builds a folder of COCO-sized (640x480) JPEG photos from scikit-image's sample
images, then times, for 256x256 crops (one per photo, fresh 64x64 kernels):

* synthesize with 1 worker and with all workers;
* the I/O floor: decoding the same JPEGs and writing the same crops, unblurred,
  through the same shard writer (one process);
* the trainer's side: random 256x256 crop reads from the shards (warm page cache);
* the shard codec: writing and randomly reading the same pairs stored
  uncompressed, with LZF and with gzip-1 (one sample per chunk), which is how
  the format's "uncompressed" was chosen;
* the cost of each realism option per 256x256 crop (blur and camera only).

    python bench/synthesize.py --modes --photos 40 [--repeats 2]

times only whole `synthesize` runs of each synthesis mode on one worker (pairs/s per mode).
"""
import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))
import h5py  # noqa: E402

from blurgen import shards  # noqa: E402
from blurgen.kernels import kernel_seeds, make_kernels  # noqa: E402
from blurgen.objects import ObjectSpec  # noqa: E402
from blurgen.shake import ShakeSpec  # noqa: E402
from blurgen.sources import find_images, load_rgb  # noqa: E402
from blurgen.synthesize import SynthConfig, available_cores, blur_sample, synthesize  # noqa: E402
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


def random_crops(src: Path, crop: int, n: int) -> np.ndarray:
    """(n, crop, crop, 3) uint8 random crops of the photos under ``src``."""
    photos = [load_rgb(src / rel) for rel in find_images(src)[:64]]
    rng = np.random.default_rng(1)
    out = np.empty((n, crop, crop, 3), np.uint8)
    for i in range(n):
        p = photos[rng.integers(len(photos))]
        y, x = rng.integers(0, p.shape[0] - crop + 1), rng.integers(0, p.shape[1] - crop + 1)
        out[i] = p[y : y + crop, x : x + crop]
    return out


def codecs(folder: Path, pairs: np.ndarray, seconds: float = 2.0) -> list[tuple[str, float, float, float]]:
    """(codec, write pairs/s, size / raw size, random pair reads/s) for each candidate codec."""
    n, crop = len(pairs), pairs.shape[1]
    rows = []
    for name, options in (("none", {}), ("lzf", {"compression": "lzf"}),
                          ("gzip-1", {"compression": "gzip", "compression_opts": 1}),
                          ("gzip-1+shuffle", {"compression": "gzip", "compression_opts": 1, "shuffle": True})):
        path = folder / f"codec-{name}.h5"
        started = time.perf_counter()
        with h5py.File(path, "w") as f:
            for key in ("blurred", "sharp"):
                f.create_dataset(key, data=pairs, chunks=(1, crop, crop, 3), **options)
        write = n / (time.perf_counter() - started)
        ratio = path.stat().st_size / (2 * pairs.nbytes)
        rng = np.random.default_rng(0)
        with h5py.File(path, "r") as f:
            blurred, sharp = f["blurred"], f["sharp"]
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                i = int(rng.integers(n))
                blurred[i], sharp[i]
                count += 1
        rows.append((name, write, ratio, count / (time.perf_counter() - started)))
    return rows


def realism_costs(crops: np.ndarray, crop: int) -> list[tuple[str, float]]:
    """(option, ms per crop) of blurring + camera effects alone, on crop + kernel margin windows."""
    kernels = make_kernels(kernel_seeds(0, len(crops)))
    margin = kernels.psf.shape[-1] - 1
    rng = np.random.default_rng(0)
    windows = [np.pad(c, ((margin // 2 + 1, margin // 2), (margin // 2 + 1, margin // 2), (0, 0)), mode="reflect")
               for c in crops]
    effects = {"saturation_gain": 3.0, "noise_shot": 1e-3, "noise_read": 5e-3, "jpeg_quality": 85}
    rows = []
    for name, options in (("plain (DeblurGAN)", {}), ("--linear", {"linear": True}), ("--saturate", {"saturate": True}),
                          ("--noise", {"noise": True}), ("--jpeg-quality 85", {"jpeg_quality": (85, 85)}),
                          ("all four", {"linear": True, "saturate": True, "noise": True, "jpeg_quality": (85, 85)})):
        cfg = SynthConfig(src=Path("."), crop=crop, **options)
        started = time.perf_counter()
        for window, psf in zip(windows, kernels.psf):
            blur_sample(window, psf, cfg, rng, effects)
        rows.append((name, (time.perf_counter() - started) / len(windows) * 1e3))
    return rows


#: The synthesis modes timed by ``mode_rates``: (name, SynthConfig options).
MODES = [
    ("uniform (fresh 64x64 kernels)", {}),
    ("uniform --linear", {"linear": True}),
    ("--shake nonuniform (1 deg)", {"shake": ShakeSpec(max_angle=1.0)}),
    ("--shake nonuniform (1 deg) --linear", {"shake": ShakeSpec(max_angle=1.0), "linear": True}),
    ("--shake nonuniform (3 deg)", {"shake": ShakeSpec(max_angle=3.0)}),
    ("--objects (16 segments) --linear", {"objects": True, "linear": True}),
]


def write_annotations(src: Path, path: Path) -> Path:
    """A COCO instances file with one elliptic polygon (~120x80 px, 32 vertices) per photo:
    no real objects, but the cost of cutting out, pasting and blurring one."""
    images, annotations = [], []
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    for i, rel in enumerate(find_images(src)):
        images.append({"id": i, "file_name": rel, "height": 480, "width": 640})
        poly = np.stack([320 + 60 * np.cos(t), 240 + 40 * np.sin(t)], axis=1).ravel().round(1).tolist()
        annotations.append({"id": i, "image_id": i, "iscrowd": 0, "area": 7500.0, "segmentation": [poly]})
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def mode_rates(src: Path, out: Path, crop: int, photos: int, repeats: int) -> list[tuple[str, float]]:
    """(mode, best pairs/s) of a whole `synthesize` run per mode, 1 worker (one core), ``photos`` photos."""
    rows = []
    for name, options in MODES:
        best = 0.0
        for r in range(repeats):
            if options.get("objects") is True:
                options = {**options, "objects": ObjectSpec(write_annotations(src, out / "instances.json"))}
            cfg = SynthConfig(src=src, crop=crop, shard_size=max(1, photos // 2), **options)
            started = time.perf_counter()
            summary = synthesize(cfg, out / f"mode-{len(rows)}-{r}", workers=1)
            best = max(best, summary.samples / (time.perf_counter() - started))
            shutil.rmtree(out / f"mode-{len(rows)}-{r}")
        rows.append((name, best))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=800)
    ap.add_argument("--workers", type=int, default=available_cores())
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved rounds of floor / 1 worker / all workers; the best of each is reported")
    ap.add_argument("--modes", action="store_true",
                    help="only time each synthesis mode on one worker (pairs/s per mode; --photos 40 is enough)")
    args = ap.parse_args()
    if args.modes:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            make_photos(["--out", str(tmp / "photos"), "-n", str(args.photos), "--seed", "0"])
            rows = mode_rates(tmp / "photos", tmp, args.crop, args.photos, args.repeats)
        print(f"machine: {os.cpu_count()} cores; {args.photos} photos 640x480 JPEG, {args.crop}x{args.crop} crops, "
              f"1 worker, whole `synthesize` runs (decode + blur + write), best of {args.repeats}")
        for name, rate in rows:
            print(f"  {name:40s} {rate:7.1f} pairs/s")
        return
    # Two shards per worker, so that fresh kernels are drawn in batches of a
    # realistic size: a batch of 40 kernels costs nearly what 400 do (the
    # default shard of 1000 makes the kernels' share smaller still).
    shard_size = max(1, min(1000, args.photos // (2 * args.workers)))
    counts = sorted({1, args.workers})
    rates = {name: [] for name in ["floor", *counts]}
    busy = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photos(["--out", str(tmp / "photos"), "-n", str(args.photos), "--seed", "0"])
        cfg = SynthConfig(src=tmp / "photos", crop=args.crop, shard_size=shard_size)
        # Rounds interleave the three measurements so that a slow spell of a
        # shared VM (seen here: +-20 % between runs) hits all of them alike;
        # each output is deleted at once, so no round writes into a fuller
        # page cache than another.
        for _ in range(args.repeats):
            for name in rates:
                out = tmp / f"out-{name}"
                cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                if name == "floor":
                    out.mkdir()
                    io_floor(tmp / "photos", out, args.crop, shard_size)
                else:
                    synthesize(cfg, out, workers=name)
                seconds = time.perf_counter() - started
                rates[name].append(args.photos / seconds)
                if name != "floor" and name > 1:  # the workers' share of the wall time they had
                    done = resource.getrusage(resource.RUSAGE_CHILDREN)
                    busy.append((done.ru_utime + done.ru_stime - cpu.ru_utime - cpu.ru_stime) / (name * seconds))
                if name != 1 or (tmp / "kept").exists():
                    shutil.rmtree(out)
                else:
                    out.rename(tmp / "kept")
        reads = crop_reads(tmp / "kept", args.crop)
        pairs = random_crops(tmp / "photos", args.crop, 256)
        codec_rows = codecs(tmp, pairs)
        realism = realism_costs(pairs[:100], args.crop)

    def best(name) -> str:
        r = rates[name]
        return f"{max(r):8.1f} pairs/s (runs {min(r):.0f}-{max(r):.0f})"

    floor = max(rates["floor"])
    print(f"machine: {os.cpu_count()} cores; {args.photos} photos 640x480 JPEG, {args.crop}x{args.crop} crops, "
          f"fresh 64x64 kernels, shards of {shard_size}; best of {args.repeats} interleaved runs")
    print(f"I/O floor (decode + write, unblurred, 1 process) : {best('floor')}")
    for workers in counts:
        rate = max(rates[workers])
        print(f"synthesize, {workers} worker{'s' if workers > 1 else ' '}                       : {best(workers)}"
              f"  ({rate / workers:6.1f} per worker, {rate / floor:4.2f}x the floor)")
    if len(counts) > 1:
        print(f"scaling 1 -> {args.workers} workers                        : "
              f"{max(rates[args.workers]) / max(rates[1]):8.2f}x  (workers busy {max(busy):.0%} of the wall time)")
    print(f"trainer-side random {args.crop} crop reads (warm cache)     : {reads:8.0f} pairs/s on 1 core")
    print(f"\nshard codec, {len(pairs)} pairs of {args.crop}x{args.crop}, chunk = 1 sample, 1 core, warm cache:")
    print("  codec            write pairs/s   size   random pair reads/s")
    for name, write, ratio, read in codec_rows:
        print(f"  {name:15s}  {write:13.0f}  {ratio:5.2f}x  {read:20.0f}")
    print(f"\nblur + camera per {args.crop}x{args.crop} crop (fresh 64x64 kernels, 1 core):")
    for name, ms in realism:
        print(f"  {name:20s} {ms:6.2f} ms  ({1e3 / ms:5.0f} crops/s)")


if __name__ == "__main__":
    main()

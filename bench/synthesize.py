"""Benchmark: pairs/s of `blurgen synthesize` against the I/O floor, on 1 and on all workers.

    python bench/synthesize.py [--photos 800] [--workers N] [--repeats 3]
    python bench/synthesize.py --modes [--photos 200]     # pairs/s of each synthesis mode, 1 worker (~1 min)

Builds a folder of COCO-sized (640x480) JPEG photos from scikit-image's sample
images, then times, for 256x256 crops (one per photo, fresh 64x64 kernels):

* synthesize with 1 worker and with all workers;
* the I/O floor: decoding the same JPEGs and writing the same crops, unblurred,
  through the same shard writer (one process);
* the trainer's side: random 256x256 crop reads from the shards (warm page cache);
* the shard codec: writing and randomly reading the same pairs stored
  uncompressed, with LZF and with gzip-1 (one sample per chunk), which is how
  the format's "uncompressed" was chosen;
* the cost of each realism option per 256x256 crop (blur and camera only);
* with ``--modes``, only this: whole ``synthesize`` runs, 1 worker, in each
  synthesis mode (plain, --defocus, --rolling-shutter, --linear, --saturate, --noise,
  --jpeg-quality, --camera, --shake nonuniform with and without --rolling-shutter,
  --shake --gyro on the example log, --objects); a setting that extends a mode is also
  timed against that mode, round by round (``BASES``); ``--only TEXT`` (repeatable) times
  plain and the rows whose name holds TEXT.
* `blurgen average` (pairs from video, docs/video.md), 1 worker: pairs/s on a
  synthetic 640x480 clip of PNG frames (a camera panning over a sample photo),
  without and with flow interpolation.  ``--only-video`` runs this part alone.
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
from make_sample_photos import main as make_photos  # noqa: E402

from blurgen import shards  # noqa: E402
from blurgen.physics import camera, cameras  # noqa: E402
from blurgen.physics.defocus import DefocusSpec  # noqa: E402
from blurgen.physics.gyro import GyroSpec  # noqa: E402
from blurgen.physics.kernels import kernel_seeds, make_kernels  # noqa: E402
from blurgen.physics.objects import ObjectSpec  # noqa: E402
from blurgen.physics.realism import Realism  # noqa: E402
from blurgen.physics.rolling import RollingShutter  # noqa: E402
from blurgen.modes.uniform import UniformSpec  # noqa: E402
from blurgen.physics.shake import ShakeSpec  # noqa: E402
from blurgen.runs.shard_run import _single_threaded, available_cores  # noqa: E402
from blurgen.runs.synthesize import SynthConfig, synthesize  # noqa: E402
from blurgen.runs.video import AverageConfig, average  # noqa: E402
from blurgen.sources import find_images, load_rgb  # noqa: E402


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
        realism = Realism(**options)
        started = time.perf_counter()
        for window, psf in zip(windows, kernels.psf):
            realism.blur(window, psf, rng, effects)
        rows.append((name, (time.perf_counter() - started) / len(windows) * 1e3))
    cam = cameras.get_camera(cameras.DEFAULT_CAMERA)
    started = time.perf_counter()
    for window, psf in zip(windows, kernels.psf):
        camera.simulate(window, psf, cam, camera.draw_parameters(cam, rng), rng)
    rows.append(("--camera", (time.perf_counter() - started) / len(windows) * 1e3))
    return rows


#: The example gyroscope log of docs/modes.md (synthetic: data/make_gyro_log.py).
GYRO_LOG = ROOT / "data" / "gyro-example.csv"
MODE_NAMES = ("uniform", "shake", "objects")  # keys of MODES' options that name a blur mode (blurgen.modes)
MODES = (("plain (DeblurGAN)", {}), ("--defocus 1-4", {"uniform": UniformSpec(defocus=DefocusSpec(1, 4))}),
         ("--rolling-shutter 0.1-0.5", {"uniform": UniformSpec(rolling=RollingShutter(0.1, 0.5))}),
         ("--linear", {"linear": True}),
         ("--saturate", {"saturate": True}),
         ("--noise", {"noise": True}), ("--jpeg-quality 60-95", {"jpeg_quality": (60, 95)}),
         ("--camera (a7r3)", {"camera": "a7r3"}), ("--camera --jpeg-quality 60-95", {"camera": "a7r3", "jpeg_quality": (60, 95)}),
         ("--shake nonuniform (1 deg)", {"shake": ShakeSpec(max_angle=1.0)}),
         ("--shake nonuniform (1 deg) --rolling-shutter 0.1-0.5",
          {"shake": ShakeSpec(max_angle=1.0, rolling=RollingShutter(0.1, 0.5))}),
         ("--shake nonuniform (3 deg)", {"shake": ShakeSpec(max_angle=3.0)}),
         ("--shake --gyro (example, 1/30 s)", {"shake": ShakeSpec(gyro=GyroSpec(str(GYRO_LOG)))}),
         ("--shake --gyro (example, 1/10-1/4)", {"shake": ShakeSpec(gyro=GyroSpec(str(GYRO_LOG), (0.1, 0.25)))}),
         ("--objects --linear", {"objects": True, "linear": True}))


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


#: Rows timed against another row than plain: a setting against the mode it extends.
BASES = {"--rolling-shutter 0.1-0.5": "plain (DeblurGAN)",
         "--shake nonuniform (1 deg) --rolling-shutter 0.1-0.5": "--shake nonuniform (1 deg)",
         "--shake --gyro (example, 1/30 s)": "--shake nonuniform (1 deg)",
         "--shake --gyro (example, 1/10-1/4)": "--shake nonuniform (1 deg)"}


def mode_rates(src: Path, tmp: Path, crop: int, repeats: int, only: tuple[str, ...] = ()) -> list[tuple[str, list[float]]]:
    """(mode, pairs/s of each round) of whole synthesize runs with 1 worker, rounds interleaved; the
    plain mode and the rows whose name holds one of ``only`` (all rows without it)."""
    _single_threaded()
    n = len(find_images(src))
    modes = [(name, options) for i, (name, options) in enumerate(MODES) if i == 0 or not only
             or any(text in name for text in only)]
    rates = {name: [] for name, _ in modes}
    for _ in range(repeats):
        for name, options in modes:
            out = tmp / "out-mode"
            if options.get("objects") is True:
                options = {**options, "objects": ObjectSpec(write_annotations(src, tmp / "instances.json"))}
            realism = Realism(**{k: v for k, v in options.items() if k in Realism.__dataclass_fields__})
            mode = next(((name, spec) for name, spec in options.items() if name in MODE_NAMES), ("uniform", None))
            cfg = SynthConfig(src=src, crop=crop, shard_size=max(1, n // 2), realism=realism, mode=mode[0],
                              spec=mode[1])
            started = time.perf_counter()
            synthesize(cfg, out, workers=1)
            rates[name].append(n / (time.perf_counter() - started))
            shutil.rmtree(out)
    return list(rates.items())


def print_modes(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photos(["--out", str(tmp / "photos"), "-n", str(args.photos), "--seed", "0"])
        rows = mode_rates(tmp / "photos", tmp, args.crop, args.repeats, tuple(args.only or ()))
    print(f"machine: {os.cpu_count()} cores; {args.photos} photos 640x480 JPEG, {args.crop}x{args.crop} crops, "
          f"fresh 64x64 kernels, 1 worker; best of {args.repeats} interleaved runs")
    plain = max(rows[0][1])
    rates = dict(rows)
    for name, r in rows:
        line = f"  {name:32s} {max(r):7.1f} pairs/s (runs {min(r):.0f}-{max(r):.0f}, {max(r) / plain:4.2f}x plain)"
        base = BASES.get(name)
        if base in rates:  # time per pair against its base's, round by round and best against best
            ratios = ", ".join(f"{b / a:.2f}" for a, b in zip(r, rates[base]))
            line += f"; {max(rates[base]) / max(r):.2f}x the time of {base} (rounds: {ratios})"
        print(line)
def video_rates(folder: Path, frames: int = 60, repeats: int = 3) -> list[tuple[str, int, float]]:
    """(setting, pairs, best pairs/s) of ``blurgen average`` with 1 worker on one synthetic clip.

    The clip: ``frames`` 640x480 PNG frames of a camera panning 3 px a frame
    (and 1 px down every other frame) across scikit-image's astronaut,
    upscaled; 10 windows of 7-13 frames, one 256x256 crop each.
    """
    import cv2
    from skimage import data

    scene = cv2.resize(data.astronaut(), (640 + 3 * frames, 480 + frames // 2), interpolation=cv2.INTER_CUBIC)
    clip = folder / "clips" / "pan"
    clip.mkdir(parents=True)
    for t in range(frames):
        y, x = t // 2, 3 * t
        cv2.imwrite(str(clip / f"{t:05d}.png"), cv2.cvtColor(scene[y : y + 480, x : x + 640], cv2.COLOR_RGB2BGR))
    rows = []
    for name, options in (("7-13 frames, 256 crops", {}), ("7-13 frames, --interpolate 1", {"interpolate": 1}),
                          ("7-13 frames, --interpolate 3", {"interpolate": 3}), ("7-13 frames, --full", {"full": True})):
        cfg = AverageConfig(src=folder / "clips", frames=(7, 13), windows_per_clip=10, crop=256, **options)
        best = 0.0
        for r in range(repeats):
            out = folder / f"video-{r}"
            summary = average(cfg, out, workers=1)
            best = max(best, summary.samples / summary.seconds)
            shutil.rmtree(out)
        rows.append((name, summary.samples, best))
    return rows


def print_video(rows) -> None:
    print("\nblurgen average (pairs from video), 1 worker, one 640x480 clip of PNG frames, 10 windows; best of 3:")
    for name, n, rate in rows:
        print(f"  {name:30s} {rate:7.1f} pairs/s  ({n} pairs a run)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=800)
    ap.add_argument("--workers", type=int, default=available_cores())
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved rounds of floor / 1 worker / all workers; the best of each is reported")
    ap.add_argument("--modes", action="store_true", help="only time synthesize in each synthesis mode, 1 worker")
    ap.add_argument("--only-video", action="store_true", help="only the `blurgen average` rates")
    ap.add_argument("--only", action="append", metavar="TEXT",
                    help="with --modes: plain and the rows whose name holds TEXT (repeatable), e.g. --only shake")
    args = ap.parse_args()
    if args.modes:
        return print_modes(args)
    if args.only_video:
        import cv2

        cv2.setNumThreads(1)
        with tempfile.TemporaryDirectory() as tmp:
            print_video(video_rates(Path(tmp)))
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
        video = video_rates(tmp)

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
    print_video(video)


if __name__ == "__main__":
    main()

"""Build a small dataset in the GOPRO_Large layout from scikit-image's sample photos.

    python data/make_gopro_sample.py --out demo/GOPRO_Large --seed 0

GoPro's pairs (Nah et al., CVPR 2017) were made by filming at 240 fps and
averaging N = 7..13 consecutive frames into one blurred frame, the middle
frame being its sharp ground truth.  This script does the same with a
simulated camera: a virtual camera pans over a photo along a smooth random
path (a constant drift plus low-frequency shake and a slight roll), each
240 fps sub-frame is rendered at sub-pixel accuracy (Lanczos) and stored as
8-bit, and every N consecutive sub-frames are averaged:

* ``blur/``       -- the 8-bit values averaged as they are: Nah et al.'s
                     "linear CRF" variant, the folder DeblurGAN trains on;
* ``blur_gamma/`` -- averaged in linear light: values raised to 2.2 (the
                     inverse of the gamma-2.2 camera response Nah et al.
                     assume), averaged, raised to 1/2.2: their "gamma 2.2"
                     variant, physically closer to a long exposure;
* ``sharp/``      -- the middle sub-frame.

Consecutive blurred frames cover disjoint time spans, as in GoPro.  Sequence
folders are named ``SIMkkkk_NN_00`` after GoPro's ``GOPRxxxx_NN_zz`` (NN:
sub-frames averaged).  Output is deterministic for a given --seed.  The
folder is built under a temporary name and renamed when complete.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

# Natural photos only; the test split uses scenes the train split never sees.
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket")
TEST_PHOTOS = ("chelsea", "motorcycle")
GAMMA = 2.2
SUBFRAME_CHOICES = (7, 9, 11, 13)  # odd, so a middle sub-frame exists


def load_photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as uint8 (H, W, 3) RGB."""
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def camera_path(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random camera path over n sub-frames.

    Returns (offsets (n, 2) float64 as (dx, dy) pixels, roll (n,) radians):
    a drift of 0.6-2 px per sub-frame in a random direction (4-24 px of blur
    per blurred frame), plus two sinusoids of 1-4 px and 15-60 sub-frame
    period per axis (hand shake), plus a roll of up to 0.5 degrees, which
    makes the blur grow towards the frame edges.
    """
    t = np.arange(n, dtype=np.float64)
    direction = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.6, 2.0)
    offsets = np.outer(t, [np.cos(direction), np.sin(direction)]) * speed
    for axis in range(2):
        for _ in range(2):
            amplitude, period = rng.uniform(1, 4), rng.uniform(15, 60)
            offsets[:, axis] += amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    roll = np.deg2rad(rng.uniform(0, 0.5)) * np.sin(2 * np.pi * t / rng.uniform(30, 90)
                                                    + rng.uniform(0, 2 * np.pi))
    return offsets, roll


def render_subframes(photo: np.ndarray, offsets: np.ndarray, roll: np.ndarray,
                     size: tuple[int, int]) -> np.ndarray:
    """The camera's view at each sub-frame: uint8 (n, height, width, 3) RGB.

    ``size`` is (height, width).  The photo is upscaled (bicubic) only if the
    path would leave it; the view starts centred on it.
    """
    height, width = size
    # Room needed: the frame, the path's extent and what a roll swings in.
    extent = offsets.max(0) - offsets.min(0)
    swing = np.abs(roll).max() * (height + width) / 2
    need_w, need_h = width + extent[0] + 2 * swing + 4, height + extent[1] + 2 * swing + 4
    scale = max(1.0, need_w / photo.shape[1], need_h / photo.shape[0])
    if scale > 1.0:
        photo = cv2.resize(photo, (int(np.ceil(photo.shape[1] * scale)),
                                   int(np.ceil(photo.shape[0] * scale))), interpolation=cv2.INTER_CUBIC)
    # Put the path's bounding box in the middle of the photo.
    centre = np.array([photo.shape[1], photo.shape[0]]) / 2 - (offsets.max(0) + offsets.min(0)) / 2
    frame_centre = np.array([(width - 1) / 2, (height - 1) / 2])
    frames = np.empty((len(offsets), height, width, 3), np.uint8)
    for k, ((dx, dy), theta) in enumerate(zip(offsets, roll)):
        c, s = np.cos(theta), np.sin(theta)
        rotation = np.array([[c, -s], [s, c]])
        # Photo point seen at frame pixel p: R (p - frame_centre) + centre + offset.
        shift = centre + (dx, dy) - rotation @ frame_centre
        matrix = np.hstack([rotation, shift[:, None]])
        frames[k] = cv2.warpAffine(photo, matrix, (width, height),
                                   flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT_101)
    return frames


def average_frames(subframes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(blur, blur_gamma) of uint8 (n, H, W, 3) sub-frames, each uint8 (H, W, 3).

    blur: the mean of the 8-bit values.  blur_gamma: the mean in linear light
    under a gamma-2.2 camera response, ((mean (x/255)^2.2)^(1/2.2)) * 255.
    """
    values = subframes.astype(np.float64) / 255.0
    blur = values.mean(0)
    blur_gamma = (values ** GAMMA).mean(0) ** (1.0 / GAMMA)
    as_uint8 = lambda v: np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)  # noqa: E731
    return as_uint8(blur), as_uint8(blur_gamma)


def write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise OSError(f"cannot write {path}")


def make_sequence(folder: Path, photo: np.ndarray, rng: np.random.Generator,
                  frames: int, size: tuple[int, int]) -> int:
    """Writes one sequence folder (blur/, blur_gamma/, sharp/); returns its pair count."""
    n = int(rng.choice(SUBFRAME_CHOICES))
    offsets, roll = camera_path(rng, frames * n)
    subframes = render_subframes(photo, offsets, roll, size)
    named = folder.parent / f"{folder.name}_{n:02d}_00"
    for sub in ("blur", "blur_gamma", "sharp"):
        (named / sub).mkdir(parents=True)
    for f in range(frames):
        window = subframes[f * n:(f + 1) * n]
        blur, blur_gamma = average_frames(window)
        name = f"{f * n + n // 2 + 1:06d}.png"  # numbered by the sharp sub-frame, from 1
        write_png(named / "blur" / name, blur)
        write_png(named / "blur_gamma" / name, blur_gamma)
        write_png(named / "sharp" / name, window[n // 2])
    return frames


def build_sample(out: Path, seed: int = 0, size: tuple[int, int] = (288, 384),
                 train_sequences: int = 3, test_sequences: int = 2, frames: int = 4) -> dict[str, int]:
    """Builds the GoPro-layout folder ``out`` (must not exist); returns pair counts per split.

    ``size`` is the frame (height, width).  Written under a temporary name
    next to ``out`` and renamed when complete.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    photos = {name: load_photo(name) for name in TRAIN_PHOTOS + TEST_PHOTOS}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        counts = {}
        for split, pool, count in (("train", TRAIN_PHOTOS, train_sequences),
                                   ("test", TEST_PHOTOS, test_sequences)):
            counts[split] = sum(
                make_sequence(tmp / split / f"SIM{k:04d}", photos[pool[k % len(pool)]], rng, frames, size)
                for k in range(count))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def parse_size(text: str) -> tuple[int, int]:
    """``"384x288"`` (width x height) -> (288, 384) as (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: expected WIDTHxHEIGHT, e.g. 384x288") from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: at least 16x16")
    return height, width


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build a small GOPRO_Large-layout dataset (simulated camera shake, "
                    "consecutive sub-frames averaged) from scikit-image sample photos.")
    parser.add_argument("--out", type=Path, required=True, help="folder to create, e.g. demo/GOPRO_Large")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=parse_size, default=(288, 384), metavar="WxH",
                        help="frame size (default 384x288: 192x144 at the trainer's default "
                             "--gopro-scale 0.5, enough for 128 crops)")
    parser.add_argument("--train-sequences", type=positive, default=3,
                        help="sequences (scenes) in train/ (default 3)")
    parser.add_argument("--test-sequences", type=positive, default=2,
                        help="sequences (scenes) in test/, other photos than train/'s (default 2)")
    parser.add_argument("--frames", type=positive, default=4, help="blurred frames per sequence")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    out: Path = args.out
    if args.seed < 0:
        parser.error(f"bad seed {args.seed}: must be >= 0")
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists (use --overwrite to replace it)", file=sys.stderr)
        return 2
    try:
        staging = out.with_name(f".{out.name}.new")
        shutil.rmtree(staging, ignore_errors=True)
        counts = build_sample(staging, args.seed, args.size, args.train_sequences,
                              args.test_sequences, args.frames)
        # The old folder goes only once the new one is complete.
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    height, width = args.size
    print(f"wrote {counts['train']} train and {counts['test']} test pairs ({width}x{height}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write a folder of COCO-like sample photos (640x480 JPEGs) made from scikit-image's sample images.

    python data/make_sample_photos.py --out demo/photos -n 24 --seed 0

Each photo is a random crop (at a random scale, sometimes mirrored) of one of
scikit-image's colour sample photos, resized to 640x480 like a typical MS COCO
image.  Deterministic for a given --seed.  Used by `make demo` and
bench/synthesize.py; needs no download.
"""
import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

SOURCES = ("astronaut", "coffee", "rocket", "chelsea", "stereo_motorcycle", "immunohistochemistry", "hubble_deep_field")
SIZE = (640, 480)  # width, height


def sample_images() -> list[np.ndarray]:
    images = []
    for name in SOURCES:
        image = getattr(data, name)()
        images.append(image[0] if isinstance(image, tuple) else image)
    return images


def make_photo(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random 4:3 window of ``image`` (at least half its shorter side), resized to 640x480."""
    h, w = image.shape[:2]
    side = rng.uniform(0.5, 1.0) * min(h, w * 3 / 4)
    ch, cw = int(side), int(side * 4 / 3)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    photo = cv2.resize(image[y : y + ch, x : x + cw], SIZE, interpolation=cv2.INTER_CUBIC)
    return photo[:, ::-1] if rng.random() < 0.5 else photo


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="folder to write (created)")
    ap.add_argument("-n", type=int, default=24, help="number of photos")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.n < 1:
        print("error: -n must be >= 1", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: {args.out}: cannot create ({exc.strerror or exc})", file=sys.stderr)
        return 2
    images = sample_images()
    rng = np.random.default_rng(args.seed)
    for i in range(args.n):
        photo = make_photo(images[i % len(images)], rng)
        path = args.out / f"photo{i:04d}.jpg"
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(photo), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 92])
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, path)
    print(f"wrote {args.n} photos of {SIZE[0]}x{SIZE[1]} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

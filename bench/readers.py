"""Benchmark: decoding a GoPro-size (1280x720) PNG frame, blurgen.sources.load_rgb
(Pillow, the one reader every command uses) against cv2.imread.

    python bench/readers.py [--seconds 3]

The frames come from data/make_gopro_sample.py (upscaled sample photos,
which compress better than real footage) plus the same frame with Gaussian
noise (sigma 3 grey levels) added, whose PNG is larger, as camera frames are.
The two readers are timed in alternation, one thread each, so that a busy
machine slows both alike.  Prints ms per frame for each and whether their
pixels agree.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from blurgen.sources import load_rgb  # noqa: E402


def _cv2_rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per reader and frame")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    spec = importlib.util.spec_from_file_location("make_gopro_sample", ROOT / "data" / "make_gopro_sample.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "GOPRO_Large"
        builder.build_sample(root, seed=0, size=(720, 1280), train_sequences=1, test_sequences=1, frames=2)
        frame = sorted(root.rglob("sharp/*.png"))[0]
        noisy = Path(tmp) / "noisy.png"
        image = cv2.imread(str(frame))
        noise = np.random.default_rng(0).normal(0, 3, image.shape)
        cv2.imwrite(str(noisy), np.clip(image + noise, 0, 255).astype(np.uint8))
        readers = {"load_rgb (Pillow)": load_rgb, "cv2.imread": _cv2_rgb}
        for label, path in (("sample frame", frame), ("noisy frame", noisy)):
            same = np.array_equal(load_rgb(path), _cv2_rgb(path))
            spent = dict.fromkeys(readers, 0.0)
            counts = dict.fromkeys(readers, 0)
            start = time.perf_counter()
            while time.perf_counter() - start < 2 * args.seconds:
                for name, read in readers.items():
                    t = time.perf_counter()
                    read(path)
                    spent[name] += time.perf_counter() - t
                    counts[name] += 1
            times = "  ".join(f"{name} {1000 * spent[name] / counts[name]:.1f} ms" for name in readers)
            print(f"{label} ({path.stat().st_size / 1e6:.2f} MB PNG, 1280x720): {times}  same pixels: {same}")


if __name__ == "__main__":
    main()

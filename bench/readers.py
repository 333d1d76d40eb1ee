"""Benchmark: decoding a GoPro-size (1280x720) PNG frame: blurgen.sources.load_rgb
(the one reader every command uses; OpenCV's fast path for plain 8-bit RGB PNGs)
against its Pillow path (decode_rgb, what every other file takes) and cv2.imread.

    python bench/readers.py [--seconds 3]

The frames come from data/make_gopro_sample.py (upscaled sample photos,
which compress better than real footage) plus the same frame with Gaussian
noise (sigma 3 grey levels) added, whose PNG is larger, as camera frames are.
The two readers are timed in alternation, one thread each, so that a busy
machine slows both alike.  Prints ms per frame for each and whether their
pixels agree; then the same for a frame as the training stream reads it
(``trainer.gopro.read_frame`` at the default ``--gopro-scale`` 0.5: decoded,
then halved by area averaging) against cv2.imread + the same resize.
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

from blurgen.sources import decode_rgb, load_rgb  # noqa: E402
from trainer.gopro import read_frame  # noqa: E402


def _cv2_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _cv2_half(path: Path) -> np.ndarray:
    """What trainer.gopro.read_frame(path, 0.5) did before it used load_rgb."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    bgr = cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _alternate(readers: dict, path: Path, seconds: float) -> dict:
    """Mean seconds per call of each reader, called in turn for ``seconds`` each."""
    spent = dict.fromkeys(readers, 0.0)
    counts = dict.fromkeys(readers, 0)
    start = time.perf_counter()
    while time.perf_counter() - start < len(readers) * seconds:
        for name, read in readers.items():
            t = time.perf_counter()
            read(path)
            spent[name] += time.perf_counter() - t
            counts[name] += 1
    return {name: spent[name] / counts[name] for name in readers}


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
        cases = (("decode", {"load_rgb": load_rgb, "Pillow path (decode_rgb)": decode_rgb,
                             "cv2.imread + cvtColor": _cv2_rgb}),
                 ("decode + halve", {"read_frame(p, 0.5)": lambda p: read_frame(p, 0.5),
                                     "cv2.imread + resize": _cv2_half}))
        for what, readers in cases:
            for label, path in (("sample frame", frame), ("noisy frame", noisy)):
                first, *others = (read(path) for read in readers.values())
                times = _alternate(readers, path, args.seconds)
                shown = "  ".join(f"{name} {1000 * t:.1f} ms" for name, t in times.items())
                same = all(np.array_equal(first, other) for other in others)
                print(f"{what}, {label} ({path.stat().st_size / 1e6:.2f} MB PNG, 1280x720): {shown}  "
                      f"same pixels: {same}")

if __name__ == "__main__":
    main()

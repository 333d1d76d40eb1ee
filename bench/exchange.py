"""Rates of `blurgen export` (each layout), `blurgen import-pairs`, and of reading photos from a folder vs a zip.

    python bench/exchange.py [--pairs 200] [--photos 100]

One process, one core (cv2 single-threaded), files in a temporary folder
(page cache warm after the first pass).  Prints pairs/s and photos/s.
"""
import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blurgen import shards  # noqa: E402
from blurgen.runs.exchange import export_folder, import_pairs  # noqa: E402
from blurgen.runs.peer_layouts import LAYOUTS  # noqa: E402
from blurgen.sources import FolderSource, ZipSource  # noqa: E402


def smooth(rng, h, w):
    small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--photos", type=int, default=100)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "s").mkdir()
        n = args.pairs
        sharp = np.stack([smooth(rng, 256, 256) for _ in range(n)])
        blurred = cv2.blur(sharp.reshape(-1, 256, 3), (5, 5)).reshape(sharp.shape)
        checksum = shards.write_shard(tmp / "s" / "shard-00000.h5", blurred, sharp, np.ones((n, 1, 1), np.float32))
        shards.write_manifest(tmp / "s", {"shards": {"shard-00000.h5": {"count": n, "checksum": checksum}}})
        for layout in LAYOUTS:
            t = time.perf_counter()
            export_folder(tmp / "s", tmp / layout, layout=layout)
            print(f"export --to {layout}: {n / (time.perf_counter() - t):,.0f} pairs/s (256x256, PNG)")
        seq = tmp / "gopro" / "train" / "shard-00000"
        t = time.perf_counter()
        import_pairs(seq / "blur", seq / "sharp", tmp / "back", shard_size=1000)
        import_rate = n / (time.perf_counter() - t)
        print(f"import-pairs: {import_rate:,.0f} pairs/s")

        photos = tmp / "photos"
        photos.mkdir()
        for i in range(args.photos):
            cv2.imwrite(str(photos / f"{i:06d}.jpg"), smooth(rng, 480, 640))
        with zipfile.ZipFile(tmp / "photos.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(photos.iterdir()):
                z.write(p, f"train2017/{p.name}")
        for label, source in (("folder", FolderSource(photos)), ("zip", ZipSource(tmp / "photos.zip"))):
            names = source.names()
            best = 0.0
            for _ in range(3):
                t = time.perf_counter()
                for name in names:
                    source.load(name)
                best = max(best, len(names) / (time.perf_counter() - t))
            print(f"load 640x480 JPEG from a {label}: {best:,.0f} photos/s (best of 3)")


if __name__ == "__main__":
    main()

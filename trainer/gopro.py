"""Reader for the GoPro deblurring dataset (Nah et al., CVPR 2017) in its GOPRO_Large layout.

    GOPRO_Large/
      train/ GOPR0372_07_00/ blur/000047.png  blur_gamma/000047.png  sharp/000047.png
             GOPR0372_07_01/ ...
      test/  GOPR0384_11_00/ ...

Each blurred frame is the average of 7-13 consecutive 240 fps frames; the
sharp frame is the middle one.  ``blur/`` averages the pixel values as they
are (the paper's "linear CRF" variant), ``blur_gamma/`` averages in linear
light (pixel values raised to 2.2, averaged, raised to 1/2.2: the "gamma 2.2
CRF" variant).  DeblurGAN trains on ``blur/``.

Listing checks the whole split up front -- every blurred frame has a sharp
frame of the same name and size and vice versa -- so a broken copy of the
dataset fails at start-up with a message naming the file, not hours later in
a loader worker.  Only image headers are read for that.  Frames are decoded
by ``blurgen.sources`` (the reader of every command), so a frame gives the
same pixels here as in ``synthesize`` or ``trainer deblur``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blurgen.sources import EXTENSIONS, SkipImage, image_size, load_rgb_as
from trainer.errors import TrainerError

BLUR_FOLDERS = ("blur", "blur_gamma")
SHARP_FOLDER = "sharp"


class GoProError(TrainerError):
    """A GoPro folder that does not have the GOPRO_Large layout; one line naming the file."""


@dataclass(frozen=True)
class GoProPair:
    """One blurred/sharp frame pair; ``size`` is the full-resolution (height, width)."""

    blurred: Path
    sharp: Path
    size: tuple[int, int]

    @property
    def name(self) -> str:
        """``sequence/frame.png``, unique within a split."""
        return f"{self.blurred.parent.parent.name}/{self.blurred.name}"


def _frames(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")}


def _header_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels."""
    try:
        return image_size(path)
    except SkipImage as exc:
        raise GoProError(f"{path}: not a readable image ({exc})") from None


def scan_gopro(root: str | Path, split: str = "train", blur: str = "blur") -> list[GoProPair]:
    """Every (blurred, sharp) pair of one split, sorted by sequence then frame name.

    ``blur`` picks the blurred variant, ``"blur"`` or ``"blur_gamma"``.
    Raises GoProError (one line naming the file or folder) for a missing root
    or split, a split without sequences, a sequence without ``blur/`` or
    ``sharp/`` or without frames, a frame present on one side only, an
    unreadable frame header, or a blurred/sharp size mismatch.
    """
    if blur not in BLUR_FOLDERS:
        raise GoProError(f"unknown GoPro blur variant {blur!r} (choose from {', '.join(BLUR_FOLDERS)})")
    root = Path(root)
    if not root.is_dir():
        raise GoProError(f"{root}: GoPro folder not found")
    split_dir = root / split
    if not split_dir.is_dir():
        raise GoProError(f"{split_dir}: missing (expected the GOPRO_Large layout, "
                         f"{root}/{split}/<sequence>/{{{blur},sharp}}/*.png)")
    sequences = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not sequences:
        raise GoProError(f"{split_dir}: no sequence folders")
    pairs: list[GoProPair] = []
    for seq in sequences:
        blur_dir, sharp_dir = seq / blur, seq / SHARP_FOLDER
        for folder in (blur_dir, sharp_dir):
            if not folder.is_dir():
                raise GoProError(f"{folder}: missing folder")
        blurred, sharp = _frames(blur_dir), _frames(sharp_dir)
        if not blurred:
            raise GoProError(f"{blur_dir}: no frames ({', '.join(EXTENSIONS)})")
        for name in sorted(blurred.keys() - sharp.keys()):
            raise GoProError(f"{blurred[name]}: no sharp frame {sharp_dir / name}")
        for name in sorted(sharp.keys() - blurred.keys()):
            raise GoProError(f"{sharp[name]}: no blurred frame {blur_dir / name}")
        for name in sorted(blurred):
            size_b, size_s = _header_size(blurred[name]), _header_size(sharp[name])
            if size_b != size_s:
                raise GoProError(f"{blurred[name]}: size {size_b[1]}x{size_b[0]} differs from "
                                 f"{sharp[name]} ({size_s[1]}x{size_s[0]})")
            pairs.append(GoProPair(blurred[name], sharp[name], size_b))
    return pairs


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(height, width) of a frame of ``size`` after resizing by ``scale`` (at least 1 pixel)."""
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def read_frame(path: Path, scale: float = 1.0) -> np.ndarray:
    """A frame as uint8 (H, W, 3) RGB, resized by ``scale`` with area averaging.

    Decoded by ``blurgen.sources.load_rgb`` (16-bit frames rescaled to 8 bits,
    EXIF orientation applied).  Area averaging (cv2.INTER_AREA) is a box filter
    for downscaling, so the blur statistics change only by the scale itself,
    not by interpolation aliasing.  Raises GoProError on an unreadable file.
    """
    rgb = load_rgb_as(path, GoProError)
    if scale != 1.0:
        height, width = scaled_size(rgb.shape[:2], scale)
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return rgb


def read_gopro_pair(pair: GoProPair, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) uint8 (H, W, 3) RGB of one pair, both resized by ``scale``."""
    blurred, sharp = read_frame(pair.blurred, scale), read_frame(pair.sharp, scale)
    expected = scaled_size(pair.size, scale)
    for path, image in ((pair.blurred, blurred), (pair.sharp, sharp)):
        if image.shape[:2] != expected:
            # The file changed since it was listed (or its header lies).
            raise GoProError(f"{path}: decoded size {image.shape[1]}x{image.shape[0]} "
                             f"differs from the listed {expected[1]}x{expected[0]}")
    return blurred, sharp

"""Paired augmentation: one random crop box and flips for an aligned (blurred, sharp)
pair, applied to both images alike (what BasicSR's ``paired_random_crop`` and
``augment`` do for its pairs).

The draw and its application are separate, pure functions, because a shard
reader reads only the window of a crop from disk: the box is drawn from the
sample's size, the window read, and the flips applied to what came back.
:func:`random_crop_flip` does all three on arrays in memory.

Two draw orders are in use, and each caller keeps its own, so that every
draw stays the number it always was (resumed training runs are compared
bit for bit):

* ``UNIFORMS`` (:class:`blurgen.shards.dataset.PairDataset`): four uniforms in
  [0, 1) at once, ``u = rng.random(4)``; y0 = floor(u0 (H - side + 1)),
  x0 = floor(u1 (W - side + 1)), horizontal flip iff u2 < 1/2, vertical
  flip iff u3 < 1/2.  All four are drawn whatever is switched on.
* ``INTEGERS`` (the trainer's draws): ``y0 = rng.integers(0, H - side +
  1)``, then ``x0 = rng.integers(0, W - side + 1)``, then a horizontal flip
  iff ``rng.random() < 1/2``; no vertical flip.  The flip is drawn whether
  or not flips are on.

Either way, turning flips on or off leaves the crop boxes as they were.
"""
from __future__ import annotations

import numpy as np

UNIFORMS = "uniforms"
INTEGERS = "integers"
DRAW_ORDERS = (UNIFORMS, INTEGERS)

#: A crop window (y0, x0, y1, x1) in pixels, y1 - y0 = x1 - x0 = its side.
Box = tuple[int, int, int, int]


def draw_crop_flip(rng: np.random.Generator, size: tuple[int, int] | None, side: int | None, *,
                   hflip: bool = True, vflip: bool = False, order: str = UNIFORMS
                   ) -> tuple[Box | None, bool, bool]:
    """The crop box and flips of one pair, drawn from ``rng`` in the order ``order`` (module doc).

    Parameters
    ----------
    rng : the pair's own random stream (e.g. ``default_rng([seed, TAG, index])``);
        ``order`` says which numbers are taken from it.
    size : (H, W) in pixels of the images to crop; unused when ``side`` is None.
    side : side of the square crop in pixels, 1 <= side <= min(H, W); None: no
        crop (box None; ``UNIFORMS`` only).
    hflip, vflip : whether the flips are on; an off flip comes back False.
        ``INTEGERS`` draws no vertical flip.

    Returns
    -------
    (box, hflip, vflip): box (y0, x0, y0 + side, x0 + side) of ints, or None;
    two bools, the same for both images of the pair.
    """
    if order not in DRAW_ORDERS:
        raise ValueError(f"order must be one of {', '.join(DRAW_ORDERS)}, got {order!r}")
    if side is not None:
        height, width = int(size[0]), int(size[1])
        if not 1 <= side <= min(height, width):
            raise ValueError(f"a {side}x{side} crop does not fit a {width}x{height} image")
    if order == UNIFORMS:
        u = rng.random(4)
        box = None
        if side is not None:
            y0, x0 = int(u[0] * (height - side + 1)), int(u[1] * (width - side + 1))
            box = (y0, x0, y0 + side, x0 + side)
        return box, bool(hflip) and bool(u[2] < 0.5), bool(vflip) and bool(u[3] < 0.5)
    if side is None or vflip:
        raise ValueError("the integers order draws a crop and a horizontal flip only")
    y0 = int(rng.integers(0, height - side + 1))
    x0 = int(rng.integers(0, width - side + 1))
    return (y0, x0, y0 + side, x0 + side), bool(rng.random() < 0.5) and bool(hflip), False


def crop_pair(blurred: np.ndarray, sharp: np.ndarray, box: Box | None) -> tuple[np.ndarray, np.ndarray]:
    """The window ``box`` = (y0, x0, y1, x1) of both (H, W, C) images (views; None: both whole)."""
    if box is None:
        return blurred, sharp
    y0, x0, y1, x1 = box
    return blurred[y0:y1, x0:x1], sharp[y0:y1, x0:x1]


def flip_pair(blurred: np.ndarray, sharp: np.ndarray, hflip: bool, vflip: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """Both (H, W, C) images mirrored left-right (``hflip``) and upside down (``vflip``), alike;
    views, any dtype."""
    if hflip:
        blurred, sharp = blurred[:, ::-1], sharp[:, ::-1]
    if vflip:
        blurred, sharp = blurred[::-1], sharp[::-1]
    return blurred, sharp


def random_crop_flip(rng: np.random.Generator, blurred: np.ndarray, sharp: np.ndarray, side: int | None, *,
                     hflip: bool = True, vflip: bool = False, order: str = UNIFORMS
                     ) -> tuple[np.ndarray, np.ndarray, tuple[Box | None, bool, bool]]:
    """One paired crop and flip of two aligned (H, W, C) images of any dtype, in memory.

    Returns the (side, side, C) views of both (whole when ``side`` is None),
    cropped by one box and flipped alike, and the draw (box, hflip, vflip) of
    :func:`draw_crop_flip` (same ``rng``, ``order`` and flips).
    """
    if blurred.shape[:2] != sharp.shape[:2]:
        raise ValueError(f"the images of a pair differ in size: {blurred.shape} and {sharp.shape}")
    drawn = draw_crop_flip(rng, blurred.shape[:2], side, hflip=hflip, vflip=vflip, order=order)
    box, h, v = drawn
    return (*flip_pair(*crop_pair(blurred, sharp, box), h, v), drawn)

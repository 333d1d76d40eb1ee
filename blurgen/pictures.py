"""Pictures as files: contact sheets of images and atomic PNG writing."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from blurgen import files
from blurgen.terminal import to_rgb_float


def contact_sheet(
    images: list[np.ndarray], cols: int, cell: int | None = None, pad: int = 4, background: int = 32
) -> np.ndarray:
    """Tile images on a grid, each scaled to fit a ``cell``×``cell`` square.

    Parameters
    ----------
    images : list of (H, W) or (H, W, 3) arrays, uint8 or float in [0, 1]
    cols : int
        Images per row.
    cell : int or None
        Side of each square cell in pixels; ``None``: the largest image side.
        Small images (kernels) are enlarged with nearest-neighbour so their
        pixels stay visible.
    pad, background : int
        Gap between cells (px) and its grey level (0-255).

    Returns
    -------
    (rows * (cell + pad) + pad, cols * (cell + pad) + pad, 3) uint8 RGB
    """
    if not images:
        raise ValueError("no images to draw")
    rgb = [to_rgb_float(im) for im in images]
    cell = cell or max(max(im.shape[:2]) for im in rgb)
    cols = max(1, min(cols, len(rgb)))
    rows = -(-len(rgb) // cols)
    sheet = np.full((rows * (cell + pad) + pad, cols * (cell + pad) + pad, 3), background, np.uint8)
    for i, im in enumerate(rgb):
        h, w = im.shape[:2]
        s = cell / max(h, w)
        size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST
        tile = np.rint(cv2.resize(im, size, interpolation=interp) * 255).astype(np.uint8)
        r, c = divmod(i, cols)
        y = pad + r * (cell + pad) + (cell - size[1]) // 2
        x = pad + c * (cell + pad) + (cell - size[0]) // 2
        sheet[y : y + size[1], x : x + size[0]] = tile
    return sheet


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) RGB or (H, W) grey uint8 image as PNG, atomically (temp file, then rename)."""
    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.rint(to_rgb_float(image) * 255).astype(np.uint8)
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError(f"{path}: could not encode PNG")
    with files.atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path

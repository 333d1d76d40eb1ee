"""Pictures as files: contact sheets of images and atomic PNG writing."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from blurgen.plumbing import files
from blurgen.plumbing.terminal import to_rgb_float

#: Height (px) of the caption band under each row of a labelled contact sheet, and its letters.
LABEL_BAND, LABEL_SIZE = 16, 11


def contact_sheet(
    images: list[np.ndarray], cols: int, cell: int | None = None, pad: int = 4, background: int = 32,
    labels: list[str] | None = None, common_scale: bool = False,
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
    labels : list of str or None
        A caption under each image (cut to the cell's width), in a band of
        ``LABEL_BAND`` pixels under each row.
    common_scale : bool
        Scale every image by the same factor (the largest one fills its cell),
        so that their pixels keep their relative sizes: a blur kernel next to
        its crop, as large as its blur in the picture.

    Returns
    -------
    (rows * (cell + pad + band) + pad, cols * (cell + pad) + pad, 3) uint8 RGB;
    band is LABEL_BAND with labels, else 0.
    """
    if not images:
        raise ValueError("no images to draw")
    rgb = [to_rgb_float(im) for im in images]
    cell = cell or max(max(im.shape[:2]) for im in rgb)
    cols = max(1, min(cols, len(rgb)))
    rows = -(-len(rgb) // cols)
    band = LABEL_BAND if labels else 0
    sheet = np.full((rows * (cell + pad + band) + pad, cols * (cell + pad) + pad, 3), background, np.uint8)
    largest = max(max(im.shape[:2]) for im in rgb)
    for i, im in enumerate(rgb):
        h, w = im.shape[:2]
        s = cell / (largest if common_scale else max(h, w))
        size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST
        tile = np.rint(cv2.resize(im, size, interpolation=interp) * 255).astype(np.uint8)
        r, c = divmod(i, cols)
        y = pad + r * (cell + pad + band) + (cell - size[1]) // 2
        x = pad + c * (cell + pad) + (cell - size[0]) // 2
        sheet[y : y + size[1], x : x + size[0]] = tile
        if labels and labels[i]:
            _caption(sheet, labels[i], pad + c * (cell + pad), pad + r * (cell + pad + band) + cell, cell)
    return sheet


def _caption(sheet: np.ndarray, text: str, x: int, y: int, width: int) -> None:
    """``text`` in the caption band whose top left is (x, y), cut to ``width`` pixels."""
    from blurgen.plumbing.lettering import put_text, text_size

    while len(text) > 1 and text_size(text, LABEL_SIZE)[0] > width:
        text = text[:-1]
    put_text(sheet, text, (x, y + LABEL_BAND - 4), LABEL_SIZE, (230, 230, 230))


def side_by_side(images: list[np.ndarray], labels: list[str] | None = None, title: str | None = None,
                 gap: int = 4) -> np.ndarray:
    """Images of one height side by side, white ``gap`` columns between them, each
    label in a dark band under its image (cut to its width), and ``title`` in dark
    bands above all of them, wrapped at words: uint8 RGB (title bands + H + label band,
    sum of W + gaps, 3), a band being LABEL_BAND px (none without labels or title)."""
    rgb = [np.rint(to_rgb_float(im) * 255).astype(np.uint8) for im in images]
    height = rgb[0].shape[0]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    row = np.concatenate([part for im in rgb for part in (im, spacer)][:-1], axis=1)
    if labels:
        band = np.full((LABEL_BAND, row.shape[1], 3), 32, np.uint8)
        x = 0
        for im, label in zip(rgb, labels):
            _caption(band, label, x + 2, 0, im.shape[1] - 2)
            x += im.shape[1] + gap
        row = np.concatenate([row, band], axis=0)
    if title:   # wrapped at words to the picture's width, a band a line
        from blurgen.plumbing.lettering import text_size

        lines = [""]
        for word in title.split():
            joined = f"{lines[-1]} {word}".strip()
            if lines[-1] and text_size(joined, LABEL_SIZE)[0] > row.shape[1] - 4:
                lines.append(word)
            else:
                lines[-1] = joined
        bands = np.full((LABEL_BAND * len(lines), row.shape[1], 3), 32, np.uint8)
        for i, line in enumerate(lines):
            _caption(bands, line, 2, i * LABEL_BAND, row.shape[1] - 2)
        row = np.concatenate([bands, row], axis=0)
    return row


def encode_png(image: np.ndarray, level: int | None = None) -> bytes:
    """The PNG file of an (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey image: uint8 as is
    (lossless), float in [0, 1] rounded to uint8.  Encoded by OpenCV from BGR(A), as
    ``cv2.imwrite`` would; ``level`` is zlib's compression level 0-9 (OpenCV's default if None).
    OSError if OpenCV cannot encode it."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.rint(to_rgb_float(image) * 255).astype(np.uint8)
    bgr = image if image.ndim == 2 else cv2.cvtColor(
        image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", bgr, [] if level is None else [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
    if not ok:
        raise OSError("could not encode PNG")
    return data.tobytes()


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an image (as :func:`encode_png` takes it) as PNG, atomically (temp file, then rename)."""
    path = Path(path)
    try:
        data = encode_png(image)
    except OSError:
        raise OSError(f"{path}: could not encode PNG") from None
    with files.atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path

"""Text on pictures (curves, reports, contact sheets) in a legible sans-serif.

OpenCV's Hershey fonts draw the zero slashed ("Ø"); at the 7-8 px cap height of
axis labels the slash and the oval run together, and "step 1000" reads as
"step 1ØØØ".  Pillow, already a dependency, embeds a FreeType sans-serif
(Aileron) with an open zero, hinted for small sizes; without FreeType it falls
back to its bitmap font, whose zero is open too.
"""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def font(size: int):
    """Pillow's built-in font at ``size`` px (em size), or its bitmap font without FreeType."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):   # Pillow built without FreeType: one fixed size
        return ImageFont.load_default()


def text_size(text: str, size: int) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` drawn at ``size``, from its ink's bounding box."""
    left, top, right, bottom = font(size).getbbox(text)
    return right - left, bottom - top


def put_text(image: np.ndarray, text: str, origin: tuple[int, int], size: int, colour) -> np.ndarray:
    """Draw ``text`` onto ``image`` (H, W, 3) uint8 RGB in place, with anti-aliasing.

    ``origin``: (x, y) of the left end of the baseline, as ``cv2.putText`` takes
    it; ``colour``: an RGB triple (or a grey level for (H, W) images).  Only the
    text's bounding box is converted, so labelling a large picture stays cheap.
    """
    from PIL import Image, ImageDraw

    x, y = int(origin[0]), int(origin[1])
    left, top, right, bottom = font(size).getbbox(text, anchor="ls")
    x0, y0 = max(0, x + left - 1), max(0, y + top - 1)
    x1, y1 = min(image.shape[1], x + right + 1), min(image.shape[0], y + bottom + 1)
    if x1 <= x0 or y1 <= y0:
        return image
    patch = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1]))
    fill = tuple(int(c) for c in colour) if np.ndim(colour) else int(colour)
    ImageDraw.Draw(patch).text((x - x0, y - y0), text, font=font(size), fill=fill, anchor="ls")
    image[y0:y1, x0:x1] = np.asarray(patch)
    return image

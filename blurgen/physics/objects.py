"""Moving objects over a shaken background: COCO instance masks and the layered blur model.

An object instance is cut out of its photo with its COCO mask (alpha M,
colours F), pasted onto another photo B (so the background behind it is
known), and given its own motion on top of the camera's.  Over the exposure
the camera follows a Boracchi & Foi trajectory c(t) and the object moves by
o(t) more, so the image is (the layered model of fast-moving objects,
Kotera, Rozumnyi et al.)

    I = ∫ S_c(t) [ B · (1 − S_o(t) M) + S_o(t) (M · F) ] dt,

S_v the shift by v.  The exposure is split into ``segments`` consecutive
parts; in part j the camera's samples make the partial PSF k_j (Σ k_j is the
camera's kernel) and the object sits at the mean o_j of its part, so

    I = Σ_j k_j ∗ [ B · (1 − S_oj M) + S_oj (M · F) ].

When the background is flat, or the camera still, this is exactly the
closed form ``B_blurred · (1 − k_o ∗ M) + k_o ∗ (M · F)`` with the object's
kernel k_o = Σ_j k_j ∗ δ_oj (camera and own motion together).  Unlike that
closed form, it integrates the occlusion pose by pose, so an object that does
not move on its own blurs exactly as the camera-only blur of the sharp
composite ``B · (1 − M) + M · F``, which is the sharp image.  The object's
own trajectory is centred (mean offset 0), so its sharp place is the mean of
its streak and the pair stays aligned.

COCO masks (``segmentation``) are polygons (lists of x, y vertex lists,
filled with OpenCV's ``fillPoly``) or run-length encodings: uncompressed
(``{"counts": [int, ...], "size": [h, w]}``) or compressed (a string in
COCO's LEB128-like format, decoded here as pycocotools' ``rleFrString``
does).  Runs alternate 0 and 1, starting with 0, in column-major order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blurgen.errors import BlurgenError
from blurgen.plumbing.caches import FileCache
from blurgen.physics import blur
from blurgen.physics.psf import centre


class ObjectsError(BlurgenError):
    """An annotations file that cannot be used (one line, for the user)."""


@dataclass(frozen=True)
class ObjectSpec:
    """How to paste moving objects.

    annotations : a COCO instances JSON file.
    images : folder the annotations' ``file_name`` are relative to (None: ``--src``).
    max_len : pixels — the object's own path length is drawn in [0, max_len].
    segments : parts of the exposure the object's motion is resolved into.
    min_area : instances of fewer mask pixels (in their photo) are not used.
    max_side : an object larger than this fraction of the crop's side is shrunk to it.
    """

    annotations: Path
    images: Path | None = None
    max_len: float = 30.0
    segments: int = 16
    min_area: int = 400
    max_side: float = 0.75

    def __post_init__(self):
        if not self.max_len >= 0:
            raise ValueError(f"--object-len must be >= 0 pixels, got {self.max_len:g}")
        if self.segments < 1:
            raise ValueError(f"object segments must be >= 1, got {self.segments}")
        if not 0 < self.max_side <= 1:
            raise ValueError(f"object max side must be in (0, 1], got {self.max_side:g}")


# --- COCO masks -----------------------------------------------------------------


def rle_counts_from_string(text: str) -> list[int]:
    """Counts of a compressed COCO RLE string (pycocotools' ``rleFrString``).

    Each count is stored in 5-bit groups, least significant first, as characters
    ``48 + group`` with bit 0x20 meaning "more groups follow" and bit 0x10 of the
    last group its sign; from the fourth count on, a count is stored as its
    difference from the count two places before it.
    """
    counts: list[int] = []
    p = 0
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        raise ObjectsError("a compressed RLE string holds a non-ASCII character") from None
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise ObjectsError("a compressed RLE string ends in the middle of a count")
            if k == MAX_RLE_GROUPS:  # a longer count overflows any image (and decoding it is quadratic)
                raise ObjectsError(f"a compressed RLE count runs over {MAX_RLE_GROUPS} groups (65 bits)")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ObjectsError(f"a compressed RLE string holds the character {chr(data[p])!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


#: 5-bit groups of one compressed RLE count: 13 hold 65 bits, more than any image's pixels.
MAX_RLE_GROUPS = 13


def rle_decode(counts, height: int, width: int) -> np.ndarray:
    """(height, width) bool mask of COCO run lengths (alternately 0s and 1s, from 0s, column-major).

    ``counts`` is checked as Python integers before NumPy sees it: a count too large for
    int64 would overflow, or wrap a sum that then looks right."""
    whole = lambda c: (isinstance(c, int) and not isinstance(c, bool)) or (  # noqa: E731
        isinstance(c, float) and c.is_integer())
    if not isinstance(counts, (list, tuple)) or not all(whole(c) for c in counts):
        raise ObjectsError("RLE counts must be a list of whole numbers")
    counts = [int(c) for c in counts]
    if any(c < 0 for c in counts):
        raise ObjectsError("RLE counts are negative")
    total = sum(counts)
    if total != height * width:
        shown = f"{total}" if total < 10 ** 15 else "more than 10^15"
        raise ObjectsError(f"RLE counts sum to {shown}, not {height}x{width} = {height * width} pixels")
    counts = np.asarray(counts, dtype=np.int64)
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T


def polygon_mask(polygons, height: int, width: int) -> np.ndarray:
    """(height, width) bool mask of COCO polygons ([[x0, y0, x1, y1, ...], ...]), filled with cv2.fillPoly
    (vertices rounded to pixels; boundary pixels included)."""
    mask = np.zeros((height, width), np.uint8)
    shapes = []
    for poly in polygons:
        try:
            xy = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # strings, nulls, nested lists, huge integers
            raise ObjectsError("a polygon must be a list of numbers") from None
        if xy.ndim != 1 or len(xy) < 6 or len(xy) % 2:
            raise ObjectsError("a polygon must be a flat list of at least three x, y pairs")
        if not np.isfinite(xy).all():
            raise ObjectsError("a polygon has a vertex that is not a finite number")
        # Far-off vertices clipped (an edge keeps its direction near the image): int32 without overflow.
        bound = 4 * max(height, width) + 4
        shapes.append(np.rint(np.clip(xy, -bound, bound).reshape(-1, 2)).astype(np.int32))
    cv2.fillPoly(mask, shapes, 1)
    return mask.astype(bool)


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """(height, width) bool mask of a COCO ``segmentation`` (polygons, or RLE compressed or not)."""
    if isinstance(segmentation, list):
        return polygon_mask(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size", [height, width])
        if not isinstance(size, list) or size != [height, width]:
            raise ObjectsError(f"an RLE of size {str(size)[:40]} on an image of {height}x{width}")
        counts = segmentation["counts"]
        if isinstance(counts, str):
            counts = rle_counts_from_string(counts)
        return rle_decode(counts, height, width)
    raise ObjectsError(f"a segmentation is neither polygons nor RLE ({type(segmentation).__name__})")


# --- the annotations file ---------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """One usable object: its annotation id, its photo (relative path, height, width) and segmentation."""

    id: int
    file_name: str
    height: int
    width: int
    segmentation: object


def read_instances(path: Path, images: Path, min_area: int) -> list[Instance]:
    """The usable instances of a COCO instances file, in annotation-id order: not crowds, with a
    segmentation, of ``area`` >= ``min_area``, on an image listed in ``images`` whose file exists.

    Raises :class:`ObjectsError` (one line) for a file that is unreadable, not JSON, not COCO
    instances, or that leaves no usable instance.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ObjectsError(f"{path}: cannot read the annotations ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ObjectsError(f"{path}: not a JSON file ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ObjectsError(f"{path}: not COCO instance annotations (no 'images' and 'annotations' lists)")
    try:
        photos = {int(im["id"]): (str(im["file_name"]), int(im["height"]), int(im["width"])) for im in data["images"]}
        found = []
        for ann in data["annotations"]:
            if ann.get("iscrowd") or "segmentation" not in ann or float(ann.get("area", 0)) < min_area:
                continue
            photo = photos.get(int(ann["image_id"]))
            if photo is not None:
                found.append(Instance(int(ann["id"]), photo[0], photo[1], photo[2], ann["segmentation"]))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # AttributeError: not an object
        raise ObjectsError(f"{path}: a malformed image or annotation entry ({type(exc).__name__}: "
                           f"{str(exc)[:200]})") from None
    exists: dict[str, bool] = {}
    usable = [inst for inst in sorted(found, key=lambda a: a.id)
              if exists.setdefault(inst.file_name, (Path(images) / inst.file_name).is_file())]
    if not usable:
        raise ObjectsError(f"{path}: no usable instance (not a crowd, area >= {min_area}, its photo under {images})")
    return usable


_INSTANCES = FileCache(size=2)
_PHOTOS = FileCache(size=8)  # an instance's photo is often drawn again


def instances(spec: ObjectSpec, src: Path) -> list[Instance]:
    """:func:`read_instances` of ``spec``, read once per process (while the file is unchanged)."""
    images = Path(spec.images or src)
    return _INSTANCES.get(spec.annotations, lambda: read_instances(spec.annotations, images, spec.min_area),
                          str(images.resolve()), spec.min_area)


def cached_photo(path: Path, load) -> np.ndarray:
    """``load(path)``, keeping the last 8 photos read (while each file is unchanged)."""
    return _PHOTOS.get(path, lambda: load(path))


def cut_out(photo: np.ndarray, mask: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The object's box of ``photo`` (uint8) and ``mask`` (bool), resized by ``scale`` (area averaging):
    colours (h, w, 3) uint8 and alpha (h, w) float32 in [0, 1] (soft at the edges once shrunk)."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    colours, alpha = photo[y0:y1, x0:x1], mask[y0:y1, x0:x1].astype(np.float32)
    if scale != 1:
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        colours = cv2.resize(colours, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    return colours, np.clip(alpha, 0.0, 1.0)


# --- the layered blur -------------------------------------------------------------


def splat(points: np.ndarray, size: int, total: int) -> np.ndarray:
    """Bilinear splat of trajectory samples (n,) complex (x + iy, px, on the grid's frame: 0 at pixel
    (size//2, size//2)) on a ``size``×``size`` grid, each of weight 1/``total``: (size, size) float64.
    Samples are clamped to the grid."""
    c = centre(size)
    x = np.clip(points.real + c, 0, size - 1 - 1e-9)
    y = np.clip(points.imag + c, 0, size - 1 - 1e-9)
    ix, iy = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - ix, y - iy
    grid = np.zeros((size + 1) * (size + 1))
    idx = iy * (size + 1) + ix
    for d, w in ((0, (1 - fx) * (1 - fy)), (1, fx * (1 - fy)), (size + 1, (1 - fx) * fy), (size + 2, fx * fy)):
        np.add.at(grid, idx + d, w)
    return grid.reshape(size + 1, size + 1)[:size, :size] / total


def shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` (h, w[, c]) float32 moved by (dx, dy) px, bilinear, zeros coming in."""
    if dx == 0 and dy == 0:
        return image
    h, w = image.shape[:2]
    M = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    out = cv2.warpAffine(image, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(image.shape)


def layered_blur(background: np.ndarray, colours: np.ndarray, alpha: np.ndarray, parts: list[np.ndarray],
                 offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ_j k_j ∗ [B·(1 − S_oj M) + S_oj(M·F)] and the blurred alpha Σ_j k_j ∗ S_oj M.

    background, colours : (H + k - 1, W + k - 1, 3) float32 — B, and F placed on the same window
        (the output plus the PSFs' margins, as ``blur.convolve_valid`` takes).
    alpha : (H + k - 1, W + k - 1) float32 in [0, 1] — M, zero off the object.
    parts : the camera's partial PSFs k_j, (k, k) each, summing to the camera's kernel.
    offsets : (len(parts),) complex — the object's own offset o_j = dx + i dy (px) in each part.

    Returns (H, W, 3) float32 and (H, W) float32.

    Computed as ``(Σ_j k_j) ∗ B + Σ_j k_j ∗ D_j`` with ``D_j = S_oj(M·F) − B · S_oj M`` (the
    same sum, by linearity): the whole window is convolved once, and each part only on the
    object's box widened by its motion, where ``D_j`` is not zero.
    """
    k = parts[0].shape[0]
    h, w = background.shape[0] - (k - 1), background.shape[1] - (k - 1)
    out = blur.convolve_valid(background, sum(parts).astype(np.float32))
    blurred_alpha = np.zeros((h, w), np.float32)
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return out, blurred_alpha
    reach = int(np.ceil(np.abs(offsets.real).max() if len(offsets) else 0)), \
        int(np.ceil(np.abs(offsets.imag).max() if len(offsets) else 0))
    y0, y1 = max(0, rows[0] - reach[1] - 1), min(alpha.shape[0], rows[-1] + reach[1] + 2)
    x0, x1 = max(0, cols[0] - reach[0] - 1), min(alpha.shape[1], cols[-1] + reach[0] + 2)
    layer = np.concatenate([colours[y0:y1, x0:x1] * alpha[y0:y1, x0:x1, None], alpha[y0:y1, x0:x1, None]], axis=2)
    back = background[y0:y1, x0:x1]
    # D_j on the box, padded by k - 1 on each side: its valid convolution is its full one,
    # covering output rows y0 - (k - 1) ... y1 - 1 (and the same for columns).
    padded = np.zeros((y1 - y0 + 2 * (k - 1), x1 - x0 + 2 * (k - 1), 4), np.float32)
    acc = None
    for part, o in zip(parts, offsets):
        moved = shift(layer, float(o.real), float(o.imag))
        padded[k - 1 : k - 1 + y1 - y0, k - 1 : k - 1 + x1 - x0, :3] = moved[..., :3] - back * moved[..., 3:]
        padded[k - 1 : k - 1 + y1 - y0, k - 1 : k - 1 + x1 - x0, 3] = moved[..., 3]
        term = blur.convolve_valid(padded, part.astype(np.float32))
        acc = term if acc is None else acc + term
    oy, ox = y0 - (k - 1), x0 - (k - 1)  # output pixel of acc[0, 0]
    a0, b0 = max(0, -oy), max(0, -ox)
    a1, b1 = min(acc.shape[0], h - oy), min(acc.shape[1], w - ox)
    out[oy + a0 : oy + a1, ox + b0 : ox + b1] += acc[a0:a1, b0:b1, :3]
    blurred_alpha[oy + a0 : oy + a1, ox + b0 : ox + b1] = acc[a0:a1, b0:b1, 3]
    return out, blurred_alpha


def object_kernel(camera: np.ndarray, own: np.ndarray, size: int) -> np.ndarray:
    """The PSF of the object's whole motion on the sensor, camera plus own: (size, size) float32.

    camera, own : (n,) complex — the exposed samples, each on the grid's frame (camera centred
    as its kernel, own centred on 0).
    """
    return splat(camera + own, size, len(camera)).astype(np.float32)


def partial_psfs(camera: np.ndarray, own: np.ndarray, size: int, segments: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Split the exposure into ``segments`` consecutive parts: the camera's partial PSFs (summing
    to its kernel) and the object's mean own offset in each part (complex)."""
    bounds = np.linspace(0, len(camera), min(segments, len(camera)) + 1).round().astype(int)
    parts, offsets = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        parts.append(splat(camera[a:b], size, len(camera)))
        offsets.append(own[a:b].mean())
    return parts, np.array(offsets)


def object_scale(height: int, width: int, side: int, max_side: float, downscale: float) -> float:
    """The factor an object's box (height x width px in its photo) is resized by: the run's
    ``--downscale``, then shrunk if needed so that its longer side is at most ``max_side`` of ``side``."""
    longest = max(height, width) * downscale
    return downscale * min(1.0, max_side * side / longest) if longest > 0 else downscale


def place(rng: np.random.Generator, box: tuple[int, int], window: tuple[int, int]) -> tuple[int, int]:
    """Top-left (y, x) of an object box (h, w) drawn so that it lies inside a window (H, W)."""
    h, w = box
    H, W = window
    return int(rng.integers(0, max(0, H - h) + 1)), int(rng.integers(0, max(0, W - w) + 1))


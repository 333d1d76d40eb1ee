"""Source photos: finding them, and decoding them robustly to 8-bit RGB.

A folder of photos scraped from the web (MS COCO is one) holds odd files:
grayscale, RGBA, 16-bit, CMYK and palette images, rotated phone shots that
carry only an EXIF orientation, truncated downloads, zero-byte and non-image
files, and now and then a decompression bomb.  :func:`load_rgb` turns every
usable one into an (H, W, 3) uint8 RGB array as it is meant to be seen, and
every other one into a :class:`SkipImage` with a short reason; it never lets
a bad file stop a run.

This module is the one image reader of both packages: ``synthesize``,
``import-pairs``, video frame folders, ``trainer deblur``, ``trainer eval
--pairs`` / RealBlur and the GoPro reader (training and validation) all decode
through :func:`load_rgb` (or :func:`load_rgb_as`, which raises a caller's own
error class), read sizes through :func:`image_size`, and match image files
by :data:`EXTENSIONS`, so the same file gives the same pixels everywhere.
Pillow decodes, except for the commonest file of all, an 8-bit RGB PNG with
nothing that could turn it (GoPro's frames, the training stream's hot path):
OpenCV decodes those about 13 % faster (``bench/readers.py``) to the same
pixels, so :func:`load_rgb` takes that fast path, and Pillow's for any other.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The image files of every folder either package reads (matched case-insensitively).
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Video files (``blurgen synthesize --mode video``, ``trainer deblur``), read
#: through OpenCV's FFmpeg back end (any case).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".mts")

#: Default cap on pixels per image: 12,000 x 12,000 is far beyond any photo
#: data set and still decodes in a few hundred MB.
MAX_PIXELS = 144_000_000


class SkipImage(Exception):
    """A source file that cannot be used; ``reason`` is a short machine-friendly tag."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


#: Readable words for :class:`SkipImage`'s reasons (:func:`describe_skip`).
SKIP_WORDS = {"empty": "an empty file", "not-an-image": "not an image", "corrupt": "a damaged image",
              "unreadable": "cannot be read",
              "too-large": "its header claims more pixels than this reader decodes (a decompression bomb, "
                           "or a damaged header)"}


def describe_skip(path: str | os.PathLike, exc: SkipImage) -> str:
    """One line naming ``path`` and why it cannot be used, e.g. ``"a.png: a damaged image (...)"``."""
    words = SKIP_WORDS.get(exc.reason, exc.reason)
    return f"{path}: {words}" + (f" ({exc.detail})" if exc.detail else "")


def name_bytes(name: str) -> bytes:
    """A file name as the bytes it has on disk: UTF-8, and the bytes that are not
    UTF-8 back from the surrogate escapes Python's ``os`` functions read them as
    (``surrogateescape``).  For digests of names: valid names encode as before."""
    return name.encode("utf-8", "surrogateescape")


def check_name(name: str) -> None:
    """Raise SkipImage("bad-name") for a file name holding bytes that are not UTF-8
    (a Latin-1 name copied from an old system): the shards store names as UTF-8
    text, which cannot hold it; the skip report gives it byte for byte."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SkipImage("bad-name", "the file name is not valid UTF-8; rename the file (e.g. with convmv)") from None


def find_images(src: str | os.PathLike) -> list[str]:
    """Image files under ``src``, recursively, as sorted POSIX paths relative to ``src``.

    Sorted by relative path so that every machine and every run sees the same
    order.  Matching is by extension, case-insensitive.  Hidden files and
    folders (starting with '.') are ignored.
    """
    src = Path(src)
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(EXTENSIONS):
                found.append((Path(root) / name).relative_to(src).as_posix())
    return sorted(found)


def load_rgb(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB, upright.

    * EXIF orientation is applied (phone photos are often stored sideways);
    * grayscale, palette, CMYK, YCbCr and LAB become RGB; the alpha channel of
      RGBA / LA images is dropped (composited over nothing), as photo data sets do;
    * 16- and 32-bit integer images are rescaled to 8 bits (rounded), float
      images are taken as [0, 1].

    Raises
    ------
    SkipImage
        ``empty`` (zero bytes), ``not-an-image``, ``too-large`` (more than
        ``max_pixels``: a decompression bomb guard, checked from the header
        before decoding), ``corrupt`` (truncated or damaged data).
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() == ".png":
        with open(path, "rb") as handle:
            header = handle.read(_PNG_HEADER)
            if _plain_png_size(header, max_pixels) is not None:
                data = header + handle.read()
                fast = _decode_plain_png(data, max_pixels)
                return fast if fast is not None else decode_rgb(io.BytesIO(data), max_pixels)
    return decode_rgb(path, max_pixels)


# --- the fast path: plain 8-bit RGB PNGs through OpenCV --------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_HEADER = 33  # signature, then the IHDR chunk: length, type, 13 bytes, CRC
#: Chunks after which OpenCV's and Pillow's pixels of an 8-bit RGB PNG agree (neither
#: applies gamma, chromaticities, ICC profiles or significant bits; tested in
#: tests/test_readers.py).  Any other chunk (tRNS, eXIf, ...) takes Pillow's path.
_PLAIN_CHUNKS = {b"IHDR", b"IDAT", b"IEND", b"pHYs", b"tIME", b"sRGB", b"gAMA", b"cHRM", b"iCCP",
                 b"sBIT", b"bKGD", b"tEXt", b"zTXt", b"iTXt"}
#: Text chunks by these keywords carry EXIF or XMP metadata, which Pillow reads an orientation from.
_METADATA_KEYWORDS = (b"Raw profile type exif", b"Raw profile type APP1", b"XML:com.adobe.xmp")


def _plain_png_size(header: bytes, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) if ``header`` starts an 8-bit RGB PNG (colour type 2) within
    ``max_pixels``; None for anything else (Pillow's path decides)."""
    if len(header) < _PNG_HEADER or not header.startswith(_PNG_SIGNATURE) or header[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack_from(">IIBB", header, 16)
    if depth != 8 or colour != 2 or not 0 < width * height <= max_pixels:
        return None
    return width, height


def _decode_plain_png(data: bytes, max_pixels: int) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB of a plain 8-bit RGB PNG by OpenCV, or None where Pillow must
    decide: another chunk than :data:`_PLAIN_CHUNKS`, EXIF/XMP metadata, damage."""
    import cv2

    size = _plain_png_size(data, max_pixels)
    offset = len(_PNG_SIGNATURE)
    while size is not None and offset + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        if kind not in _PLAIN_CHUNKS:
            return None
        if kind in (b"tEXt", b"zTXt", b"iTXt") and data[offset + 8:offset + 8 + length].startswith(_METADATA_KEYWORDS):
            return None
        offset += 12 + length
        if kind == b"IEND":
            break
    else:
        return None  # no IEND: truncated
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape != (size[1], size[0], 3):
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _check_file(path: Path) -> None:
    """SkipImage ``unreadable`` (missing, no permission) or ``empty`` (zero bytes)."""
    try:
        if path.stat().st_size == 0:
            raise SkipImage("empty", "zero bytes")
    except OSError as exc:
        raise SkipImage("unreadable", exc.strerror or str(exc)) from None


def load_rgb_as(path: str | os.PathLike, error: type[Exception], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """:func:`load_rgb`, raising ``error`` (the caller's user-error class) with
    :func:`describe_skip`'s one line instead of :class:`SkipImage`."""
    try:
        return load_rgb(path, max_pixels)
    except SkipImage as exc:
        raise error(describe_skip(path, exc)) from None


def image_size(path, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) of the array :func:`load_rgb` returns for ``path`` (a path, or a
    binary file object: a zip member's stream), from the header alone (EXIF orientation applied: a sideways phone photo's sides swap).

    Raises :class:`SkipImage` as :func:`load_rgb` does for a file whose header
    is unreadable or too large; damage past the header shows only on decoding.
    A PNG's orientation is read only from an ``eXIf`` chunk before the pixels
    (looking past them would decode the image).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(path, (str, os.PathLike)):
        _check_file(Path(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                width, height = image.size
                no_exif = image.format == "PNG" and "exif" not in image.info
                orientation = 1 if no_exif else image.getexif().get(0x0112, 1)
        except UnidentifiedImageError:
            raise SkipImage("not-an-image", "no known image format") from None
        except Image.DecompressionBombError as exc:
            raise SkipImage("too-large", str(exc)) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise SkipImage("corrupt", str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if width * height > max_pixels:
        raise SkipImage("too-large", f"{width}x{height} pixels exceeds {max_pixels}")
    # Orientations 5-8 turn the picture by a quarter (ImageOps.exif_transpose).
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def decode_rgb(file, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """:func:`load_rgb` of an image path or a binary file object (a zip member's bytes)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    with warnings.catch_warnings():
        # Pillow warns from ~89 MP on; the limit here is max_pixels, checked
        # below from the header before anything is decoded.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(file)
        except UnidentifiedImageError:
            raise SkipImage("not-an-image", "no known image format") from None
        except Image.DecompressionBombError as exc:
            raise SkipImage("too-large", str(exc)) from None
        except OSError as exc:
            raise SkipImage("corrupt", str(exc)) from None
        with image:
            w, h = image.size
            if w * h > max_pixels:
                raise SkipImage("too-large", f"{w}x{h} pixels exceeds {max_pixels}")
            try:
                image.load()
                # In place: a copy of every upright photo would cost a third of its decoding.
                ImageOps.exif_transpose(image, in_place=True)
                return _to_rgb8(image)
            except Image.DecompressionBombError as exc:
                raise SkipImage("too-large", str(exc)) from None
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise SkipImage("corrupt", str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _to_rgb8(image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        # 16/32-bit integer or float single-channel: scale to 8 bits ourselves,
        # PIL's convert("L") would clip instead of rescale.
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":
            scale = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        elif mode.startswith("I;16") or values.max(initial=0) <= 65535:
            scale = 65535.0
        else:
            scale = 4294967295.0
        grey = np.rint(np.clip(values / scale, 0, 1) * 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


# --- paired folders -------------------------------------------------------------


def folder_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` (not recursive), sorted by name;
    matched by extension (``EXTENSIONS``, any case), hidden files ignored."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(EXTENSIONS))


@dataclass(frozen=True)
class StemMatch:
    """Two lists of images paired by file stem (``a.png`` with ``a.jpg``).

    pairs : (stem, blurred path, sharp path), sorted by stem.
    duplicates : (role, path, the earlier path of the same stem) -- a stem that
        appears twice on one side (``a.png`` and ``a.jpg``) pairs with nothing.
    no_sharp, no_blurred : stems present on one side only, sorted.
    """

    pairs: list
    duplicates: list
    no_sharp: list
    no_blurred: list


def match_by_stem(blurred: list[Path], sharp: list[Path]) -> StemMatch:
    """Pair blurred and sharp images by file stem (as ``trainer eval --pairs``
    and ``blurgen import-pairs`` do)."""
    sides, duplicates = {}, []
    for role, paths in (("blurred", blurred), ("sharp", sharp)):
        by_stem, doubled = {}, set()
        for path in paths:
            if path.stem in by_stem:
                duplicates.append((role, path, by_stem[path.stem]))
                doubled.add(path.stem)
            else:
                by_stem[path.stem] = path
        sides[role] = {stem: p for stem, p in by_stem.items() if stem not in doubled}
    b, s = sides["blurred"], sides["sharp"]
    return StemMatch(pairs=[(stem, b[stem], s[stem]) for stem in sorted(b.keys() & s.keys())],
                     duplicates=duplicates, no_sharp=sorted(b.keys() - s.keys()),
                     no_blurred=sorted(s.keys() - b.keys()))


# --- where photos come from: a folder, or a zip read in place ----------------------


class PhotoSource:
    """A source of named photos for ``synthesize``: :meth:`names` lists them (sorted
    POSIX names, the plan's order), :meth:`size` gives a photo's size in bytes
    (for the digest that guards a resume), :meth:`load` decodes one as
    :func:`load_rgb` does (raising :class:`SkipImage`).  Picklable, holding no
    open file across processes."""

    def names(self) -> list[str]:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def load(self, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        raise NotImplementedError

    def image_size(self, name: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
        """(height, width) of photo ``name`` from its header alone (:func:`image_size`)."""
        raise NotImplementedError


class FolderSource(PhotoSource):
    """The images under a folder, recursively (:func:`find_images`)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def names(self) -> list[str]:
        return find_images(self.root)

    def size(self, name: str) -> int:
        try:
            return (self.root / name).stat().st_size
        except OSError:
            return -1

    def load(self, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        check_name(name)
        return load_rgb(self.root / name, max_pixels)

    def image_size(self, name: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
        return image_size(self.root / name, max_pixels)


class ZipSource(PhotoSource):
    """The images in a zip file (MS COCO's ``train2017.zip``), read in place.

    Members are chosen as :func:`find_images` chooses files (extension, any
    case; no hidden file or folder, so macOS's ``__MACOSX/._*`` are passed
    over).  Names are the members' paths relative to the zip's single
    top-level folder when every image lies under one (``train2017/`` in
    COCO's zip), else to its root: the names :func:`find_images` gives for the
    folder the zip unpacks to, so a folder and its zip plan the same samples
    and give the same pixels.  Each process opens the zip once, on first use.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._zip = None
        self._members = None  # name -> ZipInfo

    def __getstate__(self):
        return {"path": self.path, "_zip": None, "_members": None}

    def _index(self) -> dict:
        if self._members is None:
            self._zip = zipfile.ZipFile(self.path)
            chosen = {}
            for info in self._zip.infolist():
                parts = info.filename.split("/")
                if info.is_dir() or any(p.startswith(".") for p in parts) or "" in parts or ".." in parts \
                        or not info.filename.lower().endswith(EXTENSIONS):
                    continue
                chosen[info.filename] = info
            tops = {name.split("/")[0] for name in chosen}
            strip = len(tops) == 1 and all("/" in name for name in chosen)
            self._members = {(name.split("/", 1)[1] if strip else name): info for name, info in chosen.items()}
        return self._members

    def names(self) -> list[str]:
        return sorted(self._index())

    def size(self, name: str) -> int:
        return self._index()[name].file_size

    def load(self, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        info = self._index()[name]
        if info.flag_bits & 0x1:
            raise SkipImage("unreadable", "encrypted zip member")
        if info.file_size == 0:
            raise SkipImage("empty", "zero bytes")
        # No photo of max_pixels takes more than 4 bytes a pixel, even as an
        # uncompressed TIFF: a larger member would only fill the memory.
        if info.file_size > 4 * max_pixels + (1 << 20):
            raise SkipImage("too-large", f"a zip member of {info.file_size:,} bytes")
        try:
            data = self._read_member(info)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a CRC or deflate error: damaged bytes
            raise SkipImage("corrupt", f"zip member: {exc}") from None
        except NotImplementedError as exc:  # a compression method zipfile does not read
            raise SkipImage("unreadable", str(exc)) from None
        fast = _decode_plain_png(data, max_pixels)
        return fast if fast is not None else decode_rgb(io.BytesIO(data), max_pixels)

    def _read_member(self, info: zipfile.ZipInfo, piece: int = 1 << 20) -> bytes:
        """The bytes of a member, decompressed ``piece`` bytes at a time.  ``ZipFile.read``
        asks zlib for up to 2 GB at once and only then cuts the result to the header's
        size: a deflate stream much longer than its header says (a lying header, a zip
        bomb) took 2.2 GB.  In pieces, no more than the header's size plus one piece is
        held; the CRC check at the end then refuses the member."""
        parts = []
        with self._zip.open(info) as member:
            while data := member.read(piece):
                parts.append(data)
        return b"".join(parts)

    def image_size(self, name: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
        """From the member's first bytes: the stream is read only as far as the header."""
        self._index()
        try:
            with self._zip.open(self._members[name]) as member:
                return image_size(member, max_pixels)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            raise SkipImage("corrupt", f"zip member: {exc}") from None


def open_source(src: str | os.PathLike) -> PhotoSource | None:
    """A folder -> :class:`FolderSource`; a zip file -> :class:`ZipSource`; anything else -> None."""
    src = Path(src)
    if src.is_dir():
        return FolderSource(src)
    if src.is_file() and zipfile.is_zipfile(src):
        return ZipSource(src)
    return None

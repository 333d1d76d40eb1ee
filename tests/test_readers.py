"""One image reader for every command (issue 13): the same file gives the same
pixels through synthesize's, import-pairs', video frames', trainer deblur's,
the GoPro reader's and trainer eval --pairs' / RealBlur's reading paths, and
header sizes agree with decoded sizes.  Before, ``trainer deblur`` read an
EXIF-rotated JPEG sideways and a 16-bit grey value of 40000 as 255."""
import io
import shutil
import struct
import zipfile
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from blurgen import sources
from blurgen.runs.video import find_clips, read_clip_frames
from blurgen.sources import EXTENSIONS, FolderSource, SkipImage, ZipSource, image_size, load_rgb
from trainer.benchmarks import BenchmarkError, folder_pairs, read_image
from trainer.evaluate import UnreadableInput, find_deblur_inputs, read_input_image
from trainer.gopro import GoProError, read_frame, read_gopro_pair, scan_gopro

RGB = np.random.default_rng(3).integers(0, 256, (20, 40, 3), dtype=np.uint8)


def _rotated_jpeg(path):
    """RGB stored 20x40 with EXIF orientation 6 (turn 90 degrees clockwise to view): 40x20 upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(RGB).save(path, exif=exif, quality=95)


def _rotated_png(path):
    """An 8-bit RGB PNG (the fast path's kind) whose eXIf chunk says: turn 90 degrees clockwise."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(RGB).save(path, exif=exif)


def _deep_grey_png(path):
    """16-bit grey PNG, every value 40000 except a ramp in the first row."""
    grey = np.full((20, 40), 40000, np.uint16)
    grey[0] = np.linspace(0, 65535, 40).astype(np.uint16)
    assert cv2.imwrite(str(path), grey)


def _grey_png(path):
    Image.fromarray(RGB[..., 1]).save(path)


def _rgba_png(path):
    Image.fromarray(np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])).save(path)


def _expected(kind, path):
    """What the picture is meant to look like, computed without blurgen.sources."""
    if kind in ("rotated.jpg", "rotated.png"):
        with Image.open(path) as im:  # the stored pixels, not turned
            stored = np.asarray(im.convert("RGB"))
        assert stored.shape == (20, 40, 3)
        return np.ascontiguousarray(np.rot90(stored, k=-1))  # clockwise
    if kind == "deep.png":
        grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert grey.dtype == np.uint16 and grey[5, 5] == 40000
        scaled = np.rint(grey / 65535 * 255).astype(np.uint8)
        return np.repeat(scaled[..., None], 3, axis=2)
    if kind == "grey.png":
        return np.repeat(RGB[..., 1:2], 3, axis=2)
    return RGB  # rgba.png: alpha dropped


MAKERS = {"rotated.jpg": _rotated_jpeg, "rotated.png": _rotated_png, "deep.png": _deep_grey_png, "grey.png": _grey_png, "rgba.png": _rgba_png}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_every_command_reads_the_same_pixels(tmp_path, kind):
    original = tmp_path / kind
    MAKERS[kind](original)
    expected = _expected(kind, original)
    if kind == "deep.png":
        assert expected[5, 5, 0] == 156   # 40000 / 65535 * 255 = 155.6, not 255 (clipped)
        # The ramp tells rescaling from keeping the high byte (cv2.imread): 1680 -> 7, not 6.
        assert expected[0, -1, 0] == 255 and expected[0, 0, 0] == 0
    reads = {}

    reads["load_rgb"] = load_rgb(original)
    # blurgen synthesize: a folder and a zip of it
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(original, photos / kind)
    reads["synthesize folder"] = FolderSource(photos).load(kind)
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        archive.write(original, f"train2017/{kind}")
    reads["synthesize zip"] = ZipSource(tmp_path / "photos.zip").load(kind)
    # trainer deblur
    [(found, _)] = find_deblur_inputs([photos])
    reads["deblur"] = read_input_image(found)
    # trainer fit / eval --gopro: the GOPRO_Large layout
    gopro = tmp_path / "GOPRO_Large"
    for folder in ("blur", "sharp"):
        (gopro / "train" / "SEQ_00" / folder).mkdir(parents=True)
        shutil.copy(original, gopro / "train" / "SEQ_00" / folder / kind)
    [pair] = scan_gopro(gopro, "train")
    assert pair.size == expected.shape[:2]   # header size, orientation applied
    reads["gopro blurred"], reads["gopro sharp"] = read_gopro_pair(pair)
    # trainer eval --pairs
    for folder in ("b", "s"):
        (tmp_path / folder).mkdir()
        shutil.copy(original, tmp_path / folder / kind)
    [(_, reads["eval --pairs blurred"], reads["eval --pairs sharp"])] = list(folder_pairs(tmp_path / "b", tmp_path / "s"))
    reads["realblur"] = read_image(original)
    # blurgen synthesize --mode video: a folder of frames
    frames = tmp_path / "clips" / "clip0"
    frames.mkdir(parents=True)
    shutil.copy(original, frames / f"000001{original.suffix}")
    [clip] = find_clips(tmp_path / "clips")
    [(_, reads["video frame"])] = list(read_clip_frames(tmp_path / "clips", clip, {0}))

    assert image_size(original) == expected.shape[:2]
    for path_name, image in reads.items():
        assert image.dtype == np.uint8 and image.shape == expected.shape, path_name
        np.testing.assert_array_equal(image, expected, err_msg=path_name)


def test_gopro_halves_the_frame_the_reader_decoded(tmp_path):
    """The GoPro path resizes what load_rgb decoded: a 16-bit frame is rescaled first."""
    _deep_grey_png(tmp_path / "deep.png")
    half = read_frame(tmp_path / "deep.png", 0.5)
    reference = cv2.resize(load_rgb(tmp_path / "deep.png"), (20, 10), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(half, reference)
    assert half[5, 5, 0] == 156


def test_one_suffix_list_everywhere(tmp_path):
    """Every image suffix is found by every folder reader, in any case (one lacked .jpeg and .tiff)."""
    assert {".jpeg", ".tiff", ".tif", ".webp", ".bmp"} <= set(EXTENSIONS)
    src = tmp_path / "src"
    src.mkdir()
    for i, ext in enumerate(EXTENSIONS):
        name = f"f{i}{ext.upper() if i % 2 else ext}"
        Image.fromarray(RGB).save(src / name, format={".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF",
                                                      ".tiff": "TIFF"}.get(ext, ext[1:].upper()))
    (src / "notes.txt").write_text("not an image")
    names = sources.find_images(src)
    assert len(names) == len(EXTENSIONS)
    assert [p.name for p in sources.folder_images(src)] == names
    assert [rel.name for _, rel in find_deblur_inputs([src])] == [n.rsplit(".", 1)[0] for n in names]
    [clip] = find_clips(src)
    assert sorted(clip.frames) == sorted(names)


@pytest.mark.parametrize("reader, error", [(read_input_image, UnreadableInput), (read_image, BenchmarkError),
                                           (read_frame, GoProError)])
def test_unreadable_files_raise_the_callers_error_in_one_line(tmp_path, reader, error):
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    for name, words in (("text.png", "not an image"), ("empty.png", "an empty file")):
        with pytest.raises(error, match=words) as info:
            reader(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name)) and "\n" not in str(info.value)
    with pytest.raises(SkipImage) as info:
        image_size(tmp_path / "text.png")
    assert info.value.reason == "not-an-image"


# --- the fast path for plain 8-bit RGB PNGs (OpenCV) and where Pillow takes over ----------


def _chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_bytes(image, extra=b""):
    """PNG of ``image`` by Pillow, with the chunks ``extra`` inserted right after IHDR."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[:33] + extra + data[33:]


def _pillow_only(data):
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def test_plain_rgb_pngs_take_the_fast_path_to_pillows_pixels(tmp_path, monkeypatch):
    image = np.random.default_rng(4).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    plain = {"plain": b"", "gamma": _chunk(b"gAMA", struct.pack(">I", 100000)), "srgb": _chunk(b"sRGB", b"\0"),
             "text": _chunk(b"tEXt", b"Software\0a camera"), "phys": _chunk(b"pHYs", bytes(9))}
    for name, extra in plain.items():
        (tmp_path / f"{name}.png").write_bytes(_png_bytes(image, extra))
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as archive:
        archive.write(tmp_path / "plain.png", "plain.png")

    def no_pillow(*args, **kwargs):
        raise AssertionError("Pillow's path taken")

    monkeypatch.setattr(sources, "decode_rgb", no_pillow)
    for name in plain:
        np.testing.assert_array_equal(load_rgb(tmp_path / f"{name}.png"), image, err_msg=name)
        np.testing.assert_array_equal(_pillow_only((tmp_path / f"{name}.png").read_bytes()), image)
    np.testing.assert_array_equal(ZipSource(tmp_path / "z.zip").load("plain.png"), image)


def test_other_pngs_take_pillows_path(tmp_path, monkeypatch):
    image = np.random.default_rng(5).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    xmp = b'XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
    others = {"trns": _png_bytes(image, _chunk(b"tRNS", bytes(6))), "xmp": _png_bytes(image, _chunk(b"iTXt", xmp)),
              "grey": _png_bytes(image[..., 0]), "rgba": _png_bytes(np.dstack([image, image[..., :1]]))}
    for name, data in others.items():
        (tmp_path / f"{name}.png").write_bytes(data)
    calls = []
    real = sources.decode_rgb
    monkeypatch.setattr(sources, "decode_rgb", lambda *a: calls.append(1) or real(*a))
    for name, data in others.items():
        np.testing.assert_array_equal(load_rgb(tmp_path / f"{name}.png"), sources.decode_rgb(io.BytesIO(data)),
                                      err_msg=name)
    assert len(calls) == 2 * len(others)
    assert load_rgb(tmp_path / "xmp.png").shape == (20, 12, 3)   # XMP orientation honoured (Pillow's reading)
    good = _png_bytes(image)
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(SkipImage) as info:
        load_rgb(tmp_path / "cut.png")
    assert info.value.reason == "corrupt"

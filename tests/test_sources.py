"""blurgen.sources: finding photos, and decoding odd and broken files (written here) to 8-bit RGB."""
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from blurgen.sources import SkipImage, find_images, load_rgb


def test_load_rgb_converts_odd_images_and_skips_broken_ones(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (60, 100, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((60, 100), 7, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray((rgb[..., 1].astype(np.uint16) * 257)).save(tmp_path / "deep.png")  # 16-bit
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "grey.png").shape == (60, 100, 3)
    np.testing.assert_array_equal(load_rgb(tmp_path / "grey.png")[..., 2], rgb[..., 0])
    np.testing.assert_array_equal(load_rgb(tmp_path / "rgba.png"), rgb)
    np.testing.assert_array_equal(load_rgb(tmp_path / "deep.png")[..., 0], rgb[..., 1])
    assert load_rgb(tmp_path / "palette.png").shape == (60, 100, 3)
    assert abs(load_rgb(tmp_path / "cmyk.jpg").astype(int) - rgb).mean() < 12
    assert load_rgb(tmp_path / "rotated.jpg").shape == (100, 60, 3)

    good = tmp_path / "cmyk.jpg"
    (tmp_path / "truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    reasons = {}
    for name in ("truncated.jpg", "empty.jpg", "text.jpg"):
        with pytest.raises(SkipImage) as info:
            load_rgb(tmp_path / name)
        reasons[name] = info.value.reason
    assert reasons == {"truncated.jpg": "corrupt", "empty.jpg": "empty", "text.jpg": "not-an-image"}
    with pytest.raises(SkipImage) as info:
        load_rgb(tmp_path / "grey.png", max_pixels=1000)
    assert info.value.reason == "too-large"


def test_find_images_is_sorted_recursive_and_case_insensitive(tmp_path):
    for rel in ("b/x.JPG", "a/z.png", "a/y.txt", ".hidden/q.jpg", "c.TIFF"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert find_images(tmp_path) == ["a/z.png", "b/x.JPG", "c.TIFF"]


def test_other_formats_and_deep_colour(tmp_path):
    rgb = np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for ext in (".bmp", ".tif", ".webp"):
        Image.fromarray(rgb).save(tmp_path / f"x{ext}", **({"lossless": True} if ext == ".webp" else {}))
        np.testing.assert_array_equal(load_rgb(tmp_path / f"x{ext}"), rgb)
    deep = rgb.astype(np.uint16) * 257  # 16 bits per channel, RGB
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    cv2.imwrite(str(tmp_path / "deep.tif"), deep[..., ::-1])
    np.testing.assert_array_equal(load_rgb(tmp_path / "deep.png"), rgb)
    np.testing.assert_array_equal(load_rgb(tmp_path / "deep.tif"), rgb)
    Image.fromarray(rgb[..., 0]).convert("LA").save(tmp_path / "grey-alpha.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "grey-alpha.png"), np.repeat(rgb[..., :1], 3, axis=2))


def test_a_decompression_bomb_is_skipped_from_its_header(tmp_path):
    # A PNG header claiming 30000 x 30000 RGB pixels (2.7 GB decoded) and no data.
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    for name, side in (("bomb.png", 30000), ("big.png", 9000)):
        header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    for name in ("bomb.png", "big.png"):  # above Pillow's own limit, and only above max_pixels
        with pytest.raises(SkipImage) as info:
            load_rgb(tmp_path / name, max_pixels=50_000_000)
        assert info.value.reason == "too-large", name

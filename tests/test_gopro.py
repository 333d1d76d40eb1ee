"""GoPro reader on a small GOPRO_Large-layout fixture (and broken variants),
and the sample builder data/make_gopro_sample.py."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.gopro import GoProError, read_frame, read_gopro_pair, scan_gopro

ROOT = Path(__file__).resolve().parents[1]


def _load_builder():
    spec = importlib.util.spec_from_file_location("make_gopro_sample", ROOT / "data" / "make_gopro_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])


def make_fixture(root, seqs=(("A_07_00", 3), ("B_09_00", 2)), size=(20, 28), splits=("train", "test")):
    """A tiny GOPRO_Large tree; pixel values encode (split, sequence, frame, folder)."""
    for si, split in enumerate(splits):
        for qi, (seq, n) in enumerate(seqs):
            for f in range(n):
                for fi, folder in enumerate(("blur", "blur_gamma", "sharp")):
                    rgb = np.full(size + (3,), (si * 60 + qi * 20 + f * 5 + fi) % 256, np.uint8)
                    rgb[..., 1] = 7 * fi  # distinguishes the folders, and R from G
                    _png(root / split / seq / folder / f"{f + 1:06d}.png", rgb)
    return root


@pytest.fixture
def gopro(tmp_path):
    return make_fixture(tmp_path / "GOPRO_Large")


def test_lists_sorted_pairs(gopro):
    pairs = [(p.blurred, p.sharp) for p in scan_gopro(gopro, "train")]
    assert [(b.parent.parent.name, b.name) for b, _ in pairs] == [
        ("A_07_00", "000001.png"), ("A_07_00", "000002.png"), ("A_07_00", "000003.png"),
        ("B_09_00", "000001.png"), ("B_09_00", "000002.png")]
    for b, s in pairs:
        assert b.parent.name == "blur" and s.parent.name == "sharp" and b.name == s.name
        assert b.parent.parent == s.parent.parent
    gamma = scan_gopro(gopro, "test", blur="blur_gamma")
    assert all(p.blurred.parent.name == "blur_gamma" and "test" in p.blurred.parts for p in gamma)
    scanned = scan_gopro(gopro, "train")
    assert scanned[0].size == (20, 28) and scanned[0].name == "A_07_00/000001.png"


def test_reads_rgb_pairs_and_scales_by_area(gopro):
    pair = scan_gopro(gopro, "train")[1]
    blurred, sharp = read_gopro_pair(pair)
    assert blurred.dtype == np.uint8 and blurred.shape == (20, 28, 3)
    assert blurred[0, 0, 1] == 0 and sharp[0, 0, 1] == 14  # G channel marks the folder: RGB order
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    _png(pair.sharp, image)
    half = read_frame(pair.sharp, 0.5)
    box_mean = image.astype(float).reshape(10, 2, 14, 2, 3).mean((1, 3))
    assert half.shape == (10, 14, 3)
    assert np.abs(half - box_mean).max() <= 0.5 + 1e-9  # 2x2 area average, rounded


def _expect(root, match, **kw):
    with pytest.raises(GoProError, match=match) as info:
        scan_gopro(root, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_root_split_and_empty_split(tmp_path, gopro):
    _expect(tmp_path / "nowhere", "GoPro folder not found")
    shutil.rmtree(gopro / "test")
    _expect(gopro, r"test: missing", split="test")
    (gopro / "test").mkdir()
    _expect(gopro, "no sequence folders", split="test")
    _expect(gopro, "unknown GoPro blur variant", blur="blurry")


def test_missing_folder_and_empty_folder(gopro):
    shutil.rmtree(gopro / "train" / "B_09_00" / "sharp")
    assert "B_09_00/sharp" in _expect(gopro, "missing folder")
    for p in (gopro / "train" / "A_07_00" / "blur").iterdir():
        p.unlink()
    assert "A_07_00/blur" in _expect(gopro, "no frames")


def test_frame_missing_on_either_side(gopro):
    (gopro / "train" / "B_09_00" / "sharp" / "000002.png").unlink()
    msg = _expect(gopro, "no sharp frame")
    assert "B_09_00/blur/000002.png" in msg
    # blur_gamma/ is a separate folder; it only needs pairing with sharp/.
    (gopro / "train" / "B_09_00" / "blur_gamma" / "000002.png").unlink()
    assert len(scan_gopro(gopro, blur="blur_gamma")) == 4
    (gopro / "test" / "A_07_00" / "blur" / "000003.png").unlink()
    assert "A_07_00/sharp/000003.png" in _expect(gopro, "no blurred frame", split="test")


def test_size_mismatch_and_unreadable_frame(gopro):
    _png(gopro / "train" / "A_07_00" / "sharp" / "000002.png", np.zeros((20, 30, 3), np.uint8))
    msg = _expect(gopro, "size 28x20 differs")
    assert "A_07_00/blur/000002.png" in msg and "30x20" in msg
    (gopro / "test" / "B_09_00" / "blur" / "000001.png").write_bytes(b"not a png")
    assert "B_09_00/blur/000001.png" in _expect(gopro, "not a readable image", split="test")


def test_truncated_frame_fails_on_read(gopro):
    pair = scan_gopro(gopro, "train")[0]
    data = pair.blurred.read_bytes()
    pair.blurred.write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    with pytest.raises(GoProError, match="000001.png"):
        read_gopro_pair(pair)


# --- data/make_gopro_sample.py ----------------------------------------------------


def test_average_frames_linear_and_gamma():
    builder = _load_builder()
    frames = np.stack([np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)])
    blur, blur_gamma = builder.average_frames(frames)
    assert np.all(blur == 128)  # mean of the 8-bit values: 127.5 rounded
    assert np.all(blur_gamma == round(255 * 0.5 ** (1 / 2.2)))  # 186: mean in linear light
    same = np.full((5, 2, 2, 3), 77, np.uint8)
    assert all(np.all(v == 77) for v in builder.average_frames(same))


def test_sample_builder_layout_determinism_and_blur(tmp_path):
    builder = _load_builder()
    kw = dict(size=(64, 80), train_sequences=2, test_sequences=1, frames=2)
    counts = builder.build_sample(tmp_path / "a", seed=3, **kw)
    builder.build_sample(tmp_path / "b", seed=3, **kw)
    builder.build_sample(tmp_path / "c", seed=4, **kw)
    assert counts == {"train": 4, "test": 2}
    pairs = scan_gopro(tmp_path / "a", "train")
    assert len(pairs) == 4 and all(p.size == (64, 80) for p in pairs)
    assert len(scan_gopro(tmp_path / "a", "test", blur="blur_gamma")) == 2
    tree = lambda d: {p.relative_to(d): p.read_bytes() for p in d.rglob("*.png")}  # noqa: E731
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert tree(tmp_path / "a") != tree(tmp_path / "c")
    for pair in pairs:
        blurred, sharp = read_gopro_pair(pair)
        gamma, _ = read_gopro_pair(pair.__class__(pair.blurred.parents[1] / "blur_gamma" / pair.blurred.name,
                                                  pair.sharp, pair.size))
        # Motion blur removes detail: less gradient energy than the sharp frame.
        energy = lambda im: np.abs(np.diff(im.astype(float), axis=1)).mean()  # noqa: E731
        assert energy(blurred) < 0.9 * energy(sharp)
        # Averaging in linear light is never darker than averaging the values (Jensen).
        assert (gamma.astype(int) - blurred.astype(int)).min() >= -1
        assert gamma.mean() > blurred.mean()
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind


def test_sample_builder_cli(tmp_path):
    script = str(ROOT / "data" / "make_gopro_sample.py")
    out = tmp_path / "G"
    args = [sys.executable, script, "--out", str(out), "--size", "48x40",
            "--train-sequences", "1", "--test-sequences", "1", "--frames", "1"]
    ok = subprocess.run(args, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "wrote 1 train and 1 test pairs (48x40)" in ok.stdout
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 2
    assert again.stderr.strip() == f"error: {out} exists (use --overwrite to replace it)"
    bad = subprocess.run(args[:4] + ["--size", "big"], capture_output=True, text=True)
    assert bad.returncode == 2 and "bad size 'big'" in bad.stderr
    replaced = subprocess.run(args + ["--overwrite", "--seed", "1"], capture_output=True, text=True)
    assert replaced.returncode == 0 and len(scan_gopro(out, "train")) == 1

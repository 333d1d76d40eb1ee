"""`trainer deblur` on a real folder (issue 12.12): it goes on past unreadable files and
lists them at the end, recurses into sub-folders keeping their layout, --skip-existing,
--side-by-side, and reads images with synthesize's reader (EXIF orientation, 16 bits)."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cli
from blurgen.plumbing.pictures import LABEL_BAND
from blurgen.sources import load_rgb
from trainer import checkpoint
from trainer.config import TrainConfig, to_primitive
from trainer.models import Generator


@pytest.fixture(scope="module")
def identity_file(tmp_path_factory):
    """A generator that returns its input (the identity init): its outputs are the decoded inputs."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("identity") / "identity.pt"
    checkpoint.save(path, checkpoint.generator_state(step=1, generator=Generator(8, 1, init="identity"),
                                                     config=to_primitive(TrainConfig(ngf=8, n_blocks=1)),
                                                     scores={"psnr": 20.0}))
    return path


def picture(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def deblur(identity_file, out, *inputs_and_options):
    return CliRunner().invoke(cli.trainer, ["deblur", *map(str, inputs_and_options), "--checkpoint",
                                            str(identity_file), "--out", str(out), "--device", "cpu"])


@pytest.fixture
def photos(tmp_path):
    """A folder with two good images (one in a sub-folder, one in a hidden folder) and two bad files."""
    src = tmp_path / "photos"
    (src / "trip" / "day1").mkdir(parents=True)
    (src / ".thumbnails").mkdir()
    Image.fromarray(picture(20, 28, 0)).save(src / "a.png")
    Image.fromarray(picture(16, 24, 1)).save(src / "trip" / "day1" / "b.png")
    Image.fromarray(picture(16, 16, 2)).save(src / ".thumbnails" / "hidden.png")
    (src / "broken.jpg").write_bytes(b"<html>a web page saved as .jpg</html>")
    (src / "trip" / "empty.png").write_bytes(b"")
    return src


def test_deblur_goes_on_past_unreadable_files_and_recurses(tmp_path, photos, identity_file):
    """Issue 12.12: deblur stopped at the first unreadable file and did not search sub-folders."""
    out = tmp_path / "out"
    result = deblur(identity_file, out, photos)
    assert result.exit_code == 1, result.output
    assert "wrote 2 images to" in result.stdout
    errors = result.stderr.strip().splitlines()[-3:]
    assert errors[0] == f"could not read {photos / 'broken.jpg'}: not an image (no known image format)"
    assert errors[1] == f"could not read {photos / 'trip/empty.png'}: an empty file (zero bytes)"
    assert errors[2] == "error: 2 of 4 inputs could not be read (listed above)"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["a.png", "trip/day1/b.png"]
    assert np.array_equal(np.asarray(Image.open(out / "trip" / "day1" / "b.png")), picture(16, 24, 1))


def test_skip_existing_restores_only_the_missing_outputs(tmp_path, photos, identity_file):
    """Issue 12.12: a re-run after a partial one was refused because outputs existed."""
    out = tmp_path / "out"
    (photos / "broken.jpg").unlink()
    (photos / "trip" / "empty.png").unlink()
    out.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / "a.png")   # from an earlier run
    refused = deblur(identity_file, out, photos)
    assert refused.exit_code == 2 and "--skip-existing" in refused.stderr and refused.stderr.count("\n") == 1
    result = deblur(identity_file, out, photos, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert "wrote 1 image to" in result.stdout and "1 existing left as they were" in result.stdout
    assert np.asarray(Image.open(out / "a.png")).shape == (4, 4, 3)   # untouched
    assert (out / "trip" / "day1" / "b.png").exists()
    both = deblur(identity_file, out, photos, "--skip-existing", "--overwrite")
    assert both.exit_code == 2 and "give one" in both.stderr


def test_side_by_side_writes_blurred_then_restored(tmp_path, identity_file):
    src = tmp_path / "in.png"
    Image.fromarray(picture(20, 28, 3)).save(src)
    result = deblur(identity_file, tmp_path / "out", src, "--side-by-side")
    assert result.exit_code == 0, result.output
    both = np.asarray(Image.open(tmp_path / "out" / "in.png"))
    assert both.shape == (20 + LABEL_BAND, 2 * 28 + 4, 3)   # issue 22.15: labelled below
    assert np.array_equal(both[:20, :28], picture(20, 28, 3)) and np.array_equal(both[:20, 32:], picture(20, 28, 3))
    assert (both[:20, 28:32] == 255).all()
    band = both[20:, :28]
    assert (band == 32).mean() < 0.95 and (band > 128).any()   # letters in the caption band


def test_deblur_reads_images_as_synthesize_does(tmp_path, identity_file):
    """Issue 12.12 / 13: deblur decoded with its own reader: a phone photo stored sideways
    with an EXIF orientation came out sideways, a 16-bit PNG came out clipped to white.
    Now both decode as synthesize decodes them (blurgen.sources.load_rgb)."""
    src = tmp_path / "in"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6   # orientation: rotate 90 degrees clockwise to view
    Image.fromarray(picture(24, 40, 4)).save(src / "phone.jpg", exif=exif, quality=95)
    ramp = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80)   # 0..61360: 16-bit grey
    Image.fromarray(ramp).save(src / "deep.png")
    assert Image.open(src / "deep.png").mode.startswith("I")
    result = deblur(identity_file, tmp_path / "out", src)
    assert result.exit_code == 0, result.output
    for name in ("phone", "deep"):
        restored = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        expected = load_rgb(next(src.glob(f"{name}.*")))
        if name == "deep":   # grey in, grey out: the luma of equal channels is the grey level
            expected = expected[..., 0]
        assert np.array_equal(restored, expected), name
    assert np.asarray(Image.open(tmp_path / "out" / "phone.png")).shape == (40, 24, 3)   # upright
    assert np.asarray(Image.open(tmp_path / "out" / "deep.png"))[-1, -1] == round(61360 / 65535 * 255)

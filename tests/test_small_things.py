"""Small things a newcomer trips on (issue 12.15): make-kernels --size adapts --max-len as
synthesize --kernel-size does, warnings for options a run ignores, --src given a file,
--version and -h, plurals, no doubled slash in eval's description."""
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cli
from blurgen.physics.kernels import default_max_len
from blurgen.physics.psf import max_extent


def run(group, args):
    return CliRunner().invoke(group, [str(a) for a in args])


def test_make_kernels_size_32_adapts_max_len_as_synthesize_does(tmp_path):
    """Issue 12.15: `make-kernels --size 32` failed on the default --max-len 60."""
    result = run(cli.blurgen, ["make-kernels", "-n", 1, "--size", 32, "--iters", 100, "--out", tmp_path / "k.h5"])
    assert result.exit_code == 0, result.output
    assert "wrote 1 kernel of 32x32" in result.stdout
    with h5py.File(tmp_path / "k.h5") as f:
        spec = json.loads(f.attrs["spec"])
    assert spec["max_len"] == default_max_len(32) == max_extent(32) < 60
    assert default_max_len(64) == 60.0 and default_max_len(15) == 13.0   # synthesize's pinned values


@pytest.fixture
def photo_folder(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8)).save(src / "a.png")
    return src


def test_synthesize_warns_of_kernel_options_a_bank_overrides(tmp_path, photo_folder):
    """Issue 12.15: --kernel-size with --kernels was silently ignored; plural "1 shards"."""
    bank = tmp_path / "k.h5"
    assert run(cli.blurgen, ["make-kernels", "-n", 2, "--size", 15, "--iters", 100, "--out", bank]).exit_code == 0
    result = run(cli.blurgen, ["synthesize", "--src", photo_folder, "--out", tmp_path / "shards", "--kernels", bank,
                               "--kernel-size", 31, "--iters", 50, "--crop", 32, "--crops-per-image", 2,
                               "--workers", 1])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: --kernel-size, --iters are ignored with --kernels "
                        "(the bank's kernels are used as they are)"]
    assert "2 pairs in 1 shard (" in result.stdout and "from 1 image;" in result.stdout
    quiet = run(cli.blurgen, ["synthesize", "--src", photo_folder, "--out", tmp_path / "more", "--kernels", bank,
                              "--crop", 32, "--workers", 1])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
    verified = run(cli.blurgen, ["verify", tmp_path / "shards"])
    assert verified.exit_code == 0 and "1 shard OK" in verified.stdout


def test_src_given_a_file_says_it_expects_a_folder(tmp_path, photo_folder):
    """Issue 12.15: `--src photo.jpg` said "no such folder"."""
    result = run(cli.blurgen, ["synthesize", "--src", photo_folder / "a.png", "--out", tmp_path / "shards"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "a.png: a file; --src expects a folder of photos" in result.stderr


@pytest.mark.parametrize("group", ["blurgen", "trainer"])
def test_version_and_short_help(group):
    """Issue 12.15: neither command knew --version or -h."""
    command = getattr(cli, group)
    version = run(command, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith(f"{group}, version ")
    short = run(command, ["-h"])
    assert short.exit_code == 0 and short.stdout == run(command, ["--help"]).stdout and "Usage:" in short.stdout
    sub = run(command, ["make-kernels" if group == "blurgen" else "fit", "-h"])
    assert sub.exit_code == 0 and "--out" in sub.stdout


def test_fit_warns_that_vgg_weights_do_nothing_without_the_perceptual_loss(tmp_path):
    """Issue 12.15: --vgg-weights with --content-loss l1 was silently ignored."""
    result = run(cli.trainer, ["fit", "--out", tmp_path / "run", "--preset", "tiny", "--content-loss", "l1", "--content-weight", "10",
                               "--vgg-weights", tmp_path / "vgg.pth"])
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("warning: --vgg-weights is ignored with --content-loss l1 "
                        "(only the perceptual loss uses VGG19)")
    assert result.exit_code == 2 and lines[1].startswith("error: ")   # no data given


def test_eval_describes_a_gopro_root_with_a_trailing_slash_without_a_double_slash(make_gopro):
    """Issue 12.15: "GOPRO_Large//test" in eval's summary."""
    from trainer.benchmarks import open_eval_set

    root = make_gopro("slash", seed=0, size=(24, 32), train_sequences=1, test_sequences=1, frames=2)
    described = open_eval_set(gopro=str(root) + "/").description
    assert f"{root}/test/" in described and "//" not in described

"""The exported generator (ONNX run by onnxruntime, TorchScript) restores what `trainer deblur` restores."""
import numpy as np
import onnxruntime
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cli
from trainer import checkpoint
from trainer.config import TrainConfig, to_primitive
from trainer.evaluate import pad_for_generator
from trainer.models import Generator
from trainer.tensors import to_tensor


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    torch.manual_seed(3)
    generator = Generator(8, 1, dropout=0.0)
    with torch.no_grad():   # a generator that visibly changes its input
        for p in generator.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = base / "best.pt"
    checkpoint.save(path, checkpoint.generator_state(step=5, generator=generator,
                                                     config=to_primitive(TrainConfig(ngf=8, n_blocks=1, dropout=0.0)),
                                                     scores={"psnr": 20.0}))
    result = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), "--onnx", str(base / "g.onnx"),
                                              "--torchscript", str(base / "g.ts")])
    assert result.exit_code == 0, result.output
    assert "onnxruntime matches PyTorch" in result.stdout
    return base, path


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_onnx_and_torchscript_match_deblur_on_an_odd_sized_image(exported, tmp_path):
    base, path = exported
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "odd.png")
    result = CliRunner().invoke(cli.trainer, ["deblur", str(tmp_path / "odd.png"), "--checkpoint", str(path),
                                              "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    deblurred = np.asarray(Image.open(tmp_path / "out" / "odd.png"))

    # What deblur feeds the network: reflect-padded to multiples of 4, in [-1, 1].
    x = to_tensor(pad_for_generator(image))[None]
    assert x.shape == (1, 3, 40, 56)
    generator, _ = checkpoint.load_generator(path)
    with torch.no_grad():
        expected = generator(x).numpy()
    session = onnxruntime.InferenceSession(str(base / "g.onnx"), providers=["CPUExecutionProvider"])
    from_onnx = session.run(["restored"], {"blurred": x.numpy()})[0]
    from_script = torch.jit.load(str(base / "g.ts"))(x).detach().numpy()
    for out in (from_onnx, from_script):
        assert out.shape == expected.shape
        assert np.abs(out - expected).max() < 1e-4
        # Back to uint8 and cropped as deblur does, it is deblur's image
        # (one grey level where float noise crosses a rounding boundary).
        as_uint8 = np.rint((out[0].transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8)[:37, :53]
        assert np.abs(as_uint8.astype(int) - deblurred).max() <= 1
        assert (as_uint8 == deblurred).mean() > 0.999
    assert np.abs(expected[0, :, :37, :53] - x[0, :, :37, :53].numpy()).max() > 0.05   # it did something


def test_export_needs_a_target(exported):
    _, path = exported
    result = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path)])
    assert result.exit_code != 0 and "--onnx FILE" in result.output


def test_export_refuses_an_existing_file_before_the_work(exported, tmp_path):
    """Issue 22.7: `trainer export` replaced an existing file silently, where make-kernels,
    synthesize and deblur ask for --overwrite."""
    _, path = exported
    target = tmp_path / "g.ts"
    target.write_bytes(b"keep me")
    refused = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), "--torchscript", str(target)])
    assert refused.exit_code == 2 and f"{target} exists; pass --overwrite" in refused.stderr
    assert target.read_bytes() == b"keep me"
    replaced = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), "--torchscript", str(target),
                                                "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert target.read_bytes() != b"keep me"


@pytest.mark.parametrize("command", ["export-onnx", "export-torchscript", "eval-csv", "eval-png"])
def test_an_output_in_a_missing_folder_is_refused_before_the_work(exported, tmp_path, command):
    """Issue 22.6: `eval --csv /nonexistent/e.csv` scored every image, then failed naming
    its temporary (/nonexistent/.e.csv.tmp-1670) and lost the scores; export the same."""
    _, path = exported
    missing = tmp_path / "nonexistent" / "out.file"
    kind, option = command.split("-")
    args = ["export", "--checkpoint", str(path), f"--{option}", str(missing)] if kind == "export" else \
        ["eval", "--checkpoint", str(path), "--pairs", str(tmp_path / "no-blur"), str(tmp_path / "no-sharp"),
         f"--{option}", str(missing)]
    result = CliRunner().invoke(cli.trainer, args)
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing.parent}: no such folder\n"   # before reading any pair


@pytest.mark.parametrize("option", ["--onnx", "--torchscript"])
def test_export_on_a_full_disk_is_one_line_naming_the_file(exported, small_disk, option):
    """Issue 22.26: `export --torchscript` on a full disk aborted (rc 134, libtorch's writer)
    and left its temporary; the ONNX message did not name the file."""
    _, path = exported
    disk = small_disk(1)
    (disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))
    target = disk / "g.model"
    result = CliRunner().invoke(cli.trainer, ["export", "--checkpoint", str(path), option, str(target)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {target}: No space left on device\n"
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]   # no temporary left

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
from trainer.tensors import to_tensor
from trainer.models import Generator


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

"""The bare generator for inference outside this toolkit: ONNX and TorchScript.

Both formats hold exactly the tensors ``trainer deblur`` feeds the network
(``docs/export.md``):

    input  "blurred":  float32 (N, 3, H, W), RGB in [-1, 1]  (uint8 / 127.5 - 1)
    output "restored": float32 (N, 3, H, W), RGB in [-1, 1]

with N, H and W dynamic and H, W multiples of 4 (the generator downsamples
twice by 2; ``trainer deblur`` reflect-pads other sizes up to a multiple of 4
and crops the result back).  Files are written atomically.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blurgen.plumbing.files import atomic_path
from trainer.output import naming

#: Largest side the ONNX graph is exported for (its dynamic dimensions need a bound).
MAX_SIDE = 8192


def _example(batch: int = 1, height: int = 64, width: int = 96) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1


def export_onnx(generator: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``generator`` (on the CPU, in eval mode) as an ONNX model with dynamic
    N, H = 4 h, W = 4 w; needs the ``onnx`` and ``onnxscript`` packages."""
    path = Path(path)
    generator = generator.cpu().eval()
    n = torch.export.Dim("n", min=1, max=1024)
    h = torch.export.Dim("h", min=2, max=MAX_SIDE // 4)
    w = torch.export.Dim("w", min=2, max=MAX_SIDE // 4)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(generator, (_example(),), input_names=["blurred"], output_names=["restored"],
                                     dynamo=True, dynamic_shapes={"blurred": {0: n, 2: 4 * h, 3: 4 * w}},
                                     verbose=False)
    # Serialised here and written by Python, so that a full disk is an OSError naming the
    # file (onnx's own writer reported it without a name).
    data = program.model_proto.SerializeToString()
    with atomic_path(path) as tmp, naming(tmp):
        tmp.write_bytes(data)
    return path


def export_torchscript(generator: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``generator`` (on the CPU, in eval mode) as a scripted TorchScript module.

    TorchScript is deprecated upstream (PyTorch 2.x warns on ``torch.jit``);
    it is offered for C++ (libtorch) deployments that still load it.
    """
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(generator.cpu().eval())
        # Into memory first: libtorch's own file writer aborts the process on a full disk.
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
    with atomic_path(path) as tmp, naming(tmp):
        tmp.write_bytes(buffer.getvalue())
    return path


def onnx_difference(generator: nn.Module, path: str | os.PathLike) -> float | None:
    """Largest absolute difference between the ONNX model at ``path`` run by
    onnxruntime and ``generator`` on two inputs of different shapes (the
    dynamic dimensions at work); None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    generator = generator.cpu().eval()
    for x in (_example(1, 64, 96), _example(2, 36, 52)):
        with torch.no_grad():
            expected = generator(x).numpy()
        got = session.run(["restored"], {"blurred": x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst

"""``trainer fit --deterministic``: the same bits from the same inputs on a GPU.

On the CPU a run is already deterministic (same machine, same software).  On
CUDA three things make two runs of the same step differ in their last bits:

* ``cudnn.benchmark`` times several convolution algorithms and keeps the
  fastest, which may differ from run to run (and after a resume);
* some cuDNN algorithms (the backward ones in particular) accumulate with
  atomics, in an order that changes from run to run;
* ``ReflectionPad2d``'s CUDA backward adds the gradients of the mirrored
  border pixels with atomics; with ``torch.use_deterministic_algorithms`` on,
  PyTorch refuses it (RuntimeError) rather than run it.

``make_deterministic`` turns the autotuner off and the deterministic
algorithms on; ``deterministic_padding`` swaps each ReflectionPad2d for
``ReflectionPad``, the same padding built from slices, flips and
concatenations, whose backward is plain sums in a fixed order.  None of this
has run on a GPU yet (docs/training.md).
"""
from __future__ import annotations

import os

import torch
from torch import nn


class ReflectionPad(nn.Module):
    """``nn.ReflectionPad2d(padding)`` without atomics in its backward.

    (B, C, H, W) -> (B, C, H + 2p, W + 2p), any float dtype; the same values as
    ReflectionPad2d (a copy), the gradient the same sums in a fixed order.
    Holds no parameters, so state-dict keys do not change when it replaces one.
    """

    def __init__(self, padding: int):
        super().__init__()
        self.padding = padding

    @staticmethod
    def _reflect(x: torch.Tensor, p: int, dim: int) -> torch.Tensor:
        n = x.shape[dim]
        before = x.narrow(dim, 1, p).flip(dim)            # pixels 1..p, mirrored (the edge is not repeated)
        after = x.narrow(dim, n - 1 - p, p).flip(dim)     # pixels n-1-p..n-2, mirrored
        return torch.cat([before, x, after], dim=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._reflect(self._reflect(x, self.padding, -1), self.padding, -2)

    def extra_repr(self) -> str:
        return str(self.padding)


def deterministic_padding(module: nn.Module) -> int:
    """Replace every square ReflectionPad2d inside ``module`` by ``ReflectionPad`` (in
    place); returns how many were replaced."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReflectionPad2d) and len(set(child.padding)) == 1:
                setattr(parent, name, ReflectionPad(child.padding[0]))
                replaced += 1
    return replaced


def make_deterministic() -> None:
    """Deterministic kernels from here on, process-wide: cuDNN without its
    autotuner and with deterministic algorithms only, and PyTorch's
    deterministic mode (an operation without a deterministic version raises).
    Call before the first CUDA matmul: cuBLAS reads its workspace setting once."""
    # cuBLAS is deterministic only with a fixed workspace (PyTorch raises without one).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True)

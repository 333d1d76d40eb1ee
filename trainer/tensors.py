"""The one conversion between uint8 RGB pictures and the generator's tensors.

DeblurGAN's generator reads and writes RGB scaled to [-1, 1] (its output
ends in tanh): a pixel value v in 0..255 is v / 127.5 - 1.  Pictures are
numpy uint8 channels-last, tensors float channels-first:

    to_tensor: uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1]
               uint8 (H, W, 3)    -> float32 (3, H, W)    (add [None] for a batch of one)
    to_uint8:  float (B, 3, H, W) -> uint8 (B, H, W, 3)
               float (3, H, W)    -> uint8 (H, W, 3)

Leading dimensions carry through both ways, so ``to_uint8(to_tensor(x))``
is ``x`` exactly for any uint8 ``x``.  Training batches (trainer.data),
restoration (trainer.evaluate) and the ONNX export's checks all use this pair.
"""
from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) RGB -> float32 (..., 3, H, W) in [-1, 1], contiguous, on the CPU."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 (..., H, W, 3) RGB, got {images.dtype} {images.shape}")
    chw = np.ascontiguousarray(np.moveaxis(images, -1, -3))
    # float() copies, so the in-place scaling touches no caller's memory.
    return torch.from_numpy(chw).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3) RGB, contiguous.

    Values outside [-1, 1] are clamped; (x + 1) * 127.5 is rounded to the
    nearest integer (halves to even, as torch.round does)."""
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"expected (..., 3, H, W), got {tuple(images.shape)}")
    values = images.detach().float().cpu()
    codes = ((values.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(codes.movedim(-3, -1).numpy())

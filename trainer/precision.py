"""Which arithmetic a device runs the networks in: bfloat16 autocast or float32, and TF32.

One home for two decisions that ``trainer fit``, ``trainer deblur`` and the
benchmarks share:

* ``native_bf16(device)``: whether bfloat16 autocast is the default.  Yes on
  a CUDA GPU that computes bf16 natively (Ampere and later), and on a CPU
  with AVX512-BF16 or AMX-BF16 instructions, where the issue's measurements
  made autocast faster (a tiny training step 0.62x the float32 time; deblur
  at 256x256 1.58 against 3.39 s per frame).  No elsewhere: without those
  instructions every bf16 operation is converted to float32 and back (this
  project's AVX2 CPU took about 20x longer per training step with autocast).
* ``set_tf32(enabled)`` / ``tf32_summary()``: on Ampere and later GPUs
  PyTorch runs float32 *convolutions* in TF32 (10-bit mantissa) by default,
  and float32 matmuls in full float32.  A "float32" figure therefore says
  which it was; the benchmarks set it explicitly.
"""
from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bfloat16 instructions that PyTorch's CPU kernels use
    (AVX512-BF16, or AMX tiles, which come with AMX-BF16 on every CPU that has them)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def native_bf16(device: torch.device | str) -> bool:
    """Whether bfloat16 autocast is the default on ``device``: a CUDA device that
    computes bf16 natively, or a CPU with ``cpu_has_native_bf16``."""
    device = torch.device(device)
    if device.type == "cuda":
        # including_emulation=False: pre-Ampere GPUs run bf16 through float32 units.
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def autocast_dtype(device: torch.device | str, amp: bool | None) -> torch.dtype | None:
    """The autocast dtype of a run or a restoration: bfloat16 when ``amp`` is True,
    or when it is None (not chosen) and ``native_bf16(device)``; else None (float32)."""
    if amp is None:
        amp = native_bf16(device)
    return torch.bfloat16 if amp else None


def set_tf32(enabled: bool) -> None:
    """float32 convolutions and matmuls on CUDA in TF32 (``enabled``) or in full float32."""
    # torch >= 2.9 has fp32_precision; mixing it with the older allow_tf32 flags is an error there.
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = torch.backends.cuda.matmul.fp32_precision = "tf32" if enabled else "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled


def tf32_summary() -> str:
    """How float32 convolutions and matmuls run on CUDA now, e.g. 'convs tf32, matmuls ieee'."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        def resolved(*chain) -> str:   # "none" inherits from the next setting up
            return next((value for value in chain if value != "none"), "ieee")
        top = torch.backends.fp32_precision
        return (f"convs {resolved(conv.fp32_precision, torch.backends.cudnn.fp32_precision, top)}, "
                f"matmuls {resolved(torch.backends.cuda.matmul.fp32_precision, top)}")
    return (f"convs {'tf32' if torch.backends.cudnn.allow_tf32 else 'ieee'}, "
            f"matmuls {'tf32' if torch.backends.cuda.matmul.allow_tf32 else 'ieee'}")

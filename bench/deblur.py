"""Time deblurring one GoPro-sized frame (1280x720) with the paper's generator.

The real inference path of ``trainer deblur`` and ``trainer eval``
(``trainer.evaluate.restore``: pad to a multiple of 4, uint8 -> [-1, 1]
tensor, generator, back to uint8), with the full-size generator (9
ResBlocks, 64 base channels; random weights: speed does not depend on
them), in float32 and under bfloat16 autocast.

    python bench/deblur.py                       # CUDA if available, else CPU
    python bench/deblur.py --device cpu --frames 3 --precisions fp32,bf16
    python bench/deblur.py --precisions fp32,bf16,onnx    # + ONNX Runtime (CUDA provider on a GPU)

Prints, for each precision, the median seconds per frame after untimed
warm-up frames (the device synchronised) and frames per second.  The paper
(Kupyn et al. 2018) reports 0.85 s per GoPro frame on a Titan X.  On a CPU
without native bfloat16 (no AVX512-BF16/AMX) autocast is emulated and
slower; the figure is printed all the same.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.evaluate import restore  # noqa: E402
from trainer.models import Generator  # noqa: E402
from trainer.precision import native_bf16  # noqa: E402


def time_frames(generator, frame: np.ndarray, device: torch.device, bf16: bool, frames: int,
                warmup: int) -> list[float]:
    """Seconds of each of ``frames`` timed restorations after ``warmup`` untimed ones."""
    cuda = device.type == "cuda"
    precision = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
    times = []
    with torch.inference_mode(), precision:
        for i in range(warmup + frames):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            restore(generator, frame, device=device)   # returns uint8 on the host: waits for the device
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def time_onnx(generator, frame: np.ndarray, device: torch.device, frames: int, warmup: int) -> list[float] | str:
    """Seconds per frame of the generator exported to ONNX and run by ONNX Runtime (its CUDA
    provider on a CUDA device), float32, the same padding and conversions as ``restore``;
    or why it could not run."""
    import tempfile

    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime not installed"
    from trainer.evaluate import pad_for_generator
    from trainer.export import export_onnx
    from trainer.tensors import to_tensor, to_uint8

    provider = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    if provider not in onnxruntime.get_available_providers():
        return f"onnxruntime has no {provider}"
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(copy.deepcopy(generator), Path(tmp) / "generator.onnx")
        session = onnxruntime.InferenceSession(str(path), providers=[provider])
    times = []
    for i in range(warmup + frames):
        start = time.perf_counter()
        x = to_tensor(pad_for_generator(frame))[None].numpy()
        restored = session.run(None, {"blurred": x})[0]
        to_uint8(torch.from_numpy(restored)[0])
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=None, help="timed frames (default: 20 CUDA, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed frames first (default: 3 CUDA, 1 CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--precisions", default=None,
                        help="comma-separated: fp32, bf16, onnx (default: fp32 and bf16 where the device has "
                             "native bf16 -- CUDA since Ampere, CPUs with AVX512-BF16/AMX -- else fp32)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    frames = args.frames or (20 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    if cuda:
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    generator = Generator().to(device).eval()
    frame = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"deblur one {args.width}x{args.height} frame, paper generator "
          f"({sum(p.numel() for p in generator.parameters()) / 1e6:.2f} M parameters); {name}; "
          f"torch {torch.__version__}; median of {frames} after {warmup} warm-up")
    wanted = {p.strip() for p in (args.precisions or ("fp32,bf16" if native_bf16(device) else "fp32")).split(",")}
    for label, bf16 in [(label, bf16) for label, bf16, key in (("fp32", False, "fp32"), ("bf16 autocast", True, "bf16"))
                        if key in wanted]:
        seconds = statistics.median(time_frames(generator, frame, device, bf16, frames, warmup))
        print(f"  {label:14s} {seconds:8.3f} s/frame  ({1 / seconds:.3g} frames/s)", flush=True)
    if "onnx" in wanted:
        times = time_onnx(generator, frame, device, frames, warmup)
        if isinstance(times, str):
            print(f"  onnxruntime    not timed: {times}")
        else:
            seconds = statistics.median(times)
            print(f"  onnxruntime    {seconds:8.3f} s/frame  ({1 / seconds:.3g} frames/s; fp32, host copies included)")
    print("  paper: 0.85 s/frame on a Titan X (Kupyn et al. 2018)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

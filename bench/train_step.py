"""Time one full DeblurGAN training step: 5 critic steps + 1 generator step.

Full-size model (9 ResBlocks, 64 base channels, PatchGAN critic, VGG19
conv3_3 perceptual loss), batch 1, 256x256 crops, the real
``trainer.loop.train_step``, in named variants (``--variants``, comma-separated):

* fp32:          float32 with full-float32 convolutions and matmuls (TF32 off),
                 eager, NCHW, Adam's default implementation, cudnn.benchmark off;
* tf32:          the same with TF32 convolutions and matmuls (PyTorch's default
                 for convolutions on Ampere and later: a "float32" run there is
                 TF32 unless told otherwise);
* bf16, channels_last, fused:  each option alone on top of tf32;
* optimised:     bf16 autocast (gradient penalty in float32) + channels_last +
                 fused Adam (+ cudnn.benchmark on CUDA), what ``fit`` runs on a GPU;
* graphs:        optimised, the whole step captured as one CUDA graph (CUDA);
* compile:       optimised with torch.compile of the generator and the VGG.

    python bench/train_step.py                    # fp32 and optimised; CUDA if available
    python bench/train_step.py --variants fp32,tf32,bf16,channels_last,fused,optimised,graphs,compile
    python bench/train_step.py --device cpu --threads 1 --no-amp
    python bench/train_step.py --memory --max-batch   # peak memory; the largest batch that fits (CUDA)
    python bench/train_step.py --tiny --device cpu   # the tiny preset, U-Net skips on and off

``--tiny`` times the tiny preset's step instead (1 critic + 1 generator step,
batch 6 of 80x80, the capped PSNR loss), fp32 eager, with its U-Net skips
(``--skips``) and without, the two interleaved run by run so that a change in
the machine's speed hits both; it prints the median of each and their ratio.

Prints the median seconds per step of each variant and its speed-up over the
first; with ``--memory`` (CUDA) the peak memory of a step
(torch.cuda.max_memory_allocated, after the warm-up).  The VGG has random
weights (speed does not depend on them).  On a CPU without native bfloat16
(no AVX512-BF16/AMX) autocast is emulated and slower; the figure is printed
all the same (``--no-amp`` leaves it out of the optimised variants).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import TrainConfig, make_configs  # noqa: E402
from trainer.loop import build_gan, train_step  # noqa: E402
from trainer.losses import PerceptualLoss, make_content_loss, vgg19_to_conv3_3  # noqa: E402
from trainer.precision import set_tf32  # noqa: E402

# name -> build_gan options on top of float32 eager; "tf32" None: full float32.
VARIANTS = {
    "fp32": dict(tf32=False),
    "tf32": dict(tf32=True),
    "bf16": dict(tf32=True, amp=True),
    "channels_last": dict(tf32=True, channels_last=True),
    "fused": dict(tf32=True, fused_adam=True),
    "optimised": dict(tf32=True, amp=True, channels_last=True, fused_adam=True),
    "graphs": dict(tf32=True, amp=True, channels_last=True, fused_adam=True, cuda_graphs=True),
    "compile": dict(tf32=True, amp=True, channels_last=True, fused_adam=True, compile=True),
}


def describe(options: dict, cuda: bool) -> str:
    parts = ["bf16 autocast" if options.get("amp") else
             ("TF32" if options["tf32"] and cuda else "fp32 (TF32 off)" if cuda else "fp32")]
    parts += [name for name, key in (("channels_last", "channels_last"), ("fused Adam", "fused_adam"),
                                     ("CUDA graph", "cuda_graphs"), ("torch.compile", "compile")) if options.get(key)]
    if cuda and options.get("amp"):
        parts.append("cudnn.benchmark")
    return ", ".join(parts)


def time_steps(device: torch.device, options: dict, steps: int, warmup: int, size: int,
               batch: int, memory: bool = False) -> tuple[list[float], int | None]:
    """Seconds of each of ``steps`` timed training steps after ``warmup`` untimed ones,
    and (CUDA, ``memory``) the peak bytes allocated during the timed steps."""
    cuda = device.type == "cuda"
    options = dict(options)
    set_tf32(options.pop("tf32"))
    torch.backends.cudnn.benchmark = cuda and bool(options.get("amp"))
    options.setdefault("fused_adam", False)
    cfg = TrainConfig()   # the paper's full-size model and losses
    torch.manual_seed(0)
    gan = build_gan(cfg, device, PerceptualLoss(vgg19_to_conv3_3()), **options)
    g = torch.Generator().manual_seed(1)
    images = [(torch.rand(batch, 3, size, size, generator=g) * 2 - 1) for _ in range(2)]
    blurred, sharp = (gan.to_device(t) for t in images)
    times, peak = [], None
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize(device)
            if i == warmup and memory:
                torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        stats = train_step(gan, blurred, sharp, cfg)
        float(stats["generator_loss"])   # waits for the step to finish
        if cuda:
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if cuda and memory:
        peak = torch.cuda.max_memory_allocated(device)
    return times, peak


def largest_batch(device: torch.device, options: dict, size: int, limit: int = 1024) -> tuple[int, int]:
    """The largest batch (powers of 2 up to ``limit``) whose step fits on the GPU, and its peak bytes."""
    fits, peak, batch = 0, 0, 1
    while batch <= limit:
        try:
            _, peak_now = time_steps(device, options, 1, 1, size, batch, memory=True)
        except torch.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        fits, peak, batch = batch, peak_now, batch * 2
    return fits, peak


def time_tiny(device: torch.device, skips: bool, steps: int, warmup: int) -> list[float]:
    """Seconds of each of ``steps`` tiny-preset training steps (after ``warmup``), fp32 eager."""
    cfg, data_cfg = make_configs("tiny", dict(skips=skips))
    torch.manual_seed(0)
    gan = build_gan(cfg, device, make_content_loss(cfg.content_loss))
    g = torch.Generator().manual_seed(1)
    shape = (data_cfg.batch_size, 3, data_cfg.crop, data_cfg.crop)
    blurred, sharp = (gan.to_device(torch.rand(shape, generator=g) * 2 - 1) for _ in range(2))
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        float(train_step(gan, blurred, sharp, cfg)["generator_loss"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main_tiny(device: torch.device, rounds: int, steps: int, warmup: int) -> int:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    cfg, data_cfg = make_configs("tiny")
    print(f"tiny-preset training step ({cfg.critic_steps} critic + 1 generator), batch {data_cfg.batch_size}, "
          f"{data_cfg.crop}x{data_cfg.crop}, fp32 eager; {name}; torch {torch.__version__}; "
          f"{rounds} interleaved rounds of {steps} steps after {warmup} warm-up")
    times = {True: [], False: []}
    for _ in range(rounds):
        for skips in (False, True):
            times[skips] += time_tiny(device, skips, steps, warmup)
    without, with_ = (statistics.median(times[k]) for k in (False, True))
    print(f"  without skips (--no-skips)  {without * 1000:7.1f} ms/step")
    print(f"  with skips (the preset)     {with_ * 1000:7.1f} ms/step")
    print(f"  cost of the skips: {with_ / without:.3f}x")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 CUDA, 2 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 CUDA, 1 CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--variants", default="fp32,optimised", help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--compile", action="store_true", help="also time the compile variant")
    parser.add_argument("--no-amp", dest="amp", action="store_false",
                        help="leave bf16 autocast out of the optimised variants (CPUs without native bf16)")
    parser.add_argument("--memory", action="store_true", help="peak GPU memory of each variant's step (CUDA)")
    parser.add_argument("--max-batch", action="store_true",
                        help="the largest batch whose optimised step fits on the GPU (CUDA)")
    parser.add_argument("--tiny", action="store_true",
                        help="time the tiny preset's step with and without its U-Net skips instead")
    parser.add_argument("--rounds", type=int, default=5, help="--tiny: interleaved rounds")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (20 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    if args.tiny:
        return main_tiny(device, args.rounds, args.steps or 30, max(warmup, 3))
    names = [v.strip() for v in args.variants.split(",") if v.strip()] + (["compile"] if args.compile else [])
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"DeblurGAN training step (5 critic + 1 generator), full-size model, batch {args.batch}, "
          f"{args.size}x{args.size}; {name}; torch {torch.__version__}; median of {steps} after {warmup} warm-up",
          flush=True)
    results = {}
    for label in dict.fromkeys(names):
        options = dict(VARIANTS[label])
        if not args.amp:
            options.pop("amp", None)
        times, peak = time_steps(device, options, steps, warmup, args.size, args.batch, args.memory)
        results[label] = statistics.median(times)
        first = next(iter(results.values()))
        memory = f", peak {peak / 2**20:,.0f} MiB" if peak is not None else ""
        print(f"  {label:14s} {results[label]:8.4f} s/step  ({1 / results[label]:.3g} steps/s, "
              f"{first / results[label]:.2f}x the first{memory})  [{describe(options, cuda)}]", flush=True)
    if args.max_batch:
        if not cuda:
            parser.error("--max-batch needs a CUDA device")
        options = dict(VARIANTS["optimised"], **({} if args.amp else {"amp": False}))
        batch, peak = largest_batch(device, options, args.size)
        print(f"  largest batch that fits (powers of 2, optimised step, {args.size}x{args.size}): {batch}, "
              f"peak {peak / 2**20:,.0f} MiB of {torch.cuda.get_device_properties(device).total_memory / 2**20:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time one full DeblurGAN training step: 5 critic steps + 1 generator step.

Full-size model (9 ResBlocks, 64 base channels, PatchGAN critic, VGG19
conv3_3 perceptual loss), batch 1, 256x256 crops, the real
``trainer.loop.train_step``.  Two configurations of the same model:

* baseline:  float32, eager, NCHW, Adam without fusing, cudnn.benchmark off;
* optimised: bfloat16 autocast (gradient penalty in float32), channels_last,
             cudnn.benchmark and fused Adam (CUDA only), torch.compile of the
             generator and the VGG with --compile.

    python bench/train_step.py                    # CUDA if available, else CPU
    python bench/train_step.py --device cpu --threads 1
    python bench/train_step.py --tiny --device cpu   # the tiny preset, U-Net skips on and off

``--tiny`` times the tiny preset's step instead (1 critic + 1 generator step,
batch 6 of 80x80, the capped PSNR loss), fp32 eager, with its U-Net skips
(``--skips``) and without, the two interleaved run by run so that a change in
the machine's speed hits both; it prints the median of each and their ratio.

Prints the median seconds per step of each, and their ratio.  The VGG has
random weights (speed does not depend on them).  On a CPU without native
bfloat16 (no AVX512-BF16/AMX) autocast is emulated and slower; the figure is
printed all the same.
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
from trainer.losses import PerceptualLoss, make_content_loss, vgg19_to_conv3_3  # noqa: E402
from trainer.loop import build_gan, train_step  # noqa: E402


def time_steps(device: torch.device, optimised: bool, steps: int, warmup: int, size: int,
               batch: int, compile: bool, amp: bool = True) -> list[float]:
    """Seconds of each of ``steps`` timed training steps after ``warmup`` untimed ones."""
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = optimised and cuda
    cfg = TrainConfig()   # the paper's full-size model and losses
    torch.manual_seed(0)
    gan = build_gan(cfg, device, PerceptualLoss(vgg19_to_conv3_3()), amp=optimised and amp,
                    channels_last=optimised, fused_adam=optimised and cuda, compile=optimised and compile)
    g = torch.Generator().manual_seed(1)
    images = [(torch.rand(batch, 3, size, size, generator=g) * 2 - 1) for _ in range(2)]
    blurred, sharp = (gan.to_device(t) for t in images)
    times = []
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        stats = train_step(gan, blurred, sharp, cfg)
        float(stats["generator_loss"])   # waits for the step to finish
        if cuda:
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


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
    parser.add_argument("--compile", action="store_true", help="also torch.compile in the optimised run")
    parser.add_argument("--no-amp", dest="amp", action="store_false",
                        help="leave bf16 autocast out of the optimised run (CPUs without native bf16)")
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
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"DeblurGAN training step (5 critic + 1 generator), full-size model, batch {args.batch}, "
          f"{args.size}x{args.size}; {name}; torch {torch.__version__}; median of {steps} after {warmup} warm-up")
    results = {}
    for label, optimised in (("baseline  fp32 eager", False), ("optimised", True)):
        times = time_steps(device, optimised, steps, warmup, args.size, args.batch, args.compile, args.amp)
        results[label] = statistics.median(times)
        options = (("bf16 autocast, " if args.amp else "") + "channels_last"
                   + (", cudnn.benchmark, fused Adam" if cuda else "")
                   + (", torch.compile" if args.compile else "")) if optimised else "fp32, NCHW, eager"
        print(f"  {label:22s} {results[label]:8.3f} s/step  ({1 / results[label]:.3g} steps/s)  [{options}]")
    base, fast = results.values()
    print(f"  speed-up optimised / baseline: {base / fast:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

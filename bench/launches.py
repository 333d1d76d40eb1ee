"""Count the PyTorch operations one training step dispatches, eager against optimised.

At the paper's batch 1 and 256x256 a GPU runs each kernel in microseconds,
and the host spends 5-10 us dispatching each: the step is bound by how many
operations it dispatches, not by its arithmetic (docs/training.md).  This
counts the aten operations of one real ``trainer.loop.train_step`` (forward,
backward, double backward and optimiser alike) with a TorchDispatchMode, on
any device, for:

* eager:     Adam's default implementation (a per-tensor loop on the CPU,
             multi-tensor "foreach" operations on CUDA), the critic's norm as
             ``nn.InstanceNorm2d`` -- the code before this benchmark;
* optimised: fused Adam and the critic's elementwise InstanceNorm, what
             ``trainer fit`` runs now.

A CUDA graph (``fit --cuda-graphs``) replays the optimised step's kernels
with one launch; its host work per step is the two input copies, the two
learning-rate fills and the replay, which the counts of ``--cuda-graphs``
report on a GPU.  The count does not depend on the image size.

    python bench/launches.py                     # the paper's models, CPU, 64x64
    python bench/launches.py --tiny              # the tiny preset's
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import TrainConfig, make_configs  # noqa: E402
from trainer.loop import build_gan, train_step  # noqa: E402
from trainer.losses import PerceptualLoss, make_content_loss, vgg19_to_conv3_3  # noqa: E402
from trainer.models import InstanceNorm  # noqa: E402


class OpCounter(TorchDispatchMode):
    """Counts every aten operation dispatched inside the block, by name."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class TorchInstanceNorm(nn.Module):
    """What ``nn.InstanceNorm2d(affine=False)`` runs, for any width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x)


def torch_norm_critic(gan) -> None:
    """The critic's norm back to PyTorch's instance norm (the code before; same function)."""
    for parent in list(gan.critic.modules()):
        for name, child in parent.named_children():
            if isinstance(child, InstanceNorm):
                setattr(parent, name, TorchInstanceNorm())


def step_ops(cfg: TrainConfig, content_loss: nn.Module, shape: tuple, device: torch.device, *,
             optimised: bool, cuda_graphs: bool = False) -> OpCounter:
    """The operations of one training step after one untimed step (lazy state made)."""
    torch.manual_seed(0)
    gan = build_gan(cfg, device, content_loss, fused_adam=optimised, cuda_graphs=cuda_graphs)
    if not optimised:
        torch_norm_critic(gan)
    g = torch.Generator().manual_seed(1)
    blurred, sharp = (gan.to_device(torch.rand(shape, generator=g) * 2 - 1) for _ in range(2))
    train_step(gan, blurred, sharp, cfg)
    with OpCounter() as counter:
        train_step(gan, blurred, sharp, cfg)
    return counter


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny preset's models and step")
    parser.add_argument("--size", type=int, default=None, help="crop side (default: 64; tiny 32)")
    parser.add_argument("--cuda-graphs", action="store_true", help="also count a CUDA-graph step (CUDA)")
    parser.add_argument("--top", type=int, default=8, help="most frequent operations to list")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.tiny:
        cfg, data_cfg = make_configs("tiny")
        content_loss, batch, size = make_content_loss(cfg.content_loss), data_cfg.batch_size, args.size or 32
    else:
        cfg, content_loss, batch, size = TrainConfig(), PerceptualLoss(vgg19_to_conv3_3()), 1, args.size or 64
    shape = (batch, 3, size, size)
    print(f"aten operations dispatched by one training step ({cfg.critic_steps} critic + 1 generator), "
          f"{'tiny preset' if args.tiny else 'paper models'}, batch {batch}, {size}x{size}, {device}, "
          f"torch {torch.__version__}")
    runs = [("eager (before)", False, False), ("optimised", True, False)]
    if args.cuda_graphs:
        runs.append(("optimised, CUDA graph", True, True))
    totals = {}
    for label, optimised, graphs in runs:
        counter = step_ops(cfg, content_loss, shape, device, optimised=optimised, cuda_graphs=graphs)
        totals[label] = counter.total
        common = ", ".join(f"{name.removeprefix('aten.')} {n}" for name, n in counter.counts.most_common(args.top))
        print(f"  {label:24s} {counter.total:6d} ops/step  ({common})")
    before, after = totals["eager (before)"], totals["optimised"]
    print(f"  optimised / eager: {after / before:.3f} ({before - after} fewer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

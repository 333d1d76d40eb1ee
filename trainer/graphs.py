"""``trainer fit --cuda-graphs``: the whole training step as one CUDA graph.

At batch 1 and 256x256 the paper's step (five critic steps with the gradient
penalty, one generator step with VGG) dispatches about 3,000 operations, and
on a GPU each costs 5-10 us of host time while its arithmetic takes less:
the step is bound by kernel launches (docs/training.md has the counts).
torch.compile cannot take the critic step -- AOTAutograd does not do the
gradient penalty's double backward (measured with torch 2.14) -- so the step
is captured as it runs eagerly: a CUDA graph records every kernel of
``train_step`` once, and each later step replays them with one launch.

What capture needs, and where it is arranged:

* fixed input addresses: the batch is copied into static tensors;
* no host synchronisation inside the step: ``train_step`` returns tensors;
* Adam with ``capturable=True`` and the learning rate as a device tensor
  (fused Adam reads it from device memory), refreshed from the float that
  ``set_learning_rate`` left in the param group before each replay;
* autocast without its weight cache (``GAN.autocast``);
* the warm-up steps that must run before capture change the weights, the
  Adam moments and the random state: ``Undone`` puts them back, in place,
  since the graph holds the addresses of those very tensors;
* random draws (dropout, the penalty's interpolation weights) come from
  PyTorch's graph-safe Philox generator, which reads the generator's seed
  and offset at each replay: the per-step reseeding of ``fit`` still works.

CUDA only, one process (not with DDP).  Not run on a GPU yet: the GPU
check (bench/gpu_check.sh) compares replayed steps with eager ones.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# Eager steps before capture: lazy state (Adam's moments, cuDNN's autotuner,
# autocast) is created outside the graph, as PyTorch's graph notes ask.
WARMUP_STEPS = 3


class Undone:
    """Everything a training step changes, saved on entry and written back on
    exit into the same tensors: the networks' parameters, the optimisers'
    state (moments and step counts; a state created inside the block is
    zeroed, which is what Adam creates it as) and the CPU and CUDA random
    generators."""

    def __init__(self, modules: list[nn.Module], optimisers: list[torch.optim.Optimizer]):
        self.params = [p for m in modules for p in m.parameters()]
        self.optimisers = optimisers

    def __enter__(self):
        self.saved_params = [p.detach().clone() for p in self.params]
        self.saved_state = [{p: {k: v.clone() if torch.is_tensor(v) else v for k, v in state.items()}
                             for p, state in opt.state.items()} for opt in self.optimisers]
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for p, saved in zip(self.params, self.saved_params):
                p.copy_(saved)
            for opt, saved_state in zip(self.optimisers, self.saved_state):
                for p, state in opt.state.items():
                    before = saved_state.get(p)
                    for key, value in state.items():
                        if not torch.is_tensor(value):
                            continue
                        if before is None:
                            value.zero_()
                        else:
                            value.copy_(before[key])
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        return False


class CapturedStep:
    """``step(gan, blurred, sharp, cfg) -> dict`` of tensors, captured as a CUDA
    graph at the first call and replayed at each later one.  The inputs must
    keep their shape (fixed crops and batch size); the returned tensors are
    copies, valid after later steps."""

    def __init__(self, step: Callable):
        self.step = step
        self.graph = None

    def __call__(self, gan, blurred: torch.Tensor, sharp: torch.Tensor, cfg) -> dict:
        if self.graph is None:
            self._capture(gan, blurred, sharp, cfg)
        self.blurred.copy_(blurred, non_blocking=True)
        self.sharp.copy_(sharp, non_blocking=True)
        for group, lr in self.lrs:
            lr.fill_(float(group["lr"]))   # set_learning_rate leaves a float there
        self.graph.replay()
        return {name: value.clone() for name, value in self.stats.items()}

    def _capture(self, gan, blurred, sharp, cfg) -> None:
        from trainer.checkpoint import unwrap

        optimisers = [gan.opt_generator, gan.opt_critic]
        self.lrs = []
        for opt in optimisers:
            for group in opt.param_groups:
                group["capturable"] = True
                lr = torch.tensor(float(group["lr"]), device=blurred.device)
                self.lrs.append((group, lr))
        self.blurred, self.sharp = blurred.clone(), sharp.clone()
        with Undone([unwrap(gan.generator), unwrap(gan.critic)], optimisers):
            for group, lr in self.lrs:
                group["lr"] = lr             # the graph reads the rate from this tensor
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self.step(gan, self.blurred, self.sharp, cfg)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: a DataLoader pin-memory thread may call CUDA meanwhile.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.stats = self.step(gan, self.blurred, self.sharp, cfg)
            for group, lr in self.lrs:
                group["lr"] = float(lr)      # checkpoints keep a float
        self.graph = graph

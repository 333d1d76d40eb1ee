"""Benchmark: kernels per second on one core, vectorised generator vs a per-step reference.

    python bench/kernels.py [--n 20000] [--ref-n 20]

The reference is the plain per-step, per-kernel implementation the tests check
the generator against (tests/test_kernels.py): one Python iteration per
trajectory step and per splatted sample, as in DeblurGAN's own code.
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_kernels import reference_psf, reference_trajectory  # noqa: E402

from blurgen.physics.kernels import KernelSpec, kernel_seeds, make_kernels  # noqa: E402
from blurgen.physics.trajectory import EXPL_CHOICES  # noqa: E402


def reference_kernels(n, spec, rng):
    for _ in range(n):
        expl = EXPL_CHOICES[rng.integers(len(EXPL_CHOICES))]
        fraction = (0.1, 0.5, 1.0)[rng.integers(3)]
        params = 0.7 * rng.random(), 0.2 * rng.random(), 10 * rng.random(), 2 * np.pi * rng.random()

        def draw(t):
            return rng.random(), rng.random(), complex(rng.standard_normal(), rng.standard_normal())

        x, _ = reference_trajectory(spec.iters, spec.max_len, expl, *params, draw)
        reference_psf(x[: max(2, round(fraction * spec.iters))], spec.size)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="kernels for the vectorised generator")
    ap.add_argument("--ref-n", type=int, default=20, help="kernels for the reference")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    spec = KernelSpec()  # DeblurGAN's defaults: 64x64, 2000 samples, max_len 60, drawn expl/fraction
    make_kernels(kernel_seeds(0, 256), spec)  # warm-up
    best = float("inf")
    for r in range(args.repeats):
        seeds = kernel_seeds(r, args.n)
        t = time.perf_counter()
        make_kernels(seeds, spec)
        best = min(best, time.perf_counter() - t)
    fast = args.n / best
    t = time.perf_counter()
    reference_kernels(args.ref_n, spec, np.random.default_rng(0))
    slow = args.ref_n / (time.perf_counter() - t)
    print(f"machine: {os.cpu_count()} cores visible, 1 used; numpy {np.__version__}")
    print(f"vectorised generator : {fast:10,.0f} kernels/s  (64x64, iters 2000, best of {args.repeats} x {args.n})")
    print(f"per-step reference   : {slow:10,.1f} kernels/s  ({args.ref_n} kernels)")
    print(f"speed-up             : {fast / slow:10,.0f}x")


if __name__ == "__main__":
    main()

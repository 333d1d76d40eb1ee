"""The Python parts of bench/gpu_check.sh: test data, and the resume-equality check.

    python bench/gpu_check.py data DIR [--photos N --side S --crop C]
        DIR/photos (random-texture PNGs), DIR/shards (``blurgen synthesize``, a
        fresh 64-px kernel each; 15-px kernels with --crop below 256) and
        DIR/vgg19.pth (random VGG19 conv3_3 weights: speed does not depend on them).
    python bench/gpu_check.py resume DIR --device cuda [--preset paper --steps 6 --crop 256]
        One run of N steps uninterrupted, the same run crashed after the
        checkpoint of step N/2 and resumed with --resume, both with
        --deterministic; prints whether every weight and Adam moment is equal
        bit for bit (exit 0) or the largest difference (exit 1).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blurgen.physics.kernels import KernelSpec  # noqa: E402
from blurgen.plumbing.pictures import write_png  # noqa: E402
from blurgen.runs.synthesize import SynthConfig, synthesize  # noqa: E402
from trainer import checkpoint, loop  # noqa: E402
from trainer.config import make_configs  # noqa: E402
from trainer.losses import vgg19_to_conv3_3  # noqa: E402


def make_data(root: Path, photos: int, side: int, crop: int) -> None:
    src = root / "photos"
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(photos):
        # Smoothed noise: some structure for the blur to act on.
        coarse = rng.integers(0, 256, (side // 8 + 1, side // 8 + 1, 3)).astype(np.float32)
        image = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:side, :side]
        image += rng.normal(0, 12, image.shape)
        write_png(src / f"{i:04d}.png", np.clip(image, 0, 255).astype(np.uint8))
    kernel = 64 if crop >= 256 else 15
    cfg = SynthConfig(src=src, crop=crop, crops_per_image=1, shard_size=max(photos // 2, 1), seed=0,
                      kernel_spec=KernelSpec(size=kernel, max_len=float(kernel - 4)))
    synthesize(cfg, root / "shards", workers=2)
    torch.save(vgg19_to_conv3_3().state_dict(), root / "vgg19.pth")
    print(f"data: {photos} photos {side}x{side}, shards of {crop}x{crop} crops, random VGG19 weights in {root}")


def run_configs(root: Path, out: Path, args):
    train = dict(out=out, steps=args.steps, device=args.device, vgg_weights=root / "vgg19.pth", val_limit=1,
                 checkpoint_every=args.steps // 2, log_every=1, preview=False, deterministic=True)
    if args.preset == "tiny":
        train.update(ngf=8, ndf=8, n_blocks=1)
    return make_configs(args.preset, train, dict(shards=(root / "shards",), mix="1:0", crop=args.crop, batch_size=1,
                                                 workers=0))


def resume_check(root: Path, args) -> int:
    half = args.steps // 2
    cfg_a, data_cfg = run_configs(root, root / "resume-a", args)
    loop.fit(cfg_a, data_cfg)
    real_batches = loop.train_batches

    def crashing(*a, **kw):   # a crash while fetching the batch after the checkpoint of step N/2
        for i, item in enumerate(real_batches(*a, **kw)):
            if kw.get("start", 0) == 0 and i == half:
                raise RuntimeError("simulated crash")
            yield item

    cfg_b, _ = run_configs(root, root / "resume-b", args)
    loop.train_batches = crashing
    try:
        loop.fit(cfg_b, data_cfg)
    except RuntimeError as exc:
        if "simulated crash" not in str(exc):
            raise
    finally:
        loop.train_batches = real_batches
    resumed_cfg, resumed_data = loop.resume_configs(cfg_b.out)
    loop.fit(resumed_cfg, resumed_data, resume=True)
    a, b = (checkpoint.load(out / "last.pt") for out in (cfg_a.out, cfg_b.out))
    worst = 0.0
    for key in ("generator", "critic"):
        for name, value in a[key].items():
            worst = max(worst, float((value.float() - b[key][name].float()).abs().max()))
    for key in ("opt_generator", "opt_critic"):
        for index, state in a[key]["state"].items():
            for name, value in state.items():
                worst = max(worst, float((value.float() - b[key]["state"][index][name].float()).abs().max()))
    same = worst == 0.0 and a["step"] == b["step"] == args.steps
    print(f"resume check ({args.preset}, {args.steps} steps, crash after step {half}, --deterministic, "
          f"{args.device}): " + ("bit for bit equal" if same else f"DIFFERENT, largest difference {worst:.3g}"))
    return 0 if same else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["data", "resume"])
    parser.add_argument("root", type=Path)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--side", type=int, default=320)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    if args.what == "data":
        make_data(args.root, args.photos, args.side, args.crop)
        return 0
    return resume_check(args.root, args)


if __name__ == "__main__":
    sys.exit(main())

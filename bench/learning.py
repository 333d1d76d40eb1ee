"""Does training restore images?  A learning benchmark on held-out photos.

    python bench/learning.py                       # the GAN and a pixel-loss baseline, ~10 min on 2 cores
    python bench/learning.py --runs gan --steps 500 --set lr=1e-4 --set init=paper

1. Data, built here from scikit-image's sample photos with ``blurgen``:
   training pairs from 15 photos (colour and grey, 512 crops each), held-out pairs from two
   photos training never sees (chelsea, stereo_motorcycle), each a 128x128
   crop at the photo's native resolution.  Both are blurred by fresh
   Boracchi & Foi kernels sized for the training crop, as DeblurGAN's 64-px
   kernels are for its 256-px crops: a --kernel-size PSF (default 21 px,
   trajectories up to 19 px) for the tiny preset's 80-px crops, DeblurGAN's
   other defaults (anxiety and exposure fraction drawn per kernel).  The
   held-out blurred inputs average 31.0 dB (GoPro's blurred frames: ~26 dB).
2. Training, with ``trainer fit`` and its ``tiny`` preset (overrides with
   --set): ``gan`` is the full WGAN-GP + content-loss objective, ``pixel``
   the same generator, data and number of steps with the pixel content loss
   alone (--adversarial-weight 0: no critic).  Validation runs on a spread subset
   of the held-out pairs and draws each run's curves.png.
3. Scores of the *last* generator of each run (not best.pt, which validation
   on these same pairs picked) on all held-out pairs: PSNR / SSIM of RGB
   uint8 images, whole image, data range 255 (SSIM: skimage's, 7x7 uniform
   window), for the blurred input and each run; the mean, and the mean by
   band of input PSNR.  Also writes validation.png (validation PSNR of every
   run against the step, dashed: the blurred input) and results.json.

--train-mode / --held-out-mode "OPTIONS" make the training / held-out pairs
with ``blurgen synthesize``'s blur-mode and realism options (any registered
mode: ``"--shake nonuniform --max-angle 1"``, ``"--defocus 1-3"``, ``"--camera
a7r3 --jpeg-quality 80-95"``) from the same photos and crops; --train-camera /
--held-out-camera NAME are short for ``"--camera NAME"`` (RSBlur's camera
pipeline, docs/camera.md: with ``a7r3-rsblur``, the sRGB tone curve, the sharp
crops are the same bytes, so a model trained on plain pairs and one trained on
camera pairs can be scored on the same held-out camera pairs).

--cross NAME=OPTIONS ... is the cross-mode table: one training set and one
held-out set per NAME (``plain=`` for DeblurGAN's plain blur), one run per
NAME trained on its pairs, every run scored on every NAME's held-out pairs;
it prints the gain of each (trained on, scored on) cell and writes cross.json
(docs/modes.md, "Which synthesis trains best").  --repeat NAME trains NAME's
run a second time with another seed and reports how far the two runs' gains
differ: the run-to-run spread of one cell.  --reuse scores the runs that
finished in --out before instead of training them again, so a mode can be added
to a table.

--online trains on the same training photos blurred on the fly instead
(``trainer fit --online``): the sharp images of the same training shards, a
fresh --kernel-size kernel per draw; the held-out pairs are the same fixed
shards, so the scores compare with a run without it.

--folds K rotates the held-out photos instead of holding out chelsea and
stereo_motorcycle: the 17 photos (FOLD_PHOTOS, colour then grey), photo i held
out in fold i % K, so every photo is held out once and no fold trains on what
it holds out (--only-folds 0,2 runs some folds).  Each photo's 512 training
crops are synthesized once into their own shard folder (the same bytes in every
fold that trains on it); each fold's held-out photos, 24 crops each, into one.
Per fold and run it prints the held-out gain, the gain per band of input PSNR,
and the do-no-harm scores: the held-out *sharp* crops put through the model
(PSNR against themselves, mean and worst) and the worst of the whole held-out
photos, sharp, at native size; then the folds together (mean, spread, lowest,
the lowest gain of each band, the worst sharp scores) and writes folds.json.

    python bench/learning.py --folds 4 --runs gan --steps 800 --threads 1   # 4-10 min a fold on 1 thread of a loaded 2-core VM

A benchmark, not a test: it prints figures and leaves the verdict to the
reader (the issue's target is a gain of 1 dB by the GAN on the held-out
pairs).  Deterministic for a given --seed up to the CPU's threading.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blurgen.commands import blur_settings  # noqa: E402
from blurgen.physics.kernels import KernelSpec  # noqa: E402
from blurgen.plumbing.command_line import UserError  # noqa: E402
from blurgen.plumbing.pictures import write_png  # noqa: E402
from blurgen.runs.synthesize import SynthConfig, synthesize  # noqa: E402
from trainer.checkpoint import load_generator  # noqa: E402
from trainer.config import make_configs  # noqa: E402
from trainer.curves import plot_curves, read_scalars  # noqa: E402
from trainer.data import val_pairs  # noqa: E402
from trainer.evaluate import mean_scores, score_pairs, scores_by_band  # noqa: E402
from trainer.loop import fit  # noqa: E402

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
                "colorwheel", "camera", "brick", "grass", "gravel", "moon", "clock", "coins", "cell")
HELD_OUT_PHOTOS = ("chelsea", "stereo_motorcycle")
# --folds K: every photo above, colour ones first, then grey; photo number i is held out
# in fold i % K, so each fold holds out colour and grey photos alike.
COLOUR_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
                 "colorwheel", "chelsea", "stereo_motorcycle")
GREY_PHOTOS = ("camera", "brick", "grass", "gravel", "moon", "clock", "coins", "cell")
FOLD_PHOTOS = COLOUR_PHOTOS + GREY_PHOTOS
RUNS = {"gan": {}, "pixel": {"adversarial_weight": 0.0}}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(make_configs("tiny")[0])}


def write_photos(folder: Path, names) -> None:
    """scikit-image sample photos as lossless RGB PNGs (grey ones repeated over 3 channels)."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = getattr(skimage.data, name)()
        image = image[0] if isinstance(image, tuple) else image
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        write_png(folder / f"{name}.png", np.ascontiguousarray(image[..., :3]))


def folder_name(part: str, options: str) -> str:
    """The data folder of ``part`` ("train", "held-out") made with synthesize ``options``:
    ``train-shards`` for plain blur, ``train-shards-camera-a7r3`` for "--camera a7r3"."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", options).strip("-")
    return f"{part}-shards" + (f"-{slug}" if slug else "")


def build_data(root: Path, kernel_size: int, seed: int, train_crops: int, held_out_crops: int,
               train_mode: str = "", held_out_mode: str = ""):
    """(training shard folder, held-out shard folder) under ``root``; reused if already built.
    ``*_mode``: ``blurgen synthesize`` blur-mode and realism options that part is made
    with ("" for plain DeblurGAN blur; :func:`blurgen.commands.blur_settings`)."""
    spec = KernelSpec(size=kernel_size, max_len=float(kernel_size - 2))
    folders = []
    for name, photos, crop, crops, part_seed, options in (
            ("train", TRAIN_PHOTOS, 128, train_crops, seed, train_mode),
            ("held-out", HELD_OUT_PHOTOS, 128, held_out_crops, seed + 1, held_out_mode)):
        src = root / f"{name}-photos"
        out = root / folder_name(name, options)
        write_photos(src, photos)
        cfg = SynthConfig(src=src, crop=crop, crops_per_image=crops, shard_size=256, seed=part_seed,
                          kernel_spec=spec, **blur_settings(shlex.split(options)))
        synthesize(cfg, out, workers=2)   # resumes (does nothing) when already complete
        folders.append(out)
    return folders


def fold_split(photos, folds: int, fold: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training photos, held-out photos) of fold ``fold`` of ``folds``: photo number i
    is held out in fold i % folds, so over the folds every photo is held out exactly
    once and no fold trains on a photo it holds out."""
    if not 2 <= folds <= len(photos) or not 0 <= fold < folds:
        raise ValueError(f"fold {fold} of {folds}: need 2 <= folds <= {len(photos)} photos and 0 <= fold < folds")
    held = tuple(p for i, p in enumerate(photos) if i % folds == fold)
    return tuple(p for p in photos if p not in held), held


def build_fold_data(root: Path, kernel_size: int, seed: int, train_crops: int, held_out_crops: int,
                    train_photos, held_out_photos, tag: str):
    """(training shard folders, one per photo, reused by every fold; the fold's held-out
    shard folder, all its photos together) under ``root``; reused if already built.
    Each photo's training pairs have their own seed (its place in FOLD_PHOTOS), so a
    photo's pairs are the same bytes in every fold that trains on it."""
    spec = KernelSpec(size=kernel_size, max_len=float(kernel_size - 2))
    folders = []
    for name in train_photos:
        src, out = root / "photos" / name, root / "train" / name
        write_photos(src, (name,))
        synthesize(SynthConfig(src=src, crop=128, crops_per_image=train_crops, shard_size=256,
                               seed=seed * 1000 + FOLD_PHOTOS.index(name), kernel_spec=spec), out, workers=2)
        folders.append(out)
    src, out = root / f"held-out-{tag}" / "photos", root / f"held-out-{tag}" / "shards"
    write_photos(src, held_out_photos)
    synthesize(SynthConfig(src=src, crop=128, crops_per_image=held_out_crops, shard_size=256, seed=seed + 1,
                           kernel_spec=spec), out, workers=2)
    return tuple(folders), out


def sharp_photo_scores(generator, names) -> dict:
    """Do no harm on whole photos: {name: PSNR in dB of G(photo) vs the photo}, each
    scikit-image photo at its native size as ``write_photos`` writes it."""
    import skimage.data

    from trainer.evaluate import sharp_input_psnr

    out = {}
    for name in names:
        image = getattr(skimage.data, name)()
        image = image[0] if isinstance(image, tuple) else image
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        out[name] = sharp_input_psnr(generator, np.ascontiguousarray(image[..., :3]))
    return out


def band_gains(bands) -> dict:
    """{band label: gain dB} of ``scores_by_band`` rows."""
    return {b["band"]: b["gain"] for b in bands}


def summarize_folds(folds: list[dict]) -> dict:
    """What the folds say together.  ``folds``: one dict per fold with "gain" (mean
    held-out gain, dB), "bands" ({label: gain dB}), "sharp_psnr_min" (worst held-out
    sharp crop, dB) and "sharp_photo_min" (worst whole held-out photo, dB).  Returns
    the mean, spread (population standard deviation), lowest and highest fold gain,
    the lowest gain of each band over the folds, and the worst sharp scores."""
    gains = np.array([f["gain"] for f in folds], np.float64)
    labels = list(dict.fromkeys(label for f in folds for label in f["bands"]))
    return {"folds": len(folds), "mean_gain": float(gains.mean()), "spread": float(gains.std()),
            "min_gain": float(gains.min()), "max_gain": float(gains.max()),
            "worst_band": {label: min(f["bands"][label] for f in folds if label in f["bands"]) for label in labels},
            "sharp_psnr_min": min(f["sharp_psnr_min"] for f in folds),
            "sharp_photo_min": min(f["sharp_photo_min"] for f in folds)}


def parse_sets(items) -> dict:
    """``["lr=3e-4", "init=identity", "betas=[0.9,0.999]"]`` -> {"lr": 3e-4, "init": "identity",
    "betas": [0.9, 0.999]}: values are read as JSON, else kept as text."""
    out = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def train(name: str, out: Path, train_shards: Path, held_out: Path, args, changes: dict) -> dict:
    train_changes = {k: v for k, v in changes.items() if k in TRAIN_FIELDS}
    data_changes = {k: v for k, v in changes.items() if k not in TRAIN_FIELDS}
    train_cfg, data_cfg = make_configs(
        "tiny",
        dict(dict(out=out, steps=args.steps, val_every=max(1, args.steps // 10), val_limit=12,
                  device="cpu", preview=False, checkpoint_every=args.steps,
                  seed=args.seed), **train_changes),
        dict(dict(shards=tuple(train_shards) if isinstance(train_shards, tuple) else (train_shards,),
                  val_shards=held_out, mix=(1, 0), workers=1, seed=args.seed),
             **data_changes))
    timing = out / "bench-seconds.json"
    if getattr(args, "reuse", False) and timing.exists():   # a finished run of these settings: score it again
        seconds = json.loads(timing.read_text())["seconds"]
    else:
        started = time.perf_counter()
        fit(train_cfg, data_cfg)
        seconds = time.perf_counter() - started
        timing.write_text(json.dumps({"seconds": seconds}))
    generator, state = load_generator(out / "last.pt", torch.device("cpu"))
    if state["step"] != args.steps:
        raise SystemExit(f"{out}: a run of {state['step']} steps, not --steps {args.steps}; drop --reuse")
    rows, _ = score_pairs(generator, val_pairs(data_cfg), sharp_input=True)
    settings = {k: v for k, v in dataclasses.asdict(train_cfg).items()
                if k in ("init", "lr", "dropout", "ngf", "n_blocks", "skips", "adversarial_weight", "content_weight",
                         "gradient_penalty", "critic_steps", "content_loss", "psnr_ceiling")}
    settings.update(crop=data_cfg.crop, batch_size=data_cfg.batch_size, sharp_fraction=data_cfg.sharp_fraction)
    if data_cfg.online:
        settings.update(online=True, online_kernel_size=data_cfg.online_kernel_size)
    logged = read_scalars(out / "scalars.csv")
    validation = {"steps": logged["val/psnr"][0].tolist(), "val/psnr": logged["val/psnr"][1].tolist(),
                  "val/input_psnr": logged["val/input_psnr"][1].tolist()}
    return {"name": name, "seconds": seconds, "steps": args.steps, "settings": settings,
            "scores": mean_scores(rows), "bands": scores_by_band(rows), "rows": rows,
            "validation": validation, "generator": generator, "data_config": data_cfg}


def score_on(generator, data_cfg, held_out: Path) -> dict:
    """Mean scores (``mean_scores``) of ``generator`` on every pair of the shard folder
    ``held_out``, read as ``data_cfg`` reads its validation set."""
    rows, _ = score_pairs(generator, val_pairs(dataclasses.replace(data_cfg, val_shards=held_out)))
    return mean_scores(rows)


def run_cross(args, names, modes: dict) -> int:
    """The cross-mode table: for each NAME of ``modes`` ({NAME: synthesize options}) the
    training and held-out pairs made with those options, one run per NAME trained on its
    pairs, and every run scored on every NAME's held-out pairs (the same photos and crops).
    ``--repeat NAME`` trains NAME's run again with seed + 1: the spread of one cell."""
    data = {mode: build_data(args.out / "data", args.kernel_size, args.seed, args.train_crops,
                             args.held_out_crops, options, options) for mode, options in modes.items()}
    cells, runs = {}, []
    trained = [(mode, args.seed) for mode in modes] + [(args.repeat, args.seed + 1)] * bool(args.repeat)
    for name in names:
        for mode, seed in trained:
            train_shards, held_out = data[mode]
            label = f"{mode}" + (f" (seed {seed})" if seed != args.seed else "")
            folder = args.out / (f"{name}{args.tag}-cross-{mode}" + ("" if seed == args.seed else f"-seed{seed}"))
            if folder.exists() and not (args.reuse and (folder / "bench-seconds.json").exists()):
                shutil.rmtree(folder)
            r = train(name, folder, train_shards, held_out, argparse.Namespace(**{**vars(args), "seed": seed}),
                      {**RUNS[name], **parse_sets(args.set)})
            row = {other: score_on(r["generator"], r["data_config"], data[other][1]) for other in modes}
            cells[f"{name}: {label}"] = {other: {"input_psnr": sc["input_psnr"], "psnr": sc["psnr"],
                                                 "gain": sc["psnr"] - sc["input_psnr"], "pairs": sc["count"]}
                                         for other, sc in row.items()}
            runs.append({"name": name, "trained_on": mode, "seed": seed, "seconds": r["seconds"],
                         "settings": r["settings"]})
            print(f"{name}, trained on {label}: " + ", ".join(f"{o} {c['gain']:+.2f}" for o, c in
                                                             cells[f'{name}: {label}'].items()) + " dB", flush=True)
    print(f"\ncross-mode table: held-out gain in dB (PSNR of the last generator minus the blurred input's, "
          f"RGB uint8, whole 128x128 crop, range 255) of a run trained on the row's pairs, scored on the "
          f"column's held-out pairs ({', '.join(HELD_OUT_PHOTOS)}, never trained on); {args.steps} steps, "
          f"tiny preset; input PSNR of each held-out set in the last line")
    width = max(12, *(len(m) for m in modes))
    print(f"{'trained on':{width + 6}s} " + " ".join(f"{m:>{width}s}" for m in modes))
    for label, row in cells.items():
        print(f"{label:{width + 6}s} " + " ".join(f"{row[m]['gain']:+{width}.2f}" for m in modes))
    first = next(iter(cells.values()))
    print(f"{'input dB':{width + 6}s} " + " ".join(f"{first[m]['input_psnr']:{width}.2f}" for m in modes))
    if args.repeat:
        a = next(row for label, row in cells.items() if label.endswith(f": {args.repeat}"))
        b = next(row for label, row in cells.items() if label.endswith(f"(seed {args.seed + 1})"))
        diffs = [abs(a[m]["gain"] - b[m]["gain"]) for m in modes]
        print(f"run to run ({args.repeat}, seeds {args.seed} and {args.seed + 1}): the gains differ by "
              f"{max(diffs):.2f} dB at most, {float(np.mean(diffs)):.2f} dB on average over the columns")
    with open(args.out / f"cross{args.tag}.json", "w") as f:
        json.dump({"modes": modes, "cells": cells, "runs": runs, "argv": sys.argv[1:]}, f, indent=1)
    print(f"cells and runs: {args.out / f'cross{args.tag}.json'}")
    return 0


def draw_validation(results: list[dict], path: Path) -> None:
    """Validation PSNR of every run against the step, the blurred input dashed."""
    series = {}
    for r in results:
        steps = np.asarray(r["validation"]["steps"], np.int64)
        series[f"{r['name']}/psnr"] = (steps, np.asarray(r["validation"]["val/psnr"]))
    first = results[0]["validation"]
    series["input"] = (np.asarray(first["steps"], np.int64), np.asarray(first["val/input_psnr"]))
    panels = tuple((f"{r['name']}/psnr", "input", f"{r['name']}: validation PSNR, dB (dashed: blurred input)")
                   for r in results)
    write_png(path, plot_curves(series, panels=panels))


def fold_line(label: str, fold: dict) -> str:
    bands = "  ".join(f"{fold['bands'][b]:+6.2f} ({fold['band_counts'][b]:2d})" if b in fold["bands"] else f"{'-':>11s}"
                      for b in BAND_LABELS)
    return (f"{label:10s} {fold['input_psnr']:6.2f} {fold['psnr']:6.2f} {fold['gain']:+6.2f}  {bands}  "
            f"{fold['sharp_psnr']:6.2f} {fold['sharp_psnr_min']:6.2f} {fold['sharp_photo_min']:6.2f}  "
            f"{fold['seconds']:5.0f}s  {', '.join(fold['held_out'])}"
            + (f" ({fold['flat']} flat pairs left out of the gain)" if fold.get("flat") else ""))


BAND_LABELS = ("< 25 dB", "25-30 dB", "30-35 dB", ">= 35 dB")


def fold_record(k: int, held_photos, run: dict, photos: dict) -> dict:
    """One fold's figures from a ``train`` result and ``sharp_photo_scores``.  The gain and
    its bands leave out pairs whose blurred image *is* the sharp one (input PSNR inf:
    a flat crop, e.g. of hubble_deep_field's black sky, that no kernel changes), for
    which a gain is undefined; "flat" counts them.  The sharp-input scores keep every pair."""
    rows = [row for row in run["rows"] if math.isfinite(row["input_psnr"])]
    s, bands, every = mean_scores(rows), scores_by_band(rows), mean_scores(run["rows"])
    return {"fold": k, "held_out": list(held_photos), "pairs": s["count"], "flat": len(run["rows"]) - len(rows),
            "input_psnr": s["input_psnr"], "psnr": s["psnr"], "gain": s["psnr"] - s["input_psnr"],
            "bands": band_gains(bands), "band_counts": {b["band"]: b["count"] for b in bands},
            "sharp_psnr": every["sharp_psnr"], "sharp_psnr_min": every["sharp_psnr_min"],
            "sharp_photos": photos, "sharp_photo_min": min(photos.values()), "seconds": run["seconds"], "run": run}


def run_folds(args, names, only) -> int:
    """Each run of ``names`` on each fold of ``only``: train on the fold's training photos,
    score its held-out photos (pairs, their sharp crops, the whole photos); print one
    line per fold and run, then the folds together (``summarize_folds``)."""
    results = {name: [] for name in names}
    for k in only:
        train_photos, held_photos = fold_split(FOLD_PHOTOS, args.folds, k)
        train_shards, held_out = build_fold_data(args.out / "data", args.kernel_size, args.seed, args.train_crops,
                                                 args.held_out_crops, train_photos, held_photos,
                                                 f"{args.folds}-{k}")
        for name in names:
            folder = args.out / f"{name}{args.tag}-fold{args.folds}-{k}"
            if folder.exists():
                shutil.rmtree(folder)
            r = train(name, folder, train_shards, held_out, args, {**RUNS[name], **parse_sets(args.set)})
            r.pop("data_config", None)
            fold = fold_record(k, held_photos, r, sharp_photo_scores(r.pop("generator"), held_photos))
            photos = fold["sharp_photos"]
            results[name].append(fold)
            print(f"fold {k} of {args.folds}, {name}: gain {fold['gain']:+.2f} dB; sharp crops worst "
                  f"{fold['sharp_psnr_min']:.2f} dB; whole photos " +
                  ", ".join(f"{n} {v:.2f}" for n, v in photos.items()), flush=True)
    return print_folds(results, args.folds, args.steps, args.tag, args.out / f"folds{args.tag}.json")


def print_folds(results: dict, folds: int, steps: int, tag: str, path: Path | None) -> int:
    """The fold table of ``results`` ({run name: [fold_record, ...]}) and the folds
    together; writes them to ``path`` (folds.json) unless None."""
    print(f"\nheld-out gain by fold ({folds} folds over {len(FOLD_PHOTOS)} scikit-image photos, each held out "
          f"once; {steps} steps; last generator): PSNR on RGB uint8, whole 128x128 crop, range 255, in dB. "
          "Bands: gain (pairs) by the blurred input's PSNR. sharp: the held-out sharp crops put through the "
          "model, PSNR vs themselves, mean and worst; photo: the worst whole held-out photo, same")
    head = "  ".join(f"{b:>11s}" for b in BAND_LABELS)
    summary = {}
    for name, records in results.items():
        print(f"{name + tag:10s} {'input':>6s} {'output':>6s} {'gain':>6s}  {head}  "
              f"{'sharp':>6s} {'worst':>6s} {'photo':>6s}  {'time':>6s}  held out")
        for fold in records:
            print(fold_line(f"fold {fold['fold']}", fold))
        summary[name] = summarize_folds(records)
        t = summary[name]
        print(f"{'':10s} gain over folds: mean {t['mean_gain']:+.2f}, spread (std) {t['spread']:.2f}, "
              f"lowest {t['min_gain']:+.2f}, highest {t['max_gain']:+.2f} dB; lowest band gain: "
              + ", ".join(f"{b} {v:+.2f}" for b, v in t["worst_band"].items())
              + f"; worst sharp crop {t['sharp_psnr_min']:.2f} dB, worst sharp photo {t['sharp_photo_min']:.2f} dB")
    if path is not None:
        with open(path, "w") as f:
            json.dump({"folds": results, "summary": summary, "argv": sys.argv[1:]}, f, indent=1)
        print(f"per-fold runs and per-pair scores: {path}")
    return 0


def table_from(paths, tag: str) -> int:
    """--table-from: the fold table of folds.json files written by earlier --folds runs
    (e.g. one fold each), each fold scored again from its stored per-pair rows."""
    results, folds, steps = {}, set(), set()
    for path in paths:
        saved = json.loads(Path(path).read_text())
        for name, records in saved["folds"].items():
            for old in records:
                run = old["run"]
                folds.add(fold_count(saved))
                steps.add(run["steps"])
                results.setdefault(name, []).append(fold_record(old["fold"], old["held_out"], run, old["sharp_photos"]))
    if len(folds) != 1 or len(steps) != 1:
        raise SystemExit(f"--table-from: runs of different --folds ({sorted(folds)}) or --steps ({sorted(steps)})")
    for records in results.values():
        records.sort(key=lambda f: f["fold"])
    return print_folds(results, folds.pop(), steps.pop(), tag, None)


def fold_count(saved: dict) -> int:
    """K of the --folds K run that wrote ``record`` (from its argv)."""
    argv = saved.get("argv", [])
    return int(argv[argv.index("--folds") + 1]) if "--folds" in argv else len(FOLD_PHOTOS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-learning"), help="work folder (kept)")
    parser.add_argument("--runs", default="gan,pixel", help=f"comma-separated, from {', '.join(RUNS)}")
    parser.add_argument("--steps", type=int, default=3600, help="generator steps per run")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="TrainConfig/DataConfig change on top of the tiny preset, e.g. lr=3e-4")
    parser.add_argument("--tag", default="", help="suffix of the run folders (to keep variants apart)")
    parser.add_argument("--kernel-size", type=int, default=21, help="PSF side in px (trajectory up to size - 2)")
    parser.add_argument("--train-crops", type=int, default=512, help="128-px crops per training photo")
    parser.add_argument("--held-out-crops", type=int, default=24, help="128-px crops per held-out photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--online", action="store_true",
                        help="blur the training shards' sharp crops on the fly (trainer fit --online), "
                             "a fresh --kernel-size kernel per draw")
    parser.add_argument("--train-mode", default="", metavar="OPTIONS",
                        help='training pairs made with these synthesize blur-mode and realism options, '
                             'e.g. "--shake nonuniform" (default: plain blur)')
    parser.add_argument("--held-out-mode", default="", metavar="OPTIONS",
                        help="held-out pairs made with these synthesize options")
    parser.add_argument("--train-camera", default=None, metavar="NAME",
                        help='short for --train-mode "--camera NAME" (RSBlur\'s pipeline)')
    parser.add_argument("--held-out-camera", default=None, metavar="NAME",
                        help='short for --held-out-mode "--camera NAME"')
    parser.add_argument("--cross", nargs="+", default=None, metavar="NAME=OPTIONS",
                        help='the cross-mode table: train on each NAME\'s pairs, score on each NAME\'s held-out '
                             'pairs, e.g. plain= shake="--shake nonuniform"')
    parser.add_argument("--reuse", action="store_true",
                        help="with --cross: score the finished runs already in --out again instead of training "
                             "them (to add a mode to a table)")
    parser.add_argument("--repeat", default=None, metavar="NAME",
                        help="with --cross: train NAME's run twice (seeds --seed and --seed + 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--folds", type=int, default=0, metavar="K",
                        help="rotate the held-out photos: K folds over all 17 photos, each held out once "
                             "(0: the fixed split above)")
    parser.add_argument("--table-from", nargs="+", default=None, metavar="JSON",
                        help="print the fold table of folds.json files of earlier --folds runs, and stop")
    parser.add_argument("--only-folds", default="", metavar="LIST",
                        help="with --folds: run these folds only, e.g. 0,2 (default: all)")
    argv = list(sys.argv[1:] if argv is None else argv)
    # "--tag -online" reads as intended: argparse would take "-online" for an option.
    for k in range(len(argv) - 1):
        if argv[k] == "--tag":
            argv[k:k + 2] = [f"--tag={argv[k + 1]}", ""]
    argv = [a for a in argv if a != ""]
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.runs.split(",") if n]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown run {unknown[0]!r} (choose from {', '.join(RUNS)})")

    if args.table_from:
        return table_from(args.table_from, args.tag)
    for part in ("train", "held_out"):
        camera = getattr(args, f"{part}_camera")
        if camera:
            setattr(args, f"{part}_mode", f"{getattr(args, f'{part}_mode')} --camera {camera}".strip())
    modes = dict(item.partition("=")[::2] for item in args.cross or ())
    try:   # every options string checked before any work
        for options in (args.train_mode, args.held_out_mode, *modes.values()):
            blur_settings(shlex.split(options))
    except UserError as exc:
        parser.error(str(exc))
    if args.repeat and args.repeat not in modes:
        parser.error(f"--repeat {args.repeat}: not a name of --cross ({', '.join(modes) or 'none given'})")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cross:
        if args.folds or args.online or args.train_mode or args.held_out_mode:
            parser.error("--cross makes its own pairs: no --folds, --online or --*-mode")
        return run_cross(args, names, modes)
    if args.folds:
        if args.online or args.train_mode or args.held_out_mode:
            parser.error("--folds runs plain shard pairs: no --online or --*-mode")
        only = [int(k) for k in args.only_folds.split(",") if k] or list(range(args.folds))
        try:
            for k in only:
                fold_split(FOLD_PHOTOS, args.folds, k)
        except ValueError as exc:
            parser.error(str(exc))
        return run_folds(args, names, only)
    train_shards, held_out = build_data(args.out / "data", args.kernel_size, args.seed,
                                        args.train_crops, args.held_out_crops, args.train_mode,
                                        args.held_out_mode)
    results = []
    for name in names:
        folder = args.out / f"{name}{args.tag}"
        if folder.exists():
            shutil.rmtree(folder)
        online = {"online": True, "online_kernel_size": args.kernel_size} if args.online else {}
        results.append(train(name, folder, train_shards, held_out, args,
                             {**RUNS[name], **online, **parse_sets(args.set)}))

    r0 = results[0]["scores"]
    made = {"training": args.train_mode, "held-out": args.held_out_mode}
    made = "; ".join(f"{part} pairs made with {options}" for part, options in made.items() if options)
    print(f"\nheld-out pairs: {r0['count']} (128x128 crops of {', '.join(HELD_OUT_PHOTOS)}, never trained on"
          + (f"; {made}" if made else "") + "); "
          "PSNR/SSIM on RGB uint8, whole image, range 255; SSIM skimage 7x7 uniform; last generator of each run")
    print(f"{'':14s} {'PSNR dB':>8s} {'gain dB':>8s} {'SSIM':>7s}  {'time':>7s}  settings")
    print(f"{'blurred input':14s} {r0['input_psnr']:8.2f} {'':>8s} {r0['input_ssim']:7.4f}")
    for r in results:
        s = r["scores"]
        print(f"{r['name'] + args.tag:14s} {s['psnr']:8.2f} {s['psnr'] - s['input_psnr']:+8.2f} {s['ssim']:7.4f}  "
              f"{r['seconds']:6.0f}s  {json.dumps(r['settings'])}")
    print("by band of input PSNR (gain dB, pairs):")
    for r in results:
        print(f"  {r['name'] + args.tag:12s} " + "  ".join(f"{b['band']}: {b['gain']:+.2f} ({b['count']})"
                                                         for b in r["bands"]))
    draw_validation(results, args.out / f"validation{args.tag}.png")
    for r in results:
        del r["generator"], r["data_config"]
    with open(args.out / f"results{args.tag}.json", "w") as f:
        json.dump({"runs": results, "argv": sys.argv[1:]}, f, indent=1)
    print(f"curves: {args.out / f'validation{args.tag}.png'}; per-pair scores: {args.out / f'results{args.tag}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``trainer`` command line: fit, eval, deblur, export, curves.

Each command parses its options, calls the library and prints; the work
lives in the trainer modules.  Library imports are inside the commands, so
that ``trainer --help`` starts fast.
"""
from pathlib import Path

import click

from blurgen.plumbing.command_line import HELP, Commands, UserError, check_output, package_version, realism_options
from blurgen.plumbing.run_config import config_option
from trainer.listed import ListingOption, Names


@click.group(cls=Commands, context_settings=HELP)
@click.version_option(package_version(), "--version", prog_name="trainer")
def trainer():
    """Train and evaluate the DeblurGAN conditional GAN."""


# --- trainer: fit, eval, deblur ------------------------------------------------
def _trainer_errors():
    """The exceptions that mean 'bad input': the packages' user errors and OSError (a full
    disk, an unreadable file), turned into one line.  Anything else is a bug: its traceback stays."""
    from blurgen.errors import BlurgenError
    from trainer.errors import TrainerError

    return (TrainerError, BlurgenError, OSError)


def _trainer_message(exc: Exception) -> str:
    """One line for a trainer error; an OSError that names its file says it first
    ("runs/a/last.pt: No space left on device")."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _generator_on(checkpoint_path, device_name):
    from trainer.device import resolve_device
    from trainer.weights import load

    device = resolve_device(device_name)
    generator, state = load(checkpoint_path, device)
    return generator, state, device


def _weights_option(command):
    """``--checkpoint`` (also ``--model``): a checkpoint file or a model folder."""
    return click.option("--checkpoint", "--model", "checkpoint_path", type=click.Path(), required=True,
                        help="last.pt or best.pt of a run, or a model folder (trainer export --model-folder).")(command)


def _presets_help() -> str:
    from trainer.config import DEFAULT_PRESET, PRESETS

    return "; ".join(f"{name}: {preset.help}" for name, preset in PRESETS.items()) + f".  [default: {DEFAULT_PRESET}]"


def _metrics_help() -> str:
    from trainer.metrics import ALWAYS, METRICS

    return (f"Comma-separated metrics ({', '.join(METRICS)}) or all; {' and '.join(ALWAYS)} always. "
            "See docs/metrics.md.")


def _benchmarks_help() -> str:
    from trainer.benchmarks import BENCHMARKS

    named = [f"{name} {root}" for name, root in BENCHMARKS.items()]
    return (f"A published test set scored as its paper does: {', '.join(named[:-1])} or {named[-1]} "
            "(docs/metrics.md).")


@trainer.command("fit")
@config_option
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run folder: checkpoints (last.pt, best.pt), scalars.csv, tensorboard/, preview.png, curves.png.")
@click.option("--shards", multiple=True, type=click.Path(file_okay=False),
              help="Shard folder of synthetic pairs (blurgen synthesize); repeat for several.")
@click.option("--gopro", type=click.Path(file_okay=False), default=None, help="GOPRO_Large root (train/, test/).")
@click.option("--val-shards", type=click.Path(file_okay=False), default=None,
              help="Validate on this shard folder (whole samples).  [default: GoPro test/, else the last training shard]")
@click.option("--allow-partial", is_flag=True, default=None,
              help="Use shard folders that `blurgen synthesize` has not finished (refused otherwise).")
@click.option("--mix", default=None, help="Synthetic:GoPro draws, exact in every window.  [default: 2:1]")
@click.option("--preset", cls=ListingOption, type=Names("trainer.config:PRESETS"), default=None,
              help=_presets_help)
@click.option("--steps", type=int, default=None, help="Train for N generator steps (the lr schedule spans them).")
@click.option("--epochs", type=int, default=None, help="Train for N epochs if --steps is not given.  [default: 300]")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where its last checkpoint stopped.")
@click.option("--init-from", type=click.Path(dir_okay=False), default=None,
              help="Start a new run from this checkpoint's generator and critic weights (a new schedule and optimisers).")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N.  [default: auto]")
@click.option("--seed", type=int, default=None, help="Seed of the weights, the data stream and dropout.  [default: 0]")
@click.option("--crop", type=int, default=None, help="Random crop side (multiple of 4).  [default: 256; tiny 80]")
@click.option("--batch-size", type=int, default=None, help="Pairs per step and process.  [default: 1; tiny 6]")
@click.option("--flip/--no-flip", default=None, help="Random horizontal flips.  [default: on]")
@click.option("--gopro-scale", type=float, default=None, help="Resize GoPro frames by this first.  [default: 0.5]")
@click.option("--gopro-blur", type=Names("trainer.gopro:BLUR_FOLDERS"), default=None, help="GoPro's blurred frames: blur, or blur_gamma (averaged in linear light).  [default: blur]")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes.  [default: 2]")
@click.option("--online", is_flag=True, default=None,
              help="Blur the shards' sharp crops in the workers, a fresh kernel per draw (docs/training.md).")
@click.option("--online-kernel-size", type=int, default=None, help="Online PSF side.  [default: crop/4, odd]")
@realism_options(prefix="online-", default=None)
@click.option("--online-mode", type=Names("blurgen.modes:ONLINE_MODES"), default=None,
              help="Online blur mode: uniform, a kernel per draw; shake, non-uniform camera shake (docs/modes.md).  "
                   "[default: uniform]")
@click.option("--online-mode-settings", default=None, metavar="KEY=VALUE,...",
              help="The online mode's settings, e.g. max_angle=2,max_shift=1,rolling=0.1-0.5 for shake, defocus=1-3 for uniform.")
@click.option("--sharp-fraction", type=float, default=None,
              help="Share of draws trained as identity pairs (blurred := sharp), in [0, 1).  [default: 0; tiny 0.2]")
@click.option("--content-loss", type=Names("trainer.losses:CONTENT_LOSSES"), default=None,
              help="perceptual: MSE of VGG19 conv3_3 features (paper); l1/l2: on pixels; psnr: -PSNR per image.  [default: perceptual; tiny psnr]")
@click.option("--content-weight", type=float, default=None, help="lambda of L_GAN + lambda L_X.  [default: 100; tiny 10]")
@click.option("--adversarial-weight", type=float, default=None,
              help="Weight of L_GAN; 0 trains on the content loss alone, without a critic.  [default: 1]")
@click.option("--gp-weight", type=float, default=None, help="Gradient-penalty weight lambda_gp.  [default: 10]")
@click.option("--gradient-penalty", type=Names("trainer.losses:GRADIENT_PENALTIES", default_first="trainer.config:TrainConfig.gradient_penalty"), default=None,
              help="per-pixel: DeblurGAN's code; per-image: Gulrajani et al. (docs/training.md).  [default: per-pixel]")
@click.option("--psnr-ceiling", type=float, default=None,
              help="dB: --content-loss psnr counts no image as closer than this (docs/training.md).  [default: 40]")
@click.option("--init", type=Names("trainer.models:GENERATOR_INITS"), default=None,
              help="Generator start: paper N(0, 0.02), or identity (last conv zero: G(x) = x).  [default: paper; tiny identity]")
@click.option("--critic-steps", type=int, default=None, help="Critic steps per generator step.  [default: 5; tiny 1]")
@click.option("--lr", type=float, default=None, help="Adam learning rate of both nets.  [default: 1e-4; tiny 1e-3]")
@click.option("--beta1", type=float, default=None, help="Adam's beta1.  [default: 0.5, DeblurGAN's]")
@click.option("--beta2", type=float, default=None, help="Adam's beta2.  [default: 0.999]")
@click.option("--ngf", type=int, default=None, help="Generator base width.  [default: 64; tiny 16]")
@click.option("--blocks", "n_blocks", type=int, default=None, help="Generator ResBlocks.  [default: 9; tiny 2]")
@click.option("--ndf", type=int, default=None, help="Critic base width.  [default: 64; tiny 16]")
@click.option("--dropout", type=float, default=None, help="Dropout in the ResBlocks.  [default: 0.5; tiny 0]")
@click.option("--norm", type=Names("trainer.models:GENERATOR_NORMS"), default=None,
              help="Generator normalisation (none: He init, no InstanceNorm).  [default: instance; tiny none]")
@click.option("--skips/--no-skips", default=None,
              help="U-Net skips: the encoder's full- and half-resolution features added to the decoder's "
                   "(not in the paper; docs/training.md).  [default: off; tiny on]")
@click.option("--vgg-weights", type=click.Path(dir_okay=False), default=None,
              help="torchvision vgg19 state dict, for machines without internet.  [default: torchvision's cache]")
@click.option("--checkpoint-every", type=int, default=None, help="Steps between checkpoints (also before every validation).  [default: 1000; tiny 100]")
@click.option("--val-every", type=int, default=None, help="Validate every N steps instead of at epoch ends (and at the last step).  [default: at epoch ends]")
@click.option("--val-limit", type=int, default=None, help="Held-out pairs per validation, 0 for all.  [default: 100; tiny 8]")
@click.option("--log-every", type=int, default=None, help="Steps between logged losses.  [default: 10; tiny 5]")
@click.option("--amp/--no-amp", default=None,
              help="bfloat16 autocast.  [default: on where the device has native bf16: CUDA since Ampere, "
                   "CPUs with AVX512-BF16/AMX]")
@click.option("--channels-last/--no-channels-last", default=None, help="NHWC memory layout.  [default: on with CUDA]")
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the generator and the VGG.")
@click.option("--cuda-graphs", is_flag=True, default=None,
              help="Capture the whole training step as one CUDA graph (one GPU, one process; docs/training.md).")
@click.option("--deterministic", is_flag=True, default=None,
              help="Deterministic GPU kernels, no cuDNN autotuner: bit-exact --resume on a GPU (docs/training.md).")
@click.option("--preview/--no-preview", default=None, help="Draw a validation triplet in the terminal.  [default: on]")
def fit_cmd(out, preset, resume, init_from, **options):
    """Train DeblurGAN (WGAN-GP + perceptual loss) on shards and/or GoPro frames.

    Single GPU or CPU: `trainer fit ...`; several GPUs: `torchrun --nproc-per-node N
    $(which trainer) fit ...` (each process reads its own share of the data).
    """
    import signal
    import sys

    from blurgen.plumbing.command_line import say
    from trainer.cluster import distributed_from_env
    from trainer.config import DEFAULT_PRESET, PRESETS, TrainConfig, make_configs
    from trainer.fit_options import config_changes
    from trainer.loop import fit, resume_configs
    from trainer.run_folder import check_free

    try:
        train, data = config_changes({**options, "out": out})
        if resume:   # the same command plus --resume continues the run (a requeued job)
            if distributed_from_env().main:
                check_free(out)   # a live run's settings are not this command's to read
            train_cfg, data_cfg = resume_configs(out, train, data, preset)
        else:
            train_cfg, data_cfg = make_configs(preset or DEFAULT_PRESET, train, data)
        notes = []
        tuned_for = PRESETS[preset or DEFAULT_PRESET].train.get("content_loss", TrainConfig.content_loss)
        if not resume and options.get("content_loss") not in (None, tuned_for) and options.get("content_weight") is None:
            # The weight is the balance of two losses of different scales; tuned for one, it is
            # another balance with another (the tiny preset's lambda = 10 with L1: -3.85 dB held-out).
            notes.append(f"warning: --content-loss {train_cfg.content_loss} keeps the content weight "
                         f"{train_cfg.content_weight:g} that --preset {preset or DEFAULT_PRESET} tuned for its "
                         f"{tuned_for} loss; set --content-weight for {train_cfg.content_loss} (docs/training.md, "
                         "'Content loss')")
        if train_cfg.vgg_weights is not None and train_cfg.content_loss != "perceptual":
            click.echo(f"warning: --vgg-weights is ignored with --content-loss {train_cfg.content_loss} "
                       "(only the perceptual loss uses VGG19)", err=True)
        settings = _fit_settings(train_cfg, data_cfg, None if resume else preset or DEFAULT_PRESET, init_from, out)
        summary = fit(train_cfg, data_cfg, resume=resume, init_from=init_from, notes=tuple(notes), settings=settings)
    except _trainer_errors() as exc:
        raise UserError(_trainer_message(exc)) from None
    except KeyboardInterrupt:
        # A second Ctrl-C: the step in progress is dropped, last.pt is the previous checkpoint.
        if (Path(out) / "last.pt").exists():
            click.echo(f"interrupted: {out}/last.pt keeps the last checkpoint; continue with --resume", err=True)
        else:
            click.echo("interrupted before the first checkpoint: nothing was saved", err=True)
        sys.exit(128 + signal.SIGINT)
    stopped = summary["stopped"]
    if summary["rank"] != 0:   # under torchrun, rank 0 speaks for all
        if stopped:
            sys.exit(128 + signal.Signals[stopped])
        return
    best = summary["best"]
    say((f"stopped by {stopped}" if stopped else "finished") + f" at step {summary['step']} of "
        f"{summary['total_steps']}; " + (f"best PSNR {best['psnr']:.2f} dB, SSIM {best['ssim']:.4f} "
                                         f"at step {best['step']} ({out}/best.pt)" if best else "no validation yet")
        + f"; last checkpoint {out}/last.pt")
    if stopped:
        # Not 0: a script or scheduler must not take a preempted run for a finished one.
        sys.exit(128 + signal.Signals[stopped])


def _fit_settings(train_cfg, data_cfg, preset, init_from, out) -> str:
    """The text of the run folder's config.yaml: every option of ``fit`` with the value the
    run uses (blurgen.plumbing.run_config), but the one-off --resume."""
    from blurgen.plumbing.run_config import CONFIG, render, settings
    from trainer.fit_options import ONE_OFF, final_options

    values = final_options(train_cfg, data_cfg, preset, init_from)
    header = [f"The options of the `trainer fit` that started the run in {out}, each with the value the run uses",
              f"(after --preset, --config and the command line; written by trainer {package_version()}).",
              "Repeat the run in a new folder (options on the command line override this file):",
              f"  trainer fit --config {Path(out) / CONFIG} --out NEW_FOLDER"]
    return render(settings(click.get_current_context().command, values, leave_out=ONE_OFF), header)


@trainer.command("launch", context_settings=dict(ignore_unknown_options=True, allow_interspersed_args=False))
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED, metavar="[TORCHRUN OPTIONS] fit [FIT OPTIONS]")
def launch_cmd(arguments):
    """`trainer fit` on several GPUs or nodes: torchrun's options (--nproc-per-node, --nnodes,
    --rdzv-backend, --rdzv-endpoint, --rdzv-id), then `fit` and its options.  Unlike plain
    torchrun, SIGUSR1 (Slurm's --signal warning) reaches the ranks, and a stop signal ends
    with 128 + its number after the ranks saved (docs/training.md, 'On a Slurm cluster')."""
    import sys

    from trainer.launch import LaunchError, launch, reported_by_the_rank, split_arguments

    try:
        status = launch(*split_arguments(list(arguments)))
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    if not reported_by_the_rank(status):
        click.echo(f"error: a rank failed with exit status {status} (its output is above)", err=True)
    sys.exit(status)


@trainer.command("eval")
@_weights_option
@click.option("--benchmark", type=(str, click.Path(file_okay=False)), default=None, metavar="NAME ROOT",
              cls=ListingOption, help=_benchmarks_help)
@click.option("--pairs", "folders", type=(click.Path(file_okay=False), click.Path(file_okay=False)), default=None,
              metavar="BLUR_DIR SHARP_DIR", help="Any folder of blurred images against sharp ones of the same stem.")
@click.option("--gopro", type=click.Path(file_okay=False), default=None,
              help="GOPRO_Large root: scores its test/ split (with --gopro-scale and --gopro-blur).")
@click.option("--shards", multiple=True, type=click.Path(file_okay=False),
              help="Shard folder: scores its last shard (the one training holds out).")
@click.option("--gopro-scale", type=float, default=None,
              help="Resize GoPro test frames first (1: full resolution, as published results).  "
                   "[default: the run's validation setting, else 1]")
@click.option("--gopro-blur", type=Names("trainer.gopro:BLUR_FOLDERS"), default=None,
              help="[default: the run's validation setting, else blur]")
@click.option("--limit", type=int, default=0, show_default=True, help="Pairs to score, spread over the set; 0: all.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tile", type=int, default=2048, show_default=True, help="Larger images are restored in tiles of this side.")
@click.option("--overlap", type=int, default=128, show_default=True, help="Overlap of tiles in pixels.")
@click.option("--metrics", "metric_names", cls=ListingOption, default="all", show_default=True,
              help=_metrics_help)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write per-image scores (restored and blurred) to this CSV.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False), default=None,
              help="Draw the best and worst restorations and a histogram of the PSNR gains into this PNG.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: every metric, its input_ twin, count, bands; ssim is ssim_skimage.")
def eval_cmd(checkpoint_path, benchmark, folders, gopro, shards, gopro_scale, gopro_blur, limit, device, tile,
             overlap, metric_names, csv_path, png_path, as_json):
    """Every metric of restored vs sharp, next to blurred vs sharp (whole image, range 255)."""
    import json

    import trainer.eval_settings as eval_settings
    from trainer.benchmarks import open_eval_set
    from trainer.evaluate import mean_scores, score_pairs, scores_by_band, seconds_per_image
    from trainer.metrics import DESCRIPTIONS, parse_metrics

    if limit < 0:
        raise UserError(f"--limit must be >= 0, got {limit}")
    for path in (csv_path, png_path):   # before scoring every image, not after
        if path:
            check_output(path, overwrite=True)
    try:
        metrics = parse_metrics(metric_names)
    except ValueError as exc:
        raise UserError(f"--metrics: {exc}") from None
    try:
        generator, state, dev = _generator_on(checkpoint_path, device)
        # Unless a flag says otherwise, GoPro frames are scored as the run validated them.
        settings = eval_settings.resolve({"gopro_scale": gopro_scale, "gopro_blur": gopro_blur},
                                         eval_settings.run_data_config(checkpoint_path, state))
        eval_set = open_eval_set(benchmark=benchmark, folders=folders, gopro=gopro, shards=shards,
                                 gopro_scale=settings["gopro_scale"].value, gopro_blur=settings["gopro_blur"].value,
                                 limit=limit or None)
        if len(eval_set.pairs) == 0:
            raise UserError("no pairs to evaluate")
        rows, _ = score_pairs(generator, eval_set.pairs, device=dev, tile=tile, overlap=overlap, progress=True,
                              metrics=metrics, extra=eval_set.extra, sharp_input=True)
        _write_eval_files(csv_path, png_path, rows, eval_set.pairs, generator, dev, tile, overlap)
    except _trainer_errors() as exc:
        raise UserError(_trainer_message(exc)) from None
    scores, bands, seconds = mean_scores(rows), scores_by_band(rows), seconds_per_image(rows)
    held_out = None
    if shards and not gopro:  # which of the run's pairs these are: see trainer/heldout.py
        from trainer.heldout import shards_held_out, training_data

        held_out = shards_held_out(training_data(checkpoint_path, state), shards[0])
    described = {**{m: DESCRIPTIONS[m] for m in metrics}, **eval_set.extra_metrics}
    scored = settings if gopro else None   # the GoPro settings change only --gopro's pairs
    settings_line = eval_settings.describe(checkpoint_path, state, scored, tile, overlap)
    if as_json:
        click.echo(json.dumps({**scores, "ssim_variant": "ssim_skimage",
                               "metrics": described,
                               "pairs": eval_set.description, "step": state["step"],
                               "seconds_per_image": seconds, "device": str(dev),
                               **({"held_out": held_out[0], "held_out_why": held_out[1]} if held_out else {}),
                               "settings": {"checkpoint": str(checkpoint_path), "tile": tile, "overlap": overlap,
                                            **{k: {"value": s.value, "from": s.source}
                                               for k, s in (scored or {}).items()}},
                               "bands": [{k: b[k] for k in ("band", "count", "input_psnr", "psnr", "gain")}
                                         for b in bands]}))
        return
    _echo_eval_report(scores, bands, seconds, described, eval_set.description, state["step"], dev,
                      settings_line, held_out, len(rows), csv_path, png_path)


def _write_eval_files(csv_path, png_path, rows, pairs, generator, dev, tile, overlap):
    """``eval``'s --csv and --png: written once every pair is scored, with the
    tiling that scored them (the PNG restores its best and worst pairs again)."""
    from trainer.evaluate import restore, write_scores_csv

    if csv_path:
        write_scores_csv(csv_path, rows)
    if png_path:
        from trainer.report import write_eval_report

        write_eval_report(png_path, rows, pairs,
                          lambda image: restore(generator, image, device=dev, tile=tile, overlap=overlap))


def _echo_eval_report(scores, bands, seconds, described, description, step, dev, settings_line, held_out, n_rows,
                      csv_path, png_path):
    """``eval``'s report without --json: a table of the metrics restored, blurred and
    their gain, then one line each for what was scored, with what, and where it went."""
    import math

    click.echo(f"{'metric':13s} {'restored':>9s} {'blurred':>9s} {'gain':>8s}  what it is")
    for metric in described:
        restored, blurred = scores[metric], scores["input_" + metric]
        digits = 2 if metric.startswith("psnr") else 4
        click.echo(f"{metric:13s} {restored:9.{digits}f} {blurred:9.{digits}f} {restored - blurred:+8.{digits}f}"
                   f"  {described[metric]}")
    click.echo(f"{scores['count']} pairs: {description}; generator of step {step}; "
               "gain is restored minus blurred")
    click.echo(f"sharp inputs (each pair's sharp image put through the generator, PSNR vs itself): "
               f"mean {scores['sharp_psnr']:.2f} dB, worst {scores['sharp_psnr_min']:.2f} dB")
    click.echo(settings_line)
    if held_out:
        click.echo(held_out[1])
    if "ecc_converged" in scores and scores["ecc_converged"] < 1:
        click.echo(f"ECC alignment did not converge on {round((1 - scores['ecc_converged']) * scores['count'])} "
                   "pairs; they were scored unaligned")
    click.echo("psnr gain by band of the blurred input's PSNR: " + "; ".join(
        f"{b['band']}: {b['gain']:+.2f} dB ({b['count']})" for b in bands))
    if not math.isnan(seconds):
        click.echo(f"restoring took {seconds:.3f} s per image on {dev} (mean over {n_rows - 1} images, "
                   "the first, warm-up one excluded)")
    if csv_path:
        click.echo(f"per-image scores: {csv_path}")
    if png_path:
        click.echo(f"best and worst restorations, gain histogram: {png_path}")


@trainer.command("deblur")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@_weights_option
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the restored PNGs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tile", type=int, default=2048, show_default=True, help="Larger images are restored in tiles of this side.")
@click.option("--overlap", type=int, default=128, show_default=True, help="Overlap of tiles in pixels.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs as they are; restore only the others.")
@click.option("--side-by-side", is_flag=True, help="Write blurred | restored pictures instead of the restored ones.")
@click.option("--amp/--no-amp", default=None,
              help="bfloat16 autocast.  [default: on where the device has native bf16: CUDA since Ampere, "
                   "CPUs with AVX512-BF16/AMX]")
def deblur_cmd(inputs, checkpoint_path, out, device, tile, overlap, overwrite, skip_existing, side_by_side, amp):
    """Restore images (files, or folders of them searched recursively) of any size up to 89 M pixels, or
    videos (.mp4, .avi, .mov, .mkv) frame by frame; writes OUT/<name>.png (a folder's images keep their
    sub-folders), or OUT/<name>.mp4 at the video's frame rate.  Unreadable files are listed at the end (exit 1)."""
    import sys

    from blurgen.plumbing.command_line import interrupted
    from blurgen.plumbing.stopping import Interrupted, stop_on_signals
    from trainer.evaluate import deblur_files, find_deblur_inputs
    from trainer.precision import autocast_dtype

    try:
        with stop_on_signals() as stop:
            files = find_deblur_inputs(inputs)
            generator, _, dev = _generator_on(checkpoint_path, device)
            seconds: list[float] = []
            report = deblur_files(generator, files, out, device=dev, tile=tile, overlap=overlap,
                                  overwrite=overwrite, skip_existing=skip_existing, side_by_side=side_by_side,
                                  seconds=seconds, stop=stop, amp_dtype=autocast_dtype(dev, amp))
    except _trainer_errors() as exc:
        raise UserError(_trainer_message(exc)) from None
    except Interrupted as exc:
        interrupted(exc, f"the files finished are in {out}; the same command with --skip-existing "
                         "restores the others")
    videos = report.videos
    images = len(report.written) - videos
    wrote = [f"{n} {what}{'' if n == 1 else 's'}" for n, what in ((images, "image"), (videos, "video")) if n]
    click.echo(f"wrote {' and '.join(wrote) or 'nothing'} to {out}"
               + (f"; {len(report.skipped)} existing left as they were" if report.skipped else ""))
    for note in report.notes:
        click.echo(f"note: {note}")
    if len(seconds) > 1:
        unit = "frame" if videos else "image"
        click.echo(f"restoring took {sum(seconds[1:]) / len(seconds[1:]):.3f} s per {unit} on {dev} "
                   f"(mean over {len(seconds) - 1} {unit}s, the first, warm-up one excluded)")
    if report.failed:
        for _, reason in report.failed:
            click.echo(f"could not read {reason}", err=True)
        click.echo(f"error: {len(report.failed)} of {len(files)} inputs could not be read (listed above)", err=True)
        sys.exit(1)


@trainer.command("export")
@_weights_option
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), default=None,
              help="Write the generator as ONNX (needs the onnx and onnxscript packages).")
@click.option("--torchscript", "torchscript_path", type=click.Path(dir_okay=False), default=None,
              help="Write the generator as TorchScript (deprecated upstream; for libtorch).")
@click.option("--model-folder", "folder", type=click.Path(file_okay=False), default=None,
              help="Write a model folder: model.safetensors, config.json and a model card README.md "
                   "(loaded without unpickling; docs/export.md).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files (a model folder only if it is one).")
def export_cmd(checkpoint_path, onnx_path, torchscript_path, folder, overwrite):
    """The generator for inference: a model folder of safetensors weights, config and model card, or the bare
    network as ONNX or TorchScript: float32 (N, 3, H, W) RGB in [-1, 1] in and out, H and W multiples of 4
    (docs/export.md)."""
    from trainer.export import export_onnx, export_torchscript, onnx_difference

    if not onnx_path and not torchscript_path and not folder:
        raise UserError("give --model-folder DIR, --onnx FILE and/or --torchscript FILE")
    for path in (onnx_path, torchscript_path):   # before the export's work, not after it
        if path:
            check_output(path, overwrite)
    if folder:
        _check_model_folder_output(folder, overwrite)
    try:
        generator, state, _ = _generator_on(checkpoint_path, "cpu")
        if folder:
            import trainer.model_folder as model_folder

            model_folder.write(folder, state, checkpoint_path)
            click.echo(f"wrote {folder}/ ({model_folder.WEIGHTS}, {model_folder.CONFIG}, {model_folder.CARD}; "
                       f"generator of step {state['step']})")
        if onnx_path:
            try:
                export_onnx(generator, onnx_path)
            except ImportError as exc:
                raise UserError(f"ONNX export needs the onnx and onnxscript packages ({exc.name} is missing): "
                                "pip install 'blurgen[export]'") from None
            difference = onnx_difference(generator, onnx_path)
            check = ("onnxruntime not installed, not checked" if difference is None
                     else f"onnxruntime matches PyTorch to {difference:.1e}")
            click.echo(f"wrote {onnx_path} (generator of step {state['step']}; {check})")
        if torchscript_path:
            export_torchscript(generator, torchscript_path)
            click.echo(f"wrote {torchscript_path} (generator of step {state['step']})")
    except _trainer_errors() as exc:
        raise UserError(_trainer_message(exc)) from None
    if onnx_path or torchscript_path:
        click.echo('input "blurred" and output "restored": float32 (N, 3, H, W), RGB in [-1, 1], '
                   "H and W multiples of 4")


def _check_model_folder_output(folder, overwrite: bool) -> None:
    """Refuse, before any work, a model folder's path that exists (without --overwrite), that
    holds something other than a model folder (even with it: --overwrite replaces the folder
    whole), or whose parent is missing or not writable."""
    from pathlib import Path

    from blurgen.plumbing.command_line import check_parent
    from trainer.model_folder import is_model_folder

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file; give a folder name")
    if folder.is_dir():
        if not overwrite:
            raise UserError(f"{folder} exists; pass --overwrite to replace it")
        if any(folder.iterdir()) and not is_model_folder(folder):
            raise UserError(f"{folder} holds files and is not a model folder: not replaced (give another name)")
    check_parent(folder)


@trainer.command("curves")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Also draw the curves into this PNG (fit keeps RUN/curves.png up to date itself).")
def curves_cmd(run, png):
    """How a run is going: each logged scalar as a sparkline with its first, last, min and max."""
    from pathlib import Path

    from blurgen.plumbing.pictures import write_png
    from trainer.curves import plot_curves, read_scalars, sparkline
    from trainer.output import naming
    from trainer.run_folder import SCALARS

    if png:
        check_output(png, overwrite=True)
    if not Path(run).is_dir():
        raise UserError(f"{run}: no such run folder")
    if not (Path(run) / SCALARS).exists():
        raise UserError(f"{run}: no {SCALARS} (not a run folder of `trainer fit`, or a run that logged nothing yet)")
    try:
        series = read_scalars(Path(run) / SCALARS)
    except _trainer_errors() as exc:
        raise UserError(_trainer_message(exc)) from None
    if not series:
        raise UserError(f"{run}: nothing logged yet")
    import shutil

    from blurgen.plumbing.command_line import say

    width = max(len(name) for name in series)
    # The sparkline gives way on a narrow terminal, so that name, curve and "first -> last" share a line.
    spark = max(10, min(40, shutil.get_terminal_size().columns - width - 30))
    for name, (steps, values) in sorted(series.items()):
        say(f"{name:<{width}}  {sparkline(values, width=spark)}  "
            f"{values[0]:.4g} -> {values[-1]:.4g} (min {values.min():.4g}, max {values.max():.4g}; "
            f"{len(values)} points, steps {steps[0]}-{steps[-1]})")
    if png:
        try:
            with naming(png):
                write_png(png, plot_curves(series))
        except OSError as exc:
            raise UserError(_trainer_message(exc)) from None
        click.echo(f"wrote {png}")

"""Command-line entry points: the ``blurgen`` and ``trainer`` click groups.

The commands only parse arguments, call library functions and print; the work
lives in the ``blurgen`` and ``trainer`` packages.  Errors a user can cause are
raised as ``click.UsageError``/``click.ClickException`` (one line, exit 2/1),
never as tracebacks.
"""
import os
import sys

import click


class UserError(click.ClickException):
    """A one-line error caused by the user's input; exits with status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


class Commands(click.Group):
    """A click group whose commands' output, not only their files, fails in one line.

    Standard output redirected to a full disk (or a closed pipe) fails at a
    ``click.echo`` in the middle of a command, or only when Python flushes it
    at exit, as an "Exception ignored ..." report after a command that seemed
    to succeed.  Both become a one-line error and a non-zero exit.  Only an
    OSError raised by ``click.echo`` itself is blamed on the output; any
    other keeps its traceback.
    """

    def invoke(self, ctx):
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
        except OSError as exc:
            if not _raised_by_echo(exc):
                raise
            # Point the descriptor at /dev/null so that the interpreter's own
            # final flush of what is still buffered cannot fail a second time.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise UserError(f"standard output: {exc.strerror or exc}") from None
        return result


def _raised_by_echo(exc: BaseException) -> bool:
    """Whether ``exc`` was raised writing output: in ``click.echo`` or in the final flush."""
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    return ((frame.f_globals.get("__name__") == "click.utils" and frame.f_code.co_name == "echo")
            or (frame.f_code is Commands.invoke.__code__))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("blurgen")
    except PackageNotFoundError:   # run from a checkout that was never installed
        return "unknown (not installed)"


_HELP = {"help_option_names": ["-h", "--help"]}


def _plural(count: int, word: str) -> str:
    """'1 shard', '2 shards', '1,000 pairs' (English plural with s)."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _warn_ignored(names: list[str], why: str) -> None:
    """One warning line for options given on the command line that this run does not use."""
    given = [n for n in names if click.get_current_context().get_parameter_source(n).name == "COMMANDLINE"]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        click.echo(f"warning: {flags} {'is' if len(given) == 1 else 'are'} ignored {why}", err=True)


@click.group(cls=Commands, context_settings=_HELP)
@click.version_option(_version(), "--version", prog_name="blurgen")
def blurgen():
    """Synthesize motion-blurred / sharp training pairs."""


@click.group(cls=Commands, context_settings=_HELP)
@click.version_option(_version(), "--version", prog_name="trainer")
def trainer():
    """Train and evaluate the DeblurGAN conditional GAN."""


# --- blurgen: kernels (make-kernels, show-kernels) ---------------------------


def _check_output(path, overwrite: bool) -> None:
    """Refuse an existing output (without --overwrite) or an unwritable folder, before any work."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; pass --overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{parent}: no such folder")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{parent}: not writable")


def _write_png(path, image) -> None:
    """Write a PNG atomically; a full disk (or any failed write) is one line naming the path."""
    from blurgen.files import describe_os_error
    from blurgen.pictures import write_png

    try:
        write_png(path, image)
    except OSError as exc:
        raise UserError(f"{path}: could not write ({describe_os_error(exc)})") from None


def _interrupted(exc, what: str):
    """End a run stopped by Ctrl-C or SIGTERM: one line, exit 130 (as the shell does for Ctrl-C)."""
    import signal
    import sys

    signum = getattr(exc, "signum", signal.SIGINT)
    name = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}.get(signum, f"signal {signum}")
    click.echo(f"interrupted ({name}): {what}", err=True)
    sys.exit(130)


def _show_kernels(batch, index, png=None, echo=click.echo) -> None:
    from blurgen import kernel_view, terminal
    from blurgen.pictures import contact_sheet

    crops = kernel_view.display_crops(batch.psf)
    size = terminal.shutil.get_terminal_size((100, 24))
    labels = [f"#{i}" for i in index]
    # One scale for the whole grid; pictures and the parameter lines fit the terminal's height.
    for block in kernel_view.grid_blocks(crops, labels, size.columns, size.lines - len(labels) - 2):
        echo(block)
    for i, k in enumerate(index):
        echo(kernel_view.kernel_line(batch, i, int(k)))
    if png:
        _write_png(png, contact_sheet(crops, cols=min(8, len(crops)), cell=96, labels=labels))
        echo(f"wrote {png}")


@blurgen.command("make-kernels")
@click.option("-n", "count", type=int, default=1000, show_default=True, help="Number of kernels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the kernel stream.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Kernel bank to write (HDF5).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--size", type=int, default=64, show_default=True, help="PSF side in pixels.")
@click.option("--iters", type=int, default=2000, show_default=True, help="Trajectory samples.")
@click.option("--max-len", type=float, default=None, help="Trajectory length in pixels. [default: 60, or what --size fits]")
@click.option("--expl", type=float, default=None, help="Anxiety (0: straight blur). [default: drawn from DeblurGAN's set]")
@click.option("--fraction", type=float, default=None, help="Exposure fraction in (0, 1]. [default: drawn from 1/10, 1/2, 1]")
@click.option("--preview", is_flag=True, help="Show the first kernels after generating.")
def make_kernels_cmd(count, seed, out, overwrite, size, iters, max_len, expl, fraction, preview):
    """Generate a bank of random camera-shake kernels (Boracchi & Foi 2012)."""
    import sys
    import time

    from blurgen.files import Busy, describe_os_error
    from blurgen.kernels import KernelSpec, default_max_len, read_bank, write_bank
    from blurgen.progress import progress_bar
    from blurgen.stopping import Interrupted, stop_on_signals

    max_len = default_max_len(size) if max_len is None else max_len
    if count < 1:
        raise UserError(f"-n must be >= 1, got {count}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    try:
        spec = KernelSpec(size=size, iters=iters, max_len=max_len, expl=expl, fraction=fraction)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _check_output(out, overwrite)
    args = {"n": count, "seed": seed, "size": size, "iters": iters, "max_len": max_len, "expl": expl, "fraction": fraction}
    started = time.perf_counter()
    with stop_on_signals() as stop, \
            progress_bar(total=count, unit="kernel", desc="kernels", file=sys.stderr) as bar:
        try:
            write_bank(out, count, seed, spec, attrs={"command": "blurgen make-kernels", "arguments": args},
                       progress=bar.update, stop=stop)
        except Busy as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"{out}: could not write ({describe_os_error(exc)})") from None
        except Interrupted as exc:
            bar.close()
            _interrupted(exc, f"nothing written to {out}")
    elapsed = time.perf_counter() - started
    click.echo(f"wrote {_plural(count, 'kernel')} of {size}x{size} to {out} in {elapsed:.1f} s ({count / elapsed:,.0f} kernels/s)")
    if preview:
        batch, _ = read_bank(out, slice(0, min(count, 8)))
        _show_kernels(batch, range(len(batch)))


@blurgen.command("show-kernels")
@click.argument("bank", type=click.Path(dir_okay=False))
@click.option("--index", default=None, help="Kernels to show: a start index (5) or a list of ranges (0-7,12).")
@click.option("--limit", type=int, default=16, show_default=True, help="At most this many kernels.")
@click.option("--png", type=click.Path(dir_okay=False), default=None, help="Also write a contact sheet PNG.")
def show_kernels_cmd(bank, index, limit, png):
    """Draw kernels of a bank in the terminal, with their parameters and a summary of the bank."""
    import json

    from blurgen import kernel_view
    from blurgen.kernels import BankError, read_bank

    if limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    if png:
        _check_output(png, overwrite=True)
    try:
        everything, attrs = read_bank(bank, psf=False)
        chosen = kernel_view.parse_index(index, len(everything))[:limit]
        batch, _ = read_bank(bank, chosen)
    except (BankError, ValueError) as exc:
        raise UserError(str(exc)) from None
    _show_kernels(batch, chosen, png)
    click.echo("")
    spec = json.loads(attrs["spec"])
    spec_text = ", ".join(f"{k} {'drawn' if v is None else v}" for k, v in spec.items())
    click.echo(kernel_view.bank_summary(everything, spec_text))


# --- blurgen: synthesis (synthesize, inspect, verify) ------------------------


def _parse_part(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--part must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UserError(f"--part must be i/n with 0 <= i < n, got {text}")
    return i, n


def _parse_quality(text: str | None):
    if text is None:
        return None
    try:
        lo, _, hi = text.partition("-")
        return int(lo), int(hi or lo)
    except ValueError:
        raise UserError(f"--jpeg-quality must look like LO-HI (e.g. 60-95), got {text!r}") from None


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@blurgen.command("synthesize")
@click.option("--src", type=click.Path(), required=True, help="Folder of sharp photos (searched recursively), or a .zip of them (read in place).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Shard folder to write (or finish).")
@click.option("--kernels", "bank", type=click.Path(dir_okay=False), default=None,
              help="Draw kernels from this bank (blurgen make-kernels). [default: a fresh kernel per sample]")
@click.option("--kernel-size", type=int, default=64, show_default=True, help="Fresh kernels: PSF side.")
@click.option("--iters", type=int, default=2000, show_default=True, help="Fresh kernels: trajectory samples.")
@click.option("--max-len", type=float, default=None,
              help="Fresh kernels: trajectory length, px. [default: 60, or what --kernel-size fits]")
@click.option("--expl", type=float, default=None, help="Fresh kernels: anxiety. [default: drawn]")
@click.option("--fraction", type=float, default=None, help="Fresh kernels: exposure fraction. [default: drawn]")
@click.option("--shake", type=click.Choice(["nonuniform"]), default=None,
              help="Non-uniform camera shake: rotations averaged as homographies (Whyte et al.), docs/modes.md.")
@click.option("--max-angle", type=float, default=1.0, show_default=True, help="--shake: largest rotation path, degrees.")
@click.option("--focal", type=float, default=None, help="--shake: focal length, px. [default: the photo's longer side]")
@click.option("--max-shift", type=float, default=0.0, show_default=True, help="--shake: largest translation path, px.")
@click.option("--objects", "objects_json", type=click.Path(dir_okay=False), default=None,
              help="Paste moving objects cut out with these COCO instance masks (layered model), docs/modes.md.")
@click.option("--objects-images", type=click.Path(file_okay=False), default=None,
              help="--objects: folder of the annotations' file_name. [default: --src]")
@click.option("--object-len", type=float, default=30.0, show_default=True, help="--objects: largest own path, px.")
@click.option("--crop", type=int, default=256, show_default=True, help="Side of the square crops.")
@click.option("--crops-per-image", type=int, default=1, show_default=True, help="Crops taken from each photo.")
@click.option("--full", is_flag=True, help="Keep whole images (less the kernel's margin) instead of crops.")
@click.option("--sharp-only", is_flag=True, help="Store sharp images only (no blur, no kernel) for `trainer fit --online`.")
@click.option("--downscale", type=float, default=1.0, show_default=True, help="Resize photos by this factor first.")
@click.option("--small", type=click.Choice(["skip", "upscale"]), default="skip", show_default=True,
              help="Photos smaller than a crop: skip them, or upscale them (bicubic) until they fit.")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Samples per shard.")
@click.option("--workers", type=int, default=None, help="Worker processes. [default: the cores this process may use]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--part", default="0/1", show_default=True, help="Build only shards s with s % n == i (i/n), for job arrays; the parts may share --out.")
@click.option("--linear", is_flag=True, help="Blur in linear light (undo the sRGB curve, blur, redo it).")
@click.option("--saturate", is_flag=True, help="Boost clipped highlights, blur, clip, in linear light (implies --linear).")
@click.option("--noise", is_flag=True, help="Add Poisson-Gaussian sensor noise of a random level.")
@click.option("--jpeg-quality", default=None, help="Re-compress the blurred image at a quality drawn in LO-HI.")
@click.option("--camera", default=None, is_flag=False, flag_value="a7r3", metavar="[NAME]",
              help="RSBlur's camera pipeline (saturation, raw noise, ISP; docs/camera.md) with camera NAME's "
                   "calibration: a7r3 (the default) or a7r3-rsblur.")
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start afresh.")
@click.option("--repair", is_flag=True,
              help="Verify the finished shards too and rebuild the bad ones (those `blurgen verify` names), byte for byte.")
@click.option("--append", is_flag=True, help="Put photos added to --src since the run into new shards; the old stay as they are.")
@click.option("--no-space-check", is_flag=True, help="Start even if the estimated size exceeds the free disk space.")
def synthesize_cmd(src, out, bank, kernel_size, iters, max_len, expl, fraction, shake, max_angle, focal, max_shift,
                   objects_json, objects_images, object_len, crop, crops_per_image, full, downscale, shard_size, workers,
                   seed, part, linear, saturate, noise, jpeg_quality, overwrite, repair, camera, small, append,
                   no_space_check, sharp_only):
    """Blur a folder of photos with random camera-shake kernels into HDF5 shards of (blurred, sharp) pairs."""
    import sys
    from pathlib import Path

    from blurgen.kernels import KernelSpec, default_max_len
    from blurgen.progress import progress_bar
    from blurgen.objects import ObjectSpec
    from blurgen.shake import ShakeSpec
    from blurgen.stopping import stop_on_signals
    from blurgen.synthesize import UPSCALE_INTERPOLATION, SynthConfig, SynthError, available_cores, output_names, synthesize

    workers = available_cores() if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if repair and overwrite:
        raise UserError("--repair keeps the finished shards and --overwrite deletes them: give one")
    if append and overwrite:
        raise UserError("--append keeps the finished shards and --overwrite deletes them: give one")
    try:
        if bank:
            _warn_ignored(["kernel_size", "iters", "max_len", "expl", "fraction"],
                          "with --kernels (the bank's kernels are used as they are)")
        if max_len is None:
            max_len = default_max_len(kernel_size)
        spec = KernelSpec(size=kernel_size, iters=iters, max_len=max_len, expl=expl, fraction=fraction)
        cfg = SynthConfig(src=Path(src), crop=crop, crops_per_image=crops_per_image, full=full, downscale=downscale,
                          shard_size=shard_size, seed=seed, part=_parse_part(part), small=small,
                          kernel_bank=Path(bank) if bank else None, kernel_spec=spec, linear=linear,
                          saturate=saturate, noise=noise, jpeg_quality=_parse_quality(jpeg_quality), camera=camera,
                          shake=ShakeSpec(max_angle=max_angle, focal=focal, max_shift=max_shift) if shake else None,
                          objects=ObjectSpec(Path(objects_json), Path(objects_images) if objects_images else None,
                                             max_len=object_len) if objects_json else None,
                          sharp_only=sharp_only)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    bars = []  # made once the work is planned, so that errors come before any bar

    def start(n):
        bars.append(progress_bar(total=n, unit="pair", desc="pairs", file=sys.stderr, smoothing=0.1))

    def advance(made, dropped):
        _advance(bars[0], made, dropped)

    def plan(pairs, size, free):
        if pairs:
            click.echo(f"planned: {pairs:,} pairs, about {_megabytes(size)} on disk (an estimate: pixels are stored "
                       f"uncompressed; fewer if photos are skipped); {_megabytes(free)} free", err=True)

    try:
        with stop_on_signals() as stop:
            summary = synthesize(cfg, out, workers=workers, overwrite=overwrite, progress=advance, on_start=start,
                                 stop=stop, repair=repair, append=append, space_check=not no_space_check,
                                 on_plan=plan)
    except SynthError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt as exc:  # Interrupted, or a Ctrl-C before the handlers were in place
        for bar in bars:
            bar.close()
        _interrupted(exc, "finished shards are kept; run the same command again to resume")
    finally:
        for bar in bars:
            bar.close()
    done = summary.shards_built + summary.shards_done_before
    if summary.appended == 0:
        click.echo(f"--append: no photos under {src} outside the run's photo sets; nothing appended")
    elif summary.appended:
        click.echo(f"--append: {summary.appended:,} new photos go into new shards; the earlier shards are untouched")
    click.echo(f"{out}: {_plural(summary.samples, 'sharp image' if sharp_only else 'pair')} in {_plural(done, 'shard')} "
               f"({_megabytes(summary.bytes)}) from {_plural(summary.images, 'image')}; "
               f"built {_plural(summary.shards_built, 'shard')} now"
               + (f", {summary.shards_done_before} were already done" if summary.shards_done_before else ""))
    if summary.shards_redone:
        click.echo(f"rebuilt {len(summary.shards_redone)} damaged or truncated shards: {', '.join(summary.shards_redone)}"
                   + (f"; {', '.join(summary.repair_differs)} came out different from the recorded checksum "
                      "(were the photos or the bank changed in place?)" if summary.repair_differs else
                      "; identical to the originals"))
    if summary.skipped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items()))
        report = Path(out) / output_names(cfg.part)[1]
        click.echo(f"skipped {sum(summary.skipped.values())} images ({reasons}); see {report}"
                   + ("; --small upscale keeps the too-small ones" if summary.skipped.get("too-small") else ""))
    if summary.upscaled:
        click.echo(f"upscaled {summary.upscaled} photos smaller than a crop ({UPSCALE_INTERPOLATION}; "
                   "each sample records its factor in `upscale`)")
    if summary.shards_built and summary.seconds > 0:
        built = bars[0].n
        click.echo(f"{built / summary.seconds:,.1f} pairs/s with {workers} worker{'s' if workers > 1 else ''}")


@blurgen.command("average")
@click.option("--src", type=click.Path(), required=True, help="Folder of videos or of folders of numbered frames (recursive).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Shard folder to write (or finish).")
@click.option("--frames", "frame_range", default="7-13", show_default=True, help="Frames averaged per pair, LO-HI (odd N drawn).")
@click.option("--interpolate", type=int, default=0, show_default=True, help="Flow-interpolated frames between neighbours (REDS).")
@click.option("--response", default="srgb", show_default=True, help="Camera response: srgb or gamma:G.")
@click.option("--windows-per-clip", type=int, default=10, show_default=True, help="Blurred images taken from each clip.")
@click.option("--crop", type=int, default=256, show_default=True, help="Side of the square crops.")
@click.option("--crops-per-window", type=int, default=1, show_default=True, help="Crops taken from each blurred image.")
@click.option("--full", is_flag=True, help="Keep whole frames instead of crops.")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Samples per shard.")
@click.option("--workers", type=int, default=None, help="Worker processes. [default: the cores this process may use]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--part", default="0/1", show_default=True, help="Build only shards s with s % n == i (i/n).")
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start afresh.")
@click.option("--repair", is_flag=True, help="Verify the finished shards too and rebuild the bad ones.")
def average_cmd(src, out, frame_range, interpolate, response, windows_per_clip, crop, crops_per_window, full,
                shard_size, workers, seed, part, overwrite, repair):
    """Average consecutive video frames in linear light into blurred/sharp pairs, as GoPro and REDS (docs/video.md)."""
    from pathlib import Path

    from blurgen.video import AverageConfig, average

    try:
        lo, _, hi = frame_range.partition("-")
        frames = (int(lo), int(hi or lo))
    except ValueError:
        raise UserError(f"--frames must look like LO-HI (e.g. 7-13), got {frame_range!r}") from None
    make = lambda: AverageConfig(src=Path(src), frames=frames, interpolate=interpolate, response=response,  # noqa: E731
                                 windows_per_clip=windows_per_clip, crop=crop, crops_per_window=crops_per_window,
                                 full=full, shard_size=shard_size, seed=seed, part=_parse_part(part))
    _run_synthesis(make, average, out, workers, overwrite, repair, "clips")


def _advance(bar, made: int, dropped: int) -> None:
    """Pairs made, and pairs of skipped photos or clips that will never come (the total shrinks)."""
    bar.update(made)
    if dropped:
        bar.total -= dropped
        bar.refresh()


def _run_synthesis(make_config, run, out, workers, overwrite, repair, inputs: str) -> None:
    """A shard-making run of ``run(cfg, out, ...)`` (blurgen.video.average): progress bar,
    one-line errors, Ctrl-C, and the summary lines."""
    import sys
    from pathlib import Path

    from blurgen.progress import progress_bar
    from blurgen.stopping import stop_on_signals
    from blurgen.synthesize import SynthError, available_cores, output_names

    workers = available_cores() if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if repair and overwrite:
        raise UserError("--repair keeps the finished shards and --overwrite deletes them: give one")
    try:
        cfg = make_config()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    bars = []

    def start(n):
        bars.append(progress_bar(total=n, unit="pair", desc="pairs", file=sys.stderr, smoothing=0.1))

    try:
        with stop_on_signals() as stop:
            summary = run(cfg, out, workers=workers, overwrite=overwrite, progress=lambda made, dropped: _advance(bars[0], made, dropped),
                          on_start=start, stop=stop, repair=repair)
    except SynthError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt as exc:
        for bar in bars:
            bar.close()
        _interrupted(exc, "finished shards are kept; run the same command again to resume")
    finally:
        for bar in bars:
            bar.close()
    done = summary.shards_built + summary.shards_done_before
    click.echo(f"{out}: {summary.samples:,} pairs in {done} shards ({_megabytes(summary.bytes)}) "
               f"from {summary.images:,} {inputs}; built {summary.shards_built} shards now"
               + (f", {summary.shards_done_before} were already done" if summary.shards_done_before else ""))
    if summary.shards_redone:
        click.echo(f"rebuilt {len(summary.shards_redone)} damaged or truncated shards: {', '.join(summary.shards_redone)}"
                   + (f"; {', '.join(summary.repair_differs)} came out different from the recorded checksum"
                      if summary.repair_differs else "; identical to the originals"))
    if summary.skipped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items()))
        click.echo(f"skipped {sum(summary.skipped.values())} {inputs} ({reasons}); "
                   f"see {Path(out) / output_names(cfg.part)[1]}")
    if summary.shards_built and summary.seconds > 0:
        click.echo(f"{bars[0].n / summary.seconds:,.1f} pairs/s with {workers} worker{'s' if workers > 1 else ''}")


def _describe_arguments(args: dict) -> str:
    """How a shard folder was made, in a few readable lines (from its manifest's arguments)."""
    if not args:
        return "made with: (no arguments recorded)"
    if args.get("command") == "blurgen import-pairs":
        return (f"imported pairs: blurred from {args.get('blur_dir')}, sharp from {args.get('sharp_dir')}; "
                f"whole images, shards of {args.get('shard_size')}\nkernels unknown (1x1 placeholders)")
    if args.get("command") == "average":
        from blurgen.video import describe_arguments

        return describe_arguments(args)
    if args.get("full"):
        samples = "whole photos less the kernel's margin"
    else:
        samples = f"{args.get('crops_per_image')} random {args.get('crop')}x{args.get('crop')} crop(s) per photo"
    if args.get("downscale", 1) != 1:
        samples += f", photos downscaled by {args['downscale']:g}"
    spec = args.get("kernel_spec") or {}
    if args.get("sharp_only"):
        kernels = "sharp images only (no blur, no kernel): for `trainer fit --online`"
    elif args.get("kernel_bank"):
        kernels = f"kernels drawn from the bank {args['kernel_bank']}"
    else:
        drawn = lambda v: "drawn" if v is None else f"{v:g}"  # noqa: E731
        kernels = (f"fresh {spec.get('size')}x{spec.get('size')} kernels (max-len {spec.get('max_len', 0):g}, "
                   f"iters {spec.get('iters')}, expl {drawn(spec.get('expl'))}, fraction {drawn(spec.get('fraction'))})")
    realism = [name for name in ("linear", "saturate", "noise") if args.get(name)]
    if args.get("camera"):
        realism.append(f"camera {args['camera']} (RSBlur pipeline, docs/camera.md)")
    if args.get("jpeg_quality"):
        realism.append("jpeg-quality {}-{}".format(*args["jpeg_quality"]))
    if args.get("shake"):
        sh = args["shake"]
        kernels = (f"non-uniform camera shake (Whyte et al.): rotation paths up to {sh['max_angle']:g} deg, "
                   f"translation up to {sh['max_shift']:g} px, focal " + (f"{sh['focal']:g} px" if sh['focal'] else "= the longer side") + ", "
                   f"{sh['knots']} knots; kernel = the PSF at the crop's centre")
    if args.get("objects"):
        ob = args["objects"]
        kernels += (f"\nmoving objects (layered model) from {ob['annotations']}: own paths up to {ob['max_len']:g} px, "
                    f"{ob['segments']} segments; kernel = the camera's (background's) PSF")
    return (f"made from {args.get('src')}: {samples}\n{kernels}; seed {args.get('seed')}, "
            f"shards of {args.get('shard_size')}\nrealism: {', '.join(realism) or 'none (as DeblurGAN)'}")


@blurgen.command("inspect")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--samples", type=int, default=3, show_default=True, help="Samples to draw.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which samples (random, reproducible).")
@click.option("--png", type=click.Path(dir_okay=False), default=None, help="Also write the samples as a PNG grid.")
def inspect_cmd(folder, samples, seed, png):
    """Totals, per-shard counts and sizes, and a few samples (blurred | sharp | kernel) drawn in the terminal."""
    import collections

    import numpy as np

    from blurgen import shards, terminal
    from blurgen.camera import describe_draw
    from blurgen.kernel_view import display_crops
    from blurgen.modes import describe_sample
    from blurgen.pictures import contact_sheet

    if png:
        _check_output(png, overwrite=True)
    try:
        manifests = _manifests(folder)
        infos = shards.find_shards(folder)
    except shards.ShardError as exc:
        raise UserError(str(exc)) from None
    total = sum(i.count for i in infos)
    size = sum(i.path.stat().st_size for i in infos)
    args = next(iter(manifests.values())).get("arguments", {})
    click.echo(f"{folder}: {_plural(total, 'sharp image' if args.get('sharp_only') else 'pair')} in "
               f"{_plural(len(infos), 'shard')}, {_megabytes(size)}")
    try:
        with shards.ShardReader(infos[0].path) as r:
            codec = r.file["sharp"].compression if r.layout == "crops" else "per-image datasets"
            layout, version, sharp_only = r.layout, r.attrs.get("format_version"), r.sharp_only
    except shards.ShardError as exc:
        raise UserError(f"{exc} (run `blurgen verify {folder}`)") from None
    click.echo(f"layout {layout}, images uint8 RGB, compression {codec or 'none'}, format version {version}"
               + (", sharp images only" if sharp_only else ""))
    click.echo(_describe_arguments(args))
    if len(manifests) > 1 or "part" in next(iter(manifests)):
        click.echo(f"parts: {', '.join(sorted(manifests))}")
    for info in infos:
        click.echo(f"  {info.path.name}  {info.count:6d} pairs  {_megabytes(info.path.stat().st_size):>12s}")
    reasons = collections.Counter(row[1] for m in manifests.values() for rows in m.get("skipped", {}).values()
                                  for row in rows)
    if reasons:
        click.echo(f"{sum(reasons.values())} source images skipped ("
                   + ", ".join(f"{r} {c}" for r, c in sorted(reasons.items())) + "; see skipped*.tsv)")
    note = _unfinished(manifests)
    if note:
        click.echo(f"note: {note}")
    if total == 0 or samples < 1:
        return
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(total, size=min(samples, total), replace=False))
    offsets = shards.sample_offsets(infos)
    tiles, captions = [], []
    for g in picks:
        s, local = shards.locate_sample(offsets, g)
        try:
            with shards.ShardReader(infos[s].path) as r:
                sample = r.read_sample(local)
        except shards.ShardError as exc:
            raise UserError(f"{exc} (run `blurgen verify {folder}`)") from None
        label = f"{infos[s].path.name}#{local} {sample.get('source', '')}"
        if sharp_only:
            click.echo(terminal.render_images([sample["sharp"]], labels=[f"{label} (sharp)"]))
            tiles.append(sample["sharp"])
            captions.append(f"{len(tiles)}: {label} (sharp)")
            continue
        kernel = display_crops(sample["kernel"][None])[0]
        side = sample["blurred"].shape[0]  # drawn as tall as the images, pixels kept square
        shown = np.kron(kernel, np.ones((max(1, side // kernel.shape[0]),) * 2, np.float32))
        if sample.get("blur_model") == "video":  # no kernel to draw: the pair's parameters instead
            from blurgen.video import describe_sample as describe_video_pair

            kernel, caption = np.zeros_like(sample["blurred"]), "no kernel (frames averaged)"
            click.echo(terminal.render_images([sample["blurred"], sample["sharp"]], labels=[label, "sharp"]))
            click.echo("  " + describe_video_pair(sample))
        else:
            caption = f"kernel {kernel.shape[0]} px, 1:1"
            click.echo(terminal.render_images([sample["blurred"], sample["sharp"], shown],
                                              labels=[label, "sharp", "kernel"]))
            click.echo(describe_draw(sample) if "camera_bayer" in sample else describe_sample(sample))
        number = len(tiles) // 3 + 1
        tiles += [sample["blurred"], sample["sharp"], kernel]   # the kernel at its crop's scale in the PNG
        captions += [f"{number}: {label}", f"{number}: sharp", f"{number}: {caption}"]
    if png:
        _write_png(png, contact_sheet(tiles, cols=1 if sharp_only else 3, labels=captions, common_scale=True))
        click.echo(f"wrote {png}")


@blurgen.command("verify")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--partial", is_flag=True,
              help="Check only what is built: missing parts and unbuilt shards are a note, not a failure.")
def verify_cmd(folder, partial):
    """Read every sample of every shard and check it against the manifest; check that every part
    (--part i/n) is there and finished; exit 1 naming each bad shard and each missing part."""
    import sys

    from blurgen import shards
    from blurgen.progress import progress_bar

    try:
        manifests = _manifests(folder)
        total = sum(len(m["shards"]) for m in manifests.values())
        with progress_bar(total=total, unit="shard", desc="verify", file=sys.stderr) as bar:
            checked, problems = shards.verify_folder(folder, progress=bar.update)
    except shards.ShardError as exc:
        raise UserError(str(exc)) from None
    for name, problem in problems:
        click.echo(f"BAD {name}: {problem}")
    lacking = shards.incomplete(manifests)
    for line in lacking:
        click.echo(f"{'note' if partial else 'INCOMPLETE'}: {line}")
    if problems:
        click.echo(f"{len(problems)} of {checked} shards are bad; run the same `blurgen synthesize` command "
                   "with --repair to rebuild exactly those", err=True)
        sys.exit(1)
    if lacking and not partial:
        click.echo(f"the {checked} shards built are OK, but the data set is incomplete "
                   f"({len(lacking)} part(s) missing or unfinished); --partial checks only what is built", err=True)
        sys.exit(1)
    click.echo(f"{_plural(checked, 'shard')} OK")


def _with_pair_bar(run, resume_hint: str):
    """``run(progress=, on_start=, stop=)`` with a progress bar of pairs, Ctrl-C and SIGTERM as
    a stop flag, and its ShardError as one line; returns what ``run`` returns."""
    import sys

    from blurgen.progress import progress_bar
    from blurgen.shards import ShardError
    from blurgen.stopping import stop_on_signals

    bars = []
    try:
        with stop_on_signals() as stop:
            return run(progress=lambda n: bars[0].update(n), stop=stop,
                       on_start=lambda n: bars.append(progress_bar(total=n, unit="pair", desc="pairs",
                                                                   file=sys.stderr)))
    except ShardError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt as exc:
        for bar in bars:
            bar.close()
        _interrupted(exc, resume_hint)
    finally:
        for bar in bars:
            bar.close()


@blurgen.command("export")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--to", "target", type=(click.Choice(["folder"]), click.Path(file_okay=False)), required=True,
              metavar="folder OUT", help="Write OUT/<split>/<shard>/blur/*.png and sharp/*.png (the GOPRO_Large layout).")
@click.option("--split", default="train", show_default=True, help="The split folder under OUT (train, test, ...).")
def export_shards_cmd(folder, target, split):
    """Shards as PNG pairs that BasicSR, NAFNet, DeblurGAN-v2 and `trainer fit --gopro` read; resumable."""
    from blurgen.exchange import export_folder

    summary = _with_pair_bar(lambda **run: export_folder(folder, target[1], split, **run),
                             "the files written are complete; run the same command again to resume")
    click.echo(f"{target[1]}/{split}: {summary.pairs:,} pairs; wrote {summary.written:,} now"
               + (f", {summary.existing:,} were already there" if summary.existing else ""))


@blurgen.command("import-pairs")
@click.argument("blur_dir", type=click.Path(file_okay=False))
@click.argument("sharp_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Shard folder to write (or finish).")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Pairs per shard.")
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start afresh.")
def import_pairs_cmd(blur_dir, sharp_dir, out, shard_size, overwrite):
    """Real pairs (blurred and sharp images of the same file stem) into shards, to mix with synthetic ones."""
    from blurgen.exchange import import_pairs

    summary = _with_pair_bar(lambda **run: import_pairs(blur_dir, sharp_dir, out, shard_size, overwrite=overwrite,
                                                        **run),
                             "finished shards are kept; run the same command again to resume")
    click.echo(f"{out}: {summary.samples:,} pairs in {summary.shards_total} shards from {summary.pairs:,} matched; "
               f"built {summary.shards_built} shards now"
               + (f", {summary.shards_done_before} were already done" if summary.shards_done_before else ""))
    if summary.skipped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items()))
        click.echo(f"skipped {sum(summary.skipped.values())} ({reasons}); see {out}/skipped.tsv")


def _manifests(folder) -> dict:
    """The manifest(s) of a shard folder (a whole run, or the parts of a --part run), or ShardError."""
    from pathlib import Path

    from blurgen import shards

    if not Path(folder).is_dir():
        raise shards.ShardError(f"{folder}: no such shard folder")
    manifests = shards.read_manifests(folder)
    if not manifests:
        raise shards.ShardError(f"{folder}: no manifest.json (not a shard folder made by `blurgen synthesize`)")
    return manifests


def _unfinished(manifests: dict) -> str | None:
    """What a shard folder still lacks (shards not built yet, parts not started), or None."""
    from blurgen import shards

    return shards.unfinished(manifests)


# --- trainer: fit, eval, deblur ------------------------------------------------
def _trainer_errors():
    """The exception types of the trainer that mean 'bad input', turned into UserError."""
    from trainer.benchmarks import BenchmarkError
    from trainer.checkpoint import CheckpointError
    from trainer.data import DataError
    from trainer.gopro import GoProError
    from trainer.losses import VGGWeightsError

    return (BenchmarkError, CheckpointError, DataError, GoProError, VGGWeightsError, ValueError, OSError)


def _trainer_message(exc: Exception) -> str:
    """One line for a trainer error; an OSError that names its file says it first
    ("runs/a/last.pt: No space left on device")."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _generator_on(checkpoint_path, device_name):
    from trainer.checkpoint import load_generator
    from trainer.loop import distributed_from_env, resolve_device

    device = resolve_device(device_name, distributed_from_env())
    generator, state = load_generator(checkpoint_path, device)
    return generator, state, device


@trainer.command("fit")
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
@click.option("--preset", type=click.Choice(["paper", "tiny"]), default=None,
              help="paper: the published settings; tiny: small nets that learn in minutes on a CPU (docs/training.md).  [default: paper]")
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
@click.option("--gopro-blur", type=click.Choice(["blur", "blur_gamma"]), default=None, help="[default: blur]")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes.  [default: 2]")
@click.option("--online", is_flag=True, default=None,
              help="Blur the shards' sharp crops in the workers, a fresh kernel per draw (docs/training.md).")
@click.option("--online-kernel-size", type=int, default=None, help="Online PSF side.  [default: crop/4, odd]")
@click.option("--online-linear", is_flag=True, default=None, help="Online blur in linear light.")
@click.option("--online-saturate", is_flag=True, default=None, help="Online: boost clipped highlights, blur, clip.")
@click.option("--online-noise", is_flag=True, default=None, help="Online: Poisson-Gaussian sensor noise.")
@click.option("--online-jpeg-quality", default=None, help="Online: JPEG at a quality drawn in LO-HI.")
@click.option("--online-camera", default=None, metavar="NAME",
              help="Online: RSBlur's camera pipeline with this camera (as synthesize --camera; docs/camera.md).")
@click.option("--content-loss", type=click.Choice(["perceptual", "l1", "l2", "psnr"]), default=None,
              help="perceptual: MSE of VGG19 conv3_3 features (paper); l1/l2: on pixels; psnr: -PSNR per image.  [default: perceptual]")
@click.option("--content-weight", type=float, default=None, help="lambda of L_GAN + lambda L_X.  [default: 100]")
@click.option("--adversarial-weight", type=float, default=None,
              help="Weight of L_GAN; 0 trains on the content loss alone, without a critic.  [default: 1]")
@click.option("--gp-weight", type=float, default=None, help="Gradient-penalty weight lambda_gp.  [default: 10]")
@click.option("--gradient-penalty", type=click.Choice(["per-pixel", "per-image"]), default=None,
              help="per-pixel: DeblurGAN's code; per-image: Gulrajani et al. (docs/training.md).  [default: per-pixel]")
@click.option("--init", type=click.Choice(["paper", "identity"]), default=None,
              help="Generator start: paper N(0, 0.02), or identity (last conv zero: G(x) = x).  [default: paper; tiny identity]")
@click.option("--critic-steps", type=int, default=None, help="Critic steps per generator step.  [default: 5; tiny 1]")
@click.option("--lr", type=float, default=None, help="Adam learning rate of both nets.  [default: 1e-4; tiny 1e-3]")
@click.option("--beta1", type=float, default=None, help="[default: 0.5]")
@click.option("--beta2", type=float, default=None, help="[default: 0.999]")
@click.option("--ngf", type=int, default=None, help="Generator base width.  [default: 64; tiny 16]")
@click.option("--blocks", "n_blocks", type=int, default=None, help="Generator ResBlocks.  [default: 9; tiny 2]")
@click.option("--ndf", type=int, default=None, help="Critic base width.  [default: 64; tiny 16]")
@click.option("--dropout", type=float, default=None, help="Dropout in the ResBlocks.  [default: 0.5; tiny 0]")
@click.option("--norm", type=click.Choice(["instance", "none"]), default=None,
              help="Generator normalisation (none: He init, no InstanceNorm).  [default: instance; tiny none]")
@click.option("--vgg-weights", type=click.Path(dir_okay=False), default=None,
              help="torchvision vgg19 state dict, for machines without internet.  [default: torchvision's cache]")
@click.option("--checkpoint-every", type=int, default=None, help="Steps between checkpoints (also before every validation).  [default: 1000]")
@click.option("--val-every", type=int, default=None, help="Also validate every N steps.  [default: at epoch ends]")
@click.option("--val-limit", type=int, default=None, help="Held-out pairs per validation, 0 for all.  [default: 100]")
@click.option("--log-every", type=int, default=None, help="Steps between logged losses.  [default: 10]")
@click.option("--amp/--no-amp", default=None, help="bfloat16 autocast.  [default: on with CUDA]")
@click.option("--channels-last/--no-channels-last", default=None, help="NHWC memory layout.  [default: on with CUDA]")
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the generator and the VGG.")
@click.option("--preview/--no-preview", default=None, help="Draw a validation triplet in the terminal.  [default: on]")
def fit_cmd(out, shards, gopro, mix, preset, resume, init_from, beta1, beta2, compile_, **options):
    """Train DeblurGAN (WGAN-GP + perceptual loss) on shards and/or GoPro frames.

    Single GPU or CPU: `trainer fit ...`; several GPUs: `torchrun --nproc-per-node N
    $(which trainer) fit ...` (each process reads its own share of the data).
    """
    import signal
    import sys

    from trainer.config import make_configs
    from trainer.data import parse_quality
    from trainer.loop import fit, resume_configs

    data_names = {"crop", "batch_size", "flip", "gopro_scale", "gopro_blur", "workers", "seed", "val_shards",
                  "allow_partial", "online", "online_kernel_size", "online_linear", "online_saturate",
                  "online_noise", "online_jpeg_quality", "online_camera"}
    data = {k: options.pop(k) for k in list(options) if k in data_names}
    data.update(shards=tuple(shards) or None, gopro=gopro, mix=mix)
    train = dict(options, out=out, compile=compile_)
    if data["seed"] is not None:
        train["seed"] = data["seed"]
    if beta1 is not None or beta2 is not None:
        train["betas"] = (0.5 if beta1 is None else beta1, 0.999 if beta2 is None else beta2)
    try:
        data["online_jpeg_quality"] = parse_quality(data["online_jpeg_quality"])  # compared on --resume
        if resume:
            if preset is not None:
                raise UserError("--preset cannot be combined with --resume (the run keeps its settings)")
            train_cfg, data_cfg = resume_configs(out, train, data)
        else:
            train_cfg, data_cfg = make_configs(preset or "paper", train, data)
        if train_cfg.vgg_weights is not None and train_cfg.content_loss != "perceptual":
            click.echo(f"warning: --vgg-weights is ignored with --content-loss {train_cfg.content_loss} "
                       "(only the perceptual loss uses VGG19)", err=True)
        summary = fit(train_cfg, data_cfg, resume=resume, init_from=init_from)
    except _trainer_errors() as exc:
        raise UserError(_trainer_message(exc)) from None
    except KeyboardInterrupt:
        # A second Ctrl-C: the step in progress is dropped, last.pt is the previous checkpoint.
        click.echo(f"interrupted: {out}/last.pt keeps the last checkpoint; continue with --resume", err=True)
        sys.exit(128 + signal.SIGINT)
    if summary["rank"] != 0:
        return   # under torchrun, rank 0 speaks for all
    best = summary["best"]
    stopped = summary["stopped"]
    click.echo((f"stopped by {stopped}" if stopped else "finished") + f" at step {summary['step']} of "
               f"{summary['total_steps']}; " + (f"best PSNR {best['psnr']:.2f} dB, SSIM {best['ssim']:.4f} "
               f"at step {best['step']} ({out}/best.pt)" if best else "no validation yet")
               + f"; last checkpoint {out}/last.pt")
    if stopped:
        # Not 0: a script or scheduler must not take a preempted run for a finished one.
        sys.exit(128 + signal.Signals[stopped])


@trainer.command("eval")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False), required=True,
              help="last.pt or best.pt of a run.")
@click.option("--benchmark", type=(str, click.Path(file_okay=False)), default=None, metavar="NAME ROOT",
              help="A published test set scored as its paper does: gopro GOPRO_Large, "
                   "realblur-j ROOT or realblur-r ROOT (docs/metrics.md).")
@click.option("--pairs", "folders", type=(click.Path(file_okay=False), click.Path(file_okay=False)), default=None,
              metavar="BLUR_DIR SHARP_DIR", help="Any folder of blurred images against sharp ones of the same stem.")
@click.option("--gopro", type=click.Path(file_okay=False), default=None,
              help="GOPRO_Large root: scores its test/ split (with --gopro-scale and --gopro-blur).")
@click.option("--shards", multiple=True, type=click.Path(file_okay=False),
              help="Shard folder: scores its last shard (the one training holds out).")
@click.option("--gopro-scale", type=float, default=None,
              help="Resize GoPro test frames first (1: full resolution, as published results).  "
                   "[default: the run's validation setting, else 1]")
@click.option("--gopro-blur", type=click.Choice(["blur", "blur_gamma"]), default=None,
              help="[default: the run's validation setting, else blur]")
@click.option("--limit", type=int, default=0, show_default=True, help="Pairs to score, spread over the set; 0: all.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tile", type=int, default=2048, show_default=True, help="Larger images are restored in tiles of this side.")
@click.option("--overlap", type=int, default=128, show_default=True, help="Overlap of tiles in pixels.")
@click.option("--metrics", "metric_names", default="all", show_default=True,
              help="Comma-separated metrics (psnr, psnr_y, ssim_skimage, ssim_gopro, ssim_matlab, cw_ssim) "
                   "or all; psnr and ssim_skimage always. See docs/metrics.md.")
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
    import math

    from trainer import eval_settings
    from trainer.benchmarks import open_eval_set
    from trainer.evaluate import mean_scores, score_pairs, scores_by_band, seconds_per_image, write_scores_csv
    from trainer.metrics import DESCRIPTIONS, parse_metrics

    if limit < 0:
        raise UserError(f"--limit must be >= 0, got {limit}")
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
                              metrics=metrics, extra=eval_set.extra)
        if csv_path:
            write_scores_csv(csv_path, rows)
        if png_path:
            from trainer.evaluate import restore
            from trainer.report import write_eval_report

            write_eval_report(png_path, rows, eval_set.pairs,
                              lambda image: restore(generator, image, device=dev, tile=tile, overlap=overlap))
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
    click.echo(f"{'metric':13s} {'restored':>9s} {'blurred':>9s} {'gain':>8s}  what it is")
    for metric in described:
        restored, blurred = scores[metric], scores["input_" + metric]
        digits = 2 if metric.startswith("psnr") else 4
        click.echo(f"{metric:13s} {restored:9.{digits}f} {blurred:9.{digits}f} {restored - blurred:+8.{digits}f}"
                   f"  {described[metric]}")
    click.echo(f"{scores['count']} pairs: {eval_set.description}; generator of step {state['step']}; "
               "gain is restored minus blurred")
    click.echo(settings_line)
    if held_out:
        click.echo(held_out[1])
    if "ecc_converged" in scores and scores["ecc_converged"] < 1:
        click.echo(f"ECC alignment did not converge on {round((1 - scores['ecc_converged']) * scores['count'])} "
                   "pairs; they were scored unaligned")
    click.echo("psnr gain by band of the blurred input's PSNR: " + "; ".join(
        f"{b['band']}: {b['gain']:+.2f} dB ({b['count']})" for b in bands))
    if not math.isnan(seconds):
        click.echo(f"restoring took {seconds:.3f} s per image on {dev} (mean over {len(rows) - 1} images, "
                   "the first, warm-up one excluded)")
    if csv_path:
        click.echo(f"per-image scores: {csv_path}")
    if png_path:
        click.echo(f"best and worst restorations, gain histogram: {png_path}")


@trainer.command("deblur")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False), required=True,
              help="last.pt or best.pt of a run.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the restored PNGs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tile", type=int, default=2048, show_default=True, help="Larger images are restored in tiles of this side.")
@click.option("--overlap", type=int, default=128, show_default=True, help="Overlap of tiles in pixels.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs as they are; restore only the others.")
@click.option("--side-by-side", is_flag=True, help="Write blurred | restored pictures instead of the restored ones.")
def deblur_cmd(inputs, checkpoint_path, out, device, tile, overlap, overwrite, skip_existing, side_by_side):
    """Restore images (files, or folders of them searched recursively) of any size up to 89 M pixels, or
    videos (.mp4, .avi, .mov, .mkv) frame by frame; writes OUT/<name>.png (a folder's images keep their
    sub-folders), or OUT/<name>.mp4 at the video's frame rate.  Unreadable files are listed at the end (exit 1)."""
    import sys

    from trainer.evaluate import deblur_files, find_deblur_inputs

    try:
        files = find_deblur_inputs(inputs)
        generator, _, dev = _generator_on(checkpoint_path, device)
        seconds: list[float] = []
        report = deblur_files(generator, files, out, device=dev, tile=tile, overlap=overlap, overwrite=overwrite,
                              skip_existing=skip_existing, side_by_side=side_by_side, seconds=seconds)
    except _trainer_errors() as exc:
        raise UserError(_trainer_message(exc)) from None
    click.echo(f"wrote {len(report.written)} image(s) to {out}"
               + (f"; {len(report.skipped)} existing left as they were" if report.skipped else ""))
    if len(seconds) > 1:
        click.echo(f"restoring took {sum(seconds[1:]) / len(seconds[1:]):.3f} s per image on {dev} "
                   f"(mean over {len(seconds) - 1} images, the first, warm-up one excluded)")
    if report.failed:
        for _, reason in report.failed:
            click.echo(f"could not read {reason}", err=True)
        click.echo(f"error: {len(report.failed)} of {len(files)} inputs could not be read (listed above)", err=True)
        sys.exit(1)


@trainer.command("export")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False), required=True,
              help="last.pt or best.pt of a run.")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), default=None,
              help="Write the generator as ONNX (needs the onnx and onnxscript packages).")
@click.option("--torchscript", "torchscript_path", type=click.Path(dir_okay=False), default=None,
              help="Write the generator as TorchScript (deprecated upstream; for libtorch).")
def export_cmd(checkpoint_path, onnx_path, torchscript_path):
    """The bare generator for inference: float32 (N, 3, H, W) RGB in [-1, 1] in and out,
    H and W multiples of 4 (docs/export.md)."""
    from trainer.export import export_onnx, export_torchscript, onnx_difference

    if not onnx_path and not torchscript_path:
        raise UserError("give --onnx FILE and/or --torchscript FILE")
    try:
        generator, state, _ = _generator_on(checkpoint_path, "cpu")
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
    click.echo('input "blurred" and output "restored": float32 (N, 3, H, W), RGB in [-1, 1], '
               "H and W multiples of 4")


@trainer.command("curves")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Also draw the curves into this PNG (fit keeps RUN/curves.png up to date itself).")
def curves_cmd(run, png):
    """How a run is going: each logged scalar as a sparkline with its first, last, min and max."""
    from pathlib import Path

    from blurgen.pictures import write_png
    from trainer.curves import plot_curves, read_scalars, sparkline
    from trainer.loop import SCALARS
    from trainer.output import naming

    if png:
        _check_output(png, overwrite=True)
    try:
        series = read_scalars(Path(run) / SCALARS)
    except ValueError as exc:
        raise UserError(_trainer_message(exc)) from None
    if not series:
        raise UserError(f"{run}: nothing logged yet")
    width = max(len(name) for name in series)
    for name, (steps, values) in sorted(series.items()):
        click.echo(f"{name:<{width}}  {sparkline(values)}  "
                   f"{values[0]:.4g} -> {values[-1]:.4g} (min {values.min():.4g}, max {values.max():.4g}; "
                   f"{len(values)} points, steps {steps[0]}-{steps[-1]})")
    if png:
        try:
            with naming(png):
                write_png(png, plot_curves(series))
        except OSError as exc:
            raise UserError(_trainer_message(exc)) from None
        click.echo(f"wrote {png}")

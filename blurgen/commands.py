"""The ``blurgen`` command line: kernels, synthesis, shard folders.

Each command parses its options, calls the library and prints; the work
lives in the blurgen modules.  Library imports are inside the commands, so
that ``blurgen --help`` starts fast.
"""
import click

from blurgen.modes import mode_options
from blurgen.plumbing.command_line import (
    HELP,
    Commands,
    UserError,
    check_output,
    interrupted,
    megabytes,
    package_version,
    plural,
    realism_options,
    save_png,
    say,
    warn_ignored,
)
from blurgen.plumbing.run_config import config_option


@click.group(cls=Commands, context_settings=HELP)
@click.version_option(package_version(), "--version", prog_name="blurgen")
def blurgen():
    """Synthesize motion-blurred / sharp training pairs."""


# --- blurgen: kernels (make-kernels, show-kernels) ---------------------------


def _show_kernels(batch, index, png=None, echo=click.echo, above: int = 0) -> None:
    """The kernels' table, then their drawings, last, so that they stay on the screen: one
    scale for the whole grid, as large as the terminal's height left after ``above``
    lines and the table allows (never below a legible minimum)."""
    from blurgen import kernel_view
    from blurgen.plumbing import terminal
    from blurgen.plumbing.pictures import contact_sheet

    crops = kernel_view.display_crops(batch.psf)
    size = terminal.shutil.get_terminal_size((100, 24))
    labels = [f"#{i}" for i in index]
    table = kernel_view.kernel_table(batch, index)
    for line in table:
        echo(line)
    for block in kernel_view.grid_blocks(crops, labels, size.columns, size.lines - above - len(table) - 2):
        echo(block)
    if png:
        save_png(png, contact_sheet(crops, cols=min(8, len(crops)), cell=96, labels=labels))
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

    from blurgen.physics.kernels import KernelSpec, default_max_len, read_bank, write_bank
    from blurgen.plumbing.files import Busy, describe_os_error
    from blurgen.plumbing.progress import progress_bar
    from blurgen.plumbing.stopping import Interrupted, stop_on_signals

    max_len = default_max_len(size) if max_len is None else max_len
    if count < 1:
        raise UserError(f"-n must be >= 1, got {count}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    try:
        spec = KernelSpec(size=size, iters=iters, max_len=max_len, expl=expl, fraction=fraction)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_output(out, overwrite)
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
            interrupted(exc, f"nothing written to {out}")
    elapsed = time.perf_counter() - started
    click.echo(f"wrote {plural(count, 'kernel')} of {size}x{size} to {out} in {elapsed:.1f} s ({count / elapsed:,.0f} kernels/s)")
    if preview:
        batch, _ = read_bank(out, slice(0, min(count, 8)))
        _show_kernels(batch, range(len(batch)))


@blurgen.command("show-kernels")
@click.argument("bank", type=click.Path(dir_okay=False))
@click.option("--index", default=None, help="Kernels to show: a start index (5: kernels 5 on, up to --limit) or ranges (0-7,12).")
@click.option("--limit", type=int, default=16, show_default=True, help="At most this many kernels.")
@click.option("--png", type=click.Path(dir_okay=False), default=None, help="Also write a contact sheet PNG.")
def show_kernels_cmd(bank, index, limit, png):
    """Draw kernels of a bank in the terminal, with their parameters and a summary of the bank."""
    import json

    from blurgen import kernel_view
    from blurgen.physics.kernels import BankError, read_bank

    if limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    if png:
        check_output(png, overwrite=True)
    try:
        everything, attrs = read_bank(bank, psf=False)
        chosen = kernel_view.parse_index(index, len(everything))[:limit]
        batch, _ = read_bank(bank, chosen)
    except (BankError, ValueError) as exc:
        raise UserError(str(exc)) from None
    from blurgen.plumbing.terminal import fit_to_terminal

    spec = json.loads(attrs["spec"])
    spec_text = ", ".join(f"{k} {'drawn' if v is None else v}" for k, v in spec.items())
    summary = fit_to_terminal(kernel_view.bank_summary(everything, spec_text))
    click.echo(summary)
    click.echo("")
    _show_kernels(batch, chosen, png, above=summary.count("\n") + 2)


# --- blurgen: synthesis (synthesize, inspect, verify) ------------------------


def _parse_part(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--part must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UserError(f"--part must be i/n with 0 <= i < n, got {text}")
    return i, n


@blurgen.command("synthesize")
@config_option
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
@mode_options
@click.option("--crop", type=int, default=256, show_default=True, help="Side of the square crops.")
@click.option("--crops-per-image", type=int, default=1, show_default=True, help="Crops taken from each photo.")
@click.option("--full", is_flag=True, help="Keep whole images (less the kernel's margin) instead of crops.")
@click.option("--downscale", type=float, default=1.0, show_default=True, help="Resize photos by this factor first.")
@click.option("--small", type=click.Choice(["skip", "upscale"]), default="skip", show_default=True,
              help="Photos smaller than a crop: skip them, or upscale them (bicubic) until they fit.")
@click.option("--shard-size", type=int, default=1000, show_default=True,
              help="Samples planned per shard: each takes the next SHARD_SIZE // crops-per-image photos, so skipped "
                   "photos leave it short (docs/shards.md).")
@click.option("--workers", type=int, default=None, help="Worker processes. [default: the cores this process may use]")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of every random draw (kernels, crops and effects): the same seed gives the same bytes.")
@click.option("--part", default="0/1", show_default=True, help="Build only shards s with s % n == i (i/n), for job arrays; the parts may share --out.")
@realism_options()
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start afresh.")
@click.option("--repair", is_flag=True,
              help="Verify the finished shards too and rebuild the bad ones (those `blurgen verify` names), byte for byte.")
@click.option("--append", is_flag=True, help="Put photos added to --src since the run into new shards; the old stay as they are.")
@click.option("--no-space-check", is_flag=True, help="Start even if the estimated size exceeds the free disk space.")
def synthesize_cmd(src, out, crop, crops_per_image, full, downscale, small, shard_size, workers, seed, part,
                   overwrite, repair, append, no_space_check, **grouped):
    """Blur a folder of photos with random camera-shake kernels into HDF5 shards of (blurred, sharp) pairs."""
    from pathlib import Path

    from blurgen.modes import SHARP_ONLY, mode_from_options
    from blurgen.modes.base import UPSCALE_INTERPOLATION
    from blurgen.runs.synthesize import SynthConfig, synthesize

    if append and overwrite:
        raise UserError("--append keeps the finished shards and --overwrite deletes them: give one")
    bank = grouped.pop("bank")
    if bank:
        warn_ignored(["kernel_size", "iters", "max_len", "expl", "fraction"],
                     "with --kernels (the bank's kernels are used as they are)")
    try:
        mode, spec = mode_from_options(grouped)
    except ValueError as exc:
        raise UserError(str(exc)) from None

    def make():
        return SynthConfig(src=Path(src), crop=crop, crops_per_image=crops_per_image, full=full, downscale=downscale,
                           shard_size=shard_size, seed=seed, part=_parse_part(part), small=small,
                           kernel_bank=Path(bank) if bank else None, kernel_spec=_kernel_spec(grouped),
                           realism=_realism(grouped), mode=mode, spec=spec)

    def plan(pairs, size, free):
        if pairs:
            say(f"planned: {pairs:,} pairs, about {megabytes(size)} on disk (an estimate: pixels are stored "
                f"uncompressed; fewer if photos are skipped); {megabytes(free)} free", err=True)

    def append_lines(summary) -> list[str]:
        lines = []
        if summary.appended == 0:
            lines.append(f"--append: no photos under {src} outside the run's photo sets; nothing appended")
        elif summary.appended:
            lines.append(f"--append: {summary.appended:,} new photos go into new shards; the earlier shards are "
                         "untouched")
        return lines

    def upscale_lines(summary) -> list[str]:
        return [f"upscaled {summary.upscaled} photos smaller than a crop ({UPSCALE_INTERPOLATION}; "
                "each sample records its factor in `upscale`)"] if summary.upscaled else []

    _run_synthesis(make, synthesize, out, workers, overwrite, repair, "image",
                   sample="sharp image" if mode == SHARP_ONLY.name else "pair", changed="the photos or the bank",
                   skip_hints={"too-small": "--small upscale keeps the too-small ones"} if small == "skip" else {},
                   options=dict(append=append, space_check=not no_space_check, on_plan=plan),
                   before=append_lines, after=upscale_lines)


def _kernel_spec(options: dict):
    """The fresh kernels' KernelSpec from ``--kernel-size --iters --max-len --expl --fraction``."""
    from blurgen.physics.kernels import KernelSpec, default_max_len

    size, max_len = options["kernel_size"], options["max_len"]
    return KernelSpec(size=size, iters=options["iters"], fraction=options["fraction"], expl=options["expl"],
                      max_len=default_max_len(size) if max_len is None else max_len)


def blur_settings(arguments: list[str]) -> dict:
    """The blur mode, its settings and the realism spec that ``synthesize`` ARGUMENTS ask for,
    as ``SynthConfig`` keywords {"mode", "spec", "realism"}: the one parser of those options
    for code that builds its own ``SynthConfig`` (``bench/learning.py --train-mode``).
    ``arguments``: e.g. ``["--shake", "2", "--camera", "a7r3"]``; an option of ``synthesize``
    that is not a mode's or the realism spec's (``--crop``, ``--seed``) is refused: the
    caller decides those.  UserError (one line) for a bad or misplaced option."""
    from click.core import ParameterSource

    from blurgen.modes import mode_from_options

    allowed = {option.name for option in synthesize_cmd.params if _is_blur_option(option)}
    try:
        ctx = synthesize_cmd.make_context("synthesize", ["--src", ".", "--out", ".", *arguments])
    except click.UsageError as exc:
        raise UserError(f"{' '.join(arguments)}: {exc.format_message()}") from None
    given = [name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    other = [name for name in given if name not in allowed | {"src", "out"}]
    if other:
        raise UserError(f"{' '.join(arguments)}: only blur-mode and realism options here, not "
                        + ", ".join("--" + name.replace("_", "-") for name in other))
    try:
        mode, spec = mode_from_options(ctx.params)
        return dict(mode=mode, spec=spec, realism=_realism(ctx.params))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _is_blur_option(option: click.Parameter) -> bool:
    """Whether a ``synthesize`` parameter is a blur mode's or the realism spec's option."""
    from blurgen.physics.realism import OPTIONS

    modes = mode_options(click.Command("modes"))
    return option.name in OPTIONS or any(option.name == p.name for p in modes.params)


def _realism(options: dict, prefix: str = ""):
    """The realism spec of the options :func:`realism_options` added (RealismError: one line)."""
    from blurgen.physics.realism import OPTIONS, Realism, parse_range

    values = {name: options[prefix + name] for name in OPTIONS}
    values["jpeg_quality"] = parse_range(values["jpeg_quality"], "jpeg_quality")
    return Realism(**values)


@blurgen.command("average")
@config_option
@click.option("--src", type=click.Path(), required=True, help="Folder of videos or of folders of numbered frames (recursive).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Shard folder to write (or finish).")
@click.option("--frames", "frame_range", default="7-13", show_default=True, help="Frames averaged per pair, LO-HI (odd N drawn).")
@click.option("--interpolate", type=int, default=0, show_default=True, help="Flow-interpolated frames between neighbours (REDS).")
@click.option("--response", default="srgb", show_default=True, help="Camera response: srgb or gamma:G.")
@click.option("--windows-per-clip", type=int, default=10, show_default=True, help="Blurred images taken from each clip.")
@click.option("--crop", type=int, default=256, show_default=True, help="Side of the square crops.")
@click.option("--crops-per-window", type=int, default=1, show_default=True, help="Crops taken from each blurred image.")
@click.option("--full", is_flag=True, help="Keep whole frames instead of crops.")
@click.option("--shard-size", type=int, default=1000, show_default=True,
              help="Samples planned per shard: each takes the next SHARD_SIZE // (windows x crops) clips, so skipped "
                   "clips leave it short (docs/video.md).")
@click.option("--workers", type=int, default=None, help="Worker processes. [default: the cores this process may use]")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of every random draw (video windows, frames and effects): the same seed gives the same bytes.")
@click.option("--part", default="0/1", show_default=True, help="Build only shards s with s % n == i (i/n).")
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start afresh.")
@click.option("--repair", is_flag=True, help="Verify the finished shards too and rebuild the bad ones.")
@realism_options(fields=("camera",))
def average_cmd(src, out, frame_range, workers, part, overwrite, repair, **samples):
    """Average consecutive video frames in linear light into blurred/sharp pairs, as GoPro and REDS (docs/video.md)."""
    from pathlib import Path

    from blurgen.physics.realism import parse_range
    from blurgen.runs.video import AverageConfig, average

    def make():  # a RealismError is a ValueError: one line
        # The other options are AverageConfig's fields by name (what each sample is made of).
        return AverageConfig(src=Path(src), frames=parse_range(frame_range, "frames", "7-13"),
                             part=_parse_part(part), **samples)

    _run_synthesis(make, average, out, workers, overwrite, repair, "clip", changed="the clips")


def _advance(bar, made: int, dropped: int) -> None:
    """Pairs made, and pairs of skipped photos or clips that will never come (the total shrinks)."""
    bar.update(made)
    if dropped:
        bar.total -= dropped
        bar.refresh()


def _run_synthesis(make_config, run, out, workers, overwrite, repair, inputs: str, *, sample: str = "pair",
                   changed: str, skip_hints: dict[str, str] | None = None, options: dict | None = None,
                   before=None, after=None) -> None:
    """A shard-making run of ``run(cfg, out, ...)`` (``blurgen.runs.synthesize.synthesize``,
    ``blurgen.runs.video.average``): the option checks, the progress bar, one-line errors,
    Ctrl-C, and the summary lines.  ``make_config()`` makes the config (a ValueError
    is the user's); ``inputs``/``sample`` name what is read and written ("image",
    "pair"); ``skip_hints`` add a hint to the skipped line for a reason (e.g.
    "too-small"); ``options`` go to ``run``; ``before(summary)``/``after(summary)``
    give the command's own lines, printed before and after the summary's."""
    import sys
    from pathlib import Path

    from blurgen.plumbing.progress import progress_bar
    from blurgen.plumbing.stopping import stop_on_signals
    from blurgen.runs.shard_run import SynthError, available_cores, output_names
    from blurgen.runs.synthesize import SOME_CROPS

    workers = available_cores() if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if repair and overwrite:
        raise UserError("--repair keeps the finished shards and --overwrite deletes them: give one")
    try:
        cfg = make_config()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    bars = []  # made once the work is planned, so that errors come before any bar

    def start(n):
        bars.append(progress_bar(total=n, unit="pair", desc="pairs", file=sys.stderr, smoothing=0.1))

    try:
        with stop_on_signals() as stop:
            summary = run(cfg, out, workers=workers, overwrite=overwrite, on_start=start, stop=stop, repair=repair,
                          progress=lambda made, dropped: _advance(bars[0], made, dropped),
                          settings=_shard_settings(out, cfg.part), **(options or {}))
    except SynthError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt as exc:  # Interrupted, or a Ctrl-C before the handlers were in place
        for bar in bars:
            bar.close()
        interrupted(exc, "finished shards are kept; run the same command again to resume")
    finally:
        for bar in bars:
            bar.close()
    for line in before(summary) if before else []:
        say(line)
    done = summary.shards_built + summary.shards_done_before
    # A photo (clip) that gave no sample is skipped; one that gave some of its crops is not.
    whole = {reason: n for reason, n in summary.skipped.items() if reason != SOME_CROPS}
    skipped, report = sum(whole.values()), Path(out) / output_names(cfg.part)[1]
    used = f"{summary.images - skipped:,} of " if skipped else ""
    say(f"{out}: {plural(summary.samples, sample)} in {plural(done, 'shard')} ({megabytes(summary.bytes)}) "
        f"from {used}{plural(summary.images, inputs)}; built {plural(summary.shards_built, 'shard')} now"
        + (f", {summary.shards_done_before} were already done" if summary.shards_done_before else ""))
    if summary.shards_redone:
        say(f"rebuilt {len(summary.shards_redone)} damaged or truncated shards: {', '.join(summary.shards_redone)}"
            + (f"; {', '.join(summary.repair_differs)} came out different from the recorded checksum "
               f"(were {changed} changed in place?)" if summary.repair_differs else
               "; identical to the originals"))
    if skipped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(whole.items()))
        hints = [hint for reason, hint in (skip_hints or {}).items() if whole.get(reason)]
        say(f"skipped {plural(skipped, inputs)} of {summary.images:,} ({reasons}); "
            f"see {report}" + "".join(f"; {hint}" for hint in hints))
    if summary.skipped.get(SOME_CROPS):
        say(f"{plural(summary.skipped[SOME_CROPS], inputs)} gave only some of their crops "
            f"({SOME_CROPS} in {report})")
    for line in after(summary) if after else []:
        say(line)
    if summary.shards_built and summary.seconds > 0:
        say(f"{bars[0].n / summary.seconds:,.1f} pairs/s with {workers} worker{'s' if workers > 1 else ''}")
    if summary.samples == 0:
        why = f"every {inputs} was skipped (see {report})" if skipped else f"no {inputs} gave a {sample}"
        raise UserError(f"{out}: nothing made: {why}")


#: Options of ``synthesize`` and ``average`` that act on the folder once, not settings of the shards.
_ONE_OFF = ("overwrite", "repair", "append", "no_space_check")


def _shard_settings(out, part: tuple[int, int]) -> str:
    """The text of a shard folder's settings file (``shard_run.config_name``): the current
    command's options as given, after --config (blurgen.plumbing.run_config), but the one-off ones."""
    from pathlib import Path

    from blurgen.plumbing.run_config import render, settings
    from blurgen.runs.shard_run import config_name

    ctx = click.get_current_context()
    name, path = ctx.command_path, Path(out) / config_name(part)
    what = "the shards" if part[1] == 1 else f"part {part[0]} of {part[1]} of the shards"
    header = [f"The options of the `{name}` that made {what} in {out} (written by blurgen {package_version()}).",
              f"Repeat the run, resume it, or --repair it: {name} --config {path}",
              "(options on the command line override this file; a new --out makes a new copy)."]
    return render(settings(ctx.command, ctx.params, leave_out=_ONE_OFF), header)


def _describe_folder(args: dict) -> str:
    """How a shard folder was made, by the command that made it (its manifest's arguments)."""
    from blurgen import modes
    from blurgen.runs import exchange, video

    describe = {"average": video.describe_arguments,
                "blurgen import-pairs": exchange.describe_arguments}.get(args.get("command"), modes.describe_arguments)
    return describe(args)


@blurgen.command("inspect")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--samples", type=int, default=3, show_default=True, help="Samples to draw.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which samples (random, reproducible).")
@click.option("--png", type=click.Path(dir_okay=False), default=None, help="Also write the samples as a PNG grid.")
def inspect_cmd(folder, samples, seed, png):
    """Totals, per-shard counts and sizes, and a few samples (blurred | sharp | kernel) drawn in the terminal."""
    import collections

    from blurgen import shards

    if samples < 0:
        raise UserError(f"--samples must be >= 0, got {samples}")
    if png:
        check_output(png, overwrite=True)
    try:
        manifests = shards.folder_manifests(folder)
        infos = shards.find_shards(folder)
    except shards.ShardError as exc:
        raise UserError(str(exc)) from None
    total = sum(i.count for i in infos)
    size = sum(i.path.stat().st_size for i in infos)
    args = next(iter(manifests.values())).get("arguments", {})
    click.echo(f"{folder}: {plural(total, 'sharp image' if args.get('sharp_only') else 'pair')} in "
               f"{plural(len(infos), 'shard')}, {megabytes(size)}")
    try:
        with shards.ShardReader(infos[0].path) as r:
            codec = r.file["sharp"].compression if r.layout == "crops" else "per-image datasets"
            layout, version, sharp_only = r.layout, r.attrs.get("format_version"), r.sharp_only
    except shards.ShardError as exc:
        raise UserError(f"{exc} (run `blurgen verify {folder}`)") from None
    click.echo(f"layout {layout}, images uint8 RGB, compression {codec or 'none'}, format version {version}"
               + (", sharp images only" if sharp_only else ""))
    say(_describe_folder(args))
    if len(manifests) > 1 or "part" in next(iter(manifests)):
        click.echo(f"parts: {', '.join(sorted(manifests))}")
    unit = "images" if args.get("sharp_only") else "pairs"  # a sharp-only shard holds no pair
    for info in infos:
        click.echo(f"  {info.path.name}  {info.count:6d} {unit}  {megabytes(info.path.stat().st_size):>12s}")
    reasons = collections.Counter(row[1] for m in manifests.values() for rows in m.get("skipped", {}).values()
                                  for row in rows)
    if reasons:
        say(f"{plural(sum(reasons.values()), 'source image')} skipped ("
            + ", ".join(f"{r} {c}" for r, c in sorted(reasons.items())) + "; see skipped*.tsv)")
    note = shards.unfinished(manifests)
    if note:
        click.echo(f"note: {note}")
    if total > 0 and samples >= 1:
        _show_samples(folder, infos, total, samples, seed, sharp_only, png)


def _show_samples(folder, infos, total: int, samples: int, seed: int, sharp_only: bool, png) -> None:
    """``inspect``'s drawn samples: each in the terminal (blurred | sharp | kernel, or the sharp
    image alone) with its parameters, and all of them as a PNG sheet with ``png``."""
    import numpy as np

    from blurgen import shards
    from blurgen.kernel_view import display_crops
    from blurgen.modes import describe_sample
    from blurgen.physics.camera import describe_draw
    from blurgen.plumbing import terminal
    from blurgen.plumbing.pictures import contact_sheet

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
        say(f"sample {label}:")   # its name above its pictures, whose captions say what each is
        if sharp_only:
            click.echo(terminal.render_images([sample["sharp"]], labels=["sharp"]))
            tiles.append(sample["sharp"])
            captions.append(f"{len(tiles)} sharp: {label}")
            continue
        kernel = display_crops(sample["kernel"][None])[0]
        side = sample["blurred"].shape[0]  # drawn as tall as the images, pixels kept square
        zoom = max(1, side // kernel.shape[0])
        shown = np.kron(kernel, np.ones((zoom, zoom), np.float32))
        if sample.get("blur_model") == "video":  # no kernel to draw: the pair's parameters instead
            from blurgen.runs.video import describe_sample as describe_video_pair

            shown, caption = np.full_like(sample["blurred"], 96), "no kernel: video"
            click.echo(terminal.render_images([sample["blurred"], sample["sharp"]], labels=["blurred", "sharp"]))
            say("  " + describe_video_pair(sample))
        else:
            caption = f"kernel {kernel.shape[0]} px, x{zoom}"
            click.echo(terminal.render_images([sample["blurred"], sample["sharp"], shown],
                                              labels=["blurred", "sharp", f"kernel x{zoom}"]))
            say(describe_draw(sample) if "camera_bayer" in sample else describe_sample(sample))
        number = len(tiles) // 3 + 1
        # The kernel magnified as in the terminal: at its crop's scale it is a dot of a few pixels.
        tiles += [sample["blurred"], sample["sharp"], shown]
        captions += [f"{number} blurred: {label}", f"{number} sharp", f"{number} {caption}"]
    if png:
        save_png(png, contact_sheet(tiles, cols=1 if sharp_only else 3, labels=captions, common_scale=True))
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
    from blurgen.plumbing.progress import progress_bar

    try:
        manifests = shards.folder_manifests(folder)
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
        click.echo(f"{len(problems)} of {checked} shards are bad; run the same `{_maker(manifests)}` command "
                   "with --repair to rebuild exactly those", err=True)
        sys.exit(1)
    if lacking and not partial:
        parts = any(shards.manifest_part(name)[1] > 1 for name in manifests)
        what = f"{len(lacking)} part(s) missing or unfinished" if parts else "the run is unfinished"
        click.echo(f"the {checked} shards built are OK, but the data set is incomplete ({what}); "
                   "--partial checks only what is built", err=True)
        sys.exit(1)
    click.echo(f"{plural(checked, 'shard')} OK")


def _maker(manifests: dict) -> str:
    """The command that made a shard folder (from its manifests' arguments), as verify names it."""
    made = {(m.get("arguments") or {}).get("command") for m in manifests.values()}
    names = {"average": "blurgen average", "blurgen import-pairs": "blurgen import-pairs"}
    return names.get(made.pop(), "blurgen synthesize") if len(made) == 1 else "blurgen synthesize"


def _with_pair_bar(run, resume_hint: str):
    """``run(progress=, on_start=, stop=)`` with a progress bar of pairs (``progress(made,
    dropped=0)``), the stop signals as a stop flag, and its user errors as one line; returns
    what ``run`` returns."""
    import sys

    from blurgen.errors import BlurgenError
    from blurgen.plumbing.progress import progress_bar
    from blurgen.plumbing.stopping import stop_on_signals

    bars = []
    try:
        with stop_on_signals() as stop:
            return run(progress=lambda made, dropped=0: _advance(bars[0], made, dropped), stop=stop,
                       on_start=lambda n: bars.append(progress_bar(total=n, unit="pair", desc="pairs",
                                                                   file=sys.stderr)))
    except BlurgenError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt as exc:
        for bar in bars:
            bar.close()
        interrupted(exc, resume_hint)
    finally:
        for bar in bars:
            bar.close()


@blurgen.command("export")
@click.argument("folder", type=click.Path(file_okay=False))
@click.argument("older", nargs=-1, metavar="")
@click.option("--to", "target", required=True, metavar="[LAYOUT] OUT",
              help="LAYOUT gopro (the default): OUT/<split>/<shard>/blur/*.png and sharp/*.png (GOPRO_Large); "
                   "basicsr: OUT/<split>/input/*.png and target/*.png (BasicSR, NAFNet); lmdb: "
                   "OUT/<split>/input.lmdb and target.lmdb (BasicSR, NAFNet; pip install 'blurgen[lmdb]').")
@click.option("--split", default="train", show_default=True, help="The split folder under OUT (train, test, ...).")
def export_shards_cmd(folder, older, target, split):
    """Shards as PNG pairs (or LMDB) that BasicSR, NAFNet, DeblurGAN-v2 and `trainer fit --gopro` read; resumable."""
    from blurgen.runs.exchange import export_folder

    layout, out = _export_layout(target, older)
    summary = _with_pair_bar(lambda **run: export_folder(folder, out, split, layout, **run),
                             "what was written is complete; run the same command again to resume")
    click.echo(f"{' and '.join(str(p) for p in summary.outputs)}: {summary.pairs:,} pairs; wrote "
               f"{summary.written:,} now" + (f", {summary.existing:,} were already there" if summary.existing else ""))


def _export_layout(target: str, older: tuple) -> tuple[str, str]:
    """(layout, OUT) from ``--to`` and the words after it: ``--to OUT`` (gopro), ``--to LAYOUT OUT``,
    or ``--to folder OUT``, the gopro spelling of earlier versions."""
    from blurgen.runs.peer_layouts import LAYOUTS

    if not older:
        if target in LAYOUTS:
            raise UserError(f"--to {target} needs the output folder after it: --to {target} OUT "
                            f"(for a folder named {target}, --to ./{target})")
        return "gopro", target
    named = target in LAYOUTS or target == "folder"
    if named and len(older) == 1:
        return ("gopro" if target == "folder" else target), older[0]
    raise UserError(f"unexpected argument(s): {' '.join(older[1:] if named else older)} "
                    f"(export FOLDER --to [LAYOUT] OUT, LAYOUT one of {', '.join(LAYOUTS)})")


@blurgen.command("import-pairs")
@click.argument("blur_dir", type=click.Path(file_okay=False))
@click.argument("sharp_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Shard folder to write (or finish).")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Pairs per shard.")
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start afresh.")
@click.option("--repair", is_flag=True,
              help="Verify the finished shards too and rebuild the bad ones (those `blurgen verify` names).")
def import_pairs_cmd(blur_dir, sharp_dir, out, shard_size, overwrite, repair):
    """Real pairs (blurred and sharp images of the same file stem) into shards, to mix with synthetic ones."""
    from blurgen.runs.exchange import import_pairs

    if repair and overwrite:
        raise UserError("--repair keeps the finished shards and --overwrite deletes them: give one")
    summary = _with_pair_bar(lambda **run: import_pairs(blur_dir, sharp_dir, out, shard_size, overwrite=overwrite,
                                                        repair=repair, **run),
                             "finished shards are kept; run the same command again to resume")
    click.echo(f"{out}: {summary.samples:,} pairs in {summary.shards_total} shards from {summary.images:,} matched; "
               f"built {summary.shards_built} shards now"
               + (f", {summary.shards_done_before} were already done" if summary.shards_done_before else ""))
    if summary.shards_redone:
        click.echo(f"rebuilt {len(summary.shards_redone)} damaged or truncated shards: {', '.join(summary.shards_redone)}")
    if summary.skipped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items()))
        click.echo(f"skipped {sum(summary.skipped.values())} ({reasons}); see {out}/skipped.tsv")


# --- blurgen: cameras (camera-profile) ----------------------------------------


@blurgen.command("camera-profile")
@click.argument("photos", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="PHOTO.dng...")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Camera profile to write (JSON).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--name", default=None, help="The camera's name in the profile. [default: the DNG's UniqueCameraModel]")
@click.option("--gain-spread", type=float, default=0.0, show_default=True,
              help="One photo: widen its white-balance gains to gain x [1 - S, 1 + S] (several photos: their pairs).")
@click.option("--shot", type=float, default=None,
              help="Shot-noise scale beta1 (variance per unit of raw signal). [default: the DNG's NoiseProfile]")
@click.option("--read", type=float, default=None,
              help="Read-noise standard deviation beta2, raw units. [default: the DNG's NoiseProfile]")
def camera_profile_cmd(photos, out, overwrite, name, gain_spread, shot, read):
    """A camera profile for `--camera FILE.json` from DNGs' own tags: colour matrix, white balance, noise (docs/camera.md)."""
    from blurgen.errors import BlurgenError
    from blurgen.physics import camera_profile, dng

    check_output(out, overwrite)
    try:
        camera, source = dng.camera_from_dngs([dng.read_tags(p) for p in photos], name=name, gain_spread=gain_spread,
                                              shot=shot, read=read)
        camera_profile.from_dict(camera_profile.to_dict(camera), "the profile made")  # the loader's own checks
        camera_profile.save(camera, out, source)
    except BlurgenError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        from blurgen.plumbing.files import describe_os_error

        raise UserError(f"{out}: could not write ({describe_os_error(exc)})") from None
    for line in camera_profile.describe(camera):
        say(line)
    say(f"wrote {out} ({source['colour_matrix']}); use it with --camera {out}")

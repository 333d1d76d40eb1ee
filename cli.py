"""Command-line entry points: the ``blurgen`` and ``trainer`` click groups.

The commands only parse arguments, call library functions and print; the work
lives in the ``blurgen`` and ``trainer`` packages.  Errors a user can cause are
raised as ``click.UsageError``/``click.ClickException`` (one line, exit 2/1),
never as tracebacks.
"""
import click


class UserError(click.ClickException):
    """A one-line error caused by the user's input; exits with status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


@click.group()
def blurgen():
    """Synthesize motion-blurred / sharp training pairs."""


@click.group()
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


def _show_kernels(batch, index, png=None, echo=click.echo) -> None:
    from blurgen import kernel_view, terminal
    from blurgen.pictures import contact_sheet, write_png

    crops = kernel_view.display_crops(batch.psf)
    width = terminal.shutil.get_terminal_size((100, 24)).columns
    side = crops[0].shape[0]
    per_row = max(1, min(len(crops), (width + 2) // (min(side, 24) + 2)))
    for start in range(0, len(crops), per_row):
        chunk = crops[start : start + per_row]
        labels = [f"#{i}" for i in index[start : start + per_row]]
        echo(terminal.render_images(chunk, width=min(width, per_row * (min(side, 24) + 2)), labels=labels))
    for i, k in enumerate(index):
        echo(kernel_view.kernel_line(batch, i, int(k)))
    if png:
        write_png(png, contact_sheet(crops, cols=min(8, len(crops)), cell=96))
        echo(f"wrote {png}")


@blurgen.command("make-kernels")
@click.option("-n", "count", type=int, default=1000, show_default=True, help="Number of kernels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the kernel stream.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Kernel bank to write (HDF5).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--size", type=int, default=64, show_default=True, help="PSF side in pixels.")
@click.option("--iters", type=int, default=2000, show_default=True, help="Trajectory samples.")
@click.option("--max-len", type=float, default=60.0, show_default=True, help="Trajectory length in pixels.")
@click.option("--expl", type=float, default=None, help="Anxiety (0: straight blur). [default: drawn from DeblurGAN's set]")
@click.option("--fraction", type=float, default=None, help="Exposure fraction in (0, 1]. [default: drawn from 1/10, 1/2, 1]")
@click.option("--preview", is_flag=True, help="Show the first kernels after generating.")
def make_kernels_cmd(count, seed, out, overwrite, size, iters, max_len, expl, fraction, preview):
    """Generate a bank of random camera-shake kernels (Boracchi & Foi 2012)."""
    import sys
    import time

    from tqdm import tqdm

    from blurgen.kernels import KernelSpec, read_bank, write_bank

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
    with tqdm(total=count, unit="kernel", desc="kernels", file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            write_bank(out, count, seed, spec, attrs={"command": "blurgen make-kernels", "arguments": args}, progress=bar.update)
        except OSError as exc:
            raise UserError(f"{out}: could not write ({exc.strerror or exc})") from None
    elapsed = time.perf_counter() - started
    click.echo(f"wrote {count} kernels of {size}x{size} to {out} in {elapsed:.1f} s ({count / elapsed:,.0f} kernels/s)")
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

    import h5py

    from blurgen import kernel_view
    from blurgen.kernels import BankError, read_bank

    if limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    if png:
        _check_output(png, overwrite=True)
    try:
        stats, attrs = read_bank(bank, slice(0, 0))
        with h5py.File(bank, "r") as f:
            n = f["kernels"].shape[0]
        chosen = kernel_view.parse_index(index, n)[:limit]
        batch, _ = read_bank(bank, chosen)
        everything = _read_columns(bank)
    except (BankError, ValueError) as exc:
        raise UserError(str(exc)) from None
    _show_kernels(batch, chosen, png)
    click.echo("")
    spec = json.loads(attrs["spec"])
    spec_text = ", ".join(f"{k} {'drawn' if v is None else v}" for k, v in spec.items())
    click.echo(kernel_view.bank_summary(everything, spec_text))


def _read_columns(bank):
    """Every per-kernel parameter of a bank, without the PSFs (cheap for large banks)."""
    import h5py
    import numpy as np

    from blurgen.kernels import KernelBatch

    with h5py.File(bank, "r") as f:
        cols = {k: f[k][()] for k in KernelBatch.__dataclass_fields__ if k != "psf"}
    return KernelBatch(psf=np.zeros((len(cols["seed"]), 0, 0), np.float32), **cols)


# --- blurgen: synthesis (synthesize, inspect, verify) ------------------------


# --- trainer: fit, eval, deblur ------------------------------------------------

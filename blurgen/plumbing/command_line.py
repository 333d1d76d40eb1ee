"""What both command lines share: one-line user errors, the command group that
fails in one line on a broken output, and small helpers for printing and for
files the commands write.  The commands themselves are in
``blurgen/commands.py`` and ``trainer/commands.py``; ``cli.py`` holds the two
console-script entry points.
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


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("blurgen")
    except PackageNotFoundError:   # run from a checkout that was never installed
        return "unknown (not installed)"


HELP = {"help_option_names": ["-h", "--help"]}


def plural(count: int, word: str) -> str:
    """'1 shard', '2 shards', '1,000 pairs' (English plural with s)."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def warn_ignored(names: list[str], why: str) -> None:
    """One warning line for options given (on the command line or in a --config file) that this run does not use."""
    given = [n for n in names if click.get_current_context().get_parameter_source(n).name in ("COMMANDLINE",
                                                                                                "DEFAULT_MAP")]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        click.echo(f"warning: {flags} {'is' if len(given) == 1 else 'are'} ignored {why}", err=True)


def check_output(path, overwrite: bool) -> None:
    """Refuse an existing output (without --overwrite) or an unwritable folder, before any work."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; pass --overwrite to replace it")
    check_parent(path)


def check_parent(path) -> None:
    """Refuse an output whose folder is missing or not writable, before any work."""
    import os
    from pathlib import Path

    parent = Path(path).parent if str(Path(path).parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{parent}: no such folder")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{parent}: not writable")


def say(text: str, err: bool = False) -> None:
    """``click.echo`` of a message wrapped at words to the terminal's width when the
    stream is a terminal (blurgen.plumbing.terminal.fit_to_terminal); a log keeps its lines whole."""
    import sys

    from blurgen.plumbing.terminal import fit_to_terminal

    click.echo(fit_to_terminal(text, sys.stderr if err else sys.stdout), err=err)


def save_png(path, image) -> None:
    """Write a PNG atomically; a full disk (or any failed write) is one line naming the path."""
    from blurgen.plumbing.files import describe_os_error
    from blurgen.plumbing.pictures import write_png

    try:
        write_png(path, image)
    except OSError as exc:
        raise UserError(f"{path}: could not write ({describe_os_error(exc)})") from None


def interrupted(exc, what: str):
    """End a run stopped by a stop signal (``blurgen.plumbing.stopping.SIGNALS``): one line, exit 130
    (as the shell does for Ctrl-C)."""
    import signal
    import sys

    signum = getattr(exc, "signum", signal.SIGINT)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    click.echo(f"interrupted ({name}): {what}", err=True)
    sys.exit(130)


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def realism_options(prefix: str = "", default=False, fields: tuple[str, ...] | None = None):
    """Decorator: the options of the realism spec (``blurgen.physics.realism.OPTIONS``), one per field,
    each with the spec's one help text: ``--linear --saturate --noise --jpeg-quality LO-HI
    --camera [NAME|FILE.json]``, or with ``prefix`` ``online-`` ``--online-linear ...`` (``trainer
    fit``).  Parameters are named after the fields (with the prefix, ``online_noise``);
    ``default``: the flags' default (None where a command must tell "not given" apart,
    as ``trainer fit`` does for presets and ``--resume``); ``fields``: only these (``average``
    takes the camera alone)."""
    from blurgen.physics.cameras import DEFAULT_CAMERA
    from blurgen.physics.realism import OPTIONS

    def option(name: str):
        flag = f"--{prefix}{name.replace('_', '-')}"
        dest = f"{prefix.replace('-', '_')}{name}"
        if name == "jpeg_quality":
            return click.option(flag, dest, default=None, metavar="LO-HI", help=OPTIONS[name])
        if name == "camera":
            return click.option(flag, dest, default=None, is_flag=False, flag_value=DEFAULT_CAMERA,
                                metavar="[NAME|FILE.json]", help=OPTIONS[name])
        return click.option(flag, dest, is_flag=True, default=default, help=OPTIONS[name])

    def decorate(command):
        for name in reversed([n for n in OPTIONS if fields is None or n in fields]):
            command = option(name)(command)
        return command

    return decorate

"""Run configs in YAML: ``--config FILE`` for a command, and the ``config.yaml`` a run leaves.

A config file is a YAML mapping of a command's options: each key is an option's long
name (``crops-per-image``, or ``crops_per_image``, or click's parameter name), each value
what the flag would take (a list for a repeatable option, true/false for a flag, null
for "not given").  The file's values become the command's defaults through click's own
mechanism (``ctx.default_map``), so a flag on the command line overrides them and the
command sees a value from the file exactly as it would see the flag.  Every value is
checked when the file is read, by click's conversion of the option's type after a
stricter check of the YAML type (click's int conversion would take 1.5 as 1), so that a
bad one is one line naming the file and the key.

The other direction: :func:`settings` lays a command's final values out under the same
keys, and :func:`render` makes the text of a ``config.yaml`` that ``--config`` reads back.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import click

from blurgen.plumbing.command_line import UserError

#: The file a run folder (``trainer fit``) or a whole shard run keeps its settings in.
CONFIG = "config.yaml"

#: Parameters no config file sets: the file itself, and what only prints and exits.
_NOT_KEYS = {"config", "help", "version"}


def config_option(command):
    """Decorator: ``--config FILE``, a YAML file of the command's options (see the module).
    Eager, so that the file's values are in place before click reads any other option."""
    return click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                        callback=_apply, metavar="FILE.yaml",
                        help="Read the options from this YAML file (keys: the long option names); "
                             "options on the command line override it.")(command)


def _apply(ctx: click.Context, param: click.Parameter, path: str | None) -> None:
    if path is None or ctx.resilient_parsing:
        return
    ctx.default_map = {**(ctx.default_map or {}), **file_defaults(ctx, path)}


def file_defaults(ctx: click.Context, path: str | os.PathLike) -> dict:
    """Click parameter name -> value (converted by the option's type) of the config file
    ``path`` for ``ctx``'s command; null values are left out (not given).  UserError (one
    line naming the file, and the key where one is at fault) on a file that cannot be
    read, is not a YAML mapping, names an option twice or one the command does not have,
    or gives a value of the wrong type."""
    document = read_config(path)
    options = option_keys(ctx.command)
    values, seen = {}, {}
    for key, value in document.items():
        option = options.get(str(key))
        if option is None:
            raise UserError(f"{path}: unknown key {key!r}{_suggestion(str(key), options)}; the keys are the long "
                            f"options of `{ctx.command_path}` (see --help)")
        if option.name in seen:
            raise UserError(f"{path}: {key!r} and {seen[option.name]!r} are the same option; give it once")
        seen[option.name] = key
        if value is not None:
            values[option.name] = _converted(ctx, option, value, f"{path}: {key}")
    return values


def read_config(path: str | os.PathLike) -> dict:
    """The YAML mapping in ``path`` ({} for an empty file); UserError (one line) if it
    cannot be read or is not a mapping."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (a YAML config file is UTF-8 text)") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise UserError(f"{path}: not valid YAML: {problem}{where}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UserError(f"{path}: a config file is a YAML mapping of option: value, not a "
                        f"{type(document).__name__}")
    return document


def option_keys(command: click.Command) -> dict[str, click.Option]:
    """Every key a config file may use for ``command``'s options -> the option: the long
    option's name with dashes or with underscores, and click's parameter name."""
    keys = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in _NOT_KEYS:
            continue
        names = {param.name} | {opt.lstrip("-") for opt in param.opts if opt.startswith("--")}
        for name in names | {name.replace("-", "_") for name in names}:
            keys[name] = param
    return keys


def key_of(option: click.Option) -> str:
    """The key :func:`settings` writes for ``option``: its (first) long name without the dashes."""
    return next((opt[2:] for opt in option.opts if opt.startswith("--")), option.name)


def _suggestion(key: str, options: dict) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _converted(ctx: click.Context, option: click.Option, value, where: str):
    """``value`` through ``option``'s click type, after the YAML type is checked."""
    if option.multiple or option.nargs == -1:
        items = value if isinstance(value, list) else [value]   # one folder needs no list
        value = [_checked(option, item, where) for item in items]
    else:
        value = _checked(option, value, where)
    try:
        return option.type_cast_value(ctx, value)
    except click.BadParameter as exc:
        raise UserError(f"{where}: {exc.message}") from None


def _checked(option: click.Option, value, where: str):
    """``value`` if its YAML type is what ``option`` takes, else UserError naming both."""
    kind = option.type
    if isinstance(value, (list, dict)):
        raise UserError(f"{where}: expected one value, got a {'list' if isinstance(value, list) else 'mapping'}")
    if option.is_flag or isinstance(kind, click.types.BoolParamType):
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {value!r}")
    elif isinstance(kind, click.types.IntParamType):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: expected an integer, got {value!r}")
    elif isinstance(kind, click.types.FloatParamType):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: expected a number, got {value!r}")
    elif isinstance(kind, (click.types.StringParamType, click.Choice, click.Path)):
        if value is True and isinstance(option.flag_value, str):
            return option.flag_value   # --camera alone, as `camera: true`
        if not isinstance(value, str):
            # YAML reads 2:1 as the number 121 (base 60) and 1.0 as a float: text must be quoted.
            raise UserError(f"{where}: expected text, got the {type(value).__name__} {value!r} "
                            "(put the value in quotes)")
    return value


def settings(command: click.Command, values: dict, leave_out: tuple[str, ...] = ()) -> dict:
    """``command``'s options with their ``values`` (click parameter name -> value), keyed and
    ordered as ``command --help`` lists them (:func:`key_of`), as YAML's plain types: paths
    made absolute (so that the file works from any folder), tuples as lists.  ``leave_out``:
    parameter names not to record (one-off actions such as ``--overwrite``)."""
    document = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in _NOT_KEYS or param.name in leave_out:
            continue
        document[key_of(param)] = _plain(param, values.get(param.name))
    return document


def _plain(param: click.Option, value):
    if value is None:
        return None
    if param.multiple or param.nargs == -1:
        return [_plain_one(param, v) for v in value]
    return _plain_one(param, value)


def _plain_one(param: click.Option, value):
    if isinstance(param.type, click.Path):
        return str(Path(value).resolve())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def render(document: dict, header: list[str]) -> str:
    """The text of a config file: ``header`` as comment lines, then ``document`` in YAML
    (key order kept; text that YAML would read as another type comes out quoted)."""
    import yaml

    header = [*header, "null: the option was not given (its default in --help applies)."]
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header)
    return comments + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write_config(path: str | os.PathLike, text: str) -> None:
    """Write a config file atomically (blurgen.plumbing.files.write_text)."""
    from blurgen.plumbing.files import write_text

    write_text(path, text)

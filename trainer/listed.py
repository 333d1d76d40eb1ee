"""Click pieces whose names come from the registries, read when click shows or checks them.

Every name a ``trainer`` option offers (metrics, content losses, gradient
penalties, presets, ...) has one home: the registry or constant next to the
code that implements it.  Those modules import torch, cv2 or skimage, which
``trainer --help`` must not wait for, so the command module names where a
list lives ("trainer.losses:CONTENT_LOSSES") and these classes import it only
when a command's help or value needs it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

import click


def look_up(where: str):
    """The object at ``"package.module:attribute.attribute"``, importing the module."""
    module, _, path = where.partition(":")
    value = importlib.import_module(module)
    for name in path.split("."):
        value = getattr(value, name)
    return value


class Names(click.Choice):
    """A ``click.Choice`` of the names in the registry at ``where`` (see ``look_up``), in
    its order; ``default_first``: where the default is, which is then listed first (the
    order the docs use: ``--gradient-penalty per-pixel|per-image``)."""

    def __init__(self, where: str, default_first: str | None = None):
        # click.Choice.__init__ would read the names now; they are read when needed.
        self.where, self.default_first = where, default_first
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        names = tuple(look_up(self.where))
        if self.default_first is None:
            return names
        default = look_up(self.default_first)
        return tuple(sorted(names, key=lambda name: name != default))   # stable: the rest keep their order


class ListingOption(click.Option):
    """A ``click.Option`` whose ``help`` may be a function returning the text, called each
    time the help is shown, so that a list in it is the registry's of that moment."""

    def __init__(self, *args, help: str | Callable[[], str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._help = help

    @property
    def help(self) -> str | None:
        return self._help() if callable(self._help) else self._help

    @help.setter
    def help(self, value) -> None:   # click.Parameter.__init__ sets it (to None here)
        self._help = value

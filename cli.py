"""The console scripts ``blurgen`` and ``trainer`` (pyproject.toml's entry points).

The commands live beside their packages: ``blurgen/commands.py`` and
``trainer/commands.py``; what both share (one-line user errors, the command
group class) is ``blurgen/plumbing/command_line.py``.  Errors a user can cause end in
one line and a non-zero exit; a bug keeps its traceback.
"""
from blurgen.commands import blurgen
from trainer.commands import trainer

__all__ = ["blurgen", "trainer"]

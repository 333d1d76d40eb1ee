"""The one base class of the errors a user of blurgen can cause and fix.

A bad argument, a missing or broken file, a folder made by another run: the
library raises a subclass of :class:`BlurgenError` with a message that fits on
one line and says what to do, and the command line prints that line and exits
non-zero.  Anything else is a bug and keeps its traceback.

It derives from ValueError so that code written against the classes before
they shared a base (``except ValueError``) still catches them.
"""


class BlurgenError(ValueError):
    """A problem with the user's input, files or folders (one line, for the user)."""

"""The one base class of the errors a user of the trainer can cause and fix.

Bad settings, a missing or broken checkpoint, data that is not there, a run
folder that already holds a run: the library raises a subclass of
:class:`TrainerError` (``DataError``, ``CheckpointError``, ``GoProError``,
``VGGWeightsError``, ``BenchmarkError``, ``ConfigError``, ``RunError`` ...)
with a one-line message, and ``trainer``'s command line prints that line and
exits 2.  Any other exception is a bug and keeps its traceback; only an
OSError (a full disk, a file that cannot be read) is also the user's to fix.

It derives from ValueError so that code written against the classes before
they shared a base (``except ValueError``) still catches them.
"""


class TrainerError(ValueError):
    """A problem with the user's settings, files or folders (one line, for the user)."""

"""``trainer launch``: torchrun for ``trainer fit``, with the stops a cluster needs.

torchrun (torch.distributed.run) starts a node's ranks and joins the nodes
through a rendezvous; on its own it does three things a preempted job cannot
afford:

* it handles SIGTERM, SIGINT, SIGHUP and SIGQUIT but not SIGUSR1, Slurm's
  ``--signal`` warning, which therefore kills it and leaves its ranks (each in
  a session of its own) training on as orphans;
* a signal it does handle ends it with a traceback and exit 1, not 128 + N;
* a rank that fails ends it with a report of the failure on top of the
  rank's own one-line error.

``launch`` runs torchrun's own launcher in this process with SIGUSR1 among
the signals it forwards to the ranks (``TORCHELASTIC_SIGNALS_TO_HANDLE``),
and turns its ending into the rank's exit status: 128 + N after a stop
signal, the rank's own status (2 for a user error, which the rank printed)
otherwise.  The ranks stop together (trainer.cluster.StopRequest) and each
dies with its launcher whatever kills it (trainer.cluster.die_with_launcher).
"""
from __future__ import annotations

import logging
import os
import signal

from trainer.errors import TrainerError

#: What torchrun forwards to the ranks; SIGUSR1 added to torchrun's own list.
FORWARDED_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


class LaunchError(TrainerError):
    """torchrun options that cannot start a run (one line, for the user)."""


def split_arguments(arguments: list[str]) -> tuple[list[str], list[str]]:
    """``[torchrun options..., "fit", fit options...]`` -> (torchrun options, fit options)."""
    if "fit" not in arguments:
        raise LaunchError("nothing to launch: give torchrun's options, then `fit` and its options, e.g. "
                          "trainer launch --nproc-per-node 4 fit --out runs/a ...")
    at = arguments.index("fit")
    return list(arguments[:at]), list(arguments[at + 1:])


def exit_status(code: int) -> int:
    """A process's exit status as a shell reports it: a negative ``code`` (killed by
    signal -code, as subprocess reports it) is 128 + the signal's number."""
    return 128 - code if code < 0 else code


def launch(torchrun_options: list[str], fit_options: list[str]) -> int:
    """Run ``trainer fit FIT_OPTIONS`` as the ranks torchrun's options describe; the
    exit status (0: every rank finished).  LaunchError on options torchrun refuses."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # torchrun >= 2.7 takes the list as an option (and sets the variable from it);
    # older ones read the variable only.
    os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = FORWARDED_SIGNALS
    takes_option = "--signals-to-handle" in torchrun.get_args_parser()._option_string_actions
    if takes_option and not any(o.startswith(("--signals-to-handle", "--signals_to_handle")) for o in torchrun_options):
        torchrun_options = ["--signals-to-handle", FORWARDED_SIGNALS, *torchrun_options]
    # torchrun's per-failure ERROR log repeats what the failed rank printed itself,
    # and its warning on a stop signal what rank 0 prints.
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").setLevel(logging.CRITICAL)
    logging.getLogger("torch.distributed.elastic.agent.server.api").setLevel(logging.ERROR)
    try:
        args = torchrun.parse_args([*torchrun_options, "--module", "trainer", "fit", *fit_options])
    except SystemExit as exc:   # argparse printed its usage line
        raise LaunchError(f"torchrun's options were refused (exit {exc.code}); see `torchrun --help`") from None
    try:
        torchrun.run(args)
    except SignalException as exc:
        # torchrun forwarded the signal and waited for the ranks: they saved and stopped.
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        # The first rank to fail: the others were stopped because of it.
        return exit_status(exc.get_first_failure()[1].exitcode)
    return 0


def reported_by_the_rank(status: int) -> bool:
    """Whether a rank that ended with ``status`` said why itself, in one line: a user
    error (2) or a stop signal (128 + N); otherwise its traceback is all there is."""
    return status in (0, 2, *(128 + int(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)))

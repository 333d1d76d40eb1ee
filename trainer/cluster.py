"""Where a process stands among a run's processes, and how they stop together.

A run is one process, or N ranks that torchrun (or ``trainer launch``) started
with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set.  This module reads that
environment (and refuses Slurm's N independent copies, which would all be
rank 0 of their own run), ties a rank's life to its launcher's, and turns a
stop signal that reached any rank into a stop that every rank takes after the
same step.

Stop signals: Ctrl-C (SIGINT), a scheduler's preemption (SIGTERM; Slurm and
Kubernetes send it, often to every process of the job) and Slurm's
``--signal`` warning (SIGUSR1 unless told otherwise): ``blurgen.plumbing.stopping.SIGNALS``.
DataLoader workers ignore them (trainer.data), so only the rank decides.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import torch

from blurgen.plumbing.stopping import StopFlag, die_with_parent, stop_on_signals
import trainer.device as device
from trainer.errors import TrainerError


class ClusterError(TrainerError):
    """A run started in a way that cannot work (one line, for the user)."""


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def distributed_from_env(env=None) -> Distributed:
    """Rank and world size as torchrun sets them (RANK, WORLD_SIZE, LOCAL_RANK); 1 process otherwise."""
    env = os.environ if env is None else env
    return Distributed(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def check_not_slurm_copies(env=None) -> None:
    """ClusterError when Slurm started this process as one of several tasks of a
    step (``srun trainer fit`` with --ntasks > 1) and torchrun did not make it a
    rank: each copy would be rank 0 of a run of its own, all in one folder."""
    env = os.environ if env is None else env
    if "RANK" in env:
        return
    # srun sets the step's task count; a batch script only the job's.
    tasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
    if tasks.isdigit() and int(tasks) > 1:
        raise ClusterError(
            f"Slurm started {tasks} copies of this command (SLURM_NTASKS={tasks}), each of which would train "
            "a run of its own in one folder: run one task per node that starts the node's ranks, "
            "`srun --ntasks-per-node=1 trainer launch --nproc-per-node GPUS ... fit ...` "
            "(docs/training.md, 'On a Slurm cluster'), or one task (`srun --ntasks=1`)")


def resolve_device(name: str, dist_info: Distributed) -> torch.device:
    """``trainer.device.resolve_device``, where under torchrun each rank takes GPU LOCAL_RANK."""
    return device.resolve_device(name, dist_info.local_rank if dist_info.world_size > 1 else None)


def die_with_launcher(signum: int = signal.SIGTERM) -> None:
    """Under torchrun (TORCHELASTIC_RUN_ID set), have the kernel send ``signum`` to
    this rank when its launcher dies, however it dies (a SIGUSR1 it does not
    handle, kill -9, the OOM killer): the rank then stops as on any stop signal,
    saving its step, instead of training on as an orphan
    (blurgen.plumbing.stopping.die_with_parent; Linux only)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        die_with_parent(os.getppid(), signum)


class StopRequest(StopFlag):
    """The training run's stop flag (:class:`blurgen.plumbing.stopping.StopFlag`: its signals, its
    second-Ctrl-C rule), agreed between ranks: a stop asks the run to finish its current
    step, save a checkpoint and end.

    With several ranks a signal may reach one rank only, or each at another
    step.  :meth:`agreed` is then a collective: every rank calls it once per
    step, at the same point, and all learn whether any rank was asked to stop
    (a MAX all-reduce of the signal numbers), so all stop after the same step
    and none waits for ever on a peer that has left.  The all-reduce runs on a
    CPU (gloo) group, started at one step and read at the next: no rank waits
    for it (0.4 ms a step measured here when waited for), and a stop lands one
    step after the signal.  Used as a context manager, it handles the stop
    signals for its block (``enabled``; main thread only)."""

    def __init__(self, enabled: bool = True, group=None):
        super().__init__()
        self.group = group       # a gloo process group (several ranks), or None (one process)
        self._pending = None     # (work, flag) of the all-reduce started at the previous step
        self.enabled = enabled
        self._handling = None

    def agreed(self) -> bool:
        """Whether the run stops now: this process's request, or with a group, any rank's
        as of the previous call."""
        if self.group is None:
            return self.requested
        import torch.distributed as dist

        if self._pending is not None:
            work, flag = self._pending
            work.wait()
            self._pending = None
            if flag.item():
                if self.signum is None:
                    self.signum = int(flag.item())   # stopped by a peer's signal: report that one
                return True
        flag = torch.tensor([self.signum or 0], dtype=torch.int64)
        self._pending = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True), flag)
        return False

    def __enter__(self):
        if self.enabled:
            self._handling = stop_on_signals(self)
            self._handling.__enter__()
        return self

    def __exit__(self, *exc):
        if self._pending is not None and exc[0] is None:   # every rank started it: it completes
            self._pending[0].wait()
            self._pending = None
        if self._handling is not None:
            self._handling.__exit__(*exc)
            self._handling = None

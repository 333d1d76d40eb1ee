"""A run folder (``trainer fit --out``): what a run leaves on disk, and how
it is started, resumed and read back.

    last.pt        full training state, rewritten every checkpoint (--resume reads it)
    best.pt        generator with the best validation PSNR
    scalars.csv    step, name, value: the TensorBoard scalars as text
    tensorboard/   the TensorBoard event files
    preview.png    blurred | restored | sharp of the latest validation
    curves.png     validation PSNR and the training losses so far
    config.yaml    the options of the `trainer fit` that started the run (docs/training.md)

The names are here, not in the training loop, so that code that only reads
a run (``trainer curves``, ``trainer eval``) finds its files without importing
torch: this module imports it (through trainer.checkpoint) only when it saves
or loads a checkpoint.
"""
from __future__ import annotations

import contextlib
import csv
import os
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from blurgen.plumbing import files
from blurgen.plumbing.pictures import write_png
from trainer.curves import Series, plot_curves
from trainer.errors import TrainerError
from trainer.output import naming

if TYPE_CHECKING:
    from trainer.config import TrainConfig

LAST = "last.pt"            # full training state, rewritten every checkpoint
BEST = "best.pt"            # generator with the best validation PSNR
SCALARS = "scalars.csv"     # step, name, value: the TensorBoard scalars as text
TENSORBOARD = "tensorboard"  # folder of TensorBoard's event files
PREVIEW = "preview.png"     # blurred | restored | sharp of the latest validation
CURVES = "curves.png"       # validation PSNR and the training losses so far


class RunError(TrainerError):
    """A run that cannot start or continue as asked (one line, for the user)."""


@dataclass
class Progress:
    """Where a run stands: generator steps done, epochs done, and the best
    validation so far ({"psnr", "ssim", "step"}, or None before the first)."""

    step: int = 0
    epoch: int = 0
    best: dict | None = None


class ScalarLog:
    """Scalars to TensorBoard and to ``scalars.csv`` (step, name, value) beside the checkpoints.

    On resume at step k both drop what the interrupted run logged after k, so
    the curves show each step once.
    """

    def __init__(self, out: Path, start: int):
        from torch.utils.tensorboard import SummaryWriter

        self.path = out / SCALARS
        # What the file holds, per name, for the curves: 16 bytes a point, so a
        # 300-epoch run's history stays a few MB.
        self.history: dict[str, tuple[array, array]] = {}
        with naming(self.path):
            self._start_file(start)
        self.file = open(self.path, "a", newline="")
        self.csv = csv.writer(self.file)
        self.tb = SummaryWriter(log_dir=str(out / TENSORBOARD), purge_step=start if start else None)

    def _start_file(self, start: int) -> None:
        if start > 0 and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.reader(f)][1:]
            kept = [r for r in rows if r and int(r[0]) <= start]
            with files.atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([["step", "name", "value"], *kept])
            for step, name, value in kept:
                self._remember(int(step), name, float(value))
        elif not self.path.exists() or start == 0:
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(["step", "name", "value"])

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.tb.add_scalar(name, value, step)
            with naming(self.path):
                self.csv.writerow([step, name, f"{value:.6g}"])
            self._remember(step, name, float(f"{value:.6g}"))
        with naming(self.path):
            self.file.flush()

    def _remember(self, step: int, name: str, value: float) -> None:
        steps, values = self.history.setdefault(name, (array("q"), array("d")))
        steps.append(step)
        values.append(value)

    def series(self) -> Series:
        """Everything logged so far: name -> (steps int64, values float64)."""
        return {name: (np.array(steps, np.int64), np.array(values, np.float64))
                for name, (steps, values) in self.history.items()}

    def triplet(self, step: int, image: np.ndarray) -> None:
        self.tb.add_image("val/blurred_restored_sharp", image, step, dataformats="HWC")

    def close(self) -> None:
        self.tb.close()
        self.file.close()


def triplet_image(blurred: np.ndarray, restored: np.ndarray, sharp: np.ndarray, title: str | None = None,
                  gap: int = 4) -> np.ndarray:
    """blurred | restored | sharp side by side, each labelled below, ``title`` above:
    uint8 (H + 2 bands, 3W + 2 gap, 3) (blurgen.plumbing.pictures.side_by_side)."""
    from blurgen.plumbing.pictures import side_by_side

    return side_by_side([blurred, restored, sharp], labels=["blurred", "restored", "sharp"], title=title, gap=gap)


def check_free(out: str | os.PathLike) -> None:
    """Busy (one line naming the holder) if a live run holds the folder ``out``; takes nothing."""
    files.check_unlocked(Path(out) / LAST, what=f"run folder {out}")


class RunFolder:
    """The folder ``cfg.out`` of one run of ``fit`` with configs ``cfg`` and ``data_cfg``.

    ``gan`` arguments are trainer.loop.GAN (networks possibly wrapped; the
    checkpoints hold the plain modules).  Only the main process (rank 0)
    writes: ``open_log``, the saves and the pictures are for it alone.
    """

    def __init__(self, cfg: TrainConfig, data_cfg, world_size: int = 1):
        self.out = Path(cfg.out)
        self.last = self.out / LAST
        self.best = self.out / BEST
        self.cfg, self.data_cfg, self.world_size = cfg, data_cfg, world_size
        self.log: ScalarLog | None = None
        self.fingerprints: dict | None = None   # trainer.provenance: the data folders' fingerprints

    @contextmanager
    def claimed(self) -> Iterator[None]:
        """Hold the folder's lock (``.last.pt.lock``, blurgen.plumbing.files.exclusive_lock) for the
        block; a Busy error (one line naming the holder's PID and host) if another
        run holds it.  Creates the folder, and removes it again if the run left nothing
        in it (one refused at start-up)."""
        created = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            with files.exclusive_lock(self.last, what=f"run folder {self.out}"):   # as check_free names it
                yield
        finally:
            if created:
                with contextlib.suppress(OSError):   # not empty: the run wrote something
                    self.out.rmdir()

    def check_start(self, resume: bool, init_from) -> None:
        """RunError unless the folder fits what was asked: ``resume`` needs a
        last.pt, a new run (``init_from`` or not) must not find one."""
        if resume and init_from is not None:
            raise RunError("--init-from starts a new run; --resume continues one: give one")
        if resume and not self.last.exists():
            raise RunError(f"{self.out}: nothing to resume (no {LAST})")
        if not resume and self.last.exists():
            raise RunError(f"{self.out} already holds a run ({LAST}): pass --resume to continue it, "
                             "or choose another --out")

    def write_settings(self, text: str, replace: bool = True) -> None:
        """Write config.yaml (atomically); unless ``replace``, only if the folder has none."""
        from blurgen.plumbing.run_config import CONFIG, write_config

        path = self.out / CONFIG
        if replace or not path.exists():
            with naming(path):
                write_config(path, text)

    def read_last(self, map_location) -> dict:
        """The training state in last.pt (trainer.checkpoint.load_training); a
        CheckpointError if it is not one, RunError if another number of
        processes wrote it (each rank's data share would differ)."""
        import trainer.checkpoint as checkpoint

        state = checkpoint.load_training(self.last, map_location=map_location)
        if state["data"]["world_size"] != self.world_size:
            raise RunError(f"{self.last} was written by a run of {state['data']['world_size']} "
                           f"processes, not {self.world_size}: resume it with as many, or start a new run "
                           f"from its weights with --init-from {self.last} --out NEW_RUN")
        return state

    def open_log(self, start: int) -> ScalarLog:
        """Create the folder and its scalar log, cut back to ``start`` on resume."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = ScalarLog(self.out, start)
        return self.log

    def save_checkpoint(self, progress: Progress, gan, schedule: dict) -> None:
        """Write last.pt (atomically) for a run that has done ``progress.step``
        steps; the data stream goes on at batch ``progress.step``."""
        import trainer.checkpoint as checkpoint
        from trainer.config import to_primitive

        data = {"config": to_primitive(self.data_cfg), "next_batch": progress.step,
                "world_size": self.world_size, "fingerprints": self.fingerprints}
        checkpoint.save(self.last, checkpoint.training_state(
            step=progress.step, epoch=progress.epoch, generator=gan.generator, critic=gan.critic,
            opt_generator=gan.opt_generator, opt_critic=gan.opt_critic, schedule=schedule,
            config=to_primitive(self.cfg), data=data, best=progress.best))

    def save_best(self, step: int, generator, scores: dict) -> None:
        """Write best.pt: the generator alone, its scores, and the data settings
        it was validated with (so that ``trainer eval`` scores as the run did)."""
        import trainer.checkpoint as checkpoint
        from trainer.config import to_primitive

        checkpoint.save(self.best, checkpoint.generator_state(
            step=step, generator=generator, config=to_primitive(self.cfg), scores=scores,
            data={"config": to_primitive(self.data_cfg)}))

    def draw(self, series: Series, step: int, example: tuple | None, title: str | None = None) -> np.ndarray | None:
        """curves.png from ``series``; with a validation ``example`` (blurred,
        restored, sharp uint8 images) also preview.png (``title`` above it) and the
        TensorBoard image of step ``step``.  Returns the preview picture (None without one)."""
        with naming(self.out / CURVES):
            write_png(self.out / CURVES, plot_curves(series))
        if example is None:
            return None
        picture = triplet_image(*example, title=title)
        self.log.triplet(step, picture)
        with naming(self.out / PREVIEW):
            write_png(self.out / PREVIEW, picture)
        return picture

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

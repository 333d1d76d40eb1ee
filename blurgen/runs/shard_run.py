"""One shard-making run, whatever makes the shards: the engine behind ``synthesize``,
``average`` and ``import-pairs``.

A kind of run hands the engine a :class:`ShardJob`: the arguments that decide its
output, how many samples each item (a photo, a clip, a pair of files) gives, and
the module-level function that builds one shard of items.  The engine owns the
rest, once for every kind:

* the output folder and its lock (one run per ``--part`` of a folder);
* the plan: shard s holds the samples of items ``s * items_per_shard ...``, and
  ``--part i/n`` builds the shards s with s % n == i;
* resume: the manifest lists every finished shard (name, count, checksum,
  size), written after each one; a shard not listed, missing or of another
  size is built again, and with ``repair`` every listed one is verified too;
* the worker pool (spawned processes, one shard each; a worker that dies ends
  the run in one line), the stop signals (``blurgen.plumbing.stopping``), progress;
* the skip report (``skipped.tsv``) and the run's :class:`Summary`.

Every shard is a pure function of the job and its task, so the output is the
same, byte for byte, whatever the number of workers, the order in which shards
finish, or how often the run was interrupted and resumed.
"""
from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from blurgen import shards
from blurgen.errors import BlurgenError
from blurgen.plumbing import files, run_config, stopping
from blurgen.plumbing.stopping import StopFlag

SKIP_REPORT = "skipped.tsv"


class SynthError(BlurgenError):
    """A problem with the arguments or the folders of a shard-making run (one line, for the user)."""


def check_run_settings(shard_size: int, seed: int, part: tuple[int, int]) -> None:
    """SynthError on a shard size, seed or ``--part i/n`` no shard-making run can use
    (``synthesize``, ``average``)."""
    if shard_size < 1:
        raise SynthError(f"--shard-size must be >= 1, got {shard_size}")
    if seed < 0:
        raise SynthError(f"--seed must be >= 0, got {seed}")
    i, n = part
    if not (n >= 1 and 0 <= i < n):
        raise SynthError(f"--part must be i/n with 0 <= i < n, got {i}/{n}")


@dataclass
class Summary:
    images: int = 0  # photos (clips) of the shards this run (this --part) plans
    samples: int = 0
    shards_built: int = 0
    shards_total: int = 0
    shards_done_before: int = 0
    shards_redone: list = field(default_factory=list)  # listed shards rebuilt: truncated, or bad (--repair)
    repair_differs: list = field(default_factory=list)  # rebuilt shards whose bytes differ from the record
    skipped: Counter = field(default_factory=Counter)
    upscaled: int = 0  # photos enlarged by --small upscale, in every listed shard
    appended: int | None = None  # photos --append put into new shards (None: no --append)
    pairs_planned: int = 0  # pairs this run set out to make (at most: skipped photos give none)
    bytes_estimate: int = 0  # what those pairs were estimated to take on disk
    bytes: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ShardTask:
    """Shard ``index``: the samples of items ``first_image`` .. ``stop_image - 1``."""

    index: int
    first_image: int
    stop_image: int

    @property
    def name(self) -> str:
        return shards.shard_name(self.index)


@dataclass(frozen=True)
class ShardJob:
    """A kind of shard-making run, as the engine needs it described.

    arguments : the settings that decide the output, as JSON values (the manifest records
        them; a resume with others is refused).
    part : (i, n) -- build only shards s with s % n == i.
    samples_per_item : samples each item (photo, clip, pair) is planned to give.
    items_per_shard : items whose samples go into one shard.
    build : ``build(task, items, config, out, progress=, stop=) -> entry``, a module-level
        function (a pool pickles it by name): makes shard ``task`` of ``items`` atomically and
        returns its manifest entry (``name``, ``count``, ``checksum``, ``bytes``, optional
        ``upscaled``) plus ``skipped`` rows (item, reason, detail).  ``progress(made, dropped)``
        after each item; ``stop`` checked between samples.
    config : what ``build`` reads besides the task (picklable).
    settle : ``settle(out, manifest, items) -> (items, tasks, appended)``, in the run's
        process, before any work: records the inputs in a new manifest or checks them on a
        resume (SynthError if they changed), and returns the items in index order, every
        task of this part, and the items ``--append`` added (None: no append).  Default:
        the items as found, the plain plan, inputs not recorded.
    estimate : ``estimate(items, n_shards) -> bytes`` the shards of those items take on
        disk, for the space check; None: not estimated.
    """

    arguments: dict
    part: tuple[int, int]
    samples_per_item: int
    items_per_shard: int
    build: Callable[..., dict]
    config: object = None
    settle: Callable[[Path, dict, list], tuple[list, list[ShardTask], int | None]] | None = None
    estimate: Callable[[list, int], int] | None = None

    def plan(self, n_items: int, first_shard: int = 0, first_item: int = 0) -> list[ShardTask]:
        """Every shard of ``n_items`` items that this ``part`` builds, in order.

        ``first_shard``, ``first_item``: where a set of items added later (``--append``)
        starts in the shard numbering and in the run's list of items.
        """
        per = self.items_per_shard
        i, n = self.part
        total = math.ceil(n_items / per)
        stop = first_item + n_items
        return [ShardTask(first_shard + s, first_item + s * per, min(stop, first_item + (s + 1) * per))
                for s in range(total) if (first_shard + s) % n == i]


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the platform has
    one (a batch scheduler's allocation, taskset), else all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _single_threaded():
    import cv2

    cv2.setNumThreads(1)  # one process per core already


_PROGRESS = None  # in a pool worker: the queue its per-image progress goes to
_PARENT = 0  # in a pool worker: the PID of the run that started it


def _worker_init(progress_queue, parent: int):
    global _PROGRESS, _PARENT
    # Dies with the run (kill -9 of it included): an orphan would finish its shard and
    # rename it into a folder that the next run may already own (issue 22.17).
    stopping.die_with_parent(parent)
    _single_threaded()
    # Ctrl-C and a scheduler's SIGTERM reach the whole process group.  A
    # worker killed at a random point may die holding a lock of the pool's
    # queues, and the parent then hangs for ever in terminate() (seen twice in
    # 45 tries of SIGTERM to the group).  So workers leave the group: the parent alone gets
    # those signals and stops the pool in order (terminate() sends SIGTERM,
    # which kills a worker at once, in C, printing nothing; the parent then
    # removes its temporary file).  The parent started us with SIGINT and
    # SIGTERM blocked (``signals_blocked``), so none could land before this
    # point; one that arrived meanwhile is delivered at the unblock, here,
    # where no lock is held.  SIGINT and SIGUSR1 are ignored, should one be
    # sent to a worker alone; SIGTERM is how the parent ends a worker.
    os.setpgid(0, 0)
    stopping.ignore_in_worker(keep=(signal.SIGTERM,))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping.SIGNALS)
    _PROGRESS, _PARENT = progress_queue, parent


def _report_progress(made: int, dropped: int) -> None:
    if stopping.orphaned(_PARENT):  # where the kernel cannot kill us with the run (not Linux)
        os._exit(1)
    _PROGRESS.put((made, dropped))


def _pool_task(job: tuple) -> dict:
    build, args = job
    return build(*args, progress=_report_progress)


# --- the whole run ---------------------------------------------------------------------


def output_names(part: tuple[int, int]) -> tuple[str, str]:
    """(manifest, skip report) file names of a run: ``manifest.json`` and
    ``skipped.tsv``, or ``manifest.part-I-of-N.json`` and ``skipped.part-I-of-N.tsv``
    for part I of N, so that the parts of a job array can share one folder."""
    i, n = part
    return shards.manifest_name(part), SKIP_REPORT if n == 1 else f"skipped.part-{i}-of-{n}.tsv"


def config_name(part: tuple[int, int]) -> str:
    """The file a run's command settings go in (``--config`` reads it back): ``config.yaml``,
    or ``config.part-I-of-N.yaml`` for part I of N, each written under its own part's lock
    and naming that part, as its manifest does."""
    i, n = part
    return run_config.CONFIG if n == 1 else f"config.part-{i}-of-{n}.yaml"


def make_output_folder(out: Path) -> None:
    """Create ``out`` (and its parents) if needed; SynthError if it cannot be, or is not writable."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynthError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise SynthError(f"{out}: not writable")


def prepare_output(out: Path, job: ShardJob, overwrite: bool, tasks: list[ShardTask]) -> dict:
    """Check or create the output folder and return this run's manifest (new or resumed).

    Refuses an output that holds another data set — its own manifest with
    other arguments, a whole run where parts are being built or the reverse,
    parts of another data set — unless ``overwrite``: then those manifests
    and this run's own, their skip reports and this run's planned shards are
    removed, and the run starts afresh (a whole run
    also removes every shard the old manifests list; a part never touches the
    shards of other parts).
    """
    out = Path(out)
    make_output_folder(out)
    own, report = output_names(job.part)
    args = job.arguments
    conflicts = {}  # manifest name -> manifest (None: unreadable) of another data set or run
    for name in [shards.MANIFEST, *shards.part_manifests(out).values()]:
        if not (out / name).exists():
            continue
        try:
            manifest = shards.read_manifest(out, name)
        except shards.ShardError:
            manifest = None
        if name == own:  # --overwrite starts afresh even over the same arguments
            ok = not overwrite and manifest is not None and manifest.get("arguments") == args
        else:  # another part of the same data set is a sibling, anything else is in the way
            ok = manifest is not None and job.part[1] > 1 and name != shards.MANIFEST \
                and shards.same_dataset(manifest, {"arguments": args})
        if not ok:
            conflicts[name] = manifest
    if conflicts and not overwrite:
        name, manifest = next(iter(conflicts.items()))
        if manifest is None:
            why = "is not a readable manifest"
        elif name == own:
            old = manifest.get("arguments") or {}
            why = f"lists shards made with other arguments (differs in: {', '.join(_differences(old, args))})"
        else:
            why = "belongs to another data set" if job.part[1] > 1 or name == shards.MANIFEST else "is a part of a --part run"
        raise SynthError(f"{out / name} {why}; pass --overwrite to start afresh, or choose another --out")
    doomed = {t.name for t in tasks}
    for name, manifest in conflicts.items():
        if job.part[1] == 1 and manifest is not None:  # a whole run owns the folder
            doomed.update(manifest["shards"])
        (out / name).unlink(missing_ok=True)
        (out / output_names(shards.manifest_part(name))[1]).unlink(missing_ok=True)
        (out / config_name(shards.manifest_part(name))).unlink(missing_ok=True)
    if conflicts:
        for name in doomed:
            (out / name).unlink(missing_ok=True)
        (out / report).unlink(missing_ok=True)
    # Temporary files a killed run of this part left (never another part's,
    # nor those of a live process: see files.remove_stale_temporaries).
    for name in [own, report, config_name(job.part), *(t.name for t in tasks)]:
        files.remove_stale_temporaries(out / name)
    if own in conflicts or not (out / own).exists():
        return {"arguments": args, "shards": {}, "skipped": {}}
    return shards.read_manifest(out, own)


def _differences(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def write_skip_report(out: Path, manifest: dict, name: str = SKIP_REPORT) -> None:
    """Write the skip report ``name`` atomically: a header ``path reason detail``
    and a row per skipped image, tab-separated, one line per row.  A field
    holding a tab, a line break or a double quote (a file may be named so) is
    written in double quotes with its quotes doubled (RFC 4180 quoting, as
    Python's ``csv.reader(f, delimiter="\\t")`` and spreadsheets read it)."""
    rows = [row for shard in sorted(manifest["skipped"]) for row in manifest["skipped"][shard]]
    text = io.StringIO()
    minimal = csv.writer(text, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    # QUOTE_MINIMAL leaves a carriage return bare when lines end in "\n" alone:
    # such a row is quoted field by field.
    every = csv.writer(text, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_ALL)
    minimal.writerow(["path", "reason", "detail"])
    for row in rows:
        (every if any("\r" in str(field) for field in row) else minimal).writerow(row)
    files.write_text(out / name, text.getvalue(), errors="surrogateescape")  # a name that is not UTF-8: its bytes


def _relay(queue, progress: Callable[[int], None] | None, done: threading.Event) -> None:
    """Pass the workers' progress messages on until ``done`` is set and the queue is empty.

    The end is an Event, not a message: putting one takes the queue's write
    lock, which a worker killed mid-put (the pool's terminate()) holds for ever.
    """
    while not (done.is_set() and queue.empty()):
        if queue.empty():
            time.sleep(0.05)
            continue
        made, dropped = queue.get()
        if progress:
            progress(made, dropped)


def needs_building(out: Path, tasks: list[ShardTask], manifest: dict, repair: bool = False,
                   progress: Callable[[int], None] | None = None) -> tuple[list[ShardTask], list[str]]:
    """(the tasks to build, the names of listed shards among them).

    A shard is built if the manifest does not list it, if its file is missing,
    or if its size is not the recorded one (cheap: a truncated or extended
    file).  With ``repair`` every listed shard is also verified in full
    (``shards.verify_shard``: checksum, samples, kernels) and rebuilt if bad;
    ``progress(1)`` is called after each shard verified.
    """
    todo, redo = [], []
    for task in tasks:
        entry = manifest["shards"].get(task.name)
        path = out / task.name
        if entry is None:
            todo.append(task)
            continue
        if shards.is_fileless(entry):  # no pairs, no file: finished
            continue
        bad = not path.is_file() or ("bytes" in entry and path.stat().st_size != entry["bytes"])
        if not bad and repair:
            bad = shards.verify_shard(path, entry) is not None
            if progress:
                progress(1)
        if bad:
            todo.append(task)
            redo.append(task.name)
    return todo, redo


def free_bytes(path: Path) -> int:
    """Bytes free to this user on the file system of ``path``."""
    return shutil.disk_usage(path).free


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"


def locked_run(out: Path, part: tuple[int, int], overwrite: bool, run: Callable[[], Summary]) -> Summary:
    """``run()`` holding the lock of this part's manifest in ``out`` (``synthesize`` and
    ``average``): another run on the same part, or ``overwrite`` while another part runs, is a
    SynthError, and so is a full disk (finished shards are kept)."""
    manifest_file = output_names(part)[0]
    i, n = part
    try:
        with files.exclusive_lock(out / manifest_file, what=f"{out}" + (f" (part {i}/{n})" if n > 1 else "")):
            if overwrite:  # may delete the files of the whole run or of the parts: none may be running
                for other in [shards.MANIFEST, *shards.part_manifests(out).values()]:
                    if other != manifest_file:
                        files.check_unlocked(out / other, what=f"{out} ({other})")
            return run()
    except files.Busy as exc:
        raise SynthError(str(exc)) from None
    except OSError as exc:
        if not files.no_room(exc):
            raise
        raise SynthError(f"{out}: could not write ({files.describe_os_error(exc)}); finished shards are kept: "
                         "free some space and run the same command again to resume") from None


def build_all(calls: list[tuple[Callable[..., dict], tuple]], out: Path, todo: list[ShardTask], workers: int,
              progress: Callable[[int, int], None] | None, stop: StopFlag | None,
              record: Callable[[dict], None]) -> None:
    """Build every shard of ``calls`` ([(build, args)]) and ``record`` each result as it comes.

    One worker: ``build(*args, progress=, stop=)`` in this process, in order.
    Several: a pool of spawned processes runs them (``progress`` relayed from the
    workers; see ``_worker_init``), and ``stop`` is checked every 0.1 s.  A worker
    that dies (the out-of-memory killer, kill -9) ends the run with a SynthError: its
    shard would never come (issue 22.18).  ``todo`` are the calls' tasks: their
    temporaries are removed after a pool ends, however it ends.
    """
    if workers <= 1 or len(calls) <= 1:
        _single_threaded()
        for build, args in calls:
            stopping.check(stop)
            record(build(*args, progress=progress, stop=stop))
        return
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no OpenCV/HDF5 state crosses a fork
    with stopping.signals_blocked():
        # The queue starts multiprocessing's resource tracker, a process of our group that ignores
        # SIGINT and SIGTERM but died of SIGUSR1 (Slurm's --signal), relaunched with a traceback.
        # Started with the stop signals blocked, it keeps them blocked (a mask survives exec).
        queue = ctx.SimpleQueue()
    done = threading.Event()
    relay = threading.Thread(target=_relay, args=(queue, progress, done), daemon=True)
    relay.start()
    pool = None
    try:
        with stopping.signals_blocked():  # see _worker_init; the workers start at the submits
            pool = ProcessPoolExecutor(min(workers, len(calls)), mp_context=ctx, initializer=_worker_init,
                                       initargs=(queue, os.getpid()))
            pending = {pool.submit(_pool_task, call) for call in calls}
            processes = list(pool._processes.values())  # noqa: SLF001 -- to name how a dead one died
        for future in _finished(pending, stop):
            record(_pool_result(future, pool, processes, len(pending), stop))
        pool.shutdown()
    finally:
        if pool is not None:
            _stop_pool(pool)
        done.set()
        relay.join(timeout=5)
        # The pool's workers are stopped (and joined) by now: their half-written shards can go.
        for task in todo:
            files.remove_stale_temporaries(out / task.name)


def _finished(pending: set, stop: StopFlag | None):
    """Yield the futures of ``pending`` as they finish (removing them), checking ``stop``
    every 0.1 s meanwhile (a plain wait would sleep through the signal)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    while pending:
        stopping.check(stop)
        done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
        for future in done:
            pending.discard(future)
            yield future


def _pool_result(future, pool, processes: list, left: int, stop: StopFlag | None = None) -> dict:
    """The result of a pool's finished ``future``; SynthError, in one line, if a worker
    died under it (the pool then fails every shard in progress).  ``processes``: the
    pool's workers, whose exit status names how the dead one died.  A worker killed by
    a stop signal (Ctrl-C or SIGTERM to the process group, which can reach a worker
    still starting, before it leaves the group) is the run's stop: Interrupted."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        _stop_pool(pool)  # the others (SIGTERM), and every exit status known
        stopping.check(stop)
        signals = {-p.exitcode for p in processes if p.exitcode is not None and p.exitcode < 0}
        if signals and signals <= set(stopping.SIGNALS):
            raise stopping.Interrupted(max(signals)) from None
        codes = [p.exitcode for p in processes if p.exitcode not in (None, 0, -signal.SIGTERM)]
        how = (f"killed by {signal.Signals(-codes[0]).name}" if codes and codes[0] < 0 and -codes[0] in
               signal.valid_signals() else f"exit status {codes[0]}" if codes else "it vanished")
        raise SynthError(f"a worker process died ({how}: the out-of-memory killer, or kill -9?); "
                         f"{left + 1} shard(s) not finished; finished shards are kept: run the same "
                         "command again to resume (with fewer --workers if memory ran out)") from None


def _stop_pool(pool) -> None:
    """End a pool however the run ends: its workers are killed (SIGTERM: at once, in
    C, printing nothing) if any still runs, then joined."""
    for process in list((pool._processes or {}).values()):  # noqa: SLF001 -- ProcessPoolExecutor has no terminate()
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)




def run(job: ShardJob, out: str | os.PathLike, items: list, workers: int = 1, overwrite: bool = False,
        repair: bool = False, progress: Callable[[int, int], None] | None = None,
        on_start: Callable[[int], None] | None = None, stop: StopFlag | None = None, space_check: bool = True,
        on_plan: Callable[[int, int, int], None] | None = None, settings: str | None = None) -> Summary:
    """Build (or finish) the shards of ``job`` over ``items`` in ``out``.

    A listed shard whose file is missing or not of its recorded size is built
    again; ``repair`` also verifies every listed shard in full and rebuilds the
    bad ones (``Summary.repair_differs`` names any that came out different from
    the record).  ``overwrite`` starts afresh (see :func:`prepare_output`).

    Before any work, the pairs to make and (with ``job.estimate``) their size on
    disk are estimated and ``on_plan(pairs, bytes, free bytes)`` called; with
    ``space_check``, SynthError if the output's file system has less free.
    ``on_start(samples to do)`` is called once the work is planned and
    ``progress(made, dropped)`` after each item (from a helper thread when
    ``workers`` > 1).  ``stop`` is checked between samples (one worker) or every
    0.1 s (a pool): once set, the shards in progress are dropped, finished ones
    kept, and :class:`~blurgen.plumbing.stopping.Interrupted` raised.

    One run at a time per ``part`` of a folder: the run holds the lock of its
    manifest from start to end.  SynthError for an output folder that cannot be
    used, holds another data set or another live run, and for a full disk
    (finished shards are kept; the same command resumes).

    ``settings``: the text of the command's settings file (:func:`config_name`,
    blurgen.plumbing.run_config.render), written beside the manifest before any work,
    on every run (a resume rewrites it with the resuming command's settings).
    """
    out = Path(out)
    make_output_folder(out)
    return locked_run(out, job.part, overwrite,
                      lambda: _run_locked(job, out, items, workers, overwrite, repair, progress, on_start, stop,
                                          space_check, on_plan, settings))


def _run_locked(job: ShardJob, out: Path, items: list, workers: int, overwrite: bool, repair: bool,
                progress, on_start, stop, space_check: bool, on_plan, settings: str | None = None) -> Summary:
    """The run of :func:`run`, once it holds the output's lock."""
    manifest = prepare_output(out, job, overwrite, job.plan(len(items)))
    manifest_file, report_file = output_names(job.part)
    if job.settle is None:
        tasks, appended = job.plan(len(items)), None
    else:
        items, tasks, appended = job.settle(out, manifest, items)
    for task in tasks:  # those of appended sets too (prepare_output saw only the first set's)
        files.remove_stale_temporaries(out / task.name)
    manifest["planned"] = len(tasks)
    summary = Summary(images=sum(t.stop_image - t.first_image for t in tasks), shards_total=len(tasks),
                      appended=appended)
    todo, summary.shards_redone = needs_building(out, tasks, manifest, repair)
    recorded = {name: manifest["shards"][name].get("checksum") for name in summary.shards_redone}
    summary.shards_done_before = len(tasks) - len(todo)
    summary.pairs_planned = sum((t.stop_image - t.first_image) * job.samples_per_item for t in todo)
    if job.estimate is not None:
        summary.bytes_estimate = job.estimate([items[i] for t in todo for i in range(t.first_image, t.stop_image)],
                                              len(todo))
        free = free_bytes(out)
        if space_check and summary.bytes_estimate > free:
            raise SynthError(f"{out}: the {summary.pairs_planned:,} pairs planned need about "
                             f"{_size(summary.bytes_estimate)} (an estimate) and its file system has {_size(free)} "
                             "free; free some space, choose another --out, or pass --no-space-check")
        if on_plan:
            on_plan(summary.pairs_planned, summary.bytes_estimate, free)
    # Written before any work: the arguments are on record, and the parts of a
    # job array see each other.
    shards.write_manifest(out, manifest, manifest_file)
    if settings is not None:
        try:
            run_config.write_config(out / config_name(job.part), settings)
        except OSError as exc:
            raise SynthError(f"{out / config_name(job.part)}: could not write ({files.describe_os_error(exc)})") \
                from None
    if on_start:
        on_start(summary.pairs_planned)
    started = time.perf_counter()

    def record(result: dict) -> None:
        name, skipped = result.pop("name"), result.pop("skipped")
        if recorded.get(name) and result["checksum"] != recorded[name]:
            summary.repair_differs.append(name)
        manifest["shards"][name] = result
        manifest["skipped"].pop(name, None)
        if skipped:
            manifest["skipped"][name] = skipped
        shards.write_manifest(out, manifest, manifest_file)
        write_skip_report(out, manifest, report_file)
        summary.shards_built += 1

    build_all([(job.build, (t, items, job.config, out)) for t in todo], out, todo, workers, progress, stop, record)
    if not (out / report_file).exists():
        write_skip_report(out, manifest, report_file)
    summary.seconds = time.perf_counter() - started
    for entry in manifest["shards"].values():
        summary.samples += entry["count"]
        summary.bytes += entry["bytes"]
        summary.upscaled += entry.get("upscaled", 0)
    for rows in manifest["skipped"].values():
        summary.skipped.update(row[1] for row in rows)
    return summary

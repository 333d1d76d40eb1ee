"""Restoring whole images with a trained generator, and scoring restorations.

``restore`` takes an image of any size: it pads it (reflection) to the
multiples of 4 the generator needs, and cuts images larger than ``tile``
into overlapping tiles whose outputs are blended with linear ramps.  Note
that InstanceNorm normalises each tile with its own statistics, so tiled and
whole-image results differ slightly; the overlap hides the seams.

Scores follow ``trainer.metrics``: PSNR and SSIM of uint8 RGB images over
the whole image, data range 255 (the paper's convention).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainer.errors import TrainerError
from trainer.metrics import ALWAYS, METRICS
from trainer.output import naming
from trainer.tensors import to_tensor, to_uint8

MULTIPLE = 4        # two stride-2 stages in the generator
MIN_SIDE = 8        # reflection padding at 1/4 resolution needs at least 2 pixels



class DeblurError(TrainerError):
    """Inputs or outputs of ``deblur``/``eval`` that cannot be used as given (one line, for the user)."""


def pad_for_generator(image: np.ndarray) -> np.ndarray:
    """Reflect-pad (H, W, C) at the bottom and right to sides that are multiples
    of 4 and at least 8.  Crop the result back with ``[:H, :W]``."""
    h, w = image.shape[:2]
    ph = max(MIN_SIDE, math.ceil(h / MULTIPLE) * MULTIPLE) - h
    pw = max(MIN_SIDE, math.ceil(w / MULTIPLE) * MULTIPLE) - w
    if ph == 0 and pw == 0:
        return image
    # Reflection needs at least 2 pixels along an axis; a 1-pixel side repeats its edge.
    mode = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``size``, overlapping by at least ``overlap``."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(n: int, overlap: int) -> torch.Tensor:
    """(n,) blending weights rising linearly over ``overlap`` pixels at each end, > 0 everywhere."""
    i = torch.arange(n, dtype=torch.float32)
    return ((torch.minimum(i, n - 1 - i) + 1) / (overlap + 1)).clamp(max=1.0)


def check_tiling(tile: int, overlap: int) -> None:
    """DeblurError unless ``tile`` is a multiple of 4 (at least 8) and 0 <= ``overlap`` < tile / 2."""
    if tile % MULTIPLE or tile < MIN_SIDE:
        raise DeblurError(f"tile must be a multiple of {MULTIPLE} and at least {MIN_SIDE}, not {tile}")
    if not 0 <= overlap < tile // 2:
        raise DeblurError(f"overlap must be in [0, tile / 2), not {overlap}")


@torch.no_grad()
def restore(generator: nn.Module, blurred: np.ndarray, *, device: str | torch.device = "cpu",
            tile: int = 2048, overlap: int = 128, amp_dtype: torch.dtype | None = None) -> np.ndarray:
    """Deblur one uint8 (H, W, 3) RGB image of any size; returns uint8 (H, W, 3).

    ``generator`` must already be on ``device`` and in eval mode.  Images with
    both (padded) sides <= ``tile`` go through in one piece; larger ones in
    ``tile`` x ``tile`` tiles (a multiple of 4) overlapping by ``overlap``.
    ``amp_dtype``: run the generator under autocast to this dtype (bfloat16;
    ``trainer.precision.autocast_dtype`` picks it), or in float32 (None).
    """
    check_tiling(tile, overlap)
    if amp_dtype is not None:
        with torch.autocast(torch.device(device).type, dtype=amp_dtype):
            return restore(generator, blurred, device=device, tile=tile, overlap=overlap)
    h, w = blurred.shape[:2]
    x = to_tensor(pad_for_generator(blurred))[None].to(device)
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return to_uint8(generator(x)[0])[:h, :w]
    th, tw = min(tile, height), min(tile, width)
    out = torch.zeros(3, height, width)
    weight = torch.zeros(1, height, width)
    ramp = _ramp(th, overlap)[:, None] * _ramp(tw, overlap)[None, :]
    for y in _tile_starts(height, th, overlap):
        for x0 in _tile_starts(width, tw, overlap):
            piece = generator(x[..., y:y + th, x0:x0 + tw])[0].float().cpu()
            out[:, y:y + th, x0:x0 + tw] += piece * ramp
            weight[:, y:y + th, x0:x0 + tw] += ramp
    return to_uint8(out / weight)[:h, :w]


def score_pairs(generator: nn.Module, pairs: Sequence, *, device: str | torch.device = "cpu",
                tile: int = 2048, overlap: int = 128, progress: bool = False,
                metrics: Sequence[str] = ALWAYS, extra=None, sharp_input: bool = False):
    """Metrics of restored vs sharp and of blurred vs sharp, pair by pair.

    pairs: sequence of (name, blurred uint8 (H, W, 3), sharp uint8 (H, W, 3)),
    e.g. ``trainer.data.val_pairs``.  metrics: names in
    ``trainer.metrics.METRICS``.  Returns (rows, example): rows a list of
    {"name", METRIC, "input_" + METRIC for each metric, "ssim", "input_ssim"}
    in the order of ``pairs`` ("ssim" is ``ssim_skimage``, present always;
    dB for the PSNRs), plus "seconds" (the wall time of restoring that image,
    the device synchronised) and whatever ``extra(restored, blurred, sharp)``
    returns (a dict; e.g. ``trainer.benchmarks.realblur_row``); example the
    (blurred, restored, sharp) uint8 triplet of the first pair (None if
    there are none).  ``sharp_input``: also "sharp_psnr", the do-no-harm
    score ``sharp_input_psnr`` (the sharp image itself put through the
    generator, dB; not in "seconds").
    """

    from blurgen.plumbing.progress import progress_bar

    names = list(dict.fromkeys([*ALWAYS, *metrics]))
    was_training = generator.training
    generator.eval()
    rows, example = [], None
    try:
        for name, blurred, sharp in progress_bar(pairs, desc="evaluate", unit="img", disable=not progress,
                                                 leave=False):
            start = time.perf_counter()
            restored = restore(generator, blurred, device=device, tile=tile, overlap=overlap)
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
            row = {"name": name, "seconds": time.perf_counter() - start}
            for metric in names:
                row[metric] = METRICS[metric](restored, sharp)
                row["input_" + metric] = METRICS[metric](blurred, sharp)
            row["ssim"], row["input_ssim"] = row["ssim_skimage"], row["input_ssim_skimage"]
            if "ssim_skimage" not in metrics:
                del row["ssim_skimage"], row["input_ssim_skimage"]
            if sharp_input:
                row["sharp_psnr"] = sharp_input_psnr(generator, sharp, device=device, tile=tile, overlap=overlap)
            if extra is not None:
                row.update(extra(restored, blurred, sharp))
            rows.append(row)
            if example is None:
                example = (blurred, restored, sharp)
    finally:
        generator.train(was_training)
    return rows, example


def sharp_input_psnr(generator: nn.Module, sharp: np.ndarray, *, device: str | torch.device = "cpu",
                     tile: int = 2048, overlap: int = 128) -> float:
    """Do no harm: PSNR in dB of G(sharp) against sharp itself, a uint8 (H, W, 3)
    RGB image that needs no deblurring (RGB, whole image, range 255, as
    ``trainer.metrics.psnr``).  inf when the generator returns it unchanged;
    a model that sharpens what is already sharp scores low.  ``generator`` on
    ``device``, in eval mode."""
    return METRICS["psnr"](restore(generator, sharp, device=device, tile=tile, overlap=overlap), sharp)


def mean_scores(rows: Sequence[dict]) -> dict:
    """Means of the scores in ``score_pairs`` rows, plus "count" (nan if no rows).

    Always has "psnr", "ssim", "input_psnr", "input_ssim" and "count"; with
    "sharp_psnr" in the rows also "sharp_psnr_min", the worst sharp image
    (dB; a mean is inf as soon as one image comes back unchanged, the worst
    one only when all do).  Restoration time is not a score: see
    ``seconds_per_image``.
    """
    keys = ["psnr", "ssim", "input_psnr", "input_ssim"]
    for row in rows:
        keys += [k for k in row if k not in ("name", "seconds") and k not in keys]
    scores = {k: (sum(r[k] for r in rows) / len(rows) if rows else math.nan) for k in keys}
    if "sharp_psnr" in keys:
        scores["sharp_psnr_min"] = min(r["sharp_psnr"] for r in rows)
    scores["count"] = len(rows)
    return scores


def seconds_per_image(rows: Sequence[dict]) -> float:
    """Mean restoration time of ``score_pairs`` rows in seconds, the first
    (warm-up: allocator, cuDNN autotuning, lazy init) image excluded; nan
    with fewer than two rows."""
    timed = [r["seconds"] for r in rows[1:] if "seconds" in r]
    return sum(timed) / len(timed) if timed else math.nan


def write_scores_csv(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Write ``score_pairs`` rows to a CSV (one line per image, a header of the
    row keys), atomically: a failed write leaves no partial file."""
    import csv

    from blurgen.plumbing.files import atomic_path

    fields = list(rows[0]) if rows else ["name"]
    with naming(path), atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})


# Bands of the blurred input's PSNR (dB): a nearly sharp pair (DeblurGAN's
# exposure fraction 1/10 gives inputs up to ~58 dB) moves a mean over pairs
# far more per grey level of residual than a heavily blurred one, so gains
# are also reported band by band.
PSNR_BANDS = (25.0, 30.0, 35.0)


def scores_by_band(rows: Sequence[dict], edges: Sequence[float] = PSNR_BANDS) -> list[dict]:
    """Mean scores of ``score_pairs`` rows grouped by the input's PSNR.

    Returns one dict per non-empty band, in increasing order: {"band" (a
    label such as "25-30 dB"), "low", "high" (dB, -inf/inf at the ends),
    "count", "input_psnr", "psnr", "gain" (psnr - input_psnr, dB), "ssim",
    "input_ssim"}.
    """
    bounds = [-math.inf, *edges, math.inf]
    out = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        members = [r for r in rows if low <= r["input_psnr"] < high]
        if not members:
            continue
        label = (f"< {high:g} dB" if low == -math.inf else f">= {low:g} dB" if high == math.inf
                 else f"{low:g}-{high:g} dB")
        means = mean_scores(members)
        out.append({"band": label, "low": low, "high": high, **means,
                    "gain": means["psnr"] - means["input_psnr"]})
    return out


def evaluate(generator: nn.Module, pairs: Sequence, *, device: str | torch.device = "cpu",
             tile: int = 2048, overlap: int = 128, progress: bool = False):
    """Mean PSNR/SSIM of restored vs sharp and of blurred vs sharp over ``pairs``,
    and the do-no-harm score of their sharp images.

    Returns (scores, example) with scores {"psnr", "ssim", "input_psnr",
    "input_ssim", "sharp_psnr", "sharp_psnr_min", "count"} (dB, [-1, 1], dB,
    dB, int; see ``mean_scores``; the sharp scores are G(sharp) vs sharp,
    ``sharp_input_psnr``) and example as in ``score_pairs``.
    """
    rows, example = score_pairs(generator, pairs, device=device, tile=tile, overlap=overlap,
                                progress=progress, sharp_input=True)
    return mean_scores(rows), example


class UnreadableInput(DeblurError):
    """An input of ``trainer deblur`` that cannot be decoded (one-line message naming it)."""


def read_input_image(path: str | os.PathLike) -> np.ndarray:
    """uint8 (H, W, 3) RGB of an image to deblur, decoded as ``blurgen synthesize``
    decodes its photos (blurgen.sources.load_rgb: EXIF orientation applied,
    16-bit images rescaled, not clipped), up to Pillow's ``MAX_IMAGE_PIXELS``
    (about 89 M pixels).  UnreadableInput naming the file otherwise."""
    from PIL import Image

    from blurgen.sources import load_rgb_as

    return load_rgb_as(path, UnreadableInput, max_pixels=Image.MAX_IMAGE_PIXELS)


#: Pillow modes without colour: deblur gives such an image back grey.
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def input_channels(path: str | os.PathLike) -> tuple[bool, np.ndarray | None]:
    """(grey, alpha) of an image to deblur: whether the file has no colour channels,
    and its alpha channel, uint8 (H, W) after the EXIF orientation (as
    ``read_input_image`` applies it), or None without one.  The generator
    restores RGB; ``in_input_channels`` gives the result back in the input's own."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        grey = image.mode in GREY_MODES
        if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
            return grey, None
        return grey, np.asarray(ImageOps.exif_transpose(image).convert("RGBA").getchannel("A"))


def in_input_channels(restored: np.ndarray, grey: bool, alpha: np.ndarray | None) -> np.ndarray:
    """uint8 RGB (H, W, 3) restored image -> (H, W) grey (Pillow's ITU-R 601-2 luma, the
    inverse of how a grey file was read as RGB), with the input's ``alpha`` appended
    unchanged as a last channel when given: (H, W, 4) RGBA, or (H, W, 2) is never
    made -- a grey image with alpha comes back RGBA with equal colour channels."""
    from PIL import Image

    if grey:
        restored = np.asarray(Image.fromarray(restored).convert("L"))
        if alpha is not None:
            restored = np.repeat(restored[:, :, None], 3, axis=2)
    if alpha is not None:
        restored = np.dstack([restored, alpha])
    return restored


def find_deblur_inputs(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """(source, output path relative to the output folder, without suffix) of every
    input of ``trainer deblur``: a file as given (its stem), a folder searched
    recursively as ``blurgen synthesize`` searches ``--src`` (hidden files and
    folders left out), each image keeping its path relative to that folder.
    FileNotFoundError naming a missing input, DeblurError on a folder without images."""
    from blurgen.sources import EXTENSIONS, find_images

    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            relative = find_images(path)
            if not relative:
                raise DeblurError(f"{path}: no images ({', '.join(EXTENSIONS)}) in this folder or below")
            found += [(path / rel, Path(rel).with_suffix("")) for rel in relative]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def blurred_and_restored(blurred: np.ndarray, restored: np.ndarray, gap: int = 4) -> np.ndarray:
    """blurred | restored, a white gap between them, each labelled in a band below:
    uint8 (H + blurgen.plumbing.pictures.LABEL_BAND, 2W + gap, 3)."""
    from blurgen.plumbing.pictures import side_by_side

    return side_by_side([blurred, restored], labels=["blurred", "restored"], gap=gap)


@dataclass
class DeblurReport:
    """What ``deblur_files`` did: the files written, the outputs left as they were
    (``skip_existing``), and (input, one-line reason) of each unreadable input."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what was written otherwise than read, one line each

    @property
    def videos(self) -> int:
        return sum(path.suffix == ".mp4" for path in self.written)


def deblur_files(generator: nn.Module, inputs: Sequence[tuple[Path, Path]], out_dir: str | os.PathLike, *,
                 device: str | torch.device = "cpu", tile: int = 2048, overlap: int = 128,
                 overwrite: bool = False, skip_existing: bool = False, side_by_side: bool = False,
                 progress: bool = True, seconds: list | None = None, stop=None,
                 amp_dtype: torch.dtype | None = None) -> DeblurReport:
    """Restore each image of ``inputs`` (pairs of ``find_deblur_inputs``) into
    ``out_dir/<relative>.png`` and each video (``blurgen.sources.VIDEO_EXTENSIONS``) into
    ``out_dir/<relative>.mp4``; ``side_by_side``: each output is blurred |
    restored (``blurred_and_restored``) instead of the restored image alone.

    All output names are checked before anything is written: two inputs with
    the same output, or an existing output without ``overwrite`` or
    ``skip_existing``, raise DeblurError; ``skip_existing`` leaves existing
    outputs alone (a re-run after an interrupted one).  An input that cannot
    be decoded is recorded in the report and the others go on; a file that
    cannot be written (a full disk) raises OSError at once.  Each file is
    written atomically.  ``seconds``, if given, receives the wall time of each
    restoration (per frame for videos; the device synchronised; reading and
    writing the files excluded).  A grey image comes back grey and an image with
    alpha keeps it (``in_input_channels``).  ``stop``: a blurgen.plumbing.stopping.StopFlag,
    checked between files and video frames (Interrupted; the file being written
    is not left behind).  ``amp_dtype``: as in ``restore``.
    """
    from blurgen.plumbing import stopping
    from blurgen.plumbing.progress import progress_bar

    if overwrite and skip_existing:
        raise DeblurError("--overwrite replaces existing outputs and --skip-existing keeps them: give one")
    check_tiling(tile, overlap)   # before any file is read
    targets, existing = deblur_targets(inputs, Path(out_dir), overwrite or skip_existing)
    generator.eval()
    restore_image = _timed_restore(generator, device, tile, overlap, amp_dtype, seconds, side_by_side)
    report = DeblurReport()
    skip = set(existing) if skip_existing else set()
    for (source, _), target in progress_bar(list(zip(inputs, targets)), desc="deblur", unit="file",
                                            disable=not progress):
        if target in skip:
            report.skipped.append(target)
            continue
        stopping.check(stop)
        try:
            note = _deblur_file(source, target, restore_image, side_by_side, stop)
        except UnreadableInput as exc:   # the other inputs go on; the report lists this one
            report.failed.append((source, str(exc)))
            continue
        if note:
            report.notes.append(note)
        report.written.append(target)
    return report


def deblur_targets(inputs: Sequence[tuple[Path, Path]], out_dir: Path,
                   existing_allowed: bool) -> tuple[list[Path], list[Path]]:
    """The output of each input (``out_dir/<relative>.png``, ``.mp4`` for a video)
    and those already there.  Checked before anything is read or written, so
    that a clash or an existing output costs no restorations: two inputs with
    one output raise DeblurError, and so do existing outputs unless
    ``existing_allowed`` (--overwrite or --skip-existing)."""
    from blurgen.sources import VIDEO_EXTENSIONS

    targets = [out_dir / relative.with_name(relative.name + (".mp4" if source.suffix.lower() in VIDEO_EXTENSIONS
                                                               else ".png"))
               for source, relative in inputs]
    seen: dict[Path, Path] = {}
    existing = []
    for (source, _), target in zip(inputs, targets):
        if target in seen:
            raise DeblurError(f"{source} and {seen[target]} would both be written to {target}")
        seen[target] = source
        if target.exists():
            existing.append(target)
    if existing and not existing_allowed:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise DeblurError(f"{existing[0]} exists{more}: pass --skip-existing to restore only the others, "
                         "or --overwrite to replace them")
    return targets, existing


def _timed_restore(generator: nn.Module, device: str | torch.device, tile: int, overlap: int,
                   amp_dtype: torch.dtype | None, seconds: list | None,
                   side_by_side: bool) -> Callable[[np.ndarray], np.ndarray]:
    """``restore`` of one image or video frame as ``deblur_files`` writes it.  The
    time goes to ``seconds`` with the device synchronised, so that it is the
    restoration's and not the next file's read; the picture is blurred | restored
    with ``side_by_side``."""
    def timed_restore(image: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        restored = restore(generator, image, device=device, tile=tile, overlap=overlap, amp_dtype=amp_dtype)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        if seconds is not None:
            seconds.append(time.perf_counter() - start)
        return blurred_and_restored(image, restored) if side_by_side else restored

    return timed_restore


def _deblur_file(source: Path, target: Path, restore_image: Callable[[np.ndarray], np.ndarray],
                 side_by_side: bool, stop) -> str | None:
    """Restore one input into ``target``; returns a video's note (or None).
    UnreadableInput for an input that cannot be decoded; an OSError of writing
    names ``target`` (a full disk says where)."""
    from blurgen.plumbing.pictures import write_png

    with naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".mp4":
            return deblur_video(source, target, restore_image, stop)[1]
        restored = restore_image(read_input_image(source))
        if not side_by_side:   # a grey image comes back grey, alpha is kept
            restored = in_input_channels(restored, *input_channels(source))
        write_png(target, restored)
    return None


def deblur_video(source: str | os.PathLike, target: str | os.PathLike,
                 restore_frame: Callable[[np.ndarray], np.ndarray], stop=None) -> tuple[int, str | None]:
    """Restore a video frame by frame into an MP4 (MPEG-4 Part 2) at the source's
    frame rate; returns (frames written, a one-line note or None).

    restore_frame: uint8 (H, W, 3) RGB -> uint8 (H, W, 3) RGB.  Read and written
    with OpenCV's FFmpeg backend; the file appears under ``target`` only when
    complete and read back whole.  MPEG-4 needs even sides: a frame with an odd
    one gets its last row or column repeated (nothing cut), and the note says so.
    Raises UnreadableInput on a file that is not a readable video, or whose frames
    stop short of the count its header gives (a damaged file: nothing written);
    OSError naming ``target`` when the written video does not read back whole (a
    full disk); blurgen.plumbing.stopping.Interrupted between frames once ``stop`` is set.
    """
    import cv2

    from blurgen.plumbing import stopping

    source, target = Path(source), Path(target)
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise UnreadableInput(f"{source}: not a readable video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    # VideoWriter picks the container from the suffix, so the temporary keeps ".mp4".
    partial = target.with_name(f".{target.stem}.tmp-{os.getpid()}.mp4")
    writer, frames, note = None, 0, None
    try:
        while True:
            stopping.check(stop)
            ok, bgr = capture.read()
            if not ok:
                break
            restored = restore_frame(np.ascontiguousarray(bgr[:, :, ::-1]))
            height, width = restored.shape[:2]
            if height % 2 or width % 2:
                restored = np.pad(restored, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            if writer is None:
                if restored.shape[:2] != (height, width):
                    note = (f"{target}: {width}x{height} frames written as {restored.shape[1]}x{restored.shape[0]} "
                            "(MPEG-4 needs even sides; the last row or column repeated)")
                writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (restored.shape[1], restored.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"{target}: cannot write an MP4 video here")
            writer.write(np.ascontiguousarray(restored[:, :, ::-1]))
            frames += 1
        if writer is None:
            raise UnreadableInput(f"{source}: not a readable video (no frames)")
        # A header's count can be off by a frame or so; a damaged file stops far short of it.
        if expected and frames < expected - max(1, expected // 100):
            raise UnreadableInput(f"{source}: only {frames} of its {expected} frames could be decoded "
                                  "(a damaged file); nothing written")
        writer.release()
        writer = None
        _check_written_video(partial, frames, target)
        os.replace(partial, target)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        partial.unlink(missing_ok=True)
    return frames, note


def _check_written_video(path: Path, frames: int, target: Path) -> None:
    """OSError naming ``target`` unless the video at ``path`` opens and holds ``frames``
    frames: OpenCV's writer reports no failed write, so a full disk shows only here."""
    import errno
    import shutil

    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        found = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture.isOpened() else 0
    finally:
        capture.release()
    if found != frames:
        if shutil.disk_usage(path.parent).free < 1 << 20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        raise OSError(errno.EIO, f"the video written reads back with {found} of its {frames} frames", str(target))

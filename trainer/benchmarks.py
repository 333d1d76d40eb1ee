"""Public deblurring test sets, read and scored as their papers do.

``gopro``       GOPRO_Large ``test/*/blur/*.png`` against ``sharp/``: the 1111
                frames at full 1280×720, nothing rescaled, ``blur`` (not
                ``blur_gamma``) -- the table of Nah et al. (2017), DeblurGAN
                and their successors.
``realblur-j``  RealBlur (Rim et al., ECCV 2020), the pairs of
``realblur-r``  ``RealBlur_J_test_list.txt`` / ``RealBlur_R_test_list.txt``
                (980 each; one line per pair, "<gt path> <blur path>"
                relative to the dataset root), scored after RealBlur's
                alignment (``realblur_align``): its reference and blurred
                images are not pixel-aligned, so its authors scale the
                restored image's intensity by least squares, align it to
                the ground truth with an ECC homography, and score only the
                region the warp covers.
``pairs``       any two folders of images matched by file stem (HIDE, your own).

Every loader checks the whole set up front (list files, every path listed)
and raises ``BenchmarkError`` naming the first missing or malformed entry.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from blurgen.sources import EXTENSIONS, folder_images, load_rgb_as, match_by_stem
from trainer.data import DataConfig, ValPairs, val_pairs
from trainer.errors import TrainerError
from trainer.metrics import psnr, ssim_gopro

#: Every benchmark by name -> what its ROOT is, in the order `trainer eval --benchmark` lists them.
BENCHMARKS = {"gopro": "GOPRO_Large", "realblur-j": "ROOT", "realblur-r": "ROOT"}

#: What each benchmark's numbers are, for reports.
PROTOCOLS = {
    "gopro": "GoPro test (Nah et al. 2017): test/*/blur vs sharp at full resolution, nothing rescaled",
    "realblur-j": "RealBlur-J test list (Rim et al. 2020); psnr_realblur/ssim_realblur after a least-squares "
                  "intensity scale and an ECC homography alignment, over the aligned region only",
    "realblur-r": "RealBlur-R test list (Rim et al. 2020); psnr_realblur/ssim_realblur after a least-squares "
                  "intensity scale and an ECC homography alignment, over the aligned region only",
    "pairs": "folder pairs matched by file stem, whole images",
}


#: The metrics RealBlur's protocol adds to a report, and what each is.
REALBLUR_METRICS = {
    "psnr_realblur": "PSNR, dB, RealBlur protocol: intensity-scaled, ECC-aligned, aligned region only",
    "ssim_realblur": "SSIM, RealBlur protocol: ssim_gopro's settings, masked to the aligned region",
}


class BenchmarkError(TrainerError):
    """A benchmark folder without the expected layout; the message is one line naming what is missing."""


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB of a benchmark image, decoded by the reader of every
    command (``blurgen.sources.load_rgb``); BenchmarkError naming an unreadable file."""
    return load_rgb_as(path, BenchmarkError)


def gopro_benchmark(root: str | Path) -> ValPairs:
    """The GoPro test split exactly as published tables use it (see module docstring)."""
    return val_pairs(DataConfig(gopro=str(root), gopro_scale=1.0, gopro_blur="blur"))


def realblur_benchmark(root: str | Path, variant: str) -> ValPairs:
    """Pairs of ``RealBlur_{variant}_test_list.txt`` under ``root``; variant "J" or "R".

    Names are ``sceneNNN/blur_M.png``.  Paths in the list must stay inside
    ``root``.
    """
    root = Path(root)
    if variant not in ("J", "R"):
        raise ValueError(f"variant must be 'J' or 'R', got {variant!r}")
    if not root.is_dir():
        raise BenchmarkError(f"{root}: no such folder (the RealBlur dataset root)")
    listing = root / f"RealBlur_{variant}_test_list.txt"
    if not listing.is_file():
        raise BenchmarkError(f"{listing}: missing; the RealBlur root holds RealBlur_J_test_list.txt "
                             "and RealBlur_R_test_list.txt")
    inside = root.resolve()
    pairs: list[tuple[Path, Path]] = []
    for number, line in enumerate(listing.read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise BenchmarkError(f"{listing}:{number}: expected '<gt path> <blur path>', got {line.strip()!r}")
        gt, blurred = (root / field for field in fields)
        for path in (gt, blurred):
            if inside not in path.resolve().parents:
                raise BenchmarkError(f"{listing}:{number}: {path} is outside {root}")
            if not path.is_file():
                raise BenchmarkError(f"{listing}:{number}: {path}: no such file")
        pairs.append((blurred, gt))
    if not pairs:
        raise BenchmarkError(f"{listing}: lists no pairs")

    def read(i: int) -> tuple[np.ndarray, np.ndarray]:
        blurred, gt = pairs[i]
        return _same_size(read_image(blurred), read_image(gt), blurred, gt)

    return ValPairs([f"{b.parent.parent.name}/{b.name}" for b, _ in pairs], read)


def folder_pairs(blur_dir: str | Path, sharp_dir: str | Path) -> ValPairs:
    """Images of ``blur_dir`` paired with the image of the same stem in ``sharp_dir``.

    Every blurred image needs a sharp one (and vice versa); a stem that
    appears twice in one folder (``a.png`` and ``a.jpg``) is refused.
    """
    listed = {}
    for role, folder in (("blurred", Path(blur_dir)), ("sharp", Path(sharp_dir))):
        if not folder.is_dir():
            raise BenchmarkError(f"{folder}: no such folder ({role} images)")
        listed[role] = folder_images(folder)
        if not listed[role]:
            raise BenchmarkError(f"{folder}: no images ({', '.join(EXTENSIONS)}) in this folder")
    match = match_by_stem(listed["blurred"], listed["sharp"])
    if match.duplicates:
        role, path, other = match.duplicates[0]
        raise BenchmarkError(f"{path}: two {role} images named {path.stem} ({other.name})")
    for missing, role, folder in ((match.no_sharp, "blurred", sharp_dir), (match.no_blurred, "sharp", blur_dir)):
        if missing:
            raise BenchmarkError(f"{folder}: no image named {missing[0]} "
                                 f"({len(missing)} of {len(listed[role])} unmatched)")
    blurred = {stem: b for stem, b, _ in match.pairs}
    sharp = {stem: s for stem, _, s in match.pairs}
    stems = sorted(blurred)

    def read(i: int) -> tuple[np.ndarray, np.ndarray]:
        b, s = blurred[stems[i]], sharp[stems[i]]
        return _same_size(read_image(b), read_image(s), b, s)

    return ValPairs([blurred[s].name for s in stems], read)


@dataclass(frozen=True)
class EvalSet:
    """What ``trainer eval`` scores: the pairs, what they are, and any protocol-specific scoring."""

    pairs: ValPairs
    description: str
    extra: Callable | None = None   # score_pairs' ``extra``: RealBlur's aligned metrics
    extra_metrics: dict = field(default_factory=dict)   # name -> description of what ``extra`` adds


def open_eval_set(*, benchmark: tuple[str, str] | None = None, folders: tuple[str, str] | None = None,
                  gopro: str | None = None, shards: Sequence[str] = (), gopro_scale: float = 1.0,
                  gopro_blur: str = "blur", limit: int | None = None) -> EvalSet:
    """The pairs one ``trainer eval`` call scores, from exactly one of:
    ``benchmark`` (name in BENCHMARKS, root folder), ``folders`` (blurred
    folder, sharp folder), or ``gopro``/``shards`` as validation reads them
    (``trainer.data.val_pairs``; ``gopro_scale`` and ``gopro_blur`` apply
    only there).  ``limit`` keeps that many pairs spread evenly over the set.
    """
    chosen = [name for name, given in (("--benchmark", benchmark), ("--pairs", folders),
                                       ("--gopro/--shards", gopro or shards)) if given]
    if len(chosen) != 1:
        raise BenchmarkError("give one of --benchmark NAME ROOT, --pairs BLUR_DIR SHARP_DIR, --gopro or --shards"
                             + (f" (got {', '.join(chosen)})" if chosen else ""))
    extra, extra_metrics = None, {}
    # Path() drops a trailing slash: "GOPRO_Large/" must not be described as "GOPRO_Large//test".
    gopro = None if gopro is None else str(Path(gopro))
    if benchmark is not None:
        name, root = benchmark
        if name not in BENCHMARKS:
            raise BenchmarkError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        if name == "gopro":
            pairs = gopro_benchmark(root)
        else:
            pairs, extra = realblur_benchmark(root, name[-1].upper()), realblur_row
            extra_metrics = REALBLUR_METRICS
        description = f"{PROTOCOLS[name]}; {root}"
    elif folders is not None:
        pairs, description = folder_pairs(*folders), f"{PROTOCOLS['pairs']}; {folders[0]} vs {folders[1]}"
    else:
        # allow_partial: scoring what a folder holds is fine; whether training
        # saw it is trainer.heldout's to say.
        data_cfg = DataConfig(shards=tuple(shards), gopro=gopro, gopro_scale=gopro_scale, gopro_blur=gopro_blur,
                              allow_partial=True)
        pairs = val_pairs(data_cfg)
        description = (f"{gopro}/test/*/{gopro_blur}" + (f" resized x{gopro_scale:g}" if gopro_scale != 1 else "")
                       if gopro else f"last shard of {shards[0]}")
    if limit is not None and limit < len(pairs):
        keep = sorted(set(np.linspace(0, len(pairs) - 1, limit).round().astype(int).tolist()))
        whole = pairs
        pairs = ValPairs([whole.names[i] for i in keep], lambda i: whole[keep[i]][1:])
        description += f" (an even spread of {len(keep)} of its {len(whole)} pairs)"
    return EvalSet(pairs, description, extra, extra_metrics)


def _same_size(blurred: np.ndarray, sharp: np.ndarray, blurred_path: Path, sharp_path: Path):
    if blurred.shape != sharp.shape:
        raise BenchmarkError(f"{blurred_path}: {blurred.shape[1]}x{blurred.shape[0]} but "
                             f"{sharp_path} is {sharp.shape[1]}x{sharp.shape[0]}")
    return blurred, sharp


# --- RealBlur's protocol -----------------------------------------------------------
ECC_ITERATIONS = 100
ECC_GAUSSIAN = 5


def realblur_align(restored: np.ndarray, sharp: np.ndarray):
    """RealBlur's alignment of a restored image to its ground truth.

    restored, sharp: uint8 (H, W, 3) RGB.  The restored image z (in [0, 1])
    is scaled by (Σ x z / Σ z²) to match the ground truth x's intensity,
    then an ECC homography (OpenCV ``findTransformECC``, 100 iterations,
    Gaussian pre-filter of 5, on grey images) aligns it to x; it is warped
    with bicubic interpolation and reflected borders, and a nearest-neighbour
    warp of ones gives the valid region.  Returns (aligned, target, mask,
    converged): float32 (H, W, 3) aligned restored image and ground truth
    (both zero outside the mask), the 0/1 float32 mask, and whether ECC
    converged (if not, the identity warp is used and the pair is still
    scored; RealBlur's script would stop).
    """
    z = restored.astype(np.float32) / 255.0
    x = sharp.astype(np.float32) / 255.0
    scale = float(np.sum(x * z, dtype=np.float64) / max(np.sum(z * z, dtype=np.float64), 1e-12))
    zs = (scale * z).astype(np.float32)
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 0)
    converged = True
    try:
        _, warp = cv2.findTransformECC(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.cvtColor(zs, cv2.COLOR_RGB2GRAY),
                                       warp, cv2.MOTION_HOMOGRAPHY, criteria, None, ECC_GAUSSIAN)
    except cv2.error:  # ECC diverged (e.g. a flat image): score unaligned
        warp, converged = np.eye(3, dtype=np.float32), False
    size = (x.shape[1], x.shape[0])
    aligned = cv2.warpPerspective(zs, warp, size, flags=cv2.INTER_CUBIC + cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpPerspective(np.ones_like(zs), warp, size, flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return aligned * mask, x * mask, mask, converged


def realblur_scores(restored: np.ndarray, sharp: np.ndarray) -> dict:
    """{"psnr_realblur" (dB), "ssim_realblur", "ecc_converged"} of RealBlur's evaluation.

    After ``realblur_align``: PSNR = 10 log10(1 / (Σ squared error / Σ mask))
    over the valid region (data range 1); SSIM is skimage's with Gaussian
    weights and population covariance (``ssim_gopro``'s settings) whose map
    is multiplied by the mask, cropped by the window radius (5 px) and
    averaged over the mask, per channel, then over channels.
    """
    aligned, target, mask, converged = realblur_align(restored, sharp)
    error = float(np.sum((target - aligned) ** 2, dtype=np.float64))
    valid = float(np.sum(mask, dtype=np.float64))
    psnr_value = math.inf if error == 0 else 10.0 * math.log10(valid / error)
    _, ssim_map = structural_similarity(target, aligned, channel_axis=-1, gaussian_weights=True,
                                        use_sample_covariance=False, data_range=1.0, full=True)
    pad = (2 * int(3.5 * 1.5 + 0.5) + 1 - 1) // 2
    ssim_map = (ssim_map * mask)[pad:-pad, pad:-pad]
    crop = mask[pad:-pad, pad:-pad]
    per_channel = ssim_map.sum(axis=(0, 1)) / np.maximum(crop.sum(axis=(0, 1)), 1e-12)
    return {"psnr_realblur": psnr_value, "ssim_realblur": float(np.mean(per_channel)),
            "ecc_converged": converged}


def realblur_row(restored: np.ndarray, blurred: np.ndarray, sharp: np.ndarray) -> dict:
    """The RealBlur-protocol entries of one ``score_pairs`` row.

    The blurred input is scored unaligned, as RealBlur's script does for its
    PSNR (its input SSIM is not computed there; here it is ``ssim_gopro``,
    the same SSIM without the mask).
    """
    scores = realblur_scores(restored, sharp)
    return {"psnr_realblur": scores["psnr_realblur"], "input_psnr_realblur": psnr(blurred, sharp),
            "ssim_realblur": scores["ssim_realblur"], "input_ssim_realblur": ssim_gopro(blurred, sharp),
            "ecc_converged": float(scores["ecc_converged"])}

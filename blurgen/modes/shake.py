"""The non-uniform camera-shake mode (``--shake nonuniform``): the camera's rotations (and
translation) over the exposure averaged as homographies, Whyte et al. 2012 (:mod:`blurgen.shake`);
the blur differs across the image, the kernel stored is the PSF at the crop's centre pixel.

Sample (image i, crop c) draws from ``default_rng([seed, SHAKE_TAG, i, c])``, in this order:
the three path lengths, the crop position, the realism levels; its three Boracchi & Foi walks
from :func:`shake_seeds`.  The uniform mode's draws are untouched.
"""
from __future__ import annotations

from dataclasses import asdict

import click
import numpy as np

from blurgen.modes.base import BlurMode, Photo, crop_box, too_small, upscale_to
from blurgen.shard_run import SynthError

# blurgen.shake (OpenCV) is imported where it is used: the command lines import the modes,
# for their options, as they start.

#: Stream tag: ASCII "SHAK".
SHAKE_TAG = 0x5348414B


class Shake(BlurMode):
    name = "shake"
    summary = "non-uniform camera shake: rotations averaged as homographies (Whyte et al.)"
    options = (
        click.option("--shake", type=click.Choice(["nonuniform"]), default=None,
                     help="Non-uniform camera shake: rotations averaged as homographies (Whyte et al.), docs/modes.md."),
        click.option("--max-angle", type=float, default=1.0, show_default=True,
                     help="--shake: largest rotation path, degrees."),
        click.option("--focal", type=float, default=None,
                     help="--shake: focal length, px. [default: the photo's longer side]"),
        click.option("--max-shift", type=float, default=0.0, show_default=True,
                     help="--shake: largest translation path, px."),
    )
    flag = "--shake"

    def spec_from(self, values: dict):
        if not values.get("shake"):
            return None
        from blurgen import shake as _shake

        return _shake.ShakeSpec(max_angle=values["max_angle"], focal=values["focal"], max_shift=values["max_shift"])

    def check(self, cfg) -> None:
        if cfg.kernel_bank is not None:
            raise SynthError("--kernels does not apply to --shake nonuniform (its blur is drawn per sample)")

    def arguments(self, cfg) -> dict:
        return {"shake": asdict(cfg.spec)}

    def sample(self, photo: Photo, crop: int, j: int, cfg, shared) -> tuple:
        return shake_pair(photo.pixels, photo.rel, photo.index, crop, cfg)

    def recorded(self, args: dict) -> bool:
        return bool(args.get("shake"))

    def describe(self, args: dict) -> str:
        sh = args["shake"]
        focal = f"{sh['focal']:g} px" if sh["focal"] else "= the longer side"
        return (f"non-uniform camera shake (Whyte et al.): rotation paths up to {sh['max_angle']:g} deg, "
                f"translation up to {sh['max_shift']:g} px, focal {focal}, {sh['knots']} knots; "
                "kernel = the PSF at the crop's centre")


SHAKE = Shake()


def shake_seeds(seed: int, image: int, crop: int) -> np.ndarray:
    """(3,) uint64 seeds of the three Boracchi & Foi walks of sample (image, crop)."""
    return np.random.SeedSequence([seed, SHAKE_TAG, image, crop, 1]).generate_state(3, np.uint64)


def shake_pair(photo: np.ndarray, source: str, image: int, crop: int, cfg) -> tuple:
    """A non-uniform camera-shake sample (:mod:`blurgen.shake`) of ``photo`` (H, W, 3) uint8.

    Draws, from ``default_rng([seed, SHAKE_TAG, image, crop])`` in this order: the three
    path lengths, the crop position, the realism levels.  Returns (blurred, sharp) (h, w, 3)
    uint8, the (k, k) PSF at the crop's centre pixel, and the meta fields.  Raises
    :class:`SkipImage` ("too-small") when the photo cannot hold the crop plus the shake's margin.
    """
    from blurgen import shake as _shake

    spec, realism = cfg.spec, cfg.realism
    rng = np.random.default_rng([cfg.seed, SHAKE_TAG, image, crop])
    seeds = shake_seeds(cfg.seed, image, crop)
    drawn = _shake.draw_shake(seeds, spec, rng)
    original = photo.shape[:2]
    photo, factor, focal, H, m = _fit_shake(photo, drawn, cfg)
    h, w = photo.shape[:2]
    if min(h, w) < 2 * m + (1 if cfg.full else cfg.crop):
        what = "the shake's" if cfg.full else f"a {cfg.crop} crop plus the shake's"
        raise too_small(original[1], original[0], f"{what} {m} px margin on each side",
                        f" (also upscaled {factor:.3g} times)" if factor != 1 else "")
    y0, x0, y1, x1 = crop_box(rng, h, w, cfg.crop, cfg.full, m, m)
    effects = realism.draw(rng)
    cam = realism.draw_camera(realism.camera_rng([cfg.seed, SHAKE_TAG, image, crop]))
    region = realism.working(photo[y0 - m : y1 + m, x0 - m : x1 + m], effects, cam)
    blurred = realism.finish(_shake.average_warps(region, H, (y0 - m, x0 - m), (y0, x0, y1, x1)), rng, effects, cam)
    centre = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2)
    corners = _shake.probe_points(x0, y0, x1 - 1, y1 - 1)[[0, 2, 6, 8]]
    traj = np.concatenate([drawn.angles, drawn.shifts], axis=1).astype(np.float32)
    meta = {"source": source, "crop_box": np.array([y0, x0, y1, x1], np.int32), "linear": realism.in_linear_light,
            **effects,
            "shake_focal": focal, "shake_poses": len(H), "shake_margin": m,
            "shake_oop_angle": drawn.oop_angle, "shake_roll_angle": drawn.roll_angle,
            "shake_shift_length": drawn.shift_length,
            "shake_angle_range": np.degrees(np.ptp(drawn.angles, axis=0)),
            "shake_blur_centre": _shake.streak_length(H, centre),
            "shake_blur_corner": max(_shake.streak_length(H, tuple(p)) for p in corners),
            "shake_seeds": seeds, "shake_trajectory": traj}
    sharp = realism.sharp(photo[y0:y1, x0:x1], cam)
    if cam is not None:
        meta.update(cam.draw.meta())
    if cfg.small == "upscale":  # a field only then, as in the uniform mode
        meta["upscale"] = np.float32(factor)
    return blurred, sharp, _shake.point_psf(H, centre, cfg.kernel_spec.size), meta


#: ``--small upscale`` with ``--shake``: enlargements tried before a photo is skipped.  The
#: shake's margin grows with the photo (its focal length is the longer side by default), so
#: each try upscales to the margin the last one needed; 2-3 tries reach it when it can be.
SHAKE_UPSCALE_TRIES = 8


def _fit_shake(photo: np.ndarray, drawn, cfg) -> tuple[np.ndarray, float, float, np.ndarray, int]:
    """(photo, upscale factor, focal px, homographies, margin px) of a shake sample: ``photo``
    as it is if it holds the crop plus the margin its drawn shake needs, or with ``--small
    upscale`` enlarged (bicubic, :func:`~blurgen.modes.base.upscale_to`) until it does (at most
    :data:`SHAKE_UPSCALE_TRIES` tries; the caller skips a photo that still does not)."""
    from blurgen import shake as _shake

    spec, original, factor = cfg.spec, photo, 1.0
    for _ in range(SHAKE_UPSCALE_TRIES):
        h, w = photo.shape[:2]
        focal = float(spec.focal or max(h, w))
        H = _shake.poses(drawn, _shake.intrinsics(focal, w, h), w, h, spec.step)
        m = _shake.margin_for(H, w, h)
        need = 2 * m + (1 if cfg.full else cfg.crop)
        if min(h, w) >= need or cfg.small != "upscale":
            break
        photo, factor = upscale_to(original, max(need, min(h, w) + 1))
    return photo, factor, focal, H, m

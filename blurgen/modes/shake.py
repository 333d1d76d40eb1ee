"""The non-uniform camera-shake mode (``--shake nonuniform``): the camera's rotations (and
translation) over the exposure averaged as homographies, Whyte et al. 2012 (:mod:`blurgen.physics.shake`);
the blur differs across the image, the kernel stored is the PSF at the crop's centre pixel.

Sample (image i, crop c) draws from ``default_rng([seed, SHAKE_TAG, i, c])``, in this order:
the three path lengths, the crop position, the realism levels; its three Boracchi & Foi walks
from :func:`shake_seeds`.  With ``--gyro`` (recorded shake, :func:`gyro_shake`) the exposure, the
window's place in the logs and the translation's path length take the path lengths' place.  The
uniform mode's draws are untouched.

With ``--rolling-shutter`` (a field of its ShakeSpec, :mod:`blurgen.modes.rolling`) the
sample's readout comes from a stream of its own; with a readout > 0 the walks (or the gyroscope
window) go on past the exposure and each row averages the poses of its own window
(:func:`blurgen.physics.rolling.average_rows`).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
import numpy as np

import blurgen.modes.rolling as _rolling
from blurgen.modes.base import BlurMode, Photo, crop_box, too_small, upscale_to
from blurgen.physics import rolling as rolling_physics
from blurgen.errors import BlurgenError
from blurgen.runs.shard_run import SynthError

# blurgen.physics.shake (OpenCV) is imported where it is used: the command lines import the modes,
# for their options, as they start.

#: Stream tag: ASCII "SHAK".
SHAKE_TAG = 0x5348414B
#: Keeps an online draw's readout stream apart from the rest of its draws.
ROLLING_ONLINE_TAG = 0x524F4F4E


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
        click.option("--gyro", type=click.Path(), default=None,
                     help="--shake: rotations from a gyroscope log (CSV: time,gx,gy,gz) or a folder of them "
                          "instead of random walks (docs/modes.md)."),
        click.option("--exposure", default="1/30", show_default=True, metavar="S|LO-HI",
                     help="--gyro: exposure, seconds, or a range drawn per sample (e.g. 1/60-1/15)."),
        click.option("--gyro-units", type=click.Choice(["auto", "rad/s", "deg/s"]), default="auto", show_default=True,
                     help="--gyro: angular velocity unit (auto: the header's, else rad/s)."),
        click.option("--gyro-axes", default="x,-y,-z", show_default=True,
                     help="--gyro: the gyro axes along the camera's x (right), y (down), z (forward); "
                          "the default is a phone's rear camera held upright."),
    )
    flag = "--shake"
    settings = (_rolling.SETTING,)

    def spec_from(self, values: dict):
        if not values.get("shake"):
            if values.get("gyro"):
                raise SynthError("--gyro is a setting of --shake nonuniform: give both")
            return None
        from blurgen.physics import shake as _shake

        gyro = None
        if values.get("gyro"):
            from blurgen.physics import gyro as _gyro

            gyro = _gyro.GyroSpec(str(values["gyro"]), _gyro.parse_exposure(values.get("exposure") or "1/30"),
                                  values.get("gyro_units") or "auto", values.get("gyro_axes") or _gyro.PHONE_AXES)
        return _shake.ShakeSpec(max_angle=values["max_angle"], focal=values["focal"], max_shift=values["max_shift"],
                                rolling=_rolling.rolling_from(values), gyro=gyro)

    def check(self, cfg) -> None:
        if cfg.kernel_bank is not None:
            raise SynthError("--kernels does not apply to --shake nonuniform (its blur is drawn per sample)")

    def arguments(self, cfg) -> dict:
        shake = {key: value for key, value in asdict(cfg.spec).items() if key not in ("rolling", "gyro")}
        gyro = asdict(cfg.spec).get("gyro")  # a key only with --gyro: the manifests of other shake runs keep their bytes
        if gyro is not None:
            gyro = {"gyro": {**gyro, "path": str(Path(gyro["path"]).resolve())}}
        return {"shake": shake, **(gyro or {}), **_rolling.rolling_arguments(cfg.spec.rolling)}

    def inputs(self, cfg) -> dict:
        if cfg.spec.gyro is None:
            return {}
        from blurgen.physics import gyro as _gyro

        return {"gyro": _gyro.logs_checksum(cfg.spec.gyro.path)}

    def check_inputs(self, cfg) -> None:
        if cfg.spec.gyro is not None:
            from blurgen.physics import gyro as _gyro

            try:  # every log in full, before any work
                _gyro.load_logs(cfg.spec.gyro, _gyro.window_span(cfg.spec.knots, _longest_readout(cfg.spec)))
            except _gyro.GyroError as exc:
                raise SynthError(str(exc)) from None

    def sample(self, photo: Photo, crop: int, j: int, cfg, shared) -> tuple:
        return shake_pair(photo.pixels, photo.rel, photo.index, crop, cfg)

    online = True

    def online_spec(self, settings: dict):
        from blurgen.physics import shake as _shake

        kinds = {"max_angle": float, "focal": float, "knots": int, "max_shift": float, "step": float}
        unknown = sorted(set(settings) - set(kinds) - {"rolling"})
        if unknown:
            raise ValueError(f"the shake mode has no setting {unknown[0]!r} (it has {', '.join(kinds)}, rolling)")
        try:
            rolling = None
            if "rolling" in settings:
                rolling = _rolling.rolling_from({_rolling.SETTING: settings["rolling"]})
            return _shake.ShakeSpec(**{key: kinds[key](value) for key, value in settings.items() if key != "rolling"},
                                    rolling=rolling)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"shake setting: {exc}") from None
        except BlurgenError as exc:  # a bad LO-HI
            raise ValueError(f"shake setting rolling: must look like LO-HI (e.g. 0.1-0.5), got "
                             f"{settings['rolling']!r}") from exc

    def blur_window(self, window, psf, margins, spec, realism, rng, effects, cam) -> tuple[np.ndarray, dict]:
        return shake_window(window, margins, spec or self.online_spec({}), realism, rng, effects, cam)

    def recorded(self, args: dict) -> bool:
        return bool(args.get("shake"))

    def describe(self, args: dict) -> str:
        sh = args["shake"]
        focal = f"{sh['focal']:g} px" if sh["focal"] else "= the longer side"
        if args.get("gyro"):
            gy = args["gyro"]
            lo, hi = gy["exposure"]
            return (f"non-uniform camera shake (Whyte et al.) recorded by the gyroscope logs {gy['path']}: exposure "
                    f"{lo:.4g}" + (f"-{hi:.4g}" if hi != lo else "") + " s, rates in "
                    + ("the header's unit, else rad/s" if gy["units"] == "auto" else gy["units"])
                    + f", axes {gy['axes']}; "
                    f"translation up to {sh['max_shift']:g} px, focal {focal}, {sh['knots']} knots; "
                    "kernel = the PSF at the crop's centre")
        return (f"non-uniform camera shake (Whyte et al.): rotation paths up to {sh['max_angle']:g} deg, "
                f"translation up to {sh['max_shift']:g} px, focal {focal}, {sh['knots']} knots; "
                "kernel = the PSF at the crop's centre" + _rolling.describe_rolling(args))


SHAKE = Shake()


def shake_seeds(seed: int, image: int, crop: int) -> np.ndarray:
    """(3,) uint64 seeds of the three Boracchi & Foi walks of sample (image, crop)."""
    return np.random.SeedSequence([seed, SHAKE_TAG, image, crop, 1]).generate_state(3, np.uint64)


def shake_pair(photo: np.ndarray, source: str, image: int, crop: int, cfg) -> tuple:
    """A non-uniform camera-shake sample (:mod:`blurgen.physics.shake`) of ``photo`` (H, W, 3) uint8.

    Draws, from ``default_rng([seed, SHAKE_TAG, image, crop])`` in this order: the three
    path lengths, the crop position, the realism levels.  Returns (blurred, sharp) (h, w, 3)
    uint8, the (k, k) PSF at the crop's centre pixel, and the meta fields.  Raises
    :class:`SkipImage` ("too-small") when the photo cannot hold the crop plus the shake's margin.
    """
    from blurgen.physics import shake as _shake

    spec, realism = cfg.spec, cfg.realism
    rng = np.random.default_rng([cfg.seed, SHAKE_TAG, image, crop])
    seeds = shake_seeds(cfg.seed, image, crop)
    readout = _rolling.draw_readout(spec.rolling, cfg.seed, image, crop)
    if spec.gyro is None:
        drawn, recorded = _shake.draw_shake(seeds, spec, rng, readout or 0.0), {}
    else:
        drawn, recorded = gyro_shake(seeds, spec, rng, readout or 0.0)
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
    centre = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2)
    corners = _shake.probe_points(x0, y0, x1 - 1, y1 - 1)[[0, 2, 6, 8]]
    if readout:  # > 0: each row its own window of poses; the centre row's and the corners' rows' own
        rows = rolling_rows(drawn, H, spec, readout, y1 - y0)
        blurred = rolling_physics.average_rows(region, H, (y0 - m, x0 - m), (y0, x0, y1, x1), *rows)
        first, count = rows
        middle = int(np.rint(readout / 2 * (count - 1)))
        seen = {"centre": H[middle : middle + count], "top": H[: count], "bottom": H[first[-1] : first[-1] + count]}
        knots = _centre_knots(drawn, spec.knots, readout)
    else:
        blurred = _shake.average_warps(region, H, (y0 - m, x0 - m), (y0, x0, y1, x1))
        seen = dict.fromkeys(("centre", "top", "bottom"), H)
        knots = np.concatenate([drawn.angles, drawn.shifts], axis=1)
    blurred = realism.finish(blurred, rng, effects, cam)
    corner_rows = ("top", "top", "bottom", "bottom")
    meta = {"source": source, "crop_box": np.array([y0, x0, y1, x1], np.int32), "linear": realism.in_linear_light,
            **effects,
            "shake_focal": focal, "shake_poses": len(seen["centre"]), "shake_margin": m,
            "shake_oop_angle": drawn.oop_angle, "shake_roll_angle": drawn.roll_angle,
            "shake_shift_length": drawn.shift_length,
            "shake_angle_range": np.degrees(np.ptp(knots[:, :3], axis=0)),
            "shake_blur_centre": _shake.streak_length(seen["centre"], centre),
            "shake_blur_corner": max(_shake.streak_length(seen[r], tuple(p)) for r, p in zip(corner_rows, corners)),
            "shake_seeds": seeds, "shake_trajectory": knots.astype(np.float32), **recorded}
    sharp = realism.sharp(photo[y0:y1, x0:x1], cam)
    if cam is not None:
        meta.update(cam.draw.meta())
    if cfg.small == "upscale":  # a field only then, as in the uniform mode
        meta["upscale"] = np.float32(factor)
    meta.update(_rolling.rolling_meta(readout))  # with --rolling-shutter only, likewise
    return blurred, sharp, _shake.point_psf(seen["centre"], centre, cfg.kernel_spec.size), meta


def rolling_rows(drawn, H: np.ndarray, spec, readout: float, rows: int) -> tuple[np.ndarray, int]:
    """(first pose of each row's window (rows,) int64, poses a window holds) of a rolling shutter
    over the poses ``H`` of a walk continued past the exposure (``draw_shake(..., readout)``):
    ``poses`` subdivides each of its knot segments into the same m poses, so an exposure
    (``spec.knots - 1`` segments) spans P = m (knots - 1) pose steps, P + 1 poses."""
    per_segment = (len(H) - 1) // (len(drawn.angles) - 1)
    per_exposure = per_segment * (spec.knots - 1)
    return rolling_physics.row_windows(rows, readout, per_exposure), per_exposure + 1


def _centre_knots(drawn, knots: int, readout: float) -> np.ndarray:
    """(knots, 5) float64: pitch, yaw, roll, shift x, y at the knots of the centre row's window
    (from knot ``readout / 2 * (knots - 1)`` on, interpolated), as ``shake_trajectory`` records them."""
    at = readout / 2 * (knots - 1) + np.arange(knots)
    path = np.concatenate([drawn.angles, drawn.shifts], axis=1)
    return np.stack([np.interp(at, np.arange(len(path)), path[:, i]) for i in range(path.shape[1])], axis=1)


#: ``--small upscale`` with ``--shake``: enlargements tried before a photo is skipped.  The
#: shake's margin grows with the photo (its focal length is the longer side by default), so
#: each try upscales to the margin the last one needed; 2-3 tries reach it when it can be.
SHAKE_UPSCALE_TRIES = 8


def _fit_shake(photo: np.ndarray, drawn, cfg) -> tuple[np.ndarray, float, float, np.ndarray, int]:
    """(photo, upscale factor, focal px, homographies, margin px) of a shake sample: ``photo``
    as it is if it holds the crop plus the margin its drawn shake needs, or with ``--small
    upscale`` enlarged (bicubic, :func:`~blurgen.modes.base.upscale_to`) until it does (at most
    :data:`SHAKE_UPSCALE_TRIES` tries; the caller skips a photo that still does not)."""
    from blurgen.physics import shake as _shake

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


#: Online shake (:func:`shake_window`): shrinks tried before a shake that reaches beyond the
#: window is left to the edge replication of ``average_warps``.
ONLINE_FITS = 4


def shake_window(window: np.ndarray, margins: tuple[int, int], spec, realism, rng: np.random.Generator,
                 effects: dict, cam) -> tuple[np.ndarray, dict]:
    """Non-uniform camera shake of the crop inside a sharp ``window`` (``trainer fit --online``).

    The window (H, W, 3) uint8 is all of the photo there is: the focal length is
    ``spec.focal`` or its longer side, and a drawn shake that would read beyond it (more than
    ``margins`` px, before and after, around the crop) is scaled down until it does not, so
    that no pixel of the blurred crop comes from outside the window; the scale is recorded
    (``shake_scale``, 1 if it fitted).  Draws from ``rng``: the three walks' seeds, then the
    path lengths.  With ``spec.rolling`` (``--online-mode-settings rolling=LO-HI``) the readout
    is drawn from a stream of the draw's first seed, the walks go on past the exposure, and each
    row averages the poses of its own window, as ``synthesize`` does (the shrinking above then
    bounds the reach of every pose of the continued walk).  Returns the blurred crop
    (H - b - a, W - b - a, 3) uint8 and its meta.
    """
    from blurgen.physics import shake as _shake

    h, w = window.shape[:2]
    before, after = margins
    seeds = rng.integers(0, 2**63, size=3, dtype=np.uint64)
    # The readout from a stream of the draw's own seeds: no draw of ``rng`` moves with it.
    readout = None if spec.rolling is None else float(
        np.random.default_rng([int(seeds[0]), ROLLING_ONLINE_TAG]).uniform(spec.rolling.lo, spec.rolling.hi))
    drawn = _shake.draw_shake(seeds, spec, rng, readout or 0.0)
    K = _shake.intrinsics(float(spec.focal or max(h, w)), w, h)
    box = (before, before, h - after, w - after)
    probes = _shake.probe_points(box[1], box[0], box[3] - 1, box[2] - 1)
    room, scale = min(before, after) - 2, 1.0  # margin_for's one pixel of bilinear and one of safety
    H = _shake.poses(drawn, K, w, h, spec.step)
    for _ in range(ONLINE_FITS):
        reach = float(np.linalg.norm(_shake.apply(np.linalg.inv(H), probes) - probes, axis=-1).max())
        if reach <= room:
            break
        shrink = max(room, 0) / reach * 0.95
        scale *= shrink
        drawn = _shake.Shake(drawn.angles * shrink, drawn.shifts * shrink, drawn.oop_angle * shrink,
                             drawn.roll_angle * shrink, drawn.shift_length * shrink)
        H = _shake.poses(drawn, K, w, h, spec.step)
    region = realism.working(window, effects, cam)
    if readout:  # > 0: each row averages the poses of its own window
        rows = rolling_rows(drawn, H, spec, readout, box[2] - box[0])
        blurred = rolling_physics.average_rows(region, H, (0, 0), box, *rows)
    else:
        blurred = _shake.average_warps(region, H, (0, 0), box)
    blurred = realism.finish(blurred, rng, effects, cam)
    return blurred, {"shake_oop_angle": drawn.oop_angle, "shake_roll_angle": drawn.roll_angle,
                     "shake_shift_length": drawn.shift_length, "shake_scale": scale,
                     **_rolling.rolling_meta(readout)}


def gyro_shake(seeds: np.ndarray, spec, rng: np.random.Generator, readout: float = 0.0) -> tuple:
    """A shake recorded by ``spec.gyro``'s logs (:mod:`blurgen.physics.gyro`): (the Shake, the sample's
    ``gyro_*`` fields).  Draws from ``rng``, in this order: the exposure, the window's place in the
    logs, the translation's path length (its walk: the third of ``seeds``, as without --gyro).
    ``readout`` > 0 (a rolling shutter): the window, and the translation's walk, go on past the
    exposure as the random walks do (:func:`blurgen.physics.shake.centred_walks`)."""
    from blurgen.physics import gyro as _gyro
    from blurgen.physics import shake as _shake

    logs = _gyro.load_logs(spec.gyro, _gyro.window_span(spec.knots, _longest_readout(spec)))
    window = _gyro.draw_window(logs, spec.gyro.exposure, rng, _gyro.window_span(spec.knots, readout))
    angles = _gyro.knot_angles(logs[window.log], window.start, window.exposure, spec.knots, readout)
    shift = float(rng.uniform(0, spec.max_shift))
    shifts = np.zeros((len(angles), 2))
    if shift > 0:
        walk = _shake.centred_walks(seeds[2:], spec.knots, readout)[:, 0]
        shifts = np.stack([shift * walk.real, shift * walk.imag], axis=1)
    oop = float(np.degrees(np.abs(np.diff(angles[:, 0] + 1j * angles[:, 1])).sum()))
    roll = float(np.degrees(np.abs(np.diff(angles[:, 2])).sum()))
    recorded = {"gyro_log": logs[window.log].name, "gyro_start": window.start, "gyro_exposure": window.exposure}
    return _shake.Shake(angles, shifts, oop, roll, shift), recorded


def _longest_readout(spec) -> float:
    """The largest readout ``spec``'s rolling shutter draws (0 without one)."""
    return 0.0 if spec.rolling is None else float(spec.rolling.hi)

"""The synthesis modes beyond one uniform kernel, as ``build_shard`` calls them.

Each mode makes one (blurred, sharp, kernel, meta) sample from a source photo
and the sample's (image, crop) index, drawing everything from its own random
stream — ``default_rng([seed, TAG, image, crop])`` with a tag per mode — so the
uniform mode's draws (``default_rng([seed, image, crop])``) are untouched.
The realism spec (``cfg.realism``, :mod:`blurgen.realism`: linear light,
saturation, noise, JPEG, or RSBlur's camera pipeline) works around each mode's
blur as around the uniform mode's: its working space before, its finish after,
the camera's settings and noise from a stream of their own.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from blurgen import blur
from blurgen import objects as _objects
from blurgen import shake as _shake
from blurgen.kernels import make_kernels
from blurgen.psf import exposed_samples
from blurgen.sources import SkipImage, load_rgb
from blurgen.trajectory import random_trajectories


def crop_box(rng: np.random.Generator, h: int, w: int, crop: int, full: bool, before: int = 0,
             after: int = 0) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of a sample in an h x w image less ``before``/``after`` px of margin
    on each side: the whole of it with ``full``, else a ``crop`` x ``crop`` window at a
    position drawn from ``rng`` (the image must hold crop + margins).  Two draws either
    way, so that turning ``full`` on or off leaves every later draw as it was."""
    if full:
        rng.integers(0, 1, size=2)
        return before, before, h - after, w - after
    y0 = before + int(rng.integers(0, h - before - after - crop + 1))
    x0 = before + int(rng.integers(0, w - before - after - crop + 1))
    return y0, x0, y0 + crop, x0 + crop

#: Stream tags: ASCII "SHAK" and "OBJS".
SHAKE_TAG = 0x5348414B
OBJECTS_TAG = 0x4F424A53


def shake_seeds(seed: int, image: int, crop: int) -> np.ndarray:
    """(3,) uint64 seeds of the three Boracchi & Foi walks of sample (image, crop)."""
    return np.random.SeedSequence([seed, SHAKE_TAG, image, crop, 1]).generate_state(3, np.uint64)


def shake_pair(photo: np.ndarray, source: str, image: int, crop: int, cfg, kernel_size: int):
    """A non-uniform camera-shake sample (:mod:`blurgen.shake`) of ``photo`` (H, W, 3) uint8.

    Draws, from ``default_rng([seed, SHAKE_TAG, image, crop])`` in this order: the three
    path lengths, the crop position, the realism levels.  Returns (blurred, sharp) (h, w, 3)
    uint8, the (k, k) PSF at the crop's centre pixel, and the meta fields.  Raises
    :class:`SkipImage` ("too-small") when the photo cannot hold the crop plus the shake's margin.
    """
    spec, realism = cfg.shake, cfg.realism
    rng = np.random.default_rng([cfg.seed, SHAKE_TAG, image, crop])
    seeds = shake_seeds(cfg.seed, image, crop)
    drawn = _shake.draw_shake(seeds, spec, rng)
    original = photo.shape[:2]
    photo, factor, focal, H, m = _fit_shake(photo, drawn, cfg)
    h, w = photo.shape[:2]
    if min(h, w) < 2 * m + (1 if cfg.full else cfg.crop):
        what = "the shake's" if cfg.full else f"a {cfg.crop} crop plus the shake's"
        raise SkipImage("too-small", f"{original[1]}x{original[0]} is smaller than {what} {m} px margin on each side"
                        + (f" (also upscaled {factor:.3g} times)" if factor != 1 else ""))
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
    return blurred, sharp, _shake.point_psf(H, centre, kernel_size), meta


#: ``--small upscale`` with ``--shake``: enlargements tried before a photo is skipped.  The
#: shake's margin grows with the photo (its focal length is the longer side by default), so
#: each try upscales to the margin the last one needed; 2-3 tries reach it when it can be.
SHAKE_UPSCALE_TRIES = 8


def _fit_shake(photo: np.ndarray, drawn, cfg) -> tuple[np.ndarray, float, float, np.ndarray, int]:
    """(photo, upscale factor, focal px, homographies, margin px) of a shake sample: ``photo``
    as it is if it holds the crop plus the margin its drawn shake needs, or with ``--small
    upscale`` enlarged (bicubic, ``synthesize.upscale_to``) until it does (at most
    :data:`SHAKE_UPSCALE_TRIES` tries; the caller skips a photo that still does not)."""
    from blurgen.synthesize import upscale_to

    spec, original, factor = cfg.shake, photo, 1.0
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


def objects_pair(photo: np.ndarray, source: str, image: int, crop: int, cfg):
    """A moving-object sample (:mod:`blurgen.objects`): an instance of ``--objects`` pasted on ``photo``
    (the background), blurred by the layered model with the camera's fresh kernel and its own motion.

    Draws: the camera's and the object's walks from ``SeedSequence([seed, OBJECTS_TAG, image, crop, 1])``;
    then from ``default_rng([seed, OBJECTS_TAG, image, crop])``, in order, the object's own path length,
    the crop position, the instance, its place in the crop, the realism levels.  Returns (blurred, sharp)
    uint8, the camera's (k, k) PSF, and the meta fields.  Raises :class:`SkipImage` ("too-small", or
    "object-..." when the instance's photo or mask cannot be used).
    """
    spec, ks, realism = cfg.objects, cfg.kernel_spec, cfg.realism
    rng = np.random.default_rng([cfg.seed, OBJECTS_TAG, image, crop])
    cam_seed, own_seed = np.random.SeedSequence([cfg.seed, OBJECTS_TAG, image, crop, 1]).generate_state(2, np.uint64)
    kernel = make_kernels(np.array([cam_seed]), ks)
    samples = int(exposed_samples(ks.iters, kernel.fraction)[0])
    # The object's walk is drawn like the camera's (one call for both: the cost is per step, not per
    # walk) and scaled so that its whole, unexposed length included, is the drawn length.
    walks = random_trajectories(np.array([cam_seed, own_seed]), ks.iters, ks.max_len, ks.expl, samples=samples).points
    walks = walks.astype(np.complex128) - walks.mean(axis=0, dtype=np.complex128)  # centred as the kernel is
    length = float(rng.uniform(0, spec.max_len))
    camera, own = walks[:, 0], walks[:, 1] * (length / ks.max_len)  # own centred: its sharp place is its mean
    h, w = photo.shape[:2]
    k = ks.size
    before, after = blur.margins(k)
    side = None if cfg.full else cfg.crop
    need = (k - 1) + (side or 1)
    factor = 1.0
    if (h < need or w < need) and cfg.small == "upscale":
        from blurgen.synthesize import upscale_to

        photo, factor = upscale_to(photo, need)
        h, w = photo.shape[:2]
    if h < need or w < need:
        raise SkipImage("too-small", f"{w}x{h} is smaller than a {cfg.crop} crop plus the kernel's {k - 1} px margin")
    y0, x0, y1, x1 = crop_box(rng, h, w, cfg.crop, cfg.full, before, after)
    found = _objects.instances(spec, cfg.src)
    inst = found[int(rng.integers(len(found)))]
    folder = Path(spec.images or cfg.src)
    try:
        other = _objects.cached_photo(folder / inst.file_name, lambda p: load_rgb(p, cfg.max_pixels))
    except SkipImage as exc:
        raise SkipImage(f"object-{exc.reason}", f"instance {inst.id} ({inst.file_name}): {exc.detail}") from None
    if other.shape[:2] != (inst.height, inst.width):
        raise SkipImage("object-size", f"instance {inst.id}: {inst.file_name} decodes to {other.shape[1]}x{other.shape[0]}, "
                                       f"the annotations say {inst.width}x{inst.height}")
    try:
        mask = _objects.decode_segmentation(inst.segmentation, inst.height, inst.width)
    except _objects.ObjectsError as exc:
        raise SkipImage("object-mask", f"instance {inst.id}: {exc}") from None
    if not mask.any():
        raise SkipImage("object-mask", f"instance {inst.id}: an empty mask")
    ys, xs = np.nonzero(mask)
    scale = _objects.object_scale(int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1, min(y1 - y0, x1 - x0), spec.max_side,
                                  cfg.downscale)
    colours, alpha = _objects.cut_out(other, mask, scale)
    oy, ox = _objects.place(rng, alpha.shape, (y1 - y0, x1 - x0))
    effects = realism.draw(rng)
    cam = realism.draw_camera(realism.camera_rng([cfg.seed, OBJECTS_TAG, image, crop]))
    region = photo[y0 - before : y1 + after, x0 - before : x1 + after]
    at = (slice(before + oy, before + oy + alpha.shape[0]), slice(before + ox, before + ox + alpha.shape[1]))
    layers = {}
    for boost in (True, False):  # the blur sees boosted highlights (--saturate), the sharp image does not
        background = realism.working(region, effects, cam, boost)
        fore = np.zeros_like(background)
        fore[at] = realism.working(colours, effects, cam, boost)
        layers[boost] = (background, fore)
    matte = np.zeros(region.shape[:2], np.float32)
    matte[at] = alpha
    parts, offsets = _objects.partial_psfs(camera, own, k, spec.segments)
    blurred, _ = _objects.layered_blur(*layers[True], matte, parts, offsets)
    background, fore = (a[before : before + (y1 - y0), before : before + (x1 - x0)] for a in layers[False])
    m = matte[before : before + (y1 - y0), before : before + (x1 - x0), None]
    sharp = background * (1 - m) + fore * m
    sharp = realism.encode(sharp, cam)  # both images in the camera's tone curve with one
    meta = {"source": source, "crop_box": np.array([y0, x0, y1, x1], np.int32), "kernel_index": -1,
            "linear": realism.in_linear_light,
            **{f"kernel_{name}": v[0] for name, v in kernel.params().items()}, **effects,
            "object_id": inst.id, "object_image": inst.file_name,
            "object_box": np.array([oy, ox, oy + alpha.shape[0], ox + alpha.shape[1]], np.int32),
            "object_scale": scale, "object_area": float(alpha.sum()),
            "object_length": float(np.abs(np.diff(own)).sum()),
            "object_kernel": _objects.object_kernel(camera, own, k)}
    if cam is not None:
        meta.update(cam.draw.meta())
    if cfg.small == "upscale":  # a field only then, as in the uniform mode
        meta["upscale"] = np.float32(factor)
    return realism.finish(blurred, rng, effects, cam), sharp, kernel.psf[0], meta


def describe_sample(sample: dict, width: int = 100) -> str:
    """One sample's recorded parameters in a few compact lines (``blurgen inspect``), for any mode.

    Scalars and vectors of up to 4 values are written ``name=value`` (3 significant digits);
    larger arrays by their shape; the images, the kernel and the source path are left out.
    """
    parts = []
    for name in sorted(sample):
        if name in ("blurred", "sharp", "kernel", "source"):
            continue
        value = np.asarray(sample[name])
        if value.dtype.kind in "OUS":
            text = str(value)
        elif value.size > 4:
            text = "x".join(map(str, value.shape)) + " values"
        elif value.dtype.kind == "b":
            text = str(bool(value)) if value.ndim == 0 else str(value.tolist())
        elif value.dtype.kind in "iu":
            text = str(value.tolist())
        else:
            text = f"{float(value):.3g}" if value.ndim == 0 else "[" + ", ".join(f"{v:.3g}" for v in value.ravel()) + "]"
        parts.append(f"{name}={text}")
    lines, line = [], ""
    for part in parts:
        if line and len(line) + 1 + len(part) > width:
            lines.append(line)
            line = part
        else:
            line = f"{line} {part}".strip()
    return "\n".join("  " + ln for ln in lines + ([line] if line else []))


def describe_arguments(args: dict) -> str:
    """How a shard folder was made, in a few readable lines (from its manifest's arguments)."""
    if not args:
        return "made with: (no arguments recorded)"
    if args.get("command") == "blurgen import-pairs":
        return (f"imported pairs: blurred from {args.get('blur_dir')}, sharp from {args.get('sharp_dir')}; "
                f"whole images, shards of {args.get('shard_size')}\nkernels unknown (1x1 placeholders)")
    if args.get("command") == "average":
        from blurgen.video import describe_arguments

        return describe_arguments(args)
    if args.get("full"):
        samples = "whole photos less the kernel's margin"
    else:
        samples = f"{args.get('crops_per_image')} random {args.get('crop')}x{args.get('crop')} crop(s) per photo"
    if args.get("downscale", 1) != 1:
        samples += f", photos downscaled by {args['downscale']:g}"
    spec = args.get("kernel_spec") or {}
    if args.get("sharp_only"):
        kernels = "sharp images only (no blur, no kernel): for `trainer fit --online`"
    elif args.get("kernel_bank"):
        kernels = f"kernels drawn from the bank {args['kernel_bank']}"
    else:
        drawn = lambda v: "drawn" if v is None else f"{v:g}"  # noqa: E731
        kernels = (f"fresh {spec.get('size')}x{spec.get('size')} kernels (max-len {spec.get('max_len', 0):g}, "
                   f"iters {spec.get('iters')}, expl {drawn(spec.get('expl'))}, fraction {drawn(spec.get('fraction'))})")
    realism = [name for name in ("linear", "saturate", "noise") if args.get(name)]
    if args.get("camera"):
        realism.append(f"camera {args['camera']} (RSBlur pipeline, docs/camera.md)")
    if args.get("jpeg_quality"):
        realism.append("jpeg-quality {}-{}".format(*args["jpeg_quality"]))
    if args.get("shake"):
        sh = args["shake"]
        kernels = (f"non-uniform camera shake (Whyte et al.): rotation paths up to {sh['max_angle']:g} deg, "
                   f"translation up to {sh['max_shift']:g} px, focal " + (f"{sh['focal']:g} px" if sh['focal'] else "= the longer side") + ", "
                   f"{sh['knots']} knots; kernel = the PSF at the crop's centre")
    if args.get("objects"):
        ob = args["objects"]
        kernels += (f"\nmoving objects (layered model) from {ob['annotations']}: own paths up to {ob['max_len']:g} px, "
                    f"{ob['segments']} segments; kernel = the camera's (background's) PSF")
    return (f"made from {args.get('src')}: {samples}\n{kernels}; seed {args.get('seed')}, "
            f"shards of {args.get('shard_size')}\nrealism: {', '.join(realism) or 'none (as DeblurGAN)'}")

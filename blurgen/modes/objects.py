"""The moving-objects mode (``--objects``): an instance cut out with its COCO mask, pasted on the
photo and moving on its own path while the camera shakes, blurred by the layered model
(:mod:`blurgen.physics.objects`); the kernel stored is the camera's (the background's) PSF.

Draws: the camera's and the object's walks from ``SeedSequence([seed, OBJECTS_TAG, i, c, 1])``;
then from ``default_rng([seed, OBJECTS_TAG, i, c])``, in order, the object's own path length,
the crop position, the instance, its place in the crop, the realism levels.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
import numpy as np

from blurgen import shards
from blurgen.modes.base import BlurMode, Photo, crop_box, too_small, upscale_to
from blurgen.physics.kernels import make_kernels
from blurgen.physics.psf import exposed_samples
from blurgen.physics.trajectory import random_trajectories
from blurgen.runs.shard_run import SynthError
from blurgen.sources import SkipImage, load_rgb

# blur and blurgen.physics.objects (OpenCV, SciPy) are imported where they are used: the command lines
# import the modes, for their options, as they start.

#: Stream tag: ASCII "OBJS".
OBJECTS_TAG = 0x4F424A53


class Objects(BlurMode):
    name = "objects"
    summary = "moving objects cut out with COCO instance masks, blurred by the layered model"
    flag = "--objects"
    options = (
        click.option("--objects", "objects_json", type=click.Path(dir_okay=False), default=None,
                     help="Paste moving objects cut out with these COCO instance masks (layered model), docs/modes.md."),
        click.option("--objects-images", type=click.Path(file_okay=False), default=None,
                     help="--objects: folder of the annotations' file_name. [default: --src]"),
        click.option("--object-len", type=float, default=30.0, show_default=True,
                     help="--objects: largest own path, px."),
    )

    def spec_from(self, values: dict):
        if not values.get("objects_json"):
            return None
        from blurgen.physics import objects as _objects

        images = values.get("objects_images")
        return _objects.ObjectSpec(Path(values["objects_json"]), Path(images) if images else None,
                                   max_len=values["object_len"])

    def check(self, cfg) -> None:
        if cfg.kernel_bank is not None:
            raise SynthError("--objects draws the camera's trajectory afresh: it cannot be combined with --kernels")

    def arguments(self, cfg) -> dict:
        args = asdict(cfg.spec)
        args["annotations"] = str(Path(cfg.spec.annotations).resolve())
        args["images"] = str(Path(cfg.spec.images or cfg.src).resolve())
        return {"objects": args}

    def inputs(self, cfg) -> dict:
        return {"objects": shards.file_checksum(cfg.spec.annotations)}

    def check_inputs(self, cfg) -> None:
        from blurgen.physics import objects as _objects

        try:
            _objects.instances(cfg.spec, cfg.src)  # the whole file, before any work
        except _objects.ObjectsError as exc:
            raise SynthError(str(exc)) from None

    def sample(self, photo: Photo, crop: int, j: int, cfg, shared) -> tuple:
        return objects_pair(photo.pixels, photo.rel, photo.index, crop, cfg)

    def recorded(self, args: dict) -> bool:
        return bool(args.get("objects"))

    def describe(self, args: dict) -> str:
        from blurgen.modes.uniform import fresh_line

        ob = args["objects"]
        return (fresh_line(args.get("kernel_spec") or {}) + f"\nmoving objects (layered model) from {ob['annotations']}: "
                f"own paths up to {ob['max_len']:g} px, {ob['segments']} segments; kernel = the camera's "
                "(background's) PSF")


OBJECTS = Objects()


def objects_pair(photo: np.ndarray, source: str, image: int, crop: int, cfg):
    """A moving-object sample (:mod:`blurgen.physics.objects`): an instance of ``--objects`` pasted on ``photo``
    (the background), blurred by the layered model with the camera's fresh kernel and its own motion.

    Draws: the camera's and the object's walks from ``SeedSequence([seed, OBJECTS_TAG, image, crop, 1])``;
    then from ``default_rng([seed, OBJECTS_TAG, image, crop])``, in order, the object's own path length,
    the crop position, the instance, its place in the crop, the realism levels.  Returns (blurred, sharp)
    uint8, the camera's (k, k) PSF, and the meta fields.  Raises :class:`SkipImage` ("too-small", or
    "object-..." when the instance's photo or mask cannot be used).
    """
    from blurgen.physics import blur
    from blurgen.physics import objects as _objects

    spec, ks, realism = cfg.spec, cfg.kernel_spec, cfg.realism
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
        photo, factor = upscale_to(photo, need)
        h, w = photo.shape[:2]
    if h < need or w < need:
        raise too_small(w, h, f"a {cfg.crop} crop plus the kernel's {k - 1} px margin")
    y0, x0, y1, x1 = crop_box(rng, h, w, cfg.crop, cfg.full, before, after)
    inst, colours, alpha, scale = cut_out_instance(rng, cfg, min(y1 - y0, x1 - x0))
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


def cut_out_instance(rng: np.random.Generator, cfg, side: int) -> tuple:
    """(instance, colours (h, w, 3) uint8, alpha (h, w) float32, scale) of an instance of
    ``--objects`` drawn from ``rng`` (one draw), cut out of its photo with its mask and
    resized for a crop of ``side`` px.  SkipImage ("object-...") when its photo or mask
    cannot be used."""
    from blurgen.physics import objects as _objects

    spec = cfg.spec
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
    scale = _objects.object_scale(int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1, side, spec.max_side, cfg.downscale)
    colours, alpha = _objects.cut_out(other, mask, scale)
    return inst, colours, alpha, scale

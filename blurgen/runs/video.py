"""``blurgen average``: clips of sharp video -> shards of (blurred, sharp) pairs, as GoPro and REDS were made.

A camera's exposure integrates the light of the scene over time.  Nah et al.
(2017, the GoPro data set) imitate a long exposure by averaging N consecutive
frames of a 240 fps video in linear light, through an inverse camera response
(they assumed a gamma), and take the middle frame as the sharp image.  When
the motion between frames is large, the average is a few sharp copies side by
side (ghosting) instead of a smooth streak; REDS (Nah et al. 2019) first
raises the frame rate by interpolating frames, so that the copies are close
enough to merge.  Both are here:

* :func:`average_frames` — the pure core: N frames (uint8 RGB) -> the blurred
  image, in linear light through :func:`linear_table` / :func:`encode`, with
  ``interpolate`` flow-interpolated frames between neighbours
  (:func:`interpolate_frame`, OpenCV's DIS optical flow, Kroeger et al. 2016).
* :func:`find_clips` and :func:`read_clip_frames` — the inputs: video files
  (OpenCV's FFmpeg back end) or folders of numbered frames.
* :func:`average` — the run, planned, written, resumed and locked as
  ``blurgen synthesize`` is (the same shard format and manifest).

Determinism: window w of clip c draws its frame count and first frame, then
its crops, from ``numpy.random.default_rng([seed, c, w])``; the plan depends
on the sorted list of clips alone (shard s holds the samples of clips
s·m … (s+1)·m − 1).  docs/video.md describes the method and every parameter.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from blurgen import shards
from blurgen.modes.base import crop_box, too_small
from blurgen.physics import blur
from blurgen.physics.cameras import Camera
from blurgen.physics.realism import Realism
from blurgen.plumbing import files, stopping
from blurgen.plumbing.stopping import StopFlag
from blurgen.runs import shard_run
from blurgen.runs.shard_run import ShardTask, Summary, SynthError
from blurgen.sources import EXTENSIONS, MAX_PIXELS, VIDEO_EXTENSIONS, SkipImage, check_name, load_rgb, name_bytes

#: Recorded in each sample's ``blur_model``: the pair comes from averaged video
#: frames, so its ``kernel`` is a 1x1 placeholder, not the blur (docs/video.md).
BLUR_MODEL = "video"


# --- the camera response -------------------------------------------------------------


def parse_response(text: str) -> str:
    """``"srgb"`` or ``"gamma:G"`` (G > 0) in a canonical spelling; SynthError otherwise."""
    text = str(text).strip().lower()
    if text == "srgb":
        return "srgb"
    name, _, value = text.partition(":")
    try:
        gamma = float(value)
    except ValueError:
        gamma = float("nan")
    if name != "gamma" or not (math.isfinite(gamma) and 0 < gamma <= 10):
        raise SynthError(f"--response must be srgb or gamma:G with 0 < G <= 10 (e.g. gamma:2.2), got {text!r}")
    return f"gamma:{gamma:g}"


def _gamma(response: str) -> float | None:
    return None if response == "srgb" else float(response.split(":")[1])


def linear_table(response: str) -> np.ndarray:
    """The inverse camera response as a table: 8-bit code value -> linear light, (256,) float32 in [0, 1].

    ``srgb``: the IEC 61966-2-1 curve (``blur.LINEAR_LUT``); ``gamma:G``: (v / 255) ** G.
    """
    g = _gamma(response)
    if g is None:
        return blur.LINEAR_LUT
    return ((np.arange(256, dtype=np.float64) / 255.0) ** g).astype(np.float32)


def encode(linear: np.ndarray, response: str) -> np.ndarray:
    """Linear light (float, any shape) -> 8-bit code values through the camera response, uint8.

    Clipped to [0, 1] first; rounded to the nearest code (for ``srgb``
    exactly, by ``blur.encode_srgb8``).  ``encode(linear_table(r)[v], r) == v``
    for every code v (tests/test_video.py).
    """
    g = _gamma(response)
    if g is None:
        return blur.encode_srgb8(linear)
    x = np.clip(np.asarray(linear, np.float64), 0.0, 1.0)
    return np.rint(255.0 * x ** (1.0 / g)).astype(np.uint8)


# --- frame interpolation ------------------------------------------------------------------


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense optical flow from frame ``a`` to frame ``b`` (DIS, Kroeger et al. 2016).

    The fast preset: 15 ms a 640x480 pair against 78 ms for the medium one
    (one core of this project's machine), and as good here: on the 4 px/frame
    pan of tests/test_video.py both bring the average within 0.01 code of the
    true motion blur (a mean error of 5 codes without interpolation).

    a, b : (H, W, 3) uint8 RGB (the encoded frames: flow is estimated on what
        the camera recorded, whose contrast suits the matching better than
        linear light).
    Returns (H, W, 2) float32: (dx, dy) such that ``a[y, x]`` is seen at
    ``b[y + dy, x + dx]``.
    """
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (a, b)]
    return dis.calc(gray[0], gray[1], None)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: ``out[y, x] = image[y + flow_y, x + flow_x]`` (bilinear, edges replicated)."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def interpolate_frame(lin0: np.ndarray, lin1: np.ndarray, flow01: np.ndarray, flow10: np.ndarray,
                      t: float) -> np.ndarray:
    """The frame at time ``t`` in (0, 1) between two frames, in linear light.

    lin0, lin1 : (H, W, 3) float32 linear light of the frames at times 0 and 1.
    flow01, flow10 : (H, W, 2) float32 flows 0 -> 1 and 1 -> 0 (:func:`optical_flow`).

    The flows from time t back to each frame are approximated from the two
    flows as in Super SloMo (Jiang et al. 2018, eq. 4), which assumes the
    motion is locally smooth: F_t0 = -(1-t) t F_01 + t^2 F_10 and
    F_t1 = (1-t)^2 F_01 - t (1-t) F_10.  Both frames are warped to time t and
    blended with weights 1-t and t (no visibility maps: occluded pixels are a
    blend, which averaging makes part of the blur anyway).  A uniform pan of
    v pixels a frame gives exactly the frame panned by t·v.
    Returns (H, W, 3) float32.
    """
    t = float(t)
    f_t0 = (-(1 - t) * t) * flow01 + (t * t) * flow10
    f_t1 = ((1 - t) ** 2) * flow01 - (t * (1 - t)) * flow10
    return ((1 - t) * _warp(lin0, f_t0) + t * _warp(lin1, f_t1)).astype(np.float32)


# --- averaging (the pure core) -------------------------------------------------------------


def average_frames(frames: list[np.ndarray], response: str = "srgb", interpolate: int = 0,
                   box: tuple[int, int, int, int] | None = None, linear=None, encoded: bool = True,
                   stop: StopFlag | None = None) -> np.ndarray:
    """The synthetic long exposure of consecutive frames.

    frames : N (H, W, 3) uint8 RGB frames, consecutive, N >= 1.
    response : the camera response the frames were encoded with (``srgb`` or
        ``gamma:G``): they are averaged in linear light through its inverse
        and re-encoded with it.
    interpolate : K frames interpolated between each pair of neighbours
        (:func:`interpolate_frame`, at times 1/(K+1) … K/(K+1)) before
        averaging, as REDS does: N + (N-1)·K frames are averaged, each with the
        same weight.
    box : (y0, x0, y1, x1) — the window of the result to compute (the flow is
        estimated on the whole frames all the same; without interpolation the
        average is per pixel, so only the window is read).

    linear : uint8 frame -> float32 linear light, instead of the response's
        inverse (``--camera``: the camera's linear light and saturation).
    encoded : False returns the float32 linear average itself, not re-encoded.
    stop : checked before each frame averaged (interpolated ones included): a window
        of a large ``interpolate`` is a long piece of work, and a stop must not wait
        for its end (:class:`~blurgen.plumbing.stopping.Interrupted`).

    Returns (h, w, 3) uint8 RGB: the window of the blurred image.
    """
    if not frames:
        raise ValueError("average_frames needs at least one frame")
    y0, x0, y1, x1 = box if box is not None else (0, 0, *frames[0].shape[:2])
    lut = linear_table(response)
    to_linear = (lambda frame: lut[frame]) if linear is None else linear  # noqa: E731
    finish = (lambda average: encode(average, response)) if encoded else (lambda average: average)  # noqa: E731
    if interpolate <= 0:
        total = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
        for frame in frames:
            stopping.check(stop)
            total += to_linear(frame[y0:y1, x0:x1])
        return finish(total * np.float32(1 / len(frames)))
    total = np.zeros((*frames[0].shape[:2], 3), np.float32)
    lin = [to_linear(frames[0])]
    total += lin[0]
    for a, b in zip(frames, frames[1:]):
        lin.append(to_linear(b))
        flow01, flow10 = optical_flow(a, b), optical_flow(b, a)
        for k in range(1, interpolate + 1):
            stopping.check(stop)
            total += interpolate_frame(lin[0], lin[1], flow01, flow10, k / (interpolate + 1))
        total += lin[1]
        lin.pop(0)
    count = len(frames) + (len(frames) - 1) * interpolate
    return finish(total[y0:y1, x0:x1] * np.float32(1 / count))


def odd_counts(frames: tuple[int, int]) -> np.ndarray:
    """The frame counts N that ``--frames LO-HI`` may draw: the odd values in [LO, HI].

    Odd only: the sharp image is the middle frame, and an even N has none —
    its exposure is centred between two frames, so either neighbour would sit
    half a frame's motion off the blur (GoPro's counts, 7 to 13, are odd
    throughout its release: each pair's blurred image has a middle frame).
    """
    first, number = odd_span(frames)
    return np.arange(first, first + 2 * number, 2)


def odd_span(frames: tuple[int, int]) -> tuple[int, int]:
    """(the smallest odd count in [LO, HI], how many there are): the counts of
    :func:`odd_counts` without listing them (``--frames 1-2000000001`` would take 8 GB)."""
    lo, hi = frames
    first = lo + (1 - lo % 2)
    return first, max(0, (hi - first) // 2 + 1)


# --- inputs: clips ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One input clip.

    path : POSIX path relative to ``--src`` of a video file, or of a folder of
        frames (``"."`` for ``--src`` itself).
    frames : the frame files of a folder, in natural order (``f2`` before
        ``f10``), or None for a video file.
    """

    path: str
    frames: tuple[str, ...] | None = None


def natural_key(name: str) -> list:
    """Sort key that orders numbers by value: frame2.png < frame10.png."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def find_clips(src: str | os.PathLike) -> list[Clip]:
    """Every clip under ``src``, recursively, sorted by relative path.

    A video file (``VIDEO_EXTENSIONS``) is a clip; a folder that holds image
    files (``blurgen.sources.EXTENSIONS``) directly is a clip of those frames in natural
    order (GoPro's and REDS's layout: one folder per sequence).  Hidden files
    and folders are ignored; matching is case-insensitive.
    """
    src = Path(src)
    clips = []
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(root).relative_to(src)
        visible = [n for n in names if not n.startswith(".")]
        frames = sorted((n for n in visible if n.lower().endswith(EXTENSIONS)), key=natural_key)
        if frames:
            clips.append(Clip(rel.as_posix(), tuple(frames)))
        clips += [Clip((rel / n).as_posix()) for n in visible if n.lower().endswith(VIDEO_EXTENSIONS)]
    return sorted(clips, key=lambda c: c.path)


def clips_digest(src: Path, clips: list[Clip]) -> str:
    """``"sha256:<hex>"`` of the clips' relative paths and sizes (every frame's, for a frame folder)."""
    digest = hashlib.sha256()
    for clip in clips:
        names = [clip.path] if clip.frames is None else [f"{clip.path}/{f}" for f in clip.frames]
        for rel in names:
            try:
                size = (src / rel).stat().st_size
            except OSError:
                size = -1
            digest.update(name_bytes(f"{rel}\t{size}\n"))  # a name that is not UTF-8 too
    return "sha256:" + digest.hexdigest()


def _open_video(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SkipImage("unreadable", "FFmpeg (OpenCV) cannot open it as a video")
    return cap


def clip_length(src: Path, clip: Clip, max_pixels: int = MAX_PIXELS) -> int:
    """Frames in a clip.  A video's are counted by demuxing it (``grab``), not
    taken from its header, whose count is an estimate in many containers."""
    if clip.frames is not None:
        return len(clip.frames)
    path = src / clip.path
    if path.stat().st_size == 0:
        raise SkipImage("empty", "zero bytes")
    cap = _open_video(path)
    try:
        import cv2

        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if w * h > max_pixels:
            raise SkipImage("too-large", f"{w:.0f}x{h:.0f} pixels a frame exceeds {max_pixels}")
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise SkipImage("unreadable", "no frame could be decoded")
    return n


def read_clip_frames(src: Path, clip: Clip, wanted: set[int], max_pixels: int = MAX_PIXELS) -> Iterator[tuple[int, np.ndarray]]:
    """(index, (H, W, 3) uint8 RGB frame) for each index of ``wanted``, in increasing order.

    A video is decoded from its start (the only frame-exact way: seeking lands
    on key frames in many codecs); a frame folder reads just those files.
    Raises SkipImage if a frame cannot be read, or if frames differ in size.
    """
    import cv2

    shape = None

    def checked(i, frame):
        nonlocal shape
        shape = shape or frame.shape
        if frame.shape != shape:
            raise SkipImage("mixed-sizes", f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, "
                                           f"the clip's first {shape[1]}x{shape[0]}")
        return frame

    if clip.frames is not None:
        for i in sorted(wanted):
            try:
                frame = load_rgb(src / clip.path / clip.frames[i], max_pixels)
            except SkipImage as exc:
                raise SkipImage(exc.reason, f"frame {clip.frames[i]}: {exc.detail}") from None
            yield i, checked(i, frame)
        return
    cap = _open_video(src / clip.path)
    try:
        last = max(wanted)
        for i in range(last + 1):
            if i not in wanted:
                ok = cap.grab()
            else:
                ok, frame = cap.read()
            if not ok:
                raise SkipImage("corrupt", f"decoding stopped at frame {i}, before frame {last}")
            if i in wanted:
                yield i, checked(i, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()


# --- the configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class AverageConfig:
    """What ``blurgen average`` makes.  Everything here decides the output; see ``arguments``.

    src : folder of clips (video files, or folders of numbered frames), searched recursively.
    frames : (lo, hi) — each window averages N consecutive frames, N drawn
        uniformly among the odd values in [lo, hi] (:func:`odd_counts`).
    interpolate : frames interpolated between neighbours before averaging (0: none).
    response : the camera response, ``srgb`` or ``gamma:G``.
    windows_per_clip : windows (blurred images) taken from each clip.
    crop, crops_per_window : side of the square crops and how many each window gives.
    full : keep whole frames instead of crops.
    shard_size, seed, part, max_pixels : as for ``synthesize``.
    camera : a built-in camera's name (``blurgen.physics.cameras.CAMERAS``) or a camera
        profile file's path (read here, once: the field then holds its Camera): the
        frames averaged in its linear light with its saturation, then its raw noise and
        development; both images in its tone curve (docs/camera.md).  None: plain averaging.
    """

    src: Path
    frames: tuple[int, int] = (7, 13)
    interpolate: int = 0
    response: str = "srgb"
    windows_per_clip: int = 10
    crop: int = 256
    crops_per_window: int = 1
    full: bool = False
    shard_size: int = 1000
    seed: int = 0
    part: tuple[int, int] = (0, 1)
    max_pixels: int = MAX_PIXELS
    camera: str | Camera | None = None

    def __post_init__(self):
        if self.camera is not None:  # RealismError naming the cameras there are, or the profile's fault
            object.__setattr__(self, "camera", Realism(camera=self.camera).camera)
            if parse_response(self.response) != "srgb":
                raise SynthError("--camera reads the frames as sRGB: leave out --response")
        lo, hi = self.frames
        if not 1 <= lo <= hi:
            raise SynthError(f"--frames must be LO-HI with 1 <= LO <= HI, got {lo}-{hi}")
        if not odd_span(self.frames)[1]:
            raise SynthError(f"--frames {lo}-{hi} holds no odd count (the sharp frame is the middle one)")
        if self.interpolate < 0:
            raise SynthError(f"--interpolate must be >= 0, got {self.interpolate}")
        object.__setattr__(self, "response", parse_response(self.response))
        if self.windows_per_clip < 1:
            raise SynthError(f"--windows-per-clip must be >= 1, got {self.windows_per_clip}")
        if self.crop < 4 and not self.full:
            raise SynthError(f"--crop must be >= 4, got {self.crop}")
        if self.crops_per_window < 1:
            raise SynthError(f"--crops-per-window must be >= 1, got {self.crops_per_window}")
        shard_run.check_run_settings(self.shard_size, self.seed, self.part)

    @property
    def samples_per_window(self) -> int:
        return 1 if self.full else self.crops_per_window

    @property
    def samples_per_clip(self) -> int:
        return self.windows_per_clip * self.samples_per_window

    @property
    def clips_per_shard(self) -> int:
        return max(1, self.shard_size // self.samples_per_clip)

    def arguments(self) -> dict:
        """The settings that decide the output, as JSON values (recorded in the manifest)."""
        args = {"command": "average", **asdict(self)}
        args["src"] = str(Path(self.src).resolve())
        if self.full:
            args["crop"] = args["crops_per_window"] = None
        if self.camera is None:  # recorded only when on: earlier runs resume as they were
            del args["camera"]
        else:  # a built-in's name, a profile's content
            args["camera"] = Realism(camera=self.camera).arguments()["camera"]
        return json.loads(json.dumps(args))


# --- one clip -----------------------------------------------------------------------------------


def draw_windows(clip_index: int, length: int, cfg: AverageConfig) -> list[tuple[np.random.Generator, int, int]]:
    """(generator, N, first frame) of each window of a clip of ``length`` frames.

    Window w lies in the w-th of ``windows_per_clip`` equal stretches of the
    clip, at a uniform position inside it, so windows do not overlap when the
    clip holds ``windows_per_clip`` × N frames; in a shorter clip a window that
    does not fit its stretch starts where it does (windows then overlap).
    The generator ``default_rng([seed, clip_index, w])`` goes on to draw the
    window's crops.
    """
    first_count, number = odd_span(cfg.frames)
    out = []
    for w in range(cfg.windows_per_clip):
        rng = np.random.default_rng([cfg.seed, clip_index, w])
        n = first_count + 2 * int(rng.integers(0, number))  # odd_counts(cfg.frames)[that draw]
        s0, s1 = w * length // cfg.windows_per_clip, (w + 1) * length // cfg.windows_per_clip
        room = s1 - s0 - n
        offset = int(rng.integers(0, max(room, 0) + 1))
        first = s0 + offset if room >= 0 else min(s0, length - n)
        out.append((rng, n, first))
    return out


def clip_samples(clip_index: int, clip: Clip, cfg: AverageConfig, stop: StopFlag | None = None) -> list[tuple]:
    """Every sample of one clip: [(blurred, sharp, meta)], (h, w, 3) uint8 RGB images.

    All or nothing: a clip that cannot be read, or is too short (fewer frames
    than the largest N of ``--frames``) or too small for the crop, raises
    SkipImage before any of its samples is written.
    """
    src = Path(cfg.src)
    check_name(clip.path)  # its samples store it
    length = clip_length(src, clip, cfg.max_pixels)
    first_count, number = odd_span(cfg.frames)
    longest = first_count + 2 * (number - 1)
    if length < longest:
        raise SkipImage("too-short", f"{length} frames, fewer than the {longest} that --frames may draw")
    windows = draw_windows(clip_index, length, cfg)
    wanted = {f for _, n, first in windows for f in range(first, first + n)}
    frames: dict[int, np.ndarray] = {}
    pending = sorted(range(len(windows)), key=lambda w: windows[w][2] + windows[w][1])  # by last frame
    samples = []
    for index, frame in read_clip_frames(src, clip, wanted, cfg.max_pixels):
        frames[index] = frame
        while pending and windows[pending[0]][2] + windows[pending[0]][1] - 1 <= index:
            w = pending.pop(0)
            stopping.check(stop)
            samples += _window_samples(clip, w, windows[w], frames, cfg, clip_index, stop)
            # Frames no window still needs go: a clip holds at most a few windows' frames.
            keep = min((windows[v][2] for v in pending), default=index + 1)
            for f in [f for f in frames if f < keep]:
                del frames[f]
    return sorted(samples, key=lambda s: s[2]["window"])


def _window_samples(clip: Clip, w: int, window: tuple, frames: dict, cfg: AverageConfig,
                    clip_index: int = 0, stop: StopFlag | None = None) -> list[tuple]:
    rng, n, first = window
    stack = [frames[f] for f in range(first, first + n)]
    h, wd = stack[0].shape[:2]
    if not cfg.full and (h < cfg.crop or wd < cfg.crop):
        raise too_small(wd, h, f"a {cfg.crop} crop", things="frames")
    middle = first + n // 2
    # One camera setting per window, from a stream of its own: the windows and crops
    # are those of a run without --camera.
    realism = Realism(camera=cfg.camera)
    cam = realism.draw_camera(realism.camera_rng([cfg.seed, clip_index, w]))
    linear = None if cam is None else lambda frame: realism.working(frame, {}, cam)
    whole = None
    if cfg.full or cfg.interpolate:
        whole = average_frames(stack, cfg.response, cfg.interpolate, linear=linear, encoded=cam is None, stop=stop)
    out = []
    for _c in range(cfg.samples_per_window):
        y0, x0, y1, x1 = crop_box(rng, h, wd, cfg.crop, cfg.full)
        # Without interpolation the average is per pixel: the crop alone is averaged.
        blurred = (whole[y0:y1, x0:x1] if whole is not None else
                   average_frames(stack, cfg.response, 0, (y0, x0, y1, x1), linear=linear, encoded=cam is None,
                                  stop=stop))
        sharp = frames[middle][y0:y1, x0:x1]
        meta = {"source": clip.path, "crop_box": np.array([y0, x0, y1, x1], np.int32), "blur_model": BLUR_MODEL,
                "window": w, "first_frame": first, "frames": n, "sharp_frame": middle,
                "interpolate": cfg.interpolate, "response": cfg.response}
        if cam is not None:  # the camera's raw noise on the long exposure, both images in its tone curve
            blurred, sharp = realism.finish(blurred, cam.rng, {}, cam), realism.sharp(sharp, cam)
            meta.update(cam.draw.meta())
        out.append((np.ascontiguousarray(blurred), np.ascontiguousarray(sharp), meta))
    return out


# Meta of an empty shard (every sample of it skipped): the fields' types.
_EMPTY_FIELDS = {"source": np.zeros(0, dtype=object), "crop_box": np.zeros((0, 4), np.int32),
                 "blur_model": np.zeros(0, dtype=object), "window": np.zeros(0, np.int64),
                 "first_frame": np.zeros(0, np.int64), "frames": np.zeros(0, np.int64),
                 "sharp_frame": np.zeros(0, np.int64), "interpolate": np.zeros(0, np.int64),
                 "response": np.zeros(0, dtype=object)}
#: The ``kernel`` stored with every video pair: a 1x1 PSF of 1 (a valid PSF,
#: so readers and ``verify`` take it), a placeholder — see ``blur_model``.
PLACEHOLDER_KERNEL = np.ones((1, 1), np.float32)


def build_shard(task: ShardTask, clips: list[Clip], cfg: AverageConfig, out: Path,
                progress: Callable[[int], None] | None = None, stop: StopFlag | None = None) -> dict:
    """Make one shard from clips ``task.first_image … task.stop_image - 1`` and write it atomically.

    Returns its manifest entry plus ``skipped``: [(clip, reason, detail)].
    ``progress(made, dropped)`` after each clip (pairs made, pairs it will not give); ``stop`` checked
    before each clip and window (then the temporary file goes and
    :class:`~blurgen.plumbing.stopping.Interrupted` is raised).
    """
    skipped = []
    attrs = {"shard": task.index, "arguments": cfg.arguments(), "images": [task.first_image, task.stop_image]}
    path = out / task.name
    count = (task.stop_image - task.first_image) * cfg.samples_per_clip
    with shards.ShardWriter(path, crop=None if cfg.full else (cfg.crop, cfg.crop), attrs=attrs, kernel_size=1,
                            fields=_EMPTY_FIELDS, expected=count) as writer:
        for c in range(task.first_image, task.stop_image):
            stopping.check(stop)
            clip = clips[c]
            try:
                samples = clip_samples(c, clip, cfg, stop)
            except SkipImage as exc:
                skipped.append((clip.path, exc.reason, exc.detail))
                samples = []
            except OSError as exc:  # the clip vanished or cannot be opened: that clip, not the run
                if files.no_room(exc):
                    raise
                skipped.append((clip.path, "unreadable", exc.strerror or str(exc)))
                samples = []
            for blurred, sharp, meta in samples:
                writer.add(blurred, sharp, PLACEHOLDER_KERNEL, meta)
            if progress is not None:  # pairs made, and those a skipped clip will never give
                progress(len(samples), cfg.samples_per_clip - len(samples))
        if writer.count == 0:  # every clip skipped: no file, as synthesize (an empty shard verified OK)
            writer.discard()
    if writer.count == 0:
        return {"name": task.name, "count": 0, "bytes": 0, "skipped": skipped}
    return {"name": task.name, "count": writer.count, "checksum": writer.checksum, "bytes": path.stat().st_size,
            "skipped": skipped}




# --- the whole run -------------------------------------------------------------------------------


def average(cfg: AverageConfig, out: str | os.PathLike, workers: int = 1, overwrite: bool = False,
            progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None,
            repair: bool = False, stop: StopFlag | None = None, settings: str | None = None) -> Summary:
    """Build (or finish) the shards of ``cfg`` in ``out``; ``Summary.images`` counts clips.

    The shard-run engine (:func:`blurgen.runs.shard_run.run`: one run per part, resume,
    ``repair``, ``--overwrite``, stop flags, workers: any number gives the same bytes;
    the ``settings`` file)
    with each clip's windows as its samples; SynthError for a user error, and for
    clips under ``--src`` that changed since the run started.
    """
    src = Path(cfg.src)
    if not src.is_dir():
        raise SynthError(f"{src}: no such folder")
    clips = find_clips(src)
    if not clips:
        raise SynthError(f"{src}: no videos ({', '.join(e.lstrip('.') for e in VIDEO_EXTENSIONS[:6])}, …) "
                         f"and no folders of frames ({', '.join(e.lstrip('.') for e in EXTENSIONS)})")

    def settle(out: Path, manifest: dict, found: list[Clip]) -> tuple[list[Clip], list[ShardTask], None]:
        return found, job.plan(len(found)), _check_clips(cfg, out, manifest, found)

    job = shard_run.ShardJob(arguments=cfg.arguments(), part=cfg.part, samples_per_item=cfg.samples_per_clip,
                             items_per_shard=cfg.clips_per_shard, build=build_shard, config=cfg, settle=settle)
    return shard_run.run(job, out, clips, workers=workers, overwrite=overwrite, repair=repair, progress=progress,
                         on_start=on_start, stop=stop, settings=settings)


def _check_clips(cfg: AverageConfig, out: Path, manifest: dict, clips: list[Clip]) -> None:
    """The clips under ``--src`` are the run's: recorded by a new run, checked by a resume."""
    inputs = {"sources": clips_digest(Path(cfg.src), clips), "kernel_bank": None}
    if not manifest["shards"]:  # nothing built yet: the clips under --src now are the run's (issue 22.22)
        manifest["inputs"] = inputs
    if manifest["inputs"] != inputs:
        raise SynthError(f"the clips under --src changed since {out} was started; pass --overwrite to start "
                         "afresh, or choose another --out")


# --- descriptions (blurgen inspect) ----------------------------------------------------------------


def describe_arguments(args: dict) -> str:
    """How an ``average`` shard folder was made, in a few lines (from its manifest's arguments)."""
    if args.get("full"):
        samples = "whole frames"
    else:
        samples = f"{args.get('crops_per_window')} random {args.get('crop')}x{args.get('crop')} crop(s) per window"
    lo, hi = args.get("frames") or (0, 0)
    interp = args.get("interpolate") or 0
    how = f"{interp} interpolated frame(s) between neighbours (DIS flow)" if interp else "no interpolation"
    return (f"made from the clips in {args.get('src')}: video frames averaged in linear light "
            f"(blurgen average)\n{args.get('windows_per_clip')} windows per clip of N odd in {lo}-{hi} frames, "
            f"{how}, response {args.get('response')}; {samples}\n"
            f"seed {args.get('seed')}, shards of {args.get('shard_size')}; the kernel field is a placeholder")


def describe_sample(sample: dict) -> str:
    """One line of a video pair's parameters (a sample of ``ShardReader.read_sample``)."""
    n, first, k = int(sample["frames"]), int(sample["first_frame"]), int(sample["interpolate"])
    y0, x0, y1, x1 = (int(v) for v in sample["crop_box"])
    return (f"frames {first}-{first + n - 1} (N {n}{f', +{k} interpolated between neighbours' if k else ''}), "
            f"sharp = frame {int(sample['sharp_frame'])}, response {sample['response']}, "
            f"box y {y0}-{y1} x {x0}-{x1}")

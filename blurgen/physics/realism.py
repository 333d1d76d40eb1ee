"""The realism spec: what happens to a scene around its blur, in one place.

Every blur (a uniform kernel, the warps of non-uniform shake, the layers of
moving objects, frames of a video) works on a scene in a *working space* and
hands the blurred result back to be *finished*.  The spec says what those two
steps do, and is the same wherever realism settings appear: ``synthesize``,
``trainer fit --online`` and ``trainer``'s data config.

* ``linear``: blur in linear light (undo the sRGB curve, blur, redo it);
* ``saturate``: boost clipped highlights by a drawn gain before the blur, clip
  after it (in linear light; implies ``linear``);
* ``noise``: Poisson-Gaussian sensor noise of a drawn level, in linear light;
* ``jpeg_quality``: re-compress the blurred image at a quality drawn in LO-HI;
* ``camera``: RSBlur's camera pipeline (docs/camera.md) with a camera's calibration
  (a built-in camera's name, or a camera profile file's) instead of the three above:
  its linear light and saturation before the blur, its raw noise and development
  after, its tone curve on both images; ``jpeg_quality`` still applies after it.

Draws.  :meth:`Realism.draw` draws the effect levels from a sample's generator
in a fixed order whatever is switched on (so turning one option on leaves the
other draws as they were).  A camera's settings and noise come from a
generator of their own (:meth:`Realism.draw_camera`): the caller says which
(``synthesize``: ``default_rng([*stream, CAMERA_STREAM])``; online blur: the
draw's own generator, after the levels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from blurgen.errors import BlurgenError
from blurgen.physics import camera_profile, cameras

# blur and camera (OpenCV, SciPy) are imported where the spec is applied, not here: both
# command lines read OPTIONS (and the camera names) as they start.

# Ranges of the realism options, drawn per sample (log-uniform for noise:
# from a clean daylight shot to a dim indoor one).
SATURATION_GAIN = (1.5, 4.0)
NOISE_SHOT = (1e-4, 1e-2)  # variance per unit of signal, signal in [0, 1]
NOISE_READ = (1e-3, 2e-2)  # standard deviation
#: Appended to a sample's stream to seed the generator of its camera settings and noise.
CAMERA_STREAM = 0x63616D  # "cam"

#: The options of the spec as both command lines spell them (``trainer`` with the prefix
#: ``online-``): field -> help text.  One name, one default (off), one text everywhere.
OPTIONS = {
    "linear": "Blur in linear light (undo the sRGB curve, blur, redo it).",
    "saturate": "Boost clipped highlights, blur, clip, in linear light (so it implies linear light).",
    "noise": "Add Poisson-Gaussian sensor noise of a random level.",
    "jpeg_quality": "Re-compress the blurred image at a quality drawn in LO-HI.",
    "camera": ("RSBlur's camera pipeline (saturation, raw noise, ISP; docs/camera.md) with camera NAME's "
               f"calibration: {' or '.join(cameras.CAMERAS)} (the default {cameras.DEFAULT_CAMERA}), or a "
               "camera profile FILE.json's (blurgen camera-profile)."),
}


class RealismError(BlurgenError):
    """A realism setting no run can use; ``option`` names it (``jpeg_quality``), the message
    says what is wrong without the option's command-line spelling (see :meth:`spelled`)."""

    def __init__(self, option: str, message: str):
        self.option, self.message = option, message
        super().__init__(self.spelled())

    def spelled(self, prefix: str = "") -> str:
        """The one-line message with the option as a command line spells it (``--online-noise``)."""
        return self.message.format(option=f"--{prefix}{self.option.replace('_', '-')}",
                                   prefix=f"--{prefix}")


def parse_range(text, option: str = "range", example: str = "60-95", kind: type = int) -> tuple | None:
    """``"60-95"`` (or ``"90"``, or a pair, or None) -> (60, 95) / (90, 90) / None: the one
    LO-HI parser of both command lines (``--jpeg-quality``, ``--online-jpeg-quality``,
    ``--frames``, ``--rolling-shutter``), its ends converted by ``kind`` (int, or float for
    ``0.1-0.5``).  RealismError naming ``option`` (and ``example``) on bad text."""
    if text is None:
        return None
    try:
        lo, hi = (text.partition("-")[0], text.partition("-")[2] or text) if isinstance(text, str) else text
        return kind(lo), kind(hi)
    except (TypeError, ValueError):
        raise RealismError(option, f"{{option}} must look like LO-HI (e.g. {example}), got {text!r}") from None


class CameraState(NamedTuple):
    """A sample's camera: the calibration, its drawn settings, the generator of its noise."""

    camera: cameras.Camera
    draw: object  # blurgen.physics.camera.CameraDraw
    rng: np.random.Generator


@dataclass(frozen=True)
class Realism:
    """What happens to a scene around its blur (module doc).  Frozen, picklable; all off:
    DeblurGAN's plain blur of 8-bit code values."""

    linear: bool = False
    saturate: bool = False
    noise: bool = False
    jpeg_quality: tuple[int, int] | None = None
    #: A built-in camera's name, or (given as a profile file's path or a manifest's record
    #: of one) the profile's Camera: read once, here, and carried to the workers.
    camera: str | cameras.Camera | None = None

    def __post_init__(self):
        if self.jpeg_quality is not None:
            lo, hi = parse_range(self.jpeg_quality, "jpeg_quality")
            object.__setattr__(self, "jpeg_quality", (lo, hi))
            if not 1 <= lo <= hi <= 100:
                raise RealismError("jpeg_quality", f"{{option}} must be LO-HI with 1 <= LO <= HI <= 100, got {lo}-{hi}")
        if self.camera is not None:
            try:
                object.__setattr__(self, "camera", camera_profile.resolve(self.camera))
            except camera_profile.CameraProfileError as exc:  # the message may hold braces: escaped
                raise RealismError("camera", "{option}: " + str(exc).replace("{", "{{").replace("}", "}}")) from None
            clash = [name for name in ("linear", "saturate", "noise") if getattr(self, name)]
            if clash:
                raise RealismError("camera", "{option} models linear light, saturation and noise itself: leave out "
                                   + " ".join(f"{{prefix}}{name}" for name in clash))

    @property
    def in_linear_light(self) -> bool:
        """Whether the blur works in linear light (``linear``, ``saturate`` or ``camera``)."""
        return self.linear or self.saturate or self.camera is not None

    def arguments(self) -> dict:
        """The settings as a manifest records them (``camera`` only when set: the manifests of
        runs without it stay as they were; a profile by its whole content, so that a run
        resumed with an edited profile is refused)."""
        args = {"linear": self.linear, "saturate": self.saturate, "noise": self.noise,
                "jpeg_quality": None if self.jpeg_quality is None else list(self.jpeg_quality)}
        if self.camera is not None:
            args["camera"] = camera_profile.recorded(self.camera)
        return args

    def labels(self) -> list[str]:
        """What is switched on, in words (``blurgen inspect``, ``trainer fit``'s header)."""
        out = [label for label, on in (("linear light", self.linear), ("saturation", self.saturate),
                                       ("noise", self.noise)) if on]
        if self.camera is not None:
            name = self.camera if isinstance(self.camera, str) else f"profile {self.camera.name!r}"
            out.append(f"camera {name} (RSBlur pipeline, docs/camera.md)")
        if self.jpeg_quality:
            out.append("JPEG {}-{}".format(*self.jpeg_quality))
        return out

    @classmethod
    def from_arguments(cls, args: dict) -> Realism:
        """The spec a manifest's arguments record (:meth:`arguments`; absent keys: off)."""
        quality = args.get("jpeg_quality")
        return cls(linear=bool(args.get("linear")), saturate=bool(args.get("saturate")), noise=bool(args.get("noise")),
                   jpeg_quality=None if quality is None else tuple(quality), camera=args.get("camera"))

    # --- the draws ------------------------------------------------------------------------------

    def draw(self, rng: np.random.Generator) -> dict:
        """The sample's effect levels (recorded in its meta fields): ``saturation_gain``,
        ``noise_shot``, ``noise_read`` (0 where the option is off) and ``jpeg_quality``
        (0 without JPEG).  Four draws from ``rng``, whatever is switched on."""
        gain = rng.uniform(*SATURATION_GAIN)
        shot = math.exp(rng.uniform(*np.log(NOISE_SHOT)))
        read = math.exp(rng.uniform(*np.log(NOISE_READ)))
        lo, hi = self.jpeg_quality or (0, 0)
        quality = int(rng.integers(lo, hi + 1))
        return {
            "saturation_gain": gain if self.saturate else 0.0,
            "noise_shot": shot if self.noise else 0.0,
            "noise_read": read if self.noise else 0.0,
            "jpeg_quality": quality,
        }

    def draw_camera(self, rng: np.random.Generator) -> CameraState | None:
        """With ``camera``: its settings drawn from ``rng``, which then draws its noise; else None."""
        if self.camera is None:
            return None
        from blurgen.physics import camera

        cam = camera_profile.camera_of(self.camera)
        return CameraState(cam, camera.draw_parameters(cam, rng), rng)

    @staticmethod
    def camera_rng(stream: list[int]) -> np.random.Generator:
        """The generator of the camera settings and noise of the sample of ``stream`` (its own:
        the sample's other draws are the same with and without the camera)."""
        return np.random.default_rng([*stream, CAMERA_STREAM])

    # --- around the blur ------------------------------------------------------------------------

    def working(self, region: np.ndarray, effects: dict, cam: CameraState | None = None,
                boost: bool = True) -> np.ndarray:
        """uint8 sRGB pixels (H, W, 3) -> float32 in the space the blur works in: linear light
        with ``linear``/``saturate`` (highlights boosted with ``saturate`` and ``boost``),
        else code values / 255; with a camera, its linear light and saturation.  ``boost``:
        False for what a sharp image is made of."""
        from blurgen.physics import blur, camera

        if cam is not None:
            return camera.working(region, cam.draw, boost)
        if self.linear or self.saturate:
            image = blur.LINEAR_LUT[region]
        else:
            image = region.astype(np.float32) * np.float32(1 / 255)
        if self.saturate and boost:
            image = blur.boost_highlights(image, effects["saturation_gain"])
        return image

    def finish(self, blurred: np.ndarray, rng: np.random.Generator, effects: dict,
               cam: CameraState | None = None) -> np.ndarray:
        """The steps after the blur: float32 (H, W, 3) in the working space -> uint8 sRGB.
        Clip (``saturate``), sensor noise in linear light (from ``rng``), 8-bit sRGB, JPEG;
        with a camera, its raw noise and development instead, then JPEG."""
        from blurgen.physics import blur, camera

        if cam is not None:
            out = camera.develop(blurred, cam.camera, cam.draw, cam.rng)
        else:
            linear = self.linear or self.saturate
            if self.saturate:
                blurred = blur.saturate(blurred)
            if self.noise:
                # Noise arises on the sensor, in linear light, whatever space the blur used.
                raw = blurred if linear else blur.srgb_to_linear(np.clip(blurred, 0.0, 1.0))
                blurred = blur.add_sensor_noise(raw, effects["noise_shot"], effects["noise_read"], rng)
            out = blur.encode_srgb8(blurred) if linear or self.noise else blur.to_uint8(blurred)
        if self.jpeg_quality is not None:
            out = blur.jpeg_roundtrip(out, effects["jpeg_quality"])
        return out

    def sharp(self, sharp: np.ndarray, cam: CameraState | None = None) -> np.ndarray:
        """The sharp image of a pair from its uint8 sRGB pixels: as it is, or in the camera's tone curve."""
        from blurgen.physics import camera

        return sharp if cam is None else camera.render_sharp(sharp, cam.camera)

    def encode(self, image: np.ndarray, cam: CameraState | None = None) -> np.ndarray:
        """A noise-free image in the working space (a sharp composite) -> uint8, as :meth:`sharp` renders."""
        from blurgen.physics import blur, camera

        if cam is not None:
            return camera.tone_map(image, cam.camera)
        return blur.encode_srgb8(image) if self.linear or self.saturate else blur.to_uint8(image)

    def blur(self, region: np.ndarray, psf: np.ndarray, rng: np.random.Generator, effects: dict,
             cam: CameraState | None = None) -> np.ndarray:
        """The blurred image of one window through one uniform PSF.

        region : (h + k - 1, w + k - 1, 3) uint8 sRGB, the output window plus the PSF's
            margins (``blur.margins``); psf : (k, k) float32, centred on (k // 2, k // 2).
        Returns (h, w, 3) uint8 sRGB (the camera's tone curve with one).
        """
        from blurgen.physics import blur

        region, psf = blur.trim_to_support(region, psf)  # convert only the pixels the blur reads
        return self.finish(blur.convolve_valid(self.working(region, effects, cam), psf), rng, effects, cam)

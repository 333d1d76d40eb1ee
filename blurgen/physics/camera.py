"""RSBlur's camera pipeline (Rim et al., ECCV 2022): blur as a camera records it.

A sharp sRGB photo becomes a blurred one the way the RSBlur authors
synthesize training pairs (their repository, rimchang/RSBlur:
``SRN-Deblur-RSBlur/ISP/ISP_implement_tf_malvar.py`` ``poisson_gamma``,
``Uformer-RSBlur/dataset/dataset_RealisticDeblur.py``), in this order:

1. sRGB -> linear light (IEC 61966-2-1);
2. saturation: the channels at the clip level (code 255) are raised by a
   random ``alpha`` in [0.25, 1.75] (to ``1 + alpha``), so clipped highlights
   regain some of the light the sensor lost;
3. the blur, in linear light, then the clip to [0, 1] (the sensor saturates);
4. the inverse ISP: linear sRGB -> XYZ (D65) -> camera RGB (the camera's
   colour matrix), clipped to [0, 1]; a Bayer mosaic (one of the four
   patterns at random); inverse white balance (red and blue divided by random
   gains);
5. Poisson-Gaussian noise on the raw values: ``shot * Poisson(x / shot) +
   N(0, read**2)``, levels drawn in [0.5, 1.5] x the camera's calibration;
6. the forward ISP: white balance, a demosaic (Malvar, He & Cutler 2004, as
   RSBlur), clip, camera RGB -> XYZ -> linear sRGB, clip;
7. the channels saturated after step 3 take their noise-free value (1.0);
8. the camera's tone curve (its response function) -> display values, 8 bit.

The sharp image goes through steps 1 and 8 only, so that a pair without blur
and noise is the same image twice (up to the demosaic's error on edges).

Images are (H, W, 3) RGB; "linear" values are float32 light in [0, 1] (the
clip level of the sensor is 1), "raw" values the (H, W) float32 Bayer mosaic
in the same units.  Everything random comes from the ``numpy.random.Generator``
passed in.  The numbers, and where each comes from, are in ``docs/camera.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from blurgen.physics import blur
from blurgen.physics.cameras import Camera

#: RSBlur's range of the saturation factor alpha (dataset_RealisticDeblur.py:
#: ``random.uniform(0.25, 1.75)``).
SATURATION_ALPHA = (0.25, 1.75)
#: The four Bayer layouts RSBlur draws from, named by the colours of the
#: 2x2 cell's sites (0, 0), (0, 1), (1, 0), (1, 1).
BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
#: Noise levels are drawn uniformly in these multiples of the calibration
#: (RSBlur's ``add_Poisson_noise_random``: ``0.5 * beta`` to ``1.5 * beta``).
NOISE_SPREAD = (0.5, 1.5)

# --- per-sample parameters --------------------------------------------------------


@dataclass(frozen=True)
class CameraDraw:
    """One sample's random camera settings (recorded in its shard's meta fields)."""

    saturation_alpha: float
    red_gain: float
    blue_gain: float
    bayer: str
    shot: float
    read: float

    def meta(self) -> dict:
        """The shard meta fields: ``camera_<name>`` for each setting."""
        return {f"camera_{k}": v for k, v in self.__dict__.items()}


def describe_draw(meta: dict) -> str:
    """One line of a sample's recorded camera settings (its ``camera_*`` meta fields)."""
    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)

    return (f"  camera: saturation alpha {float(meta['camera_saturation_alpha']):.2f}, "
            f"white balance R x{float(meta['camera_red_gain']):.2f} B x{float(meta['camera_blue_gain']):.2f}, "
            f"Bayer {text(meta['camera_bayer'])}, noise shot {float(meta['camera_shot']):.3g} "
            f"read {float(meta['camera_read']):.3g}"
            + (f", JPEG q{int(meta['jpeg_quality'])}" if int(meta.get("jpeg_quality", 0)) else ""))


def draw_parameters(camera: Camera, rng: np.random.Generator) -> CameraDraw:
    """Draw a sample's settings, in this order: alpha; the gains (uniform in their ranges, or
    one of the camera's measured pairs); a Bayer layout; an entry of the noise table (if
    the camera has one); the shot and read levels (:func:`noise_level`)."""
    alpha = float(rng.uniform(*SATURATION_ALPHA))
    if camera.gain_pairs is None:
        red = float(rng.uniform(*camera.red_gain))
        blue = float(rng.uniform(*camera.blue_gain))
    else:  # as RSBlur's --cam_params_RealBlur, which draws one photo's gains from its list
        red, blue = (float(g) for g in camera.gain_pairs[int(rng.integers(0, len(camera.gain_pairs)))])
    bayer = BAYER_PATTERNS[int(rng.integers(0, len(BAYER_PATTERNS)))]
    shot, read = camera.shot, camera.read
    if camera.noise_iso is not None:
        _, shot, read = camera.noise_iso[int(rng.integers(0, len(camera.noise_iso)))]
    shot = noise_level(shot, rng)
    read = noise_level(read, rng)
    return CameraDraw(alpha, red, blue, bayer, shot, read)


def noise_level(level, rng: np.random.Generator) -> float:
    """One draw of a noise level: a number is a calibration ``beta``, drawn as ``beta * U(0.5, 1.5)``
    (:data:`NOISE_SPREAD`, RSBlur's); a pair (lo, hi) is drawn as ``U(lo, hi)``.  One draw from ``rng``."""
    if isinstance(level, tuple):
        return float(rng.uniform(*level))
    return float(level * rng.uniform(*NOISE_SPREAD))


# --- the steps -----------------------------------------------------------------------


def saturation_mask(srgb8: np.ndarray) -> np.ndarray:
    """(H, W, 3) bool: the channels at the clip level, code 255, of an (H, W, 3) uint8 photo.

    RSBlur adds ``alpha`` times a 3-channel saturation mask of the sharp
    frames (its ``*_mask_100`` files, made outside the published code);
    a channel counts here when it sits at the top of the 8-bit range, i.e.
    at 100 % of it.
    """
    return srgb8 == 255


def boost_saturated(linear: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    """``linear + alpha * mask``: saturated channels (1.0) become ``1 + alpha``; float32."""
    return (linear + np.float32(alpha) * mask).astype(np.float32, copy=False)


def _apply_matrix(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W, 3) float32: ``matrix @ pixel`` for every pixel."""
    return (image @ np.asarray(matrix, np.float32).T).astype(np.float32, copy=False)


def rgb_to_camera(linear: np.ndarray, camera: Camera) -> np.ndarray:
    """Linear sRGB (H, W, 3) -> camera RGB (H, W, 3) float32, clipped to the sensor's [0, 1]."""
    return np.clip(_apply_matrix(linear, camera.rgb_to_camera), 0.0, 1.0)


def camera_to_rgb(cam: np.ndarray, camera: Camera) -> np.ndarray:
    """Camera RGB (H, W, 3) -> linear sRGB (H, W, 3) float32 (the exact inverse; not clipped)."""
    return _apply_matrix(cam, np.linalg.inv(camera.rgb_to_camera))


def bayer_channels(pattern: str, h: int, w: int) -> np.ndarray:
    """(h, w) uint8: the colour (0 R, 1 G, 2 B) each site of a ``pattern`` mosaic records."""
    cell = np.array(["RGB".index(c) for c in pattern], np.uint8).reshape(2, 2)
    return np.tile(cell, ((h + 1) // 2, (w + 1) // 2))[:h, :w]


def mosaic(cam: np.ndarray, pattern: str) -> np.ndarray:
    """Camera RGB (H, W, 3) -> the (H, W) float32 Bayer mosaic: each site keeps its colour's value."""
    h, w = cam.shape[:2]
    channels = bayer_channels(pattern, h, w)
    return np.take_along_axis(cam, channels[..., None].astype(np.intp), axis=2)[..., 0].astype(np.float32)


def white_balance(raw: np.ndarray, pattern: str, red_gain: float, blue_gain: float) -> np.ndarray:
    """Multiply the red sites of an (H, W) mosaic by ``red_gain``, the blue ones by ``blue_gain``.

    The inverse white balance is the same call with ``1 / gain``.  float32.
    """
    gains = np.array([red_gain, 1.0, blue_gain], np.float32)
    return raw * gains[bayer_channels(pattern, *raw.shape)]


def add_poisson_gaussian(raw: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """``shot * Poisson(raw / shot) + N(0, read**2)``: variance ``shot * x + read**2`` at raw value x.

    As RSBlur's ``add_Poisson_noise_random`` (exact Poisson counts, not a
    Gaussian approximation).  ``raw`` (H, W) float32 >= 0; returns float32,
    not clipped (read noise goes below zero on dark sites, as on a sensor
    with a black-level offset).  ``shot`` = 0 or ``read`` = 0 leaves that part out.
    """
    noisy = raw.astype(np.float32)
    if shot > 0:
        noisy = (rng.poisson(np.maximum(noisy, 0) / shot) * shot).astype(np.float32)
    if read > 0:
        noisy = noisy + np.float32(read) * rng.standard_normal(raw.shape, dtype=np.float32)
    return noisy


# Malvar, He & Cutler (ICASSP 2004), "High-quality linear interpolation for
# demosaicing of Bayer-patterned color images", the demosaic RSBlur uses; the
# filters are x 1/8.  G at an R or B site; R (B) at a G site whose row holds
# R (B) sites; the same with column; R at a B site and B at an R site.
_MALVAR_G = np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1],
                      [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]], np.float32) / 8
_MALVAR_ROW = np.array([[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1],
                        [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]], np.float32) / 8
_MALVAR_COL = np.ascontiguousarray(_MALVAR_ROW.T)
_MALVAR_DIAG = np.array([[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5],
                         [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]], np.float32) / 8


def demosaic(raw: np.ndarray, pattern: str) -> np.ndarray:
    """(H, W) Bayer mosaic -> (H, W, 3) float32 RGB, Malvar-He-Cutler interpolation.

    Exact on a flat colour and on channels that vary linearly; the border is
    mirrored without repeating the edge (which keeps the Bayer layout), so a
    flat colour stays exact up to the edge.  Values are not clipped.
    """
    raw = np.ascontiguousarray(raw, dtype=np.float32)
    h, w = raw.shape

    def filtered(kernel):
        return cv2.filter2D(raw, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT_101)

    estimates = {"G": filtered(_MALVAR_G), "row": filtered(_MALVAR_ROW), "col": filtered(_MALVAR_COL),
                 "diag": filtered(_MALVAR_DIAG)}
    out = np.empty((h, w, 3), np.float32)
    cell = [["RGB".index(pattern[2 * y + x]) for x in range(2)] for y in range(2)]
    for dy in range(2):
        for dx in range(2):
            site = (slice(dy, None, 2), slice(dx, None, 2))
            c = cell[dy][dx]
            out[site + (c,)] = raw[site]
            if c == 1:  # a green site: its row holds one of R/B, its column the other
                out[site + (cell[dy][1 - dx],)] = estimates["row"][site]
                out[site + (cell[1 - dy][dx],)] = estimates["col"][site]
            else:
                out[site + (1,)] = estimates["G"][site]
                out[site + (2 - c,)] = estimates["diag"][site]
    return out


def tone_map(linear: np.ndarray, camera: Camera) -> np.ndarray:
    """Linear light -> the camera's 8-bit display values, uint8, same shape.

    The camera response polynomial (clipped to [0, 1], then rounded), or the
    exact sRGB encoding when the camera has none.
    """
    linear = np.clip(linear, 0.0, 1.0).astype(np.float32, copy=False)
    if camera.tone is None:
        return blur.encode_srgb8(linear)
    value = np.zeros_like(linear)
    for a in reversed(camera.tone):  # Horner
        value = value * linear + np.float32(a)
    return blur.to_uint8(value)


def render_sharp(srgb8: np.ndarray, camera: Camera) -> np.ndarray:
    """The sharp image of a pair: sRGB -> linear -> the camera's tone curve, (H, W, 3) uint8.

    What the blurred image goes through, less blur, ISP round trip and noise
    (RSBlur maps its ground truth the same way: ``lin2rgb_a7r3_polynomial(rgb2lin(gt))``).
    A table of the 256 codes, so it is the very same function for every pixel.
    """
    table = tone_map(blur.LINEAR_LUT, camera)
    return table[srgb8]


def isp_round_trip(linear: np.ndarray, camera: Camera, draw: CameraDraw,
                   rng: np.random.Generator | None) -> np.ndarray:
    """Steps 4-6: linear sRGB (H, W, 3) -> raw -> noise -> linear sRGB (H, W, 3) float32 in [0, 1].

    ``rng`` None (or zero noise levels in ``draw``) leaves the noise out.
    """
    raw = mosaic(rgb_to_camera(linear, camera), draw.bayer)
    raw = white_balance(raw, draw.bayer, 1 / draw.red_gain, 1 / draw.blue_gain)
    if rng is not None:
        raw = add_poisson_gaussian(raw, draw.shot, draw.read, rng)
    raw = white_balance(raw, draw.bayer, draw.red_gain, draw.blue_gain)
    cam = np.clip(demosaic(raw, draw.bayer), 0.0, 1.0)
    return np.clip(camera_to_rgb(cam, camera), 0.0, 1.0)


def simulate(region: np.ndarray, psf: np.ndarray, camera: Camera, draw: CameraDraw,
             rng: np.random.Generator | None) -> np.ndarray:
    """The blurred image of a pair, steps 1-8.

    region : (h + k - 1, w + k - 1, 3) uint8 sRGB — the output window plus the
        PSF's margins (``blur.margins``).
    psf : (k, k) float, centred on pixel (k // 2, k // 2).
    rng : the noise's generator; None for a noise-free render.

    Returns (h, w, 3) uint8, in the same tone curve as :func:`render_sharp`.
    """
    region, psf = blur.trim_to_support(region, psf)
    return develop(blur.convolve_valid(working(region, draw), psf), camera, draw, rng)


def working(srgb8: np.ndarray, draw: CameraDraw, boost: bool = True) -> np.ndarray:
    """Steps 1-2: (H, W, 3) uint8 sRGB -> float32 linear light, the saturated channels
    boosted by the draw's alpha (``boost``; False for what a sharp image is made of).

    What any blur of the scene then works on: a kernel (:func:`simulate`), the
    warps of non-uniform shake or the layers of moving objects (blurgen.modes).
    """
    linear = blur.LINEAR_LUT[srgb8]
    return boost_saturated(linear, saturation_mask(srgb8), draw.saturation_alpha) if boost else linear


def develop(blurred: np.ndarray, camera: Camera, draw: CameraDraw, rng: np.random.Generator | None) -> np.ndarray:
    """Steps 3-8 after the blur: (H, W, 3) float linear light of the blurred scene ->
    clip at the sensor's full well -> the ISP round trip with raw noise (``rng``; None:
    noise-free) -> the saturated pixels noise-free -> the camera's tone curve, uint8."""
    blurred = np.clip(blurred, 0.0, 1.0)
    out = isp_round_trip(blurred, camera, draw, rng)
    out[blurred >= 1.0] = 1.0  # RSBlur: no noise where the sensor is saturated
    return tone_map(out, camera)

"""A camera's calibration from its own DNG files (``blurgen camera-profile``).

A DNG (Adobe's Digital Negative, a TIFF) carries, besides the raw picture, the tags a raw
converter needs to develop it; this module reads them (with ``tifffile``, the optional
extra ``dng``) and turns them into a :class:`blurgen.physics.cameras.Camera`:

* the colour matrix, XYZ -> camera, from ColorMatrix1/2 (50721/50722, SRATIONAL, 9 values
  row-major) and their CalibrationIlluminant1/2 (50778/50779, EXIF LightSource codes):
  the D65 one (code 21) when there is one; else, with two matrices of known
  illuminants, their blend at 6500 K weighted in inverse temperature as the DNG SDK
  blends them (``dng_color_spec``); else ColorMatrix1.  Rows are then scaled so that D65
  white gives camera (1, 1, 1), the convention of :func:`cameras.xyz_to_camera_matrix`
  (a ColorMatrix is LibRaw's ``adobe_coeff`` / 10000 for the same camera: the scaling
  makes the two the same matrix);
* the white-balance gains from AsShotNeutral (50728): the camera-neutral coordinates
  (n_R, n_G, n_B) of the white the camera balanced to, so the raw multipliers are
  red = n_G / n_R, blue = n_G / n_B (dcraw's ``cam_mul`` = 1 / AsShotNeutral, scaled to
  green 1; RSBlur's RealBlur gain list holds the same multipliers of its ARW files);
* the noise from NoiseProfile (51041, DOUBLE, (S, O) per colour plane): the standard
  deviation at raw value x in [0, 1] is sqrt(S x + O), ours is sqrt(shot x + read^2)
  (``camera.add_poisson_gaussian``), so shot = S and read = sqrt(O), S and O each the
  mean over the planes;
* the ISO from ExifIFD's ISOSpeedRatings (34855) and BaselineExposure (50730): recorded
  in the profile's ``source`` only (the pipeline's raw is full scale 1 whatever the
  exposure); ForwardMatrix1/2 (50964/50965, white-balanced camera -> XYZ D50) is not
  used: ColorMatrix, mandatory in every colour DNG, already gives XYZ -> camera.

Pure functions of :class:`DngTags` below; only :func:`read_tags` touches a file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blurgen.physics.camera_profile import CameraProfileError
from blurgen.physics.cameras import Camera, normalise_xyz_to_camera

#: The tags read, by number (DNG specification 1.4/1.6, EXIF 2.3).
TAGS = {"DNGVersion": 50706, "UniqueCameraModel": 50708, "ColorMatrix1": 50721, "ColorMatrix2": 50722,
        "AsShotNeutral": 50728, "BaselineExposure": 50730, "CalibrationIlluminant1": 50778,
        "CalibrationIlluminant2": 50779, "ForwardMatrix1": 50964, "ForwardMatrix2": 50965,
        "NoiseProfile": 51041, "ISOSpeedRatings": 34855}
D65 = 21
#: EXIF LightSource code -> correlated colour temperature, K: the DNG SDK's table
#: (``dng_camera_profile::IlluminantToTemperature``); codes not here have none.
ILLUMINANT_TEMPERATURE = {17: 2850.0, 3: 2850.0, 24: 3200.0, 23: 5000.0, 20: 5500.0, 1: 5500.0, 9: 5500.0,
                          4: 5500.0, 18: 5500.0, 21: 6500.0, 19: 6500.0, 10: 6500.0, 22: 7500.0, 11: 7500.0,
                          12: (5700.0 + 7100.0) / 2, 13: (4600.0 + 5500.0) / 2, 14: (3800.0 + 4500.0) / 2,
                          2: (3800.0 + 4500.0) / 2, 15: (3250.0 + 3800.0) / 2, 16: (2600.0 + 3250.0) / 2}
TARGET_TEMPERATURE = 6500.0  # D65 in that table
INSTALL_HINT = "pip install 'blurgen[dng]' (or pip install tifffile)"


@dataclass(frozen=True)
class DngTags:
    """What one DNG says about its camera (None where a tag is absent).

    colour_matrices : ((k, matrix (3, 3) float64, illuminant code or 0), ...) — ColorMatrix<k>.
    neutral : (3,) float64 — AsShotNeutral.
    noise_profile : ((S, O), ...) per colour plane — NoiseProfile.
    """

    path: str
    model: str | None
    colour_matrices: tuple
    neutral: tuple[float, float, float] | None
    noise_profile: tuple[tuple[float, float], ...] | None
    iso: float | None
    baseline_exposure: float | None
    forward_matrix: bool


# --- reading ----------------------------------------------------------------------------------------


def _numbers(tag) -> list[float]:
    """A tag's values as floats; RATIONAL (5) and SRATIONAL (10) come as (numerator, denominator) pairs."""
    value = tag.value
    if isinstance(value, (int, float)):
        value = (value,)
    value = list(value)
    if int(tag.dtype) in (5, 10):
        if any(d == 0 for d in value[1::2]):
            raise ValueError("a rational with denominator 0")
        return [n / d for n, d in zip(value[::2], value[1::2])]
    return [float(v) for v in value]


def _tag_sources(tif) -> list:
    """The tag sets to look in, IFD0 first: IFD0, its SubIFDs (where a DNG keeps its raw), the other IFDs."""
    first = tif.pages[0]
    out = [first.tags]
    for sub in getattr(first, "pages", None) or []:
        out.append(sub.tags)
    out += [page.tags for page in list(tif.pages)[1:]]
    return out


def read_tags(path: str | os.PathLike) -> DngTags:
    """The calibration tags of the DNG ``path``.  CameraProfileError (one line) if it cannot be
    read, is not a DNG, or a tag has the wrong size; tifffile missing: the install hint."""
    try:
        import tifffile
    except ImportError:
        raise CameraProfileError(f"reading a DNG needs tifffile: {INSTALL_HINT}") from None
    path = Path(path)
    if not path.is_file():
        raise CameraProfileError(f"{path}: no such file")
    try:
        with tifffile.TiffFile(path) as tif:
            sources = _tag_sources(tif)

            def find(name: str):
                for tags in sources:
                    tag = tags.get(TAGS[name])
                    if tag is not None:
                        return tag
                return None

            def numbers(name: str, count: tuple[int, ...]) -> list[float] | None:
                tag = find(name)
                if tag is None:
                    return None
                try:
                    values = _numbers(tag)
                except (TypeError, ValueError) as exc:
                    raise CameraProfileError(f"{path}: tag {name} ({TAGS[name]}): unreadable ({exc})") from None
                if len(values) not in count or not all(math.isfinite(v) for v in values):
                    raise CameraProfileError(f"{path}: tag {name} ({TAGS[name]}): expected {' or '.join(map(str, count))} "
                                             f"finite numbers, got {len(values)}: {values[:12]}")
                return values

            if find("DNGVersion") is None:
                raise CameraProfileError(f"{path}: not a DNG (no DNGVersion tag, {TAGS['DNGVersion']})")
            matrices = []
            for k in (1, 2):
                values = numbers(f"ColorMatrix{k}", (9,))
                if values is None:
                    continue
                illuminant = find(f"CalibrationIlluminant{k}")
                matrices.append((k, np.array(values).reshape(3, 3), int(illuminant.value) if illuminant else 0))
            neutral = numbers("AsShotNeutral", (3,))
            profile = numbers("NoiseProfile", (2, 6))
            exposure = numbers("BaselineExposure", (1,))
            iso_tag = find("ISOSpeedRatings")
            if iso_tag is None:
                exif = first_exif(sources)
                iso_value = (exif.get("ISOSpeedRatings", exif.get("PhotographicSensitivity")) if exif else None)
            else:
                iso_value = iso_tag.value
            model = find("UniqueCameraModel")
            model = None if model is None else str(model.value).strip() or None
            forward = find("ForwardMatrix1") is not None or find("ForwardMatrix2") is not None
    except CameraProfileError:
        raise
    except Exception as exc:  # tifffile's own errors (TiffFileError and the like): not a TIFF at all
        raise CameraProfileError(f"{path}: not a readable DNG ({type(exc).__name__}: {exc})") from None
    if isinstance(iso_value, (tuple, list)):
        iso_value = iso_value[0] if iso_value else None
    return DngTags(path=str(path), model=model,
                   colour_matrices=tuple(matrices), neutral=None if neutral is None else tuple(neutral),
                   noise_profile=None if profile is None else tuple(zip(profile[::2], profile[1::2])),
                   iso=None if iso_value in (None, 0) else float(iso_value),
                   baseline_exposure=None if exposure is None else exposure[0], forward_matrix=forward)


def first_exif(sources: list) -> dict | None:
    """The EXIF IFD (tag 34665) as tifffile parses it, from the first tag set that has one."""
    for tags in sources:
        tag = tags.get(34665)
        if tag is not None and isinstance(tag.value, dict):
            return tag.value
    return None


# --- what the tags mean -------------------------------------------------------------------------------


def colour_matrix(tags: DngTags) -> tuple[np.ndarray, str]:
    """(XYZ -> camera (3, 3) float64 rows scaled to D65 white = 1, how it was chosen)."""
    matrices = tags.colour_matrices
    if not matrices:
        raise CameraProfileError(f"{tags.path}: no ColorMatrix1 tag ({TAGS['ColorMatrix1']}): a colour camera's DNG "
                                 "has one")
    for k, matrix, illuminant in matrices:
        if illuminant == D65:
            return _normalised(tags, matrix), f"ColorMatrix{k} (D65)"
    temperatures = [ILLUMINANT_TEMPERATURE.get(illuminant) for _, _, illuminant in matrices]
    if len(matrices) == 2 and all(temperatures) and temperatures[0] != temperatures[1]:
        (_, m1, _), (_, m2, _) = matrices
        t1, t2 = temperatures
        if t1 > t2:
            (m1, t1), (m2, t2) = (m2, t2), (m1, t1)
        weight = min(1.0, max(0.0, (1 / TARGET_TEMPERATURE - 1 / t2) / (1 / t1 - 1 / t2)))
        blend = weight * m1 + (1 - weight) * m2
        return _normalised(tags, blend), (f"ColorMatrix1/2 blended at {TARGET_TEMPERATURE:.0f} K "
                                          f"({t1:.0f} K x {weight:.3f}, {t2:.0f} K x {1 - weight:.3f})")
    k, matrix, illuminant = matrices[0]
    return _normalised(tags, matrix), f"ColorMatrix{k} (illuminant {illuminant}: no D65 matrix to use or blend)"


def _normalised(tags: DngTags, matrix: np.ndarray) -> np.ndarray:
    from blurgen.physics.cameras import d65_response

    if not np.all(d65_response(matrix) > 0):
        raise CameraProfileError(f"{tags.path}: tag ColorMatrix: a row gives D65 white no positive response")
    return normalise_xyz_to_camera(matrix)


def gains(tags: DngTags) -> tuple[float, float]:
    """(red, blue) raw white-balance multipliers: n_G / n_R, n_G / n_B of AsShotNeutral."""
    if tags.neutral is None:
        raise CameraProfileError(f"{tags.path}: no AsShotNeutral tag ({TAGS['AsShotNeutral']}): give the gains in "
                                 "the profile by hand (docs/camera.md)")
    red, green, blue = tags.neutral
    if min(red, green, blue) <= 0:
        raise CameraProfileError(f"{tags.path}: tag AsShotNeutral ({TAGS['AsShotNeutral']}): must be > 0, "
                                 f"got {list(tags.neutral)}")
    return green / red, green / blue


def noise_profile(tags: DngTags) -> tuple[float, float] | None:
    """(S, O) of NoiseProfile, each the mean over the colour planes; None without the tag."""
    if tags.noise_profile is None:
        return None
    scale = float(np.mean([s for s, _ in tags.noise_profile]))
    offset = float(np.mean([o for _, o in tags.noise_profile]))
    if scale < 0 or offset < 0:
        raise CameraProfileError(f"{tags.path}: tag NoiseProfile ({TAGS['NoiseProfile']}): S and O must be >= 0, "
                                 f"got {list(tags.noise_profile)}")
    return scale, offset


def noise(tags: DngTags) -> tuple[float, float] | None:
    """(shot, read) = (S, sqrt(O)) of :func:`noise_profile`: our variance shot x + read^2 is
    NoiseProfile's S x + O.  None without the tag."""
    measured = noise_profile(tags)
    return None if measured is None else (measured[0], math.sqrt(measured[1]))


# --- the profile ----------------------------------------------------------------------------------


def camera_from_dngs(photos: list[DngTags], name: str | None = None, gain_spread: float = 0.0,
                     shot: float | None = None, read: float | None = None) -> tuple[Camera, dict]:
    """(the Camera, the profile's ``source`` record) of one or more DNGs of one camera.

    Colour matrix: the first photo's (a camera's DNGs carry the same).  Gains: one photo's
    as a range ``gain x [1 - gain_spread, 1 + gain_spread]``; several photos' as a list of
    measured pairs, one per photo.  Noise: ``shot``/``read`` when given; else one photo's
    NoiseProfile as a calibration; several photos' as a table per ISO (the photos of one
    ISO averaged) when every photo has an ISO and there are several ISOs, else the mean.
    """
    if not photos:
        raise CameraProfileError("camera-profile needs at least one DNG")
    if not 0 <= gain_spread < 1:
        raise CameraProfileError(f"--gain-spread must be in [0, 1), got {gain_spread}")
    if gain_spread and len(photos) > 1:
        raise CameraProfileError("--gain-spread widens one photo's gains; several photos give the list of their pairs")
    matrix, how = colour_matrix(photos[0])
    pairs = [gains(p) for p in photos]
    if len(photos) == 1:
        red, blue = pairs[0]
        balance = {"red_gain": (red * (1 - gain_spread), red * (1 + gain_spread)),
                   "blue_gain": (blue * (1 - gain_spread), blue * (1 + gain_spread)), "gain_pairs": None}
    else:
        balance = {"red_gain": None, "blue_gain": None, "gain_pairs": tuple(pairs)}
    levels = _noise_levels(photos, shot, read)
    model = photos[0].model or Path(photos[0].path).stem
    source = {"made_by": "blurgen camera-profile", "colour_matrix": how,
              "photos": [{"file": Path(p.path).name, "iso": p.iso, "as_shot_neutral": list(p.neutral),
                          "noise_profile": None if p.noise_profile is None else [list(sp) for sp in p.noise_profile],
                          "baseline_exposure": p.baseline_exposure} for p in photos]}
    if photos[0].forward_matrix:
        source["forward_matrix"] = "present, not used (docs/camera.md)"
    camera = Camera(name=name or model, description=f"{model}: from {len(photos)} DNG(s) by blurgen camera-profile",
                    xyz_to_camera=matrix, tone=None, **balance, **levels)
    return camera, source


def _noise_levels(photos: list[DngTags], shot: float | None, read: float | None) -> dict:
    measured = [noise_profile(p) for p in photos]
    if shot is not None and read is not None:
        return {"shot": float(shot), "read": float(read), "noise_iso": None}
    missing = [p.path for p, m in zip(photos, measured) if m is None]
    if missing:
        raise CameraProfileError(f"{missing[0]}: no NoiseProfile tag ({TAGS['NoiseProfile']}): give --shot and --read "
                                 "(docs/camera.md)")
    isos = {p.iso for p in photos}
    if len(photos) > 1 and None not in isos and len(isos) > 1:
        table = []
        for iso in sorted(isos):
            at = [m for p, m in zip(photos, measured) if p.iso == iso]
            table.append((iso, *_mean_levels(at, shot, read)))
        return {"shot": None, "read": None, "noise_iso": tuple(table)}
    level_shot, level_read = _mean_levels(measured, shot, read)
    return {"shot": level_shot, "read": level_read, "noise_iso": None}


def _mean_levels(measured: list[tuple[float, float]], shot: float | None, read: float | None) -> tuple[float, float]:
    """(S, O) of several photos -> (mean S, sqrt(mean O)) = (shot, read); ``shot``/``read`` given replace theirs."""
    mean_shot = float(np.mean([s for s, _ in measured]))
    mean_read = math.sqrt(float(np.mean([o for _, o in measured])))
    return (mean_shot if shot is None else float(shot)), (mean_read if read is None else float(read))

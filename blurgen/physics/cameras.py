"""The cameras RSBlur's pipeline (:mod:`blurgen.physics.camera`) can be: each one's calibration,
registered by name.  Numbers only (NumPy, no image library), so that the command lines
can list the names as they start.  Where each number comes from: ``docs/camera.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Linear sRGB (D65) -> CIE XYZ, IEC 61966-2-1 (the matrix of MATLAB's
#: rgb2xyz that RSBlur ships as M_lin2xyz.mat, transposed to act on columns).
SRGB_TO_XYZ = np.array([[0.41245644, 0.35757608, 0.18043748],
                        [0.21267285, 0.71515216, 0.07217499],
                        [0.01933390, 0.11919203, 0.95030408]])


def xyz_to_camera_matrix(coefficients) -> np.ndarray:
    """A raw converter's XYZ -> camera matrix, rows scaled so that D65 white gives camera (1, 1, 1).

    ``coefficients`` are the 9 integers of LibRaw's ``adobe_coeff`` table
    (x 10000, row-major).  The scaling is dcraw's/LibRaw's: the camera's raw
    white is the scene's white once white-balanced.  Returns (3, 3) float64.
    """
    return normalise_xyz_to_camera(np.asarray(coefficients, dtype=np.float64).reshape(3, 3) / 10000)


def d65_response(matrix) -> np.ndarray:
    """(3,) float64: what an XYZ -> camera ``matrix`` (3, 3) makes of D65 white (sRGB's (1, 1, 1))."""
    return np.asarray(matrix, dtype=np.float64) @ (SRGB_TO_XYZ @ np.ones(3))


def normalise_xyz_to_camera(matrix) -> np.ndarray:
    """(3, 3) float64: ``matrix``'s rows scaled so that D65 white gives camera (1, 1, 1).

    Any scale of an XYZ -> camera matrix (a DNG's ColorMatrix, LibRaw's
    ``adobe_coeff`` / 10000) gives the same result; every row's response to D65
    white must be > 0.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / d65_response(matrix)[:, None]


@dataclass(frozen=True, eq=False)
class Camera:
    """A camera's calibration: a built-in one (:data:`CAMERAS`) or a profile file's
    (:mod:`blurgen.physics.camera_profile`, format in docs/camera.md).

    xyz_to_camera : (3, 3) float64 — CIE XYZ (D65) -> camera RGB (columns), rows
        scaled so that D65 white gives (1, 1, 1).
    red_gain, blue_gain : (lo, hi) — white-balance gains drawn uniformly per sample;
        None when ``gain_pairs`` is given.
    gain_pairs : ((red, blue), ...) — measured gain pairs, one drawn per sample
        (each entry equally likely); None: the two ranges.
    shot : Poisson scale ``beta1`` (variance per unit of raw signal): a number is a
        calibration, drawn as ``beta1 * U(0.5, 1.5)`` (RSBlur); a pair (lo, hi) is
        drawn as ``U(lo, hi)``.  None when ``noise_iso`` is given.
    read : standard deviation ``beta2`` of the Gaussian read noise (raw units), as ``shot``.
    noise_iso : ((iso, shot, read), ...) ascending in ISO — a noise table, one entry
        drawn per sample (each equally likely), its levels calibrations as above;
        None: ``shot`` and ``read``.
    tone : ascending polynomial coefficients of the camera response
        (linear -> display value), or None for the sRGB curve.

    Compared by value (the matrix element by element, exactly).
    """

    name: str
    description: str
    xyz_to_camera: np.ndarray
    red_gain: tuple[float, float] | None
    blue_gain: tuple[float, float] | None
    shot: float | tuple[float, float] | None
    read: float | tuple[float, float] | None
    tone: tuple[float, ...] | None = None
    gain_pairs: tuple[tuple[float, float], ...] | None = None
    noise_iso: tuple[tuple[float, float, float], ...] | None = None

    @property
    def rgb_to_camera(self) -> np.ndarray:
        """(3, 3) linear sRGB -> camera RGB; maps white (1, 1, 1) to (1, 1, 1)."""
        return self.xyz_to_camera @ SRGB_TO_XYZ

    def _key(self) -> tuple:
        others = tuple(getattr(self, f.name) for f in fields(self) if f.name != "xyz_to_camera")
        return np.asarray(self.xyz_to_camera, np.float64).tobytes(), others

    def __eq__(self, other):
        return isinstance(other, Camera) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


# LibRaw's colour matrix of the Sony ILCE-7RM3 (A7R III), the camera of the
# RealBlur and RSBlur data sets; RSBlur's a7r3_xyz2cam.mat is this matrix
# normalised as above (checked to 1e-8 in tests/test_camera.py).
_A7R3_LIBRAW = (6640, -1847, -503, -5238, 13010, 2474, -993, 1673, 6527)
# RSBlur's degree-7 fit of the A7R3's response, linear -> display value
# (a7r3_polynomial_alpha.mat), used to map GoPro pairs to RealBlur's look.
_A7R3_CRF = (-0.009522800674779798, 8.698515984522277, -45.15782051645196, 150.71180861706543,
             -308.1978292223731, 368.308116880222, -235.16339845543246, 61.83222409587268)

CAMERAS = {
    "a7r3": Camera(
        name="a7r3",
        description="Sony A7R III as calibrated on RealBlur (RSBlur's GoPro pipeline): its CRF, gains, noise",
        xyz_to_camera=xyz_to_camera_matrix(_A7R3_LIBRAW),
        red_gain=(1.9, 2.4), blue_gain=(1.5, 1.9),
        shot=8.8915e-05, read=2.9430e-05,
        tone=_A7R3_CRF),
    "a7r3-rsblur": Camera(
        name="a7r3-rsblur",
        description="Sony A7R III as calibrated on RSBlur's own captures: sRGB curve, their gains and noise",
        xyz_to_camera=xyz_to_camera_matrix(_A7R3_LIBRAW),
        red_gain=(1.52, 1.79), blue_gain=(1.91, 2.32),
        shot=1e-4, read=9.1504e-04,
        tone=None),
}
DEFAULT_CAMERA = "a7r3"


def get_camera(name: str) -> Camera:
    """The registered camera ``name``; ValueError (one line, naming the known ones) if none."""
    try:
        return CAMERAS[name]
    except KeyError:
        raise ValueError(f"unknown camera {name!r}; known: {', '.join(sorted(CAMERAS))}") from None

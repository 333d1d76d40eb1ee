"""Non-uniform camera shake: the rotational blur model of Whyte et al.

Whyte, Sivic, Zisserman & Ponce, "Non-uniform deblurring for shaken images",
CVPR 2010 / IJCV 98(2) 2012.  A hand-held camera mostly *rotates* during an
exposure.  For a camera with intrinsics K, the pose rotated by R maps the sharp
image to the image at that pose by the homography

    H = K R K^-1,     K = [[f, 0, cx], [0, f, cy], [0, 0, 1]],

and the blurred image is the average of the sharp image warped by each pose
of the exposure (each pose seen for the same time).  A rotation about the
optical axis (roll) turns the image about the principal point: a point at
radius r moves along an arc r·θ, so the centre stays sharp and blur grows
towards the corners.  A rotation about the two other axes (pitch, yaw) moves
the whole image by about f·θ pixels, a little more towards the edges.  The
focal length f in pixels therefore sets how the two kinds map to pixels: a
long lens (large f) makes pitch and yaw dominate, a wide one makes roll count
more.  Its default is the photo's longer side (about a 36 mm-equivalent lens,
a horizontal field of view of 53°).  An optional in-plane translation of the
camera (a scene at one depth) adds a shift: H = T(t) K R K^-1.

The rotation trajectory reuses Boracchi & Foi's random walk
(:mod:`blurgen.physics.trajectory`), which models the image-plane path of a shaking
hand: one 2-D walk, scaled from unit length to an angular path length, gives
(yaw, pitch); a second walk's horizontal component gives the roll; a third,
scaled to pixels, the translation.  The walks are sampled at ``knots`` poses
and then subdivided (linearly) until no point of the photo moves more than
``step`` pixels between consecutive poses, so the average is a smooth streak,
not a row of ghosts.

The trajectory is centred on its mean (every angle and shift has mean 0 over
the poses), so the mean pose is the identity: for these small rotations a
point's position is, to first order, linear in the angles, so the centroid of
its streak is where it sits at the mean pose.  The sharp image is then the
photo itself — aligned with the blurred one and never resampled (a warped
sharp image would be softened by the interpolation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from blurgen.physics.trajectory import random_trajectories

#: Most poses averaged per sample: a shake so large that it needs more is
#: averaged over this many (the streaks then step by more than ``step`` px).
MAX_POSES = 4096


@dataclass(frozen=True)
class ShakeSpec:
    """How to draw non-uniform camera shake.

    max_angle : degrees — the out-of-plane path length (yaw/pitch walk) and
        the roll's path length are each drawn uniformly in [0, max_angle].
    focal : focal length in pixels of the (downscaled) photo, or None for the
        photo's longer side.
    knots : poses of the Boracchi & Foi walk (>= 2) before subdivision.
    max_shift : pixels — the translation walk's length is drawn in [0, max_shift]
        (0: rotation only).
    step : most pixels any point of the photo moves between consecutive poses.
    rolling : a rolling shutter (``blurgen.physics.rolling.RollingShutter``), or None
        (recorded apart from the other fields: the manifests of runs without it stay as they were).
    gyro : a :class:`blurgen.physics.gyro.GyroSpec` — the rotations from gyroscope logs instead of
        the random walks (``max_angle`` then unused) — or None.
    """

    max_angle: float = 1.0
    focal: float | None = None
    knots: int = 64
    max_shift: float = 0.0
    step: float = 0.5
    rolling: object = None
    gyro: object = None

    def __post_init__(self):
        if not 0 <= self.max_angle <= 30:
            raise ValueError(f"--max-angle must be in [0, 30] degrees, got {self.max_angle:g}")
        if self.focal is not None and not self.focal > 0:
            raise ValueError(f"--focal must be > 0 pixels, got {self.focal:g}")
        if self.knots < 2:
            raise ValueError(f"shake knots must be >= 2, got {self.knots}")
        if not self.max_shift >= 0:
            raise ValueError(f"--max-shift must be >= 0 pixels, got {self.max_shift:g}")
        if not self.step > 0:
            raise ValueError(f"shake step must be > 0 pixels, got {self.step:g}")


def intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    """(3, 3) float64 camera matrix K, principal point at the photo's centre ((w-1)/2, (h-1)/2) in pixel coordinates."""
    return np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])


def rotation(omega: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of rotation vectors ``omega`` (..., 3) (axis · angle in radians; Rodrigues).

    Axes are the camera's: x right (pitch), y down (yaw), z along the optical axis (roll).
    """
    omega = np.asarray(omega, dtype=np.float64)
    theta = np.linalg.norm(omega, axis=-1)[..., None, None]
    x, y, z = omega[..., 0], omega[..., 1], omega[..., 2]
    zero = np.zeros_like(x)
    cross = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    safe = np.where(theta > 0, theta, 1.0)
    a = np.where(theta > 1e-8, np.sin(safe) / safe, 1.0 - theta**2 / 6)
    b = np.where(theta > 1e-8, (1 - np.cos(safe)) / safe**2, 0.5 - theta**2 / 24)
    return np.eye(3) + a * cross + b * (cross @ cross)


def homographies(angles: np.ndarray, shifts: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(n, 3, 3) float64 H = T(shift) K R K^-1: sharp-image pixel -> its pixel at each pose.

    angles : (n, 3) radians (pitch, yaw, roll); shifts : (n, 2) pixels (x, y).
    """
    H = K @ rotation(angles) @ np.linalg.inv(K)
    T = np.tile(np.eye(3), (len(H), 1, 1))
    T[:, 0, 2], T[:, 1, 2] = shifts[:, 0], shifts[:, 1]
    return T @ H


def apply(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (m, 2) pixel points (x, y) by homographies (n, 3, 3): (n, m, 2)."""
    p = np.concatenate([points, np.ones((len(points), 1))], axis=1)  # (m, 3)
    q = np.einsum("nij,mj->nmi", H, p)
    return q[..., :2] / q[..., 2:]


@dataclass(frozen=True)
class Shake:
    """One sample's drawn shake.

    angles : (knots, 3) float64 radians (pitch, yaw, roll) at the walk's knots, centred.
    shifts : (knots, 2) float64 pixels (x, y), centred.
    oop_angle, roll_angle : degrees — drawn path lengths of the out-of-plane walk and of the roll walk.
    shift_length : pixels — drawn path length of the translation walk.
    """

    angles: np.ndarray
    shifts: np.ndarray
    oop_angle: float
    roll_angle: float
    shift_length: float


def draw_shake(seeds: np.ndarray, spec: ShakeSpec, rng: np.random.Generator, readout: float = 0.0) -> Shake:
    """Draw a shake: three Boracchi & Foi walks of unit length from ``seeds`` (3,) uint64, scaled by
    path lengths drawn from ``rng`` (three uniforms, in this order: out-of-plane, roll, shift).
    ``readout`` > 0: a rolling shutter's walks, continued past the exposure (:func:`centred_walks`).
    """
    oop = rng.uniform(0, spec.max_angle)
    roll = rng.uniform(0, spec.max_angle)
    shift = rng.uniform(0, spec.max_shift)
    walks = centred_walks(seeds, spec.knots, readout)
    a, r = math.radians(oop), math.radians(roll)
    angles = np.stack([a * walks[:, 0].imag, a * walks[:, 0].real, r * walks[:, 1].real], axis=1)
    shifts = np.stack([shift * walks[:, 2].real, shift * walks[:, 2].imag], axis=1)
    return Shake(angles=angles, shifts=shifts, oop_angle=oop, roll_angle=roll, shift_length=shift)


def centred_walks(seeds: np.ndarray, knots: int, readout: float = 0.0) -> np.ndarray:
    """(n, len(seeds)) complex128: Boracchi & Foi walks of unit length from ``seeds`` (uint64), one
    column each, centred so that the mean pose is the identity (see the module's docstring).

    ``readout`` 0: ``knots`` knots, centred on their mean.  ``readout`` > 0 (a rolling shutter,
    :mod:`blurgen.physics.rolling`): the walks go on past the exposure, with the same step and
    streams, to :func:`rolling_knots` knots (covering 1 + readout exposures), and are centred on
    the centre row's window (knots ``readout / 2 * (knots - 1)`` on) instead of the whole exposure.
    """
    seeds = np.asarray(seeds, np.uint64)
    if readout == 0:  # the global shutter, as it always was
        walks = random_trajectories(seeds, iters=knots, max_len=1.0).points.astype(np.complex128)
        return walks - walks.mean(axis=0)
    from blurgen.physics import rolling

    walks = random_trajectories(seeds, iters=knots, max_len=1.0,
                                samples=rolling_knots(knots, readout)).points.astype(np.complex128)
    start = np.array([readout / 2 * (knots - 1)])
    return walks - np.stack([rolling.positions(walks[:, i], start, knots)[:, 0] for i in range(walks.shape[1])],
                            axis=1).mean(axis=0)


def rolling_knots(knots: int, readout: float) -> int:
    """Knots of a walk that spans 1 + ``readout`` exposures at ``knots`` knots an exposure (its
    knot j at time j / (knots - 1)), plus one for interpolating between knots."""
    return math.ceil((knots - 1) * (1 + readout)) + 2


def probe_points(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """(9, 2) points (x, y): the corners, edge midpoints and centre of the pixel box [x0, x1] x [y0, y1]."""
    xs, ys = (x0, (x0 + x1) / 2, x1), (y0, (y0 + y1) / 2, y1)
    return np.array([(x, y) for y in ys for x in xs], np.float64)


def poses(shake: Shake, K: np.ndarray, width: int, height: int, step: float) -> np.ndarray:
    """The homographies (n, 3, 3) averaged: the knots, each segment between two subdivided
    into m equal parts, m the smallest that keeps every probe point of the photo within
    ``step`` px of its place at the previous pose (n = (knots - 1)·m + 1, at most :data:`MAX_POSES`)."""
    probes = probe_points(0, 0, width - 1, height - 1)
    at_knots = apply(homographies(shake.angles, shake.shifts, K), probes)
    jump = np.linalg.norm(np.diff(at_knots, axis=0), axis=-1).max() if len(at_knots) > 1 else 0.0
    knots = len(shake.angles)
    m = max(1, min(math.ceil(jump / step), (MAX_POSES - 1) // (knots - 1)))
    t = np.linspace(0, knots - 1, (knots - 1) * m + 1)
    angles = np.stack([np.interp(t, np.arange(knots), shake.angles[:, i]) for i in range(3)], axis=1)
    shifts = np.stack([np.interp(t, np.arange(knots), shake.shifts[:, i]) for i in range(2)], axis=1)
    return homographies(angles, shifts, K)


def reach(H: np.ndarray, width: int, height: int) -> float:
    """Farthest (px) any probe point of the photo is read from its own place, over poses ``H``:
    the margin a window needs around it (each pose reads the sharp image at H^-1 x)."""
    probes = probe_points(0, 0, width - 1, height - 1)
    return float(np.linalg.norm(apply(np.linalg.inv(H), probes) - probes, axis=-1).max())


def average_warps(region: np.ndarray, H: np.ndarray, origin: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """The mean over poses of the sharp image warped by each ``H``, on the output window ``box``.

    region : (h, w, 3) float32 — the part of the photo the window reads, its pixel (0, 0)
        at photo pixel ``origin`` (y, x).
    H : (n, 3, 3) homographies in photo pixel coordinates.
    box : (y0, x0, y1, x1) of the output in photo pixels.

    Returns (y1 - y0, x1 - x0, 3) float32: ``mean_j region(H_j^-1 x)``, bilinear.
    Pixels read outside ``region`` replicate its edge; :func:`margin_for` keeps them inside.
    """
    y0, x0, y1, x1 = box
    oy, ox = origin
    to_photo = np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])  # output window -> photo
    to_region = np.array([[1.0, 0, -ox], [0, 1.0, -oy], [0, 0, 1.0]])  # photo -> region
    acc = np.zeros((y1 - y0, x1 - x0, region.shape[2]), np.float32)
    src = np.ascontiguousarray(region, dtype=np.float32)
    for h in H:
        M = to_region @ np.linalg.inv(h) @ to_photo  # output pixel -> the region pixel it reads
        acc += cv2.warpPerspective(src, M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE).reshape(acc.shape)  # OpenCV drops a single channel
    acc *= np.float32(1 / len(H))
    return acc


def margin_for(H: np.ndarray, width: int, height: int) -> int:
    """Pixels of photo an output window needs on each side: the shake's reach, rounded up,
    plus one for the bilinear interpolation and one of safety (a pose's displacement field
    is nearly affine, so its largest value over the photo is at the probes, not exactly)."""
    return math.ceil(reach(H, width, height)) + 2


def point_psf(H: np.ndarray, point: tuple[float, float], size: int) -> np.ndarray:
    """The PSF at photo pixel ``point`` (x, y): where that point lands at each pose, relative to its
    sharp place, splatted bilinearly on a ``size``×``size`` grid centred on pixel (size//2, size//2).

    Returns (size, size) float32 summing to 1.  A streak reaching beyond the grid is clamped to its
    edge (only for shakes of more than size/2 px at that point).
    """
    p = np.array([point], np.float64)
    d = apply(H, p)[:, 0] - p[0]  # (n, 2) x, y
    c = size // 2
    xy = np.clip(d + c, 0, size - 1 - 1e-6)
    i = np.floor(xy).astype(np.int64)
    f = xy - i
    acc = np.zeros(size * size + size + 1)
    idx = i[:, 1] * size + i[:, 0]
    for di, w in ((0, (1 - f[:, 0]) * (1 - f[:, 1])), (1, f[:, 0] * (1 - f[:, 1])),
                  (size, (1 - f[:, 0]) * f[:, 1]), (size + 1, f[:, 0] * f[:, 1])):
        np.add.at(acc, idx + di, w)
    psf = acc[: size * size].reshape(size, size)
    return (psf / psf.sum()).astype(np.float32)


def streak_length(H: np.ndarray, point: tuple[float, float]) -> float:
    """Path length (px) of the streak a point (x, y) draws over the poses."""
    q = apply(H, np.array([point], np.float64))[:, 0]
    return float(np.linalg.norm(np.diff(q, axis=0), axis=-1).sum())

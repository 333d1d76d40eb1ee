"""The random camera-shake trajectory model of Boracchi & Foi (2012).

"Modeling the performance of image restoration from motion blur", IEEE TIP 21(8),
the model DeblurGAN (Kupyn et al., CVPR 2018) draws its synthetic blur from.
A particle starts at the origin with a velocity of random direction.  At each of
``iters - 1`` steps its velocity changes by

* a Gaussian perturbation of strength ``gaussian_shake``,
* an inertial pull back toward the origin of strength ``centripetal``, and
* with probability ``prob_big_shake * expl``, an impulsive *big shake* that turns
  the velocity roughly around (by pi ± 0.5 rad),

all scaled by the anxiety ``expl``; the velocity is then renormalised to
``max_len / (iters - 1)`` pixels per step, so every trajectory is exactly
``max_len`` pixels long.  ``expl = 0`` gives straight (rectilinear) motion.

The model is vectorised over kernels: the loop runs over the ``iters`` time
steps only, each step updating every kernel of the batch at once.  Random
numbers come from per-kernel counter-based streams (:mod:`blurgen.physics.streams`), so
a trajectory depends on its seed alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blurgen.physics import streams

#: DeblurGAN's values of the anxiety, drawn uniformly when not fixed.
EXPL_CHOICES = (0.003, 0.005, 0.007, 0.008, 0.009, 0.01)
#: DeblurGAN's exposure fractions, drawn uniformly when not fixed.
FRACTION_CHOICES = (0.1, 0.5, 1.0)

# Positions in a kernel's random stream, all drawn in this module.  Fixed so
# that adding a parameter never shifts the numbers another one draws.
_POS_CENTRIPETAL, _POS_PROB_BIG_SHAKE, _POS_GAUSSIAN_SHAKE, _POS_ANGLE = 0, 1, 2, 3
_POS_EXPL, _POS_FRACTION = 4, 5
_POS_STEPS = 8  # step t draws the number at _POS_STEPS + t
_POS_TURNS = 8 + 2**40  # a big shake at step t turns by the number at _POS_TURNS + t
_STEP_BLOCK = 64


@dataclass(frozen=True)
class Trajectories:
    """A batch of ``n`` trajectories of ``iters`` samples each.

    Attributes
    ----------
    points : (samples, n) complex64
        Positions x + iy in pixels, ``points[0] == 0``; step-major.
        ``samples`` is ``iters`` unless fewer were asked for.
    big_shake : (samples - 1, n) bool
        Whether step t (from sample t to t + 1) had a big shake.
    expl, centripetal, prob_big_shake, gaussian_shake, init_angle : (n,) float64
        The per-trajectory parameters (``init_angle`` in radians).
    """

    points: np.ndarray
    big_shake: np.ndarray
    expl: np.ndarray
    centripetal: np.ndarray
    prob_big_shake: np.ndarray
    gaussian_shake: np.ndarray
    init_angle: np.ndarray


@dataclass(frozen=True)
class StepDraws:
    """The random numbers a batch of trajectories consumes, one row per step.

    ``shake_u`` is (steps, n) float32 uniform in [0, 1) (a big shake happens
    when it falls below ``prob_big_shake * expl``); ``noise`` is (steps, n)
    complex64 standard complex normal.  Exposed, with :func:`draw_turns`, so
    that a reference implementation can replay exactly the same draws.
    """

    shake_u: np.ndarray
    noise: np.ndarray


def draw_parameters(seeds: np.ndarray, expl: float | None = None) -> dict[str, np.ndarray]:
    """Per-trajectory parameters: DeblurGAN's U(0, 0.7), U(0, 0.2), U(0, 10), U(0, 2pi).

    ``expl`` fixes the anxiety for every trajectory; ``None`` draws it from
    :data:`EXPL_CHOICES`.  Returns (n,) float64 arrays.
    """
    u = streams.uniform(streams.stream_u64(seeds, 0, _POS_STEPS))  # (8, n)
    if expl is None:
        choice = np.minimum((u[_POS_EXPL] * len(EXPL_CHOICES)).astype(np.int64), len(EXPL_CHOICES) - 1)
        expl_values = np.asarray(EXPL_CHOICES)[choice]
    else:
        expl_values = np.full(len(seeds), float(expl))
    return {
        "expl": expl_values,
        "centripetal": 0.7 * u[_POS_CENTRIPETAL],
        "prob_big_shake": 0.2 * u[_POS_PROB_BIG_SHAKE],
        "gaussian_shake": 10.0 * u[_POS_GAUSSIAN_SHAKE],
        "init_angle": 2.0 * np.pi * u[_POS_ANGLE],
    }


def draw_fraction(seeds: np.ndarray, fraction: float | None = None) -> np.ndarray:
    """Per-kernel exposure fraction, (n,) float64: ``fraction`` for every kernel,
    or ``None`` to draw each from :data:`FRACTION_CHOICES` (its stream's number at
    position 5, a slot no trajectory parameter or step uses)."""
    if fraction is not None:
        return np.full(len(seeds), float(fraction))
    u = streams.uniform(streams.stream_u64(seeds, _POS_FRACTION, 1)[0])
    choice = np.minimum((u * len(FRACTION_CHOICES)).astype(np.int64), len(FRACTION_CHOICES) - 1)
    return np.asarray(FRACTION_CHOICES)[choice]


def draw_steps(seeds: np.ndarray, first: int, count: int) -> StepDraws:
    """The random numbers of steps ``first .. first+count-1`` of each trajectory (see :class:`StepDraws`).

    One 64-bit number per step and trajectory: its top 24 bits decide the big
    shake (fine enough for probabilities down to 1e-7), the next two 20-bit
    fields feed Box–Muller (normals to 5.3 sigma).
    """
    z = streams.stream_u64(seeds, _POS_STEPS + first, count)
    shake_u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
    u1 = ((z >> np.uint64(20)) & np.uint64(0xFFFFF)).astype(np.float32) * np.float32(2.0**-20)
    u2 = (z & np.uint64(0xFFFFF)).astype(np.float32) * np.float32(2.0**-20)
    return StepDraws(shake_u=shake_u, noise=streams.complex_normal(u1, u2))


def draw_turns(seeds: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) that set how far a big shake at ``steps`` turns (same shape as ``seeds``).

    Drawn only where a big shake happens (rarely), from a part of each stream
    no step ever reaches.
    """
    seeds = np.asarray(seeds, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = seeds + (np.asarray(steps, dtype=np.uint64) + np.uint64(_POS_TURNS + 1)) * streams.GAMMA
    return streams.uniform(streams.mix64(z))


def _rotate(v: np.ndarray, re: np.ndarray, im: np.ndarray) -> np.ndarray:
    """v * (re + i im) for complex64 ``v``, in float64 real arithmetic.

    Not numpy's complex multiply: it takes a fused multiply-add path for some
    array lengths and not others, so a kernel's trajectory would depend on how
    many other kernels of its batch shake at the same step (seen: 57 of 2,000
    kernels changed with the batch size).  Separate real multiplies and adds
    round the same way whatever the length.
    """
    a, b = v.real.astype(np.float64), v.imag.astype(np.float64)
    out = np.empty(len(v), np.complex64)
    out.real = a * re - b * im
    out.imag = a * im + b * re
    return out


def _walk_start(params: dict, step: float) -> tuple[np.ndarray, ...]:
    """(big-shake threshold, kick scale, centripetal pull, initial velocity) per trajectory:
    float32, float32, float32, complex64 (n,), from the drawn parameters and the step in px."""
    e = params["expl"]
    shake_threshold = (params["prob_big_shake"] * e).astype(np.float32)
    kick_scale = (e * params["gaussian_shake"] * step).astype(np.float32)
    pull = (e * params["centripetal"] * step).astype(np.float32)
    direction = np.exp(1j * params["init_angle"])
    # As in the reference: the initial speed is expl (not `step`) whenever expl > 0,
    # which lets the first Gaussian kick weigh on the initial direction.
    v = np.where(e > 0, direction * e, direction * step).astype(np.complex64)
    return shake_threshold, kick_scale, pull, v


def random_trajectories(
    seeds: np.ndarray,
    iters: int = 2000,
    max_len: float = 60.0,
    expl: float | None = None,
    samples: int | None = None,
) -> Trajectories:
    """Draw one camera-shake trajectory per seed.

    Parameters
    ----------
    seeds : (n,) uint64
        One seed per trajectory (see :func:`blurgen.physics.kernels.kernel_seeds`).
    iters : int
        Number of samples along the trajectory (>= 2).
    max_len : float
        Length of every trajectory in pixels.
    expl : float or None
        Anxiety; ``None`` draws it per trajectory from :data:`EXPL_CHOICES`,
        0 gives straight lines.
    samples : int or None
        Compute only the first ``samples`` (>= 2) samples — all an exposure
        fraction sees; they equal the first samples of the full trajectory.
        More than ``iters`` continue the walk past its end with the same step
        and the same random stream (a rolling shutter's rows see past the
        exposure, :mod:`blurgen.physics.rolling`).  ``None``: all ``iters``.

    Returns
    -------
    Trajectories
        With ``samples`` rows of points.
    """
    seeds = np.asarray(seeds, dtype=np.uint64)
    if iters < 2:
        raise ValueError(f"iters must be >= 2, got {iters}")
    samples = iters if samples is None else samples
    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples}")
    params = draw_parameters(seeds, expl)
    step = max_len / (iters - 1)
    shake_threshold, kick_scale, pull, v = _walk_start(params, step)
    points = np.zeros((samples, len(seeds)), dtype=np.complex64)
    big_shake = np.zeros((samples - 1, len(seeds)), dtype=bool)
    speed = np.empty(len(seeds), dtype=np.float32)
    tmp = np.empty_like(v)
    step32 = np.float32(step)
    # Steps are drawn in blocks so that the random numbers of a block stay in
    # cache while the recurrence consumes them.
    for first in range(0, samples - 1, _STEP_BLOCK):
        count = min(_STEP_BLOCK, samples - 1 - first)
        draws = draw_steps(seeds, first, count)
        # v_{t+1} = normalise(v_t * turn_t + kick_t - pull * x_t) * step, where
        # turn_t = 1 + 2 e^{i(pi + u - 1/2)} on a big shake is the reference's
        # `v += 2 v e^{...}`, kick_t the Gaussian perturbation and pull the
        # centripetal term.  Big shakes are rare, so they are applied sparsely.
        shake = draws.shake_u < shake_threshold
        big_shake[first : first + count] = shake
        t_shake, k_shake = np.nonzero(shake)
        turn = 1 + 2 * np.exp(1j * (np.pi + (draw_turns(seeds[k_shake], first + t_shake) - 0.5)))
        split = np.searchsorted(t_shake, np.arange(count + 1))
        kick = draws.noise
        kick *= kick_scale
        for i in range(count):
            t = first + i
            if split[i] < split[i + 1]:
                rows = slice(split[i], split[i + 1])
                v[k_shake[rows]] = _rotate(v[k_shake[rows]], turn.real[rows], turn.imag[rows])
            np.add(v, kick[i], out=v)
            np.multiply(points[t], pull, out=tmp)
            np.subtract(v, tmp, out=v)
            np.abs(v, out=speed)
            np.divide(step32, speed, out=speed)
            np.multiply(v, speed, out=v)
            np.add(points[t], v, out=points[t + 1])
    if not np.isfinite(points[-1]).all():  # a velocity cancelled exactly: no direction to keep
        raise FloatingPointError("a trajectory lost its direction; try another seed")
    return Trajectories(points=points, big_shake=big_shake, **params)

"""Random-trajectory kernels: the vectorised generator against a plain per-step reference."""
import numpy as np
import pytest
from scipy import stats

from blurgen.physics import psf as psf_mod
from blurgen.physics.kernels import KernelSpec, kernel_seeds, make_kernels
from blurgen.physics.trajectory import EXPL_CHOICES, draw_parameters, draw_steps, draw_turns, random_trajectories


def reference_trajectory(iters, max_len, expl, centripetal, prob_big_shake, gaussian_shake, init_angle, draw):
    """Boracchi & Foi's model one step at a time, in float64, as in DeblurGAN's Trajectory.

    ``draw(t)`` returns (shake_u, turn_u, noise) for step t.  Returns the
    (iters,) complex positions and the number of big shakes.
    """
    step = max_len / (iters - 1)
    v0 = complex(np.cos(init_angle), np.sin(init_angle))
    v = v0 * expl if expl > 0 else v0 * step
    x = np.zeros(iters, dtype=np.complex128)
    shakes = 0
    for t in range(iters - 1):
        shake_u, turn_u, noise = draw(t)
        if shake_u < prob_big_shake * expl:
            next_direction = 2 * v * np.exp(1j * (np.pi + (turn_u - 0.5)))
            shakes += 1
        else:
            next_direction = 0
        dv = next_direction + expl * (gaussian_shake * noise - centripetal * x[t]) * step
        v += dv
        v = v / abs(v) * step
        x[t + 1] = x[t] + v
    return x, shakes


def reference_psf(points, size):
    """Bilinear splat of centred samples, one sample at a time."""
    points = points - points.mean() + complex(size // 2, size // 2)
    out = np.zeros((size, size))
    for p in points:
        x0, y0 = int(np.floor(p.real)), int(np.floor(p.imag))
        fx, fy = p.real - x0, p.imag - y0
        out[y0, x0] += (1 - fx) * (1 - fy)
        out[y0, x0 + 1] += fx * (1 - fy)
        out[y0 + 1, x0] += (1 - fx) * fy
        out[y0 + 1, x0 + 1] += fx * fy
    return out / len(points)


def test_vectorised_trajectories_replay_the_reference_exactly():
    seeds = kernel_seeds(7, 12)
    iters = 600
    traj = random_trajectories(seeds, iters=iters, max_len=60.0, expl=0.01)
    draws = draw_steps(seeds, 0, iters - 1)
    params = draw_parameters(seeds, 0.01)
    for k in range(len(seeds)):
        # Compare thresholds in float32, as the generator does, so a big shake is
        # decided identically.
        threshold = np.float32(params["prob_big_shake"][k] * 0.01)

        def draw(t, k=k):
            turn_u = draw_turns(seeds[k : k + 1], np.array([t]))[0]
            return draws.shake_u[t, k], turn_u, complex(draws.noise[t, k])

        ref, shakes = reference_trajectory(
            iters, 60.0, 0.01, params["centripetal"][k], float(threshold) / 0.01,
            params["gaussian_shake"][k], params["init_angle"][k], draw,
        )
        assert shakes == traj.big_shake[:, k].sum()
        np.testing.assert_allclose(traj.points[:, k], ref, atol=2e-3)


def test_distribution_matches_reference_with_its_own_rng():
    # The reference draws as DeblurGAN's code does, from one numpy Generator;
    # the two samples must be indistinguishable.
    rng = np.random.default_rng(2012)
    n, iters, max_len = 300, 1000, 60.0
    ref_extent, ref_shakes = [], []
    for _ in range(n):
        centripetal, prob, gauss = 0.7 * rng.random(), 0.2 * rng.random(), 10 * rng.random()
        angle = 2 * np.pi * rng.random()
        expl = EXPL_CHOICES[rng.integers(len(EXPL_CHOICES))]

        def draw(t):
            return rng.random(), rng.random(), complex(rng.standard_normal(), rng.standard_normal())

        x, shakes = reference_trajectory(iters, max_len, expl, centripetal, prob, gauss, angle, draw)
        ref_extent.append(max(np.ptp(x.real), np.ptp(x.imag)))
        ref_shakes.append(shakes)
        assert np.abs(np.diff(x)).sum() == pytest.approx(max_len)
    batch = make_kernels(kernel_seeds(0, 2000), KernelSpec(iters=iters, max_len=max_len, fraction=1.0))
    np.testing.assert_allclose(batch.length, max_len, rtol=1e-4)
    assert stats.ks_2samp(batch.extent, ref_extent).pvalue > 0.01
    assert stats.mannwhitneyu(batch.big_shakes, ref_shakes).pvalue > 0.01
    assert abs(batch.big_shakes.mean() - np.mean(ref_shakes)) < 0.25
    # And the test has power: a different anxiety is told apart.
    calmer = make_kernels(kernel_seeds(0, 2000), KernelSpec(iters=iters, max_len=max_len, fraction=1.0, expl=0.001))
    assert stats.ks_2samp(calmer.extent, ref_extent).pvalue < 1e-6


def test_rasterize_matches_per_sample_splat():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(500, 3)) + 1j * rng.normal(size=(500, 3)), axis=0) * 0.3
    got = psf_mod.rasterize(walk.astype(np.complex64), 48)
    for k in range(3):
        np.testing.assert_allclose(got[k], reference_psf(walk[:, k].astype(np.complex64).astype(np.complex128), 48), atol=1e-6)


@pytest.mark.parametrize("spec", [KernelSpec(), KernelSpec(size=31, iters=300, max_len=28.0), KernelSpec(size=17, max_len=9.0, expl=0.0)])
def test_kernels_are_normalised_centred_and_non_negative(spec):
    batch = make_kernels(kernel_seeds(11, 300), spec)
    assert batch.psf.shape == (300, spec.size, spec.size) and batch.psf.dtype == np.float32
    assert batch.psf.min() >= 0
    np.testing.assert_allclose(batch.psf.sum(axis=(1, 2)), 1.0, atol=1e-5)
    # On the centre pixel (within half a pixel of the geometric centre, as asked).
    assert np.abs(psf_mod.centre_of_mass(batch.psf) - spec.size // 2).max() < 1e-3


def test_straight_blur_when_expl_is_zero():
    traj = random_trajectories(kernel_seeds(1, 5), iters=200, max_len=20.0, expl=0.0)
    d = np.diff(traj.points, axis=0)
    np.testing.assert_allclose(d / d[0], 1.0, atol=1e-4)  # one direction throughout
    assert not traj.big_shake.any()


def test_same_seed_same_kernels_whatever_the_batch():
    spec = KernelSpec(iters=400, max_len=40.0)
    seeds = kernel_seeds(5, 40)
    whole = make_kernels(seeds, spec)
    parts = [make_kernels(seeds[i : i + 7], spec) for i in range(0, 40, 7)]
    np.testing.assert_array_equal(np.concatenate([p.psf for p in parts]), whole.psf)
    np.testing.assert_array_equal(kernel_seeds(5, 30, start=10), seeds[10:])
    np.testing.assert_array_equal(make_kernels(seeds[13], spec).psf[0], whole.psf[13])
    assert not np.array_equal(make_kernels(kernel_seeds(6, 40), spec).psf, whole.psf)


def test_same_kernels_when_big_shakes_coincide_in_a_batch():
    # In 2,000 default kernels several often shake at the same step, in 50
    # rarely: the turn must round the same way however many share it.
    seeds = kernel_seeds(5, 2000)
    whole = make_kernels(seeds)
    assert (whole.big_shakes > 0).sum() > 500
    parts = np.concatenate([make_kernels(seeds[i : i + 50]).psf for i in range(0, 2000, 50)])
    np.testing.assert_array_equal(parts, whole.psf)


def test_fixed_and_drawn_parameters():
    drawn = make_kernels(kernel_seeds(2, 600), KernelSpec(iters=100, max_len=30.0))
    assert set(np.unique(drawn.expl)) == set(EXPL_CHOICES)
    assert set(np.unique(drawn.fraction)) == {0.1, 0.5, 1.0}
    np.testing.assert_allclose(drawn.length, 30.0 * (psf_mod.exposed_samples(100, drawn.fraction) - 1) / 99, rtol=1e-4)
    fixed = make_kernels(kernel_seeds(2, 50), KernelSpec(iters=100, max_len=30.0, expl=0.004, fraction=0.5))
    assert (fixed.expl == 0.004).all() and (fixed.fraction == 0.5).all()
    assert 0 <= drawn.centripetal.min() and drawn.centripetal.max() <= 0.7
    assert 0 <= drawn.prob_big_shake.max() <= 0.2 and 0 <= drawn.gaussian_shake.max() <= 10


@pytest.mark.parametrize(
    "kwargs", [dict(size=2), dict(iters=1), dict(fraction=0.0), dict(fraction=1.5), dict(expl=-1.0), dict(size=16, max_len=20.0)]
)
def test_bad_spec_is_refused(kwargs):
    with pytest.raises(ValueError):
        KernelSpec(**kwargs)

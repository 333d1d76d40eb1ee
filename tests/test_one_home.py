"""Issue 13's small things: Adam's default betas and the exposure fraction's random
slot each have one home; the draws are unchanged (checked against an independent
re-implementation of the SplitMix64 stream)."""
import numpy as np

from blurgen.physics import kernels, trajectory
from blurgen.physics.kernels import KernelSpec, kernel_seeds, make_kernels
from trainer.config import TrainConfig, adam_betas

MASK = (1 << 64) - 1


def _splitmix(seed: int, j: int) -> int:
    """The j-th number (from 0) of SplitMix64 started at ``seed``, in plain Python integers."""
    z = (seed + (j + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def test_adam_betas_fill_a_missing_value_from_the_one_default():
    assert adam_betas() == TrainConfig().betas == (0.5, 0.999)
    assert adam_betas(beta2=0.99) == (0.5, 0.99)
    assert adam_betas(0.9) == (0.9, 0.999)
    assert adam_betas(beta2=0.9, base=(0.8, 0.95)) == (0.8, 0.9)   # a preset's or a resumed run's


def test_exposure_fraction_is_drawn_where_its_slot_is_defined():
    seeds = kernel_seeds(7, 300)
    drawn = trajectory.draw_fraction(seeds)
    # Position 5 of each kernel's stream, 53-bit uniform, one of three choices.
    expected = [trajectory.FRACTION_CHOICES[min(int((_splitmix(int(s), 5) >> 11) * 2.0**-53 * 3), 2)]
                for s in seeds]
    np.testing.assert_array_equal(drawn, expected)
    assert set(drawn) == {0.1, 0.5, 1.0}
    assert np.all(trajectory.draw_fraction(seeds[:5], 0.25) == 0.25)
    batch = make_kernels(seeds[:40], KernelSpec(size=9, iters=200, max_len=7))
    np.testing.assert_array_equal(batch.fraction, drawn[:40])
    # The anxiety comes from position 4 of the same stream, and is drawn alongside.
    expl = [trajectory.EXPL_CHOICES[min(int((_splitmix(int(s), 4) >> 11) * 2.0**-53 * 6), 5)] for s in seeds[:40]]
    np.testing.assert_array_equal(batch.expl, expl)
    assert not hasattr(kernels, "POS_FRACTION") and not hasattr(kernels, "bank_spec")

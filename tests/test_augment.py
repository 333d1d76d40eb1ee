"""blurgen.shards.augment, the one paired crop + flip draw (issue 21.5): the same numbers as the
draws it replaced, the same window and flips in both images."""
from pathlib import Path

import numpy as np
import pytest

from blurgen.shards.augment import INTEGERS, UNIFORMS, crop_pair, draw_crop_flip, flip_pair, random_crop_flip

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(40, 48), (12, 12), (300, 17), (17, 300)]


def uniforms_by_hand(seed, size, side, hflip, vflip):
    """PairDataset's draw as it was written before blurgen.shards.augment: four uniforms at once."""
    u = np.random.default_rng(seed).random(4)
    box = None
    if side is not None:
        y0, x0 = int(u[0] * (size[0] - side + 1)), int(u[1] * (size[1] - side + 1))
        box = (y0, x0, y0 + side, x0 + side)
    return box, hflip and bool(u[2] < 0.5), vflip and bool(u[3] < 0.5)


def integers_by_hand(seed, size, side, flip):
    """The trainer's draw as it was written before blurgen.shards.augment: two integers, one uniform."""
    rng = np.random.default_rng(seed)
    y0 = int(rng.integers(0, size[0] - side + 1))
    x0 = int(rng.integers(0, size[1] - side + 1))
    return (y0, x0, y0 + side, x0 + side), bool(rng.random() < 0.5) and flip, False


@pytest.mark.parametrize("hflip, vflip", [(True, True), (True, False), (False, True), (False, False)])
def test_uniforms_order_draws_what_pair_dataset_drew(hflip, vflip):
    for size in SIZES:
        for side in (None, 1, 12):
            for j in range(50):
                seed = [3, 0x70616972, 1, j]
                got = draw_crop_flip(np.random.default_rng(seed), size, side, hflip=hflip, vflip=vflip)
                assert got == uniforms_by_hand(seed, size, side, hflip, vflip)


@pytest.mark.parametrize("flip", [True, False])
def test_integers_order_draws_what_the_trainer_drew(flip):
    for size in SIZES:
        for side in (4, 12):
            for j in range(50):
                seed = [0, 0x64726177, j] + ([2] if j % 3 else [])
                got = draw_crop_flip(np.random.default_rng(seed), size, side, hflip=flip, order=INTEGERS)
                assert got == integers_by_hand(seed, size, side, flip)


def test_flips_on_or_off_leave_the_crops_as_they_were():
    for order in (UNIFORMS, INTEGERS):
        on = [draw_crop_flip(np.random.default_rng(j), (30, 40), 8, hflip=True, order=order) for j in range(100)]
        off = [draw_crop_flip(np.random.default_rng(j), (30, 40), 8, hflip=False, order=order) for j in range(100)]
        assert [d[0] for d in on] == [d[0] for d in off] and not any(d[1] for d in off)
        assert 25 < sum(d[1] for d in on) < 75


def test_both_images_are_cut_from_one_window_and_flipped_alike():
    h, w = 23, 31
    y, x = np.mgrid[:h, :w]
    sharp = np.stack([y, x, np.zeros_like(y)], -1).astype(np.uint8)   # each pixel says where it is
    blurred = 255 - sharp
    seen = set()
    for j in range(200):
        order, vflip = (UNIFORMS, True) if j % 2 else (INTEGERS, False)
        b, s, (box, hf, vf) = random_crop_flip(np.random.default_rng(j), blurred, sharp, 9, vflip=vflip, order=order)
        assert b.shape == s.shape == (9, 9, 3) and b.dtype == s.dtype == np.uint8
        np.testing.assert_array_equal(b, 255 - s)   # still one aligned pair
        # Straightforward re-implementation: slice the drawn window, mirror as drawn.
        want = sharp[box[0]:box[2], box[1]:box[3]]
        want = want[::-1] if vf else want
        want = want[:, ::-1] if hf else want
        np.testing.assert_array_equal(s, want)
        corner = s[-1 if vf else 0, -1 if hf else 0]
        assert (int(corner[0]), int(corner[1])) == box[:2]
        seen.add((hf, vf))
    assert seen == {(False, False), (True, False), (False, True), (True, True)}
    whole_b, whole_s = crop_pair(blurred, sharp, None)
    assert whole_b is blurred and whole_s is sharp
    np.testing.assert_array_equal(flip_pair(blurred, sharp, True, True)[1], sharp[::-1, ::-1])


def test_impossible_draws_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="does not fit a 10x8 image"):
        draw_crop_flip(rng, (8, 10), 9)
    with pytest.raises(ValueError, match="horizontal flip only"):
        draw_crop_flip(rng, (8, 10), 4, vflip=True, order=INTEGERS)
    with pytest.raises(ValueError, match="order must be"):
        draw_crop_flip(rng, (8, 10), 4, order="random")
    with pytest.raises(ValueError, match="differ in size"):
        random_crop_flip(rng, np.zeros((8, 10, 3)), np.zeros((8, 9, 3)), 4)


def test_the_datasets_crop_and_flip_only_through_blurgen_augment():
    """One home: no dataset slices or mirrors a pair itself any more."""
    for name in ("blurgen/shards/dataset.py", "trainer/data.py", "trainer/gopro.py"):
        text = (ROOT / name).read_text()
        assert "::-1" not in text and ".random(4)" not in text, name

"""trainer.tensors: the one uint8 <-> [-1, 1] tensor pair (issue 13: trainer.data and
trainer.evaluate each had their own, with different shapes)."""
import numpy as np
import pytest
import torch

from trainer import data, evaluate
from trainer.tensors import to_tensor, to_uint8


def test_every_code_round_trips_batched_and_single():
    codes = np.arange(256, dtype=np.uint8).reshape(8, 32)
    image = np.stack([codes, codes[::-1], codes.T.reshape(8, 32)], axis=-1)       # (8, 32, 3)
    batch = np.stack([image, image[::-1, ::-1]])                                    # (2, 8, 32, 3)
    assert to_tensor(image).shape == (3, 8, 32) and to_tensor(batch).shape == (2, 3, 8, 32)
    np.testing.assert_array_equal(to_uint8(to_tensor(image)), image)
    np.testing.assert_array_equal(to_uint8(to_tensor(batch)), batch)
    np.testing.assert_array_equal(to_uint8(to_tensor(image)[None])[0], image)


def test_to_tensor_is_the_scaling_and_channel_order_of_the_contract():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    t = to_tensor(batch)
    assert t.dtype == torch.float32 and t.is_contiguous()
    reference = batch.transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1        # NCHW, [-1, 1]
    np.testing.assert_allclose(t.numpy(), reference, atol=1e-6)
    assert t.min() >= -1 and t.max() <= 1
    batch_copy = batch.copy()
    to_tensor(batch).add_(1)
    np.testing.assert_array_equal(batch, batch_copy)    # no shared memory with the caller's array


def test_to_uint8_clamps_and_rounds_to_nearest():
    rng = np.random.default_rng(1)
    values = rng.uniform(-1.3, 1.3, (2, 3, 6, 9)).astype(np.float32)
    got = to_uint8(torch.from_numpy(values))
    assert got.shape == (2, 6, 9, 3) and got.dtype == np.uint8 and got.flags.c_contiguous
    reference = np.rint((np.clip(values.astype(np.float64), -1, 1) + 1) * 127.5)
    np.testing.assert_array_equal(got, reference.transpose(0, 2, 3, 1))
    edges = torch.tensor([-5.0, -1.0, 1.0, 5.0, 0.2 / 127.5 - 1, 0.7 / 127.5 - 1]).reshape(3, 1, 2)
    assert to_uint8(edges).transpose(2, 0, 1).ravel().tolist() == [0, 0, 255, 255, 0, 1]
    assert to_uint8(torch.zeros(3, 2, 2, requires_grad=True)).shape == (2, 2, 3)   # detached for the caller


def test_bad_shapes_and_dtypes_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        to_tensor(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="3, H, W"):
        to_uint8(torch.zeros(1, 4, 4, 3))


def test_training_batches_and_restoration_use_the_one_pair():
    assert data.to_tensor is to_tensor
    assert evaluate.to_tensor is to_tensor and evaluate.to_uint8 is to_uint8
    rng = np.random.default_rng(2)
    b, s = (rng.integers(0, 256, (2, 8, 12, 3), dtype=np.uint8) for _ in range(2))
    batch = data.collate_draws([(b[0], s[0], []), (b[1], s[1], [])])
    np.testing.assert_array_equal(to_uint8(batch["blurred"]), b)
    np.testing.assert_array_equal(to_uint8(batch["sharp"]), s)
    # restore() of the identity network gives back its input, any size, whole or tiled
    image = rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)
    identity = torch.nn.Identity()
    np.testing.assert_array_equal(evaluate.restore(identity, image), image)
    np.testing.assert_array_equal(evaluate.restore(identity, image, tile=16, overlap=4), image)

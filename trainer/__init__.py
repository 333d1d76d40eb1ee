"""DeblurGAN training, evaluation and inference (the ``trainer`` command line).

``load_generator`` is the one entry point for plain Python; everything else is
imported from its module.  Nothing heavy is imported here: ``trainer --help``
must start without torch.
"""


def load_generator(path, device="cpu"):
    """The DeblurGAN generator (``trainer.models.Generator``, eval mode, on ``device``) of a
    model folder (``trainer export --model-folder``; read without unpickling) or of a
    checkpoint file (last.pt / best.pt; read with ``weights_only=True``).

    It maps float32 (N, 3, H, W) RGB in [-1, 1] to the same, H and W multiples of 4
    (docs/export.md).  Raises ``trainer.checkpoint.CheckpointError`` (one line) on a
    missing or damaged folder or file.
    """
    from trainer.weights import load

    return load(path, device)[0]

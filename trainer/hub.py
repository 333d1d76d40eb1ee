"""The generator as a ``huggingface_hub`` model: ``DeblurGANGenerator.from_pretrained(DIR)``.

A model folder (trainer.model_folder) is laid out as huggingface_hub's
``PyTorchModelHubMixin`` reads one: weights in ``model.safetensors``, and in
``config.json`` the Generator's keyword arguments at the top level (the mixin
passes the keys that name ``__init__`` arguments to it and ignores the rest).
Importing this module needs huggingface_hub (``pip install 'blurgen[hub]'``);
nothing else in the toolkit imports it.

The mixin does not check config.json's ``weights_sha256``; ``trainer.load_generator``
does.  Local folders only are tested here (HF_HUB_OFFLINE=1).
"""
from __future__ import annotations

from huggingface_hub import PyTorchModelHubMixin

from trainer.models import Generator


class DeblurGANGenerator(Generator, PyTorchModelHubMixin, library_name="blurgen",
                         tags=["image-deblurring", "deblurgan"]):
    """``trainer.models.Generator`` with the mixin's ``from_pretrained`` / ``save_pretrained``.

    ``from_pretrained`` loads strictly by default (the mixin's own default, ``strict=False``,
    would leave weights that do not fit at their random start without a word).
    """

    @classmethod
    def _from_pretrained(cls, *, strict: bool = True, **kwargs):
        return super()._from_pretrained(strict=strict, **kwargs)

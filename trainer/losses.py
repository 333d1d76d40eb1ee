"""DeblurGAN's losses: WGAN-GP adversarial loss and the perceptual content loss.

Total generator loss (paper, eq. 1): L = L_GAN + lambda * L_X, lambda = 100,
with L_GAN = -D(G(I_B)) and L_X the squared distance of VGG19 conv3_3 feature
maps of G(I_B) and I_S (eq. 3).  The critic minimises
D(G(I_B)) - D(I_S) + lambda_gp * (||grad D(x_hat)||_2 - 1)^2 (Gulrajani et al.
2017), lambda_gp = 10.

D(x) below is the critic's score of an image: the mean of its PatchGAN map;
it enters the Wasserstein estimate and both losses.  The gradient penalty
comes in two forms (``GRADIENT_PENALTIES``):

* ``per-image`` -- Gulrajani et al.'s: (||grad_x D(x_hat)||_2 - 1)^2 per image,
  on the same scalar D the losses use, so the critic is held to a
  1-Lipschitz function of the whole image.
* ``per-pixel`` -- DeblurGAN's code (``DiscLossWGANGP.calc_gradient_penalty``):
  the gradient of the *sum* of the patch map, its norm taken over the colour
  channels at each pixel, (norm - 1)^2 averaged over pixels.  Each pixel's
  gradient is pushed to norm 1, so the gradient of D (the map's *mean*) over
  an H x W image settles near sqrt(H W) / (h w) instead of 1: about 0.21 at
  256 x 256 (a 35 x 35 map), 0.53 at 64 x 64 (11 x 11).  The adversarial
  gradient that reaches the generator is smaller by that factor relative to
  the content term -- the balance the paper's numbers were trained with.

Which form a preset uses, and why, is in docs/training.md.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainer.errors import TrainerError

# torchvision.models.vgg19().features[14] is conv3_3: indices 10, 12, 14 are the
# convs conv3_1..conv3_3, 11, 13, 15 their ReLUs.  DeblurGAN's ContentLoss keeps
# features[0..14] (``conv_3_3_layer = 14``), i.e. the conv output before its ReLU.
VGG19_CONV3_3 = 14

# ImageNet statistics the torchvision VGG19 weights were trained with (RGB, [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The file torchvision's VGG19_Weights.IMAGENET1K_V1 downloads into its hub cache.
VGG19_CACHE_NAME = "vgg19-dcbb9e9d.pth"

#: Content loss name -> its maker, f(*, vgg_weights, psnr_ceiling) -> nn.Module taking
#: (restored, sharp) of (B, 3, H, W) in [-1, 1] to a scalar; in the order `trainer fit
#: --content-loss` lists them.  Filled by ``@content_loss`` only.
CONTENT_LOSSES: dict[str, Callable[..., nn.Module]] = {}
GRADIENT_PENALTIES = ("per-image", "per-pixel")


def content_loss(name: str):
    """Register the decorated function as the maker of content loss ``name`` (see
    ``CONTENT_LOSSES``): a new content loss is one maker and this decorator;
    ``make_content_loss``, TrainConfig's check and ``trainer fit --content-loss``
    read the registry."""
    def register(maker):
        if name in CONTENT_LOSSES:
            raise ValueError(f"content loss {name!r} is registered twice")
        CONTENT_LOSSES[name] = maker
        return maker
    return register


class VGGWeightsError(TrainerError):
    """The VGG19 weights are missing or unusable (one-line message)."""


def critic_score(critic: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """D(x): (B, 3, H, W) -> (B,), the mean of the critic's patch map (float32
    under autocast, else the dtype of the critic)."""
    scores = critic(images)
    if scores.dtype in (torch.bfloat16, torch.float16):
        scores = scores.float()   # average in float32, not in 8 bits of mantissa
    return scores.flatten(1).mean(dim=1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor, form: str = "per-image") -> torch.Tensor:
    """The WGAN-GP penalty at x_hat_i = alpha_i real_i + (1 - alpha_i) fake_i.

    ``form="per-image"``: mean_i (||grad_x D(x_hat_i)||_2 - 1)^2, D the mean of
    the patch map.  ``form="per-pixel"`` (DeblurGAN's code): with g = grad_x of
    the *sum* of the patch map, mean over i, y, x of (||g[i, :, y, x]||_2 - 1)^2,
    the norm over the colour channels.

    real, fake: (B, 3, H, W); alpha: (B, 1, 1, 1) in [0, 1], one draw per
    sample.  Returns a scalar in the dtype of the inputs, differentiable with
    respect to the critic's parameters (create_graph=True).  Call it outside
    autocast: the double backward then runs in the inputs' precision.
    """
    if form not in GRADIENT_PENALTIES:
        raise ValueError(f"gradient penalty must be one of {', '.join(GRADIENT_PENALTIES)}, not {form!r}")
    x_hat = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    patch_map = critic(x_hat).flatten(1)
    # InstanceNorm works per sample, so the gradient of the batch sum with
    # respect to x_hat_i is the gradient of sample i's score alone.
    score = patch_map.mean(dim=1) if form == "per-image" else patch_map.sum(dim=1)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    if form == "per-image":
        norms = torch.linalg.vector_norm(grad.flatten(1), dim=1)
    else:
        norms = torch.linalg.vector_norm(grad, dim=1)   # (B, H, W): over the channels
    return ((norms - 1) ** 2).mean()


def critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor,
                gp_weight: float = 10.0, autocast_dtype: torch.dtype | None = None,
                gp_form: str = "per-image"):
    """WGAN-GP critic loss D(fake) - D(real) + gp_weight * GP.

    ``fake`` must be detached from the generator.  The two scores are computed
    in one batched pass (under autocast when ``autocast_dtype`` is given); the
    gradient penalty always runs in the inputs' precision (float32), because
    its double backward through InstanceNorm is where bfloat16's 8-bit
    mantissa would bite; ``gp_form`` picks its form (see
    ``gradient_penalty``).  Returns (loss, stats) with stats the detached scalars
    critic_loss, wasserstein (D(real) - D(fake), the critic's estimate of the
    distance) and gradient_penalty.
    """
    # No weight cache: the critic runs once in the block, and CUDA-graph capture
    # (trainer.graphs) cannot take the cache's allocations.
    with torch.autocast(real.device.type, dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None, cache_enabled=False):
        d_real, d_fake = critic_score(critic, torch.cat([real, fake])).chunk(2)
    wasserstein = (d_real - d_fake).mean()
    penalty = gradient_penalty(critic, real, fake, alpha, gp_form)
    loss = -wasserstein + gp_weight * penalty
    stats = {"critic_loss": loss.detach(), "wasserstein": wasserstein.detach(),
             "gradient_penalty": penalty.detach()}
    return loss, stats


def generator_adversarial_loss(critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """-D(G(I_B)), averaged over the batch (float32 under autocast)."""
    return -critic_score(critic, fake).mean()


class PerceptualLoss(nn.Module):
    """Mean squared difference of VGG19 conv3_3 feature maps (paper, eq. 3).

    Inputs (B, 3, H, W) in [-1, 1] are mapped to [0, 1] and normalised with the
    ImageNet mean and std the VGG weights expect.  The VGG is frozen; features
    of the sharp target are computed without a graph.
    """

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        # The VGG has no dropout or batch norm left after slicing, but stay in
        # eval mode whatever the caller does to the module tree.
        super().train(mode)
        self.features.eval()
        return self

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(((images + 1) / 2 - self.mean) / self.std)

    def forward(self, restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self._features(sharp)
        return F.mse_loss(self._features(restored).float(), target.float())


def vgg19_to_conv3_3() -> nn.Sequential:
    """torchvision's ``vgg19().features[:15]`` (up to conv3_3), built without the
    400 MB classifier.  Index i here is index i there, so state-dict keys match."""
    def conv(cin: int, cout: int) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, kernel_size=3, padding=1)

    return nn.Sequential(
        conv(3, 64), nn.ReLU(inplace=True), conv(64, 64), nn.ReLU(inplace=True),        # 0-3: conv1_x
        nn.MaxPool2d(2, 2),                                                           # 4
        conv(64, 128), nn.ReLU(inplace=True), conv(128, 128), nn.ReLU(inplace=True),  # 5-8: conv2_x
        nn.MaxPool2d(2, 2),                                                           # 9
        conv(128, 256), nn.ReLU(inplace=True), conv(256, 256), nn.ReLU(inplace=True),  # 10-13
        conv(256, 256),                                                               # 14: conv3_3
    )


def cached_vgg19_path() -> Path:
    """Where torchvision keeps VGG19_Weights.IMAGENET1K_V1 once downloaded ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_CACHE_NAME


def find_vgg19_weights(path: str | os.PathLike | None = None) -> Path:
    """The weights file to use: ``path`` if given, else torchvision's cached copy.

    Never downloads.  Raises VGGWeightsError (one line, saying how to get the
    weights) when neither exists.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise VGGWeightsError(f"--vgg-weights {path}: no such file")
        return path
    cached = cached_vgg19_path()
    if cached.is_file():
        return cached
    raise VGGWeightsError(
        "VGG19 weights for the perceptual loss not found: pass --vgg-weights FILE "
        "(a state dict of torchvision's vgg19), or cache them once online with "
        "python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\" "
        f"(saves {cached}), or train with --content-loss l1|l2")


def load_vgg19_conv3_3(path: str | os.PathLike | None = None) -> nn.Sequential:
    """VGG19 features up to conv3_3 with weights from ``path`` or torchvision's cache.

    Accepts a full torchvision vgg19 state dict (keys ``features.N.weight``,
    classifier ignored) or one of the sliced features (keys ``N.weight``, any
    N >= 15 ignored).  Loaded with ``weights_only=True``.
    """
    path = find_vgg19_weights(path)
    try:
        try:
            # Memory-mapped: of a full 550 MB vgg19 file only the ~7 MB of
            # conv1_1..conv3_3 weights are read from disk.
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:   # files in the pre-1.6 (non-zip) format cannot be mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and unpickler errors all mean "not a state dict"
        raise VGGWeightsError(f"{path}: not a readable PyTorch state dict "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(state, dict):
        raise VGGWeightsError(f"{path}: holds a {type(state).__name__}, not a state dict")
    features = vgg19_to_conv3_3()
    wanted = features.state_dict()
    picked = {}
    for key, ref in wanted.items():
        value = state.get(f"features.{key}", state.get(key))
        if not isinstance(value, torch.Tensor):
            raise VGGWeightsError(f"{path}: not a VGG19 state dict (no features.{key})")
        if value.shape != ref.shape:
            raise VGGWeightsError(f"{path}: features.{key} has shape {tuple(value.shape)}, "
                                  f"VGG19 has {tuple(ref.shape)}")
        picked[key] = value.float().clone()   # detach from the mapped file
    features.load_state_dict(picked)
    return features


class PSNRLoss(nn.Module):
    """Minus the PSNR of each image, averaged over the batch (HINet's and NAFNet's
    "PSNR loss"), with a ceiling: mean_i 10 log10(MSE_i + 10^(-ceiling / 10)),
    MSE_i over image i's pixels and channels on the [0, 1] scale (inputs are in
    [-1, 1]); in dB, negative, >= -ceiling.

    Why: the mean PSNR over pairs weighs an image's error by 1 / MSE_i (the
    derivative of 10 log10 MSE_i), so a nearly sharp pair (DeblurGAN's exposure
    fraction 1/10 gives inputs up to ~58 dB) counts far more per grey level
    than a heavily blurred one.  L1 and L2 weigh every pixel alike, and a
    small model trained on them learns to sharpen what is already sharp
    (bench/learning.py: -1.0 dB on held-out pairs above 35 dB while it gained
    +0.45 dB below).  The ceiling (40 dB by default) stops images that are
    already that close from taking over: without it their weights, up to
    100x those of blurred images, dominate Adam's step-size normalisation and
    the model barely leaves the identity (docs/training.md has both runs).
    """

    def __init__(self, ceiling_db: float = 40.0):
        super().__init__()
        self.ceiling_db = float(ceiling_db)

    def forward(self, restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        mse = ((restored.float() - sharp.float()) ** 2).flatten(1).mean(dim=1) / 4.0
        floor = 10.0 ** (-self.ceiling_db / 10.0)
        return (10.0 / math.log(10.0) * torch.log(mse + floor)).mean()


@content_loss("perceptual")
def _perceptual(*, vgg_weights: str | os.PathLike | None = None, **_) -> nn.Module:
    """The paper's: MSE of VGG19 conv3_3 features (``PerceptualLoss``)."""
    return PerceptualLoss(load_vgg19_conv3_3(vgg_weights))


@content_loss("l1")
def _l1(**_) -> nn.Module:
    """Mean absolute error of the pixels."""
    return nn.L1Loss()


@content_loss("l2")
def _l2(**_) -> nn.Module:
    """Mean squared error of the pixels."""
    return nn.MSELoss()


@content_loss("psnr")
def _psnr(*, psnr_ceiling: float = 40.0, **_) -> nn.Module:
    """Minus the per-image PSNR in dB, capped at ``psnr_ceiling`` (``PSNRLoss``)."""
    return PSNRLoss(psnr_ceiling)


def make_content_loss(kind: str, vgg_weights: str | os.PathLike | None = None,
                      psnr_ceiling: float = 40.0) -> nn.Module:
    """The content loss L_X(restored, sharp) -> scalar: 'perceptual' (VGG19 conv3_3
    MSE, the paper's), 'l1' or 'l2' (pixel-wise mean absolute / squared error),
    'psnr' (minus the per-image PSNR in dB, capped at ``psnr_ceiling`` dB, see
    ``PSNRLoss``), or any other of ``CONTENT_LOSSES``; each maker ignores the
    settings it does not use."""
    if kind not in CONTENT_LOSSES:
        raise ValueError(f"content loss must be one of {', '.join(CONTENT_LOSSES)}, not {kind!r}")
    return CONTENT_LOSSES[kind](vgg_weights=vgg_weights, psnr_ceiling=psnr_ceiling)

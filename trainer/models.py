"""The DeblurGAN networks (Kupyn et al., CVPR 2018, section 3 and figure 3).

Generator: a ResNet encoder-decoder that predicts the residual between the
blurred input and the sharp image (the paper's "ResOut" global skip).
Critic: a PatchGAN that scores overlapping patches; with WGAN-GP it has no
sigmoid and its scores are unbounded.

Images are float tensors (B, 3, H, W) in [-1, 1] (see ``trainer.tensors``).
Layer widths and block counts are arguments so that the ``tiny`` preset can
shrink them; the defaults are the paper's.
"""
from __future__ import annotations

import torch
from torch import nn

# Both networks use InstanceNorm without affine parameters (DeblurGAN's
# ``get_norm_layer('instance')``), so every conv keeps its bias.


GENERATOR_INITS = ("paper", "identity")
GENERATOR_NORMS = ("instance", "none")


def _instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


class InstanceNorm(nn.Module):
    """InstanceNorm without affine parameters, written as elementwise operations:
    (B, C, H, W) -> same shape, dtype and memory layout; each (sample, channel)
    plane minus its mean, over its standard deviation (biased, eps 1e-5), as
    ``nn.InstanceNorm2d(affine=False)`` computes it.

    The critic's norm: the gradient penalty differentiates the critic twice,
    and the double backward of ``nn.InstanceNorm2d`` (PyTorch's composite
    batch-norm double backward) dispatches about 2.5x the operations of this
    form's (bench/launches.py).  Elementwise operations also keep a
    channels_last input channels_last, where InstanceNorm2d returns NCHW.
    """

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return _instance_norm(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"generator norm must be one of {', '.join(GENERATOR_NORMS)}, not {kind!r}")


class ResBlock(nn.Module):
    """conv3x3-IN-ReLU-Dropout-conv3x3-IN plus the block's input.

    DeblurGAN's released code builds this list with an operator-precedence slip
    (``a + b + [Dropout] if use_dropout else [] + conv2``) that silently drops
    the second conv whenever dropout is on; the paper's block has both convs.
    """

    def __init__(self, channels: int, dropout: float = 0.5, norm: str = "instance"):
        super().__init__()
        layers = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            _norm(norm, channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            _norm(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """DeblurGAN generator: I_S = clamp(I_B + G(I_B), -1, 1).

    7x7 conv (ngf) -> two stride-2 3x3 convs (2 ngf, 4 ngf) -> ``n_blocks``
    ResBlocks at 4 ngf -> two stride-2 transposed 3x3 convs (2 ngf, ngf) ->
    7x7 conv to 3 channels -> tanh. Reflection padding; InstanceNorm and ReLU
    after every conv but the last.

    Input and output: (B, 3, H, W) float in [-1, 1], with H and W multiples of
    4 (the two stride-2 stages) and at least 8 (reflection padding at 1/4
    resolution needs 2 pixels); ``trainer.evaluate.restore`` pads other sizes.

    ``init`` (see ``GENERATOR_INITS``): ``"paper"`` draws every conv from
    N(0, 0.02) (DeblurGAN's ``weights_init``); the untrained residual then has
    a standard deviation of about 0.4, so the first output sits 13-15 dB below
    its own input and training first has to unlearn that noise.
    ``"identity"`` does the same and then zeroes the last conv: tanh(0) = 0, so
    the untrained generator returns its input exactly and every step starts
    from "do nothing" (the zero-initialised residual branch of Goyal et al.
    2017 and ControlNet's zero convolution).  The gradients still reach every
    layer from the second step on: the last conv's own gradient is not zero.

    ``skips=True`` (not the paper's) adds the encoder's features to the
    decoder's at the same resolution, after each transposed conv's ReLU: ngf
    channels at full resolution, 2 ngf at half, as in a U-Net (Ronneberger et
    al. 2015) but added, not concatenated, so the weights and their shapes are
    the paper's.  Without them every full-resolution detail of the residual has
    to be rebuilt from the 1/4-resolution bottleneck; with them a small
    generator learns in minutes what it did not learn in ten
    (docs/training.md, "U-Net skips").
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, dropout: float = 0.5, init: str = "paper",
                 norm: str = "instance", skips: bool = False):
        super().__init__()
        self.skips = skips
        layers = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, kernel_size=7),
            _norm(norm, ngf),
            nn.ReLU(inplace=True),
        ]
        encoder = []                         # the ReLUs whose full- and half-resolution features skip
        for mult in (1, 2):  # downsampling: ngf -> 2 ngf -> 4 ngf
            encoder.append(len(layers) - 1)
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1),
                _norm(norm, ngf * mult * 2),
                nn.ReLU(inplace=True),
            ]
        layers += [ResBlock(ngf * 4, dropout, norm) for _ in range(n_blocks)]
        decoder = []                         # the ReLUs at the same resolutions, where they are added
        for mult in (4, 2):  # upsampling: 4 ngf -> 2 ngf -> ngf
            # output_padding=1 makes each stage exactly double the size, so the
            # residual lines up with the input for every multiple of 4.
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2,
                                   padding=1, output_padding=1),
                _norm(norm, ngf * mult // 2),
                nn.ReLU(inplace=True),
            ]
            decoder.append(len(layers) - 1)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, kernel_size=7), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        # Plain ints, so that TorchScript (trainer export) compiles the forward.
        self._full_from, self._half_from = encoder
        self._half_to, self._full_to = decoder
        init_weights(self)
        if norm == "none":
            # N(0, 0.02) is only safe behind a norm: without one the signal
            # shrinks ~4x per conv.  He init keeps it, and each ResBlock starts
            # as the identity (its last conv zero, as in Fixup) so the blocks
            # do not double the variance.
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            for block in self.body:
                if isinstance(block, ResBlock):
                    nn.init.zeros_(block.body[-2].weight)   # [..., conv, norm]
        if init == "identity":
            last = self.body[-2]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        elif init != "paper":
            raise ValueError(f"generator init must be one of {', '.join(GENERATOR_INITS)}, not {init!r}")

    def forward(self, blurred: torch.Tensor) -> torch.Tensor:
        # ResOut: the network learns the residual I_S - I_B, which is what makes
        # DeblurGAN train faster and generalise better (paper, section 3.2).
        if not self.skips:
            return torch.clamp(blurred + self.body(blurred), -1.0, 1.0)
        x = full = half = blurred
        for index, layer in enumerate(self.body):
            x = layer(x)
            if index == self._full_from:
                full = x
            elif index == self._half_from:
                half = x
            elif index == self._half_to:
                x = x + half
            elif index == self._full_to:
                x = x + full
        return torch.clamp(blurred + x, -1.0, 1.0)


class Critic(nn.Module):
    """PatchGAN critic: (B, 3, H, W) image in [-1, 1] -> (B, 1, h, w) scores.

    4x4 convs ndf-2ndf-4ndf-8ndf-1, the first three with stride 2; InstanceNorm
    and LeakyReLU(0.2) after every conv except the first (no norm) and the last
    (no activation, no sigmoid: a WGAN critic).  Padding is 2, as in DeblurGAN's
    ``NLayerDiscriminator`` (``ceil((4 - 1) / 2)``), so for an input side n the
    map side is ((n // 2 + 1) // 2 + 1) // 2 + 1 + 2 (35 for 256).

    Like DeblurGAN's code (``define_D(opt.output_nc, ...)``) the critic sees
    only the restored or sharp image, not the blurred one; the condition enters
    through the generator's input and the content loss.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(3, ndf, kernel_size=4, stride=2, padding=2), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            new_width = ndf * min(2 ** n, 8)
            layers += [
                nn.Conv2d(width, new_width, kernel_size=4, stride=stride, padding=2),
                InstanceNorm(),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = new_width
        layers.append(nn.Conv2d(width, 1, kernel_size=4, stride=1, padding=2))
        self.body = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)


def init_weights(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02), biases 0: DeblurGAN's ``weights_init``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

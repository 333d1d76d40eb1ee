"""The DeblurGAN generator and critic: shapes, structure (parameter counts
against the paper's layer list) and the global skip."""
import pytest
import torch
from torch import nn

from trainer.models import Critic, Generator, InstanceNorm, ResBlock, count_parameters


def conv_params(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


@pytest.mark.parametrize("size", [(32, 48), (36, 44), (40, 28), (8, 8)])
def test_generator_keeps_the_input_size(size):
    # 36 / 4 = 9 and 44 / 4 = 11 are odd at the bottleneck; 8 is the smallest side.
    torch.manual_seed(0)
    g = Generator(ngf=8, n_blocks=2).eval()
    x = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert y.min() >= -1 and y.max() <= 1


def _critic_side(n):
    # Independent conv arithmetic: out = floor((n + 2 p - k) / s) + 1 with k = 4, p = 2.
    for stride in (2, 2, 2, 1, 1):
        n = (n + 2 * 2 - 4) // stride + 1
    return n


@pytest.mark.parametrize("size", [(32, 48), (36, 44), (37, 53), (256, 256)])
def test_critic_map_shape(size):
    c = Critic(ndf=8)
    with torch.no_grad():
        y = c(torch.zeros(3, 3, *size))
    assert y.shape == (3, 1, _critic_side(size[0]), _critic_side(size[1]))
    assert _critic_side(256) == 35


def test_resblock_has_two_convs():
    # DeblurGAN's released block loses its second conv to a precedence slip; ours has both.
    for channels in (4, 16, 256):
        block = ResBlock(channels, dropout=0.5)
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 2
        assert count_parameters(block) == 2 * conv_params(channels, channels, 3)
        assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in block.modules())


def test_full_generator_parameter_count_matches_the_paper_layout():
    ngf, blocks = 64, 9
    expected = (conv_params(3, ngf, 7) + conv_params(ngf, 2 * ngf, 3) + conv_params(2 * ngf, 4 * ngf, 3)
                + blocks * 2 * conv_params(4 * ngf, 4 * ngf, 3)
                + conv_params(4 * ngf, 2 * ngf, 3) + conv_params(2 * ngf, ngf, 3)  # transposed convs
                + conv_params(ngf, 3, 7))
    assert count_parameters(Generator(ngf, blocks)) == expected
    assert sum(isinstance(m, ResBlock) for m in Generator(ngf, blocks).modules()) == blocks


def test_full_critic_parameter_count_matches_the_paper_layout():
    widths = [3, 64, 128, 256, 512, 1]
    expected = sum(conv_params(a, b, 4) for a, b in zip(widths, widths[1:]))
    assert count_parameters(Critic(64)) == expected
    # Norm after every conv but the first and the last; no sigmoid at the end.
    layers = list(Critic(64).body)
    assert isinstance(layers[1], nn.LeakyReLU) and isinstance(layers[-1], nn.Conv2d)
    assert sum(isinstance(m, InstanceNorm) for m in layers) == 3


def test_critic_instance_norm_matches_torch_and_keeps_the_layout():
    # The critic's elementwise InstanceNorm is nn.InstanceNorm2d's function, first and
    # second derivatives included (the gradient penalty takes both).
    x = torch.randn(2, 8, 9, 7, dtype=torch.float64, requires_grad=True)
    ours, torchs = InstanceNorm(), nn.InstanceNorm2d(8)
    torch.testing.assert_close(ours(x), torchs(x))
    for norm in (ours, torchs):
        (g,) = torch.autograd.grad((norm(x) ** 3).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad((g ** 2).sum(), x)
        if norm is ours:
            first, second = g, gg
    torch.testing.assert_close(first, g)
    torch.testing.assert_close(second, gg)
    nhwc = torch.randn(2, 8, 9, 7).contiguous(memory_format=torch.channels_last)
    assert ours(nhwc).is_contiguous(memory_format=torch.channels_last)


def test_global_skip_adds_the_input_and_clamps():
    torch.manual_seed(1)
    g = Generator(ngf=8, n_blocks=1).eval()
    last = [m for m in g.modules() if isinstance(m, nn.Conv2d)][-1]
    x = torch.rand(1, 3, 16, 20) * 2 - 1
    with torch.no_grad():
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        assert torch.equal(g(x), x)              # tanh(0) = 0: output is the input
        last.bias.fill_(0.5)                     # constant residual tanh(0.5), then clamped
        expected = torch.clamp(x + torch.tanh(torch.tensor(0.5)), -1, 1)
        assert torch.allclose(g(x), expected, atol=1e-6)
        assert g(x).max() == 1.0


def test_dropout_only_in_training_mode():
    torch.manual_seed(2)
    g = Generator(ngf=8, n_blocks=2)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        g.train()
        assert not torch.equal(g(x), g(x))
        g.eval()
        assert torch.equal(g(x), g(x))


def test_weights_initialised_as_deblurgan():
    torch.manual_seed(3)
    convs = [m for m in Generator(64, 9).modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.mean().item()) < 1e-3
    assert abs(weights.std().item() - 0.02) < 1e-3
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs)


def test_identity_start_returns_its_input_exactly():
    torch.manual_seed(0)
    g = Generator(ngf=8, n_blocks=2, init="identity").train()   # dropout on: still the identity
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    assert torch.equal(g(x), x)
    # Every layer but the last keeps DeblurGAN's N(0, 0.02) draw: the same
    # weights as the paper's start, so the two differ in the last conv only.
    torch.manual_seed(0)
    paper = Generator(ngf=8, n_blocks=2, init="paper")
    differing = [k for k, v in paper.state_dict().items() if not torch.equal(v, g.state_dict()[k])]
    assert differing == [f"body.{len(g.body) - 2}.weight"]   # the bias is 0 in both


def test_paper_start_is_far_from_the_identity():
    # What the identity start avoids: the untrained residual is noise of std ~0.4 on [-1, 1].
    torch.manual_seed(0)
    g = Generator(ngf=16, n_blocks=2, init="paper").eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        residual = g.body(x)
    assert 0.2 < float(residual.std()) < 0.7


def test_identity_start_learns_from_its_first_steps():
    # The zero last conv still gets a gradient, and after one step every layer does.
    torch.manual_seed(0)
    g = Generator(ngf=8, n_blocks=1, dropout=0, init="identity")
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    for _ in range(2):
        opt.zero_grad()
        (g(x) - y).abs().mean().backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for name, p in g.named_parameters()
               if name.endswith("weight"))


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="paper, identity"):
        Generator(ngf=8, n_blocks=1, init="zeros")


def skipped_forward(g: Generator, x: torch.Tensor) -> torch.Tensor:
    """The U-Net forward written out stage by stage, the reference for ``skips=True``."""
    b = list(g.body)
    full = nn.Sequential(*b[:4])(x)                  # pad, 7x7 conv, norm, ReLU: ngf at full resolution
    half = nn.Sequential(*b[4:7])(full)              # stride-2 conv: 2 ngf at 1/2
    quarter = nn.Sequential(*b[7:10])(half)          # stride-2 conv: 4 ngf at 1/4
    blocks = [m for m in b if isinstance(m, ResBlock)]
    y = nn.Sequential(*blocks)(quarter)
    up = 10 + len(blocks)
    y = nn.Sequential(*b[up:up + 3])(y) + half       # transposed conv to 1/2, plus the encoder's 1/2
    y = nn.Sequential(*b[up + 3:up + 6])(y) + full   # transposed conv to full, plus the encoder's full
    y = nn.Sequential(*b[up + 6:])(y)                # pad, 7x7 conv to 3, tanh
    return torch.clamp(x + y, -1, 1)


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_skips_add_the_encoders_features_to_the_decoders(norm):
    torch.manual_seed(0)
    g = Generator(ngf=8, n_blocks=3, dropout=0, norm=norm, skips=True).eval()
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        expected = skipped_forward(g, x)
        assert torch.allclose(g(x), expected, atol=1e-6)
        # The skips change the function, not the weights: the same state dict, another output.
        plain = Generator(ngf=8, n_blocks=3, dropout=0, norm=norm, skips=False).eval()
        plain.load_state_dict(g.state_dict())
        assert (plain(x) - expected).abs().max() > 1e-3


def test_identity_start_with_skips_returns_its_input_exactly():
    torch.manual_seed(0)
    g = Generator(ngf=8, n_blocks=2, dropout=0, init="identity", norm="none", skips=True)
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    assert torch.equal(g(x), x)

"""WGAN-GP against finite differences, and the perceptual loss's VGG19 conv3_3
against torchvision's own vgg19, loaded through the real weight-file code."""
import pytest
import torch
import torchvision

from trainer import losses
from trainer.losses import (
    VGG19_CONV3_3,
    PerceptualLoss,
    VGGWeightsError,
    critic_loss,
    generator_adversarial_loss,
    gradient_penalty,
    load_vgg19_conv3_3,
    make_content_loss,
    vgg19_to_conv3_3,
)
from trainer.models import Critic


def _critic(seed=0):
    torch.manual_seed(seed)
    critic = Critic(ndf=4).double()
    for p in critic.parameters():  # larger weights than the N(0, 0.02) init: gradients far from 0
        p.data.normal_(0, 0.3)
    return critic


def _fd_input_gradient(critic, x, eps=1e-6, reduce="mean"):
    """d mean(D(x)) / dx (or of the map's sum) by central differences, all
    perturbations in one batch (InstanceNorm is per sample, so batching changes nothing)."""
    n = x.numel()
    basis = torch.eye(n, dtype=x.dtype).view(n, *x.shape)
    with torch.no_grad():
        plus = getattr(critic(x + eps * basis).flatten(1), reduce)(1)
        minus = getattr(critic(x - eps * basis).flatten(1), reduce)(1)
    return ((plus - minus) / (2 * eps)).view(x.shape)


def _fd_penalty(critic, real, fake, alpha):
    terms = []
    for i in range(real.shape[0]):
        x_hat = alpha[i] * real[i] + (1 - alpha[i]) * fake[i]
        grad = _fd_input_gradient(critic, x_hat)
        terms.append((grad.norm() - 1) ** 2)
    return torch.stack(terms).mean()


def test_gradient_penalty_matches_finite_differences():
    critic = _critic()
    torch.manual_seed(1)
    real = torch.rand(2, 3, 12, 12, dtype=torch.float64) * 2 - 1
    fake = torch.rand(2, 3, 12, 12, dtype=torch.float64) * 2 - 1
    alpha = torch.tensor([0.2, 0.7], dtype=torch.float64).view(2, 1, 1, 1)  # one draw per sample
    got = gradient_penalty(critic, real, fake, alpha)
    want = _fd_penalty(critic, real, fake, alpha)
    assert want > 1e-3  # a penalty that is not trivially 0
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-9)
    # Per-sample interpolation: swapping the alphas changes the penalty.
    swapped = gradient_penalty(critic, real, fake, alpha.flip(0))
    assert not torch.allclose(swapped, got)


def test_gradient_penalty_parameter_gradient_matches_finite_differences():
    # The penalty must be differentiable in the critic's weights (double backward).
    critic = _critic(seed=4)
    torch.manual_seed(5)
    real = torch.rand(1, 3, 12, 12, dtype=torch.float64) * 2 - 1
    fake = torch.rand(1, 3, 12, 12, dtype=torch.float64) * 2 - 1
    alpha = torch.full((1, 1, 1, 1), 0.4, dtype=torch.float64)
    gradient_penalty(critic, real, fake, alpha).backward()
    eps = 1e-6
    # (The last bias shifts D but not its input gradient, so it gets no penalty gradient.)
    for param in (critic.body[0].weight, critic.body[5].weight, critic.body[-1].weight):
        for index in [(0,) * param.dim(), tuple(s - 1 for s in param.shape)]:
            analytic = param.grad[index].item()
            original = param.data[index].item()
            values = []
            for sign in (1, -1):
                param.data[index] = original + sign * eps
                values.append(gradient_penalty(critic, real, fake, alpha).item())
            param.data[index] = original
            numeric = (values[0] - values[1]) / (2 * eps)
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_critic_and_generator_losses_against_separate_passes():
    critic = _critic(seed=2)
    torch.manual_seed(3)
    real = torch.rand(2, 3, 16, 16, dtype=torch.float64) * 2 - 1
    fake = torch.rand(2, 3, 16, 16, dtype=torch.float64) * 2 - 1
    alpha = torch.rand(2, 1, 1, 1, dtype=torch.float64)
    loss, stats = critic_loss(critic, real, fake, alpha, gp_weight=10.0)
    d_real = critic(real).mean()   # mean over batch and patches
    d_fake = critic(fake).mean()
    penalty = _fd_penalty(critic, real, fake, alpha)
    assert torch.allclose(loss, d_fake - d_real + 10 * penalty, rtol=1e-6)
    assert torch.allclose(stats["wasserstein"], d_real - d_fake)
    assert torch.allclose(stats["gradient_penalty"], penalty, rtol=1e-6)
    assert torch.allclose(generator_adversarial_loss(critic, fake), -d_fake, rtol=1e-9)


def test_critic_loss_under_bf16_autocast_keeps_the_penalty_exact():
    torch.manual_seed(6)
    critic = Critic(ndf=8)
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    fake = torch.rand(2, 3, 16, 16) * 2 - 1
    alpha = torch.rand(2, 1, 1, 1)
    loss32, stats32 = critic_loss(critic, real, fake, alpha)
    loss16, stats16 = critic_loss(critic, real, fake, alpha, autocast_dtype=torch.bfloat16)
    assert loss16.dtype == torch.float32
    assert torch.equal(stats16["gradient_penalty"], stats32["gradient_penalty"])  # float32 in both
    assert stats16["wasserstein"].item() == pytest.approx(stats32["wasserstein"].item(), abs=2e-2)


# --- perceptual loss ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_vgg():
    """torchvision's vgg19 features, randomly initialised (seeded), as the independent reference."""
    torch.manual_seed(7)
    return torchvision.models.vgg19(init_weights=False).features.eval()


def test_layer_14_is_conv3_3_before_its_relu(reference_vgg):
    ours = vgg19_to_conv3_3()
    assert len(ours) == VGG19_CONV3_3 + 1
    for mine, theirs in zip(ours, reference_vgg):
        assert type(mine) is type(theirs)
        if isinstance(mine, torch.nn.Conv2d):
            assert mine.weight.shape == theirs.weight.shape and mine.padding == theirs.padding
    convs = [i for i, m in enumerate(reference_vgg) if isinstance(m, torch.nn.Conv2d)]
    assert convs[6] == VGG19_CONV3_3                     # conv1_1, 1_2, 2_1, 2_2, 3_1, 3_2, 3_3
    assert isinstance(reference_vgg[VGG19_CONV3_3 + 1], torch.nn.ReLU)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory, reference_vgg):
    folder = tmp_path_factory.mktemp("vgg")
    full = {f"features.{k}": v for k, v in reference_vgg.state_dict().items()}
    # The classifier of a real vgg19 file (400 MB): zeros are as good as weights here.
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg19().classifier.state_dict().items()}
    full.update({f"classifier.{k}": torch.zeros(s) for k, s in shapes.items()})
    torch.save(full, folder / "vgg19_full.pth")
    sliced = {k: v for k, v in reference_vgg[:VGG19_CONV3_3 + 1].state_dict().items()}
    torch.save(sliced, folder / "vgg19_conv3_3.pth")
    return folder


@pytest.mark.parametrize("name", ["vgg19_full.pth", "vgg19_conv3_3.pth"])
def test_perceptual_loss_matches_torchvision(weight_files, reference_vgg, name):
    loss = make_content_loss("perceptual", weight_files / name)
    torch.manual_seed(8)
    restored = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    sharp = torch.rand(2, 3, 32, 32) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        f = reference_vgg[:15]
        want = torch.mean((f(((restored + 1) / 2 - mean) / std) - f(((sharp + 1) / 2 - mean) / std)) ** 2)
    got = loss(restored, sharp)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    assert restored.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())  # the VGG stays frozen
    assert loss(sharp, sharp).item() == 0.0


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(VGGWeightsError) as err:
        make_content_loss("perceptual")
    message = str(err.value)
    assert "\n" not in message and "--vgg-weights" in message and "IMAGENET1K_V1" in message
    with pytest.raises(VGGWeightsError, match="no such file"):
        load_vgg19_conv3_3(tmp_path / "nope.pth")


def test_cached_weights_are_found_in_torch_home(tmp_path, monkeypatch, weight_files):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = losses.cached_vgg19_path()
    assert cached == tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes((weight_files / "vgg19_conv3_3.pth").read_bytes())
    assert isinstance(make_content_loss("perceptual"), PerceptualLoss)


def test_broken_weight_files_are_one_line_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(VGGWeightsError, match="not a readable"):
        load_vgg19_conv3_3(garbage)
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong)
    with pytest.raises(VGGWeightsError, match="not a VGG19 state dict"):
        load_vgg19_conv3_3(wrong)
    shapes = tmp_path / "shapes.pth"
    state = vgg19_to_conv3_3().state_dict()
    state["14.weight"] = torch.zeros(128, 256, 3, 3)
    torch.save(state, shapes)
    with pytest.raises(VGGWeightsError, match="features.14.weight has shape"):
        load_vgg19_conv3_3(shapes)


def test_pixel_content_losses():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert make_content_loss("l1")(a, b).item() == pytest.approx(0.5)
    assert make_content_loss("l2")(a, b).item() == pytest.approx(0.25)
    with pytest.raises(ValueError):
        make_content_loss("l3")


def test_per_pixel_gradient_penalty_is_deblurgans_formula_by_finite_differences():
    # DeblurGAN: gradients of the map's sum, norm over channels at each pixel,
    # (norm - 1)^2 averaged over pixels and images.
    critic = _critic(seed=2)
    torch.manual_seed(3)
    real = torch.rand(2, 3, 10, 10, dtype=torch.float64) * 2 - 1
    fake = torch.rand(2, 3, 10, 10, dtype=torch.float64) * 2 - 1
    alpha = torch.tensor([0.3, 0.9], dtype=torch.float64).view(2, 1, 1, 1)
    terms = []
    for i in range(2):
        grad = _fd_input_gradient(critic, alpha[i] * real[i] + (1 - alpha[i]) * fake[i], reduce="sum")
        per_pixel = torch.sqrt((grad ** 2).sum(dim=0))          # (H, W)
        terms.append(((per_pixel - 1) ** 2).flatten())
    want = torch.cat(terms).mean()
    got = gradient_penalty(critic, real, fake, alpha, "per-pixel")
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-9)
    # A different quantity from the per-image form on the same inputs.
    assert not torch.allclose(gradient_penalty(critic, real, fake, alpha, "per-image"), got, rtol=1e-2)


def test_unknown_gradient_penalty_form_is_refused():
    critic = _critic()
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="per-image, per-pixel"):
        gradient_penalty(critic, x, x, torch.ones(1, 1, 1, 1, dtype=torch.float64), "per-patch")


def test_psnr_loss_is_minus_the_mean_psnr_of_the_images_below_its_ceiling():
    import numpy as np

    from trainer.losses import PSNRLoss
    from trainer.metrics import psnr

    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (2, 12, 12, 3), dtype=np.uint8)
    noisy = np.clip(sharp + rng.normal(0, [[[[4.0]]], [[[20.0]]]], sharp.shape), 0, 255).round().astype(np.uint8)
    to_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).double() / 127.5 - 1  # noqa: E731
    want = -np.mean([psnr(noisy[i], sharp[i]) for i in range(2)])          # 8-bit PSNRs of ~36 and ~22 dB
    got = PSNRLoss(ceiling_db=200.0)(to_tensor(noisy), to_tensor(sharp))
    assert float(got) == pytest.approx(want, rel=1e-6)
    # The ceiling: an exact match scores -ceiling, not -inf, and a 36 dB image
    # counts less than its PSNR against a 40 dB ceiling.
    assert float(PSNRLoss()(to_tensor(sharp), to_tensor(sharp))) == pytest.approx(-40.0)
    capped = PSNRLoss()(to_tensor(noisy[:1]), to_tensor(sharp[:1]))
    assert -psnr(noisy[0], sharp[0]) < float(capped) < -psnr(noisy[0], sharp[0]) + 2


def test_psnr_ceiling_is_a_setting():
    """--psnr-ceiling: an exact match scores -ceiling; the paper's losses ignore it; 0 or > 100 dB refused."""
    from trainer.config import ConfigError, make_configs
    from trainer.losses import make_content_loss

    x = torch.zeros(2, 3, 8, 8)
    assert float(make_content_loss("psnr")(x, x)) == pytest.approx(-40.0)
    assert float(make_content_loss("psnr", psnr_ceiling=55.0)(x, x)) == pytest.approx(-55.0)
    # 1 grey level of error (48.13 dB) is ~8 dB short of the ceiling at 40 dB, 1.3 dB at 55.
    y = x + 2 / 255
    assert float(make_content_loss("psnr", psnr_ceiling=55.0)(y, x)) == pytest.approx(-47.3, abs=0.1)
    assert float(make_content_loss("psnr")(y, x)) == pytest.approx(-39.38, abs=0.01)
    assert isinstance(make_content_loss("l1", psnr_ceiling=55.0), torch.nn.L1Loss)
    for bad in (0.0, 101.0):
        with pytest.raises(ConfigError, match="psnr_ceiling"):
            make_configs("tiny", {"psnr_ceiling": bad})

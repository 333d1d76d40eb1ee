"""Issue 21, part 6: every name the trainer offers has one home.  A metric or a content loss
is one function and its decorator; the command line's choices and help lists are read from
the registries; the architecture settings are listed once; eval and deblur resolve their
device without the training code."""
import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cli
from trainer import commands, config, losses, metrics
from trainer.config import ARCHITECTURE_FIELDS, PRESETS, ConfigError, TrainConfig
from trainer.models import Critic, Generator

ROOT = Path(__file__).resolve().parents[1]


def _help(command: str) -> str:
    result = CliRunner().invoke(cli.trainer, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())   # wrapping aside


def _choices(command: str, name: str) -> tuple:
    (param,) = [p for p in cli.trainer.commands[command].params if p.name == name]
    return tuple(param.type.choices)


# --- metrics -----------------------------------------------------------------------------
@pytest.fixture
def extra_metric():
    """A metric registered by the decorator for one test, then removed."""
    @metrics.metric("mean_abs", "mean absolute difference, grey levels (a test's)")
    def mean_abs(restored, sharp):
        return float(np.abs(restored.astype(float) - sharp.astype(float)).mean())

    yield mean_abs
    del metrics.METRICS["mean_abs"], metrics.DESCRIPTIONS["mean_abs"]


def test_a_decorated_metric_is_scored_listed_and_in_eval_help(extra_metric):
    assert metrics.parse_metrics("all")[-1] == "mean_abs"
    assert metrics.parse_metrics("mean_abs") == ("psnr", "ssim_skimage", "mean_abs")
    assert metrics.DESCRIPTIONS["mean_abs"].startswith("mean absolute difference")
    with pytest.raises(ValueError, match="choose from .*cw_ssim, mean_abs or all"):
        metrics.parse_metrics("nope")
    assert "ssim_matlab, cw_ssim, mean_abs) or all; psnr and ssim_skimage always" in _help("eval")


def test_a_metric_removed_from_the_registry_leaves_eval_help():
    assert "mean_abs" not in _help("eval")
    assert ("Comma-separated metrics (psnr, psnr_y, ssim_skimage, ssim_gopro, ssim_matlab, cw_ssim) or all; "
            "psnr and ssim_skimage always. See docs/metrics.md.") in _help("eval")


def test_every_metric_has_one_description_and_a_name_is_registered_once():
    assert list(metrics.METRICS) == list(metrics.DESCRIPTIONS)
    assert all(metrics.DESCRIPTIONS.values())
    with pytest.raises(ValueError, match="registered twice"):
        metrics.metric("psnr", "again")(metrics.psnr)
    assert metrics.METRICS["psnr"] is metrics.psnr


# --- content losses ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg.pth"
    torch.save(losses.vgg19_to_conv3_3().state_dict(), path)
    return path


@pytest.mark.parametrize("name", list(losses.CONTENT_LOSSES))
def test_every_content_loss_builds_computes_and_is_a_valid_setting(name, vgg_file):
    assert TrainConfig(content_loss=name).content_loss == name
    loss = losses.make_content_loss(name, vgg_weights=vgg_file)
    restored, sharp = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    value = loss(restored, sharp)
    assert value.shape == () and torch.isfinite(value)


@pytest.fixture
def extra_loss():
    @losses.content_loss("huber")
    def _huber(**_):
        return torch.nn.HuberLoss()

    yield _huber
    del losses.CONTENT_LOSSES["huber"]


def test_a_decorated_content_loss_is_built_checked_and_offered_by_fit(extra_loss):
    assert isinstance(losses.make_content_loss("huber", psnr_ceiling=50.0), torch.nn.HuberLoss)
    assert TrainConfig(content_loss="huber").content_loss == "huber"
    assert _choices("fit", "content_loss") == ("perceptual", "l1", "l2", "psnr", "huber")
    assert "--content-loss [perceptual|l1|l2|psnr|huber]" in _help("fit")


def test_an_unknown_content_loss_is_refused_with_the_list():
    with pytest.raises(ConfigError, match="content loss must be one of perceptual, l1, l2, psnr, not 'huber'"):
        TrainConfig(content_loss="huber")
    with pytest.raises(ValueError, match="one of perceptual, l1, l2, psnr, not 'l3'"):
        losses.make_content_loss("l3")
    with pytest.raises(ValueError, match="registered twice"):
        losses.content_loss("l1")(lambda **_: torch.nn.L1Loss())


# --- the command line reads its lists ------------------------------------------------------
def test_commands_copy_no_list_of_names():
    source = inspect.getsource(commands)
    assert "click.Choice(" not in source
    for names in (metrics.METRICS, losses.CONTENT_LOSSES, PRESETS):
        quoted = [f'"{name}"' for name in names]
        assert not re.search(", ".join(map(re.escape, quoted[:2])), source), quoted


@pytest.mark.parametrize("command, option, names", [
    ("fit", "preset", tuple(PRESETS)),
    ("fit", "content_loss", tuple(losses.CONTENT_LOSSES)),
    ("fit", "gradient_penalty", ("per-pixel", "per-image")),   # the default first, as the docs write it
    ("fit", "init", ("paper", "identity")),
    ("fit", "norm", ("instance", "none")),
    ("fit", "gopro_blur", ("blur", "blur_gamma")),
    ("eval", "gopro_blur", ("blur", "blur_gamma")),
])
def test_every_choice_is_its_registry(command, option, names):
    from trainer import gopro, models

    assert _choices(command, option) == names
    registry = {"preset": PRESETS, "content_loss": losses.CONTENT_LOSSES, "init": models.GENERATOR_INITS,
                "gradient_penalty": losses.GRADIENT_PENALTIES, "norm": models.GENERATOR_NORMS,
                "gopro_blur": gopro.BLUR_FOLDERS}[option]
    assert set(names) == set(registry)


def test_a_new_preset_is_offered_and_described_by_fit(monkeypatch):
    monkeypatch.setitem(PRESETS, "medium", config.Preset(dict(ngf=32), {}, "halfway (a test's)"))
    assert _choices("fit", "preset") == ("paper", "tiny", "medium")
    assert "; medium: halfway (a test's). [default: paper]" in _help("fit")
    assert config.make_configs("medium")[0].ngf == 32


def test_eval_help_lists_the_benchmarks_it_knows(monkeypatch):
    from trainer import benchmarks

    assert "scored as its paper does: gopro GOPRO_Large, realblur-j ROOT or realblur-r ROOT (docs" in _help("eval")
    monkeypatch.setitem(benchmarks.BENCHMARKS, "hide", "HIDE_ROOT")
    assert "realblur-r ROOT or hide HIDE_ROOT (docs/metrics.md)" in _help("eval")


def test_bad_choices_still_say_what_to_choose():
    result = CliRunner().invoke(cli.trainer, ["fit", "--out", "x", "--gradient-penalty", "x"])
    assert result.exit_code == 2
    assert "'x' is not one of 'per-pixel', 'per-image'" in result.output


# --- architecture settings -------------------------------------------------------------------
def test_architecture_fields_are_config_fields_network_arguments_and_fit_flags():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    options = {opt for p in cli.trainer.commands["fit"].params for opt in p.opts}
    for network, cls in (("generator", Generator), ("critic", Critic)):
        parameters = inspect.signature(cls).parameters
        for a in ARCHITECTURE_FIELDS[network]:
            assert a.field in fields and a.keyword in parameters, a
            assert a.flag in options or not a.flag.startswith("--"), a


def test_networks_are_built_from_the_architecture_fields():
    cfg = TrainConfig(ngf=8, n_blocks=1, ndf=8, critic_layers=2, norm="none", skips=True, dropout=0.0)
    generator = Generator(**config.generator_settings(cfg))
    critic = Critic(**config.critic_settings(cfg))
    convs = [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert generator.skips and convs[0].out_channels == 8
    assert not [m for m in generator.modules() if "Norm" in type(m).__name__]   # norm="none"
    assert len([m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)]) == 1 + 2 + 1
    assert set(config.critic_settings(TrainConfig())) == {"ndf", "n_layers"}


# --- one device helper --------------------------------------------------------------------
def test_inference_commands_resolve_their_device_without_the_training_code(tmp_path):
    """`trainer deblur` ran end to end in a fresh interpreter imports neither trainer.loop
    nor trainer.cluster (which only fit needs)."""
    from trainer import checkpoint

    ck = tmp_path / "best.pt"
    checkpoint.save(ck, checkpoint.generator_state(step=1, generator=Generator(8, 1),
                                                   config=config.to_primitive(TrainConfig(ngf=8, n_blocks=1)),
                                                   scores={}))
    image = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(image), np.full((12, 16, 3), 90, np.uint8))
    code = ("import sys; from click.testing import CliRunner; import cli; "
            f"r = CliRunner().invoke(cli.trainer, ['deblur', {str(image)!r}, '--checkpoint', {str(ck)!r}, "
            f"'--out', {str(tmp_path / 'out')!r}, '--device', 'cpu']); "
            "assert r.exit_code == 0, r.output; "
            "import trainer.evaluate, trainer.export, trainer.benchmarks, trainer.eval_settings, trainer.heldout, "
            "trainer.report; "
            "bad = {'trainer.loop', 'trainer.cluster'} & set(sys.modules); assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "in.png").is_file()


def test_device_names_and_their_one_line_errors():
    from trainer.cluster import Distributed, resolve_device
    from trainer.device import resolve_device as plain
    from trainer.errors import TrainerError

    assert plain("cpu") == torch.device("cpu") == resolve_device("cpu", Distributed(1, 2, 1))
    assert plain("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(TrainerError, match=r"^unknown device 'tpu' \(auto, cpu, cuda or cuda:N\)$"):
        plain("tpu")
    with pytest.raises(TrainerError, match=r"^unknown device 'tpu'"):
        resolve_device("tpu", Distributed())
    if torch.cuda.is_available():
        assert resolve_device("cuda", Distributed(1, 2, 0)) == torch.device("cuda:0")
    else:
        with pytest.raises(TrainerError, match=r"^--device cuda: no CUDA device is available \(use --device cpu\)$"):
            plain("cuda")

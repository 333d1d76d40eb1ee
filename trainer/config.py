"""Training settings: the paper's defaults, and presets that change them.

``TrainConfig`` holds everything about the networks, the losses, the
optimisation and the run; where the training pairs come from is
``trainer.data.DataConfig``.  Defaults are DeblurGAN's (Kupyn et al. 2018,
section 4 and the released ``train_options.py``): 9 ResBlocks, 64 base
channels, lambda = 100 perceptual loss, lambda_gp = 10, 5 critic steps per
generator step, Adam lr 1e-4 betas (0.5, 0.999), 150 epochs at constant
learning rate then 150 decaying linearly to 0; batch 1 and 256x256 crops come
from DataConfig.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from trainer.errors import TrainerError
from trainer.losses import CONTENT_LOSSES, GRADIENT_PENALTIES
from trainer.models import GENERATOR_INITS, GENERATOR_NORMS


class ConfigError(TrainerError):
    """A training setting no run could use (one line, for the user)."""


@dataclass
class TrainConfig:
    out: Path = Path("run")                 # run folder: checkpoints, logs, previews
    # networks (trainer.models)
    ngf: int = 64                           # generator base width (64-128-256 channels)
    n_blocks: int = 9                       # ResBlocks in the generator
    dropout: float = 0.5                    # dropout inside each ResBlock
    norm: str = "instance"                  # generator norm: instance (paper) | none
    init: str = "paper"                     # paper: N(0, 0.02) everywhere | identity: last conv 0, G(x) = x
    skips: bool = False                     # U-Net skips: encoder features added to the decoder's (not the paper's)
    ndf: int = 64                           # critic base width (64-128-256-512)
    critic_layers: int = 3                  # stride-2 layers of the PatchGAN critic
    # losses (trainer.losses)
    content_loss: str = "perceptual"        # a name of trainer.losses.CONTENT_LOSSES
    content_weight: float = 100.0           # lambda of the paper's eq. 1
    psnr_ceiling: float = 40.0              # dB: the psnr content loss counts no image as closer (PSNRLoss)
    adversarial_weight: float = 1.0         # weight of L_GAN; 0: content loss alone, no critic
    gp_weight: float = 10.0                 # lambda_gp of WGAN-GP
    gradient_penalty: str = "per-pixel"     # per-pixel (DeblurGAN's code) | per-image (Gulrajani et al.)
    vgg_weights: Path | None = None         # None: torchvision's cache
    # optimisation
    critic_steps: int = 5
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    epochs: int = 300                       # half at constant lr, half decaying to 0
    steps: int | None = None                # if set: the run is this many generator steps
    # run
    device: str = "auto"                    # auto (cuda if available) | cpu | cuda | cuda:N
    seed: int = 0
    checkpoint_every: int = 1000            # generator steps; also before every validation
    val_every: int | None = None            # generator steps between validations; None: at epoch ends
    val_limit: int = 100                    # held-out pairs per validation (0: all)
    log_every: int = 10                     # generator steps between logged scalars
    # speed (none changes what a run computes beyond rounding; docs/training.md).
    # amp None: bfloat16 autocast where the device computes bf16 natively (CUDA
    # since Ampere, CPUs with AVX512-BF16 or AMX; trainer.precision), float32
    # elsewhere: without those instructions bf16 is emulated (a full step took
    # 20x longer with autocast on this project's AVX2 CPU).  channels_last
    # None: on for CUDA (it was no faster on this project's CPU).
    amp: bool | None = None                 # bfloat16 autocast (gradient penalty stays float32)
    channels_last: bool | None = None
    compile: bool = False                   # torch.compile the generator and the VGG
    cuda_graphs: bool = False               # the whole step as one CUDA graph (trainer.graphs)
    deterministic: bool = False             # deterministic kernels, no cuDNN autotuner (trainer.determinism)
    preview: bool = True                    # preview triplet in the terminal at each validation

    def __post_init__(self):
        # Checked when made, as DataConfig and SynthConfig are: no TrainConfig holds a value
        # no run could use (dataclasses.replace makes a new one, so it is checked too).
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError (one line) on a value no run could use."""
        positive = ["ngf", "n_blocks", "ndf", "critic_layers", "critic_steps", "epochs",
                    "checkpoint_every", "log_every"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.val_limit < 0:
            raise ConfigError(f"val_limit must be >= 0 (0: all), not {self.val_limit}")
        for name in ("steps", "val_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, not {value}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.norm not in GENERATOR_NORMS:
            raise ConfigError(f"generator norm must be one of {', '.join(GENERATOR_NORMS)}, not {self.norm!r}")
        if self.init not in GENERATOR_INITS:
            raise ConfigError(f"generator init must be one of {', '.join(GENERATOR_INITS)}, not {self.init!r}")
        if self.gradient_penalty not in GRADIENT_PENALTIES:
            raise ConfigError(f"gradient penalty must be one of {', '.join(GRADIENT_PENALTIES)}, "
                             f"not {self.gradient_penalty!r}")
        if self.content_loss not in CONTENT_LOSSES:
            raise ConfigError(f"content loss must be one of {', '.join(CONTENT_LOSSES)}, "
                             f"not {self.content_loss!r}")
        if not 0 < self.psnr_ceiling <= 100:
            raise ConfigError(f"psnr_ceiling must be in (0, 100] dB, not {self.psnr_ceiling}")
        if self.lr <= 0 or min(self.content_weight, self.adversarial_weight, self.gp_weight) < 0:
            raise ConfigError("lr must be positive; content, adversarial and gradient-penalty weights non-negative")
        if self.content_weight == 0 and self.adversarial_weight == 0:
            raise ConfigError("content and adversarial weights are both 0: nothing to train the generator on")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"Adam betas must be in [0, 1), not {self.betas}")


class Preset(NamedTuple):
    train: dict     # TrainConfig changes
    data: dict      # DataConfig changes
    help: str       # what it is for: its part of `trainer fit --preset`'s help


#: The preset of a run that names none.
DEFAULT_PRESET = "paper"

#: Every preset by name, in the order `trainer fit --preset` lists them.
PRESETS: dict[str, Preset] = {
    "paper": Preset({}, {}, "the published settings"),
    # Learns in minutes on a laptop CPU (bench/learning.py; docs/training.md
    # has each change and what it measured): a quarter of the widths, two
    # ResBlocks; the identity start (the untrained generator returns its
    # input, where the paper's init starts 13-15 dB below it); no dropout
    # (a 16-channel net has no width to spare; not measured on its own); no
    # InstanceNorm, whose per-image normalisation leaves the residual blind to
    # the image's contrast (a blur's residual scales with it), with He init;
    # 80x80 crops in batches of 6 (kernels up to 21 px: a quarter of the
    # crop, as DeblurGAN's 64-px kernels are of its 256-px crops); the PSNR
    # loss (capped at 40 dB) as content loss, which keeps a small model from
    # sharpening nearly sharp pairs, with lambda = 10, which puts the
    # adversarial gradient at ~5 % of the content gradient (at lambda = 100
    # with L1 it was 65 % and cost 0.6 dB); one critic step per generator
    # step (a GAN step 2.7x cheaper: the minutes go to generator steps) and
    # Adam 1e-3; U-Net skips (encoder features added to the decoder's at full
    # and half resolution), which took the held-out gain from +0.65 to
    # +1.36 dB at the same steps.  The same critic and per-pixel penalty as
    # the paper.  A fifth of the draws are identity pairs (sharp in, sharp
    # out: --sharp-fraction 0.2): without them the model sharpens what is
    # already sharp (a held-out fold's sharp crops came back 27.9 dB from
    # themselves, textured photos 33 dB), with them >= 45.8 dB on that fold
    # and sharp photos >= 44.5 dB on all four -- at a cost in held-out gain
    # at the same steps (+0.87 -> +0.18 dB at 800 steps), and one fold's
    # nearly sharp flat crops fared worse (docs/training.md, "Do no harm").
    # Raising the 40 dB cap to 50 dB did not protect sharp input (28.1 dB).
    "tiny": Preset(dict(ngf=16, n_blocks=2, ndf=16, init="identity", dropout=0.0, norm="none", skips=True, lr=1e-3,
                  content_loss="psnr", content_weight=10.0, critic_steps=1,
                  checkpoint_every=100, val_limit=8, log_every=5),
             dict(crop=80, batch_size=6, sharp_fraction=0.2),
             "small nets that learn in minutes on a CPU (docs/training.md)"),
}


# Settings a checkpoint without the key was trained with (the defaults of the
# time), so that such a run resumes as it started.
PRE_VERSION_2 = {"init": "paper", "gradient_penalty": "per-image", "norm": "instance"}


def make_configs(preset: str = DEFAULT_PRESET, train: dict | None = None, data: dict | None = None):
    """(TrainConfig, DataConfig) of ``preset`` with the non-None values of
    ``train`` and ``data`` on top.  Raises ConfigError on an unknown preset or
    field, or a bad value (ConfigError)."""
    from trainer.data import DataConfig

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    train_changes, data_changes = PRESETS[preset].train, PRESETS[preset].data
    train_changes = {**train_changes, **{k: v for k, v in (train or {}).items() if v is not None}}
    data_changes = {**data_changes, **{k: v for k, v in (data or {}).items() if v is not None}}
    try:
        train_cfg = dataclasses.replace(TrainConfig(), **train_changes)
        data_cfg = dataclasses.replace(DataConfig(), **data_changes)
    except TypeError as e:
        raise ConfigError(str(e)) from None
    return train_cfg, data_cfg


class Architecture(NamedTuple):
    field: str      # TrainConfig field
    keyword: str    # the argument of the network's class (trainer.models) it sets
    flag: str       # how `trainer fit` names it, in messages


#: The settings that make each network what it is: the shapes of its weights, or what
#: it computes with them (--norm, --skips change no shape).  The one list of them:
#: networks are built from it, and a warm start compares checkpoints by it.
ARCHITECTURE_FIELDS: dict[str, tuple[Architecture, ...]] = {
    "generator": (Architecture("ngf", "ngf", "--ngf"), Architecture("n_blocks", "n_blocks", "--blocks"),
                  Architecture("norm", "norm", "--norm"), Architecture("skips", "skips", "--skips")),
    "critic": (Architecture("ndf", "ndf", "--ndf"), Architecture("critic_layers", "n_layers", "critic layers")),
}


def _settings(network: str, cfg: TrainConfig) -> dict:
    return {a.keyword: getattr(cfg, a.field) for a in ARCHITECTURE_FIELDS[network]}


def generator_settings(cfg: TrainConfig) -> dict:
    """The keyword arguments of ``trainer.models.Generator`` that ``cfg`` sets: its
    architecture and dropout, bar ``init`` (which only matters for a new run)."""
    return {**_settings("generator", cfg), "dropout": cfg.dropout}


def critic_settings(cfg: TrainConfig) -> dict:
    """The keyword arguments of ``trainer.models.Critic`` that ``cfg`` sets."""
    return _settings("critic", cfg)


def adam_betas(beta1: float | None = None, beta2: float | None = None,
               base: tuple[float, float] = TrainConfig.betas) -> tuple[float, float]:
    """Adam's (beta1, beta2) from ``trainer fit --beta1/--beta2``: one not given keeps
    ``base``'s, by default :class:`TrainConfig`'s (the paper's (0.5, 0.999), written
    only there)."""
    return (base[0] if beta1 is None else float(beta1), base[1] if beta2 is None else float(beta2))


def to_primitive(cfg) -> dict:
    """A dataclass as a dict of str/int/float/bool/None/lists, for checkpoints and JSON."""
    def convert(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (tuple, list)):
            return [convert(v) for v in value]
        return value

    return {f.name: convert(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def train_config_from(values: dict) -> TrainConfig:
    """Inverse of ``to_primitive`` for TrainConfig (unknown keys are ignored, so
    checkpoints of newer versions with extra settings still load)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    # What runs saved before these settings existed computed with.
    kwargs = {**PRE_VERSION_2, **{k: v for k, v in values.items() if k in names}}
    for key in ("out", "vgg_weights"):
        if kwargs.get(key) is not None:
            kwargs[key] = Path(kwargs[key])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return TrainConfig(**kwargs)

"""The DeblurGAN training loop (``trainer fit``).

Read top to bottom: the learning-rate schedule, the networks and optimisers
(``build_gan``), one training step (``train_step``: five critic steps, then
one generator step), and the run around it (``fit``: set up, loop over
the steps, log, validate, checkpoint, stop).  The run folder's files and
how a run is resumed are trainer.run_folder's.

One batch serves all critic steps of a generator step, as in DeblurGAN's
``optimize_parameters``: the generator runs once, its detached output is the
"fake" of every critic step, and the same graph then takes the generator
step.  That is the code the paper's numbers came from; it keeps the data
stream at one batch per generator step (an epoch is one pass over the data
in generator steps, and ``train_batches(start=k)`` resumes at step k), and
it saves four generator forward passes per step.  The gradient penalty
draws a fresh interpolation for each critic step.

Randomness: every step reseeds torch from (seed, step, rank), so dropout
masks and interpolation weights are a pure function of the step, like the
data.  A run resumed at step k therefore continues bit for bit (on the same
device and software) as if it had never stopped, whatever the data loader
or validation consumed from the global generators in between.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from blurgen.plumbing.terminal import fit_to_terminal
import trainer.checkpoint as checkpoint
from trainer.checkpoint import unwrap
from trainer.cluster import StopRequest, check_not_slurm_copies, die_with_launcher, distributed_from_env, resolve_device
from trainer.config import (
    ConfigError,
    TrainConfig,
    critic_settings,
    generator_settings,
    make_configs,
    train_config_from,
)
from trainer.curves import sparkline
from trainer.data import DataConfig, describe_sources, epoch_length, train_batches, training_sources, val_pairs
from trainer.determinism import deterministic_padding, make_deterministic
from trainer.evaluate import evaluate
from trainer.graphs import CapturedStep
from trainer.losses import critic_loss, generator_adversarial_loss, make_content_loss
from trainer.metrics import psnr
from trainer.models import Critic, Generator, count_parameters
from trainer.pace import Pace, cpu_warning
from trainer.precision import autocast_dtype
from trainer.provenance import check_same_data, data_fingerprints
from trainer.run_folder import LAST, Progress, RunError, RunFolder, ScalarLog

# Settings that do not change what a run computes, so a resumed run may use
# other values than the run it continues.
RUNTIME_FIELDS = {"device", "preview", "compile", "amp", "channels_last", "deterministic", "cuda_graphs", "log_every",
                  "val_limit", "val_every", "checkpoint_every", "vgg_weights", "out"}
RUNTIME_DATA_FIELDS = {"workers", "allow_partial"}


# --- learning-rate schedule ------------------------------------------------------


def learning_rate(step: int, base_lr: float, total_steps: int) -> float:
    """lr of generator step ``step`` (0-based) of ``total_steps``: ``base_lr`` for
    the first half, then decaying linearly to 0 (paper: 150 + 150 epochs).

    DeblurGAN lowers the rate once per epoch; decaying per step is the same
    line without the stairs, and works for runs given in steps.
    """
    decay_start = total_steps // 2
    if step < decay_start:
        return base_lr
    return base_lr * (total_steps - step) / (total_steps - decay_start)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of one generator step of one rank (a well-mixed 63-bit integer)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(2, np.uint64)[0] >> 1)


# --- networks and optimisers ------------------------------------------------------


@dataclass
class GAN:
    """Everything one training step touches.  ``generator`` and ``critic`` may be
    wrapped (DDP, torch.compile); ``unwrap`` gives the plain modules.
    ``captured``: the step as a CUDA graph (trainer.graphs), or None (eager)."""

    generator: nn.Module
    critic: nn.Module
    opt_generator: torch.optim.Optimizer
    opt_critic: torch.optim.Optimizer
    content_loss: nn.Module
    device: torch.device
    amp_dtype: torch.dtype | None = None     # bfloat16 autocast, or None for float32
    channels_last: bool = False
    captured: CapturedStep | None = None

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def autocast(self):
        # No weight cache: each network runs once per autocast block, and a CUDA
        # graph cannot capture the cache's allocations.
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                              enabled=self.amp_dtype is not None, cache_enabled=False)


def make_adam(module: nn.Module, cfg: TrainConfig, fused: bool = True) -> torch.optim.Optimizer:
    """Adam over ``module``'s parameters with cfg's lr and betas.  ``fused``: one
    kernel for all parameters (CUDA, and the CPU since torch 2.4), where the
    default is a loop of per-tensor operations on the CPU (about 870 of a paper
    step's 4,550 operations, bench/launches.py) and a dozen multi-tensor ones on CUDA."""
    return torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                            fused=True if fused else None)


def build_gan(cfg: TrainConfig, device: torch.device, content_loss: nn.Module, *,
              amp: bool = False, channels_last: bool = False, fused_adam: bool = True,
              compile: bool = False, ddp: bool = False, deterministic: bool = False,
              cuda_graphs: bool = False) -> GAN:
    """Generator, critic, their Adam optimisers and the content loss on ``device``.

    Speed options: ``amp`` (bfloat16 autocast; no GradScaler is needed, bf16
    has float32's range), ``channels_last`` (NHWC tensors, what tensor cores
    read), ``fused_adam`` (one Adam kernel per step), ``compile``
    (torch.compile of the generator and the VGG; the critic stays eager because
    AOTAutograd does not do the double backward of the gradient penalty),
    ``cuda_graphs`` (the whole step as one CUDA graph, trainer.graphs; CUDA,
    not with ``ddp``), ``ddp`` (DistributedDataParallel around both networks;
    process group already up).  ``deterministic``: reflection padding whose
    backward has no atomics (trainer.determinism; the global switches are
    ``make_deterministic``'s).
    """
    generator = Generator(**generator_settings(cfg), init=cfg.init).to(device)
    critic = Critic(**critic_settings(cfg)).to(device)
    content_loss = content_loss.to(device)
    if deterministic:
        deterministic_padding(generator)
    if channels_last:
        for module in (generator, critic, content_loss):
            module.to(memory_format=torch.channels_last)
    opt_generator = make_adam(generator, cfg, fused_adam)
    opt_critic = make_adam(critic, cfg, fused_adam)
    if ddp:
        ids = [device.index] if device.type == "cuda" else None
        generator = DistributedDataParallel(generator, device_ids=ids)
        critic = DistributedDataParallel(critic, device_ids=ids)
    if compile:
        generator = torch.compile(generator)
        if hasattr(content_loss, "features"):
            content_loss.features = torch.compile(content_loss.features)
    return GAN(generator, critic, opt_generator, opt_critic, content_loss, device,
               torch.bfloat16 if amp else None, channels_last,
               CapturedStep(eager_train_step) if cuda_graphs else None)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Parameters of ``module`` need no gradients inside the block (the critic
    during the generator step: it only passes gradients through)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


# --- one training step -------------------------------------------------------------


def train_step(gan: GAN, blurred: torch.Tensor, sharp: torch.Tensor, cfg: TrainConfig) -> dict:
    """``cfg.critic_steps`` critic steps and one generator step on one batch:
    ``eager_train_step``, or its CUDA graph's replay when ``gan.captured``."""
    if gan.captured is not None:
        return gan.captured(gan, blurred, sharp, cfg)
    return eager_train_step(gan, blurred, sharp, cfg)


def eager_train_step(gan: GAN, blurred: torch.Tensor, sharp: torch.Tensor, cfg: TrainConfig) -> dict:
    """``cfg.critic_steps`` critic steps and one generator step on one batch.

    blurred, sharp: (B, 3, H, W) float32 in [-1, 1] on gan.device.  The
    generator minimises adversarial_weight * L_GAN + content_weight * L_X;
    with adversarial_weight 0 the critic is not trained (pixel or perceptual
    regression alone).  Returns detached scalar tensors (no host sync):
    critic_loss, wasserstein, gradient_penalty (of the last critic step) and
    adversarial_loss (-D(G(I_B))) when the GAN is on; content_loss,
    generator_loss; and the balance of the generator's two terms at its
    output I = G(I_B): grad_adversarial = ||d(w L_GAN)/dI||_2, grad_content =
    ||d(lambda L_X)/dI||_2 (norms over the whole batch tensor) and grad_ratio
    = grad_adversarial / grad_content.
    """
    use_gan = cfg.adversarial_weight > 0
    with gan.autocast():
        restored = gan.generator(blurred)      # keep the graph for the generator step
    fake = restored.detach().float()

    stats = {}
    for _ in range(cfg.critic_steps if use_gan else 0):
        alpha = torch.rand(sharp.shape[0], 1, 1, 1, device=sharp.device)
        loss, stats = critic_loss(gan.critic, sharp, fake, alpha, cfg.gp_weight, gan.amp_dtype,
                                  cfg.gradient_penalty)
        gan.opt_critic.zero_grad(set_to_none=True)
        loss.backward()
        gan.opt_critic.step()

    # The plain critic, not its DDP wrapper: its parameters take no gradient
    # here, so there is nothing to all-reduce.
    critic = unwrap(gan.critic)
    with frozen(critic), gan.autocast():
        adversarial = generator_adversarial_loss(critic, restored) if use_gan else None
        content = gan.content_loss(restored, sharp).float()
    weighted_content = cfg.content_weight * content
    # Each term's gradient at the output, then one backward through the
    # generator with their sum: the same update as backward() of the total
    # loss, and the GAN's balance is measured without a second generator pass.
    (grad_content,) = torch.autograd.grad(weighted_content, restored)
    if use_gan:
        weighted_adversarial = cfg.adversarial_weight * adversarial
        (grad_adversarial,) = torch.autograd.grad(weighted_adversarial, restored)
        generator_loss = weighted_adversarial + weighted_content
    else:
        grad_adversarial = torch.zeros_like(grad_content)
        generator_loss = weighted_content
    gan.opt_generator.zero_grad(set_to_none=True)
    restored.backward(grad_adversarial + grad_content)
    gan.opt_generator.step()

    norm_adversarial = torch.linalg.vector_norm(grad_adversarial.float())
    norm_content = torch.linalg.vector_norm(grad_content.float())
    if use_gan:
        stats["adversarial_loss"] = adversarial.detach()
    stats.update(content_loss=content.detach(), generator_loss=generator_loss.detach(),
                 grad_adversarial=norm_adversarial, grad_content=norm_content,
                 grad_ratio=norm_adversarial / norm_content)
    return stats


# --- the run ------------------------------------------------------------------------


def resume_configs(out: str | os.PathLike, train_changes: dict | None = None,
                   data_changes: dict | None = None, preset: str | None = None) -> tuple[TrainConfig, DataConfig]:
    """The configs of the run in ``out`` (from its last checkpoint), with the
    non-None values given laid on top.  A requeued job runs the same command
    plus ``--resume``, so a value equal to the run's -- however it is written:
    ``--mix 2:1``, a relative ``--shards`` path -- is accepted; the settings in
    ``RUNTIME_FIELDS`` may change; changing any other raises RunError, naming
    the run's value and the one given as a user writes them.  With ``preset``,
    every setting the preset and the changes make is compared, not only those given."""
    path = Path(out) / LAST
    state = checkpoint.load_training(path)
    try:
        train_cfg = train_config_from(state["config"])
        data_cfg = DataConfig(**state["data"]["config"])
    except TypeError as exc:   # a data setting this version does not know
        raise checkpoint.CheckpointError(f"{path}: settings this toolkit does not read ({exc})") from None
    given_train = {k: v for k, v in (train_changes or {}).items() if v is not None}
    given_data = {k: v for k, v in (data_changes or {}).items() if v is not None}
    from_preset = ""
    if preset is not None:
        preset_train, preset_data = make_configs(preset, given_train, given_data)
        given_train = {**settings(preset_train), **given_train}
        given_data = {**settings(preset_data), **given_data}
        from_preset = f" (--preset {preset})"
    # Parsed and made absolute as a new run's would be, then compared as values.
    asked_train = dataclasses.replace(train_cfg, **given_train)
    asked_data = absolute_paths(dataclasses.replace(data_cfg, **given_data))
    explicit = {k for changes in (train_changes, data_changes) for k, v in (changes or {}).items() if v is not None}
    for run_cfg, asked, given, runtime in ((train_cfg, asked_train, given_train, RUNTIME_FIELDS),
                                           (data_cfg, asked_data, given_data, RUNTIME_DATA_FIELDS)):
        for name in given:
            old, new = getattr(run_cfg, name), getattr(asked, name)
            if name not in runtime and old != new:
                # A longer run is another schedule: a new run that starts from these weights.
                hint = (f"to train further, start a new run from its weights: --init-from {path} "
                        "--out NEW_RUN --steps N" if name in ("steps", "epochs")
                        else "start a new run with another --out")
                raise RunError(f"cannot change {name} when resuming (the run used {shown(name, old)}, "
                               f"not {shown(name, new)}{'' if name in explicit else from_preset}); {hint}")
    runtime_train = {k: v for k, v in given_train.items() if k in RUNTIME_FIELDS}
    runtime_data = {k: v for k, v in given_data.items() if k in RUNTIME_DATA_FIELDS}
    return dataclasses.replace(train_cfg, **runtime_train), dataclasses.replace(data_cfg, **runtime_data)


def settings(cfg) -> dict:
    """A config dataclass's fields by name, values as they are (no copies, no conversion)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def shown(name: str, value) -> str:
    """A setting as a user writes it on the command line: ``2:1``, a path, ``a b`` for several."""
    if value is None:
        return "none"
    if name == "mix":
        return ":".join(str(v) for v in value)
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value) or "none"
    return str(value)


def restore(gan: GAN, state: dict, path: Path, on_cuda: bool) -> Progress:
    """Load the training state ``state`` (read from ``path``) into ``gan`` and
    the random generators; returns where the run stands.  CheckpointError if
    the weights do not fit the run's settings."""
    try:
        unwrap(gan.generator).load_state_dict(state["generator"])
        unwrap(gan.critic).load_state_dict(state["critic"])
        for opt, key in ((gan.opt_generator, "opt_generator"), (gan.opt_critic, "opt_critic")):
            opt.load_state_dict(state[key])
            for group in opt.param_groups:   # the Adam implementation is this run's choice
                group["fused"], group["foreach"], group["capturable"] = True, None, False
    except (RuntimeError, ValueError) as exc:   # torch's messages for weights that do not fit
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise checkpoint.CheckpointError(f"{path}: weights do not fit the run's settings "
                                         f"({first})") from None
    checkpoint.set_rng_state(state["rng"])
    return Progress(state["step"], state["epoch"], state["best"])


def set_up_gan(cfg: TrainConfig, device: torch.device, content_loss: nn.Module, ddp: bool) -> GAN:
    """``build_gan`` from seed cfg.seed with the device's speed settings: bf16
    autocast where the device computes bf16 natively (trainer.precision) and
    channels-last on CUDA, unless the config says otherwise; fused Adam;
    cuDNN's autotuner, or with ``cfg.deterministic`` deterministic kernels
    instead (trainer.determinism); the step as a CUDA graph with
    ``cfg.cuda_graphs``.  ConfigError for CUDA graphs on a CPU or under DDP."""
    on_cuda = device.type == "cuda"
    if cfg.cuda_graphs and (not on_cuda or ddp):
        raise ConfigError("--cuda-graphs needs one CUDA device in one process"
                          + (" (not torchrun)" if ddp else f" (the run is on {device})"))
    if on_cuda:
        torch.cuda.set_device(device)
    if cfg.deterministic:
        make_deterministic()
    elif on_cuda:
        torch.backends.cudnn.benchmark = True   # fixed crop size: autotune convs once
    torch.manual_seed(cfg.seed)                 # same initial weights on every rank
    return build_gan(cfg, device, content_loss,
                     amp=autocast_dtype(device, cfg.amp) is not None,
                     channels_last=on_cuda if cfg.channels_last is None else cfg.channels_last,
                     compile=cfg.compile, ddp=ddp, deterministic=cfg.deterministic,
                     cuda_graphs=cfg.cuda_graphs)


def set_learning_rate(gan: GAN, lr: float) -> float:
    for opt in (gan.opt_generator, gan.opt_critic):
        for group in opt.param_groups:
            group["lr"] = lr
    return lr


def next_batch(batches, stop: StopRequest) -> dict | None:
    """The next training batch, or None once a stop is requested (of any rank:
    every rank calls this once per step)."""
    if stop.agreed():
        return None
    try:
        return next(batches)
    except RuntimeError:
        if stop.requested:   # a loader worker died of the stop as well
            return None
        raise


class RunningMeans:
    """The training statistics of ``train_step``, averaged over the steps since the last log."""

    # What the progress bar shows: its short name -> the statistic; on a terminal narrower
    # than WIDE columns only the first, so that the bar and its count stay on one line.
    SHOWN = {"content": "content_loss", "W": "wasserstein", "gp": "gradient_penalty", "adv/content": "grad_ratio"}
    WIDE = 120

    def __init__(self, start: int):
        self.sums: dict[str, torch.Tensor] = {}
        self.since = start

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        # Tensors, summed on the device: no host sync until the log.
        for name, value in stats.items():
            self.sums[name] = self.sums.get(name, 0) + value

    def log(self, log: ScalarLog, step: int, lr: float, damaged: int) -> dict[str, str]:
        """Log the means as train/ scalars of ``step`` with the learning rate and
        the count of damaged samples skipped since the start; start again.
        Returns the progress bar's postfix."""
        values = {f"train/{k}": float(v) / (step - self.since) for k, v in self.sums.items()}
        values["train/lr"] = lr
        values["train/damaged_samples"] = damaged
        log.scalars(step, values)
        self.sums, self.since = {}, step
        shown = {k: f"{values['train/' + v]:.3g}" for k, v in self.SHOWN.items() if "train/" + v in values}
        if shutil.get_terminal_size().columns < self.WIDE:
            shown = dict(list(shown.items())[:1])
        return shown


def validate(run: RunFolder, progress: Progress, generator: nn.Module, held_out, device: torch.device,
             preview: bool) -> bool:
    """Score ``generator`` (plain module) on the held-out pairs after step
    ``progress.step``: log the val/ scalars, keep best.pt (and progress.best)
    when PSNR improved, redraw curves.png and preview.png, print one line (and
    with ``preview`` the pictures in the terminal).  True when best.pt changed."""
    done = progress.step
    scores, example = evaluate(generator, held_out, device=device)
    # val/ssim is skimage's SSIM (trainer.evaluate): its second name would be a second, equal curve.
    run.log.scalars(done, {f"val/{k}": v for k, v in scores.items()
                           if k != "count" and not k.endswith("ssim_skimage")})
    improved = progress.best is None or scores["psnr"] > progress.best["psnr"]
    if improved:
        progress.best = {"psnr": scores["psnr"], "ssim": scores["ssim"], "step": done}
        run.save_best(done, generator, scores)
    best = progress.best
    message = (f"step {done}: PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f} "
               f"(blurred input {scores['input_psnr']:.2f} dB, {scores['input_ssim']:.4f}); "
               f"sharp inputs back at {scores['sharp_psnr']:.2f} dB, worst {scores['sharp_psnr_min']:.2f}; "
               f"best {best['psnr']:.2f} dB at step {best['step']}")
    series = run.log.series()
    psnr_so_far = series["val/psnr"][1]
    if len(psnr_so_far) > 1:
        message += f"; PSNR so far {sparkline(psnr_so_far)}"
    title = None
    if example is not None:   # the first held-out pair's own scores, on the picture
        blurred, restored, sharp = example
        title = (f"step {done}: {psnr(restored, sharp):.2f} dB restored, {psnr(blurred, sharp):.2f} dB "
                 "blurred (PSNR against sharp, RGB, range 255)")
    run.draw(series, done, example, title)
    if example is not None and preview:
        from blurgen.plumbing.terminal import render_images
        # A quarter of the terminal's height: the log of a long run stays readable around it.
        rows = max(4, shutil.get_terminal_size().lines // 4 - 1)
        tqdm.write(render_images(list(example), labels=["blurred", "restored", "sharp"], max_rows=rows))
    tqdm.write(fit_to_terminal(message, sys.stdout))
    return improved


def say(text: str) -> None:
    """A message of ``fit`` on stderr, above the progress bar, wrapped to a terminal's width."""
    tqdm.write(fit_to_terminal(text, sys.stderr), file=sys.stderr)


def opening_line(gan: GAN, cfg: TrainConfig, total_steps: int, steps_per_epoch: int, device: torch.device,
                 world_size: int, n_val: int, start: int, warm_start: str | None) -> str:
    """What ``fit`` says before its first step: networks, schedule, device, loss."""
    return (f"DeblurGAN: generator {count_parameters(unwrap(gan.generator)) / 1e6:.2f} M, "
            f"critic {count_parameters(unwrap(gan.critic)) / 1e6:.2f} M parameters; "
            f"{total_steps} steps ({steps_per_epoch} per epoch), device {device}, "
            f"{world_size} process(es), bf16 {'on' if gan.amp_dtype else 'off'}, "
            f"{n_val} validation pairs; loss {cfg.adversarial_weight:g} x GAN ("
            f"{cfg.gradient_penalty} penalty, {cfg.critic_steps} critic steps) + {cfg.content_weight:g} x "
            f"{cfg.content_loss}; generator init {cfg.init}, norm {cfg.norm}"
            + (f"; resuming at step {start}" if start else "")
            + (f"; weights: {warm_start}" if warm_start else ""))


def absolute_paths(data_cfg: DataConfig) -> DataConfig:
    # Absolute data paths in the checkpoint: --resume may run from another folder.
    return dataclasses.replace(
        data_cfg, shards=tuple(Path(p).resolve() for p in data_cfg.shards),
        gopro=None if data_cfg.gopro is None else Path(data_cfg.gopro).resolve(),
        val_shards=None if data_cfg.val_shards is None else Path(data_cfg.val_shards).resolve())


def fit(cfg: TrainConfig, data_cfg: DataConfig, *, resume: bool = False,
        init_from: str | os.PathLike | None = None, notes: tuple[str, ...] = (), settings: str | None = None) -> dict:
    """Train DeblurGAN; everything goes to the run folder ``cfg.out``
    (trainer.run_folder).  Returns a summary dict (step, epoch, best scores,
    paths; ``stopped``: None, or the name of the stop signal (``blurgen.plumbing.stopping.SIGNALS``)
    that ended the run early, e.g. "SIGTERM", after the checkpoint of the last
    finished step was saved).  ``init_from``: a checkpoint whose generator (and
    critic) weights a new run starts from, with its own schedule and
    optimisers (trainer.warmstart).  ``notes``: lines the caller wants said
    with the run's header, once its start-up checks have passed (warnings).
    ``settings``: the text of the run folder's config.yaml (the command's options,
    blurgen.plumbing.run_config.render), written then too: by a new run, and by a
    resumed one whose folder has none (a run of an earlier version).

    Errors a user can cause (missing VGG weights, bad data, a run folder that
    already holds a run, a broken checkpoint) are raised as TrainerError
    subclasses before any training step.
    """
    check_not_slurm_copies()
    die_with_launcher()
    data_cfg = absolute_paths(data_cfg)
    dist_info = distributed_from_env()
    run = RunFolder(cfg, data_cfg, dist_info.world_size)
    # One run per folder: two runs (or srun's copies of one) would interleave
    # their logs and overwrite each other's checkpoints.  Only rank 0 writes.
    with run.claimed() if dist_info.main else contextlib.nullcontext():
        return train_run(run, cfg, data_cfg, dist_info, resume, init_from, notes, settings)


def train_run(run: RunFolder, cfg: TrainConfig, data_cfg: DataConfig, dist_info, resume: bool,
              init_from: str | os.PathLike | None, notes: tuple[str, ...] = (), settings: str | None = None) -> dict:
    """The run of :func:`fit` in ``run``, once it holds the folder (rank 0):
    set up, the step loop, the stop; the summary of :func:`fit`."""
    from blurgen.plumbing.progress import progress_bar

    main, ddp = dist_info.main, dist_info.world_size > 1
    device = resolve_device(cfg.device, dist_info)
    run.check_start(resume, init_from)
    sources, steps_per_epoch, held_out, content_loss, state = check_inputs(run, cfg, data_cfg, dist_info,
                                                                           resume, device)
    total_steps = cfg.steps or cfg.epochs * steps_per_epoch
    schedule = {"lr": cfg.lr, "total_steps": total_steps, "decay_start": total_steps // 2}

    own_group, stop_group = join_process_group(ddp, device)
    gan = set_up_gan(cfg, device, content_loss, ddp)
    warm_start = load_warm_start(gan, init_from, cfg)
    progress = Progress() if state is None else restore(gan, state, run.last, device.type == "cuda")
    start = progress.step
    if main:
        run.open_log(start)
        if settings is not None:
            run.write_settings(settings, replace=not resume)
        say_opening(gan, cfg, data_cfg, sources, held_out, device, dist_info.world_size, total_steps,
                    steps_per_epoch, start, warm_start, notes)
    pace = Pace(start, total_steps)

    batches = train_batches(data_cfg, start=start, rank=dist_info.rank, world_size=dist_info.world_size,
                            sources=sources)
    bar = progress_bar(total=total_steps, initial=start, unit="step", disable=not main, desc="fit", smoothing=0.05)
    means = RunningMeans(start)
    saved_at, stopped, interrupted = start, None, False
    gan.generator.train()
    gan.critic.train()
    try:
        with StopRequest(group=stop_group) as stop:
            for step in range(start, total_steps):
                lr = set_learning_rate(gan, learning_rate(step, cfg.lr, total_steps))
                batch = next_batch(batches, stop)
                if batch is None:   # every rank takes this branch at the same step (StopRequest.agreed)
                    interrupted = True
                    break
                # After next(): starting a DataLoader iterator draws from the global generator.
                torch.manual_seed(step_seed(cfg.seed, step, dist_info.rank))
                means.add(train_step(gan, gan.to_device(batch["blurred"]), gan.to_device(batch["sharp"]), cfg))
                progress.step = done = step + 1
                bar.update(1)
                said = pace.update(done) if main else None
                if said:
                    say(said)

                end_of_epoch = done % steps_per_epoch == 0
                if end_of_epoch:
                    progress.epoch += 1
                if main and (done % cfg.log_every == 0 or done == total_steps):
                    bar.set_postfix(means.log(run.log, done, lr, batch.get("damaged_total", 0)), refresh=False)
                if main and checkpoint_and_validate(run, progress, gan, schedule, cfg, held_out, device,
                                                    total_steps, end_of_epoch):
                    saved_at = done
            # Not stop.requested: a signal that reached one rank after its last step must not
            # send it alone into the barrier of stop_run; the run is finished.
            if interrupted:
                stopped = stop_run(stop, run, progress, gan, schedule, main, saved_at, stop_group)
    finally:
        bar.close()
        batches.close()
        run.close()
        if own_group:
            dist.destroy_process_group()
    return {"step": progress.step, "epoch": progress.epoch, "stopped": stopped, "total_steps": total_steps,
            "best": progress.best, "out": str(run.out), "rank": dist_info.rank}


def check_inputs(run: RunFolder, cfg: TrainConfig, data_cfg: DataConfig, dist_info, resume: bool,
                 device: torch.device) -> tuple:
    """Everything of the run that can fail on the user's input, before the
    first step: (the training sources, the epoch length in steps, the held-out
    pairs (rank 0; None elsewhere), the content loss, the state of last.pt to
    resume from or None).  On rank 0 the data's fingerprints go into
    ``run.fingerprints`` (kept in every checkpoint); a resume on changed data is refused."""
    # The training sources are found and checked once, for the epoch length and the loader.
    sources = training_sources(data_cfg)
    steps_per_epoch = epoch_length(data_cfg, dist_info.world_size, sources)
    # The held-out set too (its shards opened and checked): found broken only at the
    # first validation, it would end every retry an epoch later, before its checkpoint.
    held_out = val_pairs(data_cfg, limit=cfg.val_limit or None) if dist_info.main else None
    content_loss = make_content_loss(cfg.content_loss, cfg.vgg_weights, cfg.psnr_ceiling)
    state = run.read_last(device) if resume else None
    if dist_info.main:
        run.fingerprints = data_fingerprints(data_cfg)
        if state is not None:
            check_same_data(state["data"].get("fingerprints"), run.fingerprints, run.last)
    return sources, steps_per_epoch, held_out, content_loss, state


def join_process_group(ddp: bool, device: torch.device):
    """(whether this run started the process group and must end it, the group in
    which the ranks agree on stopping or None).  torchrun leaves the group to
    the program; a caller that set one up keeps it.  The stop group is gloo, on
    the CPU whatever the training backend: StopRequest.agreed reduces a CPU flag."""
    own_group = ddp and not dist.is_initialized()
    if own_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return own_group, dist.new_group(backend="gloo") if ddp else None


def load_warm_start(gan: GAN, init_from: str | os.PathLike | None, cfg: TrainConfig) -> str | None:
    """``init_from``'s weights in the new run's networks (trainer.warmstart); what
    the opening line says of them, or None for a run from fresh weights."""
    if init_from is None:
        return None
    from trainer.warmstart import load_initial_weights

    return load_initial_weights(init_from, unwrap(gan.generator), unwrap(gan.critic), cfg)


def say_opening(gan: GAN, cfg: TrainConfig, data_cfg: DataConfig, sources, held_out, device: torch.device,
                world_size: int, total_steps: int, steps_per_epoch: int, start: int, warm_start: str | None,
                notes: tuple[str, ...]) -> None:
    """Rank 0's lines before the first step: the opening line, the data and the
    held-out set, then the caller's notes and a warning of a slow CPU run, last,
    so that they stand nearest the progress bar."""
    say(opening_line(gan, cfg, total_steps, steps_per_epoch, device, world_size, len(held_out), start, warm_start))
    for line in [*describe_sources(data_cfg, sources), f"validation: {held_out.description}"]:
        say(line)
    warning = cpu_warning(device, count_parameters(unwrap(gan.generator)))
    for line in [*notes, *([warning] if warning else [])]:
        say(line)


def checkpoint_and_validate(run: RunFolder, progress: Progress, gan: GAN, schedule: dict, cfg: TrainConfig,
                            held_out, device: torch.device, total_steps: int, end_of_epoch: bool) -> bool:
    """Rank 0's checkpoint and validation after step ``progress.step``: last.pt every
    ``cfg.checkpoint_every`` steps and before each validation (a validation that
    fails then costs no training steps); a validation at each epoch end, or
    every ``cfg.val_every`` steps, and at the last step; last.pt again when the
    validation made a new best.pt, so that a resumed run knows it.  True when
    last.pt was saved."""
    done = progress.step
    # --val-every replaces the epoch ends (both gave validations at 96 and 100).
    validation_due = done == total_steps or (done % cfg.val_every == 0 if cfg.val_every else end_of_epoch)
    if not (validation_due or done % cfg.checkpoint_every == 0):
        return False
    run.save_checkpoint(progress, gan, schedule)
    if validation_due and validate(run, progress, unwrap(gan.generator), held_out, device, cfg.preview):
        run.save_checkpoint(progress, gan, schedule)
    return True


def stop_run(stop: StopRequest, run: RunFolder, progress: Progress, gan: GAN, schedule: dict, main: bool,
             saved_at: int, stop_group) -> str:
    """The end of a run stopped by a signal before its last step: rank 0 saves the
    last finished step (unless it just did), and says how to go on; the name of
    the signal.  Under DDP no rank leaves before rank 0 has saved: a launcher
    kills the rest when one exits."""
    stopped = signal.Signals(stop.signum).name
    if main and saved_at != progress.step:
        run.save_checkpoint(progress, gan, schedule)
    if stop_group is not None:   # DDP: other ranks wait for rank 0
        dist.barrier(group=stop_group)
    if main:
        say(f"{stopped}: stopped at step {progress.step}; continue with --resume")
    return stopped

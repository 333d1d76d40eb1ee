"""The training loop: the step structure (5 critic steps per generator step),
the schedule, checkpoints, exact resume, the VGG weight check, and DDP on the
CPU with the gloo backend."""
import csv
import dataclasses
import os
import signal
import socket

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_faults_training import assert_same_training_state

from blurgen.shards import ShardWriter, shard_name, write_manifest
from trainer import checkpoint, loop
from trainer.config import TrainConfig, make_configs
from trainer.loop import build_gan, fit, learning_rate, resume_configs, train_step
from trainer.losses import make_content_loss, vgg19_to_conv3_3


@pytest.fixture(scope="module")
def gopro(make_gopro):
    """A GOPRO_Large-layout folder: 6 training and 3 test pairs of 48x64."""
    return make_gopro("fit", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """VGG19 features up to conv3_3, randomly initialised (the real file is 550 MB and not here)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_conv3_3.pth"
    torch.save(vgg19_to_conv3_3().state_dict(), path)
    return path


def tiny_configs(out, gopro, vgg_file, **train):
    train_cfg, data_cfg = make_configs(
        "tiny",
        dict(dict(out=out, steps=6, device="cpu", vgg_weights=vgg_file, val_limit=2,
                  checkpoint_every=3, log_every=2, preview=False), **train),
        dict(gopro=gopro, mix="0:1", crop=32, batch_size=1, gopro_scale=1.0, workers=0))
    return train_cfg, data_cfg


def tiny_gan(cfg=None, content="l1", **speed):
    cfg = cfg or TrainConfig(ngf=8, n_blocks=1, ndf=8)
    torch.manual_seed(0)
    return cfg, build_gan(cfg, torch.device("cpu"), make_content_loss(content), **speed)


def batch(seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, size, size, generator=g) * 2 - 1,
            torch.rand(1, 3, size, size, generator=g) * 2 - 1)


def test_learning_rate_constant_then_linear_to_zero():
    lrs = [learning_rate(s, 1e-4, 300) for s in range(300)]
    assert lrs[:150] == [1e-4] * 150
    assert lrs[150] == pytest.approx(1e-4) and lrs[225] == pytest.approx(0.5e-4)
    assert lrs[299] == pytest.approx(1e-4 / 150)
    diffs = [a - b for a, b in zip(lrs[150:], lrs[151:])]
    assert max(diffs) == pytest.approx(min(diffs)) == pytest.approx(1e-4 / 150)


@pytest.mark.parametrize("critic_steps", [5, 2])
def test_critic_steps_per_generator_step(critic_steps):
    cfg, gan = tiny_gan(TrainConfig(ngf=8, n_blocks=1, ndf=8, critic_steps=critic_steps))
    counts = {"critic": 0, "generator": 0}
    gan.opt_critic.register_step_post_hook(lambda *a: counts.__setitem__("critic", counts["critic"] + 1))
    gan.opt_generator.register_step_post_hook(lambda *a: counts.__setitem__("generator", counts["generator"] + 1))
    forwards = []
    gan.generator.register_forward_hook(lambda *a: forwards.append(1))
    for k in range(2):
        train_step(gan, *batch(k), cfg)
    assert counts == {"critic": 2 * critic_steps, "generator": 2}
    assert len(forwards) == 2   # one generator pass per step serves all its critic steps


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("speed", [{}, {"amp": True, "channels_last": True}], ids=["fp32", "bf16+NHWC"])
def test_one_step_changes_both_networks_and_keeps_losses_finite(speed):
    cfg, gan = tiny_gan(**speed)
    before_g, before_c = _snapshot(gan.generator), _snapshot(gan.critic)
    stats = train_step(gan, *(gan.to_device(t) for t in batch()), cfg)
    assert set(stats) == {"critic_loss", "wasserstein", "gradient_penalty", "adversarial_loss",
                          "content_loss", "generator_loss", "grad_adversarial", "grad_content", "grad_ratio"}
    assert all(torch.isfinite(v) for v in stats.values())
    changed_g = [k for k, v in gan.generator.state_dict().items() if not torch.equal(v, before_g[k])]
    changed_c = [k for k, v in gan.critic.state_dict().items() if not torch.equal(v, before_c[k])]
    assert changed_g == list(before_g)
    assert set(before_c) - set(changed_c) <= {"body.11.bias"}
    # The critic's last bias shifts D(real) and D(fake) alike, so its gradient cancels -- up
    # to rounding, which depends on the thread count and which Adam's first step would
    # turn into a full step of lr: check the gradient itself.
    last_bias, first_weight = gan.critic.body[11].bias.grad, gan.critic.body[0].weight.grad
    assert last_bias.abs().max() < 1e-4 * first_weight.abs().max()


def test_perceptual_content_loss_in_a_step(vgg_file):
    cfg = TrainConfig(ngf=8, n_blocks=1, ndf=8, vgg_weights=vgg_file)
    torch.manual_seed(0)
    gan = build_gan(cfg, torch.device("cpu"), make_content_loss("perceptual", vgg_file))
    stats = {k: v.item() for k, v in train_step(gan, *batch(), cfg).items()}
    assert stats["content_loss"] > 0
    assert stats["generator_loss"] == pytest.approx(stats["adversarial_loss"] + 100 * stats["content_loss"], rel=1e-5)


def _read_scalars(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _sharp_only_shards(folder, count=6, size=48):
    """A sharp-only shard folder of random (size, size) crops, for --online."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    with ShardWriter(folder / shard_name(0), crop=(size, size), sharp_only=True) as writer:
        for _ in range(count):
            writer.add(None, rng.integers(0, 256, (size, size, 3), dtype=np.uint8), None)
    write_manifest(folder, {"shards": {shard_name(0): {"count": count, "checksum": writer.checksum}}})
    return folder


@pytest.mark.parametrize("online", [False, True], ids=["gopro", "online+gopro"])
def test_fit_then_resume_after_a_crash_gives_identical_weights(tmp_path, gopro, vgg_file, monkeypatch, online):
    # Uninterrupted: 6 steps.
    cfg_a, data_cfg = tiny_configs(tmp_path / "a", gopro, vgg_file)
    if online:   # synthetic draws blurred on the fly, 2:1 with GoPro
        data_cfg = dataclasses.replace(data_cfg, shards=(_sharp_only_shards(tmp_path / "sharp"),), mix=(2, 1),
                                       online=True, online_noise=True)
    summary = fit(cfg_a, data_cfg)
    assert summary["step"] == 6 and summary["best"] is not None
    a = checkpoint.load(tmp_path / "a" / "last.pt")

    # Same run, crashing while fetching the batch of step 4 (after the step-3 checkpoint).
    cfg_b, _ = tiny_configs(tmp_path / "b", gopro, vgg_file)
    real_batches = loop.train_batches

    def crashing(*args, **kwargs):
        for i, item in enumerate(real_batches(*args, **kwargs)):
            if kwargs.get("start", 0) == 0 and i == 3:
                raise RuntimeError("simulated crash")
            yield item

    monkeypatch.setattr(loop, "train_batches", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(cfg_b, data_cfg)
    assert checkpoint.load(tmp_path / "b" / "last.pt")["step"] == 3
    with pytest.raises(ValueError, match="--resume"):
        fit(cfg_b, data_cfg)                      # a run folder is never silently overwritten
    cfg_resumed, data_resumed = resume_configs(tmp_path / "b", {"device": "cpu"}, {"workers": 0})
    assert cfg_resumed == cfg_b and data_resumed.gopro == gopro.resolve()
    assert (data_resumed.online, data_resumed.online_noise) == (online, online)
    if online:   # the online settings are the run's: a resume cannot change them
        with pytest.raises(ValueError, match="cannot change online_kernel_size"):
            resume_configs(tmp_path / "b", {}, {"online_kernel_size": 5})
    fit(cfg_resumed, data_resumed, resume=True)
    b = checkpoint.load(tmp_path / "b" / "last.pt")

    assert b["step"] == a["step"] == 6 and b["epoch"] == a["epoch"] == (0 if online else 1)  # 18-step epochs online
    assert_same_training_state(a, b)

    # Logs: every step's scalars once, also across the crash.
    rows = _read_scalars(tmp_path / "b" / "scalars.csv")
    keys = [(r["step"], r["name"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert keys == [(r["step"], r["name"]) for r in _read_scalars(tmp_path / "a" / "scalars.csv")]
    names = {r["name"] for r in rows}
    assert {"train/critic_loss", "train/wasserstein", "train/gradient_penalty", "train/content_loss",
            "train/lr", "val/psnr", "val/ssim", "val/sharp_psnr", "val/sharp_psnr_min"} <= names
    for run in ("a", "b"):
        assert (tmp_path / run / "preview.png").stat().st_size > 0
        assert (tmp_path / run / "curves.png").stat().st_size > 0
        assert any((tmp_path / run / "tensorboard").iterdir())
        best = checkpoint.load(tmp_path / run / "best.pt")
        assert best["kind"] == "generator" and best["scores"]["psnr"] == pytest.approx(a["best"]["psnr"])
    # Checkpoints need no unpickling of arbitrary objects.
    torch.load(tmp_path / "b" / "last.pt", weights_only=True)


def test_ctrl_c_finishes_the_step_and_saves(tmp_path, gopro, vgg_file, monkeypatch):
    real_step = loop.train_step
    calls = []

    def interrupted_step(*args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)   # arrives in the middle of step 2
        return real_step(*args)

    monkeypatch.setattr(loop, "train_step", interrupted_step)
    cfg, data_cfg = tiny_configs(tmp_path / "run", gopro, vgg_file, checkpoint_every=100)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs in the background
    summary = fit(cfg, data_cfg)
    assert summary["stopped"] and summary["step"] == 2
    assert checkpoint.load(tmp_path / "run" / "last.pt")["step"] == 2
    assert signal.getsignal(signal.SIGINT) is before   # handler restored


def test_resume_keeps_the_run_settings(tmp_path, gopro, vgg_file):
    cfg, data_cfg = tiny_configs(tmp_path / "run", gopro, vgg_file, steps=1)
    fit(cfg, data_cfg)
    with pytest.raises(ValueError, match="cannot change lr"):
        resume_configs(tmp_path / "run", {"lr": 1.0})
    with pytest.raises(ValueError, match="cannot change crop"):
        resume_configs(tmp_path / "run", {}, {"crop": 64})
    same, _ = resume_configs(tmp_path / "run", {"lr": cfg.lr, "log_every": 7})
    assert same.log_every == 7
    with pytest.raises(ValueError, match="nothing to resume"):
        fit(dataclasses.replace(cfg, out=tmp_path / "empty"), data_cfg, resume=True)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"format": checkpoint.FORMAT, "version": 1, "step": 1})

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        checkpoint.save(path, {"format": checkpoint.FORMAT, "version": 1, "step": 2})
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_missing_vgg_weights_stop_the_cli_before_training(tmp_path, gopro, monkeypatch):
    import cli

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    result = CliRunner().invoke(cli.trainer, [
        "fit", "--out", str(tmp_path / "run"), "--gopro", str(gopro), "--mix", "0:1", "--preset", "tiny",
        "--steps", "2", "--crop", "32", "--batch-size", "1", "--gopro-scale", "1", "--workers", "0",
        "--device", "cpu", "--content-loss", "perceptual"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: VGG19 weights") and "--vgg-weights" in lines[0]
    assert not (tmp_path / "run" / "last.pt").exists()
    # Bad data is named first: fetching VGG weights would not make that run work.
    result = CliRunner().invoke(cli.trainer, [
        "fit", "--out", str(tmp_path / "run"), "--gopro", str(gopro), "--mix", "2:1", "--preset", "tiny"])
    assert result.exit_code == 2 and "no shard folder was given" in result.stderr


def test_cli_fit_with_pixel_loss_and_resume(tmp_path, gopro):
    import cli

    args = ["fit", "--out", str(tmp_path / "run"), "--gopro", str(gopro), "--mix", "0:1", "--preset", "tiny",
            "--crop", "32", "--batch-size", "1", "--gopro-scale", "1", "--workers", "0", "--device", "cpu",
            "--content-loss", "l1", "--content-weight", "10", "--no-preview", "--val-limit", "1"]
    result = CliRunner().invoke(cli.trainer, args + ["--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "finished at step 2 of 2" in result.stdout
    again = CliRunner().invoke(cli.trainer, args + ["--steps", "2"])
    assert again.exit_code == 2 and "--resume" in again.stderr
    resumed = CliRunner().invoke(cli.trainer, ["fit", "--out", str(tmp_path / "run"), "--resume", "--lr", "0.5"])
    assert resumed.exit_code == 2 and "cannot change lr" in resumed.stderr


# --- DistributedDataParallel on the CPU (gloo) --------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, out, gopro, vgg_file):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    try:
        cfg, data_cfg = tiny_configs(out, gopro, vgg_file, steps=2)
        assert fit(cfg, data_cfg)["rank"] == rank
        # Each rank trains on its own batch; DDP must keep the weights identical.
        cfg, gan = tiny_gan(ddp=True)
        train_step(gan, *batch(seed=rank), cfg)
        torch.save(checkpoint.unwrap(gan.generator).state_dict(), out / f"generator_rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_processes_on_cpu(tmp_path, gopro, vgg_file):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), tmp_path, gopro, vgg_file), nprocs=2, join=True)
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["step"] == 2 and state["data"]["world_size"] == 2
    ranks = [torch.load(tmp_path / f"generator_rank{r}.pt", weights_only=True) for r in range(2)]
    for name, value in ranks[0].items():
        assert torch.equal(value, ranks[1][name]), name


def test_scalar_log_resumes_with_the_history_the_curves_draw(tmp_path):
    log = loop.ScalarLog(tmp_path, start=0)
    for step in range(1, 6):
        log.scalars(step, {"train/content_loss": 1.0 / step, "val/psnr": 20.0 + step})
    log.close()
    resumed = loop.ScalarLog(tmp_path, start=3)   # a crash after the step-3 checkpoint
    series = resumed.series()
    assert series["train/content_loss"][0].tolist() == [1, 2, 3]
    assert series["train/content_loss"][1].tolist() == [float(f"{1 / s:.6g}") for s in (1, 2, 3)]
    resumed.scalars(4, {"val/psnr": 30.0})
    resumed.close()
    assert resumed.series()["val/psnr"][0].tolist() == [1, 2, 3, 4]
    assert resumed.series()["val/psnr"][1].tolist() == [21.0, 22.0, 23.0, 30.0]
    assert _read_scalars(tmp_path / "scalars.csv")[-1] == {"step": "4", "name": "val/psnr", "value": "30"}


# --- does it learn, and is the GAN's balance measured right ------------------------------


def _blurred_pair(size=32):
    """A fixed (blurred, sharp) pair in [-1, 1]: a random-checker sharp image and its 5-px box blur."""
    g = torch.Generator().manual_seed(7)
    sharp = torch.nn.functional.interpolate(torch.rand(1, 3, size // 4, size // 4, generator=g), scale_factor=4)
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(sharp, (2, 2, 2, 2), mode="replicate"),
                                             5, stride=1)
    return blurred * 2 - 1, sharp * 2 - 1


def test_a_few_dozen_steps_on_one_pair_drive_the_content_loss_down():
    cfg = TrainConfig(ngf=8, n_blocks=1, ndf=8, dropout=0.0, init="identity", content_loss="l1", lr=1e-3)
    torch.manual_seed(0)
    gan = build_gan(cfg, torch.device("cpu"), make_content_loss("l1"))
    blurred, sharp = _blurred_pair()
    with torch.no_grad():
        start = float((gan.generator(blurred) - sharp).abs().mean())
    assert start == pytest.approx(float((blurred - sharp).abs().mean()))   # the identity start
    for step in range(40):
        torch.manual_seed(step)
        train_step(gan, blurred, sharp, cfg)
    with torch.no_grad():
        end = float((gan.generator(blurred) - sharp).abs().mean())
    assert end < 0.6 * start


def test_logged_gradient_balance_matches_a_direct_autograd_computation():
    import copy

    cfg = TrainConfig(ngf=8, n_blocks=1, ndf=8, dropout=0.0, content_loss="l1", adversarial_weight=0.5)
    torch.manual_seed(0)
    gan = build_gan(cfg, torch.device("cpu"), make_content_loss("l1"))
    blurred, sharp = _blurred_pair()
    generator_before = copy.deepcopy(gan.generator)
    stats = train_step(gan, blurred, sharp, cfg)
    # Directly: the generator as it was, the critic as the critic steps left it.
    restored = generator_before(blurred)
    adversarial = 0.5 * -gan.critic(restored).flatten(1).mean(1).mean()
    content = 100 * (restored - sharp).abs().mean()
    (g_adv,) = torch.autograd.grad(adversarial, restored, retain_graph=True)
    (g_con,) = torch.autograd.grad(content, restored, retain_graph=True)
    assert float(stats["grad_adversarial"]) == pytest.approx(float(g_adv.norm()), rel=1e-5)
    assert float(stats["grad_content"]) == pytest.approx(float(g_con.norm()), rel=1e-5)
    assert float(stats["grad_ratio"]) == pytest.approx(float(g_adv.norm() / g_con.norm()), rel=1e-5)
    # The one backward of their sum gives the generator the gradient of the total loss.
    (adversarial + content).backward()
    for (name, p), q in zip(generator_before.named_parameters(), gan.generator.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-7), name


def test_adversarial_weight_zero_trains_the_generator_alone():
    cfg = TrainConfig(ngf=8, n_blocks=1, ndf=8, content_loss="l1", adversarial_weight=0.0)
    torch.manual_seed(0)
    gan = build_gan(cfg, torch.device("cpu"), make_content_loss("l1"))
    critic_before = _snapshot(gan.critic)
    stats = train_step(gan, *batch(), cfg)
    assert all(torch.equal(v, critic_before[k]) for k, v in gan.critic.state_dict().items())
    assert set(stats) == {"content_loss", "generator_loss", "grad_adversarial", "grad_content", "grad_ratio"}
    assert float(stats["grad_adversarial"]) == 0 and float(stats["generator_loss"]) == pytest.approx(
        100 * float(stats["content_loss"]))


def test_runs_saved_before_the_new_settings_resume_as_they_started():
    # Checkpoints written before init/gradient_penalty/norm existed trained with
    # the paper's init, the per-image penalty and InstanceNorm.
    from trainer.config import to_primitive, train_config_from

    old = to_primitive(TrainConfig())
    for key in ("init", "gradient_penalty", "norm"):
        old.pop(key)
    cfg = train_config_from(old)
    assert (cfg.init, cfg.gradient_penalty, cfg.norm) == ("paper", "per-image", "instance")
    assert train_config_from(to_primitive(TrainConfig())).gradient_penalty == TrainConfig().gradient_penalty

    # Tiny runs saved before the U-Net skips existed were trained without them, and load so.
    tiny, _ = make_configs("tiny")
    before_skips = to_primitive(tiny)
    before_skips.pop("skips")
    assert tiny.skips and train_config_from(before_skips).skips is False


def test_tiny_preset_starts_from_doing_nothing():
    # The old tiny preset's first output sat 13-15 dB below its own input.
    cfg, _ = make_configs("tiny", {"device": "cpu"})
    torch.manual_seed(0)
    gan = build_gan(cfg, torch.device("cpu"), make_content_loss(cfg.content_loss))
    x = torch.rand(2, 3, 80, 80) * 2 - 1
    assert torch.equal(gan.generator(x), x)

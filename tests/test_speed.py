"""Issue 19's speed paths on the CPU: fused Adam, the native-bf16 default, the
deterministic switches, what CUDA-graph capture undoes, and the operation count."""
import dataclasses
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainer import precision
from trainer.config import ConfigError, make_configs
from trainer.determinism import ReflectionPad, deterministic_padding
from trainer.evaluate import restore
from trainer.graphs import Undone
from trainer.loop import build_gan, eager_train_step, set_up_gan, train_step
from trainer.losses import make_content_loss
from trainer.models import Generator

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def tiny_config(**changes):
    cfg, _ = make_configs("tiny", dict(ngf=8, ndf=8, n_blocks=1, **changes))
    return cfg


def tiny_batch(seed=1, shape=(2, 3, 24, 24)):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=g) * 2 - 1 for _ in range(2)]


def run_steps(gan, cfg, steps=2):
    blurred, sharp = tiny_batch()
    for step in range(steps):
        torch.manual_seed(100 + step)   # as fit reseeds each step
        stats = train_step(gan, blurred, sharp, cfg)
    return stats


@pytest.fixture
def global_switches():
    """Put back the process-wide switches that set_up_gan may turn."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1:]


def test_fused_adam_steps_equal_the_default_implementation():
    # Five steps of both implementations on the same gradients.
    g = torch.Generator().manual_seed(0)
    start = torch.randn(50, generator=g)
    grads = [torch.randn(50, generator=g) * 10.0 ** -k for k in range(5)]
    params = []
    for fused in (True, False):
        p = nn.Parameter(start.clone())
        opt = torch.optim.Adam([p], lr=1e-3, betas=(0.5, 0.999), fused=fused)
        for grad in grads:
            p.grad = grad.clone()
            opt.step()
        params.append(p.detach())
    torch.testing.assert_close(params[0], params[1], rtol=1e-6, atol=1e-9)
    assert (params[0] - start).abs().min() > 1e-4   # every element moved


def test_fit_builds_fused_adam_and_its_first_step_matches_the_default():
    # One step, a generator without InstanceNorm: the biases of convs in front of an
    # InstanceNorm get gradients of pure rounding noise, which Adam scales up to
    # steps of size lr, so the optimisers' rounding differences would show there as
    # differences up to 2 lr after a later step (measured: 1.9e-3 at lr 1e-3).
    cfg = tiny_config(norm="none", dropout=0.0, init="paper")
    gans = []
    for fused in (True, False):
        torch.manual_seed(0)
        gan = build_gan(cfg, CPU, make_content_loss(cfg.content_loss), fused_adam=fused)
        stats = run_steps(gan, cfg, steps=1)
        gans.append((gan, stats))
    (fused, fused_stats), (default, default_stats) = gans
    assert fused.opt_generator.param_groups[0]["fused"] and not default.opt_generator.param_groups[0]["fused"]
    assert set_up_gan(cfg, CPU, make_content_loss(cfg.content_loss), ddp=False).opt_critic.param_groups[0]["fused"]
    for a, b in zip(list(fused.generator.parameters()) + list(fused.critic.parameters()),
                    list(default.generator.parameters()) + list(default.critic.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fused_stats["generator_loss"], default_stats["generator_loss"])
    torch.manual_seed(0)
    untouched = build_gan(cfg, CPU, make_content_loss(cfg.content_loss))
    assert any(not torch.equal(a, b) for a, b in zip(untouched.generator.parameters(), fused.generator.parameters()))


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, torch.bfloat16), (False, True, torch.bfloat16),
                                                         (False, False, None)])
def test_bf16_is_the_cpu_default_only_with_native_bf16(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert precision.native_bf16("cpu") is (expected is not None)
    assert precision.autocast_dtype("cpu", None) is expected
    # Asked for, or refused, explicitly: the CPU's features do not matter.
    assert precision.autocast_dtype("cpu", True) is torch.bfloat16
    assert precision.autocast_dtype("cpu", False) is None
    cfg = tiny_config()
    assert set_up_gan(cfg, CPU, make_content_loss(cfg.content_loss), ddp=False).amp_dtype is expected
    assert set_up_gan(dataclasses.replace(cfg, amp=False), CPU, make_content_loss(cfg.content_loss),
                      ddp=False).amp_dtype is None


def test_this_machines_cpu_answer_follows_its_features():
    features = torch._C._cpu._get_cpu_capability()
    assert precision.cpu_has_native_bf16() is bool(features["avx512_bf16"] or features["amx_tile"])


def test_deblur_restores_under_bf16_autocast_close_to_float32():
    torch.manual_seed(0)
    generator = Generator(ngf=8, n_blocks=1).eval()
    image = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    exact = restore(generator, image)
    half = restore(generator, image, amp_dtype=torch.bfloat16)
    assert half.shape == exact.shape and half.dtype == np.uint8
    difference = np.abs(half.astype(int) - exact.astype(int))
    assert difference.max() <= 8 and difference.mean() < 2
    assert not np.array_equal(half, exact)   # bf16 did run: its 8-bit mantissa shows somewhere


def test_tf32_is_set_and_said_explicitly():
    before = precision.tf32_summary()
    try:
        precision.set_tf32(False)
        assert precision.tf32_summary() == "convs ieee, matmuls ieee"
        precision.set_tf32(True)
        assert precision.tf32_summary() == "convs tf32, matmuls tf32"
    finally:
        precision.set_tf32("convs tf32" in before)


def test_reflection_pad_without_atomics_is_reflection_pad():
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 3, 13, 15, dtype=torch.float64)
    for p in (1, 3):
        ours, torchs = ReflectionPad(p)(x), nn.ReflectionPad2d(p)(x)
        assert torch.equal(ours, torchs)
        (g_ours,) = torch.autograd.grad((ours * weights[..., :7 + 2 * p, :9 + 2 * p]).sum(), x)
        (g_torch,) = torch.autograd.grad((torchs * weights[..., :7 + 2 * p, :9 + 2 * p]).sum(), x)
        torch.testing.assert_close(g_ours, g_torch)
    generator = Generator(ngf=8, n_blocks=2)
    keys = generator.state_dict().keys()
    assert deterministic_padding(generator) == 2 + 2 * 2   # in and out convs, two per ResBlock
    assert not any(isinstance(m, nn.ReflectionPad2d) for m in generator.modules())
    assert generator.state_dict().keys() == keys


def test_deterministic_run_switches_the_process_to_deterministic_kernels(global_switches):
    torch.use_deterministic_algorithms(False)
    cfg = tiny_config(norm="instance", deterministic=True)
    gan = set_up_gan(cfg, CPU, make_content_loss(cfg.content_loss), ddp=False)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not any(isinstance(m, nn.ReflectionPad2d) for m in gan.generator.modules())
    stats = run_steps(gan, cfg, steps=1)   # every operation of a step has a deterministic kernel
    assert torch.isfinite(stats["generator_loss"])


def test_cuda_graphs_are_refused_without_cuda():
    cfg = tiny_config(cuda_graphs=True)
    with pytest.raises(ConfigError, match="--cuda-graphs needs one CUDA device"):
        set_up_gan(cfg, CPU, make_content_loss(cfg.content_loss), ddp=False)


def test_steps_inside_undone_leave_no_trace():
    # CUDA-graph capture runs warm-up steps and must then put the weights, Adam's
    # moments and the random state back into the same tensors: the run goes on as
    # if they had never run (tested here on the CPU, eager).
    cfg = tiny_config(dropout=0.5)
    gans = []
    for warm_up in (False, True):
        torch.manual_seed(0)
        gan = build_gan(cfg, CPU, make_content_loss(cfg.content_loss))
        run_steps(gan, cfg, steps=1)                 # Adam state exists (the resumed case)
        params = list(gan.generator.parameters())
        addresses = [p.data_ptr() for p in params]
        if warm_up:
            blurred, sharp = tiny_batch(seed=5)
            rng = torch.get_rng_state()
            with Undone([gan.generator, gan.critic], [gan.opt_generator, gan.opt_critic]):
                for _ in range(2):
                    eager_train_step(gan, blurred, sharp, cfg)
            assert torch.equal(torch.get_rng_state(), rng)
        assert [p.data_ptr() for p in params] == addresses
        run_steps(gan, cfg, steps=2)
        gans.append(gan)
    for a, b in zip(gans[0].generator.parameters(), gans[1].generator.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(gans[0].opt_critic.state.values(), gans[1].opt_critic.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_undone_zeroes_state_made_inside_it():
    cfg = tiny_config()
    torch.manual_seed(0)
    gan = build_gan(cfg, CPU, make_content_loss(cfg.content_loss))
    assert not gan.opt_generator.state
    blurred, sharp = tiny_batch()
    with Undone([gan.generator, gan.critic], [gan.opt_generator, gan.opt_critic]):
        eager_train_step(gan, blurred, sharp, cfg)
    state = next(iter(gan.opt_generator.state.values()))
    assert all(not value.any() for value in state.values())   # as Adam makes it: zeros, step 0


def load_bench(name):
    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "bench" / f"{name}.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_launch_bench_counts_fewer_operations_when_optimised(capsys):
    assert load_bench("launches").main(["--tiny", "--size", "16"]) == 0
    out = capsys.readouterr().out
    before = int(re.search(r"eager \(before\)\s+(\d+) ops/step", out).group(1))
    after = int(re.search(r"optimised\s+(\d+) ops/step", out).group(1))
    assert 0 < after < before
    assert f"({before - after} fewer)" in out


def test_op_counter_sees_fused_adam_as_one_kernel():
    bench = load_bench("launches")
    cfg = tiny_config()
    counts = {optimised: bench.step_ops(cfg, make_content_loss(cfg.content_loss), (2, 3, 16, 16), CPU,
                                        optimised=optimised).counts for optimised in (True, False)}
    assert counts[True]["aten._fused_adam_"] == 2 and counts[False]["aten._fused_adam_"] == 0   # two optimisers
    assert counts[False]["aten.addcdiv_"] > 0 and counts[True]["aten.addcdiv_"] == 0

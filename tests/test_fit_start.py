"""Starting a run (issue 12): what `trainer fit` says before and just after its first
steps (device, model size, measured pace and ETA, the CPU warning), and warm starts
from another run's weights (`--init-from`)."""
import pytest
import torch
from click.testing import CliRunner

import cli
from trainer import checkpoint, loop
from trainer.models import Generator, count_parameters
from trainer.pace import Pace, cpu_warning

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gopro(make_gopro):
    """A GOPRO_Large-layout folder: 6 training and 3 test pairs of 48x64."""
    return make_gopro("start", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


def fit_args(out, gopro, steps, *extra):
    return ["fit", "--out", str(out), "--gopro", str(gopro), "--mix", "0:1", "--crop", "32", "--batch-size", "1",
            "--gopro-scale", "1", "--workers", "0", "--device", "cpu", "--content-loss", "l1", "--content-weight", "10", "--no-preview",
            "--val-limit", "1", "--steps", str(steps), *extra]


def test_pace_leaves_out_the_first_step_and_says_the_eta_once():
    """Issue 12.2: the step rate is measured after a warm-up step; the ETA is the steps left at that rate."""
    times = iter([10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0])
    pace = Pace(start=0, total=100, clock=lambda: next(times))
    said = [pace.update(done) for done in range(1, 8)]
    assert said[:5] == [None] * 5 and said[6] is None      # once, after 5 timed steps
    assert said[5] == ("pace: 2 s/step (0.5 steps/s, measured over steps 2-6); ETA 3 min 8 s "
                       "for the 94 steps left of 100 (validations not included)")


def test_pace_of_slow_steps_is_said_after_patience_seconds():
    """A paper-sized step on a CPU takes many seconds: the pace comes after 30 s, not 5 steps."""
    times = iter([0.0, 40.0])
    pace = Pace(start=10, total=1000, clock=lambda: next(times))
    assert pace.update(11) is None
    line = pace.update(12)
    assert "40 s/step" in line and "ETA 10 h 58 min for the 988 steps left of 1000" in line


def test_cpu_warning_for_the_papers_networks_only():
    paper = count_parameters(Generator())
    tiny = count_parameters(Generator(ngf=16, n_blocks=2, norm="none"))
    line = cpu_warning(torch.device("cpu"), paper)
    assert line.startswith("warning:") and "--preset tiny" in line and "GPU" in line and "\n" not in line
    assert cpu_warning(torch.device("cpu"), tiny) is None
    assert cpu_warning(torch.device("cuda", 0), paper) is None


def test_fit_says_device_model_size_pace_and_eta(tmp_path, gopro):
    """Issue 12.2: fit printed no step rate or ETA before a 21-hour run; the paper's nets on a CPU: one warning."""
    result = CliRunner().invoke(cli.trainer, fit_args(tmp_path / "tiny", gopro, 8, "--preset", "tiny"))
    assert result.exit_code == 0, result.output
    assert "device cpu" in result.stderr and "M parameters" in result.stderr
    assert "pace: " in result.stderr and "measured over steps 2-6); ETA " in result.stderr
    assert "for the 2 steps left of 8" in result.stderr and "warning:" not in result.stderr

    paper = CliRunner().invoke(cli.trainer, fit_args(tmp_path / "paper", gopro, 1, "--critic-steps", "1"))
    assert paper.exit_code == 0, paper.output
    warnings = [line for line in paper.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--preset tiny" in warnings[0]


# --- 12.9: warm starts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(gopro, tmp_path_factory):
    """A finished 2-step tiny run."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = CliRunner().invoke(cli.trainer, fit_args(out, gopro, 2, "--preset", "tiny"))
    assert result.exit_code == 0, result.output
    return out


def test_init_from_takes_both_networks_with_a_new_schedule(tmp_path, gopro, finished_run, monkeypatch):
    """Issue 12.9: there was no warm start.  The new run's first step sees the old run's
    generator and critic, empty Adam moments and the new schedule's full learning rate."""
    old = checkpoint.load(finished_run / "last.pt")
    seen = []
    real_step = loop.train_step

    def first_step(gan, blurred, sharp, cfg):
        if not seen:
            seen.append({"generator": {k: v.clone() for k, v in gan.generator.state_dict().items()},
                         "critic": {k: v.clone() for k, v in gan.critic.state_dict().items()},
                         "moments": len(gan.opt_generator.state) + len(gan.opt_critic.state),
                         "lr": gan.opt_generator.param_groups[0]["lr"]})
        return real_step(gan, blurred, sharp, cfg)

    monkeypatch.setattr(loop, "train_step", first_step)
    result = CliRunner().invoke(cli.trainer, fit_args(tmp_path / "more", gopro, 3, "--preset", "tiny",
                                                      "--init-from", str(finished_run / "last.pt")))
    assert result.exit_code == 0, result.output
    assert f"weights: generator and critic of step 2 of {finished_run / 'last.pt'}" in result.stderr
    first = seen[0]
    for net in ("generator", "critic"):
        for name, value in old[net].items():
            assert torch.equal(first[net][name], value), f"{net}.{name}"
    assert first["moments"] == 0 and first["lr"] == pytest.approx(1e-3)   # tiny's lr, not the old decayed one
    assert checkpoint.load(tmp_path / "more" / "last.pt")["step"] == 3


def test_init_from_other_architecture_and_resume_to_more_steps_are_one_line(tmp_path, gopro, finished_run):
    """Issue 12.9: weights of another architecture: one line naming the settings that differ;
    `--resume --steps MORE` of a finished run says to use --init-from."""
    runner = CliRunner()
    other = runner.invoke(cli.trainer, fit_args(tmp_path / "wide", gopro, 2, "--preset", "tiny", "--ngf", "8",
                                                "--init-from", str(finished_run / "last.pt")))
    assert other.exit_code == 2 and other.stderr.count("\n") == 1, other.output
    assert "generator has another architecture: --ngf 16 (this run: 8)" in other.stderr
    assert not (tmp_path / "wide" / "last.pt").exists()

    # --skips changes what the generator computes, not a weight's shape: load_state_dict would take it.
    unskipped = runner.invoke(cli.trainer, fit_args(tmp_path / "plain", gopro, 2, "--preset", "tiny", "--no-skips",
                                                    "--init-from", str(finished_run / "last.pt")))
    assert unskipped.exit_code == 2 and unskipped.stderr.count("\n") == 1, unskipped.output
    assert "generator has another architecture: --skips True (this run: False)" in unskipped.stderr

    longer = runner.invoke(cli.trainer, ["fit", "--out", str(finished_run), "--resume", "--steps", "4"])
    assert longer.exit_code == 2 and longer.stderr.count("\n") == 1
    assert f"--init-from {finished_run / 'last.pt'} --out NEW_RUN" in longer.stderr

    both = runner.invoke(cli.trainer, ["fit", "--out", str(finished_run), "--resume",
                                       "--init-from", str(finished_run / "last.pt")])
    assert both.exit_code == 2 and "give one" in both.stderr


def test_init_from_best_pt_takes_the_generator_and_a_fresh_critic(tmp_path, gopro, finished_run):
    result = CliRunner().invoke(cli.trainer, fit_args(tmp_path / "g", gopro, 1, "--preset", "tiny",
                                                      "--init-from", str(finished_run / "best.pt")))
    assert result.exit_code == 0, result.output
    assert "weights: generator (critic from its initialisation) of step" in result.stderr


def test_fit_says_what_it_trains_and_validates_on(tmp_path, gopro):
    """Issue 22.11 and 22.9: fit never said what it trains on, and `--mix 0:1 --shards X`
    ignored the shards without a word."""
    from test_faults_training import make_shards

    shards = make_shards(tmp_path / "shards", [3, 3], side=40)
    result = CliRunner().invoke(cli.trainer, [*fit_args(tmp_path / "run", gopro, 1, "--preset", "tiny"),
                                              "--shards", str(shards)])
    assert result.exit_code == 0, result.output
    assert "training data, mixed 0:1 (synthetic:GoPro, exact in every 1 draws):" in result.stderr
    assert f"synthetic: none drawn (mix 0:1): --shards {shards} unused" in result.stderr
    assert f"GoPro: 6 train/ pairs of {gopro} (blur, scale 1)" in result.stderr
    assert "validation: 1 of the 3 GoPro test/ pairs (blur, scale 1)" in result.stderr

    online = CliRunner().invoke(cli.trainer, ["fit", "--out", str(tmp_path / "online"), "--shards", str(shards),
                                              "--mix", "1:0", "--preset", "tiny", "--crop", "16", "--workers", "0",
                                              "--device", "cpu", "--no-preview", "--steps", "1", "--online",
                                              "--online-noise", "--online-jpeg-quality", "70-90"])
    assert online.exit_code == 0, online.output
    assert (f"synthetic: 3 pairs in 1 shard of {shards} (blurred on the fly by a fresh 5-px kernel per draw, "
            "noise, JPEG 70-90)") in online.stderr
    assert f"validation: 3 of the 3 pairs of {shards}/shard-00001.h5, held out of training" in online.stderr


def test_val_every_replaces_the_epoch_ends(tmp_path, gopro):
    """Issue 22.11: --val-every plus the epoch ends validated at 96 and 100, 192 and 200."""
    import csv

    result = CliRunner().invoke(cli.trainer, fit_args(tmp_path / "run", gopro, 10, "--preset", "tiny",
                                                      "--val-every", "4"))   # 6 steps an epoch
    assert result.exit_code == 0, result.output
    with open(tmp_path / "run" / "scalars.csv", newline="") as f:
        steps = sorted({int(r["step"]) for r in csv.DictReader(f) if r["name"] == "val/psnr"})
    assert steps == [4, 8, 10]


def test_every_tiny_preset_value_is_in_fit_help():
    """Issue 22.12: `fit -h` showed the paper's defaults of five settings the tiny preset changes."""
    from trainer.commands import fit_cmd
    from trainer.config import PRESETS

    helps = {p.name: p.help or "" for p in fit_cmd.params}
    train, data = PRESETS["tiny"].train, PRESETS["tiny"].data
    for name, value in {**train, **data}.items():
        shown = {str(value), f"{value:g}" if isinstance(value, float) else str(value),
                 f"{value:.0e}".replace("e-0", "e-") if isinstance(value, float) else str(value),
                 {True: "on", False: "off"}.get(value, str(value))}
        assert any(f"tiny {s}]" in helps[name] for s in shown), (name, value, helps[name])


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved(tmp_path, gopro, monkeypatch):
    """Issue 22.26: Ctrl-C during fit's start-up said "last.pt keeps the last checkpoint;
    continue with --resume" when no run folder existed."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "training_sources", interrupted)
    result = CliRunner().invoke(cli.trainer, fit_args(tmp_path / "run", gopro, 2, "--preset", "tiny"))
    assert result.exit_code == 130
    assert result.stderr == "interrupted before the first checkpoint: nothing was saved\n"


def test_another_content_loss_without_its_weight_is_warned_about(tmp_path, gopro):
    """Issue 22.8: `--content-loss l1` kept the tiny preset's weight tuned for its PSNR loss,
    silently (-3.85 dB held-out)."""
    args = fit_args(tmp_path / "run", gopro, 1, "--preset", "tiny")
    at = args.index("--content-weight")
    warned = CliRunner().invoke(cli.trainer, args[:at] + args[at + 2:])   # --content-loss l1 alone
    assert warned.exit_code == 0, warned.output
    assert "warning: --content-loss l1 keeps the content weight 10 that --preset tiny tuned for its psnr loss" \
        in warned.stderr
    quiet = CliRunner().invoke(cli.trainer, fit_args(tmp_path / "run2", gopro, 1, "--preset", "tiny"))
    assert quiet.exit_code == 0 and "warning: --content-loss" not in quiet.stderr

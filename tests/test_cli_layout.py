"""Issue 13: the command line is thin, its options land in the right config, and only user
errors become one line -- a bug keeps its traceback."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from trainer.config import TrainConfig
from trainer.data import DataConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_fit_option_is_a_config_field_or_named_here():
    """The options of `trainer fit` go to TrainConfig or DataConfig by field name: an option
    that is neither would be silently dropped or misrouted."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)} | {f.name for f in dataclasses.fields(DataConfig)}
    handled_by_the_command = {"preset", "resume", "init_from", "beta1", "beta2", "compile_", "help", "config"}
    names = {p.name for p in cli.trainer.commands["fit"].params}
    assert names - fields - handled_by_the_command == set()


def test_cli_py_holds_only_the_entry_points():
    text = (ROOT / "cli.py").read_text()
    assert "@click" not in text and len(text.splitlines()) < 20
    assert cli.blurgen.name == "blurgen" and cli.trainer.name == "trainer"


@pytest.mark.parametrize("error, one_line", [(ValueError("a bug"), False), (KeyError("a bug"), False),
                                             ("user", True)])
def test_only_user_errors_become_one_line(monkeypatch, tmp_path, error, one_line):
    """Issue 13: `except (ValueError, OSError)` turned an internal ValueError into a one-line
    'error:' with exit 2 and no traceback; now only the packages' user errors do."""
    from trainer.data import DataError

    def fit(*args, **kwargs):
        raise DataError("no training data here") if error == "user" else error

    monkeypatch.setattr("trainer.loop.fit", fit)
    result = CliRunner().invoke(cli.trainer, ["fit", "--preset", "tiny", "--out", str(tmp_path / "run"),
                                              "--device", "cpu"])
    if one_line:
        assert result.exit_code == 2 and result.output.strip() == "error: no training data here"
    else:
        assert result.exit_code == 1 and result.exception is error   # click re-raises it: a traceback


def test_the_command_lines_start_without_the_libraries():
    """The commands import their libraries inside: `--help` stays fast.  Neither command line
    imports torch, h5py, OpenCV, SciPy or scikit-image to list its commands and options (the
    blur modes and the realism spec, which both declare options, import them where used)."""
    code = ("import sys; from cli import blurgen, trainer; "
            "assert not {'torch', 'h5py', 'cv2', 'scipy', 'skimage'} & set(sys.modules), sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_configs_are_checked_when_made():
    """Issue 13: TrainConfig was checked only when make_configs or fit called validate(), while
    DataConfig and SynthConfig check themselves when made; now all three do."""
    from trainer.config import ConfigError

    with pytest.raises(ConfigError, match="dropout"):
        TrainConfig(dropout=1.5)
    with pytest.raises(ConfigError, match="lr must be positive"):
        dataclasses.replace(TrainConfig(), lr=0)

"""Training progress pictures: sparklines, smoothing, the curves PNG and `trainer curves`."""
import csv

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from trainer.curves import SPARK, SPARK_ASCII, plot_curves, read_scalars, series_from_rows, smooth, sparkline


def write_scalars(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["step", "name", "value"], *rows])
    return path


def test_sparkline_spans_min_to_max():
    line = sparkline([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert line == SPARK
    assert sparkline([3.0, 1.0, 2.0]) == SPARK[-1] + SPARK[0] + SPARK[len(SPARK) // 2]
    assert sparkline([5.0, 5.0, 5.0]) == SPARK[len(SPARK) // 2] * 3
    assert sparkline([1.0, np.nan, 2.0], ascii=True) == SPARK_ASCII[0] + SPARK_ASCII[-1]
    assert sparkline([]) == ""


def test_sparkline_bins_long_series_to_the_width():
    values = np.r_[np.zeros(500), np.ones(500)]
    line = sparkline(values, width=10)
    assert line == SPARK[0] * 5 + SPARK[-1] * 5


def test_smooth_matches_a_plain_exponential_moving_average():
    values = np.random.default_rng(0).normal(size=200)
    span, alpha = 9, 2 / 10
    expected, num, den = [], 0.0, 0.0
    for v in values:  # the adjusted EMA written out
        num, den = (1 - alpha) * num + v, (1 - alpha) * den + 1
        expected.append(num / den)
    np.testing.assert_allclose(smooth(values, span), expected, rtol=1e-12)


def test_read_scalars_groups_and_sorts(tmp_path):
    path = write_scalars(tmp_path / "scalars.csv", [[10, "val/psnr", 21.5], [5, "val/psnr", 20.0],
                                                    [5, "train/lr", 1e-4]])
    series = read_scalars(path)
    steps, values = series["val/psnr"]
    assert steps.tolist() == [5, 10] and values.tolist() == [20.0, 21.5]
    assert series["train/lr"][1].tolist() == [1e-4]
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a scalars.csv"):
        read_scalars(tmp_path / "other.csv")
    with pytest.raises(ValueError, match="cannot read"):
        read_scalars(tmp_path / "missing.csv")
    write_scalars(tmp_path / "bad.csv", [["x", "val/psnr", 1.0]])
    with pytest.raises(ValueError, match="not step,name,value"):
        read_scalars(tmp_path / "bad.csv")


def test_curves_draw_a_rising_psnr_rising():
    rows = [(s, "val/psnr", 20.0 + s / 10) for s in range(0, 101, 10)]
    rows += [(s, "val/input_psnr", 25.0) for s in range(0, 101, 10)]
    rows += [(s, "train/content_loss", 1.0 / (1 + s)) for s in range(1, 101)]
    image = plot_curves(series_from_rows(rows), panel_size=(400, 220))
    assert image.shape == (660, 800, 3) and image.dtype == np.uint8   # 6 panels, 2 a row
    panel = image[28:196, 58:388].astype(int)  # inside the first chart's box
    blue = (np.abs(panel - [31, 119, 180]).sum(axis=2) < 60)
    cols = np.flatnonzero(blue.any(axis=0))
    first_rows = np.flatnonzero(blue[:, cols[0]])
    last_rows = np.flatnonzero(blue[:, cols[-1]])
    assert last_rows.mean() < first_rows.mean() - 100  # higher on the right (rows count down)
    # The Wasserstein panel was not logged: drawn empty, not an error.
    assert (image[220:, :400] == 255).mean() > 0.9


def test_curves_command(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_scalars(run / "scalars.csv", [[s, "val/psnr", 20 + s] for s in range(1, 5)])
    result = CliRunner().invoke(cli.trainer, ["curves", str(run), "--png", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert f"val/psnr  {SPARK[0]}{SPARK[2]}{SPARK[5]}{SPARK[7]}  " in result.output  # 21, 22, 23, 24
    assert "21 -> 24" in result.output
    assert (tmp_path / "c.png").stat().st_size > 0
    empty = CliRunner().invoke(cli.trainer, ["curves", str(tmp_path / "nothing")])
    assert empty.exit_code == 2 and empty.stderr.startswith("error: ") and empty.stderr.count("\n") == 1


def test_a_diverged_step_does_not_blank_the_curve():
    steps = np.arange(1, 101)
    values = np.linspace(1.0, 0.1, 100)
    values[50] = np.inf
    series = {"train/content_loss": (steps, values)}
    image = plot_curves(series, panels=(("train/content_loss", None, "content loss"),), columns=1)
    box = image[28:196, 58:388].astype(int)
    blue = (np.abs(box - [31, 119, 180]).sum(axis=2) < 60)
    drawn = np.flatnonzero(blue.any(axis=0))
    assert drawn.min() < 10 and drawn.max() > box.shape[1] - 10  # from the first step to the last


def test_curves_of_a_missing_or_empty_folder_name_the_folder(tmp_path):
    """Issue 22.13: `trainer curves nosuch` named nosuch/scalars.csv, a file the user never gave."""
    from click.testing import CliRunner

    import cli

    missing = CliRunner().invoke(cli.trainer, ["curves", str(tmp_path / "nosuch")])
    assert missing.exit_code == 2 and missing.stderr == f"error: {tmp_path / 'nosuch'}: no such run folder\n"
    empty = CliRunner().invoke(cli.trainer, ["curves", str(tmp_path)])
    assert empty.exit_code == 2 and "no scalars.csv (not a run folder of `trainer fit`" in empty.stderr


def test_validation_logs_each_ssim_once(tmp_path):
    """Issue 22.13: `trainer curves` listed val/ssim and val/ssim_skimage, one SSIM under two names."""
    from types import SimpleNamespace

    from trainer import loop
    from trainer.run_folder import Progress

    logged = {}
    log = SimpleNamespace(scalars=lambda step, values: logged.update(values), series=lambda: {
        "val/psnr": (np.array([1]), np.array([20.0]))})
    run = SimpleNamespace(log=log, save_best=lambda *a: None, draw=lambda *a: None)
    scores = {"psnr": 20.0, "ssim": 0.5, "ssim_skimage": 0.5, "input_psnr": 19.0, "input_ssim": 0.4,
              "input_ssim_skimage": 0.4, "sharp_psnr": 45.0, "sharp_psnr_min": 41.0, "count": 1}
    original = loop.evaluate
    loop.evaluate = lambda *a, **k: (scores, None)
    try:
        loop.validate(run, Progress(step=1), None, [], "cpu", preview=False)
    finally:
        loop.evaluate = original
    assert set(logged) == {"val/psnr", "val/ssim", "val/input_psnr", "val/input_ssim", "val/sharp_psnr",
                           "val/sharp_psnr_min"}



def test_axes_carry_round_ticks_between_the_extremes():
    """Issue 22.15: curves.png's axes showed only the first and last step and the min and max."""
    from trainer.curves import nice_ticks

    assert nice_ticks(0, 3600).tolist() == [0, 1000, 2000, 3000]
    assert nice_ticks(24.3, 26.1).tolist() == [24.5, 25, 25.5, 26]
    assert nice_ticks(-0.03, 0.02).tolist() == [-0.02, 0, 0.02]
    ticks = nice_ticks(5, 3600, count=4)
    assert 3 <= len(ticks) <= 6 and all(5 <= t <= 3600 for t in ticks)

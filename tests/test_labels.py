"""Legible lettering and labelled pictures (issue 12.13, 12.14): curves' digits in a font
with an open zero, show-kernels' grid at one scale fitting the terminal, and labelled
kernels.png / samples.png."""
import cv2
import numpy as np
import pytest

from blurgen.plumbing.lettering import put_text, text_size


def enclosed_regions(text, size):
    """How many light regions ``text`` encloses when drawn at ``size`` (a '0' encloses one, an '8' two)."""
    w, h = text_size(text, size)
    image = np.full((h + 12, w + 12, 3), 255, np.uint8)
    put_text(image, text, (6, h + 6), size, (40, 40, 40))
    light = (image[..., 0] > 160).astype(np.uint8)
    count, _ = cv2.connectedComponents(light, connectivity=4)
    return count - 2   # less the background around the glyph and the label 0


@pytest.mark.parametrize("size", [11, 13])
def test_zero_is_an_open_oval_at_label_sizes(size):
    """Issue 12.14: OpenCV's Hershey zero is slashed; at label size "step 100" read "step 1ØØ"."""
    assert enclosed_regions("0", size) == 1 and enclosed_regions("8", size) == 2
    assert enclosed_regions("1", size) == 0 and enclosed_regions("7", size) == 0


def test_curves_and_report_are_lettered_without_hershey(monkeypatch):
    """Issue 12.14: the curves drew their labels with cv2.putText's slashed-zero font."""
    from trainer import curves

    def hershey(*args, **kwargs):
        raise AssertionError("cv2.putText used")

    monkeypatch.setattr(cv2, "putText", hershey)
    steps = np.arange(0, 1001, 100)
    series = {"val/psnr": (steps, 20 + steps / 1000), "val/input_psnr": (steps, np.full(len(steps), 19.0)),
              "train/content_loss": (steps, 1 / (1 + steps))}
    image = curves.plot_curves(series)
    assert image.dtype == np.uint8 and (image < 128).any()   # lettering and curves drawn


def test_put_text_draws_at_the_baseline_within_the_picture():
    image = np.full((30, 80, 3), 255, np.uint8)
    put_text(image, "step 100", (2, 20), 11, (0, 0, 0))
    ys, xs = np.nonzero(image[..., 0] < 128)
    assert ys.max() <= 22 and ys.min() >= 10 and xs.min() >= 2   # letters sit on the baseline y = 20
    put_text(image, "off the edge", (70, 5), 11, (0, 0, 0))      # clipped, no error


# --- 12.13: show-kernels' grid, kernels.png and samples.png ----------------------------------


def label_columns(block):
    """Columns where the labels ("#12") of a grid row start."""
    import re

    return [m.start() for m in re.finditer(r"#\d+", block.splitlines()[-1])]


def test_show_kernels_draws_the_last_row_at_the_grids_scale_and_fits_the_terminal(tmp_path):
    """Issue 12.13: the last, partial row was drawn larger (kernels 14-15 twice the size), and
    16 kernels took 100 lines of a 60-row terminal."""
    from click.testing import CliRunner

    import cli

    bank = tmp_path / "k.h5"
    runner = CliRunner()
    assert runner.invoke(cli.blurgen, ["make-kernels", "-n", 16, "--size", 32, "--iters", 200,
                                       "--out", str(bank)]).exit_code == 0
    result = runner.invoke(cli.blurgen, ["show-kernels", str(bank)], env={"COLUMNS": "100", "LINES": "60",
                                                                          "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("#") and "seed" in line)
    grid = lines[header + 17:]   # issue 22.14: the drawings come last, under the table, and stay on screen
    assert len(lines) <= 60   # the summary, the 16 parameter lines and the pictures on one screen
    label_rows = [i for i, line in enumerate(grid) if line.startswith("#")]
    heights = np.diff([-1] + label_rows)
    assert len(set(heights)) == 1 and len(label_rows) >= 2   # every row as tall, the last one too
    firsts = [label_columns(grid[i]) for i in label_rows]
    assert all(cols == firsts[0][:len(cols)] for cols in firsts)  # and as wide


def test_grid_layout_shrinks_cells_to_fit_the_height_but_not_below_the_floor():
    from blurgen.kernel_view import grid_layout

    cell, per_row = grid_layout(16, columns=100, lines=42)
    assert -(-16 // per_row) * (cell // 2 + 1) <= 42 and cell % 2 == 0
    assert grid_layout(16, columns=100, lines=1000) == (24, 3)   # (100 + 2) // (24 + 2)
    assert grid_layout(16, columns=100, lines=1)[0] == 8


def test_contact_sheet_labels_each_cell_and_keeps_a_common_scale():
    from blurgen.plumbing.pictures import LABEL_BAND, contact_sheet

    crop = np.full((32, 32, 3), 200, np.uint8)
    kernel = np.ones((8, 8), np.float32)
    plain = contact_sheet([crop, kernel], cols=2, pad=4, background=0)
    assert plain.shape == (40, 76, 3) and (plain[4:36, 40:72] == 255).all()   # kernel blown up to 32 px
    same = contact_sheet([crop, kernel], cols=2, pad=4, background=0, labels=["1: crop", "1: kernel"],
                         common_scale=True)
    assert same.shape == (40 + LABEL_BAND, 76, 3)
    bright = np.argwhere(same[4:36, 40:72, 0] == 255)
    assert bright.min(axis=0).tolist() == [12, 12] and bright.max(axis=0).tolist() == [19, 19]   # 8 px, 1:1
    band = same[36:36 + LABEL_BAND]
    assert (band[:, 4:36] > 128).any() and (band[:, 40:72] > 128).any()   # a caption under each


def test_inspect_png_numbers_the_pairs_and_draws_kernels_magnified_by_a_stated_factor(tmp_path):
    """Issue 12.13: samples.png had no labels, and each kernel was enlarged to the crop's size
    without saying so; issue 22.15: drawn 1:1 instead, kernels were dots of a few pixels.  Now
    magnified by a whole factor, written in the caption ("kernel 15 px, x2")."""
    from click.testing import CliRunner
    from PIL import Image

    import cli
    from blurgen.plumbing.pictures import LABEL_BAND

    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8)).save(src / "a.png")
    runner = CliRunner()
    made = runner.invoke(cli.blurgen, ["synthesize", "--src", str(src), "--out", str(tmp_path / "shards"),
                                       "--kernel-size", "15", "--iters", "200", "--crop", "32",
                                       "--crops-per-image", "2", "--workers", "1"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(cli.blurgen, ["inspect", str(tmp_path / "shards"), "--samples", "2",
                                         "--png", str(tmp_path / "samples.png")])
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(tmp_path / "samples.png"))
    pad, cell = 4, 32
    assert sheet.shape == (2 * (cell + pad + LABEL_BAND) + pad, 3 * (cell + pad) + pad, 3)
    kernel_cell = sheet[pad:pad + cell, pad + 2 * (cell + pad):pad + 2 * (cell + pad) + cell, 0]
    lit = np.argwhere(kernel_cell > 32)
    extent = lit.max(axis=0) - lit.min(axis=0) + 1
    assert lit.size and (extent <= 2 * 15).all() and (extent > 15).any()   # the <= 15-px support, x2
    assert "kernel x2" in result.stdout and "blurred" in result.stdout
    band = sheet[pad + cell:pad + cell + LABEL_BAND]
    assert (band > 128).any()


def test_every_option_of_every_command_has_help():
    """Issue 22.12: synthesize --seed, average --seed, fit --gopro-blur, show-kernels --index and
    make_gopro_sample.py's --train-sequences/--test-sequences had no help text."""
    from pathlib import Path

    import click

    import cli

    missing = []
    for group in (cli.blurgen, cli.trainer):
        for name, command in group.commands.items():
            for param in command.params:
                if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                    missing.append(f"{group.name} {name} {param.opts[0]}")
    root = Path(__file__).resolve().parents[1]
    source = (root / "data" / "make_gopro_sample.py").read_text()
    for flag in ("--train-sequences", "--test-sequences", "--frames", "--seed", "--size"):
        start = source.index(f'"{flag}"')
        if "help=" not in source[start:source.index(")\n", start)]:
            missing.append(f"make_gopro_sample.py {flag}")
    assert not missing, missing


def test_previews_say_what_they_show():
    """Issue 22.15: run/preview.png and deblur --side-by-side had no labels (no step, no
    PSNR, no "blurred/restored/sharp")."""
    from blurgen.plumbing.pictures import LABEL_BAND, side_by_side
    from trainer.run_folder import triplet_image

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 64, 3), dtype=np.uint8) for _ in range(3)]
    plain = side_by_side(images, labels=["blurred", "restored", "sharp"])
    assert plain.shape == (40 + LABEL_BAND, 3 * 64 + 2 * 4, 3)
    assert np.array_equal(plain[:40, :64], images[0]) and np.array_equal(plain[:40, -64:], images[2])
    for k in range(3):   # each caption band has letters in it
        band = plain[40:, k * 68: k * 68 + 64]
        assert (band > 128).any() and (band == 32).mean() > 0.5
    title = "step 20: 24.97 dB restored, 24.56 dB blurred (PSNR against sharp, RGB, range 255)"
    titled = triplet_image(*images, title=title)
    lines = (titled.shape[0] - 40 - LABEL_BAND) // LABEL_BAND
    assert lines >= 2 and titled.shape[0] == 40 + LABEL_BAND * (1 + lines)   # wrapped, not cut
    assert np.array_equal(titled[LABEL_BAND * lines: LABEL_BAND * lines + 40, :64], images[0])

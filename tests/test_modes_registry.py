"""Blur modes as plug-ins (issue 21.3): a new mode is one module plus one registry line.

The mode below is the example of docs/modes.md ("Adding a mode"), written out in full: a
horizontal box blur of a drawn length.  Registered in ``blurgen.modes.MODES`` and nowhere
else, it synthesizes shards, resumes, and is described by ``inspect``.
"""
import json

import click
import numpy as np
import pytest
from click.testing import CliRunner
from test_mode_hashes import corpus

from blurgen import modes
from blurgen.modes.base import BlurMode, crop_box
from blurgen.runs.synthesize import SynthConfig, synthesize
from cli import blurgen

# --- the example mode (docs/modes.md) ---------------------------------------------------------

BOX_TAG = 0x424F58  # "BOX": the mode's own random stream


class BoxBlur(BlurMode):
    name = "box"
    summary = "a horizontal box blur of a drawn length"
    flag = "--box"
    options = (click.option("--box", "box_length", type=int, default=None, help="Box blur up to this many px."),)

    def spec_from(self, values):
        return values.get("box_length")  # the mode's settings: its longest box

    def arguments(self, cfg):
        return {"box": cfg.spec}

    def kernel_size(self, cfg):
        return 2 * cfg.spec + 1

    def sample(self, photo, crop, j, cfg, shared):
        rng = np.random.default_rng([cfg.seed, BOX_TAG, photo.index, crop])
        length = int(rng.integers(1, cfg.spec + 1))
        m = cfg.spec
        y0, x0, y1, x1 = crop_box(rng, *photo.pixels.shape[:2], cfg.crop, cfg.full, m, m)
        psf = np.zeros((2 * m + 1, 2 * m + 1), np.float32)
        psf[m, m - length // 2 : m - length // 2 + length] = 1 / length
        effects = cfg.realism.draw(rng)
        blurred = cfg.realism.blur(photo.pixels[y0 - m : y1 + m, x0 - m : x1 + m], psf, rng, effects)
        meta = {"source": photo.rel, "crop_box": np.array([y0, x0, y1, x1], np.int32), "box_length": length,
                **effects}
        return blurred, photo.pixels[y0:y1, x0:x1], psf, meta

    def recorded(self, args):
        return "box" in args

    def describe(self, args):
        return f"horizontal box blurs of up to {args['box']} px"


# --- the tests -------------------------------------------------------------------------------


@pytest.fixture
def box_registered(monkeypatch):
    """The one registry line: ``MODES["box"] = BoxBlur()``."""
    monkeypatch.setitem(modes.MODES, "box", BoxBlur())


def test_every_mode_is_listed_once_and_has_its_parts():
    assert list(modes.MODES) == ["uniform", "shake", "objects", "sharp-only"]
    for name, mode in modes.MODES.items():
        assert mode.name == name and mode.summary
        assert all(callable(option) for option in mode.options)
    # synthesize's options are the modes' options, read from the registry.
    given = {opt for p in blurgen.commands["synthesize"].params for opt in p.opts}
    for mode in modes.MODES.values():
        for option in mode.options:
            assert {o for p in option(click.command()(lambda **kw: None)).params for o in p.opts} <= given


def test_a_new_mode_is_one_class_and_one_registry_line(box_registered, tmp_path):
    src = corpus(tmp_path / "src")
    cfg = SynthConfig(src=src, crop=24, crops_per_image=2, shard_size=4, seed=1, mode="box", spec=4)
    summary = synthesize(cfg, tmp_path / "out")
    assert summary.samples == 6
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["arguments"]["box"] == 4 and "shake" not in manifest["arguments"]
    from blurgen.shards import ShardReader, find_shards

    for info in find_shards(tmp_path / "out"):
        with ShardReader(info.path) as reader:
            for k in range(len(reader)):
                s = reader.read_sample(k)
                n = int(s["box_length"])
                y0, x0, y1, x1 = s["crop_box"]
                photo = s["sharp"]  # the crop itself: blur its middle rows by hand
                row = photo[5].astype(np.float64)
                expected = np.stack([np.convolve(row[:, ch], np.ones(n) / n, mode="valid") for ch in range(3)], 1)
                start = n - 1 - n // 2  # where the centred box's valid part begins
                got = s["blurred"][5, start : start + expected.shape[0]].astype(np.float64)
                assert np.abs(got - expected).max() <= 1.0
    # Resumable like every mode: a second run has nothing to do, and inspect describes it.
    assert synthesize(cfg, tmp_path / "out").shards_built == 0
    shown = CliRunner().invoke(blurgen, ["inspect", str(tmp_path / "out"), "--samples", "1"])
    assert shown.exit_code == 0 and "horizontal box blurs of up to 4 px" in shown.output
    assert "box_length=" in shown.output


def test_two_modes_at_once_are_refused_in_one_line(tmp_path):
    src = corpus(tmp_path / "src")
    res = CliRunner().invoke(blurgen, ["synthesize", "--src", str(src), "--out", str(tmp_path / "o"),
                                       "--shake", "nonuniform", "--sharp-only"])
    assert res.exit_code == 2
    assert res.output.strip() == "error: --sharp-only cannot be combined with --shake: one blur mode per run"

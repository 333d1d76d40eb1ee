"""Run configs in YAML (issue 23.1): ``--config FILE`` for ``trainer fit``, ``blurgen
synthesize`` and ``blurgen average``, the ``config.yaml`` a run folder and a shard folder
keep, repeating a run from it, and the example configs in configs/."""
import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from test_mode_hashes import SMALL, corpus
from test_video import pan_frames, texture, write_frames

import cli
from blurgen.commands import synthesize_cmd
from trainer.commands import fit_cmd
from trainer.config import to_primitive
from trainer.fit_options import configs_of

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, document) -> Path:
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def resolved(command, args: list[str]) -> dict:
    """The command's parameter values after --config and the command line, without running it."""
    return command.make_context(command.name, list(args)).params


def one_line_error(result, *words):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)   # not a crash
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0], (word, lines[0])


# --- reading a file: errors, precedence, types ---------------------------------------------------

@pytest.mark.parametrize("command, document, words", [
    (["fit"], {"out": "r", "crops-per-image": 4}, ["'crops-per-image'", "unknown key"]),
    (["fit"], {"out": "r", "ngf_": 8}, ["'ngf_'", "did you mean 'ngf'"]),
    (["fit"], {"out": "r", "steps": "many"}, ["steps", "expected an integer", "'many'"]),
    (["fit"], {"out": "r", "lr": "fast"}, ["lr", "expected a number"]),
    (["fit"], {"out": "r", "flip": 1}, ["flip", "expected true or false"]),
    (["fit"], {"out": "r", "content-loss": "l3"}, ["content-loss", "'l3' is not one of"]),
    (["fit"], "out: r\nmix: 2:1\n", ["mix", "121", "quotes"]),     # YAML's base-60 number
    (["fit"], {"out": "r", "steps": 2, "crop": [80]}, ["crop", "expected one value"]),
    (["fit"], {"out": "r", "val-every": 5, "val_every": 6}, ["'val-every'", "'val_every'", "same option"]),
    (["synthesize"], {"src": "p", "out": "o", "small": "big"}, ["small", "'big' is not one of"]),
    (["synthesize"], {"src": "p", "out": "o", "crop": 1.5}, ["crop", "expected an integer", "1.5"]),
    (["average"], {"src": "p", "out": "o", "frames": 7}, ["frames", "expected text"]),
    (["synthesize"], "- a list\n", ["a YAML mapping"]),
    (["synthesize"], "src: [p\n", ["not valid YAML", "line 2"]),
])
def test_a_bad_file_is_one_line_naming_the_key_and_the_file(tmp_path, command, document, words):
    path = write(tmp_path / "run.yaml", document)
    group = cli.trainer if command == ["fit"] else cli.blurgen
    result = CliRunner().invoke(group, [*command, "--config", str(path)])
    one_line_error(result, str(path), *words)


def test_a_missing_file_is_one_line(tmp_path):
    result = CliRunner().invoke(cli.trainer, ["fit", "--config", str(tmp_path / "none.yaml")])
    one_line_error(result, "none.yaml", "cannot read")


def test_the_command_line_overrides_the_file_and_the_file_the_defaults(tmp_path):
    path = write(tmp_path / "run.yaml", {"out": "r", "shards": ["a", "b"], "steps": 3, "crop": 40, "flip": False,
                                         "blocks": 4, "compile": True, "online-camera": True})
    values = resolved(fit_cmd, ["--config", str(path)])
    assert values["shards"] == ("a", "b") and values["steps"] == 3 and values["flip"] is False
    assert values["n_blocks"] == 4 and values["compile_"] is True and values["online_camera"] == "a7r3"
    assert values["gopro"] is None and values["seed"] is None        # not in the file: the option's default
    values = resolved(fit_cmd, ["--config", str(path), "--shards", "c", "--steps", "7", "--flip", "--out", "s"])
    assert values["shards"] == ("c",) and values["steps"] == 7 and values["flip"] is True and values["out"] == "s"
    assert values["crop"] == 40 and values["n_blocks"] == 4          # the file's, not overridden
    # One folder needs no list; the spellings with underscores and click's own name are keys too.
    path = write(tmp_path / "one.yaml", {"out": "r", "shards": "a", "n_blocks": 3, "val_every": 9})
    values = resolved(fit_cmd, ["--config", str(path)])
    assert values["shards"] == ("a",) and values["n_blocks"] == 3 and values["val_every"] == 9


def test_a_value_in_the_file_overrides_the_preset_as_a_flag_does(tmp_path):
    path = write(tmp_path / "run.yaml", {"out": "r", "preset": "tiny", "ngf": 8, "crop": 48, "skips": False})
    from_file, _ = configs_of(resolved(fit_cmd, ["--config", str(path)]))
    by_flags, data = configs_of(resolved(fit_cmd, ["--out", "r", "--preset", "tiny", "--ngf", "8", "--crop", "48",
                                                   "--no-skips"]))
    assert from_file == by_flags
    assert (from_file.ngf, from_file.skips, from_file.n_blocks, data.crop) == (8, False, 2, 48)   # blocks: tiny's


def test_a_flag_given_in_the_file_warns_as_on_the_command_line(tmp_path):
    path = write(tmp_path / "run.yaml", {"src": str(tmp_path / "none"), "out": str(tmp_path / "o"),
                                         "kernels": str(tmp_path / "bank.h5"), "kernel-size": 15})
    result = CliRunner().invoke(cli.blurgen, ["synthesize", "--config", str(path)])
    assert "warning: --kernel-size is ignored with --kernels" in result.stderr


# --- trainer fit: config.yaml, round trip, a repeated run -----------------------------------------

@pytest.fixture(scope="module")
def gopro(make_gopro):
    """A GOPRO_Large-layout folder: 6 training and 3 test pairs of 48x64."""
    return make_gopro("configs", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_run_folder_keeps_its_settings_and_repeats_from_them(tmp_path, gopro):
    first, again = tmp_path / "a", tmp_path / "b"
    args = ["fit", "--out", str(first), "--gopro", str(gopro), "--mix", "0:1", "--preset", "tiny", "--crop", "32",
            "--batch-size", "2", "--gopro-scale", "1", "--workers", "0", "--device", "cpu", "--no-preview",
            "--val-limit", "1", "--steps", "2", "--seed", "3", "--content-weight", "5"]
    result = CliRunner().invoke(cli.trainer, args)
    assert result.exit_code == 0, result.output
    text = (first / "config.yaml").read_text()
    assert text.startswith("# ") and f"trainer fit --config {first / 'config.yaml'} --out NEW_FOLDER" in text
    written = yaml.safe_load(text)
    # Every option but --config and the one-off --resume, with the value the run used.
    assert "resume" not in written and "config" not in written
    assert written["preset"] == "tiny" and written["ngf"] == 16 and written["blocks"] == 2   # the preset's
    assert written["content-weight"] == 5 and written["mix"] == "0:1" and written["crop"] == 32  # the flags'
    assert written["gopro"] == str(gopro.resolve()) and written["out"] == str(first.resolve())
    assert written["steps"] == 2 and written["val-every"] is None and written["beta1"] == 0.5

    # Round trip: the file resolves to the settings the run recorded in last.pt.
    state = torch.load(first / "last.pt", weights_only=True)
    train_cfg, data_cfg = configs_of(resolved(fit_cmd, ["--config", str(first / "config.yaml")]))
    assert to_primitive(train_cfg) == {**state["config"], "out": str(first.resolve())}
    assert to_primitive(data_cfg) == state["data"]["config"]

    # Repeated into another folder (--out on the command line wins over the file's): the same weights.
    result = CliRunner().invoke(cli.trainer, ["fit", "--config", str(first / "config.yaml"), "--out", str(again)])
    assert result.exit_code == 0, result.output
    repeated = torch.load(again / "last.pt", weights_only=True)
    assert repeated["generator"].keys() == state["generator"].keys()
    assert all(torch.equal(repeated["generator"][k], state["generator"][k]) for k in state["generator"])
    assert yaml.safe_load((again / "config.yaml").read_text()) == {**written, "out": str(again.resolve())}
    # The comparison can fail: another seed on the command line, over the file's, gives other weights.
    result = CliRunner().invoke(cli.trainer, ["fit", "--config", str(first / "config.yaml"), "--out",
                                              str(tmp_path / "c"), "--seed", "4"])
    assert result.exit_code == 0, result.output
    other = torch.load(tmp_path / "c" / "last.pt", weights_only=True)["generator"]
    assert not all(torch.equal(other[k], state["generator"][k]) for k in state["generator"])
    assert yaml.safe_load((tmp_path / "c" / "config.yaml").read_text())["seed"] == 4

    # The file names its own folder: without --out the repeat is refused there, in one line.
    result = CliRunner().invoke(cli.trainer, ["fit", "--config", str(first / "config.yaml")])
    one_line_error(result, "already holds a run")
    # --resume leaves the run's config.yaml as the run started it.
    before = (first / "config.yaml").read_text()
    result = CliRunner().invoke(cli.trainer, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert (first / "config.yaml").read_text() == before
    result = CliRunner().invoke(cli.trainer, ["fit", "--config", str(first / "config.yaml"), "--resume"])
    assert result.exit_code == 0, result.output                      # the file is the run's own command


# --- blurgen synthesize and average: the shard folder's config.yaml --------------------------------

@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return corpus(tmp_path_factory.mktemp("photos") / "src")


def checksums(folder: Path, manifest: str = "manifest.json") -> dict:
    return {name: entry["checksum"] for name, entry in json.loads((folder / manifest).read_text())["shards"].items()}


def test_synthesize_from_a_file_makes_the_bytes_of_the_flags(tmp_path, photos):
    flags = ["--src", str(photos), *SMALL, "--linear", "--jpeg-quality", "60-90"]
    result = CliRunner().invoke(cli.blurgen, ["synthesize", *flags, "--out", str(tmp_path / "flags")])
    assert result.exit_code == 0, result.output
    document = {"src": str(photos), "kernel-size": 15, "iters": 200, "max-len": 10, "crop": 32, "workers": 1,
                "shard_size": 4, "crops-per-image": 2, "seed": 5, "linear": True, "jpeg-quality": "60-90"}
    path = write(tmp_path / "synth.yaml", document)
    result = CliRunner().invoke(cli.blurgen, ["synthesize", "--config", str(path), "--out", str(tmp_path / "file")])
    assert result.exit_code == 0, result.output
    assert checksums(tmp_path / "file") == checksums(tmp_path / "flags") and len(checksums(tmp_path / "flags")) >= 2

    # The folder's config.yaml: every option but the one-off ones, paths absolute; it repeats the run.
    written = yaml.safe_load((tmp_path / "flags" / "config.yaml").read_text())
    assert {"overwrite", "repair", "append", "no-space-check", "config"}.isdisjoint(written)
    assert written["src"] == str(photos.resolve()) and written["out"] == str((tmp_path / "flags").resolve())
    assert written["crops-per-image"] == 2 and written["linear"] is True and written["jpeg-quality"] == "60-90"
    assert written["part"] == "0/1" and written["noise"] is False and written["kernels"] is None
    again = tmp_path / "again"
    result = CliRunner().invoke(cli.blurgen, ["synthesize", "--config", str(tmp_path / "flags" / "config.yaml"),
                                              "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert checksums(again) == checksums(tmp_path / "flags")

    # Resuming the finished folder from its own file, and verify, are untouched by it.
    result = CliRunner().invoke(cli.blurgen, ["synthesize", "--config", str(tmp_path / "flags" / "config.yaml")])
    assert result.exit_code == 0 and "were already done" in result.output, result.output
    result = CliRunner().invoke(cli.blurgen, ["verify", str(tmp_path / "flags")])
    assert result.exit_code == 0 and "OK" in result.output, result.output


def test_each_part_keeps_its_own_settings_file(tmp_path, photos):
    out = tmp_path / "parts"
    for part in ("0/2", "1/2"):
        result = CliRunner().invoke(cli.blurgen, ["synthesize", "--src", str(photos), *SMALL, "--out", str(out),
                                                  "--part", part])
        assert result.exit_code == 0, result.output
    first = yaml.safe_load((out / "config.part-0-of-2.yaml").read_text())
    second = yaml.safe_load((out / "config.part-1-of-2.yaml").read_text())
    assert not (out / "config.yaml").exists()
    assert (first["part"], second["part"]) == ("0/2", "1/2") and {**first, "part": "1/2"} == second
    assert CliRunner().invoke(cli.blurgen, ["verify", str(out)]).exit_code == 0
    # --overwrite by a whole run takes the parts' files with their manifests.
    result = CliRunner().invoke(cli.blurgen, ["synthesize", "--src", str(photos), *SMALL, "--out", str(out),
                                              "--overwrite"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("config*")) == ["config.yaml"]


def test_average_from_a_file_makes_the_bytes_of_the_flags(tmp_path):
    src = tmp_path / "clips"
    for c in range(2):
        write_frames(src / f"clip{c}", pan_frames(texture(32, 72, seed=c), 12, width=36, step=1))
    flags = ["--src", str(src), "--frames", "3-5", "--crop", "24", "--windows-per-clip", "2", "--workers", "1",
             "--shard-size", "2", "--seed", "2"]
    result = CliRunner().invoke(cli.blurgen, ["average", *flags, "--out", str(tmp_path / "flags")])
    assert result.exit_code == 0, result.output
    path = write(tmp_path / "avg.yaml", {"src": str(src), "frames": "3-5", "crop": 24, "windows-per-clip": 2,
                                         "workers": 1, "shard-size": 2, "seed": 2})
    result = CliRunner().invoke(cli.blurgen, ["average", "--config", str(path), "--out", str(tmp_path / "file")])
    assert result.exit_code == 0, result.output
    assert checksums(tmp_path / "file") == checksums(tmp_path / "flags")
    written = yaml.safe_load((tmp_path / "flags" / "config.yaml").read_text())
    assert written["frames"] == "3-5" and written["windows-per-clip"] == 2 and written["camera"] is None


# --- the example configs ---------------------------------------------------------------------------

def test_the_example_configs_resolve():
    paper_train, paper_data = configs_of(resolved(fit_cmd, ["--config", str(ROOT / "configs" / "paper.yaml")]))
    assert (paper_train.ngf, paper_train.n_blocks, paper_train.content_loss, paper_data.mix) == \
        (64, 9, "perceptual", (2, 1))
    assert paper_data.shards and paper_data.gopro is not None
    coco = resolved(synthesize_cmd, ["--config", str(ROOT / "configs" / "synthesize-coco.yaml")])
    assert (coco["crop"], coco["crops_per_image"], coco["kernel_size"], coco["src"]) == \
        (256, 1, 64, "coco/train2017")


def test_the_demo_config_is_the_demos_old_command_line():
    """make demo's fit line took these flags before it read configs/tiny.yaml: the same run."""
    demo = ["--shards", "demo/shards", "--gopro", "demo/GOPRO_Large", "--out", "demo/run"]
    from_file = configs_of(resolved(fit_cmd, ["--config", str(ROOT / "configs" / "tiny.yaml"), *demo]))
    by_flags = configs_of(resolved(fit_cmd, ["--preset", "tiny", "--mix", "2:1", "--steps", "300",
                                             "--val-every", "100", *demo]))
    assert from_file == by_flags
    assert "trainer fit --config configs/tiny.yaml" in (ROOT / "Makefile").read_text()

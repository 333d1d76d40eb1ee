"""Faults in the data (issue 11): damaged kernel banks, flipped bytes in shards,
broken manifests, truncated shards.  Each test names the defect it guards."""
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_synthesize import SMALL, write_photos

from blurgen import shards
from blurgen.physics.kernels import BankError, KernelSpec, check_bank, read_bank, write_bank
from cli import blurgen, trainer
from trainer.data import DataConfig, DataError, build_dataset, train_batches, val_pairs

SPEC = KernelSpec(size=9, iters=100, max_len=6.0)


def run(group, *args):
    return CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, code=2):
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.output
    return errors[0]


def make_folder(folder: Path, n_shards=2, n=6, side=16, seed=0, full=False):
    """A shard folder of random pairs; returns ({name: (blurred, sharp)}, folder)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    content, listed = {}, {}
    for k in range(n_shards):
        if full:
            blurred = [rng.integers(0, 256, (150 + 40 * i, 140, 3), dtype=np.uint8) for i in range(n)]
            sharp = [rng.integers(0, 256, b.shape, dtype=np.uint8) for b in blurred]
        else:
            blurred = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
            sharp = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        name = shards.shard_name(k)
        checksum = shards.write_shard(folder / name, blurred, sharp, np.full((n, 3, 3), 1 / 9, np.float32),
                                      {"noise_read": np.zeros(n)})
        listed[name] = {"count": n, "checksum": checksum, "bytes": (folder / name).stat().st_size}
        content[name] = (blurred, sharp)
    shards.write_manifest(folder, {"shards": listed})
    return content, folder


def flip_pixel(path: Path, sample: int, which: str = "blurred", byte: int = 5) -> None:
    """Flip one byte of a crop's stored pixels in place (the file keeps its size)."""
    with h5py.File(path, "r") as f:
        offset = f[which].id.get_chunk_info_by_coord((sample, 0, 0, 0)).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + byte)
        value = fh.read(1)[0]
        fh.seek(offset + byte)
        fh.write(bytes([value ^ 0xFF]))


def bad_bank(tmp_path, kernel: int, value) -> Path:
    path = tmp_path / "bank.h5"
    write_bank(path, 20, 0, SPEC)
    with h5py.File(path, "r+") as f:
        psf = f["kernels"][kernel]
        if value == "negative":
            psf[0, 0], psf[4, 4] = -0.25, psf[4, 4] + 0.25
        elif value == "scaled":
            psf = psf * 0.5
        else:
            psf[4, 4] = value
        f["kernels"][kernel] = psf
    return path


# --- item 1: kernel banks and verify -------------------------------------------------


@pytest.mark.parametrize("value, why", [(np.nan, "NaN or Inf"), (np.inf, "NaN or Inf"),
                                        ("negative", "negative tap"), ("scaled", "sums to 0.5")])
def test_bank_with_nan_inf_negative_or_unnormalised_kernel_is_refused(tmp_path, value, why):
    """Issue 11.1: a bank holding NaN/Inf/negative/unnormalised kernels was accepted;
    reading it now fails with one line naming the first bad kernel."""
    path = bad_bank(tmp_path, 13, value)
    with pytest.raises(BankError, match=f"kernel 13 is not a PSF: it .*{why}"):
        read_bank(path)
    with pytest.raises(BankError, match="kernel 13 is not a PSF"):
        read_bank(path, slice(10, 15))
    with pytest.raises(BankError, match="kernel 13 is not a PSF"):
        check_bank(path, batch=8)
    read_bank(path, slice(0, 13))  # the good kernels still read


def test_synthesize_refuses_a_nan_bank_before_any_work(tmp_path):
    """Issue 11.1: `synthesize --kernels` with a NaN kernel wrote all-black blurred
    images; now it stops with one line naming the kernel and writes no shard."""
    src = write_photos(tmp_path / "src", 2)
    bank = bad_bank(tmp_path, 19, np.nan)
    res = run(blurgen, "synthesize", "--src", src, "--out", tmp_path / "out", "--kernels", bank, "--workers", 1,
              "--crop", 32)
    assert "kernel 19 is not a PSF" in one_line_error(res)
    assert not list((tmp_path / "out").glob("shard-*.h5"))


def test_verify_finds_nan_kernels_and_fields(tmp_path):
    """Issue 11.1: `verify` reported shards with NaN kernels OK (comparisons with
    NaN are false); it now checks finiteness of kernels and float fields."""
    _, folder = make_folder(tmp_path / "s")
    for name, dataset in (("shard-00000.h5", "kernel"), ("shard-00001.h5", "noise_read")):
        path = folder / name
        with h5py.File(path, "r+") as f:
            values = f[dataset][()]
            values.reshape(len(values), -1)[2, 0] = np.nan
            f[dataset][...] = values
        manifest = json.loads((folder / shards.MANIFEST).read_text())
        manifest["shards"][name]["checksum"] = shards.file_checksum(path)  # only the finiteness check can see it
        (folder / shards.MANIFEST).write_text(json.dumps(manifest))
    count, problems = shards.verify_folder(folder)
    assert count == 2 and [name for name, _ in problems] == ["shard-00000.h5", "shard-00001.h5"]
    assert "kernel 2 is not a PSF" in problems[0][1]
    assert "'noise_read' of sample 2 is not finite" in problems[1][1]


# --- item 3: per-sample hashes ------------------------------------------------------------


def test_flipped_pixel_byte_is_caught_on_read(tmp_path):
    """Issue 11.3: a flipped byte in a sample's pixels was read back as silently
    wrong pixels; the reader now raises DamagedSample naming shard and sample."""
    content, folder = make_folder(tmp_path / "s")
    path = folder / "shard-00000.h5"
    flip_pixel(path, 3, "sharp")
    with shards.ShardReader(path) as r:
        with pytest.raises(shards.DamagedSample, match=r"shard-00000.h5: sample 3 is damaged .*sharp"):
            r.read_pair(3, box=(0, 0, 4, 4))
        b, s = r.read_pair(2)  # the others are fine
        np.testing.assert_array_equal(s, content["shard-00000.h5"][1][2])
    with shards.ShardReader(path, verify=False) as r:  # the damage is real
        assert not np.array_equal(r.read_pair(3)[1], content["shard-00000.h5"][1][3])


def test_every_flipped_pixel_or_hash_byte_is_caught(tmp_path):
    """Issue 11.3: of 298 flipped bytes in a shard, 148 gave silently wrong pixels;
    now a flip anywhere in the stored pixels (or in their hashes) of any sample
    raises DamagedSample for that sample, and the other samples read right."""
    content, folder = make_folder(tmp_path / "s", n_shards=1, n=3, side=8)
    blurred, sharp = content["shard-00000.h5"]
    path = folder / "shard-00000.h5"
    regions = []   # (first byte, size, sample)
    with h5py.File(path, "r") as f:
        for name in ("blurred", "sharp"):
            for i in range(3):
                info = f[name].id.get_chunk_info_by_coord((i, 0, 0, 0))
                regions.append((info.byte_offset, info.size, i))
        hashes = f["sample_hash"].id.get_offset()
        regions += [(hashes + 16 * i, 16, i) for i in range(3)]
    data = path.read_bytes()
    for first, size, sample in regions:
        for offset in range(first, first + size, 5):
            bad = bytearray(data)
            bad[offset] ^= 0x10
            probe = tmp_path / f"bad-{offset}.h5"   # a new name: HDF5 caches open files by path
            probe.write_bytes(bytes(bad))
            with shards.ShardReader(probe) as r:
                for i in range(3):
                    if i == sample:
                        with pytest.raises(shards.DamagedSample, match=f"sample {i} is damaged"):
                            r.read_pair(i)
                    else:
                        b, s = r.read_pair(i)
                        assert np.array_equal(b, blurred[i]) and np.array_equal(s, sharp[i])
            probe.unlink()


def test_whole_images_verify_the_tiles_a_crop_touches(tmp_path):
    """Issue 11.3 (--full shards): whole images are checked per 128-px tile, so a
    random crop detects damage in the tiles it reads and only those."""
    content, folder = make_folder(tmp_path / "s", n_shards=1, n=2, full=True)
    path = folder / "shard-00000.h5"
    image = content["shard-00000.h5"][0][1]   # 190 x 140: tiles (0..1, 0..1)
    with h5py.File(path, "r") as f:
        offset = f["blurred/000001"].id.get_chunk_info_by_coord((128, 0, 0)).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes([fh.read(1)[0] ^ 1]))
        fh.seek(offset)
    with shards.ShardReader(path) as r:
        np.testing.assert_array_equal(r.read_pair(1, box=(0, 0, 100, 140))[0], image[:100])
        with pytest.raises(shards.DamagedSample, match=r"sample 1 .*blurred image tile \(1, 0\)"):
            r.read_pair(1, box=(120, 0, 140, 20))
        with pytest.raises(shards.DamagedSample):
            r.read_pair(1)


def test_version_1_shards_without_hashes_still_load(tmp_path):
    """Issue 11.3: shards written before per-sample hashes (format version 1)
    must still be read (unchecked) by the trainer and verify."""
    content, folder = make_folder(tmp_path / "s", n_shards=1)
    path = folder / "shard-00000.h5"
    with h5py.File(path, "r+") as f:
        del f["sample_hash"]
        del f.attrs["sample_hash_algorithm"]
        f.attrs["format_version"] = 1
    manifest = json.loads((folder / shards.MANIFEST).read_text())
    manifest["format_version"] = 1
    manifest["shards"]["shard-00000.h5"]["checksum"] = shards.file_checksum(path)
    manifest["shards"]["shard-00000.h5"]["bytes"] = path.stat().st_size
    (folder / shards.MANIFEST).write_text(json.dumps(manifest))
    with shards.ShardReader(path) as r:
        np.testing.assert_array_equal(r.read_pair(4)[0], content["shard-00000.h5"][0][4])
        assert "sample_hash" not in r.fields()
    assert shards.verify_folder(folder) == (1, [])
    batch = next(train_batches(DataConfig(shards=(folder,), mix=(1, 0), crop=8, workers=0, val_shards=folder)))
    assert batch["blurred"].shape == (1, 3, 8, 8)


def _draws(folder, start, steps, **kw):
    cfg = DataConfig(shards=(folder,), mix=(1, 0), crop=8, batch_size=2, workers=kw.pop("workers", 0),
                     val_shards=folder)
    stream = train_batches(cfg, start=start, **kw)
    out = [next(stream) for _ in range(steps)]
    stream.close()
    return out


def test_training_skips_damaged_samples_deterministically(tmp_path, caplog):
    """Issue 11.3: damaged pixels were trained on silently; now the sample is
    skipped with a warning and a counter, replaced by a draw that depends only on
    (seed, index), so a resumed run sees the same batches."""
    _, folder = make_folder(tmp_path / "s", n_shards=2, n=6)
    flip_pixel(folder / "shard-00001.h5", 2)     # global sample 8
    with caplog.at_level(logging.WARNING, logger="trainer.data"):
        whole = _draws(folder, 0, 12)
    warnings = [r.getMessage() for r in caplog.records if "damaged sample" in r.getMessage()]
    assert len(warnings) == 2 and "shard-00001.h5: sample 2 is damaged" in warnings[0]  # once per epoch of 12 draws
    assert whole[-1]["damaged_total"] == 2
    resumed = _draws(folder, 5, 7, workers=1)
    for a, b in zip(whole[5:], resumed):
        assert np.array_equal(a["blurred"], b["blurred"]) and np.array_equal(a["sharp"], b["sharp"])
    with pytest.raises(DataError, match="more than 1 damaged samples skipped .*blurgen verify"):
        _draws(folder, 0, 12, max_damaged=1)


def test_eval_refuses_a_damaged_held_out_sample(tmp_path):
    """Issue 11.3: eval scored damaged pixels silently; a score must be over the
    stored data, so validation and `eval` stop with one line naming the sample."""
    _, folder = make_folder(tmp_path / "s", n_shards=2, n=6)
    flip_pixel(folder / "shard-00001.h5", 4, "sharp")
    pairs = val_pairs(DataConfig(shards=(folder,), mix=(1, 0), crop=8))   # the last shard is held out
    pairs[3]
    with pytest.raises(DataError, match=r"shard-00001.h5: sample 4 is damaged"):
        pairs[4]


def test_damaged_hdf5_structure_in_a_worker_is_one_line(tmp_path):
    """Issue 11.3: damaged HDF5 metadata met in a DataLoader worker ended the run
    with a traceback (RuntimeError/ValueError from h5py); now a DataError naming the shard."""
    _, folder = make_folder(tmp_path / "s", n_shards=2, n=6)
    cfg = DataConfig(shards=(folder,), mix=(1, 0), crop=8, batch_size=2, workers=1, val_shards=folder)
    stream = train_batches(cfg)   # start-up checks pass on the intact files
    path = folder / "shard-00001.h5"
    data = bytearray(path.read_bytes())
    # Break the signature of every chunk index (v1 B-tree node of type 1, raw
    # data): the file still opens, reading a chunk fails in h5py with a
    # RuntimeError ("wrong B-tree signature").
    nodes = [i for i in range(len(data) - 5) if data[i:i + 4] == b"TREE" and data[i + 4] == 1]
    assert nodes
    for node in nodes:
        data[node:node + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"shard-00001.h5: sample \d+ unreadable .*B-tree") as info:
        for _ in range(12):
            next(stream)
    assert "\n" not in str(info.value)
    # The workers ignore SIGTERM, so one left running (its iterator kept alive
    # by the traceback in ``info``) hung the interpreter's exit in
    # multiprocessing's join: they must be shut down when the stream raises.
    import multiprocessing
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]
    stream.close()


# --- item 9: manifests, inspect, resume and repair ------------------------------------------


def test_inspect_on_a_truncated_shard_is_one_line(tmp_path):
    """Issue 11.9: `blurgen inspect` on a truncated shard printed a traceback."""
    _, folder = make_folder(tmp_path / "s", n_shards=1)
    path = folder / "shard-00000.h5"
    path.write_bytes(path.read_bytes()[:3000])
    assert "shard-00000.h5" in one_line_error(run(blurgen, "inspect", folder))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["shards"]["shard-00000.h5"].update(count="6"), "count '6', not an integer"),
    (lambda m: m["shards"].update({"shard-00000.h5": 6}), "is int 6, not an object"),
    (lambda m: m["shards"].update({"../outside/shard-00000.h5": {"count": 6}}), "not a shard file name"),
    (lambda m: m["shards"]["shard-00001.h5"].update(bytes="12"), "bytes '12', not an integer"),
])
def test_manifests_with_wrong_types_or_paths_are_one_line(tmp_path, change, message):
    """Issue 11.9: manifests with wrong types gave tracebacks, and shard names with
    ../ were followed outside the folder; both are refused in one line."""
    _, folder = make_folder(tmp_path / "s")
    outside = tmp_path / "s" / ".." / "outside"
    make_folder(outside)
    manifest = json.loads((folder / shards.MANIFEST).read_text())
    change(manifest)
    (folder / shards.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(shards.ShardError, match=message):
        shards.find_shards(folder)
    for res in (run(blurgen, "verify", folder), run(blurgen, "inspect", folder),
                run(trainer, "fit", "--out", tmp_path / "run", "--shards", folder, "--mix", "1:0",
                    "--preset", "tiny", "--steps", 1, "--crop", 8, "--workers", 0)):
        assert message in one_line_error(res)


def test_a_count_larger_than_the_shard_is_one_line_in_fit(tmp_path):
    """Issue 11.9: a manifest count larger than the shard gave an IndexError in `fit`."""
    _, folder = make_folder(tmp_path / "s")
    manifest = json.loads((folder / shards.MANIFEST).read_text())
    manifest["shards"]["shard-00000.h5"]["count"] = 60
    (folder / shards.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"shard-00000.h5: .*\b(60\b.*\b6\b|6\b.*\b60)\b"):
        dataset = build_dataset(DataConfig(shards=(folder,), mix=(1, 0), crop=8, val_shards=folder))
        for j in range(60):
            item = dataset[j]
            if isinstance(item, str):
                raise DataError(item)
    res = run(trainer, "fit", "--out", tmp_path / "run", "--shards", folder, "--mix", "1:0",
              "--preset", "tiny", "--steps", 1, "--crop", 8, "--workers", 0, "--val-shards", folder,
              "--no-preview", "--batch-size", 4)
    assert "shard-00000.h5" in one_line_error(res) and "manifest lists 60" in one_line_error(res)


def _synth(tmp_path, *extra):
    src = tmp_path / "src"
    if not src.exists():
        write_photos(src, 6)
    return run(blurgen, "synthesize", "--src", src, "--out", tmp_path / "out", "--workers", 1,
               "--shard-size", 2, *SMALL, *extra)


def test_resume_rebuilds_a_truncated_listed_shard(tmp_path):
    """Issue 11.9: a re-run of `synthesize` said "built 0 shards now" over a listed
    shard that had been truncated; it now checks sizes and rebuilds it, byte for byte."""
    assert _synth(tmp_path).exit_code == 0
    path = tmp_path / "out" / "shard-00001.h5"
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    res = _synth(tmp_path)
    assert res.exit_code == 0 and "built 1 shard now, 2 were already done" in res.output, res.output
    assert "rebuilt 1 damaged or truncated shards: shard-00001.h5; identical to the originals" in res.output
    assert path.read_bytes() == original


def test_repair_rebuilds_exactly_what_verify_calls_bad(tmp_path):
    """Issue 11.9: a same-size damaged shard stayed after a re-run; `verify` now
    points to `synthesize --repair`, which rebuilds exactly the bad shards,
    byte-identical to the originals."""
    assert _synth(tmp_path).exit_code == 0
    out = tmp_path / "out"
    originals = {p.name: p.read_bytes() for p in out.glob("shard-*.h5")}
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.h5")}
    flip_pixel(out / "shard-00002.h5", 1)
    res = run(blurgen, "verify", out)
    assert res.exit_code == 1 and "BAD shard-00002.h5" in res.output and "--repair" in res.output
    assert "built 0 shards now" in _synth(tmp_path).output   # a plain resume checks sizes only
    res = _synth(tmp_path, "--repair")
    assert res.exit_code == 0, res.output
    assert "rebuilt 1 damaged or truncated shards: shard-00002.h5; identical to the originals" in res.output
    assert {p.name: p.read_bytes() for p in out.glob("shard-*.h5")} == originals
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.h5") if p.name != "shard-00002.h5"} \
        == {k: v for k, v in mtimes.items() if k != "shard-00002.h5"}
    assert run(blurgen, "verify", out).exit_code == 0


def flip_byte(path: Path, fraction: float = 0.5) -> None:
    """Flip one byte at ``fraction`` of the file (its size kept)."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * fraction)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_import_pairs_shards_are_rebuilt_with_repair(tmp_path):
    """Issue 22.24: verify advised `synthesize --repair` for a damaged `import-pairs` shard, which
    does not apply, and the same import-pairs said "already done".  Now verify names the command
    that made the folder, and `import-pairs --repair` rebuilds exactly the bad shard, byte for byte."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder in ("blur", "sharp"):
        (tmp_path / folder).mkdir()
        for stem in "abcd":
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / folder / f"{stem}.png")
    out = tmp_path / "shards"
    args = ["import-pairs", tmp_path / "blur", tmp_path / "sharp", "--out", out, "--shard-size", 2]
    assert run(blurgen, *args).exit_code == 0
    good = (out / "shard-00001.h5").read_bytes()
    flip_byte(out / "shard-00001.h5")
    res = run(blurgen, "verify", out)
    assert res.exit_code == 1 and "BAD shard-00001.h5" in res.output
    assert "run the same `blurgen import-pairs` command with --repair" in res.output
    res = run(blurgen, *args, "--repair")
    assert res.exit_code == 0 and "rebuilt 1 damaged or truncated shards: shard-00001.h5" in res.output
    assert (out / "shard-00001.h5").read_bytes() == good
    assert run(blurgen, "verify", out).exit_code == 0


def test_verify_names_average_for_a_damaged_average_shard(tmp_path):
    """Issue 22.24: for a damaged `average` shard verify named `blurgen synthesize`."""
    from test_video import _clips

    src = _clips(tmp_path / "src", 1)
    out = tmp_path / "out"
    assert run(blurgen, "average", "--src", src, "--out", out, "--frames", "3-5", "--crop", 16,
               "--workers", 1).exit_code == 0
    flip_byte(out / "shard-00000.h5")
    res = run(blurgen, "verify", out)
    assert res.exit_code == 1 and "run the same `blurgen average` command with --repair" in res.output


def test_file_names_that_are_not_utf8_are_skipped_not_a_crash(tmp_path):
    """Issue 22.25: a file name that is not UTF-8 (b"caf\\xe9.png", Latin-1) crashed synthesize,
    import-pairs and average with a UnicodeEncodeError in the sources digest.  Now each such
    photo, pair or clip is skipped (`bad-name`), the skip report holding its name byte for byte,
    and a resume is accepted."""
    import os

    from PIL import Image
    from test_video import _clips

    rng = np.random.default_rng(0)

    def image(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, format="PNG")

    latin = os.fsdecode(b"caf\xe9.png")
    for name in ("a.png", latin):
        image(tmp_path / "photos" / name)
        image(tmp_path / "blur" / name)
        image(tmp_path / "sharp" / name)
    clips = _clips(tmp_path / "clips", 1)
    (clips / "clip00").rename(clips / os.fsdecode(b"clip\xff"))
    _clips(clips, 1)
    runs = [["synthesize", "--src", tmp_path / "photos", "--out", tmp_path / "s", "--workers", 1, *SMALL],
            ["import-pairs", tmp_path / "blur", tmp_path / "sharp", "--out", tmp_path / "i"],
            ["average", "--src", clips, "--out", tmp_path / "v", "--frames", "3-5", "--crop", 16, "--workers", 1]]
    for args in runs:
        for _ in range(2):  # the second: a resume over the same names
            res = run(blurgen, *args)
            assert res.exit_code == 0, res.output
        out = Path(args[args.index("--out") + 1])
        assert b"\tbad-name\t" in (out / "skipped.tsv").read_bytes()
        assert (b"caf\xe9.png" if args[0] != "average" else b"clip\xff") in (out / "skipped.tsv").read_bytes()
        assert run(blurgen, "verify", out).exit_code == 0


def test_inspect_of_a_shard_with_a_damaged_compressed_field_is_one_line(tmp_path):
    """Issue 22.26: `inspect` ended in an h5py traceback ("filter returned failure during
    read") on 7 of 40 flips of a shard's bytes: a meta field read without the pixels' checks."""
    import h5py
    from click.testing import CliRunner
    from test_faults_training import make_shards

    import cli

    folder = make_shards(tmp_path / "shards", [3], side=40)
    shard = folder / "shard-00000.h5"
    with h5py.File(shard, "r") as f:
        assert f["kernel"].compression == "gzip"
        chunk = f["kernel"].id.get_chunk_info(0)
    data = bytearray(shard.read_bytes())
    middle = chunk.byte_offset + chunk.size // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    shard.write_bytes(bytes(data))
    result = CliRunner().invoke(cli.blurgen, ["inspect", str(folder), "--samples", "3"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.count("\n") == 1
    assert "its 'kernel' field cannot be read" in result.stderr and "blurgen verify" in result.stderr

"""Blur on the fly (``trainer fit --online``) and sharp-only shards (``synthesize --sharp-only``)."""
import itertools

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.signal import convolve2d

import cli
from blurgen import shards as shard_format
from blurgen.physics.kernels import KernelSpec
from blurgen.physics.realism import Realism
from blurgen.plumbing.pictures import write_png
from blurgen.runs.online import OnlineBlur, kernel_size_for_crop
from blurgen.runs.shard_run import SynthError
from blurgen.runs.synthesize import SynthConfig, synthesize
from trainer.data import GOPRO, SYNTHETIC, DataConfig, DataError, build_dataset, mix_pattern, train_batches, val_pairs

CROP = 16


@pytest.fixture(scope="module")
def gopro(make_gopro):
    return make_gopro("online-gopro", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Five smooth-ish random RGB photos of 56x64 (a blur changes them visibly)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    for k in range(5):
        coarse = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
        image = np.kron(coarse, np.ones((7, 8, 1), np.float32)) + rng.normal(0, 20, (56, 64, 3))
        write_png(folder / f"p{k}.png", np.clip(image, 0, 255).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def sharp_shards(photos, tmp_path_factory):
    """Sharp-only shards: 2 crops of 40x40 per photo, 4 per shard."""
    out = tmp_path_factory.mktemp("sharp") / "shards"
    synthesize(SynthConfig(src=photos, crop=40, crops_per_image=2, shard_size=4, seed=3, mode="sharp-only"), out)
    return out


def _cfg(shards, gopro=None, **kw):
    kw.setdefault("crop", CROP)
    kw.setdefault("workers", 0)
    kw.setdefault("online", True)
    kw.setdefault("mix", (1, 0) if gopro is None else (2, 1))
    return DataConfig(shards=(shards,), gopro=gopro, **kw)


def _whole_sharp(dataset, d) -> np.ndarray:
    """The whole stored sharp image that training draw ``d`` (``dataset.draw(j)``) crops its window from."""
    shard, local = dataset.sources[SYNTHETIC].locate(d.sample)
    with shard_format.ShardReader(dataset.sources[SYNTHETIC].paths[shard]) as reader:
        return reader.read_sharp(local)


# --- the online draws -----------------------------------------------------------------


def test_default_kernel_is_a_quarter_of_the_crop_rounded_to_odd():
    assert [kernel_size_for_crop(c) for c in (256, 80, 64, 32, 16, 8)] == [65, 21, 17, 9, 5, 3]
    spec = OnlineBlur(kernel_size=21).kernel_spec
    assert (spec.size, spec.max_len) == (21, 19.0)   # trajectories up to size - 2
    assert DataConfig(crop=80, online=True).online_kernel_size == 21
    assert DataConfig(crop=80, online=True, online_kernel_size=31).online_kernel_size == 31
    with pytest.raises(DataError, match="add --online"):
        DataConfig(crop=80, online_noise=True)
    # One realism spec: the messages of the blurgen options, spelled as fit's (issue 21.2).
    with pytest.raises(DataError, match="--online-jpeg-quality must be LO-HI with 1 <= LO <= HI <= 100, got 90-10"):
        DataConfig(crop=80, online=True, online_jpeg_quality="90-10")
    with pytest.raises(DataError, match=r"--online-jpeg-quality must look like LO-HI \(e.g. 60-95\), got 'x'"):
        DataConfig(crop=80, online=True, online_jpeg_quality="x")
    # The CLI's text and a checkpoint's list read as the same setting (--resume compares them).
    assert DataConfig(online=True, online_jpeg_quality="60-95").online_jpeg_quality == \
        DataConfig(online=True, online_jpeg_quality=[60, 95]).online_jpeg_quality == (60, 95)


def test_online_draws_are_a_pure_function_of_seed_and_index(sharp_shards):
    first, second = build_dataset(_cfg(sharp_shards)), build_dataset(_cfg(sharp_shards))
    order = [11, 0, 5, 11, 3]
    a = first.__getitems__(order)
    b = {j: second[j] for j in reversed(order)}        # one at a time, another order
    for j, item in zip(order, a):
        assert np.array_equal(item[0], b[j][0]) and np.array_equal(item[1], b[j][1])
    # Every draw its own kernel: different j, different PSF, also when j revisits a sample.
    psfs = first.online.kernels(0, [(j, 0) for j in range(12)]).psf
    assert len({p.tobytes() for p in psfs}) == 12
    # A kernel is the same whatever batch it is made in.
    assert np.array_equal(first.online.kernels(0, [(5, 0), (9, 0)]).psf[1], psfs[9])
    other = build_dataset(_cfg(sharp_shards, seed=1))
    assert not np.array_equal(other.online.kernels(1, [(3, 0)]).psf[0], psfs[3])


def test_online_blurred_crop_is_the_sharp_window_convolved_with_the_draws_kernel(sharp_shards):
    cfg = _cfg(sharp_shards, flip=False, online_kernel_size=7)
    dataset = build_dataset(cfg)
    for j in range(6):
        d = dataset.draw(j)
        blurred, sharp, _ = dataset[j]
        assert d.online and d.box[2] - d.box[0] == CROP + 6
        whole = _whole_sharp(dataset, d)
        y0, x0, y1, x1 = d.box
        window = whole[y0:y1, x0:x1].astype(np.float64)
        psf = dataset.online.kernels(cfg.seed, [(j, 0)]).psf[0]
        assert psf.shape == (7, 7) and psf.sum() == pytest.approx(1, abs=1e-5)
        expected = np.stack([convolve2d(window[..., c], psf, mode="valid") for c in range(3)], axis=-1)
        assert np.abs(blurred.astype(np.float64) - expected).max() <= 0.51   # uint8 rounding
        np.testing.assert_array_equal(sharp, whole[y0 + 3:y1 - 3, x0 + 3:x1 - 3])
        assert np.abs(blurred.astype(int) - sharp).mean() > 1   # it did blur


def test_online_effects_are_drawn_per_draw_and_reproducible(sharp_shards):
    cfg = _cfg(sharp_shards, online_noise=True, online_jpeg_quality="50-90")
    one, two = build_dataset(cfg), build_dataset(cfg)
    plain = build_dataset(_cfg(sharp_shards))
    for j in range(4):
        assert np.array_equal(one[j][0], two[j][0])                 # the noise too
        assert not np.array_equal(one[j][0], plain[j][0])
        assert np.array_equal(one[j][1], plain[j][1])               # the same sharp crop


def test_same_seed_same_batches_in_workers_and_resume(sharp_shards):
    cfg = _cfg(sharp_shards, batch_size=3)
    here = list(itertools.islice(train_batches(cfg), 5))
    workers = list(itertools.islice(train_batches(_cfg(sharp_shards, batch_size=3, workers=1)), 5))
    resumed = list(itertools.islice(train_batches(cfg, start=3), 2))
    for a, b in zip(here, workers):
        assert torch.equal(a["blurred"], b["blurred"]) and torch.equal(a["sharp"], b["sharp"])
    for a, b in zip(here[3:], resumed):
        assert torch.equal(a["blurred"], b["blurred"]) and torch.equal(a["sharp"], b["sharp"])
    # A second pass over the same samples blurs them with other kernels: no pair repeats.
    n = len(build_dataset(cfg).sources[SYNTHETIC])
    later = next(train_batches(cfg, start=n))
    assert not torch.equal(later["blurred"], here[0]["blurred"])


def test_gopro_draws_stay_real_pairs_in_the_two_to_one_mix(sharp_shards, gopro):
    online = build_dataset(_cfg(sharp_shards, gopro))
    assert np.array_equal([online.draw(j).source == SYNTHETIC for j in range(300)], np.tile(mix_pattern((2, 1)), 100))
    offline = build_dataset(DataConfig(gopro=gopro, mix=(0, 1), crop=CROP, workers=0))
    gopro_draws = [j for j in range(30) if online.draw(j).source == GOPRO]
    assert len(gopro_draws) == 10
    for _k, j in enumerate(gopro_draws):
        d = online.draw(j)
        assert not d.online and d.box[2] - d.box[0] == CROP
        blurred, sharp, _ = online[j]
        # The GoPro pair as stored, cut at the draw's box: not re-blurred.
        from trainer.gopro import read_gopro_pair
        b, s = read_gopro_pair(offline.sources[GOPRO].pairs[d.sample], 0.5)
        y0, x0, y1, x1 = d.box
        b, s = b[y0:y1, x0:x1], s[y0:y1, x0:x1]
        if d.flip:
            b, s = b[:, ::-1], s[:, ::-1]
        assert np.array_equal(blurred, b) and np.array_equal(sharp, s)
    # Validation: GoPro test pairs as they are.
    assert len(val_pairs(_cfg(sharp_shards, gopro))) == 3


# --- sharp-only shards ------------------------------------------------------------------


def test_sharp_only_shards_round_trip(photos, sharp_shards, tmp_path):
    infos = shard_format.find_shards(sharp_shards)
    assert [i.count for i in infos] == [4, 4, 2]
    crop_boxes = []
    with shard_format.ShardReader(infos[0].path) as reader:
        assert reader.sharp_only and len(reader) == 4
        assert reader.attrs["format_version"] == shard_format.SHARP_ONLY_VERSION
        assert "blurred" not in reader.file and "kernel" not in reader.file
        assert reader.fields() == ["crop_box", "source"]
        sample = reader.read_sample(1)
        assert set(sample) == {"sharp", "crop_box", "source"}
        from blurgen.sources import load_rgb
        y0, x0, y1, x1 = sample["crop_box"]
        np.testing.assert_array_equal(sample["sharp"], load_rgb(photos / sample["source"])[y0:y1, x0:x1])
        crop_boxes = reader.file["crop_box"][()]
        with pytest.raises(shard_format.ShardError, match="sharp images only.*--online"):
            reader.read_pair(0)
    assert shard_format.verify_folder(sharp_shards) == (3, [])
    # Deterministic: a second run writes the same bytes; pairs take twice the room.
    again = tmp_path / "again"
    synthesize(SynthConfig(src=photos, crop=40, crops_per_image=2, shard_size=4, seed=3, mode="sharp-only"), again)
    assert [i.checksum for i in shard_format.find_shards(again)] == [i.checksum for i in infos]
    pairs = tmp_path / "pairs"
    synthesize(SynthConfig(src=photos, crop=40, crops_per_image=2, shard_size=4, seed=3,
                           kernel_spec=KernelSpec(size=9, max_len=7.0)), pairs)
    assert sum(i.count for i in shard_format.find_shards(pairs)) == 10
    ratio = sum(i.path.stat().st_size for i in infos) / sum(
        i.path.stat().st_size for i in shard_format.find_shards(pairs))
    assert 0.4 < ratio < 0.6
    assert len(crop_boxes) == 4


def test_sharp_only_whole_images_and_damage(photos, tmp_path):
    out = tmp_path / "full"
    synthesize(SynthConfig(src=photos, full=True, shard_size=8, seed=0, mode="sharp-only"), out)
    info = shard_format.find_shards(out)[0]
    with shard_format.ShardReader(info.path) as reader:
        assert reader.sharp_only and reader.layout == "images" and reader.image_shape(0) == (56, 64)
        assert reader.read_sharp(2, box=(10, 20, 30, 50)).shape == (20, 30, 3)
    # A flipped pixel byte is found by verify and by the reader's hash.
    with h5py.File(info.path, "r+") as f:
        f["sharp/000001"][0, 0, 0] ^= 0xFF
    with shard_format.ShardReader(info.path) as reader:
        with pytest.raises(shard_format.DamagedSample, match="sharp image"):
            reader.read_sharp(1)
    entry = dict(shard_format.read_manifest(out)["shards"][info.path.name], checksum="")
    assert "sharp image" in shard_format.verify_shard(info.path, entry)


def test_sharp_only_refuses_blur_options_and_keeps_other_modes_arguments(photos):
    with pytest.raises(SynthError, match="--sharp-only stores no blurred image: --noise"):
        SynthConfig(src=photos, mode="sharp-only", realism=Realism(noise=True))
    assert "sharp_only" not in SynthConfig(src=photos).arguments()
    assert SynthConfig(src=photos, mode="sharp-only").arguments()["sharp_only"] is True


def test_fit_refuses_sharp_only_shards_without_online_and_takes_them_with_it(sharp_shards, gopro, tmp_path):
    with pytest.raises(DataError, match="sharp images only.*--online"):
        build_dataset(_cfg(sharp_shards, online=False))
    batch = next(train_batches(_cfg(sharp_shards, batch_size=2)))
    assert batch["blurred"].shape == (2, 3, CROP, CROP)
    # Validation never blurs online: a sharp-only held-out shard is refused.
    with pytest.raises(DataError, match="validation needs fixed pairs"):
        val_pairs(_cfg(sharp_shards))
    from cli import trainer
    result = CliRunner().invoke(trainer, ["fit", "--out", str(tmp_path / "run"), "--shards", str(sharp_shards),
                                          "--gopro", str(gopro), "--preset", "tiny", "--crop", "16",
                                          "--steps", "1", "--workers", "0", "--device", "cpu"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        f"error: {shard_format.find_shards(sharp_shards)[0].path}: holds sharp images only "
        "(synthesize --sharp-only): train on it with --online"]


def test_inspect_and_verify_handle_sharp_only_shards(sharp_shards):
    from cli import blurgen
    verify = CliRunner().invoke(blurgen, ["verify", str(sharp_shards)])
    assert verify.exit_code == 0 and "3 shards OK" in verify.output
    inspect = CliRunner().invoke(blurgen, ["inspect", str(sharp_shards), "--samples", "1"])
    assert inspect.exit_code == 0, inspect.output
    assert "10 sharp images in 3 shards" in inspect.output and "format version 3, sharp images only" in inspect.output


def test_a_damaged_sample_is_replaced_by_a_draw_with_its_own_kernel(sharp_shards, tmp_path):
    import shutil
    folder = tmp_path / "shards"
    shutil.copytree(sharp_shards, folder)
    first = shard_format.find_shards(folder)[0].path
    with h5py.File(first, "r+") as f:
        f["sharp"][2, 0, 0, 0] ^= 0xFF        # sample 2 of the first shard fails its hash
    cfg = _cfg(folder, flip=False)
    dataset = build_dataset(cfg)
    hit = next(j for j in range(40) if dataset.sources[SYNTHETIC].locate(dataset.draw(j).sample) == (0, 2))
    blurred, sharp, damaged = dataset[hit]
    assert len(damaged) == 1 and "sample 2 is damaged" in damaged[0]
    d = dataset.draw(hit, 1)                       # the replacement: attempt 1
    window = dataset.sources[SYNTHETIC].read_sharp(d.sample, d.box)
    psf = dataset.online.kernels(cfg.seed, [(hit, 1)]).psf[0]
    assert not np.array_equal(psf, dataset.online.kernels(cfg.seed, [(hit, 0)]).psf[0])
    expected, expected_sharp, _ = dataset.online.blur(window, psf, dataset.online.rng(cfg.seed, hit, 1))
    assert np.array_equal(blurred, expected) and np.array_equal(sharp, expected_sharp)


def test_online_camera_blurs_through_rsblurs_pipeline_per_draw(sharp_shards):
    """Issue 9.2: --online-camera runs the camera pipeline of `synthesize --camera` on each draw:
    the draw's effect levels, then its camera settings and noise, all from the draw's generator."""
    from blurgen.physics import camera, cameras

    cfg = _cfg(sharp_shards, flip=False, online_kernel_size=7, online_camera="a7r3")
    dataset, again = build_dataset(cfg), build_dataset(cfg)
    plain = build_dataset(_cfg(sharp_shards, flip=False, online_kernel_size=7))
    cam = cameras.get_camera("a7r3")
    for j in range(3):
        d = dataset.draw(j)
        blurred, sharp, _ = dataset[j]
        whole = _whole_sharp(dataset, d)
        y0, x0, y1, x1 = d.box
        window = whole[y0:y1, x0:x1]
        psf = dataset.online.kernels(cfg.seed, [(j, 0)]).psf[0]
        rng = dataset.online.rng(cfg.seed, j)
        dataset.online.realism.draw(rng)
        expected = camera.simulate(window, psf, cam, camera.draw_parameters(cam, rng), rng)
        np.testing.assert_array_equal(blurred, expected)
        np.testing.assert_array_equal(sharp, camera.render_sharp(window[3:-3, 3:-3], cam))
        np.testing.assert_array_equal(blurred, again[j][0])                  # the noise too
        assert not np.array_equal(sharp, plain[j][1])                         # the camera's tone curve
    with pytest.raises(DataError, match="online-noise"):
        _cfg(sharp_shards, online_camera="a7r3", online_noise=True)
    with pytest.raises(DataError, match="a7r3"):
        _cfg(sharp_shards, online_camera="no-such-camera")
    with pytest.raises(DataError, match="add --online"):
        _cfg(sharp_shards, online=False, online_camera="a7r3")


# --- online blur modes (issue 21.3) -----------------------------------------------------------


def test_online_offers_the_modes_that_blur_one_photo():
    from blurgen.modes import MODES, ONLINE_MODES

    assert ONLINE_MODES == ("uniform", "shake")   # objects needs other photos; sharp-only does not blur
    assert all(MODES[name].online for name in ONLINE_MODES)
    options = {opt: p for p in cli.trainer.commands["fit"].params for opt in p.opts}
    assert tuple(options["--online-mode"].type.choices) == ONLINE_MODES


def test_online_shake_without_motion_gives_the_sharp_crop(sharp_shards):
    dataset = build_dataset(_cfg(sharp_shards, flip=False, online_kernel_size=9, online_mode="shake",
                                 online_mode_settings="max_angle=0"))
    for j in range(4):
        blurred, sharp, _ = dataset[j]
        np.testing.assert_array_equal(blurred, sharp)


def test_online_shake_is_a_pure_function_of_the_draw_and_stays_inside_its_window(sharp_shards):
    cfg = _cfg(sharp_shards, flip=False, online_kernel_size=11, online_mode="shake",
               online_mode_settings="max_angle=3,focal=300,max_shift=2")
    dataset, again = build_dataset(cfg), build_dataset(cfg)
    uniform = build_dataset(_cfg(sharp_shards, flip=False, online_kernel_size=11))
    changed, scales = 0, []
    for j in range(6):
        blurred, sharp, _ = dataset[j]
        np.testing.assert_array_equal(blurred, again[j][0])
        np.testing.assert_array_equal(sharp, uniform[j][1])            # the same crops as the uniform mode
        changed += int(not np.array_equal(blurred, sharp))
        d = dataset.draw(j)
        window = _whole_sharp(dataset, d)[d.box[0]:d.box[2], d.box[1]:d.box[3]]
        _, _, meta = dataset.online.blur(window, None, dataset.online.rng(cfg.seed, j))
        scales.append(meta["shake_scale"])
        assert 0 < meta["shake_scale"] <= 1 and meta["shake_oop_angle"] <= 3 * meta["shake_scale"] + 1e-9
    assert changed >= 5
    # Up to 3 degrees at a focal length of 300 px reach beyond the 5-px margin: such draws are shrunk to fit.
    assert min(scales) < 1


def test_online_mode_errors_are_one_line(sharp_shards):
    with pytest.raises(DataError, match="add --online"):
        _cfg(sharp_shards, online=False, online_mode="shake")
    with pytest.raises(DataError, match="no setting 'angle'"):
        _cfg(sharp_shards, online_mode="shake", online_mode_settings="angle=2")
    with pytest.raises(DataError, match="KEY=VALUE"):
        _cfg(sharp_shards, online_mode="shake", online_mode_settings="max_angle")
    with pytest.raises(DataError, match="uniform mode has no online setting 'max_angle'"):
        _cfg(sharp_shards, online_mode_settings="max_angle=2")
    with pytest.raises(DataError, match="defocus must look like LO-HI"):
        _cfg(sharp_shards, online_mode_settings="defocus=wide")
    with pytest.raises(DataError, match="online blur mode must be one of uniform, shake"):
        _cfg(sharp_shards, online_mode="objects")


def test_fit_trains_with_online_shake_and_says_so(sharp_shards, photos, tmp_path):
    pairs = tmp_path / "pairs"
    synthesize(SynthConfig(src=photos, crop=16, shard_size=8, kernel_spec=KernelSpec(size=5, iters=50, max_len=3.0)),
               pairs)
    res = CliRunner().invoke(cli.trainer, ["fit", "--out", str(tmp_path / "run"), "--shards", str(sharp_shards),
                                           "--val-shards", str(pairs),
                                           "--mix", "1:0", "--preset", "tiny", "--crop", "16", "--workers", "0",
                                           "--device", "cpu", "--no-preview", "--steps", "2", "--online",
                                           "--online-mode", "shake", "--online-mode-settings", "max_angle=2"])
    assert res.exit_code == 0, res.output
    assert ("blurred on the fly by non-uniform camera shake: rotations averaged as homographies (Whyte et al.) "
            "per draw, inside a 4-px margin") in res.stderr


def test_online_defocus_is_the_window_through_the_draws_kernel_and_a_disk(sharp_shards):
    """--online-mode-settings defocus=LO-HI: the window grows by the disk, each draw's kernel goes
    through a disk of a radius it draws, and the blurred crop is the window convolved with that
    combined kernel (an independent 2-D convolution); radius 0 is the plain online blur."""
    from blurgen.physics.defocus import defocus_psf

    plain = build_dataset(_cfg(sharp_shards, flip=False, online_kernel_size=7))
    zero = build_dataset(_cfg(sharp_shards, flip=False, online_kernel_size=7, online_mode_settings="defocus=0-0"))
    cfg = _cfg(sharp_shards, flip=False, online_kernel_size=7, online_mode_settings="defocus=2-3")
    dataset = build_dataset(cfg)
    assert (plain.online.margin, zero.online.margin, dataset.online.margin) == (6, 6, 12)
    for j in range(4):
        for a, b in zip(plain[j], zero[j]):
            np.testing.assert_array_equal(a, b)
        d = dataset.draw(j)
        blurred, sharp, _ = dataset[j]
        assert d.box[2] - d.box[0] == CROP + 12 and blurred.shape == sharp.shape == (CROP, CROP, 3)
        whole = _whole_sharp(dataset, d)
        y0, x0, y1, x1 = d.box
        window = whole[y0:y1, x0:x1].astype(np.float64)
        psf = dataset.online.kernels(cfg.seed, [(j, 0)]).psf[0]
        again, _, meta = dataset.online.blur(whole[y0:y1, x0:x1], psf, dataset.online.rng(cfg.seed, j))
        np.testing.assert_array_equal(again, blurred)
        radius = meta["defocus_radius"]
        assert 2 <= radius <= 3
        combined = defocus_psf(psf, radius, 7)
        expected = np.stack([convolve2d(window[..., c], combined, mode="valid") for c in range(3)], axis=-1)
        assert np.abs(blurred.astype(np.float64) - expected).max() <= 0.51   # uint8 rounding
        np.testing.assert_array_equal(sharp, whole[y0 + 6:y1 - 6, x0 + 6:x1 - 6])
    from trainer.data import describe_sources

    header = " ".join(describe_sources(cfg, (dataset.sources[SYNTHETIC], None)))
    assert "a fresh 7-px kernel per draw through a defocus disk of radius 2-3 px" in header


def test_online_shake_with_a_rolling_shutter(sharp_shards):
    """--online-mode-settings rolling=LO-HI: readout 0 gives the global-shutter draw exactly, no
    motion gives the sharp crop at any readout, a readout changes the blurred crop
    deterministically, and the draw records it."""
    settings = "max_angle=2,focal=300"
    base = build_dataset(_cfg(sharp_shards, flip=False, online_kernel_size=11, online_mode="shake",
                              online_mode_settings=settings))
    zero = build_dataset(_cfg(sharp_shards, flip=False, online_kernel_size=11, online_mode="shake",
                              online_mode_settings=settings + ",rolling=0-0"))
    cfg = _cfg(sharp_shards, flip=False, online_kernel_size=11, online_mode="shake",
               online_mode_settings=settings + ",rolling=0.5-0.5")
    rolling, again = build_dataset(cfg), build_dataset(cfg)
    still = build_dataset(_cfg(sharp_shards, flip=False, online_kernel_size=11, online_mode="shake",
                               online_mode_settings="max_angle=0,rolling=0.5-0.5"))
    changed = 0
    for j in range(4):
        np.testing.assert_array_equal(base[j][0], zero[j][0])
        np.testing.assert_array_equal(rolling[j][0], again[j][0])
        np.testing.assert_array_equal(rolling[j][1], base[j][1])
        np.testing.assert_array_equal(still[j][0], still[j][1])
        changed += int(not np.array_equal(rolling[j][0], base[j][0]))
        d = rolling.draw(j)
        window = _whole_sharp(rolling, d)[d.box[0]:d.box[2], d.box[1]:d.box[3]]
        _, _, meta = rolling.online.blur(window, None, rolling.online.rng(cfg.seed, j))
        assert meta["rolling_readout"] == 0.5
    assert changed >= 3
    from trainer.data import describe_sources

    assert "a rolling shutter (readout 0.5-0.5 exposures)" in " ".join(
        describe_sources(cfg, (rolling.sources[SYNTHETIC], None)))
    with pytest.raises(DataError, match="rolling"):
        _cfg(sharp_shards, online_mode="shake", online_mode_settings="rolling=fast")
    with pytest.raises(DataError, match="rolling-shutter must be LO-HI"):
        _cfg(sharp_shards, online_mode="shake", online_mode_settings="rolling=0.5-3")

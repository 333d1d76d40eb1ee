"""A resumed run trains on the data it started on (issue 22, items 4 and 19): a shard
folder rebuilt or appended to, or a GoPro folder changed, is refused in one line."""
import shutil

import numpy as np
import pytest
from PIL import Image

from trainer import checkpoint
from trainer.config import make_configs
from trainer.loop import fit, resume_configs
from trainer.provenance import DataChanged, data_fingerprints, gopro_fingerprint, shard_fingerprint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def shard_run(tmp_path, folder, steps=2):
    return make_configs("tiny", dict(out=tmp_path / "run", steps=steps, device="cpu", content_loss="l1",
                                     preview=False, val_limit=1, checkpoint_every=1),
                        dict(shards=[folder], mix="1:0", crop=32, batch_size=1, workers=0))


def test_a_rebuilt_or_appended_shard_folder_is_refused_on_resume(tmp_path):
    """Issue 22.4 and 22.19: after `synthesize --seed 7 --overwrite` (or `--append`) into a
    run's shard folder, `fit --resume` went on training, on other pairs and with another
    held-out shard, without a word."""
    from test_faults_training import make_shards

    folder = make_shards(tmp_path / "shards", [3, 3, 3], side=40, seed=0)
    fit(*shard_run(tmp_path, folder, steps=2))
    state = checkpoint.load(tmp_path / "run" / "last.pt")
    assert state["data"]["fingerprints"] == {str(folder.resolve()): shard_fingerprint(folder)}

    original = tmp_path / "original"
    shutil.copytree(folder, original)
    shutil.rmtree(folder)
    make_shards(folder, [3, 3, 3], side=40, seed=7)          # the same layout, other pixels
    train, data = resume_configs(tmp_path / "run", {"steps": 2})
    with pytest.raises(DataChanged, match=r"shards changed since the run in .* started \(rebuilt\): .*"
                                          r"--init-from .*last\.pt --out NEW_RUN"):
        fit(train, data, resume=True)

    shutil.rmtree(folder)
    make_shards(folder, [3, 3, 3, 3], side=40, seed=0)       # appended to
    with pytest.raises(DataChanged, match=r"\(3 shards, 9 pairs then, 4 shards, 12 pairs now\)"):
        fit(train, data, resume=True)

    shutil.rmtree(folder)
    shutil.copytree(original, folder)                        # put back: the run continues
    assert fit(train, data, resume=True)["step"] == 2


def test_a_changed_gopro_folder_is_refused_on_resume(tmp_path, make_gopro):
    gopro = make_gopro("provenance", seed=0, size=(48, 64), train_sequences=2, test_sequences=1, frames=3)
    train, data = make_configs("tiny", dict(out=tmp_path / "run", steps=1, device="cpu", content_loss="l1",
                                            preview=False, val_limit=1),
                               dict(gopro=gopro, mix="0:1", crop=32, batch_size=1, gopro_scale=1.0, workers=0))
    fit(train, data)
    before = gopro_fingerprint(gopro, "blur")
    frame = sorted((gopro / "train").glob("*/sharp/*.png"))[0]
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(frame)   # a frame replaced
    assert gopro_fingerprint(gopro, "blur") != before
    train, data = resume_configs(tmp_path / "run", {})
    with pytest.raises(DataChanged, match="GOPRO_Large changed since"):
        fit(train, data, resume=True)


def test_checkpoints_without_fingerprints_resume_unchecked(tmp_path):
    from test_faults_training import make_shards

    folder = make_shards(tmp_path / "shards", [3, 3], side=40)
    fit(*shard_run(tmp_path, folder, steps=2))
    state = checkpoint.load(tmp_path / "run" / "last.pt")
    state["data"].pop("fingerprints")
    state["step"] = 1
    checkpoint.save(tmp_path / "run" / "last.pt", state)
    shutil.rmtree(folder)
    make_shards(folder, [3, 3], side=40, seed=3)
    train, data = resume_configs(tmp_path / "run", {})
    assert fit(train, data, resume=True)["step"] == 2
    assert set(data_fingerprints(data)) == {str(folder.resolve())}

"""Every synthesis mode's output, byte for byte, against hashes recorded before the
renovation of issue 21 (one run engine, one realism spec, modes as plug-ins).

Each case runs a mode on a fixed small corpus and seed and hashes every dataset of
every shard it writes (the pixel arrays, the kernels and each recorded parameter),
in shard and name order.  A change of any byte of any mode's output fails here.
Should a mode's output ever change on purpose, the new hash is printed by the
failure; record it with the reason in the commit.
"""
import hashlib
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_objects import write_annotations
from test_video import pan_frames, texture, write_frames

from cli import blurgen

SMALL = ["--kernel-size", "15", "--iters", "200", "--max-len", "10", "--crop", "32", "--workers", "1",
         "--shard-size", "4", "--crops-per-image", "2", "--seed", "5"]


def corpus(folder: Path, n: int = 3, size=(96, 112)) -> Path:
    """n smooth random colour photos, PNG (lossless: the bytes do not depend on a JPEG
    encoder), named as the annotations of test_objects expect; a bright patch in each so
    that --saturate has highlights to boost."""
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True)
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        image = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        image[10:30, 40:60] = 255
        cv2.imwrite(str(folder / f"img{i:03d}.png"), image)
    return folder


def dataset_names(f: h5py.File) -> list[str]:
    """Every dataset's path in ``f``, sorted (whole images, ``--full``, sit in groups)."""
    names = []
    f.visititems(lambda name, node: names.append(name) if isinstance(node, h5py.Dataset) else None)
    return sorted(names)


def folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    shards = sorted(folder.glob("shard-*.h5"))
    made = sum(entry["count"] for entry in json.loads((folder / "manifest.json").read_text())["shards"].values())
    assert made >= 3, f"{folder}: {made} samples"  # every case must make some
    for path in shards:
        with h5py.File(path) as f:
            for name in dataset_names(f):
                value = f[name][()]
                digest.update(f"{path.name}/{name}:{value.dtype}:{value.shape}\n".encode())
                if value.dtype.kind == "O":
                    digest.update(json.dumps([v.decode() if isinstance(v, bytes) else str(v)
                                              for v in value.ravel()]).encode())
                else:
                    digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


#: (case, extra arguments) -> sha256, recorded on the code before issue 21's first commit.
CASES = {
    "plain": [],
    "bank": ["--kernels", "{bank}"],
    "realism": ["--linear", "--saturate", "--noise", "--jpeg-quality", "60-90"],
    "camera-a7r3-jpeg": ["--camera", "a7r3", "--jpeg-quality", "70-90"],
    "camera-a7r3-rsblur-jpeg": ["--camera", "a7r3-rsblur", "--jpeg-quality", "70-90"],
    "shake": ["--shake", "nonuniform", "--max-angle", "0.6", "--max-shift", "2"],
    "shake-camera": ["--shake", "nonuniform", "--max-angle", "0.6", "--camera", "a7r3"],
    "objects": ["--objects", "{annotations}", "--object-len", "12", "--linear", "--noise"],
    "full": ["--full"],
    "full-upscale": ["--crop", "128", "--small", "upscale"],
    "sharp-only": ["--sharp-only"],
}

RECORDED = {
    "average": "cab4c1bffc970f88d96eb13efa13c7c978734766f367acbfc49a01b91114f777",
    "average-camera": "2a1b4299663aa3254a6fa530132dada5b0d4a895c8d0018b04c0b3ba8ea7900a",
    "bank": "557b5ddae99c89df44747526cf7eea57af699b37684661f65e57ec4c3ef91dae",
    "camera-a7r3-jpeg": "a11ff22c0785c378df3359a17e04747aa8442b4116be2f08053731b37c3c30b3",
    "camera-a7r3-rsblur-jpeg": "282e73d956e751e1346571ea816f50bfc12ab0496cdd46da7a2d7e154697dad8",
    "full": "2510ba6bd7c0f5bda8bbdf3a2b0e1633d58ffa9b29bbe9cd80d8b706f1e3dd7f",
    "full-upscale": "ff014584050c5566b45c083fb815136f46bce5219294d6867e237d057f90f45a",
    "objects": "a7091ad03fb5b27ca744619dfc6ac2cf644fc51f358579e6e0663a345ac76a8c",
    "plain": "59df2d7c869d2aa0c4f4627d64900e6a51f2d9f37064b473730c8e8559204e5f",
    "realism": "8e588a660db0c2443eddb436a3782918df073a5578ba630e3f939e0f407eabe2",
    "shake": "beb536fce339bfe6d4bbd57043cc102a315a537fdd3d3418729d2a2271fa708a",
    "shake-camera": "8ab4bca19d7ceaa071a6834eaace991d0f5f81ce32b500d4ce6d1c95ae955cc4",
    "sharp-only": "4586f3dd1cbdba218c701dbb8a57b063597627e07678cbe13a6cd3277f573c7f",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hashes")
    src = corpus(root / "src")
    bank = root / "bank.h5"
    made = CliRunner().invoke(blurgen, ["make-kernels", "--out", str(bank), "-n", "8", "--size", "15",
                                        "--iters", "200", "--max-len", "10", "--seed", "3"], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    return {"root": root, "src": src, "bank": bank, "annotations": write_annotations(root / "ann.json", src)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mode_writes_the_bytes_it_wrote_before(inputs, case):
    out = inputs["root"] / case
    extra = [a.format(**inputs) for a in CASES[case]]
    res = CliRunner().invoke(blurgen, ["synthesize", "--src", str(inputs["src"]), "--out", str(out), *SMALL, *extra],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    got = folder_hash(out)
    assert got == RECORDED.get(case), f"{case}: the output changed"


@pytest.mark.parametrize("case", ["average", "average-camera"])
def test_average_writes_the_bytes_it_wrote_before(tmp_path, case):
    src = tmp_path / "clips"
    for c in range(2):
        write_frames(src / f"clip{c}", pan_frames(texture(32, 72, seed=c), 18, width=36, step=1))
    out = tmp_path / "out"
    res = CliRunner().invoke(blurgen, ["average", "--src", str(src), "--out", str(out), "--frames", "3-7",
                                       "--crop", "24", "--windows-per-clip", "2", "--crops-per-window", "2",
                                       "--interpolate", "1", "--workers", "1", "--shard-size", "3", "--seed", "2",
                                       *(["--camera", "a7r3"] if case == "average-camera" else [])],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    got = folder_hash(out)
    assert got == RECORDED.get(case), f"{case}: the output changed"

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


def with_zero_setting(tmp_path: Path, base: list, zero: list) -> list[tuple[dict, dict, dict]]:
    """``synthesize`` the corpus with ``base`` options, then with ``base + zero`` (a new setting
    at zero: ``--defocus 0``), and assert that both hold the same shards and that every dataset
    of the first is byte-identical in the second.  Returns per shard (the datasets only the
    second has, {name: array}; the first's and the second's manifest arguments)."""
    src = corpus(tmp_path / "src")
    out = []
    for name, options in (("plain", base), ("zero", base + zero)):
        result = CliRunner().invoke(blurgen, ["synthesize", "--src", str(src), "--out", str(tmp_path / name),
                                              *SMALL, *options], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out.append(tmp_path / name)
    plain, zero_out = out
    names = sorted(p.name for p in plain.glob("shard-*.h5"))
    assert names == sorted(p.name for p in zero_out.glob("shard-*.h5")) and names
    shards = []
    for name in names:
        with h5py.File(plain / name) as a, h5py.File(zero_out / name) as b:
            for key in a:
                assert np.array_equal(a[key][()], b[key][()]), (name, key)
            shards.append(({key: b[key][()] for key in set(b) - set(a)},
                           json.loads(a.attrs["arguments"]), json.loads(b.attrs["arguments"])))
    return shards


def dataset_names(f: h5py.File) -> list[str]:
    """Every dataset's path in ``f``, sorted (whole images, ``--full``, sit in groups)."""
    names = []
    f.visititems(lambda name, node: names.append(name) if isinstance(node, h5py.Dataset) else None)
    return sorted(names)


def folder_hash(folder: Path) -> str:
    """sha256 of every dataset and attribute of every shard in ``folder`` (the attributes'
    JSON as written, so their key order counts: it decides the file's bytes and so its
    checksum; the test's own folder replaced by ``ROOT``)."""
    root = str(folder.parent.resolve())
    digest = hashlib.sha256()
    shards = sorted(folder.glob("shard-*.h5"))
    made = sum(entry["count"] for entry in json.loads((folder / "manifest.json").read_text())["shards"].values())
    assert made >= 3, f"{folder}: {made} samples"  # every case must make some
    for path in shards:
        with h5py.File(path) as f:
            for key in sorted(f.attrs):
                value = f.attrs[key]
                text = value.replace(root, "ROOT") if isinstance(value, str) else repr(value)
                digest.update(f"{path.name}@{key}={text}\n".encode())
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
    "average": "4cf56f86cc2e337c6375a9f22905136db30cd39cda663b0153b5849e33f62f01",
    "average-camera": "8fcc7990f528d731c372142f00a744512a9f384207068f7a713fff66313ac854",
    "bank": "6a5d1f45c173d42cc6a67533ed74fe9aea1f5065fa5eff72bbabd96156dff759",
    "camera-a7r3-jpeg": "0543595762f1cf8a24d51f3d52f57afe69f1cb3c8b9200ca1ef7213c8958a103",
    "camera-a7r3-rsblur-jpeg": "4bb0f07bcad93b0528e961dda40cdeab2a0b66c4d906692a8d62feebca5ae4d5",
    "full": "9cd57ceef3a70b1dc486efe0b2b01b624e368d56dd152b16f111c6c13c24c897",
    "full-upscale": "a66c25897cb161ef3e8cb1bea51c8d696acf6060bac5e54d6ab769981654921b",
    "objects": "38ca2ec33ab1379d6003d8d0188b3b6cc34e304c0bd3ed76c5ffd1c8fe812afc",
    "plain": "eea8d855c15e537d706db258e8f3824ef63d5be8ce6719559172bda6dd9caff8",
    "realism": "6ffc96ee84facc74fa7a07273bf3e7a0e2c8583502b079c6b9a05a7903f74742",
    "shake": "a6de36e36c15fece353c0adc183032e4b61aab85154668c8c55563c070832368",
    "shake-camera": "1117b3f13a19902e52730ffa683bc8f524a27afe3ddbfa17c810d34a44a3ce08",
    "sharp-only": "f980e0b17d7e9ac003781161836f507616de850be6e55d78e16ce4b66a6656f3",
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

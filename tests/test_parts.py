"""Many machines: `--part i/n` from a Slurm job array, and `verify` checking that every part is there
(issue 13, item 4)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from blurgen import shards
from cli import blurgen

ROOT = Path(__file__).resolve().parents[1]
SMALL = "--kernel-size 15 --iters 200 --max-len 10 --crop 32 --workers 1 --shard-size 1"


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def write_photos(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img{i}.png"), cv2.resize(small, (64, 64), interpolation=cv2.INTER_CUBIC))
    return folder


def array_task(task: int, count: int, src: Path, out: Path) -> None:
    """One task of a Slurm job array: the documented `--part` expression, expanded by bash
    from the variables Slurm sets."""
    line = (f'"$PY" -c "from cli import blurgen; blurgen()" synthesize --src {src} --out {out} {SMALL} '
            '--part $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT')
    env = dict(os.environ, PY=sys.executable, SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT=str(count))
    subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, check=True, capture_output=True)


def test_the_documented_sbatch_line_maps_array_tasks_onto_parts():
    doc = (ROOT / "docs" / "shards.md").read_text()
    script = re.search(r"```sh\n(#!/bin/bash\n#SBATCH --array=0-15.*?)```", doc, re.S)
    assert script and "--part $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT" in script[1]


def test_verify_names_the_missing_part_and_fails(tmp_path):
    src, out = write_photos(tmp_path / "src", 6), tmp_path / "out"
    for task in (0, 2):
        array_task(task, 3, src, out)
    assert sorted(p.name for p in out.glob("manifest*")) == ["manifest.part-0-of-3.json", "manifest.part-2-of-3.json"]
    res = run("verify", out)
    assert res.exit_code == 1, res.output
    assert "INCOMPLETE: part 1/3 missing (no manifest.part-1-of-3.json" in res.output
    assert "part 0/3" not in res.output and "part 2/3" not in res.output
    assert "the 4 shards built are OK, but the data set is incomplete" in res.output
    res = run("verify", out, "--partial")
    assert res.exit_code == 0 and "note: part 1/3 missing" in res.output and "4 shards OK" in res.output
    # An unfinished part (stopped before its last shard) is named too.
    name = out / "manifest.part-2-of-3.json"
    manifest = json.loads(name.read_text())
    del manifest["shards"]["shard-00005.h5"]
    name.write_text(json.dumps(manifest))
    res = run("verify", out)
    assert res.exit_code == 1
    assert "INCOMPLETE: part 2/3 incomplete: 1 of its 2 planned shards not built" in res.output
    # The missing task runs, the stopped one is run again: complete.
    array_task(1, 3, src, out)
    array_task(2, 3, src, out)
    res = run("verify", out)
    assert res.exit_code == 0 and "6 shards OK" in res.output and "INCOMPLETE" not in res.output
    assert [i.path.name for i in shards.find_shards(out)] == [shards.shard_name(s) for s in range(6)]

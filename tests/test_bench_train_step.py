"""bench/train_step.py --tiny runs the real tiny-preset step with and without the skips."""
import importlib.util
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_step_bench_times_both_generators(capsys):
    # --threads 1 sets torch's threads for the process: restore them after.
    spec = importlib.util.spec_from_file_location("train_step_bench", ROOT / "bench" / "train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--tiny", "--device", "cpu", "--threads", "1", "--rounds", "1", "--steps", "1",
                           "--warmup", "0"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "batch 6, 80x80" in out
    times = [float(t) for t in re.findall(r"(\d+\.\d) ms/step", out)]
    assert len(times) == 2 and all(t > 0 for t in times)
    ratio = float(re.search(r"cost of the skips: (\d+\.\d+)x", out).group(1))
    assert abs(ratio - times[1] / times[0]) < 0.01

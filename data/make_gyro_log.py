"""Write the small example gyroscope log docs/modes.md uses (data/gyro-example.csv): SYNTHETIC.

    python data/make_gyro_log.py [--out data/gyro-example.csv] [--seed 0]

Not a recording: a hand-held phone's angular velocity made up from a slow sway
(1-2 Hz, 0.15 rad/s about the phone's x and y axes, 0.05 about z), a
physiological tremor (8-12 Hz, 0.04 rad/s) and sensor noise (0.004 rad/s), at
200 Hz for 2.5 s, with 0.1 s of samples missing after 1.2 s (a logger's stall:
the log's two gap-free stretches).  Columns ``time,gx,gy,gz``: seconds and
rad/s in the phone's frame (x right, y up, z out of the screen), as phone
logging apps write them.  Deterministic for a given --seed.
"""
import argparse
from pathlib import Path

import numpy as np

RATE, SECONDS, GAP = 200, 2.5, (1.2, 1.3)


def make_log(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(t (n,) s, omega (n, 3) rad/s) of the made-up hand motion (module doc)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * SECONDS)) / RATE
    t = t[(t < GAP[0]) | (t >= GAP[1])]
    omega = np.zeros((len(t), 3))
    for axis, sway in enumerate((0.15, 0.15, 0.05)):
        for amplitude, (lo, hi) in ((sway, (1.0, 2.0)), (0.04, (8.0, 12.0))):
            f, phase = rng.uniform(lo, hi), rng.uniform(0, 2 * np.pi)
            omega[:, axis] += amplitude * np.sin(2 * np.pi * f * t + phase)
    omega += rng.normal(0, 0.004, omega.shape)
    return t, omega


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).with_name("gyro-example.csv")))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t, omega = make_log(args.seed)
    lines = ["# SYNTHETIC example log made by data/make_gyro_log.py (not a recording); phone frame, rad/s",
             "time,gx,gy,gz"]
    lines += [f"{ti:.3f},{wx:.5f},{wy:.5f},{wz:.5f}" for ti, (wx, wy, wz) in zip(t, omega)]
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

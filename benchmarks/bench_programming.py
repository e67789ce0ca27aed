"""Speed of pulse-level programming: pulses per second through a RADAR write of many cells.

    python benchmarks/bench_programming.py [--cells 1000000] [--threads 2]

Prints, for the shipped RADAR pulse model:

* one SET pulse on every cell (``CellArray.apply_pulse``): the raw pulse rate;
* a RADAR write of every cell to the 107-117 uS level (8510-9310 ohm) from its fresh state:
  pulses applied per second of the whole write (verify reads, scheme bookkeeping included);
* in the same process, the cycling model's write-verify (``write_verify`` scheme, voltage
  pulses through ``CellArray.apply_voltage``) on the same number of cells, as the baseline.

Aim (issue 11): >= 1M pulses/s for 1M cells on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.device import DeviceModel  # noqa: E402
from pyaimc.device.schemes import get_scheme, window_conductances  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--threads", type=int, default=2, help="cell-array blocks run in parallel")
    p.add_argument("--model", default="radar_pulse-4-24-20")
    p.add_argument("--baseline-cells", type=int, default=100_000,
                   help="cells of the cycling-model write-verify baseline")
    args = p.parse_args(argv)
    model = DeviceModel.load(args.model)
    n = args.cells
    print(f"{n} cells, {args.threads} threads, {os.cpu_count()} cores visible; model "
          f"{args.model} (pulse network {model.pulse_.hidden} hidden units, "
          f"{model.pulse_.head} head)")

    cells = model.cells(n, np.random.default_rng(0), n_threads=args.threads)
    t = time.perf_counter()
    cells.apply_pulse(2.0, 0.0, 2.5, 100e-9)
    dt = time.perf_counter() - t
    print(f"one SET pulse on every cell: {dt:.2f} s, {n / dt / 1e6:.2f} M pulses/s")
    cells.close()

    g_lo, g_hi = window_conductances([[8510.0, 9310.0]])
    scheme = get_scheme("radar")
    rng = np.random.default_rng(1)
    scheme.prepare(model, rng)
    cells = model.cells(n, np.random.default_rng(2), n_threads=args.threads)
    t = time.perf_counter()
    res = scheme.program(cells, g_lo[0], g_hi[0], rng)
    dt = time.perf_counter() - t
    total = int(res.pulses.sum())
    print(f"RADAR write to 8510-9310 ohm: {dt:.2f} s, {total} pulses ({res.pulses.mean():.1f} "
          f"per cell, success {res.success.mean():.2%}): {total / dt / 1e6:.2f} M pulses/s")
    cells.close()

    nb = args.baseline_cells
    base = DeviceModel.load("radar_cycling-4-24-20")
    wv = get_scheme("write_verify")
    wv.prepare(base, np.random.default_rng(3))
    bc = base.cells(nb, np.random.default_rng(4), n_threads=args.threads)
    target = 0.5 * (g_lo[0] + g_hi[0])
    t = time.perf_counter()
    bres = wv.program(bc, g_lo[0], g_hi[0], np.random.default_rng(5))
    bdt = time.perf_counter() - t
    btotal = int(bres.pulses.sum())
    print(f"baseline, cycling model write-verify to {target * 1e6:.0f} uS on {nb} cells: "
          f"{bdt:.2f} s, {btotal} pulses: {btotal / bdt / 1e6:.2f} M pulses/s")
    print(f"ratio pulse-model RADAR / cycling write-verify, pulses per second: "
          f"{(total / dt) / (btotal / bdt):.2f}")
    bc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

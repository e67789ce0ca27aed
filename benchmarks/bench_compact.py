"""Time per device-cycle of the compact model in ngspice against the Python twin.

Prints, for triangular sweeps (0 -> -1.5 -> +1.5 -> 0 V, 200 points, 1 us per point) of replayed
draws of a fitted model: ngspice's wall time per device-cycle for a single cell and for 64
independent cells in one netlist, the twin's time for the same work (same draws, float64,
sample by sample), and their ratio.

Usage: python benchmarks/bench_compact.py [--model calibration_data/models/synaptogen_ref.json]
       [--cycles 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pyaimc.compact.common import draw_devices
from pyaimc.compact.simulate import ngspice_sweeps, twin_sweeps
from pyaimc.device import DeviceModel, triangular_sweep

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "calibration_data/models/synaptogen_ref.json"))
    p.add_argument("--cycles", type=int, default=5)
    args = p.parse_args(argv)
    model = DeviceModel.load(args.model)
    u = triangular_sweep(points=200)
    n_cyc = args.cycles
    print(f"model {Path(args.model).name}; {n_cyc} sweep cycles of {len(u)} points per device")
    print(f"{'cells':>6}{'ngspice s':>12}{'per dev-cycle':>15}{'twin s':>10}{'per dev-cycle':>15}"
          f"{'ngspice/twin':>14}")
    for n_dev in (1, 64):
        table = draw_devices(model, n_dev, n_cyc + 1, seed=1)
        run = ngspice_sweeps(model, table, u, n_cyc, timeout=1800)
        t0 = time.perf_counter()
        twin_sweeps(model, table, u, n_cyc)
        t_twin = time.perf_counter() - t0
        work = n_dev * n_cyc
        print(f"{n_dev:>6}{run.seconds:>12.2f}{1e3 * run.seconds / work:>12.1f} ms"
              f"{t_twin:>10.3f}{1e3 * t_twin / work:>12.2f} ms{run.seconds / t_twin:>14.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

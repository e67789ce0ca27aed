"""One speed table of the circuit engines: fast solver, VACASK, ngspice (shared library and batch).

ngspice's shared library (PySpice) runs in a persistent worker process, the default transport
(``worker``); the small-netlist case also times it in this process (``shared``).

Prints, on the same circuits:

1. crossbar operating points, 1R (linear cells, 1 ohm wires) 16..256 and 1T1R (level-1 access
   transistors) 16..64: seconds per input vector of each engine (fast and VACASK solve a batch of
   ``--batch`` vectors in one call, ngspice runs one netlist per vector), and each engine's
   largest difference from the fast solver relative to the largest current;
2. many small netlists, the S4D step check's case (``--small`` netlists of a 16x8 tile, each a
   different circuit): seconds per netlist, ngspice shared against batch (and VACASK, one
   process per netlist);
3. device-cycle sweeps of the ReRAM model (8 devices x 20 cycles, 200 points per cycle): the
   Python twin, VACASK running the Verilog-A module (OpenVAF build excluded: cached), ngspice
   running the B-source library (shared and batch): milliseconds per device-cycle.

Ratios are against the fast solver (1) or the twin (3) measured in the same process.
Usage: python benchmarks/bench_engines.py [--sizes 16 32 64 128 256] [--sizes-1t1r 16 32 64]
       [--ngspice-max 64] [--batch 16] [--small 100]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def crossbars(sizes, sizes_1t1r, ngspice_max, batch, rng):
    from pyaimc.circuit import AccessTransistor, Crossbar, LinearCells, simulate

    print(f"1. crossbar operating points: seconds per input vector (fast, VACASK: batch of "
          f"{batch}; ngspice: one netlist per vector, {min(batch, 2)} vectors); in brackets the "
          f"largest difference from fast / largest current")
    head = (f"{'circuit':>12}{'fast':>12}{'VACASK':>22}{'ngspice library':>24}"
            f"{'ngspice batch':>24}{'VACASK/fast':>13}")
    print(head)
    # warm-up, untimed: numba's kernels compile, the ngspice library loads, OSDI builds cache
    for kind in ("1R", "1T1R"):
        warm = Crossbar(LinearCells(np.full((4, 4), 1e-5)), r_row=1.0, r_col=1.0,
                        access=AccessTransistor() if kind == "1T1R" else None)
        for engine in ("fast", "vacask", "ngspice"):
            simulate(warm, np.full((2, 4), 0.1), engine)
    for kind, sizes_k in (("1R", sizes), ("1T1R", sizes_1t1r)):
        for n in sizes_k:
            g = 1.0 / 10 ** rng.uniform(4, 6, (n, n))
            access = AccessTransistor(v_gate=1.8) if kind == "1T1R" else None
            xbar = Crossbar(LinearCells(g), r_row=1.0, r_col=1.0, access=access)
            v = rng.uniform(0, 0.2, (batch, n))
            simulate(xbar, v, "fast")          # untimed: the solver's kernels for this size
            t_fast, ref = _time(simulate, xbar, v, "fast")
            scale = np.max(np.abs(ref))
            t_vac, got = _time(simulate, xbar, v, "vacask")
            row = (f"{kind + f' {n}x{n}':>12}{t_fast / batch:>12.2e}"
                   f"{t_vac / batch:>12.2e} [{np.max(np.abs(got - ref)) / scale:.0e}]")
            for transport in ("worker", "batch"):
                if n > ngspice_max:
                    row += f"{'not run':>24}"
                    continue
                os.environ["PYAIMC_NGSPICE_TRANSPORT"] = transport
                k = min(batch, 2)
                t_ng, got = _time(simulate, xbar, v[:k], "ngspice")
                row += (f"{t_ng / k:>12.2e} [{np.max(np.abs(got - ref[:k])) / scale:.0e}]"
                        .rjust(24))
            os.environ.pop("PYAIMC_NGSPICE_TRANSPORT", None)
            print(row + f"{t_vac / t_fast:>13.1f}", flush=True)


def small_netlists(count, rng):
    from pyaimc.circuit import Crossbar, LinearCells, build_netlist, readout_current_names
    from pyaimc.spice.ngspice import run_netlist
    from pyaimc.circuit.vacask_netlist import simulate_vacask

    print(f"\n2. many small netlists (the S4D step check's case): {count} different 16x8 tiles, "
          f"one operating point each; seconds per netlist")
    tiles = [Crossbar(LinearCells(rng.uniform(1e-6, 1e-4, (16, 8))), r_row=1.0, r_col=1.0)
             for _ in range(count)]
    volts = rng.uniform(0, 0.2, (count, 16))
    times = {}
    for transport in ("worker", "shared"):                      # load the library, untimed
        run_netlist(build_netlist(tiles[0], volts[0]), transport=transport)
    for transport in ("worker", "shared", "batch"):
        start = time.perf_counter()
        for xbar, v in zip(tiles, volts):
            run_netlist(build_netlist(xbar, v, save=readout_current_names(xbar)),
                        transport=transport)
        times[transport] = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for xbar, v in zip(tiles, volts):
        simulate_vacask(xbar, v)
    times["vacask"] = (time.perf_counter() - start) / count
    print(f"  ngspice library in a worker {times['worker']:.2e}, in this process "
          f"{times['shared']:.2e}, batch {times['batch']:.2e} "
          f"({times['batch'] / times['worker']:.1f}x the worker), VACASK {times['vacask']:.2e} (a process per netlist)", flush=True)


def sweeps(model_path):
    from pyaimc.compact.common import draw_devices
    from pyaimc.compact.simulate import ngspice_sweeps, twin_sweeps, vacask_sweeps
    from pyaimc.device import DeviceModel, triangular_sweep

    model = DeviceModel.load(model_path)
    n_dev, n_cyc = 8, 20
    table = draw_devices(model, n_dev, n_cyc + 1, seed=3)
    u = triangular_sweep(points=200)
    work = n_dev * n_cyc
    print(f"\n3. device-cycle sweeps, {n_dev} devices x {n_cyc} cycles of {len(u)} points "
          f"({Path(model_path).name}): ms per device-cycle")
    t_twin, _ = _time(twin_sweeps, model, table, u, n_cyc)
    vacask_sweeps(model, table, u, n_cyc)                   # the OpenVAF build, then cached
    t_vac, run = _time(vacask_sweeps, model, table, u, n_cyc)
    line = (f"  twin {1e3 * t_twin / work:.2f}, VACASK {1e3 * t_vac / work:.2f} "
            f"(simulator alone {1e3 * run.seconds / work:.2f}, {run.n_timepoints} time points)")
    for transport in ("worker", "batch"):
        t_ng, run = _time(ngspice_sweeps, model, table, u, n_cyc, transport=transport,
                          timeout=3600)
        line += f", ngspice {transport} {1e3 * t_ng / work:.2f}"
    print(line + f"; VACASK/twin {t_vac / t_twin:.1f}, ngspice batch/VACASK {t_ng / t_vac:.0f}",
          flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--sizes-1t1r", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--ngspice-max", type=int, default=64,
                   help="largest crossbar run in ngspice (128x128 takes minutes per vector)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--small", type=int, default=100)
    p.add_argument("--model", default=str(ROOT / "calibration_data/models/synaptogen_ref.json"))
    p.add_argument("--skip", nargs="*", default=[], choices=["crossbars", "small", "sweeps"])
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    if "crossbars" not in args.skip:
        crossbars(args.sizes, args.sizes_1t1r, args.ngspice_max, args.batch, rng)
    if "small" not in args.skip:
        small_netlists(args.small, rng)
    if "sweeps" not in args.skip:
        sweeps(args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

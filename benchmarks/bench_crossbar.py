"""Crossbar solver speed: ngspice against the fast solver, and the fast solver alone at scale.

Prints two tables (all figures measured in this process):

1. For N x N 1R crossbars with wires (N = 16, 32, 64 and 128 by default): ngspice time for one
   operating point, the fast solver's time on the same circuit (set-up plus one input vector,
   best of several), a sparse LU solve for reference, the ratio ngspice / fast and the largest
   disagreement between the two engines (relative to the largest column current).
2. The fast solver alone at 256, 512 and 1024 at two IR-drop levels (about 25 % and 80 % of the
   ideal current lost in the wires): set-up time, time for one input vector, time for a batch
   (wall clock and this process's CPU time: on a shared machine the wall clock also counts
   waiting for a core), CG iterations and the peak memory of numpy arrays (tracemalloc) for one
   vector and for the batch.
3. Agreement with ngspice for the other circuit kinds (polynomial cells, 1T1R, drivers with DAC
   and source resistance into TIAs with differential pairs) at 16, 32 and 64.

Usage::

    python benchmarks/bench_crossbar.py                 # everything (about 5-10 minutes)
    python benchmarks/bench_crossbar.py --quick         # 16, 32 and 256 only
    python benchmarks/bench_crossbar.py --tables 2 --big 1024   # one table, one size
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyaimc.circuit.cells import LinearCells, PolynomialCells  # noqa: E402
from pyaimc.circuit.crossbar import (AccessTransistor, Crossbar, RowDriver, TIAReadout,  # noqa: E402
                                     one_r)
from pyaimc.spice.ngspice import NgspiceTimeoutError  # noqa: E402
from pyaimc.circuit.simulate import simulate_ngspice  # noqa: E402
from pyaimc.circuit.solver import CrossbarSolver  # noqa: E402

V_MAX = 0.2  # volt
G_RANGE = (1e-6, 1e-4)  # siemens: 10 kohm .. 1 Mohm
MEMORY_BATCH = 8  # vectors in the second memory measurement of table 2


def circuit(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.uniform(*G_RANGE, (n, n)), rng.uniform(0.0, V_MAX, n)


def ir_drop_loss(g: np.ndarray, r_wire: float) -> float:
    """Fraction of the ideal current lost in the wires with every row at V_MAX."""
    v = np.full(g.shape[0], V_MAX)
    currents = CrossbarSolver(one_r(g, r_wire)).solve(v).column_currents
    return 1.0 - currents.sum() / (v @ g).sum()


def wire_for_loss(g: np.ndarray, loss: float) -> float:
    """Wire resistance (ohm) giving an IR-drop loss close to ``loss`` (bisection in log r)."""
    lo, hi = -6.0, 4.0
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        if ir_drop_loss(g, 10 ** mid) < loss:
            lo = mid
        else:
            hi = mid
    return float(10 ** (0.5 * (lo + hi)))


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def table_ngspice(sizes, r_wire, timeout):
    print(f"\n1) ngspice vs fast solver, N x N 1R crossbar, r_wire = {r_wire:g} ohm per segment, "
          f"G uniform in [{G_RANGE[0]:g}, {G_RANGE[1]:g}] S, inputs uniform in [0, {V_MAX}] V")
    print("   fast = set-up + one input vector (best of 5); LU = scipy sparse LU of the same "
          "nodal system (factor + solve)")
    header = (f"{'N':>5} {'IR loss':>8} {'ngspice s':>10} {'fast s':>9} {'LU s':>8} "
              f"{'ngspice/fast':>13} {'max rel diff':>13}")
    print(header)
    print("-" * len(header))
    for n in sizes:
        g, v = circuit(n)
        xbar = one_r(g, r_wire)
        fast_time = best_time(lambda: CrossbarSolver(xbar).solve(v), 5)
        lu_time = best_time(lambda: CrossbarSolver(xbar, method="direct").solve(v), 3)
        fast = CrossbarSolver(xbar).solve(v).column_currents[0]
        loss = ir_drop_loss(g, r_wire)
        start = time.perf_counter()
        try:
            ngspice = simulate_ngspice(xbar, v, timeout=timeout)[0]
        except NgspiceTimeoutError:
            print(f"{n:>5} {loss:>8.1%} {'> ' + format(timeout, 'g'):>10} {fast_time:>9.2e} "
                  f"{lu_time:>8.3f} {'-':>13} {'-':>13}   (ngspice stopped at the time limit)")
            continue
        ng_time = time.perf_counter() - start
        diff = np.max(np.abs(fast - ngspice)) / np.max(np.abs(ngspice))
        print(f"{n:>5} {loss:>8.1%} {ng_time:>10.3f} {fast_time:>9.2e} {lu_time:>8.3f} "
              f"{ng_time / fast_time:>13.0f} {diff:>13.1e}", flush=True)


def table_scale(sizes, losses, batch):
    print(f"\n2) fast solver alone (line-preconditioned CG), rtol = 1e-10; batch of {batch} "
          f"input vectors; peak = largest numpy memory in use (tracemalloc), one vector / "
          f"{MEMORY_BATCH} vectors")
    header = (f"{'N':>5} {'r_wire ohm':>11} {'IR loss':>8} {'set-up s':>9} {'1 vector s':>11} "
              f"{'batch s':>8} {'batch cpu s':>12} {'per vector s':>13} {'CG it.':>7} "
              f"{'peak MB':>12}")
    print(header)
    print("-" * len(header))
    for n in sizes:
        g, _ = circuit(n)
        rng = np.random.default_rng(1)
        v_batch = rng.uniform(0.0, V_MAX, (batch, n))
        for loss in losses:
            r_wire = wire_for_loss(g, loss)
            actual = ir_drop_loss(g, r_wire)
            start = time.perf_counter()
            solver = CrossbarSolver(one_r(g, r_wire)).prepare()
            setup = time.perf_counter() - start
            start = time.perf_counter()
            one = solver.solve(v_batch[0])
            single = time.perf_counter() - start
            start, cpu = time.perf_counter(), time.process_time()
            many = solver.solve(v_batch)
            batch_time, batch_cpu = time.perf_counter() - start, time.process_time() - cpu
            # Memory apart from the timings: tracemalloc slows every Python allocation.
            peaks = []
            for vectors in (v_batch[:1], v_batch[:MEMORY_BATCH]):
                tracemalloc.start()
                CrossbarSolver(one_r(g, r_wire)).solve(vectors)
                peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
                tracemalloc.stop()
            iterations = f"{np.median(many.stats['cg_iterations']):.0f}"
            assert np.allclose(many.column_currents[0], one.column_currents[0], rtol=1e-8)
            print(f"{n:>5} {r_wire:>11.3g} {actual:>8.1%} {setup:>9.3f} {single:>11.3f} "
                  f"{batch_time:>8.2f} {batch_cpu:>12.2f} {batch_time / batch:>13.3f} "
                  f"{iterations:>7} {f'{peaks[0]:.0f} / {peaks[1]:.0f}':>12}", flush=True)


def kinds(n: int, r_wire: float):
    """The circuit kinds of table 3 at size n."""
    g, v = circuit(n, seed=n)
    a = np.zeros((n, n, 4))
    a[..., 0] = g
    a[..., 1] = 0.05 * g / V_MAX  # even term: asymmetric I-V
    a[..., 2] = 0.2 * g / V_MAX**2  # cubic term: +20 % at V_MAX
    a[..., 3] = 0.05 * g / V_MAX**3
    poly = PolynomialCells(a)
    wires = dict(r_row=r_wire, r_col=r_wire)
    v_signed = v - V_MAX / 2
    return {
        "1R polynomial (deg 4)": (Crossbar(poly, **wires), v_signed),
        "1T1R linear": (Crossbar(LinearCells(g), access=AccessTransistor(), **wires), v_signed),
        "1T1R polynomial": (Crossbar(poly, access=AccessTransistor(), **wires), v_signed),
        "DAC+R_s, TIA, diff. pairs": (
            Crossbar(poly, driver=RowDriver(r_source=100.0, dac_bits=5, v_max=V_MAX),
                     readout=TIAReadout(r_feedback=20e3, gain=2e3), differential=True, **wires),
            v_signed),
    }


def table_kinds(sizes, r_wire, timeout):
    print(f"\n3) agreement with ngspice for other circuit kinds, r_wire = {r_wire:g} ohm, inputs "
          f"in [-{V_MAX / 2}, {V_MAX / 2}] V; fast = set-up + one vector")
    header = f"{'kind':<27} {'N':>4} {'ngspice s':>10} {'fast s':>9} {'method':>7} {'max rel diff':>13}"
    print(header)
    print("-" * len(header))
    for n in sizes:
        for name, (xbar, v) in kinds(n, r_wire).items():
            start = time.perf_counter()
            sol = CrossbarSolver(xbar).solve(v)
            fast_time = time.perf_counter() - start
            start = time.perf_counter()
            try:
                ngspice = simulate_ngspice(xbar, v, timeout=timeout)[0]
            except NgspiceTimeoutError:
                print(f"{name:<27} {n:>4} {'> ' + format(timeout, 'g'):>10}")
                continue
            ng_time = time.perf_counter() - start
            fast = sol.column_currents[0]
            diff = np.max(np.abs(fast - ngspice)) / np.max(np.abs(ngspice))
            print(f"{name:<27} {n:>4} {ng_time:>10.3f} {fast_time:>9.4f} "
                  f"{sol.method.split()[0]:>7} {diff:>13.1e}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128],
                        help="sizes for the ngspice comparison")
    parser.add_argument("--big", type=int, nargs="+", default=[256, 512, 1024],
                        help="sizes for the fast solver alone")
    parser.add_argument("--r-wire", type=float, default=1.0, help="wire resistance, table 1")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--ngspice-timeout", type=float, default=600.0,
                        help="time limit of one ngspice run, second")
    parser.add_argument("--kinds", type=int, nargs="*", default=[16, 32, 64],
                        help="sizes for the agreement of other circuit kinds (table 3)")
    parser.add_argument("--quick", action="store_true", help="16, 32 and 256 only")
    parser.add_argument("--tables", type=int, nargs="+", choices=(1, 2, 3), default=[1, 2, 3],
                        help="which tables to print (default all)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.big, args.kinds = [16, 32], [256], [16]
    print(f"pyaimc crossbar benchmark, numpy {np.__version__}")
    if 1 in args.tables:
        table_ngspice(args.sizes, args.r_wire, args.ngspice_timeout)
    if 2 in args.tables:
        table_scale(args.big, (0.25, 0.80), args.batch)
    if 3 in args.tables:
        table_kinds(args.kinds, args.r_wire, args.ngspice_timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

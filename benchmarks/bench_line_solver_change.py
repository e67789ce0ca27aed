"""The line solver now against an earlier commit's, in one process, on the same circuit.

Loads ``pyaimc/circuit/lines.py`` of an earlier commit from git (default: the last one before the
transpose-free solver) as a separate module, and solves the same batch with both, alternating
runs so that both see the same machine load. The earlier solver runs one vector at a time (its
solver's chunk size at 1024 x 1024), the current one in chunks of ``CHUNK_CELLS``. Prints wall
and CPU time per vector (CPU time: this process only, so less disturbed by other jobs) and the
ratios.

Usage::

    python benchmarks/bench_line_solver_change.py                       # 1024 x 1024, 80 % loss
    python benchmarks/bench_line_solver_change.py --size 512 --batch 32
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyaimc.circuit.crossbar import one_r  # noqa: E402
from pyaimc.circuit.lines import LineSolver  # noqa: E402
from pyaimc.circuit.solver import CHUNK_CELLS  # noqa: E402

#: Last commit with the transposing line solver.
BEFORE = "a388076"
#: Wire resistance (ohm) giving about 80 % IR-drop loss at 1024 x 1024 for G uniform in
#: [1, 100] uS (from benchmarks/bench_crossbar.py), scaled as 1/N**2 for other sizes.
R_WIRE_1024 = 0.134


def old_line_solver(commit: str):
    """The ``LineSolver`` class of ``pyaimc/circuit/lines.py`` at ``commit``."""
    source = subprocess.run(["git", "show", f"{commit}:pyaimc/circuit/lines.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=60).stdout
    spec = importlib.util.spec_from_loader("lines_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{commit}:pyaimc/circuit/lines.py", "exec"), module.__dict__)
    return module.LineSolver


def run(solver, v: np.ndarray, chunk: int) -> tuple[float, float, np.ndarray]:
    """Wall and CPU seconds for the batch, and the column currents."""
    start, cpu = time.perf_counter(), time.process_time()
    currents = []
    for k in range(0, len(v), chunk):
        _, _, i_cell, _ = solver.solve(v[k: k + chunk])
        currents.append(i_cell.sum(axis=1))
    return time.perf_counter() - start, time.process_time() - cpu, np.concatenate(currents)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commit", default=BEFORE, help=f"earlier commit (default {BEFORE})")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    n = args.size
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-6, 1e-4, (n, n))
    v = np.random.default_rng(1).uniform(0.0, 0.2, (args.batch, n))
    r_wire = R_WIRE_1024 * (1024 / n) ** 2
    xbar = one_r(g, r_wire)
    before, now = old_line_solver(args.commit)(xbar), LineSolver(xbar)
    before.prepare()
    now.prepare()
    chunks = {"before": max(1, (1 << 18) // (n * n)), "now": max(1, CHUNK_CELLS // (n * n))}
    times = {"before": [], "now": []}
    results = {}
    for _ in range(args.repeats):
        for name, solver in (("before", before), ("now", now)):
            wall, cpu, results[name] = run(solver, v, chunks[name])
            times[name].append((wall, cpu))
    diff = np.max(np.abs(results["now"] - results["before"])) / np.max(np.abs(results["before"]))
    print(f"line solver {args.commit} vs working tree: {n} x {n}, r_wire {r_wire:.3g} ohm, "
          f"batch of {args.batch}, best of {args.repeats} alternating runs")
    for name in ("before", "now"):
        wall, cpu = (min(t[k] for t in times[name]) for k in (0, 1))
        print(f"  {name:>6}: chunks of {chunks[name]:>3}  batch {wall:7.2f} s wall, {cpu:7.2f} s "
              f"CPU  ({1e3 * wall / args.batch:6.1f} / {1e3 * cpu / args.batch:6.1f} ms per vector)")
    best = {k: [min(t[i] for t in times[k]) for i in (0, 1)] for k in times}
    print(f"  ratio before / now: wall {best['before'][0] / best['now'][0]:.2f}, CPU "
          f"{best['before'][1] / best['now'][1]:.2f}; largest current difference {diff:.1e} "
          "(relative)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

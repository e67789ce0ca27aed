"""Throughput of the Python twin on 1 million cells: SET+RESET cycles and reads per second.

Prints, for N cells (default 1,000,000) of a fitted model:
- full SET+RESET cycles per second through ``CellArray.apply_voltage`` (a -1.5 V then a +1.6 V
  pulse; every SET cell is fully RESET and draws its next cycle),
- reads per second through ``CellArray.read`` with Johnson and shot noise,
- each as a ratio to the random-number floor: the time to draw the normal numbers that work needs
  (F per cell per cycle, 1 per cell per read), drawn the same way (same threads and generators),
- peak memory of the process and the bytes of cell state.

Usage: python benchmarks/bench_cells.py [--model calibration_data/models/synaptogen_ref.json]
       [--cells 1000000] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pyaimc.device import DeviceModel

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "calibration_data/models/synaptogen_ref.json"))
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)

    model = DeviceModel.load(args.model)
    n = args.cells
    t0 = time.perf_counter()
    cells = model.cells(n, np.random.default_rng(0), n_threads=args.threads)
    t_init = time.perf_counter() - t0
    n_blocks = len(cells._blocks)
    f = model.n_features
    u_high = model.iv_.u_full_reset + 0.1

    def cycle():
        cells.apply_voltage(-1.5)
        cells.apply_voltage(u_high)

    out = np.empty(n, cells.dtype)

    def read():
        cells.read(0.2, bandwidth=1e8, out=out)

    # the floor: the same normals, drawn by the same number of generators in the same threads
    gens = np.random.default_rng(1).spawn(n_blocks)
    sizes = [len(range(n)[s]) for s in cells._slices]
    bufs4 = [np.empty((f, m), cells.dtype) for m in sizes]
    bufs1 = [np.empty(m, cells.dtype) for m in sizes]
    pool = ThreadPoolExecutor(n_blocks)

    def floor(bufs):
        if n_blocks == 1:
            gens[0].standard_normal(out=bufs[0], dtype=cells.dtype)
        else:
            list(pool.map(lambda g, b: g.standard_normal(out=b, dtype=cells.dtype), gens, bufs))

    t_cycle = best_of(cycle, args.repeats)
    t_floor4 = best_of(lambda: floor(bufs4), args.repeats)
    t_read = best_of(read, args.repeats * 2)
    t_floor1 = best_of(lambda: floor(bufs1), args.repeats * 2)
    drawn = float(np.mean(cells.cycle))
    state_bytes = sum(a.nbytes for b in cells._blocks for a in vars(b).values()
                      if isinstance(a, np.ndarray))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)

    print(f"cells: {n:,} ({n_blocks} thread(s)), model {Path(args.model).name}, "
          f"VAR order {model.var_.order}, {f} features; set-up {t_init:.2f} s")
    print(f"{'work':<28}{'time/call':>12}{'per second':>16}{'floor':>12}{'ratio':>8}")
    print(f"{'SET+RESET cycle':<28}{t_cycle * 1e3:>10.1f}ms{n / t_cycle / 1e6:>12.2f} M/s"
          f"{t_floor4 * 1e3:>10.1f}ms{t_cycle / t_floor4:>8.2f}")
    print(f"{'read (Johnson+shot noise)':<28}{t_read * 1e3:>10.1f}ms{n / t_read / 1e6:>12.1f} M/s"
          f"{t_floor1 * 1e3:>10.1f}ms{t_read / t_floor1:>8.2f}")
    print(f"cycles drawn per cell so far: {drawn:.1f}")
    print(f"cell state: {state_bytes / 2**20:.0f} MiB ({state_bytes / n:.0f} bytes/cell); "
          f"peak process memory {peak:.0f} MiB")
    cells.close()
    pool.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

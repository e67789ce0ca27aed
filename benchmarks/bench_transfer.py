"""Held-out error of the fitted transfer model against the ideal product, over size and wire.

For each tile size and wire resistance: fit the transfer model (``fit_transfer``, fast engine,
devices from the shipped example model programmed by write-verify, polynomial cell I-V) and print
the mean IR-drop loss, the held-out relative RMS error of the fitted model, of the first-order
model (k = 1, no non-linearity) and of the ideal ``G.x``, the fitted k values and the time.

Usage::

    python benchmarks/bench_transfer.py                       # the default grid (a few minutes)
    python benchmarks/bench_transfer.py --sizes 32 --r-wires 1 2 --patterns 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyaimc.circuit.montecarlo import get_executor  # noqa: E402
from pyaimc.circuit.transfer_fit import fit_transfer  # noqa: E402
from pyaimc.device.model import DeviceModel  # noqa: E402

MODEL = ROOT / "calibration_data" / "models" / "example.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(MODEL), help="device model JSON")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--r-wires", type=float, nargs="+", default=[0.5, 2.0, 8.0])
    parser.add_argument("--patterns", type=int, default=12, help="training patterns per fit")
    parser.add_argument("--inputs", type=int, default=32, help="input vectors per pattern")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = DeviceModel.load(args.model)
    print(f"transfer-model fit, device model {Path(args.model).name}, v_max 0.2 V, "
          f"{args.patterns} training + {max(2, args.patterns // 2)} held-out patterns x "
          f"{args.inputs} inputs; errors: held-out relative RMS (normalised by the RMS current)")
    header = (f"{'N':>4} {'r_wire':>7} {'IR loss':>8} {'model':>8} {'1st order':>10} "
              f"{'ideal':>8} {'model/ideal':>12} {'k_row':>6} {'k_col':>6} {'time s':>7}")
    print(header)
    print("-" * len(header))
    with get_executor(None, args.workers) as executor:
        for n in args.sizes:
            for r_wire in args.r_wires:
                start = time.perf_counter()
                fit = fit_transfer(model, n, n, r_wire, 0.2, args.patterns,
                                   np.random.default_rng(args.seed), executor=executor,
                                   inputs_per_pattern=args.inputs)
                f = fit.fit
                print(f"{n:>4} {r_wire:>7g} {f['ir_drop_loss_mean']:>8.1%} "
                      f"{f['heldout_rel_rms_error']:>8.2%} "
                      f"{f['heldout_first_order_rel_rms_error']:>10.2%} "
                      f"{f['heldout_ideal_rel_rms_error']:>8.2%} "
                      f"{f['heldout_rel_rms_error'] / f['heldout_ideal_rel_rms_error']:>12.3f} "
                      f"{fit.k_row:>6.3f} {fit.k_col:>6.3f} {time.perf_counter() - start:>7.1f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One recurrent S4D step through ngspice netlists against the behavioral deployment tiles.

Trains the ``tiny`` preset on digits (3 epochs, seconds), then for each hardware setting runs
:func:`pyaimc.experiments.spice_step.ngspice_step_check` on one test sequence and prints the worst
product's current error (relative max and rms), the step output's error and the transfer
model's stated held-out error. Settings: no wires (linear cells, the example device's noise
model); 1 ohm wires on 16 x 16, 32 x 32 and 64 x 64 tiles with a transfer model fitted to
circuit simulations of the example device (``--patterns`` patterns), against the transfer
model, its first-order form (``k_row = k_col = 1``, same non-linearity) and the ideal product.

    python benchmarks/agreement_ngspice_step.py [--patterns 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.circuit import fit_transfer, get_executor  # noqa: E402
from pyaimc.device import DeviceModel  # noqa: E402
from pyaimc.analog.linear import AnalogConfig  # noqa: E402
from pyaimc.experiments.config import preset  # noqa: E402
from pyaimc.experiments.datasets import load_data  # noqa: E402
from pyaimc.experiments.spice_step import ngspice_step_check  # noqa: E402
from pyaimc.experiments.train import load_run, train  # noqa: E402
from pyaimc.noise import export_noise_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patterns", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(1)
    device = DeviceModel.load(ROOT / "calibration_data" / "models" / "example.json")
    cfg = preset("tiny")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, task="digits"))
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run", progress=False)
        _, model = load_run(Path(tmp) / "run")
    x = load_data(cfg.data).x_test[:1]
    print("tiny preset (16 channels, 8 states, 1 block) on digits; one step of one test sequence")
    print(f"{'hardware':40s} {'behavioral':12s} {'netlists':>8s} {'cur max':>9s} "
          f"{'cur rms':>9s} {'step out':>9s} {'stated':>8s} {'s':>5s}")

    def report(label, nm, behavioral, config=None):
        tic = time.perf_counter()
        c = ngspice_step_check(model, nm, x, seed=0, config=config)
        stated = c["transfer_heldout_rel_rms_error"]
        print(f"{label:40s} {behavioral:12s} {c['netlists']:8d} {c['current_rel_max']:9.2e} "
              f"{c['current_rel_rms_max']:9.2e} {c['output_rel_max']:9.2e} "
              f"{'' if stated is None else f'{stated:.2e}':>8s} "
              f"{time.perf_counter() - tic:5.1f}", flush=True)

    plain = export_noise_model(device, np.random.default_rng(0), rows=64, cols=64)
    report("64x64, no wires, linear cells", plain, "ideal")
    for n in (16, 32, 64):
        with get_executor(None, max_workers=1) as ex:
            tm = fit_transfer(device, n, n, r_wire=1.0, v_max=0.2, n_patterns=args.patterns,
                              rng=np.random.default_rng(0), executor=ex)
        nm = export_noise_model(device, np.random.default_rng(0), rows=n, cols=n,
                                transfer=tm.to_dict())
        k = tm.to_dict()["ir_drop"]
        label = f"{n}x{n}, 1 ohm (k_row {k['k_row']:.2f}, k_col {k['k_col']:.2f})"
        report(label, nm, "transfer")
        first = dataclasses.replace(nm, transfer=dataclasses.replace(nm.transfer, k_row=1.0,
                                                                     k_col=1.0))
        report("", first, "k = 1")
        report("", nm, "ideal", AnalogConfig(transfer=False))


if __name__ == "__main__":
    main()

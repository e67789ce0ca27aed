"""How closely AnalogLinear's tile model follows the fast crossbar solver on programmed tiles.

For square tiles of a few sizes and wire resistances: program one layer of one tile (example
device, write-verify), feed it inputs through the DAC, and compare the layer's output (no read
noise, no ADC) with the output computed from the solver's column currents on the same
programmed conductances. Prints the relative rms error of the ideal product (no transfer model)
and of the first-order IR-drop transfer model (k_row = k_col = 1), and the IR loss (how much
smaller the solver's currents are than the ideal ones).

Usage: python benchmarks/agreement_analog_solver.py [--noise NOISE.json] [--sizes 32 64 128]
       [--r-wire 0.25 0.5 1 2] [--batch 32]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from _example import example_noise_model

from pyaimc.circuit import CrossbarSolver, one_r
from pyaimc.analog import AnalogConfig, AnalogLinear, program
from pyaimc.circuit.transfer import TransferModel
from pyaimc.noise import NoiseModel, Tile



def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--noise", help="noise model JSON (default: export the example's)")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--r-wire", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.noise:
        base = NoiseModel.load(args.noise)
    else:
        base = example_noise_model()
    w = base.window
    print(f"window {w.g_min * 1e6:.1f} .. {w.g_max * 1e6:.1f} uS, "
          f"{base.programming.training_method} programming, {args.batch} input vectors uniform "
          f"in [0, 1] (post-ReLU-like)")
    print(f"{'tile':>9} {'r_wire':>7} {'IR loss':>8} {'ideal err':>10} {'1st-order err':>14}")
    gen = torch.Generator().manual_seed(0)
    for n in args.sizes:
        for r in args.r_wire:
            doc = TransferModel.first_order(n, n, r, base.dac.v_max, w.g_min, w.g_max)
            nm = dataclasses.replace(base, tile=Tile(n, n, r), transfer=doc).validate()
            cfg = dataclasses.replace(AnalogConfig.hardware(), read_noise=False, adc=False)
            torch.manual_seed(n)
            layer = AnalogLinear(n, n, noise_model=nm, config=cfg, seed=n).double()
            program(layer, np.random.default_rng(n))
            ideal = AnalogLinear(n, n, noise_model=nm,
                                 config=dataclasses.replace(cfg, transfer=False)).double()
            ideal.load_state_dict(layer.state_dict())
            layer.eval()
            ideal.eval()
            x = torch.rand(args.batch, n, generator=gen, dtype=torch.float64)
            v, x_scale = layer.input_voltages(x)
            v = v.detach().numpy()
            cur, cur_ideal = [], []
            for g in (layer.programmed_g_pos, layer.programmed_g_neg):
                gt = g.numpy().T
                cur.append(CrossbarSolver(one_r(gt, r)).solve(v).column_currents)
                cur_ideal.append(v @ gt)
            unit = (layer.programmed_scale / ((layer.g_max - layer.g_min) * layer.v_max)).numpy()
            bias = layer.bias.detach().numpy()
            ref = (cur[0] - cur[1]) * unit * x_scale.numpy() + bias
            loss = 1 - np.sum(cur[0] + cur[1]) / np.sum(cur_ideal[0] + cur_ideal[1])
            with torch.no_grad():
                errs = []
                for model in (ideal, layer):
                    y = model(x).numpy()
                    errs.append(np.sqrt(np.mean((y - ref) ** 2) / np.mean((ref - bias) ** 2)))
            print(f"{n:>4} x {n:<3} {r:7.2f} {loss:8.1%} {errs[0]:10.2%} {errs[1]:14.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Programmed weight error of each weight-to-conductance mapping on the example device.

For a 64 x 64 layer (``nn.Linear`` initialisation, seed 0) programmed ``--draws`` times with
the example device's noise model (write-verify; programming noise only: no read noise, exact
converters, ideal crossbar), the RMS of the effective weight error over each output channel's
scale ``max_i |w_oi|``, read back through the layer (identity inputs), for every mapping; and,
for the optimised split, the expected error the optimiser computed from the programming
statistics beside the even split's. Held out: the optimised splits chosen on that export and
programmed with another export of the same device model (seed 1: other simulated devices and
writes), against that export's own optimum and the even split.

Usage: python benchmarks/mapping_errors.py [--draws 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from _example import example_noise_model

from pyaimc.analog import AnalogConfig, TileCore, convert_to_analog, program

MAPS = [("differential_pair", {}), ("single_device", {}), ("n_pairs", {"n_pairs": 2}),
        ("n_pairs", {"n_pairs": 3}), ("n_pairs", {"n_pairs": 2, "significance": 2.0}),
        ("n_pairs", {"n_pairs": 2, "significance": 4.0, "correct": True}),
        ("optimised_pairs", {"n_pairs": 2, "significance": 1.0}),
        ("optimised_pairs", {"n_pairs": 2, "significance": 2.0})]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    nm = example_noise_model(n_devices=1000, n_repeats=8)
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 64)
    eye = torch.eye(64)
    base = dataclasses.replace(AnalogConfig.noise_only(), read_noise=False)
    print(f"64 x 64 layer, example device ({nm.programming.training_scheme}), {args.draws} "
          "draws; RMS effective weight error / output channel scale")
    ref = None
    for name, opts in MAPS:
        cfg = dataclasses.replace(base, mapping=name, mapping_options=opts)
        layer = convert_to_analog(lin, nm, cfg, np.random.default_rng(1))
        errs = []
        for k in range(args.draws):
            program(layer, np.random.default_rng(100 + k))
            layer.eval()
            with torch.no_grad():
                w = (layer(eye) - layer.bias).T
            errs.append(((w - lin.weight) / lin.weight.abs().amax(1, keepdim=True))
                        .pow(2).mean().item())
        rms = float(np.sqrt(np.mean(errs)))
        ref = rms if ref is None else ref
        extra = ""
        if name == "optimised_pairs":
            e = TileCore(nm, cfg).mapping.expected_error()
            extra = (f"   expected (optimiser): {e['optimised']:.4f} vs even split "
                     f"{e['equal']:.4f}")
        print(f"  {name:18s} {str(opts):52s} {rms:.4f}  ({rms / ref:.2f}x){extra}")
    held = example_noise_model(n_devices=1000, n_repeats=8, seed=1)
    print("held out: programmed with the seed-1 export")
    for name, opts in MAPS:
        if name != "optimised_pairs" and opts != {"n_pairs": 2}:
            continue
        cfg = dataclasses.replace(base, mapping=name, mapping_options=opts)
        rows = [("own", None)]
        if name == "optimised_pairs":
            rows.append(("split from seed 0", TileCore(nm, cfg).mapping.table))
        for label, table in rows:
            layer = convert_to_analog(lin, held, cfg, np.random.default_rng(1))
            if table is not None:
                layer.core.mapping.table = table
            errs = []
            for k in range(args.draws):
                program(layer, np.random.default_rng(100 + k))
                layer.eval()
                with torch.no_grad():
                    w = (layer(eye) - layer.bias).T
                errs.append(((w - lin.weight) / lin.weight.abs().amax(1, keepdim=True))
                            .pow(2).mean().item())
            print(f"  {name:18s} {str(opts):40s} {label:18s} {np.sqrt(np.mean(errs)):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

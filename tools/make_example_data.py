"""Make the project's own example calibration data from a fitted model (for the demo and tests).

``python -m tools.make_example_data --model MODEL.json -o DIR [--seed S]`` writes ``features.npz``
(devices x cycles arrays, the layout of ``pyaimc sample``), ``sweeps.npz`` (triangular I-V sweeps
of a few cells simulated by the Python twin, with Johnson and shot read noise) and
``provenance.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pyaimc.device.cells import simulate_sweeps, triangular_sweep
from pyaimc.device.model import DeviceModel
from pyaimc.io import provenance, write_json, write_npz


def make_example(model: DeviceModel, out_dir, seed: int, n_devices: int = 48,
                 n_cycles: int = 400, sweep_cells: int = 8, sweep_cycles: int = 12,
                 bandwidth: float = 1e8, model_path: str | None = None) -> Path:
    """Write an example dataset drawn from ``model``; returns the folder."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    feats, comp = model.sample(n_devices, n_cycles, rng, dtype=np.float32, return_components=True)
    write_npz(out / "features.npz", **feats, gmm_component=comp.astype(np.int8))
    u = triangular_sweep(points=200)
    cells = model.cells(sweep_cells, rng, dtype=np.float64)
    i, _ = simulate_sweeps(cells, u, sweep_cycles, bandwidth=bandwidth)
    write_npz(out / "sweeps.npz", U=u.astype(np.float32), I=i.astype(np.float32))
    write_json(out / "provenance.json", {
        "schema": "pyaimc.example/1",
        "description": "Synthetic calibration data of pyaimc's own making: drawn from a device model "
                       "fitted by pyaimc, so the demo and tests run without ../shared/data.",
        "features": {"file": "features.npz", "n_devices": n_devices, "n_cycles": n_cycles,
                     "units": {n: u for n, u in zip(model.feature_names_, model.units_)}},
        "sweeps": {"file": "sweeps.npz", "cells": sweep_cells, "cycles": sweep_cycles,
                   "points": len(u), "read_noise_bandwidth_hz": bandwidth},
        "provenance": provenance(source=model_path or model.provenance_.get("source"), seed=seed,
                                 model_provenance=model.provenance_),
    })
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.make_example_data", description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args(argv)
    make_example(DeviceModel.load(args.model), args.output, args.seed, model_path=args.model)
    print(f"wrote example data to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

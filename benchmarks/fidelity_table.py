"""Fidelity of fitted device models on the reference data, fitted and unfitted.

Prints, for synaptogen_ref (fitted on itself) and for the RADAR cycling model fitted on one file
(default cycling-4-24-20), the fidelity statistics (FIDELITY.md) against its own data and,
unfitted, against every other RADAR file (other arrays and days).

Usage: python benchmarks/fidelity_table.py [--shared ../shared/data] [--fit cycling-4-24-20.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pyaimc.data import load
from pyaimc.device import DeviceModel
from pyaimc.device.fidelity import fidelity_report
from pyaimc.device.report import data_for_comparison, report_sample_size

ROOT = Path(__file__).resolve().parents[1]


def fit_with_sweeps(data, shared: Path) -> DeviceModel:
    """Fit to ``data`` with the I-V part from synaptogen_ref's sweeps."""
    from pyaimc.data.sweeps import extract_features, load_sweeps
    from pyaimc.device.iv_fit import fit_iv

    iv = fit_iv(extract_features(*load_sweeps(shared / "synaptogen_ref" / "sweeps.npz")))
    return DeviceModel().fit(data, iv=iv, rng=np.random.default_rng(0))


def row(label, model, data, seed=1):
    n_dev, n_cyc = report_sample_size(data.n_cycles)
    sample = model.sample(n_dev, n_cyc, np.random.default_rng(seed), dtype=np.float32)
    m = fidelity_report(sample, data_for_comparison(model, data), np.random.default_rng(seed + 1))
    cells = []
    for name, p in m["per_feature"].items():
        cells.append(f"{name}: KS {p['ks']:.3f}, lag-1 ACF {p['acf_sample'][0]:.3f}/"
                     f"{p['acf_data'][0]:.3f}, d2d {p['d2d_ratio']:.2f}, within "
                     f"{p['within_ratio']:.2f}")
    print(f"{label:<44} xcorr err {m['xcorr_error']:.3f} | " + " | ".join(cells))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--fit", default="cycling-4-24-20.csv")
    args = p.parse_args(argv)
    shared = Path(args.shared)
    syn = load(shared / "synaptogen_ref" / "features.npz")
    row("synaptogen_ref (fitted)", fit_with_sweeps(syn, shared), syn)
    radar = sorted((shared / "radar_cycling").glob("cycling-*.csv"))
    fitted = load(shared / "radar_cycling" / args.fit)
    model = DeviceModel().fit(fitted, rng=np.random.default_rng(0))
    for f in radar:
        label = f"RADAR {f.stem} ({'fitted' if f.name == args.fit else 'unfitted'})"
        row(label, model, load(f))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

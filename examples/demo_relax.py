"""Demo: conductance relaxation after programming, and what it does to an analog layer.

``demo_relax(out_dir)`` (well under a minute):

1. ``pyaimc relax`` on the shipped relaxation model of technology B
   (``calibration_data/models/techB-relaxation.json``): 8 levels x 2000 cells read at 1 s, 1 h,
   1 day and 1 year after programming (``relaxed.npy``; the last two are extrapolations) and
   their distributions (``relax.png``);
2. the same model as the retention part of a noise model: an ``AnalogLinear`` layer programmed
   and read at those times, with and without global drift compensation (relative output error);
3. with ``../shared/data`` present: the relaxation model fitted on one hash half of the
   technology B records and scored on the other (the issue's per level and time point check).

Writes ``out_dir/relaxed.npy``, ``relax.png`` and ``demo_relax.json``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RELAX_MODEL = ROOT / "calibration_data" / "models" / "techB-relaxation.json"
SHARED = ROOT.parent / "shared" / "data" / "rram_relaxation"
TIMES = (1.0, 3600.0, 86400.0, 3.156e7)
LABELS = ("1 s", "1 h", "1 day", "1 year")


def _plot(g0, out, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    bins = np.linspace(0, 140, 281)
    for k, label in enumerate(LABELS):
        ax.hist(out[:, k] * 1e6, bins, histtype="step", lw=1.0, color=f"C{k}",
                label=label + (" (extrapolated)" if TIMES[k] > 1e4 else ""))
    ax.set_yscale("log")
    ax.set_xlabel("conductance (uS)")
    ax.set_ylabel("cells")
    ax.set_title("technology B: 8 programmed levels relaxing", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def demo_relax(out_dir) -> dict:
    """Run the demo (see the module docstring) and return its figures."""
    import torch

    from pyaimc.analog.config import AnalogConfig
    from pyaimc.analog.linear import AnalogLinear, program
    from pyaimc.cli import main as pyaimc
    from pyaimc.device import DeviceModel
    from pyaimc.io import provenance, write_json
    from pyaimc.noise import NoiseModel, RelaxationRetention

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    g0 = np.repeat(np.linspace(15e-6, 120e-6, 8), 2000)
    np.save(out / "g0.npy", g0)
    rc = pyaimc(["relax", str(RELAX_MODEL), "--g0", str(out / "g0.npy"), "--times",
                 *[f"{t:g}" for t in TIMES], "--seed", "0", "-o", str(out / "relaxed.npy")])
    if rc:
        raise SystemExit(rc)
    relaxed = np.load(out / "relaxed.npy")
    _plot(g0, relaxed, out / "relax.png")
    spread = {label: float(np.mean([np.std(relaxed[g0 == g, k] - g) for g in np.unique(g0)]))
              for k, label in enumerate(LABELS)}
    print("    std of G(t) - G(0), mean over the 8 levels: "
          + ", ".join(f"{k} {v * 1e6:.2f} uS" for k, v in spread.items()))

    # an analog layer read later, with and without global drift compensation
    torch.set_num_threads(1)
    relax = DeviceModel.load(RELAX_MODEL).relaxation_
    nm = NoiseModel.ideal(g_min=10e-6, g_max=120e-6, rows=64, cols=64).with_retention(
        RelaxationRetention(relax, source=str(RELAX_MODEL)))
    torch.manual_seed(0)
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(1))
    errors = {}
    for comp in (False, True):
        row = []
        for t in TIMES:
            cfg = dataclasses.replace(AnalogConfig.ideal(), t_inference=t, drift_compensation=comp)
            layer = AnalogLinear(128, 64, noise_model=nm, config=cfg, seed=0)
            program(layer, np.random.default_rng(0))
            layer.eval()
            with torch.no_grad():
                exact = x @ layer.weight.T
                row.append(float((layer(x) - layer.bias - exact).norm() / exact.norm()))
        errors["compensated" if comp else "uncompensated"] = row
        print(f"    AnalogLinear 128x64, relative output error "
              f"{'with' if comp else 'without'} drift compensation: "
              + ", ".join(f"{lab} {100 * e:.1f} %" for lab, e in zip(LABELS, row)))
    figures = {"std_us": {k: v * 1e6 for k, v in spread.items()}, "layer_error": errors}

    data = SHARED / "techB-relaxation.tsv.gz"
    if data.exists():
        from pyaimc.data.relaxation import load_relaxation
        from pyaimc.device.relaxation import RelaxationModel
        from pyaimc.device.relaxation_check import heldout_check

        res = heldout_check(load_relaxation(data), lambda h: RelaxationModel().fit(h))
        e = res["directions"][0]
        h, ref = e["heldout"], e["reference_half_vs_half"]
        print(f"    held-out check (technology B, hash halves): {h['groups']} level x time "
              f"groups, {100 * h['both_ok']:.1f} % agree in mean and std (one half against "
              f"the other: {100 * ref['both_ok']:.1f} %)")
        figures["heldout"] = {"both_ok": h["both_ok"], "half_vs_half": ref["both_ok"]}
    else:
        print(f"    ({data} not present: held-out check skipped)")
    write_json(out / "demo_relax.json", {**figures,
                                         "provenance": provenance(source=str(RELAX_MODEL))})
    return figures


if __name__ == "__main__":
    import sys

    demo_relax(sys.argv[1] if len(sys.argv) > 1 else "out/demo/relax")

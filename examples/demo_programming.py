"""Demo stage: programming 1T1R cells pulse by pulse with the shipped RADAR pulse model.

ISPP, FPPV and RADAR write-verify, and RADAR with the network programmer's first shot, program
new devices into the 2-bits-per-cell windows of the measured evaluations; a small pulse table is
replayed through the model (``pyaimc pulse``). Writes ``programming.json`` (statistics per
scheme and window), ``programming.png`` (pulses and final conductances per level) and
``replay.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL = "radar_pulse-4-24-20"


def demo_programming(out: Path, cells: int = 1000, seed: int = 0) -> dict:
    import torch

    from pyaimc.data.pulses import PulseData, save_pulse_csv
    from pyaimc.device import DeviceModel
    from pyaimc.device.pulse import replay
    from pyaimc.device.schemes import EVAL_WINDOWS_2BPC, get_scheme, program_levels
    from pyaimc.io import provenance, write_json

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = DeviceModel.load(MODEL)
    stats = {}
    for name, scheme in (("ispp", get_scheme("ispp")), ("fppv", get_scheme("fppv")),
                         ("radar", get_scheme("radar")),
                         ("nn_first(radar)", get_scheme("nn_first", base="radar",
                                                        n_train=30000, epochs=15))):
        stats[name] = program_levels(model, scheme, EVAL_WINDOWS_2BPC, cells,
                                     np.random.default_rng(seed))["levels"]
    write_json(out / "programming.json", {"schema": "pyaimc.program-demo/1", "model": MODEL,
                                          "cells_per_window": cells, "schemes": stats,
                                          "provenance": provenance(source=MODEL, seed=seed)})
    # a pulse table: SETs from the HRS at rising gate voltages, RESETs from the LRS
    n = 40
    v_wl = np.linspace(2.0, 2.9, n)
    table = PulseData(np.array([f"c{i % 8}" for i in range(2 * n)]), np.full(2 * n, 100e-9),
                      np.r_[np.full(n, 2.0), np.zeros(n)], np.r_[np.zeros(n), np.full(n, 2.5)],
                      np.r_[v_wl, np.linspace(2.5, 4.0, n)], np.r_[np.full(n, 1e5),
                                                                   np.full(n, 4.5e3)],
                      np.full(2 * n, np.nan), np.arange(2 * n) + 2, "demo")
    save_pulse_csv(replay(model.pulse_, table, np.random.default_rng(seed)), out / "replay.csv")
    _plot(stats, out / "programming.png")
    return stats


def _plot(stats: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(stats)
    k = len(next(iter(stats.values())))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        lv = stats[name]
        x = np.arange(k) + (j - (len(names) - 1) / 2) * width
        ax[0].bar(x, [l["pulses_mean"] for l in lv], width, label=name)
        ax[1].bar(x, [1e12 * l["energy_mean"] for l in lv], width, label=name)
    labels = [("below " if l["r_lo"] == 0 else f"{l['r_lo'] / 1e3:.3g}k-")
              + ("" if l["r_hi"] >= 1e9 else f"{l['r_hi'] / 1e3:.3g}k")
              + (" and above" if l["r_hi"] >= 1e9 else "") for l in stats[names[0]]]
    for a, ylabel in zip(ax, ("mean pulses per write", "mean energy per write (pJ)")):
        a.set_xticks(np.arange(k), labels)
        a.set_xlabel("target window (ohm)")
        a.set_ylabel(ylabel)
    ax[0].legend(fontsize=8)
    fig.suptitle("write-verify on the RADAR pulse model (new devices, 2 bits per cell)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

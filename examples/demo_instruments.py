"""Demo stage: one measurement protocol on a virtual chip (the NeuroBreakoutBoard idea).

A virtual board (front end with gain, offset, series-resistance and ADC errors) is calibrated
on its standards; resistance reads from 100 ohm to 10 Mohm before and after; the cycling
protocol (I-V sweeps) on new devices of the shipped example model, written as ``pyaimc fit``
reads it and fitted; a RADAR write-verify through the board on the shipped pulse model. Writes
``cycles.npz`` (+ ``.json``), ``model.json``, ``writes.csv`` (the write-verify's pulses),
``loops.png`` and ``instruments.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def demo_instruments(out: Path, cells: int = 32, cycles: int = 60, seed: int = 0) -> dict:
    from pyaimc.apps.instruments import (VirtualBoard, accuracy_vs_resistance, calibrate,
                                         write_verify)
    from pyaimc.apps.instruments.measure import measure
    from pyaimc.data.pulses import save_pulse_csv
    from pyaimc.device import DeviceModel
    from pyaimc.device.fitting import fit_from_files
    from pyaimc.device.schemes import window_conductances
    from pyaimc.io import provenance, write_json, write_npz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    acc = accuracy_vs_resistance(rng, resistances=np.logspace(2, 7, 6), n_boards=5, repeats=4)
    # cycling through the calibrated virtual board, exactly what 'pyaimc measure' does
    kind, data, meta = measure("virtual", "cycling", cells, cycles, np.random.default_rng(seed))
    write_npz(out / "cycles.npz", **data)
    write_json(out / "cycles.npz.json", {"schema": "pyaimc.measurement/1", "board": meta,
                                         "provenance": provenance(source="example", seed=seed)})
    fitted, _, _ = fit_from_files(out / "cycles.npz", seed=seed, max_var_order=3)
    fitted.save(out / "model.json")
    gen = DeviceModel.load("example")
    # a few loops as the board measured them
    board = VirtualBoard.from_model(gen, 4, np.random.default_rng(seed + 1))
    calibrate(board)
    from pyaimc.apps.instruments.protocols import iv_sweeps

    loops = iv_sweeps(board, 3)
    # RADAR write-verify through the board on the shipped pulse model
    pboard = VirtualBoard.from_model(DeviceModel.load("radar_pulse-4-24-20"), 64,
                                     np.random.default_rng(seed + 2))
    calibrate(pboard)
    g_lo, g_hi = window_conductances([[8510.0, 9310.0]])
    res, log = write_verify(pboard, "radar", g_lo[0], g_hi[0], rng=np.random.default_rng(seed))
    save_pulse_csv(log, out / "writes.csv")
    summary = {
        "accuracy": {"resistance_ohm": acc["resistance_ohm"],
                     "before_median_abs": acc["before"]["median_abs"],
                     "after_max_abs": acc["after"]["max_abs"]},
        "cycling": {k: float(np.median(data[k])) for k in ("R_HRS", "U_SET", "R_LRS", "U_RESET")},
        "generator_medians": {k: float(np.median(v)) for k, v in
                              gen.sample(1000, cycles, np.random.default_rng(5)).items()
                              if k in ("R_HRS", "U_SET", "R_LRS", "U_RESET")},
        "refit_medians": {k: float(np.median(v)) for k, v in
                          fitted.sample(1000, cycles, np.random.default_rng(5)).items()
                          if k in ("R_HRS", "U_SET", "R_LRS", "U_RESET")},
        "board_time_s": meta["elapsed_s"],
        "radar_success": float(res.success.mean()), "radar_pulses_mean": float(res.pulses.mean()),
        "radar_logged_pulses": len(log),
    }
    write_json(out / "instruments.json", {"schema": "pyaimc.instruments-demo/1", **summary,
                                          "provenance": provenance(source="example", seed=seed)})
    _plot(loops, out / "loops.png")
    return summary


def _plot(loops: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for c in range(loops["I"].shape[0]):
        for n in range(loops["I"].shape[1]):
            ax.semilogy(loops["U"], np.abs(loops["I"][c, n]) + 1e-9, lw=0.7, color=f"C{c}")
    ax.set_xlabel("U (V)")
    ax.set_ylabel("|I| (A), as the board read it")
    ax.set_title("I-V sweeps through the virtual board")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

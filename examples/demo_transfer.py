"""Demo stage: transfer curves and their behavioural fit for the shipped example device model.

``demo_transfer(out_dir, model_path)`` fits the transfer model of a 32 x 32 tile with 2 ohm wire
segments (about 14 % IR-drop loss with the example devices) and writes the report (figures,
metrics, ``transfer.json``). About 10-20 s on two cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pyaimc.circuit.montecarlo import get_executor
from pyaimc.circuit.transfer_fit import fit_transfer
from pyaimc.circuit.transfer_report import write_transfer_report
from pyaimc.device.model import DeviceModel

#: Settings of the demo fit.
DEMO_TILE = (32, 32)
DEMO_R_WIRE = 2.0  # ohm
DEMO_PATTERNS = 12
DEMO_SEED = 0


def demo_transfer(out_dir: str | os.PathLike, model_path: str | os.PathLike,
                  workers: int | None = 2, progress: bool = False) -> dict:
    """Fit and report the transfer model of a small tile for a device model.

    Parameters
    ----------
    out_dir : path
        Report folder (``transfer.json``, ``transfer_metrics.json``, PNG figures).
    model_path : path
        Device model JSON (e.g. ``calibration_data/models/example.json``).
    workers : int, optional
        Local worker processes (1: in this process).
    progress : bool
        Progress bars.

    Returns
    -------
    dict
        The report metrics (also in ``transfer_metrics.json``).
    """
    model = DeviceModel.load(model_path)
    rng = np.random.default_rng(DEMO_SEED)
    with get_executor(None, workers) as executor:
        fit = fit_transfer(model, *DEMO_TILE, DEMO_R_WIRE, 0.2, DEMO_PATTERNS, rng,
                           executor=executor, progress=progress, source=str(model_path),
                           seed=DEMO_SEED, return_simulations=True)
        return write_transfer_report(Path(out_dir), fit, rng, sizes=(8, 16, 32, 64),
                                     executor=executor, progress=progress, seed=DEMO_SEED)

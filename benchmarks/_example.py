"""The noise models the benchmarks share: the shipped example device's, exported with a small
simulation, and the same with the first-order IR-drop transfer model.

A module beside the scripts (``python benchmarks/<script>.py`` puts this folder on the path),
not part of the package.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pyaimc.circuit.transfer import TransferModel
from pyaimc.noise import NoiseModel, export_noise_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DEVICE = ROOT / "calibration_data" / "models" / "example.json"


def example_noise_model(n_devices: int = 500, n_repeats: int = 4, seed: int = 0,
                        **kwargs) -> NoiseModel:
    """The example device model's noise model (64 x 64 tiles unless ``kwargs`` say
    otherwise; a few seconds)."""
    from pyaimc.device import DeviceModel

    return export_noise_model(DeviceModel.load(EXAMPLE_DEVICE), np.random.default_rng(seed),
                              n_devices=n_devices, n_repeats=n_repeats, **kwargs)


def with_wires(nm: NoiseModel, r_wire: float) -> NoiseModel:
    """``nm`` with wires of ``r_wire`` ohm per cell and the first-order IR-drop transfer
    model of its tile."""
    return dataclasses.replace(
        nm, tile=dataclasses.replace(nm.tile, r_wire=r_wire),
        transfer=TransferModel.first_order(nm.tile.rows, nm.tile.cols, r_wire, nm.dac.v_max,
                                           nm.window.g_min, nm.window.g_max))

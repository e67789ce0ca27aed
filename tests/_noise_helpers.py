"""Shared, cached test inputs: a noise model exported from the shipped example device model."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_MODEL = ROOT / "calibration_data" / "models" / "example.json"


@lru_cache(maxsize=None)
def device_model(name: str = "example"):
    from pyaimc.device import DeviceModel

    return DeviceModel.load(ROOT / "calibration_data" / "models" / f"{name}.json")


@lru_cache(maxsize=None)
def example_noise_model(n_levels: int = 10, n_devices: int = 400, n_repeats: int = 4,
                        seed: int = 0):
    """The example device's noise model with a small simulation (about a second)."""
    from pyaimc.noise import export_noise_model

    return export_noise_model(device_model(), np.random.default_rng(seed), n_levels=n_levels,
                              n_devices=n_devices, n_repeats=n_repeats,
                              source=str(EXAMPLE_MODEL), seed=seed)


def std_error_of_std(x: np.ndarray) -> float:
    """Standard error of the sample standard deviation of ``x`` (any distribution: kurtosis)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    d = x - x.mean()
    m2, m4 = np.mean(d**2), np.mean(d**4)
    return float(np.sqrt(m2) * np.sqrt(max(m4 / m2**2 - 1.0, 0.0) / (4 * n)))


def transfer_doc(rows, cols, r_wire=1.0, k_row=1.0, k_col=1.0, c2=(0.0, 0.0), c3=(0.0, 0.0), i_sat=None,
        g_min=1e-6, g_max=1e-4, v_max=0.2, fit=None):
    """A transfer document written by hand, as docs/transfer_format.md lays it out."""
    return {"schema": "pyaimc.transfer/1", "tile": {"rows": rows, "cols": cols},
            "r_wire": r_wire, "v_max": v_max, "g_min": g_min, "g_max": g_max,
            "ir_drop": {"k_row": k_row, "k_col": k_col},
            "input_nonlinearity": {"c2": list(c2), "c3": list(c3)}, "i_sat": i_sat,
            "fit": fit or {"note": "written by hand for the tests"}, "provenance": {}}


def reference_currents(x, g, d):
    """The document's formula, element by element where it says so (numpy, float64)."""
    n, m = g.shape
    mmin = np.array([[min(l, j) for j in range(m)] for l in range(m)], dtype=float)
    nmin = np.array([[min(n - 1 - i, n - 1 - l) for l in range(n)] for i in range(n)], dtype=float)
    r, k_row, k_col = d["r_wire"], d["ir_drop"]["k_row"], d["ir_drop"]["k_col"]
    w1 = g / (1 + r * (k_row * (g @ mmin) + k_col * (nmin @ g)))
    gn = (g - d["g_min"]) / (d["g_max"] - d["g_min"])
    c2, c3 = d["input_nonlinearity"]["c2"], d["input_nonlinearity"]["c3"]
    w2 = w1 * (c2[0] + c2[1] * gn)
    w3 = w1 * (c3[0] + c3[1] * gn)
    i = x @ w1 + (x**2) @ w2 + (x**3) @ w3
    if d["i_sat"] is not None:
        i = np.clip(i, -d["i_sat"], d["i_sat"])
    return i

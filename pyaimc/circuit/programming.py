"""Programming target conductances into cells drawn from a device model (write-verify).

Kept deliberately simple (the detailed programming statistics belong to the noise model): every
cell is SET, then RESET pulses of rising amplitude are applied to the cells still above their
target until the read conductance is within tolerance, or the ramp reaches full RESET. The RESET
path of the device model is monotone in the highest voltage applied, so the ramp ends on the first
amplitude that brings a cell to its target; cells whose LRS is below the target stay in the LRS,
cells whose HRS is above it end in the HRS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: SET pulse amplitude, volt: below every U_SET the example models draw (lowest about -1.0 V).
SET_PULSE = -1.5


@dataclass(frozen=True)
class WriteVerify:
    """Settings of the write-verify loop.

    Parameters
    ----------
    tolerance : float
        Relative tolerance of the read conductance: a cell is done once ``G <= target (1 + tol)``.
    u_start : float
        First RESET amplitude, volt (below the models' lowest U_RESET, about 0.6 V).
    u_step : float
        Amplitude increment per pulse, volt.
    u_set : float
        SET pulse, volt.
    """

    tolerance: float = 0.05
    u_start: float = 0.5
    u_step: float = 0.01
    u_set: float = SET_PULSE

    def __post_init__(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ValueError(f"write-verify tolerance must be in (0, 1), got {self.tolerance}")
        if not (0 < self.u_start and 0 < self.u_step):
            raise ValueError(f"u_start and u_step must be > 0 V, got {self.u_start}, {self.u_step}")
        if not self.u_set < 0:
            raise ValueError(f"the SET pulse must be negative, got {self.u_set} V")


def conductance_window(model, rng: np.random.Generator, n_devices: int = 2000
                       ) -> tuple[float, float]:
    """The programmable window ``(g_min, g_max)`` of a device model, siemens.

    ``g_min`` is the median HRS conductance, ``g_max`` the median LRS conductance of
    ``n_devices`` freshly drawn devices (first cycle), both read at the model's read voltage.
    """
    sample = model.sample(int(n_devices), 1, rng)
    return float(np.median(1.0 / sample["R_HRS"])), float(np.median(1.0 / sample["R_LRS"]))


def program_cells(model, targets, rng: np.random.Generator,
                  settings: WriteVerify = WriteVerify()) -> np.ndarray:
    """Draw new devices and program them towards target conductances.

    Parameters
    ----------
    model : DeviceModel
        Fitted device model (its cells, I-V envelopes and RESET path).
    targets : array_like
        Target read conductances, siemens, > 0; any shape (one cell per entry).
    rng : numpy.random.Generator
        Device draws and cycle-to-cycle variation.
    settings : WriteVerify
        Loop settings.

    Returns
    -------
    ndarray, same shape as ``targets``
        I-V state ``r`` of every cell after programming (see :mod:`pyaimc.device.iv`);
        ``model.iv_.resistance_from_state(r)`` is its read resistance.
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.size == 0 or not np.all(np.isfinite(targets)) or np.any(targets <= 0):
        raise ValueError("target conductances must be finite and > 0 S")
    iv = model.iv_
    cells = model.cells(targets.size, rng, dtype=np.float64)
    cells.apply_voltage(settings.u_set)
    flat = targets.ravel()
    upper = flat * (1 + settings.tolerance)
    steps = int(np.ceil((iv.u_full_reset - settings.u_start) / settings.u_step)) + 1
    for k in range(steps):
        todo = 1.0 / cells.resistance > upper
        if not todo.any():
            break
        u = min(settings.u_start + k * settings.u_step, iv.u_full_reset)
        cells.apply_voltage(np.where(todo, u, 0.0))
    return cells.state.reshape(targets.shape)

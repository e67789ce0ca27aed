"""Programming target conductances into cells drawn from a device model, for circuit studies.

Kept deliberately simple (the detailed programming statistics belong to the noise model): the
``reset_ramp`` scheme of :mod:`pyaimc.device.schemes` brings every cell to or below
``target * (1 + tolerance)``; cells whose LRS is below the target stay in the LRS, cells whose
HRS is above it end in the HRS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyaimc.device.schemes import ResetRamp, program

__all__ = ["RampProgramming", "conductance_window", "program_cells"]


@dataclass(frozen=True)
class RampProgramming:
    """Settings of the programming of a circuit study: the ``reset_ramp`` scheme and its window.

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
    u_set: float = -1.5

    def __post_init__(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ValueError(f"programming tolerance must be in (0, 1), got {self.tolerance}")
        self.scheme()  # checks the pulses

    def scheme(self) -> ResetRamp:
        """The write scheme with these pulses."""
        return ResetRamp(self.u_start, self.u_step, self.u_set)


def conductance_window(model, rng: np.random.Generator, n_devices: int = 2000
                       ) -> tuple[float, float]:
    """The programmable window ``(g_min, g_max)`` of a device model, siemens.

    ``g_min`` is the median HRS conductance, ``g_max`` the median LRS conductance of
    ``n_devices`` freshly drawn devices (first cycle), both read at the model's read voltage.
    """
    sample = model.sample(int(n_devices), 1, rng)
    return float(np.median(1.0 / sample["R_HRS"])), float(np.median(1.0 / sample["R_LRS"]))


def program_cells(model, targets, rng: np.random.Generator,
                  settings: RampProgramming = RampProgramming()) -> np.ndarray:
    """Draw new devices and program them towards target conductances.

    Parameters
    ----------
    model : DeviceModel
        Fitted device model (its cells, I-V envelopes and RESET path).
    targets : array_like
        Target read conductances, siemens, > 0; any shape (one cell per entry).
    rng : numpy.random.Generator
        Device draws and cycle-to-cycle variation.
    settings : RampProgramming
        The ramp's pulses and tolerance (the window is ``[0, target (1 + tolerance)]``).

    Returns
    -------
    ndarray, same shape as ``targets``
        I-V state ``r`` of every cell after programming (see :mod:`pyaimc.device.iv`);
        ``model.iv_.resistance_from_state(r)`` is its read resistance.
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.size == 0 or not np.all(np.isfinite(targets)) or np.any(targets <= 0):
        raise ValueError("target conductances must be finite and > 0 S")
    cells, _ = program(model, settings.scheme(), np.zeros_like(targets),
                       targets * (1 + settings.tolerance), rng)
    return cells.state.reshape(targets.shape)

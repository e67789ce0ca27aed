"""I-V and switching of one cell: two envelope curves, a state between them, SET and RESET.

Current at voltage ``U`` for a cell in state ``r``::

    I(U, r) = L(U) + r * (H(U) - L(U))

``L`` and ``H`` are polynomial envelopes without constant term (the lowest- and highest-resistance
curves), and ``r`` follows from the read resistance ``R`` (chord ``U_read / I(U_read)``) as
``r = (G_L - 1/R) / (G_L - G_H)`` with ``G_X = X(U_read) / U_read``: a state read at ``U_read``
gives exactly ``U_read / R``, at any other voltage the non-linear curve of that state.

Switching (one cycle ``n`` carries R_HRS_n, U_SET_n, R_LRS_n, U_RESET_n):

- SET is abrupt: the first time ``U <= U_SET_n`` the cell jumps to ``R_LRS_n``.
- RESET is gradual: above ``U_RESET_n`` the current follows a path from the LRS curve at
  ``U_RESET_n`` to the curve of the next cycle's HRS at the full-reset voltage ``U_full``,
  ``I_path(U) = I_end + (I_on - I_end) * (1 - s)**eta``, ``s = (U - U_RESET_n)/(U_full - U_RESET_n)``;
  the state is the ``r`` on that path at the highest voltage reached so far. The next cycle's
  features are drawn at the first RESET step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K_BOLTZMANN = 1.380649e-23  #: J/K
Q_ELECTRON = 1.602176634e-19  #: C


@dataclass
class IVModel:
    """I-V envelopes, switching constants and read-noise settings.

    Attributes
    ----------
    lrs_coefs, hrs_coefs : ndarray (d,)
        Envelope polynomials ``L(U) = sum_j lrs_coefs[j] * U**(j + 1)`` in A (U in V).
    u_read : float
        Read voltage defining a state's resistance, V.
    u_full_reset : float
        RESET voltage at which the HRS of the cycle is reached, V.
    reset_exponent : float
        Curvature ``eta`` of the RESET path (dimensionless, > 0).
    default_u_set, default_u_reset : float
        Switching voltages used when the fitted model has no ``U_SET`` / ``U_RESET`` features
        (two-feature data such as HRS/LRS cycling tables), V.
    temperature : float
        For Johnson noise, K.
    source : str
        Where the envelopes came from (``"default (ohmic)"`` or the sweep file).
    fit_info : dict
        Residuals and choices of the sweep fit.
    """

    lrs_coefs: np.ndarray
    hrs_coefs: np.ndarray
    u_read: float = 0.2
    u_full_reset: float = 1.5
    reset_exponent: float = 2.0
    default_u_set: float = -0.67
    default_u_reset: float = 0.73
    temperature: float = 300.0
    source: str = "default (ohmic)"
    fit_info: dict | None = None

    def __post_init__(self) -> None:
        self.lrs_coefs = np.atleast_1d(np.asarray(self.lrs_coefs, dtype=np.float64))
        self.hrs_coefs = np.atleast_1d(np.asarray(self.hrs_coefs, dtype=np.float64))
        n = max(len(self.lrs_coefs), len(self.hrs_coefs))
        self.lrs_coefs = np.pad(self.lrs_coefs, (0, n - len(self.lrs_coefs)))
        self.hrs_coefs = np.pad(self.hrs_coefs, (0, n - len(self.hrs_coefs)))
        if not self.u_read > 0:
            raise ValueError(f"u_read must be > 0 V, got {self.u_read}")
        if not self.u_full_reset > 0:
            raise ValueError(f"u_full_reset must be > 0 V, got {self.u_full_reset}")
        if not self.reset_exponent > 0:
            raise ValueError(f"reset_exponent must be > 0, got {self.reset_exponent}")
        if not (self.default_u_set < 0 < self.default_u_reset < self.u_full_reset):
            raise ValueError("need default_u_set < 0 < default_u_reset < u_full_reset")
        if not self.g_lrs > self.g_hrs > 0:
            raise ValueError(f"envelope conductances at u_read must satisfy G_L > G_H > 0, got "
                             f"G_L = {self.g_lrs:g} S, G_H = {self.g_hrs:g} S")

    # ---------------------------------------------------------------- envelopes
    @classmethod
    def default(cls, r_low: float = 1e3, r_high: float = 1e6, **kwargs) -> "IVModel":
        """Ohmic envelopes (every state is a linear resistor) between ``r_low`` and ``r_high``."""
        return cls(np.array([1.0 / r_low]), np.array([1.0 / r_high]), **kwargs)

    @property
    def degree(self) -> int:
        return len(self.lrs_coefs)

    @staticmethod
    def _poly(coefs: np.ndarray, u):
        # Horner without constant term: u * (c1 + u * (c2 + ...))
        acc = np.zeros_like(u, dtype=np.result_type(u, np.float32)) + coefs[-1]
        for c in coefs[-2::-1]:
            acc = acc * u + c
        return acc * u

    def i_lrs(self, u):
        """Low-resistance envelope current ``L(U)``, A."""
        return self._poly(self.lrs_coefs, np.asarray(u, dtype=np.float64))

    def i_hrs(self, u):
        """High-resistance envelope current ``H(U)``, A."""
        return self._poly(self.hrs_coefs, np.asarray(u, dtype=np.float64))

    @property
    def g_lrs(self) -> float:
        """Chord conductance of the LRS envelope at ``u_read``, S."""
        return float(self._poly(self.lrs_coefs, np.float64(self.u_read)) / self.u_read)

    @property
    def g_hrs(self) -> float:
        """Chord conductance of the HRS envelope at ``u_read``, S."""
        return float(self._poly(self.hrs_coefs, np.float64(self.u_read)) / self.u_read)

    def state_from_resistance(self, r_read):
        """State ``r`` of a cell whose read resistance (at ``u_read``) is ``r_read`` ohm."""
        return (self.g_lrs - 1.0 / np.asarray(r_read)) / (self.g_lrs - self.g_hrs)

    def resistance_from_state(self, r):
        """Read resistance (ohm) of state ``r``."""
        return 1.0 / (self.g_lrs - np.asarray(r) * (self.g_lrs - self.g_hrs))

    def current(self, u, r):
        """Noise-free current ``I(U, r)``, A (broadcasts)."""
        u = np.asarray(u, dtype=np.float64)
        lo = self.i_lrs(u)
        return lo + np.asarray(r) * (self.i_hrs(u) - lo)

    def state_from_current(self, i, u):
        """State ``r`` whose curve passes through current ``i`` at voltage ``u`` (u != 0)."""
        lo = self.i_lrs(u)
        return (np.asarray(i) - lo) / (self.i_hrs(u) - lo)

    # ---------------------------------------------------------------- switching
    def reset_path_current(self, u, u_on, i_on, i_end):
        """Current on the RESET path at voltage ``u`` (``u_on <= u <= u_full_reset``), A."""
        s = (np.asarray(u) - u_on) / (self.u_full_reset - u_on)
        s = np.clip(s, 0.0, 1.0)
        return i_end + (i_on - i_end) * (1.0 - s) ** self.reset_exponent

    def reset_state(self, u, u_on, r_on, r_end):
        """State reached at RESET voltage ``u`` on the path from ``r_on`` (at ``u_on``) to ``r_end``.

        Parameters
        ----------
        u : array, V
            Highest RESET voltage applied so far (``u_on < u``).
        u_on : array, V
            RESET onset of the cycle (``U_RESET``).
        r_on, r_end : array
            States at the onset (the cycle's LRS) and after full RESET (the next HRS).
        """
        u = np.asarray(u, dtype=np.float64)
        full = u >= self.u_full_reset
        i_on = self.current(u_on, r_on)
        i_end = self.current(self.u_full_reset, r_end)
        r = self.state_from_current(self.reset_path_current(u, u_on, i_on, i_end),
                                    np.where(full, self.u_full_reset, u))
        return np.where(full, r_end, r)

    # ---------------------------------------------------------------- reading
    def noise_sigma(self, i, u, bandwidth: float):
        """Standard deviation of the read current (Johnson + shot noise), A.

        Johnson noise of the chord conductance ``|I/U|`` and shot noise of ``|I|``:
        ``sigma**2 = 4 k T B |I/U| + 2 q |I| B``.
        """
        i = np.abs(np.asarray(i, dtype=np.float64))
        u = np.abs(np.asarray(u, dtype=np.float64))
        u = np.where(u > 0, u, np.inf)  # no Johnson term defined at 0 V; the current is 0 there
        return np.sqrt(bandwidth * i * (4 * K_BOLTZMANN * self.temperature / u + 2 * Q_ELECTRON))

    # ---------------------------------------------------------------- files
    def to_dict(self) -> dict:
        return {"lrs_coefs": self.lrs_coefs, "hrs_coefs": self.hrs_coefs,
                "coef_order": "ascending powers of U starting at U**1; current in A, U in V",
                "u_read": self.u_read, "u_full_reset": self.u_full_reset,
                "reset_exponent": self.reset_exponent, "default_u_set": self.default_u_set,
                "default_u_reset": self.default_u_reset, "temperature": self.temperature,
                "source": self.source, "fit_info": self.fit_info or {}}

    @classmethod
    def from_dict(cls, d: dict) -> "IVModel":
        keys = ("lrs_coefs", "hrs_coefs", "u_read", "u_full_reset", "reset_exponent",
                "default_u_set", "default_u_reset", "temperature", "source", "fit_info")
        return cls(**{k: d[k] for k in keys if k in d})


def adc_quantize(i: np.ndarray, bits: int, i_min: float, i_max: float) -> np.ndarray:
    """Quantise currents to ``2**bits`` levels on ``[i_min, i_max]`` (clipped), A."""
    if bits < 1:
        raise ValueError(f"ADC bits must be >= 1, got {bits}")
    if not i_max > i_min:
        raise ValueError(f"ADC range must have i_max > i_min, got [{i_min}, {i_max}]")
    step = (i_max - i_min) / (2**bits - 1)
    code = np.clip(np.rint((np.asarray(i) - i_min) / step), 0, 2**bits - 1)
    return i_min + code * step

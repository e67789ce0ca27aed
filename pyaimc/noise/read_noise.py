"""Read noise of the noise model: kind ``"johnson_shot"``, the device model's read noise."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyaimc.device.iv import K_BOLTZMANN, Q_ELECTRON
from pyaimc.noise.protocols import READ_NOISE_MODELS, register


@register(READ_NOISE_MODELS)
@dataclass
class ReadNoise:
    """Johnson and shot noise of a cell read at voltage ``u``: the device model's read noise.

    ``sigma_I**2 = B * G * (4 k T + 2 q |u|)`` for ``u != 0`` and 0 at ``u = 0`` (A**2), with
    ``G`` the cell's chord conductance: the device model's ``noise_sigma(G u, u, B)``. Cells on
    one column add their variances.

    Attributes
    ----------
    bandwidth : float
        Noise bandwidth, Hz (0: no read noise).
    temperature : float
        K.
    levels, sigma_i, relative : ndarray
        For reference: at conductances ``levels`` (S) read at ``u_read``, the current noise (A)
        and its ratio to the current.
    """

    kind = "johnson_shot"

    bandwidth: float = 1e8
    temperature: float = 300.0
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sigma_i: np.ndarray = field(default_factory=lambda: np.zeros(0))
    relative: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        for name in ("levels", "sigma_i", "relative"):
            setattr(self, name, np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64)))

    @property
    def four_kt(self) -> float:
        """``4 k T``, J (= A**2 / (S Hz))."""
        return 4.0 * K_BOLTZMANN * self.temperature

    @property
    def two_q(self) -> float:
        """``2 q``, C."""
        return 2.0 * Q_ELECTRON

    @property
    def active(self) -> bool:
        return self.bandwidth > 0

    def sigma_current(self, g, u) -> np.ndarray:
        """Current noise (A) of cells of conductance ``g`` (S) read at ``u`` (V)."""
        g = np.asarray(g, dtype=np.float64)
        u = np.abs(np.asarray(u, dtype=np.float64))
        var = self.bandwidth * g * (self.four_kt + self.two_q * u)
        return np.sqrt(np.where(u > 0, var, 0.0))

    def torch_sampler(self):
        """The layers' read noise (:class:`~pyaimc.noise.torch_ops.ColumnReadNoise`; torch)."""
        from pyaimc.noise.torch_ops import ColumnReadNoise

        return ColumnReadNoise(self.four_kt * self.bandwidth, self.two_q * self.bandwidth)

    def validate(self, fail) -> None:
        if not (self.bandwidth >= 0 and self.temperature > 0):
            fail(f"read_noise needs bandwidth >= 0 Hz and temperature > 0 K, got "
                 f"{self.bandwidth}, {self.temperature}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "bandwidth_hz": self.bandwidth,
                "temperature_k": self.temperature,
                "form": "sigma_I^2 = B * G * (4 k T + 2 q |u|) for u != 0, 0 at u = 0 (A^2)",
                "levels": self.levels, "sigma_i_at_u_read": self.sigma_i,
                "relative_at_u_read": self.relative}

    @classmethod
    def from_dict(cls, d: dict) -> "ReadNoise":
        return cls(d["bandwidth_hz"], d["temperature_k"], d.get("levels", []),
                   d.get("sigma_i_at_u_read", []), d.get("relative_at_u_read", []))

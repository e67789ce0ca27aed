"""The gain-cell memory model: a stored voltage written per token, leaking away, read non-linearly.

A gain cell (two or three transistors and a storage capacitor) keeps a value as the voltage of its
storage node. Three things happen to it, and this module models each as a plain, seeded function:

write
    The write DAC rounds the target to ``write_levels`` levels in ``[v_min, v_max]``; closing the
    write transistor leaves thermal (kT/C) noise and charge-injection mismatch on the node:
    ``v = clip(round(u) + N(0, sigma_w), v_min, v_max)`` with
    ``sigma_w = sqrt(k T / C_store + sigma_inj**2)``.
retention
    The node leaks towards ``v_leak`` with a time constant that differs from cell to cell
    (log-normal, median ``tau``, ``sigma(ln tau) = tau_sigma_ln``):
    ``v(t) = v_leak + (v(0) - v_leak) exp(-t / tau_cell)``.
read
    The stored voltage drives the gate of the read transistor; an input pulse of width ``t_in``
    (pulse-width modulation, amplitude fixed) lets a current ``I(v)`` flow into the bit line, so
    the charge is ``I(v) t_in``: linear in the input, non-linear in the stored value. ``I`` is
    the EKV interpolation of a transistor from sub-threshold to triode at a drain-source voltage
    ``v_ds`` (the bit line is held by the integrator), with a per-cell threshold mismatch.
    The signed read factor subtracts the reference current at ``v_offset`` (the zero of the
    signed value) and normalises by the full-scale current:
    ``g(v) = (I(v) - I(v_offset)) / (I(v_max) - I(v_offset))``, so ``g(v_offset) = 0`` and
    ``g(v_max) = 1``.

The parameters and their sources are in ``docs/gaincell.md``; :data:`SOURCES` names them per
field. Saved as versioned JSON (``pyaimc.gaincell/1``) with provenance.

Functions accept numpy arrays or torch tensors (the attention module uses the torch path); all
randomness comes from a ``numpy.random.Generator`` or a ``torch.Generator`` argument.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from pyaimc.device.iv import K_BOLTZMANN, Q_ELECTRON
from pyaimc.io import provenance, read_json, write_json
from pyaimc.noise.protocols import RETENTION_MODELS, register

SCHEMA = "pyaimc.gaincell/1"
KIND = "gain_cell"

# Where each default comes from (docs/gaincell.md has the full references and the reasoning).
SOURCES = {
    "v_min": "paper (Leroux et al. 2025, Methods): stored K and V quantized between 0 and 0.9 V",
    "v_max": "paper: 0.9 V supply, stored values between 0 and 0.9 V",
    "v_offset": "paper: offset 0.45 V = VDD/2 is the zero of the signed stored value",
    "write_levels": "paper: stored K and V quantized in 8 levels",
    "c_store": "assumption: 1 fF storage node (gain-cell literature: sub-fF to few fF); sets kT/C",
    "sigma_injection": "assumption: 5 mV charge-injection/feedthrough mismatch after the write",
    "temperature": "room temperature",
    "tau": "paper: Si-CMOS gain cells retain about 5 ms; taken as the median decay time constant",
    "tau_sigma_ln": "assumption: log-normal spread of 0.5 in ln(tau); measured gain-cell arrays "
                    "show a wide retention spread (Teman et al.; Meinerzhagen et al.)",
    "v_leak": "assumption: the storage node leaks to the idle write bit line at 0 V",
    "vth": "assumption: 0.2 V read-transistor threshold (low-Vt device)",
    "vth_sigma": "assumption: 15 mV threshold mismatch (Pelgrom, minimum-size 28 nm device)",
    "slope_n": "assumption: sub-threshold slope factor 1.3",
    "v_ds": "assumption: 0.1 V across the read transistor (bit line held by the integrator)",
    "i_max": "assumption: 100 nA read current at v_max (sets energy, not accuracy)",
    "t_max": "paper: 15 ns maximum pulse length of the pulse generators",
    "token_period": "assumption: one generated token per microsecond (the rest of the model)",
}


class GainCellError(ValueError):
    """Gain-cell parameters are missing, impossible or inconsistent."""


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _softplus(x):
    if _is_torch(x):
        import torch

        return torch.nn.functional.softplus(x)
    return np.logaddexp(0.0, x)


def _exp(x):
    if _is_torch(x):
        import torch

        return torch.exp(x)
    return np.exp(x)


@dataclass
class GainCellModel:
    """Parameters of one gain-cell technology (SI units).

    Attributes
    ----------
    v_min, v_max : float
        Range of the stored voltage, V.
    v_offset : float
        Stored voltage that means zero, V.
    write_levels : int
        Levels of the write DAC in ``[v_min, v_max]`` (0 or 1: no rounding).
    c_store : float
        Storage capacitance, F.
    sigma_injection : float
        Standard deviation of the charge-injection error of a write, V.
    temperature : float
        K.
    tau : float
        Median retention time constant, s.
    tau_sigma_ln : float
        Standard deviation of ``ln(tau)`` from cell to cell.
    v_leak : float
        Voltage the storage node leaks towards, V.
    vth : float
        Threshold voltage of the read transistor, V.
    vth_sigma : float
        Cell-to-cell standard deviation of the threshold, V.
    slope_n : float
        Sub-threshold slope factor.
    v_ds : float
        Drain-source voltage of the read transistor while reading, V.
    i_max : float
        Read current of a cell storing ``v_max``, A.
    t_max : float
        Longest input pulse (full-scale input), s.
    token_period : float
        Time between two generated tokens (between two writes of a window), s.
    """

    v_min: float = 0.0
    v_max: float = 0.9
    v_offset: float = 0.45
    write_levels: int = 8
    c_store: float = 1.0e-15
    sigma_injection: float = 5.0e-3
    temperature: float = 300.0
    tau: float = 5.0e-3
    tau_sigma_ln: float = 0.5
    v_leak: float = 0.0
    vth: float = 0.2
    vth_sigma: float = 0.015
    slope_n: float = 1.3
    v_ds: float = 0.1
    i_max: float = 100e-9
    t_max: float = 15e-9
    token_period: float = 1.0e-6

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ checks and files
    def validate(self) -> "GainCellModel":
        """Raise :class:`GainCellError` naming the first impossible parameter."""
        if not self.v_min < self.v_offset < self.v_max:
            raise GainCellError(f"need v_min < v_offset < v_max, got {self.v_min}, "
                                f"{self.v_offset}, {self.v_max} V")
        positive = ("c_store", "temperature", "tau", "slope_n", "v_ds", "i_max", "t_max",
                    "token_period")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise GainCellError(f"gain cell field {name!r} must be a positive number, "
                                    f"got {value!r}")
        for name in ("sigma_injection", "tau_sigma_ln", "vth_sigma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise GainCellError(f"gain cell field {name!r} must be >= 0, got {value!r}")
        if int(self.write_levels) != self.write_levels or self.write_levels < 0:
            raise GainCellError(f"write_levels must be a non-negative integer, "
                                f"got {self.write_levels!r}")
        if self.i_read(self.v_max) <= self.i_read(self.v_offset):
            raise GainCellError("the read current must grow from v_offset to v_max "
                                f"(vth={self.vth} V is too high for this range)")
        return self

    def replace(self, **changes) -> "GainCellModel":
        """A copy with some parameters changed (validated)."""
        return GainCellModel(**{**asdict(self), **changes})

    @classmethod
    def ideal(cls, **changes) -> "GainCellModel":
        """No write noise, no rounding, no mismatch, practically no leakage (for references)."""
        base = dict(write_levels=0, sigma_injection=0.0, c_store=1.0, tau=1e30,
                    tau_sigma_ln=0.0, vth_sigma=0.0)
        return cls(**{**base, **changes})

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "kind": KIND, "parameters": asdict(self),
                "units": {"v_min": "V", "v_max": "V", "v_offset": "V", "c_store": "F",
                          "sigma_injection": "V", "temperature": "K", "tau": "s",
                          "v_leak": "V", "vth": "V", "vth_sigma": "V", "v_ds": "V",
                          "i_max": "A", "t_max": "s", "token_period": "s"},
                "sources": {k: SOURCES[k] for k in asdict(self)},
                "derived": {"write_noise_std_v": self.write_noise_std,
                            "read_factor_at_v_min": float(self.read_factor(self.v_min))}}

    @classmethod
    def from_dict(cls, doc: dict, where: str = "gain-cell document") -> "GainCellModel":
        if doc.get("kind", KIND) != KIND:
            raise GainCellError(f"{where}: kind is {doc.get('kind')!r}, expected {KIND!r}")
        params = doc.get("parameters")
        if not isinstance(params, dict):
            raise GainCellError(f"{where}: no 'parameters' object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise GainCellError(f"{where}: unknown parameter(s) {', '.join(unknown)}")
        try:
            return cls(**params)
        except GainCellError as err:
            raise GainCellError(f"{where}: {err}") from None

    def save(self, path: str | os.PathLike, **prov) -> Path:
        """Write ``pyaimc.gaincell/1`` JSON with provenance, atomically."""
        doc = self.to_dict()
        doc["provenance"] = provenance(**prov)
        return write_json(path, doc)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GainCellModel":
        doc = read_json(path, SCHEMA)
        return cls.from_dict(doc, where=str(path))

    # ------------------------------------------------------------------ write
    @property
    def write_noise_std(self) -> float:
        """Standard deviation of the stored voltage after a write, V (kT/C and injection)."""
        return math.sqrt(K_BOLTZMANN * self.temperature / self.c_store
                         + self.sigma_injection ** 2)

    def quantize(self, u):
        """Round target voltages to the write DAC's levels (no rounding if levels < 2), V."""
        if self.write_levels < 2:
            return u
        step = (self.v_max - self.v_min) / (self.write_levels - 1)
        if _is_torch(u):
            import torch

            return torch.round((u - self.v_min) / step) * step + self.v_min
        return np.round((np.asarray(u, dtype=np.float64) - self.v_min) / step) * step + self.v_min

    def write(self, u, rng: np.random.Generator):
        """Stored voltages after writing targets ``u`` (V): rounded, noisy, clipped to the rails.

        Parameters
        ----------
        u : array_like, V
        rng : numpy.random.Generator
        """
        u = np.clip(np.asarray(u, dtype=np.float64), self.v_min, self.v_max)
        v = self.quantize(u) + rng.normal(0.0, self.write_noise_std, size=u.shape)
        return np.clip(v, self.v_min, self.v_max)

    # ------------------------------------------------------------------ retention
    def sample_tau(self, shape, rng: np.random.Generator) -> np.ndarray:
        """Retention time constants of ``shape`` cells, s (log-normal around ``tau``)."""
        return self.tau * np.exp(self.tau_sigma_ln * rng.standard_normal(shape))

    def sample_vth_offset(self, shape, rng: np.random.Generator) -> np.ndarray:
        """Threshold offsets of ``shape`` read transistors, V."""
        return self.vth_sigma * rng.standard_normal(shape)

    def retention(self) -> "GainCellRetention":
        """This technology's leakage as a noise-model retention part (kind ``gain_cell_leak``)."""
        return GainCellRetention.from_model(self)

    def decay(self, v0, t, tau):
        """Stored voltage ``t`` s after it was ``v0`` (V), in cells with time constants ``tau``."""
        return self.v_leak + (v0 - self.v_leak) * _exp(-t / tau)

    # ------------------------------------------------------------------ read
    def _ekv(self, v, dvth=0.0):
        # EKV interpolation: forward minus reverse inversion charge squared, normalised to
        # the specific current (sub-threshold exponential, square law / triode above threshold)
        ut = K_BOLTZMANN * self.temperature / Q_ELECTRON
        vp = (v - self.vth - dvth) / self.slope_n
        return _softplus(vp / (2 * ut)) ** 2 - _softplus((vp - self.v_ds) / (2 * ut)) ** 2

    @property
    def i_spec(self) -> float:
        """Specific current of the read transistor that gives ``i_max`` at ``v_max``, A."""
        return self.i_max / float(self._ekv(self.v_max))

    def i_read(self, v, dvth=0.0):
        """Read current of cells storing ``v`` (V) with threshold offsets ``dvth`` (V), A."""
        return self.i_spec * self._ekv(v, dvth)

    def read_factor(self, v, dvth=0.0):
        """Signed, normalised read factor ``g(v)``: 0 at ``v_offset``, 1 at ``v_max``.

        The charge a cell adds to its bit line for a full-scale input pulse is
        ``g(v) * (I(v_max) - I(v_offset)) * t_max`` after the reference is subtracted.
        """
        i0 = float(self._ekv(self.v_offset))
        return (self._ekv(v, dvth) - i0) / (float(self._ekv(self.v_max)) - i0)

    def read_range(self) -> tuple[float, float]:
        """Smallest and largest read factor a nominal cell can give (at v_min and v_max)."""
        return float(self.read_factor(self.v_min)), 1.0

    def inverse_read_factor(self, g) -> np.ndarray:
        """Stored voltage (V) whose nominal read factor is ``g`` (clipped to the cell's range)."""
        grid = np.linspace(self.v_min, self.v_max, 2001)
        return np.interp(np.asarray(g, dtype=np.float64), self.read_factor(grid), grid)


# --------------------------------------------------------------------------- noise-model plug-in
@register(RETENTION_MODELS)
class GainCellRetention:
    """The gain cell's leakage as a retention kind of the noise model (kind ``"gain_cell_leak"``).

    The protocol's stored state is a ReRAM cell's conductance; for a gain cell it is the storage
    node's voltage (V), and "programming" is the write. After ``t`` seconds a cell written to
    ``v`` holds ``v_leak + (v - v_leak) exp(-t / tau_cell)``, with ``tau_cell`` log-normal around
    ``tau`` (drawn per cell from ``rng``; the median without one).

    Attributes
    ----------
    tau : float
        Median time constant, s.
    tau_sigma_ln : float
        Standard deviation of ``ln tau`` from cell to cell.
    v_leak : float
        Voltage the node leaks towards, V.
    """

    kind = "gain_cell_leak"
    is_identity = False

    def __init__(self, tau: float = 5e-3, tau_sigma_ln: float = 0.5, v_leak: float = 0.0):
        self.tau, self.tau_sigma_ln, self.v_leak = float(tau), float(tau_sigma_ln), float(v_leak)

    @classmethod
    def from_model(cls, model: "GainCellModel") -> "GainCellRetention":
        return cls(model.tau, model.tau_sigma_ln, model.v_leak)

    def conductance_at(self, g, t: float, rng: np.random.Generator | None = None,
                       temperature: float | None = None) -> np.ndarray:
        """Stored voltages (V) ``t`` seconds after writing ``g`` (V)."""
        if not np.all(np.asarray(t) >= 0):
            raise ValueError(f"times after the write must be >= 0 s, got {t}")
        v = np.asarray(g, dtype=np.float64)
        tau = (self.tau * np.exp(self.tau_sigma_ln * rng.standard_normal(v.shape))
               if rng is not None else self.tau)
        return self.v_leak + (v - self.v_leak) * np.exp(-np.asarray(t) / tau)

    def torch_drift(self, g, t: float, generator=None, temperature: float | None = None):
        """The torch form of :meth:`conductance_at` (cells drawn from ``generator``)."""
        import torch

        if not t >= 0:
            raise ValueError(f"t must be >= 0 s, got {t}")
        if generator is not None:
            z = torch.randn(g.shape, generator=generator, dtype=torch.float64)
            tau = self.tau * torch.exp(self.tau_sigma_ln * z)
        else:
            tau = torch.full(g.shape, self.tau, dtype=torch.float64)
        keep = torch.exp(-t / tau).to(g.dtype)
        return self.v_leak + (g - self.v_leak) * keep

    def validate(self, fail) -> None:
        if not (math.isfinite(self.tau) and self.tau > 0):
            fail(f"retention.tau_s must be > 0 s, got {self.tau}")
        if not (math.isfinite(self.tau_sigma_ln) and self.tau_sigma_ln >= 0):
            fail(f"retention.tau_sigma_ln must be >= 0, got {self.tau_sigma_ln}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tau_s": self.tau, "tau_sigma_ln": self.tau_sigma_ln,
                "v_leak_v": self.v_leak}

    @classmethod
    def from_dict(cls, d: dict) -> "GainCellRetention":
        return cls(d["tau_s"], d.get("tau_sigma_ln", 0.0), d.get("v_leak_v", 0.0))

    def __eq__(self, other) -> bool:
        return isinstance(other, GainCellRetention) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f"GainCellRetention(tau={self.tau:g}, tau_sigma_ln={self.tau_sigma_ln:g}, "
                f"v_leak={self.v_leak:g})")

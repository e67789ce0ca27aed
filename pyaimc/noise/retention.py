"""Retention in the noise model: the conductance at a time after programming.

The time axis of the noise model: every layer and deployment takes ``t_inference`` (s after
programming) and asks the noise model's retention part for the conductances then. Kind
``"none"`` keeps every conductance as programmed (the instant of programming, at any time);
kind ``"relaxation"`` draws them from a fitted relaxation model
(:class:`~pyaimc.device.relaxation.RelaxationModel`: G(t) given G(0), heavy-tailed, growing
with log time, extrapolated beyond the measured times as its docstring states).
"""

from __future__ import annotations

import numpy as np

from pyaimc.device.relaxation import RelaxationModel
from pyaimc.noise.protocols import RETENTION_MODELS, register


@register(RETENTION_MODELS)
class NoRetention:
    """No change after programming (kind ``"none"``)."""

    kind = "none"
    is_identity = True

    def conductance_at(self, g, t: float, rng: np.random.Generator | None = None,
                       temperature: float | None = None) -> np.ndarray:
        """Conductances (S) at ``t`` seconds after programming to ``g`` (S): ``g``."""
        if not np.all(np.asarray(t) >= 0):
            raise ValueError(f"times after programming must be >= 0 s, got {t}")
        return np.asarray(g, dtype=np.float64)

    def torch_drift(self, g, t: float, generator=None, temperature: float | None = None):
        """The torch form of :meth:`conductance_at`: ``g`` unchanged."""
        if not t >= 0:
            raise ValueError(f"t_inference must be >= 0 s, got {t}")
        return g

    def validate(self, fail) -> None:
        pass

    def to_dict(self) -> dict:
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict) -> "NoRetention":
        return cls()

    def __eq__(self, other) -> bool:
        return isinstance(other, NoRetention)

    def __repr__(self) -> str:
        return "NoRetention()"


@register(RETENTION_MODELS)
class RelaxationRetention:
    """Fitted conductance relaxation (kind ``"relaxation"``).

    Parameters
    ----------
    model : RelaxationModel
        The relaxation part of a device model.
    temperature_c : float, optional
        Constant temperature since programming, C (default: that of the relaxation records;
        another needs a model fitted with bake records).
    source : str
        Where the relaxation part came from (recorded in the file).

    Notes
    -----
    One call draws the conductances at one time. Calls for several times with generators in the
    same state draw the same standard-normal residual per cell: each cell then keeps its rank
    (a cell that relaxes far at one time does so at every time), the limit ``rho -> 1`` of the
    model's path correlation.
    """

    kind = "relaxation"
    is_identity = False

    def __init__(self, model: RelaxationModel, temperature_c: float | None = None,
                 source: str = ""):
        self.model = model
        self.temperature_c = None if temperature_c is None else float(temperature_c)
        self.source = source

    def _temperature(self, temperature):
        return self.temperature_c if temperature is None else float(temperature)

    def conductance_at(self, g, t: float, rng: np.random.Generator | None = None,
                       temperature: float | None = None) -> np.ndarray:
        """Conductances (S, shape of ``g``) at ``t`` seconds after programming to ``g`` (S)."""
        g = np.asarray(g, dtype=np.float64)
        if not np.all(np.asarray(t) >= 0):
            raise ValueError(f"times after programming must be >= 0 s, got {t}")
        if float(t) == 0:
            return g
        if rng is None:
            raise ValueError("relaxation retention draws random conductances: give an rng")
        out = self.model.relax(g.ravel(), [float(t)], rng, self._temperature(temperature))
        return out[:, 0].reshape(g.shape)

    def drift_of(self, g: np.ndarray, z: np.ndarray, t: float,
                 temperature: float | None = None) -> np.ndarray:
        """``G(t) - G(0)`` (S) of cells ``g`` (S) for standard-normal residuals ``z`` (same
        shape): the deterministic map the samplers use."""
        m, v = self.model.moments(g.ravel(), [float(t)], self._temperature(temperature))
        d = m[:, 0] + np.sqrt(v[:, 0]) * self.model.residual(z.ravel(), g.ravel())
        floor = np.minimum(self.model.g_floor_, g.ravel())  # the model's floor (or g itself)
        return np.maximum(d, floor - g.ravel()).reshape(g.shape)

    def torch_drift(self, g, t: float, generator=None, temperature: float | None = None):
        """The torch form of :meth:`conductance_at` (no gradient: callers that train add the
        drift to ``g`` straight-through)."""
        import torch

        if not t >= 0:
            raise ValueError(f"t_inference must be >= 0 s, got {t}")
        if t == 0:
            return g
        z = torch.randn(g.shape, generator=generator, dtype=torch.float64, device=g.device)
        gn = g.detach().to(torch.float64).cpu().numpy()
        d = self.drift_of(gn, z.cpu().numpy(), t, temperature)
        return g.detach() + torch.as_tensor(d, dtype=g.dtype, device=g.device)

    def validate(self, fail) -> None:
        m = self.model
        if getattr(m, "mean_", None) is None:
            fail("retention: the relaxation model is not fitted")
        if self.temperature_c is not None and self.temperature_c > m.t_ref_c \
                and m.temps_c_ is None:
            fail(f"retention: temperature {self.temperature_c} C needs a relaxation model "
                 f"fitted with bake records")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "temperature_c": self.temperature_c, "source": self.source,
                "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "RelaxationRetention":
        return cls(RelaxationModel.from_dict(d["model"], "retention.model"),
                   d.get("temperature_c"), d.get("source", ""))

    def __eq__(self, other) -> bool:
        if not isinstance(other, RelaxationRetention):
            return False
        a, b = self.model, other.model
        return (self.temperature_c == other.temperature_c
                and a.technology_ == b.technology_
                and np.array_equal(a.mean_, b.mean_) and np.array_equal(a.var_, b.var_)
                and np.array_equal(a.g_knots_, b.g_knots_))

    def describe(self) -> str:
        """One line: technology, source, temperature."""
        temp = f", {self.temperature_c:g} C" if self.temperature_c is not None else ""
        return f"{self.model.technology_ or 'unnamed'}, from {self.source or '?'}{temp}"

    def __repr__(self) -> str:
        return (f"RelaxationRetention({self.model.technology_ or 'unnamed'}, "
                f"temperature_c={self.temperature_c})")

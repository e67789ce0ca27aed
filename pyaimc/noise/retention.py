"""Retention in the noise model: the conductance at a time after programming.

The time axis of the noise model: every layer and deployment takes ``t_inference`` (s after
programming) and asks the noise model's retention part for the conductances then. Kind
``"none"`` keeps every conductance as programmed (the instant of programming, at any time);
fitted relaxation models register further kinds.
"""

from __future__ import annotations

import numpy as np

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

"""Monotone marginal transforms between a feature's standardized residuals and a standard normal.

The transform is a table: knots ``x_k`` equally spaced in standard-normal space and the matching
empirical quantiles ``u_k`` of the data. Between knots it is linear, beyond the ends it continues
with the end segments' slopes. A table is exact to export (Verilog-A evaluates the same
piecewise-linear function) and fast to evaluate: with equal spacing in ``x`` the segment index of a
normal value is one multiply, no search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special


@dataclass
class MarginalTransform:
    """Piecewise-linear monotone map ``u = to_data(x)`` with ``x ~ N(0, 1)``.

    Attributes
    ----------
    x_knots : ndarray, shape (K,)
        Equally spaced knots in standard-normal space (dimensionless).
    u_knots : ndarray, shape (K,)
        Strictly increasing values of the feature residual at those knots.
    """

    x_knots: np.ndarray
    u_knots: np.ndarray

    def __post_init__(self) -> None:
        self.x_knots = np.asarray(self.x_knots, dtype=np.float64)
        self.u_knots = np.asarray(self.u_knots, dtype=np.float64)
        if self.x_knots.shape != self.u_knots.shape or self.x_knots.ndim != 1:
            raise ValueError("x_knots and u_knots must be 1-D arrays of equal length")
        if len(self.x_knots) < 3:
            raise ValueError("a marginal transform needs at least 3 knots")
        if np.any(np.diff(self.u_knots) <= 0) or np.any(np.diff(self.x_knots) <= 0):
            raise ValueError("marginal transform knots must be strictly increasing")
        step = np.diff(self.x_knots)
        if not np.allclose(step, step[0], rtol=1e-9, atol=0):
            raise ValueError("x_knots must be equally spaced")
        self._x0 = float(self.x_knots[0])
        self._dx = float(step[0])
        self._slope = np.diff(self.u_knots) / step

    @classmethod
    def fit(cls, u: np.ndarray, n_knots: int = 81, x_max: float = 4.0) -> "MarginalTransform":
        """Fit the table to samples ``u`` (NaN ignored).

        Parameters
        ----------
        u : array
            Samples of the standardized residual, any shape.
        n_knots : int
            Number of knots; equally spaced on ``[-x_max, x_max]`` in normal space.
        x_max : float
            Outermost knot in standard deviations. Beyond the data's reach (fewer than about
            10 samples past a knot) the outer knots are placed by linear extrapolation.
        """
        u = np.asarray(u, dtype=np.float64).ravel()
        u = np.sort(u[np.isfinite(u)])
        n = len(u)
        if n < 50:
            raise ValueError(f"need at least 50 values to fit a marginal transform, got {n}")
        x = np.linspace(-x_max, x_max, n_knots)
        prob = special.ndtr(x)
        # tail knots need enough samples beyond them to be estimated; clamp the reach
        reach = special.ndtri(np.clip(10.0 / n, 1e-12, 0.49))
        inside = np.abs(x) <= abs(reach)
        q = np.quantile(u, prob[inside], method="linear")
        xin = x[inside]
        u_knots = np.empty(n_knots)
        u_knots[inside] = q
        lo, hi = np.flatnonzero(inside)[[0, -1]]
        if lo > 0:  # extrapolate the outer knots with the slope of the last two fitted ones
            s = (q[1] - q[0]) / (xin[1] - xin[0])
            u_knots[:lo] = q[0] + s * (x[:lo] - xin[0])
        if hi < n_knots - 1:
            s = (q[-1] - q[-2]) / (xin[-1] - xin[-2])
            u_knots[hi + 1:] = q[-1] + s * (x[hi + 1:] - xin[-1])
        u_knots = _make_strictly_increasing(u_knots)
        return cls(x, u_knots)

    def to_data(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Map standard-normal values to residual space (vectorised, any shape)."""
        x = np.asarray(x)
        k = np.floor((x - self._x0) / self._dx)
        np.clip(k, 0, len(self.x_knots) - 2, out=k)
        k = k.astype(np.intp)
        slope = self._slope.astype(x.dtype, copy=False) if x.dtype == np.float32 else self._slope
        u0 = self.u_knots.astype(x.dtype, copy=False) if x.dtype == np.float32 else self.u_knots
        xk = self.x_knots.astype(x.dtype, copy=False) if x.dtype == np.float32 else self.x_knots
        res = np.subtract(x, xk[k], out=out)
        res *= slope[k]
        res += u0[k]
        return res

    def to_normal(self, u: np.ndarray) -> np.ndarray:
        """Map residual values to standard-normal space (inverse of :meth:`to_data`)."""
        u = np.asarray(u, dtype=np.float64)
        k = np.searchsorted(self.u_knots, u, side="right") - 1
        np.clip(k, 0, len(self.u_knots) - 2, out=k)
        return self.x_knots[k] + (u - self.u_knots[k]) / self._slope[k]

    def to_dict(self) -> dict:
        return {"kind": "piecewise_linear", "x_knots": self.x_knots, "u_knots": self.u_knots}

    @classmethod
    def from_dict(cls, d: dict) -> "MarginalTransform":
        if d.get("kind") != "piecewise_linear":
            raise ValueError(f"unknown marginal transform kind {d.get('kind')!r}")
        return cls(np.asarray(d["x_knots"]), np.asarray(d["u_knots"]))

    def polynomial(self, degree: int = 7) -> np.ndarray:
        """Least-squares polynomial approximation of ``to_data`` on ``[-3, 3]``.

        Returns coefficients, highest power first (``numpy.polyval`` order), for tools that
        prefer a polynomial to a table. The table stays the reference.
        """
        x = np.linspace(-3, 3, 601)
        return np.polyfit(x, self.to_data(x), degree)


def _make_strictly_increasing(u: np.ndarray) -> np.ndarray:
    # ties in quantiles of discretised data would make the inverse undefined
    u = u.copy()
    span = max(u[-1] - u[0], 1e-12)
    eps = span * 1e-9
    for i in range(1, len(u)):
        if u[i] <= u[i - 1]:
            u[i] = u[i - 1] + eps
    return u

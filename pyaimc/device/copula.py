"""Correlation through monotone transforms of normals (the NORTA mapping).

If ``(X, Y)`` is standard bivariate normal with correlation ``rho``, the Pearson correlation of
``T_i(X)`` and ``T_j(Y)`` is a monotone function ``g_ij(rho)``. Heavy-tailed transforms shrink it
(``|g(rho)| < |rho|``). The VAR lives in normal space, the data's statistics in their own space:
to reproduce the data's correlations the VAR is fitted to ``g^{-1}`` of them.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from pyaimc.device.marginal import MarginalTransform

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


class CopulaMap:
    """``g(rho)`` for one pair of marginal transforms, evaluated by Gauss-Hermite quadrature."""

    def __init__(self, ti: MarginalTransform, tj: MarginalTransform):
        self.ti, self.tj = ti, tj
        x = _NODES
        ui = ti.to_data(x)
        self.mi = float(_WEIGHTS @ ui)
        self.si = float(np.sqrt(_WEIGHTS @ (ui - self.mi) ** 2))
        uj = tj.to_data(x)
        self.mj = float(_WEIGHTS @ uj)
        self.sj = float(np.sqrt(_WEIGHTS @ (uj - self.mj) ** 2))
        self._ui = ui - self.mi
        self._w2 = np.outer(_WEIGHTS, _WEIGHTS)

    def __call__(self, rho: float) -> float:
        rho = float(np.clip(rho, -0.9999, 0.9999))
        x, z = _NODES[:, None], _NODES[None, :]
        y = rho * x + np.sqrt(1 - rho * rho) * z
        uj = self.tj.to_data(y) - self.mj
        return float(np.sum(self._w2 * self._ui[:, None] * uj) / (self.si * self.sj))

    def inverse(self, target: float) -> float:
        """``rho`` with ``g(rho) = target`` (clipped to the reachable range)."""
        lo, hi = self(-0.9999), self(0.9999)
        if target <= lo:
            return -0.9999
        if target >= hi:
            return 0.9999
        return float(optimize.brentq(lambda r: self(r) - target, -0.9999, 0.9999, xtol=1e-10))


def normal_space_targets(u: np.ndarray, scale: np.ndarray, marginals: list, max_lag: int
                         ) -> np.ndarray:
    """Normal-space correlations that reproduce the data's own-space correlations.

    Parameters
    ----------
    u : ndarray (D, T, F)
        Per-device standardised residuals (NaN allowed).
    scale : ndarray (D, F)
        Each device's scale; lagged terms are weighted by it as the pooled autocorrelation of the
        fidelity statistics does (sums over devices of unstandardised products). Lag-0 cross terms
        are unweighted, as the cross-correlation statistic standardises every device.
    marginals : list of MarginalTransform
    max_lag : int

    Returns
    -------
    ndarray (max_lag + 1, F, F): target correlation ``R(k)[i, j] = corr(x_{n+k, i}, x_{n, j})``.
    """
    d, t, f = u.shape
    z = np.where(np.isfinite(u), u, 0.0)
    present = np.isfinite(u).astype(float)
    target = np.empty((max_lag + 1, f, f))
    maps = {}
    for k in range(max_lag + 1):
        a, b = z[:, k:], z[:, :t - k]
        pa, pb = present[:, k:], present[:, :t - k]
        for i in range(f):
            for j in range(f):
                if k == 0 and i == j:
                    target[k, i, j] = 1.0
                    continue
                w = np.ones(d) if k == 0 else scale[:, i] * scale[:, j]
                num = np.sum(w * np.sum(a[:, :, i] * b[:, :, j], axis=1))
                den_i = np.sum(w * np.sum(pa[:, :, i] * pb[:, :, j] * a[:, :, i] ** 2, axis=1))
                den_j = np.sum(w * np.sum(pa[:, :, i] * pb[:, :, j] * b[:, :, j] ** 2, axis=1))
                corr = num / np.sqrt(den_i * den_j)
                key = (i, j)
                if key not in maps:
                    maps[key] = CopulaMap(marginals[i], marginals[j])
                target[k, i, j] = maps[key].inverse(corr)
    return target

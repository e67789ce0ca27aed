"""Device-to-device variation: a Gaussian mixture over each device's location and log-scale."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.mixture import GaussianMixture


@dataclass
class DeviceMixture:
    """Joint distribution of per-device parameters ``theta = (mu_1..mu_F, log sigma_1..log sigma_F)``.

    Attributes
    ----------
    weights : ndarray (K,)
    means : ndarray (K, 2F)
    chols : ndarray (K, 2F, 2F)
        Lower Cholesky factors of the component covariances.
    bic : dict
        BIC per candidate component count (for the report).
    """

    weights: np.ndarray
    means: np.ndarray
    chols: np.ndarray
    bic: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.float64)
        self.means = np.asarray(self.means, dtype=np.float64)
        self.chols = np.asarray(self.chols, dtype=np.float64)
        k, dim = self.means.shape
        if self.weights.shape != (k,) or self.chols.shape != (k, dim, dim):
            raise ValueError("mixture weights, means and Cholesky factors do not agree in shape")
        self.weights = self.weights / self.weights.sum()

    @property
    def n_components(self) -> int:
        return len(self.weights)

    @classmethod
    def fit(cls, theta: np.ndarray, max_components: int = 6, rng: np.random.Generator | None = None,
            n_init: int = 5) -> "DeviceMixture":
        """Fit mixtures of 1..max_components full-covariance Gaussians; keep the lowest BIC.

        Parameters
        ----------
        theta : ndarray (D, 2F)
            Per-device parameters.
        max_components : int
            Largest count tried; capped so every component can have at least ``2F + 2`` devices.
        rng : Generator, optional
            Seeds scikit-learn's initialisation.
        n_init : int
            Restarts of EM per count.
        """
        theta = np.asarray(theta, dtype=np.float64)
        n, dim = theta.shape
        if n < dim + 2:
            raise ValueError(f"need at least {dim + 2} devices to fit the device-to-device "
                             f"distribution of {dim // 2} features, got {n}")
        rng = rng if rng is not None else np.random.default_rng(0)
        kmax = max(1, min(int(max_components), n // (dim + 2)))
        best, bics = None, {}
        for k in range(1, kmax + 1):
            gm = GaussianMixture(k, covariance_type="full", n_init=n_init, reg_covar=1e-6,
                                 random_state=int(rng.integers(2**31 - 1)), max_iter=500)
            gm.fit(theta)
            bics[k] = float(gm.bic(theta))
            if best is None or bics[k] < bics[best[0]]:
                best = (k, gm)
        gm = best[1]
        order = np.argsort(-gm.weights_)  # largest component first
        chols = np.linalg.cholesky(gm.covariances_[order])
        return cls(gm.weights_[order], gm.means_[order], chols, {str(k): v for k, v in bics.items()})

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` devices: returns (theta (n, 2F), component index (n,))."""
        comp = rng.choice(self.n_components, size=n, p=self.weights)
        z = rng.standard_normal((n, self.means.shape[1]))
        theta = self.means[comp] + np.einsum("nij,nj->ni", self.chols[comp], z)
        return theta, comp

    def predict(self, theta: np.ndarray) -> np.ndarray:
        """Most probable component of each device (n,)."""
        theta = np.atleast_2d(theta)
        logp = np.stack([self._log_pdf(theta, k) + np.log(self.weights[k])
                         for k in range(self.n_components)], axis=1)
        return np.argmax(logp, axis=1)

    def _log_pdf(self, theta: np.ndarray, k: int) -> np.ndarray:
        from scipy.linalg import solve_triangular

        diff = theta - self.means[k]
        z = solve_triangular(self.chols[k], diff.T, lower=True)
        logdet = 2 * np.sum(np.log(np.diag(self.chols[k])))
        return -0.5 * (np.sum(z * z, axis=0) + logdet + theta.shape[1] * np.log(2 * np.pi))

    def to_dict(self) -> dict:
        return {"n_components": self.n_components, "weights": self.weights, "means": self.means,
                "chols": self.chols, "bic": self.bic}

    @classmethod
    def from_dict(cls, d: dict) -> "DeviceMixture":
        return cls(np.asarray(d["weights"]), np.asarray(d["means"]), np.asarray(d["chols"]),
                   d.get("bic", {}))

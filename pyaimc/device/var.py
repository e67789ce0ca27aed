"""Cycle-to-cycle correlation: a vector autoregressive process VAR(p) in standard-normal space.

``x_n = sum_{i=1..p} A_i x_{n-i} + L e_n`` with ``e_n ~ N(0, I)``, pooled over all devices.
Fitted by least squares, order chosen by an information criterion, checked for stability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg


def window_autocovariances(series: np.ndarray, max_lag: int) -> np.ndarray:
    """Pooled autocovariances of per-device demeaned series, as a fidelity check measures them.

    ``out[k][i, j] = sum_d sum_t z[d, t + k, i] * z[d, t, j] / N`` with ``z`` each device's series
    minus its own mean and ``N`` the number of present values (NaN are left out).

    Parameters
    ----------
    series : ndarray (D, T, F)
    max_lag : int

    Returns
    -------
    ndarray (max_lag + 1, F, F)
    """
    z = series - np.nanmean(series, axis=1, keepdims=True)
    present = np.isfinite(z).all(axis=2)
    z = np.where(np.isfinite(z), z, 0.0)
    n = present.sum()
    f = series.shape[2]
    out = np.empty((max_lag + 1, f, f))
    for k in range(max_lag + 1):
        a = z[:, k:].reshape(-1, f)
        b = z[:, :z.shape[1] - k].reshape(-1, f)
        out[k] = a.T @ b / n
    return out


@dataclass
class VARProcess:
    """A fitted VAR(p) process.

    Attributes
    ----------
    coefs : ndarray, shape (p, F, F)
        ``coefs[i]`` multiplies the value ``i + 1`` cycles back.
    noise_chol : ndarray, shape (F, F)
        Lower-triangular Cholesky factor of the innovation covariance.
    criteria : dict
        Information criterion per candidate order from the fit (for the report).
    """

    coefs: np.ndarray
    noise_chol: np.ndarray
    criteria: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.coefs = np.asarray(self.coefs, dtype=np.float64)
        self.noise_chol = np.asarray(self.noise_chol, dtype=np.float64)
        if self.coefs.ndim == 2:  # p = 0 stored as (0, F, F) may arrive flattened
            self.coefs = self.coefs.reshape(0, *self.noise_chol.shape)
        self._stationary_chol = None

    @property
    def order(self) -> int:
        return self.coefs.shape[0]

    @property
    def n_features(self) -> int:
        return self.noise_chol.shape[0]

    def companion(self) -> np.ndarray:
        """Companion matrix (pF x pF) of the process; max(1, p) x F rows for p = 0."""
        p, f = self.order, self.n_features
        if p == 0:
            return np.zeros((f, f))
        comp = np.zeros((p * f, p * f))
        comp[:f] = np.concatenate(list(self.coefs), axis=1)
        comp[f:, :-f] = np.eye((p - 1) * f)
        return comp

    def spectral_radius(self) -> float:
        """Largest eigenvalue modulus of the companion matrix (< 1: stable)."""
        return float(np.max(np.abs(np.linalg.eigvals(self.companion()))))

    def stationary_covariance(self) -> np.ndarray:
        """Covariance of the stacked state ``[x_n, x_{n-1}, ..., x_{n-p+1}]``."""
        p, f = max(self.order, 1), self.n_features
        q = np.zeros((p * f, p * f))
        q[:f, :f] = self.noise_chol @ self.noise_chol.T
        return linalg.solve_discrete_lyapunov(self.companion(), q)

    def autocovariances(self, max_lag: int) -> np.ndarray:
        """Stationary ``R(h) = E[x_{n+h} x_n^T]`` for h = 0..max_lag, shape (max_lag + 1, F, F)."""
        f = self.n_features
        comp = self.companion()
        m = self.stationary_covariance()
        out = np.empty((max_lag + 1, f, f))
        for h in range(max_lag + 1):
            out[h] = m[:f, :f]
            m = comp @ m
        return out

    def expected_window_autocovariances(self, n_cycles: int, max_lag: int) -> np.ndarray:
        """Expected :func:`window_autocovariances` of series of length ``n_cycles`` of this process.

        Exact for a stationary process: demeaning over a finite window lowers the autocovariances
        by the variance of the window mean and its covariance with each value.
        """
        t = int(n_cycles)
        f = self.n_features
        r_pos = self.autocovariances(t - 1)                       # R(0..T-1)
        r_all = np.concatenate([r_pos[:0:-1].transpose(0, 2, 1), r_pos])  # R(-(T-1)..T-1)
        cs = np.concatenate([np.zeros((1, f, f)), np.cumsum(r_all, axis=0)])

        def rsum(lo, hi):  # sum of R(h) for h in [lo, hi], vectorised over arrays lo, hi
            return cs[hi + t] - cs[lo + t - 1]

        m = np.arange(1, t + 1)
        p_m = rsum(m - t, m - 1)          # sum_s R(m - s)
        q_t = rsum(1 - m, t - m)          # sum_s R(s - t)
        h = np.arange(-(t - 1), t)
        mean_var = np.tensordot(t - np.abs(h), r_all, axes=1) / t**2
        out = np.empty((max_lag + 1, f, f))
        for k in range(max_lag + 1):
            n_terms = t - k
            out[k] = (n_terms * r_pos[k] - p_m[k:].sum(axis=0) / t - q_t[:n_terms].sum(axis=0) / t
                      + n_terms * mean_var) / t
        return out

    def window_mean_variance(self, n_cycles: int) -> np.ndarray:
        """Variance of each feature's mean over a window of ``n_cycles`` (F,)."""
        t = int(n_cycles)
        r_pos = self.autocovariances(t - 1)
        lags = np.arange(1, t)
        total = np.diagonal(r_pos[0]) + 2 * np.tensordot(t - lags, np.diagonal(r_pos[1:], axis1=1,
                                                                               axis2=2), axes=1) / t
        return total / t

    @classmethod
    def from_autocovariances(cls, acov: np.ndarray, order: int) -> "VARProcess":
        """Yule-Walker: the VAR(order) whose autocovariances at lags 0..order equal ``acov``."""
        f = acov.shape[1]
        if order == 0:
            return cls(np.zeros((0, f, f)), linalg.cholesky(acov[0], lower=True))

        def r(h):
            return acov[h] if h >= 0 else acov[-h].T

        big = np.block([[r(h - i) for h in range(1, order + 1)] for i in range(1, order + 1)])
        rhs = np.concatenate([acov[h] for h in range(1, order + 1)], axis=1)
        coef_stack = linalg.solve(big.T, rhs.T).T              # [A_1 ... A_p]
        coefs = coef_stack.reshape(f, order, f).transpose(1, 0, 2)
        sigma = acov[0] - sum(coefs[i] @ r(i + 1).T for i in range(order))
        sigma = 0.5 * (sigma + sigma.T)
        return cls(coefs, linalg.cholesky(sigma, lower=True))

    def normalized(self) -> "VARProcess":
        """The same process rescaled to unit stationary variance per feature."""
        scale = np.sqrt(np.diagonal(self.stationary_covariance())[:self.n_features])
        d, dinv = np.diag(scale), np.diag(1 / scale)
        coefs = np.stack([dinv @ a @ d for a in self.coefs]) if self.order else self.coefs
        return VARProcess(coefs, dinv @ self.noise_chol, dict(self.criteria))

    def initial_history(self, n: int, rng: np.random.Generator,
                        dtype=np.float64) -> np.ndarray:
        """Draw ``n`` stationary histories, shape (n, p, F), newest first (``[:, 0]`` = x_{n-1})."""
        p, f = self.order, self.n_features
        if p == 0:
            return np.zeros((n, 0, f), dtype=dtype)
        cov = self.stationary_covariance()
        chol = linalg.cholesky(cov + 1e-12 * np.eye(len(cov)), lower=True)
        z = rng.standard_normal((n, p * f))
        return (z @ chol.T).reshape(n, p, f).astype(dtype, copy=False)

    def predict(self, history: np.ndarray) -> np.ndarray:
        """Conditional mean of the next value given ``history`` (n, p, F), newest first."""
        n, p, f = history.shape
        if p == 0:
            return np.zeros((n, f), dtype=history.dtype)
        stacked = self.coefs.transpose(0, 2, 1).reshape(p * f, f).astype(history.dtype)
        return history.reshape(n, p * f) @ stacked

    def step(self, history: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw the next value for each row of ``history`` and shift it in (in place).

        Returns the new values, shape (n, F).
        """
        x = self.predict(history)
        e = rng.standard_normal(x.shape, dtype=history.dtype if history.dtype in
                                (np.float32, np.float64) else np.float64)
        x += e @ self.noise_chol.T.astype(x.dtype)
        if self.order:
            history[:, 1:] = history[:, :-1]
            history[:, 0] = x
        return x

    def simulate(self, n_series: int, n_steps: int, rng: np.random.Generator,
                 dtype=np.float64, progress: bool = False) -> np.ndarray:
        """Simulate stationary series, shape (n_series, n_steps, F) (progress bar optional)."""
        from tqdm.auto import tqdm

        f, p = self.n_features, self.order
        out = np.empty((n_series, n_steps, f), dtype=dtype)
        hist = self.initial_history(n_series, rng, dtype)
        lt = self.noise_chol.T.astype(dtype)
        stacked = (self.coefs.transpose(0, 2, 1).reshape(p * f, f).astype(dtype)
                   if p else None)
        # innovations in blocks keep memory flat and the loop light
        block = 256
        for start in tqdm(range(0, n_steps, block), desc="VAR cycles", unit="block",
                          disable=not progress, leave=False):
            stop = min(start + block, n_steps)
            e = rng.standard_normal((stop - start, n_series, f)).astype(dtype, copy=False) @ lt
            for t in range(start, stop):
                x = e[t - start]
                if p:
                    x = x + hist.reshape(n_series, p * f) @ stacked
                    hist[:, 1:] = hist[:, :-1]
                    hist[:, 0] = x
                out[:, t] = x
        return out

    @classmethod
    def fit(cls, series: np.ndarray, max_order: int = 10, criterion: str = "bic",
            window_correction: bool = True, target_correlation: np.ndarray | None = None
            ) -> "VARProcess":
        """Fit a pooled VAR to ``series`` (devices x cycles x features), NaN allowed.

        Every candidate order 0..max_order is fitted by least squares on the same rows (those with a
        complete window of ``max_order + 1`` cycles), so the criteria are comparable; the order with
        the lowest criterion among stable fits wins.

        Parameters
        ----------
        series : ndarray (D, T, F)
        max_order : int
            Largest order tried (>= 0).
        criterion : {"bic", "aic"}
        window_correction : bool
            Refine the chosen order so that series as long as the data's, each demeaned over its
            own window, reproduce the data's demeaned autocovariances (see
            :func:`_correct_for_window`). Matters for short records (hundreds of cycles) of
            persistent processes; negligible for long ones.
        target_correlation : ndarray (max_order + 1, F, F), optional
            Window correlations to reproduce instead of the series' own (e.g. normal-space
            targets from :func:`pyaimc.device.copula.normal_space_targets`); lags beyond the chosen
            order are ignored. Falls back to the series' own if no stable fit matches them.
        """
        series = np.asarray(series, dtype=np.float64)
        if series.ndim != 3:
            raise ValueError(f"series must be devices x cycles x features, got {series.shape}")
        if criterion not in ("bic", "aic"):
            raise ValueError(f"criterion must be 'bic' or 'aic', got {criterion!r}")
        d, t, f = series.shape
        pmax = int(max_order)
        if pmax < 0 or t <= pmax + 1:
            raise ValueError(f"max_order {max_order} needs more than {pmax + 1} cycles, got {t}")
        m = (pmax + 1) * f
        gram = np.zeros((m, m))
        n_rows = 0
        for i in range(d):
            # window rows: [x_t, x_{t-1}, ..., x_{t-pmax}]
            win = np.lib.stride_tricks.sliding_window_view(series[i], pmax + 1, axis=0)
            win = win[:, :, ::-1].transpose(0, 2, 1).reshape(-1, m)
            win = win[np.isfinite(win).all(axis=1)]
            gram += win.T @ win
            n_rows += len(win)
        if n_rows < 10 * m:
            # the largest order this data supports, for the hint
            fit_order = max((q for q in range(pmax) if n_rows + d * (pmax - q)
                             >= 10 * (q + 1) * f), default=0)
            raise ValueError(f"only {n_rows} complete windows of {pmax + 1} cycles; too few to fit "
                             f"a VAR({pmax}) of {f} features (needs {10 * m}); lower the largest "
                             f"order (--max-var-order {fit_order} or less) or give more "
                             f"cells or cycles")
        criteria = {}
        fits = {}
        yy = gram[:f, :f]
        for p in range(pmax + 1):
            if p == 0:
                coef = np.zeros((0, f, f))
                sigma = yy / n_rows
            else:
                xx = gram[f:(p + 1) * f, f:(p + 1) * f]
                xy = gram[f:(p + 1) * f, :f]
                beta = linalg.solve(xx, xy, assume_a="pos")  # (pF, F)
                sigma = (yy - xy.T @ beta) / n_rows
                coef = beta.T.reshape(f, p, f).transpose(1, 0, 2)
            sign, logdet = np.linalg.slogdet(sigma)
            k = p * f * f
            penalty = (np.log(n_rows) if criterion == "bic" else 2.0) * k / n_rows
            proc = cls(coef, linalg.cholesky(sigma, lower=True))
            stable = p == 0 or proc.spectral_radius() < 1.0
            criteria[p] = {"value": float(logdet + penalty), "stable": bool(stable)}
            fits[p] = proc
        stable_orders = [p for p in criteria if criteria[p]["stable"]]
        if not stable_orders:  # pragma: no cover - p = 0 is always stable
            raise ValueError("no stable VAR order found")
        best = min(stable_orders, key=lambda p: criteria[p]["value"])
        out = fits[best]
        info = {"criterion": criterion, "n_rows": n_rows,
                "by_order": {str(p): c for p, c in criteria.items()}}
        if (window_correction or target_correlation is not None) and best > 0:
            own = window_autocovariances(series, best)
            goal = own
            if target_correlation is not None:
                sd = np.sqrt(np.diagonal(own[0]))
                goal = np.asarray(target_correlation)[:best + 1] * np.outer(sd, sd)
            t_win = (int(np.round(np.mean(np.isfinite(series).all(axis=2).sum(axis=1))))
                     if window_correction else None)
            fitted, detail = _match_autocovariances(out, goal, best, t_win)
            if target_correlation is not None and not detail["converged"]:
                fitted, detail = _match_autocovariances(out, own, best, t_win)
                detail["target"] = "own (normal-space target not reachable)"
            else:
                detail["target"] = "given" if target_correlation is not None else "own"
            out, info["autocovariance_match"] = fitted, detail
        out.criteria = info
        return out

    def to_dict(self) -> dict:
        return {"order": self.order, "coefs": self.coefs, "noise_chol": self.noise_chol,
                "spectral_radius": self.spectral_radius(), "criteria": self.criteria}

    @classmethod
    def from_dict(cls, d: dict) -> "VARProcess":
        chol = np.asarray(d["noise_chol"], dtype=np.float64)
        coefs = np.asarray(d["coefs"], dtype=np.float64).reshape(int(d["order"]), *chol.shape)
        return cls(coefs, chol, d.get("criteria", {}))


def _match_autocovariances(proc: VARProcess, goal: np.ndarray, order: int,
                           window: int | None, max_iter: int = 60, tol: float = 1e-5
                           ) -> tuple[VARProcess, dict]:
    """Refine a VAR so that its autocovariances at lags 0..order equal ``goal``.

    With ``window`` (cycles) the goal is compared with the exact expectation of the autocovariances
    of ``window``-long series demeaned over their own window (indirect inference): the data are
    standardised per device, so a least-squares fit sees autocovariances lowered by the window
    mean absorbing slow variation. Iterates Yule-Walker on a corrected target until they agree.
    """
    target = goal.copy()
    current = VARProcess.from_autocovariances(goal, order) if window is None else proc
    gap, it = np.inf, 0
    if window is None:
        ok = current.spectral_radius() < 0.999
        return (current if ok else proc), {"iterations": 0, "max_gap": 0.0, "converged": ok,
                                           "window_cycles": None}
    for it in range(1, max_iter + 1):
        expected = current.expected_window_autocovariances(window, order)
        diff = goal - expected
        gap = float(np.max(np.abs(diff)))
        if gap < tol:
            break
        candidate_target = target + diff
        try:
            candidate = VARProcess.from_autocovariances(candidate_target, order)
        except (np.linalg.LinAlgError, ValueError):
            break
        if not np.all(np.isfinite(candidate.coefs)) or candidate.spectral_radius() >= 0.999:
            break
        target, current = candidate_target, candidate
    return current, {"window_cycles": int(window), "iterations": it, "max_gap": gap,
                     "converged": bool(gap < 1e-3)}

"""Retention of written levels through a wait and a bake: the RADAR retention experiments.

The RADAR chips (``radar_programming/retention``) have no relaxation time series: a cell is
written (its verify read is G at time ~0), read back once at room temperature some time later
(not stated), baked for 30 min, and read again. So their retention model has two steps, each a
conditional distribution of the change of G given G before it, fitted like the relaxation part's
tables (:mod:`pyaimc.device.relaxation`: kernel mean and variance over G knots, a standardized
heavy-tailed residual map):

    wait:  G_pre  = G_w   + m_w(G_w)      + s_w(G_w)      * T_w(z1)
    bake:  G_post = G_pre + m_b(G_pre, T) + s_b(G_pre, T) * T_b(z2)

with the bake tables fitted per bake temperature and interpolated linearly in 1/T (beyond the
measured temperatures the end segments continue; the variance is kept >= 0). The two steps are
drawn independently (the data give one pair of reads per cell and step).

Read windows turn conductances into levels: a cell is in error when its resistance lies outside
its level's read window (a gap between windows is an error too). ``error_rate`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyaimc.data.container import DataError
from pyaimc.device.marginal import MarginalTransform
from pyaimc.device.relaxation import (ZERO_C, _interp_knots, _kernel_moments, _standardized)

#: The RADAR experiments' bake temperatures (C), 30 min bakes, and their stated bit error rates
#: (``radar_programming/retention/README-original.md``). 3bpc5's temperature is not stated:
#: it adjusts experiment 4 (120 C) and is taken at 120 C, flagged ``assumed``.
RADAR_EXPERIMENTS = {
    "3bpc1": {"temp_c": 80.0, "stated_ber": 0.009},
    "3bpc2": {"temp_c": 100.0, "stated_ber": 0.02},
    "3bpc3": {"temp_c": 100.0, "stated_ber": 0.005},
    "3bpc4": {"temp_c": 120.0, "stated_ber": 0.015},
    "3bpc5": {"temp_c": 120.0, "stated_ber": 0.009, "assumed": "temperature"},
    "2bpc1": {"temp_c": 157.0, "stated_ber": 0.115},
    "2bpc2": {"temp_c": 127.0, "stated_ber": 0.027},
    "2bpc4": {"temp_c": 127.0, "stated_ber": None},
}
RADAR_BAKE_S = 1800.0
#: Read windows (resistance, ohm) of the authors' retention analysis (RRAM-RADAR-Tuning,
#: ``exptdata/retention/dist.py``), level 0 = lowest resistance. The 3 bits-per-cell windows
#: start at the README's 4.3 kOhm, the 2 bits-per-cell ones at 5.1 kOhm: the read range of
#: experiment 2bpc4 ("read range reduced to 5.1 kOhm"); experiments 2bpc1-2 read with windows
#: that are not stated (their write windows reach beyond these).
READ_WINDOWS_OHM = {
    3: (np.array([0.0, 4.38e3, 4.84e3, 5.42e3, 6.16e3, 7.19e3, 9.23e3, 35e3]),
        np.array([4.3e3, 4.75e3, 5.3e3, 6.01e3, 6.99e3, 8.9e3, 25e3, np.inf])),
    2: (np.array([0.0, 5.38e3, 6.93e3, 18e3]), np.array([5.1e3, 6.48e3, 14e3, np.inf])),
}


def error_rate(r: np.ndarray, level: np.ndarray, windows) -> float:
    """Fraction of cells whose resistance ``r`` (ohm) is outside its level's read window.

    ``r`` may be (n_cells,) or (n_reads, n_cells) (then the mean over reads).
    """
    lo, hi = windows
    r = np.atleast_2d(r)
    bad = (r < lo[level]) | (r > hi[level])
    return float(bad.mean())


@dataclass
class StepTable:
    """Distribution of the change of G over one step, given G before it (tables over G knots).

    Attributes
    ----------
    g_knots : ndarray (J,), S
    mean, var : ndarray (J,), S and S**2
    n : int
        Pairs it was fitted on.
    """

    g_knots: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    n: int = 0

    @classmethod
    def fit(cls, g_before, g_after, knots, min_neighbours: int = 30) -> "StepTable":
        g0 = np.asarray(g_before, dtype=np.float64)
        d = np.asarray(g_after, dtype=np.float64) - g0
        ok = np.isfinite(g0) & np.isfinite(d)
        g0, d = g0[ok], d[ok]
        if len(g0) < 2 * min_neighbours:
            raise DataError(f"{len(g0)} pairs for a retention step; need {2 * min_neighbours}")
        k = min(min_neighbours, len(g0) - 1)
        nearest = np.partition(np.abs(knots[:, None] - g0[None, :]), k, axis=1)[:, k]
        width = np.maximum(nearest / 2, (knots[-1] - knots[0]) / len(knots) / 2)
        mean, var, _ = _kernel_moments(g0, d, knots, width)
        return cls(knots, mean, var, len(g0))

    def moments(self, g) -> tuple[np.ndarray, np.ndarray]:
        return (_interp_knots(g, self.g_knots, self.mean),
                _interp_knots(g, self.g_knots, self.var))

    def residuals(self, g_before, g_after) -> np.ndarray:
        m, v = self.moments(g_before)
        return (np.asarray(g_after) - np.asarray(g_before) - m) / np.sqrt(np.maximum(v, 1e-30))


@dataclass
class RetentionModel:
    """Two-step retention model of a technology: wait at room temperature, then a bake.

    Parameters
    ----------
    n_knots : int
        G knots (equally spaced over the pooled range of the fit data).
    min_neighbours : int

    Attributes (after ``fit``)
    --------------------------
    wait_ : StepTable
    bake_temps_c_ : ndarray (M,)
    bake_ : list of StepTable, one per temperature
    marginal_wait_, marginal_bake_ : MarginalTransform (standardized)
    fit_info_ : dict
    """

    n_knots: int = 48
    min_neighbours: int = 30
    wait_: StepTable | None = field(default=None, init=False, repr=False)
    bake_temps_c_: np.ndarray | None = field(default=None, init=False, repr=False)
    bake_: list = field(default_factory=list, init=False, repr=False)
    marginal_wait_: MarginalTransform | None = field(default=None, init=False, repr=False)
    marginal_bake_: MarginalTransform | None = field(default=None, init=False, repr=False)
    fit_info_: dict = field(default_factory=dict, init=False, repr=False)

    def fit(self, wait_pairs: list, bake_pairs: dict) -> "RetentionModel":
        """Fit both steps.

        Parameters
        ----------
        wait_pairs : list of (g_written, g_read) arrays, S
            Verify read at the write and first read-back, per source.
        bake_pairs : dict temperature (C) -> list of (g_before, g_after) arrays, S
            Reads before and after a 30 min bake, per source.
        """
        if not wait_pairs or not bake_pairs:
            raise DataError("a retention model needs wait pairs and bake pairs")
        gw = np.concatenate([np.asarray(a, dtype=np.float64) for a, _ in wait_pairs])
        gp = np.concatenate([np.asarray(b, dtype=np.float64) for _, b in wait_pairs])
        all_g = np.concatenate([gw] + [np.asarray(a) for ps in bake_pairs.values()
                                       for a, _ in ps])
        all_g = all_g[np.isfinite(all_g)]
        knots = np.linspace(np.quantile(all_g, 0.002), np.quantile(all_g, 0.998), self.n_knots)
        self.wait_ = StepTable.fit(gw, gp, knots, self.min_neighbours)
        u = self.wait_.residuals(gw, gp)
        self.marginal_wait_ = _standardized(MarginalTransform.fit(u[np.isfinite(u)], 41))
        temps = sorted(float(t) for t in bake_pairs)
        self.bake_temps_c_ = np.array(temps)
        self.bake_, res = [], []
        for t in temps:
            a = np.concatenate([np.asarray(x, dtype=np.float64) for x, _ in bake_pairs[t]])
            b = np.concatenate([np.asarray(y, dtype=np.float64) for _, y in bake_pairs[t]])
            table = StepTable.fit(a, b, knots, self.min_neighbours)
            self.bake_.append(table)
            res.append(table.residuals(a, b))
        u = np.concatenate(res)
        self.marginal_bake_ = _standardized(MarginalTransform.fit(u[np.isfinite(u)], 41))
        self.fit_info_ = {"wait_pairs": int(len(gw)), "bake_temps_c": temps,
                          "bake_pairs": [t.n for t in self.bake_]}
        return self

    def bake_moments(self, g, temperature_c: float):
        """Mean and variance of the bake step at ``temperature_c`` (linear in 1/T)."""
        g = np.asarray(g, dtype=np.float64)
        m = np.stack([t.moments(g)[0] for t in self.bake_], axis=-1)
        v = np.stack([t.moments(g)[1] for t in self.bake_], axis=-1)
        if len(self.bake_) == 1:
            return m[..., 0], v[..., 0]
        inv = 1.0 / (self.bake_temps_c_ + ZERO_C)  # decreasing
        x = 1.0 / (float(temperature_c) + ZERO_C)
        i = int(np.clip(np.searchsorted(-inv, -x, side="right") - 1, 0, len(inv) - 2))
        w = (x - inv[i]) / (inv[i + 1] - inv[i])  # < 0 or > 1 outside: the end segments continue
        mean = m[..., i] * (1 - w) + m[..., i + 1] * w
        var = np.maximum(v[..., i] * (1 - w) + v[..., i + 1] * w, 0.0)
        return mean, var

    def wait(self, g_written, rng: np.random.Generator) -> np.ndarray:
        """Conductance at the first read-back (S) of cells written to ``g_written`` (S)."""
        m, v = self.wait_.moments(g_written)
        z = self.marginal_wait_.to_data(rng.standard_normal(np.shape(g_written)))
        return np.maximum(np.asarray(g_written) + m + np.sqrt(v) * z, 0.0)

    def bake(self, g_before, temperature_c: float, rng: np.random.Generator) -> np.ndarray:
        """Conductance after a 30 min bake at ``temperature_c`` (S)."""
        m, v = self.bake_moments(g_before, temperature_c)
        z = self.marginal_bake_.to_data(rng.standard_normal(np.shape(g_before)))
        return np.maximum(np.asarray(g_before) + m + np.sqrt(v) * z, 0.0)

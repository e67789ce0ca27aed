"""Held-out checks of relaxation models: per level and time point, model against measurement.

The measure of issue 12: split each relaxation file into halves by a hash of the cell address
(:func:`pyaimc.data.relaxation.hash_half`), fit on one half, and on the other compare, for every
(level, time point) group with at least ``min_cells`` cells, the mean and the standard deviation
of ``G(t) - G(0)``:

- mean agrees when ``|model - measured| <= 0.25 * measured std + 0.3 uS``;
- std agrees when ``0.75 <= model / measured <= 1.33``.

The model's group moments are exact (no sampling): the mean of the cells' model means, and the
mean of their model variances plus the variance of their means, each cell at its own read time.
The reference is the same comparison of one half's sample moments against the other's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyaimc.data.relaxation import RelaxationData, hash_half

MEAN_STD_FRACTION = 0.25
MEAN_ABS_S = 0.3e-6
STD_RATIO = (0.75, 1.33)


@dataclass
class LogTimeBroadening:
    """The simplest relaxation baseline: no mean shift, one variance law for every level,
    ``var = k * max(0, log10(t / t0))``, fitted by least squares to the pooled variances."""

    k: float = 0.0
    log10_t0: float = -3.0

    def fit(self, data: RelaxationData) -> "LogTimeBroadening":
        d = data.delta
        t = np.nanmedian(data.time, axis=0)
        var = np.nanvar(d, axis=0)
        best = None
        for lt0 in np.arange(-6.0, np.log10(t[0]) - 0.01, 0.05):
            x = np.log10(t) - lt0
            k = float(x @ var / (x @ x))
            err = float(np.sum((var - k * x) ** 2))
            if best is None or err < best[0]:
                best = (err, k, lt0)
        _, self.k, self.log10_t0 = best
        return self

    def moments(self, g0, times, diagonal: bool = False):
        g0 = np.atleast_1d(np.asarray(g0, dtype=np.float64))
        times = np.atleast_1d(np.asarray(times, dtype=np.float64))
        with np.errstate(divide="ignore"):
            v = self.k * np.maximum(np.log10(times) - self.log10_t0, 0.0)
        v = v if diagonal else np.broadcast_to(v, (len(g0), len(times)))
        return np.zeros_like(v), v


class NoRelaxation:
    """The baseline of a noise model without time: ``G(t) = G(0)``."""

    def moments(self, g0, times, diagonal: bool = False):
        shape = (len(np.atleast_1d(g0)),) if diagonal else \
            (len(np.atleast_1d(g0)), len(np.atleast_1d(times)))
        return np.zeros(shape), np.zeros(shape)


def group_rows(model, data: RelaxationData, min_cells: int = 50,
               reference: RelaxationData | None = None) -> list[dict]:
    """Compare ``model`` (anything with ``moments(g0, times, diagonal=True)``) or the sample
    moments of ``reference`` with ``data``, per (level, time point) with >= ``min_cells`` cells.
    """
    rows = []
    d = data.delta
    for level in np.unique(data.level):
        in_level = data.level == level
        for k, tp in enumerate(data.timepoints):
            sel = in_level & np.isfinite(d[:, k])
            n = int(sel.sum())
            if n < min_cells:
                continue
            meas = d[sel, k]
            m_meas, s_meas = float(meas.mean()), float(meas.std(ddof=1))
            if reference is not None:
                rsel = (reference.level == level) & np.isfinite(reference.delta[:, k])
                if rsel.sum() < min_cells:
                    continue
                other = reference.delta[rsel, k]
                m_mod, s_mod = float(other.mean()), float(other.std(ddof=1))
            else:
                mm, vv = model.moments(data.g0[sel], data.time[sel, k], diagonal=True)
                m_mod = float(mm.mean())
                s_mod = float(np.sqrt(vv.mean() + mm.var()))
            ratio = s_mod / s_meas if s_meas > 0 else np.inf
            rows.append({
                "level": int(level), "time_point_s": float(tp), "n": n,
                "g0_mean_us": float(data.g0[sel].mean() * 1e6),
                "mean_measured_us": m_meas * 1e6, "mean_model_us": m_mod * 1e6,
                "std_measured_us": s_meas * 1e6, "std_model_us": s_mod * 1e6,
                "std_ratio": ratio,
                "mean_ok": bool(abs(m_mod - m_meas) <= MEAN_STD_FRACTION * s_meas + MEAN_ABS_S),
                "std_ok": bool(STD_RATIO[0] <= ratio <= STD_RATIO[1]),
            })
    return rows


def summarize(rows: list[dict]) -> dict:
    """Fractions of groups where the mean, the std and both agree."""
    if not rows:
        return {"groups": 0, "mean_ok": float("nan"), "std_ok": float("nan"),
                "both_ok": float("nan"), "median_std_ratio": float("nan")}
    mean_ok = np.array([r["mean_ok"] for r in rows])
    std_ok = np.array([r["std_ok"] for r in rows])
    return {"groups": len(rows), "mean_ok": float(mean_ok.mean()), "std_ok": float(std_ok.mean()),
            "both_ok": float((mean_ok & std_ok).mean()),
            "median_std_ratio": float(np.median([r["std_ratio"] for r in rows]))}


def heldout_check(data: RelaxationData, fit, min_cells: int = 50, salt: str = "pyaimc",
                  baselines: dict | None = None) -> dict:
    """Fit on each hash half, score on the other (held out) and on itself (in sample).

    Parameters
    ----------
    data : RelaxationData
    fit : callable
        ``fit(half: RelaxationData) -> model`` with ``moments(g0, times, diagonal=True)``.
    min_cells : int
    salt : str
        Salt of the address hash.
    baselines : dict of name -> callable, optional
        Further ``fit`` functions scored the same way on the held-out halves.

    Returns
    -------
    dict with per direction ``rows`` and summaries, and the half-vs-half reference.
    """
    half = hash_half(data.addr, salt)
    halves = [data.select(half == 0), data.select(half == 1)]
    out = {"salt": salt, "min_cells": min_cells,
           "cells_per_half": [h.n_cells for h in halves], "directions": []}
    for a, b in ((0, 1), (1, 0)):
        model = fit(halves[a])
        held = group_rows(model, halves[b], min_cells)
        entry = {"fit_half": a, "heldout": summarize(held),
                 "in_sample": summarize(group_rows(model, halves[a], min_cells)),
                 "reference_half_vs_half": summarize(
                     group_rows(None, halves[b], min_cells, reference=halves[a])),
                 "rows": held}
        for name, f in (baselines or {}).items():
            entry[f"baseline_{name}"] = summarize(group_rows(f(halves[a]), halves[b], min_cells))
        out["directions"].append(entry)
    return out

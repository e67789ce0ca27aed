"""Fidelity statistics of a device model against data (definitions of FIDELITY.md).

Each function takes devices x cycles arrays of one feature (NaN = missing); resistances (names
starting with ``R_``) are compared in log10.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

MAX_KS_VALUES = 400_000
MAX_LAG = 5


def comparison_space(name: str, x: np.ndarray) -> np.ndarray:
    """The values as compared: log10 for resistances, unchanged otherwise."""
    x = np.asarray(x, dtype=np.float64)
    return np.log10(x) if name.startswith("R_") else x


def ks_distance(sample: np.ndarray, data: np.ndarray, rng: np.random.Generator) -> float:
    """Two-sample KS statistic of pooled values (at most 400,000 generated values used)."""
    s = sample[np.isfinite(sample)]
    d = data[np.isfinite(data)]
    if s.size > MAX_KS_VALUES:
        s = rng.choice(s, MAX_KS_VALUES, replace=False)
    return float(stats.ks_2samp(s, d).statistic)


def autocorrelation(x: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Pooled autocorrelation at lags 1..max_lag after removing each device's mean."""
    z = x - np.nanmean(x, axis=1, keepdims=True)
    z = np.where(np.isfinite(z), z, 0.0)
    den = np.sum(z * z)
    return np.array([np.sum(z[:, k:] * z[:, :-k]) / den for k in range(1, max_lag + 1)])


def cross_correlation(features: list[np.ndarray]) -> np.ndarray:
    """Lag-0 correlation matrix between features of per-device standardised series."""
    cols = []
    for x in features:
        z = (x - np.nanmean(x, axis=1, keepdims=True)) / np.nanstd(x, axis=1, keepdims=True)
        cols.append(z.ravel())
    m = np.stack(cols)
    m = m[:, np.isfinite(m).all(axis=0)]
    return np.corrcoef(m)


def device_spread(x: np.ndarray) -> float:
    """Standard deviation across devices of the per-device means."""
    return float(np.std(np.nanmean(x, axis=1)))


def within_device_spread(x: np.ndarray) -> float:
    """Mean across devices of each device's standard deviation."""
    return float(np.mean(np.nanstd(x, axis=1)))


def fidelity_report(sample: dict, data: dict, rng: np.random.Generator) -> dict:
    """All fidelity statistics of ``sample`` against ``data``.

    Parameters
    ----------
    sample, data : dict of name -> ndarray (devices x cycles)
        Same feature names in both (in SI units; resistances are log-transformed here).
    rng : Generator
        For the KS subsampling.

    Returns
    -------
    dict with per-feature entries (``ks``, ``acf_sample``, ``acf_data``, ``acf_error``,
    ``d2d_ratio``, ``within_ratio``) and overall ``acf_error``, ``xcorr_error`` and the matrices.
    """
    names = [n for n in data if n in sample]
    if not names:
        raise ValueError("sample and data share no feature")
    per = {}
    s_all, d_all = [], []
    for n in names:
        s = comparison_space(n, sample[n])
        d = comparison_space(n, data[n])
        s_all.append(s)
        d_all.append(d)
        acf_s, acf_d = autocorrelation(s), autocorrelation(d)
        per[n] = {
            "ks": ks_distance(s, d, rng),
            "acf_sample": acf_s.tolist(),
            "acf_data": acf_d.tolist(),
            "acf_error": float(np.max(np.abs(acf_s - acf_d))),
            "d2d_ratio": device_spread(s) / device_spread(d),
            "within_ratio": within_device_spread(s) / within_device_spread(d),
            "median_sample": float(np.nanmedian(sample[n])),
            "median_data": float(np.nanmedian(data[n])),
        }
    xs, xd = cross_correlation(s_all), cross_correlation(d_all)
    return {
        "features": names,
        "per_feature": per,
        "acf_error": max(p["acf_error"] for p in per.values()),
        "xcorr_sample": xs.tolist(),
        "xcorr_data": xd.tolist(),
        "xcorr_error": float(np.max(np.abs(xs - xd))),
        "max_ks": max(p["ks"] for p in per.values()),
    }

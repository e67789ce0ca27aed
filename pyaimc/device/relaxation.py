"""Conductance relaxation after programming: the distribution of G(t) given G(0).

The model, fitted from relaxation records (cells read at time points after programming)::

    D(t)  = G(t) - G(0) = m(G0, t) + s(G0, t) * T(x(t))
    m, s² = tables over G0 knots x time knots (kernel-weighted moments of the measured D),
            linear in G0 between knots and linear in log10(t) between time knots
    T     = monotone map N(0, 1) -> standardized residual (heavy tails: a few cells jump far),
            one per band of G0, interpolated in G0 (low levels are skewed: their cells fall
            towards a floor, never below 0 S)
    x(t)  = Ornstein-Uhlenbeck process in log10(t): corr(x(t1), x(t2)) = rho ** |log10(t2/t1)|
            (each cell relaxes along its own path; paths decorrelate over decades)

Temperature, from bake records (one read after each bake): at each bake temperature the bake's
mean and variance of G - G0 against G0 (same kernel, same knots) give a mean excess ``dm(G0, T)``
and a variance factor ``f(G0, T) >= 1`` over the room-temperature model at the bake's time
``t_b``. At temperature T the model is the room-temperature one with its variance multiplied by
``f`` and its mean shifted by ``dm * r(t)``, ``r(t) = s²(G0, t) / s²(G0, t_b)`` (the excess grows
with time as the room-temperature relaxation does: an assumption, one time per temperature cannot
tell more). ``dm`` and ``f`` are interpolated linearly in 1/T between the bake temperatures and
(0, 1) at the records' temperature; below it nothing changes, above the hottest bake the hottest
tables hold (no extrapolation in temperature). A single acceleration factor of time (Arrhenius)
does not fit: on technology B the bakes broaden the high-conductance levels 2-4x more than the
room-temperature law would at any time.

Extrapolation (stated, because deployment asks for a year and the records end at 10^4-10^5 s):

- beyond the last measured time the mean and the variance continue linearly in log10(t) with the
  slope of a least-squares line through all time knots (the variance slope is kept >= 0): a
  level keeps broadening by its average variance per decade. Checked by leaving the last time
  point out (``benchmarks/results_relaxation.py``): technology C fitted up to 4 s predicts
  10^5 s, technology B fitted up to 10^3 s predicts 10^4 s;
- before the first measured time the relaxation starts at the time where the first two knots'
  variance line reaches zero (kept between 1/1000 and 1/2 of the first time); in between, mean
  and variance grow linearly in log10(t) from zero;
- G0 outside the knots uses the end knots' tables; conductances are kept at or above the floor
  ``g_floor_``, the 0.1 % quantile of every read in the records. (At the lowest levels the
  heavy lower tail of the residual sends 1-3 % of the cells of ~15 uS to that floor within a
  day, where the records show none below ~5 uS: the lower tail there is shorter than the
  residual maps can express.)

Read noise beyond thermal and shot noise, from continuous read traces: a 1/f^alpha power spectral
density of G with amplitude interpolated (log-log) in G between the traced cells, and a white floor
of the instrument above the 1/f corner. Random telegraph noise is visible in some traces (excess
kurtosis of the high-passed samples, reported in ``fit_info``) but a few cells are too few for
an RTN statistics (occurrence, amplitudes, dwell times): it is not modelled separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, signal

from pyaimc.data.container import DataError
from pyaimc.data.relaxation import BakeData, ReadTraces, RelaxationData
from pyaimc.device.marginal import MarginalTransform

KIND = "log_time_table"
ZERO_C = 273.15
#: time knots at and after this time (s) set the slopes used beyond the last knot (0: all of
#: them; the longest lever arm extrapolated best on the held-out last time points: see
#: results/relaxation.md)
SLOPE_FROM_S = 0.0


def _kernel_moments(g0: np.ndarray, d: np.ndarray, knots: np.ndarray, width: np.ndarray):
    w = np.exp(-0.5 * ((knots[:, None] - g0[None, :]) / width[:, None]) ** 2)
    ok = np.isfinite(d)
    sw = w @ ok
    mean = (w @ np.where(ok, d, 0.0)) / sw
    var = (w @ np.where(ok, d * d, 0.0)) / sw - mean ** 2
    return mean, np.maximum(var, 0.0), sw


def _interp_rows(x: np.ndarray, xp: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table`` (J, K) interpolated at ``x`` (n,) along its knot axis ``xp`` (J,) -> (n, K)."""
    xc = np.clip(x, xp[0], xp[-1])
    j = np.clip(np.searchsorted(xp, xc, side="right") - 1, 0, len(xp) - 2)
    w = (xc - xp[j]) / (xp[j + 1] - xp[j])
    return table[j] * (1 - w)[:, None] + table[j + 1] * w[:, None]


def _interp_knots(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    return np.interp(np.clip(x, xp[0], xp[-1]), xp, fp)


@dataclass
class ReadNoise1f:
    """1/f^alpha read noise of the conductance, from continuous read traces.

    ``S_G(f) = a(G) / f**alpha + floor(G)`` (S**2/Hz), with ``log a`` and ``log floor`` linear in
    ``log G`` between the traced cells (constant beyond them).

    Attributes
    ----------
    alpha : float
    g : ndarray
        Mean conductance of each traced cell, S (increasing).
    amplitude : ndarray
        ``a`` at 1 Hz of each traced cell, S**2/Hz.
    floor : ndarray
        White floor of each trace (instrument and thermal/shot noise of that set-up), S**2/Hz.
    band : tuple
        Frequencies (Hz) the 1/f fit used.
    """

    alpha: float
    g: np.ndarray
    amplitude: np.ndarray
    floor: np.ndarray
    band: tuple = (0.1, 20.0)

    def __post_init__(self) -> None:
        self.g = np.asarray(self.g, dtype=np.float64)
        self.amplitude = np.asarray(self.amplitude, dtype=np.float64)
        self.floor = np.asarray(self.floor, dtype=np.float64)

    def amplitude_at(self, g) -> np.ndarray:
        """``a(G)`` at 1 Hz, S**2/Hz."""
        lg = np.log(np.maximum(np.asarray(g, dtype=np.float64), 1e-12))
        return np.exp(_interp_knots(lg, np.log(self.g), np.log(self.amplitude)))

    def sigma(self, g, f_lo: float, f_hi: float) -> np.ndarray:
        """Standard deviation of G (S) from the 1/f part integrated over ``[f_lo, f_hi]`` Hz.

        A read averaged over ``t_read`` and repeated after ``t_obs`` sees about
        ``f_lo = 1 / t_obs``, ``f_hi = 1 / (2 t_read)``.
        """
        if not 0 < f_lo < f_hi:
            raise ValueError(f"need 0 < f_lo < f_hi, got {f_lo}, {f_hi}")
        a = self.alpha
        band = math.log(f_hi / f_lo) if abs(a - 1) < 1e-9 else \
            (f_hi ** (1 - a) - f_lo ** (1 - a)) / (1 - a)
        return np.sqrt(self.amplitude_at(g) * band)

    def sample(self, g, n_samples: int, fs: float, rng: np.random.Generator) -> np.ndarray:
        """1/f noise traces (cells, n_samples) in S for cells of conductance ``g`` at rate ``fs``.

        Spectral synthesis: white Gaussian noise shaped by ``f**(-alpha/2)`` in the frequency
        domain (the mean, f = 0, is left out).
        """
        g = np.atleast_1d(np.asarray(g, dtype=np.float64))
        n = int(n_samples)
        f = np.fft.rfftfreq(n, 1.0 / fs)
        shape = np.zeros_like(f)
        shape[1:] = f[1:] ** (-self.alpha / 2)
        spec = (rng.standard_normal((len(g), len(f))) + 1j * rng.standard_normal((len(g), len(f))))
        # one-sided PSD S(f): the variance per bin is S * fs / 2 * n in numpy's rfft scaling
        x = np.fft.irfft(spec * shape, n=n, axis=1) * math.sqrt(fs * n / 2) / math.sqrt(2)
        return x * np.sqrt(self.amplitude_at(g))[:, None]

    def to_dict(self) -> dict:
        return {"form": "S_G(f) = amplitude(G) / f^alpha + floor(G), S^2/Hz; log-log in G",
                "alpha": self.alpha, "g": self.g, "amplitude_1hz": self.amplitude,
                "floor": self.floor, "band_hz": list(self.band)}

    @classmethod
    def from_dict(cls, d: dict) -> "ReadNoise1f":
        return cls(float(d["alpha"]), d["g"], d["amplitude_1hz"], d["floor"],
                   tuple(d.get("band_hz", (0.1, 20.0))))

    @classmethod
    def fit(cls, traces: ReadTraces, band: tuple = (0.1, 20.0), nperseg: int | None = None
            ) -> tuple["ReadNoise1f", dict]:
        """Fit from continuous read traces; returns the part and per-trace figures."""
        n = traces.g.shape[1]
        nperseg = nperseg or min(n, 1 << int(math.log2(max(n // 3, 16))))
        if band[0] * nperseg / traces.fs < 2:
            band = (4 * traces.fs / nperseg, band[1])
        rows, alphas = [], []
        for level, g in zip(traces.level, traces.g):
            # the slow relaxation of the cell is not read noise: linear detrend per segment
            f, p = signal.welch(g, fs=traces.fs, nperseg=nperseg, detrend="linear")
            sel = (f >= band[0]) & (f <= band[1])
            if sel.sum() < 4:
                raise DataError(f"{traces.source}: too few frequencies in {band} Hz for a 1/f "
                                f"fit (sample rate {traces.fs} Hz, {n} samples)")
            slope, icpt = np.polyfit(np.log10(f[sel]), np.log10(p[sel]), 1)
            top = f >= 0.5 * f[-1]
            floor = float(np.median(p[top]))
            hp = g - signal.medfilt(g, 2 * int(traces.fs) + 1)
            kurt = float(np.mean((hp - hp.mean()) ** 4) / hp.var() ** 2)
            alphas.append(-slope)
            rows.append({"level": int(level), "g_mean": float(g.mean()), "alpha": float(-slope),
                         "amplitude_1hz": float(10 ** icpt), "floor": floor,
                         "highpass_std": float(hp.std()), "highpass_kurtosis": kurt})
        rows.sort(key=lambda r: r["g_mean"])
        alpha = float(np.median(alphas))
        # amplitudes refitted with the common alpha (one exponent, amplitude per cell)
        amps = []
        for level, g in sorted(zip(traces.level, traces.g), key=lambda lg: lg[1].mean()):
            f, p = signal.welch(g, fs=traces.fs, nperseg=nperseg, detrend="linear")
            sel = (f >= band[0]) & (f <= band[1])
            amps.append(float(10 ** np.mean(np.log10(p[sel]) + alpha * np.log10(f[sel]))))
        part = cls(alpha, [r["g_mean"] for r in rows], amps, [r["floor"] for r in rows],
                   tuple(float(b) for b in band))
        return part, {"source": traces.source, "fs_hz": traces.fs, "nperseg": nperseg,
                      "traces": rows,
                      "rtn": "random telegraph noise shows as excess kurtosis of the high-passed "
                             "samples (3 for Gaussian noise); too few cells to model it apart"}


@dataclass
class RelaxationModel:
    """Distribution of G(t) given G(0) (and temperature), fitted from relaxation records.

    Parameters
    ----------
    n_knots : int
        G0 knots of the mean and variance tables (equally spaced between the 0.5 % and 99.5 %
        quantiles of G0).
    min_neighbours : int
        Each knot's Gaussian kernel is at least half as wide as the distance to its
        ``min_neighbours``-th nearest cell (sparse ranges are pooled more widely).
    n_marginal_knots : int
        Knots of each standardized-residual transform.
    n_residual_bands : int
        Bands of G0 (equal counts of cells), each with its own residual transform; between
        the bands' median G0 the transforms are interpolated.
    t_ref_c : float
        Temperature of the relaxation records, C (not in the files: room temperature assumed).

    Attributes (after ``fit``)
    --------------------------
    g_knots_ : ndarray (J,), S
    t_knots_ : ndarray (K,), s (median actual read time of each time point)
    mean_, var_ : ndarray (J, K), S and S**2
    slope_mean_, slope_var_ : ndarray (J,), per decade beyond the last time knot
    log10_t_zero_ : ndarray (J,), log10 s where relaxation starts
    marginals_ : list of MarginalTransform (unit variance, zero mean under N(0, 1))
    marginal_g_ : ndarray, S
        Median G0 of each residual band.
    rho_per_decade_ : float
    g_floor_ : float
        Lowest conductance a relaxed cell takes, S (0.1 % quantile of the reads).
    temps_c_, bake_time_ : ndarray (M,) or None
        Bake temperatures (C) and the median time of their reads (s).
    dmean_, vfactor_ : ndarray (J, M) or None
        Mean excess (S) and variance factor of each bake over the room-temperature model.
    read_noise_ : ReadNoise1f or None
    technology_ : str
    fit_info_ : dict
    """

    n_knots: int = 64
    min_neighbours: int = 60
    n_marginal_knots: int = 61
    n_residual_bands: int = 4
    t_ref_c: float = 25.0

    g_knots_: np.ndarray | None = field(default=None, init=False, repr=False)
    t_knots_: np.ndarray | None = field(default=None, init=False, repr=False)
    mean_: np.ndarray | None = field(default=None, init=False, repr=False)
    var_: np.ndarray | None = field(default=None, init=False, repr=False)
    slope_mean_: np.ndarray | None = field(default=None, init=False, repr=False)
    slope_var_: np.ndarray | None = field(default=None, init=False, repr=False)
    log10_t_zero_: np.ndarray | None = field(default=None, init=False, repr=False)
    marginals_: list = field(default_factory=list, init=False, repr=False)
    marginal_g_: np.ndarray | None = field(default=None, init=False, repr=False)
    rho_per_decade_: float = field(default=0.0, init=False, repr=False)
    g_floor_: float = field(default=0.0, init=False, repr=False)
    temps_c_: np.ndarray | None = field(default=None, init=False, repr=False)
    bake_time_: np.ndarray | None = field(default=None, init=False, repr=False)
    dmean_: np.ndarray | None = field(default=None, init=False, repr=False)
    vfactor_: np.ndarray | None = field(default=None, init=False, repr=False)
    read_noise_: ReadNoise1f | None = field(default=None, init=False, repr=False)
    technology_: str = field(default="", init=False, repr=False)
    fit_info_: dict = field(default_factory=dict, init=False, repr=False)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: RelaxationData, bake: BakeData | None = None,
            traces: ReadTraces | None = None, technology: str | None = None
            ) -> "RelaxationModel":
        """Fit the tables, the residual transform and the time correlation; then, when given,
        the temperature part (bake records) and the read noise (traces).

        Parameters
        ----------
        data : RelaxationData
        bake : BakeData, optional
            Bake records of the same technology.
        traces : ReadTraces, optional
            Continuous reads of the same technology.
        technology : str, optional
            A name recorded in the model (default: from the file name).

        Returns
        -------
        self
        """
        self._validate_params()
        src = data.source or "relaxation data"
        g0, d, t = data.g0, data.delta, data.time
        usable = np.isfinite(d).sum(axis=1) > 0
        if usable.sum() < 4 * self.min_neighbours:
            raise DataError(f"{src}: {int(usable.sum())} cells with reads after time 0; need at "
                            f"least {4 * self.min_neighbours} (4 x min_neighbours)")
        counts = np.isfinite(d).sum(axis=0)
        keep_t = counts >= self.min_neighbours
        if keep_t.sum() < 2:
            raise DataError(f"{src}: fewer than 2 time points with >= {self.min_neighbours} "
                            f"reads; need two to fit a time law")
        g0, d, t = g0[usable], d[usable][:, keep_t], t[usable][:, keep_t]
        lo, hi = np.quantile(g0, [0.005, 0.995])
        knots = np.linspace(lo, hi, self.n_knots)
        k = min(self.min_neighbours, len(g0) - 1)
        nearest = np.partition(np.abs(knots[:, None] - g0[None, :]), k, axis=1)[:, k]
        width = np.maximum(nearest / 2, (hi - lo) / self.n_knots / 2)
        n_t = d.shape[1]
        mean = np.empty((self.n_knots, n_t))
        var = np.empty_like(mean)
        weight = np.empty_like(mean)
        for j in range(n_t):
            mean[:, j], var[:, j], weight[:, j] = _kernel_moments(g0, d[:, j], knots, width)
        self.g_knots_, self.mean_, self.var_ = knots, mean, var
        self.t_knots_ = np.nanmedian(t, axis=0)
        if np.any(np.diff(self.t_knots_) <= 0):
            raise DataError(f"{src}: the median read times {self.t_knots_} s do not increase "
                            f"with the time points")
        self._fit_time_ends()
        # standardized residuals: their pooled shape (heavy tails) and time correlation
        m_c = _interp_rows(g0, knots, mean)
        s_c = np.sqrt(_interp_rows(g0, knots, var))
        u = (d - m_c) / np.where(s_c > 0, s_c, np.nan)
        nb = max(1, int(self.n_residual_bands))
        edges = np.quantile(g0, np.linspace(0, 1, nb + 1))
        band = np.clip(np.searchsorted(edges, g0, side="right") - 1, 0, nb - 1)
        self.marginals_, centres = [], []
        x = np.full_like(u, np.nan)
        for b in range(nb):
            ub = u[band == b]
            marg = _standardized(MarginalTransform.fit(ub[np.isfinite(ub)],
                                                       n_knots=self.n_marginal_knots))
            self.marginals_.append(marg)
            centres.append(float(np.median(g0[band == b])))
            ok = (band == b)[:, None] & np.isfinite(u)
            x[ok] = marg.to_normal(u[ok])
        self.marginal_g_ = np.array(centres)
        self.rho_per_decade_, pairs = _fit_rho(x, np.log10(self.t_knots_))
        reads = data.g[np.isfinite(data.g)]
        self.g_floor_ = float(max(np.quantile(reads, 1e-3), 0.0))
        self.technology_ = technology or _technology_name(src)
        self.fit_info_ = {
            "source": src, "n_cells": int(len(g0)),
            "time_points_s": data.timepoints[keep_t].tolist(),
            "time_points_dropped_s": data.timepoints[~keep_t].tolist(),
            "reads_per_time_point": counts[keep_t].tolist(),
            "g0_range": [float(lo), float(hi)],
            "kernel_width_min_max": [float(width.min()), float(width.max())],
            "residual_kurtosis": float(np.nanmean(u ** 4) / np.nanmean(u ** 2) ** 2),
            "time_correlation_pairs": pairs,
        }
        if bake is not None:
            self.fit_temperature(bake)
        if traces is not None:
            self.read_noise_, self.fit_info_["read_noise"] = ReadNoise1f.fit(traces)
        return self

    def _validate_params(self) -> None:
        if int(self.n_knots) < 2:
            raise ValueError(f"n_knots must be >= 2, got {self.n_knots}")
        if int(self.min_neighbours) < 10:
            raise ValueError(f"min_neighbours must be >= 10, got {self.min_neighbours}")
        if not -273.15 < self.t_ref_c < 1000:
            raise ValueError(f"t_ref_c must be a temperature in C, got {self.t_ref_c}")

    def _fit_time_ends(self) -> None:
        tau = np.log10(self.t_knots_)
        late = tau >= (math.log10(SLOPE_FROM_S) if SLOPE_FROM_S > 0 else -math.inf)
        if late.sum() < 2:
            late = np.zeros_like(late)
            late[-2:] = True
        x = tau[late] - tau[late].mean()
        self.slope_mean_ = (self.mean_[:, late] - self.mean_[:, late].mean(1, keepdims=True)) @ x \
            / (x @ x)
        self.slope_var_ = np.maximum(
            (self.var_[:, late] - self.var_[:, late].mean(1, keepdims=True)) @ x / (x @ x), 0.0)
        s01 = (self.var_[:, 1] - self.var_[:, 0]) / (tau[1] - tau[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            back = np.where(s01 > 0, self.var_[:, 0] / s01, np.inf)
        self.log10_t_zero_ = tau[0] - np.clip(back, math.log10(2), 3.0)

    # ------------------------------------------------------------------ temperature
    def fit_temperature(self, bake: BakeData) -> "RelaxationModel":
        """Fit the mean excess and variance factor of each bake temperature (module docstring).

        The bake records hold only the time since programming; the whole interval counts as
        spent at the bake temperature.
        """
        self._check_fitted()
        src = bake.source or "bake data"
        knots = self.g_knots_
        temps, times, dmean, vfac, rows = [], [], [], [], []
        for temp in bake.temperatures:
            if temp <= self.t_ref_c:
                raise DataError(f"{src}: bake at {temp:g} C is not above the relaxation records' "
                                f"temperature {self.t_ref_c:g} C")
            sel = bake.temp_c == temp
            g0, dd = bake.g0[sel], bake.g[sel] - bake.g0[sel]
            if sel.sum() < 4 * self.min_neighbours:
                raise DataError(f"{src}: {int(sel.sum())} reads at {temp:g} C; need "
                                f"{4 * self.min_neighbours} (4 x min_neighbours)")
            k = min(self.min_neighbours, len(g0) - 1)
            nearest = np.partition(np.abs(knots[:, None] - g0[None, :]), k, axis=1)[:, k]
            width = np.maximum(nearest / 2, (knots[-1] - knots[0]) / len(knots) / 2)
            m_b, v_b, _ = _kernel_moments(g0, dd, knots, width)
            t_b = float(np.median(bake.time[sel]))
            m_r, v_r = self.moments(knots, [t_b])
            f = np.maximum(v_b / np.maximum(v_r[:, 0], 1e-30), 1.0)
            temps.append(float(temp))
            times.append(t_b)
            dmean.append(m_b - m_r[:, 0])
            vfac.append(f)
            rows.append({"temp_c": float(temp), "n_reads": int(sel.sum()), "median_time_s": t_b,
                         "std_ratio_median": float(np.median(np.sqrt(v_b / v_r[:, 0]))),
                         "dmean_range_us": [float(np.min(m_b - m_r[:, 0]) * 1e6),
                                            float(np.max(m_b - m_r[:, 0]) * 1e6)]})
        self.temps_c_ = np.array(temps)
        self.bake_time_ = np.array(times)
        self.dmean_ = np.stack(dmean, axis=1)
        self.vfactor_ = np.stack(vfac, axis=1)
        self.fit_info_["temperature"] = {
            "source": src, "per_temperature": rows,
            "assumption": "the whole interval from programming to the read counts as spent at "
                          "the bake temperature; relaxation records at t_ref_c; the excess "
                          "follows the room-temperature time shape"}
        return self

    def _temperature_terms(self, g0: np.ndarray, temperature_c: float):
        """(dmean (n,), vfactor (n,), t_b) at a temperature; None at or below ``t_ref_c``."""
        if self.temps_c_ is None:
            raise ValueError(f"this relaxation model ({self.technology_ or 'unnamed'}) has no "
                             f"temperature part (fit it with bake records)")
        temp = float(temperature_c)
        if not -273.15 < temp < 1000:
            raise ValueError(f"temperature must be in C (-273.15 to 1000), got {temp}")
        if temp <= self.t_ref_c:
            return None
        inv = 1.0 / (np.concatenate([[self.t_ref_c], self.temps_c_]) + ZERO_C)
        x = max(1.0 / (temp + ZERO_C), inv[-1])
        i = int(np.clip(np.searchsorted(-inv, -x, side="right") - 1, 0, len(inv) - 2))
        w = (x - inv[i]) / (inv[i + 1] - inv[i])
        zeros = np.zeros((len(self.g_knots_), 1))
        dm = np.concatenate([zeros, self.dmean_], axis=1)
        vf = np.concatenate([zeros + 1.0, self.vfactor_], axis=1)
        tb = np.concatenate([[self.bake_time_[0]], self.bake_time_])
        dm_g = _interp_rows(g0, self.g_knots_, dm[:, [i, i + 1]])
        vf_g = _interp_rows(g0, self.g_knots_, vf[:, [i, i + 1]])
        t_b = float(np.exp((1 - w) * np.log(tb[i]) + w * np.log(tb[i + 1])))
        return dm_g[:, 0] * (1 - w) + dm_g[:, 1] * w, vf_g[:, 0] * (1 - w) + vf_g[:, 1] * w, t_b

    # ------------------------------------------------------------------ evaluation
    def _check_fitted(self) -> None:
        if self.mean_ is None:
            raise RuntimeError("this RelaxationModel is not fitted; call fit(data) or from_dict")

    def moments(self, g0, times, temperature_c=None, diagonal: bool = False):
        """Mean and variance of ``G(t) - G0`` (S, S**2).

        Parameters
        ----------
        g0 : array (n,), S
        times : array (T,) s after programming (or (n,) with ``diagonal``: one time per cell)
        temperature_c : float, optional
            Constant temperature since programming, C (default: ``t_ref_c``).
        diagonal : bool
            Pair ``g0[i]`` with ``times[i]``: returns arrays (n,) instead of (n, T).
        """
        self._check_fitted()
        g0 = np.atleast_1d(np.asarray(g0, dtype=np.float64))
        te = np.atleast_1d(np.asarray(times, dtype=np.float64))
        if np.any(te < 0) or not np.all(np.isfinite(te)):
            raise ValueError("times must be finite and >= 0 s")
        m, v = self._room_moments(g0, te, diagonal)
        if temperature_c is None:
            return m, v
        terms = self._temperature_terms(g0, temperature_c)
        if terms is None:
            return m, v
        dm, vf, t_b = terms
        _, v_b = self._room_moments(g0, np.full(len(g0), t_b), True)
        if not diagonal:
            dm, vf, v_b = dm[:, None], vf[:, None], v_b[:, None]
        shape = np.divide(v, v_b, out=np.zeros_like(v), where=v_b > 0)
        return m + dm * shape, v * vf

    def _room_moments(self, g0: np.ndarray, te: np.ndarray, diagonal: bool):
        m_k = _interp_rows(g0, self.g_knots_, self.mean_)          # (n, K)
        v_k = _interp_rows(g0, self.g_knots_, self.var_)
        sm = _interp_knots(g0, self.g_knots_, self.slope_mean_)[:, None]
        sv = _interp_knots(g0, self.g_knots_, self.slope_var_)[:, None]
        tz = _interp_knots(g0, self.g_knots_, self.log10_t_zero_)[:, None]
        tau_k = np.log10(self.t_knots_)
        with np.errstate(divide="ignore"):
            tau = np.log10(te)
        tau = tau[:, None] if diagonal else tau[None, :]
        j = np.clip(np.searchsorted(tau_k, tau, side="right") - 1, 0, len(tau_k) - 2)
        w = np.clip((tau - tau_k[j]) / (tau_k[j + 1] - tau_k[j]), 0.0, 1.0)
        rows = np.arange(len(g0))[:, None]
        m = m_k[rows, j] * (1 - w) + m_k[rows, j + 1] * w
        v = v_k[rows, j] * (1 - w) + v_k[rows, j + 1] * w
        after = tau > tau_k[-1]
        beyond = np.where(after, tau - tau_k[-1], 0.0)
        m = np.where(after, m_k[:, -1:] + sm * beyond, m)
        v = np.where(after, v_k[:, -1:] + sv * beyond, v)
        before = tau < tau_k[0]
        with np.errstate(invalid="ignore"):
            frac = np.clip((tau - tz) / (tau_k[0] - tz), 0.0, 1.0)
        m = np.where(before, m_k[:, :1] * frac, m)
        v = np.where(before, v_k[:, :1] * frac, v)
        if diagonal:
            return m[:, 0], v[:, 0]
        return m, v

    def relax(self, g0, times, rng: np.random.Generator, temperature_c=None) -> np.ndarray:
        """Relaxed conductance of each cell at each time.

        Parameters
        ----------
        g0 : array (n,)
            Conductance as programmed, S.
        times : array (T,)
            Times after programming, s (any order; each cell follows one path through them).
        rng : Generator
        temperature_c : float, optional
            Constant temperature since programming, C (default: ``t_ref_c``).

        Returns
        -------
        ndarray (n, T), S, at or above ``min(g_floor_, g0)``
        """
        self._check_fitted()
        g0 = np.atleast_1d(np.asarray(g0, dtype=np.float64))
        if g0.ndim != 1 or not np.all(np.isfinite(g0)) or np.any(g0 < 0):
            raise ValueError("g0 must be a 1-D array of finite conductances >= 0 S")
        times = np.atleast_1d(np.asarray(times, dtype=np.float64))
        if times.ndim != 1 or np.any(times < 0) or not np.all(np.isfinite(times)):
            raise ValueError("times must be a 1-D array of finite times >= 0 s")
        m, v = self.moments(g0, times, temperature_c)
        x = self.paths(len(g0), times, rng)
        g = g0[:, None] + m + np.sqrt(v) * self.residual(x, g0)
        return np.maximum(g, np.minimum(self.g_floor_, g0[:, None]))

    def residual(self, x: np.ndarray, g0) -> np.ndarray:
        """Standardized residuals of cells ``g0`` (S, (n,)) for normal values ``x`` ((n,) or
        (n, T)): the residual maps of the two nearest G0 bands, interpolated."""
        g0 = np.asarray(g0, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        maps, centres = self.marginals_, self.marginal_g_
        if len(maps) == 1:
            return maps[0].to_data(x)
        gc = np.clip(g0, centres[0], centres[-1])
        j = np.clip(np.searchsorted(centres, gc, side="right") - 1, 0, len(centres) - 2)
        w = (gc - centres[j]) / (centres[j + 1] - centres[j])
        if x.ndim == 2:
            j, w = j[:, None], w[:, None]
        out = np.empty_like(x)
        for k in range(len(maps) - 1):
            sel = np.broadcast_to(j == k, x.shape)
            if sel.any():
                ww = np.broadcast_to(w, x.shape)[sel]
                out[sel] = (1 - ww) * maps[k].to_data(x[sel]) + ww * maps[k + 1].to_data(x[sel])
        return out

    def paths(self, n: int, times, rng: np.random.Generator) -> np.ndarray:
        """Standard-normal paths (n, T) with ``corr = rho ** |log10(t2 / t1)|``; times in s."""
        times = np.asarray(times, dtype=np.float64)
        order = np.argsort(times, kind="stable")
        z = rng.standard_normal((n, len(times)))
        x = np.empty_like(z)
        prev_tau = None
        for col, k in enumerate(order):
            tau = math.log10(times[k]) if times[k] > 0 else -math.inf
            if prev_tau is None or prev_tau == -math.inf:
                x[:, k] = z[:, col]
            else:
                c = self.rho_per_decade_ ** (tau - prev_tau)
                x[:, k] = c * x[:, order[col - 1]] + math.sqrt(max(1 - c * c, 0.0)) * z[:, col]
            prev_tau = tau
        return x

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        self._check_fitted()
        temperature = None
        if self.temps_c_ is not None:
            temperature = {"t_ref_c": self.t_ref_c, "temps_c": self.temps_c_,
                           "bake_time_s": self.bake_time_, "dmean": self.dmean_,
                           "vfactor": self.vfactor_,
                           "form": "mean + dmean * var_room(t) / var_room(t_b), var * vfactor; "
                                   "linear in 1/T between bakes, (0, 1) at t_ref_c, hottest "
                                   "bake beyond"}
        return {
            "kind": KIND,
            "technology": self.technology_,
            "params": {"n_knots": self.n_knots, "min_neighbours": self.min_neighbours,
                       "n_marginal_knots": self.n_marginal_knots,
                       "n_residual_bands": self.n_residual_bands, "t_ref_c": self.t_ref_c},
            "g_knots": self.g_knots_, "t_knots": self.t_knots_,
            "mean": self.mean_, "var": self.var_,
            "slope_mean_per_decade": self.slope_mean_, "slope_var_per_decade": self.slope_var_,
            "log10_t_zero": self.log10_t_zero_,
            "residual_maps": [mm.to_dict() for mm in self.marginals_],
            "residual_map_g0": self.marginal_g_,
            "rho_per_decade": self.rho_per_decade_,
            "g_floor": self.g_floor_,
            "temperature": temperature,
            "read_noise": self.read_noise_.to_dict() if self.read_noise_ is not None else None,
            "extrapolation": "beyond the last time knot: mean and variance linear in log10(t) "
                             "with the least-squares slopes through the time knots"
                             + (f" >= {SLOPE_FROM_S:g} s" if SLOPE_FROM_S > 0 else "")
                             + " (variance slope >= 0); before the first: linear in log10(t) "
                             "from zero at t_zero; G0 beyond the knots: end knots",
            "fit": self.fit_info_,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "relaxation") -> "RelaxationModel":
        if d.get("kind") != KIND:
            raise DataError(f"{where}: relaxation kind {d.get('kind')!r}; expected {KIND!r}")
        try:
            m = cls(**d["params"])
            m.technology_ = d.get("technology", "")
            m.g_knots_ = np.asarray(d["g_knots"], dtype=np.float64)
            m.t_knots_ = np.asarray(d["t_knots"], dtype=np.float64)
            m.mean_ = np.asarray(d["mean"], dtype=np.float64)
            m.var_ = np.asarray(d["var"], dtype=np.float64)
            m.slope_mean_ = np.asarray(d["slope_mean_per_decade"], dtype=np.float64)
            m.slope_var_ = np.asarray(d["slope_var_per_decade"], dtype=np.float64)
            m.log10_t_zero_ = np.asarray(d["log10_t_zero"], dtype=np.float64)
            m.marginals_ = [MarginalTransform.from_dict(x) for x in d["residual_maps"]]
            m.marginal_g_ = np.asarray(d["residual_map_g0"], dtype=np.float64)
            if len(m.marginals_) != len(m.marginal_g_) or not m.marginals_:
                raise ValueError("residual_maps and residual_map_g0 differ in length")
            m.rho_per_decade_ = float(d["rho_per_decade"])
            m.g_floor_ = float(d.get("g_floor", 0.0))
            if d.get("temperature") is not None:
                tp = d["temperature"]
                m.temps_c_ = np.asarray(tp["temps_c"], dtype=np.float64)
                m.bake_time_ = np.asarray(tp["bake_time_s"], dtype=np.float64)
                m.dmean_ = np.asarray(tp["dmean"], dtype=np.float64)
                m.vfactor_ = np.asarray(tp["vfactor"], dtype=np.float64)
                if (m.dmean_.shape != (len(m.g_knots_), len(m.temps_c_))
                        or m.vfactor_.shape != m.dmean_.shape
                        or np.any(np.diff(m.temps_c_) <= 0)):
                    raise ValueError("temperature tables do not match the knots and "
                                     "increasing temperatures")
            if d.get("read_noise") is not None:
                m.read_noise_ = ReadNoise1f.from_dict(d["read_noise"])
            m.fit_info_ = d.get("fit", {})
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{where}: not a valid relaxation part ({type(err).__name__}: {err})"
                            ) from None
        j, k = len(m.g_knots_), len(m.t_knots_)
        if m.mean_.shape != (j, k) or m.var_.shape != (j, k) or m.slope_var_.shape != (j,):
            raise DataError(f"{where}: tables do not match {j} G0 knots x {k} time knots")
        if np.any(m.var_ < 0) or not 0 <= m.rho_per_decade_ < 1:
            raise DataError(f"{where}: negative variances or rho_per_decade outside [0, 1)")
        return m


def _standardized(marg: MarginalTransform) -> MarginalTransform:
    """The transform shifted and scaled to zero mean and unit variance under N(0, 1)."""
    x = np.linspace(-8, 8, 16001)
    w = np.exp(-0.5 * x * x)
    w /= w.sum()
    u = marg.to_data(x)
    mu = float(w @ u)
    sd = float(np.sqrt(w @ (u - mu) ** 2))
    return MarginalTransform(marg.x_knots, (marg.u_knots - mu) / sd)


def _fit_rho(x: np.ndarray, tau: np.ndarray) -> tuple[float, list]:
    """Per-decade correlation of the normal-space residuals: least squares of corr vs rho**dtau
    over all pairs of time points, weighted by the cells read at both."""
    pairs = []
    for a in range(x.shape[1]):
        for b in range(a + 1, x.shape[1]):
            ok = np.isfinite(x[:, a]) & np.isfinite(x[:, b])
            if ok.sum() < 30:
                continue
            c = float(np.corrcoef(x[ok, a], x[ok, b])[0, 1])
            pairs.append((float(tau[b] - tau[a]), c, int(ok.sum())))
    if not pairs:
        return 0.0, []
    dt, c, n = (np.array(v) for v in zip(*pairs))

    def loss(r):
        return float(np.sum(n * (c - r ** dt) ** 2))

    res = optimize.minimize_scalar(loss, bounds=(0.0, 0.999), method="bounded")
    return float(res.x), [{"dlog10_t": a, "corr": b, "n": int(k)} for a, b, k in pairs]


def _technology_name(src: str) -> str:
    from pathlib import Path

    name = Path(src).name
    for suffix in (".gz", ".tsv", ".csv", ".txt"):
        name = name.removesuffix(suffix)
    return name.removesuffix("-relaxation")

"""Pulse response of a 1T1R cell: the distribution of the conductance after one pulse.

Model class (chosen from the RADAR pulse data, see ``docs/pulse.md`` for the alternatives tried
and their held-out errors): a **conditional quantile network** per polarity. For a pulse of
polarity ``p`` (SET: bit line driven, RESET: source line driven) a small MLP maps

    (log10 G_before, V_drive, V_WL, log10 width, e_cell)  ->  q_1 < q_2 < ... < q_K

the quantiles of ``y = log10(G_after / G_before)`` at fixed levels ``tau_1..tau_K``
(monotone by construction: ``q_1`` plus cumulative softplus increments). A draw is ``y`` at a
standard-normal score ``z``: piecewise linear in ``z`` between the knots ``Phi^-1(tau_k)``,
constant beyond the ends. The data need this freedom: a SET from the HRS is bimodal near its
threshold (no switch, or a jump to the gate-set compliance level), a partial RESET is wide and
skewed (a quarter of RESET pulses raise G), and below threshold a pulse only adds read noise.

Device-to-device and cycle-to-cycle parts are separated as in the cycling model: ``e_cell`` is
a per-cell latent (one per polarity), standard normal over devices. Fitting learns one value
per measured cell with enough pulses (an embedding table, standardised) jointly with the
network, so the network's quantiles at fixed ``e`` are the cycle-to-cycle distribution and the
spread over ``e`` is the device-to-device part. Cells with too few pulses to place (one pulse
each in the 1 us / 10 us sweeps) are fitted with ``e`` drawn at random: there, the two parts
stay together in the cycle-to-cycle distribution.

Reads are noisy. Two consecutive reads of a cell with no pulse between them (the read after one
pulse and the read before the next) differ by 6-18 % at G < 80 uS and 0.3 % above 150 uS, and
the spread hardly grows over ten sub-threshold pulses (0.016 -> 0.022 decades at 50-160 uS): it
is read noise (random telegraph noise), not a drift of the state. The model keeps the empirical
quantiles of ``ln(G_next_before / G_after)`` in bins of G (:class:`ReadNoise`); one read draws
``1/sqrt(2)`` of them. The network is fitted read to read, as measured; the twin
(:meth:`~pyaimc.device.cells.CellArray.apply_pulse`) steps the *true* state, so it takes the
read-noise variance of two reads out of every mixture component (``true_state=True``), and
verify reads add one read's noise.

The current during a pulse, for the energy of a write, is the drive voltage over the cell's
conductance limited by the access transistor: ``I = min(V * G, I_sat(V_WL))`` with a square-law
saturation current ``I_sat = k/2 (V_WL - V_th)^2``, fitted to the compliance the SET data show
(``G_SET(V_WL) * v_hold``, ``v_hold`` the voltage a set filament holds, an assumption stated in
the file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri

from pyaimc.data.container import DataError
from pyaimc.data.pulses import RESET, SET, PulseData, record_kind, sweep_starts

SCHEMA_PART = "pyaimc.pulse/1"
POLARITIES = {"set": SET, "reset": RESET}
#: quantile levels of the network's outputs
TAU = np.array([0.01, 0.03, 0.07, 0.13, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.87, 0.93, 0.97,
                0.99])
#: a cell needs this many pulses of a polarity for its own latent to be fitted
MIN_PULSES_PER_CELL = 20
N_INPUTS = 5


def _silu(x):
    """x * sigmoid(x) in place (sigmoid through tanh: finite for large |x| in float32; in
    place: the hidden layers are the hot loop of the twin's pulses)."""
    t = np.multiply(x, x.dtype.type(0.5))
    np.tanh(t, out=t)
    t += 1
    t *= x.dtype.type(0.5)
    x *= t
    return x


def _softplus(x):
    return np.logaddexp(0.0, x) if x.dtype == np.float64 else np.logaddexp(np.float32(0), x)


@dataclass
class MLP:
    """A fitted MLP (SiLU hidden layers, linear output), evaluated in numpy.

    Attributes
    ----------
    weights, biases : list of ndarray
        Layer ``l`` maps ``h @ weights[l] + biases[l]``.
    x_mean, x_scale : ndarray (N_INPUTS,)
        Input standardisation.
    y_scale : float
        Scale of ``log10(G_after / G_before)`` (decades) the outputs were fitted in.
    t_mean, t_scale : float
        Location and scale of ``log10 G_after`` (absolute mixture components).
    """

    weights: list
    biases: list
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_scale: float
    t_mean: float = 0.0
    t_scale: float = 1.0

    def __post_init__(self):
        self.weights = [np.asarray(w, dtype=np.float64) for w in self.weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in self.biases]
        self.x_mean = np.asarray(self.x_mean, dtype=np.float64)
        self.x_scale = np.asarray(self.x_scale, dtype=np.float64)
        self._cache = {}

    def _params(self, dtype):
        key = np.dtype(dtype).str
        if key not in self._cache:
            # fold the input standardisation into the first layer
            w0 = self.weights[0] / self.x_scale[:, None]
            b0 = self.biases[0] - self.x_mean / self.x_scale @ self.weights[0]
            ws = [w0] + self.weights[1:]
            bs = [b0] + self.biases[1:]
            self._cache[key] = ([w.astype(dtype) for w in ws], [b.astype(dtype) for b in bs])
        return self._cache[key]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs (n, outputs) for inputs ``x`` (n, N_INPUTS)."""
        ws, bs = self._params(x.dtype)
        h = x
        for w, b in zip(ws[:-1], bs[:-1]):
            h = h @ w
            h += b
            h = _silu(h)
        out = h @ ws[-1]
        out += bs[-1]
        return out

    def to_dict(self) -> dict:
        return {"weights": [w.tolist() for w in self.weights],
                "biases": [b.tolist() for b in self.biases],
                "x_mean": self.x_mean.tolist(), "x_scale": self.x_scale.tolist(),
                "y_scale": float(self.y_scale), "t_mean": float(self.t_mean),
                "t_scale": float(self.t_scale)}

    @classmethod
    def from_dict(cls, d: dict) -> "MLP":
        return cls(d["weights"], d["biases"], d["x_mean"], d["x_scale"], d["y_scale"],
                   d.get("t_mean", 0.0), d.get("t_scale", 1.0))


def quantile_draw(q: np.ndarray, z: np.ndarray, z_knots: np.ndarray) -> np.ndarray:
    """Value of the quantile function given at knots at normal scores ``z``.

    Piecewise linear in ``z`` between the knots ``z_knots`` (K,), constant beyond the ends (a
    linear continuation runs away where the ends are far apart, as in a bimodal SET).

    Parameters
    ----------
    q : ndarray (n, K)
        Increasing values at the knots.
    z : ndarray (n,)
    z_knots : ndarray (K,)
    """
    k = np.clip(np.searchsorted(z_knots, z), 1, len(z_knots) - 1)
    rows = np.arange(len(z))
    lo, hi = q[rows, k - 1], q[rows, k]
    zl = z_knots[k - 1]
    t = np.clip((z - zl) / (z_knots[k] - zl), 0.0, 1.0)
    return lo + t.astype(q.dtype) * (hi - lo)


@dataclass
class Transistor:
    """Square-law access transistor: saturation current ``k/2 (V_WL - V_th)^2``, A.

    Attributes
    ----------
    k : float, A/V^2
    v_th : float, V
    v_hold : float, V
        Voltage across a set filament at compliance, used to read the compliance current off the
        SET data (``I = G_SET * v_hold``); an assumption, not a measurement.
    """

    k: float = 2e-4
    v_th: float = 1.5
    v_hold: float = 0.4

    def i_sat(self, v_wl):
        return 0.5 * self.k * np.maximum(np.asarray(v_wl, dtype=np.float64) - self.v_th, 0.0) ** 2

    def current(self, v_drive, g, v_wl):
        """Current (A) of a pulse of ``v_drive`` through conductance ``g`` at gate ``v_wl``."""
        return np.minimum(np.asarray(v_drive, dtype=np.float64) * g, self.i_sat(v_wl))

    @classmethod
    def fit(cls, v_wl: np.ndarray, g_set: np.ndarray, v_hold: float = 0.4) -> "Transistor":
        """Least squares of ``sqrt(2 G v_hold)`` on ``V_WL`` (the square law made linear).

        Parameters
        ----------
        v_wl, g_set : ndarray
            Word-line voltages and the median conductance (S) a SET from the HRS reaches there,
            on the rising part of the curve.
        """
        y = np.sqrt(2.0 * np.asarray(g_set) * v_hold)
        a, b = np.polyfit(np.asarray(v_wl, dtype=np.float64), y, 1)
        if not a > 0:
            raise DataError(f"SET conductance does not rise with V_WL (slope {a:g}); cannot fit "
                            f"the access transistor")
        return cls(k=float(a * a), v_th=float(-b / a), v_hold=float(v_hold))

    def to_dict(self) -> dict:
        return {"k_a_per_v2": self.k, "v_th_v": self.v_th, "v_hold_v": self.v_hold}

    @classmethod
    def from_dict(cls, d: dict) -> "Transistor":
        return cls(float(d["k_a_per_v2"]), float(d["v_th_v"]), float(d["v_hold_v"]))


@dataclass
class ReadNoise:
    """Read-to-read noise: quantiles of ``ln(G_next_before / G_after)`` between consecutive
    pulses (two reads, no pulse between), in bins of G.

    Attributes
    ----------
    log_g_edges : ndarray (B+1,)
        Bin edges in log10 G (S); values outside use the end bins.
    quantiles : ndarray (B, Q)
        At the levels ``levels`` (Q,).
    levels : ndarray (Q,)
    """

    log_g_edges: np.ndarray
    quantiles: np.ndarray
    levels: np.ndarray

    def __post_init__(self):
        self.log_g_edges = np.asarray(self.log_g_edges, dtype=np.float64)
        self.quantiles = np.asarray(self.quantiles, dtype=np.float64)
        self.levels = np.asarray(self.levels, dtype=np.float64)

    @classmethod
    def fit(cls, data: list[PulseData], n_bins: int = 8) -> "ReadNoise":
        lg, r = [], []
        for d in data:
            if record_kind(d.source) != "staircase":
                continue  # a RESET the file does not show sits between its pulses
            # pairs within a sweep: across sweeps the experiments restored the cell
            same = ~sweep_starts(d)[1:]
            lg.append(np.log10(d.g_after[:-1][same]))
            r.append(np.log(d.r_after[:-1][same] / d.r_before[1:][same]))
        lg, r = np.concatenate(lg), np.concatenate(r)
        if len(r) < 100 * n_bins:
            raise DataError(f"{len(r)} consecutive pulse pairs; the read-noise table needs at "
                            f"least {100 * n_bins} (staircase files)")
        edges = np.quantile(lg, np.linspace(0, 1, n_bins + 1))
        levels = np.concatenate([[0.005], np.linspace(0.02, 0.98, 25), [0.995]])
        b = np.clip(np.searchsorted(edges, lg) - 1, 0, n_bins - 1)
        q = np.stack([np.quantile(r[b == i], levels) for i in range(n_bins)])
        return cls(edges, q, levels)

    def _bins(self, g):
        return np.clip(np.searchsorted(self.log_g_edges, np.log10(g)) - 1, 0,
                       len(self.quantiles) - 1)

    _GRID = 4096

    def _table(self) -> np.ndarray:
        """Read factors on a fine grid of levels per bin (one gather per draw)."""
        if getattr(self, "_factors", None) is None:
            u = (np.arange(self._GRID) + 0.5) / self._GRID
            x = np.stack([np.interp(u, self.levels, row) for row in self.quantiles])
            self._factors = np.exp(x / math.sqrt(2.0))
        return self._factors

    def draw(self, g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The multiplicative error of one read of each conductance in ``g``.

        A draw of the two-read difference scaled by ``1/sqrt(2)`` (exact for Gaussian noise),
        its quantile function tabulated on 4096 levels (beyond the outermost levels of the
        table it stays at their values)."""
        b = self._bins(g)
        k = rng.integers(0, self._GRID, len(g))
        return self._table()[b, k]

    def pair_sigma_log10(self, g: np.ndarray) -> np.ndarray:
        """Robust std of ``log10`` of the ratio of two reads at ``g`` (decades):
        half the 16-84 % range."""
        q16 = np.array([np.interp(0.16, self.levels, row) for row in self.quantiles])
        q84 = np.array([np.interp(0.84, self.levels, row) for row in self.quantiles])
        return ((q84 - q16) / 2.0 / math.log(10.0))[self._bins(g)]

    def to_dict(self) -> dict:
        return {"log10_g_edges": self.log_g_edges.tolist(), "levels": self.levels.tolist(),
                "ln_ratio_quantiles": self.quantiles.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "ReadNoise":
        return cls(d["log10_g_edges"], d["ln_ratio_quantiles"], d["levels"])


def pulse_inputs(g_before, v_drive, v_wl, width, latent, dtype=np.float64) -> np.ndarray:
    """The network's inputs (n, N_INPUTS): log10 G (S), drive V, gate V, log10 width (s), e."""
    n = np.broadcast_shapes(*(np.shape(a) for a in (g_before, v_drive, v_wl, width, latent)))
    x = np.empty(n + (N_INPUTS,), dtype=dtype)
    x[..., 0] = np.log10(g_before)
    x[..., 1] = v_drive
    x[..., 2] = v_wl
    x[..., 3] = np.log10(width)
    x[..., 4] = latent
    return x.reshape(-1, N_INPUTS)


@dataclass
class PulseModel:
    """Fitted pulse response of a 1T1R cell (see the module docstring).

    Parameters
    ----------
    head : {"mdn", "quantile"}
        Output family: a mixture of Gaussians in ``log10 G_after`` whose components sit either
        relative to ``G_before`` or at an absolute level (``"mdn"``), or monotone quantiles of
        ``log10(G_after / G_before)`` at the levels :data:`TAU` (``"quantile"``).
    n_rel, n_abs : int
        Mixture components relative to ``G_before`` (a pulse that changes G by a factor) and at
        an absolute conductance (a SET that ends at the gate-set compliance), ``"mdn"`` only.
    hidden : int
        Width of the two hidden layers.
    epochs : int
        Passes over the pulses in fitting.
    batch : int
    lr : float
        Adam learning rate (cosine decay to 1 % of it).
    seed : int
        Seeds torch in fitting (initialisation, batches, latents of unplaced cells).

    Attributes (after ``fit``)
    --------------------------
    nets_ : dict "set"/"reset" -> MLP
    read_noise_ : ReadNoise or None
    transistor_ : Transistor
    g_bounds_ : (g_min, g_max), S
        Draws are clipped to this range (the measured range, widened by 1.5x each way).
    fit_info_ : dict
        Pulses, cells, cells with a fitted latent, final loss, device-to-device share.
    """

    head: str = "mdn"
    n_rel: int = 2
    n_abs: int = 2
    hidden: int = 64
    epochs: int = 40
    batch: int = 2048
    lr: float = 3e-3
    seed: int = 0

    nets_: dict = field(default_factory=dict, init=False, repr=False)
    read_noise_: ReadNoise | None = field(default=None, init=False, repr=False)
    transistor_: Transistor = field(default_factory=Transistor, init=False, repr=False)
    g_bounds_: tuple = field(default=(1e-7, 1e-3), init=False, repr=False)
    fit_info_: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def n_outputs(self) -> int:
        return len(TAU) if self.head == "quantile" else 3 * (self.n_rel + self.n_abs)

    def _validate(self):
        if self.head not in ("mdn", "quantile"):
            raise ValueError(f"head must be 'mdn' or 'quantile', got {self.head!r}")
        if self.head == "mdn" and (self.n_rel < 0 or self.n_abs < 0
                                   or self.n_rel + self.n_abs < 1):
            raise ValueError("the mixture needs n_rel, n_abs >= 0 and at least one component")
        if int(self.hidden) < 2 or int(self.epochs) < 1 or int(self.batch) < 1:
            raise ValueError("hidden >= 2, epochs >= 1 and batch >= 1 are needed")

    # ------------------------------------------------------------------ fitting
    def fit(self, data: list[PulseData], progress: bool = False) -> "PulseModel":
        """Fit both polarities to pulse records.

        Parameters
        ----------
        data : list of PulseData
            One entry per source file; every file weighs the same in the loss whatever its
            length. Pulses that drive neither line are left out. ``r_after`` must be measured.
        progress : bool
            Show a progress bar over epochs.

        Returns
        -------
        self
        """
        import torch

        self._validate()
        if isinstance(data, PulseData):
            data = [data]
        if not data:
            raise ValueError("no pulse data to fit")
        for d in data:
            if not d.has_after:
                raise DataError(f"{d.source}: r_after is missing in some rows; fitting needs the "
                                f"measured resistance after every pulse")
        info = {"sources": [d.source for d in data], "n_pulses": {}, "n_cells": {},
                "n_placed_cells": {}, "final_loss": {}, "d2d_share": {}}
        torch.manual_seed(int(self.seed))
        for name, pol in POLARITIES.items():
            parts = [d.select(d.polarity == pol) for d in data]
            parts = [d for d in parts if len(d)]
            if not parts:
                raise DataError(f"no {name.upper()} pulses in {', '.join(info['sources'])}; the "
                                f"pulse model needs both SET and RESET pulses")
            net, stats = _fit_polarity(parts, self, progress, name)
            self.nets_[name] = net
            info["n_pulses"][name] = stats["n_pulses"]
            info["n_cells"][name] = stats["n_cells"]
            info["n_placed_cells"][name] = stats["n_placed"]
            info["final_loss"][name] = stats["loss"]
            info["d2d_share"][name] = stats["d2d_share"]
        try:
            self.read_noise_ = ReadNoise.fit(data)
        except DataError as err:
            self.read_noise_ = None
            info["read_noise"] = f"none: {err}"
        g = np.concatenate([np.concatenate([d.g_before, d.g_after]) for d in data])
        self.g_bounds_ = (float(g.min() / 1.5), float(g.max() * 1.5))
        self.transistor_ = _fit_transistor(data)
        self.fit_info_ = info
        return self

    # ------------------------------------------------------------------ heads
    def _check_fitted(self):
        if not self.nets_:
            raise RuntimeError("this PulseModel is not fitted yet")

    def mixture(self, polarity: str, g_before, v_drive, v_wl, width, latent=0.0,
                dtype=np.float64):
        """Mixture parameters of ``log10 G_after`` (``"mdn"`` head).

        Returns
        -------
        weights, means, sigmas : ndarray (n, C)
            Component weights, means (log10 S) and standard deviations (decades).
        """
        self._check_fitted()
        if self.head != "mdn":
            raise ValueError("mixture() needs the 'mdn' head")
        x = pulse_inputs(g_before, v_drive, v_wl, width, latent, dtype)
        net = self.nets_[polarity]
        return _mdn_params(net(x), x[:, 0], net, self.n_rel)

    def quantiles(self, polarity: str, g_before, v_drive, v_wl, width, latent=0.0,
                  dtype=np.float64, tau: np.ndarray = TAU) -> np.ndarray:
        """Quantiles (n, len(tau)) of ``log10(G_after / G_before)``.

        The ``"quantile"`` head gives them at :data:`TAU` directly (other levels interpolated in
        normal score); the ``"mdn"`` head by bisection of the mixture's distribution function.
        """
        self._check_fitted()
        x = pulse_inputs(g_before, v_drive, v_wl, width, latent, dtype)
        net = self.nets_[polarity]
        if self.head == "quantile":
            q = _quantile_values(net(x), net)
            if np.array_equal(tau, TAU):
                return q
            zt = ndtri(np.asarray(tau))
            return np.stack([quantile_draw(q, np.full(len(q), z), _Z_KNOTS) for z in zt], 1)
        w, mu, sd = _mdn_params(net(x), x[:, 0], net, self.n_rel)
        return _mixture_quantiles(w, mu, sd, np.asarray(tau)) - x[:, :1]

    def respond(self, g_before, v_bl, v_sl, v_wl, width, latent_set, latent_reset,
                rng: np.random.Generator, dtype=np.float64, true_state: bool = False
                ) -> np.ndarray:
        """Conductance (S) after one pulse for each cell.

        Parameters
        ----------
        g_before : ndarray (n,), S
        v_bl, v_sl, v_wl, width : ndarray (n,) or scalars, V and s
            A cell with ``v_bl > 0`` gets a SET, with ``v_sl > 0`` a RESET, with neither nothing
            (both > 0 is an error).
        latent_set, latent_reset : ndarray (n,) or scalars
            The cells' device latents (standard normal over devices).
        rng : Generator
            Cycle-to-cycle draws.
        dtype : float32 or float64
            Of the network evaluation (float32 in the hot paths of the twin).
        true_state : bool
            False: a read after the pulse given a read before it (what was measured). True: the
            cell's true conductance after the pulse given its true conductance before: the
            draw's distance from the centre (``"mdn"``: the mixture mean, ``"quantile"``: the
            median) shrinks so that its variance loses the read-noise variance of two reads.

        Returns
        -------
        ndarray (n,), S
        """
        self._check_fitted()
        g_before = np.asarray(g_before, dtype=np.float64)
        deconv = true_state and self.read_noise_ is not None
        n = g_before.shape[0]
        args = [np.broadcast_to(np.asarray(a, dtype=np.float64), (n,))
                for a in (v_bl, v_sl, v_wl, width, latent_set, latent_reset)]
        v_bl, v_sl, v_wl, width, e_set, e_reset = args
        both = (v_bl > 0) & (v_sl > 0)
        if both.any():
            i = int(np.flatnonzero(both)[0])
            raise ValueError(f"cell {i}: v_bl {v_bl[i]:g} V and v_sl {v_sl[i]:g} V are both > 0; "
                             f"a SET drives the bit line, a RESET the source line")
        if np.any(width[(v_bl > 0) | (v_sl > 0)] <= 0):
            raise ValueError("pulse widths must be > 0 s")
        out = g_before.copy()
        z = rng.standard_normal(n, dtype=np.float32 if dtype == np.float32 else np.float64)
        u = rng.random(n) if self.head == "mdn" else None
        for name, v, e in (("set", v_bl, e_set), ("reset", v_sl, e_reset)):
            idx = np.flatnonzero(v > 0)
            if not len(idx):
                continue
            x = pulse_inputs(g_before[idx], v[idx], v_wl[idx], width[idx], e[idx], dtype)
            net = self.nets_[name]
            raw = net(x)
            noise2 = (self.read_noise_.pair_sigma_log10(g_before[idx]) ** 2).astype(dtype) \
                if deconv else None
            if self.head == "quantile":
                q = _quantile_values(raw, net)
                if deconv:
                    med = q[:, 7:8]
                    spread2 = ((q[:, 11] - q[:, 3]) / (2 * 1.1264)) ** 2
                    shrink = np.sqrt(np.clip(1 - noise2 / np.maximum(spread2, 1e-12), 0, 1))
                    q = med + (q - med) * shrink[:, None]
                y = quantile_draw(q, z[idx], _Z_KNOTS.astype(dtype))
                out[idx] = g_before[idx] * np.power(10.0, y.astype(np.float64))
            else:
                w, mu, sd = _mdn_params(raw, x[:, 0], net, self.n_rel)
                c = (np.cumsum(w, axis=1) < u[idx, None]).sum(axis=1)
                np.minimum(c, w.shape[1] - 1, out=c)
                rows = np.arange(len(idx))
                y = mu[rows, c] + sd[rows, c] * z[idx]
                if deconv:
                    # the two reads' noise out of the spread about the mixture mean
                    mean = (w * mu).sum(axis=1)
                    var = (w * (sd * sd + (mu - mean[:, None]) ** 2)).sum(axis=1)
                    shrink = np.sqrt(np.clip(1 - noise2 / np.maximum(var, 1e-12), 0, 1))
                    y = mean + (y - mean) * shrink
                out[idx] = np.power(10.0, y.astype(np.float64))
        np.clip(out, self.g_bounds_[0], self.g_bounds_[1], out=out)
        return out

    def energy(self, g_before, g_after, v_bl, v_sl, v_wl, width) -> np.ndarray:
        """Energy (J) of each pulse: ``V * I * width`` at the larger of the two conductances
        (a SET conducts most after it switched, a RESET before), limited by the transistor."""
        v = np.maximum(np.asarray(v_bl, dtype=np.float64), np.asarray(v_sl, dtype=np.float64))
        g = np.maximum(g_before, g_after)
        return v * self.transistor_.current(v, g, v_wl) * np.asarray(width, dtype=np.float64)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "schema": SCHEMA_PART,
            "kind": f"{self.head}_net",
            "params": {"head": self.head, "n_rel": self.n_rel, "n_abs": self.n_abs,
                       "hidden": self.hidden, "epochs": self.epochs, "batch": self.batch,
                       "lr": self.lr, "seed": self.seed},
            "inputs": ["log10 G_before (S)", "V_drive (V)", "V_WL (V)", "log10 width (s)",
                       "device latent"],
            "output": ("mixture of Gaussians in log10 G_after: n_rel components relative to "
                       "log10 G_before, then n_abs absolute; per component weight logit, mean, "
                       "log std" if self.head == "mdn" else
                       "quantiles of log10(G_after / G_before) at tau"),
            "tau": TAU.tolist(),
            "nets": {k: v.to_dict() for k, v in self.nets_.items()},
            "read_noise": None if self.read_noise_ is None else self.read_noise_.to_dict(),
            "transistor": self.transistor_.to_dict(),
            "g_bounds_s": list(self.g_bounds_),
            "fit": self.fit_info_,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "model") -> "PulseModel":
        if d.get("schema") != SCHEMA_PART or d.get("kind") not in ("mdn_net", "quantile_net"):
            raise DataError(f"{where}: pulse part has schema {d.get('schema')!r} kind "
                            f"{d.get('kind')!r}; expected {SCHEMA_PART!r} 'mdn_net' or "
                            f"'quantile_net'")
        try:
            m = cls(**d["params"])
            m._validate()
            if not np.allclose(d["tau"], TAU):
                raise ValueError("quantile levels differ from this version's")
            m.nets_ = {k: MLP.from_dict(v) for k, v in d["nets"].items()}
            if set(m.nets_) != set(POLARITIES):
                raise ValueError(f"nets {sorted(m.nets_)}; expected 'reset' and 'set'")
            for k, net in m.nets_.items():
                arrays = net.weights + net.biases + [net.x_mean, net.x_scale]
                if not all(np.all(np.isfinite(a)) for a in arrays) or not net.y_scale > 0:
                    raise ValueError(f"net {k!r} holds non-finite weights or scales")
                if np.any(net.x_scale <= 0):
                    raise ValueError(f"net {k!r}: input scales must be > 0")
                if net.weights[-1].shape[1] != m.n_outputs or net.weights[0].shape[0] != N_INPUTS:
                    raise ValueError(f"net {k!r} has {net.weights[0].shape[0]} inputs and "
                                     f"{net.weights[-1].shape[1]} outputs; expected {N_INPUTS} "
                                     f"and {m.n_outputs}")
            m.read_noise_ = (None if d.get("read_noise") is None
                             else ReadNoise.from_dict(d["read_noise"]))
            m.transistor_ = Transistor.from_dict(d["transistor"])
            m.g_bounds_ = tuple(float(g) for g in d["g_bounds_s"])
            m.fit_info_ = d.get("fit", {})
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise DataError(f"{where}: not a valid pulse part ({type(err).__name__}: {err})"
                            ) from None
        return m


#: smallest component std of the mixture, decades (the read-to-read noise of high states)
SIGMA_MIN = 3e-4


def _quantile_values(raw: np.ndarray, net: MLP) -> np.ndarray:
    """Monotone quantiles from raw outputs: the first plus cumulative softplus increments."""
    out = raw.copy()
    out[:, 1:] = _softplus(raw[:, 1:])
    np.cumsum(out, axis=1, out=out)
    out *= out.dtype.type(net.y_scale)
    return out


def _mdn_params(raw: np.ndarray, log_gb: np.ndarray, net: MLP, n_rel: int):
    """Weights, means (log10 S) and stds (decades) of the mixture from raw outputs.

    ``net.y_scale`` scales relative means and all stds; absolute means are
    ``net.t_mean + net.t_scale * raw``."""
    c = raw.shape[1] // 3
    logits = raw[:, :c]
    logits = logits - logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    mu = raw[:, c:2 * c].copy()
    ys = raw.dtype.type(net.y_scale)
    mu[:, :n_rel] = log_gb[:, None] + ys * mu[:, :n_rel]
    mu[:, n_rel:] = raw.dtype.type(net.t_mean) + raw.dtype.type(net.t_scale) * mu[:, n_rel:]
    sd = np.exp(raw[:, 2 * c:]) * ys + raw.dtype.type(SIGMA_MIN)
    return w, mu, sd


def _mixture_quantiles(w, mu, sd, tau, iters: int = 50) -> np.ndarray:
    """Quantiles of Gaussian mixtures (rows) at levels ``tau``, by bisection."""
    from scipy.special import ndtr

    lo = (mu - 8 * sd).min(axis=1)
    hi = (mu + 8 * sd).max(axis=1)
    out = np.empty((len(w), len(tau)))
    for j, t in enumerate(tau):
        a, b = lo.copy(), hi.copy()
        for _ in range(iters):
            m = 0.5 * (a + b)
            cdf = (w * ndtr((m[:, None] - mu) / sd)).sum(axis=1)
            below = cdf < t
            a = np.where(below, m, a)
            b = np.where(below, b, m)
        out[:, j] = 0.5 * (a + b)
    return out


_Z_KNOTS = ndtri(TAU)


# ---------------------------------------------------------------------------- fitting helpers
def _fit_transistor(data: list[PulseData]) -> Transistor:
    """Square law through the median SET-from-HRS conductance at the shortest width measured,
    on its rising part (between 20 % and 80 % of its top)."""
    sets = [d.select((d.polarity == SET) & (d.r_before > 60e3)) for d in data]
    sets = [d for d in sets if len(d)]
    if not sets:
        return Transistor()
    w_min = min(float(d.width.min()) for d in sets)
    v = np.concatenate([np.round(d.v_wl[d.width == w_min], 1) for d in sets])
    g = np.concatenate([d.g_after[d.width == w_min] for d in sets])
    vw, gs = [], []
    for vv in np.unique(v):
        s = v == vv
        if s.sum() >= 30:
            vw.append(vv)
            gs.append(np.median(g[s]))
    vw, gs = np.asarray(vw), np.asarray(gs)
    if len(vw) < 3:
        return Transistor()
    top = gs.max()
    keep = (gs > 0.2 * top) & (gs < 0.8 * top)
    if keep.sum() < 2:
        return Transistor()
    return Transistor.fit(vw[keep], gs[keep])


def _fit_polarity(parts: list[PulseData], cfg: PulseModel, progress: bool, name: str):
    """Fit one polarity's network with per-cell latents (torch)."""
    import torch

    xs, ts, ws, cells, cell_pulses, cell_file = [], [], [], [], [], []
    offset = 0
    for k, d in enumerate(parts):
        v = d.v_bl if name == "set" else d.v_sl
        xs.append(np.stack([np.log10(d.g_before), v, d.v_wl, np.log10(d.width),
                            np.zeros(len(d))], axis=1))
        ts.append(np.log10(d.g_after))
        ws.append(np.full(len(d), 1.0 / (len(d) * len(parts))))
        _, inv = np.unique(d.cell, return_inverse=True)
        counts = np.bincount(inv)
        cells.append(inv + offset)
        cell_pulses.append(counts)
        cell_file.append(np.full(len(counts), k))
        offset += len(counts)
    x = np.concatenate(xs)
    t = np.concatenate(ts)
    y = t - x[:, 0]
    w = np.concatenate(ws)
    w = w / w.mean()
    cell = np.concatenate(cells)
    counts = np.concatenate(cell_pulses)
    placed = counts >= MIN_PULSES_PER_CELL
    emb_index = np.full(len(counts), -1)
    emb_index[placed] = np.arange(int(placed.sum()))
    row_emb = emb_index[cell]
    # latents are standardised within each file: otherwise they could carry the differences
    # between experiments (days, chips) that a new device does not draw from
    files_placed = np.concatenate(cell_file)[placed]
    file_ids = [np.flatnonzero(files_placed == f) for f in np.unique(files_placed)]
    file_ids = [torch.tensor(f) for f in file_ids if len(f) > 1]

    x_mean = np.append(x[:, :4].mean(axis=0), 0.0)
    x_scale = np.append(x[:, :4].std(axis=0), 1.0)
    x_scale[x_scale == 0] = 1.0
    y_scale = float(max(np.std(y), 1e-3))
    t_mean, t_scale = float(t.mean()), float(max(t.std(), 1e-3))

    g = torch.Generator().manual_seed(int(cfg.seed) + (0 if name == "set" else 1))
    h = int(cfg.hidden)
    n_out = cfg.n_outputs
    layers = torch.nn.Sequential(torch.nn.Linear(N_INPUTS, h), torch.nn.SiLU(),
                                 torch.nn.Linear(h, h), torch.nn.SiLU(), torch.nn.Linear(h, n_out))
    n_rel = cfg.n_rel
    c = n_out // 3
    with torch.no_grad():
        if cfg.head == "quantile":
            # start as a narrow band around y = 0 (most pulses change little)
            layers[-1].bias[:] = torch.tensor([-0.5] + [-2.0] * (n_out - 1))
        else:
            layers[-1].bias[2 * c:] = -2.0
    n_emb = max(int(placed.sum()), 1)
    emb = torch.nn.Parameter(torch.randn(n_emb, generator=g) * 0.1)
    opt = torch.optim.Adam(list(layers.parameters()) + [emb], lr=cfg.lr)
    X = torch.tensor((x - x_mean) / x_scale, dtype=torch.float32)
    LG = torch.tensor(x[:, 0], dtype=torch.float32)
    T = torch.tensor(t, dtype=torch.float32)
    W = torch.tensor(w, dtype=torch.float32)
    E = torch.tensor(row_emb, dtype=torch.long)
    tau = torch.tensor(TAU, dtype=torch.float32)
    n = len(X)
    steps = max(1, math.ceil(n / cfg.batch))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps * int(cfg.epochs),
                                                       eta_min=cfg.lr * 0.01)

    def standardised():
        e_all = emb * 0
        for f in file_ids:
            ef = emb[f]
            e_all = e_all.index_put((f,), (ef - ef.mean()) / (ef.std() + 1e-6))
        return e_all

    def forward(idx):
        ei = E[idx]
        e = torch.where(ei >= 0, standardised()[ei.clamp(min=0)],
                        torch.randn(len(idx), generator=g))
        xb = X[idx].clone()
        xb[:, 4] = e
        return layers(xb)

    def loss_fn(raw, idx):
        tb, lg, wb = T[idx], LG[idx], W[idx]
        if cfg.head == "quantile":
            q = torch.cat([raw[:, :1], torch.nn.functional.softplus(raw[:, 1:])], 1).cumsum(1)
            r = ((tb - lg) / y_scale)[:, None] - q
            per = torch.maximum(tau * r, (tau - 1) * r).mean(1) * y_scale
        else:
            logits = raw[:, :c]
            mu = torch.cat([lg[:, None] + y_scale * raw[:, c:c + n_rel],
                            t_mean + t_scale * raw[:, c + n_rel:2 * c]], 1)
            sd = torch.exp(raw[:, 2 * c:]) * y_scale + SIGMA_MIN
            logp = (torch.log_softmax(logits, 1) - 0.5 * ((tb[:, None] - mu) / sd) ** 2
                    - torch.log(sd) - 0.5 * math.log(2 * math.pi))
            per = -torch.logsumexp(logp, 1)
        return (per * wb).mean()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=int(cfg.epochs), desc=f"pulse model ({name})", unit="epoch")
    last = math.nan
    for _ in range(int(cfg.epochs)):
        perm = torch.randperm(n, generator=g)
        run = 0.0
        for s in range(steps):
            idx = perm[s * cfg.batch:(s + 1) * cfg.batch]
            loss = loss_fn(forward(idx), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run += float(loss.detach())
        last = run / steps
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{last:.4f}")
    if bar is not None:
        bar.close()

    lin = [m for m in layers if isinstance(m, torch.nn.Linear)]
    net = MLP([m.weight.detach().numpy().T.astype(np.float64) for m in lin],
              [m.bias.detach().numpy().astype(np.float64) for m in lin],
              x_mean, x_scale, y_scale, t_mean, t_scale)
    # how far the latents move a placed cell's median against the spread of its pulses
    d2d = math.nan
    if file_ids:
        with torch.no_grad():
            e_all = standardised().numpy()
        rows = np.flatnonzero(row_emb >= 0)
        xr = x[rows].copy()
        xr[:, 4] = e_all[row_emb[rows]]
        med_cell = _median(cfg, net, xr)
        xr[:, 4] = 0.0
        med_pop = _median(cfg, net, xr)
        shift2 = np.mean((med_cell - med_pop) ** 2)
        resid2 = np.mean((y[rows] - (med_cell - xr[:, 0])) ** 2)
        d2d = float(shift2 / (shift2 + resid2))
    stats = {"n_pulses": int(n), "n_cells": int(len(counts)), "n_placed": int(placed.sum()),
             "loss": float(last), "d2d_share": d2d}
    return net, stats


def _median(cfg: PulseModel, net: MLP, x: np.ndarray) -> np.ndarray:
    """Median of log10 G_after for inputs ``x``."""
    raw = net(x)
    if cfg.head == "quantile":
        return x[:, 0] + _quantile_values(raw, net)[:, 7]
    w, mu, sd = _mdn_params(raw, x[:, 0], net, cfg.n_rel)
    return _mixture_quantiles(w, mu, sd, np.array([0.5]), iters=30)[:, 0]



def replay(model: "PulseModel", data: PulseData, rng: np.random.Generator) -> PulseData:
    """Draw ``r_after`` for every row of a pulse table from its ``r_before`` and pulse.

    Each distinct cell label is one device: its latents are drawn once, in order of first
    appearance. Every row is drawn read to read (``r_before`` as measured, ``r_after`` as a
    read would see it), independently of the other rows' draws. Rows that drive neither line
    keep ``r_after = r_before``.

    Returns
    -------
    PulseData
        The same rows in the same order, ``r_after`` (ohm) drawn.
    """
    cells = data.cells()
    index = {c: k for k, c in enumerate(cells)}
    inv = np.fromiter((index[c] for c in data.cell), dtype=np.int64, count=len(data))
    lat = rng.standard_normal((2, len(cells)))
    g = model.respond(data.g_before, data.v_bl, data.v_sl, data.v_wl, data.width,
                      lat[0, inv], lat[1, inv], rng)
    return PulseData(data.cell, data.width, data.v_bl, data.v_sl, data.v_wl, data.r_before,
                     1.0 / g, data.row, data.source, data.sequence)

"""Programming error in the noise model: per-scheme tables of the conductance a write reaches.

:class:`TableProgramming` (kind ``"table"``) holds, for each exported write scheme, the mean and
spread of the conductance reached at each target level (simulated with the device model's cell
array by :func:`programming_statistics`, the schemes of :mod:`pyaimc.device.schemes`), split into
cycle-to-cycle and device-to-device parts, and polynomials of the normalised target that the
training layers sample from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyaimc.device.schemes import new_cells, tolerance_window
from pyaimc.noise.protocols import PROGRAMMING_MODELS, register


def _poly(coeffs, x):
    return np.polynomial.polynomial.polyval(np.asarray(x, dtype=np.float64), np.asarray(coeffs))


@dataclass
class ProgrammingTable:
    """Achieved conductance per target level for one write scheme (arrays over the levels).

    Attributes
    ----------
    method : str
        The write scheme (a name of :data:`pyaimc.device.schemes.SCHEMES`).
    mean, std : ndarray, S
        Mean and standard deviation of the conductance reached (all devices and repeats).
    c2c_std, d2d_std : ndarray, S
        Cycle-to-cycle part (one device re-programmed) and device-to-device part (spread of the
        device means) of ``std``.
    failed_fraction : ndarray
        Writes that ended outside their target window.
    mean_pulses, p99_pulses : ndarray
        Pulses per write.
    mean_coeffs, std_coeffs : ndarray
        Polynomials (ascending powers) of the normalised target ``gn = (g_T - g_min) /
        (g_max - g_min)`` giving mean and std in S: the training-time sampler.
    fit_error : dict
        Largest deviation of the polynomials from the table, relative to ``mean`` and to
        ``max(std)``.
    settings : dict
        Pulses and loop settings used.
    """

    method: str
    mean: np.ndarray
    std: np.ndarray
    c2c_std: np.ndarray
    d2d_std: np.ndarray
    failed_fraction: np.ndarray
    mean_pulses: np.ndarray
    p99_pulses: np.ndarray
    mean_coeffs: np.ndarray
    std_coeffs: np.ndarray
    fit_error: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    ARRAYS = ("mean", "std", "c2c_std", "d2d_std", "failed_fraction", "mean_pulses", "p99_pulses")

    def __post_init__(self) -> None:
        for name in self.ARRAYS + ("mean_coeffs", "std_coeffs"):
            setattr(self, name, np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64)))

    def mean_at(self, g_target, window) -> np.ndarray:
        """Mean conductance reached for target ``g_target`` (S), from the polynomial."""
        return _poly(self.mean_coeffs, window.normalise(g_target))

    def std_at(self, g_target, window) -> np.ndarray:
        """Standard deviation (S) for target ``g_target`` (S), from the polynomial (>= 0)."""
        return np.maximum(_poly(self.std_coeffs, window.normalise(g_target)), 0.0)

    def to_dict(self) -> dict:
        d = {name: getattr(self, name) for name in ("method",) + self.ARRAYS}
        d.update(mean_coeffs=self.mean_coeffs, std_coeffs=self.std_coeffs,
                 coeff_variable="gn = (g_target - g_min) / (g_max - g_min); ascending powers; S",
                 fit_error=self.fit_error, settings=self.settings)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ProgrammingTable":
        keys = ("method",) + cls.ARRAYS + ("mean_coeffs", "std_coeffs")
        return cls(**{k: d[k] for k in keys}, fit_error=d.get("fit_error", {}),
                   settings=d.get("settings", {}))

    @classmethod
    def exact(cls, method: str, levels, g_min: float, g_max: float) -> "ProgrammingTable":
        """A table of writes that hit every target exactly (the ideal preset)."""
        levels = np.asarray(levels, dtype=np.float64)
        zero = np.zeros_like(levels)
        return cls(method, levels, zero, zero, zero, zero, zero, zero, [g_min, g_max - g_min],
                   [0.0], {"mean_rel": 0.0, "std_rel": 0.0}, {"preset": "ideal"})


@register(PROGRAMMING_MODELS)
@dataclass
class TableProgramming:
    """Programming error of several write schemes over the same target levels (kind ``"table"``).

    Attributes
    ----------
    levels : ndarray (k,)
        Target conductances, S, across the window.
    schemes : dict of str -> ProgrammingTable
        One table per write scheme, by scheme name.
    training_scheme : str
        The scheme the training layers sample by default.
    n_devices, n_repeats : int
        Devices simulated per level; writes per device.
    calibration : dict
        Pulses of the schemes (for the cycling model: SET pulse, full-RESET pulse and the mean
        RESET path, V and S).
    """

    kind = "table"

    levels: np.ndarray
    schemes: dict
    training_scheme: str = "write_verify"
    n_devices: int = 0
    n_repeats: int = 0
    calibration: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.levels = np.atleast_1d(np.asarray(self.levels, dtype=np.float64))

    @property
    def scheme_names(self) -> list[str]:
        return list(self.schemes)

    @property
    def training_method(self) -> str:
        """Alias of :attr:`training_scheme` (its name before schemes were registered)."""
        return self.training_scheme

    def table(self, scheme: str | None = None) -> ProgrammingTable:
        """The table of ``scheme`` (default: the training scheme)."""
        scheme = scheme or self.training_scheme
        if scheme not in self.schemes:
            raise ValueError(f"the noise model has no programming table for scheme {scheme!r} "
                             f"(it has {', '.join(self.schemes)})")
        return self.schemes[scheme]

    # ------------------------------------------------------------------ the protocol
    def moments(self, g_target, window, scheme: str | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (S) of the conductance reached for ``g_target`` (S)."""
        t = self.table(scheme)
        return t.mean_at(g_target, window), t.std_at(g_target, window)

    def sample(self, g_target, window, rng: np.random.Generator,
               scheme: str | None = None) -> np.ndarray:
        """One programmed conductance per target (S; clipped at 0), numpy."""
        mean, std = self.moments(g_target, window, scheme)
        return np.maximum(mean + std * rng.standard_normal(np.shape(mean)), 0.0)

    def torch_sampler(self, window, defects, scheme: str | None = None, stuck: bool = True):
        """The training layers' sampler of this scheme (:class:`~pyaimc.noise.torch_ops.
        PolynomialSampler`; imports torch)."""
        from pyaimc.noise.torch_ops import PolynomialSampler

        t = self.table(scheme)
        return PolynomialSampler(t.method, t.mean_coeffs, t.std_coeffs, window.g_min,
                                 window.g_max - window.g_min,
                                 defects.stuck_fraction if stuck else 0.0, defects.stuck_g)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {"kind": self.kind, "levels": self.levels, "training_scheme": self.training_scheme,
                "n_devices": self.n_devices, "n_repeats": self.n_repeats,
                "schemes": {name: t.to_dict() for name, t in self.schemes.items()},
                "calibration": self.calibration}

    @classmethod
    def from_dict(cls, d: dict) -> "TableProgramming":
        if "schemes" in d:
            schemes = {name: ProgrammingTable.from_dict(t) for name, t in d["schemes"].items()}
            training = d["training_scheme"]
        else:  # pyaimc.noise/1: two fixed fields
            schemes = {name: ProgrammingTable.from_dict(d[name])
                       for name in ("one_shot", "write_verify")}
            training = d["training_method"]
        return cls(d["levels"], schemes, training, int(d.get("n_devices", 0)),
                   int(d.get("n_repeats", 0)), d.get("calibration", {}))

    def validate(self, fail, window) -> None:
        """Check the tables against the levels and the window; ``fail(msg)`` raises."""
        lv = self.levels
        if lv.ndim != 1 or len(lv) < 2 or not np.all(np.diff(lv) > 0):
            fail("programming.levels must be at least 2 increasing conductances")
        span = window.g_max - window.g_min
        if lv[0] < window.g_min - 1e-9 * span or lv[-1] > window.g_max + 1e-9 * span:
            fail(f"programming.levels [{lv[0]:.4g}, {lv[-1]:.4g}] S lie outside the window "
                 f"[{window.g_min:.4g}, {window.g_max:.4g}] S")
        if not self.schemes:
            fail("programming.schemes is empty")
        if self.training_scheme not in self.schemes:
            fail(f"programming.training_scheme {self.training_scheme!r} has no table (schemes: "
                 f"{', '.join(self.schemes)})")
        for name, t in self.schemes.items():
            if t.method != name:
                fail(f"programming.schemes.{name}.method says {t.method!r}")
            for arr_name in ProgrammingTable.ARRAYS:
                arr = getattr(t, arr_name)
                if arr.shape != lv.shape:
                    fail(f"programming.schemes.{name}.{arr_name} has {arr.size} values for "
                         f"{lv.size} levels")
                if not np.all(np.isfinite(arr)):
                    fail(f"programming.schemes.{name}.{arr_name} holds non-finite values")
            if np.any(t.std < 0) or np.any(t.c2c_std < 0) or np.any(t.d2d_std < 0):
                fail(f"programming.schemes.{name}: standard deviations must be >= 0")
            if np.any((t.failed_fraction < 0) | (t.failed_fraction > 1)):
                fail(f"programming.schemes.{name}.failed_fraction must lie in [0, 1]")
            for c_name in ("mean_coeffs", "std_coeffs"):
                c = getattr(t, c_name)
                if c.ndim != 1 or c.size < 1 or not np.all(np.isfinite(c)):
                    fail(f"programming.schemes.{name}.{c_name} must be a non-empty list of "
                         f"numbers")


# -------------------------------------------------------------------------------------------
# the simulation behind the tables

def spread_parts(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cycle-to-cycle and device-to-device parts of the spread of repeated writes.

    Parameters
    ----------
    g : ndarray (levels, devices, repeats)
        Conductances reached by each device at each write.

    Returns
    -------
    c2c_std, d2d_std : ndarray (levels,)
        Root mean within-device variance; spread of the device means less the share of the
        within-device variance their means still carry (``c2c**2 / repeats``), clipped at 0.
    """
    r = g.shape[2]
    within = np.var(g, axis=2, ddof=1).mean(axis=1)
    between = np.var(g.mean(axis=2), axis=1, ddof=1) - within / r
    return np.sqrt(within), np.sqrt(np.clip(between, 0.0, None))


def programming_statistics(model, levels: np.ndarray, rng: np.random.Generator, scheme,
                           n_devices: int = 1000, n_repeats: int = 8, tolerance: float = 0.05,
                           progress=None) -> dict:
    """Program ``n_devices`` new devices per target level ``n_repeats`` times each.

    Parameters
    ----------
    model : DeviceModel
    levels : ndarray (k,)
        Target conductances, S; each write's window is ``level * (1 -+ tolerance)``.
    rng : numpy.random.Generator
    scheme : WriteScheme
        A scheme of :mod:`pyaimc.device.schemes`, prepared (calibrated) against ``model`` here
        when it is not yet.
    n_devices, n_repeats : int
        Devices per level; writes of each device (consecutive cycles).
    tolerance : float
        Relative half-width of the target windows.
    progress : callable, optional
        Called once per completed repeat (e.g. a tqdm ``update``).

    Returns
    -------
    dict of ndarray (k,)
        ``mean``, ``std`` (all writes, S), ``c2c_std`` (spread of one device re-programmed
        ``n_repeats`` times, root mean within-device variance, S), ``d2d_std`` (spread of the
        device means with the within-device part of their variance removed, S),
        ``failed_fraction``, ``mean_pulses``, ``p99_pulses``, ``energy_mean`` (J, NaN where the
        scheme gives no energy); and ``g`` (k, n_devices, n_repeats).

    Notes
    -----
    ``std**2 ~= c2c_std**2 + d2d_std**2`` (law of total variance). The repeats are consecutive
    cycles of each device, so slow cycle-to-cycle drift (the VAR's persistence) shows partly in
    ``d2d_std``.
    """
    if int(n_devices) < 2 or int(n_repeats) < 2:
        raise ValueError("need at least 2 devices and 2 repeats per level to split the spread")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    levels = np.asarray(levels, dtype=np.float64)
    scheme.prepare(model, rng)
    k, d, r = len(levels), int(n_devices), int(n_repeats)
    g_lo, g_hi = tolerance_window(np.repeat(levels, d), tolerance)
    cells = new_cells(model, k * d, rng)
    g = np.empty((k, d, r))
    pulses = np.empty((k, d, r), dtype=np.int64)
    ok = np.empty((k, d, r), dtype=bool)
    energy = np.full((k, d, r), np.nan)
    for j in range(r):
        prepare_write = getattr(scheme, "between_writes", None)
        if prepare_write is not None:
            # schemes that program an erased array start every write from their erase
            prepare_write(cells, rng)
        res = scheme.program(cells, g_lo, g_hi, rng)
        g[:, :, j] = res.g.reshape(k, d)
        pulses[:, :, j] = res.pulses.reshape(k, d)
        ok[:, :, j] = res.success.reshape(k, d)
        if res.energy is not None:
            energy[:, :, j] = res.energy.reshape(k, d)
        if progress is not None:
            progress()
    cells.close()
    c2c_std, d2d_std = spread_parts(g)
    flat = g.reshape(k, d * r)
    return {
        "mean": flat.mean(axis=1),
        "std": flat.std(axis=1, ddof=1),
        "c2c_std": c2c_std,
        "d2d_std": d2d_std,
        "failed_fraction": 1.0 - ok.reshape(k, d * r).mean(axis=1),
        "mean_pulses": pulses.reshape(k, d * r).mean(axis=1),
        "p99_pulses": np.quantile(pulses.reshape(k, d * r), 0.99, axis=1),
        "energy_mean": energy.reshape(k, d * r).mean(axis=1),
        "g": g,
    }

"""The hardware noise model: everything a hardware-aware training run needs, nothing more.

One :class:`NoiseModel` (a nested, typed dataclass) saved as versioned JSON, ``pyaimc.noise/1``::

    window       conductance window [g_min, g_max] (S) and the read voltage that defines G
    mapping      signed weights -> differential conductance pairs (per output channel scale)
    programming  achieved conductance per target level, one-shot and write-verify: mean, spread
                 (device-to-device and cycle-to-cycle parts), failed verifies, pulses; and
                 polynomials of the normalised target for the training-time sampler
    defects      stuck cells (fraction, conductance) and, for information, outlier devices
    read_noise   Johnson and shot noise of each cell at a stated bandwidth
    dac, adc     input DAC and column ADC resolution and ranges
    tile         tile size and wire resistance
    transfer     the crossbar transfer document (pyaimc.transfer/1) or None (ideal crossbar)

Build one from a fitted device model with :func:`pyaimc.noise.export_noise_model`; the ideal
preset :meth:`NoiseModel.ideal` has no noise at all (a reference for tests and ablations).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyaimc.device.iv import K_BOLTZMANN, Q_ELECTRON
from pyaimc.io import SchemaError, provenance, read_json, write_json
from pyaimc.noise.transfer_doc import TransferError, validate_transfer

SCHEMA = "pyaimc.noise/1"
METHODS = ("one_shot", "write_verify")


class NoiseModelError(ValueError):
    """A noise model has missing, impossible or mutually inconsistent fields."""


def _poly(coeffs, x):
    return np.polynomial.polynomial.polyval(np.asarray(x, dtype=np.float64), np.asarray(coeffs))


@dataclass
class Window:
    """Conductance window of the cells.

    Attributes
    ----------
    g_min, g_max : float
        Lowest and highest target conductance, S (chord conductance at ``u_read``).
    u_read : float
        Read voltage that defines a cell's conductance, V.
    rule : str
        How the window was chosen.
    """

    g_min: float
    g_max: float
    u_read: float = 0.2
    rule: str = ""

    def normalise(self, g):
        """``(g - g_min) / (g_max - g_min)``: 0 at g_min, 1 at g_max."""
        return (np.asarray(g, dtype=np.float64) - self.g_min) / (self.g_max - self.g_min)


@dataclass
class Mapping:
    """How a signed weight becomes a pair of conductances.

    Weight ``w`` of output channel ``o`` with scale ``s_o = max_i |w_oi|``: the positive cell
    targets ``g_min + (g_max - g_min) * max(w, 0) / s_o``, the negative cell
    ``g_min + (g_max - g_min) * max(-w, 0) / s_o``; the output is the difference of the two
    columns' currents, multiplied back by ``s_o`` digitally.
    """

    kind: str = "differential_pair"
    scale: str = "per_output_channel_abs_max"


@dataclass
class ProgrammingTable:
    """Achieved conductance per target level for one write scheme (arrays over the levels).

    Attributes
    ----------
    method : {"one_shot", "write_verify"}
    mean, std : ndarray, S
        Mean and standard deviation of the conductance reached (all devices and repeats).
    c2c_std, d2d_std : ndarray, S
        Cycle-to-cycle part (one device re-programmed) and device-to-device part (spread of the
        device means) of ``std``.
    failed_fraction : ndarray
        Writes that ended outside the tolerance (write-verify; 0 for one-shot).
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

    def mean_at(self, g_target, window: Window) -> np.ndarray:
        """Mean conductance reached for target ``g_target`` (S), from the polynomial."""
        return _poly(self.mean_coeffs, window.normalise(g_target))

    def std_at(self, g_target, window: Window) -> np.ndarray:
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


@dataclass
class Programming:
    """Programming error of both write schemes over the same target levels.

    Attributes
    ----------
    levels : ndarray (k,)
        Target conductances, S, across the window.
    one_shot, write_verify : ProgrammingTable
    training_method : {"write_verify", "one_shot"}
        The scheme the training layer samples by default.
    n_devices, n_repeats : int
        Devices simulated per level; writes per device.
    calibration : dict
        SET pulse, full-RESET pulse and the mean RESET path (V, S) of the one-shot write.
    """

    levels: np.ndarray
    one_shot: ProgrammingTable
    write_verify: ProgrammingTable
    training_method: str = "write_verify"
    n_devices: int = 0
    n_repeats: int = 0
    calibration: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.levels = np.atleast_1d(np.asarray(self.levels, dtype=np.float64))

    def table(self, method: str | None = None) -> ProgrammingTable:
        """The table of ``method`` (default: the training method)."""
        method = method or self.training_method
        if method not in METHODS:
            raise ValueError(f"programming method must be one of {METHODS}, got {method!r}")
        return getattr(self, method)

    def to_dict(self) -> dict:
        return {"levels": self.levels, "training_method": self.training_method,
                "n_devices": self.n_devices, "n_repeats": self.n_repeats,
                "one_shot": self.one_shot.to_dict(), "write_verify": self.write_verify.to_dict(),
                "calibration": self.calibration}

    @classmethod
    def from_dict(cls, d: dict) -> "Programming":
        return cls(d["levels"], ProgrammingTable.from_dict(d["one_shot"]),
                   ProgrammingTable.from_dict(d["write_verify"]), d["training_method"],
                   int(d.get("n_devices", 0)), int(d.get("n_repeats", 0)),
                   d.get("calibration", {}))


@dataclass
class Defects:
    """Cells that do not follow the programming statistics.

    Attributes
    ----------
    stuck_fraction : float
        Cells that do not switch and hold ``stuck_g`` whatever the target. From the device fit:
        the cells it excluded as stuck over all cells measured.
    stuck_g : float
        Conductance of a stuck cell, S.
    outlier_fraction : float
        For information: weight of the smallest device population when it is an outlier
        population (weight <= 0.1 of a mixture of two or more). Those devices are drawn in the
        programming simulation, so their effect is already in the programming tables.
    narrow_window_fraction : float
        For information: devices whose median cycle cannot reach ``g_max`` (median LRS below it)
        or ``g_min`` (median HRS above it); also already in the tables (as failed verifies).
    notes : str
    """

    stuck_fraction: float = 0.0
    stuck_g: float = 0.0
    outlier_fraction: float = 0.0
    narrow_window_fraction: float = 0.0
    notes: str = ""


@dataclass
class ReadNoise:
    """Johnson and shot noise of a cell read at voltage ``u``: the device model's read noise.

    ``sigma_I**2 = B * G * (4 k T + 2 q |u|)`` for ``u != 0`` and 0 at ``u = 0`` (A**2), with
    ``G`` the cell's chord conductance: the device model's ``noise_sigma(G u, u, B)``. Cells on
    one column add their variances.

    Attributes
    ----------
    bandwidth : float
        Noise bandwidth, Hz (0: no read noise).
    temperature : float
        K.
    levels, sigma_i, relative : ndarray
        For reference: at conductances ``levels`` (S) read at ``u_read``, the current noise (A)
        and its ratio to the current.
    """

    bandwidth: float = 1e8
    temperature: float = 300.0
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sigma_i: np.ndarray = field(default_factory=lambda: np.zeros(0))
    relative: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        for name in ("levels", "sigma_i", "relative"):
            setattr(self, name, np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64)))

    @property
    def four_kt(self) -> float:
        """``4 k T``, J (= A**2 / (S Hz))."""
        return 4.0 * K_BOLTZMANN * self.temperature

    @property
    def two_q(self) -> float:
        """``2 q``, C."""
        return 2.0 * Q_ELECTRON

    def sigma_current(self, g, u) -> np.ndarray:
        """Current noise (A) of cells of conductance ``g`` (S) read at ``u`` (V)."""
        g = np.asarray(g, dtype=np.float64)
        u = np.abs(np.asarray(u, dtype=np.float64))
        var = self.bandwidth * g * (self.four_kt + self.two_q * u)
        return np.sqrt(np.where(u > 0, var, 0.0))

    def to_dict(self) -> dict:
        return {"bandwidth_hz": self.bandwidth, "temperature_k": self.temperature,
                "form": "sigma_I^2 = B * G * (4 k T + 2 q |u|) for u != 0, 0 at u = 0 (A^2)",
                "levels": self.levels, "sigma_i_at_u_read": self.sigma_i,
                "relative_at_u_read": self.relative}

    @classmethod
    def from_dict(cls, d: dict) -> "ReadNoise":
        return cls(d["bandwidth_hz"], d["temperature_k"], d.get("levels", []),
                   d.get("sigma_i_at_u_read", []), d.get("relative_at_u_read", []))


@dataclass
class DAC:
    """Input DAC: ``bits`` signed levels ``v_max * k / (2**(bits-1) - 1)`` (None: no rounding).

    Inputs are scaled per sample (largest magnitude to ``v_max``) before the DAC.
    """

    bits: int | None = 8
    v_max: float = 0.2


@dataclass
class ADC:
    """Column ADC on the difference current of each differential column pair.

    Signed levels ``i_max * k / (2**(bits-1) - 1)``, clipped at ``+-i_max`` (None: no rounding
    or clipping). ``i_max = headroom * sqrt(rows) * v_max * (g_max - g_min)`` at export: a
    column of ``rows`` independent products of full-scale magnitude has a spread of about
    ``sqrt(rows)`` single-cell currents.
    """

    bits: int | None = 8
    i_max: float = 1e-3
    headroom: float = 2.0


@dataclass
class Tile:
    """Tile size (rows = inputs, cols = outputs per tile) and wire resistance per segment (ohm;
    None when not stated: an ideal crossbar)."""

    rows: int = 64
    cols: int = 64
    r_wire: float | None = None


@dataclass
class NoiseModel:
    """The hardware noise model of one device model on one crossbar design.

    Attributes
    ----------
    window : Window
    programming : Programming
    defects : Defects
    read_noise : ReadNoise
    dac : DAC
    adc : ADC
    tile : Tile
    transfer : dict or None
        The ``pyaimc.transfer/1`` document (IR drop, input non-linearity, read-out saturation)
        for this tile, or None for an ideal crossbar.
    mapping : Mapping
    device : dict
        Where the device model came from (file, features, its provenance).
    provenance : dict
    """

    window: Window
    programming: Programming
    defects: Defects = field(default_factory=Defects)
    read_noise: ReadNoise = field(default_factory=ReadNoise)
    dac: DAC = field(default_factory=DAC)
    adc: ADC = field(default_factory=ADC)
    tile: Tile = field(default_factory=Tile)
    transfer: dict | None = None
    mapping: Mapping = field(default_factory=Mapping)
    device: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ presets
    @classmethod
    def ideal(cls, g_min: float = 1e-6, g_max: float = 1e-4, rows: int = 64, cols: int = 64,
              v_max: float = 0.2) -> "NoiseModel":
        """No programming error, no read noise, no stuck cells, no DAC or ADC rounding, ideal
        crossbar: the analog layer then computes ``W x`` exactly (up to float rounding)."""
        levels = np.array([g_min, g_max])

        def exact(method):
            zero = np.zeros(2)
            return ProgrammingTable(method, levels, zero, zero, zero, zero, zero, zero,
                                    [g_min, g_max - g_min], [0.0],
                                    {"mean_rel": 0.0, "std_rel": 0.0}, {"preset": "ideal"})

        return cls(Window(g_min, g_max, v_max, "preset: ideal"),
                   Programming(levels, exact("one_shot"), exact("write_verify")),
                   read_noise=ReadNoise(bandwidth=0.0),
                   dac=DAC(None, v_max), adc=ADC(None, 1.0, 0.0), tile=Tile(rows, cols, None),
                   provenance=provenance(command="NoiseModel.ideal()"))

    # ------------------------------------------------------------------ checks
    def validate(self, where: str = "noise model") -> "NoiseModel":
        """Check every field and their agreement; returns self.

        Raises
        ------
        NoiseModelError
            Naming the field and what was expected.
        """
        def fail(msg):
            raise NoiseModelError(f"{where}: {msg}")

        w = self.window
        if not (math.isfinite(w.g_min) and math.isfinite(w.g_max) and 0 < w.g_min < w.g_max):
            fail(f"window needs 0 < g_min < g_max, got g_min={w.g_min}, g_max={w.g_max} S")
        if not w.u_read > 0:
            fail(f"window.u_read must be > 0 V, got {w.u_read}")
        p = self.programming
        lv = p.levels
        if lv.ndim != 1 or len(lv) < 2 or not np.all(np.diff(lv) > 0):
            fail("programming.levels must be at least 2 increasing conductances")
        span = w.g_max - w.g_min
        if lv[0] < w.g_min - 1e-9 * span or lv[-1] > w.g_max + 1e-9 * span:
            fail(f"programming.levels [{lv[0]:.4g}, {lv[-1]:.4g}] S lie outside the window "
                 f"[{w.g_min:.4g}, {w.g_max:.4g}] S")
        if p.training_method not in METHODS:
            fail(f"programming.training_method must be one of {METHODS}, got "
                 f"{p.training_method!r}")
        for method in METHODS:
            t = getattr(p, method)
            if t.method != method:
                fail(f"programming.{method}.method says {t.method!r}")
            for name in ProgrammingTable.ARRAYS:
                arr = getattr(t, name)
                if arr.shape != lv.shape:
                    fail(f"programming.{method}.{name} has {arr.size} values for "
                         f"{lv.size} levels")
                if not np.all(np.isfinite(arr)):
                    fail(f"programming.{method}.{name} holds non-finite values")
            if np.any(t.std < 0) or np.any(t.c2c_std < 0) or np.any(t.d2d_std < 0):
                fail(f"programming.{method}: standard deviations must be >= 0")
            if np.any((t.failed_fraction < 0) | (t.failed_fraction > 1)):
                fail(f"programming.{method}.failed_fraction must lie in [0, 1]")
            for name in ("mean_coeffs", "std_coeffs"):
                c = getattr(t, name)
                if c.ndim != 1 or c.size < 1 or not np.all(np.isfinite(c)):
                    fail(f"programming.{method}.{name} must be a non-empty list of numbers")
        d = self.defects
        for name in ("stuck_fraction", "outlier_fraction", "narrow_window_fraction"):
            v = getattr(d, name)
            if not 0 <= v <= 1:
                fail(f"defects.{name} must lie in [0, 1], got {v}")
        if not d.stuck_g >= 0:
            fail(f"defects.stuck_g must be >= 0 S, got {d.stuck_g}")
        r = self.read_noise
        if not (r.bandwidth >= 0 and r.temperature > 0):
            fail(f"read_noise needs bandwidth >= 0 Hz and temperature > 0 K, got "
                 f"{r.bandwidth}, {r.temperature}")
        for name, conv in (("dac", self.dac), ("adc", self.adc)):
            if conv.bits is not None and not (isinstance(conv.bits, int) and 2 <= conv.bits <= 24):
                fail(f"{name}.bits must be an integer in [2, 24] or null, got {conv.bits!r}")
        if not self.dac.v_max > 0:
            fail(f"dac.v_max must be > 0 V, got {self.dac.v_max}")
        if self.adc.bits is not None and not self.adc.i_max > 0:
            fail(f"adc.i_max must be > 0 A, got {self.adc.i_max}")
        t = self.tile
        if not (isinstance(t.rows, int) and isinstance(t.cols, int) and t.rows >= 1
                and t.cols >= 1):
            fail(f"tile needs integer rows, cols >= 1, got {t.rows!r} x {t.cols!r}")
        if t.r_wire is not None and not t.r_wire >= 0:
            fail(f"tile.r_wire must be >= 0 ohm or null, got {t.r_wire}")
        if self.mapping.kind != "differential_pair":
            fail(f"mapping.kind {self.mapping.kind!r} is not supported (differential_pair)")
        if self.transfer is not None:
            self._check_transfer(fail, where)
        return self

    def _check_transfer(self, fail, where) -> None:
        try:
            doc = validate_transfer(self.transfer, f"{where}: transfer")
        except TransferError as err:
            raise NoiseModelError(str(err)) from None
        rows, cols = int(doc["tile"]["rows"]), int(doc["tile"]["cols"])
        if (rows, cols) != (self.tile.rows, self.tile.cols):
            fail(f"the transfer document is for {rows} x {cols} tiles, the noise model's tile is "
                 f"{self.tile.rows} x {self.tile.cols}")
        if self.tile.r_wire is None or not np.isclose(doc["r_wire"], self.tile.r_wire,
                                                      rtol=1e-9, atol=0):
            fail(f"the transfer document has r_wire {doc['r_wire']} ohm, the tile "
                 f"{self.tile.r_wire}")
        if not np.isclose(doc["v_max"], self.dac.v_max, rtol=1e-9, atol=0):
            fail(f"the transfer document has v_max {doc['v_max']} V, the DAC {self.dac.v_max} V")
        span = doc["g_max"] - doc["g_min"]
        if (self.window.g_min < doc["g_min"] - 1e-6 * span
                or self.window.g_max > doc["g_max"] + 1e-6 * span):
            fail(f"the window [{self.window.g_min:.4g}, {self.window.g_max:.4g}] S reaches "
                 f"beyond the transfer fit's range [{doc['g_min']:.4g}, {doc['g_max']:.4g}] S")

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        from pyaimc.noise.aihwkit import to_aihwkit

        return {
            "schema": SCHEMA,
            "window": vars(self.window).copy(),
            "mapping": vars(self.mapping).copy(),
            "programming": self.programming.to_dict(),
            "defects": vars(self.defects).copy(),
            "read_noise": self.read_noise.to_dict(),
            "dac": vars(self.dac).copy(),
            "adc": vars(self.adc).copy(),
            "tile": vars(self.tile).copy(),
            "transfer": self.transfer,
            # derived, for users of aihwkit; ignored when reading
            "aihwkit": to_aihwkit(self),
            "device": self.device,
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as versioned JSON (``pyaimc.noise/1``), atomically."""
        self.validate()
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, doc: dict, where: str = "noise model") -> "NoiseModel":
        """Build and validate a model from its JSON document."""
        if doc.get("schema") != SCHEMA:
            raise SchemaError(f"{where}: schema is {doc.get('schema')!r}, expected {SCHEMA!r}")
        try:
            dac, adc, tile = doc["dac"], doc["adc"], doc["tile"]
            model = cls(
                window=Window(**doc["window"]),
                programming=Programming.from_dict(doc["programming"]),
                defects=Defects(**doc["defects"]),
                read_noise=ReadNoise.from_dict(doc["read_noise"]),
                dac=DAC(dac["bits"], dac["v_max"]),
                adc=ADC(adc["bits"], adc["i_max"], adc.get("headroom", 0.0)),
                tile=Tile(tile["rows"], tile["cols"], tile.get("r_wire")),
                transfer=doc.get("transfer"),
                mapping=Mapping(**doc.get("mapping", {})),
                device=doc.get("device", {}),
                provenance=doc.get("provenance", {}),
            )
        except KeyError as err:
            raise NoiseModelError(f"{where}: missing field {err}") from None
        except (TypeError, ValueError) as err:
            raise NoiseModelError(f"{where}: bad field ({type(err).__name__}: {err})") from None
        return model.validate(where)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NoiseModel":
        """Read a model written by :meth:`save`; other schemas or versions are rejected."""
        return cls.from_dict(read_json(path, SCHEMA), str(path))

    def to_aihwkit(self) -> dict:
        """Programming and read noise as aihwkit's inference noise models take them.

        See :func:`pyaimc.noise.aihwkit.to_aihwkit` for the mapping.
        """
        from pyaimc.noise.aihwkit import to_aihwkit

        return to_aihwkit(self)

"""Write schemes: programming cells of a :class:`~pyaimc.device.cells.CellArray` to target windows.

A write scheme is a small object with a ``name``, its settings (``to_dict()``) and one verb::

    result = scheme.program(cells, g_lo, g_hi, rng)     # -> WriteResult(g, pulses, success, energy)

``g_lo``, ``g_hi`` (S, one pair per cell, or scalars) are the target window of each cell, read at
the model's read voltage: a write succeeds when the cell's conductance ends inside it. Every
scheme uses this one rule; a scheme that aims at a single conductance aims at the window's centre.
A scheme that needs to know the device first (a calibration of its pulses) does so in
``prepare(model, rng)``, which :func:`program` and the noise export call before any cell is drawn.

Schemes register by name (:func:`register_scheme`) and are built with :func:`get_scheme`; a user
scheme is a class with the same three methods, registered the same way. Built in, for the cycling
model's voltage-driven cells (:meth:`~pyaimc.device.cells.CellArray.apply_voltage`):

* ``one_shot``: a full RESET (it ends the cell's cycle, so every write starts a new one), a SET
  pulse, then one RESET pulse whose amplitude is read off a calibration of the mean RESET path
  (:class:`PulseCalibration`): the amplitude at which the *mean* conductance of many cells
  written the same way equals the target. (Without the first pulse, a cell whose partial RESET
  never started keeps its cycle, high ``U_RESET`` and all, into the next write; repeated writes
  then drift towards such cells.)
* ``write_verify``: SET, then RESET pulses of growing amplitude, each followed by a read (with
  the read noise of the stated bandwidth), until the read conductance is inside the window. A cell
  that overshoots (too low a conductance) is SET again and starts over with a smaller step; a cell
  whose LRS is already below the window is fully RESET and SET again (a new cycle); a cell whose
  full RESET still leaves it above the window starts a new cycle too. After ``max_pulses`` pulses
  (SET, RESET and full RESET all count) the cell keeps whatever it holds: a failed verify.
* ``reset_ramp``: SET every cell, then RESET pulses of a fixed rising ramp to the cells still above
  their window until they are inside it or the ramp reaches full RESET (noise-free reads). The
  RESET path is monotone in the highest voltage applied, so the ramp ends on the first amplitude
  that brings a cell below ``g_hi``: the quick programming the crossbar Monte-Carlo uses
  (``g_lo = 0``).

Every RESET that starts from the LRS draws the cell's next cycle (cycle-to-cycle variation), and
every new cell is a new device (device-to-device variation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SET, RESET, FULL_RESET = 0, 1, 2

#: registered write schemes, by name
SCHEMES: dict[str, type] = {}


def register_scheme(cls: type) -> type:
    """Class decorator: make a write scheme available to :func:`get_scheme` by its ``name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' (str)")
    for verb in ("program", "to_dict"):
        if not callable(getattr(cls, verb, None)):
            raise TypeError(f"write scheme {name!r} needs a method {verb}()")
    SCHEMES[name] = cls
    return cls


def get_scheme(name: str, **params) -> "WriteScheme":
    """A new write scheme ``name`` with ``params`` as its settings.

    Raises
    ------
    ValueError
        For a name no scheme registered under, listing the registered ones.
    """
    try:
        cls = SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown write scheme {name!r}; registered: "
                         f"{', '.join(sorted(SCHEMES))}") from None
    return cls(**params)


class WriteScheme:
    """Base of the built-in write schemes (a user scheme needs only the same methods).

    Attributes
    ----------
    name : str
        Registry name.
    exported : bool
        Whether the noise export tabulates this scheme by default.
    """

    name = ""
    exported = False

    def applies_to(self, model) -> bool:
        """Whether the scheme can program cells of ``model`` (default: every model)."""
        return True

    def prepare(self, model, rng: np.random.Generator) -> "WriteScheme":
        """Calibrate against ``model`` before cells are drawn (default: nothing to do)."""
        return self

    def program(self, cells, g_lo, g_hi, rng: np.random.Generator | None = None
                ) -> "WriteResult":  # pragma: no cover - interface
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"scheme": self.name}


def new_cells(model, n: int, rng: np.random.Generator):
    """A float64 cell array whose block count (and so whose random streams) does not depend on
    the machine's core count: the same seed gives the same result everywhere."""
    return model.cells(n, rng, dtype=np.float64, n_threads=1 if n < 65536 else 4)


def _window(g_lo, g_hi, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.broadcast_to(np.asarray(g_lo, dtype=np.float64), (n,))
    hi = np.broadcast_to(np.asarray(g_hi, dtype=np.float64), (n,))
    if not (np.all(np.isfinite(lo)) and np.all(hi > 0) and np.all(lo >= 0) and np.all(lo < hi)):
        raise ValueError("target windows need 0 <= g_lo < g_hi (S), g_lo finite")
    return lo, hi


def centre(g_lo, g_hi) -> np.ndarray:
    """The conductance a single-target scheme aims at: the window's centre (S)."""
    return 0.5 * (np.asarray(g_lo, dtype=np.float64) + np.asarray(g_hi, dtype=np.float64))


def tolerance_window(targets, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """The window ``targets * (1 -+ tolerance)`` (S) of a relative tolerance."""
    targets = np.asarray(targets, dtype=np.float64)
    return targets * (1 - tolerance), targets * (1 + tolerance)


@dataclass
class WriteResult:
    """Outcome of programming every cell once.

    Attributes
    ----------
    g : ndarray (n,)
        Conductance reached, S (noise-free read at the model's read voltage).
    pulses : ndarray (n,) of int
        Pulses applied (SET and RESET alike).
    success : ndarray (n,) of bool
        Inside the target window at the end (at the last verify read for schemes that verify).
    energy : ndarray (n,) or None
        Energy of the write, J, where the scheme's cell model gives pulse currents.
    """

    g: np.ndarray
    pulses: np.ndarray
    success: np.ndarray
    energy: np.ndarray | None = None


@dataclass
class PulseCalibration:
    """Pulse voltages and the mean RESET path of a device model.

    Attributes
    ----------
    u_set : float
        SET pulse, V (negative; below every cycle's ``U_SET`` of the calibration sample).
    u_full_reset : float
        A RESET pulse that reaches the cycle's HRS, V.
    u_reset : ndarray (k,)
        RESET amplitudes of the calibration, V, increasing.
    g_mean : ndarray (k,)
        Mean conductance (S, noise-free read at ``u_read``) of SET cells after one RESET
        pulse of each amplitude; strictly decreasing.
    """

    u_set: float
    u_full_reset: float
    u_reset: np.ndarray
    g_mean: np.ndarray

    def amplitude(self, g) -> np.ndarray:
        """RESET amplitude (V) at which the mean path reaches conductance ``g`` (S).

        Targets above the mean SET conductance give the smallest calibrated amplitude (below
        most cycles' ``U_RESET``: no RESET), targets below the mean full-RESET conductance give
        the full-RESET voltage.
        """
        # g_mean decreases with u: interpolate on the reversed (increasing) arrays
        return np.interp(g, self.g_mean[::-1], self.u_reset[::-1])

    def to_dict(self) -> dict:
        return {"u_set": self.u_set, "u_full_reset": self.u_full_reset,
                "u_reset": self.u_reset, "g_mean": self.g_mean}


def calibrate_pulses(model, rng: np.random.Generator, n_cells: int = 20000,
                     n_points: int = 64, set_margin: float = 0.2) -> PulseCalibration:
    """Find the SET pulse and the mean RESET path of ``model``.

    Parameters
    ----------
    model : DeviceModel
    rng : numpy.random.Generator
    n_cells : int
        Cells averaged per amplitude.
    n_points : int
        RESET amplitudes, from below the 0.1 % quantile of ``U_RESET`` to the full-RESET voltage.
    set_margin : float
        The SET pulse lies this far (V) below the lowest ``U_SET`` of ``n_cells`` sampled cycles.

    Returns
    -------
    PulseCalibration

    Notes
    -----
    Each amplitude is applied as the one-shot write applies it: full RESET, SET, RESET pulse.
    """
    iv = model.iv_
    feats = model.sample(n_cells, 1, rng)
    u_set_cycles = feats.get("U_SET", np.full((n_cells, 1), iv.default_u_set))
    u_reset_cycles = feats.get("U_RESET", np.full((n_cells, 1), iv.default_u_reset))
    u_set = float(np.min(u_set_cycles)) - set_margin
    u_lo = max(1e-3, float(np.quantile(u_reset_cycles, 1e-3)) - 0.05)
    u_full = float(iv.u_full_reset)
    grid = np.linspace(u_lo, u_full, n_points)
    cells = new_cells(model, n_cells, rng)
    g = np.empty(n_points)
    for k, u in enumerate(grid):
        cells.apply_voltage(u_full)
        cells.apply_voltage(u_set)
        cells.apply_voltage(u)
        g[k] = np.mean(1.0 / cells.resistance)
    cells.close()
    # the mean path is monotone in expectation; sampling noise may break that by a hair
    g = np.minimum.accumulate(g)
    keep = np.concatenate([[True], np.diff(g) < 0])
    return PulseCalibration(u_set, u_full, grid[keep], g[keep])


class _Calibrated(WriteScheme):
    """A scheme driven by a :class:`PulseCalibration` of the model (made in :meth:`prepare`)."""

    def __init__(self, calibration: PulseCalibration | None = None):
        self.calibration = calibration

    def applies_to(self, model) -> bool:
        return getattr(model, "iv_", None) is not None

    def prepare(self, model, rng: np.random.Generator) -> "WriteScheme":
        if self.calibration is None:
            self.calibration = calibrate_pulses(model, rng)
        return self

    def _cal(self) -> PulseCalibration:
        if self.calibration is None:
            raise RuntimeError(f"write scheme {self.name!r}: call prepare(model, rng) first (it "
                               f"calibrates the pulses)")
        return self.calibration


@register_scheme
class OneShot(_Calibrated):
    """Full RESET, SET, then one RESET pulse of the calibrated amplitude (see the module)."""

    name = "one_shot"
    exported = True

    def program(self, cells, g_lo, g_hi, rng=None) -> WriteResult:
        cal = self._cal()
        lo, hi = _window(g_lo, g_hi, len(cells))
        cells.apply_voltage(cal.u_full_reset)
        cells.apply_voltage(cal.u_set)
        cells.apply_voltage(cal.amplitude(centre(lo, hi)))
        g = 1.0 / cells.resistance
        n = len(cells)
        return WriteResult(g, np.full(n, 3), (g >= lo) & (g <= hi))

    def to_dict(self) -> dict:
        cal = self._cal()
        return {"scheme": self.name, "u_set_v": cal.u_set, "u_reset": "calibrated mean path"}


@register_scheme
class WriteVerify(_Calibrated):
    """SET, then adaptive RESET steps with a verify read after each (see the module).

    Parameters
    ----------
    calibration : PulseCalibration, optional
        Made by :meth:`prepare` when omitted.
    max_pulses : int
        Most pulses per write (SET, RESET and full RESET all count).
    start_margin : float
        The first RESET pulse aims at ``target * (1 + start_margin)`` on the mean path (target
        the window's centre), so most cells approach their window from above.
    gain : float
        Fraction of the mean-path amplitude difference between the read and the target
        conductance added to the amplitude after a read above the window; halved after each
        overshoot.
    step_min, step_max : float
        Bounds of the amplitude step, V.
    bandwidth : float
        Bandwidth of the verify reads, Hz (Johnson and shot noise).
    """

    name = "write_verify"
    exported = True

    def __init__(self, calibration: PulseCalibration | None = None, max_pulses: int = 40,
                 start_margin: float = 0.15, gain: float = 0.5, step_min: float = 0.005,
                 step_max: float = 0.1, bandwidth: float = 1e8):
        super().__init__(calibration)
        self.max_pulses, self.start_margin, self.gain = int(max_pulses), start_margin, gain
        self.step_min, self.step_max, self.bandwidth = step_min, step_max, bandwidth
        if self.max_pulses < 2:
            raise ValueError(f"write-verify max_pulses must be >= 2, got {max_pulses}")
        if not (0 < step_min <= step_max):
            raise ValueError("need 0 < step_min <= step_max (V)")
        if not bandwidth > 0:
            raise ValueError(f"verify read bandwidth must be > 0 Hz, got {bandwidth}")

    def program(self, cells, g_lo, g_hi, rng=None) -> WriteResult:
        cal = self._cal()
        n = len(cells)
        lo_band, hi_band = _window(g_lo, g_hi, n)
        targets = centre(lo_band, hi_band)
        u_read = cells.model.iv_.u_read
        u_target = cal.amplitude(targets)
        u_start = cal.amplitude(targets * (1 + self.start_margin))
        u_amp = u_start.copy()
        gain = np.full(n, self.gain)
        action = np.full(n, SET, dtype=np.int8)
        pulses = np.zeros(n, dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        volts = np.zeros(n)
        for _ in range(self.max_pulses):
            active = ~done
            if not active.any():
                break
            volts[:] = 0.0  # 0 V switches nothing: finished cells are left alone
            volts[active & (action == SET)] = cal.u_set
            pick = active & (action == RESET)
            volts[pick] = u_amp[pick]
            volts[active & (action == FULL_RESET)] = cal.u_full_reset
            cells.apply_voltage(volts)
            pulses[active] += 1
            g = cells.read(u_read, bandwidth=self.bandwidth).astype(np.float64) / u_read
            high, low = g > hi_band, g < lo_band
            done |= active & ~high & ~low
            todo = active & ~done
            was = action.copy()
            # after a SET: RESET from the start amplitude, or a new cycle if the LRS is too low
            after = todo & (was == SET)
            np.copyto(action, RESET, where=after & high)
            np.copyto(u_amp, u_start, where=after & high)
            np.copyto(action, FULL_RESET, where=after & low)
            # after a RESET: step up, or start over (overshoot, or the HRS is above the window)
            after = todo & (was == RESET)
            up = after & high & (u_amp < cal.u_full_reset)
            step = np.clip(gain * (u_target - cal.amplitude(g)), self.step_min, self.step_max)
            np.copyto(u_amp, np.minimum(u_amp + step, cal.u_full_reset), where=up)
            np.copyto(action, SET, where=after & ~up)
            np.copyto(gain, gain * 0.5, where=after & low)
            np.copyto(action, SET, where=todo & (was == FULL_RESET))
        return WriteResult(1.0 / cells.resistance, pulses, done)

    def to_dict(self) -> dict:
        d = {"scheme": self.name, "max_pulses": self.max_pulses,
             "start_margin": self.start_margin, "gain": self.gain, "step_min_v": self.step_min,
             "step_max_v": self.step_max, "verify_bandwidth_hz": self.bandwidth}
        if self.calibration is not None:
            d["u_set_v"] = self.calibration.u_set
        return d


@register_scheme
@dataclass
class ResetRamp(WriteScheme):
    """SET, then a fixed rising RESET ramp until each cell is at or below its ``g_hi``.

    Parameters
    ----------
    u_start : float
        First RESET amplitude, V (below the example models' lowest ``U_RESET``, about 0.6 V).
    u_step : float
        Amplitude increment per pulse, V.
    u_set : float
        SET pulse, V (below every ``U_SET`` the example models draw, lowest about -1.0 V).
    """

    name = "reset_ramp"
    u_start: float = 0.5
    u_step: float = 0.01
    u_set: float = -1.5

    def __post_init__(self) -> None:
        if not (0 < self.u_start and 0 < self.u_step):
            raise ValueError(f"u_start and u_step must be > 0 V, got {self.u_start}, "
                             f"{self.u_step}")
        if not self.u_set < 0:
            raise ValueError(f"the SET pulse must be negative, got {self.u_set} V")

    def applies_to(self, model) -> bool:
        return getattr(model, "iv_", None) is not None

    def program(self, cells, g_lo, g_hi, rng=None) -> WriteResult:
        n = len(cells)
        lo, hi = _window(g_lo, g_hi, n)
        u_full = cells.model.iv_.u_full_reset
        cells.apply_voltage(self.u_set)
        pulses = np.ones(n, dtype=np.int64)
        steps = int(np.ceil((u_full - self.u_start) / self.u_step)) + 1
        for k in range(steps):
            todo = 1.0 / cells.resistance > hi
            if not todo.any():
                break
            u = min(self.u_start + k * self.u_step, u_full)
            cells.apply_voltage(np.where(todo, u, 0.0))
            pulses += todo
        g = 1.0 / cells.resistance
        return WriteResult(g, pulses, (g >= lo) & (g <= hi))

    def to_dict(self) -> dict:
        return {"scheme": self.name, **asdict(self)}


def program(model, scheme: WriteScheme, g_lo, g_hi, rng: np.random.Generator):
    """Draw new devices of ``model`` and program each into its window with ``scheme``.

    Parameters
    ----------
    model : DeviceModel
    scheme : WriteScheme
        Prepared here when it needs a calibration (with ``rng``, before the cells are drawn).
    g_lo, g_hi : array_like
        Target windows, S; one per cell (same shape), the number of cells.
    rng : numpy.random.Generator

    Returns
    -------
    cells : CellArray
        The programmed cells (for their state, further pulses or reads).
    result : WriteResult
    """
    g_lo, g_hi = np.broadcast_arrays(np.asarray(g_lo, dtype=np.float64),
                                     np.asarray(g_hi, dtype=np.float64))
    if g_lo.size == 0:
        raise ValueError("no cells to program (empty target windows)")
    scheme.prepare(model, rng)
    cells = model.cells(g_lo.size, rng, dtype=np.float64)
    return cells, scheme.program(cells, g_lo.ravel(), g_hi.ravel(), rng)

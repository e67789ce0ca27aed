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


# ---------------------------------------------------------------------------------------------
# Write-verify on the pulse model (1T1R cells: bit line, source line, word line, pulse width)
# ---------------------------------------------------------------------------------------------
@dataclass
class PulseWriteResult(WriteResult):
    """A :class:`WriteResult` of a pulse-model scheme, with what the verify reads saw.

    Attributes
    ----------
    g_read : ndarray (n,)
        The last verify read of each cell, S (a measured write log records this one).
    n_set, n_reset : ndarray (n,) of int
        SET and RESET pulses of each write.
    """

    g_read: np.ndarray | None = None
    n_set: np.ndarray | None = None
    n_reset: np.ndarray | None = None


def set_gate_table(pulse_model, width: float, v_bl: float, g_hrs: float = 10e-6,
                   v_wl: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Median conductance after one SET from the HRS against the word-line voltage.

    Parameters
    ----------
    pulse_model : PulseModel
    width : float, s
    v_bl : float, V
    g_hrs : float, S
        Conductance before the pulse.
    v_wl : ndarray, optional
        Gate voltages, V (default 1.0 .. 3.6 V in 20 mV steps).

    Returns
    -------
    v_wl, g_median : ndarray
        ``g_median`` made non-decreasing (its running maximum), S.
    """
    v_wl = np.arange(1.0, 3.6001, 0.02) if v_wl is None else np.asarray(v_wl, dtype=np.float64)
    q = pulse_model.quantiles("set", np.full(len(v_wl), g_hrs), v_bl, v_wl, width, 0.0,
                              tau=np.array([0.5]))[:, 0]
    return v_wl, np.maximum.accumulate(g_hrs * 10.0 ** q)


def gate_for(table: tuple[np.ndarray, np.ndarray], g) -> np.ndarray:
    """Word-line voltage whose median SET from the HRS reaches ``g`` (S); the table's ends
    outside its range."""
    v, gm = table
    keep = np.concatenate([[True], np.diff(gm) > 0])
    return np.interp(np.log(g), np.log(gm[keep]), v[keep])


def _up(v, step, top=np.inf):
    """The next voltage of a ramp, to the microvolt (sums of steps must not drift below a
    threshold they reach exactly: 0.5 V + 5 x 0.1 V is 1 V)."""
    return np.minimum(np.round(v + step, 6), top)


def _down(v, steps, bottom):
    return np.maximum(np.round(v - steps, 6), bottom)


class _PulseVerify(WriteScheme):
    """Write-verify of 1T1R cells on a device model's pulse response.

    Every write: verify read; a cell inside its window is done; below it gets a SET pulse, above
    it a RESET pulse; verify read; and so on, until the cell is inside, a ramp gives up, or
    ``max_pulses`` pulses are spent. Subclasses choose each pulse (:meth:`_pulses`). A RESET ramp
    past its top gives up only on a window open at the bottom (the HRS level: ``g_lo`` below
    1/1000 of ``g_hi``); elsewhere it stays at its top. Verify reads
    carry the read-to-read noise measured with the pulse data
    (:meth:`~pyaimc.device.cells.CellArray.read_conductance`); the energy is the model's pulse
    energy (V * I * width, :meth:`~pyaimc.device.pulse.PulseModel.energy`).
    """

    width = 100e-9
    max_pulses = 250
    read_noise = True
    exported = True
    #: the erase before every write of the noise export: a strong RESET to the HRS
    erase_pulse = {"v_sl": 3.0, "v_wl": 4.0, "width": 200e-9}

    def applies_to(self, model) -> bool:
        return getattr(model, "pulse_", None) is not None

    def between_writes(self, cells, rng=None) -> None:
        """Erase every cell (one strong RESET pulse, not counted): the noise export programs an
        erased array for each of its repeated writes, so every repeat is a full write."""
        e = self.erase_pulse
        cells.apply_pulse(0.0, e["v_sl"], e["v_wl"], e["width"])

    def _start(self, cells, lo, hi) -> dict:
        return {}

    def _pulses(self, st: dict, idx, need_set, need_reset):  # pragma: no cover - interface
        """Pulses for the active cells ``idx``: voltages (v_bl, v_sl, v_wl) per cell of ``idx``
        for those that need a SET or a RESET, and the cells that give up (their write ends,
        failed). ``st`` holds the scheme's per-cell state (full length, updated in place at
        ``idx``)."""
        raise NotImplementedError

    def program(self, cells, g_lo, g_hi, rng=None) -> PulseWriteResult:
        if not self.applies_to(cells.model):
            raise ValueError(f"write scheme {self.name!r} needs a device model with a pulse part "
                             f"(pyaimc fit ... --pulses)")
        rng = rng if rng is not None else np.random.default_rng(0)
        n = len(cells)
        lo, hi = _window(g_lo, g_hi, n)
        st = self._start(cells, lo, hi)
        st["hrs"] = lo < 1e-3 * hi
        pulses = np.zeros(n, dtype=np.int64)
        n_set = np.zeros(n, dtype=np.int64)
        energy = np.zeros(n)
        noisy = rng if self.read_noise else None
        g = cells.read_conductance(noisy)
        idx = np.arange(n)  # cells still writing
        for _ in range(int(self.max_pulses)):
            gi = g[idx]
            low, high = gi < lo[idx], gi > hi[idx]
            keep = low | high
            idx, low, high = idx[keep], low[keep], high[keep]
            if not len(idx):
                break
            v_bl, v_sl, v_wl, quit_ = self._pulses(st, idx, low, high)
            if quit_.any():
                go = ~quit_
                idx, v_bl, v_sl, v_wl = idx[go], v_bl[go], v_sl[go], v_wl[go]
                if not len(idx):
                    break
            e = np.empty(len(idx))
            cells.apply_pulse(v_bl, v_sl, v_wl, self.width, index=idx, energy_out=e)
            energy[idx] += e
            pulses[idx] += 1
            n_set[idx] += v_bl > 0
            g[idx] = cells.read_conductance(noisy, index=idx)
        success = (g >= lo) & (g <= hi)
        return PulseWriteResult(cells.conductance, pulses, success, energy, g, n_set,
                                pulses - n_set)

    def _base_dict(self) -> dict:
        return {"scheme": self.name, "width_s": self.width, "max_pulses": int(self.max_pulses),
                "verify_read_noise": "measured read-to-read noise" if self.read_noise else "none"}


class _LevelGated(_PulseVerify):
    """A scheme with a word-line voltage per target level (from the model's SET curve)."""

    set_v_bl_ref = 2.0

    def prepare(self, model, rng: np.random.Generator) -> "WriteScheme":
        if self.applies_to(model) and getattr(self, "_table", None) is None:
            self._table = set_gate_table(model.pulse_, self.width, self.set_v_bl_ref)
        return self

    def _level_gate(self, cells, lo, hi):
        self.prepare(cells.model, None)
        v, gm = self._table
        # open windows: the top of the table (LRS), or no SET at all (HRS)
        target = np.where(np.isfinite(hi) & (hi < 1.0), 0.5 * (lo + hi), lo * 1.1)
        return np.clip(gate_for(self._table, np.maximum(target, gm[0] * 1.01)) + self.gate_offset,
                       v[0], self.v_wl_max)


@register_scheme
@dataclass
class ISPP(_PulseVerify):
    """Incremental step pulse programming in the word line, RESET on overshoot.

    A cell below its window gets SET pulses at a fixed bit-line voltage with the gate rising by
    ``wl_step`` per pulse from ``wl_start`` (up to ``wl_max``); a cell above it gets RESET pulses
    at a fixed gate with the source line rising by ``sl_step`` from ``sl_start``, after which the
    SET ramp starts again from ``wl_start``. A RESET ramp past ``sl_max`` gives up (the
    experiments' HRS writes fail this way, ~15 %).

    Defaults: V_BL 2 V, 100 ns as the single-pulse SET sweeps (``set-sweep-wl-inner``), gate
    step 0.1 V (the evaluation's LRS pulse count, 9.4, sits between the 0.09 and 0.11 V files of
    the ISPP step series); the RESET ramp at V_WL 4 V, as the fine RESET sweeps.
    """

    name = "ispp"
    wl_start: float = 2.0
    wl_step: float = 0.1
    wl_max: float = 3.3
    v_bl: float = 2.0
    sl_start: float = 1.4
    sl_step: float = 0.05
    sl_max: float = 3.0
    reset_v_wl: float = 4.0
    width: float = 100e-9
    max_pulses: int = 250
    read_noise: bool = True

    def _start(self, cells, lo, hi):
        n = len(cells)
        return {"wl": np.full(n, self.wl_start), "sl": np.full(n, self.sl_start)}

    def _pulses(self, st, idx, need_set, need_reset):
        wl, sl = st["wl"][idx], st["sl"][idx]
        quit_ = need_reset & (sl > self.sl_max + 1e-9) & st["hrs"][idx]
        sl = np.minimum(sl, self.sl_max)
        v_bl = np.where(need_set, self.v_bl, 0.0)
        v_sl = np.where(need_reset, sl, 0.0)
        v_wl = np.where(need_set, wl, self.reset_v_wl)
        st["wl"][idx] = np.where(need_set, _up(wl, self.wl_step, self.wl_max),
                                 self.wl_start)
        st["sl"][idx] = np.where(need_reset, _up(sl, self.sl_step), self.sl_start)
        return v_bl, v_sl, v_wl, quit_

    def to_dict(self) -> dict:
        return {**self._base_dict(), **{k: v for k, v in asdict(self).items()
                                        if k not in ("width", "max_pulses", "read_noise")}}


@register_scheme
@dataclass
class FPPV(_LevelGated):
    """Fixed-pulse programming and verify: a fixed gate per level, bit-line steps, RESET on
    overshoot.

    The gate voltage of a level is where the model's median SET from the HRS reaches the
    window's centre (:func:`set_gate_table`; the experiments chose theirs from SET sweeps the
    same way), plus ``gate_offset``. A cell below its window gets SET pulses at that gate with
    the bit line rising by ``bl_step`` from ``bl_start``; a cell above it RESET pulses with the
    source line rising from ``sl_start`` at ``reset_v_wl``; each change of direction starts the
    other ramp from its beginning. 200 ns pulses, as the per-level fine sweeps of the data.
    """

    name = "fppv"
    bl_start: float = 0.5
    bl_step: float = 0.1
    bl_max: float = 3.0
    sl_start: float = 1.4
    sl_step: float = 0.05
    sl_max: float = 3.0
    reset_v_wl: float = 4.0
    gate_offset: float = 0.0
    v_wl_max: float = 3.0
    width: float = 200e-9
    max_pulses: int = 250
    read_noise: bool = True

    def _start(self, cells, lo, hi):
        n = len(cells)
        return {"gate": self._level_gate(cells, lo, hi), "bl": np.full(n, self.bl_start),
                "sl": np.full(n, self.sl_start)}

    def _pulses(self, st, idx, need_set, need_reset):
        bl, sl = st["bl"][idx], st["sl"][idx]
        quit_ = need_reset & (sl > self.sl_max + 1e-9) & st["hrs"][idx]
        sl = np.minimum(sl, self.sl_max)
        v_bl = np.where(need_set, bl, 0.0)
        v_sl = np.where(need_reset, sl, 0.0)
        v_wl = np.where(need_set, st["gate"][idx], self.reset_v_wl)
        st["bl"][idx] = np.where(need_set, _up(bl, self.bl_step, self.bl_max),
                                 self.bl_start)
        st["sl"][idx] = np.where(need_reset, _up(sl, self.sl_step), self.sl_start)
        return v_bl, v_sl, v_wl, quit_

    def to_dict(self) -> dict:
        d = {**self._base_dict(), **{k: v for k, v in asdict(self).items()
                                     if k not in ("width", "max_pulses", "read_noise")}}
        if getattr(self, "_table", None) is not None:
            d["set_gate_table"] = {"v_wl": self._table[0], "g_median_s": self._table[1]}
        return d


@register_scheme
@dataclass
class RADAR(_LevelGated):
    """RADAR (Levy et al., IEEE TED 2021): a coarse SET at the level's gate, then SET and RESET
    steps that adapt instead of starting over.

    Our reading of the paper and of the data's file names (``sdr-wl..-bl<step>-<start>-sl<step>-
    <start>``): the first pulse of a cell below its window is a SET at the level's gate with the
    bit line at ``coarse_bl`` (the coarse attempt). After that, like FPPV (bit-line ramp at the
    level's gate below the window, source-line ramp above it), but a change of direction does not
    restart a ramp at its beginning: the ramp resumes ``backoff`` steps below where it last
    stood, so a cell that hovers near its window gets pulses just strong enough. The RESET ramp
    starts at ``sl_start`` with steps of ``sl_step`` (0.14 V as in the file names).
    """

    name = "radar"
    coarse_bl: float = 2.0
    bl_start: float = 0.5
    bl_step: float = 0.1
    bl_max: float = 3.0
    sl_start: float = 1.4
    sl_step: float = 0.14
    sl_max: float = 3.0
    backoff: int = 2
    reset_v_wl: float = 4.0
    gate_offset: float = 0.0
    v_wl_max: float = 3.0
    width: float = 200e-9
    max_pulses: int = 250
    read_noise: bool = True

    def _start(self, cells, lo, hi):
        n = len(cells)
        return {"gate": self._level_gate(cells, lo, hi), "bl": np.full(n, self.bl_start),
                "sl": np.full(n, self.sl_start), "coarse": np.ones(n, dtype=bool),
                "last": np.zeros(n, dtype=np.int8)}

    def _pulses(self, st, idx, need_set, need_reset):
        bl, sl, last = st["bl"][idx], st["sl"][idx], st["last"][idx]
        coarse = need_set & st["coarse"][idx]
        st["coarse"][idx] = False
        quit_ = need_reset & (sl > self.sl_max + 1e-9) & st["hrs"][idx]
        sl = np.minimum(sl, self.sl_max)
        v_bl = np.where(coarse, self.coarse_bl, np.where(need_set, bl, 0.0))
        v_sl = np.where(need_reset, sl, 0.0)
        v_wl = np.where(need_set, st["gate"][idx], self.reset_v_wl)
        # a ramp steps on while its direction holds; the ramp a cell leaves backs off for its
        # next turn instead of starting over
        fine_set = need_set & ~coarse
        bl_next = np.where(fine_set, _up(bl, self.bl_step, self.bl_max), bl)
        st["bl"][idx] = np.where(need_reset & (last == 1),
                                 _down(bl, self.backoff * self.bl_step, self.bl_start),
                                 bl_next)
        sl_next = np.where(need_reset, _up(sl, self.sl_step), sl)
        st["sl"][idx] = np.where(need_set & (last == -1),
                                 _down(sl, self.backoff * self.sl_step, self.sl_start),
                                 sl_next)
        st["last"][idx] = np.where(need_set, 1, -1)
        return v_bl, v_sl, v_wl, quit_

    def to_dict(self) -> dict:
        d = {**self._base_dict(), **{k: v for k, v in asdict(self).items()
                                     if k not in ("width", "max_pulses", "read_noise")}}
        if getattr(self, "_table", None) is not None:
            d["set_gate_table"] = {"v_wl": self._table[0], "g_median_s": self._table[1]}
        return d


#: the 2-bits-per-cell target windows of the shared RADAR / ISPP / FPPV evaluations, ohm
#: (r_lo 0: below r_hi; r_hi 1e10: above r_lo, the HRS)
EVAL_WINDOWS_2BPC = np.array([[0.0, 5000.0], [5770.0, 6010.0], [8510.0, 9310.0],
                              [80000.0, 1e10]])


def window_conductances(windows_ohm) -> tuple[np.ndarray, np.ndarray]:
    """Conductance windows (g_lo, g_hi), S, of resistance windows ``(r_lo, r_hi)``, ohm.

    ``r_lo = 0`` (below ``r_hi``) gives ``g_hi = inf``; a huge ``r_hi`` gives a tiny ``g_lo``.
    """
    w = np.asarray(windows_ohm, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != 2 or len(w) == 0:
        raise ValueError(f"windows must be (k, 2) pairs r_lo, r_hi in ohm, got shape {w.shape}")
    if np.any(w[:, 0] < 0) or np.any(w[:, 1] <= w[:, 0]) or not np.all(np.isfinite(w)):
        raise ValueError("windows need 0 <= r_lo < r_hi (ohm), finite")
    g_lo = 1.0 / w[:, 1]
    with np.errstate(divide="ignore"):
        g_hi = np.where(w[:, 0] > 0, 1.0 / np.where(w[:, 0] > 0, w[:, 0], 1.0), np.inf)
    return g_lo, g_hi


def program_levels(model, scheme: WriteScheme, windows_ohm, n_cells: int,
                   rng: np.random.Generator, start: str = "previous",
                   progress: bool = False) -> dict:
    """Program ``n_cells`` new devices into each resistance window and summarise per window.

    Parameters
    ----------
    model : DeviceModel
    scheme : WriteScheme
    windows_ohm : array (k, 2)
        ``(r_lo, r_hi)`` per level, ohm (see :func:`window_conductances`).
    n_cells : int
        Cells per window.
    rng : numpy.random.Generator
    start : {"previous", "fresh"}
        ``"previous"``: every cell first writes the window before its own in the list
        (cyclically) and then its own, the write counted, as the measured evaluations rotate
        the levels; ``"fresh"``: the counted write starts from a new device's initial state.
    progress : bool

    Returns
    -------
    dict
        ``{"levels": [{"r_lo", "r_hi", "pulses_mean", "pulses_median", "pulses_p99",
        "success", "g_mean", "g_std", "energy_mean"}, ...]}`` in the order of the windows:
        ``success`` a fraction; ``g_mean``, ``g_std`` (S) of the last verify read of the
        successful writes (the read a write log records; noise-free where the scheme has no
        verify read); ``energy_mean`` the mean energy of a write, J (None where the scheme gives
        none).
    """
    if start not in ("previous", "fresh"):
        raise ValueError(f"start must be 'previous' or 'fresh', got {start!r}")
    windows_ohm = np.asarray(windows_ohm, dtype=np.float64)
    g_lo, g_hi = window_conductances(windows_ohm)
    k, n = len(windows_ohm), int(n_cells)
    if n < 1:
        raise ValueError(f"n_cells must be >= 1, got {n_cells}")
    if not scheme.applies_to(model):
        raise ValueError(f"write scheme {scheme.name!r} does not apply to this device model"
                         + (" (it needs a pulse part: pyaimc fit ... --pulses)"
                            if isinstance(scheme, _PulseVerify) else ""))
    scheme.prepare(model, rng)
    level = np.repeat(np.arange(k), n)
    cells = new_cells(model, k * n, rng)
    if start == "previous":
        prev = (level - 1) % k
        scheme.program(cells, g_lo[prev], g_hi[prev], rng)
    res = scheme.program(cells, g_lo[level], g_hi[level], rng)
    cells.close()
    g_seen = getattr(res, "g_read", None)
    g_seen = res.g if g_seen is None else g_seen
    out = []
    for j in range(k):
        m = level == j
        p = res.pulses[m]
        ok = res.success[m]
        g = g_seen[m][ok]
        out.append({
            "r_lo": float(windows_ohm[j, 0]), "r_hi": float(windows_ohm[j, 1]),
            "pulses_mean": float(p.mean()), "pulses_median": float(np.median(p)),
            "pulses_p99": float(np.quantile(p, 0.99)), "success": float(ok.mean()),
            "g_mean": float(g.mean()) if len(g) else None,
            "g_std": float(g.std()) if len(g) > 1 else None,
            "energy_mean": None if res.energy is None else float(res.energy[m].mean()),
        })
    return {"levels": out}


# the network-programmer scheme registers itself (it builds on the schemes above)
from pyaimc.device import programmer as _programmer  # noqa: E402,F401

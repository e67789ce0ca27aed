"""Programming cells to target conductances with the device model's cell array.

Two write schemes, both simulated pulse by pulse on a :class:`~pyaimc.device.cells.CellArray`
(vectorised over all cells, every cell with its own target):

* **one-shot**: a full RESET (it ends the cell's cycle, so every write starts a new one), a SET
  pulse, then one RESET pulse whose amplitude is read off a calibration of the mean RESET path
  (:class:`PulseCalibration`): the amplitude at which the *mean* conductance of many cells
  written the same way equals the target. (Without the first pulse, a cell whose partial RESET
  never started keeps its cycle, high ``U_RESET`` and all, into the next write; repeated writes
  then drift towards such cells.)
* **write-verify**: SET, then RESET pulses of growing amplitude, each followed by a read (with
  the read noise of the stated bandwidth), until the read conductance is within ``tolerance``
  (relative) of the target. A cell that overshoots (too low a conductance) is SET again and starts
  over with a smaller step; a cell whose LRS is already below the target is fully RESET and SET
  again (a new cycle); a cell whose full RESET still leaves it above the target starts a new
  cycle too. After ``max_pulses`` pulses (SET, RESET and full RESET all count) the cell keeps
  whatever it holds: a failed verify counts in the statistics.

Every RESET that starts from the LRS draws the cell's next cycle (cycle-to-cycle variation), and
every cell is a new device (device-to-device variation). :func:`programming_statistics` programs
the same cells several times in a row to tell the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SET, RESET, FULL_RESET = 0, 1, 2


def _cells(model, n: int, rng: np.random.Generator):
    """A float64 cell array whose block count (and so whose random streams) does not depend on
    the machine's core count: the same seed gives the same file everywhere."""
    return model.cells(n, rng, dtype=np.float64, n_threads=1 if n < 65536 else 4)


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
    cells = _cells(model, n_cells, rng)
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


@dataclass
class WriteResult:
    """Outcome of programming every cell once.

    Attributes
    ----------
    g : ndarray (n,)
        Conductance reached, S (noise-free read at ``u_read``).
    pulses : ndarray (n,) of int
        Pulses applied (SET and RESET alike).
    success : ndarray (n,) of bool
        Within tolerance of the target at the last verify read (one-shot: always True).
    """

    g: np.ndarray
    pulses: np.ndarray
    success: np.ndarray


def write_one_shot(cells, targets: np.ndarray, cal: PulseCalibration) -> WriteResult:
    """Full RESET, SET, then one RESET pulse of the calibrated amplitude for each target (S)."""
    targets = np.asarray(targets, dtype=np.float64)
    cells.apply_voltage(cal.u_full_reset)
    cells.apply_voltage(cal.u_set)
    cells.apply_voltage(cal.amplitude(targets))
    n = len(targets)
    return WriteResult(1.0 / cells.resistance, np.full(n, 3), np.ones(n, dtype=bool))


@dataclass
class VerifySettings:
    """Write-verify loop settings.

    Attributes
    ----------
    tolerance : float
        Accepted relative deviation of the read conductance from the target.
    max_pulses : int
        Most pulses per write (SET, RESET and full RESET all count).
    start_margin : float
        The first RESET pulse aims at ``target * (1 + start_margin)`` on the mean path, so most
        cells approach their target from above.
    gain : float
        Fraction of the mean-path amplitude difference between the read and the target conductance
        added to the amplitude after a read above the tolerance band; halved after each overshoot.
    step_min, step_max : float
        Bounds of the amplitude step, V.
    bandwidth : float
        Bandwidth of the verify reads, Hz (Johnson and shot noise).
    """

    tolerance: float = 0.05
    max_pulses: int = 40
    start_margin: float = 0.15
    gain: float = 0.5
    step_min: float = 0.005
    step_max: float = 0.1
    bandwidth: float = 1e8

    def validate(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ValueError(f"write-verify tolerance must be in (0, 1), got {self.tolerance}")
        if int(self.max_pulses) < 2:
            raise ValueError(f"write-verify max_pulses must be >= 2, got {self.max_pulses}")
        if not (0 < self.step_min <= self.step_max):
            raise ValueError("need 0 < step_min <= step_max (V)")
        if not self.bandwidth > 0:
            raise ValueError(f"verify read bandwidth must be > 0 Hz, got {self.bandwidth}")

    def to_dict(self) -> dict:
        return {"tolerance": self.tolerance, "max_pulses": int(self.max_pulses),
                "start_margin": self.start_margin, "gain": self.gain,
                "step_min_v": self.step_min, "step_max_v": self.step_max,
                "verify_bandwidth_hz": self.bandwidth}


def write_verify(cells, targets: np.ndarray, cal: PulseCalibration,
                 settings: VerifySettings = VerifySettings()) -> WriteResult:
    """Program every cell to its target conductance (S) with a write-verify loop.

    See the module docstring for the loop; ``settings`` gives its tolerance and pulse budget.
    """
    settings.validate()
    targets = np.asarray(targets, dtype=np.float64)
    n = len(targets)
    u_read = cells.model.iv_.u_read
    lo_band = targets * (1 - settings.tolerance)
    hi_band = targets * (1 + settings.tolerance)
    u_target = cal.amplitude(targets)
    u_start = cal.amplitude(targets * (1 + settings.start_margin))
    u_amp = u_start.copy()
    gain = np.full(n, settings.gain)
    action = np.full(n, SET, dtype=np.int8)
    pulses = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    volts = np.zeros(n)
    for _ in range(int(settings.max_pulses)):
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
        g = cells.read(u_read, bandwidth=settings.bandwidth).astype(np.float64) / u_read
        high, low = g > hi_band, g < lo_band
        done |= active & ~high & ~low
        todo = active & ~done
        was = action.copy()
        # after a SET: RESET from the start amplitude, or a new cycle if the LRS is too low
        after = todo & (was == SET)
        np.copyto(action, RESET, where=after & high)
        np.copyto(u_amp, u_start, where=after & high)
        np.copyto(action, FULL_RESET, where=after & low)
        # after a RESET: step up, or start over (overshoot, or the HRS is above the target)
        after = todo & (was == RESET)
        up = after & high & (u_amp < cal.u_full_reset)
        step = np.clip(gain * (u_target - cal.amplitude(g)), settings.step_min, settings.step_max)
        np.copyto(u_amp, np.minimum(u_amp + step, cal.u_full_reset), where=up)
        np.copyto(action, SET, where=after & ~up)
        np.copyto(gain, gain * 0.5, where=after & low)
        np.copyto(action, SET, where=todo & (was == FULL_RESET))
    return WriteResult(1.0 / cells.resistance, pulses, done)


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


def programming_statistics(model, levels: np.ndarray, rng: np.random.Generator,
                           method: str = "write_verify", n_devices: int = 1000,
                           n_repeats: int = 8, cal: PulseCalibration | None = None,
                           settings: VerifySettings = VerifySettings(),
                           progress=None) -> dict:
    """Program ``n_devices`` new devices per target level ``n_repeats`` times each.

    Parameters
    ----------
    model : DeviceModel
    levels : ndarray (k,)
        Target conductances, S.
    rng : numpy.random.Generator
    method : {"write_verify", "one_shot"}
    n_devices, n_repeats : int
        Devices per level; writes of each device (consecutive cycles).
    cal : PulseCalibration, optional
        From :func:`calibrate_pulses` (computed with ``rng`` when omitted).
    settings : VerifySettings
        Write-verify settings (ignored by one-shot).
    progress : callable, optional
        Called once per completed repeat (e.g. a tqdm ``update``).

    Returns
    -------
    dict of ndarray (k,)
        ``mean``, ``std`` (all writes, S), ``c2c_std`` (spread of one device re-programmed
        ``n_repeats`` times, root mean within-device variance, S), ``d2d_std`` (spread of the
        device means with the within-device part of their variance removed, S),
        ``failed_fraction``, ``mean_pulses``, ``p99_pulses``; and ``g`` (k, n_devices, n_repeats).

    Notes
    -----
    ``std**2 ~= c2c_std**2 + d2d_std**2`` (law of total variance). The repeats are consecutive
    cycles of each device, so slow cycle-to-cycle drift (the VAR's persistence) shows partly in
    ``d2d_std``.
    """
    if method not in ("write_verify", "one_shot"):
        raise ValueError(f"method must be 'write_verify' or 'one_shot', got {method!r}")
    if int(n_devices) < 2 or int(n_repeats) < 2:
        raise ValueError("need at least 2 devices and 2 repeats per level to split the spread")
    levels = np.asarray(levels, dtype=np.float64)
    cal = cal if cal is not None else calibrate_pulses(model, rng)
    k, d, r = len(levels), int(n_devices), int(n_repeats)
    targets = np.repeat(levels, d)
    cells = _cells(model, k * d, rng)
    g = np.empty((k, d, r))
    pulses = np.empty((k, d, r), dtype=np.int64)
    ok = np.empty((k, d, r), dtype=bool)
    for j in range(r):
        res = (write_one_shot(cells, targets, cal) if method == "one_shot"
               else write_verify(cells, targets, cal, settings))
        g[:, :, j] = res.g.reshape(k, d)
        pulses[:, :, j] = res.pulses.reshape(k, d)
        ok[:, :, j] = res.success.reshape(k, d)
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
        "g": g,
    }

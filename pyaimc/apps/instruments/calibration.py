"""Calibration of a board's gain, offset and series resistance, and its accuracy vs resistance.

:func:`calibrate` is the open-short-load procedure of impedance meters, per current range, on
the board's calibration standards (:meth:`~pyaimc.apps.instruments.board.Board.reference_readings`):

* **open** (nothing connected) in each range: the range's offset (amplifier offset, bias
  current and the switch path's leakage at the calibration voltage);
* **short** and the top range's reference resistor in the top range: its gain and the switch
  path's series resistance (two readings, two unknowns, solved in closed form);
* each other range's reference resistor (at half its full scale): that range's gain, given the
  series resistance.

The gains absorb the source's gain and offset at the calibration voltage, so reads at that
voltage are corrected end to end; a board compensates the series drop of its sweeps and pulses
with the calibrated series resistance.

:func:`accuracy_vs_resistance` measures the relative error of resistance reads from 100 ohm to
10 Mohm on many drawn boards, before and after calibration.
"""

from __future__ import annotations

import numpy as np

from pyaimc.apps.instruments.frontend import Calibration, FrontEndSpec


def calibrate(board, u: float | None = None, repeats: int = 32) -> Calibration:
    """Calibrate ``board`` on its standards and set ``board.calibration`` (see the module).

    Parameters
    ----------
    board : Board
        A board with calibration standards (``reference_readings``).
    u : float, optional
        Calibration voltage, V (default the board's read voltage).
    repeats : int
        Readings averaged per standard and range.

    Returns
    -------
    Calibration
    """
    u = board.u_read if u is None else float(u)
    if not u > 0:
        raise ValueError(f"calibration voltage must be > 0 V, got {u}")
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    refs = np.asarray(board.reference_ohm, dtype=np.float64)
    n = len(board.ranges_a)
    offset = np.array([np.mean(board.reference_readings("open", k, u, repeats))
                       for k in range(n)])
    top = n - 1
    i_short = np.mean(board.reference_readings("short", top, u, repeats)) - offset[top]
    i_ref = np.mean(board.reference_readings("ref", top, u, repeats)) - offset[top]
    if not (i_short > i_ref > 0):
        raise ValueError(f"calibration failed: short {i_short:.4g} A and reference "
                         f"{i_ref:.4g} A in the top range must satisfy short > reference > 0")
    a, b = i_short / u, i_ref / u          # gain / R_s, gain / (R_ref + R_s)
    gain_top = refs[top] / (1.0 / b - 1.0 / a)
    r_series = gain_top / a
    gain = np.empty(n)
    gain[top] = gain_top
    for k in range(top):
        i_k = np.mean(board.reference_readings("ref", k, u, repeats)) - offset[k]
        gain[k] = i_k * (refs[k] + r_series) / u
    if not np.all(gain > 0):
        raise ValueError(f"calibration failed: range gains {gain} must be > 0")
    cal = Calibration(gain, offset, float(r_series), u)
    board.calibration = cal
    return cal


#: resistances of the accuracy check, ohm: 100 ohm .. 10 Mohm, 4 per decade
ACCURACY_RESISTANCES = np.logspace(2, 7, 21)


def accuracy_vs_resistance(rng: np.random.Generator, resistances=ACCURACY_RESISTANCES,
                           n_boards: int = 20, repeats: int = 8,
                           spec: FrontEndSpec | None = None) -> dict:
    """Relative error of resistance reads before and after calibration, over drawn boards.

    Each of ``n_boards`` boards (front-end errors drawn from ``spec``) reads every resistance
    ``repeats`` times uncalibrated, is calibrated (:func:`calibrate`) and reads them again.

    Returns
    -------
    dict
        ``resistance_ohm`` and, for ``before`` and ``after``, per resistance the median, 95th
        percentile and largest absolute relative error and the mean signed error over all boards
        and repeats; ``calibrations`` (the calibrated gain errors and series resistances against
        the boards' true ones).
    """
    from pyaimc.apps.instruments.virtual import VirtualBoard

    r = np.asarray(resistances, dtype=np.float64)
    errs = {"before": [], "after": []}
    cals = []
    for b in range(int(n_boards)):
        board = VirtualBoard.from_resistors(np.repeat(r, repeats), rng.spawn(1)[0], spec=spec)
        errs["before"].append(board.read_resistance() / board.dut.r - 1)
        cal = calibrate(board)
        errs["after"].append(board.read_resistance() / board.dut.r - 1)
        cals.append({"gain_true": board.fe.gain.tolist(), "gain_calibrated": cal.gain.tolist(),
                     "r_series_true": board.fe.r_series, "r_series_calibrated": cal.r_series})
    out = {"resistance_ohm": r.tolist(), "n_boards": int(n_boards), "repeats": int(repeats)}
    for key, e in errs.items():
        e = np.stack(e).reshape(int(n_boards), len(r), repeats).transpose(1, 0, 2)
        e = e.reshape(len(r), -1)
        a = np.abs(e)
        out[key] = {"median_abs": np.median(a, 1).tolist(),
                    "p95_abs": np.quantile(a, 0.95, 1).tolist(),
                    "max_abs": a.max(1).tolist(), "mean": e.mean(1).tolist()}
    out["calibrations"] = cals
    return out

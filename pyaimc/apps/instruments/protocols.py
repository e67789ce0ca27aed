"""Measurement protocols as code, written once against :class:`~.board.Board`.

Each protocol drives a board (virtual or real) and returns data in pyaimc's own formats, ready
for ``pyaimc fit``:

* :func:`iv_sweeps`: triangular I-V sweeps, ``U`` (points) and ``I`` (cells x cycles x points):
  the sweeps ``.npz`` format;
* :func:`cycling`: per-cycle features, cells x cycles arrays ``R_HRS``, ``R_LRS`` and, when the
  protocol sweeps, ``U_SET``, ``U_RESET`` (the ``npz`` format); features of swept cycles are
  extracted from the measured loops by the same code ``pyaimc fit`` uses on sweep files
  (:func:`pyaimc.data.sweeps.extract_features`), the first cycle's HRS by a read before the
  first sweep; without sweeps each cycle is a SET step, a read, a RESET step, a read;
* :func:`pulse_train`: SET and RESET staircases of 1T1R pulses, each with a read before and after
  (a pulse CSV, :class:`~pyaimc.data.pulses.PulseData`);
* :func:`write_verify`: any registered write scheme through the board (its pulses logged as a
  pulse CSV);
* :func:`read_cells`: resistances at the read voltage;
* :func:`crossbar_mvm`: matrix-vector products on a crossbar board.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyaimc.apps.instruments.board import Board, InstrumentCells
from pyaimc.data.pulses import PulseData
from pyaimc.device.cells import triangular_sweep

FEATURES = ("R_HRS", "U_SET", "R_LRS", "U_RESET")


def _progress(iterable, progress: bool, desc: str):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def default_waveform(points: int = 400, u_min: float = -1.5, u_max: float = 1.5) -> np.ndarray:
    """The sweep of the protocols: ``0 -> u_min -> u_max -> 0`` in ``points`` samples (V); 400
    points put a sample every 15 mV, so switching voltages are resolved to about 8 mV."""
    return triangular_sweep(u_min, u_max, points)


def iv_sweeps(board: Board, n_cycles: int, waveform=None, cells=None,
              compliance: float | None = None, progress: bool = False,
              on_cycle=None) -> dict:
    """``n_cycles`` triangular I-V sweeps of each cell (``on_cycle(n)``, when given, is called
    before sweep ``n``: a hook for checks against a virtual board's true state).

    Returns
    -------
    dict
        ``U`` (points,), V, and ``I`` (cells, cycles, points), A: a sweeps file's arrays.
    """
    if int(n_cycles) < 1:
        raise ValueError(f"cycles must be >= 1, got {n_cycles}")
    waveform = default_waveform() if waveform is None else np.asarray(waveform, dtype=float)
    idx = board.cell_index(cells)
    out = np.empty((len(idx), int(n_cycles), len(waveform)))
    for n in _progress(range(int(n_cycles)), progress, "sweeps"):
        if on_cycle is not None:
            on_cycle(n)
        out[:, n, :] = board.sweep(waveform, idx, compliance)
    return {"U": waveform, "I": out}


def cycling(board: Board, n_cycles: int, sweep: bool = True, cells=None, waveform=None,
            u_set: float = -1.5, u_reset: float = 1.5, set_pulse: dict | None = None,
            reset_pulse: dict | None = None, compliance: float | None = None,
            progress: bool = False, on_cycle=None) -> dict:
    """Cycle each cell ``n_cycles`` times and measure its per-cycle features.

    Parameters
    ----------
    board : Board
    n_cycles : int
    sweep : bool
        True: each cycle is a triangular sweep (features ``R_HRS``, ``U_SET``, ``R_LRS``,
        ``U_RESET``); False: a SET step, a read, a RESET step, a read (``R_HRS``, ``R_LRS``).
        On a 1T1R board without sweeps the steps are pulses (``set_pulse``, ``reset_pulse``).
    cells : array of int, optional
    waveform : array, optional
        Sweep waveform (default :func:`default_waveform`).
    u_set, u_reset : float
        Two-terminal SET and RESET step voltages of the sweepless protocol, V.
    set_pulse, reset_pulse : dict, optional
        1T1R pulses ``{"v_bl"/"v_sl", "v_wl", "width"}`` of the sweepless protocol.
    compliance : float, optional
        Current compliance of the switching steps, A (default the board's).
    on_cycle : callable, optional
        ``on_cycle(n)`` before cycle ``n`` (see :func:`iv_sweeps`).

    Returns
    -------
    dict
        Per feature a (cells, cycles) array in ohm and V with NaN where a cycle's feature was not
        observed, and ``missing`` (cells, cycles, features) bool; ``sweeps`` (the raw loops) when
        the protocol swept.
    """
    from pyaimc.data.sweeps import extract_features

    n_cycles = int(n_cycles)
    if n_cycles < 1:
        raise ValueError(f"cycles must be >= 1, got {n_cycles}")
    idx = board.cell_index(cells)
    r0 = board.read_resistance(idx)
    if sweep:
        loops = iv_sweeps(board, n_cycles, waveform, idx, compliance, progress, on_cycle)
        sf = extract_features(loops["U"], loops["I"], u_read=board.u_read,
                              source=f"{board.kind} board sweeps")
        values = sf.data.values.copy()
        values[:, 0, 0] = r0            # the HRS before the first sweep
        feats = {name: values[:, :, k] for k, name in enumerate(FEATURES)}
        missing = ~np.isfinite(values)
        return {**feats, "missing": missing, "sweeps": loops}
    r_hrs = np.empty((len(idx), n_cycles))
    r_lrs = np.empty((len(idx), n_cycles))
    for n in _progress(range(n_cycles), progress, "cycles"):
        if on_cycle is not None:
            on_cycle(n)
        r_hrs[:, n] = r0 if n == 0 else r_after_reset
        if board.one_t_one_r:
            sp = {"v_bl": 2.0, "v_sl": 0.0, "v_wl": 2.0, "width": 1e-6, **(set_pulse or {})}
            board.pulse(sp["v_bl"], 0.0, sp["v_wl"], sp["width"], idx)
        else:
            board.apply_voltage(u_set, idx)
        r_lrs[:, n] = board.read_resistance(idx)
        if board.one_t_one_r:
            rp = {"v_sl": 2.5, "v_wl": 4.0, "width": 1e-6, **(reset_pulse or {})}
            board.pulse(0.0, rp["v_sl"], rp["v_wl"], rp["width"], idx)
        else:
            board.apply_voltage(u_reset, idx)
        r_after_reset = board.read_resistance(idx)
    r = {"R_HRS": r_hrs, "R_LRS": r_lrs}
    missing = ~np.isfinite(np.stack([r_hrs, r_lrs], -1))
    return {**r, "missing": missing}


def features_npz_arrays(result: dict, cell_ids=None) -> dict:
    """The arrays of a cycling result as ``pyaimc fit`` reads an ``.npz`` (features, then
    ``missing`` and ``cell_id``); missing values are NaN and flagged."""
    names = [n for n in FEATURES if n in result]
    out = {n: np.asarray(result[n], dtype=np.float64) for n in names}
    out["missing"] = np.stack([~np.isfinite(out[n]) for n in names], -1)
    n_cells = out[names[0]].shape[0]
    out["cell_id"] = np.asarray(cell_ids if cell_ids is not None else np.arange(n_cells)
                                ).astype(str)
    return out


@dataclass
class Staircase:
    """A pulse staircase: pulses of rising drive or gate voltage, one cell at a time.

    Attributes
    ----------
    polarity : {"set", "reset"}
    v_drive : array, V
        Bit-line (SET) or source-line (RESET) voltage of each step.
    v_wl : array, V
        Word-line voltage of each step (same length, or one value).
    width : float, s
    """

    polarity: str
    v_drive: np.ndarray
    v_wl: np.ndarray
    width: float = 100e-9

    def steps(self):
        v = np.atleast_1d(np.asarray(self.v_drive, dtype=float))
        w = np.broadcast_to(np.atleast_1d(np.asarray(self.v_wl, dtype=float)), v.shape)
        for a, b in zip(v, w):
            yield (a, 0.0, b) if self.polarity == "set" else (0.0, a, b)


#: the default pulse programme: a SET staircase in gate voltage (fixed bit line), then a RESET
#: staircase in source-line voltage (gate fully on), the shape of the RADAR pulse sweeps
DEFAULT_STAIRCASES = (
    Staircase("set", np.full(12, 2.0), np.linspace(1.9, 2.9, 12), 100e-9),
    Staircase("reset", np.linspace(1.2, 3.0, 12), np.full(12, 4.0), 100e-9),
)


def pulse_train(board: Board, n_cycles: int = 1, staircases=DEFAULT_STAIRCASES, cells=None,
                progress: bool = False) -> PulseData:
    """Staircases of 1T1R pulses on every cell, each pulse with a read before and after.

    Returns
    -------
    PulseData
        One row per pulse (cell, width, v_bl, v_sl, v_wl, r_before, r_after), cells labelled by
        their board index: a pulse CSV (:func:`pyaimc.data.pulses.save_pulse_csv`).
    """
    if not board.one_t_one_r:
        raise ValueError("the pulse protocol needs 1T1R devices: on the virtual board a device "
                         "model with a pulse part (e.g. radar_pulse-4-24-20)")
    if int(n_cycles) < 1:
        raise ValueError(f"cycles must be >= 1, got {n_cycles}")
    idx = board.cell_index(cells)
    rows = []
    r_before = board.read_resistance(idx)
    for _ in _progress(range(int(n_cycles)), progress, "pulse cycles"):
        for st in staircases:
            for v_bl, v_sl, v_wl in st.steps():
                applied = board.pulse(v_bl, v_sl, v_wl, st.width, idx)
                r_after = board.read_resistance(idx)
                rows.append((applied, r_before, r_after))
                r_before = r_after
    m = len(idx)
    cat = {k: np.concatenate([a[k] for a, _, _ in rows]) for k in ("width", "v_bl", "v_sl",
                                                                    "v_wl")}
    rb = np.concatenate([b for _, b, _ in rows])
    ra = np.concatenate([a for _, _, a in rows])
    cell = np.tile(idx.astype(str), len(rows))
    # file order: cell by cell, each cell's pulses in time order
    order = np.argsort(np.tile(idx, len(rows)), kind="stable")
    d = PulseData(cell[order], cat["width"][order], cat["v_bl"][order], cat["v_sl"][order],
                  cat["v_wl"][order], rb[order], ra[order], np.arange(m * len(rows)) + 2,
                  f"{board.kind} board pulse train")
    return d


def write_verify(board: Board, scheme, g_lo, g_hi, model=None, cells=None,
                 rng: np.random.Generator | None = None):
    """Program cells into conductance windows with a registered write scheme, through the board.

    Parameters
    ----------
    board : Board
    scheme : WriteScheme or str
        A scheme object or a registered name (:func:`pyaimc.device.schemes.get_scheme`).
    g_lo, g_hi : float or array
        Target windows, S (scalars or one per cell).
    model : DeviceModel, optional
        The model the scheme takes its settings from (default the virtual board's own).
    cells : array of int, optional
    rng : numpy.random.Generator, optional
        For the scheme's own draws (calibration of its pulses).

    Returns
    -------
    result : WriteResult
        As the scheme returns it; conductances are the board's reads.
    log : PulseData
        Every pulse with the reads around it (empty for the two-terminal schemes, whose steps
        are voltages, not 1T1R pulses).
    """
    from pyaimc.device.schemes import get_scheme

    model = model if model is not None else getattr(board, "model", None)
    if model is None:
        raise ValueError("write-verify needs a device model for the scheme's settings")
    scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
    if not scheme.applies_to(model):
        raise ValueError(f"write scheme {scheme.name!r} does not apply to this device model")
    rng = rng if rng is not None else np.random.default_rng(0)
    scheme.prepare(model, rng)
    cells = InstrumentCells(board, model, cells)
    result = scheme.program(cells, g_lo, g_hi, rng)
    return result, cells.pulse_log(f"{board.kind} board write-verify ({scheme.name})")


def read_cells(board: Board, cells=None, u: float | None = None, repeats: int = 1) -> dict:
    """Read each cell ``repeats`` times at ``u`` (default the read voltage).

    Returns
    -------
    dict
        ``R`` (cells, repeats), ohm; ``I`` (cells, repeats), A; ``U`` the read voltage, V.
    """
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    idx = board.cell_index(cells)
    u = board.u_read if u is None else float(u)
    i = np.stack([board.read(idx, u) for _ in range(int(repeats))], 1)
    return {"R": board.resistance_from(i, u), "I": i, "U": np.float64(u)}


def crossbar_mvm(board: Board, inputs) -> dict:
    """Matrix-vector products: row voltages (batch, rows), V, to column currents (batch, cols),
    A, as the board reads them."""
    v = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
    return {"V": v, "I": board.mvm(v)}

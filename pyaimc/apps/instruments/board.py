"""What a measurement board does, once for the virtual chip and for real instruments.

:class:`Board` is the small set of operations every protocol (:mod:`.protocols`) is written
against; :class:`~pyaimc.apps.instruments.virtual.VirtualBoard` implements it on pyaimc's device
model and crossbar solver, :class:`~pyaimc.apps.instruments.visa.SMUBoard` on a SCPI
source-measure unit and :class:`~pyaimc.apps.instruments.visa.NBBoard` on a
NeuroBreakoutBoard-like board over VISA. Cells are addressed by index (``cells``: an increasing
index array, or None for all); voltages are volts at the device, currents amperes as read and
corrected by the board's :class:`~pyaimc.apps.instruments.frontend.Calibration`.

:class:`InstrumentCells` makes a board look like a
:class:`~pyaimc.device.cells.CellArray` to pyaimc's write schemes, so every registered scheme
(``one_shot``, ``write_verify``, ``ispp``, ``fppv``, ``radar``, ...) programs cells through an
instrument: its pulses go through the board's source and timer, its verify reads through the
board's front end, and every pulse is logged with the reads around it.
"""

from __future__ import annotations

import numpy as np

from pyaimc.data.pulses import PulseData


class Board:
    """Base of the boards; a subclass implements the methods it can do and says so.

    Attributes
    ----------
    n_cells : int
        Devices the board can address.
    u_read : float
        Default read voltage, V.
    calibration : Calibration or None
        Applied to every reading once set (see :func:`~.calibration.calibrate`).
    elapsed_s : float
        Instrument time spent so far (the virtual board counts it; real boards measure it).
    one_t_one_r : bool
        The devices have access transistors (pulses with a word-line voltage).
    crossbar_shape : (rows, cols) or None
        Set when the devices form a crossbar (matrix-vector products).
    """

    n_cells: int = 0
    u_read: float = 0.2
    calibration = None
    elapsed_s: float = 0.0
    one_t_one_r: bool = False
    crossbar_shape: tuple[int, int] | None = None
    kind: str = "board"
    compensates_series: bool = False

    # ------------------------------------------------------------------ addressing
    def cell_index(self, cells) -> np.ndarray:
        """``cells`` as an increasing index array (None: all), checked."""
        if cells is None:
            return np.arange(self.n_cells)
        idx = np.atleast_1d(np.asarray(cells, dtype=np.int64))
        if len(idx) and (idx[0] < 0 or idx[-1] >= self.n_cells or np.any(np.diff(idx) <= 0)):
            raise ValueError(f"cells must be increasing indices within 0..{self.n_cells - 1}")
        return idx

    # ------------------------------------------------------------------ operations
    def sweep(self, waveform, cells=None, compliance: float | None = None) -> np.ndarray:
        """Source each voltage of ``waveform`` (V) in turn on each cell and read the current
        after it settles; returns (cells, points) currents, A. The cells switch on the way."""
        raise NotImplementedError(f"{self.kind} cannot sweep")

    def read(self, cells=None, u: float | None = None) -> np.ndarray:
        """Currents (A) at ``u`` (default :attr:`u_read`) without switching."""
        raise NotImplementedError(f"{self.kind} cannot read")

    def read_resistance(self, cells=None, u: float | None = None) -> np.ndarray:
        """Resistances (ohm) at ``u``: ``u / I`` less the calibrated series resistance."""
        u = self.u_read if u is None else float(u)
        return self.resistance_from(self.read(cells, u), u)

    def resistance_from(self, i, u: float) -> np.ndarray:
        """Resistances (ohm) of currents ``i`` read at ``u``; a reading at or below zero is an
        open circuit to the board. A calibrated board that does not compensate the series drop
        in its source subtracts the calibrated series resistance."""
        i = np.asarray(i, dtype=np.float64)
        r_s = 0.0
        if self.calibration is not None and not self.compensates_series:
            r_s = self.calibration.r_series
        with np.errstate(divide="ignore"):
            r = u / np.where(i > 0, i, 1.0) - r_s
        return np.where(i > 0, r, np.inf)

    def apply_voltage(self, u, cells=None, width: float = 1e-6) -> None:
        """A two-terminal voltage pulse ``u`` (V; scalar or per cell) of ``width`` (s) on 1R
        devices; 0 V leaves a cell alone."""
        raise NotImplementedError(f"{self.kind} cannot apply voltage pulses")

    def pulse(self, v_bl, v_sl, v_wl, width, cells=None) -> dict:
        """One programming pulse on 1T1R devices (bit line, source line, word line, s); returns
        the settings applied (``v_bl``, ``v_sl``, ``v_wl``, ``width`` as the board set them,
        per cell) and ``energy`` (J per cell; NaN where the board cannot tell)."""
        raise NotImplementedError(f"{self.kind} cannot apply 1T1R pulses")

    def mvm(self, v_rows) -> np.ndarray:
        """Column currents (batch, cols; A) of the crossbar for row voltages (batch, rows; V)."""
        raise NotImplementedError(f"{self.kind} has no crossbar read-out")

    def reference_readings(self, kind: str, range_index: int, u: float, repeats: int
                           ) -> np.ndarray:
        """Raw readings (A, uncorrected) of a calibration standard in one current range:
        ``kind`` ``"open"`` (nothing connected), ``"short"`` (0 ohm) or ``"ref"`` (the range's
        reference resistor, :attr:`reference_ohm`)."""
        raise NotImplementedError(f"{self.kind} has no calibration standards")

    #: nominal calibration resistor of each range, ohm (boards with standards)
    reference_ohm: np.ndarray | None = None
    #: full scale of each range, A
    ranges_a: tuple = ()

    def describe(self) -> dict:
        """What the board is and how it is set up (for the provenance of measured data)."""
        return {"kind": self.kind, "n_cells": int(self.n_cells),
                "calibration": None if self.calibration is None else self.calibration.to_dict(),
                "elapsed_s": float(self.elapsed_s)}

    def close(self) -> None:
        """Release the instrument."""


class InstrumentCells:
    """A board seen as a :class:`~pyaimc.device.cells.CellArray` by the write schemes.

    Every state the schemes look at is measured through the board: ``resistance`` and
    ``conductance`` are reads, ``read`` and ``read_conductance`` are reads with the board's own
    noise (the schemes' ``bandwidth`` and ``rng`` arguments are the board's business), pulses go
    through its source and timer. Each pulse is logged with the read before it (the cell's last
    read) and the read after it (the cell's next read), the rows of a pulse CSV.

    Parameters
    ----------
    board : Board
    model : DeviceModel
        The device model the schemes take their settings from (read voltage, pulse model,
        calibrations): the generating model on a virtual board, a fitted model of the
        technology on a real one.
    cells : array of int, optional
        The board's cells to use (default all).
    """

    def __init__(self, board: Board, model, cells=None):
        self.board, self.model = board, model
        self.idx = board.cell_index(cells)
        self.n = len(self.idx)
        self._last_r = np.full(self.n, np.nan)
        self._rows: list[tuple] = []
        self._pending: dict[int, int] = {}

    def __len__(self) -> int:
        return self.n

    def _sub(self, index) -> tuple[np.ndarray, np.ndarray]:
        local = np.arange(self.n) if index is None else np.asarray(index, dtype=np.int64)
        return local, self.idx[local]

    def _after_read(self, local, r) -> None:
        self._last_r[local] = r
        for j, rr in zip(local, r):
            row = self._pending.pop(int(j), None)
            if row is not None:
                self._rows[row] = self._rows[row][:-1] + (float(rr),)

    # ------------------------------------------------------------------ reads
    @property
    def resistance(self) -> np.ndarray:
        local, cells = self._sub(None)
        r = self.board.read_resistance(cells)
        self._after_read(local, r)
        return r

    @property
    def conductance(self) -> np.ndarray:
        return 1.0 / self.resistance

    def read(self, u=None, bandwidth=None, adc_bits=None, adc_range=None, out=None
             ) -> np.ndarray:
        u = self.board.u_read if u is None else float(u)
        local, cells = self._sub(None)
        i = self.board.read(cells, u)
        if u == self.board.u_read:
            self._after_read(local, self.board.resistance_from(i, u))
        if out is not None:
            out[:] = i
            return out
        return i

    def read_conductance(self, rng=None, noise: bool = True, index=None) -> np.ndarray:
        local, cells = self._sub(index)
        r = self.board.read_resistance(cells)
        self._after_read(local, r)
        return 1.0 / r

    # ------------------------------------------------------------------ writes
    def apply_voltage(self, u) -> "InstrumentCells":
        u = np.broadcast_to(np.asarray(u, dtype=np.float64), (self.n,))
        on = np.flatnonzero(u != 0)
        if len(on):
            self.board.apply_voltage(u[on], cells=self.idx[on])
        return self

    def apply_pulse(self, v_bl, v_sl, v_wl, width, index=None, energy_out=None
                    ) -> "InstrumentCells":
        local, cells = self._sub(index)
        m = len(local)
        if not m:
            return self
        args = [np.broadcast_to(np.asarray(v, dtype=np.float64), (m,))
                for v in (v_bl, v_sl, v_wl, width)]
        before = self._last_r[local]
        if np.isnan(before).any():
            # a cell never read: read it first, so its pulse has a state before it
            miss = np.flatnonzero(np.isnan(before))
            self.read_conductance(index=local[miss])
            before = self._last_r[local]
        applied = self.board.pulse(*args, cells=cells)
        for j, c in enumerate(local):
            if int(c) in self._pending:  # pulsed again without a read between: not a record
                self._rows[self._pending.pop(int(c))] = None
            self._pending[int(c)] = len(self._rows)
            self._rows.append((int(self.idx[c]), float(applied["width"][j]),
                               float(applied["v_bl"][j]), float(applied["v_sl"][j]),
                               float(applied["v_wl"][j]), float(before[j]), np.nan))
        if energy_out is not None:
            energy_out[:] = applied["energy"]
        return self

    def pulse_log(self, source: str = "instrument") -> PulseData:
        """Every pulse so far with the reads before and after it (pulses without a read after
        them are left out)."""
        rows = [r for r in self._rows if r is not None and np.isfinite(r[-1])]
        a = np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, 6)
        cells = np.array([str(r[0]) for r in rows], dtype=str)
        return PulseData(cells, a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5],
                         np.arange(len(rows)) + 2, source)

    def close(self) -> None:
        """Nothing to release: the board stays open (its owner closes it)."""

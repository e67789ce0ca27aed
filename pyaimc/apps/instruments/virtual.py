"""The virtual board: pyaimc's device model and crossbar solver behind a real front end.

The devices are a :class:`~pyaimc.device.cells.CellArray` of a fitted
:class:`~pyaimc.device.model.DeviceModel` (cycling model: SET/RESET by voltage, I-V envelopes;
pulse model: 1T1R pulses), or fixed resistors (:class:`ResistorArray`, for accuracy checks);
every voltage goes through the board's source and switch path and every current through its
:class:`~pyaimc.apps.instruments.frontend.FrontEnd` (ranges, TIA gain and offset, noise, ADC), so
what a protocol records is a measurement, not the model's state.

How the switch path and the compliance act on a device: the device sees the source voltage less
the drop on the series resistance (a calibrated board compensates that drop with its measured
series resistance, so the residual is the calibration's error); when the device current would
pass the compliance, the source limits it and the device sees the voltage that gives the
compliance current (found by bisection on its I-V). The cycling model's SET is abrupt, so the
LRS a SET reaches does not depend on the compliance (a limit of that model, not of the board);
the current read after it is clipped at the compliance.

The virtual board counts its time as a single-channel board would spend it (cells one after
another): settling and aperture per sample, range switches, pulse set-up and width
(:attr:`VirtualBoard.elapsed_s`); the simulation itself runs all cells at once.
"""

from __future__ import annotations

import numpy as np

from pyaimc.apps.instruments.board import Board
from pyaimc.apps.instruments.frontend import Calibration, FrontEnd, FrontEndSpec
from pyaimc.device.iv import K_BOLTZMANN


class ResistorArray:
    """Fixed resistors as devices (the standards of an accuracy check), with Johnson noise.

    Parameters
    ----------
    r : array (n,), ohm
    temperature : float, K
    """

    def __init__(self, r, temperature: float = 300.0):
        self.r = np.atleast_1d(np.asarray(r, dtype=np.float64))
        if not np.all(self.r > 0):
            raise ValueError("resistors must be > 0 ohm")
        self.n = len(self.r)
        self.temperature = temperature
        self._rng = None

    def read(self, u=None, bandwidth=None, **_):
        i = np.broadcast_to(np.asarray(u, dtype=np.float64), (self.n,)) / self.r
        if bandwidth and self._rng is not None:
            i = i + np.sqrt(4 * K_BOLTZMANN * self.temperature * bandwidth / self.r
                            ) * self._rng.standard_normal(self.n)
        return i

    def apply_voltage(self, u) -> None:
        """Resistors do not switch."""

    @property
    def resistance(self) -> np.ndarray:
        return self.r.copy()


class VirtualBoard(Board):
    """A measurement board on simulated devices (see the module).

    Parameters
    ----------
    dut : CellArray or ResistorArray
        The devices (a float64 cell array: reads near the compliance need the precision).
    frontend : FrontEnd
        This board's front end (:meth:`FrontEnd.draw` for a board with drawn errors).
    rng : numpy.random.Generator
        The board's noise.
    model : DeviceModel, optional
        The generating model (the write schemes take their settings from it).
    crossbar : (rows, cols), optional
        The devices form a crossbar of this shape (``rows * cols`` devices, row-major) for
        :meth:`mvm`.
    r_wire : float
        Wire segment resistance of that crossbar, ohm.
    """

    kind = "virtual"
    #: once calibrated, the source compensates the series drop (the device sees the programmed
    #: voltage): resistances are ``u / I``
    compensates_series = True

    def __init__(self, dut, frontend: FrontEnd, rng: np.random.Generator, model=None,
                 crossbar: tuple[int, int] | None = None, r_wire: float = 1.0):
        self.dut, self.fe, self.rng, self.model = dut, frontend, rng, model
        self.n_cells = int(dut.n)
        self.u_read = float(frontend.spec.u_read)
        self.calibration = None
        self.elapsed_s = 0.0
        self.one_t_one_r = getattr(model, "pulse_", None) is not None
        self.ranges_a = tuple(frontend.spec.ranges_a)
        self.reference_ohm = frontend.spec.calibration_references()
        if isinstance(dut, ResistorArray):
            dut._rng = rng
        if crossbar is not None:
            rows, cols = (int(x) for x in crossbar)
            if rows * cols != self.n_cells:
                raise ValueError(f"a {rows}x{cols} crossbar needs {rows * cols} devices, the "
                                 f"board has {self.n_cells}")
            self.crossbar_shape = (rows, cols)
        self.r_wire = float(r_wire)
        self._last_range = np.zeros(self.n_cells, dtype=np.int64)
        self.counts = {"samples": 0, "pulses": 0, "range_switches": 0, "compliance": 0}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(cls, model, n_cells: int, rng: np.random.Generator,
                   spec: FrontEndSpec | None = None, frontend: FrontEnd | None = None,
                   crossbar: tuple[int, int] | None = None, r_wire: float = 1.0
                   ) -> "VirtualBoard":
        """A board with ``n_cells`` new devices of ``model`` and a front end drawn from
        ``spec`` (or the given ``frontend``); the devices, the board's errors and its noise come
        from independent streams of ``rng``."""
        r_dev, r_fe, r_noise = rng.spawn(3)
        cells = model.cells(int(n_cells), r_dev, dtype=np.float64, n_threads=1)
        fe = frontend if frontend is not None else FrontEnd.draw(r_fe, spec)
        return cls(cells, fe, r_noise, model, crossbar, r_wire)

    @classmethod
    def from_resistors(cls, r, rng: np.random.Generator, spec: FrontEndSpec | None = None,
                       frontend: FrontEnd | None = None) -> "VirtualBoard":
        """A board measuring fixed resistors ``r`` (ohm)."""
        r_fe, r_noise = rng.spawn(2)
        fe = frontend if frontend is not None else FrontEnd.draw(r_fe, spec)
        return cls(ResistorArray(r, fe.spec.temperature), fe, r_noise)

    # ------------------------------------------------------------------ internals
    def _full(self, idx, values) -> np.ndarray:
        out = np.zeros(self.n_cells)
        out[idx] = values
        return out

    def _current(self, u_full) -> np.ndarray:
        """Noise-free device currents at per-device voltages (A)."""
        return np.asarray(self.dut.read(u_full), dtype=np.float64)

    def _device_voltage(self, idx, u_prog, compliance) -> np.ndarray:
        """Voltage each selected device sees for programmed voltages ``u_prog`` (full
        length), after the source's errors, the series drop and the compliance."""
        fe = self.fe
        u_src = np.zeros(self.n_cells)
        u_src[idx] = fe.source(u_prog[idx])
        r_s = fe.r_series - (0.0 if self.calibration is None else self.calibration.r_series)
        u_dev = u_src.copy()
        if r_s:
            # u_dev = u_src / (1 + r_s G(u_dev)) with G the device's chord conductance: exact
            # in one step for a resistor, a few steps for the devices' gentle non-linearity
            for _ in range(4):
                i = self._current(u_dev)[idx]
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = np.where(u_dev[idx] != 0, i / u_dev[idx], 0.0)
                u_dev[idx] = u_src[idx] / (1.0 + r_s * g)
        i = self._current(u_dev)
        over = idx[np.abs(i[idx]) > compliance]
        if len(over):
            self.counts["compliance"] += len(over)
            lo, hi = np.zeros(len(over)), u_dev[over].copy()
            trial = u_dev.copy()
            for _ in range(40):
                mid = 0.5 * (lo + hi)
                trial[over] = mid
                big = np.abs(self._current(trial)[over]) > compliance
                hi = np.where(big, mid, hi)
                lo = np.where(big, lo, mid)
            u_dev[over] = lo
        return u_dev

    def _acquire(self, idx, i_true, compliance=None, range_index=None) -> np.ndarray:
        """Readings of true currents of the selected devices, corrected by the calibration."""
        if compliance is not None:
            i_true = np.clip(i_true, -compliance, compliance)
        raw, k = self.fe.measure(i_true, self.rng, range_index)
        spec = self.fe.spec
        if range_index is None:
            switches = int(np.count_nonzero(k != self._last_range[idx]))
            self._last_range[idx] = k
        else:
            switches = 1
        self.counts["samples"] += len(idx)
        self.counts["range_switches"] += switches
        self.elapsed_s += len(idx) * (spec.settle_s + spec.aperture_s) \
            + switches * spec.range_switch_s
        if self.calibration is not None:
            return self.calibration.current(raw, k)
        return raw

    def _program_check(self, u, what) -> None:
        self.fe.check_source(u, what)

    # ------------------------------------------------------------------ operations
    def sweep(self, waveform, cells=None, compliance: float | None = None) -> np.ndarray:
        idx = self.cell_index(cells)
        waveform = np.asarray(waveform, dtype=np.float64)
        self._program_check(waveform, "sweep voltage")
        comp = self.fe.spec.compliance_a if compliance is None else float(compliance)
        out = np.empty((len(idx), len(waveform)))
        bw = self.fe.spec.bandwidth
        for j, u in enumerate(waveform):
            u_dev = self._device_voltage(idx, self._full(idx, u), comp)
            self.dut.apply_voltage(u_dev)
            i = np.asarray(self.dut.read(u_dev, bandwidth=bw), dtype=np.float64)[idx]
            out[:, j] = self._acquire(idx, i, comp)
        return out

    def read(self, cells=None, u: float | None = None) -> np.ndarray:
        idx = self.cell_index(cells)
        u = self.u_read if u is None else float(u)
        self._program_check(u, "read voltage")
        # a read is limited by the top range only (the compliance protects switching steps)
        comp = self.fe.spec.ranges_a[-1]
        u_dev = self._device_voltage(idx, self._full(idx, u), comp)
        # reading does not switch: the devices are not driven past their thresholds at u_read
        i = np.asarray(self.dut.read(u_dev, bandwidth=self.fe.spec.bandwidth),
                       dtype=np.float64)[idx]
        return self._acquire(idx, i, comp)

    def apply_voltage(self, u, cells=None, width: float = 1e-6) -> None:
        idx = self.cell_index(cells)
        u = np.broadcast_to(np.asarray(u, dtype=np.float64), (len(idx),))
        self._program_check(u, "pulse voltage")
        u_dev = self._device_voltage(idx, self._full(idx, u), self.fe.spec.compliance_a)
        self.dut.apply_voltage(u_dev)
        spec = self.fe.spec
        w = float(self.fe.pulse_width(width))
        self.counts["pulses"] += len(idx)
        self.elapsed_s += len(idx) * (spec.pulse_overhead_s + w)

    def pulse(self, v_bl, v_sl, v_wl, width, cells=None) -> dict:
        if not self.one_t_one_r:
            raise ValueError("1T1R pulses need a device model with a pulse part (e.g. "
                             "radar_pulse-4-24-20); this board's devices are 1R")
        idx = self.cell_index(cells)
        m = len(idx)
        args = {}
        for name, v in (("v_bl", v_bl), ("v_sl", v_sl), ("v_wl", v_wl)):
            v = np.broadcast_to(np.asarray(v, dtype=np.float64), (m,))
            self._program_check(v, name)
            # the DAC sets the programmed value; the board's source error acts on the lines it
            # drives (a 0 V line stays at ground)
            args[name] = self.fe.dac(v)
        w = self.fe.pulse_width(np.broadcast_to(np.asarray(width, dtype=np.float64), (m,)))
        applied = {k: np.where(v > 0, self.fe.source(v), 0.0) for k, v in args.items()}
        applied["v_wl"] = np.maximum(applied["v_wl"], 0.0)
        energy = np.zeros(m)
        self.dut.apply_pulse(applied["v_bl"], applied["v_sl"], applied["v_wl"], w, index=idx,
                             energy_out=energy)
        spec = self.fe.spec
        self.counts["pulses"] += m
        self.elapsed_s += float(np.sum(w)) + m * spec.pulse_overhead_s
        return {**args, "width": w, "energy": energy}

    def mvm(self, v_rows) -> np.ndarray:
        if self.crossbar_shape is None:
            raise ValueError("this virtual board's devices are not a crossbar; build it with "
                             "crossbar=(rows, cols)")
        from pyaimc.circuit.crossbar import one_r
        from pyaimc.circuit.engines import get_engine

        rows, cols = self.crossbar_shape
        v = np.atleast_2d(np.asarray(v_rows, dtype=np.float64))
        if v.shape[1] != rows:
            raise ValueError(f"row voltages must be (batch, {rows}), got {v.shape}")
        self._program_check(v, "row voltage")
        g = (1.0 / self.dut.resistance).reshape(rows, cols)
        xbar = one_r(g, r_wire=self.r_wire)
        i_true = get_engine("fast").column_currents(xbar, self.fe.source(v))
        i_true = np.atleast_2d(i_true)
        # the columns are read one after another through the board's channel
        out = np.empty_like(i_true)
        col_idx = np.arange(cols)
        for b in range(len(i_true)):
            out[b] = self._acquire(col_idx, i_true[b])
        return out

    def reference_readings(self, kind: str, range_index: int, u: float, repeats: int
                           ) -> np.ndarray:
        fe = self.fe
        u_src = float(fe.source(u))
        leak = u_src / fe.spec.r_leak
        if kind == "open":
            i = np.full(repeats, leak)
        elif kind == "short":
            i = np.full(repeats, u_src / max(fe.r_series, 1e-3) + leak)
        elif kind == "ref":
            r = fe.references[range_index]
            i = np.full(repeats, u_src / (r + fe.r_series) + leak)
            i = i + np.sqrt(4 * K_BOLTZMANN * fe.spec.temperature * fe.spec.bandwidth / r
                            ) * self.rng.standard_normal(repeats)
        else:
            raise ValueError(f"calibration standard must be open, short or ref, got {kind!r}")
        raw, _ = fe.measure(i, self.rng, np.full(repeats, int(range_index)))
        spec = fe.spec
        self.elapsed_s += repeats * (spec.settle_s + spec.aperture_s) + spec.range_switch_s
        return raw

    def describe(self) -> dict:
        d = super().describe()
        d.update({"frontend": self.fe.to_dict(), "counts": dict(self.counts),
                  "one_t_one_r": self.one_t_one_r,
                  "crossbar": list(self.crossbar_shape) if self.crossbar_shape else None})
        return d

    @property
    def true_resistance(self) -> np.ndarray:
        """The devices' resistances at the read voltage as the simulation holds them (ohm): for
        checks of the measurement, never used by a protocol."""
        return np.asarray(self.dut.resistance, dtype=np.float64)

    def close(self) -> None:
        close = getattr(self.dut, "close", None)
        if close is not None:
            close()


def identity_calibration(board: VirtualBoard) -> Calibration:
    """A calibration that corrects nothing (for comparisons)."""
    return Calibration.identity(len(board.ranges_a), board.u_read)

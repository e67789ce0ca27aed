"""Real instruments over VISA: a SCPI source-measure unit and a NeuroBreakoutBoard-like board.

* :class:`SMU2400`: a driver for the Keithley 2400 SCPI command set (voltage source, current
  measure, compliance, NPLC, autorange, 4-wire sense); :class:`SMUBoard` makes it a
  :class:`~pyaimc.apps.instruments.board.Board` for one device (point-by-point sweeps, reads,
  two-terminal voltage steps).
* :class:`NBBoard`: a board with a switch matrix, calibration standards, 1T1R pulse generation
  and a crossbar read-out, driven by the command set written down in ``docs/instruments.md``
  (and in the simulated definition ``visa_sim.yaml``).

Both are tested against pyvisa-sim with ``pyaimc/apps/instruments/visa_sim.yaml`` (resources
``GPIB0::24::INSTR``: the SMU; ``TCPIP0::nbb.local::INSTR``: the board); :func:`open_board`
opens a resource by name, ``@sim`` as the VISA library selects that definition.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pyaimc.apps.instruments.board import Board
from pyaimc.errors import FailedError

#: the pyvisa-sim definition of the instruments this module drives
SIM_DEFINITION = Path(__file__).with_name("visa_sim.yaml")


class InstrumentError(FailedError):
    """The instrument refused a command or answered something unexpected."""


def _num(x: float) -> str:
    return f"{float(x):.6E}"


def resource_manager(library: str = ""):
    """A pyvisa ResourceManager: ``""`` the system's VISA, ``"@py"`` pyvisa-py, ``"@sim"``
    pyvisa-sim with pyaimc's definition, ``"FILE.yaml@sim"`` pyvisa-sim with another one."""
    try:
        import pyvisa
    except ImportError:  # pragma: no cover - the extra is part of 'all'
        raise ValueError("real instruments need pyvisa: pip install 'pyaimc[instruments]'"
                         ) from None
    if library == "@sim":
        library = f"{SIM_DEFINITION}@sim"
    return pyvisa.ResourceManager(library) if library else pyvisa.ResourceManager()


class _Scpi:
    """Shared SCPI plumbing: write, query, parse, check the error queue."""

    def __init__(self, resource, timeout_ms: int = 10000):
        self.res = resource
        self.res.read_termination = "\n"
        self.res.write_termination = "\n"
        self.name = getattr(resource, "resource_name", "instrument")
        self.drain()
        self.res.timeout = timeout_ms

    def drain(self, timeout_ms: int = 50) -> list[str]:
        """Read and drop whatever the instrument still had to say (answers a previous session
        left unread), so that every query of this one gets its own answer."""
        import pyvisa

        old, left = self.res.timeout, []
        self.res.timeout = timeout_ms
        try:
            for _ in range(1000):
                left.append(self.res.read())
        except pyvisa.errors.VisaIOError:
            pass
        finally:
            self.res.timeout = old
        return left

    def write(self, cmd: str) -> None:
        self.res.write(cmd)

    def query(self, cmd: str) -> str:
        return self.res.query(cmd).strip()

    def query_floats(self, cmd: str, n: int | None = None) -> np.ndarray:
        text = self.query(cmd)
        try:
            values = np.array([float(t) for t in text.split(",")], dtype=np.float64)
        except ValueError:
            raise InstrumentError(f"{self.name}: {cmd!r} answered {text!r}; expected numbers"
                                  ) from None
        if n is not None and len(values) != n:
            raise InstrumentError(f"{self.name}: {cmd!r} answered {len(values)} values; "
                                  f"expected {n}")
        return values

    def check_errors(self) -> None:
        """Raise :class:`InstrumentError` with the instrument's first queued error, if any."""
        text = self.query(":SYST:ERR?")
        code = text.split(",", 1)[0].strip()
        try:
            ok = int(code) == 0
        except ValueError:
            ok = False
        if not ok:
            raise InstrumentError(f"{self.name}: the instrument reports error {text!r}")

    def idn(self) -> str:
        return self.query("*IDN?")


class SMU2400(_Scpi):
    """A Keithley 2400-style SMU: source voltage, measure current.

    Parameters
    ----------
    resource : pyvisa resource
        An open message-based resource.
    """

    max_compliance_a = 1.05
    max_voltage = 210.0

    def reset(self) -> None:
        self.write("*RST")

    def configure(self, compliance_a: float = 1e-3, nplc: float = 1.0,
                  four_wire: bool = False) -> None:
        """Voltage source, current measure with autorange, compliance (A), integration time in
        power-line cycles; ``four_wire`` senses the voltage at the device (remote sense)."""
        if not 0 < compliance_a <= self.max_compliance_a:
            raise ValueError(f"compliance {compliance_a:g} A is outside 0..{self.max_compliance_a}"
                             f" A of this SMU")
        if not 0.01 <= nplc <= 10:
            raise ValueError(f"NPLC {nplc:g} is outside 0.01..10")
        for cmd in (":SOUR:FUNC VOLT", ":SOUR:VOLT:MODE FIX", ":SOUR:VOLT:RANG:AUTO ON",
                    ':SENS:FUNC "CURR"', f":SENS:CURR:PROT {_num(compliance_a)}",
                    f":SENS:CURR:NPLC {_num(nplc)}", ":SENS:CURR:RANG:AUTO ON",
                    f":SYST:RSEN {'ON' if four_wire else 'OFF'}", ":FORM:ELEM CURR"):
            self.write(cmd)
        self.check_errors()

    def output(self, on: bool) -> None:
        self.write(f":OUTP {'ON' if on else 'OFF'}")

    def set_voltage(self, v: float) -> None:
        if not abs(v) <= self.max_voltage:
            raise ValueError(f"{v:g} V is outside +-{self.max_voltage:g} V of this SMU")
        self.write(f":SOUR:VOLT:LEV {_num(v)}")

    def read_current(self) -> float:
        """One triggered measurement at the present source level, A."""
        return float(self.query_floats(":READ?", 1)[0])


class SMUBoard(Board):
    """One device on a SCPI SMU, as a :class:`Board` (sweeps point by point, reads, voltage
    steps). The SMU's own factory calibration applies; with ``four_wire`` it senses the
    voltage at the device, so there is no series drop to correct.

    Parameters
    ----------
    smu : SMU2400
    compliance_a, nplc : float
    four_wire : bool
    """

    kind = "visa-smu"

    def __init__(self, smu: SMU2400, compliance_a: float = 1e-3, nplc: float = 1.0,
                 four_wire: bool = True, u_read: float = 0.2):
        self.smu = smu
        self.n_cells = 1
        self.u_read = float(u_read)
        self.compliance_a = float(compliance_a)
        self.compensates_series = bool(four_wire)
        self.elapsed_s = 0.0
        self.identity = smu.idn()
        smu.reset()
        smu.configure(compliance_a, nplc, four_wire)
        smu.output(True)

    def _point(self, v: float) -> float:
        self.smu.set_voltage(v)
        return self.smu.read_current()

    def sweep(self, waveform, cells=None, compliance: float | None = None) -> np.ndarray:
        self.cell_index(cells)
        t0 = time.perf_counter()
        if compliance is not None and compliance != self.compliance_a:
            self.smu.write(f":SENS:CURR:PROT {_num(compliance)}")
        out = np.array([self._point(v) for v in np.asarray(waveform, dtype=np.float64)])
        self.smu.set_voltage(0.0)
        if compliance is not None and compliance != self.compliance_a:
            self.smu.write(f":SENS:CURR:PROT {_num(self.compliance_a)}")
        self.elapsed_s += time.perf_counter() - t0
        return out[None, :]

    def read(self, cells=None, u: float | None = None) -> np.ndarray:
        idx = self.cell_index(cells)
        t0 = time.perf_counter()
        i = np.array([self._point(self.u_read if u is None else float(u)) for _ in idx])
        self.smu.set_voltage(0.0)
        self.elapsed_s += time.perf_counter() - t0
        return i

    def apply_voltage(self, u, cells=None, width: float = 1e-3) -> None:
        idx = self.cell_index(cells)
        u = np.broadcast_to(np.asarray(u, dtype=np.float64), (len(idx),))
        t0 = time.perf_counter()
        for v in u:
            # an SMU sets levels, not nanosecond pulses: the step lasts at least one command
            self.smu.set_voltage(float(v))
            time.sleep(max(0.0, float(width)))
            self.smu.set_voltage(0.0)
        self.elapsed_s += time.perf_counter() - t0

    def describe(self) -> dict:
        return {**super().describe(), "identity": self.identity,
                "compliance_a": self.compliance_a, "four_wire": self.compensates_series}

    def close(self) -> None:
        try:
            self.smu.set_voltage(0.0)
            self.smu.output(False)
        finally:
            self.smu.res.close()


class NBBoard(Board):
    """A NeuroBreakoutBoard-like board over VISA (command set: ``docs/instruments.md``).

    The board returns raw readings and the range they were taken in; pyaimc's
    :class:`~pyaimc.apps.instruments.frontend.Calibration` (made by
    :func:`~pyaimc.apps.instruments.calibration.calibrate` on the board's standards) corrects
    them here. It does not compensate the series resistance of its switch matrix: calibrated
    resistances subtract it.

    Parameters
    ----------
    resource : pyvisa resource
    u_read : float
    one_t_one_r : bool
        The devices on the board have access transistors.
    """

    kind = "visa-nbb"

    def __init__(self, resource, u_read: float = 0.2, one_t_one_r: bool = False):
        self.io = _Scpi(resource)
        self.identity = self.io.idn()
        self.io.write("*RST")
        self.n_cells = int(self.io.query_floats("SYST:CELLS?", 1)[0])
        rows, cols = (int(x) for x in self.io.query_floats("SYST:XBAR?", 2))
        self.crossbar_shape = (rows, cols) if rows * cols else None
        self.ranges_a = tuple(self.io.query_floats("SENS:RANG:LIST?"))
        self.reference_ohm = self.io.query_floats("CAL:REF:LIST?", len(self.ranges_a))
        self.u_read = float(u_read)
        self.one_t_one_r = bool(one_t_one_r)
        self.elapsed_s = 0.0
        self.io.check_errors()

    def _measure(self, v: float, range_index: int | None = None) -> tuple[float, int]:
        self.io.write(f"SRC:VOLT {_num(v)}")
        self.io.write("SENS:RANG AUTO" if range_index is None else f"SENS:RANG {int(range_index)}")
        reading, k = self.io.query_floats("MEAS:CURR?", 2)
        return reading, int(k)

    def _correct(self, reading, k):
        if self.calibration is None:
            return np.asarray(reading, dtype=np.float64)
        return self.calibration.current(reading, k)

    def _select(self, cell: int) -> None:
        self.io.write(f"SEL {int(cell)}")

    def sweep(self, waveform, cells=None, compliance: float | None = None) -> np.ndarray:
        idx = self.cell_index(cells)
        waveform = np.asarray(waveform, dtype=np.float64)
        t0 = time.perf_counter()
        if compliance is not None:
            self.io.write(f"SENS:COMP {_num(compliance)}")
        out = np.empty((len(idx), len(waveform)))
        for a, c in enumerate(idx):
            self._select(c)
            for j, v in enumerate(waveform):
                reading, k = self._measure(v)
                out[a, j] = self._correct(reading, k)
        self.io.write(f"SRC:VOLT {_num(0.0)}")
        self.elapsed_s += time.perf_counter() - t0
        return out

    def read(self, cells=None, u: float | None = None) -> np.ndarray:
        idx = self.cell_index(cells)
        u = self.u_read if u is None else float(u)
        t0 = time.perf_counter()
        out = np.empty(len(idx))
        for a, c in enumerate(idx):
            self._select(c)
            reading, k = self._measure(u)
            out[a] = self._correct(reading, k)
        self.io.write(f"SRC:VOLT {_num(0.0)}")
        self.elapsed_s += time.perf_counter() - t0
        return out

    def apply_voltage(self, u, cells=None, width: float = 1e-6) -> None:
        idx = self.cell_index(cells)
        u = np.broadcast_to(np.asarray(u, dtype=np.float64), (len(idx),))
        for c, v in zip(idx, u):
            self._select(c)
            self.io.write(f"PULS:V {_num(v)}")
            self.io.write(f"PULS:WIDT {_num(width)}")
            self.io.write("PULS:FIRE")
        self.io.check_errors()

    def pulse(self, v_bl, v_sl, v_wl, width, cells=None) -> dict:
        if not self.one_t_one_r:
            raise ValueError("this board was opened for 1R devices; 1T1R pulses need "
                             "one_t_one_r=True")
        idx = self.cell_index(cells)
        m = len(idx)
        args = [np.broadcast_to(np.asarray(v, dtype=np.float64), (m,))
                for v in (v_bl, v_sl, v_wl, width)]
        for j, c in enumerate(idx):
            self._select(c)
            for name, v in zip(("BL", "SL", "WL", "WIDT"), args):
                self.io.write(f"PULS:{name} {_num(v[j])}")
            self.io.write("PULS:FIRE")
        self.io.check_errors()
        return {"v_bl": args[0].copy(), "v_sl": args[1].copy(), "v_wl": args[2].copy(),
                "width": args[3].copy(), "energy": np.full(m, np.nan)}

    def mvm(self, v_rows) -> np.ndarray:
        if self.crossbar_shape is None:
            raise ValueError(f"{self.io.name} reports no crossbar (SYST:XBAR? 0,0)")
        rows, cols = self.crossbar_shape
        v = np.atleast_2d(np.asarray(v_rows, dtype=np.float64))
        if v.shape[1] != rows:
            raise ValueError(f"row voltages must be (batch, {rows}), got {v.shape}")
        out = np.empty((len(v), cols))
        for b, vec in enumerate(v):
            self.io.write("MVM:ROWS " + ",".join(_num(x) for x in vec))
            # raw readings and the range of each column, interleaved
            raw = self.io.query_floats("MVM:RUN?", 2 * cols).reshape(cols, 2)
            out[b] = self._correct(raw[:, 0], raw[:, 1].astype(int))
        return out

    def reference_readings(self, kind: str, range_index: int, u: float, repeats: int
                           ) -> np.ndarray:
        names = {"open": "OPEN", "short": "SHORT", "ref": f"REF{int(range_index)}"}
        if kind not in names:
            raise ValueError(f"calibration standard must be open, short or ref, got {kind!r}")
        self.io.write(f"CAL:STD {names[kind]}")
        out = np.array([self._measure(u, range_index)[0] for _ in range(int(repeats))])
        self.io.write("CAL:STD NONE")
        return out

    def describe(self) -> dict:
        return {**super().describe(), "identity": self.identity,
                "crossbar": list(self.crossbar_shape) if self.crossbar_shape else None}

    def close(self) -> None:
        try:
            self.io.write(f"SRC:VOLT {_num(0.0)}")
        finally:
            self.io.res.close()


def open_board(resource_name: str, library: str = "", **options) -> Board:
    """Open a VISA resource and wrap it by what it says it is (``*IDN?``): a board that answers
    ``SYST:CELLS?`` as :class:`NBBoard`, anything else as a :class:`SMU2400` (:class:`SMUBoard`).

    Parameters
    ----------
    resource_name : str
        A VISA resource name (``GPIB0::24::INSTR``, ``TCPIP0::host::INSTR``, ...).
    library : str
        See :func:`resource_manager`.
    **options
        Passed to the board (``u_read``, ``compliance_a``, ``one_t_one_r``, ...).
    """
    rm = resource_manager(library)
    try:
        res = rm.open_resource(resource_name)
    except Exception as err:  # noqa: BLE001 - pyvisa raises several kinds; one line for the user
        raise ValueError(f"visa:{resource_name}: cannot open the resource ({err})") from None
    probe = _Scpi(res)
    idn = probe.idn()
    if "NBB" in idn.upper().replace(" ", ""):
        keep = {k: v for k, v in options.items() if k in ("u_read", "one_t_one_r")}
        return NBBoard(res, **keep)
    keep = {k: v for k, v in options.items() if k in ("u_read", "compliance_a", "nplc",
                                                       "four_wire")}
    return SMUBoard(SMU2400(res), **keep)

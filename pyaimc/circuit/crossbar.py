"""Description of a crossbar circuit, shared by the netlist builder and the fast solver.

Topology (N rows x M columns)::

    V_0 --[R_s]-- r(0,0) --r_row-- r(0,1) -- ... -- r(0,M-1)        row 0, driven at its left end
                     |                |                 |
                   cell             cell              cell           cell (i, j): row node r(i,j)
                     |                |                 |            to column node c(i,j)
                  c(0,0)           c(0,1)            c(0,M-1)
                     |r_col           |                 |
                    ...              ...               ...
                  c(N-1,0)  ...                       c(N-1,M-1)     columns end at the bottom
                     |                                  |
                  read-out (0 V or TIA virtual ground) per column

Each row is driven at its left end by a DAC (:class:`RowDriver`: quantisation levels, source
resistance). Neighbouring cells on a row are joined by a wire segment ``r_row``; on a column by
``r_col``. Every column is read at its bottom end into a virtual ground: an ideal 0 V source, or a
transimpedance amplifier with finite gain (:class:`TIAReadout`). In a 1T1R array an NMOS access
transistor sits between the cell and the column node, its gate on the row's word line.
Column currents are positive into the read-out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyaimc.circuit.cells import CellIV, LinearCells


def _check_resistance(value: float, what: str, allow_zero: bool = True) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be finite and {need}, got {value}")
    return value


@dataclass(frozen=True)
class RowDriver:
    """Row drivers: a DAC per row with an output (source) resistance.

    Parameters
    ----------
    r_source : float
        Output resistance of each driver in ohm (0: an ideal voltage source).
    dac_bits : int, optional
        Resolution of the DAC. With ``dac_bits = b`` the levels are
        ``v_max * k / (2**(b-1) - 1)`` for ``k = -(2**(b-1) - 1) .. 2**(b-1) - 1``
        (sign-magnitude, zero included). None: no quantisation.
    v_max : float, optional
        Full-scale output voltage in volt; inputs beyond +-v_max are rejected. Required with
        ``dac_bits``.
    """

    r_source: float = 0.0
    dac_bits: int | None = None
    v_max: float | None = None

    def __post_init__(self) -> None:
        _check_resistance(self.r_source, "driver source resistance r_source")
        if self.dac_bits is not None:
            if int(self.dac_bits) != self.dac_bits or self.dac_bits < 2:
                raise ValueError(f"dac_bits must be an integer >= 2, got {self.dac_bits}")
            if self.v_max is None:
                raise ValueError("a DAC with dac_bits needs its full-scale voltage v_max")
        if self.v_max is not None and not (np.isfinite(self.v_max) and self.v_max > 0):
            raise ValueError(f"v_max must be a positive voltage, got {self.v_max}")

    def levels(self) -> np.ndarray | None:
        """The DAC output levels in volt (ascending), or None without quantisation."""
        if self.dac_bits is None:
            return None
        steps = 2 ** (self.dac_bits - 1) - 1
        return self.v_max * np.arange(-steps, steps + 1) / steps

    def drive(self, v: np.ndarray) -> np.ndarray:
        """The voltages the drivers put out for requested voltages ``v`` (volt).

        Raises
        ------
        ValueError
            When a requested voltage is beyond the full scale ``v_max``.
        """
        v = np.asarray(v, dtype=np.float64)
        if self.v_max is not None:
            over = np.abs(v) > self.v_max * (1 + 1e-12)
            if over.any():
                where = tuple(int(k) for k in np.argwhere(over)[0])
                raise ValueError(f"input voltage {v[where]} V at index {where} is beyond the "
                                 f"driver full scale of +-{self.v_max} V")
        if self.dac_bits is None:
            return v
        steps = 2 ** (self.dac_bits - 1) - 1
        return self.v_max * np.clip(np.round(v * steps / self.v_max), -steps, steps) / steps


@dataclass(frozen=True)
class IdealReadout:
    """Every column ends in a 0 V source (an ideal virtual ground); its current is read."""

    @property
    def input_conductance(self) -> float:
        """Conductance from the column's end to ground in siemens (infinite: held at 0 V)."""
        return float("inf")


@dataclass(frozen=True)
class TIAReadout:
    """Transimpedance amplifier per column: an op-amp of finite DC gain with feedback resistor.

    The inverting input is the column's end, the non-inverting input is ground. With open-loop
    gain ``A`` the input settles at ``v_in = R_f I / (1 + A)``: seen from the column the amplifier
    is a resistance ``R_f / (1 + A)`` to ground. The output is ``v_out = -A v_in``.

    Parameters
    ----------
    r_feedback : float
        Feedback resistance in ohm, > 0.
    gain : float
        Open-loop DC voltage gain of the op-amp (dimensionless), > 0.
    """

    r_feedback: float = 10e3
    gain: float = 1e4

    def __post_init__(self) -> None:
        _check_resistance(self.r_feedback, "TIA feedback resistance r_feedback", allow_zero=False)
        if not (np.isfinite(self.gain) and self.gain > 0):
            raise ValueError(f"TIA open-loop gain must be finite and > 0, got {self.gain}")

    @property
    def input_conductance(self) -> float:
        """Conductance the column sees into the amplifier, siemens: ``(1 + A) / R_f``."""
        return (1.0 + self.gain) / self.r_feedback

    def output_voltage(self, column_current: np.ndarray) -> np.ndarray:
        """Amplifier output in volt for column currents in ampere (into the read-out)."""
        return -self.gain / (1.0 + self.gain) * self.r_feedback * np.asarray(column_current)


@dataclass(frozen=True)
class AccessTransistor:
    """The NMOS access transistor of a 1T1R cell: a SPICE level-1 (Shichman-Hodges) model.

    The transistor's drain joins the cell, its source the column node, its gate the row's word
    line, its bulk ground. The generic card below is a plain long-channel device; the same
    equations run in the fast solver (:func:`nmos_level1`) and in ngspice::

        .model nacc nmos level=1 vto=0.5 kp=200u lambda=0.02 gamma=0 is=0 js=0

    Parameters
    ----------
    vto : float
        Threshold voltage in volt.
    kp : float
        Transconductance parameter in A/V**2 (mu Cox).
    lambda_ : float
        Channel-length modulation in 1/V.
    width, length : float
        Channel width and length in metre.
    v_gate : float or array_like, shape (rows,)
        Word-line (gate) voltage per row in volt; a row with its gate below ``vto`` is off.

    Notes
    -----
    ``gamma=0`` (no body effect) and ``is=js=0`` (no junction leakage) keep the two engines on the
    same equations; ngspice still adds its GMIN (1e-12 S) across the junctions, which changes
    currents by about 1e-12 S x V, negligible against cell currents of micro-amperes.
    """

    vto: float = 0.5
    kp: float = 200e-6
    lambda_: float = 0.02
    width: float = 1e-6
    length: float = 100e-9
    v_gate: float | np.ndarray = 1.8
    model_name: str = "nacc"

    def __post_init__(self) -> None:
        for name in ("vto", "lambda_"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"access transistor {name} must be finite")
        if self.lambda_ < 0:
            raise ValueError(f"access transistor lambda_ must be >= 0, got {self.lambda_}")
        for name in ("kp", "width", "length"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"access transistor {name} must be finite and > 0, got {value}")
        if not np.all(np.isfinite(np.asarray(self.v_gate, dtype=float))):
            raise ValueError("access transistor gate voltage must be finite")

    @property
    def beta(self) -> float:
        """``kp * W / L`` in A/V**2."""
        return self.kp * self.width / self.length

    def gate_voltages(self, rows: int) -> np.ndarray:
        """Gate voltage of every row in volt, shape (rows,)."""
        vg = np.asarray(self.v_gate, dtype=np.float64)
        if vg.ndim == 0:
            return np.full(rows, float(vg))
        if vg.shape != (rows,):
            raise ValueError(f"access transistor v_gate has shape {vg.shape}, expected one value "
                             f"or one per row ({rows},)")
        return vg

    def model_card(self, dialect="ngspice") -> str:
        """The ``.model`` line of this transistor in a simulator's dialect."""
        from pyaimc.spice.dialect import get_dialect

        return get_dialect(dialect).nmos_level1_card(self.model_name, self.vto, self.kp,
                                                     self.lambda_)


def nmos_level1(v_drain, v_source, v_gate, transistor: AccessTransistor):
    """Drain-to-source current of the level-1 NMOS and its partial derivatives.

    Same equations as ngspice's MOS1 model with ``gamma=0``: cut-off below threshold, the
    linear region ``beta (1 + lambda vds) (vgst - vds/2) vds``, saturation
    ``beta/2 (1 + lambda vds) vgst**2``; for ``vds < 0`` drain and source swap roles.

    Parameters
    ----------
    v_drain, v_source, v_gate : array_like
        Terminal voltages in volt (broadcast together).
    transistor : AccessTransistor

    Returns
    -------
    i : ndarray
        Current from drain to source through the channel, ampere.
    di_dvd, di_dvs : ndarray
        Partial derivatives of ``i`` with respect to the drain and source voltages, siemens.
    """
    vd, vs, vg = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                       for a in (v_drain, v_source, v_gate)))
    forward = vd >= vs
    # In reverse mode the terminals swap: the "source" is the lower of the two.
    v_lo = np.where(forward, vs, vd)
    vds = np.abs(vd - vs)
    vgst = vg - v_lo - transistor.vto
    beta, lam = transistor.beta, transistor.lambda_
    on = vgst > 0
    sat = on & (vgst <= vds)
    lin = on & ~sat
    clm = 1 + lam * vds
    i = np.zeros_like(vds)
    gm = np.zeros_like(vds)
    gds = np.zeros_like(vds)
    i[sat] = 0.5 * beta * clm[sat] * vgst[sat] ** 2
    gm[sat] = beta * clm[sat] * vgst[sat]
    gds[sat] = 0.5 * lam * beta * vgst[sat] ** 2
    i[lin] = beta * clm[lin] * vds[lin] * (vgst[lin] - 0.5 * vds[lin])
    gm[lin] = beta * clm[lin] * vds[lin]
    gds[lin] = beta * clm[lin] * (vgst[lin] - vds[lin]) + lam * beta * vds[lin] * (
        vgst[lin] - 0.5 * vds[lin])
    # Forward: i(vd, vs) with vds = vd - vs, vgs = vg - vs.
    # Reverse: i = -f(vds = vs - vd, vgs = vg - vd).
    di_dvd = np.where(forward, gds, gds + gm)
    di_dvs = np.where(forward, -gds - gm, -gds)
    return np.where(forward, i, -i), di_dvd, di_dvs


@dataclass(frozen=True)
class Crossbar:
    """An N x M crossbar: cells, wires, drivers, read-out and optional access transistors.

    Parameters
    ----------
    cells : CellIV
        The cells' I-V law (:class:`LinearCells`, :class:`PolynomialCells`,
        :class:`SubcircuitCells`); fixes the shape (rows, cols).
    r_row, r_col : float
        Resistance of each wire segment between neighbouring cells on a row / a column, ohm.
        0 joins all cells of the line to one node.
    c_row, c_col : float
        Capacitance to ground of each row / column node in farad (transient analyses only).
    driver : RowDriver
        The row drivers (source resistance, DAC).
    readout : IdealReadout or TIAReadout
        The column read-out.
    access : AccessTransistor, optional
        Present for a 1T1R array.
    differential : bool
        Columns form differential pairs (2k, 2k+1) = (plus, minus) for signed weights; the
        output of pair k is ``I[2k] - I[2k+1]``. Needs an even number of columns.
    """

    cells: CellIV
    r_row: float = 0.0
    r_col: float = 0.0
    c_row: float = 0.0
    c_col: float = 0.0
    driver: RowDriver = field(default_factory=RowDriver)
    readout: IdealReadout | TIAReadout = field(default_factory=IdealReadout)
    access: AccessTransistor | None = None
    differential: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.cells, CellIV):
            raise TypeError(f"cells must be a CellIV (LinearCells, PolynomialCells, "
                            f"SubcircuitCells), got {type(self.cells).__name__}")
        _check_resistance(self.r_row, "row wire resistance r_row")
        _check_resistance(self.r_col, "column wire resistance r_col")
        for name in ("c_row", "c_col"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"wire capacitance {name} must be finite and >= 0, got {value}")
        if not isinstance(self.driver, RowDriver):
            raise TypeError(f"driver must be a RowDriver, got {type(self.driver).__name__}")
        if not isinstance(self.readout, (IdealReadout, TIAReadout)):
            raise TypeError(f"readout must be IdealReadout or TIAReadout, "
                            f"got {type(self.readout).__name__}")
        if self.access is not None:
            if not isinstance(self.access, AccessTransistor):
                raise TypeError(f"access must be an AccessTransistor, "
                                f"got {type(self.access).__name__}")
            self.access.gate_voltages(self.rows)
        if self.differential and self.cols % 2:
            raise ValueError(f"differential column pairs need an even number of columns, "
                             f"got {self.cols}")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.cells.shape

    @property
    def rows(self) -> int:
        return self.cells.shape[0]

    @property
    def cols(self) -> int:
        return self.cells.shape[1]

    def row_voltages(self, v_rows) -> np.ndarray:
        """Check requested row voltages and return what the drivers put out, shape (batch, rows).

        Parameters
        ----------
        v_rows : array_like, shape (rows,) or (batch, rows)
            Requested row voltages in volt.

        Raises
        ------
        ValueError
            Wrong shape, non-finite values, or values beyond the DAC full scale.
        """
        v = np.asarray(v_rows, dtype=np.float64)
        if v.ndim not in (1, 2):
            raise ValueError(f"row voltages must be one vector (rows,) or a batch (batch, rows), "
                             f"got shape {v.shape}")
        v2 = np.atleast_2d(v)
        if v2.shape[1] != self.rows:
            raise ValueError(f"row voltages have {v2.shape[1]} values per vector but the crossbar "
                             f"has {self.rows} rows")
        if v2.shape[0] == 0:
            raise ValueError("row voltages: the batch is empty")
        bad = ~np.isfinite(v2)
        if bad.any():
            b, r = (int(k) for k in np.argwhere(bad)[0])
            raise ValueError(f"row voltage of vector {b}, row {r} is not finite: {v2[b, r]}")
        return self.driver.drive(v2)

    def outputs(self, column_currents: np.ndarray) -> np.ndarray:
        """Outputs from column currents (ampere): differential pair currents when ``differential``."""
        column_currents = np.asarray(column_currents)
        if self.differential:
            return column_currents[..., 0::2] - column_currents[..., 1::2]
        return column_currents


def differential_conductances(weights, g_min: float, g_max: float) -> np.ndarray:
    """Map signed weights in [-1, 1] onto differential column pairs (plus, minus interleaved).

    A weight ``w >= 0`` puts ``g_min + w (g_max - g_min)`` on the plus column and ``g_min`` on the
    minus column; a negative weight the other way round, so ``G+ - G- = w (g_max - g_min)``.

    Parameters
    ----------
    weights : array_like, shape (rows, cols)
        Signed weights, each in [-1, 1].
    g_min, g_max : float
        Lowest and highest programmable conductance in siemens, 0 <= g_min < g_max.

    Returns
    -------
    ndarray, shape (rows, 2 * cols)
        Conductances in siemens; column 2k is the plus, 2k+1 the minus column of weight column k.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or not np.all(np.isfinite(w)) or np.any(np.abs(w) > 1):
        raise ValueError("weights must be a finite 2-D array with values in [-1, 1]")
    if not (0 <= g_min < g_max and np.isfinite(g_max)):
        raise ValueError(f"need 0 <= g_min < g_max, got g_min={g_min}, g_max={g_max}")
    span = g_max - g_min
    g = np.empty((w.shape[0], 2 * w.shape[1]))
    g[:, 0::2] = g_min + span * np.clip(w, 0, None)
    g[:, 1::2] = g_min + span * np.clip(-w, 0, None)
    return g


def one_r(conductance, r_wire: float = 0.0, **kwargs) -> Crossbar:
    """A 1R crossbar of linear cells with the same wire resistance on rows and columns.

    Parameters
    ----------
    conductance : array_like, shape (rows, cols)
        Cell conductances in siemens.
    r_wire : float
        Segment resistance in ohm between neighbouring cells, rows and columns alike.
    **kwargs
        Further :class:`Crossbar` fields.
    """
    return Crossbar(LinearCells(conductance), r_row=r_wire, r_col=r_wire, **kwargs)

"""Write a :class:`~pyaimc.circuit.crossbar.Crossbar` as an ngspice netlist.

Node names (ngspice is case-insensitive): row node ``r{i}_{j}``, column node ``c{i}_{j}``
(``r{i}`` / ``c{j}`` when that line has no wire resistance), 1T1R inner node ``m{i}_{j}``, driver
node ``in{i}`` (with a source resistance), word line ``wl{i}``, TIA feedback node ``fb{j}`` and
output ``out{j}``, differential output ``dout{k}``. The read-out current of column ``j`` is the
current of the 0 V source ``Vread{j}`` (``i(vread{j})`` in ngspice), positive into the read-out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pyaimc.circuit.cells import spice_number as num
from pyaimc.circuit.crossbar import Crossbar, IdealReadout, TIAReadout
from pyaimc.circuit.ngspice import OperatingPoint, Transient


def row_node(crossbar: Crossbar, i: int, j: int) -> str:
    """Name of the row node of cell (i, j)."""
    return f"r{i}_{j}" if crossbar.r_row > 0 else f"r{i}"


def column_node(crossbar: Crossbar, i: int, j: int) -> str:
    """Name of the column node of cell (i, j)."""
    return f"c{i}_{j}" if crossbar.r_col > 0 else f"c{j}"


def readout_current_names(crossbar: Crossbar) -> list[str]:
    """ngspice vector names of the column read-out currents, in column order."""
    return [f"i(vread{j})" for j in range(crossbar.cols)]


def _driver_lines(crossbar: Crossbar, v_rows) -> list[str]:
    n = crossbar.rows
    r_source = crossbar.driver.r_source
    lines = []
    if isinstance(v_rows, tuple):
        times, volts = (np.asarray(a, dtype=np.float64) for a in v_rows)
        if times.ndim != 1 or volts.shape != (times.size, n):
            raise ValueError(f"PWL row drivers need times (T,) and voltages (T, {n}), got "
                             f"{times.shape} and {volts.shape}")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0) or times[0] < 0:
            raise ValueError("PWL times must be finite, >= 0 and strictly increasing")
        volts = crossbar.row_voltages(volts)
        values = [
            "PWL(" + " ".join(f"{num(t)} {num(v)}" for t, v in zip(times, volts[:, i])) + ")"
            for i in range(n)]
    else:
        v = crossbar.row_voltages(v_rows)
        if v.shape[0] != 1:
            raise ValueError(f"a netlist holds one input vector; got a batch of {v.shape[0]}")
        values = [f"DC {num(v[0, i])}" for i in range(n)]
    for i in range(n):
        first = row_node(crossbar, i, 0)
        if r_source > 0:
            lines.append(f"Vin{i} in{i} 0 {values[i]}")
            lines.append(f"Rsrc{i} in{i} {first} {num(r_source)}")
        else:
            lines.append(f"Vin{i} {first} 0 {values[i]}")
    return lines


def _wire_lines(crossbar: Crossbar) -> list[str]:
    n, m = crossbar.shape
    lines = []
    if crossbar.r_row > 0:
        lines.append("* row wire segments")
        r = num(crossbar.r_row)
        lines += [f"Rrow{i}_{j} r{i}_{j} r{i}_{j + 1} {r}" for i in range(n) for j in range(m - 1)]
    if crossbar.r_col > 0:
        lines.append("* column wire segments")
        r = num(crossbar.r_col)
        lines += [f"Rcol{i}_{j} c{i}_{j} c{i + 1}_{j} {r}" for j in range(m) for i in range(n - 1)]
    caps = []
    for family, value, per_line, name in (("row", crossbar.c_row, crossbar.r_row > 0, "r"),
                                          ("col", crossbar.c_col, crossbar.r_col > 0, "c")):
        if value <= 0:
            continue
        caps.append(f"* {family} wire capacitance to ground")
        if per_line:
            caps += [f"C{family}{i}_{j} {name}{i}_{j} 0 {num(value)}"
                     for i in range(n) for j in range(m)]
        else:
            # A line without wire resistance is one node: it carries the whole line's capacitance.
            count, length = (n, m) if family == "row" else (m, n)
            caps += [f"C{family}{k} {name}{k} 0 {num(value * length)}" for k in range(count)]
    return lines + caps


def _cell_lines(crossbar: Crossbar) -> list[str]:
    n, m = crossbar.shape
    cells = crossbar.cells
    lines = ["* cells" + (" with NMOS access transistors (1T1R)" if crossbar.access else "")]
    for i in range(n):
        for j in range(m):
            bottom = f"m{i}_{j}" if crossbar.access else column_node(crossbar, i, j)
            line = cells.spice_instance(f"cell{i}_{j}", row_node(crossbar, i, j), bottom, i, j)
            if line is not None:
                lines.append(line)
            if crossbar.access:
                acc = crossbar.access
                lines.append(f"Macc{i}_{j} m{i}_{j} wl{i} {column_node(crossbar, i, j)} 0 "
                              f"{acc.model_name} W={num(acc.width)} L={num(acc.length)}")
    return lines


def _readout_lines(crossbar: Crossbar) -> list[str]:
    n, m = crossbar.shape
    readout = crossbar.readout
    lines = []
    if isinstance(readout, IdealReadout):
        lines.append("* read-out: ideal virtual ground (0 V source per column)")
        lines += [f"Vread{j} {column_node(crossbar, n - 1, j)} 0 DC 0" for j in range(m)]
    else:
        assert isinstance(readout, TIAReadout)
        lines.append(f"* read-out: TIA per column, open-loop gain {num(readout.gain)}, "
                     f"feedback {num(readout.r_feedback)} ohm; Vread senses the feedback current")
        for j in range(m):
            inv = column_node(crossbar, n - 1, j)
            lines.append(f"Vread{j} {inv} fb{j} DC 0")
            lines.append(f"Rf{j} fb{j} out{j} {num(readout.r_feedback)}")
            lines.append(f"Eamp{j} out{j} 0 0 {inv} {num(readout.gain)}")
    if crossbar.differential and isinstance(readout, TIAReadout):
        lines.append("* differential outputs: v(dout{k}) = v(out{2k+1}) - v(out{2k}), "
                     "proportional to I_plus - I_minus")
        lines += [f"Ediff{k} dout{k} 0 out{2 * k + 1} out{2 * k} 1" for k in range(m // 2)]
    return lines


def build_netlist(crossbar: Crossbar, v_rows, *,
                  analysis: OperatingPoint | Transient | None = OperatingPoint(),
                  title: str | None = None, save: Sequence[str] | None = None) -> str:
    """The ngspice netlist of a crossbar driven with one input vector.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit.
    v_rows : array_like, shape (rows,), or tuple (times, volts)
        DC row voltages in volt; or piecewise-linear drivers for a transient: ``times`` (T,) in
        second and ``volts`` (T, rows) in volt.
    analysis : OperatingPoint, Transient or None
        Analysis line to include (None: none, for :func:`~pyaimc.circuit.ngspice.run_netlist` to
        add).
    title : str, optional
        First (title) line.
    save : sequence of str, optional
        Vectors for a ``.save`` line (default: ngspice saves everything).

    Returns
    -------
    str
        The netlist, deterministic for given inputs (no dates), ending in ``.end``.
    """
    n, m = crossbar.shape
    kind = "1T1R" if crossbar.access else "1R"
    cells = type(crossbar.cells).__name__
    readout = ("ideal 0 V" if isinstance(crossbar.readout, IdealReadout)
               else f"TIA gain={num(crossbar.readout.gain)} "
                    f"r_feedback={num(crossbar.readout.r_feedback)}")
    head = [
        title or f"pyaimc crossbar {n}x{m} {kind}",
        f"* written by pyaimc.circuit.netlist: {n} rows x {m} columns, {kind}, {cells}",
        f"* r_row={num(crossbar.r_row)} r_col={num(crossbar.r_col)} ohm per segment, "
        f"r_source={num(crossbar.driver.r_source)} ohm, read-out {readout}"
        + (", differential column pairs (2k, 2k+1)" if crossbar.differential else ""),
        "* rows driven at the left end, columns read at the bottom end; "
        "i(vread{j}) is positive into the read-out",
    ]
    body = []
    if crossbar.access:
        acc = crossbar.access
        body.append("* generic NMOS access transistor, level 1 (no body effect, no junction "
                    "leakage)")
        body.append(acc.model_card())
    body += crossbar.cells.spice_definitions()
    body.append("* row drivers")
    body += _driver_lines(crossbar, v_rows)
    if crossbar.access:
        body.append("* word lines (gates)")
        body += [f"Vwl{i} wl{i} 0 DC {num(vg)}"
                 for i, vg in enumerate(crossbar.access.gate_voltages(n))]
    body += _wire_lines(crossbar)
    body += _cell_lines(crossbar)
    body += _readout_lines(crossbar)
    if save:
        body.append(".save " + " ".join(save))
    if analysis is not None:
        body.append(analysis.line())
    body.append(".end")
    return "\n".join(head + body) + "\n"

"""Write a :class:`~pyaimc.circuit.crossbar.Crossbar` as a netlist, in a simulator's dialect.

The topology (nodes, which element goes where) is written here once; the syntax of each element
comes from a dialect of :mod:`pyaimc.spice.dialect` (ngspice by default).

Node names (ngspice is case-insensitive): row node ``r{i}_{j}``, column node ``c{i}_{j}``
(``r{i}`` / ``c{j}`` when that line has no wire resistance), 1T1R inner node ``m{i}_{j}``, driver
node ``in{i}`` (with a source resistance), word line ``wl{i}``, TIA feedback node ``fb{j}`` and
output ``out{j}``, differential output ``dout{k}``. The read-out current of column ``j`` is the
current of the 0 V source ``Vread{j}`` (``i(vread{j})`` in ngspice), positive into the read-out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pyaimc.circuit.crossbar import Crossbar, IdealReadout, TIAReadout
from pyaimc.spice.dialect import Dialect, get_dialect
from pyaimc.spice.dialect import spice_number as num
from pyaimc.spice.ngspice import OperatingPoint, Transient


def row_node(crossbar: Crossbar, i: int, j: int) -> str:
    """Name of the row node of cell (i, j)."""
    return f"r{i}_{j}" if crossbar.r_row > 0 else f"r{i}"


def column_node(crossbar: Crossbar, i: int, j: int) -> str:
    """Name of the column node of cell (i, j)."""
    return f"c{i}_{j}" if crossbar.r_col > 0 else f"c{j}"


def readout_current_names(crossbar: Crossbar, dialect: str | Dialect = "ngspice") -> list[str]:
    """The simulator's vector names of the column read-out currents, in column order."""
    d = get_dialect(dialect)
    return [d.current_vector(f"read{j}") for j in range(crossbar.cols)]


def _driver_lines(crossbar: Crossbar, v_rows, d: Dialect) -> list[str]:
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

        def source(i, node):
            return d.vsource_pwl(f"in{i}", node, "0", times, volts[:, i])
    else:
        v = crossbar.row_voltages(v_rows)
        if v.shape[0] != 1:
            raise ValueError(f"a netlist holds one input vector; got a batch of {v.shape[0]}")

        def source(i, node):
            return d.vsource_dc(f"in{i}", node, "0", v[0, i])
    for i in range(n):
        first = row_node(crossbar, i, 0)
        if r_source > 0:
            lines.append(source(i, f"in{i}"))
            lines.append(d.resistor(f"src{i}", f"in{i}", first, r_source))
        else:
            lines.append(source(i, first))
    return lines


def _wire_lines(crossbar: Crossbar, d: Dialect) -> list[str]:
    n, m = crossbar.shape
    lines = []
    if crossbar.r_row > 0:
        lines.append(d.comment("row wire segments"))
        r = crossbar.r_row
        lines += [d.resistor(f"row{i}_{j}", f"r{i}_{j}", f"r{i}_{j + 1}", r)
                  for i in range(n) for j in range(m - 1)]
    if crossbar.r_col > 0:
        lines.append(d.comment("column wire segments"))
        r = crossbar.r_col
        lines += [d.resistor(f"col{i}_{j}", f"c{i}_{j}", f"c{i + 1}_{j}", r)
                  for j in range(m) for i in range(n - 1)]
    caps = []
    for family, value, per_line, name in (("row", crossbar.c_row, crossbar.r_row > 0, "r"),
                                          ("col", crossbar.c_col, crossbar.r_col > 0, "c")):
        if value <= 0:
            continue
        caps.append(d.comment(f"{family} wire capacitance to ground"))
        if per_line:
            caps += [d.capacitor(f"{family}{i}_{j}", f"{name}{i}_{j}", "0", value)
                     for i in range(n) for j in range(m)]
        else:
            # A line without wire resistance is one node: it carries the whole line's capacitance.
            count, length = (n, m) if family == "row" else (m, n)
            caps += [d.capacitor(f"{family}{k}", f"{name}{k}", "0", value * length)
                     for k in range(count)]
    return lines + caps


def _cell_lines(crossbar: Crossbar, d: Dialect) -> list[str]:
    n, m = crossbar.shape
    cells = crossbar.cells
    lines = [d.comment("cells" + (" with NMOS access transistors (1T1R)" if crossbar.access
                                  else ""))]
    for i in range(n):
        for j in range(m):
            bottom = f"m{i}_{j}" if crossbar.access else column_node(crossbar, i, j)
            element = cells.element(i, j)
            if element is not None:
                lines.append(d.element(f"cell{i}_{j}", row_node(crossbar, i, j), bottom, element))
            if crossbar.access:
                acc = crossbar.access
                lines.append(d.mosfet(f"acc{i}_{j}", f"m{i}_{j}", f"wl{i}",
                                      column_node(crossbar, i, j), "0", acc.model_name,
                                      acc.width, acc.length))
    return lines


def _readout_lines(crossbar: Crossbar, d: Dialect) -> list[str]:
    n, m = crossbar.shape
    readout = crossbar.readout
    lines = []
    if isinstance(readout, IdealReadout):
        lines.append(d.comment("read-out: ideal virtual ground (0 V source per column)"))
        lines += [d.vsource_zero(f"read{j}", column_node(crossbar, n - 1, j), "0")
                  for j in range(m)]
    else:
        assert isinstance(readout, TIAReadout)
        lines.append(d.comment(f"read-out: TIA per column, open-loop gain {num(readout.gain)}, "
                               f"feedback {num(readout.r_feedback)} ohm; Vread senses the "
                               f"feedback current"))
        for j in range(m):
            inv = column_node(crossbar, n - 1, j)
            lines.append(d.vsource_zero(f"read{j}", inv, f"fb{j}"))
            lines.append(d.resistor(f"f{j}", f"fb{j}", f"out{j}", readout.r_feedback))
            lines.append(d.vcvs(f"amp{j}", f"out{j}", "0", "0", inv, readout.gain))
    if crossbar.differential and isinstance(readout, TIAReadout):
        lines.append(d.comment("differential outputs: v(dout{k}) = v(out{2k+1}) - v(out{2k}), "
                               "proportional to I_plus - I_minus"))
        lines += [d.vcvs_exact(f"diff{k}", f"dout{k}", "0", f"out{2 * k + 1}", f"out{2 * k}", 1)
                  for k in range(m // 2)]
    return lines


def build_netlist(crossbar: Crossbar, v_rows, *,
                  analysis: OperatingPoint | Transient | None = OperatingPoint(),
                  title: str | None = None, save: Sequence[str] | None = None,
                  dialect: str | Dialect = "ngspice") -> str:
    """The netlist of a crossbar driven with one input vector, in a simulator's dialect.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit.
    v_rows : array_like, shape (rows,), or tuple (times, volts)
        DC row voltages in volt; or piecewise-linear drivers for a transient: ``times`` (T,) in
        second and ``volts`` (T, rows) in volt.
    analysis : OperatingPoint, Transient or None
        Analysis line to include (None: none, for :func:`~pyaimc.spice.ngspice.run_netlist` to
        add).
    title : str, optional
        First (title) line.
    save : sequence of str, optional
        Vectors for a ``.save`` line (default: ngspice saves everything).
    dialect : str or Dialect
        The simulator's syntax (default ``"ngspice"``).

    Returns
    -------
    str
        The netlist, deterministic for given inputs (no dates), ending in ``.end``.
    """
    d = get_dialect(dialect)
    n, m = crossbar.shape
    kind = "1T1R" if crossbar.access else "1R"
    cells = type(crossbar.cells).__name__
    readout = ("ideal 0 V" if isinstance(crossbar.readout, IdealReadout)
               else f"TIA gain={num(crossbar.readout.gain)} "
                    f"r_feedback={num(crossbar.readout.r_feedback)}")
    head = [
        title or f"pyaimc crossbar {n}x{m} {kind}",
        d.comment(f"written by pyaimc.circuit.netlist: {n} rows x {m} columns, {kind}, {cells}"),
        d.comment(f"r_row={num(crossbar.r_row)} r_col={num(crossbar.r_col)} ohm per segment, "
                  f"r_source={num(crossbar.driver.r_source)} ohm, read-out {readout}"
                  + (", differential column pairs (2k, 2k+1)" if crossbar.differential else "")),
        d.comment("rows driven at the left end, columns read at the bottom end; "
                  f"{d.current_vector('read{j}')} is positive into the read-out"),
    ]
    body = []
    if crossbar.access:
        acc = crossbar.access
        body.append(d.comment("generic NMOS access transistor, level 1 (no body effect, no "
                              "junction leakage)"))
        body.append(d.nmos_level1_card(acc.model_name, acc.vto, acc.kp, acc.lambda_))
    body += crossbar.cells.definitions(d)
    body.append(d.comment("row drivers"))
    body += _driver_lines(crossbar, v_rows, d)
    if crossbar.access:
        body.append(d.comment("word lines (gates)"))
        body += [d.vsource_dc(f"wl{i}", f"wl{i}", "0", vg)
                 for i, vg in enumerate(crossbar.access.gate_voltages(n))]
    body += _wire_lines(crossbar, d)
    body += _cell_lines(crossbar, d)
    body += _readout_lines(crossbar, d)
    if save:
        body.append(d.save(save))
    if analysis is not None:
        body.append(analysis.line())
    body.append(d.end())
    return "\n".join(head + body) + "\n"

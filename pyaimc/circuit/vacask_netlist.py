"""A crossbar in VACASK: the netlist of :func:`pyaimc.circuit.netlist.build_netlist` in the
``vacask`` dialect, the masters it loads, and a control block for a whole batch of inputs.

The topology (nodes, element names) is the ngspice netlist's, written by
:class:`pyaimc.spice.vacask.VacaskDialect`: wires, linear cells and the TIA feedback through
VACASK's ``resistor.osdi``, sources and amplifiers as its built-in ``vsource`` and ``vcvs``,
polynomial cells through a small Verilog-A module (``pyaimc_polycell``: VACASK has no
behavioural source), :class:`~pyaimc.circuit.cells.VerilogACells` as instances of the ReRAM
module itself, access transistors as an OSDI MOSFET (SPICE's level 1 with the crossbar's card by
default, the fast solver's equations; or a real compact model such as
:func:`pyaimc.spice.vacask.psp103`).

A batch of input vectors is one VACASK run: an operating point per vector (``op0``, ``op1`` ...),
the row sources changed between them with ``alter``, only the read-out currents saved.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from pyaimc.circuit.cells import PolynomialCells
from pyaimc.circuit.crossbar import Crossbar, TIAReadout
from pyaimc.circuit.netlist import build_netlist, readout_current_names
from pyaimc.spice.vacask import (NEWTON_OPTIONS, MosfetModel, VacaskDialect, number, run_vacask)


def build_vacask_netlist(crossbar: Crossbar, v_rows, *, mosfet: MosfetModel | None = None,
                         save_all: bool = False, title: str | None = None
                         ) -> tuple[str, list[str]]:
    """The VACASK netlist of a crossbar for a batch of input vectors.

    Parameters
    ----------
    crossbar : Crossbar
    v_rows : array_like (rows,) or (batch, rows)
        DC row voltages in volt, one operating point per vector.
    mosfet : MosfetModel, optional
        Access transistors of a 1T1R crossbar (default: level 1 with the crossbar's card).
    save_all : bool
        Keep every node (default: only the read-out currents).
    title : str, optional

    Returns
    -------
    text : str
    analyses : list of str
        The analyses whose raw files hold the results, in input order.
    """
    d = VacaskDialect(mosfet)
    volts = crossbar.row_voltages(v_rows)
    n, m = crossbar.shape
    kind = "1T1R" if crossbar.access else "1R"
    body = build_netlist(crossbar, volts[0], analysis=None, dialect=d,
                         title=title or f"pyaimc crossbar {n}x{m} {kind} (VACASK)")
    head, _, rest = body.partition("\n")
    pre = d.preamble(capacitors=crossbar.c_row > 0 or crossbar.c_col > 0,
                     vcvs=isinstance(crossbar.readout, TIAReadout),
                     polynomial=type(crossbar.cells) is PolynomialCells)
    lines = [head, *pre, rest.rstrip("\n"), "control",
             "  options " + " ".join(f"{k}={number(v)}" for k, v in NEWTON_OPTIONS.items())]
    if not save_all:
        lines.append(d.save(readout_current_names(crossbar, d)))
    analyses = []
    for k, vec in enumerate(volts):
        if k:
            lines += [f'  alter instance("vin{i}") dc={number(vec[i])}' for i in range(n)
                      if vec[i] != volts[k - 1, i]]
        lines.append(f"  analysis op{k} op")
        analyses.append(f"op{k}")
    lines.append("endc")
    return "\n".join(lines) + "\n", analyses


def simulate_vacask(crossbar: Crossbar, v_rows, *, mosfet: MosfetModel | None = None,
                    timeout: float = 600.0, threads: int = 1,
                    executable: str | os.PathLike | None = None) -> np.ndarray:
    """Column read-out currents from VACASK operating points, one process for the whole batch.

    Parameters
    ----------
    crossbar : Crossbar
    v_rows : array_like, shape (rows,) or (batch, rows)
        Row voltages in volt.
    mosfet : MosfetModel, optional
        Access transistors of a 1T1R crossbar (default: level 1 with the crossbar's card).
    timeout : float
        Limit of the VACASK run, s.
    threads : int
        CPUs VACASK may use.
    executable : path, optional

    Returns
    -------
    ndarray, shape (batch, cols)
        Currents into the read-outs, ampere.
    """
    text, analyses = build_vacask_netlist(crossbar, v_rows, mosfet=mosfet)
    names = readout_current_names(crossbar, VacaskDialect())
    with tempfile.TemporaryDirectory(prefix="pyaimc-xbar-") as tmp:
        res, _ = run_vacask(text, analyses, timeout=timeout, executable=executable,
                            threads=threads, cwd=tmp)
    return np.array([[res[a][name][0] for name in names] for a in analyses])

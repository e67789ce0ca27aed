"""One entry point for both engines: column currents of a crossbar for one or many input vectors."""

from __future__ import annotations

import os

import numpy as np

from pyaimc.circuit.crossbar import Crossbar
from pyaimc.circuit.netlist import build_netlist, readout_current_names
from pyaimc.circuit.ngspice import DEFAULT_TIMEOUT, OperatingPoint, find_ngspice, run_netlist
from pyaimc.circuit.solver import CrossbarSolver

ENGINES = ("fast", "ngspice")


def simulate_ngspice(crossbar: Crossbar, v_rows, *, timeout: float = DEFAULT_TIMEOUT,
                     executable: str | os.PathLike | None = None) -> np.ndarray:
    """Column read-out currents from ngspice operating points, one run per input vector.

    Parameters
    ----------
    crossbar : Crossbar
    v_rows : array_like, shape (rows,) or (batch, rows)
        Row voltages in volt.
    timeout : float
        Limit per ngspice run in second.
    executable : path, optional
        The ngspice binary.

    Returns
    -------
    ndarray, shape (batch, cols)
        Currents into the read-outs, ampere.
    """
    v = crossbar.row_voltages(v_rows)
    find_ngspice(executable)
    names = readout_current_names(crossbar)
    out = np.empty((v.shape[0], crossbar.cols))
    for k, vector in enumerate(v):
        # One process per vector: ngspice re-orders its matrix on every operating point anyway
        # (measured: 4 operating points in one run cost 4 x one run at 64 x 64).
        netlist = build_netlist(crossbar, vector, analysis=OperatingPoint(), save=names)
        vectors = run_netlist(netlist, timeout=timeout, executable=executable)
        out[k] = [vectors[name][0] for name in names]
    return out


def simulate(crossbar: Crossbar, v_rows, engine: str = "fast", *,
             timeout: float = DEFAULT_TIMEOUT, executable: str | os.PathLike | None = None,
             **solver_options) -> np.ndarray:
    """Column currents (ampere, positive into the read-out) of a crossbar.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit.
    v_rows : array_like, shape (rows,) or (batch, rows)
        Row voltages in volt, applied by the row drivers.
    engine : {"fast", "ngspice"}
        The nodal solver of :mod:`pyaimc.circuit.solver`, or ngspice operating points.
    timeout, executable
        ngspice run limit (second) and binary.
    **solver_options
        Passed to :class:`~pyaimc.circuit.solver.CrossbarSolver` (``method``, ``rtol`` ...).

    Returns
    -------
    ndarray
        Shape (cols,) for one vector, (batch, cols) for a batch.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    single = np.ndim(v_rows) == 1
    if engine == "fast":
        currents = CrossbarSolver(crossbar, **solver_options).solve(v_rows).column_currents
    else:
        if solver_options:
            raise ValueError(f"options {sorted(solver_options)} apply to the fast engine only")
        currents = simulate_ngspice(crossbar, v_rows, timeout=timeout, executable=executable)
    return currents[0] if single else currents

"""Engines: anything that gives the column currents of a crossbar for row voltages.

An engine is an object with a ``name``, a set of ``capabilities`` and one verb::

    currents = engine.column_currents(crossbar, v_rows, **options)   # (batch, cols), ampere

Engines register by name (:func:`register_engine`); the command line (``--engine``), the
transfer Monte-Carlo and the S4D step check look them up with :func:`get_engine`, so a new
simulator is one class here (or in a user's module) and one registration. Built in:

* ``fast``: pyaimc's nodal solver (:class:`~pyaimc.circuit.solver.CrossbarSolver`; exact line
  elimination with conjugate gradients for 1R, sparse LU with Newton otherwise);
* ``ngspice``: ngspice operating points, one netlist per input vector
  (:mod:`pyaimc.spice.ngspice`);
* ``vacask``: VACASK operating points with OSDI devices, one process for the whole batch
  (:mod:`pyaimc.circuit.vacask_netlist`, :mod:`pyaimc.spice.vacask`).

Capabilities name what an engine can simulate: ``"1r"``, ``"1t1r"``, ``"polynomial_cells"``,
``"subcircuit_cells"`` (cells given as a simulator subcircuit), ``"veriloga_cells"`` (the
ReRAM model's Verilog-A module as the cells), ``"transient"``; and
``"external"`` for an engine that runs a simulator process (it takes a ``timeout`` option, s).
"""

from __future__ import annotations

import os
import time

import numpy as np

from pyaimc.circuit.crossbar import Crossbar
from pyaimc.circuit.netlist import build_netlist, readout_current_names
from pyaimc.circuit.solver import CrossbarSolver
from pyaimc.errors import BudgetError
from pyaimc.spice.ngspice import DEFAULT_TIMEOUT, OperatingPoint, find_ngspice, run_netlist

#: registered engines, by name
ENGINES: dict[str, "Engine"] = {}


def register_engine(engine: "Engine") -> "Engine":
    """Make ``engine`` available to :func:`get_engine` under its ``name``."""
    if not isinstance(getattr(engine, "name", None), str) or not engine.name:
        raise TypeError("an engine needs a 'name' (str)")
    if not callable(getattr(engine, "column_currents", None)):
        raise TypeError(f"engine {engine.name!r} needs a column_currents() method")
    ENGINES[engine.name] = engine
    return engine


def get_engine(name: "str | Engine") -> "Engine":
    """The engine registered as ``name`` (an engine object is returned as it is)."""
    if not isinstance(name, str):
        return name
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"engine must be one of {tuple(ENGINES)}, got {name!r}") from None


def engine_names() -> tuple[str, ...]:
    """Names of the registered engines (for ``--engine`` choices)."""
    return tuple(ENGINES)


class Engine:
    """Base of the built-in engines.

    Attributes
    ----------
    name : str
    capabilities : frozenset of str
    """

    name = ""
    capabilities: frozenset = frozenset()

    def column_currents(self, crossbar: Crossbar, v_rows, **options) -> np.ndarray:
        """Column read-out currents (batch, cols; A, positive into the read-out) for row
        voltages ``v_rows`` ((rows,) or (batch, rows); V)."""
        raise NotImplementedError  # pragma: no cover - interface

    def check(self, crossbar: Crossbar) -> None:
        """Raise ``ValueError`` when this engine cannot simulate ``crossbar``."""
        need = {"1t1r" if crossbar.access else "1r"}
        cells = type(crossbar.cells).__name__
        if cells == "PolynomialCells":
            need.add("polynomial_cells")
        if cells == "SubcircuitCells":
            need.add("subcircuit_cells")
        if cells == "VerilogACells":
            need.add("veriloga_cells")
        missing = need - set(self.capabilities)
        if missing:
            able = [e.name for e in ENGINES.values() if need <= set(e.capabilities)]
            raise ValueError(f"the {self.name} engine cannot simulate this crossbar (needs "
                             f"{', '.join(sorted(missing))}); use the "
                             f"{' or '.join(able) or 'no registered'} engine")


class FastEngine(Engine):
    """pyaimc's nodal solver; ``options`` go to :class:`CrossbarSolver` (``method``, ``rtol``)."""

    name = "fast"
    # Verilog-A cells at a read are their polynomial I-V law (VerilogACells is PolynomialCells)
    capabilities = frozenset({"1r", "1t1r", "polynomial_cells", "veriloga_cells"})

    def column_currents(self, crossbar, v_rows, **options):
        self.check(crossbar)
        return CrossbarSolver(crossbar, **options).solve(v_rows).column_currents


#: default size limit of a circuit-simulator run, cells (ngspice needs minutes at 128 x 128)
MAX_CELLS = 256 * 256
#: default time budget of one call of a simulator engine over a whole batch, s
BUDGET = 3600.0


def check_budget(crossbar: Crossbar, max_cells: int | None, engine: str) -> None:
    """Refuse a crossbar larger than ``max_cells`` before a simulator starts on it."""
    cells = crossbar.rows * crossbar.cols
    if max_cells is not None and cells > max_cells:
        raise BudgetError(f"{crossbar.rows} x {crossbar.cols} = {cells} cells is more than the "
                          f"{engine} engine's size limit of {max_cells} (raise it with "
                          f"--max-cells, or use the fast engine)")


class NgspiceEngine(Engine):
    """ngspice operating points, one run per input vector.

    Options: ``timeout`` per run (s), ``budget`` for the whole batch (s; the runs stop with a
    :class:`~pyaimc.errors.BudgetError` when it is spent), ``max_cells`` (size limit, checked
    before the first run), ``executable``.
    """

    name = "ngspice"
    capabilities = frozenset({"1r", "1t1r", "polynomial_cells", "subcircuit_cells",
                              "transient", "external"})

    def column_currents(self, crossbar, v_rows, *, timeout: float = DEFAULT_TIMEOUT,
                        budget: float = BUDGET, max_cells: int | None = MAX_CELLS,
                        executable: str | os.PathLike | None = None, **options):
        if options:
            raise ValueError(f"options {sorted(options)} do not apply to the ngspice engine")
        self.check(crossbar)
        check_budget(crossbar, max_cells, self.name)
        v = crossbar.row_voltages(v_rows)
        find_ngspice(executable)
        names = readout_current_names(crossbar)
        out = np.empty((v.shape[0], crossbar.cols))
        deadline = time.monotonic() + float(budget)
        for k, vector in enumerate(v):
            left = deadline - time.monotonic()
            if left <= 0:
                raise BudgetError(f"ngspice: the time budget of {budget:g} s is spent after {k} "
                                  f"of {len(v)} input vectors (raise --budget)")
            # One process per vector: ngspice re-orders its matrix on every operating point
            # anyway (measured: 4 operating points in one run cost 4 x one run at 64 x 64).
            netlist = build_netlist(crossbar, vector, analysis=OperatingPoint(), save=names)
            vectors = run_netlist(netlist, timeout=min(timeout, left), executable=executable)
            out[k] = [vectors[name][0] for name in names]
        return out


class VacaskEngine(Engine):
    """VACASK operating points: one process for the whole batch (an ``op`` per input vector).

    Options: ``timeout`` and ``budget`` (s; one run does the whole batch, so the smaller of the
    two limits it), ``max_cells`` (size limit, checked before the run), ``mosfet`` (a
    :class:`~pyaimc.spice.vacask.MosfetModel` for 1T1R access transistors; default SPICE level 1
    with the crossbar's card), ``threads``, ``executable``.
    """

    name = "vacask"
    capabilities = frozenset({"1r", "1t1r", "polynomial_cells", "veriloga_cells", "external"})

    def column_currents(self, crossbar, v_rows, *, timeout: float = DEFAULT_TIMEOUT,
                        budget: float = BUDGET, max_cells: int | None = MAX_CELLS, mosfet=None,
                        threads: int = 1, executable: str | os.PathLike | None = None,
                        **options):
        if options:
            raise ValueError(f"options {sorted(options)} do not apply to the vacask engine")
        self.check(crossbar)
        check_budget(crossbar, max_cells, self.name)
        from pyaimc.circuit.vacask_netlist import simulate_vacask

        return simulate_vacask(crossbar, v_rows, mosfet=mosfet,
                               timeout=min(float(timeout), float(budget)), threads=threads,
                               executable=executable)


register_engine(FastEngine())
register_engine(NgspiceEngine())
register_engine(VacaskEngine())

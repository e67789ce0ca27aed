"""Crossbar circuits: netlist builder, ngspice runner, fast nodal solver.

Describe a crossbar once (:class:`Crossbar` with its cells, wires, drivers and read-out), then
either write it as an ngspice netlist (:func:`build_netlist`, run by :func:`run_netlist`) or solve
it directly (:class:`CrossbarSolver`); :func:`simulate` runs either engine.
"""

from pyaimc.circuit.cells import CellIV, LinearCells, PolynomialCells, SubcircuitCells
from pyaimc.circuit.crossbar import (AccessTransistor, Crossbar, IdealReadout, RowDriver,
                                     TIAReadout, differential_conductances, nmos_level1, one_r)
from pyaimc.circuit.errors import ConvergenceError, NotApplicableError
from pyaimc.circuit.netlist import build_netlist, readout_current_names
from pyaimc.circuit.ngspice import (NgspiceConvergenceError, NgspiceError, NgspiceNotFoundError,
                                    NgspiceTimeoutError, OperatingPoint, Transient, read_raw,
                                    run_netlist, run_ngspice, write_raw)
from pyaimc.circuit.simulate import simulate, simulate_ngspice
from pyaimc.circuit.solver import CrossbarSolution, CrossbarSolver, solve_crossbar

__all__ = [
    "AccessTransistor", "CellIV", "ConvergenceError", "Crossbar", "CrossbarSolution",
    "CrossbarSolver", "IdealReadout", "LinearCells", "NgspiceConvergenceError", "NgspiceError",
    "NgspiceNotFoundError", "NgspiceTimeoutError", "NotApplicableError", "OperatingPoint",
    "PolynomialCells", "RowDriver", "SubcircuitCells", "TIAReadout", "Transient",
    "build_netlist", "differential_conductances", "nmos_level1", "one_r", "read_raw",
    "readout_current_names", "run_netlist", "run_ngspice", "simulate", "simulate_ngspice",
    "solve_crossbar", "write_raw",
]

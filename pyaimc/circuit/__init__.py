"""Crossbar circuits: netlist builder, engines (fast nodal solver, ngspice, ...), transfer model.

Describe a crossbar once (:class:`Crossbar` with its cells, wires, drivers and read-out), then
either write it as a netlist in a simulator's dialect (:func:`build_netlist`; ngspice's runner is
:func:`pyaimc.spice.run_netlist`) or solve it directly (:class:`CrossbarSolver`); :func:`simulate`
runs any registered engine (:mod:`pyaimc.circuit.engines`). :func:`fit_transfer`
fits the behavioural :class:`TransferModel` of a tile to Monte-Carlo simulations of programmed
devices, run through :func:`get_executor` (local processes or Dask).
"""

from pyaimc.circuit.cells import CellIV, LinearCells, PolynomialCells, SubcircuitCells
from pyaimc.circuit.crossbar import (AccessTransistor, Crossbar, IdealReadout, RowDriver,
                                     TIAReadout, differential_conductances, nmos_level1, one_r)
from pyaimc.circuit.engines import ENGINES, Engine, engine_names, get_engine, register_engine
from pyaimc.circuit.errors import ConvergenceError, NotApplicableError
from pyaimc.circuit.montecarlo import get_executor, task_seeds
from pyaimc.circuit.netlist import build_netlist, readout_current_names
from pyaimc.circuit.simulate import simulate, simulate_ngspice
from pyaimc.circuit.solver import CrossbarSolution, CrossbarSolver, solve_crossbar
from pyaimc.circuit.transfer import TransferError, TransferModel, read_transfer
from pyaimc.circuit.transfer_fit import SaturatingTIA, TransferFit, fit_transfer
from pyaimc.spice.ngspice import (NgspiceConvergenceError, NgspiceError, NgspiceNotFoundError,
                                  NgspiceTimeoutError, OperatingPoint, Transient, read_raw,
                                  run_netlist, run_ngspice, write_raw)

__all__ = [
    "AccessTransistor", "CellIV", "ConvergenceError", "Crossbar", "CrossbarSolution", "ENGINES",
    "Engine", "TransferError", "engine_names", "get_engine", "read_transfer", "register_engine",
    "CrossbarSolver", "IdealReadout", "LinearCells", "NgspiceConvergenceError", "NgspiceError",
    "NgspiceNotFoundError", "NgspiceTimeoutError", "NotApplicableError", "OperatingPoint",
    "PolynomialCells", "RowDriver", "SaturatingTIA", "SubcircuitCells", "TIAReadout",
    "TransferFit", "TransferModel", "Transient", "build_netlist", "differential_conductances",
    "fit_transfer", "get_executor", "nmos_level1", "one_r", "read_raw", "readout_current_names",
    "run_netlist", "run_ngspice", "simulate", "simulate_ngspice", "solve_crossbar", "task_seeds",
    "write_raw",
]

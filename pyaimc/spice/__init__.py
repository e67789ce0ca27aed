"""Circuit simulators, in one place: runners and netlist dialects.

``ngspice`` (batch mode: :func:`~pyaimc.spice.ngspice.run_netlist`, raw-file reader, analyses),
``dialect`` (how each simulator writes the elements of pyaimc's circuits), ``vacask`` (the VACASK
simulator: OSDI devices, KLU; runner and dialect), ``osdi`` (Verilog-A to OSDI with OpenVAF's
``openvaf-r``, cached builds). The compact-model sweeps (:mod:`pyaimc.compact`) and the crossbar
engines (:mod:`pyaimc.circuit`) both run their simulators through here.
"""

from pyaimc.spice.dialect import (DIALECTS, Dialect, NgspiceDialect, get_dialect,
                                  register_dialect, spice_number)
from pyaimc.spice.ngspice import (DEFAULT_TIMEOUT, NgspiceConvergenceError, NgspiceError,
                                  NgspiceNotFoundError, NgspiceTimeoutError, OperatingPoint,
                                  RawPlot, Transient, find_ngspice, read_raw, run_netlist,
                                  run_ngspice, write_raw)

__all__ = ["DEFAULT_TIMEOUT", "DIALECTS", "Dialect", "NgspiceConvergenceError", "NgspiceDialect",
           "NgspiceError", "NgspiceNotFoundError", "NgspiceTimeoutError", "OperatingPoint",
           "RawPlot", "Transient", "find_ngspice", "get_dialect", "read_raw", "register_dialect",
           "run_netlist", "run_ngspice", "spice_number", "write_raw"]

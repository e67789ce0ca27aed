"""Instruments (the system of arXiv 2308.02400, the NeuroBreakoutBoard): one measurement
protocol for a virtual chip and a real one.

- :mod:`.board`: the operations a board offers (:class:`Board`) and :class:`InstrumentCells`,
  which lets every write scheme program cells through a board;
- :mod:`.frontend`: source, switch path, TIA ranges, ADC, compliance, timing, and the
  :class:`Calibration` that undoes them;
- :mod:`.virtual`: :class:`VirtualBoard` on pyaimc's device model and crossbar solver;
- :mod:`.calibration`: open-short-load calibration and accuracy vs resistance;
- :mod:`.protocols`: sweeps, cycling, pulse trains, write-verify, reads, crossbar products;
- :mod:`.visa`: a Keithley 2400-style SMU driver and a NeuroBreakoutBoard-like board over VISA;
- :mod:`.roundtrip`: virtual chip -> protocol -> ``pyaimc fit`` -> model, against the generator.
"""

from pyaimc.apps.instruments.board import Board, InstrumentCells
from pyaimc.apps.instruments.calibration import accuracy_vs_resistance, calibrate
from pyaimc.apps.instruments.frontend import Calibration, FrontEnd, FrontEndSpec
from pyaimc.apps.instruments.protocols import (crossbar_mvm, cycling, iv_sweeps, pulse_train,
                                               read_cells, write_verify)
from pyaimc.apps.instruments.virtual import ResistorArray, VirtualBoard

__all__ = ["Board", "Calibration", "FrontEnd", "FrontEndSpec", "InstrumentCells",
           "ResistorArray", "VirtualBoard", "accuracy_vs_resistance", "calibrate",
           "crossbar_mvm", "cycling", "iv_sweeps", "pulse_train", "read_cells", "write_verify"]

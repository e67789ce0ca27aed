"""pyaimc: circuit-level co-simulation of analog in-memory computing on ReRAM crossbars.

One stochastic device model, fitted to measurements, is carried through every level:
``pyaimc.data`` (calibration data) -> ``pyaimc.device`` (the fitted model, its Python twin)
-> ``pyaimc.compact`` (Verilog-A and ngspice) and ``pyaimc.circuit`` (crossbars)
-> ``pyaimc.noise`` (hardware noise model) -> ``pyaimc.nn`` (hardware-aware training).
"""

__version__ = "0.1.0"

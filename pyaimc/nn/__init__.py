"""Behavioral analog layers, quantizers, S4D, training and deployment.

``analog`` (AnalogLinear, convert_to_analog, program: the hardware noise model in torch),
``s4d`` (the S4D layer), ``quant`` (fake quantizers), ``classifier`` (the sequence classifier and
``build_model``), ``step`` (deployment as real matrix-vector products through a backend),
``prune`` (structured pruning), ``datasets``, ``config`` (presets, validation) and ``train``;
``hardware`` (hardware-aware training), ``tiles`` and ``deploy`` (deployment on programmed
crossbar tiles), ``spice_step`` (one step through ngspice), ``size``, ``demo``.
Submodules import torch; import them directly (``from pyaimc.nn.train import train``).
"""
from pyaimc.nn.analog import AnalogConfig, AnalogLinear, analog_layers, convert_to_analog, program

__all__ = ["AnalogConfig", "AnalogLinear", "analog_layers", "convert_to_analog", "program"]

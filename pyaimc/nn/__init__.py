"""Behavioral analog layers, quantizers, S4D, training and deployment."""
from pyaimc.nn.analog import AnalogConfig, AnalogLinear, analog_layers, convert_to_analog, program  # noqa: F401

"""The analog tile core in torch and the thin layers over it.

``core`` (:class:`TileCore`: mapping, DAC, transfer, read noise, ADC of one tile design, built
from a noise model and an :class:`AnalogConfig`), ``linear`` (:class:`AnalogLinear`,
:func:`convert_to_analog`, :func:`program`: hardware-aware training), ``tiles``
(:class:`AnalogTiles`: groups of matrices programmed once and read many times, deployment),
``ops`` (differential pairs and the row-tile layout), ``conv`` (:class:`AnalogConv1d`,
:class:`AnalogConv2d`: im2col onto tiles), ``recurrent`` (analog LSTM, GRU and RNN cells and
sequence layers), ``weight_maps`` (weight-to-conductance mappings by name: differential pair,
single device with a reference column, N pairs, optimised pairs). Importing this package
imports torch.
"""

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.core import TileCore, adc_range, transfer_for
from pyaimc.analog.linear import (AnalogLinear, analog_layers, clip_weights, convert_to_analog,
                                  hold_draw, program, register_converter)
from pyaimc.analog.tiles import AnalogTiles, TileLayout, tile_noise_model
from pyaimc.analog.conv import AnalogConv1d, AnalogConv2d  # noqa: E402 (registers converters)
from pyaimc.analog.recurrent import (AnalogGRU, AnalogGRUCell, AnalogLSTM,  # noqa: E402
                                     AnalogLSTMCell, AnalogRNN, AnalogRNNCell)
from pyaimc.analog.weight_maps import WEIGHT_MAPS, WeightMap, register_weight_map

__all__ = ["AnalogConfig", "AnalogConv1d", "AnalogConv2d", "AnalogGRU", "AnalogGRUCell",
           "AnalogLSTM", "AnalogLSTMCell", "AnalogLinear", "AnalogRNN", "AnalogRNNCell",
           "AnalogTiles", "TileCore", "TileLayout", "WEIGHT_MAPS", "WeightMap", "adc_range",
           "analog_layers", "clip_weights", "convert_to_analog", "hold_draw", "program",
           "register_converter", "register_weight_map", "tile_noise_model", "transfer_for"]

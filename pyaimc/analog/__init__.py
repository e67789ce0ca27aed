"""The analog tile core in torch and the thin layers over it.

``core`` (:class:`TileCore`: mapping, DAC, transfer, read noise, ADC of one tile design, built
from a noise model and an :class:`AnalogConfig`), ``linear`` (:class:`AnalogLinear`,
:func:`convert_to_analog`, :func:`program`: hardware-aware training), ``tiles``
(:class:`AnalogTiles`: groups of matrices programmed once and read many times, deployment),
``ops`` (differential pairs and the row-tile layout). Importing this package imports torch.
"""

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.core import TileCore, adc_range, transfer_for
from pyaimc.analog.linear import AnalogLinear, analog_layers, convert_to_analog, program
from pyaimc.analog.tiles import AnalogTiles, TileLayout, tile_noise_model

__all__ = ["AnalogConfig", "AnalogLinear", "AnalogTiles", "TileCore", "TileLayout", "adc_range",
           "analog_layers", "convert_to_analog", "program", "tile_noise_model", "transfer_for"]

"""The hardware noise model: one dataclass of plug-in parts, its JSON schema, export and import.

Typical use::

    from pyaimc.device import DeviceModel
    from pyaimc.noise import NoiseModel, export_noise_model
    nm = export_noise_model(DeviceModel.load("model.json"), rng, rows=64, cols=64)
    nm.save("noise.json"); nm = NoiseModel.load("noise.json")
    nm.programming.table("write_verify")   # the programming statistics of one write scheme
    nm.to_aihwkit()                        # coefficients for aihwkit's inference noise models

Parts (programming, read noise, retention, periphery) are chosen by a ``"kind"`` key and
registered in :mod:`pyaimc.noise.protocols`.
"""

from pyaimc.noise.aihwkit import to_aihwkit
from pyaimc.noise.export import device_defects, device_window, exported_schemes, export_noise_model
from pyaimc.noise.model import (READABLE, SCHEMA, Defects, Mapping, NoiseModel, NoiseModelError,
                                Programming, Tile, Window)
from pyaimc.noise.periphery import ADC, DAC, DacAdc
from pyaimc.noise.programming import (ProgrammingTable, TableProgramming, programming_statistics,
                                      spread_parts)
from pyaimc.noise.protocols import (PERIPHERY_MODELS, PROGRAMMING_MODELS, READ_NOISE_MODELS,
                                    RETENTION_MODELS, register)
from pyaimc.noise.read_noise import ReadNoise
from pyaimc.noise.retention import NoRetention, RelaxationRetention

__all__ = [
    "ADC", "DAC", "DacAdc", "Defects", "Mapping", "NoRetention", "NoiseModel", "NoiseModelError",
    "PERIPHERY_MODELS", "PROGRAMMING_MODELS", "Programming", "ProgrammingTable",
    "RelaxationRetention",
    "READABLE", "READ_NOISE_MODELS", "RETENTION_MODELS", "ReadNoise", "SCHEMA",
    "TableProgramming", "Tile", "Window", "device_defects", "device_window", "exported_schemes",
    "export_noise_model", "programming_statistics", "register", "spread_parts", "to_aihwkit",
]

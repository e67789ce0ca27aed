"""The hardware noise model: one dataclass, its JSON schema, export and import.

Typical use::

    from pyaimc.device import DeviceModel
    from pyaimc.noise import NoiseModel, export_noise_model
    nm = export_noise_model(DeviceModel.load("model.json"), rng, rows=64, cols=64)
    nm.save("noise.json"); nm = NoiseModel.load("noise.json")
    nm.to_aihwkit()        # coefficients for aihwkit's inference noise models
"""

from pyaimc.noise.aihwkit import to_aihwkit
from pyaimc.noise.export import device_defects, device_window, export_noise_model
from pyaimc.noise.model import (ADC, DAC, SCHEMA, Defects, Mapping, NoiseModel, NoiseModelError,
                                Programming, ProgrammingTable, ReadNoise, Tile, Window)
from pyaimc.noise.programming import (PulseCalibration, VerifySettings, calibrate_pulses,
                                      programming_statistics, write_one_shot, write_verify)
from pyaimc.noise.transfer_doc import (TRANSFER_SCHEMA, TransferError, first_order_transfer,
                                       read_transfer, validate_transfer)

__all__ = [
    "ADC", "DAC", "Defects", "Mapping", "NoiseModel", "NoiseModelError", "Programming",
    "ProgrammingTable", "PulseCalibration", "ReadNoise", "SCHEMA", "TRANSFER_SCHEMA", "Tile",
    "TransferError", "VerifySettings", "Window", "calibrate_pulses", "device_defects",
    "device_window", "export_noise_model", "first_order_transfer", "programming_statistics",
    "read_transfer", "to_aihwkit", "validate_transfer", "write_one_shot", "write_verify",
]

"""The stochastic ReRAM device model: marginals, device-to-device mixture, cycle-to-cycle VAR,
I-V and switching, write schemes (:mod:`pyaimc.device.schemes`), fidelity metrics.

Typical use::

    from pyaimc.data import load
    from pyaimc.device import DeviceModel
    model = DeviceModel().fit(load("features.npz"))
    feats = model.sample(1000, 500, rng)           # dict of devices x cycles arrays
    cells = model.cells(1_000_000, rng)            # pulse-level simulation
    cells.apply_voltage(-1.5); cells.apply_voltage(1.5); i = cells.read(0.2, bandwidth=1e8)
"""

from pyaimc.device.cells import CellArray, simulate_sweeps, triangular_sweep
from pyaimc.device.iv import IVModel, adc_quantize
from pyaimc.device.marginal import MarginalTransform
from pyaimc.device.mixture import DeviceMixture
from pyaimc.device.model import DeviceModel, shipped_model, shipped_model_names
from pyaimc.device.relaxation import ReadNoise1f, RelaxationModel
from pyaimc.device.schemes import (SCHEMES, OneShot, PulseCalibration, ResetRamp, WriteResult,
                                   WriteScheme, WriteVerify, calibrate_pulses, get_scheme,
                                   register_scheme)
from pyaimc.device.var import VARProcess

__all__ = ["CellArray", "DeviceMixture", "DeviceModel", "shipped_model", "shipped_model_names",
           "IVModel", "MarginalTransform", "OneShot", "PulseCalibration", "ReadNoise1f",
           "RelaxationModel", "ResetRamp", "SCHEMES", "VARProcess", "WriteResult", "WriteScheme",
           "WriteVerify", "adc_quantize", "calibrate_pulses", "get_scheme", "register_scheme",
           "simulate_sweeps", "triangular_sweep"]

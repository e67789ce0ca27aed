"""Calibration data: the cycle-data container, loaders, validation and sweep feature extraction;
pulse records, write-verify logs and retention read-backs (:mod:`pyaimc.data.pulses`)."""

from pyaimc.data.container import CycleData, DataError, ExcludedCell, exclude_stuck_cells
from pyaimc.data.pulses import (PulseData, Readback, WriteLog, concat_pulses, held_out_cells,
                                load_ber_table, load_pulse_csv, load_pulses, load_radar_pulses,
                                load_readback, load_write_log, save_pulse_csv)
from pyaimc.data.loaders import (FORMATS, detect_format, load, load_long_csv, load_npz,
                                 load_radar, save_long_csv, validate_values)
from pyaimc.data.relaxation import (BakeData, ReadTraces, RelaxationData, RetentionExperiment,
                                    detect_relaxation_format, load_bake, load_relaxation,
                                    load_traces)

__all__ = ["CycleData", "DataError", "ExcludedCell", "exclude_stuck_cells", "FORMATS",
           "detect_format", "load", "load_long_csv", "load_npz", "load_radar", "save_long_csv",
           "validate_values", "BakeData", "ReadTraces", "RelaxationData", "RetentionExperiment",
           "detect_relaxation_format", "load_bake", "load_relaxation", "load_traces",
           "PulseData", "Readback", "WriteLog", "concat_pulses", "held_out_cells",
           "load_ber_table", "load_pulse_csv", "load_pulses", "load_radar_pulses", "load_readback",
           "load_write_log", "save_pulse_csv"]

"""The device study of arXiv 2211.16592: prediction performance vs the synapses' device properties.

Each row changes one property of a *base device* and trains and tests the network with it,
beside the ideal-synapse reference. The base device is the shipped RADAR pulse model's median
device (``variability=0``), read over a window with on/off ratio 10, continuous levels, no stuck
cells: the device model's SET/RESET response with its noise switched off, so that each sweep
shows one property. The fitted noise (``variability=1``) is its own sweep.
"""

from __future__ import annotations

import numpy as np

from pyaimc.apps.snn.synapses import IdealSynapses, ReRAMSynapses

BASE_DEVICE = {"on_off_ratio": 10.0, "levels": None, "variability": 0.0, "stuck_off": 0.0,
               "stuck_on": 0.0}

#: (parameter, value, device settings) of the study; ``device`` None: ideal synapses
STUDY = ([("ideal", "threshold", None), ("readout", "linear", None), ("base", "device", {})]
         + [("on_off_ratio", v, {"on_off_ratio": v}) for v in (2.0, 5.0, 30.0, 100.0)]
         + [("levels", v, {"levels": v}) for v in (2, 4, 8, 16, 64)]
         + [("variability", v, {"variability": v}) for v in (0.1, 0.25, 0.5, 1.0)]
         + [("variability_levels4", v, {"variability": v, "levels": 4}) for v in (0.5, 1.0)]
         + [("stuck_off", v, {"stuck_off": v}) for v in (0.1, 0.3, 0.5)]
         + [("stuck_on", v, {"stuck_on": v}) for v in (0.02, 0.05, 0.1)])


def synapse_factory(parameter: str, value, device: dict | None, model=None):
    """``(n, rng) -> synapse array`` for one row of the study."""
    if device is None:
        readout = "linear" if parameter == "readout" else "threshold"
        return lambda n, rng: IdealSynapses(n, rng, readout=readout)
    kw = dict(BASE_DEVICE, **device)
    if model is None:
        from pyaimc.device import DeviceModel

        model = DeviceModel.load("radar_pulse-4-24-20")
    return lambda n, rng: ReRAMSynapses(model, n, rng, **kw)


def run_row(parameter: str, value, device: dict | None, seeds, episodes: int = 40,
            model_path: str = "radar_pulse-4-24-20", params=None, sequences=None) -> dict:
    """Train and test one row for every seed; means and per-seed figures.

    Runs in the calling process (one NEST kernel per process: rows in parallel need
    processes).
    """
    from pyaimc.apps.snn.task import SEQUENCES_SHORT, run_sequences
    from pyaimc.device import DeviceModel

    model = None if device is None else DeviceModel.load(model_path)
    fac = synapse_factory(parameter, value, device, model)
    runs = [run_sequences(fac, sequences or SEQUENCES_SHORT, params=params, episodes=episodes,
                          seed=int(s)) for s in seeds]
    return combine(parameter, value, device, runs, seeds)


def combine(parameter: str, value, device: dict | None, runs: list[dict], seeds) -> dict:
    """One row of the study from the :func:`~.task.run_sequences` results of its seeds."""
    row = {"parameter": parameter, "value": value,
           "device": None if device is None else dict(BASE_DEVICE, **device)}
    for key in ("prediction_error", "false_positive", "false_negative", "prediction_error_all",
                "active_per_element", "pulses", "wall_s"):
        row[key] = float(np.mean([r[key] for r in runs]))
    row["prediction_error_per_seed"] = [r["prediction_error"] for r in runs]
    row["seeds"] = [int(s) for s in seeds]
    row["curve"] = np.mean([np.array(r["curve"])[:, 1] for r in runs], axis=0).tolist()
    row["curve_episodes"] = [int(e) for e in np.array(runs[0]["curve"])[:, 0]]
    row["n_synapses"] = runs[0]["n_synapses"]
    row["n_neurons"] = runs[0]["n_neurons"]
    row["sim_time_s"] = runs[0]["sim_time_s"]
    return row


def run_one(parameter: str, value, device: dict | None, seed: int, episodes: int = 40,
            model_path: str = "radar_pulse-4-24-20") -> dict:
    """One seed of one row: the :func:`~.task.run_sequences` result."""
    from pyaimc.apps.snn.task import SEQUENCES_SHORT, run_sequences
    from pyaimc.device import DeviceModel

    model = None if device is None else DeviceModel.load(model_path)
    return run_sequences(synapse_factory(parameter, value, device, model), SEQUENCES_SHORT,
                         episodes=episodes, seed=int(seed))

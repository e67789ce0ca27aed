"""The round trip: a device model -> a virtual chip -> a protocol -> ``pyaimc fit`` -> a model.

:func:`round_trip` measures new devices of a generating model on a virtual board with the
cycling protocol (sweeps), writes the features as ``pyaimc fit`` reads them, fits a model from
that file with :func:`pyaimc.device.fitting.fit_from_files` (what the command runs) and compares
a large sample of the refitted model with a large sample of the generating model using the
statistics of FIDELITY.md. As a baseline it fits the same devices' true per-cycle features
(read off the simulation, no instrument): the difference between the two is what the
instrument adds; what both share is the sampling of a finite set of devices and cycles.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pyaimc.apps.instruments.calibration import calibrate
from pyaimc.apps.instruments.frontend import FrontEndSpec
from pyaimc.apps.instruments.protocols import FEATURES, cycling, features_npz_arrays
from pyaimc.apps.instruments.virtual import VirtualBoard

#: thresholds of the round trip: those of the device-model fidelity checks
#: (tests/test_device_fidelity.py, synaptogen_ref)
THRESHOLDS = {"ks": 0.04, "acf_error": 0.03, "xcorr_error": 0.03, "d2d_ratio": 0.15,
              "within_ratio": 0.05}


def summarize(report: dict) -> dict:
    """The figures of a fidelity report that the thresholds judge, and whether they pass."""
    per = report["per_feature"]
    out = {"ks": {k: p["ks"] for k, p in per.items()},
           "acf_error": report["acf_error"], "xcorr_error": report["xcorr_error"],
           "d2d_ratio": {k: p["d2d_ratio"] for k, p in per.items()},
           "within_ratio": {k: p["within_ratio"] for k, p in per.items()}}
    t = THRESHOLDS
    out["passes"] = bool(max(out["ks"].values()) <= t["ks"]
                         and out["acf_error"] <= t["acf_error"]
                         and out["xcorr_error"] <= t["xcorr_error"]
                         and all(abs(v - 1) <= t["d2d_ratio"] for v in out["d2d_ratio"].values())
                         and all(abs(v - 1) <= t["within_ratio"]
                                 for v in out["within_ratio"].values()))
    return out


def measure_cycling(model, n_cells: int, n_cycles: int, rng: np.random.Generator,
                    calibrated: bool = True, spec: FrontEndSpec | None = None,
                    progress: bool = False) -> tuple[dict, dict, VirtualBoard]:
    """Cycle new devices of ``model`` on a virtual board (calibrated first, unless not).

    Returns
    -------
    measured : dict
        The cycling protocol's result (features, ``missing``, ``sweeps``).
    truth : dict
        Each cycle's true features (cells, cycles) as the simulation drew them.
    board : VirtualBoard
    """
    board = VirtualBoard.from_model(model, n_cells, rng, spec=spec)
    if calibrated:
        calibrate(board)
    truth = {k: np.empty((int(n_cells), int(n_cycles))) for k in FEATURES}

    def record(n):
        f = board.dut.cycle_features()
        for k in FEATURES:
            truth[k][:, n] = f[k]

    measured = cycling(board, n_cycles, sweep=True, progress=progress, on_cycle=record)
    return measured, truth, board


def round_trip(model, n_cells: int, n_cycles: int, rng: np.random.Generator,
               calibrated: bool = True, baseline: bool = True, n_sample: int = 2000,
               spec: FrontEndSpec | None = None, workdir: str | Path | None = None,
               progress: bool = False) -> dict:
    """Measure, refit and compare (see the module).

    Parameters
    ----------
    model : DeviceModel
        The generating model (with I-V sweeps: the protocol sweeps).
    n_cells, n_cycles : int
        Devices and cycles measured.
    rng : numpy.random.Generator
    calibrated : bool
        Calibrate the board before measuring.
    baseline : bool
        Also fit the same devices' true features.
    n_sample : int
        Devices of each model's sample for the comparison (cycles: ``n_cycles``).
    spec : FrontEndSpec, optional
    workdir : path, optional
        Where the measured ``.npz`` is written (a temporary folder by default).

    Returns
    -------
    dict
        ``measured`` (the refit of the measured data against the generating model, summarised
        with :func:`summarize`), ``baseline`` (the refit of the true features, when asked),
        ``measurement`` (median relative error of each measured feature against the truth, the
        board's time and counts), sizes.
    """
    from pyaimc.device.fidelity import fidelity_report
    from pyaimc.device.fitting import fit_from_files
    from pyaimc.io import write_npz

    r_board, r_fit, r_gen, r_ref, r_base, r_cmp = rng.spawn(6)
    measured, truth, board = measure_cycling(model, n_cells, n_cycles, r_board, calibrated,
                                             spec, progress)
    errors = {}
    for k in FEATURES:
        ok = np.isfinite(measured[k])
        rel = measured[k][ok] / truth[k][ok] - 1
        errors[k] = {"median_abs": float(np.median(np.abs(rel))), "mean": float(np.mean(rel)),
                     "missing": int((~ok).sum())}
    names = [n for n in FEATURES if n in model.feature_names_]
    gen = model.sample(int(n_sample), int(n_cycles), r_gen)
    gen = {k: gen[k] for k in names}

    def fit_and_compare(arrays, path, r):
        write_npz(path, **arrays)
        fitted, _, _ = fit_from_files(path, seed=0, rng=r)
        sample = fitted.sample(int(n_sample), int(n_cycles), r_cmp.spawn(1)[0])
        rep = fidelity_report({k: sample[k] for k in names}, gen, r_cmp.spawn(1)[0])
        return summarize(rep)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        out = {"n_cells": int(n_cells), "n_cycles": int(n_cycles), "n_sample": int(n_sample),
               "calibrated": bool(calibrated), "thresholds": THRESHOLDS,
               "measurement": {"relative_error": errors, "board_time_s": board.elapsed_s,
                               "counts": dict(board.counts),
                               "calibration": None if board.calibration is None
                               else board.calibration.to_dict()}}
        out["measured"] = fit_and_compare(features_npz_arrays(measured),
                                          folder / "measured.npz", r_fit)
        if baseline:
            out["baseline"] = fit_and_compare(features_npz_arrays(truth), folder / "truth.npz",
                                              r_base)
    board.close()
    return out

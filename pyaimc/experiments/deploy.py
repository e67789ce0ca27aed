"""Deployment on simulated hardware: program every tile from a noise model, run step by step.

:class:`~pyaimc.s4d.step.AnalogBackend` is a :class:`~pyaimc.s4d.step.MatvecBackend` whose
products run on :class:`~pyaimc.analog.tiles.AnalogTiles`: each matrix the recurrent step uses
(encoder, the S4D ``A``, ``B``, ``C`` tiles, GLU, decoder) is programmed once per backend (a draw
of the noise model's programming error per target conductance, stuck cells, then the transfer
model of the tile) and every product adds the DAC, read noise and ADC. One backend is one
programmed chip; :func:`deployed_accuracy` programs ``draws`` of them and reports the spread.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from pyaimc.analog.config import AnalogConfig
from pyaimc.experiments.config import noise_digest
from pyaimc.experiments.datasets import load_data
from pyaimc.experiments.runs import evaluate, load_run
from pyaimc.io import provenance, write_json
from pyaimc.noise.model import NoiseModel
from pyaimc.s4d.step import AnalogBackend, RecurrentClassifier

__all__ = ["AnalogBackend", "DEPLOY_SCHEMA", "accuracy_over_time", "deploy_run",
           "deployed_accuracy"]

DEPLOY_SCHEMA = "pyaimc.deploy/1"


def deployed_accuracy(model, x: torch.Tensor, y: torch.Tensor, noise_model: NoiseModel,
                      draws: int = 5, seed: int = 0, config: AnalogConfig | None = None,
                      batch_size: int = 500, progress: bool = False) -> dict:
    """Test accuracy of ``model`` in recurrent mode on ``draws`` programmed instances.

    Parameters
    ----------
    model : S4DClassifier
        The software model (quantized weights; hardware-aware or not).
    x, y : Tensor
        Inputs ``(n, L, d_input)`` and labels.
    noise_model : NoiseModel
    draws : int
        Programmed instances (chips); each gets its own ``SeedSequence`` child of ``seed``.
    seed : int
    config : AnalogConfig, optional
    batch_size : int
        Sequences per batch (read noise is drawn per batch, in order).

    Returns
    -------
    dict
        ``accuracy_mean``, ``accuracy_std`` (sample standard deviation over draws, 0 for one),
        ``accuracies``, ``losses``, ``draws``, ``seed``, ``analog`` (the config), ``seconds``.
    """
    from tqdm import tqdm

    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    config = config if config is not None else AnalogConfig()
    tic = time.perf_counter()
    accs, losses = [], []
    for child in tqdm(np.random.SeedSequence(seed).spawn(draws), disable=not progress,
                      desc="deploy", unit="draw"):
        backend = AnalogBackend(noise_model, config, np.random.default_rng(child))
        result = evaluate(RecurrentClassifier(model, backend), x, y, batch_size)
        accs.append(result["accuracy"])
        losses.append(result["loss"])
    return {"accuracy_mean": float(np.mean(accs)),
            "accuracy_std": float(np.std(accs, ddof=1)) if draws > 1 else 0.0,
            "accuracies": accs, "losses": losses, "draws": draws, "seed": seed,
            "programming_method": (config.programming_method
                                   or noise_model.programming.training_method),
            "analog": dataclasses.asdict(config), "seconds": time.perf_counter() - tic}


def accuracy_over_time(model, x: torch.Tensor, y: torch.Tensor, noise_model: NoiseModel,
                       times, draws: int = 5, seed: int = 0,
                       config: AnalogConfig | None = None, compensation=(False,),
                       batch_size: int = 500, progress: bool = False) -> list[dict]:
    """Deployed accuracy at each time after programming (``times``, s), with and/or without
    global drift compensation.

    Every time and compensation setting programs the same ``draws`` chips (same seed: the same
    programming error and, per cell, the same residual of the relaxation model), so the rows
    differ only by the time and the compensation.

    Returns
    -------
    list of dict
        One per (time, compensation): ``t_inference``, ``drift_compensation`` and the fields of
        :func:`deployed_accuracy`.
    """
    config = config if config is not None else AnalogConfig()
    rows = []
    for t in times:
        for comp in compensation:
            cfg = dataclasses.replace(config, t_inference=float(t), drift_compensation=bool(comp))
            res = deployed_accuracy(model, x, y, noise_model, draws, seed, cfg, batch_size,
                                    progress)
            rows.append({"t_inference": float(t), "drift_compensation": bool(comp), **res})
    return rows


def deploy_run(run_dir, noise_path, draws: int = 5, seed: int = 0, method: str | None = None,
               ngspice_step: bool = False, progress: bool = True, t_inference=(0.0,),
               drift_compensation: bool = False) -> dict:
    """Deploy a trained run on the hardware of ``noise_path``; write ``RUN_DIR/deploy.json``.

    Parameters
    ----------
    run_dir : path
        A finished or checkpointed training run.
    noise_path : path
        Noise model (``pyaimc.noise/1``) of the hardware; need not be the training one.
    draws, seed : int
        Programmed instances and their seed (see :func:`deployed_accuracy`).
    method : {"write_verify", "one_shot"}, optional
        Write scheme (default the noise model's training method).
    ngspice_step : bool
        Also run one recurrent step of one test sequence with every product's currents from
        ngspice netlists (:func:`pyaimc.experiments.spice_step.ngspice_step_check`).
    t_inference : float or sequence of float
        Times after programming, s (the noise model's retention part); ``hardware`` holds the
        first, ``over_time`` all (accuracy vs time).
    drift_compensation : bool
        Global drift compensation (:class:`~pyaimc.analog.config.AnalogConfig`).

    Returns
    -------
    dict
        The content of ``deploy.json`` (``"schema": "pyaimc.deploy/1"``).
    """
    run_dir = Path(run_dir)
    config, model = load_run(run_dir, software=True)
    noise_model = NoiseModel.load(noise_path)
    data = load_data(config.data)
    times = [float(t) for t in np.atleast_1d(np.asarray(t_inference, dtype=np.float64))]
    if not times or min(times) < 0:
        raise ValueError(f"t_inference must be times >= 0 s, got {t_inference}")
    analog = AnalogConfig(programming_method=method, drift_compensation=drift_compensation)
    software = evaluate(model, data.x_test, data.y_test)
    step = evaluate(RecurrentClassifier(model), data.x_test, data.y_test)
    over_time = accuracy_over_time(model, data.x_test, data.y_test, noise_model, times, draws,
                                   seed, analog, (drift_compensation,), progress=progress)
    hardware = {k: v for k, v in over_time[0].items()
                if k not in ("t_inference", "drift_compensation")}
    check = None
    if ngspice_step:
        from pyaimc.experiments.spice_step import ngspice_step_check

        check = ngspice_step_check(model, noise_model, data.x_test[:1], seed=seed)
    doc = {
        "schema": DEPLOY_SCHEMA,
        "run": str(run_dir),
        "noise": str(noise_path),
        "noise_sha256": noise_digest(noise_path),
        "trained_with_noise": config.noise,
        "test_sequences": len(data.y_test),
        "software": {"test_accuracy": software["accuracy"], "test_loss": software["loss"],
                     "test_accuracy_step_mode": step["accuracy"]},
        "hardware": hardware,
        "retention": noise_model.retention.kind,
        "over_time": [{k: r[k] for k in ("t_inference", "drift_compensation", "accuracy_mean",
                                         "accuracy_std", "accuracies")} for r in over_time],
        "ngspice_step": check,
        "provenance": provenance(source=str(run_dir), seed=seed),
    }
    write_json(run_dir / "deploy.json", doc)
    return doc

"""Deployment on simulated hardware: program every tile from a noise model, run step by step.

:class:`~pyaimc.s4d.step.AnalogBackend` is a :class:`~pyaimc.s4d.step.MatvecBackend` whose
products run on :class:`~pyaimc.analog.tiles.AnalogTiles`: each matrix the recurrent step uses
(encoder, the S4D ``A``, ``B``, ``C`` tiles, GLU, decoder) is programmed once per backend (a draw
of the noise model's programming error per target conductance, stuck cells, then the transfer
model of the tile) and every product adds the DAC, read noise and ADC. One backend is one
programmed chip; :func:`deployed_accuracy` programs ``draws`` of them and reports the spread.

``mapping="packed"`` maps the step as a chip would instead
(:class:`~pyaimc.s4d.packed.PackedBackend`: blocks packed onto physical tiles, ``A x + B u`` on
one read-out, static DAC and ADC ranges calibrated on training sequences, or per-vector scaling
with ``conversion="per-vector"``); ``engine="circuit"`` then takes every product's column
currents from the circuit solver on the packed tiles (:mod:`pyaimc.analog.circuit`) instead of
the behavioral transfer model.
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

__all__ = ["AnalogBackend", "CONVERSIONS", "DEPLOY_SCHEMA", "ENGINES", "MAPPINGS",
           "accuracy_over_time", "deploy_run", "deployed_accuracy"]

DEPLOY_SCHEMA = "pyaimc.deploy/1"
MAPPINGS = ("per-matrix", "packed")
ENGINES = ("behavioral", "circuit")
CONVERSIONS = ("static", "per-vector")
#: training sequences the static DAC and ADC ranges are calibrated on
CALIBRATION_SEQUENCES = 200


def _check_choices(mapping: str, engine: str, conversion: str) -> None:
    for key, value, choices in (("mapping", mapping, MAPPINGS), ("engine", engine, ENGINES),
                                ("conversion", conversion, CONVERSIONS)):
        if value not in choices:
            raise ValueError(f"{key} must be one of {choices}, got {value!r}")
    if mapping == "per-matrix" and (engine != "behavioral" or conversion != "per-vector"):
        raise ValueError("the per-matrix mapping runs the behavioral engine with per-vector "
                         "conversion only; use mapping='packed'")


def deployed_accuracy(model, x: torch.Tensor, y: torch.Tensor, noise_model: NoiseModel,
                      draws: int = 5, seed: int = 0, config: AnalogConfig | None = None,
                      batch_size: int = 500, progress: bool = False, *,
                      mapping: str = "per-matrix", engine: str = "behavioral",
                      conversion: str | None = None, x_calibration: torch.Tensor | None = None,
                      solver: str = "batched", digital=()) -> dict:
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
    mapping : {"per-matrix", "packed"}
        One matrix of a group per tile with per-vector scaling (the default, as before), or
        the packed layout (:class:`~pyaimc.s4d.packed.PackedBackend`).
    engine : {"behavioral", "circuit"}
        Column currents from the transfer model or from the circuit solver (packed only).
    conversion : {"static", "per-vector"}, optional
        Packed only: DAC and ADC ranges calibrated on ``x_calibration`` (default) or per-vector
        scaling of each tile's inputs.
    x_calibration : Tensor (n, L, d_input), optional
        Training sequences for the static calibration.
    solver : str
        Circuit solver (:class:`~pyaimc.analog.circuit.CircuitCurrents`).
    digital : iterable of str
        Per-matrix only: groups of matrices computed digitally instead of on tiles (``"A"``,
        ``"B"``, ``"C"``, ``"dense"``; see :class:`~pyaimc.s4d.step.AnalogBackend`).

    Returns
    -------
    dict
        ``accuracy_mean``, ``accuracy_std`` (sample standard deviation over draws, 0 for one),
        ``accuracies``, ``losses``, ``draws``, ``seed``, ``analog`` (the config), ``seconds``,
        ``mapping``, ``engine``, ``conversion``; packed: ``utilisation``, ``calibration``
        (ranges), ``cost`` (energy, latency, area per inference and a digital baseline,
        :func:`~pyaimc.s4d.packed.inference_cost`, with the first chip's crossbar power),
        circuit: ``circuit`` (solver statistics).
    """
    from tqdm import tqdm

    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if conversion is None:
        conversion = "per-vector" if mapping == "per-matrix" else "static"
    _check_choices(mapping, engine, conversion)
    digital = sorted(set(digital))
    if digital and mapping != "per-matrix":
        raise ValueError("digital parts need the per-matrix mapping")
    config = config if config is not None else AnalogConfig()
    tic = time.perf_counter()
    calibration = None
    if mapping == "packed" and conversion == "static":
        if x_calibration is None:
            raise ValueError("static conversion needs calibration sequences (x_calibration)")
        from pyaimc.s4d.packed import calibrate

        calibration = calibrate(model, x_calibration, noise_model, config)
    accs, losses, extra = [], [], {}
    for child in tqdm(np.random.SeedSequence(seed).spawn(draws), disable=not progress,
                      desc="deploy", unit="draw"):
        rng = np.random.default_rng(child)
        currents = None
        if mapping == "per-matrix":
            backend = AnalogBackend(noise_model, config, rng, digital)
        else:
            from pyaimc.analog.circuit import CircuitCurrents
            from pyaimc.s4d.packed import PackedBackend

            currents = CircuitCurrents(noise_model, solver) if engine == "circuit" else None
            backend = PackedBackend(noise_model, config, rng, calibration, currents)
        run = RecurrentClassifier(model, backend)
        track = mapping == "packed" and not accs       # crossbar power of the first chip
        if track and currents is None:
            for tiles in backend.products.values():
                tiles.power = [0.0, 0]
        result = evaluate(run, x, y, batch_size)
        if track:
            from pyaimc.s4d.packed import inference_cost

            acc_power = (currents.power if currents is not None else
                         {n: t.power for n, t in backend.products.items()})
            power = {n: s / max(1, c) for n, (s, c) in acc_power.items()}
            extra["cost"] = inference_cost(backend, x.shape[1], power)
            extra["cost"]["crossbar_energy_from"] = (
                "solved currents (circuit engine)" if currents is not None else
                "sum g v**2 of the programmed cells (behavioral, no wire loss)")
            if currents is None:
                for tiles in backend.products.values():
                    tiles.power = None
        accs.append(result["accuracy"])
        # a state that blew up gives infinite logits: no loss to report (JSON has no NaN)
        losses.append(result["loss"] if np.isfinite(result["loss"]) else None)
        if mapping == "packed":
            extra["utilisation"] = backend.utilisation()
            if engine == "circuit":
                extra.setdefault("circuit", []).append(dict(currents.stats, solver=solver))
    if calibration is not None:
        extra["calibration"] = calibration["summary"]
    return {"mapping": mapping, "engine": engine, "conversion": conversion, "digital": digital,
            **extra,
            "accuracy_mean": float(np.mean(accs)),
            "accuracy_std": float(np.std(accs, ddof=1)) if draws > 1 else 0.0,
            "accuracies": accs, "losses": losses, "draws": draws, "seed": seed,
            "programming_method": (config.programming_method
                                   or noise_model.programming.training_method),
            "analog": dataclasses.asdict(config), "seconds": time.perf_counter() - tic}


def accuracy_over_time(model, x: torch.Tensor, y: torch.Tensor, noise_model: NoiseModel,
                       times, draws: int = 5, seed: int = 0,
                       config: AnalogConfig | None = None, compensation=(False,),
                       batch_size: int = 500, progress: bool = False, **options) -> list[dict]:
    """Deployed accuracy at each time after programming (``times``, s), with and/or without
    global drift compensation (``options``: mapping, engine, conversion, ... of
    :func:`deployed_accuracy`).

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
                                    progress, **options)
            rows.append({"t_inference": float(t), "drift_compensation": bool(comp), **res})
    return rows


def deploy_run(run_dir, noise_path, draws: int = 5, seed: int = 0, method: str | None = None,
               ngspice_step: bool = False, progress: bool = True, t_inference=(0.0,),
               drift_compensation: bool = False, *,
               mapping: str = "per-matrix", engine: str = "behavioral",
               conversion: str | None = None, digital=None) -> dict:
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
    mapping, engine, conversion : str
        As for :func:`deployed_accuracy` (static calibration on the first
        ``CALIBRATION_SEQUENCES`` training sequences). With ``engine="circuit"`` the behavioral
        result of the same chips is computed too (``hardware_behavioral``).
    digital : iterable of str, optional
        Groups of matrices computed digitally (per-matrix mapping; e.g. ``("A",)``); default
        the run's own (its configuration's ``digital``, none for most runs).

    Returns
    -------
    dict
        The content of ``deploy.json`` (``"schema": "pyaimc.deploy/1"``).
    """
    run_dir = Path(run_dir)
    config, model = load_run(run_dir, software=True)
    noise_model = NoiseModel.load(noise_path)
    data = load_data(config.data)
    if digital is None:
        digital = config.digital if mapping == "per-matrix" else ()
    times = [float(t) for t in np.atleast_1d(np.asarray(t_inference, dtype=np.float64))]
    if not times or min(times) < 0:
        raise ValueError(f"t_inference must be times >= 0 s, got {t_inference}")
    analog = AnalogConfig(programming_method=method, drift_compensation=drift_compensation)
    software = evaluate(model, data.x_test, data.y_test)
    step = evaluate(RecurrentClassifier(model), data.x_test, data.y_test)
    options = dict(mapping=mapping, conversion=conversion,
                   x_calibration=data.x_train[:CALIBRATION_SEQUENCES], digital=digital)
    over_time = accuracy_over_time(model, data.x_test, data.y_test, noise_model, times, draws,
                                   seed, analog, (drift_compensation,), progress=progress,
                                   engine=engine, **options)
    hardware = {k: v for k, v in over_time[0].items()
                if k not in ("t_inference", "drift_compensation")}
    behavioral = None
    if engine == "circuit":
        behavioral = deployed_accuracy(model, data.x_test, data.y_test, noise_model, draws,
                                       seed, dataclasses.replace(
                                           analog, t_inference=times[0],
                                           drift_compensation=drift_compensation),
                                       progress=progress, **options)
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
        "hardware_behavioral": behavioral,
        "ngspice_step": check,
        "provenance": provenance(source=str(run_dir), seed=seed),
    }
    write_json(run_dir / "deploy.json", doc)
    return doc

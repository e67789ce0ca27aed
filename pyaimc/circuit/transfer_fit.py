"""Fit the crossbar transfer model to circuit simulations of programmed device arrays.

Monte-Carlo over device draws: each task draws a weight pattern (target conductances), programs a
fresh array of devices from the device model towards it (:mod:`pyaimc.circuit.programming`),
builds the 1R tile with the cells' polynomial I-V at their programmed states and wire resistance,
and simulates random input vectors. Tasks run through :mod:`pyaimc.circuit.montecarlo` (local
processes or Dask) with their own seeds, so results do not depend on the executor.

The fit (:func:`fit_parameters`) is a variable-projection least squares on the column currents in
ampere: for given ``(k_row, k_col)`` the four input non-linearity coefficients enter linearly and
are solved exactly; ``scipy.optimize.least_squares`` searches ``k``. A saturating read-out's
``i_sat`` is then fitted on all samples, the rest on the unsaturated ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import optimize

from pyaimc.circuit.cells import PolynomialCells
from pyaimc.circuit.crossbar import Crossbar, IdealReadout, TIAReadout
from pyaimc.circuit.montecarlo import Executor, get_executor, task_seeds
from pyaimc.circuit.programming import RampProgramming, conductance_window, program_cells
from pyaimc.circuit.engines import ENGINES, get_engine
from pyaimc.circuit.simulate import simulate
from pyaimc.circuit.transfer import TransferModel, column_wire_load, row_wire_load
from pyaimc.io import provenance

#: Per-pattern exponent range of the target distribution ``g_min + span * u**gamma``:
#: gamma = 1/3 gives mostly high conductances (dense weights), 3 mostly low (sparse weights).
GAMMA_RANGE = (1 / 3, 3.0)
#: Range of the fraction of non-zero inputs per input vector.
DENSITY_RANGE = (0.2, 1.0)
#: Description of the random inputs, recorded in the fit.
INPUT_DISTRIBUTION = (
    "per vector: with probability 1/2 signed (x = v_max * U(-1, 1)) else non-negative "
    "(x = v_max * U(0, 1)); each row non-zero with probability U(0.2, 1) drawn per vector")
TARGET_DISTRIBUTION = (
    "per pattern: targets g_min + (g_max - g_min) * u**gamma, u ~ U(0, 1) per cell, gamma "
    "log-uniform in [1/3, 3] per pattern (dense to sparse weights); programmed by write-verify")
NORMALISATION = (
    "relative RMS error: sqrt(mean((I - I_sim)**2)) / sqrt(mean(I_sim**2)) over all held-out "
    "patterns, input vectors and columns; I_sim the simulated read-out currents")


@dataclass(frozen=True)
class SaturatingTIA:
    """A transimpedance read-out whose output saturates at +-``v_swing``.

    The circuit sees :class:`~pyaimc.circuit.crossbar.TIAReadout` (input resistance
    ``R_f / (1 + A)``); the read-out reports ``-v_out / R_f`` with ``v_out`` clipped to the swing,
    so reported currents saturate at about ``v_swing / R_f``.

    Parameters
    ----------
    r_feedback : float
        Feedback resistance, ohm.
    gain : float
        Open-loop gain of the op-amp.
    v_swing : float
        Output swing (both signs), volt.
    """

    r_feedback: float = 10e3
    gain: float = 1e4
    v_swing: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.v_swing) and self.v_swing > 0):
            raise ValueError(f"TIA output swing must be > 0 V, got {self.v_swing}")
        self.tia()  # checks r_feedback and gain

    def tia(self) -> TIAReadout:
        """The amplifier as the circuit sees it."""
        return TIAReadout(r_feedback=self.r_feedback, gain=self.gain)

    def read(self, column_currents: np.ndarray) -> np.ndarray:
        """Reported currents (A) for column currents (A) into the read-out."""
        v_out = self.tia().output_voltage(column_currents)
        return -np.clip(v_out, -self.v_swing, self.v_swing) / self.r_feedback


@dataclass(frozen=True)
class TransferSetup:
    """Everything a Monte-Carlo pattern task needs besides its seed.

    Parameters
    ----------
    model : DeviceModel
        Device model the cells are drawn from.
    rows, cols : int
        Tile size.
    r_wire : float
        Row and column wire resistance per segment, ohm.
    v_max : float
        Largest input magnitude, volt.
    g_window : (float, float)
        ``(g_min, g_max)`` of the targets, siemens.
    inputs_per_pattern : int
        Random input vectors simulated per pattern.
    engine : str
        A registered engine (``fast``, ``ngspice``, ``vacask``).
    readout : SaturatingTIA or None
        Read-out; None for an ideal 0 V read-out.
    programming : RampProgramming
        Write-verify settings.
    timeout : float
        ngspice time limit per run, second.
    """

    model: Any
    rows: int
    cols: int
    r_wire: float
    v_max: float
    g_window: tuple[float, float]
    inputs_per_pattern: int = 32
    engine: str = "fast"
    readout: SaturatingTIA | None = None
    programming: RampProgramming = field(default_factory=RampProgramming)
    timeout: float = 600.0

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "inputs_per_pattern"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        if not (np.isfinite(self.r_wire) and self.r_wire >= 0):
            raise ValueError(f"r_wire must be a finite resistance >= 0 ohm, got {self.r_wire}")
        if not (np.isfinite(self.v_max) and self.v_max > 0):
            raise ValueError(f"v_max must be a positive voltage, got {self.v_max}")
        g_min, g_max = self.g_window
        if not 0 < g_min < g_max < np.inf:
            raise ValueError(f"conductance window needs 0 < g_min < g_max, got {self.g_window}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {tuple(ENGINES)}, got {self.engine!r}")
        if self.readout is not None and not isinstance(self.readout, SaturatingTIA):
            raise TypeError(f"readout must be a SaturatingTIA or None, got "
                            f"{type(self.readout).__name__}")

    def crossbar(self, coefficients: np.ndarray) -> Crossbar:
        """The tile for cells with polynomial I-V coefficients (rows, cols, K)."""
        readout = self.readout.tia() if self.readout is not None else IdealReadout()
        return Crossbar(PolynomialCells(coefficients), r_row=self.r_wire, r_col=self.r_wire,
                        readout=readout)

    def read(self, column_currents: np.ndarray) -> np.ndarray:
        """What the read-out reports for column currents, A."""
        return column_currents if self.readout is None else self.readout.read(column_currents)


@dataclass
class PatternResult:
    """One simulated weight pattern.

    Attributes
    ----------
    conductances : ndarray (rows, cols)
        Programmed read conductances, siemens.
    states : ndarray (rows, cols)
        I-V states of the cells.
    inputs : ndarray (batch, rows)
        Row voltages, volt.
    currents : ndarray (batch, cols)
        Read-out currents, ampere.
    ir_drop_loss : float
        Fraction of the column current lost in the wires with every row at ``v_max``.
    clipped_states : int
        Cells whose state lay beyond the HRS envelope and was clipped to it.
    """

    conductances: np.ndarray
    states: np.ndarray
    inputs: np.ndarray
    currents: np.ndarray
    ir_drop_loss: float
    clipped_states: int


def cell_coefficients(iv, states: np.ndarray) -> np.ndarray:
    """Polynomial I-V coefficients (..., K) of cells in states ``r``, A / V**k.

    ``a_k = L_k + r (H_k - L_k)`` from the model's envelopes (see :mod:`pyaimc.device.iv`).
    """
    states = np.asarray(states, dtype=np.float64)[..., None]
    return iv.lrs_coefs + states * (iv.hrs_coefs - iv.lrs_coefs)


def draw_targets(rng: np.random.Generator, shape: tuple[int, int], g_min: float,
                 g_max: float) -> np.ndarray:
    """Random target conductances of one weight pattern (see ``TARGET_DISTRIBUTION``), S."""
    gamma = np.exp(rng.uniform(np.log(GAMMA_RANGE[0]), np.log(GAMMA_RANGE[1])))
    return g_min + (g_max - g_min) * rng.random(shape) ** gamma


def draw_inputs(rng: np.random.Generator, n: int, rows: int, v_max: float) -> np.ndarray:
    """Random input vectors (see ``INPUT_DISTRIBUTION``), volt, shape (n, rows)."""
    signed = rng.random(n) < 0.5
    u = rng.random((n, rows))
    u = np.where(signed[:, None], 2.0 * u - 1.0, u)
    density = rng.uniform(*DENSITY_RANGE, n)
    return v_max * u * (rng.random((n, rows)) < density[:, None])


def simulate_pattern(task: tuple[TransferSetup, np.random.SeedSequence]) -> PatternResult:
    """Monte-Carlo task: draw, program and simulate one weight pattern.

    Parameters
    ----------
    task : (TransferSetup, SeedSequence)
        Settings and this task's seed.
    """
    setup, seed = task
    # A fresh copy: spawning children (the cell array does) advances a SeedSequence's counter,
    # and the task must give the same result however often it runs.
    rng = np.random.default_rng(np.random.SeedSequence(
        seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size))
    iv = setup.model.iv_
    shape = (setup.rows, setup.cols)
    targets = draw_targets(rng, shape, *setup.g_window)
    states = program_cells(setup.model, targets, rng, setup.programming)
    # Beyond the HRS envelope (r > 1) the envelope polynomials extrapolate to I-V curves with
    # negative slopes; the HRS envelope bounds the state instead.
    clipped = int(np.count_nonzero(states > 1.0))
    states = np.minimum(states, 1.0)
    coefficients = cell_coefficients(iv, states)
    conductances = 1.0 / iv.resistance_from_state(states)
    inputs = draw_inputs(rng, setup.inputs_per_pattern, setup.rows, setup.v_max)
    full = np.full((1, setup.rows), setup.v_max)
    external = "external" in get_engine(setup.engine).capabilities
    column = simulate(setup.crossbar(coefficients), np.vstack([inputs, full]), setup.engine,
                      **({"timeout": setup.timeout} if external else {}))
    no_wires = iv.current(setup.v_max, states).sum()
    return PatternResult(conductances=conductances, states=states, inputs=inputs,
                         currents=setup.read(column[:-1]),
                         ir_drop_loss=float(1.0 - column[-1].sum() / no_wires),
                         clipped_states=clipped)


def simulate_patterns(setup: TransferSetup, seeds, executor: Executor | None = None,
                      progress: bool = False, desc: str = "patterns") -> list[PatternResult]:
    """Run :func:`simulate_pattern` for each seed through ``executor`` (default: serial)."""
    tasks = [(setup, s) for s in seeds]
    executor = executor if executor is not None else get_executor(None, max_workers=1)
    results = executor.map(simulate_pattern, tasks)
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(tasks), desc=desc, unit="pattern")
    return list(results)


# ------------------------------------------------------------------------------ fitting
class _Design:
    """Per-pattern arrays of the least-squares problem, computed once."""

    def __init__(self, results: list[PatternResult], g_window, r_wire: float):
        g_min, g_max = g_window
        self.r_wire = r_wire
        self.parts = []
        for res in results:
            g = res.conductances
            v = res.inputs
            self.parts.append((g, row_wire_load(g), column_wire_load(g),
                               (g - g_min) / (g_max - g_min), v, v * v, v * v * v))
        self.measured = np.concatenate([res.currents.ravel() for res in results])

    def terms(self, k_row: float, k_col: float) -> tuple[np.ndarray, np.ndarray]:
        """Linear current ``x @ W1`` (n,) and the four non-linearity columns (n, 4)."""
        base, columns = [], []
        for g, row_load, col_load, gn, v, v2, v3 in self.parts:
            w1 = g / (1.0 + self.r_wire * (k_row * row_load + k_col * col_load))
            w1g = w1 * gn
            base.append((v @ w1).ravel())
            columns.append(np.stack([(v2 @ w1).ravel(), (v2 @ w1g).ravel(),
                                     (v3 @ w1).ravel(), (v3 @ w1g).ravel()], axis=1))
        return np.concatenate(base), np.concatenate(columns)


def _solve_nonlinearity(base, columns, measured, mask):
    coefs, *_ = np.linalg.lstsq(columns[mask], measured[mask] - base[mask], rcond=None)
    return coefs


def fit_parameters(results: list[PatternResult], setup: TransferSetup) -> dict:
    """Least-squares transfer parameters for simulated patterns.

    Returns
    -------
    dict
        ``k_row``, ``k_col``, ``c2`` (2,), ``c3`` (2,), ``i_sat`` (A or None) and
        ``i_sat_source`` (how ``i_sat`` was found).
    """
    design = _Design(results, setup.g_window, setup.r_wire)
    measured = design.measured
    mask = np.ones(measured.size, dtype=bool)
    rail = float(np.max(np.abs(measured)))
    saturated = False
    if setup.readout is not None:
        # Samples on the rail (several at exactly the largest magnitude) carry no information
        # about k and c.
        on_rail = np.abs(measured) >= rail * (1 - 1e-9)
        saturated = np.count_nonzero(on_rail) >= 2
        if saturated:
            mask = ~on_rail
        if mask.sum() < 8:
            raise ValueError("almost every simulated current is saturated: lower v_max or raise "
                             "the read-out swing")
    scale = np.sqrt(np.mean(measured[mask] ** 2)) or 1.0

    def residual(k):
        base, columns = design.terms(*k)
        coefs = _solve_nonlinearity(base, columns, measured, mask)
        return ((base + columns @ coefs - measured)[mask]) / scale

    if setup.r_wire > 0:
        fit = optimize.least_squares(residual, x0=[1.0, 1.0], bounds=([0.0, 0.0], [np.inf, np.inf]),
                                     x_scale=[1.0, 1.0], method="trf")
        k_row, k_col = (float(k) for k in fit.x)
    else:
        k_row = k_col = 1.0  # no wires: the IR-drop terms vanish whatever k is
    base, columns = design.terms(k_row, k_col)
    coefs = _solve_nonlinearity(base, columns, measured, mask)
    i_sat, i_sat_source = None, "ideal read-out"
    if saturated:
        unclipped = base + columns @ coefs
        best = optimize.minimize_scalar(
            lambda s: np.sum((np.clip(unclipped, -s, s) - measured) ** 2),
            bounds=(0.5 * rail, 2.0 * rail), method="bounded",
            options={"xatol": 1e-9 * rail})
        i_sat, i_sat_source = float(best.x), "fitted to the saturated samples"
    elif setup.readout is not None:
        # Nothing saturated in the simulations: the data say only i_sat > max |I|; use the rail.
        i_sat = setup.readout.v_swing / setup.readout.r_feedback
        i_sat_source = "no sample saturated: nominal v_swing / r_feedback"
    return {"k_row": k_row, "k_col": k_col, "c2": [float(coefs[0]), float(coefs[1])],
            "c3": [float(coefs[2]), float(coefs[3])], "i_sat": i_sat,
            "i_sat_source": i_sat_source}


def relative_rms(predicted: np.ndarray, measured: np.ndarray) -> float:
    """``sqrt(mean((predicted - measured)**2)) / sqrt(mean(measured**2))``."""
    predicted, measured = np.asarray(predicted), np.asarray(measured)
    return float(np.sqrt(np.mean((predicted - measured) ** 2) / np.mean(measured ** 2)))


def evaluate(transfer: TransferModel, results: list[PatternResult]) -> dict:
    """Errors of the transfer model and of the ideal product ``G.x`` on simulated patterns.

    Returns
    -------
    dict
        ``model_rel_rms_error``, ``ideal_rel_rms_error``, ``first_order_rel_rms_error`` (k = 1,
        no non-linearity, no saturation), ``model_max_abs_error_rel`` (largest absolute error over
        the RMS current) and ``rms_current`` (A).
    """
    first = replace(transfer, k_row=1.0, k_col=1.0, c2=(0.0, 0.0), c3=(0.0, 0.0), i_sat=None)
    measured = np.concatenate([r.currents.ravel() for r in results])
    model = np.concatenate([transfer.predict(r.conductances, r.inputs).ravel() for r in results])
    ideal = np.concatenate([(r.inputs @ r.conductances).ravel() for r in results])
    first_order = np.concatenate([first.predict(r.conductances, r.inputs).ravel()
                                  for r in results])
    rms = float(np.sqrt(np.mean(measured ** 2)))
    return {"model_rel_rms_error": relative_rms(model, measured),
            "ideal_rel_rms_error": relative_rms(ideal, measured),
            "first_order_rel_rms_error": relative_rms(first_order, measured),
            "model_max_abs_error_rel": float(np.max(np.abs(model - measured)) / rms),
            "rms_current": rms}


@dataclass
class TransferFit:
    """A fitted transfer model with the simulations it was fitted and tested on."""

    model: TransferModel
    setup: TransferSetup
    train: list[PatternResult]
    heldout: list[PatternResult]


def fit_transfer(model, rows: int, cols: int, r_wire: float, v_max: float = 0.2,
                 n_patterns: int = 16, rng: np.random.Generator | None = None, *,
                 n_heldout: int | None = None, inputs_per_pattern: int = 32,
                 engine: str = "fast", executor: Executor | None = None,
                 readout: SaturatingTIA | None = None,
                 g_window: tuple[float, float] | None = None,
                 programming: RampProgramming = RampProgramming(), timeout: float = 600.0,
                 progress: bool = False, source: str | None = None, seed: int | None = None,
                 return_simulations: bool = False):
    """Fit the transfer model of a ``rows x cols`` tile to Monte-Carlo circuit simulations.

    Parameters
    ----------
    model : DeviceModel
        Fitted device model: devices are drawn from it and programmed by write-verify; the cells
        of the simulated tile have its polynomial (non-linear) I-V at their programmed states.
    rows, cols : int
        Tile size.
    r_wire : float
        Wire resistance per row and column segment, ohm.
    v_max : float
        Largest input magnitude, volt.
    n_patterns : int
        Weight patterns (independent device draws) to fit on.
    rng : numpy.random.Generator
        Source of every seed (required).
    n_heldout : int, optional
        Further patterns, with their own inputs, for the held-out errors; default
        ``max(2, n_patterns // 2)``.
    inputs_per_pattern : int
        Random input vectors per pattern.
    engine : str
        A registered engine (``fast``, ``ngspice``, ``vacask``).
    executor : Executor, optional
        Where tasks run (:func:`pyaimc.circuit.montecarlo.get_executor`); default a local process
        pool, closed on return.
    readout : SaturatingTIA, optional
        A saturating TIA read-out (then ``i_sat`` is fitted); None: ideal read-out, ``i_sat``
        null.
    g_window : (float, float), optional
        Target window ``(g_min, g_max)`` in siemens; default
        :func:`~pyaimc.circuit.programming.conductance_window` of the model.
    programming : RampProgramming
        Write-verify settings.
    timeout : float
        ngspice limit per run, second.
    progress : bool
        tqdm progress bar over patterns.
    source, seed : optional
        Device model path and seed, for the provenance.
    return_simulations : bool
        Return a :class:`TransferFit` (model plus simulations) instead of the model alone.

    Returns
    -------
    TransferModel or TransferFit
        ``fit`` holds the held-out relative RMS errors of the model and of the ideal ``G.x``
        (normalisation in ``fit["normalisation"]``) and the simulation settings.
    """
    if rng is None or not isinstance(rng, np.random.Generator):
        raise TypeError("fit_transfer needs rng, a numpy.random.Generator")
    for name, value in (("n_patterns", n_patterns), ("n_heldout", n_heldout)):
        if value is not None and (int(value) != value or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value}")
    n_heldout = max(2, n_patterns // 2) if n_heldout is None else int(n_heldout)
    if g_window is None:
        g_window = conductance_window(model, rng)
    setup = TransferSetup(model=model, rows=rows, cols=cols, r_wire=float(r_wire),
                          v_max=float(v_max), g_window=tuple(float(g) for g in g_window),
                          inputs_per_pattern=inputs_per_pattern, engine=engine, readout=readout,
                          programming=programming, timeout=timeout)
    seeds = task_seeds(rng, n_patterns + n_heldout)
    own = executor is None
    executor = get_executor(None) if own else executor
    try:
        results = simulate_patterns(setup, seeds, executor, progress)
    finally:
        if own:
            executor.close()
    train, heldout = results[:n_patterns], results[n_patterns:]
    params = fit_parameters(train, setup)
    i_sat_source = params.pop("i_sat_source")
    transfer = TransferModel(rows=rows, cols=cols, r_wire=setup.r_wire, v_max=setup.v_max,
                             g_min=setup.g_window[0], g_max=setup.g_window[1], **params)
    held = evaluate(transfer, heldout)
    trained = evaluate(transfer, train)
    transfer.fit = {
        "heldout_rel_rms_error": held["model_rel_rms_error"],
        "heldout_ideal_rel_rms_error": held["ideal_rel_rms_error"],
        "heldout_first_order_rel_rms_error": held["first_order_rel_rms_error"],
        "heldout_max_abs_error_rel": held["model_max_abs_error_rel"],
        "heldout_rms_current": held["rms_current"],
        "train_rel_rms_error": trained["model_rel_rms_error"],
        "train_ideal_rel_rms_error": trained["ideal_rel_rms_error"],
        "normalisation": NORMALISATION,
        "n_patterns": n_patterns,
        "n_heldout_patterns": n_heldout,
        "inputs_per_pattern": inputs_per_pattern,
        "inputs": INPUT_DISTRIBUTION,
        "targets": TARGET_DISTRIBUTION,
        "ir_drop_loss_mean": float(np.mean([r.ir_drop_loss for r in results])),
        "ir_drop_loss_note": "fraction of column current lost in the wires, all rows at v_max",
        "clipped_states": int(sum(r.clipped_states for r in results)),
        "engine": engine,
        "cells": "1R, device polynomial I-V at the programmed state (a_k = L_k + r (H_k - L_k))",
        "programming": asdict(programming),
        "readout": None if readout is None else {"kind": "saturating TIA", **asdict(readout)},
        "i_sat_source": i_sat_source,
    }
    transfer.provenance = provenance(source=source or "DeviceModel given in memory", seed=seed)
    if return_simulations:
        return TransferFit(transfer, setup, train, heldout)
    return transfer

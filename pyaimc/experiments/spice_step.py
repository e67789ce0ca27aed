"""One recurrent step through circuit simulations (ngspice by default), against the behavioral
tiles.

The check: program a network on :class:`~pyaimc.s4d.step.AnalogBackend`, run a test sequence
for a few steps on it, then run one more step in which every matrix-vector product takes its
column currents from a circuit engine (:mod:`pyaimc.circuit.engines`; ngspice by default): for
each matrix of the group, each tile and each polarity a 1R crossbar
(:class:`~pyaimc.circuit.Crossbar`) is built with the programmed conductances at the tile's
place (rows ``0 .. in-1`` of a ``rows``-row tile, as :mod:`pyaimc.analog.tiles` maps it; the
empty cells are open), driven with the same DAC voltages, and solved by the engine. Plus and minus tiles are separate arrays of the same geometry (the
differential pair of the transfer model). Everything after the currents (digitisation,
scales, the digital periphery) is the behavioral backend's own code.

The circuit is the noise model's crossbar: its wire resistance per segment (``tile.r_wire``, 0
when not stated) and linear cells (``LinearCells``), or, when its transfer model has an input
non-linearity, cells with the I-V that model describes,
``I = G v (1 + c2(gn) v + c3(gn) v**2)`` (``PolynomialCells`` of
:meth:`~pyaimc.circuit.transfer.TransferModel.cell_coefficients`). The behavioral side is whatever
the analog config switches on (``transfer=False``: the ideal product against the same circuit).
Read noise and the ADC are off in the check (the same code on both sides, and rounding would
hide the comparison); the DAC is on.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import torch

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.tiles import AnalogTiles
from pyaimc.circuit import Crossbar, LinearCells, PolynomialCells
from pyaimc.circuit.engines import get_engine
from pyaimc.noise.model import NoiseModel
from pyaimc.s4d.step import AnalogBackend, MatvecBackend, RecurrentClassifier


def _rel_rms(a: np.ndarray, ref: np.ndarray) -> float:
    denom = float(np.sqrt(np.mean(ref ** 2)))
    return float(np.sqrt(np.mean((a - ref) ** 2))) / denom if denom > 0 else 0.0


def _rel_max(a: np.ndarray, ref: np.ndarray) -> float:
    denom = float(np.abs(ref).max())
    return float(np.abs(a - ref).max()) / denom if denom > 0 else 0.0


class CircuitBackend(MatvecBackend):
    """Column currents from a circuit engine for tiles already programmed in ``behavioral``.

    ``program`` only checks that the matrix is the one ``behavioral`` holds (no new draw);
    ``matvec`` returns the outputs from the circuit currents and records, per product, the
    currents of both for the same voltages.

    Parameters
    ----------
    behavioral : AnalogBackend
        Programmed; its read noise and ADC should be off for a clean comparison.
    timeout : float
        Per simulator run, s (engines that run a simulator process).
    engine : str
        A registered engine (default ``"ngspice"``).
    """

    def __init__(self, behavioral: AnalogBackend, timeout: float = 60.0,
                 engine: str = "ngspice"):
        self.behavioral = behavioral
        self.timeout = timeout
        self.engine = get_engine(engine)
        nm = behavioral.noise_model
        self.r_wire = float(nm.tile.r_wire or 0.0)
        tm = nm.transfer
        self.cell_law = tm if (tm is not None and tm.has_nonlinearity) else None
        self.records: dict[str, dict] = {}
        self.netlists = 0

    def program(self, name: str, weight: torch.Tensor) -> None:
        tiles = self.behavioral.tiles.get(name)
        if tiles is None or not torch.equal(tiles.weight, weight.detach().to(tiles.weight.dtype)):
            raise ValueError(f"{name}: not programmed in the behavioral backend")

    def matvec(self, name: str, x: torch.Tensor) -> torch.Tensor:
        tiles = self.behavioral.tiles[name]
        xd = x.to(tiles.weight.dtype)
        v, x_scale = tiles.voltages(xd)
        i_model = tiles.currents(v)
        i_spice = self.circuit_currents(tiles, v)
        self.records[name] = {"behavioral": i_model.numpy().copy(),
                              "ngspice": i_spice.numpy().copy()}
        return tiles.read_out(i_spice, v, x_scale, None).to(x.dtype)

    # ------------------------------------------------------------------ circuits
    def circuit_currents(self, tiles: AnalogTiles, v: torch.Tensor) -> torch.Tensor:
        """``I+ - I-`` (batch, G, n_row_tiles, O) from the engine for voltages ``v``."""
        options = {"timeout": self.timeout} if "external" in self.engine.capabilities else {}
        lay = tiles.layout
        g = lay.pad(torch.stack([tiles.g_pos, tiles.g_neg])).double().numpy()  # (2, G, O, I)
        vv = v.double().numpy()
        batch, groups = vv.shape[:2]
        out = np.zeros((2, batch, groups, lay.n_row_tiles, lay.n_col_tiles * lay.c))
        for b in range(batch):
            for gi in range(groups):
                for t in range(lay.n_row_tiles):
                    volts = vv[b, gi, t]
                    if not np.any(volts):
                        continue  # no input, no current: nothing to simulate
                    rows_v = np.zeros(lay.rows)
                    rows_v[:lay.r] = volts
                    for ct in range(lay.n_col_tiles):
                        cols = slice(ct * lay.c, (ct + 1) * lay.c)
                        for p in range(2):
                            block = np.zeros((lay.rows, lay.c))
                            block[:lay.r] = g[p, gi, cols, t * lay.r:(t + 1) * lay.r].T
                            xbar = Crossbar(self._cells(block), r_row=self.r_wire,
                                            r_col=self.r_wire)
                            out[p, b, gi, t, cols] = self.engine.column_currents(
                                xbar, rows_v, **options)[0]
                            self.netlists += 1
        tp = tiles.transfer
        if tp is not None and tp.i_sat is not None:
            out = np.clip(out, -tp.i_sat, tp.i_sat)  # the read-out's saturation, as modelled
        return torch.from_numpy(out[0] - out[1]).to(tiles.weight.dtype)

    def _cells(self, block: np.ndarray):
        if self.cell_law is None:
            return LinearCells(block)
        return PolynomialCells(self.cell_law.cell_coefficients(block))


#: the backend under its earlier name (ngspice is its default engine)
NgspiceBackend = CircuitBackend


def ngspice_step_check(model, noise_model: NoiseModel, x: torch.Tensor, step: int | None = None,
                       seed: int = 0, config: AnalogConfig | None = None,
                       timeout: float = 60.0) -> dict:
    """Compare one recurrent step on ngspice netlists with the behavioral backend.

    Parameters
    ----------
    model : S4DClassifier
        Software model (a float64 copy is used).
    noise_model : NoiseModel
    x : Tensor (1, L, d_input)
        One input sequence.
    step : int, optional
        The step compared (default the middle of the sequence: a non-zero state); the steps
        before it run on the behavioral backend.
    seed : int
        Programming draw.
    config : AnalogConfig, optional
        Read noise and ADC are switched off in it.

    Returns
    -------
    dict
        ``step``, ``r_wire`` (ohm), ``cells``, ``netlists`` run, ``ngspice_seconds``, per product
        the relative RMS and max current difference (``products``), their worst values
        (``current_rel_rms_max``, ``current_rel_max``), the step output's relative difference
        (``output_rel_max``, ``output_rel_rms``) and, with a transfer model, its stated held-out
        error (``transfer_heldout_rel_rms_error``).
    """
    if x.dim() != 3 or x.shape[0] != 1:
        raise ValueError(f"x must be one sequence (1, L, d_input), got shape {tuple(x.shape)}")
    model = copy.deepcopy(model).double().eval()
    x = x.double()
    step = x.shape[1] // 2 if step is None else int(step)
    if not 0 <= step < x.shape[1]:
        raise ValueError(f"step must lie in [0, {x.shape[1]}), got {step}")
    config = dataclasses.replace(config or AnalogConfig(), read_noise=False, adc=False)
    behavioral = AnalogBackend(noise_model, config, np.random.default_rng(seed))
    beh = RecurrentClassifier(model, behavioral)
    states = beh.initial_state(1, torch.float64)
    for k in range(step):
        _, states = beh.step(x[:, k], states)
    h_model, _ = beh.step(x[:, step], states)
    spice = NgspiceBackend(behavioral, timeout)
    tic = time.perf_counter()
    h_spice, _ = RecurrentClassifier(model, spice).step(x[:, step], states)
    seconds = time.perf_counter() - tic
    products = {name: {"rel_rms": _rel_rms(r["ngspice"], r["behavioral"]),
                       "rel_max": _rel_max(r["ngspice"], r["behavioral"])}
                for name, r in spice.records.items()}
    fit = noise_model.transfer.fit if noise_model.transfer is not None else {}
    return {
        "step": step,
        "r_wire": spice.r_wire,
        "cells": "linear" if spice.cell_law is None else "polynomial",
        "analog": dataclasses.asdict(config),
        "netlists": spice.netlists,
        "ngspice_seconds": seconds,
        "products": products,
        "current_rel_rms_max": max(p["rel_rms"] for p in products.values()),
        "current_rel_max": max(p["rel_max"] for p in products.values()),
        "output_rel_max": _rel_max(h_spice.numpy(), h_model.numpy()),
        "output_rel_rms": _rel_rms(h_spice.numpy(), h_model.numpy()),
        "transfer_heldout_rel_rms_error": fit.get("heldout_rel_rms_error"),
    }

"""Which part of a deployed S4D a device's programming error breaks.

Two diagnostics for a trained model and a noise model:

* :func:`part_sensitivity` deploys the model (per-matrix tiles, recurrent step mode) with the
  programming error on one group of matrices at a time (the others programmed exactly; read
  noise, DAC, ADC and the transfer model everywhere), so a loss can be traced to the dense
  layers or to the S4D's ``A``, ``B`` or ``C``;
* :func:`state_matrix_radius` programs the ``A`` matrices (2 x 2 rotation blocks, one per
  complex state) and compares the spectral radius of each programmed block with the trained
  one: a block above 1 grows its state by that factor every step, so over a sequence of ``L``
  steps a radius of ``1 + e`` amplifies by about ``exp(L e)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.tiles import AnalogTiles
from pyaimc.experiments.runs import evaluate
from pyaimc.noise.model import NoiseModel
from pyaimc.s4d.step import (PART_GROUPS, AnalogBackend, RecurrentClassifier, part_group,
                              ssm_tiles)

__all__ = ["PART_GROUPS", "part_group", "part_sensitivity", "state_matrix_radius"]

class _PartBackend(AnalogBackend):
    """Analog tiles with the programming error on the groups in ``noisy`` only."""

    def __init__(self, noise_model, config, rng, noisy: frozenset):
        super().__init__(noise_model, config, rng)
        self.noisy = noisy
        self.exact_config = dataclasses.replace(config, programming_noise=False)

    def program(self, name: str, weight: torch.Tensor) -> None:
        gen = torch.Generator().manual_seed(self._seed())
        cfg = self.config if part_group(name) in self.noisy else self.exact_config
        self.tiles[name] = AnalogTiles(weight, self.noise_model, cfg).program(gen)


def part_sensitivity(model, x: torch.Tensor, y: torch.Tensor, noise_model: NoiseModel,
                     seed: int = 0, config: AnalogConfig | None = None,
                     batch_size: int = 500) -> list[dict]:
    """Deployed accuracy with the programming error on chosen groups of matrices.

    Rows, in order: none (the error-free programming: what read noise, converters and wires
    alone cost), all groups, each group of :data:`PART_GROUPS` alone, and all but each group.
    Every row programs the same chip (same ``seed``: a matrix with the error on gets the same
    draw in every row).

    Parameters
    ----------
    model : S4DClassifier
        The software model.
    x, y : Tensor
        Test inputs ``(n, L, d_input)`` and labels.
    noise_model : NoiseModel
    seed : int
    config : AnalogConfig, optional
        The other non-idealities (default all).

    Returns
    -------
    list of dict
        ``{"noisy": [groups], "accuracy": float, "loss": float or None}`` per row.
    """
    config = config if config is not None else AnalogConfig()
    everything = frozenset(PART_GROUPS)
    settings = [frozenset(), everything] + [frozenset({g}) for g in PART_GROUPS] + \
        [everything - {g} for g in PART_GROUPS]
    rows = []
    for noisy in settings:
        backend = _PartBackend(noise_model, config, np.random.default_rng(seed), noisy)
        r = evaluate(RecurrentClassifier(model, backend), x, y, batch_size)
        rows.append({"noisy": [g for g in PART_GROUPS if g in noisy],
                     "accuracy": r["accuracy"],
                     "loss": r["loss"] if np.isfinite(r["loss"]) else None})
    return rows


@torch.no_grad()
def state_matrix_radius(model, noise_model: NoiseModel, seed: int = 0,
                        config: AnalogConfig | None = None) -> dict:
    """Spectral radius of every programmed ``A`` block against the trained one.

    Each layer's ``A`` (``(H N/2, 2, 2)`` real blocks, float64) is programmed as deployment
    programs it (:class:`~pyaimc.analog.tiles.AnalogTiles`, the configured write scheme); the
    programmed block is ``(g+ - g-) / (g_max - g_min)`` times its row scales (the weights the
    cells hold, before read noise and converters).

    Returns
    -------
    dict
        ``blocks``; ``trained_max`` and ``trained_above_0p99`` (fraction) of the trained radii;
        ``programmed_above_1`` (fraction), ``programmed_max``, ``programmed_p99`` and
        ``median_abs_change`` of the programmed ones.
    """
    config = config if config is not None else AnalogConfig()
    gen = torch.Generator().manual_seed(int(seed))
    trained, programmed = [], []
    for block in model.blocks:
        a = ssm_tiles(block.ssm)["A"].detach().double()
        tiles = AnalogTiles(a, noise_model, config).program(gen)
        held = (tiles.g_pos - tiles.g_neg) / tiles.span * tiles.scale.unsqueeze(-1)
        trained.append(torch.linalg.eigvals(a).abs().amax(-1))
        programmed.append(torch.linalg.eigvals(held).abs().amax(-1))
    r0, r = torch.cat(trained).numpy(), torch.cat(programmed).numpy()
    return {"blocks": int(r.size), "trained_max": float(r0.max()),
            "trained_above_0p99": float(np.mean(r0 > 0.99)),
            "programmed_above_1": float(np.mean(r > 1.0)), "programmed_max": float(r.max()),
            "programmed_p99": float(np.quantile(r, 0.99)),
            "median_abs_change": float(np.median(np.abs(r - r0)))}

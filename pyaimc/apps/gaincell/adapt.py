"""Putting a pre-trained model onto gain-cell attention: range mapping, calibration, fine-tuning.

A model trained with softmax attention cannot be copied onto the hardware as it is: the cells
hold voltages in ``[v_min, v_max]`` and read them through a non-linear transistor, queries are
pulse widths in ``[-1, 1]`` (or ``[0, 1]``), the charge-to-pulse converter clips, there is no
softmax normalisation, and the output ADC has a fixed range. The adaptation has three steps:

1. :func:`map_ranges` (the direct mapping, "before adaptation"): per head, the largest
   magnitude of ``q``, ``k`` and ``v`` on calibration text is mapped to full scale (the usual
   abs-max rule for a linear memory) and the output gain undoes the value scale, as if the
   cells were linear and the pulses were softmax weights.
2. :func:`calibrate`: layer by layer from the input, with the layers below already analog, the
   per-channel scales and shifts of ``q``, ``k`` and ``v`` (equivalently: scaled and shifted
   rows and biases of the pre-trained Q/K/V projection), the converter threshold and the output
   gain and bias are fitted so that the analog core's output matches the exact sliding-window
   softmax attention of the same ``q, k, v`` (mean squared error, Adam, write noise and chip
   variation drawn per step). This moves the values into the cells' useful, nearly linear
   range and makes the un-normalised hard-sigmoid read-out stand in for softmax.
3. Short fine-tuning of the whole model with the analog attention in the loop
   (:func:`pyaimc.apps.gaincell.train.train`).

The paper (Leroux et al.) also initialises layer by layer from a pre-trained model before a
short fine-tuning; the objective and the parameterisation here are this package's own.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from pyaimc.apps.gaincell.attention import GainCellCore, SoftmaxCore
from pyaimc.apps.gaincell.model import CharGPT


@torch.no_grad()
def attention_inputs(model: CharGPT, x: torch.Tensor, layer: int,
                     noise_seed: int | None = 0) -> tuple[torch.Tensor, ...]:
    """Per-head ``q, k, v`` ``(B, H, T, d)`` that layer ``layer`` computes for tokens ``x``.

    The layers below run as they are set (analog ones with write noise of ``noise_seed``).
    """
    gen = torch.Generator().manual_seed(noise_seed) if noise_seed is not None else None
    noise = model.sample_write_noise(x.shape[0], x.shape[1], gen) if gen is not None else None
    h = model.tok(x) + model.pos(torch.arange(x.shape[1]))
    for i, block in enumerate(model.blocks):
        if i == layer:
            return block.attn.heads(block.ln1(h))
        h = block(h, write_noise=None if noise is None else noise[i])
    raise IndexError(f"layer {layer} of a model with {len(model.blocks)} layers")


@torch.no_grad()
def map_core_ranges(core: GainCellCore, q, k, v) -> None:
    """Abs-max range mapping of one core from sample ``q, k, v`` ``(B, H, T, d)``."""
    m = core.device_model
    half = m.v_max - m.v_offset
    per = core.periphery

    def absmax(x):  # per head, over batch, time and channels
        return x.abs().amax(dim=(0, 2, 3)).clamp_min(1e-6)[:, None]

    ones = torch.ones(core.heads, core.dim)
    core.q_scale.copy_(ones / absmax(q))
    core.q_shift.zero_()
    core.k_scale.copy_(ones * half / absmax(k))
    core.k_shift.zero_()
    core.v_scale.copy_(ones * half / absmax(v))
    core.v_shift.zero_()
    core.theta.zero_()
    core.log_out_range.fill_(math.log(per.out_full_scale * core.window))
    # linear-cell picture: g(v) ~ (u - v_offset) / half, so A ~ sum phi * v * v_scale / half
    core.out_gain.copy_(per.out_full_scale * core.window * half / core.v_scale)
    core.out_bias.zero_()


def map_ranges(model: CharGPT, x: torch.Tensor) -> None:
    """:func:`map_core_ranges` for every analog layer, from the input upwards."""
    for layer, block in enumerate(model.blocks):
        core = block.attn.core
        if isinstance(core, GainCellCore):
            map_core_ranges(core, *attention_inputs(model, x, layer, noise_seed=None))


def reference_core(core: GainCellCore, reference: str):
    """The attention a core is calibrated against: ``"softmax"`` (exact sliding window) or
    ``"linear"`` (a frozen copy of the core as the intermediate linear-cell model)."""
    if reference == "softmax":
        return SoftmaxCore(core.window)
    if reference == "linear":
        twin = copy.deepcopy(core).requires_grad_(False)
        twin.linear = True
        return twin
    raise ValueError(f"reference must be 'softmax' or 'linear', got {reference!r}")


def core_error(core: GainCellCore, q, k, v, noise_seed: int | None = 0,
               reference: torch.nn.Module | None = None) -> float:
    """Mean squared error of the core's output against ``reference`` (default: exact
    sliding-window softmax attention), relative to the reference's mean square (0: perfect,
    1: as bad as outputting zeros)."""
    gen = torch.Generator().manual_seed(noise_seed) if noise_seed is not None else None
    reference = reference or SoftmaxCore(core.window)
    with torch.no_grad():
        ref = reference(q, k, v)
        noise = core.sample_write_noise(tuple(q.shape), gen) if gen is not None else None
        out = core(q, k, v, write_noise=noise)
        return float(((out - ref) ** 2).mean() / (ref ** 2).mean())


def calibrate_core(core: GainCellCore, q, k, v, steps: int = 200, lr: float = 0.02,
                   seed: int = 0, batch: int | None = None,
                   reference: torch.nn.Module | None = None) -> list[float]:
    """Fit one core's adaptation parameters to ``reference`` attention (default: exact
    sliding-window softmax attention).

    Parameters
    ----------
    core : GainCellCore
        Starts from its current parameters (e.g. :func:`map_core_ranges`).
    q, k, v : Tensor (B, H, T, d)
        Calibration inputs of this layer.
    steps, lr : int, float
        Adam iterations and step size.
    seed : int
        Write noise and chips drawn per step.
    batch : int, optional
        Sequences per step (default all).
    reference : torch.nn.Module, optional
        Maps ``q, k, v`` to the target outputs (:func:`reference_core`).

    Returns
    -------
    list of float
        Relative squared error per step.
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    reference = reference or SoftmaxCore(core.window)
    with torch.no_grad():
        ref = reference(q, k, v)
    # Adam moves each parameter by about ``lr`` per step in its own units: give every group a
    # rate in proportion to its natural magnitude (volts for the key/value shifts, the
    # saturation charge for the threshold, the reference's spread for the output bias)
    m, per = core.device_model, core.periphery
    half = m.v_max - m.v_offset

    def size(p, floor):
        return max(float(p.detach().abs().mean()), floor)

    groups = [(core.q_scale, size(core.q_scale, 1e-3)), (core.q_shift, 1.0),
              (core.k_scale, size(core.k_scale, 1e-3)), (core.k_shift, half),
              (core.v_scale, size(core.v_scale, 1e-3)), (core.v_shift, half),
              (core.theta, per.s_sat * core.dim), (core.log_out_range, 1.0),
              (core.out_gain, size(core.out_gain, 1e-3)),
              (core.out_bias, float(ref.std()))]
    opt = torch.optim.Adam([{"params": [p], "lr": lr * scale} for p, scale in groups])
    history = []
    n = q.shape[0]
    for _ in range(steps):
        if batch is not None and batch < n:
            pick = torch.randperm(n, generator=gen)[:batch]
            qb, kb, vb, rb = q[pick], k[pick], v[pick], ref[pick]
        else:
            qb, kb, vb, rb = q, k, v, ref
        core.resample_cells(rng)
        noise = core.sample_write_noise(tuple(qb.shape), gen)
        out = core(qb, kb, vb, write_noise=noise)
        loss = ((out - rb) ** 2).mean() / (rb ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return history


def calibrate(model: CharGPT, x: torch.Tensor, steps: int = 200, lr: float = 0.02,
              seed: int = 0, batch: int | None = 8, chip_seed: int = 0,
              reference: str = "softmax") -> dict:
    """Calibrate every analog layer in turn, from the input up (the layers below already
    calibrated and analog, as on the chip).

    ``reference``: ``"softmax"`` (exact sliding-window attention; from a softmax model) or
    ``"linear"`` (each core's own parameters on ideal linear cells, as they are when
    calibration starts; from a model fine-tuned on the intermediate ``"linear"`` attention).

    ``chip_seed``: the chips drawn during calibration are put back to the model's chip
    afterwards (layer ``l`` gets ``chip_seed + l``, as :meth:`CharGPT.set_attention`).

    Returns
    -------
    dict
        Per layer: relative error before and after (fixed chip, fixed noise) and the history.
    """
    report = {}
    for layer, block in enumerate(model.blocks):
        core = block.attn.core
        if not isinstance(core, GainCellCore):
            continue
        q, k, v = attention_inputs(model, x, layer)
        core.resample_cells(np.random.default_rng(chip_seed + layer))
        ref = reference_core(core, reference)
        before = core_error(core, q, k, v, reference=ref)
        history = calibrate_core(core, q, k, v, steps=steps, lr=lr, seed=seed + layer,
                                 batch=batch, reference=ref)
        core.resample_cells(np.random.default_rng(chip_seed + layer))
        report[layer] = {"error_before": before,
                         "error_after": core_error(core, q, k, v, reference=ref),
                         "history": history[:: max(1, steps // 20)]}
    return report

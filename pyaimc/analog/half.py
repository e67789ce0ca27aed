"""Tile products of training passes in bfloat16: the operands rounded to bf16 (8 significant
bits), the sums accumulated in float32 by oneDNN, the results rounded to bf16.

Why it is allowed: what the products model is analog. The row voltages leave an 8-bit DAC as
integer codes ``k v_max / (2**(bits-1) - 1)``; the products here take the codes themselves
(``|k| <= 256`` is exact in bf16) and fold the DAC step into the weights. The weights are
programmed conductances with a programming error of a few per cent of the window; bf16 rounds
them by at most 2**-9 (0.2 %) of their value. The column currents go to an 8-bit ADC; bf16
rounds them by at most 2**-9 of their value, a quarter of an ADC step at full scale, below the
read noise they get next. On a CPU with native bf16 products (AVX512-BF16 or AMX) a bf16 batched
product runs about four times faster than float32 (0.33 against 1.4 ms for the forward product
of a 1024 x 1024 layer, batch 64, one thread).

What runs in bf16: the forward product, the read-noise variance product and both gradient
products, in the layout ``(row_tiles, outputs, batch)`` (the weight layout ``(out, in)`` read as
row tiles without a copy: oneDNN multiplies a strided left operand at full speed, a strided
right one at a fifth). Everything else (programming error, read noise, ADC, scales, the
gradients' straight-through parts) stays in float32. Evaluation, :func:`~pyaimc.analog.program`
and deployment always compute in the layer's dtype; ``AnalogConfig.products`` chooses.
"""

from __future__ import annotations

import functools
import math

import numba as nb
import numpy as np
import torch

from pyaimc.noise import kernels
from pyaimc.noise.kernels import from_bf16, to_bf16

__all__ = ["bits", "cpu_has_native_bf16", "half_currents", "half_variance", "row_sums",
           "use_half"]


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (oneDNN's check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without oneDNN
        return False


def use_half(products: str, training: bool, noisy: bool, *tensors: torch.Tensor) -> bool:
    """Whether a pass multiplies in bf16: a training pass on the CPU with the compiled kernels
    (float32 tensors), and ``products`` ``"bfloat16"``, or ``"auto"`` on a CPU with native bf16
    products when the layer is ``noisy`` (programming or read noise: an exact layer stays
    exact)."""
    if not training or products == "float32":
        return False
    if not (kernels.applies(*tensors) and tensors[0].dtype == torch.float32):
        return False
    return products == "bfloat16" or (noisy and cpu_has_native_bf16())


def bits(t: torch.Tensor) -> np.ndarray:
    """The uint16 numpy view of a contiguous CPU bf16 tensor (what the kernels read and write)."""
    return t.view(torch.int16).numpy().view(np.uint16)


@nb.njit(cache=True, error_model="numpy")
def _weights_to_tiles(d, c, out):
    # out[t, o, r] = bf16(c d[o, t rows + r]); 0 on the padding rows of the last row tile.
    # Whole tiles in a loop of constant length (it vectorises; a min() bound did not).
    tiles, out_f, rows = out.shape
    in_f = d.shape[1]
    full = in_f // rows
    for t in range(full):
        base = t * rows
        for o in range(out_f):
            for r in range(rows):
                out[t, o, r] = to_bf16(d[o, base + r] * c)
    if full < tiles:
        base = full * rows
        for o in range(out_f):
            for r in range(rows):
                out[full, o, r] = to_bf16(d[o, base + r] * c) if base + r < in_f else 0


@nb.njit(cache=True, error_model="numpy")
def _untile(g, c, in_f, out):
    # out[o, t rows + r] = c g[t, o, r] (float32) for the rows that hold inputs
    tiles, out_f, rows = g.shape
    full = in_f // rows
    for t in range(full):
        base = t * rows
        for o in range(out_f):
            for r in range(rows):
                out[o, base + r] = from_bf16(g[t, o, r]) * c
    if full < tiles:
        base = full * rows
        for o in range(out_f):
            for r in range(in_f - base):
                out[o, base + r] = from_bf16(g[full, o, r]) * c


def weight_tiles(d: torch.Tensor, c: float, rows: int) -> torch.Tensor:
    """``c d`` (out, in) in bf16 as row tiles (row_tiles, out, rows), contiguous, zero-padded.

    Written in the tile layout: oneDNN multiplies a strided view of the weight layout at a
    fifth of the speed when the weights are new (every training step), 1.8 against 0.33 ms at
    1024 x 1024, batch 64."""
    out_f, in_f = d.shape
    out = torch.empty(math.ceil(in_f / rows), out_f, rows, dtype=torch.bfloat16)
    _weights_to_tiles(d.detach().numpy(), np.float32(c), bits(out))
    return out


def _row_voltages(v: torch.Tensor, scale: float, rows: int) -> torch.Tensor:
    """``scale v`` (batch, in) as bf16 row tiles (row_tiles, batch, rows), zero-padded."""
    batch, in_f = v.shape
    tr = math.ceil(in_f / rows)
    v = v * scale
    if tr * rows != in_f:
        v = torch.nn.functional.pad(v, (0, tr * rows - in_f))
    return v.view(batch, tr, rows).transpose(0, 1).to(torch.bfloat16).contiguous()


class _HalfProduct(torch.autograd.Function):
    """``I[t] = d_t @ v_t`` (row_tiles, out, batch) in bf16 for row voltages ``v`` (batch, in;
    V) on the DAC grid of step ``step`` (V) and weights ``d`` (out, in; S) times ``gain``.

    The products take the DAC codes ``v / step`` (exact in bf16) and the weights times
    ``gain * step``.
    """

    @staticmethod
    def forward(ctx, v, d, gain, step, rows):
        out_f, in_f = d.shape
        codes = _row_voltages(v.detach(), 1.0 / step, rows)          # (T, batch, rows)
        w16 = weight_tiles(d, gain * step, rows)                      # (T, out, rows)
        ctx.save_for_backward(codes, w16)
        ctx.c, ctx.inv_step, ctx.in_f = gain * step, 1.0 / step, in_f
        return torch.bmm(w16, codes.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        codes, w16 = ctx.saved_tensors
        grad = grad.contiguous()
        grad_v = grad_d = None
        if ctx.needs_input_grad[1]:
            g = torch.bmm(grad, codes)                                  # (T, out, rows)
            grad_d = torch.empty(w16.shape[1], ctx.in_f, dtype=torch.float32)
            _untile(bits(g), np.float32(ctx.c), ctx.in_f, grad_d.numpy())
        if ctx.needs_input_grad[0]:
            g = torch.bmm(grad.transpose(1, 2), w16)  # (T, batch, rows)
            batch = g.shape[1]
            grad_v = g.transpose(0, 1).reshape(batch, -1)[:, :ctx.in_f].float()
            # d I / d v = d * gain = (codes' weight) / step
            grad_v.mul_(ctx.inv_step)
        return grad_v, grad_d, None, None, None


def half_currents(v: torch.Tensor, d: torch.Tensor, gain: float, step: float,
                  rows: int) -> torch.Tensor:
    """Column-pair currents ``sum_i v_i gain d_oi`` per row tile (row_tiles, out, batch; A) in
    bf16; differentiable in ``v`` (batch, in; V, on a DAC grid of step ``step``) and ``d``
    (out, in)."""
    return _HalfProduct.apply(v, d, float(gain), float(step), int(rows))


@torch.no_grad()
def half_variance(weight: torch.Tensor, g: torch.Tensor, rows: int) -> torch.Tensor:
    """``sum_i weight_bi g_oi`` per row tile (row_tiles, out, batch) in bf16: the read-noise
    variance product of the per-volt weights ``weight`` (batch, in) and conductances ``g``
    (out, in)."""
    w = _row_voltages(weight, 1.0, rows)
    return torch.bmm(weight_tiles(g, 1.0, rows), w.transpose(1, 2))


def row_sums(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """Sums of ``weight`` (batch, in) over the rows of each row tile: (row_tiles, batch)."""
    batch, in_f = weight.shape
    tr = math.ceil(in_f / rows)
    if tr * rows != in_f:
        weight = torch.nn.functional.pad(weight, (0, tr * rows - in_f))
    return weight.view(batch, tr, rows).sum(dim=2).t().contiguous()

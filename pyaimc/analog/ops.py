"""Torch pieces of the tile core's products: differential pairs with straight-through gradients
and the row-tile layout of a weight matrix (the noise model's samplers and converters are in
:mod:`pyaimc.noise.torch_ops`)."""

from __future__ import annotations

import math

import torch

from pyaimc.noise import kernels
from pyaimc.noise.torch_ops import Scratch

__all__ = ["Scratch", "inputs_of", "pair_cells", "pair_difference", "row_tiles", "tile_product",
           "tiles_of"]


class _PairDifference(torch.autograd.Function):
    """Forward: ``(g+ - g-) / (g_max - g_min)`` of the pairs of ``w / scale`` (out, in),
    programmed by ``sampler`` (None: exactly); backward: as ``w / scale``."""

    @staticmethod
    def forward(ctx, w, scale, sampler, generator, scratch, pool, a_out):
        ctx.save_for_backward(scale)
        if sampler is None:
            return w / scale[:, None]
        if kernels.sampler_applies(sampler) and kernels.applies(w, scale):
            return kernels.pair_difference(w.contiguous(), scale.contiguous(), sampler,
                                           generator, pool, a_out)
        wn = torch.div(w, scale[:, None], out=scratch("wn", w))
        if a_out is not None:
            torch.abs(wn, out=a_out)
        return sampler.sample_difference(wn, generator, scratch, pool)

    @staticmethod
    def backward(ctx, grad):
        (scale,) = ctx.saved_tensors
        return grad / scale[:, None], None, None, None, None, None, None


class _PairCells(torch.autograd.Function):
    """Forward: ``g+``, ``g-`` (S; out, in) of the pairs of ``w / scale``, programmed by
    ``sampler`` (None: the targets); backward: as the targets
    ``g_min + span * max(+-w / scale, 0)``."""

    @staticmethod
    def forward(ctx, w, scale, sampler, generator, g_min, span, pool, a_out):
        ctx.save_for_backward(w, scale)
        ctx.span = span
        if (sampler is not None and kernels.sampler_applies(sampler)
                and kernels.applies(w, scale)):
            return kernels.pair_cells(w.contiguous(), scale.contiguous(), sampler, generator,
                                      pool, a_out)
        wn = w / scale[:, None]
        if a_out is not None:
            torch.abs(wn, out=a_out)
        if sampler is not None:
            return sampler.sample_cells(wn, generator, pool)
        return g_min + span * wn.clamp(min=0.0), g_min + span * (-wn).clamp(min=0.0)

    @staticmethod
    def backward(ctx, grad_pos, grad_neg):
        w, scale = ctx.saved_tensors  # w / scale has the sign of w (scale > 0)
        if kernels.applies(w, scale, grad_pos, grad_neg):
            return (kernels.pair_cells_grad(w.contiguous(), scale.contiguous(), ctx.span,
                                            grad_pos.contiguous(), grad_neg.contiguous()),
                    None, None, None, None, None, None, None)
        grad = torch.where(w > 0, grad_pos, torch.zeros_like(grad_pos))
        grad.sub_(torch.where(w < 0, grad_neg, torch.zeros_like(grad_neg)))
        return grad.mul_(ctx.span / scale[:, None]), None, None, None, None, None, None, None


def pair_difference(w, scale, sampler, generator, scratch: Scratch | None = None, pool=None,
                    a_out: torch.Tensor | None = None) -> torch.Tensor:
    """Pair difference over ``g_max - g_min`` (out, in; dimensionless) of the weights ``w``
    with output scales ``scale``, programmed by ``sampler`` (None: exactly); straight-through
    to ``w / scale``. Normals from ``pool`` (a ``NormalPool`` in a step) when given; with a
    sampler, ``|w / scale|`` is written into ``a_out`` when given. On CPU tensors the
    compiled kernel (:mod:`pyaimc.noise.kernels`) samples."""
    return _PairDifference.apply(w, scale, sampler, generator,
                                 scratch if scratch is not None else Scratch(), pool, a_out)


def pair_cells(w, scale, sampler, generator, g_min: float, span: float, pool=None,
               a_out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``g+``, ``g-`` (out, in; S) of the weights ``w``, programmed by ``sampler`` (None: the
    targets); straight-through to the targets. Normals from ``pool`` when given;
    ``|w / scale|`` is written into ``a_out`` when given."""
    return _PairCells.apply(w, scale, sampler, generator, g_min, span, pool, a_out)


def row_tiles(m: torch.Tensor, rows: int) -> torch.Tensor:
    """A weight-layout matrix (out, in) as row tiles (row_tiles, rows, out): the matrices a tile
    multiplies its row voltages with, zero-padded rows. A view (no copy) when ``rows`` divides
    ``in``."""
    out_f, in_f = m.shape
    tr = math.ceil(in_f / rows)
    if tr * rows != in_f:
        m = torch.nn.functional.pad(m, (0, tr * rows - in_f))
    return m.view(out_f, tr, rows).permute(1, 2, 0)


class _TileProduct(torch.autograd.Function):
    """``I[t] = v_t @ d_t`` per row tile, ``d`` in the weight layout; the weight gradient is
    written straight into the (out, in) layout (no transposing copy of the weight size)."""

    @staticmethod
    def forward(ctx, vt, d, rows):
        dt = row_tiles(d, rows)
        ctx.save_for_backward(vt, d)
        ctx.rows = rows
        return torch.bmm(vt, dt)

    @staticmethod
    def backward(ctx, grad):
        vt, d = ctx.saved_tensors
        rows = ctx.rows
        grad_v = torch.bmm(grad, row_tiles(d, rows).transpose(1, 2))
        out_f, in_f = d.shape
        grad_d = torch.empty(out_f, vt.shape[0] * rows, dtype=d.dtype, device=d.device)
        for t in range(vt.shape[0]):
            torch.mm(grad[t].t(), vt[t], out=grad_d[:, t * rows:(t + 1) * rows])
        return grad_v, grad_d[:, :in_f], None


def tile_product(vt: torch.Tensor, d: torch.Tensor, rows: int) -> torch.Tensor:
    """Per-tile products (row_tiles, batch, out) of row voltages ``vt`` (row_tiles, batch, rows)
    and the weight-layout matrix ``d`` (out, in)."""
    return _TileProduct.apply(vt, d, rows)


def tiles_of(m: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A crossbar-layout matrix (in, out) as tiles (row_tiles, rows, col_tiles * cols),
    zero-padded (a view when no padding is needed).

    Inputs run down the rows of a tile, outputs along its columns; column tiles sit side by side.
    """
    in_f, out_f = m.shape
    tr, tc = math.ceil(in_f / rows), math.ceil(out_f / cols)
    if (tr * rows, tc * cols) != (in_f, out_f):
        m = torch.nn.functional.pad(m, (0, tc * cols - out_f, 0, tr * rows - in_f))
    return m.reshape(tr, rows, tc * cols)


def inputs_of(v: torch.Tensor, rows: int) -> torch.Tensor:
    """Row voltages (batch, in) as (row_tiles, batch, rows), zero-padded; contiguous (a copy
    of the small input side: batched products with a strided left operand ran at half speed,
    measured 2.5 ms against 1.3 ms at 1024 x 1024, batch 64, one thread)."""
    batch, in_f = v.shape
    tr = math.ceil(in_f / rows)
    if tr * rows != in_f:
        v = torch.nn.functional.pad(v, (0, tr * rows - in_f))
    return v.reshape(batch, tr, rows).transpose(0, 1).contiguous()

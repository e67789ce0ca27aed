"""The crossbar transfer model (docs/transfer_format.md, ``pyaimc.transfer/1``) in torch.

The same formula as :class:`~pyaimc.circuit.transfer.TransferModel` (the reference, numpy), for
the analog layers: ``TransferModel.to_torch()`` gives a :class:`TorchTransfer`.

For a tile of ``N`` rows x ``M`` columns with conductances ``G`` (S) and row voltages ``x`` (V)::

    I_j = clip( sum_i W1_ij x_i + W2_ij x_i**2 + W3_ij x_i**3, -i_sat, +i_sat )
    W1  = G / (1 + r * (k_row * (G @ Mmin) + k_col * (Nmin @ G)))
    W2  = W1 * (c2_0 + c2_1 * gn),   W3 = W1 * (c3_0 + c3_1 * gn)
    gn  = (G - g_min) / (g_max - g_min)
    Mmin[l, j] = min(l, j),   Nmin[i, l] = min(N-1-i, N-1-l)

Everything broadcasts over leading tile dimensions, so all tiles of a layer go through one
batched matmul; gradients flow through every term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pyaimc.circuit import wire_kernels


@dataclass(frozen=True)
class TorchTransfer:
    """Constants of one transfer model, for the torch functions of this module.

    Attributes
    ----------
    rows, cols : int
        Tile size.
    r_wire : float
        Wire resistance per segment, ohm.
    k_row, k_col : float
        IR-drop factors (1: first-order correction).
    c2, c3 : tuple of 2 floats
        Input non-linearity, per V and per V**2, as ``c_0 + c_1 * gn``.
    i_sat : float or None
        Read-out saturation, A.
    g_min, g_max : float
        Conductances that define ``gn``, S.
    v_max : float
        Input range the document was fitted for, V.
    """

    rows: int
    cols: int
    r_wire: float
    k_row: float
    k_col: float
    c2: tuple
    c3: tuple
    i_sat: float | None
    g_min: float
    g_max: float
    v_max: float

    @classmethod
    def from_model(cls, m) -> "TorchTransfer":
        """From a :class:`~pyaimc.circuit.transfer.TransferModel` (or its document)."""
        from pyaimc.circuit.transfer import as_transfer

        m = as_transfer(m)
        return cls(m.rows, m.cols, m.r_wire, m.k_row, m.k_col, tuple(m.c2), tuple(m.c3),
                   m.i_sat, m.g_min, m.g_max, m.v_max)

    @property
    def has_ir_drop(self) -> bool:
        return self.r_wire * max(abs(self.k_row), abs(self.k_col)) > 0

    @property
    def has_nonlinearity(self) -> bool:
        return any(c != 0 for c in self.c2 + self.c3)

    @property
    def is_linear(self) -> bool:
        """True when the tile computes ``x @ G`` exactly (saturation aside)."""
        return not (self.has_ir_drop or self.has_nonlinearity)


def min_matrices(rows: int, cols: int, dtype=torch.float32, device=None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``Mmin`` (cols x cols) and ``Nmin`` (rows x rows) of the IR-drop term."""
    j = torch.arange(cols, device=device)
    i = torch.arange(rows, device=device)
    mmin = torch.minimum(j[:, None], j[None, :]).to(dtype)
    back = rows - 1 - i
    nmin = torch.minimum(back[:, None], back[None, :]).to(dtype)
    return mmin, nmin


def effective_conductance(g: torch.Tensor, p: TorchTransfer, mmin: torch.Tensor,
                          nmin: torch.Tensor) -> torch.Tensor:
    """``W1`` of tiles ``g`` laid out as (..., rows, cols) or (..., rows, tiles * cols).

    The second layout (column tiles side by side, as the layer keeps them) works because the
    row term acts on each ``cols``-wide block alone: it is applied to a (..., cols) view.
    """
    if not p.has_ir_drop:
        return g
    row_term = (g.reshape(-1, p.cols) @ mmin).reshape(g.shape)
    col_term = torch.matmul(nmin, g)
    return g / (1.0 + p.r_wire * (p.k_row * row_term + p.k_col * col_term))


def tile_weights(g: torch.Tensor, p: TorchTransfer, mmin: torch.Tensor, nmin: torch.Tensor
                 ) -> list[torch.Tensor]:
    """``[W1]`` or ``[W1, W2, W3]`` (when the document has an input non-linearity)."""
    w1 = effective_conductance(g, p, mmin, nmin)
    if not p.has_nonlinearity:
        return [w1]
    gn = (g - p.g_min) / (p.g_max - p.g_min)
    return [w1, w1 * (p.c2[0] + p.c2[1] * gn), w1 * (p.c3[0] + p.c3[1] * gn)]


def _wire_sums_wl(g: torch.Tensor, p: TorchTransfer, mmin: torch.Tensor, nmin: torch.Tensor,
                  ) -> torch.Tensor:
    """``k_row * (G @ Mmin) + k_col * (Nmin @ G)`` of tiles in the weight layout (S).

    The operator is self-adjoint (``Mmin`` and ``Nmin`` are symmetric), which the backward of
    :class:`_IRDrop` uses.
    """
    *lead, out_f, in_f = g.shape
    row = torch.matmul(mmin, g.reshape(*lead, out_f // p.cols, p.cols, in_f)).reshape(g.shape)
    col = torch.matmul(g.reshape(*lead, out_f, in_f // p.rows, p.rows), nmin).reshape(g.shape)
    return row.mul_(p.k_row).add_(col, alpha=p.k_col)


class _IRDrop(torch.autograd.Function):
    """``W1 = G / D``, ``D = 1 + r * S(G)`` with ``S`` the wire sums; by hand, because autograd
    spends twice the elementwise passes: ``dL/dG = U / D - r * S(U * W1 / D)``."""

    @staticmethod
    def forward(ctx, g, p, mmin, nmin):
        denom = _wire_sums_wl(g, p, mmin, nmin).mul_(p.r_wire).add_(1.0)
        w1 = g / denom
        ctx.save_for_backward(w1, denom, mmin, nmin)
        ctx.p = p
        return w1

    @staticmethod
    def backward(ctx, grad):
        w1, denom, mmin, nmin = ctx.saved_tensors
        p = ctx.p
        t = grad / denom
        back = _wire_sums_wl(t * w1, p, mmin, nmin)
        return t.sub_(back, alpha=p.r_wire), None, None, None


def effective_conductance_wl(g: torch.Tensor, p: TorchTransfer, mmin: torch.Tensor,
                             nmin: torch.Tensor) -> torch.Tensor:
    """``W1`` of tiles held in the weight layout (..., out, in), ``out`` a multiple of
    ``p.cols`` and ``in`` of ``p.rows`` (column tiles of outputs, row tiles of inputs).

    The same formula as :func:`effective_conductance` on the transposed tiles: the row-wire
    term mixes a cell with the cells of its tile row (here: outputs of one column tile), the
    column-wire term with those of its tile column (inputs of one row tile). ``Mmin`` and
    ``Nmin`` are symmetric, so they need no transposing.
    """
    if not p.has_ir_drop:
        return g
    lines = _kernel_lines(p, mmin, nmin, g)
    if lines is not None:
        # the wire sums as prefix sums, O(cells) (pyaimc.circuit.wire_kernels)
        return wire_kernels.ir_drop(g, p.r_wire, p.k_row, p.k_col, p.cols, p.rows, lines)
    return _IRDrop.apply(g, p, mmin, nmin)


#: A stack of matrices smaller than this (cells each) takes the torch products: the kernel runs
#: once per matrix from Python, which for the S4D's thousands of 2 x 2 blocks a step cost ten
#: times the batched products (bench_hwtrain with wires: 390 against 89 ms a step).
KERNEL_MIN_CELLS = 4096


def _kernel_lines(p: TorchTransfer, mmin, nmin, *g) -> tuple | None:
    """``Nmin``'s diagonal when the compiled wire-sum kernel can take ``g`` (CPU float32/64,
    whole tiles, wire-sum matrices of the form it computes; a single matrix, or a stack of
    matrices of at least :data:`KERNEL_MIN_CELLS` cells), else None."""
    if not (wire_kernels.applies(*g) and g[0].shape[-2] % p.cols == 0
            and g[0].shape[-1] % p.rows == 0 and tuple(mmin.shape) == (p.cols, p.cols)
            and tuple(nmin.shape) == (p.rows, p.rows)):
        return None
    if g[0].dim() > 2 and g[0].shape[-2] * g[0].shape[-1] < KERNEL_MIN_CELLS:
        return None
    return wire_kernels.lines_of(mmin, nmin)


def effective_difference_wl(g_pos: torch.Tensor, g_neg: torch.Tensor, p: TorchTransfer,
                            mmin: torch.Tensor, nmin: torch.Tensor) -> torch.Tensor:
    """``W1(g_pos) - W1(g_neg)`` of tiles in the weight layout (see
    :func:`effective_conductance_wl`): the weights of a linear read-out of a differential pair.

    On CPU float tensors the compiled kernel writes the difference in one pass per polarity
    (neither ``W1`` nor its gradient is held in memory).
    """
    lines = _kernel_lines(p, mmin, nmin, g_pos, g_neg) if p.has_ir_drop and g_pos.dim() == 2 \
        else None
    if lines is not None:
        return wire_kernels.ir_drop_difference(g_pos, g_neg, p.r_wire, p.k_row, p.k_col,
                                               p.cols, p.rows, lines)
    return effective_conductance_wl(g_pos, p, mmin, nmin) - \
        effective_conductance_wl(g_neg, p, mmin, nmin)


def tile_weights_wl(g: torch.Tensor, p: TorchTransfer, mmin: torch.Tensor,
                    nmin: torch.Tensor) -> list[torch.Tensor]:
    """``[W1]`` or ``[W1, W2, W3]`` of tiles in the weight layout (see
    :func:`effective_conductance_wl`)."""
    w1 = effective_conductance_wl(g, p, mmin, nmin)
    if not p.has_nonlinearity:
        return [w1]
    gn = (g - p.g_min) / (p.g_max - p.g_min)
    return [w1, w1 * (p.c2[0] + p.c2[1] * gn), w1 * (p.c3[0] + p.c3[1] * gn)]


def input_powers(x: torch.Tensor, n_terms: int) -> torch.Tensor:
    """``[x, x**2, x**3]`` (first ``n_terms``) side by side along the last axis."""
    if n_terms == 1:
        return x
    return torch.cat([x, x * x, x * x * x][:n_terms], dim=-1)


def tile_currents(x: torch.Tensor, g: torch.Tensor, p: TorchTransfer | None) -> torch.Tensor:
    """Column currents (A) of tiles ``g`` (..., rows, cols) for row voltages ``x``
    (..., batch, rows).

    ``p`` None is the ideal crossbar ``x @ g``.
    """
    if p is None:
        return x @ g
    mmin, nmin = min_matrices(g.shape[-2], g.shape[-1], g.dtype, g.device)
    weights = tile_weights(g, p, mmin, nmin)
    i = input_powers(x, len(weights)) @ torch.cat(weights, dim=-2)
    return i if p.i_sat is None else i.clamp(-p.i_sat, p.i_sat)

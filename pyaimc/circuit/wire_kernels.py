"""Compiled (numba) kernel of the first-order IR-drop term of the transfer model, for tiles in
the weight layout (:func:`pyaimc.circuit.transfer_torch.effective_conductance_wl`).

The wire sums ``S(G) = k_row * (Mmin G) + k_col * (G Nmin)`` with ``Mmin[l, j] = min(l, j)``
(the cells of a tile row, here the outputs of one column tile) and ``Nmin[i, l] =
min(R-1-i, R-1-l)`` (the cells of a tile column, here the inputs of one row tile) are, as
products, twice the work of the tile product itself per polarity, forward and again backward
(about eight product-equivalents a training step). They are prefix sums in disguise::

    sum_l min(j, l) g_l      = sum_{k=1..j} S_k,       S_k = sum_{l >= k} g_l
    sum_l min(a_i, a_l) g_l  = sum_{k=i..R-2} P_k,     P_k = sum_{l <= k} g_l,  a_i = R-1-i

so here they take one pass over the cells (``O(cells)`` instead of ``O(cells * tile side)``),
fused with ``D = 1 + r S(G)`` and ``W1 = G / D``; the backward ``dL/dG = U / D - r S(U W1 / D)``
(``S`` is self-adjoint) is the same pass. The row sums run down the outputs with running
vectors over the inputs (contiguous), the column sums along each row.

``error_model="numpy"``: a division does not test for zero (``D >= 1`` here), which would
keep the compiler from vectorising it (2.1 -> 1.0 ms a polarity at 1024 x 1024).

Serial (one core) like :mod:`pyaimc.noise.kernels`; CPU float32/float64 tensors only; the torch
products (:mod:`pyaimc.circuit.transfer_torch`) stay the reference and the path elsewhere.
``PYAIMC_KERNELS=0`` in the environment (or :data:`ENABLED` False) switches the kernel off.
"""

from __future__ import annotations

import os
import weakref

import numba as nb
import numpy as np
import torch

from pyaimc.circuit.bf16 import bits, row_to_tiles

#: Use the kernel where it applies (``PYAIMC_KERNELS=0`` in the environment: never).
ENABLED = os.environ.get("PYAIMC_KERNELS", "1") != "0"


def applies(*tensors: torch.Tensor) -> bool:
    """Whether the kernel can take these tensors: on the CPU, float32 or float64 (one dtype),
    and :data:`ENABLED`."""
    if not ENABLED:
        return False
    dtype = tensors[0].dtype
    return dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" and t.dtype == dtype for t in tensors)


@nb.njit(cache=True, inline="always")
def _scan1(x, i0, rows, back, part, qtot, t, zero):
    """Column term of the row tile starting at ``i0`` but for its constant (see
    :func:`_ir_drop`): ``part = (R-1-j) P_j - Q_j`` and ``qtot[t] = Q_R``."""
    p = q = zero
    for i in range(i0, i0 + rows):
        v, bj = x[i], back[i]
        p += v
        q += v * bj
        part[i] = bj * p - q
    qtot[t] = q


@nb.njit(cache=True, inline="always")
def _scan4(x, i0, rows, back, part, qtot, t, zero):
    """:func:`_scan1` of four row tiles at once (eight independent running sums in registers:
    one alone is bound by the latency of its additions)."""
    p0 = p1 = p2 = p3 = q0 = q1 = q2 = q3 = zero
    for j in range(rows):
        i = i0 + j
        v0, v1, v2, v3 = x[i], x[i + rows], x[i + 2 * rows], x[i + 3 * rows]
        bj = back[i]
        p0 += v0
        p1 += v1
        p2 += v2
        p3 += v3
        q0 += v0 * bj
        q1 += v1 * bj
        q2 += v2 * bj
        q3 += v3 * bj
        part[i], part[i + rows] = bj * p0 - q0, bj * p1 - q1
        part[i + 2 * rows], part[i + 3 * rows] = bj * p2 - q2, bj * p3 - q3
    qtot[t], qtot[t + 1], qtot[t + 2], qtot[t + 3] = q0, q1, q2, q3


@nb.njit(cache=True, error_model="numpy")
def _row_update(racc, tot, pre, x):
    """Row term of the next output: ``racc += S_o`` (block total less the earlier outputs),
    then ``pre += x``. The vectorised passes are small functions of few arrays each: the
    compiler vectorises a loop only when it can check that its arrays do not overlap."""
    for i in range(racc.size):
        racc[i] += tot[i] - pre[i]
    for i in range(racc.size):
        pre[i] += x[i]


@nb.njit(cache=True, error_model="numpy")
def _add_const(v, c):
    """``v += c`` (the column term's constant ``Q_R`` of a row tile)."""
    for i in range(v.size):
        v[i] += c


@nb.njit(cache=True, error_model="numpy")
def _back_out(ar, iv, racc, part, sign, r, kr, kc, y):
    """Backward result of one output: ``sign * a / D - r S``."""
    for i in range(y.size):
        y[i] = sign * ar[i] * iv[i] - r * (kr * racc[i] + kc * part[i])


@nb.njit(cache=True, error_model="numpy")
def _fwd_out(gr, racc, part, one, r, kr, kc, sign, iv, y):
    """Forward result of one output: ``1 / D`` and ``sign * G / D``."""
    for i in range(y.size):
        iv[i] = one / (one + r * (kr * racc[i] + kc * part[i]))
    for i in range(y.size):
        y[i] = sign * gr[i] * iv[i]


@nb.njit(cache=True, error_model="numpy")
def _fwd_acc(gr, racc, part, one, r, kr, kc, sign, iv, y):
    """:func:`_fwd_out` added to ``y`` (the second polarity of a pair difference)."""
    for i in range(y.size):
        iv[i] = one / (one + r * (kr * racc[i] + kc * part[i]))
    for i in range(y.size):
        y[i] += sign * gr[i] * iv[i]


@nb.njit(cache=True, error_model="numpy")
def _ir_drop(src, g, a, inv, one, r, kr, kc, sign, cols, rows, lines, backward, accumulate,
             out, c16, tiles_out):
    """One pass of ``S`` over ``src`` (O, I), block by block of ``cols`` outputs.

    Forward (``src`` is ``G`` = ``g``): writes ``inv = 1 / D = 1 / (1 + r S(G))`` and
    ``out = sign * G / D`` (added to ``out`` when ``accumulate``). Backward: the source is
    ``sign * a * G / D**2`` (:func:`_scaled_row`, made here a block of outputs at a time;
    ``src`` is not read), ``a`` the gradient in ``W1`` before the sign; writes
    ``out = sign * a / D - r S(source)``.

    Row term of output ``o`` (position ``l`` in its column tile): ``sum_{k=1..l} S_k``,
    ``S_k`` the block total less the outputs before ``k``: a running vector over the inputs.
    Column term of input ``i`` (position ``j`` in its row tile), with ``Nmin[j, l] =
    min(a_j, a_l)`` for a non-increasing ``a`` (``lines``; ``R-1-j`` for a whole tile):
    ``a_j P_j + Q_R - Q_j`` with ``P_j = sum_{l<=j} x_l`` and ``Q_j = sum_{l<=j} a_l x_l``: a
    scan along the row.
    """
    n_out, n_in = src.shape
    zero = one - one  # constants in the arrays' dtype (a float64 literal widens float32)
    # backward: the source rows of a block of outputs, made in the first pass over the block
    block = np.empty((cols if backward else 0, n_in), dtype=src.dtype)
    tot = np.empty(n_in, dtype=src.dtype)
    pre = np.empty(n_in, dtype=src.dtype)
    racc = np.empty(n_in, dtype=src.dtype)
    part = np.empty(n_in, dtype=src.dtype)
    n_tiles = n_in // rows
    qs = np.empty(n_tiles, dtype=src.dtype)
    back = np.empty(n_in, dtype=src.dtype)  # a_j of input i
    for i in range(n_in):
        back[i] = lines[i % rows]
    for o0 in range(0, n_out, cols):
        tot[:] = zero
        for o in range(o0, o0 + cols):
            if backward:
                x = block[o - o0]
                _scaled_row(a[o], g[o], inv[o], sign, x)
            else:
                x = src[o]
            for i in range(n_in):
                tot[i] += x[i]
        pre[:] = zero
        for i in range(n_in):
            racc[i] = -tot[i]  # the first output's update below brings it to 0
        for o in range(o0, o0 + cols):
            x = block[o - o0] if backward else src[o]
            y, iv = out[o], inv[o]
            # the scans of four row tiles run interleaved (a single running sum is bound by
            # the latency of its additions)
            t = 0
            while t < n_tiles:
                if t + 4 <= n_tiles:
                    _scan4(x, t * rows, rows, back, part, qs, t, zero)
                    t += 4
                else:
                    _scan1(x, t * rows, rows, back, part, qs, t, zero)
                    t += 1
            # then vectorised passes: the row term and its running sums, the result
            _row_update(racc, tot, pre, x)
            for t in range(n_tiles):
                _add_const(part[t * rows:(t + 1) * rows], qs[t])
            if backward:
                _back_out(a[o], iv, racc, part, sign, r, kr, kc, y)
            elif accumulate:
                _fwd_acc(g[o], racc, part, one, r, kr, kc, sign, iv, y)
            else:
                _fwd_out(g[o], racc, part, one, r, kr, kc, sign, iv, y)
            if tiles_out.shape[0] > 0:
                row_to_tiles(y, c16, o, tiles_out)


@nb.njit(cache=True, error_model="numpy")
def _scaled_row(a, g, inv, sign, u):
    """``u = sign * a * G / D**2`` of one row (``inv`` is ``1 / D``): the gradient in ``W1``
    times ``W1 / D``, the source of the backward's wire sums."""
    for i in range(u.size):
        u[i] = sign * a[i] * g[i] * inv[i] * inv[i]


def _scalar(x, dtype):
    return np.float32(x) if dtype == np.float32 else np.float64(x)


_NO_TILES = np.zeros((0, 0, 0), np.uint16)


def _forward(gs, consts, out):
    """Run the forward kernel on each of ``gs`` (O, I), writing ``out[k]``; returns the
    ``1 / D`` of each."""
    one, r, k_row, k_col, cols, rows, lines = _constants_in(consts, gs[0].numpy().dtype)
    invs = []
    for g, target in zip(gs, out):
        inv = torch.empty_like(g)
        _ir_drop(g.numpy(), g.numpy(), g.numpy(), inv.numpy(), one, r, k_row, k_col, one,
                 cols, rows, lines, False, False, target.numpy(), one, _NO_TILES)
        invs.append(inv)
    return invs


def _backward(a, g, inv, consts):
    """Gradient in ``G`` (O, I) given the gradient ``a`` in ``W1``."""
    one, r, k_row, k_col, cols, rows, lines = _constants_in(consts, g.numpy().dtype)
    out = torch.empty_like(g)
    _ir_drop(out.numpy(), g.numpy(), a.numpy(), inv.numpy(), one, r, k_row, k_col, one, cols,
             rows, lines, True, False, out.numpy(), one, _NO_TILES)
    return out


@nb.njit(cache=True)
def _pair_forward(gp, gn, inv_p, inv_n, one, r, kr, kc, cols, rows, lines, out, c16, tiles):
    # both polarities in one call: W1(g+) into out, then out -= W1(g-) (and the tiles)
    _ir_drop(gp, gp, gp, inv_p, one, r, kr, kc, one, cols, rows, lines, False, False, out,
             c16, tiles)
    _ir_drop(gn, gn, gn, inv_n, one, r, kr, kc, -one, cols, rows, lines, False, True, out,
             c16, tiles)


@nb.njit(cache=True)
def _pair_backward(grad, gp, gn, inv_p, inv_n, one, r, kr, kc, cols, rows, lines, out_p,
                   out_n, no_tiles):
    _ir_drop(out_p, gp, grad, inv_p, one, r, kr, kc, one, cols, rows, lines, True, False,
             out_p, one, no_tiles)
    _ir_drop(out_n, gn, grad, inv_n, one, r, kr, kc, -one, cols, rows, lines, True, False,
             out_n, one, no_tiles)


def _constants_in(consts, dtype):
    r, k_row, k_col, cols, rows, lines = consts
    return (_scalar(1, dtype), _scalar(r, dtype), _scalar(k_row, dtype), _scalar(k_col, dtype),
            cols, rows, np.asarray(lines, dtype=dtype))


def difference_into(g_pos: torch.Tensor, g_neg: torch.Tensor, consts, out: torch.Tensor,
                    tiles: torch.Tensor | None = None, c: float = 1.0, invs=None):
    """``W1(g_pos) - W1(g_neg)`` (O, I) written into ``out`` without autograd, and ``c`` times
    it into ``tiles`` (bf16 row tiles (row_tiles, O, rows), float32 cells) when given; returns
    each polarity's ``1 / D`` (what :func:`difference_grad` needs; into the pair ``invs``
    when given). ``consts`` as :func:`constants` gives them. One compiled call for both
    polarities."""
    dtype = g_pos.numpy().dtype
    invs = (torch.empty_like(g_pos), torch.empty_like(g_neg)) if invs is None else invs
    _pair_forward(g_pos.numpy(), g_neg.numpy(), invs[0].numpy(), invs[1].numpy(),
                  *_constants_in(consts, dtype), out.numpy(), _scalar(c, dtype),
                  bits(tiles) if tiles is not None
                  else _NO_TILES)
    return list(invs)


def difference_grad(grad: torch.Tensor, g_pos, g_neg, inv_pos, inv_neg, consts, out=None):
    """The gradients in ``g_pos`` and ``g_neg`` of :func:`difference_into` given the
    gradient ``grad`` in the difference (into the pair of tensors ``out`` when given). One
    compiled call for both polarities."""
    dtype = g_pos.numpy().dtype
    out = (torch.empty_like(g_pos), torch.empty_like(g_neg)) if out is None else out
    _pair_backward(grad.contiguous().numpy(), g_pos.numpy(), g_neg.numpy(), inv_pos.numpy(),
                   inv_neg.numpy(), *_constants_in(consts, dtype), out[0].numpy(),
                   out[1].numpy(), _NO_TILES)
    return out[0], out[1]


class IRDrop(torch.autograd.Function):
    """``W1 = G / (1 + r S(G))`` of tiles in the weight layout (B, O, I) by the kernel; the
    backward is the same kernel on ``U W1 / D``."""

    @staticmethod
    def forward(ctx, g, consts):
        g = g.detach().contiguous()
        w1 = torch.empty_like(g)
        invs = _forward(list(g), consts, w1)
        ctx.save_for_backward(g, *invs)
        ctx.consts = consts
        return w1

    @staticmethod
    def backward(ctx, grad):
        g, *invs = ctx.saved_tensors
        grad = grad.contiguous()
        return torch.stack([_backward(grad[k], g[k], invs[k], ctx.consts)
                            for k in range(g.shape[0])]), None


class IRDropDifference(torch.autograd.Function):
    """``W1(G+) - W1(G-)`` (O, I) by the kernel, without the intermediate ``W1`` of each
    polarity (and its gradient) in memory."""

    @staticmethod
    def forward(ctx, g_pos, g_neg, consts):
        g_pos, g_neg = g_pos.detach().contiguous(), g_neg.detach().contiguous()
        d = torch.empty_like(g_pos)
        invs = difference_into(g_pos, g_neg, consts, d)
        ctx.save_for_backward(g_pos, g_neg, *invs)
        ctx.consts = consts
        return d

    @staticmethod
    def backward(ctx, grad):
        g_pos, g_neg, inv_pos, inv_neg = ctx.saved_tensors
        return (*difference_grad(grad.contiguous(), g_pos, g_neg, inv_pos, inv_neg,
                                 ctx.consts), None)


def constants(r: float, k_row: float, k_col: float, cols: int, rows: int,
              lines: tuple | None = None) -> tuple:
    """The kernel's constants: wire resistance (ohm), the row and column coefficients, the
    tile's columns and rows, the column-line lengths (None: a whole tile)."""
    lines = tuple(float(v) for v in (range(rows - 1, -1, -1) if lines is None else lines))
    if len(lines) != rows:
        raise ValueError(f"wire_kernels: {len(lines)} column-line lengths for {rows} rows")
    return float(r), float(k_row), float(k_col), int(cols), int(rows), lines


_LINES: dict = {}


def lines_of(mmin: torch.Tensor, nmin: torch.Tensor) -> tuple | None:
    """The kernel's ``lines`` for the wire-sum matrices ``mmin`` (cols x cols) and ``nmin``
    (rows x rows) when they have the form it computes (``Mmin[l, j] = min(l, j)``,
    ``Nmin[i, l] = min(a_i, a_l)`` with ``a`` non-increasing: a whole tile, or the used rows of
    a larger one), else None (the caller then takes the torch products).

    Remembered per pair of matrix objects while they live and are not changed in place
    (weak references and version counters): a layer asks at every step, and the checks cost
    as much as the kernel at 256 x 256."""
    key = (id(mmin), id(nmin))
    hit = _LINES.get(key)
    if hit is not None and hit[0]() is mmin and hit[1]() is nmin and \
            hit[2] == (mmin._version, nmin._version):
        return hit[3]
    if len(_LINES) > 256:
        _LINES.clear()
    lines = _lines_of(mmin, nmin)
    _LINES[key] = (weakref.ref(mmin), weakref.ref(nmin), (mmin._version, nmin._version), lines)
    return lines


def _lines_of(mmin: torch.Tensor, nmin: torch.Tensor) -> tuple | None:
    cols, rows = mmin.shape[0], nmin.shape[0]
    j = torch.arange(cols, dtype=mmin.dtype, device=mmin.device)
    if not torch.equal(mmin, torch.minimum(j[:, None], j[None, :])):
        return None
    a = torch.diagonal(nmin)
    if rows > 1 and bool((a[1:] > a[:-1]).any()):
        return None
    if not torch.equal(nmin, torch.minimum(a[:, None], a[None, :])):
        return None
    return tuple(a.tolist())


def ir_drop(g: torch.Tensor, r: float, k_row: float, k_col: float, cols: int, rows: int,
            lines=None) -> torch.Tensor:
    """``W1`` (S) of conductances ``g`` (..., out, in; S) in the weight layout, ``out`` a
    multiple of ``cols`` and ``in`` of ``rows``: ``g / (1 + r (k_row Mmin g + k_col g Nmin))``
    per tile (see the module docstring; ``lines``: ``Nmin``'s diagonal, default
    ``rows-1, ..., 0``, see :func:`lines_of`). Differentiable in ``g``."""
    shape = g.shape
    w1 = IRDrop.apply(g.reshape(-1, *shape[-2:]), constants(r, k_row, k_col, cols, rows, lines))
    return w1.reshape(shape)


def ir_drop_difference(g_pos: torch.Tensor, g_neg: torch.Tensor, r: float, k_row: float,
                       k_col: float, cols: int, rows: int, lines=None) -> torch.Tensor:
    """``ir_drop(g_pos) - ir_drop(g_neg)`` (out, in; S) in one pass per polarity (see
    :func:`ir_drop`). Differentiable in both."""
    return IRDropDifference.apply(g_pos, g_neg,
                                  constants(r, k_row, k_col, cols, rows, lines))

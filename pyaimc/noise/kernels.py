"""Compiled (numba) CPU kernels of the noise model's training-time parts.

A training step of an analog layer used to run some forty torch passes over weight-sized and
current-sized tensors: the programming-error chain (``|w| / s``, the mean and standard deviation
polynomials, the pair's summed variance, the normal, the combination) and, on the read-out side,
the read noise (variance, square root, normal, sum), the ADC (clip, divide, round, multiply, the
mask its gradient needs) and the sum over row tiles. Here each side is one pass that keeps a row
in cache: :func:`pair_difference` and :func:`pair_cells` (programming), :func:`read_out` (read
noise, ADC and the tile sum).

The normals come from a 1-D array, by rows (a row of weights, or the outputs of one tile and
sample): a :class:`~pyaimc.noise.torch_ops.NormalPool` (row ``r`` of a take of ``R`` rows of
``L`` is ``sign * z[start + ((m r) mod R) L + j]``, circularly) or fresh draws (in order). The kernels run on CPU tensors of float32 or float64 (their numpy
views); the layers use the torch code elsewhere (CUDA, other dtypes), and
:data:`ENABLED` switches them off (the tests compare both).

The kernels are serial (one core): a training step's matrix products take torch's threads.
"""

from __future__ import annotations

import functools
import math
import os

import numba as nb
import numpy as np
import torch

from pyaimc.circuit.bf16 import bits, from_bf16, row_to_tiles, to_bf16

#: Use the kernels where they apply (``PYAIMC_KERNELS=0`` in the environment: never).
ENABLED = os.environ.get("PYAIMC_KERNELS", "1") != "0"


def applies(*tensors: torch.Tensor) -> bool:
    """Whether the kernels can take these tensors: on the CPU, float32 or float64 (one dtype),
    and :data:`ENABLED`."""
    if not ENABLED:
        return False
    dtype = tensors[0].dtype
    return dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" and t.dtype == dtype for t in tensors)


def normals(rows: int, length: int, like: torch.Tensor, generator: torch.Generator,
            pool=None, parts: int = 1):
    """``(z, start, m, sign)``: where a kernel reads ``rows`` rows of ``length`` normals (see
    :func:`_window`): from ``pool`` when given, else freshly drawn (``m`` 1, in order)."""
    if pool is not None:
        start, m = pool.take(rows, length, generator, like)
        return pool.array(), start, m, pool.sign
    z = torch.empty(rows * length, dtype=like.dtype, device=like.device)
    # drawn in ``parts`` pieces, as the torch path draws them (the same stream)
    for piece in z.view(parts, -1):
        piece.normal_(generator=generator)
    return z.numpy(), 0, 1, 1.0


_NO_NORMALS = (np.zeros(1, np.float64), 0, 1, 1.0)
_NO_SCALE = np.zeros(0, np.float32)


@nb.njit(cache=True)
def _window(z, start, m, rows, length, r, tmp):
    """The normals of row ``r``: ``z[(start + ((m r) mod rows) length + j) mod z.size]`` (a
    view when it does not wrap, else copied into ``tmp``)."""
    s = (start + ((r * m) % rows) * length) % z.size
    if s + length <= z.size:
        return z[s:s + length]
    for j in range(length):
        tmp[j] = z[(s + j) % z.size]
    return tmp


#: polynomials of up to this many coefficients are evaluated with a loop of this fixed
#: length (zeros above their degree), which the compiler unrolls and vectorises across the
#: row: 4 against 13 us for a quartic on 256 x 256 weights (a pass per coefficient)
HORNER_WIDTH = 8


@functools.lru_cache(maxsize=256)
def _coeffs(c: tuple, dtype) -> np.ndarray:
    # cached per (coefficients, dtype): a sampler's polynomials are tuples that do not change.
    # Padded with zeros to HORNER_WIDTH (0 * a + c is c exactly: the same values)
    c = tuple(c) if len(c) else (0.0,)
    if len(c) < HORNER_WIDTH:
        c = c + (0.0,) * (HORNER_WIDTH - len(c))
    out = np.ascontiguousarray(np.asarray(c, dtype=dtype))
    out.flags.writeable = False
    return out


#: the smallest output scale (as the torch path's ``TileCore.scales``)
TINY_SCALE = 1e-12


@nb.njit(cache=True)
def _row_max_bits(u, mask, floor, out):
    # non-negative IEEE floats order as their bit patterns: the magnitudes' maximum is an
    # integer maximum, which vectorises (a float maximum in numba runs a compare per cycle:
    # ten times slower); a NaN's pattern is above every number's, so a NaN row gives NaN
    for o in range(u.shape[0]):
        m = floor
        for i in range(u.shape[1]):
            v = u[o, i] & mask
            m = v if v > m else m
        out[o] = m


#: per float dtype: the unsigned type of its bit patterns, the mask of a magnitude's bits, and
#: all ones as a 1-element array (numba's ``~`` widens a uint32 to 64 bits, so the kernels
#: take it made)
_BITS = {np.dtype(np.float32): (np.uint32, np.uint32(0x7FFF_FFFF),
                                np.array([0xFFFF_FFFF], np.uint32)),
         np.dtype(np.float64): (np.uint64, np.uint64(0x7FFF_FFFF_FFFF_FFFF),
                                np.array([2**64 - 1], np.uint64))}


@nb.njit(cache=True)
def _row_abs_max32(w, floor, out):
    # float32 without the Python views (the training step calls it twice a step)
    _row_max_bits(w.view(np.uint32), np.uint32(0x7FFF_FFFF), floor, out.view(np.uint32))


def row_abs_max(w: np.ndarray, out: np.ndarray, floor: float = TINY_SCALE) -> np.ndarray:
    """``out[o] = max(max_i |w[o, i]|, floor)`` of a C-contiguous float32 or float64 array
    (rows, n) into ``out`` (rows,) of its dtype: the output scales of
    ``TileCore.scales`` (``floor`` its 1e-12) or the per-sample input scales."""
    # the kernels read both through bit views: another dtype or length would write past out
    if out.dtype != w.dtype or out.shape != w.shape[:1] or w.ndim != 2:
        raise ValueError(f"row_abs_max: out must be ({w.shape[0]},) {w.dtype}, got "
                         f"{out.shape} {out.dtype}")
    if w.dtype == np.float32:
        _row_abs_max32(w, _floor_bits(floor, w.dtype), out)
        return out
    uint, mask, _ = _BITS[w.dtype]
    _row_max_bits(w.view(uint), mask, _floor_bits(floor, w.dtype), out.view(uint))
    return out


@functools.lru_cache(maxsize=16)
def _floor_bits(floor: float, dtype):
    return np.array(floor, dtype).view(_BITS[dtype][0])[()]


@nb.njit(fastmath=True, cache=True)
def _horner_row(coeffs, a, acc):
    if coeffs.size == HORNER_WIDTH:
        for i in range(a.size):
            ai = a[i]
            v = coeffs[HORNER_WIDTH - 1]
            for c in range(HORNER_WIDTH - 2, -1, -1):
                v = v * ai + coeffs[c]
            acc[i] = v
        return
    n = coeffs.size
    top = coeffs[n - 1]
    for i in range(a.size):
        acc[i] = top
    for c in range(n - 2, -1, -1):
        cc = coeffs[c]
        for i in range(a.size):
            acc[i] = acc[i] * a[i] + cc


@nb.njit(fastmath=True, cache=True)
def _pair_difference(w, scale, mean_c, std_c, std0sq, inv_span, noisy, z, start, m, sign,
                     diff, a_out, c16, d16, a16):
    # constants in the arrays' dtype: a float64 literal would widen float32 arithmetic.
    # Outputs (each skipped when empty): the difference (out, in) and |w| / s (out, in) in
    # the weights' dtype, or c16 times the difference and |w| / s as bf16 row tiles
    # (row_tiles, out, rows) for the bf16 products.
    out_f, in_f = w.shape
    one, zero = inv_span / inv_span, inv_span * 0
    a = np.empty(in_f, dtype=w.dtype)
    mean = np.empty(in_f, dtype=w.dtype)
    std = np.empty(in_f, dtype=w.dtype)
    tmp = np.empty(in_f, dtype=z.dtype)
    keep_a, keep_diff = a_out.shape[0] > 0, diff.shape[0] > 0
    for o in range(out_f):
        inv = one / scale[o]
        for i in range(in_f):
            a[i] = abs(w[o, i] * inv)
        if keep_a:
            for i in range(in_f):
                a_out[o, i] = a[i]
        if a16.shape[0] > 0:
            row_to_tiles(a, one, o, a16)
        _horner_row(mean_c, a, mean)
        for i in range(in_f):
            mi = mean[i] * a[i]
            mean[i] = -mi if w[o, i] < 0 else mi
        if noisy:
            _horner_row(std_c, a, std)
            zr = _window(z, start, m, out_f, in_f, o, tmp)
            for i in range(in_f):
                si = max(std[i], zero)
                mean[i] = (mean[i] + math.sqrt(si * si + std0sq) * (zr[i] * sign)) * inv_span
        else:
            for i in range(in_f):
                mean[i] = mean[i] * inv_span
        if keep_diff:
            for i in range(in_f):
                diff[o, i] = mean[i]
        if d16.shape[0] > 0:
            row_to_tiles(mean, c16, o, d16)


@nb.njit(fastmath=True, cache=True)
def _pair_cells(w, scale, mean_c, std_c, mean0, std0, noisy, z, start, m, sign, g_pos, g_neg,
                a_out, a16, masks):
    # masks: all ones as an unsigned integer of the weights' item size (the bit views the
    # cells are chosen through at the end; see _BITS)
    out_f, in_f = w.shape
    one, zero = sign / sign, sign * 0
    a = np.empty(in_f, dtype=w.dtype)
    mean = np.empty(in_f, dtype=w.dtype)
    std = np.empty(in_f, dtype=w.dtype)
    other = np.empty(in_f, dtype=w.dtype)
    tmp = np.empty(in_f, dtype=z.dtype)
    tmp2 = np.empty(in_f, dtype=z.dtype)
    keep_a = a_out.shape[0] > 0
    for o in range(out_f):
        inv = one / scale[o]
        for i in range(in_f):
            a[i] = abs(w[o, i] * inv)
        if keep_a:
            for i in range(in_f):
                a_out[o, i] = a[i]
        if a16.shape[0] > 0:
            row_to_tiles(a, one, o, a16)
        _horner_row(mean_c, a, mean)
        if noisy:
            _horner_row(std_c, a, std)
            zc = _window(z, start, m, 2 * out_f, in_f, o, tmp)
            zo = _window(z, start, m, 2 * out_f, in_f, out_f + o, tmp2)
            for i in range(in_f):
                mean[i] = max(mean[i] + max(std[i], zero) * (zc[i] * sign), zero)
                other[i] = max(mean0 + std0 * (zo[i] * sign), zero)
        else:
            for i in range(in_f):
                mean[i] = max(mean[i], zero)
                other[i] = max(mean0, zero)
        # which cell targets the weight, chosen on the bit patterns: the same values, and a
        # loop that vectorises (a float select writing both cells ran at a seventh of the
        # speed: 0.86 against 0.12 ms for 1024 x 1024)
        mu, ou = mean.view(masks.dtype), other.view(masks.dtype)
        pu, nu = g_pos[o].view(masks.dtype), g_neg[o].view(masks.dtype)
        every = masks[0]
        none = every ^ every
        for i in range(in_f):
            sel = every if w[o, i] > 0 else none
            keep = sel ^ every
            pu[i] = (mu[i] & sel) | (ou[i] & keep)
            nu[i] = (ou[i] & sel) | (mu[i] & keep)


def _scalar(x, dtype):
    return np.float32(x) if dtype == np.float32 else np.float64(x)


def sampler_applies(sampler) -> bool:
    """Whether the kernels sample for ``sampler`` (a polynomial sampler without stuck cells)."""
    from pyaimc.noise.torch_ops import PolynomialSampler

    return isinstance(sampler, PolynomialSampler) and sampler.stuck_fraction == 0


@torch.no_grad()
def pair_difference(w: torch.Tensor, scale: torch.Tensor, sampler, generator, pool=None,
                    a_out: torch.Tensor | None = None) -> torch.Tensor:
    """``(g+ - g-) / (g_max - g_min)`` (out, in) of the programmed pairs of ``w / scale``, as
    ``sampler.sample_difference`` (one normal per pair with the pair's summed variance); writes
    ``|w / scale|`` into ``a_out`` when given. ``w`` (out, in) and ``scale`` (out,) contiguous
    CPU tensors of one float dtype."""
    diff = torch.empty_like(w)
    _run_pair_difference(w, scale, sampler, generator, pool, diff, a_out, 1.0, None, None)
    return diff


@torch.no_grad()
def pair_difference_tiles(w: torch.Tensor, scale: torch.Tensor, sampler, generator, pool,
                          c: float, rows: int, want_a: bool,
                          out: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`pair_difference` for the bf16 products: ``c`` times the difference as bf16 row
    tiles (row_tiles, out, rows; zero-padded), followed along the first axis by ``|w / scale|``
    in row tiles when ``want_a``; ``w`` float32. Into ``out`` when given."""
    out_f, in_f = w.shape
    tiles = math.ceil(in_f / rows)
    cells = torch.empty(((2 if want_a else 1) * tiles, out_f, rows), dtype=torch.bfloat16) \
        if out is None else out
    _run_pair_difference(w, scale, sampler, generator, pool, None, None, c, cells[:tiles],
                         cells[tiles:] if want_a else None)
    return cells


def _run_pair_difference(w, scale, sampler, generator, pool, diff, a_out, c16, d16, a16):
    dtype = w.numpy().dtype
    z = None if sampler.noiseless else normals(*w.shape, w, generator, pool)
    empty2 = _EMPTY2[dtype]
    _difference(w.numpy(), scale.numpy(), difference_constants(sampler, c16, dtype), z,
                diff.numpy() if diff is not None else empty2,
                a_out.numpy() if a_out is not None else empty2,
                bits(d16) if d16 is not None else _EMPTY3,
                bits(a16) if a16 is not None else _EMPTY3)


def difference_constants(sampler, c16: float, dtype=np.float32) -> tuple:
    """The constants of the pair-difference kernel in ``dtype`` for ``sampler`` and the
    products' factor ``c16`` (the training step makes them once per layer, not per step)."""
    return (_coeffs(sampler.mean_coeffs[1:], dtype), _coeffs(sampler.std_coeffs, dtype),
            _scalar(sampler.std0 ** 2, dtype), _scalar(1 / sampler.g_span, dtype),
            not sampler.noiseless, _scalar(c16, dtype))


_EMPTY2 = {np.dtype(np.float32): np.empty((0, 0), np.float32),
           np.dtype(np.float64): np.empty((0, 0), np.float64)}
_EMPTY3 = np.empty((0, 0, 0), np.uint16)


def _difference(w, scale, consts, z, diff, a_out, d16, a16):
    """The pair-difference kernel on numpy arrays (outputs of size 0 skipped)."""
    mean_c, std_c, std0sq, inv_span, noisy, c16 = consts
    if not noisy:
        z = _NO_NORMALS
    _pair_difference(w, scale, mean_c, std_c, std0sq, inv_span, noisy,
                     z[0].astype(w.dtype, copy=False), z[1], z[2], _scalar(z[3], w.dtype),
                     diff, a_out, c16, d16, a16)


def difference_tiles_into(w: np.ndarray, scale: np.ndarray, consts: tuple, z: tuple,
                          d16: np.ndarray, a16: np.ndarray) -> None:
    """:func:`pair_difference_tiles` on numpy arrays with prepared constants
    (:func:`difference_constants`; float32): ``z`` the normals' ``(z, start, m, sign)``
    (:func:`normals`, or anything when the sampler is noiseless), ``d16`` and ``a16`` the bf16
    bits of the difference's and ``|w| / scale``'s row tiles (``a16`` of shape (0, 0, 0): none).
    The training step's per-call Python was a fifth of this pass at 256 x 256."""
    if w.dtype != np.float32 or scale.dtype != np.float32:
        raise ValueError(f"difference_tiles_into takes float32 weights and scales, got "
                         f"{w.dtype} and {scale.dtype}")
    empty2 = _EMPTY2[w.dtype]
    _difference(w, scale, consts, z, empty2, empty2, d16, a16)


def read_out_constants(gain: float, full, step, col_gain: float) -> tuple:
    """The constants of :func:`read_out_half_into` (made once per layer): the read-noise
    gain, the ADC's full scale and step (None: no ADC) and the output gain."""
    quant = step is not None
    f32 = np.float32
    return f32(gain), quant, f32(full if quant else 0), f32(step if quant else 1), f32(col_gain)


def read_out_half_into(i: np.ndarray, var, offs, consts: tuple, z, col, row, bias,
                       y: np.ndarray, inside: np.ndarray) -> None:
    """:func:`read_out_half_raw` on numpy arrays with prepared constants
    (:func:`read_out_constants`): ``i`` and ``var`` bf16 bits (``var`` None: no read noise),
    ``y`` (outputs, batch) and ``inside`` (the shape of ``i``; (0, 0, 0) without an ADC)
    written."""
    gain, quant, full, step, col_gain = consts
    noisy = var is not None
    if not noisy:
        var, offs, z = _NO_VAR, _NO_OFFS, _NO_NORMALS
    _read_out_half(i, var, offs, gain, noisy, z[0].astype(np.float32, copy=False), z[1], z[2],
                   np.float32(z[3]), quant, full, step, col, col_gain, row,
                   _NO_SCALE if bias is None else bias, y, inside)


_NO_VAR = np.zeros((1, 1, 1), np.uint16)
_NO_OFFS = np.zeros((1, 1), np.float32)


@torch.no_grad()
def pair_cells(w: torch.Tensor, scale: torch.Tensor, sampler, generator, pool=None,
               a_out: torch.Tensor | None = None, a16: torch.Tensor | None = None,
               out: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Programmed ``g+``, ``g-`` (S; out, in) of the pairs of ``w / scale``, as
    ``sampler.sample_cells`` without stuck cells (two normals per pair); writes
    ``|w / scale|`` into ``a_out`` when given, and as bf16 row tiles (row_tiles, out, rows)
    into ``a16`` when given. Into the pair of tensors ``out`` when given."""
    dtype = w.numpy().dtype
    g_pos, g_neg = (torch.empty_like(w), torch.empty_like(w)) if out is None else out
    noisy = not sampler.noiseless
    z = normals(2 * w.shape[0], w.shape[1], w, generator, pool, parts=2) if noisy \
        else _NO_NORMALS
    _pair_cells(w.numpy(), scale.numpy(), _coeffs(sampler.mean_coeffs, dtype),
                _coeffs(sampler.std_coeffs, dtype), _scalar(sampler.mean0, dtype),
                _scalar(sampler.std0, dtype), noisy, z[0].astype(dtype, copy=False), z[1],
                z[2], _scalar(z[3], dtype), g_pos.numpy(), g_neg.numpy(),
                a_out.numpy() if a_out is not None else np.empty((0, 0), dtype),
                bits(a16) if a16 is not None else np.empty((0, 0, 0), np.uint16),
                _BITS[np.dtype(dtype)][2])
    return g_pos, g_neg



@nb.njit(cache=True)
def _pair_cells_grad(w, scale, span, grad_pos, grad_neg, grad):
    # the targets' gradient: g+ follows w / scale where w > 0, g- follows -w / scale where w < 0
    out_f, in_f = w.shape
    zero = span - span
    for o in range(out_f):
        f = span / scale[o]
        for i in range(in_f):
            wi = w[o, i]
            gi = grad_pos[o, i] if wi > zero else zero
            gi = gi - grad_neg[o, i] if wi < zero else gi
            grad[o, i] = gi * f


@torch.no_grad()
def pair_cells_grad(w: torch.Tensor, scale: torch.Tensor, span: float, grad_pos: torch.Tensor,
                    grad_neg: torch.Tensor) -> torch.Tensor:
    """Gradient (out, in) in the weights ``w`` of the pair targets
    ``g_min + span * max(+-w / scale, 0)`` given the gradients in ``g+`` and ``g-`` (one pass;
    the torch path's masks, selects and products were seven)."""
    dtype = w.numpy().dtype
    grad = torch.empty_like(w)
    _pair_cells_grad(w.numpy(), scale.numpy(), _scalar(span, dtype), grad_pos.numpy(),
                     grad_neg.numpy(), grad.numpy())
    return grad


@nb.njit(inline="always")
def _adc_row(x, inside, full, step):
    """The ADC on a row of currents, in place: clipped to ``+-full`` (``inside`` marks the
    values in range, for the gradient) and rounded to the ``step``."""
    for k in range(x.size):
        xk = x[k]
        inside[k] = (xk >= -full) & (xk <= full)
        xk = -full if xk < -full else xk
        xk = full if xk > full else xk
        x[k] = np.rint(xk / step) * step


@nb.njit(inline="always")
def _sum_row(y, x, first):
    """``y = x`` for the first row tile, else ``y += x`` (the sum over row tiles)."""
    if first:
        for k in range(x.size):
            y[k] = x[k]
    else:
        for k in range(x.size):
            y[k] += x[k]


@nb.njit(cache=True)
def _read_out(i, var, offs, gain, noisy, z, start, m, sign, quant, full, step, y, inside):
    # no fastmath: the clip and the rounding are those of the torch ADC, bit for bit
    tiles, batch, outs = i.shape
    zero = sign * 0
    x = np.empty(outs, dtype=i.dtype)
    tmp = np.empty(outs, dtype=z.dtype)
    for t in range(tiles):
        for b in range(batch):
            for o in range(outs):
                x[o] = i[t, b, o]
            if noisy:
                off = offs[t, b]
                zr = _window(z, start, m, tiles * batch, outs, t * batch + b, tmp)
                for o in range(outs):
                    v = var[t, b, o] * gain + off
                    v = v if v > zero else zero
                    x[o] += math.sqrt(v) * (zr[o] * sign)
            if quant:
                _adc_row(x, inside[t, b], full, step)
            _sum_row(y[b], x, t == 0)


@nb.njit(cache=True)
def _masked_expand(grad, inside, zero, out):
    # the ADC's straight-through gradient: the output's gradient in every tile, 0 where clipped
    tiles, batch, outs = inside.shape
    for t in range(tiles):
        for b in range(batch):
            for o in range(outs):
                out[t, b, o] = grad[b, o] if inside[t, b, o] else zero


class _ReadOut(torch.autograd.Function):
    """Sum over row tiles of ``ADC(I + read noise)``; gradient straight through the noise and
    inside the ADC range (zero outside), as the torch path's."""

    @staticmethod
    def forward(ctx, i, var, offs, gain, z, full, step):
        tiles, batch, outs = i.shape
        dtype = i.detach().numpy().dtype
        y = torch.empty(batch, outs, dtype=i.dtype)
        quant = step is not None
        inside = torch.empty(i.shape if quant else (0, 0, 0), dtype=torch.bool)
        noisy = var is not None
        empty = np.zeros((1, 1, 1), dtype)
        z = z if noisy else _NO_NORMALS
        _read_out(i.detach().numpy(), var.numpy() if noisy else empty,
                  offs.numpy() if noisy else empty[0], _scalar(gain, dtype), noisy,
                  z[0].astype(dtype, copy=False), z[1], z[2], _scalar(z[3], dtype), quant,
                  _scalar(full if quant else 0, dtype), _scalar(step if quant else 1, dtype),
                  y.numpy(), inside.numpy())
        ctx.quant, ctx.tiles = quant, tiles
        if quant:
            ctx.save_for_backward(inside)
        return y

    @staticmethod
    def backward(ctx, grad):
        if ctx.quant:
            (inside,) = ctx.saved_tensors
            # one pass (torch's float-by-bool product: 0.4-3 ms at 16 x 64 x 1024, this 0.07)
            out = torch.empty(inside.shape, dtype=grad.dtype)
            _masked_expand(grad.contiguous().numpy(), inside.numpy(),
                           _scalar(0, out.numpy().dtype), out.numpy())
            return out, None, None, None, None, None, None
        return (grad.unsqueeze(0).expand(ctx.tiles, *grad.shape).contiguous(), None, None, None,
                None, None, None)


def read_out(i: torch.Tensor, var: torch.Tensor | None, offs: torch.Tensor | None, gain: float,
             generator, pool, full: float | None, step: float | None) -> torch.Tensor:
    """``sum_t ADC(I_t + read noise)`` (batch, outputs) of currents ``i`` (row_tiles, batch,
    outputs; A): read noise of variance ``gain * var + offs`` (A**2; ``var`` None: none), ADC
    of full scale ``full`` and step ``step`` (``step`` None: no ADC). Differentiable in ``i``;
    normals from ``pool`` or fresh (rows: (tile, sample) pairs)."""
    z = normals(i.shape[0] * i.shape[1], i.shape[2], i, generator, pool) \
        if var is not None else None
    return _ReadOut.apply(i, var, offs, gain, z, full, step)


# ---------------------------------------------------------------- bf16 products' read-out
# The bf16 training products (pyaimc.analog.half) leave their currents and variances in the
# layout (row_tiles, outputs, batch) as bf16; numba has no bf16 type, so the kernels read and
# write the bit patterns (uint16).

@nb.njit(cache=True)
def _read_out_half(i, var, offs, gain, noisy, z, start, m, sign, quant, full, step, col,
                   col_gain, row, bias, y, inside):
    # as _read_out, in the layout (tiles, outputs, batch); i and var bf16 bits, y (outputs,
    # batch) float32; the normals of a tile are one row (outputs x batch long). No fastmath:
    # the clip and the rounding are the torch ADC's.
    tiles, outs, batch = i.shape
    zero = np.float32(0)
    x = np.empty(batch, dtype=np.float32)
    off = np.empty(batch, dtype=np.float32)
    tmp = np.empty(outs * batch if noisy else 1, dtype=z.dtype)
    zr = tmp
    for t in range(tiles):
        if noisy:
            for b in range(batch):
                off[b] = offs[t, b]
            zr = _window(z, start, m, tiles, outs * batch, t, tmp)
        for o in range(outs):
            for b in range(batch):
                x[b] = from_bf16(i[t, o, b])
            if noisy:
                base = o * batch
                for b in range(batch):
                    v = from_bf16(var[t, o, b]) * gain + off[b]
                    v = v if v > zero else zero
                    x[b] += math.sqrt(v) * (zr[base + b] * sign)
            if quant:
                _adc_row(x, inside[t, o], full, step)
            _sum_row(y[o], x, t == 0)
    if col.size:                    # the output scales (outputs,) times the input's (batch,)
        for o in range(outs):
            co = col[o] * col_gain
            for b in range(batch):
                y[o, b] *= co * row[b]
    if bias.size:
        for o in range(outs):
            for b in range(batch):
                y[o, b] += bias[o]


@nb.njit(cache=True)
def _masked_expand_half(grad, inside, quant, col, col_gain, row, out, grad_sum):
    # the output's gradient (batch, outputs), times the scales, in every tile as bf16 bits,
    # 0 where clipped; its sum over the batch into grad_sum when that is not empty (a bias).
    # First the scaled gradient transposed to (outputs, batch) with the gradient read along
    # its rows (read down its columns, as the tiles' layout asks, the pass took 15 us at
    # 256 outputs, batch 64; this way 10), then the tiles
    tiles, outs, batch = out.shape
    g = np.empty((outs, batch), dtype=np.uint16)
    co = np.empty(outs, dtype=np.float32)
    for o in range(outs):
        co[o] = col[o] * col_gain if col.size else np.float32(1)
    summed = grad_sum.size > 0
    if summed:
        for o in range(outs):
            grad_sum[o] = 0
    for b in range(batch):
        rb = row[b] if col.size else np.float32(1)      # without scales: times 1, exactly
        for o in range(outs):
            gbo = grad[b, o]
            if summed:
                grad_sum[o] += gbo
            g[o, b] = to_bf16(gbo * (co[o] * rb))
    mask = inside.view(np.uint8)
    for o in range(outs):
        for t in range(tiles):
            if quant:
                for b in range(batch):
                    out[t, o, b] = g[o, b] * np.uint16(mask[t, o, b])
            else:
                for b in range(batch):
                    out[t, o, b] = g[o, b]


def read_out_half_raw(i: torch.Tensor, var, offs, gain: float, z, full, step, col, row,
                      col_gain: float = 1.0, bias=None, inside: torch.Tensor | None = None):
    """The forward of :func:`read_out_half` without autograd: ``(y, inside)``, the sum
    (outputs, batch; float32) times ``col_gain col[o] row[b]`` plus ``bias[o]``, and the ADC's
    in-range mask (row_tiles, outputs, batch; empty without an ADC); ``col``, ``row``,
    ``bias`` float32 numpy arrays (empty: none); ``z`` the normals' ``(z, start, m, sign)``;
    the mask into ``inside`` when given (the shape of ``i``)."""
    tiles, outs, batch = i.shape
    y = torch.empty(outs, batch, dtype=torch.float32)
    quant = step is not None
    if not quant:
        inside = torch.empty((0, 0, 0), dtype=torch.bool)
    elif inside is None:
        inside = torch.empty(i.shape, dtype=torch.bool)
    noisy = var is not None
    read_out_half_into(bits(i.detach().contiguous()), bits(var) if noisy else None,
                       offs.numpy() if noisy else None,
                       read_out_constants(gain, full, step, col_gain), z, col, row, bias,
                       y.numpy(), inside.numpy())
    return y, inside


def read_out_half_grad_into(grad: np.ndarray, inside: np.ndarray, col, col_gain, row,
                            out: np.ndarray, grad_sum: np.ndarray | None = None) -> None:
    """:func:`read_out_half_grad` on numpy arrays (``col_gain`` a numpy float32, ``out`` the
    bf16 bits of the currents' gradient; the ADC's mask ``inside`` of shape (0, 0, 0): no
    ADC)."""
    _masked_expand_half(grad, inside, inside.size > 0, col, col_gain, row, out,
                        _NO_SCALE if grad_sum is None else grad_sum)


def read_out_half_grad(grad: torch.Tensor, inside: torch.Tensor, shape, col, row,
                       col_gain: float = 1.0, grad_sum: torch.Tensor | None = None,
                       out: torch.Tensor | None = None) -> torch.Tensor:
    """The currents' gradient (row_tiles, outputs, batch; bf16) of :func:`read_out_half_raw`
    given the output's (batch, outputs): times the scales, 0 where the ADC clipped (into
    ``out`` when given); the output gradient's sum over the batch written into ``grad_sum``
    (outputs,) when given."""
    if out is None:
        out = torch.empty(shape, dtype=torch.bfloat16)
    read_out_half_grad_into(grad.numpy(), inside.numpy(), col, np.float32(col_gain), row,
                            bits(out), None if grad_sum is None else grad_sum.numpy())
    return out


class _ReadOutHalf(torch.autograd.Function):
    """:class:`_ReadOut` for bf16 currents in the layout (row_tiles, outputs, batch); returns
    (batch, outputs) float32 times ``col[o] row[b]`` when given (detached scales), its gradient
    in the currents bf16."""

    @staticmethod
    def forward(ctx, i, var, offs, gain, z, full, step, col, row):
        col = col.contiguous().numpy() if col is not None else _NO_SCALE
        row = row.contiguous().numpy() if row is not None else _NO_SCALE
        y, inside = read_out_half_raw(i, var, offs, gain, z, full, step, col, row)
        ctx.shape, ctx.col, ctx.row = i.shape, col, row
        ctx.save_for_backward(inside)
        return y.t()

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return (read_out_half_grad(grad, inside, ctx.shape, ctx.col, ctx.row),
                None, None, None,
                None, None, None, None, None)


def read_out_half(i: torch.Tensor, var: torch.Tensor | None, offs: torch.Tensor | None,
                  gain: float, generator, pool, full: float | None, step: float | None,
                  col: torch.Tensor | None = None,
                  row: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`read_out` of bf16 currents ``i`` (row_tiles, outputs, batch; A) with bf16
    variances ``var`` (same layout) and float32 offsets ``offs`` (row_tiles, batch): the sum
    over row tiles (batch, outputs; float32, a transposed view), times ``col[o] row[b]`` when
    both are given (float32 (outputs,) and (batch,), detached: output and input scales). The
    normals: one row of ``outputs x batch`` per row tile."""
    z = normals(i.shape[0], i.shape[1] * i.shape[2], offs, generator, pool) \
        if var is not None else None
    if col is not None:
        col, row = col.detach().float(), row.detach().float().reshape(-1)
    return _ReadOutHalf.apply(i, var, offs, gain, z, full, step, col, row)

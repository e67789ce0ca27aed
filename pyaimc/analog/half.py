"""Tile products of training passes in bfloat16: the operands rounded to bf16 (8 significant
bits), the sums accumulated in float32 by oneDNN, the results rounded to bf16.

Why it is allowed: what the products model is analog. The row voltages leave an 8-bit DAC as
integer codes ``k v_max / (2**(bits-1) - 1)``; the products here take the codes themselves
(``|k| <= 256`` is exact in bf16) and fold the DAC step into the weights. The weights are
programmed conductances with a programming error of a few per cent of the window; bf16 rounds
them by at most 2**-9 (0.2 %) of their value. The column currents go to an 8-bit ADC; bf16
rounds them by at most 2**-9 of their value, a quarter of an ADC step at full scale, below the
read noise they get next (``benchmarks/bench_half_precision.py`` measures both). On a CPU with
native bf16 products (AVX512-BF16 or AMX) a bf16 batched product runs about four times faster
than float32 (0.33 against 1.4 ms for the forward product of a 1024 x 1024 layer, batch 64,
one thread).

What runs in bf16: the forward product, the read-noise variance product and both gradient
products, in the layout ``(row_tiles, outputs, batch)``, the weights written as contiguous bf16
row tiles ``(row_tiles, out, rows)`` by the pass that makes them (oneDNN multiplies a strided
view of the weight layout at a fifth of the speed when the weights are new, as they are at
every training step). Everything else (programming error, read noise, ADC, scales, the
gradients' straight-through parts) stays in float32. Evaluation, :func:`~pyaimc.analog.program`
and deployment always compute in the layer's dtype; ``AnalogConfig.products`` chooses.

:func:`training_step` is a whole training read of a layer with per-sample input scaling (an
ideal crossbar or the linear IR drop) as one autograd node; :func:`programmed_product`,
:func:`half_product` and :func:`half_codes` are its parts for the layer's other
configurations.
"""

from __future__ import annotations

import functools
import math
import weakref

import numba as nb
import numpy as np
import torch

from pyaimc.circuit import wire_kernels
from pyaimc.circuit.bf16 import bits, from_bf16, to_bf16
from pyaimc.noise import kernels
from pyaimc.noise.torch_ops import Scratch

__all__ = ["abs_max_codes", "bits", "cpu_has_native_bf16", "half_currents", "half_codes",
           "half_product", "half_row_tiles", "half_variance_of_tiles",
           "programmed_product", "StepPlan", "training_step", "use_half",
           "variance_product"]


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
def _untile(g, num, den, in_f, out):
    # out[o, t rows + r] = (num / den[o]) g[t, o, r] (float32; num where den is empty) for
    # the rows that hold inputs; num / den as torch divides a number by a tensor (times the
    # reciprocal)
    tiles, out_f, rows = g.shape
    one = np.float32(1)
    full = in_f // rows
    for t in range(full):
        base = t * rows
        for o in range(out_f):
            co = (one / den[o]) * num if den.size else num
            for r in range(rows):
                out[o, base + r] = from_bf16(g[t, o, r]) * co
    if full < tiles:
        base = full * rows
        for o in range(out_f):
            co = (one / den[o]) * num if den.size else num
            for r in range(in_f - base):
                out[o, base + r] = from_bf16(g[full, o, r]) * co


_ALL_ONE = np.empty(0, np.float32)


def untile(g: torch.Tensor, num: float, den: np.ndarray | None, in_f: int,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """Row-tile gradients ``g`` (row_tiles, out, rows; bf16) in the weight layout (out, in;
    float32), row ``o`` times ``num / den[o]`` (``den`` float32 (out,); None: times ``num``),
    into ``out`` when given."""
    if out is None:
        out = torch.empty(g.shape[1], in_f, dtype=torch.float32)
    _untile(bits(g), np.float32(num), _ALL_ONE if den is None else den, in_f, out.numpy())
    return out


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


def _untile_codes(g: torch.Tensor, in_f: int) -> torch.Tensor:
    """Row-tile gradients (row_tiles, batch, rows; bf16) as (batch, in) float32."""
    batch = g.shape[1]
    return g.transpose(0, 1).reshape(batch, -1)[:, :in_f].float()


class _Codes(torch.autograd.Function):
    """Row voltages ``v`` (batch, in; V) as DAC codes ``v / step`` in bf16 row tiles
    (row_tiles, batch, rows); the gradient goes back times ``1 / step``."""

    @staticmethod
    def forward(ctx, v, inv_step, rows):
        ctx.inv_step, ctx.in_f = inv_step, v.shape[1]
        return _row_voltages(v.detach(), inv_step, rows)

    @staticmethod
    def backward(ctx, grad):
        return _untile_codes(grad, ctx.in_f).mul_(ctx.inv_step), None, None


@nb.njit(cache=True, error_model="numpy", fastmath=True)
def _abs_max_codes(x, levels, four_kt_b, two_q_b, step, offset, codes, weight, sums, x_scale):
    # per sample: scale |x| (max |x| given in x_scale) to the DAC's full scale, round to codes
    # (bf16 bits, row tiles), and the read noise's per-volt weights of the voltages
    # code * step (bf16 bits, their tile sums in float32, times offset). Branch-free inner
    # loops (they vectorise); the padding rows after them; fastmath for the tile sums (a sum
    # in order is a chain of dependent additions).
    batch, in_f = x.shape
    tiles, _, rows = codes.shape
    zero = np.float32(0)
    one = np.float32(1)
    k = np.empty(rows, dtype=np.float32)
    for b in range(batch):
        f = levels / x_scale[b]
        for t in range(tiles):
            base = t * rows
            n = min(rows, in_f - base)
            for r in range(n):
                k[r] = np.rint(x[b, base + r] * f)
            for r in range(n, rows):
                k[r] = zero
            acc = zero
            for r in range(rows):
                kr = k[r]
                codes[t, b, r] = to_bf16(kr)
                # B (4kT + 2q |v|) where a row is driven, 0 where it is not (v = 0)
                w = (four_kt_b + two_q_b * step * abs(kr)) * min(abs(kr), one)
                weight[t, b, r] = to_bf16(w)
                acc += w
            sums[t, b] = acc * offset


def codes_constants(levels, four_kt_b, two_q_b, step, offset) -> tuple:
    """The constants of :func:`_input_pass` as float32 scalars (the training step makes them
    once per layer)."""
    return tuple(np.float32(v) for v in (levels, four_kt_b, two_q_b, step, offset))


def _input_pass(x, consts, codes, weights, sums, x_scale) -> None:
    """Inputs ``x`` (batch, in; float32 numpy) scaled per sample: ``max |x_b.|`` into
    ``x_scale``, then the DAC codes and read-noise weights (bf16 bits, row tiles) and the
    weights' tile sums (see :func:`_abs_max_codes`; ``consts`` from
    :func:`codes_constants`)."""
    kernels.row_abs_max(x, x_scale, 1e-12)
    _abs_max_codes(x, *consts, codes, weights, sums, x_scale)


def _codes_stack(x, levels, four_kt_b, two_q_b, step, rows, reads, offset=1.0):
    """The forward of :class:`_AbsMaxCodes` (no autograd); the sums times ``offset``."""
    batch, in_f = x.shape
    tiles = math.ceil(in_f / rows)
    stack = torch.empty((2 if reads else 1) * tiles, batch, rows, dtype=torch.bfloat16)
    weight = stack[tiles:] if reads else torch.empty(tiles, batch, rows, dtype=torch.bfloat16)
    sums = torch.empty(tiles, batch, dtype=torch.float32)
    x_scale = torch.empty(batch, dtype=torch.float32)
    _input_pass(x.detach().contiguous().numpy(),
                codes_constants(levels, four_kt_b, two_q_b, step, offset),
                bits(stack[:tiles]), bits(weight), sums.numpy(), x_scale.numpy())
    return stack, sums, x_scale


class _AbsMaxCodes(torch.autograd.Function):
    """Inputs ``x`` (batch, in) scaled per sample to the DAC's full scale and converted: one
    bf16 stack of row tiles (row_tiles, batch, rows) of the codes, followed (``reads``) by the
    read noise's per-volt weights of their voltages (one product takes both, see
    :class:`_ProgrammedProduct`); the weights' tile sums (row_tiles, batch; float32) and the
    scales ``max |x|`` (batch,). Gradient: straight through the rounding, ``levels / max |x|``
    (the scale held fixed, as the float32 path holds it); the weights carry none."""

    @staticmethod
    def forward(ctx, x, levels, four_kt_b, two_q_b, step, rows, reads):
        in_f = x.shape[1]
        tiles = math.ceil(in_f / rows)
        stack, sums, x_scale = _codes_stack(x, levels, four_kt_b, two_q_b, step, rows, reads)
        ctx.mark_non_differentiable(sums, x_scale)
        ctx.save_for_backward(x_scale)
        ctx.levels, ctx.in_f, ctx.tiles = levels, in_f, tiles
        return stack, sums, x_scale

    @staticmethod
    def backward(ctx, grad, *_):
        (x_scale,) = ctx.saved_tensors
        grad_x = _untile_codes(grad[:ctx.tiles], ctx.in_f).mul_((ctx.levels / x_scale)[:, None])
        return grad_x, None, None, None, None, None, None


def abs_max_codes(x: torch.Tensor, levels: int, read, step: float, rows: int):
    """``(stack, sums, x_scale)`` of inputs ``x`` (batch, in) scaled per sample to the DAC's
    ``levels`` (``2**(bits-1) - 1``) of ``step`` volts (see :class:`_AbsMaxCodes`): the codes,
    then the per-volt weights when ``read`` (the column read noise) is given."""
    k4, q2 = (read.four_kt_b, read.two_q_b) if read is not None else (0.0, 0.0)
    return _AbsMaxCodes.apply(x, float(levels), k4, q2, float(step), int(rows),
                              read is not None)


class _HalfProduct(torch.autograd.Function):
    """``I[t] = c d_t @ k_t`` (row_tiles, out, batch) in bf16 for DAC codes ``k`` (row_tiles,
    batch, rows; bf16) and weights ``d`` (out, in) times ``c`` (the DAC step times the
    weights' unit: A per code)."""

    @staticmethod
    def forward(ctx, codes, d, c):
        w16 = weight_tiles(d, c, codes.shape[2])                       # (T, out, rows)
        ctx.save_for_backward(codes, w16)
        ctx.c, ctx.in_f = c, d.shape[1]
        return torch.bmm(w16, codes.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        codes, w16 = ctx.saved_tensors
        grad = grad.contiguous()
        grad_codes = grad_d = None
        if ctx.needs_input_grad[1]:
            g = torch.bmm(grad, codes)                                  # (T, out, rows)
            grad_d = untile(g, ctx.c, None, ctx.in_f)
        if ctx.needs_input_grad[0]:
            grad_codes = torch.bmm(grad.transpose(1, 2), w16)          # (T, batch, rows)
        return grad_codes, grad_d, None


class _ProgrammedProduct(torch.autograd.Function):
    """One training step's programming and products in one: the pair differences of
    ``w / scale`` drawn by ``sampler`` (the compiled kernel) straight into bf16 row tiles,
    followed by ``|w| / scale`` when the inputs' stack carries read-noise weights; then one
    batched product: the currents ``I[t] = c d_t @ k_t`` (row_tiles, out, batch) and the
    read-noise variance product ``sum_r a_tor weight_tbr`` (or None; not differentiable).
    Gradient in ``w``: straight through the programming, as
    :func:`~pyaimc.analog.ops.pair_difference` (``1 / scale``), written by the layout pass; in
    the codes as :class:`_HalfProduct`."""

    @staticmethod
    def forward(ctx, stack, w, scale, sampler, generator, pool, c, tiles):
        cells = kernels.pair_difference_tiles(w.detach().contiguous(), scale.contiguous(),
                                              sampler, generator, pool, c, stack.shape[2],
                                              stack.shape[0] > tiles)
        ctx.save_for_backward(stack, cells, scale)
        ctx.c, ctx.in_f, ctx.tiles = c, w.shape[1], tiles
        out = torch.bmm(cells, stack.transpose(1, 2))
        if out.shape[0] == tiles:
            return out, None
        var = out[tiles:]
        ctx.mark_non_differentiable(var)
        return out[:tiles], var

    @staticmethod
    def backward(ctx, grad, _):
        stack, cells, scale = ctx.saved_tensors
        t = ctx.tiles
        grad = grad.contiguous()
        grad_stack = grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = untile(torch.bmm(grad, stack[:t]), ctx.c,
                            scale.detach().float().contiguous().numpy(), ctx.in_f)
        if ctx.needs_input_grad[0]:
            grad_stack = torch.zeros_like(stack)
            torch.bmm(grad.transpose(1, 2), cells[:t], out=grad_stack[:t])
        return grad_stack, grad_w, None, None, None, None, None, None


def _wired_cells(w, scale, p, generator, pool, tiles, bufs, cells):
    """The cells of one training step with the linear IR drop: both cells of every pair
    drawn (float32), the wire kernel's ``W1(g+) - W1(g-)`` times ``step`` written into
    ``cells`` as bf16 row tiles by its last pass, followed by ``|w| / scale`` in bf16 row
    tiles when the layer reads noise; returns what the backward needs (the cells and each
    polarity's ``1 / D``). Buffers from ``bufs`` (a
    :class:`~pyaimc.noise.torch_ops.Scratch`, :func:`_claim`)."""
    gp, gn = kernels.pair_cells(w, scale, p.sampler, generator, pool,
                                a16=cells[tiles:] if p.reads else None,
                                out=(bufs("g_pos", w), bufs("g_neg", w)))
    invs = wire_kernels.difference_into(gp, gn, p.wires, p.scratch("wire_d", w),
                                        cells[:tiles], p.step,
                                        invs=(bufs("inv_pos", w), bufs("inv_neg", w)))
    return gp, gn, *invs


class _StepArrays:
    """The buffers of a layer's training steps at batch ``batch`` and their numpy views, made
    once and held by :func:`_claim`'s scratch (lent to the next step once this step's
    backward has run): the codes and read-noise weights (``stack``), the input and output
    scales, the bf16 tiles (``cells``), the ADC's mask (``inside``), the read-noise offsets,
    the products, and in the products' memory the backward's temporaries."""

    def __init__(self, p, batch: int, in_f: int, out_f: int):
        tiles, rows, k = -(-in_f // p.rows), p.rows, 2 if p.reads else 1
        bf16 = torch.bfloat16
        self.stack = torch.empty(k * tiles, batch, rows, dtype=bf16)
        f32 = torch.float32  # the kernels write float32 bits: not torch's default dtype
        self.x_scale = torch.empty(batch, dtype=f32)
        self.scale = torch.empty(out_f, dtype=f32)
        self.cells = torch.empty(k * tiles, out_f, rows, dtype=bf16)
        self.inside = torch.empty((tiles, out_f, batch) if p.read_consts[1] else (0, 0, 0),
                                  dtype=torch.bool)
        self.offs = torch.empty(tiles, batch, dtype=f32)
        self.products = torch.empty(k * tiles, out_f, batch, dtype=bf16)
        stack_bits, cell_bits = bits(self.stack), bits(self.cells)
        self.codes_bits = stack_bits[:tiles]
        self.weights_bits = stack_bits[tiles:] if p.reads else \
            np.empty((tiles, batch, rows), np.uint16)
        self.d_bits, self.a_bits = cell_bits[:tiles], cell_bits[tiles:]
        self.row, self.col = self.x_scale.numpy(), self.scale.numpy()
        self.offs_np, self.inside_np = self.offs.numpy(), self.inside.numpy()
        out_bits = bits(self.products)
        self.i_bits, self.var_bits = out_bits[:tiles], out_bits[tiles:] if p.reads else None
        self.tiles, self.shape = tiles, (tiles, out_f, batch)
        # the backward's temporaries, the currents' gradient and the weight gradient's tiles,
        # in the products' memory (done with after the forward, and in cache when the backward
        # follows it: fresh lines cost a step with cold caches 10-15 us at 256 x 256)
        flat, n_i, n_g = self.products.view(-1), tiles * out_f * batch, tiles * out_f * rows
        self.grad_i = flat[:n_i].view(tiles, out_f, batch)
        self.grad_tiles = flat[n_i:n_i + n_g].view(tiles, out_f, rows) \
            if flat.numel() >= n_i + n_g else torch.empty(tiles, out_f, rows, dtype=bf16)
        self.grad_i_bits, self.grad_tiles_bits = bits(self.grad_i), bits(self.grad_tiles)


def _claim(plan) -> Scratch:
    """The buffers a training step may write what its backward needs into: those of the
    layer's previous step once its backward has run (or its graph is gone), else new ones.

    Weight-sized memory fresh at every step page-faults (a fault per 4 KiB), which with the IR
    drop at 1024 x 1024 made a step cost anything from 3.7x to 6.8x ``nn.Linear`` as the
    allocator returned memory to the system or not. The previous step, whose buffers are
    lent again, can no longer run its backward (a second backward after ``retain_graph`` and
    a later step raises instead of reading overwritten values).
    """
    owner = plan.owner() if plan.owner is not None else None
    if owner is not None and not owner.done:
        plan.bufs = Scratch()   # that backward is pending: its buffers stay its own
    elif owner is not None:
        owner.held = None
    return plan.bufs


class _TrainingStep(torch.autograd.Function):
    """A whole training read of a layer in one: inputs scaled per sample and converted
    (:class:`_AbsMaxCodes`), programming error drawn into the tiles (through the linear IR
    drop when the plan has wires) and both products (:class:`_ProgrammedProduct`), read
    noise, ADC, tile sum, output scales and bias (:func:`pyaimc.noise.kernels.read_out_half`).
    One autograd node instead of four to six: at 256 x 256 a step's Python and autograd
    overhead is as large as its arithmetic."""

    @staticmethod
    def forward(ctx, x, w, bias, plan, generator, pool):
        p = plan
        x = x.detach().contiguous()
        w = w.detach().contiguous()
        (batch, in_f), out_f = x.shape, w.shape[0]
        bufs = _claim(p)
        a = bufs.made("step", batch, lambda: _StepArrays(p, batch, in_f, out_f))
        tiles = a.tiles
        # inputs: per-sample scales max |x_b.|, codes and read-noise weights (bf16 row tiles)
        wn = w.numpy()
        _input_pass(x.numpy(), p.codes_consts, a.codes_bits, a.weights_bits, a.offs_np, a.row)
        # the output scales max |w_o.| (TileCore.scales' two torch reductions cost 12-20 us
        # a step at 256 x 256; this 2-3 us)
        kernels.row_abs_max(wn, a.col)
        if p.wires is None:
            z = kernels.normals(out_f, in_f, w, generator, pool) \
                if p.difference_consts[4] else None
            kernels.difference_tiles_into(wn, a.col, p.difference_consts, z, a.d_bits,
                                          a.a_bits)
            wired = ()
        else:
            wired = _wired_cells(w, a.scale, p, generator, pool, tiles, bufs, a.cells)
        torch.bmm(a.cells, a.stack.transpose(1, 2), out=a.products)
        z = kernels.normals(tiles, out_f * batch, a.offs, generator, pool) if p.reads \
            else None
        y = torch.empty(out_f, batch, dtype=torch.float32)
        kernels.read_out_half_into(a.i_bits, a.var_bits, a.offs_np, p.read_consts, z, a.col,
                                   a.row, None if bias is None else bias.detach().numpy(),
                                   y.numpy(), a.inside_np)
        # all made here or detached (no graph to keep alive): plain attributes, which the
        # backward reads without save_for_backward's checks (a few microseconds a step)
        ctx.held = (a, w, *wired)
        ctx.done = False
        p.owner = weakref.ref(ctx)
        ctx.plan, ctx.in_f = p, in_f
        return y.t()

    @staticmethod
    def backward(ctx, grad):
        if ctx.held is None:
            raise RuntimeError(
                "this analog layer's training step lent its buffers to a later step after its "
                "backward had run: a second backward through it (retain_graph=True) must come "
                "before the layer's next training forward pass (or use "
                "AnalogConfig(products='float32'))")
        a, w, *wired = ctx.held
        t, p = a.tiles, ctx.plan
        grad_x = grad_w = None
        # read in place, any strides (a sum's gradient is an expanded scalar)
        grad_b = torch.empty(grad.shape[1], dtype=torch.float32) \
            if ctx.needs_input_grad[2] else None
        gi = a.grad_i
        kernels.read_out_half_grad_into(grad.numpy(), a.inside_np, a.col, p.read_consts[4],
                                        a.row, a.grad_i_bits,
                                        None if grad_b is None else grad_b.numpy())
        if ctx.needs_input_grad[1]:
            g = torch.bmm(gi, a.stack[:t], out=a.grad_tiles)             # (T, out, rows)
            if p.wires is None:
                grad_w = torch.empty(w.shape, dtype=torch.float32)
                _untile(a.grad_tiles_bits, p.c32, a.col, ctx.in_f, grad_w.numpy())
            else:
                gp, gn, inv_p, inv_n = wired
                grad_d = untile(g, p.step, None, ctx.in_f, out=p.scratch("grad_d", w))
                grad_p, grad_n = wire_kernels.difference_grad(
                    grad_d, gp, gn, inv_p, inv_n, p.wires,
                    out=(p.scratch("grad_pos", w), p.scratch("grad_neg", w)))
                grad_w = kernels.pair_cells_grad(w, a.scale, p.span, grad_p, grad_n)
        if ctx.needs_input_grad[0]:
            g = torch.bmm(gi.transpose(1, 2), a.cells[:t])
            grad_x = _untile_codes(g, ctx.in_f).mul_((p.levels / a.x_scale)[:, None])
        ctx.done = True
        return grad_x, grad_w, grad_b, None, None, None


class StepPlan:
    """The constants of :class:`_TrainingStep` for a layer (see :func:`training_step`):
    ``wires`` the wire kernel's constants of the linear IR drop (None: an ideal crossbar);
    ``scratch`` the layer's reusable temporaries (:class:`pyaimc.noise.torch_ops.Scratch`);
    the buffers its steps keep for their backward (:func:`_claim`)."""

    _GIVEN = ("levels", "four_kt_b", "two_q_b", "step", "rows", "reads", "sampler", "c",
              "offset", "read_gain", "output_gain", "full", "adc_step", "wires", "span",
              "scratch")
    __slots__ = _GIVEN + ("owner", "bufs", "codes_consts", "difference_consts", "read_consts",
                          "c32")

    def __init__(self, **kw):
        for k in self._GIVEN:
            setattr(self, k, kw[k])
        self.owner, self.bufs = None, Scratch()  # the step whose backward holds bufs (_claim)
        # the kernels' constants as numpy scalars, once (converting them was a few
        # microseconds of every step)
        f32 = np.float32
        self.c32 = f32(self.c)
        self.codes_consts = codes_constants(self.levels, self.four_kt_b, self.two_q_b,
                                            self.step, self.offset)
        self.difference_consts = kernels.difference_constants(self.sampler, self.c)
        self.read_consts = kernels.read_out_constants(self.read_gain, self.full,
                                                      self.adc_step, self.output_gain)


def training_step(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
                  plan: StepPlan, generator, pool) -> torch.Tensor:
    """One training read (batch, out) of inputs ``x`` (batch, in) through a freshly programmed
    draw of ``w`` (out, in) with the output scales ``max_i |w_oi|`` and digital ``bias``; see
    :class:`_TrainingStep`."""
    return _TrainingStep.apply(x, w, bias, plan, generator, pool)


def programmed_product(stack: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, sampler,
                       generator, pool, c: float, tiles: int):
    """``(I, var)``: currents (row_tiles, out, batch; bf16) of the DAC codes in ``stack``
    (its first ``tiles`` row tiles; bf16) on one programmed draw of the weights ``w`` (out, in;
    float32) with output scales ``scale``, and the read-noise variance product of the
    per-volt weights that follow them in ``stack`` (None when there are none); see
    :class:`_ProgrammedProduct`."""
    return _ProgrammedProduct.apply(stack, w, scale, sampler, generator, pool, float(c),
                                    int(tiles))


def half_product(codes: torch.Tensor, d: torch.Tensor, c: float) -> torch.Tensor:
    """Currents ``c sum_i d_oi k_bi`` per row tile (row_tiles, out, batch; bf16) of DAC codes
    ``codes`` (row_tiles, batch, rows; bf16) and weights ``d`` (out, in); differentiable in
    both."""
    return _HalfProduct.apply(codes, d, float(c))


def half_codes(v: torch.Tensor, step: float, rows: int) -> torch.Tensor:
    """DAC codes ``v / step`` (row_tiles, batch, rows; bf16) of row voltages ``v`` (batch, in;
    V), differentiable."""
    return _Codes.apply(v, 1.0 / step, int(rows))


def half_row_tiles(m: torch.Tensor, rows: int) -> torch.Tensor:
    """``m`` (batch, in) as bf16 row tiles (row_tiles, batch, rows), zero-padded; no
    gradient."""
    return _row_voltages(m.detach(), 1.0, rows)


def half_currents(v: torch.Tensor, d: torch.Tensor, gain: float, step: float,
                  rows: int) -> torch.Tensor:
    """Column-pair currents ``sum_i v_i gain d_oi`` per row tile (row_tiles, out, batch; A) in
    bf16; differentiable in ``v`` (batch, in; V, on a DAC grid of step ``step``: the codes
    ``v / step`` are exact in bf16 up to 256) and ``d`` (out, in)."""
    return half_product(half_codes(v, step, rows), d, gain * step)


def half_variance_of_tiles(weight: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The read-noise variance product ``sum_i weight_bi g_oi`` per row tile (row_tiles, out,
    batch; bf16) of per-volt weights in bf16 row tiles (row_tiles, batch, rows) and
    conductances ``g`` (out, in; float32)."""
    return variance_product(weight, weight_tiles(g, 1.0, weight.shape[2]))


def variance_product(weight: torch.Tensor, g16: torch.Tensor) -> torch.Tensor:
    """``sum_r g_tor weight_tbr`` (row_tiles, out, batch; bf16) of per-volt weights and
    conductances both in bf16 row tiles ((row_tiles, batch, rows) and (row_tiles, out,
    rows))."""
    with torch.no_grad():
        return torch.bmm(g16, weight.transpose(1, 2))

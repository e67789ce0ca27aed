"""Torch pieces of the analog layer: straight-through rounding, DAC, ADC, the programming-noise
sampler and read noise, all driven by a :class:`~pyaimc.noise.NoiseModel`."""

from __future__ import annotations

import math

import torch

from pyaimc.noise.model import NoiseModel


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer; the gradient passes as if nothing happened."""
    return x + (torch.round(x) - x).detach()


class _QuantizeSTE(torch.autograd.Function):
    """Clip and round in place; gradient straight through inside the range, zero outside."""

    @staticmethod
    def forward(ctx, x, full_scale, step):
        inside = (x >= -full_scale) & (x <= full_scale)
        ctx.save_for_backward(inside)  # a byte per value
        ctx.mark_dirty(x)
        return x.clamp_(-full_scale, full_scale).div_(step).round_().mul_(step)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


def quantize_symmetric(x: torch.Tensor, full_scale: float, bits: int | None,
                       inplace: bool = False) -> torch.Tensor:
    """Clip to ``[-full_scale, full_scale]`` and round to ``2**(bits-1) - 1`` levels per sign.

    Straight-through rounding; the clip passes gradient only inside the range. ``bits`` None
    returns ``x`` unchanged (no clip either). ``inplace`` overwrites ``x`` (it must not be a
    leaf or a tensor some backward still needs).
    """
    if bits is None:
        return x
    x = x if inplace else x.clone()
    return _QuantizeSTE.apply(x, float(full_scale), float(full_scale) / (2 ** (bits - 1) - 1))


def _horner_(acc: torch.Tensor, coeffs: tuple, x: torch.Tensor) -> torch.Tensor:
    """``sum_k coeffs[k] x**k`` into ``acc`` (overwritten), in place."""
    acc.fill_(coeffs[-1])
    for c in coeffs[-2::-1]:
        acc.mul_(x).add_(c)
    return acc


class ConductanceSampler:
    """Programmed conductances for target conductances, from a noise model's programming table.

    The conductance reached for target ``g_T`` is drawn as ``mean(g_T) + std(g_T) * N(0, 1)``
    (clipped at 0 S), with ``mean`` and ``std`` the table's polynomials of the normalised target
    ``gn = (g_T - g_min) / (g_max - g_min)``; a fraction ``stuck_fraction`` of cells holds
    ``stuck_g`` instead.

    Weights enter normalised, ``wn = w / s`` in [-1, 1]: the cell of the weight's sign targets
    ``gn = |wn|``, the other cell ``gn = 0`` (``g_min``).

    Parameters
    ----------
    noise_model : NoiseModel
    method : {"write_verify", "one_shot"}, optional
        Default: the model's training method.
    stuck : bool
        Include stuck cells.
    """

    def __init__(self, noise_model: NoiseModel, method: str | None = None, stuck: bool = True):
        table = noise_model.programming.table(method)
        self.method = table.method
        self.g_min = noise_model.window.g_min
        self.g_span = noise_model.window.g_max - noise_model.window.g_min
        self.mean_coeffs = tuple(float(c) for c in table.mean_coeffs)
        self.std_coeffs = tuple(float(c) for c in table.std_coeffs)
        self.noiseless = all(c == 0 for c in self.std_coeffs)
        self.mean0 = self.mean_coeffs[0]                 # mean and std at g_min
        self.std0 = max(self.std_coeffs[0], 0.0)
        d = noise_model.defects
        self.stuck_fraction = float(d.stuck_fraction) if stuck else 0.0
        self.stuck_g = float(d.stuck_g)

    def moments(self, g_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation (S) of the conductance reached for ``g_target`` (S)."""
        gn = (g_target - self.g_min) / self.g_span
        mean = _horner_(torch.empty_like(gn), self.mean_coeffs, gn)
        return mean, _horner_(torch.empty_like(gn), self.std_coeffs, gn).clamp_min_(0.0)

    def _normal(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    def _stuck_(self, g: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.stuck_fraction > 0:
            hit = torch.rand(g.shape, generator=generator, device=g.device,
                             dtype=g.dtype) < self.stuck_fraction
            g.masked_fill_(hit, self.stuck_g)
        return g

    @torch.no_grad()
    def sample(self, g_target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One programmed conductance per target (S)."""
        mean, std = self.moments(g_target)
        if not self.noiseless:
            mean.addcmul_(std, self._normal(mean, generator))
        return self._stuck_(mean.clamp_min_(0.0), generator)

    @torch.no_grad()
    def sample_cells(self, wn: torch.Tensor, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Programmed ``g+`` and ``g-`` (S) of the pairs of normalised weights ``wn``."""
        a = wn.abs()
        carrier = _horner_(torch.empty_like(a), self.mean_coeffs, a)
        other = torch.full_like(a, self.mean0)
        if not self.noiseless:
            std = _horner_(torch.empty_like(a), self.std_coeffs, a).clamp_min_(0.0)
            carrier.addcmul_(std, self._normal(a, generator))
            other.add_(self._normal(a, generator), alpha=self.std0)
        pos = wn > 0
        g_pos = torch.where(pos, carrier, other).clamp_min_(0.0)
        g_neg = torch.where(pos, other, carrier).clamp_min_(0.0)
        return self._stuck_(g_pos, generator), self._stuck_(g_neg, generator)

    @torch.no_grad()
    def sample_difference(self, wn: torch.Tensor, generator: torch.Generator,
                          scratch: "Scratch | None" = None) -> torch.Tensor:
        """``(g+ - g-) / (g_max - g_min)`` of the programmed pairs of normalised weights ``wn``.

        Without stuck cells it draws one normal per pair with the pair's summed variance (the
        difference of two independent normals); the clip at 0 S of single cells is left out
        there (it matters only below ``mean / std`` of about 4). With stuck cells both cells are
        drawn (:meth:`sample_cells`). ``scratch`` lends reusable temporaries.
        """
        if self.stuck_fraction > 0:
            g_pos, g_neg = self.sample_cells(wn, generator)
            return g_pos.sub_(g_neg).div_(self.g_span)
        scratch = scratch if scratch is not None else Scratch()
        a = torch.abs(wn, out=scratch("a", wn))
        # mean of the carrying cell minus that of the cell at g_min: the polynomial less its
        # constant term, signed like the weight
        diff = _horner_(torch.empty_like(a), self.mean_coeffs[1:] or (0.0,), a).mul_(a)
        diff.copysign_(wn)
        if not self.noiseless:
            std = _horner_(scratch("std", a), self.std_coeffs, a).clamp_min_(0.0)
            std.square_().add_(self.std0 ** 2).sqrt_()
            diff.addcmul_(std, scratch("z", a).normal_(generator=generator))
        return diff.div_(self.g_span)


class Scratch:
    """Temporaries reused from one forward pass to the next, by name.

    Only for tensors that never leave a pass (not returned, not saved for backward): fresh
    memory costs a page fault per 4 KiB on first touch, which for weight-sized temporaries
    costs as much as the arithmetic. A layer's scratch is not shared between threads.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, like: torch.Tensor, shape=None) -> torch.Tensor:
        shape = tuple(like.shape if shape is None else shape)
        t = self._bufs.get(name)
        if t is None or t.shape != shape or t.dtype != like.dtype or t.device != like.device:
            t = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._bufs[name] = t
        return t


class _PairDifference(torch.autograd.Function):
    """Forward: ``(g+ - g-) / (g_max - g_min)`` of the pairs of ``w / scale`` (out, in),
    programmed by ``sampler`` (None: exactly); backward: as ``w / scale``."""

    @staticmethod
    def forward(ctx, w, scale, sampler, generator, scratch):
        ctx.save_for_backward(scale)
        if sampler is None:
            return w / scale[:, None]
        wn = torch.div(w, scale[:, None], out=scratch("wn", w))
        return sampler.sample_difference(wn, generator, scratch)

    @staticmethod
    def backward(ctx, grad):
        (scale,) = ctx.saved_tensors
        return grad / scale[:, None], None, None, None, None


class _PairCells(torch.autograd.Function):
    """Forward: ``g+``, ``g-`` (S; out, in) of the pairs of ``w / scale``, programmed by
    ``sampler`` (None: the targets); backward: as the targets
    ``g_min + span * max(+-w / scale, 0)``."""

    @staticmethod
    def forward(ctx, w, scale, sampler, generator, g_min, span):
        wn = w / scale[:, None]
        ctx.save_for_backward(wn, scale)
        ctx.span = span
        if sampler is not None:
            return sampler.sample_cells(wn, generator)
        return g_min + span * wn.clamp(min=0.0), g_min + span * (-wn).clamp(min=0.0)

    @staticmethod
    def backward(ctx, grad_pos, grad_neg):
        wn, scale = ctx.saved_tensors
        grad = torch.where(wn > 0, grad_pos, torch.zeros_like(grad_pos))
        grad.sub_(torch.where(wn < 0, grad_neg, torch.zeros_like(grad_neg)))
        return grad.mul_(ctx.span / scale[:, None]), None, None, None, None, None


def pair_difference(w, scale, sampler, generator, scratch: Scratch | None = None
                    ) -> torch.Tensor:
    """Pair difference over ``g_max - g_min`` (out, in; dimensionless) of the weights ``w``
    with output scales ``scale``, programmed by ``sampler`` (None: exactly); straight-through
    to ``w / scale``."""
    return _PairDifference.apply(w, scale, sampler, generator,
                                 scratch if scratch is not None else Scratch())


def pair_cells(w, scale, sampler, generator, g_min: float, span: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``g+``, ``g-`` (out, in; S) of the weights ``w``, programmed by ``sampler`` (None: the
    targets); straight-through to the targets."""
    return _PairCells.apply(w, scale, sampler, generator, g_min, span)


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


class ReadNoiseTorch:
    """Column read noise: cells on one column add variances ``B * G * (4kT + 2q|v|)`` (A**2),
    ``v != 0`` (the device model's Johnson and shot noise at the cell's voltage)."""

    def __init__(self, noise_model: NoiseModel):
        r = noise_model.read_noise
        self.bandwidth = float(r.bandwidth)
        self.four_kt_b = r.four_kt * self.bandwidth
        self.two_q_b = r.two_q * self.bandwidth

    @property
    def active(self) -> bool:
        return self.bandwidth > 0

    def per_volt_weight(self, v: torch.Tensor) -> torch.Tensor:
        """``B * (4kT * [v != 0] + 2q |v|)``: multiplies the conductance in the variance, A**2/S."""
        return torch.where(v != 0, self.four_kt_b + self.two_q_b * v.abs(),
                           torch.zeros_like(v))


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
    """Row voltages (batch, in) as (row_tiles, batch, rows), zero-padded."""
    batch, in_f = v.shape
    tr = math.ceil(in_f / rows)
    if tr * rows != in_f:
        v = torch.nn.functional.pad(v, (0, tr * rows - in_f))
    return v.reshape(batch, tr, rows).transpose(0, 1)

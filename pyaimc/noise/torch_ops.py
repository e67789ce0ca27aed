"""The noise model's parts in torch: straight-through rounding (DAC, ADC), the programming-noise
sampler and column read noise.

The noise model builds these for the layers (``NoiseModel.programming_sampler``,
``ReadNoise.torch_sampler``, ``DacAdc.torch_dac``); a layer never builds them from the model's
fields. Importing this module imports torch.
"""

from __future__ import annotations

import torch


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


def quantize_(x: torch.Tensor, full_scale: float, bits: int | None) -> torch.Tensor:
    """Clip to ``+-full_scale`` and round to ``2**(bits-1) - 1`` levels per sign, in place, with
    no gradient (deployment). ``bits`` None returns ``x`` unchanged."""
    if bits is None:
        return x
    step = full_scale / (2 ** (bits - 1) - 1)
    return x.clamp_(-full_scale, full_scale).mul_(1.0 / step).round_().mul_(step)


def _horner_(acc: torch.Tensor, coeffs: tuple, x: torch.Tensor) -> torch.Tensor:
    """``sum_k coeffs[k] x**k`` into ``acc`` (overwritten), in place."""
    acc.fill_(coeffs[-1])
    for c in coeffs[-2::-1]:
        acc.mul_(x).add_(c)
    return acc


class PolynomialSampler:
    """Programmed conductances for target conductances, from a programming table's polynomials.

    The conductance reached for target ``g_T`` is drawn as ``mean(g_T) + std(g_T) * N(0, 1)``
    (clipped at 0 S), with ``mean`` and ``std`` the table's polynomials of the normalised target
    ``gn = (g_T - g_min) / (g_max - g_min)``; a fraction ``stuck_fraction`` of cells holds
    ``stuck_g`` instead.

    Weights enter normalised, ``wn = w / s`` in [-1, 1]: the cell of the weight's sign targets
    ``gn = |wn|``, the other cell ``gn = 0`` (``g_min``).

    Built by the noise model (``NoiseModel.programming_sampler``), never by a layer.

    Parameters
    ----------
    method : str
        The write scheme the table belongs to.
    mean_coeffs, std_coeffs : sequence of float
        Ascending-power polynomials of ``gn`` giving the mean and std, S.
    g_min, g_span : float
        Window low end and width, S.
    stuck_fraction, stuck_g : float
        Fraction of stuck cells (0: none) and their conductance, S.
    """

    def __init__(self, method: str, mean_coeffs, std_coeffs, g_min: float, g_span: float,
                 stuck_fraction: float = 0.0, stuck_g: float = 0.0):
        self.method = method
        self.g_min, self.g_span = float(g_min), float(g_span)
        self.mean_coeffs = tuple(float(c) for c in mean_coeffs)
        self.std_coeffs = tuple(float(c) for c in std_coeffs)
        self.noiseless = all(c == 0 for c in self.std_coeffs)
        self.mean0 = self.mean_coeffs[0]                 # mean and std at g_min
        self.std0 = max(self.std_coeffs[0], 0.0)
        self.stuck_fraction = float(stuck_fraction)
        self.stuck_g = float(stuck_g)

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




class ColumnReadNoise:
    """Column read noise: cells on one column add variances ``B * G * (4kT + 2q|v|)`` (A**2),
    ``v != 0`` (the device model's Johnson and shot noise at the cell's voltage).

    Built by the noise model's read-noise part (``ReadNoise.torch_sampler``).

    Parameters
    ----------
    four_kt_b, two_q_b : float
        ``4 k T B`` (A**2/S) and ``2 q B`` (A**2/(S V)).
    """

    def __init__(self, four_kt_b: float, two_q_b: float):
        self.four_kt_b, self.two_q_b = float(four_kt_b), float(two_q_b)

    @property
    def active(self) -> bool:
        return self.four_kt_b > 0 or self.two_q_b > 0

    def per_volt_weight(self, v: torch.Tensor) -> torch.Tensor:
        """``B * (4kT * [v != 0] + 2q |v|)``: multiplies the conductance in the variance, A**2/S."""
        return torch.where(v != 0, self.four_kt_b + self.two_q_b * v.abs(),
                           torch.zeros_like(v))

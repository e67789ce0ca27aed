"""The noise model's parts in torch: straight-through rounding (DAC, ADC), the programming-noise
sampler and column read noise.

The noise model builds these for the layers (``NoiseModel.programming_sampler``,
``ReadNoise.torch_sampler``, ``DacAdc.torch_dac``); a layer never builds them from the model's
fields. Importing this module imports torch.
"""

from __future__ import annotations

import math

import numpy as np
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

    def _normal(self, like: torch.Tensor, generator: torch.Generator, pool=None) -> torch.Tensor:
        if pool is not None:
            return pool.normals(like.shape, generator, like)
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
    def sample_cells(self, wn: torch.Tensor, generator: torch.Generator,
                     pool: "NormalPool | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Programmed ``g+`` and ``g-`` (S) of the pairs of normalised weights ``wn``; the
        normals from ``pool`` (a :class:`NormalPool` in a step) when given."""
        a = wn.abs()
        carrier = _horner_(torch.empty_like(a), self.mean_coeffs, a)
        other = torch.full_like(a, self.mean0)
        if not self.noiseless:
            std = _horner_(torch.empty_like(a), self.std_coeffs, a).clamp_min_(0.0)
            if pool is not None:   # one take for both cells, as the compiled kernel reads it
                z = pool.normals((2,) + tuple(a.shape), generator, a)
                z_carrier, z_other = z[0], z[1]
            else:
                z_carrier, z_other = self._normal(a, generator), self._normal(a, generator)
            carrier.addcmul_(std, z_carrier)
            other.add_(z_other, alpha=self.std0)
        pos = wn > 0
        g_pos = torch.where(pos, carrier, other).clamp_min_(0.0)
        g_neg = torch.where(pos, other, carrier).clamp_min_(0.0)
        return self._stuck_(g_pos, generator), self._stuck_(g_neg, generator)

    @torch.no_grad()
    def sample_difference(self, wn: torch.Tensor, generator: torch.Generator,
                          scratch: "Scratch | None" = None,
                          pool: "NormalPool | None" = None) -> torch.Tensor:
        """``(g+ - g-) / (g_max - g_min)`` of the programmed pairs of normalised weights ``wn``.

        Without stuck cells it draws one normal per pair with the pair's summed variance (the
        difference of two independent normals); the clip at 0 S of single cells is left out
        there (it matters only below ``mean / std`` of about 4). With stuck cells both cells are
        drawn (:meth:`sample_cells`). ``scratch`` lends reusable temporaries; ``pool`` (a
        :class:`NormalPool` in a step) gives the normals when given.
        """
        if self.stuck_fraction > 0:
            g_pos, g_neg = self.sample_cells(wn, generator, pool)
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
            z = pool.normals(a.shape, generator, a) if pool is not None else \
                scratch("z", a).normal_(generator=generator)
            diff.addcmul_(std, z)
        return diff.div_(self.g_span)


class Scratch:
    """Temporaries reused from one forward pass to the next, by name.

    Only for tensors that never leave a pass (not returned, not saved for backward): fresh
    memory costs a page fault per 4 KiB on first touch, which for weight-sized temporaries
    costs as much as the arithmetic. A layer's scratch is not shared between threads.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, torch.Tensor] = {}
        self._made: dict = {}

    def made(self, name: str, key, make):
        """What ``make()`` returned when ``name`` was last asked for with this ``key``
        (hashable; another key makes it anew and drops the old): a set of buffers and their
        views built once (a training step asking a dozen buffers for by name spent 10-15 us
        of Python at every step)."""
        got = self._made.get(name)
        if got is None or got[0] != key:
            got = self._made[name] = (key, make())
        return got[1]

    def __call__(self, name: str, like: torch.Tensor, shape=None, dtype=None) -> torch.Tensor:
        """The buffer ``name`` of ``shape`` (default ``like``'s) and ``dtype`` (default
        ``like``'s) on ``like``'s device; its contents are whatever was left in it."""
        shape = tuple(like.shape if shape is None else shape)
        dtype = like.dtype if dtype is None else dtype
        t = self._bufs.get(name)
        if t is None or t.shape != shape or t.dtype != dtype or t.device != like.device:
            t = torch.empty(shape, dtype=dtype, device=like.device)
            self._bufs[name] = t
        return t




class NormalPool:
    """Standard normals for training passes, drawn ahead and read at a random place each step.

    A training step of an analog layer needs a normal per weight (programming error) and per
    (row tile, sample, output) (read noise): at 1024 x 1024, batch 64, two million, which cost
    torch's CPU generator about 5 ms, as much as the layer's matrix products. The pool holds
    ``size`` normals (a step's need rounded up to a multiple of 4096; a power of two before,
    which for some sizes redrew twice what a step needed) drawn from the layer's generator.
    Each step redraws ``refresh`` of it (a rolling window: the whole pool is new every
    ``1 / refresh`` steps) and draws a random offset, sign and row order; a take of ``R`` rows
    of ``L`` normals gives row ``r`` the ``L`` consecutive pool entries (circularly) from
    ``offset + sigma(r) L``, with ``sigma(r) = (m r) mod R`` and ``m`` a random multiplier
    prime to ``R`` (contiguous rows keep the kernels' reads streaming).

    What that changes, and what it does not:

    * within a step (:meth:`new_step` to the next; up to ``size`` normals) every normal is a
      different pool entry, so the normals of one step are independent N(0, 1) draws, exactly;
    * across steps they are not independent: a step reuses most of the previous step's values,
      shifted, in another row order and sign-flipped. Averages over a whole layer (say the
      mean square programming error) vary less from step to step than with fresh draws; the
      noise seen by any one weight or output is still a new N(0, 1) draw at each step as far
      as that weight or output can tell.

    Layers use it in training passes only (``AnalogConfig.normal_pool``); :func:`program` and
    evaluation draw fresh normals.

    Parameters
    ----------
    refresh : float
        Fraction of the pool redrawn at every step, in (0, 1].
    """

    MIN_SIZE = 4096

    def __init__(self, refresh: float = 1 / 16) -> None:
        if not 0 < refresh <= 1:
            raise ValueError(f"refresh must be in (0, 1], got {refresh}")
        self.refresh = float(refresh)
        self.buf: torch.Tensor | None = None
        self._array = self._array_of = None
        self.offset = self.key = self.used = self.takes = 0
        self.sign = 1.0
        self._roll = 0

    @property
    def size(self) -> int:
        return 0 if self.buf is None else self.buf.numel()

    def state_dict(self) -> dict:
        """What a resumed run needs to continue the same stream (between steps): the pool and
        the position of its next refresh."""
        return {"buf": None if self.buf is None else self.buf.clone(), "roll": self._roll,
                "refresh": self.refresh}

    def load_state_dict(self, state: dict) -> None:
        buf = state["buf"]
        self.buf = None if buf is None else buf.clone()
        self._roll, self.refresh = int(state["roll"]), float(state["refresh"])
        self.used = self.takes = 0

    def new_step(self, n: int, like: torch.Tensor, generator: torch.Generator) -> None:
        """Start a step that will take about ``n`` normals (dtype and device of ``like``): the
        pool grows to hold them (a full draw), else ``refresh`` of it is redrawn; a new random
        offset, sign and row order."""
        n = max(int(n), self.MIN_SIZE)
        if (self.buf is None or self.buf.numel() < n or self.buf.dtype != like.dtype
                or self.buf.device != like.device):
            size = -(-n // self.MIN_SIZE) * self.MIN_SIZE
            self.buf = torch.empty(size, dtype=like.dtype, device=like.device).normal_(
                generator=generator)
            self._roll = 0
        else:
            size = self.buf.numel()
            k = max(1, int(round(size * self.refresh)))
            start = self._roll
            first = min(k, size - start)
            self.buf[start:start + first].normal_(generator=generator)
            if k > first:
                self.buf[:k - first].normal_(generator=generator)
            self._roll = (start + k) % size
        r = torch.randint(0, 1 << 30, (3,), generator=generator, device=generator.device).tolist()
        self.offset, self.key = r[0] % size, r[1]
        self.sign = 1.0 if r[2] & 1 else -1.0
        self.used = self.takes = 0

    def array(self) -> np.ndarray:
        """The pool as a numpy array (CPU): the compiled kernels' view, made once per buffer."""
        if self._array_of is not self.buf:
            self._array, self._array_of = self.buf.numpy(), self.buf
        return self._array

    def take(self, rows: int, length: int, generator: torch.Generator,
             like: torch.Tensor) -> tuple[int, int]:
        """Reserve ``rows`` rows of ``length`` normals (dtype and device of ``like``) of this
        step: ``(start, m)``; row ``r`` is ``sign * buf[(start + ((m r) mod rows) length + j)
        mod size]``, ``j < length`` (read with :meth:`normals` or a kernel). A take that runs
        past the pool (or finds none of its dtype) starts a new step (:meth:`new_step`)."""
        n = rows * length
        if (self.buf is None or n > self.size or self.buf.dtype != like.dtype
                or self.buf.device != like.device):
            self.new_step(n, like, generator)
        elif self.used + n > self.size:
            self.new_step(self.size, self.buf, generator)
        start = (self.offset + self.used) % self.size
        self.used += n
        self.takes += 1
        m = 1 + (self.key * (2 * self.takes + 1) + self.takes) % max(rows, 1)
        while math.gcd(m, rows) != 1:
            m += 1
        return start, m % max(rows, 1) if rows > 1 else 0

    def normals(self, shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        """Normals of this step as a tensor of ``shape`` (rows: the leading dimensions; dtype
        and device of ``like``; the torch reading of the pool, any device)."""
        shape = tuple(int(d) for d in shape)
        length = shape[-1] if shape else 1
        rows = 1
        for d in shape[:-1]:
            rows *= d
        start, m = self.take(rows, length, generator, like)
        dev = self.buf.device
        slot = (torch.arange(rows, device=dev) * m) % rows
        idx = (start + slot[:, None] * length + torch.arange(length, device=dev)) % self.size
        return self.buf[idx].mul_(self.sign).reshape(shape)


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

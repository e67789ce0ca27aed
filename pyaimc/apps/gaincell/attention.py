"""Attention cores in torch: exact softmax, sliding-window softmax, and gain-cell analog attention.

A core maps per-head queries, keys and values ``(B, H, T, d)`` to per-head outputs of the same
shape, in two modes that must agree:

- ``forward(q, k, v)``: the whole sequence at once (training, perplexity);
- ``step(q, k, v, state)``: one token ``(B, H, d)`` at a time with an explicit state (generation):
  a growing KV cache (exact), a ring buffer of ``W`` tokens (window), or the gain-cell arrays
  themselves (analog).

The analog core (:class:`GainCellCore`) is the system of Leroux et al. (arXiv 2409.19315):

1. Digital periphery maps each head's ``k`` and ``v`` channel-wise to target voltages
   ``u = v_offset + scale * x + shift`` and the write DAC stores them in the gain cells of the K
   and V arrays, one row of ``d`` cells per token, token ``j`` into row ``j mod W`` (so the
   arrays always hold the last ``W`` tokens). Written values carry write noise and decay
   towards ``v_leak`` with each cell's own time constant until they are overwritten ``W``
   tokens later.
2. The query becomes pulse widths ``p = clip(q_scale * q + q_shift)`` (16 levels in [0, 1] as in
   the paper, or sign-magnitude in two read phases when ``signed_query``); each K cell adds the
   charge ``p * g(v_cell)`` to its row: ``S_j = sum_d p_d g(k_jd)`` (the read transistor's
   non-linear product, :meth:`GainCellModel.read_factor`).
3. The charge-to-pulse converters turn each row's charge into a pulse of width
   ``phi(S) = clip((S - theta) / S_sat, 0, 1)`` (the hard-sigmoid of the paper, in units of
   ``t_max``): this replaces softmax (there is no normalisation and no ADC between the stages).
4. Those pulses drive the V array: ``A_d = sum_j phi_j g(v_jd)``; one ADC per output channel
   (32 levels in [-A_fs, A_fs], ``A_fs`` a per-head reference) and a digital gain and bias per
   channel finish the read-out.

The scales, shifts, ``theta``, the ADC reference and the output gain and bias are the adaptation
parameters (:mod:`pyaimc.apps.gaincell.adapt` sets them); everything else is hardware.
Rounding uses a straight-through gradient, so the core trains as it runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from pyaimc.apps.gaincell.device import GainCellModel


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def _clip01_surrogate(z: torch.Tensor, width: float = 0.1) -> torch.Tensor:
    """``clip(z, 0, 1)`` in the forward pass; in the backward pass the slope of a smoothed clip
    (softplus edges of ``width``), so that pulses stuck at 0 or full scale still pass gradient
    (otherwise a converter that is off for every token can never be trained back on)."""
    smooth = width * (torch.nn.functional.softplus(z / width)
                      - torch.nn.functional.softplus((z - 1.0) / width))
    return smooth + (torch.clamp(z, 0.0, 1.0) - smooth).detach()


# --------------------------------------------------------------------------- digital cores
class SoftmaxCore(nn.Module):
    """Causal softmax attention, full (``window=None``) or over the last ``window`` tokens."""

    def __init__(self, window: int | None = None):
        super().__init__()
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 token, got {window}")
        self.window = window

    def forward(self, q, k, v):
        t = q.shape[-2]
        i = torch.arange(t, device=q.device)
        lag = i[:, None] - i[None, :]
        keep = lag >= 0
        if self.window is not None:
            keep = keep & (lag < self.window)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~keep, float("-inf"))
        return torch.softmax(scores, dim=-1) @ v

    def init_state(self, batch: int, heads: int, dim: int, device=None) -> dict:
        return {"k": [], "v": [], "t": 0}

    def step(self, q, k, v, state: dict):
        state["k"].append(k)
        state["v"].append(v)
        if self.window is not None and len(state["k"]) > self.window:
            # the ring buffer forgets the token that left the window
            state["k"].pop(0)
            state["v"].pop(0)
        state["t"] += 1
        ks = torch.stack(state["k"], dim=-2)
        vs = torch.stack(state["v"], dim=-2)
        scores = (q.unsqueeze(-2) @ ks.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        return (torch.softmax(scores, dim=-1) @ vs).squeeze(-2)


# --------------------------------------------------------------------------- the analog core
@dataclass
class Periphery:
    """The circuits around the gain-cell arrays (normalised units; see :class:`GainCellCore`).

    Attributes
    ----------
    query_levels : int
        Pulse-width levels of a query magnitude (paper: 16 in [0, 1]; 0: no rounding).
    signed_query : bool
        Sign-magnitude queries in two read phases (positive and negative pulses, charges
        subtracted); False: queries clipped to [0, 1] as in the paper.
    s_sat : float
        Charge at which the charge-to-pulse converter saturates, in units of the charge of one
        cell at full-scale input and ``g = 1``, per head dimension (``S_sat = s_sat * d``).
    out_levels : int
        ADC levels of the second stage's outputs in [-1, 1] of full scale (paper: 32).
    out_full_scale : float
        Initial ADC full scale in units of ``W`` cells at full pulse and ``g = 1``
        (``A_fs = out_full_scale * W``); each head's ADC reference is then set by the
        adaptation (``GainCellCore.log_out_range``).
    """

    query_levels: int = 16
    signed_query: bool = True
    s_sat: float = 0.25
    out_levels: int = 32
    out_full_scale: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)


class GainCellCore(nn.Module):
    """Sliding-window attention computed in two gain-cell arrays per head.

    Parameters
    ----------
    heads, dim : int
        Heads and channels per head.
    window : int
        Tokens held by the arrays (rows of each array).
    device_model : GainCellModel
        The gain-cell technology.
    periphery : Periphery, optional
    rng : numpy.random.Generator, optional
        Draws this chip's cells (retention time constants and threshold offsets); seed 0 if
        omitted.
    linear : bool
        The intermediate hardware model of the adaptation: the same mappings, rounding,
        hard-sigmoid and read-out, but ideal linear cells (``g = (u - v_offset) /
        (v_max - v_offset)``) without write noise, decay or mismatch. It is computed with
        matrix products (as fast as softmax attention), so a model can be fine-tuned on it
        at digital speed before it goes onto the gain cells.

    Notes
    -----
    The cells' variation is stored as standard-normal scores, so changing the technology's
    median ``tau`` or spreads (:meth:`set_device_model`) keeps the same chip.
    """

    def __init__(self, heads: int, dim: int, window: int, device_model: GainCellModel,
                 periphery: Periphery | None = None, rng: np.random.Generator | None = None,
                 linear: bool = False):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1 token, got {window}")
        self.heads, self.dim, self.window = heads, dim, window
        self.linear = linear
        self.device_model = device_model
        self.periphery = periphery or Periphery()
        rng = rng if rng is not None else np.random.default_rng(0)
        shape = (4, heads, window, dim)  # tau_k, tau_v, vth_k, vth_v scores
        self.register_buffer("cell_z", torch.zeros(shape))
        self.resample_cells(rng)
        # per-head, per-channel adaptation parameters (the digital periphery); the identity-
        # like defaults are replaced by adapt.map_ranges / adapt.calibrate
        ones = torch.ones(heads, dim)
        zeros = torch.zeros(heads, dim)
        half = device_model.v_max - device_model.v_offset
        self.q_scale = nn.Parameter(ones.clone())
        self.q_shift = nn.Parameter(zeros.clone())
        self.k_scale = nn.Parameter(ones * half)
        self.k_shift = nn.Parameter(zeros.clone())
        self.v_scale = nn.Parameter(ones * half)
        self.v_shift = nn.Parameter(zeros.clone())
        self.theta = nn.Parameter(torch.zeros(heads))
        # per-head ADC full scale (a programmable reference), log-parameterised: positive
        self.log_out_range = nn.Parameter(
            torch.full((heads,), math.log(self.periphery.out_full_scale * window)))
        self.out_gain = nn.Parameter(ones.clone())
        self.out_bias = nn.Parameter(zeros.clone())

    # ------------------------------------------------------------------ the chip
    def resample_cells(self, rng: np.random.Generator) -> None:
        """Draw a new chip: cell-to-cell retention and threshold scores."""
        z = rng.standard_normal(tuple(self.cell_z.shape)).astype(np.float32)
        with torch.no_grad():
            self.cell_z.copy_(torch.from_numpy(z))

    def set_device_model(self, device_model: GainCellModel) -> None:
        self.device_model = device_model

    def cell_parameters(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(tau_k, tau_v, dvth_k, dvth_v)`` of this chip, each ``(heads, window, dim)``, s / V."""
        m = self.device_model
        tau = m.tau * torch.exp(m.tau_sigma_ln * self.cell_z[:2].double()).float()
        tau = torch.clamp(tau, max=1e30)
        dvth = m.vth_sigma * self.cell_z[2:]
        return tau[0], tau[1], dvth[0], dvth[1]

    # ------------------------------------------------------------------ mappings
    def _query_pulses(self, q):
        p = q * self.q_scale[:, None, :] + self.q_shift[:, None, :]
        per = self.periphery
        lo = -1.0 if per.signed_query else 0.0
        p = torch.clamp(p, lo, 1.0)
        if per.query_levels >= 2:
            n = per.query_levels - 1
            p = _ste_round(p * n) / n
        return p

    def _targets(self, x, scale, shift):
        m = self.device_model
        u = m.v_offset + x * scale[:, None, :] + shift[:, None, :]
        u = torch.clamp(u, m.v_min, m.v_max)
        if m.write_levels >= 2:
            step = (m.v_max - m.v_min) / (m.write_levels - 1)
            u = _ste_round((u - m.v_min) / step) * step + m.v_min
        return u

    def _stored(self, u, noise):
        m = self.device_model
        if noise is not None:
            u = torch.clamp(u + noise, m.v_min, m.v_max)
        return u

    def sample_write_noise(self, shape, generator: torch.Generator | None = None):
        """Write noise ``(2, *shape)`` for K and V, V (None if the cells have none)."""
        std = self.device_model.write_noise_std
        if std == 0 or self.linear:
            return None
        return std * torch.randn((2, *shape), generator=generator)

    def _phi(self, s):
        s_sat = self.periphery.s_sat * self.dim
        return _clip01_surrogate((s - self.theta[:, None, None]) / s_sat)

    def _readout(self, a):
        per = self.periphery
        a = a / torch.exp(self.log_out_range)[:, None, None]
        a = torch.clamp(a, -1.0, 1.0)
        if per.out_levels >= 2:
            half = (per.out_levels - 1) / 2
            a = _ste_round(a * half) / half
        return a * self.out_gain[:, None, :] + self.out_bias[:, None, :]

    # ------------------------------------------------------------------ read factor
    def read_table(self) -> tuple[float, float, np.ndarray]:
        """The nominal read factor ``G`` tabulated for the kernels: ``(x0, 1/h, values)``.

        ``G(v - dvth)`` is a cell's read factor; the table spans every gate voltage a cell can
        see (the stored range, the leak target, six sigma of threshold mismatch).
        """
        m = self.device_model
        margin = 6 * m.vth_sigma + 0.01
        lo = min(m.v_min, m.v_leak) - margin
        hi = max(m.v_max, m.v_leak) + margin
        n = 8192
        grid = np.linspace(lo, hi, n)
        values = np.asarray(m.read_factor(grid), dtype=np.float32)
        return float(lo), float((n - 1) / (hi - lo)), values

    @staticmethod
    def _lookup(x, table):
        """Torch version of the kernels' table interpolation (same values, same slopes)."""
        x0, inv_h, values = table
        vals = torch.from_numpy(values)
        n = vals.shape[0]
        f = torch.clamp((x - x0) * inv_h, 0.0, n - 1.0)
        k = torch.clamp(f.detach().floor().long(), max=n - 2)
        a, b = vals[k], vals[k + 1]
        return a + (b - a) * (f - k)

    def decay_table(self, tau: torch.Tensor) -> torch.Tensor:
        """``exp(-lag * token_period / tau)``: ``(heads, rows, lags, dim)`` for cells ``tau``."""
        lag = torch.arange(self.window, dtype=torch.float64) * self.device_model.token_period
        e = torch.exp(-lag[None, None, :, None] / tau.double()[:, :, None, :])
        return e.float()

    # ------------------------------------------------------------------ whole sequence
    def forward(self, q, k, v, write_noise: torch.Tensor | None = None,
                use_kernels: bool = True):
        """Outputs ``(B, H, T, d)`` for the whole sequence.

        Parameters
        ----------
        q, k, v : Tensor (B, H, T, d)
        write_noise : Tensor (2, B, H, T, d), optional
            Write noise of the K and V cells of every token, V (:meth:`sample_write_noise`);
            None: noiseless writes.
        use_kernels : bool
            Compiled kernels (default) or the plain torch formulation (a reference; memory
            and time grow with ``B H T W d``).
        """
        m, w = self.device_model, self.window
        t = q.shape[2]
        p = self._query_pulses(q)
        uk = self._stored(self._targets(k, self.k_scale, self.k_shift),
                          None if write_noise is None else write_noise[0])
        uv = self._stored(self._targets(v, self.v_scale, self.v_shift),
                          None if write_noise is None else write_noise[1])
        if self.linear:
            half = m.v_max - m.v_offset
            i = torch.arange(t)
            lag_ij = i[:, None] - i[None, :]
            keep = ((lag_ij >= 0) & (lag_ij < w)).to(q.dtype)
            s = p @ ((uk - m.v_offset) / half).transpose(-1, -2)
            phi = self._phi(s) * keep
            return self._readout(phi @ ((uv - m.v_offset) / half))
        tau_k, tau_v, dvth_k, dvth_v = self.cell_parameters()
        ek, ev = self.decay_table(tau_k), self.decay_table(tau_v)
        table = self.read_table()
        lag = torch.arange(w)[None, :]
        valid = (torch.arange(t)[:, None] >= lag).to(q.dtype)  # (t, w): token i - lag exists
        if use_kernels:
            from pyaimc.apps.gaincell.kernels import Stage1, Stage2

            s = Stage1.apply(p, uk, ek, dvth_k, m.v_leak, table)
            phi = self._phi(s) * valid
            a = Stage2.apply(phi, uv, ev, dvth_v, m.v_leak, table)
            return self._readout(a)
        # the same in torch: band[b, h, i, d, l] is token i - l (lag l)
        j = torch.arange(t)[:, None] - lag
        row = torch.remainder(j, w)

        def band(x, e, dvth):
            xp = torch.nn.functional.pad(x, (0, 0, w - 1, 0), value=m.v_offset)
            xb = xp.unfold(2, w, 1).flip(-1)  # (b, h, t, d, w), lag order
            eb = e[:, row, lag.expand_as(row), :].permute(0, 1, 3, 2)  # (h, t, d, w)
            vb = dvth[:, row, :].permute(0, 1, 3, 2)
            return self._lookup(m.v_leak + (xb - m.v_leak) * eb - vb, table)

        s = torch.einsum("bhtd,bhtdw->bhtw", p, band(uk, ek, dvth_k))
        phi = self._phi(s) * valid
        return self._readout(torch.einsum("bhtw,bhtdw->bhtd", phi, band(uv, ev, dvth_v)))

    # ------------------------------------------------------------------ generation
    def init_state(self, batch: int, heads: int, dim: int, device=None) -> dict:
        m = self.device_model
        full = torch.full((batch, heads, self.window, dim), float(m.v_offset))
        return {"k": full.clone(), "v": full.clone(), "t": 0}

    def step(self, q, k, v, state: dict, write_noise: torch.Tensor | None = None):
        """One token: the cells decay for one token period, the new K and V rows are written
        into row ``t mod W``, then the query reads both arrays.

        Parameters
        ----------
        q, k, v : Tensor (B, H, d)
        state : dict
            From :meth:`init_state`; updated in place.
        write_noise : Tensor (2, B, H, d), optional
        """
        m, w = self.device_model, self.window
        t = state["t"]
        tau_k, tau_v, dvth_k, dvth_v = self.cell_parameters()
        if self.linear:  # ideal cells: no leakage, no mismatch, no write noise
            tau_k = tau_v = torch.full_like(tau_k, float("inf"))
            dvth_k = dvth_v = torch.zeros_like(dvth_k)
            write_noise = None
        dt = m.token_period
        keep_k = torch.exp(-(dt / tau_k.double())).float()
        keep_v = torch.exp(-(dt / tau_v.double())).float()
        state["k"] = m.v_leak + (state["k"] - m.v_leak) * keep_k
        state["v"] = m.v_leak + (state["v"] - m.v_leak) * keep_v
        row = t % w
        uk = self._targets(k.unsqueeze(-2), self.k_scale, self.k_shift).squeeze(-2)
        uv = self._targets(v.unsqueeze(-2), self.v_scale, self.v_shift).squeeze(-2)
        if write_noise is not None:
            uk = self._stored(uk, write_noise[0])
            uv = self._stored(uv, write_noise[1])
        kk, vv = state["k"].clone(), state["v"].clone()
        kk[:, :, row, :] = uk
        vv[:, :, row, :] = uv
        state["k"], state["v"], state["t"] = kk, vv, t + 1
        p = self._query_pulses(q.unsqueeze(-2))  # (b,h,1,d)
        if self.linear:
            half = m.v_max - m.v_offset
            gk, gv = (kk - m.v_offset) / half, (vv - m.v_offset) / half
        else:
            table = self.read_table()
            gk = self._lookup(kk - dvth_k, table)  # (b,h,w,d)
            gv = self._lookup(vv - dvth_v, table)
        s = (p * gk).sum(-1, keepdim=True).transpose(-1, -2)  # (b,h,1,w)
        valid = (torch.arange(w) <= t).to(q.dtype)  # rows written so far
        phi = self._phi(s) * valid
        a = phi @ gv  # (b,h,1,d)
        return self._readout(a).squeeze(-2)

    def adaptation_parameters(self) -> list[nn.Parameter]:
        return [self.q_scale, self.q_shift, self.k_scale, self.k_shift, self.v_scale,
                self.v_shift, self.theta, self.log_out_range, self.out_gain, self.out_bias]

"""The analog tile core: what every analog product does, written once.

Training (:class:`~pyaimc.analog.linear.AnalogLinear`), deployment
(:class:`~pyaimc.analog.tiles.AnalogTiles`) and the S4D's hardware-aware matrices
(:mod:`pyaimc.s4d.hardware`) differ only in how they lay matrices onto tiles and batch the
products; the physics is here, in :class:`TileCore`, built from a noise model and a config:

* **mapping** (the config's, :mod:`pyaimc.analog.weight_maps`; by default the differential
  pair): per output row ``o`` the scale ``s_o = max_i |w_oi|`` (of the clipped weights when
  the config clips, :meth:`TileCore.clip`); targets ``g+- = g_min + (g_max - g_min)
  max(+-w / s_o, 0)`` (:meth:`TileCore.scales`, :meth:`TileCore.targets`); programmed
  conductances drawn by the noise model's sampler for the configured write scheme
  (:attr:`TileCore.sampler`), then drifted to ``t_inference`` by its retention part
  (:meth:`TileCore.drift`);
* **DAC**: inputs scaled per vector to ``v_max`` (``"abs_max"``) or by a fixed range, then the
  periphery's DAC (:meth:`TileCore.input_voltages`);
* **crossbar**: the noise model's transfer model in torch (:attr:`TileCore.transfer`; None for an
  ideal crossbar or when switched off);
* **read-out**: the noise model's column read noise (:attr:`TileCore.read`) and the periphery's
  ADC (:meth:`TileCore.adc`); outputs scaled back by ``s_o * s_x / ((g_max - g_min) v_max)``
  (:meth:`TileCore.output_gain`).

The noise model builds every sampler and converter; the core only asks for them.
"""

from __future__ import annotations

import math

import torch

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.weight_maps import get_weight_map
from pyaimc.circuit.transfer_torch import TorchTransfer

_TINY = 1e-12


def adc_range(noise_model, rows_used: int) -> float:
    """ADC full scale (A) of a tile of which ``rows_used`` rows carry cells.

    The export's rule ``i_max ~ sqrt(rows)`` applied to the rows in use: a read-out gain per
    tile. With the full-tile range a 2-row tile (the S4D ``A`` blocks) would resolve its outputs
    with about 3 bits of an 8-bit ADC.
    """
    rows = noise_model.tile.rows
    return noise_model.adc.i_max * math.sqrt(min(int(rows_used), rows) / rows)


def transfer_for(noise_model, config: AnalogConfig) -> TorchTransfer | None:
    """The noise model's transfer model in torch, or None for an ideal crossbar (or when off)."""
    if not (config.transfer and noise_model.transfer is not None):
        return None
    p = noise_model.transfer.to_torch()
    return None if (p.is_linear and p.i_sat is None) else p


def tile_compensation(d0: torch.Tensor, dt: torch.Tensor, rows: int, cols: int
                      ) -> torch.Tensor:
    """Global drift compensation gains of the tiles of pair differences ``d = g+ - g-``
    (..., out, in; S) read right after programming (``d0``) and later (``dt``).

    A reference read puts the same voltage on every row of a tile; the gain of the tile is
    ``sum_o |I_o(0)| / sum_o |I_o(t)|`` over its column pairs ``o`` (1 where the later read is
    empty). Tiles hold ``rows`` inputs and ``cols`` outputs.

    Returns
    -------
    Tensor (..., row_tiles, col_tiles * cols)
        The gain of each output's tile, per row tile (outputs padded to whole tiles).
    """
    out_f, in_f = d0.shape[-2:]
    tr, tc = math.ceil(in_f / rows), math.ceil(out_f / cols)

    def reference(d):
        d = torch.nn.functional.pad(d, (0, tr * rows - in_f, 0, tc * cols - out_f))
        cur = d.reshape(*d.shape[:-1], tr, rows).sum(dim=-1).abs()      # (..., O, tr)
        return cur.reshape(*cur.shape[:-2], tc, cols, tr).sum(dim=-2)  # (..., tc, tr)

    r0, rt = reference(d0), reference(dt)
    gain = torch.where(rt > _TINY * 1e-6, r0 / rt.clamp_min(_TINY * 1e-6), torch.ones_like(rt))
    return gain.transpose(-1, -2).repeat_interleave(cols, dim=-1)       # (..., tr, tc * cols)


class TileCore:
    """The physics of a tile design: a noise model read through an :class:`AnalogConfig`.

    Parameters
    ----------
    noise_model : NoiseModel
    config : AnalogConfig, optional
        Default: every non-ideality.
    rows_used : int, optional
        Rows of a tile that carry cells (the ADC range follows them, :func:`adc_range`);
        default all.

    Attributes
    ----------
    rows, cols : int
        The physical tile.
    g_min, span : float
        Window low end and width, S.
    v_max : float
        DAC full scale, V.
    i_max : float
        ADC full scale of the rows in use, A.
    sampler : programming sampler or None
        The noise model's sampler of the configured scheme (None without programming noise).
    read : column read noise
    transfer : TorchTransfer or None
    mapping : WeightMap
        The config's weight-to-conductance mapping (:mod:`pyaimc.analog.weight_maps`).
    """

    def __init__(self, noise_model, config: AnalogConfig | None = None,
                 rows_used: int | None = None):
        self.noise_model = noise_model
        self.config = config if config is not None else AnalogConfig()
        cfg = self.config
        self.rows, self.cols = noise_model.tile.rows, noise_model.tile.cols
        w = noise_model.window
        self.g_min, self.g_max = w.g_min, w.g_max
        self.span = w.g_max - w.g_min
        self.v_max = noise_model.dac.v_max
        self.i_max = adc_range(noise_model, self.rows if rows_used is None else rows_used)
        self.sampler = (noise_model.programming_sampler(cfg.programming_method, cfg.stuck_cells)
                        if cfg.programming_noise else None)
        self.read = noise_model.read_noise_sampler()
        self.transfer = transfer_for(noise_model, cfg)
        self.mapping = get_weight_map(cfg.mapping, self, **cfg.mapping_options)

    @property
    def reads_noise(self) -> bool:
        """Whether products get read noise."""
        return self.config.read_noise and self.read.active

    def sampler_for(self, scheme: str | None):
        """The sampler of another write scheme (None: the configured one)."""
        if scheme is None or not self.config.programming_noise:
            return self.sampler
        return self.noise_model.programming_sampler(scheme, self.config.stuck_cells)

    # ------------------------------------------------------------------ mapping
    @staticmethod
    def scales(w: torch.Tensor) -> torch.Tensor:
        """Output scales ``max_i |w_oi|`` (..., out) of matrices ``w`` (..., out, in), detached."""
        w = w.detach()
        # two plain reductions: several times faster than vector_norm(inf) or abs().amax()
        return torch.maximum(w.amax(dim=-1), -w.amin(dim=-1)).clamp_min(_TINY)

    def clip(self, w: torch.Tensor) -> torch.Tensor:
        """The weights ``w`` (..., out, in) clipped as the config says (``w`` itself when it
        does not): at ``+-weight_clip_value`` or at ``weight_clip_value`` standard deviations
        of the matrix's weights (the bound detached; aihwkit's layer-Gaussian clipping)."""
        cfg = self.config
        if cfg.weight_clip is None:
            return w
        if cfg.weight_clip == "fixed":
            return w.clamp(-cfg.weight_clip_value, cfg.weight_clip_value)
        flat = w.detach().reshape(*w.shape[:-2], -1)
        if flat.shape[-1] < 2:
            return w
        bound = (cfg.weight_clip_value * flat.std(dim=-1)).clamp_min(_TINY)[..., None, None]
        return torch.minimum(torch.maximum(w, -bound), bound)

    def _squeeze(self, pair: tuple) -> tuple:
        """(P, ...) cells of the mapping as the layers hold them: (...) for one pair."""
        return tuple(g[0] for g in pair) if self.mapping.n_pairs == 1 else pair

    def targets(self, w: torch.Tensor, scale: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Target conductances ``g+``, ``g-`` (S; shape of ``w``, differentiable in it), or the
        mapping's ``(g_a, g_b)`` (P, ...) when it has ``P > 1`` pairs per weight."""
        scale = self.scales(w) if scale is None else scale
        wn = w / scale.unsqueeze(-1)
        if self.mapping.native:
            return self.mapping.pair_targets(wn)
        return self._squeeze(self.mapping.targets(wn.clamp(-1.0, 1.0), self.cols))

    def _programmed(self, w, scale, sampler, generator):
        """Programmed cells at the instant of programming (shapes as :meth:`targets`)."""
        # clipping is exact for weights inside their scale: only learned scales change anything
        wn = (w / scale.unsqueeze(-1)).clamp(-1.0, 1.0)
        if self.mapping.native:
            if sampler is None:
                return self.mapping.pair_targets(wn)
            return sampler.sample_cells(wn, generator)
        return self._squeeze(self.mapping.program(wn.clamp(-1.0, 1.0), sampler, generator,
                                                  self.cols))

    def difference(self, g_a: torch.Tensor, g_b: torch.Tensor) -> torch.Tensor:
        """The conductance difference each weight presents, ``sum_k c_k (g_a_k - g_b_k)`` (S;
        ``g_a - g_b`` for one pair of gain 1)."""
        if self.mapping.native:
            return g_a - g_b
        if self.mapping.n_pairs == 1:
            return self.mapping.gains[0] * (g_a - g_b)
        return self.mapping.combine(g_a, g_b)

    @torch.no_grad()
    def program(self, w: torch.Tensor, generator: torch.Generator | None,
                scheme: str | None = None, scale: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One programmed instance ``g+``, ``g-`` (S) of ``w`` at ``t_inference``.

        Programming error drawn by the noise model's sampler (the targets without programming
        noise), then the retention part's drift to the configured time after programming.
        """
        scale = self.scales(w) if scale is None else scale
        g_pos, g_neg = self._programmed(w, scale, self.sampler_for(scheme), generator)
        return self.drift(g_pos, generator), self.drift(g_neg, generator)

    def drift(self, g: torch.Tensor, generator: torch.Generator | None,
              t: float | None = None) -> torch.Tensor:
        """Conductances ``g`` (S) at ``t`` (default ``t_inference``) after programming (noise
        model's retention)."""
        retention = self.noise_model.retention
        t = self.config.t_inference if t is None else float(t)
        if getattr(retention, "is_identity", False) or t == 0:
            return g
        return retention.torch_drift(g, t, generator)

    @property
    def drifts(self) -> bool:
        """Whether programmed conductances change before they are read."""
        return not getattr(self.noise_model.retention, "is_identity", False) and \
            self.config.t_inference > 0

    @torch.no_grad()
    def program_compensated(self, w: torch.Tensor, generator: torch.Generator | None,
                            scheme: str | None = None, scale: torch.Tensor | None = None,
                            rows: int | None = None, cols: int | None = None):
        """As :meth:`program`, plus the global drift compensation of each tile.

        Returns
        -------
        g_pos, g_neg : Tensor (shape of ``w``), S, at ``t_inference``
        alpha : Tensor (..., row_tiles, col_tiles * cols)
            Output gain of each tile (1 without drift or compensation); tiles of ``rows``
            inputs and ``cols`` outputs (default the physical tile).
        """
        scale = self.scales(w) if scale is None else scale
        g0_pos, g0_neg = self._programmed(w, scale, self.sampler_for(scheme), generator)
        g_pos, g_neg = self.drift(g0_pos, generator), self.drift(g0_neg, generator)
        rows = self.rows if rows is None else rows
        cols = self.cols if cols is None else cols
        d0 = self.difference(g0_pos, g0_neg)
        if self.config.drift_compensation and self.drifts:
            alpha = tile_compensation(d0, self.difference(g_pos, g_neg), rows, cols)
        else:
            alpha = tile_compensation(d0, d0, rows, cols)
        return g_pos, g_neg, alpha

    def training_time(self, generator: torch.Generator | None) -> float | None:
        """A time after programming (s) for one training step: log-uniform in ``t_train``, or
        None (no drift in training)."""
        t = self.config.t_train
        if t is None or getattr(self.noise_model.retention, "is_identity", False):
            return None
        # on the generator's device: a CUDA generator cannot draw on the CPU
        u = float(torch.rand((), generator=generator, dtype=torch.float64,
                             device=None if generator is None else generator.device))
        return float(math.exp(math.log(t[0]) + u * (math.log(t[1]) - math.log(t[0]))))

    # ------------------------------------------------------------------ converters
    def input_voltages(self, x: torch.Tensor, grad: bool = True,
                       input_range: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Row voltages (shape of ``x``; V) after scaling and the DAC, and the input scales
        (``x.shape[:-1] + (1,)``).

        ``grad`` False converts in place without building a graph (deployment).
        ``input_range`` is the layer's learned range (a 0-d tensor) for ``"learned"`` scaling.
        """
        cfg = self.config
        if cfg.input_scaling == "learned":
            if input_range is None:
                raise ValueError("input_scaling 'learned' needs the layer's input_range")
            if grad:
                v = scale_clip(x, input_range, cfg.input_range_decay,
                               cfg.input_range_min_inside) * self.v_max
            else:
                v = (x * (self.v_max / input_range.detach())).clamp_(-self.v_max, self.v_max)
            x_scale = input_range.expand(x[..., :1].shape)
            if cfg.dac:
                v = self.noise_model.periphery.torch_dac(v, inplace=True, grad=grad)
            return v, x_scale
        if cfg.input_scaling == "abs_max":
            x_scale = x.detach().abs().amax(dim=-1, keepdim=True).clamp_min(_TINY)
            v = x * (self.v_max / x_scale) if not grad else x / x_scale * self.v_max
        else:
            x_scale = torch.full_like(x[..., :1], cfg.input_range)
            if grad:
                v = (x / cfg.input_range).clamp(-1.0, 1.0) * self.v_max
            else:
                v = (x * (self.v_max / cfg.input_range)).clamp_(-self.v_max, self.v_max)
        if cfg.dac:
            v = self.noise_model.periphery.torch_dac(v, inplace=True, grad=grad)
        return v, x_scale

    def adc(self, i: torch.Tensor, grad: bool = True) -> torch.Tensor:
        """Column-pair currents (A) through the ADC of the rows in use, in place (``i`` must not
        be needed by a backward; identity when the ADC is off). ``grad`` False: no graph."""
        if not self.config.adc:
            return i
        return self.noise_model.periphery.torch_adc(i, self.i_max, inplace=True, grad=grad)

    def adc_steps(self):
        """The ADC as ``(full_scale, step)`` (A) for the compiled read-out; None when the
        config leaves it off; False when the periphery is not a :class:`DacAdc` (its
        ``torch_adc`` is then the only reading)."""
        if not self.config.adc:
            return None
        from pyaimc.noise.periphery import DacAdc

        periphery = self.noise_model.periphery
        if type(periphery) is not DacAdc:
            return False
        bits = periphery.adc.bits
        if bits is None:
            return None
        return float(self.i_max), float(self.i_max) / (2 ** (bits - 1) - 1)

    def dac_step(self) -> float:
        """The DAC's voltage step (V): ``v_max / (2**(bits-1) - 1)``; ``v_max / 127`` when the
        config leaves the DAC off or the periphery has none of known resolution (the bf16
        products scale the row voltages by its inverse: DAC codes up to 256 are exact there)."""
        from pyaimc.noise.periphery import DacAdc

        periphery = self.noise_model.periphery
        bits = periphery.dac.bits if type(periphery) is DacAdc and self.config.dac else None
        return self.v_max / (2 ** (bits - 1) - 1 if bits is not None else 127)

    def output_gain(self) -> float:
        """``1 / ((g_max - g_min) v_max)``: current (A) to weight-times-input units."""
        return 1.0 / (self.span * self.v_max)


class _ScaleClip(torch.autograd.Function):
    """``clamp(x / r, -1, 1)`` with the learned range ``r``'s gradient as the clip gives it,
    plus ``decay * r`` while at least ``min_inside`` of the inputs lie inside the range (what
    pulls an unused range back, after aihwkit's input-range learning)."""

    @staticmethod
    def forward(ctx, x, r, decay, min_inside):
        y = x / r
        inside = y.abs() <= 1.0
        ctx.save_for_backward(y, inside, r)
        ctx.decay, ctx.min_inside = decay, min_inside
        return y.clamp(-1.0, 1.0)

    @staticmethod
    def backward(ctx, grad):
        y, inside, r = ctx.saved_tensors
        grad_x = grad * inside / r
        grad_r = -(grad * y * inside).sum() / r
        if ctx.decay and inside.float().mean() >= ctx.min_inside:
            grad_r = grad_r + ctx.decay * r
        return grad_x, grad_r.reshape(r.shape), None, None


def scale_clip(x: torch.Tensor, r: torch.Tensor, decay: float = 0.0,
               min_inside: float = 1.0) -> torch.Tensor:
    """``x / r`` clipped to [-1, 1] with a trainable range ``r`` (0-d tensor; see
    :class:`_ScaleClip`)."""
    return _ScaleClip.apply(x, r, float(decay), float(min_inside))

"""The analog tile core: what every analog product does, written once.

Training (:class:`~pyaimc.analog.linear.AnalogLinear`), deployment
(:class:`~pyaimc.analog.tiles.AnalogTiles`) and the S4D's hardware-aware matrices
(:mod:`pyaimc.s4d.hardware`) differ only in how they lay matrices onto tiles and batch the
products; the physics is here, in :class:`TileCore`, built from a noise model and a config:

* **mapping** (differential pair): per output row ``o`` the scale ``s_o = max_i |w_oi|``;
  targets ``g+- = g_min + (g_max - g_min) max(+-w / s_o, 0)`` (:meth:`TileCore.scales`,
  :meth:`TileCore.targets`); programmed conductances drawn by the noise model's sampler for the
  configured write scheme (:attr:`TileCore.sampler`), then drifted to ``t_inference`` by its
  retention part (:meth:`TileCore.drift`);
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

    def targets(self, w: torch.Tensor, scale: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Target conductances ``g+``, ``g-`` (S; shape of ``w``, differentiable in it)."""
        scale = self.scales(w) if scale is None else scale
        wn = w / scale.unsqueeze(-1)
        return (self.g_min + self.span * wn.clamp(min=0.0),
                self.g_min + self.span * (-wn).clamp(min=0.0))

    @torch.no_grad()
    def program(self, w: torch.Tensor, generator: torch.Generator | None,
                scheme: str | None = None, scale: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One programmed instance ``g+``, ``g-`` (S) of ``w`` at ``t_inference``.

        Programming error drawn by the noise model's sampler (the targets without programming
        noise), then the retention part's drift to the configured time after programming.
        """
        scale = self.scales(w) if scale is None else scale
        sampler = self.sampler_for(scheme)
        if sampler is None:
            g_pos, g_neg = self.targets(w, scale)
        else:
            g_pos, g_neg = sampler.sample_cells(w / scale.unsqueeze(-1), generator)
        return self.drift(g_pos, generator), self.drift(g_neg, generator)

    def drift(self, g: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Conductances ``g`` (S) at ``t_inference`` after programming (noise model's retention)."""
        retention = self.noise_model.retention
        if getattr(retention, "is_identity", False) or self.config.t_inference == 0:
            return g
        return retention.torch_drift(g, self.config.t_inference, generator)

    # ------------------------------------------------------------------ converters
    def input_voltages(self, x: torch.Tensor, grad: bool = True
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Row voltages (shape of ``x``; V) after scaling and the DAC, and the input scales
        (``x.shape[:-1] + (1,)``).

        ``grad`` False converts in place without building a graph (deployment).
        """
        cfg = self.config
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

    def output_gain(self) -> float:
        """``1 / ((g_max - g_min) v_max)``: current (A) to weight-times-input units."""
        return 1.0 / (self.span * self.v_max)

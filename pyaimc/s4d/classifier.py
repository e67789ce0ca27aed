"""A small sequence classifier around S4D: encoder, S4D blocks, mean (or last-step) pooling,
decoder.

Every dense layer is made by a ``linear_factory(in_features, out_features, name)`` so that the
layers can be swapped without touching the model: :func:`quant_linear_factory` (the default)
makes fake-quantized layers, a hardware-aware run passes a factory of behavioral analog layers.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pyaimc.s4d.config import ModelConfig, QuantConfig
from pyaimc.s4d.quant import ActQuantizer, Precision, WeightQuantizer
from pyaimc.s4d.s4d import S4D

LinearFactory = Callable[[int, int, str], nn.Module]


class QuantLinear(nn.Linear):
    """``nn.Linear`` with fake-quantized weights (per output row) and inputs (DAC).

    Parameters
    ----------
    in_features, out_features : int
    precision : None, int or "ternary"
        Weight precision.
    act_bits : int or None
        Input precision.
    """

    def __init__(self, in_features: int, out_features: int, precision: Precision = None,
                 act_bits: int | None = None, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.weight_quant = WeightQuantizer(precision, channel_dim=0)
        self.input_quant = ActQuantizer(act_bits)

    def effective_weight(self) -> torch.Tensor:
        """The weight matrix as programmed: ``(out_features, in_features)``."""
        return self.weight_quant(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quant(x), self.effective_weight(), self.bias)


def quant_linear_factory(quant: QuantConfig) -> LinearFactory:
    """Factory of :class:`QuantLinear` layers at the ``dense`` and ``act`` precisions."""
    def make(in_features: int, out_features: int, name: str) -> nn.Module:
        return QuantLinear(in_features, out_features, quant.dense, quant.act)
    return make


class S4DBlock(nn.Module):
    """S4D -> GELU -> dropout -> dense ``H -> 2H`` -> GLU -> dropout, residual, norm.

    Works on ``(batch, L, H)``; ``prenorm`` normalizes the block input instead of its output.
    """

    def __init__(self, model: ModelConfig, quant: QuantConfig, linear_factory: LinearFactory,
                 name: str):
        super().__init__()
        H = model.d_model
        self.ssm = S4D(H, model.d_state, model.init, model.discretization, model.dt_min,
                       model.dt_max, quant.a, quant.b, quant.c, quant.act, quant.state)
        self.glu = linear_factory(H, 2 * H, f"{name}.glu")
        self.norm = nn.LayerNorm(H) if model.norm == "layer" else nn.BatchNorm1d(H)
        self.dropout = nn.Dropout(model.dropout)
        self.prenorm = model.prenorm

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.norm, nn.BatchNorm1d) and x.dim() == 3:
            return self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self._norm(x) if self.prenorm else x
        z = self.ssm(z.transpose(1, 2)).transpose(1, 2)
        z = self.dropout(F.gelu(z))
        z = self.dropout(F.glu(self.glu(z), dim=-1))
        x = x + z
        return x if self.prenorm else self._norm(x)


class S4DClassifier(nn.Module):
    """Encoder (dense, per step) -> S4D blocks -> mean over time -> decoder (dense).

    Input ``(batch, L, d_input)``, output logits ``(batch, n_classes)``.
    """

    def __init__(self, d_input: int, n_classes: int, model: ModelConfig, quant: QuantConfig,
                 linear_factory: LinearFactory):
        super().__init__()
        self.encoder = linear_factory(d_input, model.d_model, "encoder")
        self.blocks = nn.ModuleList(S4DBlock(model, quant, linear_factory, f"blocks.{i}")
                                    for i in range(model.n_layers))
        self.decoder = linear_factory(model.d_model, n_classes, "decoder")
        self.pool = getattr(model, "pool", "mean")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(x)
        for block in self.blocks:
            x = block(x)
        return self.decoder(x[:, -1] if self.pool == "last" else x.mean(dim=1))


def build_model(config, d_input: int, n_classes: int, seed: int | None = None,
                linear_factory: LinearFactory | None = None) -> S4DClassifier:
    """The classifier described by ``config``, initialized from ``seed`` (default ``config.seed``).

    Parameters
    ----------
    config : RunConfig
    d_input, n_classes : int
        Features per time step and number of classes.
    seed : int, optional
    linear_factory : callable, optional
        ``linear_factory(in_features, out_features, name) -> nn.Module`` for every dense layer
        (``name`` is ``"encoder"``, ``"blocks.<i>.glu"`` or ``"decoder"``). Default:
        :func:`quant_linear_factory` of ``config.quant``. The returned module maps
        ``(..., in_features)`` to ``(..., out_features)``; for step-mode deployment it should
        have ``effective_weight()`` (else ``.weight`` is used), ``bias`` and optionally
        ``input_quant``.
    """
    factory = linear_factory or quant_linear_factory(config.quant)
    with torch.random.fork_rng(devices=[]):
        # The initializers draw from torch's global generator; fork_rng leaves the caller's alone.
        torch.manual_seed(config.seed if seed is None else seed)
        return S4DClassifier(d_input, n_classes, config.model, config.quant, factory)

"""Structured pruning: remove whole state modes and whole channels, then fine-tune.

Pruned units are removed, not masked: the pruned model is exactly the model
:func:`pruned_config` describes, so its tiles shrink and a checkpoint of it loads into
``build_model(pruned_config(config), ...)``.

* State modes. Every channel keeps the same number ``d_state / 2`` of complex modes (so the
  tiles stay rectangular), chosen per channel by the energy of the mode's impulse response,
  ``sum_l |C_n Bbar_n Abar_n^l|^2 = |C_n Bbar_n|^2 / (1 - |Abar_n|^2)``: a mode that is weakly
  driven, weakly read or decays fast contributes little to the kernel.
* Channels. Channel ``h`` of the residual stream is scored by how strongly it is read: the
  norm of column ``h`` of every block's GLU weights and of the decoder weights, each divided by
  the mean column norm of its matrix and summed. The lowest-scoring channels are removed from
  the encoder output, every block (SSM, GLU rows and columns, norm) and the decoder input.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from pyaimc.s4d.classifier import S4DClassifier

from pyaimc.s4d.s4d import S4D

_SSM_MODE_PARAMS = ("log_A_real", "A_imag", "B", "C")
_SSM_CHANNEL_PARAMS = ("log_dt", "log_A_real", "A_imag", "B", "C", "D")


def pruned_config(config):
    """``config`` with the model sizes after pruning (unchanged when nothing is pruned)."""
    p = config.prune
    model = replace(config.model, d_state=p.d_state or config.model.d_state,
                    d_model=p.d_model or config.model.d_model)
    return replace(config, model=model)


def prunes(config) -> bool:
    """Whether ``config`` asks for any pruning."""
    return config.prune.d_state is not None or config.prune.d_model is not None


def _select(module: nn.Module, name: str, index: torch.Tensor, dim: int) -> None:
    """Keep ``index`` along ``dim`` of a parameter or buffer, replacing the tensor (new shape)."""
    tensor = getattr(module, name)
    kept = tensor.detach().index_select(dim, index).clone()
    if isinstance(tensor, nn.Parameter):
        setattr(module, name, nn.Parameter(kept, requires_grad=tensor.requires_grad))
    else:
        setattr(module, name, kept)


@torch.no_grad()
def mode_energy(ssm: S4D) -> torch.Tensor:
    """Impulse-response energy of each complex mode, shape ``(H, N/2)``."""
    # eval mode: the clean (quantized) matrices, not a draw of a hardware-aware noise module
    was_training = ssm.training
    Abar, Bbar, C = ssm.eval().discrete()
    ssm.train(was_training)
    # A quantized Abar may reach |Abar| >= 1; the clamp keeps such modes at the top of the ranking.
    return (C * Bbar).abs() ** 2 / (1 - Abar.abs() ** 2).clamp_min(1e-6)


@torch.no_grad()
def prune_states(model: S4DClassifier, d_state: int) -> S4DClassifier:
    """Keep the ``d_state / 2`` most energetic modes of every channel (in place)."""
    for block in model.blocks:
        ssm = block.ssm
        keep = mode_energy(ssm).topk(d_state // 2, dim=1).indices.sort(dim=1).values
        for name in _SSM_MODE_PARAMS:
            param = getattr(ssm, name)
            index = keep if param.dim() == 2 else keep.unsqueeze(-1).expand(-1, -1, 2)
            setattr(ssm, name, nn.Parameter(param.gather(1, index).clone()))
    return model


@torch.no_grad()
def channel_importance(model: S4DClassifier) -> torch.Tensor:
    """Score of each residual channel (see the module docstring), shape ``(H,)``."""
    score = 0
    for layer in [block.glu for block in model.blocks] + [model.decoder]:
        norms = layer.weight.norm(dim=0)
        score = score + norms / norms.mean().clamp_min(1e-12)
    return score


def _slice_linear(layer: nn.Module, rows: torch.Tensor | None, cols: torch.Tensor | None):
    if rows is not None:
        _select(layer, "weight", rows, 0)
        if layer.bias is not None:
            _select(layer, "bias", rows, 0)
        layer.out_features = len(rows)
    if cols is not None:
        _select(layer, "weight", cols, 1)
        layer.in_features = len(cols)


@torch.no_grad()
def prune_channels(model: S4DClassifier, d_model: int) -> S4DClassifier:
    """Keep the ``d_model`` most important residual channels (in place)."""
    H = model.encoder.weight.shape[0]
    keep = channel_importance(model).topk(d_model).indices.sort().values
    _slice_linear(model.encoder, keep, None)
    for block in model.blocks:
        for name in _SSM_CHANNEL_PARAMS:
            _select(block.ssm, name, keep, 0)
        _slice_linear(block.glu, torch.cat([keep, keep + H]), keep)  # value and gate halves
        norm = block.norm
        names = ["weight", "bias"] + (["running_mean", "running_var"]
                                      if isinstance(norm, nn.BatchNorm1d) else [])
        for name in names:
            _select(norm, name, keep, 0)
        if isinstance(norm, nn.LayerNorm):
            norm.normalized_shape = (d_model,)
        else:
            norm.num_features = d_model
    _slice_linear(model.decoder, None, keep)
    return model


def prune_model(model: S4DClassifier, config) -> S4DClassifier:
    """Apply the state and channel pruning asked for by ``config.prune`` (in place)."""
    if config.prune.d_state is not None:
        prune_states(model, config.prune.d_state)
    if config.prune.d_model is not None:
        prune_channels(model, config.prune.d_model)
    return model

"""Fake quantization with straight-through gradients.

Weights are quantized per channel (one scale per output row), activations and the recurrent state
per tensor with a range tracked during training. The forward pass sees the quantized values the
crossbar would hold or the DAC would drive; the backward pass treats rounding as the identity
(straight-through estimator, STE), so the float "shadow" weights keep learning.

Precision is given as ``None`` (no quantization, float), an integer number of bits ``n`` (2..16),
or ``"ternary"``.

* ``n`` bits, symmetric and mid-tread: levels ``k * s`` for integers ``|k| <= 2**(n-1) - 1``,
  i.e. ``2**n - 1`` levels including zero (a differential pair of cells represents signed values
  symmetrically). Weights use ``s = max|w| / (2**(n-1) - 1)`` per channel, so nothing is clipped
  and the weight gradient is exactly the identity.
* ternary: levels ``{-a, 0, +a}`` per channel with the rule of ternary weight networks: threshold
  ``delta = 0.7 * mean|w|``, weights with ``|w| > delta`` become ``sign(w) * a`` and the others 0,
  with ``a = mean(|w| over |w| > delta)`` (the least-squares scale for that support). Gradient:
  identity.
* activations and the state (:class:`ActQuantizer`): ``n`` bits over ``[-r, r]`` where ``r`` is
  an exponential moving average of the batch's ``max|x|`` during training and frozen at eval.
  Values outside ``[-r, r]`` are clipped and get zero gradient (they saturate the DAC); inside,
  the gradient is the identity.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import nn

Precision = Union[int, str, None]

TERNARY_THRESHOLD = 0.7  # delta = 0.7 * mean|w|: the TWN approximation of the optimal threshold
MIN_BITS, MAX_BITS = 2, 16


def check_precision(precision: Precision, name: str, allow_ternary: bool = True) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``precision`` is a supported value."""
    if precision is None:
        return
    if precision == "ternary" and allow_ternary:
        return
    if isinstance(precision, bool) or not isinstance(precision, int) \
            or not MIN_BITS <= precision <= MAX_BITS:
        allowed = f"null, an integer number of bits {MIN_BITS}..{MAX_BITS}"
        allowed += ' or "ternary"' if allow_ternary else ""
        raise ValueError(f"{name}: must be {allowed}, got {precision!r}")


def _straight_through(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Value ``q``, gradient of ``x``: ``q + (x - x)`` keeps ``q`` bit-exact (on the grid)."""
    return q.detach() + (x - x.detach())


def _reduce_dims(x: torch.Tensor, channel_dim: int) -> list[int]:
    channel_dim = channel_dim % x.dim()
    return [d for d in range(x.dim()) if d != channel_dim]


def quantize_weight_nbit(w: torch.Tensor, bits: int, channel_dim: int = 0) -> torch.Tensor:
    """Symmetric per-channel ``bits``-bit fake quantization (max scaling, STE gradient).

    Parameters
    ----------
    w : Tensor
        Weights; every index along ``channel_dim`` gets its own scale.
    bits : int
        Number of bits; ``2**bits - 1`` levels.
    channel_dim : int
        Dimension of the output channels.
    """
    qmax = 2 ** (bits - 1) - 1
    dims = _reduce_dims(w, channel_dim)
    # The scale is a constant for the gradient: the STE passes dL/dq straight to w.
    scale = w.detach().abs().amax(dim=dims, keepdim=True).clamp_min(1e-12) / qmax
    return _straight_through(w, torch.round(w.detach() / scale) * scale)


def quantize_weight_ternary(w: torch.Tensor, channel_dim: int = 0) -> torch.Tensor:
    """Per-channel ternary fake quantization to ``{-a, 0, +a}`` (TWN rule, STE gradient)."""
    dims = _reduce_dims(w, channel_dim)
    mag = w.detach().abs()
    delta = TERNARY_THRESHOLD * mag.mean(dim=dims, keepdim=True)
    support = mag > delta
    count = support.sum(dim=dims, keepdim=True).clamp_min(1)
    alpha = (mag * support).sum(dim=dims, keepdim=True) / count
    return _straight_through(w, torch.sign(w.detach()) * support * alpha)


def quantize_weight(w: torch.Tensor, precision: Precision, channel_dim: int = 0) -> torch.Tensor:
    """Dispatch on ``precision`` (``None``: unchanged)."""
    if precision is None:
        return w
    if precision == "ternary":
        return quantize_weight_ternary(w, channel_dim)
    return quantize_weight_nbit(w, int(precision), channel_dim)


class WeightQuantizer(nn.Module):
    """Module form of :func:`quantize_weight`, so a part's weights can be wrapped or replaced.

    Parameters
    ----------
    precision : None, int or "ternary"
    channel_dim : int
        Dimension holding the output channels (one scale each).
    """

    def __init__(self, precision: Precision = None, channel_dim: int = 0):
        super().__init__()
        check_precision(precision, "precision")
        self.precision = precision
        self.channel_dim = channel_dim

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return quantize_weight(w, self.precision, self.channel_dim)

    def extra_repr(self) -> str:
        return f"precision={self.precision!r}, channel_dim={self.channel_dim}"


class ActQuantizer(nn.Module):
    """Per-tensor symmetric fake quantization of activations (a DAC of ``bits`` bits).

    The range ``r`` (buffer ``range``) follows an exponential moving average of the batch's
    ``max|x|`` in training mode and stays fixed in eval mode, so a deployed step-by-step run sees
    exactly the grid the conv-mode evaluation saw. With ``bits=None`` the module is the identity.

    Parameters
    ----------
    bits : int or None
    momentum : float
        Weight of the new batch in the moving average (the first batch sets the range).
    """

    def __init__(self, bits: int | None = None, momentum: float = 0.1):
        super().__init__()
        check_precision(bits, "bits", allow_ternary=False)
        self.bits = bits
        self.momentum = momentum
        self.register_buffer("range", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return x
        if self.training:
            batch_max = x.detach().abs().max().to(self.range.dtype)
            if bool(self.initialized):
                self.range.mul_(1 - self.momentum).add_(self.momentum * batch_max)
            else:
                self.range.copy_(batch_max)
                self.initialized.fill_(True)
        r = self.range.to(x.dtype).clamp_min(1e-12)
        scale = r / (2 ** (self.bits - 1) - 1)
        # clamp has zero gradient outside [-r, r] (saturation) and identity inside.
        clipped = torch.clamp(x, -r, r)
        return _straight_through(clipped, torch.round(clipped.detach() / scale) * scale)

    def extra_repr(self) -> str:
        return f"bits={self.bits!r}"

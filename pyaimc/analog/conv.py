"""Analog convolutions: ``AnalogConv1d`` and ``AnalogConv2d``, unrolled onto tiles (im2col).

A crossbar computes matrix-vector products, so a convolution runs as the hardware unrolls it:
each kernel (``C_in * k`` or ``C_in * kh * kw`` weights) is one output row of a matrix
``(C_out, C_in * prod(kernel))``, programmed once, and every input patch (the values under the
kernel at one output position) is one input vector, read through the tile core like any
:class:`~pyaimc.analog.linear.AnalogLinear` input: per-patch scaling and DAC, the same
programmed conductances for every position of a forward pass, read noise per read, the ADC per
column pair. The layer *is* an ``AnalogLinear`` over the patches (``in_features = C_in *
prod(kernel)``), so programming, saving, the mappings and the clipping options all apply.

The weight is kept in the crossbar layout ``(C_out, C_in * prod(kernel))`` (the row order of
``torch.nn.functional.unfold``: channel, then kernel rows, then kernel columns);
:meth:`AnalogConv2d.conv_weight` gives it back as ``(C_out, C_in, kh, kw)``. Grouped
convolutions (``groups > 1``) are refused: their block-diagonal matrix is a mapping question
left to the tile packer.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.linear import AnalogLinear, register_converter
from pyaimc.analog.tiles import tile_noise_model
from pyaimc.noise.model import NoiseModel

__all__ = ["AnalogConv1d", "AnalogConv2d"]


def _pair(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * n


class _AnalogConvNd(AnalogLinear):
    """Shared body of the 1-d and 2-d analog convolutions (see the module docstring)."""

    n_dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 noise_model: NoiseModel | None = None, config: AnalogConfig | None = None,
                 seed: int | None = None, device=None, dtype=None):
        if groups != 1:
            raise ValueError(f"analog convolutions take groups=1, got groups={groups}")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode {padding_mode!r} is not one of zeros, reflect, "
                             "replicate, circular")
        n = self.n_dims
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, n)
        self.stride, self.dilation = _pair(stride, n), _pair(dilation, n)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding {padding!r} is not 'valid', 'same' or a number")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' needs stride 1 (as torch.nn.Conv)")
        self.padding = padding if isinstance(padding, str) else _pair(padding, n)
        self.padding_mode, self.groups = padding_mode, 1
        in_features = self.in_channels * math.prod(self.kernel_size)
        nm = noise_model if noise_model is not None else NoiseModel.ideal()
        # the ADC range of the rows a kernel uses (as the S4D's dense layers read out)
        super().__init__(in_features, out_channels, bias, tile_noise_model(nm, in_features),
                         config, seed, device=device, dtype=dtype)

    def _pads(self) -> list[int]:
        """Explicit padding, last dimension first (``F.pad`` order)."""
        if self.padding == "valid":
            return [0] * (2 * self.n_dims)
        pads = []
        for k, d, p in reversed(list(zip(self.kernel_size, self.dilation,
                                          self._numeric_padding()))):
            if p is None:                                   # 'same': as torch splits it
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            else:
                pads += [p, p]
        return pads

    def _numeric_padding(self):
        return [None] * self.n_dims if self.padding == "same" else list(self.padding)

    def conv_weight(self) -> torch.Tensor:
        """The weight in ``torch.nn.Conv``'s layout ``(C_out, C_in, *kernel)`` (a view)."""
        return self.weight.view(self.out_channels, self.in_channels, *self.kernel_size)

    def _patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Input patches (batch, positions, in_features) and the output's spatial shape."""
        pads = self._pads()
        if any(pads):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, pads, mode=mode)
        if self.n_dims == 1:
            x = x.unsqueeze(2)
            k, s, d = (1, *self.kernel_size), (1, *self.stride), (1, *self.dilation)
        else:
            k, s, d = self.kernel_size, self.stride, self.dilation
        cols = F.unfold(x, k, dilation=d, stride=s)                     # (B, C k, L)
        spatial = tuple((size - dd * (kk - 1) - 1) // ss + 1
                        for size, kk, ss, dd in zip(x.shape[2:], k, s, d))
        if self.n_dims == 1:
            spatial = spatial[1:]
        return cols.transpose(1, 2), spatial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = x.dim() == self.n_dims + 1
        if unbatched:
            x = x.unsqueeze(0)
        if x.dim() != self.n_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects (batch, {self.in_channels}, "
                             f"{'L' if self.n_dims == 1 else 'H, W'}), got {tuple(x.shape)}")
        patches, spatial = self._patches(x)
        y = super().forward(patches)                                  # (B, L, C_out)
        y = y.transpose(1, 2).reshape(x.shape[0], self.out_channels, *spatial)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                + super().extra_repr())


class AnalogConv1d(_AnalogConvNd):
    """A drop-in for ``torch.nn.Conv1d`` on analog tiles (im2col; see the module docstring).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
    padding_mode : as ``torch.nn.Conv1d`` (``groups`` must be 1)
    noise_model : NoiseModel, optional
        Default :meth:`NoiseModel.ideal`; read out with the ADC range of ``C_in * k`` rows.
    config : AnalogConfig, optional
    seed : int, optional
    """

    n_dims = 1


class AnalogConv2d(_AnalogConvNd):
    """A drop-in for ``torch.nn.Conv2d`` on analog tiles (im2col; see the module docstring).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
    padding_mode : as ``torch.nn.Conv2d`` (``groups`` must be 1)
    noise_model : NoiseModel, optional
        Default :meth:`NoiseModel.ideal`; read out with the ADC range of ``C_in * kh * kw``
        rows.
    config : AnalogConfig, optional
    seed : int, optional
    """

    n_dims = 2


def _convert_conv(cls):
    def convert(conv, noise_model, config, seed):
        w = conv.weight
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                  conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                  conv.padding_mode, noise_model, config, seed, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            new.weight.copy_(w.reshape(conv.out_channels, -1))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        return new
    return convert


register_converter(nn.Conv1d, _convert_conv(AnalogConv1d))
register_converter(nn.Conv2d, _convert_conv(AnalogConv2d))

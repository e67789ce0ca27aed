"""bf16 bit patterns for the numba kernels (numba has no bf16 type: they read and write the
uint16 patterns of torch's bf16 tensors): rounding to and from float32, and a weight row into
row tiles (row_tiles, out, rows), the layout of the bf16 tile products
(:mod:`pyaimc.analog.half`)."""

from __future__ import annotations

import numba as nb
import numpy as np
import torch

__all__ = ["bits", "from_bf16", "row_to_tiles", "to_bf16"]


def bits(t: torch.Tensor) -> np.ndarray:
    """The uint16 numpy view of a contiguous CPU bf16 tensor (what the kernels read and
    write)."""
    return t.view(torch.int16).numpy().view(np.uint16)


@nb.njit(inline="always")
def to_bf16(x):
    """The bf16 bit pattern (uint16) of float32 ``x``: round to nearest, ties to even
    (finite values)."""
    u = np.float32(x).view(np.uint32)
    return np.uint16(np.uint32(u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
                     >> np.uint32(16))


@nb.njit(inline="always")
def from_bf16(u):
    """The float32 value of the bf16 bit pattern ``u``."""
    return np.uint32(np.uint32(u) << np.uint32(16)).view(np.float32)


@nb.njit(inline="always")
def row_to_tiles(row, c, o, out):
    # out[t, o, r] = bf16(c row[t rows + r]) (row tiles of a weight row; 0 past its end)
    tiles, _, rows = out.shape
    n = row.size
    for t in range(tiles):
        base = t * rows
        if base + rows <= n:
            for r in range(rows):
                out[t, o, r] = to_bf16(row[base + r] * c)
        else:
            for r in range(rows):
                out[t, o, r] = to_bf16(row[base + r] * c) if base + r < n else np.uint16(0)

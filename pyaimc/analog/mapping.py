"""Mapping matrices onto physical tiles: blocks packed onto crossbars of the noise model's size.

A *product* is one linear map ``y = W x`` that the hardware computes in one read (all its tiles
driven at once): a dense layer, the S4D state update ``A x + B u``, the S4D output ``C x``. It is
given as **blocks**, dense pieces ``W[out_idx][:, in_idx]`` of its (usually sparse) matrix over
flat input and output indices. :func:`pack` places the blocks of a product on tiles of
``rows x cols`` cells, next-fit along the diagonal:

* a block takes a fresh column for each of its outputs and a row for each of its inputs that is
  not on the tile yet; an input that other blocks of the tile already use shares their row (the
  S4D input ``u`` of a channel drives one row that feeds the ``B`` cells of all its modes);
* when a block does not fit (rows or columns), the next tile starts;
* a block larger than a tile is split first (:func:`split_block`): its pieces' column currents
  are digitised separately and summed digitally into the same outputs.

So the ``2 x 2`` blocks of the S4D ``A`` end up block-diagonal (about 31 modes per ``64 x 64``
tile), the ``B`` cells of a mode in the same columns as its ``A`` cells (one read-out sums
``A x + B u`` in the analog domain), the ``1 x N`` rows of ``C`` one per ``N`` rows, and a dense
``128 x 64`` layer on two tiles. :class:`ProductLayout` holds the placement and packs weights
into tile matrices and back (:meth:`ProductLayout.pack`, :meth:`ProductLayout.unpack`, exact),
and reports utilisation. The per-matrix layout (one matrix of a group per tile, the rest empty)
is :class:`~pyaimc.analog.tiles.AnalogTiles`; it stays for comparison.

Tile matrices are in the crossbar layout ``(tiles, rows, cols)``: inputs down the rows, outputs
along the columns; an unused cell holds 0 (an unformed cell: 0 S).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch

__all__ = ["Block", "BlockGroup", "ProductLayout", "dense_blocks", "group_blocks", "pack",
           "split_block"]


@dataclasses.dataclass
class Block:
    """A dense piece ``W[out_idx][:, in_idx]`` of a product's matrix.

    Attributes
    ----------
    out_idx, in_idx : ndarray of int
        Flat output and input indices (each without repeats).
    weight : Tensor (len(out_idx), len(in_idx))
    """

    out_idx: np.ndarray
    in_idx: np.ndarray
    weight: torch.Tensor

    def __post_init__(self) -> None:
        self.out_idx = np.asarray(self.out_idx, dtype=np.int64).reshape(-1)
        self.in_idx = np.asarray(self.in_idx, dtype=np.int64).reshape(-1)
        shape = (self.out_idx.size, self.in_idx.size)
        if tuple(self.weight.shape) != shape:
            raise ValueError(f"block weight must have shape {shape}, got "
                             f"{tuple(self.weight.shape)}")
        if len(set(self.in_idx.tolist())) != self.in_idx.size or \
                len(set(self.out_idx.tolist())) != self.out_idx.size:
            raise ValueError("a block's input and output indices must not repeat")


def split_block(block: Block, rows: int, cols: int) -> list[Block]:
    """``block`` cut into pieces of at most ``rows`` inputs and ``cols`` outputs."""
    o, i = block.weight.shape
    if o <= cols and i <= rows:
        return [block]
    return [Block(block.out_idx[a:a + cols], block.in_idx[b:b + rows],
                  block.weight[a:a + cols, b:b + rows])
            for a in range(0, o, cols) for b in range(0, i, rows)]


def dense_blocks(weight: torch.Tensor, rows: int, cols: int) -> list[Block]:
    """A dense ``(out, in)`` matrix as blocks of at most one tile each."""
    out_f, in_f = weight.shape
    return split_block(Block(np.arange(out_f), np.arange(in_f), weight), rows, cols)


def group_blocks(weight: torch.Tensor, rows: int, cols: int) -> list[Block]:
    """``G`` independent matrices ``(G, out, in)`` (input ``g * in + i``, output ``g * out + o``)
    as blocks, each split to fit a tile."""
    G, out_f, in_f = weight.shape
    blocks = []
    for g in range(G):
        blocks += split_block(Block(g * out_f + np.arange(out_f), g * in_f + np.arange(in_f),
                                    weight[g]), rows, cols)
    return blocks


@dataclasses.dataclass
class BlockGroup:
    """The placed blocks of one shape ``(o, i)``, for batched products.

    Attributes
    ----------
    blocks : ndarray (nb,)
        Indices into the product's block list.
    tile : LongTensor (nb,)
    rows : LongTensor (nb, i)
        Tile rows of the blocks' inputs.
    cols : LongTensor (nb, o)
        Tile columns of their outputs.
    in_idx : LongTensor (nb, i)
    out_idx : LongTensor (nb, o)
    """

    blocks: np.ndarray
    tile: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    in_idx: torch.Tensor
    out_idx: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        """``(o, i)`` of each block."""
        return self.cols.shape[1], self.rows.shape[1]

    def gather(self, tiles: torch.Tensor) -> torch.Tensor:
        """The cells of every block ``(..., nb, i, o)`` from tile matrices ``(..., T, rows,
        cols)``."""
        t = self.tile.to(tiles.device)[:, None, None]
        r = self.rows.to(tiles.device)[:, :, None]
        c = self.cols.to(tiles.device)[:, None, :]
        return tiles[..., t, r, c]


class ProductLayout:
    """Blocks of one product placed on tiles of ``rows x cols`` (see the module docstring).

    Parameters
    ----------
    name : str
    n_in, n_out : int
        Length of the product's input and output vectors.
    blocks : sequence of Block
        Each at most one tile (:func:`split_block`).
    rows, cols : int
        The physical tile.
    tile, tile_rows, tile_cols : sequences, one entry per block
        Where each block sits (as :func:`pack` returns them).

    Attributes
    ----------
    n_tiles : int
    row_input : LongTensor (n_tiles, rows)
        The input index each tile row carries (``n_in`` for an unused row).
    groups : list of BlockGroup
        The blocks by shape, in order of first appearance.
    """

    def __init__(self, name: str, n_in: int, n_out: int, blocks: Sequence[Block], rows: int,
                 cols: int, tile: Sequence[int], tile_rows: Sequence[np.ndarray],
                 tile_cols: Sequence[np.ndarray]):
        self.name, self.n_in, self.n_out = name, int(n_in), int(n_out)
        self.blocks = list(blocks)
        self.rows, self.cols = int(rows), int(cols)
        self.tile = np.asarray(tile, dtype=np.int64)
        self.tile_rows = [np.asarray(r, dtype=np.int64) for r in tile_rows]
        self.tile_cols = [np.asarray(c, dtype=np.int64) for c in tile_cols]
        self.n_tiles = int(self.tile.max()) + 1 if len(self.tile) else 0
        row_input = np.full((self.n_tiles, self.rows), self.n_in, dtype=np.int64)
        used = np.zeros((self.n_tiles, self.rows, self.cols), dtype=bool)
        for b, block in enumerate(self.blocks):
            t, r, c = self.tile[b], self.tile_rows[b], self.tile_cols[b]
            if np.any(used[t][np.ix_(r, c)]):
                raise ValueError(f"{name}: block {b} overlaps another on tile {t}")
            prev = row_input[t, r]
            if np.any((prev != self.n_in) & (prev != block.in_idx)):
                raise ValueError(f"{name}: block {b} shares a row of tile {t} with another "
                                 "input")
            row_input[t, r] = block.in_idx
            used[t][np.ix_(r, c)] = True
        self.row_input = torch.from_numpy(row_input)
        self.used = torch.from_numpy(used)
        self.groups = self._groups()

    def _groups(self) -> list[BlockGroup]:
        by_shape: dict[tuple[int, int], list[int]] = {}
        for b, block in enumerate(self.blocks):
            by_shape.setdefault(tuple(block.weight.shape), []).append(b)
        groups = []
        for idx in by_shape.values():
            def stack(arrays):
                return torch.from_numpy(np.stack([arrays[b] for b in idx]))
            groups.append(BlockGroup(
                np.asarray(idx), torch.from_numpy(self.tile[idx]),
                stack(self.tile_rows), stack(self.tile_cols),
                stack([blk.in_idx for blk in self.blocks]),
                stack([blk.out_idx for blk in self.blocks])))
        return groups

    # ------------------------------------------------------------------ weights
    def group_weights(self, group: BlockGroup, blocks: Sequence[Block] | None = None
                      ) -> torch.Tensor:
        """Weights ``(nb, o, i)`` of a group's blocks (default this layout's)."""
        blocks = self.blocks if blocks is None else blocks
        return torch.stack([blocks[b].weight for b in group.blocks])

    def pack(self, blocks: Sequence[Block] | None = None) -> torch.Tensor:
        """Tile matrices ``(n_tiles, rows, cols)`` holding the block weights (default this
        layout's; another list of blocks of the same shapes, e.g. conductances, works too)."""
        blocks = self.blocks if blocks is None else blocks
        w0 = blocks[0].weight
        tiles = torch.zeros(self.n_tiles, self.rows, self.cols, dtype=w0.dtype,
                            device=w0.device)
        for g in self.groups:
            w = self.group_weights(g, blocks).transpose(1, 2)           # (nb, i, o)
            t = g.tile[:, None, None].to(w0.device)
            tiles[t, g.rows[:, :, None].to(w0.device), g.cols[:, None, :].to(w0.device)] = w
        return tiles

    def unpack(self, tiles: torch.Tensor) -> list[Block]:
        """The blocks read back from tile matrices ``(n_tiles, rows, cols)`` (inverse of
        :meth:`pack`)."""
        out: list[Block | None] = [None] * len(self.blocks)
        for g in self.groups:
            cells = g.gather(tiles).transpose(1, 2)                     # (nb, o, i)
            for k, b in enumerate(g.blocks):
                blk = self.blocks[b]
                out[b] = Block(blk.out_idx, blk.in_idx, cells[k])
        return out  # type: ignore[return-value]

    def dense(self, blocks: Sequence[Block] | None = None) -> torch.Tensor:
        """The product's matrix ``(n_out, n_in)`` (blocks summed where they overlap)."""
        blocks = self.blocks if blocks is None else blocks
        w = torch.zeros(self.n_out, self.n_in, dtype=blocks[0].weight.dtype)
        for blk in blocks:
            w[np.ix_(blk.out_idx, blk.in_idx)] += blk.weight.detach().cpu()
        return w

    # ------------------------------------------------------------------ report
    def rows_per_column(self) -> torch.Tensor:
        """Cells in use per column, largest per tile ``(n_tiles,)`` (the read-out's range
        follows it)."""
        return self.used.sum(dim=1).amax(dim=1)

    def utilisation(self) -> dict:
        """Tiles, cells in use (per array of a differential pair) and their share of the
        tiles' cells."""
        used = int(self.used.sum())
        total = self.n_tiles * self.rows * self.cols
        return {"tiles": self.n_tiles, "blocks": len(self.blocks), "cells_used": used,
                "cells": total, "utilisation": used / total if total else 0.0,
                "rows_used": int((self.row_input < self.n_in).sum()),
                "cols_used": int(self.used.any(dim=1).sum())}


def pack(name: str, n_in: int, n_out: int, blocks: Sequence[Block], rows: int, cols: int
         ) -> ProductLayout:
    """Place ``blocks`` next-fit along the diagonal of ``rows x cols`` tiles (module docstring).

    Raises
    ------
    ValueError
        A block larger than a tile (split it with :func:`split_block`), or an index out of range.
    """
    tiles, t_rows, t_cols = [], [], []
    t, next_row, next_col, on_tile = -1, rows, cols, {}
    for k, blk in enumerate(blocks):
        o, i = blk.weight.shape
        if o > cols or i > rows:
            raise ValueError(f"{name}: block {k} ({o} x {i}) is larger than a {rows} x {cols} "
                             "tile; split it first")
        if blk.in_idx.size and (blk.in_idx.min() < 0 or blk.in_idx.max() >= n_in):
            raise ValueError(f"{name}: block {k} has input indices outside [0, {n_in})")
        if blk.out_idx.size and (blk.out_idx.min() < 0 or blk.out_idx.max() >= n_out):
            raise ValueError(f"{name}: block {k} has output indices outside [0, {n_out})")
        new = [j for j in blk.in_idx.tolist() if j not in on_tile]
        if next_row + len(new) > rows or next_col + o > cols:
            t, next_row, next_col, on_tile = t + 1, 0, 0, {}
            new = blk.in_idx.tolist()
        for j in new:
            on_tile[j] = next_row
            next_row += 1
        tiles.append(t)
        t_rows.append(np.array([on_tile[j] for j in blk.in_idx.tolist()], dtype=np.int64))
        t_cols.append(np.arange(next_col, next_col + o, dtype=np.int64))
        next_col += o
    return ProductLayout(name, n_in, n_out, blocks, rows, cols, tiles, t_rows, t_cols)


def total_utilisation(layouts: Sequence[ProductLayout]) -> dict:
    """:meth:`ProductLayout.utilisation` summed over products."""
    tiles = sum(lay.n_tiles for lay in layouts)
    used = sum(int(lay.used.sum()) for lay in layouts)
    total = sum(lay.n_tiles * lay.rows * lay.cols for lay in layouts)
    return {"tiles": tiles, "cells_used": used, "cells": total,
            "utilisation": used / total if total else 0.0}


def per_matrix_utilisation(shapes: dict[str, tuple[int, int, int]], rows: int, cols: int
                           ) -> dict:
    """Tiles and utilisation of the per-matrix layout (one matrix of a group per tile or tile
    grid, :class:`~pyaimc.analog.tiles.AnalogTiles`) for groups of shape ``(G, out, in)``."""
    tiles = used = 0
    for G, out_f, in_f in shapes.values():
        tiles += G * math.ceil(out_f / cols) * math.ceil(in_f / rows)
        used += G * out_f * in_f
    total = tiles * rows * cols
    return {"tiles": tiles, "cells_used": used, "cells": total,
            "utilisation": used / total if total else 0.0}

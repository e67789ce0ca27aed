"""Many sparse 1R crossbars solved at once, batched over input vectors (torch).

A deployed network holds hundreds of tiles, most of whose cells are empty (block-diagonal
packing) and reads each of them with thousands of input vectors. :class:`SparseCrossbars` solves
the nodal equations of all of them together, on whatever device torch runs on, with a cost
proportional to the cells in use rather than to the tiles' area. The circuit is the one of
:class:`~pyaimc.circuit.crossbar.Crossbar` (and of the ``fast`` and ``ngspice`` engines): rows
driven by ideal sources at column 0, a wire segment ``r_row`` between neighbouring cells of a
row, ``r_col`` between neighbouring cells of a column, every column read at its bottom end (row
``rows - 1``) by an ideal 0 V read-out. An empty cell is open: the wire beyond a row's last used
cell and above a column's first carries no current, so only the used cells are nodes and the
segments between them add up.

Unknowns are the cell voltages ``u``. With cell currents ``i = f(u)`` (polynomial cells
``f(u) = a1 u + a2 u**2 + a3 u**3``; linear: ``a1 = G``) the wires give, exactly,
``u = v_row - R i``: ``R`` sums, along each row from its driver, the segment resistances times the
currents they carry (each segment carries every cell current beyond it) and, along each column
to its read-out, likewise; both are segmented cumulative sums, O(cells). Newton's method on
``F(u) = u + R f(u) - v_row = 0``: with ``D = 1 / f'(u)`` each step solves the symmetric positive
definite system ``(D + R) z = -F`` by conjugate gradients preconditioned with
``1 / (D + diag R)``, and ``u += D z``. The preconditioned spectrum lies in ``[1, 1 + rho]`` with
``rho`` about the IR-drop loss (0.2-0.3 on a full 64 x 64 tile at 1 ohm), so a few iterations
reach the tolerance; sparse tiles converge sooner. Stops when every cell's KCL residual,
expressed as a voltage, is below ``tol`` times the largest row voltage of its vector
(``tol = 1e-10`` agrees with the ``fast`` engine to about 1e-9 relative, tested).
"""

from __future__ import annotations

import numpy as np
import torch

from pyaimc.circuit.errors import ConvergenceError

__all__ = ["SparseCrossbars"]


def _wires_kernel():
    """The compiled ``R i`` for CPU float64 arrays (built on first use): torch's cumulative sums
    are sequential and cost some thirty elementwise passes each; this is four streaming loops."""
    import numba as nb

    @nb.njit(cache=True, fastmath=False)
    def wires(i, row_off, rr, perm, col_off, rc, out, scratch):
        n, b = i.shape
        acc = np.zeros(b)
        for p in range(row_off.size - 1):
            s, e = row_off[p], row_off[p + 1]
            acc[:] = 0.0
            for k in range(e - 1, s - 1, -1):       # current through the segment feeding k
                for j in range(b):
                    acc[j] += i[k, j]
                    out[k, j] = acc[j]
            acc[:] = 0.0
            for k in range(s, e):                   # drop from the driver to k
                r = rr[k]
                for j in range(b):
                    acc[j] += r * out[k, j]
                    out[k, j] = acc[j]
        for p in range(col_off.size - 1):
            s, e = col_off[p], col_off[p + 1]
            acc[:] = 0.0
            for c in range(s, e):                   # current in the segment below c
                k = perm[c]
                for j in range(b):
                    acc[j] += i[k, j]
                    scratch[c, j] = acc[j]
            acc[:] = 0.0
            for c in range(e - 1, s - 1, -1):       # drop from c to the read-out
                k, r = perm[c], rc[c]
                for j in range(b):
                    acc[j] += r * scratch[c, j]
                    out[k, j] += acc[j]
        return out

    return wires


_KERNEL = None


def _segment_bases(start: torch.Tensor) -> torch.Tensor:
    """Index of each element's segment start (``start``: bool flags, first element True)."""
    idx = torch.arange(start.numel(), device=start.device)
    return torch.cummax(torch.where(start, idx, torch.zeros_like(idx)), dim=0).values


class _Segments:
    """Segmented prefix and suffix sums along axis 0 (segments of consecutive elements).

    Arrays are ``(n_cells, batch)``: a gather of cells copies whole rows of the batch, which is
    what makes the sums cheap on a CPU.
    """

    def __init__(self, start: torch.Tensor):
        n = start.numel()
        base = _segment_bases(start)                             # first index of my segment
        end = torch.empty_like(start)
        end[:-1] = start[1:]
        end[-1] = True
        idx = torch.arange(n, device=start.device)
        last = torch.flip(torch.cummin(torch.flip(torch.where(end, idx, torch.full_like(
            idx, n)), [0]), dim=0).values, [0])
        # into a cumulative sum with a leading zero row
        self.before = base                                       # cs0[base] = sum before it
        self.through = last + 1                                  # cs0[last + 1] = through end

    @staticmethod
    def _cumsum0(x: torch.Tensor) -> torch.Tensor:
        out = torch.empty((x.shape[0] + 1,) + x.shape[1:], dtype=x.dtype, device=x.device)
        out[0] = 0
        torch.cumsum(x, dim=0, out=out[1:])
        return out

    def prefix(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_{l <= k, same segment} x_l``."""
        cs = self._cumsum0(x)
        return cs[1:] - cs.index_select(0, self.before)

    def suffix(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_{l >= k, same segment} x_l``."""
        cs = self._cumsum0(x)
        return cs.index_select(0, self.through) - cs[:-1]


class SparseCrossbars:
    """A set of 1R crossbars of ``rows x cols`` cells, given by their used cells.

    Parameters
    ----------
    tile, row, col : array_like of int (n_cells,)
        Where each used cell sits (tile index, row, column). Cells with all coefficients zero
        should be left out (they are open).
    coefficients : Tensor (n_cells, K)
        Cell I-V ``i = sum_k a_k u**(k+1)`` (A/V**(k+1)); ``K = 1`` for linear cells.
        ``a_1 > 0`` for every cell.
    n_tiles, rows, cols : int
    r_row, r_col : float
        Wire segment resistances, ohm.
    dtype : torch.dtype
        Of the solve (float64 by default: the segmented sums run over every cell).
    """

    def __init__(self, tile, row, col, coefficients: torch.Tensor, n_tiles: int, rows: int,
                 cols: int, r_row: float, r_col: float, dtype=torch.float64):
        device = coefficients.device
        tile = torch.as_tensor(np.asarray(tile), dtype=torch.int64, device=device)
        row = torch.as_tensor(np.asarray(row), dtype=torch.int64, device=device)
        col = torch.as_tensor(np.asarray(col), dtype=torch.int64, device=device)
        a = coefficients.to(dtype)
        if a.dim() != 2 or a.shape[0] != tile.numel():
            raise ValueError(f"coefficients must be (n_cells, K), got {tuple(a.shape)} for "
                             f"{tile.numel()} cells")
        if a.shape[0] and not bool((a[:, 0] > 0).all()):
            raise ValueError("every cell needs a positive linear coefficient a_1 (leave open "
                             "cells out)")
        if r_row < 0 or r_col < 0:
            raise ValueError(f"wire resistances must be >= 0 ohm, got {r_row}, {r_col}")
        self.n_tiles, self.rows, self.cols = int(n_tiles), int(rows), int(cols)
        self.r_row, self.r_col = float(r_row), float(r_col)
        self.dtype, self.device = dtype, device
        # canonical order: along rows (tile, row, col)
        key = (tile * rows + row) * cols + col
        order = torch.argsort(key)
        self.tile, self.row, self.col = tile[order], row[order], col[order]
        self.a = a[order]
        self.n = self.tile.numel()
        self.v_index = self.tile * rows + self.row              # into (n_tiles * rows)
        self.out_index = self.tile * cols + self.col            # into (n_tiles * cols)
        if self.n == 0:
            return
        path = self.tile * rows + self.row
        start = torch.ones(self.n, dtype=torch.bool, device=device)
        start[1:] = path[1:] != path[:-1]
        self.row_seg = _Segments(start)
        self._row_off = torch.cat([torch.nonzero(start).reshape(-1),
                                   torch.tensor([self.n], device=device)]).cpu().numpy()
        prev_col = torch.where(start, torch.zeros_like(self.col),
                               torch.roll(self.col, 1))
        self.r_row_seg = (self.col - prev_col).to(dtype) * self.r_row
        # column order (tile, col, row)
        ckey = (self.tile * cols + self.col) * rows + self.row
        self.perm = torch.argsort(ckey)
        self.inv = torch.empty_like(self.perm)
        self.inv[self.perm] = torch.arange(self.n, device=device)
        crow = self.row[self.perm]
        cpath = (self.tile * cols + self.col)[self.perm]
        cstart = torch.ones(self.n, dtype=torch.bool, device=device)
        cstart[1:] = cpath[1:] != cpath[:-1]
        self.col_seg = _Segments(cstart)
        self._col_off = torch.cat([torch.nonzero(cstart).reshape(-1),
                                   torch.tensor([self.n], device=device)]).cpu().numpy()
        cend = torch.ones(self.n, dtype=torch.bool, device=device)
        cend[:-1] = cstart[1:]
        next_row = torch.where(cend, torch.full_like(crow, rows - 1), torch.roll(crow, -1))
        self.r_col_seg = (next_row - crow).to(dtype) * self.r_col
        # diag(R): resistance from the driver to the cell plus from the cell to the read-out
        self.r_diag = (self.row_seg.prefix(self.r_row_seg[:, None]) +
                       self.col_seg.suffix(self.r_col_seg[:, None])[self.inv])
        self.r_row_seg = self.r_row_seg[:, None]
        self.r_col_seg = self.r_col_seg[:, None]
        self.compiled = device.type == "cpu" and dtype == torch.float64
        if self.compiled:
            self._np = (self._row_off, self.r_row_seg[:, 0].numpy(), self.perm.numpy(),
                        self._col_off, self.r_col_seg[:, 0].numpy())

    # ------------------------------------------------------------------ physics
    def wires(self, i: torch.Tensor) -> torch.Tensor:
        """``R i``: the voltage the wires take from each cell ``(n_cells, batch)``, V."""
        if self.compiled:
            global _KERNEL
            if _KERNEL is None:
                _KERNEL = _wires_kernel()
            x = i.contiguous().numpy()
            out = np.empty_like(x)
            _KERNEL(x, *self._np[:3], self._np[3], self._np[4], out, np.empty_like(x))
            return torch.from_numpy(out)
        drop_row = self.row_seg.prefix(self.r_row_seg * self.row_seg.suffix(i))
        ic = i.index_select(0, self.perm)
        drop_col = self.col_seg.suffix(self.r_col_seg * self.col_seg.prefix(ic))
        return drop_row.add_(drop_col.index_select(0, self.inv))

    def cell_current(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell currents and slopes for cell voltages ``u`` ``(n_cells, batch)``."""
        a, K = self.a, self.a.shape[1]
        h = torch.zeros_like(u) + a[:, K - 1:K]
        slope = torch.zeros_like(u) + K * a[:, K - 1:K]
        for k in range(K - 2, -1, -1):      # Horner: i = u (a_1 + u (a_2 + u a_3))
            h = h * u + a[:, k:k + 1]
            slope = slope * u + (k + 1) * a[:, k:k + 1]
        return h * u, slope

    # ------------------------------------------------------------------ solve
    @torch.no_grad()
    def solve(self, v: torch.Tensor, tol: float = 1e-10, max_newton: int = 30,
              max_cg: int = 200, chunk_elements: int = 1 << 22
              ) -> tuple[torch.Tensor, dict]:
        """Column read-out currents ``(batch, n_tiles, cols)`` (A, positive into the read-out)
        for row voltages ``v`` ``(batch, n_tiles, rows)`` (V).

        Returns the currents and statistics (Newton steps, CG iterations, worst residual, and
        ``power``: the power the drivers deliver, ``sum v_row I_row`` in W, summed over the
        batch).
        Raises :class:`~pyaimc.circuit.errors.ConvergenceError` when Newton does not converge.
        """
        batch = v.shape[0]
        out = torch.zeros(batch, self.n_tiles * self.cols, dtype=self.dtype, device=self.device)
        stats = {"newton": 0, "cg": 0, "residual": 0.0, "power": 0.0}
        if self.n == 0 or batch == 0:
            return out.reshape(batch, self.n_tiles, self.cols), stats
        v = v.to(self.dtype).reshape(batch, -1)
        step = max(1, chunk_elements // self.n)
        for s in range(0, batch, step):
            vc = v[s:s + step].t().index_select(0, self.v_index)     # (n_cells, b)
            i, st = self._solve_chunk(vc.contiguous(), tol, max_newton, max_cg)
            out[s:s + step].index_add_(1, self.out_index, i.t())
            stats["power"] += float((vc * i).sum())    # sum_rows v_row I_row, W, summed
            stats["newton"] = max(stats["newton"], st["newton"])
            stats["cg"] += st["cg"]
            stats["residual"] = max(stats["residual"], st["residual"])
        return out.reshape(batch, self.n_tiles, self.cols), stats

    def _solve_chunk(self, vc: torch.Tensor, tol, max_newton, max_cg):
        scale = vc.abs().amax(dim=0, keepdim=True).clamp_min(1e-30)
        u = vc.clone()
        cg_total = 0
        for it in range(max_newton + 1):
            i, slope = self.cell_current(u)
            F = u + self.wires(i) - vc
            res = (F.abs().amax(dim=0, keepdim=True) / scale)
            worst = float(res.max())
            if worst <= tol:
                return i, {"newton": it, "cg": cg_total, "residual": worst}
            if it == max_newton:
                break
            d = 1.0 / slope.clamp_min(1e-3 * self.a[:, 0:1])
            z, n_cg = self._cg(d, -F, max_cg, rtol=max(min(1e-2, worst), 1e-3 * tol))
            cg_total += n_cg
            u = u + d * z
        raise ConvergenceError(f"sparse crossbars: Newton did not converge in {max_newton} "
                               f"steps (worst relative residual {worst:.2e}, tolerance {tol})")

    def _cg(self, d: torch.Tensor, b: torch.Tensor, max_iter: int, rtol: float):
        """Solve ``(diag(d) + R) z = b`` per batch entry (columns) by preconditioned CG."""
        minv = 1.0 / (d + self.r_diag)
        z = b * minv                                  # start: the preconditioner's solution
        r = b - (d * z + self.wires(z))
        y = r * minv
        p = y.clone()
        ry = (r * y).sum(dim=0, keepdim=True)
        bnorm = b.norm(dim=0, keepdim=True).clamp_min(1e-300)
        for k in range(max_iter):
            if bool((r.norm(dim=0, keepdim=True) <= rtol * bnorm).all()):
                return z, k
            ap = self.wires(p).addcmul_(d, p)
            alpha = ry / (p * ap).sum(dim=0, keepdim=True).clamp_min(1e-300)
            z = z + alpha * p
            r = r - alpha * ap
            y = r * minv
            ry_new = (r * y).sum(dim=0, keepdim=True)
            p = y + (ry_new / ry.clamp_min(1e-300)) * p
            ry = ry_new
        return z, max_iter

    # ------------------------------------------------------------------ from dense tiles
    @classmethod
    def from_tiles(cls, g: torch.Tensor, r_row: float, r_col: float,
                   coefficients=None, dtype=torch.float64) -> "SparseCrossbars":
        """From tile conductances ``g`` ``(n_tiles, rows, cols)`` (S; 0 = open cell).

        ``coefficients(g_cells)`` -> ``(n_cells, K)`` gives the I-V of the used cells (default
        linear: ``a_1 = G``).
        """
        n_tiles, rows, cols = g.shape
        t, r, c = torch.nonzero(g > 0, as_tuple=True)
        gc = g[t, r, c].to(dtype)
        a = gc[:, None] if coefficients is None else coefficients(gc).to(dtype)
        return cls(t.cpu().numpy(), r.cpu().numpy(), c.cpu().numpy(), a, n_tiles, rows, cols,
                   r_row, r_col, dtype)

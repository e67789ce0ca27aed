"""Many independent symmetric positive-definite tridiagonal systems, solved in one LAPACK call.

The lines of a crossbar (a row wire with its cells, a column wire with its cells) each give a
tridiagonal system. Stored end to end with zero coupling across line boundaries they form a single
tridiagonal matrix, which LAPACK's ``dpttrf`` / ``dpttrs`` factorise and solve in O(n) without a
Python loop over lines.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack


class NotPositiveDefiniteError(ArithmeticError):
    """A line system is not positive definite (a cell with a negative slope dI/dV)."""


class TridiagonalLines:
    """Factorised SPD tridiagonal systems along the last axis of an array.

    Parameters
    ----------
    diag : ndarray, shape (..., L)
        Diagonal of each line system.
    off : ndarray, shape (..., L)
        ``off[..., k]`` couples unknowns k and k+1 of a line; ``off[..., L-1]`` is ignored.

    Notes
    -----
    ``diag`` of shape ``(lines, L)`` gives one set of lines shared by every right-hand side of a
    batch (``solve`` then passes the batch as LAPACK's multiple right-hand sides); a leading batch
    axis ``(batch, lines, L)`` gives every right-hand side its own systems.
    """

    def __init__(self, diag: np.ndarray, off: np.ndarray) -> None:
        diag = np.asarray(diag, dtype=np.float64)
        off = np.array(off, dtype=np.float64)  # a copy: the line ends are zeroed below
        if diag.shape != off.shape:
            raise ValueError(f"diag {diag.shape} and off {off.shape} must have the same shape")
        off[..., -1] = 0.0
        self.shape = diag.shape
        d, e, info = lapack.dpttrf(diag.ravel(), off.ravel()[:-1])
        if info != 0:
            raise NotPositiveDefiniteError(
                f"tridiagonal line system is not positive definite (LAPACK dpttrf info={info}, "
                f"at unknown {info - 1} of {diag.size})")
        self._d, self._e = d, e

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``L D L^T`` factors, shaped like the systems.

        Returns
        -------
        lower : ndarray, shape ``self.shape``
            ``lower[..., k]``: the unit lower factor's entry coupling unknowns k and k+1 of a
            line (0 at a line's end).
        inv_d : ndarray, shape ``self.shape``
            ``1 / D``.
        """
        lower = np.append(self._e, 0.0).reshape(self.shape)
        return lower, 1.0 / self._d.reshape(self.shape)

    def solve(self, rhs: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """Solve the line systems for ``rhs`` of shape (batch, *shape[-2:]).

        With ``overwrite=True`` the solution may be written into ``rhs`` (it must then be a
        C-contiguous float64 array).
        """
        rhs = np.asarray(rhs, dtype=np.float64)
        batch = rhs.shape[0]
        if len(self.shape) == 3:
            if rhs.shape != self.shape:
                raise ValueError(f"right-hand side {rhs.shape} does not match systems {self.shape}")
            b = np.ascontiguousarray(rhs).reshape(-1, 1) if overwrite else rhs.reshape(-1, 1).copy()
        else:
            if rhs.shape[1:] != self.shape:
                raise ValueError(f"right-hand side {rhs.shape} does not match systems {self.shape}")
            # (batch, n) in C order is (n, batch) in Fortran order: LAPACK's multiple RHS.
            flat = rhs.reshape(batch, -1)
            b = (flat if overwrite and flat.flags.c_contiguous else flat.copy()).T
        x, info = lapack.dpttrs(self._d, self._e, b, overwrite_b=True)
        if info != 0:  # pragma: no cover - only for illegal arguments
            raise RuntimeError(f"LAPACK dpttrs failed with info={info}")
        if len(self.shape) == 3:
            return x.reshape(rhs.shape)
        return x.T.reshape(rhs.shape)


def tridiagonal_matvec(diag: np.ndarray, off: np.ndarray, x: np.ndarray,
                       out: np.ndarray | None = None) -> np.ndarray:
    """``y = T x`` for symmetric tridiagonal T along the last axis (``off[..., -1]`` ignored)."""
    y = np.multiply(diag, x, out=out)
    y[..., :-1] += off[..., :-1] * x[..., 1:]
    y[..., 1:] += off[..., :-1] * x[..., :-1]
    return y


#: Narrowest slab (right-hand sides x columns) for which :class:`TridiagonalColumns` runs its
#: vectorised recurrence; narrower problems are transposed for LAPACK instead. Measured: at
#: 64 x 64 with one vector the recurrence's per-step overhead makes it 2.4 x slower, at 256 x 256
#: with one vector both take the same time, and wider slabs favour the recurrence (1.5 x at
#: 256 x 256 with 4 vectors, 1.3 x at 1024 x 1024 with one).
RECURRENCE_MIN_WIDTH = 256


class TridiagonalColumns:
    """Factorised SPD tridiagonal systems along axis -2: one per column of an (..., n, m) array.

    The crossbar's column lines run down the rows of a row-major (..., n, m) array. Rather than
    transposing the right-hand side for LAPACK (two strided copies per solve), the LDL^T
    recurrence steps down the rows, vectorised over the columns and the batch: each step works on
    contiguous (..., m) slabs. Narrow problems (fewer than ``RECURRENCE_MIN_WIDTH`` right-hand
    sides x columns), where the per-step overhead would dominate, are transposed for LAPACK.

    Parameters
    ----------
    diag : ndarray, shape (n, m) or (batch, n, m)
        Diagonal of each column system.
    off : ndarray, shape (n, m) or (batch, n, m)
        ``off[..., i, j]`` couples unknowns i and i+1 of column j; ``off[..., n-1, :]`` is ignored.

    Raises
    ------
    NotPositiveDefiniteError
        A system is not positive definite.
    """

    def __init__(self, diag: np.ndarray, off: np.ndarray) -> None:
        diag = np.asarray(diag, dtype=np.float64)
        off = np.broadcast_to(np.asarray(off, dtype=np.float64), diag.shape)
        self.shape = diag.shape
        # One LAPACK factorisation of the transposed systems serves both solve paths.
        self._lines = TridiagonalLines(np.swapaxes(diag, -1, -2), np.swapaxes(off, -1, -2))
        lower, inv_d = self._lines.factors()
        self._lower = np.ascontiguousarray(np.swapaxes(lower, -1, -2))
        self._inv_d = np.ascontiguousarray(np.swapaxes(inv_d, -1, -2))

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``L D L^T`` factors, shaped like the systems (C-contiguous).

        Returns
        -------
        lower : ndarray, shape ``self.shape``
            ``lower[..., i, j]`` couples unknowns i and i+1 of column j (0 at the last row).
        inv_d : ndarray, shape ``self.shape``
            ``1 / D``.

        The line solver's CG runs the column recurrence of :meth:`solve` compiled, on these
        factors (:mod:`pyaimc.circuit.cg_kernels`); :meth:`solve` is its numpy form, tested
        against dense matrices.
        """
        return self._lower, self._inv_d

    def solve(self, rhs: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """Solve the column systems for ``rhs`` of shape (batch, n, m).

        With ``overwrite=True`` the solution is written into ``rhs`` (a float64 array).
        """
        rhs = np.asarray(rhs, dtype=np.float64)
        if rhs.ndim != 3 or rhs.shape[-2:] != self.shape[-2:] or (
                len(self.shape) == 3 and rhs.shape[0] != self.shape[0]):
            raise ValueError(f"right-hand side {rhs.shape} does not match systems {self.shape}")
        if rhs.shape[0] * rhs.shape[2] < RECURRENCE_MIN_WIDTH:
            x_t = self._lines.solve(np.ascontiguousarray(np.swapaxes(rhs, 1, 2)), overwrite=True)
            if overwrite:
                np.copyto(rhs, np.swapaxes(x_t, 1, 2))
                return rhs
            return np.ascontiguousarray(np.swapaxes(x_t, 1, 2))
        x = rhs if overwrite else rhs.copy()
        lower = self._lower
        tmp = np.empty_like(x[:, 0])
        for i in range(1, x.shape[1]):  # L y = b
            np.multiply(x[:, i - 1], lower[..., i - 1, :], out=tmp)
            np.subtract(x[:, i], tmp, out=x[:, i])
        x *= self._inv_d  # D z = y
        for i in range(x.shape[1] - 2, -1, -1):  # L^T x = z
            np.multiply(x[:, i + 1], lower[..., i, :], out=tmp)
            np.subtract(x[:, i], tmp, out=x[:, i])
        return x

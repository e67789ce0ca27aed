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

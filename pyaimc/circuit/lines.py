"""Line-based solver for 1R crossbars: Newton + conjugate gradients on the column nodes.

The nodal equations of a 1R crossbar split into row-line unknowns ``r`` and column-line
unknowns ``c``::

    [ A_rr  -C ] [dr]   [-F_r]
    [ -C   A_cc] [dc] = [-F_c]

``A_rr`` holds one tridiagonal system per row line (wire segments, source, cell slopes), ``A_cc``
one per column line (wire segments, read-out, cell slopes) and ``C`` is the diagonal of cell
slopes dI/dV that couples them. Eliminating the rows exactly leaves the column-node Schur complement
``S = A_cc - C A_rr^-1 C``, symmetric positive definite when every cell's slope is positive. It is
solved by conjugate gradients preconditioned with the column-line systems ``A_cc^-1``; one
iteration costs one tridiagonal solve over all row lines and one over all column lines, done with
the vector updates and dot products in two compiled passes over the arrays
(:mod:`pyaimc.circuit.cg_kernels`, batch entries in parallel). This is the line relaxation that
solves whole rows and whole columns in turn, accelerated by CG: the preconditioned operator's
spectrum lies in (0, 1]. Measured to rtol 1e-10: 4 iterations at 25 % IR-drop loss and 8 at 80 %
(256 to 1024 alike), 16-17 at 97 % (256 x 256).

Non-linear cells run Newton iterations (inexact: each linear step to a relative accuracy that
tightens as the residual falls) with step halving when a step does not lower the residual.

Both node sets are stored row-major, (batch, rows, cols): row lines are contiguous, column lines
are solved by a recurrence down the rows, vectorised over the columns. The line systems are
factorised once by LAPACK (:class:`TridiagonalLines`, whose solve also serves the row eliminations
outside CG, and :class:`TridiagonalColumns`). No array is ever transposed.
"""

from __future__ import annotations

import numpy as np

from pyaimc.circuit.cg_kernels import KERNEL_LOCK, kernels
from pyaimc.circuit.crossbar import Crossbar, IdealReadout
from pyaimc.circuit.errors import ConvergenceError, NotApplicableError
from pyaimc.circuit.tridiagonal import (NotPositiveDefiniteError, TridiagonalColumns,
                                         TridiagonalLines)

#: Relative accuracy of each Newton step's linear solve for non-linear cells (forcing term).
NEWTON_FORCING = 1e-4
#: Largest number of step halvings in one Newton step.
MAX_HALVINGS = 30


def _kernel_operands(rows: TridiagonalLines, cols: TridiagonalColumns, coupling: np.ndarray):
    """The factorised line systems and the coupling as the CG kernels take them: C-contiguous
    (slices, rows, cols) arrays, one slice shared by the batch or one per entry."""
    def slices(a):
        a = np.ascontiguousarray(a, dtype=np.float64)
        return a if a.ndim == 3 else a[None]

    # the coupling and both line systems share one shape, (rows, cols) or (batch, rows, cols)
    return tuple(slices(a) for a in (coupling, *rows.factors(), *cols.factors()))


def rounding_floor(v_rows: np.ndarray, conductance_norm: float) -> np.ndarray:
    """Smallest KCL residual norm (ampere) worth asking for, per batch entry.

    Node voltages stored in float64 carry a rounding error of about ``eps |V|``; through the node
    conductances that is a residual of ``eps max|V| ||G_node||_2``. Strong wires (1 ohm and less)
    bring this above ``rtol ||F0||`` for rtol = 1e-10 at 1024 x 1024; the solvers then stop at this
    floor instead of iterating on rounding noise.

    Parameters
    ----------
    v_rows : ndarray, shape (batch, rows)
        Driver voltages, volt.
    conductance_norm : float
        Euclidean norm over the free nodes of each node's total conductance, siemens.
    """
    return np.finfo(np.float64).eps * np.max(np.abs(v_rows), axis=1) * conductance_norm


def _norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of each batch entry of x, shape (batch,)."""
    return np.sqrt(np.einsum("bij,bij->b", x, x))


class LineSolver:
    """Solve a 1R crossbar (linear or polynomial cells) with line-preconditioned CG.

    Parameters
    ----------
    crossbar : Crossbar
        A 1R crossbar (no access transistor) whose cells the solver can evaluate. Each row is
        either a wire (``r_row > 0``) or a single node held by an ideal driver
        (``r_row = 0`` and ``r_source = 0``); each column a wire (``r_col > 0``) or a single node
        held at 0 V by an ideal read-out.
    rtol : float
        Stop when the Euclidean norm of the nodal current residual (KCL mismatch over all nodes,
        ampere) is below ``rtol`` times its value at the start (node voltages of an ideal crossbar
        without wires), or below the rounding floor of :func:`rounding_floor` when that is higher.
    max_iter : int
        Most CG iterations per linear solve.
    max_newton : int
        Most Newton iterations (non-linear cells).

    Raises
    ------
    NotApplicableError
        The crossbar is not of the form above.
    """

    def __init__(self, crossbar: Crossbar, rtol: float = 1e-10, max_iter: int = 1000,
                 max_newton: int = 50) -> None:
        if crossbar.access is not None:
            raise NotApplicableError("the line solver handles 1R crossbars only (this one is 1T1R)")
        if not crossbar.cells.solvable:
            raise NotApplicableError(f"{type(crossbar.cells).__name__} cannot be evaluated by the "
                                     "fast solver")
        r_source = crossbar.driver.r_source
        if crossbar.r_row == 0 and r_source > 0:
            raise NotApplicableError("rows without wire resistance but with a driver resistance "
                                     "are one node coupled to every column")
        ideal = isinstance(crossbar.readout, IdealReadout)
        if crossbar.r_col == 0 and not ideal:
            raise NotApplicableError("columns without wire resistance into a TIA are one node "
                                     "coupled to every row")
        self.crossbar = crossbar
        self.rtol = float(rtol)
        self.max_iter = int(max_iter)
        self.max_newton = int(max_newton)
        n, m = crossbar.shape
        self._g_row = 1.0 / crossbar.r_row if crossbar.r_row > 0 else 0.0
        self._g_col = 1.0 / crossbar.r_col if crossbar.r_col > 0 else 0.0
        self._g_source = 1.0 / r_source if r_source > 0 else np.inf
        self._g_readout = crossbar.readout.input_conductance

        # Row lines (n, m); nodes held by an ideal driver are fixed (Dirichlet) unknowns.
        self.row_fixed = np.zeros((n, m), dtype=bool)
        if crossbar.r_row == 0:
            self.row_fixed[:] = True
        elif r_source == 0:
            self.row_fixed[:, 0] = True
        self._row_diag, self._row_off = self._wire_lines(
            n, m, self._g_row, self._g_source, at_end=False, fixed=self.row_fixed)
        # Column lines, stored row-major like everything else: (n, m), line j is [:, j].
        col_fixed = np.zeros((m, n), dtype=bool)
        if crossbar.r_col == 0:
            col_fixed[:] = True
        elif ideal:
            col_fixed[:, -1] = True
        col_diag, col_off = self._wire_lines(
            m, n, self._g_col, self._g_readout, at_end=True, fixed=col_fixed)
        self.col_fixed = np.ascontiguousarray(col_fixed.T)
        self._col_diag = np.ascontiguousarray(col_diag.T)
        self._col_off = np.ascontiguousarray(col_off.T)
        self._row_free = (~self.row_fixed).astype(np.float64)
        self._col_free = (~self.col_fixed).astype(np.float64)
        # A cell couples two unknowns only when neither end is fixed.
        self._coupled = self._row_free * self._col_free
        self._linear_ops = None
        self._work: dict[str, np.ndarray] = {}
        g = crossbar.cells.small_signal_conductance()
        self._conductance_norm = np.sqrt(np.sum(((self._row_diag + g) * self._row_free) ** 2)
                                         + np.sum(((self._col_diag + g) * self._col_free) ** 2))

    @staticmethod
    def _wire_lines(lines, length, g_wire, g_end, at_end, fixed):
        """Diagonal and coupling of the wire part of the line systems (without cells)."""
        diag = np.zeros((lines, length))
        diag[:, :-1] += g_wire
        diag[:, 1:] += g_wire
        if np.isfinite(g_end):
            diag[:, -1 if at_end else 0] += g_end
        off = np.full((lines, length), -g_wire)
        off[:, -1] = 0.0
        # A fixed unknown's equation is dx = 0: unit diagonal, no coupling either way.
        off[:, :-1][fixed[:, :-1] | fixed[:, 1:]] = 0.0
        diag[fixed] = 1.0
        return diag, off

    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        """A scratch array kept between calls (batches of equal size reuse it).

        Fresh arrays of tens of MB are page-faulted in on every allocation (the allocator hands
        them back to the system on release); keeping the scratch arrays saves that.
        """
        buf = self._work.get(name)
        if buf is None or buf.shape != shape:
            buf = self._work[name] = np.empty(shape)
        return buf

    # --- residual and Jacobian -------------------------------------------------------------

    def _residual(self, r, c, v, i_cell, f_r, f_c):
        """KCL residual (ampere) at row nodes and column nodes into ``f_r``, ``f_c`` (b, n, m)."""
        flow = self._buffer("flow", r.shape)
        np.copyto(f_r, i_cell)
        if self._g_row:
            part = flow[..., :-1]
            np.subtract(r[..., :-1], r[..., 1:], out=part)
            part *= self._g_row
            f_r[..., :-1] += part
            f_r[..., 1:] -= part
        if np.isfinite(self._g_source):
            f_r[..., 0] += self._g_source * (r[..., 0] - v)
        f_r *= self._row_free
        np.negative(i_cell, out=f_c)
        if self._g_col:
            part = flow[..., :-1, :]
            np.subtract(c[..., :-1, :], c[..., 1:, :], out=part)
            part *= self._g_col
            f_c[..., :-1, :] += part
            f_c[..., 1:, :] -= part
        if np.isfinite(self._g_readout):
            f_c[..., -1, :] += self._g_readout * c[..., -1, :]
        f_c *= self._col_free
        return np.sqrt(_norms(f_r) ** 2 + _norms(f_c) ** 2)

    def _operators(self, slope):
        """Factorised line systems and coupling for cell slopes (S), shape (n, m) or (b, n, m)."""
        coupling = slope * self._coupled
        row_diag = np.where(self.row_fixed, 1.0, self._row_diag + slope)
        col_diag = np.where(self.col_fixed, 1.0, self._col_diag + slope)
        try:
            rows = TridiagonalLines(row_diag, np.broadcast_to(self._row_off, row_diag.shape))
            cols = TridiagonalColumns(col_diag, self._col_off)
        except NotPositiveDefiniteError as err:
            raise NotPositiveDefiniteError(
                f"{err}; the line solver needs cells with dI/dV > 0 at the operating point") from None
        return rows, cols, coupling, _kernel_operands(rows, cols, coupling)

    # --- the linear solve ------------------------------------------------------------------

    def _newton_step(self, f_r, f_c, ops, tol_abs):
        """Solve ``J [dr, dc] = -[f_r, f_c]``: CG on the column-node Schur complement."""
        rows, cols, coupling, _ = ops
        b = np.negative(f_r, out=self._buffer("rhs", f_r.shape))
        rows.solve(b, overwrite=True)
        b *= coupling
        b -= f_c
        d_c, iterations = self._schur_cg(ops, b, tol_abs)
        d_r = np.multiply(d_c, coupling, out=self._buffer("d_r", f_r.shape))
        d_r -= f_r
        rows.solve(d_r, overwrite=True)
        return d_r, d_c, iterations

    def _schur_cg(self, ops, b, tol_abs):
        """Conjugate gradients on ``S = A_cc - C A_rr^-1 C`` preconditioned by ``A_cc^-1``.

        Stops for batch entry k when ``||b - S x||_2 <= tol_abs[k]``. Each iteration is the two
        compiled kernels of :mod:`pyaimc.circuit.cg_kernels`; ``b`` is used as scratch.
        """
        coupling, row_lower, row_inv_d, col_lower, col_inv_d = ops[3]
        batch = b.shape[0]
        res = np.ascontiguousarray(b)  # the right-hand side becomes the residual
        x, z, p, u, q = (self._buffer(name, b.shape)
                         for name in ("cg_x", "cg_z", "cg_p", "cg_u", "cg_q"))
        x.fill(0.0)
        p.fill(0.0)  # the first direction update multiplies them by beta = 0
        u.fill(0.0)
        # which operator slice serves each batch entry: one shared, or one per entry
        sel = (np.arange(batch) if coupling.shape[0] > 1 else np.zeros(batch, dtype=np.int64))
        iterations = np.zeros(batch, dtype=int)
        rn2, rz, pq = np.zeros(batch), np.zeros(batch), np.zeros(batch)
        active = np.ones(batch, dtype=bool)
        zero = np.zeros(batch)
        apply_schur, update_precondition = kernels(b.size)
        with KERNEL_LOCK:
            # z = A_cc^-1 res; u = A_cc p is kept by recurrence: A_cc z = res, so
            # A_cc (z + beta p) = res + beta u (no tridiagonal product per iteration).
            update_precondition(sel, active, zero, x, p, res, q, z, col_lower, col_inv_d, rn2,
                                rz)
            active = np.sqrt(rn2) > tol_abs
            beta = zero
            for _ in range(self.max_iter):
                if not active.any():
                    return x, iterations
                apply_schur(sel, active, beta, z, p, res, u, q, coupling, row_lower, row_inv_d,
                            pq)
                if np.any(pq[active] <= 0):
                    raise NotPositiveDefiniteError(
                        "conjugate gradients met a direction of non-positive curvature: the "
                        "nodal matrix is not positive definite (a cell with dI/dV <= 0)")
                alpha = np.where(active, rz / np.where(active, pq, 1.0), 0.0)
                rz_old = rz.copy()
                update_precondition(sel, active, alpha, x, p, res, q, z, col_lower, col_inv_d,
                                    rn2, rz)
                iterations += active
                active = np.sqrt(rn2) > tol_abs
                beta = np.where(active, rz / np.where(active, rz_old, 1.0), 0.0)
        if not active.any():
            return x, iterations
        rn = np.sqrt(rn2)
        worst = int(np.argmax(rn / tol_abs))
        raise ConvergenceError(
            f"line solver: conjugate gradients did not reach the tolerance in {self.max_iter} "
            f"iterations (vector {worst}: residual {rn[worst]:.3g} A, needed {tol_abs[worst]:.3g} A)")

    # --- public ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Factorise the line systems of a linear crossbar now (else on the first solve)."""
        if self.crossbar.cells.is_linear and self._linear_ops is None:
            self._linear_ops = self._operators(self.crossbar.cells.small_signal_conductance())

    def solve(self, v_rows: np.ndarray):
        """Node voltages for a batch of driver voltages.

        Parameters
        ----------
        v_rows : ndarray, shape (batch, rows)
            Driver output voltages in volt (already checked and quantised).

        Returns
        -------
        r : ndarray, shape (batch, rows, cols)
            Row-node voltages, volt (scratch memory of the solver: copy it to keep it past the
            next call).
        c : ndarray, shape (batch, rows, cols)
            Column-node voltages, volt (scratch memory, like ``r``).
        i_cell : ndarray, shape (batch, rows, cols)
            Cell currents at the solution, ampere.
        stats : dict
            ``cg_iterations`` (total per batch entry), ``newton_iterations``, ``residual``
            (final residual norm relative to the start).

        Raises
        ------
        ConvergenceError
            The tolerance was not reached within ``max_iter`` / ``max_newton``.
        NotPositiveDefiniteError
            A cell has a non-positive slope, so the method does not apply.
        """
        cells = self.crossbar.cells
        n, m = self.crossbar.shape
        v = np.asarray(v_rows, dtype=np.float64)
        batch = v.shape[0]
        shape = (batch, n, m)
        r, r_new = self._buffer("r", shape), self._buffer("r_trial", shape)
        c, c_new = self._buffer("c", shape), self._buffer("c_trial", shape)
        f_r, f_c = self._buffer("f_r", shape), self._buffer("f_c", shape)
        fr_new, fc_new = self._buffer("f_r_trial", shape), self._buffer("f_c_trial", shape)
        v_cell = self._buffer("v_cell", shape)
        # Start from the ideal node voltages: rows at their drivers, columns at 0 V. No current
        # flows in the wires, so the residual is the cell currents alone.
        np.copyto(r, v[:, :, None])
        c.fill(0.0)
        np.copyto(v_cell, r)
        i_cell, slope = cells.current_and_slope(v_cell)
        np.multiply(i_cell, self._row_free, out=f_r)
        np.multiply(i_cell, self._col_free, out=f_c)
        np.negative(f_c, out=f_c)
        norm = np.sqrt(_norms(f_r) ** 2 + _norms(f_c) ** 2)
        start = norm
        target = np.maximum(self.rtol * norm, rounding_floor(v, self._conductance_norm))
        cg_total = np.zeros(batch, dtype=int)
        linear = cells.is_linear
        for newton in range(self.max_newton + 1):
            active = norm > target
            if not active.any():
                break
            if newton == self.max_newton:
                worst = int(np.argmax(norm / np.where(target > 0, target, 1)))
                raise ConvergenceError(
                    f"line solver: Newton iterations did not reach rtol={self.rtol:g} in "
                    f"{self.max_newton} iterations (vector {worst}: relative residual "
                    f"{norm[worst] / start[worst]:.3g})")
            if linear:
                self.prepare()
                ops = self._linear_ops
                tol = 0.5 * target
            else:
                ops = self._operators(slope)
                tol = np.maximum(0.5 * target, NEWTON_FORCING * norm)
            tol = np.where(active, tol, np.inf)
            d_r, d_c, iterations = self._newton_step(f_r, f_c, ops, tol)
            cg_total += iterations
            step = np.ones(batch)
            for _ in range(MAX_HALVINGS + 1):
                if np.all(step == 1.0):
                    np.add(r, d_r, out=r_new)
                    np.add(c, d_c, out=c_new)
                else:
                    np.multiply(step[:, None, None], d_r, out=r_new)
                    r_new += r
                    np.multiply(step[:, None, None], d_c, out=c_new)
                    c_new += c
                i_new, s_new = cells.current_and_slope(np.subtract(r_new, c_new, out=v_cell))
                norm_new = self._residual(r_new, c_new, v, i_new, fr_new, fc_new)
                worse = active & (norm_new > norm * (1 - 1e-4 * step)) & (norm_new > target)
                if linear or not worse.any():
                    break
                step[worse] *= 0.5
            r, r_new, c, c_new = r_new, r, c_new, c
            f_r, fr_new, f_c, fc_new = fr_new, f_r, fc_new, f_c
            i_cell, slope, norm = i_new, s_new, norm_new
        relative = np.divide(norm, start, out=np.zeros(batch), where=start > 0)
        stats = {"cg_iterations": cg_total, "newton_iterations": newton, "residual": relative}
        return r, c, i_cell, stats

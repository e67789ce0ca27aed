"""Direct sparse nodal analysis of a crossbar: LU factorisation (SuperLU) and Newton iterations.

Handles every crossbar the fast engine models: 1R and 1T1R, linear or polynomial cells, any wire,
driver and read-out resistances (zero included: a zero-resistance line is one node). Each cell of a
1T1R array adds an internal node between the cell and its transistor's drain.

For linear 1R arrays the nodal matrix does not depend on the voltages: it is factorised once and
the whole batch of input vectors is solved with that one factorisation. Non-linear arrays run a
Newton iteration per input vector, refactorising the Jacobian at each step.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pyaimc.circuit.crossbar import Crossbar, IdealReadout, nmos_level1
from pyaimc.circuit.errors import ConvergenceError, NotApplicableError
from pyaimc.circuit.lines import rounding_floor

#: Most step halvings in one Newton step.
MAX_HALVINGS = 30


def _factorize(matrix: sp.spmatrix):
    # MMD on A^T + A gave the least fill on crossbar matrices (measured: 3.1e5 non-zeros in
    # L+U at 64 x 64 against 3.9e5 with COLAMD).
    return spla.splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A")


class DirectSolver:
    """Sparse LU nodal solver for a crossbar.

    Parameters
    ----------
    crossbar : Crossbar
        Cells must be evaluable by the fast engine (not :class:`SubcircuitCells`).
    rtol : float
        Stop the Newton iterations when the norm of the nodal current residual (ampere) is below
        ``rtol`` times its value at the start (ideal node voltages), or below the rounding floor
        (:func:`~pyaimc.circuit.lines.rounding_floor`) when that is higher.
    max_newton : int
        Most Newton iterations per input vector.
    """

    def __init__(self, crossbar: Crossbar, rtol: float = 1e-10, max_newton: int = 50) -> None:
        if not crossbar.cells.solvable:
            raise NotApplicableError(f"{type(crossbar.cells).__name__} cannot be evaluated by the "
                                     "fast solver; use the ngspice engine")
        self.crossbar = crossbar
        self.rtol = float(rtol)
        self.max_newton = int(max_newton)
        self._number_nodes()
        self._assemble()
        self._lu = None

    # --- topology --------------------------------------------------------------------------

    def _number_nodes(self) -> None:
        xbar = self.crossbar
        n, m = xbar.shape
        free = itertools.count()
        # Fixed nodes get negative codes: -1 is ground, -2 - i the ideal driver of row i.
        ground = -1
        rows = np.empty((n, m), dtype=np.int64)
        conductances = []  # (node_a, node_b, conductance) arrays
        r_source = xbar.driver.r_source
        for i in range(n):
            if xbar.r_row > 0:
                rows[i] = [-2 - i if (j == 0 and r_source == 0) else next(free) for j in range(m)]
            else:
                rows[i] = -2 - i if r_source == 0 else next(free)
        if r_source > 0:
            conductances.append((np.arange(-2, -2 - n, -1), rows[:, 0], np.full(n, 1.0 / r_source)))
        if xbar.r_row > 0 and m > 1:
            conductances.append((rows[:, :-1].ravel(), rows[:, 1:].ravel(),
                                 np.full(n * (m - 1), 1.0 / xbar.r_row)))
        cols = np.empty((n, m), dtype=np.int64)
        ideal = isinstance(xbar.readout, IdealReadout)
        for j in range(m):
            if xbar.r_col > 0:
                cols[:, j] = [ground if (i == n - 1 and ideal) else next(free) for i in range(n)]
            else:
                cols[:, j] = ground if ideal else next(free)
        if not ideal:
            conductances.append((cols[-1, :], np.full(m, ground),
                                 np.full(m, xbar.readout.input_conductance)))
        if xbar.r_col > 0 and n > 1:
            conductances.append((cols[:-1, :].ravel(), cols[1:, :].ravel(),
                                 np.full((n - 1) * m, 1.0 / xbar.r_col)))
        inner = None
        if xbar.access is not None:
            inner = np.array([next(free) for _ in range(n * m)], dtype=np.int64).reshape(n, m)
        n_free = next(free)
        self.n_free = n_free
        self.n_fixed = 1 + n

        def index(code):
            code = np.asarray(code)
            return np.where(code >= 0, code, n_free - 1 - code)

        self.row_nodes = index(rows)
        self.col_nodes = index(cols)
        self.inner_nodes = None if inner is None else index(inner)
        self._conductances = [(index(a), index(b), g) for a, b, g in conductances]

    def _assemble(self) -> None:
        xbar = self.crossbar
        n_all = self.n_free + self.n_fixed
        linear_cells = xbar.cells.is_linear and xbar.access is None
        self.is_linear = linear_cells
        parts = list(self._conductances)
        cell_p = self.row_nodes.ravel()
        cell_n = (self.col_nodes if self.inner_nodes is None else self.inner_nodes).ravel()
        if linear_cells:
            parts.append((cell_p, cell_n, xbar.cells.small_signal_conductance().ravel()))
        a = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        b = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        g = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
        self.laplacian = sp.coo_matrix(
            (np.concatenate([g, g, -g, -g]),
             (np.concatenate([a, b, a, b]), np.concatenate([a, b, b, a]))),
            shape=(n_all, n_all)).tocsr()
        cells = np.arange(cell_p.size)
        # Incidence of the cells: +1 at the row end, -1 at the column (or inner) end.
        self.cell_incidence = sp.coo_matrix(
            (np.concatenate([np.ones(cells.size), -np.ones(cells.size)]),
             (np.concatenate([cell_p, cell_n]), np.concatenate([cells, cells]))),
            shape=(n_all, cells.size)).tocsr()
        if xbar.access is not None:
            drain, source = self.inner_nodes.ravel(), self.col_nodes.ravel()
            self.fet_incidence = sp.coo_matrix(
                (np.concatenate([np.ones(cells.size), -np.ones(cells.size)]),
                 (np.concatenate([drain, source]), np.concatenate([cells, cells]))),
                shape=(n_all, cells.size)).tocsr()
            self._drain, self._source = drain, source
            self._gate = np.repeat(xbar.access.gate_voltages(xbar.rows), xbar.cols)

    # --- equations -------------------------------------------------------------------------

    def _fixed_values(self, v):
        """Voltages of the fixed nodes (ground, row drivers), shape (batch, 1 + rows)."""
        return np.concatenate([np.zeros((v.shape[0], 1)), v], axis=1)

    def _initial(self, v):
        """Start: row nodes at their driver voltage, everything else at 0 V, shape (batch, n_all)."""
        x = np.zeros((v.shape[0], self.n_free + self.n_fixed))
        x[:, self.n_free:] = self._fixed_values(v)
        rows = np.repeat(np.arange(self.crossbar.rows), self.crossbar.cols)
        x[:, self.row_nodes.ravel()] = v[:, rows]
        return x

    def _evaluate(self, x, jacobian: bool):
        """Residual at the free nodes (ampere) for one node-voltage vector, and the Jacobian."""
        xbar = self.crossbar
        residual = self.laplacian @ x
        matrix = None
        if not self.is_linear:
            v_cell = self.cell_incidence.T @ x
            i_cell, slope = xbar.cells.current_and_slope(v_cell.reshape(xbar.shape))
            residual += self.cell_incidence @ i_cell.ravel()
            if jacobian:
                inc = self.cell_incidence[: self.n_free]
                matrix = inc @ sp.diags(slope.ravel()) @ inc.T
            if xbar.access is not None:
                i_fet, di_dd, di_ds = nmos_level1(x[self._drain], x[self._source], self._gate,
                                                  xbar.access)
                residual += self.fet_incidence @ i_fet
                if jacobian:
                    n_cells = i_fet.size
                    cells = np.arange(n_cells)
                    n_all = x.size
                    dep = sp.coo_matrix(
                        (np.concatenate([di_dd, di_ds]),
                         (np.concatenate([cells, cells]),
                          np.concatenate([self._drain, self._source]))),
                        shape=(n_cells, n_all)).tocsc()[:, : self.n_free]
                    matrix = matrix + self.fet_incidence[: self.n_free] @ dep
        if jacobian:
            base = self.laplacian[: self.n_free, : self.n_free]
            matrix = base if matrix is None else base + matrix
        return residual[: self.n_free], matrix

    # --- public ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Factorise the nodal matrix of a linear crossbar now (else on the first solve)."""
        if self.n_free and self.is_linear and self._lu is None:
            x = self._initial(np.zeros((1, self.crossbar.rows)))
            self._lu = _factorize(self._evaluate(x[0], jacobian=True)[1])

    def solve(self, v_rows: np.ndarray):
        """Node voltages for a batch of driver voltages.

        Parameters
        ----------
        v_rows : ndarray, shape (batch, rows)
            Driver output voltages in volt (already checked and quantised).

        Returns
        -------
        x : ndarray, shape (batch, n_nodes)
            All node voltages in volt (index with ``row_nodes``, ``col_nodes``, ``inner_nodes``).
        i_cell : ndarray, shape (batch, rows, cols)
            Cell currents in ampere (row node to column node).
        stats : dict
            ``newton_iterations`` per batch entry and ``residual`` (final residual norm relative
            to the start).
        """
        v = np.asarray(v_rows, dtype=np.float64)
        x = self._initial(v)
        batch = v.shape[0]
        iterations = np.zeros(batch, dtype=int)
        relative = np.zeros(batch)
        if self.n_free and self.is_linear:
            self.prepare()
            f = (self.laplacian @ x.T)[: self.n_free]
            start = np.linalg.norm(f, axis=0)
            target = np.maximum(self.rtol * start, rounding_floor(v, self._conductance_norm()))
            for k in range(self.max_newton + 1):
                norm = np.linalg.norm(f, axis=0)
                if np.all(norm <= target):
                    break
                if k == self.max_newton:
                    worst = int(np.argmax(norm / start))
                    raise self._failure(worst, norm[worst], start[worst])
                x[:, : self.n_free] -= self._lu.solve(f).T
                f = (self.laplacian @ x.T)[: self.n_free]
                iterations += 1
            relative = np.divide(norm, start, out=np.zeros(batch), where=start > 0)
        elif self.n_free:
            floor = rounding_floor(v, self._conductance_norm())
            for k in range(batch):
                x[k], iterations[k], relative[k] = self._newton(x[k], k, floor[k])
        i_cell = self._cell_currents(x)
        return x, i_cell, {"newton_iterations": iterations, "residual": relative}

    def _failure(self, k, norm, start):
        return ConvergenceError(
            f"direct solver: Newton iterations did not reach rtol={self.rtol:g} in "
            f"{self.max_newton} iterations (vector {k}: relative residual {norm / start:.3g})")

    def _conductance_norm(self) -> float:
        """Norm over the free nodes of each node's total linear and small-signal conductance."""
        diag = self.laplacian.diagonal()[: self.n_free]
        if not self.is_linear:
            slope = self.crossbar.cells.small_signal_conductance().ravel()
            diag = diag + np.abs(self.cell_incidence[: self.n_free]) @ slope
        return float(np.linalg.norm(diag))

    def _newton(self, x, k, floor):
        f, matrix = self._evaluate(x, jacobian=True)
        start = norm = np.linalg.norm(f)
        target = max(self.rtol * start, floor)
        for it in range(self.max_newton + 1):
            if norm <= target:
                return x, it, norm / start if start > 0 else 0.0
            if it == self.max_newton:
                raise self._failure(k, norm, start)
            try:
                dx = _factorize(matrix).solve(-f)
            except RuntimeError as err:  # SuperLU: "Factor is exactly singular"
                raise ConvergenceError(f"direct solver: vector {k}: the Jacobian is singular "
                                       f"({err})") from None
            step = 1.0
            for _ in range(MAX_HALVINGS + 1):
                x_new = x.copy()
                x_new[: self.n_free] += step * dx
                f_new, _ = self._evaluate(x_new, jacobian=False)
                norm_new = np.linalg.norm(f_new)
                if norm_new <= norm * (1 - 1e-4 * step) or norm_new <= target:
                    break
                step *= 0.5
            x = x_new
            f, matrix = self._evaluate(x, jacobian=True)
            norm = np.linalg.norm(f)
        raise AssertionError("unreachable")  # pragma: no cover

    def _cell_currents(self, x):
        xbar = self.crossbar
        v_cell = (self.cell_incidence.T @ x.T).T.reshape((-1,) + xbar.shape)
        return xbar.cells.current(v_cell)

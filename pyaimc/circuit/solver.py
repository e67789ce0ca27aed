"""The fast crossbar solver: picks the line-preconditioned CG method or sparse LU, and reports.

``method="auto"`` (the default) uses the line solver (:mod:`pyaimc.circuit.lines`) for 1R
crossbars: measured here it is faster than a sparse LU factorisation from 16 x 16 up (at 64 x 64
about 1.5 ms against 15 ms) and it is the only one that scales to 1024 x 1024. Where it does not
apply (1T1R, a zero-resistance line with a resistive end, cells with negative slope) or does not
converge, the direct sparse LU solver (:mod:`pyaimc.circuit.direct`) takes over when the circuit
is small enough for it (``direct_limit`` unknowns); otherwise the error says what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyaimc.circuit.crossbar import Crossbar
from pyaimc.circuit.direct import DirectSolver
from pyaimc.circuit.errors import ConvergenceError, NotApplicableError
from pyaimc.circuit.lines import LineSolver
from pyaimc.circuit.tridiagonal import NotPositiveDefiniteError

#: Most unknowns for which "auto" falls back to sparse LU (about 2 x 256 x 256 nodes; a factor
#: takes a few seconds there and grows like n**1.5 beyond).
DIRECT_LIMIT = 140_000
#: Batch entries x cells solved together by the line solver (4 vectors at 1024 x 1024, 64 at
#: 256 x 256). Wider batches amortise the column recurrence's per-step overhead (measured at
#: 1024 x 1024: 205 ms of CPU per vector one at a time, 195 ms four at a time); the solver keeps
#: about 20 scratch arrays of this many doubles (some 0.7 GB here).
CHUNK_CELLS = 1 << 22

METHODS = ("auto", "lines", "direct")


@dataclass
class CrossbarSolution:
    """Result of :meth:`CrossbarSolver.solve`.

    Attributes
    ----------
    column_currents : ndarray, shape (batch, cols)
        Current into each column's read-out, ampere.
    outputs : ndarray, shape (batch, cols) or (batch, cols // 2)
        Column currents, or ``I_plus - I_minus`` per differential pair.
    method : str
        The method that produced the result (``"lines"`` or ``"direct"``; a fallback names why).
    stats : dict
        Iteration counts per batch entry and the final relative residual.
    row_voltages, column_voltages : ndarray, shape (batch, rows, cols), optional
        Node voltages in volt (with ``keep_voltages=True``).
    """

    column_currents: np.ndarray
    outputs: np.ndarray
    method: str
    stats: dict = field(default_factory=dict)
    row_voltages: np.ndarray | None = None
    column_voltages: np.ndarray | None = None


#: above this largest ``G * r_wire`` the line solver's accuracy is not guaranteed (exact LU instead)
ILL_CONDITIONED = 1e3


def _largest_g_r_wire(crossbar: Crossbar) -> float:
    """Largest small-signal cell conductance times the larger wire resistance (dimensionless)."""
    r = max(crossbar.r_row, crossbar.r_col)
    if r == 0:
        return 0.0
    try:
        g = np.abs(crossbar.cells.small_signal_conductance())
    except (NotImplementedError, AttributeError):
        return 0.0
    return float(np.max(g)) * r if g.size else 0.0


class CrossbarSolver:
    """Fast nodal solver for a crossbar; reuse one instance for many input batches.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit. Cells must be :class:`LinearCells` or :class:`PolynomialCells` (or any
        :class:`CellIV` that implements ``current_and_slope``).
    method : {"auto", "lines", "direct"}
        ``"lines"``: Newton + CG on the column nodes with line solves (1R only);
        ``"direct"``: sparse LU; ``"auto"``: lines where it applies, else or on failure direct.
    rtol : float
        Tolerance: the Euclidean norm of the KCL residual over all nodes (ampere) must fall below
        ``rtol`` times its value for the ideal node voltages (rows at their drivers, columns at
        0 V). Column currents then carry a relative error of about ``rtol`` (tests check 1e-8
        agreement at the default).
    max_iter : int
        Most CG iterations per linear solve (line method).
    max_newton : int
        Most Newton iterations.
    direct_limit : int
        Largest number of unknowns for the direct fallback in ``"auto"``.
    """

    def __init__(self, crossbar: Crossbar, method: str = "auto", rtol: float = 1e-10,
                 max_iter: int = 1000, max_newton: int = 50,
                 direct_limit: int = DIRECT_LIMIT) -> None:
        if not isinstance(crossbar, Crossbar):
            raise TypeError(f"crossbar must be a Crossbar, got {type(crossbar).__name__}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not (np.isfinite(rtol) and 0 < rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {rtol}")
        if not crossbar.cells.solvable:
            raise NotApplicableError(
                f"{type(crossbar.cells).__name__} can only be simulated with the ngspice engine")
        self.crossbar = crossbar
        self.method = method
        self.rtol = float(rtol)
        self.max_iter = int(max_iter)
        self.max_newton = int(max_newton)
        self.direct_limit = int(direct_limit)
        self._lines: LineSolver | None = None
        self._direct: DirectSolver | None = None
        self._lines_reason = ""
        self.g_r_wire = _largest_g_r_wire(crossbar)
        if method in ("auto", "lines"):
            try:
                if self.g_r_wire > ILL_CONDITIONED:
                    # the CG residual is normalised by the largest currents: with cells far
                    # more conductive than a wire segment, small columns lose their digits
                    # (measured: 0.9 % error at G r_wire = 1e7 while the residual passed)
                    raise NotApplicableError(
                        f"ill-conditioned for the line solver: largest cell conductance x wire "
                        f"resistance = {self.g_r_wire:.3g} > {ILL_CONDITIONED:g}")
                self._lines = LineSolver(crossbar, rtol, max_iter, max_newton)
            except NotApplicableError as err:
                if method == "lines":
                    raise
                self._lines_reason = str(err)

    @property
    def unknowns(self) -> int:
        """Approximate number of node unknowns (2 per cell, 3 with an access transistor)."""
        n, m = self.crossbar.shape
        return (3 if self.crossbar.access is not None else 2) * n * m

    def _direct_solver(self) -> DirectSolver:
        if self._direct is None:
            self._direct = DirectSolver(self.crossbar, self.rtol, self.max_newton)
        return self._direct

    def prepare(self) -> "CrossbarSolver":
        """Set up and factorise what does not depend on the inputs (linear cells); returns self.

        Solving calls it anyway; call it first to time the set-up apart from the solves.
        """
        if self._lines is not None:
            self._lines.prepare()
        else:
            self._direct_solver().prepare()
        return self

    def solve(self, v_rows, keep_voltages: bool = False) -> CrossbarSolution:
        """Column currents for one input vector or a batch.

        Parameters
        ----------
        v_rows : array_like, shape (rows,) or (batch, rows)
            Requested row voltages in volt (the drivers quantise them when they have a DAC).
        keep_voltages : bool
            Also return all node voltages (memory: 2 x batch x rows x cols doubles).

        Returns
        -------
        CrossbarSolution
            Always with a batch axis.

        Raises
        ------
        ValueError
            Bad input (shape, non-finite, beyond the DAC range).
        ConvergenceError
            The tolerance was not reached (and no fallback applied).
        """
        v = self.crossbar.row_voltages(v_rows)
        if self._lines is not None:
            try:
                return self._solve_lines(v, keep_voltages)
            except (ConvergenceError, NotPositiveDefiniteError) as err:
                if self.method == "lines" or self.unknowns > self.direct_limit:
                    if isinstance(err, NotPositiveDefiniteError):
                        raise ConvergenceError(f"line solver: {err}") from None
                    raise
                reason = f"direct (line solver failed: {err})"
        else:
            reason = "direct" if self.method == "direct" else f"direct ({self._lines_reason})"
            if self.g_r_wire > ILL_CONDITIONED and self.unknowns > self.direct_limit:
                raise ConvergenceError(
                    f"the crossbar is ill-conditioned (largest cell conductance x wire resistance "
                    f"= {self.g_r_wire:.3g}) and too large ({self.unknowns} unknowns > "
                    f"{self.direct_limit}) for the exact fallback; check the conductances (S) and "
                    f"wire resistance (ohm), or use the ngspice engine")
        return self._solve_direct(v, keep_voltages, reason)

    def _solve_lines(self, v, keep_voltages):
        n, m = self.crossbar.shape
        chunk = max(1, CHUNK_CELLS // (n * m))
        currents, stats, rows, cols = [], [], [], []
        for start in range(0, v.shape[0], chunk):
            r, c, i_cell, st = self._lines.solve(v[start: start + chunk])
            currents.append(i_cell.sum(axis=1))
            stats.append(st)
            if keep_voltages:  # r and c are the line solver's scratch arrays
                rows.append(r.copy())
                cols.append(c.copy())
            del r, c, i_cell
        merged = {
            "cg_iterations": np.concatenate([s["cg_iterations"] for s in stats]),
            "newton_iterations": max(s["newton_iterations"] for s in stats),
            "residual": np.concatenate([s["residual"] for s in stats]),
        }
        i_col = np.concatenate(currents)
        return CrossbarSolution(
            column_currents=i_col, outputs=self.crossbar.outputs(i_col), method="lines",
            stats=merged,
            row_voltages=np.concatenate(rows) if keep_voltages else None,
            column_voltages=np.concatenate(cols) if keep_voltages else None)

    def _solve_direct(self, v, keep_voltages, method):
        direct = self._direct_solver()
        x, i_cell, stats = direct.solve(v)
        i_col = i_cell.sum(axis=1)
        return CrossbarSolution(
            column_currents=i_col, outputs=self.crossbar.outputs(i_col), method=method,
            stats=stats,
            row_voltages=x[:, direct.row_nodes] if keep_voltages else None,
            column_voltages=x[:, direct.col_nodes] if keep_voltages else None)


def solve_crossbar(crossbar: Crossbar, v_rows, **kwargs) -> CrossbarSolution:
    """Solve a crossbar for one input vector or a batch with the fast engine.

    Shorthand for ``CrossbarSolver(crossbar, **kwargs).solve(v_rows)``; see there.
    """
    keep = kwargs.pop("keep_voltages", False)
    return CrossbarSolver(crossbar, **kwargs).solve(v_rows, keep_voltages=keep)

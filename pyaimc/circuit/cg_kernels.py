"""Compiled (numba) kernels of the line solver's preconditioned conjugate gradients.

One CG iteration of :class:`pyaimc.circuit.lines.LineSolver` used to be some twenty numpy passes
over (batch, rows, cols) arrays: products, the two tridiagonal solves, the vector updates and the
dot products, each a separate sweep through memory. Here an iteration is two kernels that stream
through the arrays and keep a block of row lines in cache while it is solved:

* :func:`apply_schur` — the direction update ``p = z + beta p`` (and ``u = res + beta u``, the
  running ``A_cc p``), the Schur-complement product ``q = u - C A_rr^-1 C p`` with the row-line
  solves, and ``<p, q>``;
* :func:`update_precondition` — ``x += alpha p``, ``res -= alpha q``, ``||res||^2``, the
  column-line preconditioner ``z = A_cc^-1 res`` (a recurrence down the rows, vectorised over the
  columns) and ``<res, z>``.

Batch entries run in parallel (``prange``). Entries whose ``active`` flag is off are skipped.
The line systems come factorised as ``L D L^T`` (LAPACK ``dpttrf``): per line the unit
sub-diagonal of ``L`` and ``1 / D``. Operators shared by the whole batch have a leading axis of
one; ``sel[k]`` names the operator slice of batch entry ``k``.

Threading: the Monte-Carlo executor forks worker processes, and GNU OpenMP (numba's first choice
where it is installed) aborts a process that forks after using it. Unless the user chose a
threading layer (``NUMBA_THREADING_LAYER``), this module asks numba for a fork-safe one
(``"forksafe"``: TBB, or its own ``workqueue``). ``workqueue`` must not be entered by two Python
threads at once, so callers hold :data:`KERNEL_LOCK` around the kernels.
"""

from __future__ import annotations

import threading
import types

import numba as nb
import numpy as np

if nb.config.THREADING_LAYER == "default":
    nb.config.THREADING_LAYER = "forksafe"

#: Serialises the parallel kernels between Python threads (see the module docstring).
KERNEL_LOCK = threading.Lock()

#: Row lines solved together: their recurrences interleave, hiding each step's latency.
ROW_BLOCK = 8

#: Smallest work (batch entries x cells) for the parallel kernels; below it, starting the worker
#: threads costs more than they save (measured: 64 x 64, one vector, set-up and solve: 2.1 ms
#: threaded, 0.6 ms serial).
PARALLEL_MIN_CELLS = 1 << 17


@nb.njit(parallel=True, fastmath=True, cache=True)
def apply_schur(sel, active, beta, z, p, res, u, q, coupling, row_lower, row_inv_d, pq):
    """``p = z + beta p``, ``u = res + beta u``, ``q = u - C A_rr^-1 C p``, ``pq = <p, q>``.

    Parameters
    ----------
    sel : int64 (batch,)
        Operator slice of each batch entry.
    active : bool (batch,)
        Entries to work on; the others are left as they are (``pq`` 0).
    beta : float64 (batch,)
        CG's direction coefficient (0 on the first iteration: ``p`` and ``u`` must then be
        finite, e.g. zero).
    z, p, res, u, q : float64 (batch, rows, cols)
        Preconditioned residual, direction, residual, ``A_cc p`` (updated in place), and the
        product (written).
    coupling, row_lower, row_inv_d : float64 (slices, rows, cols)
        Cell slopes ``C`` (S), the row lines' ``L`` sub-diagonal (entry ``j`` couples ``j`` and
        ``j + 1``) and ``1 / D``.
    pq : float64 (batch,)
        Written: ``<p, q>``.
    """
    batch, n, m = p.shape
    for b in nb.prange(batch):
        if not active[b]:
            pq[b] = 0.0
            continue
        s = sel[b]
        be = beta[b]
        t = np.empty((ROW_BLOCK, m))
        acc = 0.0
        for i0 in range(0, n, ROW_BLOCK):
            nr = min(ROW_BLOCK, n - i0)
            for r in range(nr):
                i = i0 + r
                for j in range(m):
                    pij = z[b, i, j] + be * p[b, i, j]
                    p[b, i, j] = pij
                    u[b, i, j] = res[b, i, j] + be * u[b, i, j]
                    t[r, j] = coupling[s, i, j] * pij
            for j in range(1, m):  # L y = t, the block's rows side by side
                for r in range(nr):
                    t[r, j] -= row_lower[s, i0 + r, j - 1] * t[r, j - 1]
            for r in range(nr):  # D L^T x = y
                t[r, m - 1] *= row_inv_d[s, i0 + r, m - 1]
            for j in range(m - 2, -1, -1):
                for r in range(nr):
                    t[r, j] = (t[r, j] * row_inv_d[s, i0 + r, j]
                               - row_lower[s, i0 + r, j] * t[r, j + 1])
            for r in range(nr):
                i = i0 + r
                for j in range(m):
                    qij = u[b, i, j] - coupling[s, i, j] * t[r, j]
                    q[b, i, j] = qij
                    acc += p[b, i, j] * qij
        pq[b] = acc


@nb.njit(parallel=True, fastmath=True, cache=True)
def update_precondition(sel, active, alpha, x, p, res, q, z, col_lower, col_inv_d, rn2, rz):
    """``x += alpha p``, ``res -= alpha q``, then ``z = A_cc^-1 res``; ``||res||^2``, ``<res, z>``.

    ``alpha`` of 0 skips the updates (the first preconditioning: ``x``, ``p``, ``q`` are not
    read). ``col_lower[s, i, j]`` couples rows ``i`` and ``i + 1`` of column ``j``;
    ``col_inv_d`` is ``1 / D``. Inactive entries are left as they are.
    """
    batch, n, m = res.shape
    for b in nb.prange(batch):
        if not active[b]:
            continue
        s = sel[b]
        a = alpha[b]
        update = a != 0.0
        acc = 0.0
        for i in range(n):
            if update:
                for j in range(m):
                    x[b, i, j] += a * p[b, i, j]
                    res[b, i, j] -= a * q[b, i, j]
            for j in range(m):
                acc += res[b, i, j] * res[b, i, j]
            if i == 0:
                for j in range(m):
                    z[b, 0, j] = res[b, 0, j]
            else:
                for j in range(m):  # L y = res, down the rows
                    z[b, i, j] = res[b, i, j] - col_lower[s, i - 1, j] * z[b, i - 1, j]
        rn2[b] = acc
        acc = 0.0
        for j in range(m):  # D L^T z = y, back up
            z[b, n - 1, j] *= col_inv_d[s, n - 1, j]
            acc += res[b, n - 1, j] * z[b, n - 1, j]
        for i in range(n - 2, -1, -1):
            for j in range(m):
                v = z[b, i, j] * col_inv_d[s, i, j] - col_lower[s, i, j] * z[b, i + 1, j]
                z[b, i, j] = v
                acc += res[b, i, j] * v
        rz[b] = acc


def _serial(kernel):
    """``kernel`` compiled without threads (``prange`` runs as ``range``), for small problems.

    numba names a kernel's disk cache after the Python function's qualified name, so the serial
    copy gets a name of its own: sharing the threaded kernel's cache, the threaded dispatcher
    loaded the serial code (measured: one core busy instead of two).
    """
    f = kernel.py_func
    copy = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                              f.__defaults__, f.__closure__)
    copy.__qualname__ = f.__qualname__ + "_serial"
    copy.__doc__ = f.__doc__
    return nb.njit(fastmath=True, cache=True)(copy)


apply_schur_serial = _serial(apply_schur)
update_precondition_serial = _serial(update_precondition)

def kernels(cells: int):
    """``(apply_schur, update_precondition)``, threaded when ``cells`` (batch entries x cells
    per entry) reaches :data:`PARALLEL_MIN_CELLS`."""
    if cells >= PARALLEL_MIN_CELLS:
        return apply_schur, update_precondition
    return apply_schur_serial, update_precondition_serial

"""Fast crossbar solver: against a dense modified-nodal reference, between methods, on bad input."""

import numpy as np
import pytest

from pyaimc.circuit.cells import LinearCells, PolynomialCells, SubcircuitCells
from pyaimc.circuit.crossbar import (AccessTransistor, Crossbar, RowDriver, TIAReadout,
                                     differential_conductances, nmos_level1, one_r)
from pyaimc.circuit.errors import ConvergenceError, NotApplicableError
from pyaimc.circuit.solver import CrossbarSolver, solve_crossbar
from pyaimc.circuit.tridiagonal import (NotPositiveDefiniteError, TridiagonalColumns,
                                        TridiagonalLines)


def dense_reference(xbar: Crossbar, v: np.ndarray) -> np.ndarray:
    """Column currents of a linear 1R crossbar by plain modified nodal analysis (dense).

    Written independently of the package: every node is an unknown, drivers and 0 V read-outs are
    voltage sources with branch currents, a TIA is an explicit voltage-controlled voltage source
    with its feedback resistor. Zero-resistance wires are 0 V sources.
    """
    n, m = xbar.shape
    g_cell = xbar.cells.conductance
    nodes = {}

    def node(name):
        return nodes.setdefault(name, len(nodes))

    resistors, sources, vcvs = [], [], []  # (a, b, g); (a, b, volts); (out, ctrl, gain)
    for i in range(n):
        for j in range(m):
            resistors.append((node(f"r{i},{j}"), node(f"c{i},{j}"), g_cell[i, j]))
            if j < m - 1:
                a, b = node(f"r{i},{j}"), node(f"r{i},{j + 1}")
                if xbar.r_row > 0:
                    resistors.append((a, b, 1 / xbar.r_row))
                else:
                    sources.append((a, b, 0.0))
            if i < n - 1:
                a, b = node(f"c{i},{j}"), node(f"c{i + 1},{j}")
                if xbar.r_col > 0:
                    resistors.append((a, b, 1 / xbar.r_col))
                else:
                    sources.append((a, b, 0.0))
    gnd = node("gnd")
    for i in range(n):
        if xbar.driver.r_source > 0:
            sources.append((node(f"src{i}"), gnd, v[i]))
            resistors.append((node(f"src{i}"), node(f"r{i},0"), 1 / xbar.driver.r_source))
        else:
            sources.append((node(f"r{i},0"), gnd, v[i]))
    readouts = []
    for j in range(m):
        end = node(f"c{n - 1},{j}")
        if isinstance(xbar.readout, TIAReadout):
            out = node(f"out{j}")
            resistors.append((end, out, 1 / xbar.readout.r_feedback))
            vcvs.append((out, end, xbar.readout.gain))
            readouts.append(("tia", end, out))
        else:
            readouts.append(("src", len(sources), None))
            sources.append((end, gnd, 0.0))
    size = len(nodes) + len(sources) + len(vcvs)
    a_mat = np.zeros((size, size))
    rhs = np.zeros(size)
    for a, b, g in resistors:
        a_mat[a, a] += g
        a_mat[b, b] += g
        a_mat[a, b] -= g
        a_mat[b, a] -= g
    for k, (a, b, volts) in enumerate(sources):
        row = len(nodes) + k
        a_mat[a, row] += 1  # branch current leaves node a into the source
        a_mat[b, row] -= 1
        a_mat[row, a] += 1
        a_mat[row, b] -= 1
        rhs[row] = volts
    for k, (out, ctrl, gain) in enumerate(vcvs):
        row = len(nodes) + len(sources) + k
        a_mat[out, row] += 1
        a_mat[row, out] += 1  # v_out = gain * (0 - v_ctrl)
        a_mat[row, ctrl] += gain
    # Ground the reference node.
    a_mat[gnd, :] = 0
    a_mat[gnd, gnd] = 1
    rhs[gnd] = 0
    x = np.linalg.solve(a_mat, rhs)
    currents = []
    for kind, a, b in readouts:
        if kind == "src":
            currents.append(x[len(nodes) + a])
        else:
            currents.append((x[a] - x[b]) / xbar.readout.r_feedback)
    return np.array(currents)


def relative_error(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


CONFIGS = {
    "wires": dict(r_row=3.0, r_col=3.0),
    "row_wires_only": dict(r_row=5.0, r_col=0.0),
    "col_wires_only": dict(r_row=0.0, r_col=5.0),
    "unequal_wires": dict(r_row=1.0, r_col=7.0),
    "source_resistance": dict(r_row=2.0, r_col=2.0, driver=RowDriver(r_source=40.0)),
    "tia": dict(r_row=2.0, r_col=2.0, readout=TIAReadout(r_feedback=5e3, gain=300.0)),
    "source_tia_no_row_wire": dict(r_row=0.0, r_col=2.0, driver=RowDriver(r_source=40.0),
                                   readout=TIAReadout(5e3, 300.0)),
    "no_col_wire_tia": dict(r_row=2.0, r_col=0.0, readout=TIAReadout(5e3, 300.0)),
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("method", ["auto", "direct"])
def test_linear_crossbar_matches_dense_reference(config, method):
    rng = np.random.default_rng(7)
    g = rng.uniform(1e-5, 1e-3, (6, 5))  # strong cells: IR drop of several % even at 6 x 5
    v = rng.uniform(-0.3, 0.3, (3, 6))
    xbar = Crossbar(LinearCells(g), **CONFIGS[config])
    sol = CrossbarSolver(xbar, method=method).solve(v)
    ref = np.array([dense_reference(xbar, vk) for vk in v])
    assert relative_error(sol.column_currents, ref) < 1e-9
    # The wires must matter in this test, or it would not test them.
    if xbar.r_row or xbar.r_col:
        assert relative_error(v @ g, ref) > 1e-3


def test_auto_uses_line_solver_where_it_applies():
    g = np.full((4, 4), 1e-4)
    assert CrossbarSolver(one_r(g, 1.0)).solve(np.ones(4)).method == "lines"
    xbar = Crossbar(LinearCells(g), r_row=0.0, r_col=1.0, driver=RowDriver(r_source=10.0))
    sol = CrossbarSolver(xbar).solve(np.ones(4))
    assert sol.method.startswith("direct") and "driver resistance" in sol.method


@pytest.mark.parametrize("method", ["auto", "lines", "direct"])
def test_zero_wire_resistance_is_exactly_v_dot_g(method):
    rng = np.random.default_rng(1)
    g = rng.uniform(1e-6, 1e-4, (20, 13))
    v = rng.uniform(-0.2, 0.2, (5, 20))
    sol = CrossbarSolver(one_r(g, 0.0), method=method).solve(v)
    assert relative_error(sol.column_currents, v @ g) < 1e-12


def test_batch_equals_single_vectors():
    rng = np.random.default_rng(2)
    xbar = Crossbar(PolynomialCells.from_linear_cubic(rng.uniform(1e-6, 1e-4, (12, 9)), 0.3, 0.2),
                    r_row=4.0, r_col=4.0)
    v = rng.uniform(-0.2, 0.2, (4, 12))
    batch = CrossbarSolver(xbar).solve(v).column_currents
    single = np.array([CrossbarSolver(xbar).solve(vk).column_currents[0] for vk in v])
    assert relative_error(batch, single) < 1e-9


def kcl_residual(xbar, sol, v):
    """Largest KCL mismatch (ampere) at the nodes of a 1R crossbar, ideal drivers and read-out."""
    r, c = sol.row_voltages, sol.column_voltages
    g_w = 1.0 / xbar.r_row
    i_cell = xbar.cells.current(r - c)
    f_r = i_cell.copy()
    f_r[..., :-1] += g_w * (r[..., :-1] - r[..., 1:])
    f_r[..., 1:] += g_w * (r[..., 1:] - r[..., :-1])
    f_c = -i_cell
    f_c[..., :-1, :] += g_w * (c[..., :-1, :] - c[..., 1:, :])
    f_c[..., 1:, :] += g_w * (c[..., 1:, :] - c[..., :-1, :])
    assert np.allclose(r[..., 0], v, rtol=0, atol=0)  # drivers hold the first row node
    assert np.all(c[..., -1, :] == 0)  # read-out holds the last column node
    return max(np.abs(f_r[..., 1:]).max(), np.abs(f_c[..., :-1, :]).max())


@pytest.mark.parametrize("method", ["lines", "direct"])
def test_polynomial_cells_satisfy_kirchhoff(method):
    rng = np.random.default_rng(3)
    g = rng.uniform(1e-6, 1e-4, (16, 16))
    # Linear plus cubic term (25 % at 0.2 V) plus an even term: asymmetric, as the device model.
    a = np.zeros((16, 16, 3))
    a[..., 0] = g
    a[..., 1] = 0.1 * g / 0.2
    a[..., 2] = 0.25 * g / 0.2 ** 2
    xbar = Crossbar(PolynomialCells(a), r_row=5.0, r_col=5.0)
    v = rng.uniform(-0.2, 0.2, (2, 16))
    sol = CrossbarSolver(xbar, method=method).solve(v, keep_voltages=True)
    scale = np.abs(sol.column_currents).max()
    assert kcl_residual(xbar, sol, v) < 1e-9 * scale
    # The currents are the sum of cell currents of each column.
    i_cell = xbar.cells.current(sol.row_voltages - sol.column_voltages)
    assert relative_error(sol.column_currents, i_cell.sum(axis=1)) < 1e-12
    assert np.max(sol.stats["newton_iterations"]) >= 2


def test_line_solver_agrees_with_direct_at_128_with_strong_ir_drop():
    rng = np.random.default_rng(4)
    g = rng.uniform(1e-6, 1e-4, (128, 128))
    xbar = one_r(g, 2.0)
    v = rng.uniform(0.0, 0.2, (2, 128))
    lines = CrossbarSolver(xbar, method="lines").solve(v)
    direct = CrossbarSolver(xbar, method="direct").solve(v)
    ideal = v @ g
    loss = 1 - direct.column_currents.sum() / ideal.sum()
    assert 0.4 < loss < 0.8  # a hard case: half the current lost to the wires
    assert relative_error(lines.column_currents, direct.column_currents) < 1e-8
    assert np.all(lines.stats["residual"] < 1e-10)


def test_threaded_cg_kernels_agree_with_direct_and_serial_at_256():
    """Batch x cells above PARALLEL_MIN_CELLS takes the threaded kernels, per-entry operators
    (non-linear cells) too; both must give the direct solution."""
    from pyaimc.circuit import cg_kernels

    rng = np.random.default_rng(6)
    g = rng.uniform(1e-6, 1e-4, (256, 256))
    v = rng.uniform(-0.2, 0.2, (3, 256))
    assert v.shape[0] * g.size >= cg_kernels.PARALLEL_MIN_CELLS
    for xbar in (one_r(g, 1.0),
                 Crossbar(PolynomialCells.from_linear_cubic(g, 0.3, 0.2), r_row=1.0, r_col=1.0)):
        threaded = CrossbarSolver(xbar, method="lines").solve(v).column_currents
        serial = np.array([CrossbarSolver(xbar, method="lines").solve(vk).column_currents[0]
                           for vk in v])  # one vector: 65536 cells, the serial kernels
        direct = CrossbarSolver(xbar, method="direct").solve(v).column_currents
        assert relative_error(threaded, direct) < 1e-8
        assert relative_error(serial, direct) < 1e-8


def test_solvers_in_two_threads_give_the_sequential_results():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    jobs = [(one_r(rng.uniform(1e-6, 1e-4, (384, 384)), 0.5), rng.uniform(0, 0.2, (2, 384)))
            for _ in range(4)]
    sequential = [CrossbarSolver(x).solve(v).column_currents for x, v in jobs]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(lambda job: CrossbarSolver(job[0]).solve(job[1]).column_currents,
                                 jobs))
    for a, b in zip(sequential, threaded):
        assert relative_error(a, b) < 1e-12


def test_line_solver_converges_at_extreme_ir_drop():
    rng = np.random.default_rng(5)
    g = rng.uniform(1e-6, 1e-4, (64, 64))
    xbar = one_r(g, 500.0)
    v = np.full(64, 0.2)
    sol = CrossbarSolver(xbar, method="lines").solve(v)
    direct = CrossbarSolver(xbar, method="direct").solve(v)
    assert 1 - sol.column_currents.sum() / (v @ g).sum() > 0.95
    assert relative_error(sol.column_currents, direct.column_currents) < 1e-8


def test_nonconvergence_raises_or_falls_back():
    rng = np.random.default_rng(6)
    xbar = one_r(rng.uniform(1e-6, 1e-4, (32, 32)), 10.0)
    v = rng.uniform(0, 0.2, 32)
    with pytest.raises(ConvergenceError, match="did not reach the tolerance in 2 iterations"):
        CrossbarSolver(xbar, method="lines", max_iter=2).solve(v)
    sol = CrossbarSolver(xbar, max_iter=2).solve(v)
    assert sol.method.startswith("direct (line solver failed")
    ref = CrossbarSolver(xbar, method="direct").solve(v)
    assert relative_error(sol.column_currents, ref.column_currents) < 1e-12
    with pytest.raises(ConvergenceError, match="did not reach"):
        CrossbarSolver(xbar, max_iter=2, direct_limit=100).solve(v)


def test_negative_slope_cells_stop_the_line_solver():
    g = np.full((4, 4), 1e-4)
    a = np.stack([g, np.zeros_like(g), -10 * g], axis=-1)  # dI/dV < 0 beyond 0.18 V
    # Wires weak enough that the negative slopes make the nodal matrix indefinite.
    xbar = Crossbar(PolynomialCells(a), r_row=1e5, r_col=1e5)
    with pytest.raises(ConvergenceError, match="dI/dV"):
        CrossbarSolver(xbar, method="lines").solve(np.full(4, 0.3))


def test_tia_and_differential_outputs():
    rng = np.random.default_rng(8)
    w = rng.uniform(-1, 1, (10, 3))
    g = differential_conductances(w, 1e-6, 1e-4)
    assert np.allclose(g[:, 0::2] - g[:, 1::2], w * (1e-4 - 1e-6), rtol=0, atol=1e-18)
    xbar = Crossbar(LinearCells(g), differential=True, readout=TIAReadout(1e4, 1e5))
    v = rng.uniform(-0.2, 0.2, 10)
    sol = CrossbarSolver(xbar).solve(v)
    # No wires: the column sees only the TIA's input resistance R_f / (1 + A).
    r_in = 1e4 / (1 + 1e5)
    col_g = g.sum(axis=0)
    expected = (v @ g) / (1 + col_g * r_in)
    assert relative_error(sol.column_currents[0], expected) < 1e-12
    assert relative_error(sol.outputs[0], expected[0::2] - expected[1::2]) < 1e-12
    v_out = xbar.readout.output_voltage(sol.column_currents)
    assert np.allclose(v_out, -1e5 / (1 + 1e5) * 1e4 * sol.column_currents, rtol=1e-15)


def test_dac_quantises_and_limits_inputs():
    driver = RowDriver(dac_bits=3, v_max=0.3)
    assert np.allclose(driver.levels(), [-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3], atol=1e-15)
    xbar = Crossbar(LinearCells(np.eye(3) * 1e-4), driver=driver)
    sol = CrossbarSolver(xbar).solve([0.04, 0.06, -0.26])
    assert np.allclose(sol.column_currents[0], np.array([0.0, 0.1, -0.3]) * 1e-4, atol=1e-18)
    with pytest.raises(ValueError, match="beyond the driver full scale"):
        CrossbarSolver(xbar).solve([0.0, 0.31, 0.0])


def test_one_t_one_r_direct_newton_matches_element_equations():
    # A single cell: row driver -> cell -> NMOS -> 0 V read-out; solve the two-element series
    # circuit by bisection and compare.
    acc = AccessTransistor(v_gate=1.2)
    g = 2e-4
    xbar = Crossbar(LinearCells([[g]]), access=acc)
    for v in (0.3, -0.3, 1.5):
        i = CrossbarSolver(xbar).solve([v]).column_currents[0, 0]
        lo, hi = min(0.0, v), max(0.0, v)
        for _ in range(200):  # inner node voltage where both elements carry the same current
            mid = 0.5 * (lo + hi)
            i_fet = nmos_level1(mid, 0.0, 1.2, acc)[0]
            if (g * (v - mid) - i_fet) > 0:
                lo = mid
            else:
                hi = mid
        assert i == pytest.approx(g * (v - 0.5 * (lo + hi)), rel=1e-9)


def test_nmos_derivatives_match_finite_differences():
    acc = AccessTransistor(vto=0.4, kp=300e-6, lambda_=0.05)
    rng = np.random.default_rng(9)
    vd, vs = rng.uniform(-1, 1, (2, 200))
    vg = rng.uniform(0, 1.8, 200)
    i, d_d, d_s = nmos_level1(vd, vs, vg, acc)
    h = 1e-7
    num_d = (nmos_level1(vd + h, vs, vg, acc)[0] - nmos_level1(vd - h, vs, vg, acc)[0]) / (2 * h)
    num_s = (nmos_level1(vd, vs + h, vg, acc)[0] - nmos_level1(vd, vs - h, vg, acc)[0]) / (2 * h)
    assert np.allclose(d_d, num_d, rtol=1e-5, atol=1e-10)
    assert np.allclose(d_s, num_s, rtol=1e-5, atol=1e-10)
    # Swapping drain and source reverses the current (symmetric device).
    assert np.allclose(nmos_level1(vs, vd, vg, acc)[0], -i, rtol=1e-14, atol=0)


def test_polynomial_cells_evaluate_the_polynomial():
    rng = np.random.default_rng(10)
    a = rng.normal(size=(3, 4, 5))
    cells = PolynomialCells(a)
    v = rng.uniform(-1, 1, (2, 3, 4))
    i, s = cells.current_and_slope(v)
    powers = np.arange(1, 6)
    assert np.allclose(i, np.sum(a * v[..., None] ** powers, axis=-1), rtol=1e-12, atol=1e-14)
    assert np.allclose(s, np.sum(a * powers * v[..., None] ** (powers - 1), axis=-1),
                       rtol=1e-12, atol=1e-14)
    lc = PolynomialCells.from_linear_cubic(np.full((1, 1), 1e-4), 0.2, 0.25)
    assert lc.current(np.full((1, 1), 0.25))[0, 0] == pytest.approx(1.2 * 1e-4 * 0.25, rel=1e-14)


@pytest.mark.parametrize("g, match", [
    ([[1e-5, -1e-6]], "negative value at row 0, column 1"),
    ([[1e-5, np.nan]], "non-finite value at index \\(0, 1\\)"),
    ([[1e-5, np.inf]], "non-finite"),
    ([1e-5, 1e-6], "2 dimensions"),
])
def test_bad_conductances_are_rejected(g, match):
    with pytest.raises(ValueError, match=match):
        one_r(g, 1.0)


def test_bad_circuit_parameters_are_rejected():
    g = np.full((4, 3), 1e-5)
    with pytest.raises(ValueError, match="r_row must be finite and >= 0"):
        one_r(g, -1.0)
    with pytest.raises(ValueError, match="r_col"):
        Crossbar(LinearCells(g), r_col=np.nan)
    with pytest.raises(ValueError, match="even number of columns"):
        Crossbar(LinearCells(g), differential=True)
    with pytest.raises(ValueError, match="gain"):
        TIAReadout(gain=0.0)
    with pytest.raises(ValueError, match="v_gate has shape"):
        Crossbar(LinearCells(g), access=AccessTransistor(v_gate=np.ones(3)))
    with pytest.raises(ValueError, match="rtol"):
        CrossbarSolver(one_r(g, 1.0), rtol=0)
    with pytest.raises(NotApplicableError, match="ngspice engine"):
        CrossbarSolver(Crossbar(SubcircuitCells("rram", {"r": np.full((4, 3), 1e4)})))


@pytest.mark.parametrize("v, match", [
    (np.ones(3), "3 values per vector but the crossbar has 4 rows"),
    (np.ones((2, 5)), "5 values per vector"),
    (np.ones((2, 2, 4)), "one vector"),
    (np.array([0.1, np.nan, 0, 0]), "row 1 is not finite"),
])
def test_bad_inputs_are_rejected_before_solving(v, match):
    with pytest.raises(ValueError, match=match):
        solve_crossbar(one_r(np.full((4, 3), 1e-5), 1.0), v)


@pytest.mark.parametrize("per_batch", [False, True])
def test_tridiagonal_lines_solve_like_dense_matrices(per_batch):
    rng = np.random.default_rng(12)
    batch, lines, length = 3, 4, 7
    shape = (batch, lines, length) if per_batch else (lines, length)
    off = -rng.uniform(0.1, 1.0, shape)
    diag = rng.uniform(0.1, 1.0, shape) + 2 * np.abs(off)  # diagonally dominant: SPD
    rhs = rng.normal(size=(batch, lines, length))
    x = TridiagonalLines(diag, off).solve(rhs)
    for b in range(batch):
        for k in range(lines):
            d = diag[b, k] if per_batch else diag[k]
            e = (off[b, k] if per_batch else off[k])[:-1]
            dense = np.diag(d) + np.diag(e, 1) + np.diag(e, -1)
            np.testing.assert_allclose(dense @ x[b, k], rhs[b, k], rtol=0, atol=1e-12)
    with pytest.raises(NotPositiveDefiniteError, match="not positive definite"):
        TridiagonalLines(-diag, off)


@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.parametrize("batch, cols", [(3, 5), (4, 80)])  # LAPACK path, recurrence path
def test_tridiagonal_columns_solve_like_dense_matrices(per_batch, batch, cols):
    rng = np.random.default_rng(13)
    rows = 9
    shape = (batch, rows, cols) if per_batch else (rows, cols)
    off = -rng.uniform(0.1, 1.0, shape)
    off[..., -1, :] = 0.0
    # diagonally dominant, hence SPD: each pivot exceeds the couplings above and below it
    diag = rng.uniform(0.1, 1.0, shape) + np.abs(off)
    diag[..., 1:, :] += np.abs(off[..., :-1, :])
    rhs = rng.normal(size=(batch, rows, cols))
    systems = TridiagonalColumns(diag, off)
    x = systems.solve(rhs)
    for b in range(batch):
        for j in range(cols):
            d = (diag[b] if per_batch else diag)[:, j]
            e = (off[b] if per_batch else off)[:-1, j]
            dense = np.diag(d) + np.diag(e, 1) + np.diag(e, -1)
            np.testing.assert_allclose(dense @ x[b, :, j], rhs[b, :, j], rtol=0, atol=1e-12)
    same = rhs.copy()
    assert systems.solve(same, overwrite=True) is same
    np.testing.assert_array_equal(same, x)
    with pytest.raises(NotPositiveDefiniteError, match="not positive definite"):
        TridiagonalColumns(-diag, off)
    with pytest.raises(ValueError, match="does not match"):
        systems.solve(rhs[:, :-1])

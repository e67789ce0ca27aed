"""The fast solver against ngspice on the same circuits (netlists written by the builder)."""

import shutil

import numpy as np
import pytest

from pyaimc.circuit.cells import LinearCells, PolynomialCells, SubcircuitCells
from pyaimc.circuit.crossbar import AccessTransistor, Crossbar, RowDriver, TIAReadout, one_r
from tools.write_netlists import example_circuits
from pyaimc.circuit.simulate import simulate, simulate_ngspice

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None,
                                reason="ngspice not installed (apt-get install ngspice)")


def relative_error(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def ir_drop_loss(xbar, v, currents):
    """Fraction of the ideal (wire-free) current lost in the wires, for positive inputs."""
    ideal = np.abs(v) @ xbar.cells.small_signal_conductance()
    return 1 - np.abs(currents).sum() / ideal.sum()


# 64 x 64 costs ngspice 3.5 s on an idle machine (8 s under load): marked slow.
@pytest.mark.parametrize("n", [8, 16, 32, pytest.param(64, marks=pytest.mark.slow)])
def test_linear_crossbars_agree_within_1e_6(n):
    rng = np.random.default_rng(n)
    g = rng.uniform(1e-6, 1e-4, (n, n))
    # Wire resistance for a noticeable IR drop at every size (about 10-30 % loss).
    xbar = one_r(g, 2.0 * (64 / n) ** 2)
    v = rng.uniform(0.0, 0.2, n)
    ngspice = simulate(xbar, v, "ngspice")
    fast = simulate(xbar, v, "fast")
    assert ir_drop_loss(xbar, v, ngspice) > 0.05
    assert relative_error(fast, ngspice) < 1e-6


@pytest.mark.parametrize("n", [8, 16, 32])
def test_polynomial_cells_agree_within_1e_4(n):
    rng = np.random.default_rng(100 + n)
    g = rng.uniform(1e-6, 1e-4, (n, n))
    a = np.zeros((n, n, 4))
    a[..., 0] = g  # linear term
    a[..., 1] = 0.05 * g / 0.2  # even term: asymmetric I-V
    a[..., 2] = 0.2 * g / 0.2 ** 2  # cubic term: +20 % at 0.2 V
    a[..., 3] = 0.05 * g / 0.2 ** 3
    xbar = Crossbar(PolynomialCells(a), r_row=2.0 * (64 / n) ** 2, r_col=2.0 * (64 / n) ** 2)
    v = rng.uniform(-0.2, 0.2, (2, n))
    ngspice = simulate(xbar, v, "ngspice")
    fast = simulate(xbar, v, "fast")
    assert relative_error(fast, ngspice) < 1e-4
    # The non-linearity must matter here: the linear crossbar gives visibly different currents.
    linear = simulate(Crossbar(LinearCells(g), r_row=xbar.r_row, r_col=xbar.r_col), v, "fast")
    assert relative_error(linear, ngspice) > 1e-2


@pytest.mark.parametrize("cells", ["linear", "polynomial"])
def test_one_t_one_r_agrees(cells):
    rng = np.random.default_rng(7)
    g = rng.uniform(1e-6, 1e-4, (16, 16))
    iv = (LinearCells(g) if cells == "linear"
          else PolynomialCells.from_linear_cubic(g, nonlinearity=0.2, v_max=0.2))
    gates = np.full(16, 1.8)
    gates[3] = 0.0  # one word line off: its row carries no current
    xbar = Crossbar(iv, r_row=5.0, r_col=5.0, access=AccessTransistor(v_gate=gates))
    v = rng.uniform(-0.2, 0.2, 16)
    ngspice = simulate(xbar, v, "ngspice")
    fast = simulate(xbar, v, "fast")
    # Measured 4e-10 .. 2e-9 (ngspice's GMIN across the transistor junctions); asserted 1e-6.
    assert relative_error(fast, ngspice) < 1e-6


def test_drivers_tia_and_differential_pairs_agree():
    rng = np.random.default_rng(9)
    g = rng.uniform(1e-6, 1e-4, (12, 8))
    xbar = Crossbar(PolynomialCells.from_linear_cubic(g, 0.2, 0.2), r_row=3.0, r_col=4.0,
                    driver=RowDriver(r_source=100.0, dac_bits=5, v_max=0.2),
                    readout=TIAReadout(r_feedback=20e3, gain=2e3), differential=True)
    v = rng.uniform(-0.2, 0.2, (2, 12))
    ngspice = simulate_ngspice(xbar, v)
    fast = simulate(xbar, v, "fast")
    assert relative_error(fast, ngspice) < 1e-6


@pytest.mark.parametrize("name", sorted(example_circuits()))
def test_example_circuits_agree(name):
    xbar, v = example_circuits()[name]
    assert relative_error(simulate(xbar, v, "fast"), simulate(xbar, v, "ngspice")) < 1e-6


def test_subcircuit_cells_run_in_ngspice():
    # A subcircuit holding the same polynomial as a B-source, with per-cell parameters.
    definition = (".subckt polycell p n g=1e-5 a3=0\n"
                  "Bi p n I=V(p,n)*(g+a3*V(p,n)*V(p,n))\n"
                  ".ends polycell")
    rng = np.random.default_rng(11)
    g = rng.uniform(1e-6, 1e-4, (6, 5))
    poly = PolynomialCells.from_linear_cubic(g, 0.3, 0.2)
    sub = SubcircuitCells("polycell", {"g": g, "a3": poly.coefficients[..., 2]}, definition)
    v = rng.uniform(-0.2, 0.2, 6)
    ngspice = simulate(Crossbar(sub, r_row=10.0, r_col=10.0), v, "ngspice")
    fast = simulate(Crossbar(poly, r_row=10.0, r_col=10.0), v, "fast")
    assert relative_error(fast, ngspice) < 1e-6
    with pytest.raises(ValueError, match="ngspice engine"):
        simulate(Crossbar(sub, r_row=10.0, r_col=10.0), v, "fast")

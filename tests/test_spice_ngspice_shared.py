"""ngspice through its shared library (PySpice), in a worker process (the default) or in this
process: equal to batch mode, failing the same way, keeping its time budget and ending on
SIGTERM as the error policy says; batch mode takes over when the library is missing."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.spice.ngspice import (NgspiceConvergenceError, NgspiceError, NgspiceTimeoutError,
                                  OperatingPoint, Transient, run_netlist)
from tests.conftest import need_ngspice


@pytest.fixture
def shared():
    need_ngspice()
    from pyaimc.spice import ngspice_shared

    if not ngspice_shared.available():
        pytest.skip("PySpice or libngspice is missing (pip install PySpice; apt-get install "
                    "libngspice0)")


@pytest.mark.parametrize("transport", ["worker", "shared"])
def test_library_equals_batch_on_a_crossbar(shared, transport):
    from pyaimc.circuit import build_netlist, one_r, readout_current_names

    rng = np.random.default_rng(0)
    xbar = one_r(rng.uniform(1e-6, 1e-4, (12, 10)), 1.0)
    names = readout_current_names(xbar)
    net = build_netlist(xbar, rng.uniform(0, 0.2, 12), save=names)
    a = run_netlist(net, transport=transport)
    b = run_netlist(net, transport="batch")
    assert set(a) >= set(names)
    for name in names:
        assert a[name][0] == b[name][0]           # same program, same arithmetic


@pytest.mark.parametrize("transport", ["worker", "shared"])
def test_library_equals_batch_on_a_transient(shared, transport):
    net = "rc\nV1 in 0 PWL(0 0 1u 1 2u 1)\nR1 in out 1k\nC1 out 0 1n\n.end\n"
    a = run_netlist(net, Transient(step=1e-8, stop=2e-6), transport=transport)
    b = run_netlist(net, Transient(step=1e-8, stop=2e-6), transport="batch")
    np.testing.assert_array_equal(a["time"], b["time"])
    np.testing.assert_array_equal(a["v(out)"], b["v(out)"])
    # and the physics: a 1 us ramp into tau = 1 us leaves exp(-1) at 1 us, then the step decays
    assert a["v(out)"][-1] == pytest.approx(1 - (1 - np.exp(-1)) * np.exp(-1), rel=1e-3)


@pytest.mark.parametrize("transport", ["worker", "shared", "batch"])
def test_every_transport_reports_non_convergence(shared, transport):
    with pytest.raises(NgspiceConvergenceError, match="(?i)timestep too small|singular") as info:
        run_netlist("loop\nV1 a 0 1\nV2 a 0 2\nR1 a 0 1k\n.end\n", OperatingPoint(),
                    transport=transport)
    assert "singular matrix" in str(info.value)
    assert "simulation(s) aborted" in info.value.log_tail


@pytest.mark.parametrize("transport", ["worker", "shared", "batch"])
def test_every_transport_reports_a_bad_netlist_and_goes_on(shared, transport):
    with pytest.raises(NgspiceError):
        run_netlist("bad\nX1 a 0 nosuchsubckt\nR1 a 0 1k\n.end\n", OperatingPoint(),
                    transport=transport)
    vec = run_netlist("ok\nV1 a 0 2\nR1 a b 1k\nR2 b 0 1k\n.end\n", OperatingPoint(),
                      transport=transport)
    assert vec["v(b)"][0] == pytest.approx(1.0)


def test_worker_keeps_its_time_budget(shared):
    import time

    net = "slow\nV1 in 0 SIN(0 1 1e6)\nR1 in out 1k\nC1 out 0 1n\n.end\n"
    start = time.perf_counter()
    with pytest.raises(NgspiceTimeoutError, match="did not finish within 0.5 s"):
        run_netlist(net, Transient(step=1e-12, stop=1.0, max_step=1e-12), timeout=0.5,
                    save=["v(out)"], transport="worker")
    assert time.perf_counter() - start < 15.0
    vec = run_netlist("ok\nV1 a 0 1\nR1 a 0 1k\n.end\n", OperatingPoint(), transport="worker")
    assert vec["i(v1)"][0] == pytest.approx(-1e-3)


def test_auto_uses_the_worker_for_small_netlists_only(shared, monkeypatch):
    from pyaimc.circuit import build_netlist, one_r
    from pyaimc.spice import ngspice, ngspice_worker

    calls = []
    real = ngspice_worker.run_worker
    monkeypatch.setattr(ngspice_worker, "run_worker",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    small = build_netlist(one_r(np.full((8, 8), 1e-5), 1.0), np.full(8, 0.1))
    big = build_netlist(one_r(np.full((40, 40), 1e-5), 1.0), np.full(40, 0.1))
    assert big.count("\n") > ngspice.AUTO_LIBRARY_MAX_LINES >= small.count("\n")
    run_netlist(small)
    assert calls == [1]
    run_netlist(big)
    assert calls == [1]


def test_auto_falls_back_to_batch(monkeypatch):
    need_ngspice()
    from pyaimc.spice import ngspice, ngspice_shared

    calls = []
    monkeypatch.setattr(ngspice_shared, "installed", lambda: False)
    real = ngspice.run_ngspice
    monkeypatch.setattr(ngspice, "run_ngspice", lambda *a, **k: calls.append(1) or real(*a, **k))
    vec = run_netlist("ok\nV1 a 0 1\nR1 a 0 1k\n.end\n", OperatingPoint())
    assert calls == [1] and vec["i(v1)"][0] == pytest.approx(-1e-3)
    monkeypatch.setenv("PYAIMC_NGSPICE_TRANSPORT", "nonsense")
    with pytest.raises(ValueError, match="PYAIMC_NGSPICE_TRANSPORT"):
        run_netlist("ok\nV1 a 0 1\nR1 a 0 1k\n.end\n", OperatingPoint())


def test_sigterm_during_a_library_run_ends_the_worker_and_exits_143(shared, tmp_path):
    """The library worker: SIGTERM while the worker simulates ends the worker, the command
    exits 143 with its one line, nothing is left running or behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.test_error_policy import _tree

    g = np.random.default_rng(0).uniform(1e-6, 1e-4, (96, 96))
    np.save(tmp_path / "g.npy", g)
    np.save(tmp_path / "v.npy", np.full((20, 96), 0.1))
    # a 96x96 netlist is above auto's size for the library: ask for the worker
    env = dict(os.environ, TMPDIR=str(tmp_path), PYAIMC_NGSPICE_TRANSPORT="worker")
    proc = subprocess.Popen([sys.executable, "-m", "pyaimc", "crossbar", "simulate", "--engine",
                             "ngspice", "--conductances", str(tmp_path / "g.npy"), "--inputs",
                             str(tmp_path / "v.npy"), "--r-wire", "1", "-o",
                             str(tmp_path / "i.npy")], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not _tree(proc.pid):
        time.sleep(0.2)
    time.sleep(3.0)                     # the worker loaded, a 96x96 operating point under way
    kids = _tree(proc.pid)
    assert kids and proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    time.sleep(0.5)
    alive = [k for k in kids if subprocess.run(["ps", "-p", str(k)],
                                               capture_output=True).returncode == 0]
    assert not alive, f"children left running: {alive}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npy", "v.npy"]

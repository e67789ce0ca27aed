"""VACASK and OpenVAF: the runner's failure modes and the cached OSDI builds.

VACASK exits with status 0 when a transient aborts; the runner must still raise. The OSDI cache
keys on the module's content and everything it includes.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_vacask

RESISTOR_VA = """`include "disciplines.vams"
module pyaimc_test_res(a, b);
    inout a, b;
    electrical a, b;
    (*type="instance"*) parameter real r = 1e3 from (0:inf);
    analog I(a, b) <+ V(a, b) / r;
endmodule
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYAIMC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "osdi"


def test_osdi_build_is_cached_by_content(tmp_path, cache):
    need_vacask()
    from pyaimc.spice.osdi import compile_va

    src = tmp_path / "res.va"
    src.write_text(RESISTOR_VA)
    first = compile_va(src)
    assert first.parent == cache and first.stat().st_size > 0
    mtime = first.stat().st_mtime_ns
    assert compile_va(src) == first and first.stat().st_mtime_ns == mtime   # no rebuild
    # a copy elsewhere is the same build; a changed include or text is another
    other = tmp_path / "copy" / "res.va"
    other.parent.mkdir()
    other.write_text(RESISTOR_VA)
    assert compile_va(other) == first
    src.write_text(RESISTOR_VA.replace("1e3", "2e3"))
    assert compile_va(src) != first
    out = compile_va(src, tmp_path / "out" / "res.osdi")
    assert out.read_bytes() == compile_va(src).read_bytes()


def test_osdi_build_error_quotes_the_compiler(tmp_path, cache):
    need_vacask()
    from pyaimc.spice.osdi import OsdiBuildError, compile_va

    src = tmp_path / "bad.va"
    src.write_text(RESISTOR_VA.replace("V(a, b) / r;", "V(a, b) / ;"))
    with pytest.raises(OsdiBuildError, match="could not compile"):
        compile_va(src)


def test_osdi_build_needs_a_linker(tmp_path, cache, monkeypatch):
    need_vacask()
    import shutil

    from pyaimc.spice import osdi

    which = shutil.which
    monkeypatch.setattr(osdi.shutil, "which", lambda name, *a, **k:
                        None if name == "ld" else which(name, *a, **k))
    src = tmp_path / "res.va"
    src.write_text(RESISTOR_VA)
    with pytest.raises(osdi.OpenvafNotFoundError, match="binutils"):
        osdi.compile_va(src)


def _netlist(osdi_path, options="", stop="10u"):
    return (f'runner test\nload "{osdi_path}"\nmodel r pyaimc_test_res\nmodel vsource vsource\n'
            'vs (a 0) vsource dc=0 type="pwl" wave=[0, 0, 10u, 1]\nx (a 0) r r=2k\n'
            'vb (b 0) vsource dc=0.5\nxb (b 0) r r=4k\n'
            f"control\n  options {options}\n  analysis tran1 tran step=1u stop={stop}\n"
            "  analysis op1 op\nendc\n")


def test_run_vacask_reads_every_analysis(tmp_path, cache):
    need_vacask()
    from pyaimc.spice.osdi import compile_va_text
    from pyaimc.spice.vacask import flow, run_vacask

    osdi_path = compile_va_text(RESISTOR_VA, "res")
    res, log = run_vacask(_netlist(osdi_path), ["tran1", "op1"])
    tran = res["tran1"]
    # the source's flow is the current into its + terminal: -V/R through the resistor
    assert np.allclose(tran[flow("vs")], -tran["a"] / 2e3, rtol=1e-9, atol=1e-15)
    assert tran["time"][-1] == pytest.approx(10e-6)
    op = res["op1"]
    assert op["b"][0] == 0.5 and op[flow("vb")][0] == pytest.approx(-0.5 / 4e3, rel=1e-12)


def test_aborted_transient_is_an_error_although_vacask_exits_0(tmp_path, cache):
    need_vacask()
    from pyaimc.spice.osdi import compile_va_text
    from pyaimc.spice.vacask import VacaskError, run_vacask

    osdi_path = compile_va_text(RESISTOR_VA, "res")
    # one Newton iteration per time point is never enough to converge: VACASK aborts the
    # transient, prints so, exits 0 and writes no tran1.raw
    text = _netlist(osdi_path, options="tran_itl=1 tran_ft=0.01").replace("  analysis op1 op\n", "")
    with pytest.raises(VacaskError, match=r"status 0 but wrote no tran1\.raw") as err:
        run_vacask(text, ["tran1"])
    assert "aborted" in err.value.log_tail


def test_netlist_error_and_missing_analysis(tmp_path, cache):
    need_vacask()
    from pyaimc.spice.osdi import compile_va_text
    from pyaimc.spice.vacask import VacaskError, run_vacask

    osdi_path = compile_va_text(RESISTOR_VA, "res")
    with pytest.raises(VacaskError, match="Parameter 'rr' not found"):
        run_vacask(_netlist(osdi_path).replace("r=2k", "rr=2k"), ["tran1"])
    with pytest.raises(VacaskError, match="wrote no tran9.raw"):
        run_vacask(_netlist(osdi_path), ["tran9"])


def test_time_budget(tmp_path, cache):
    need_vacask()
    from pyaimc.spice.osdi import compile_va_text
    from pyaimc.spice.vacask import VacaskTimeoutError, run_vacask

    osdi_path = compile_va_text(RESISTOR_VA, "res")
    slow = _netlist(osdi_path, stop="1").replace("step=1u", "step=1n maxstep=1n")
    with pytest.raises(VacaskTimeoutError, match="within 0.5 s"):
        run_vacask(slow, ["tran1"], timeout=0.5)


COUNTER_VA = """`include "disciplines.vams"
module pyaimc_test_counter(a, b);
    inout a, b;
    electrical a, b;
    real count;
    analog begin
        @(initial_step) count = 10;
        count = count + 1;
        I(a, b) <+ V(a, b) * 1e-3 * count;
    end
endmodule
"""


def test_openvaf_keeps_no_variable_between_evaluations(cache):
    """Why the Verilog-A module's in-simulator random mode cannot run under OpenVAF (documented in
    veriloga/README.md): a variable incremented at every evaluation reads the same at every time
    point, because @(initial_step) runs at every evaluation and nothing is remembered."""
    need_vacask()
    from pyaimc.spice.osdi import compile_va_text
    from pyaimc.spice.vacask import flow, run_vacask

    osdi_path = compile_va_text(COUNTER_VA, "counter")
    net = (f'counter\nload "{osdi_path}"\nmodel c pyaimc_test_counter\nmodel vsource vsource\n'
           "vs (a 0) vsource dc=1\nx (a 0) c\ncontrol\n  analysis tran1 tran step=1u stop=20u "
           "maxstep=1u\nendc\n")
    res, _ = run_vacask(net, ["tran1"])
    count = -res["tran1"][flow("vs")] / 1e-3
    assert len(count) > 20
    np.testing.assert_allclose(count, 11.0, rtol=1e-12)


def test_openvaf_has_no_random_functions(tmp_path):
    """The random mode's $rdist_normal / $rdist_uniform: 'not supported by OpenVAF'."""
    need_vacask()
    import shutil

    from pyaimc.compact.veriloga import MODULE_FILE, VERILOGA_DIR
    from pyaimc.spice.osdi import OsdiBuildError, compile_va

    for f in VERILOGA_DIR.glob("*.va*"):
        shutil.copy(f, tmp_path)
    with pytest.raises(OsdiBuildError, match="rdist_normal' is currently not supported"):
        compile_va(tmp_path / MODULE_FILE, defines=["PYAIMC_RANDOM"], cache=False)

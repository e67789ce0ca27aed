"""`pyaimc crossbar simulate` end to end, both engines, and its error messages."""

import re
import shutil

import numpy as np
import pytest

from pyaimc.cli import main
from pyaimc.circuit.crossbar import one_r
from pyaimc.circuit.solver import solve_crossbar

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None,
                                   reason="ngspice not installed (apt-get install ngspice)")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-6, 1e-4, (10, 7))
    paths = {"G": tmp_path / "G.npy", "V": tmp_path / "V.npy", "V1": tmp_path / "V1.npy",
             "I": tmp_path / "I.npy"}
    np.save(paths["G"], g)
    np.save(paths["V"], rng.uniform(-0.2, 0.2, (3, 10)))
    np.save(paths["V1"], rng.uniform(-0.2, 0.2, 10))
    return paths


def run(files, inputs="V", r_wire="2.5", engine="fast", extra=()):
    return main(["crossbar", "simulate", "--conductances", str(files["G"]), "--inputs",
                 str(files[inputs]), "--r-wire", r_wire, "--engine", engine,
                 "-o", str(files["I"]), *extra])


def test_fast_engine_batch_and_single(files, capsys):
    g, v = np.load(files["G"]), np.load(files["V"])
    assert run(files) == 0
    currents = np.load(files["I"])
    assert currents.shape == (3, 7)
    expected = solve_crossbar(one_r(g, 2.5), v).column_currents
    np.testing.assert_allclose(currents, expected, rtol=1e-12)
    assert "column currents (3, 7)" in capsys.readouterr().out
    assert run(files, inputs="V1") == 0
    assert np.load(files["I"]).shape == (7,)


def test_zero_wire_resistance_gives_v_dot_g(files):
    g, v = np.load(files["G"]), np.load(files["V"])
    assert run(files, r_wire="0") == 0
    np.testing.assert_allclose(np.load(files["I"]), v @ g, rtol=1e-12)


@needs_ngspice
def test_ngspice_engine_agrees_with_fast(files):
    assert run(files, engine="ngspice") == 0
    ngspice = np.load(files["I"])
    assert run(files, engine="fast") == 0
    fast = np.load(files["I"])
    assert ngspice.shape == (3, 7)
    assert np.max(np.abs(fast - ngspice)) / np.max(np.abs(ngspice)) < 1e-6


@pytest.mark.parametrize("bad_g, match", [
    (lambda g: -g, "negative value at row 0, column 0"),
    (lambda g: np.where(np.arange(7) == 3, np.nan, g), "non-finite value at index \\(0, 3\\)"),
    (lambda g: g[0], "must be rows x cols"),
])
def test_bad_conductances(files, capsys, bad_g, match):
    np.save(files["G"], bad_g(np.load(files["G"])))
    assert run(files) == 2
    err = capsys.readouterr().err
    assert "G.npy" in err
    assert re.search(match, err)
    assert not files["I"].exists()


def test_bad_shapes_wire_and_files(files, capsys):
    np.save(files["V"], np.zeros((3, 9)))
    assert run(files) == 2
    assert "V.npy: row voltages have 9 values per vector but the crossbar has 10 rows" in \
        capsys.readouterr().err
    assert run(files, inputs="V1", r_wire="-1") == 2
    assert "--r-wire must be a finite resistance >= 0 ohm, got -1.0" in capsys.readouterr().err
    files["V1"].unlink()
    assert run(files, inputs="V1") == 2
    assert "V1.npy: no such file" in capsys.readouterr().err
    files["V1"].write_text("not an array")
    assert run(files, inputs="V1") == 2
    assert "not a readable .npy array" in capsys.readouterr().err
    assert not files["I"].exists()


def test_missing_ngspice_is_a_clear_error(files, capsys, monkeypatch):
    monkeypatch.setenv("PYAIMC_NGSPICE", "/nonexistent/ngspice")
    assert run(files, engine="ngspice") == 2
    assert "ngspice executable '/nonexistent/ngspice' not found" in capsys.readouterr().err

"""Transfer model: the formula, its file format, the fit against circuit simulations, the report."""

import json
import shutil

import numpy as np
import pytest

from pyaimc.cli import main
from pyaimc.circuit.crossbar import one_r
from pyaimc.circuit.montecarlo import SerialExecutor, task_seeds
from pyaimc.circuit.programming import RampProgramming, conductance_window, program_cells
from pyaimc.circuit.solver import CrossbarSolver
from pyaimc.circuit.transfer import SCHEMA, TransferModel, column_wire_load, row_wire_load
from pyaimc.circuit.transfer_fit import (SaturatingTIA, TransferSetup, cell_coefficients,
                                         fit_transfer, simulate_pattern)
from pyaimc.io import SchemaError, read_json

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None,
                                   reason="ngspice not installed (apt-get install ngspice)")


def formula(model: TransferModel, g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """docs/transfer_format.md written out literally: explicit Mmin / Nmin matrices and sums."""
    n, m = g.shape
    mmin = np.array([[min(l, j) for j in range(m)] for l in range(m)], dtype=float)
    nmin = np.array([[min(n - 1 - i, n - 1 - l) for l in range(n)] for i in range(n)], dtype=float)
    w1 = g / (1 + model.r_wire * (model.k_row * (g @ mmin) + model.k_col * (nmin @ g)))
    gn = (g - model.g_min) / (model.g_max - model.g_min)
    w2 = w1 * (model.c2[0] + model.c2[1] * gn)
    w3 = w1 * (model.c3[0] + model.c3[1] * gn)
    v = np.atleast_2d(v)
    out = np.zeros((v.shape[0], m))
    for b in range(v.shape[0]):
        for j in range(m):
            out[b, j] = sum(w1[i, j] * v[b, i] + w2[i, j] * v[b, i] ** 2 + w3[i, j] * v[b, i] ** 3
                            for i in range(n))
    if model.i_sat is not None:
        out = np.clip(out, -model.i_sat, model.i_sat)
    return out


def some_model(**kw) -> TransferModel:
    params = dict(rows=7, cols=5, r_wire=3.0, v_max=0.2, g_min=1e-6, g_max=1e-4, k_row=1.3,
                  k_col=0.7, c2=(0.4, -0.2), c3=(-1.5, 2.0), i_sat=2e-5)
    params.update(kw)
    return TransferModel(**params)


def test_wire_loads_match_explicit_matrices():
    rng = np.random.default_rng(1)
    g = rng.uniform(0, 1e-4, (6, 9))
    n, m = g.shape
    mmin = np.minimum.outer(np.arange(m), np.arange(m))
    nmin = np.minimum.outer(n - 1 - np.arange(n), n - 1 - np.arange(n))
    np.testing.assert_allclose(row_wire_load(g), g @ mmin, rtol=1e-13, atol=1e-20)
    np.testing.assert_allclose(column_wire_load(g), nmin @ g, rtol=1e-13, atol=1e-20)


def test_predict_equals_the_formula_written_out():
    rng = np.random.default_rng(2)
    model = some_model()
    g = rng.uniform(1e-6, 1e-4, (7, 5))
    v = rng.uniform(-0.2, 0.2, (11, 7))
    expected = formula(model, g, v)
    assert np.any(np.abs(expected) == model.i_sat)  # saturation is exercised
    np.testing.assert_allclose(model.predict(g, v), expected, rtol=1e-12, atol=1e-22)
    single = model.predict(g, v[0])
    assert single.shape == (1, 5)
    np.testing.assert_allclose(single[0], expected[0], rtol=1e-12, atol=1e-22)


def test_no_wires_no_nonlinearity_is_exactly_g_dot_x():
    rng = np.random.default_rng(3)
    model = some_model(r_wire=0.0, c2=(0.0, 0.0), c3=(0.0, 0.0), i_sat=None)
    g = rng.uniform(1e-6, 1e-4, (7, 5))
    v = rng.uniform(-0.2, 0.2, (4, 7))
    np.testing.assert_array_equal(model.predict(g, v), v @ g)


def first_order_errors(r_wire):
    rng = np.random.default_rng(4)
    g = rng.uniform(1e-6, 1e-4, (32, 24))
    v = rng.uniform(-0.2, 0.2, (16, 32))  # signed inputs: column drops mix rows
    exact = CrossbarSolver(one_r(g, r_wire)).solve(v).column_currents
    model = TransferModel(rows=32, cols=24, r_wire=r_wire, v_max=0.2, g_min=1e-6, g_max=1e-4)
    rel = lambda a: np.sqrt(np.mean((a - exact) ** 2) / np.mean(exact ** 2))  # noqa: E731
    return rel(model.predict(g, v)), rel(v @ g)


def test_first_order_model_agrees_with_the_exact_solver_at_small_ir_drop():
    # r = 0.5 ohm: the ideal product is off by about 2 %; the k = 1 model, exact to first order in
    # r for any inputs, leaves a second-order error: 50 times smaller, and 4 times smaller again
    # when r is halved.
    model_err, ideal_err = first_order_errors(0.5)
    assert 0.01 < ideal_err < 0.05
    assert model_err < ideal_err / 50
    half_err, half_ideal = first_order_errors(0.25)
    assert 3.5 < model_err / half_err < 4.5
    assert 1.8 < ideal_err / half_ideal < 2.2


def test_save_load_round_trip(tmp_path):
    model = some_model(fit={"heldout_rel_rms_error": 0.01}, provenance={"seed": 3})
    path = model.save(tmp_path / "t.json")
    doc = read_json(path, SCHEMA)
    assert doc["ir_drop"] == {"k_row": 1.3, "k_col": 0.7}
    assert doc["input_nonlinearity"] == {"c2": [0.4, -0.2], "c3": [-1.5, 2.0]}
    assert doc["tile"] == {"rows": 7, "cols": 5}
    back = TransferModel.load(path)
    assert back == model
    no_sat = some_model(i_sat=None)
    assert TransferModel.load(no_sat.save(tmp_path / "n.json")).i_sat is None
    assert json.loads((tmp_path / "n.json").read_text())["i_sat"] is None


def test_bad_files_and_inputs(tmp_path):
    doc = some_model().to_dict()
    bad = dict(doc, schema="pyaimc.transfer/2")
    (tmp_path / "v2.json").write_text(json.dumps(bad))
    with pytest.raises(SchemaError, match="version"):
        TransferModel.load(tmp_path / "v2.json")
    (tmp_path / "other.json").write_text(json.dumps(dict(doc, schema="pyaimc.noise/1")))
    with pytest.raises(SchemaError, match="expected 'pyaimc.transfer/1'"):
        TransferModel.load(tmp_path / "other.json")
    missing = {k: v for k, v in doc.items() if k != "ir_drop"}
    with pytest.raises(SchemaError, match="missing field 'ir_drop.k_row'"):
        TransferModel.from_dict(missing)
    with pytest.raises(SchemaError, match="c2 must be two finite numbers"):
        TransferModel.from_dict(dict(doc, input_nonlinearity={"c2": [1.0], "c3": [0, 0]}))
    with pytest.raises(ValueError, match="g_min < g_max"):
        some_model(g_min=1e-4, g_max=1e-6)
    with pytest.raises(ValueError, match="i_sat"):
        some_model(i_sat=-1.0)
    model = some_model()
    g = np.full((7, 5), 1e-5)
    with pytest.raises(ValueError, match="rows = 7"):
        model.predict(g, np.zeros(6))
    g_bad = g.copy()
    g_bad[2, 3] = -1e-6
    with pytest.raises(ValueError, match=r"cell \(2, 3\)"):
        model.predict(g_bad, np.zeros(7))
    with pytest.raises(ValueError, match="row 4 is not finite"):
        model.predict(g, np.array([0, 0, 0, 0, np.nan, 0, 0.0]))


def test_write_verify_reaches_targets(shipped_model):
    rng = np.random.default_rng(5)
    g_min, g_max = conductance_window(shipped_model, rng)
    assert 5e-6 < g_min < 5e-5 and 1e-4 < g_max < 4e-4  # example devices: ~75 kohm, ~4.5 kohm
    targets = rng.uniform(g_min, g_max, 2000)
    states = program_cells(shipped_model, targets, rng, RampProgramming(tolerance=0.05))
    g = 1.0 / shipped_model.iv_.resistance_from_state(states)
    within = np.abs(g / targets - 1) <= 0.05
    assert within.mean() > 0.95
    # the cell polynomials give back the read conductance at the read voltage
    iv = shipped_model.iv_
    a = cell_coefficients(iv, states[:50])
    chord = np.sum(a * iv.u_read ** np.arange(a.shape[-1]), axis=-1)
    np.testing.assert_allclose(chord, g[:50], rtol=1e-10)


def test_fitted_model_beats_the_ideal_product_on_held_out_patterns(shipped_model):
    model = fit_transfer(shipped_model, 16, 16, 8.0, 0.2, 6, np.random.default_rng(6),
                         n_heldout=3, inputs_per_pattern=16, executor=SerialExecutor())
    f = model.fit
    assert f["ir_drop_loss_mean"] > 0.08  # noticeable IR drop
    assert f["heldout_ideal_rel_rms_error"] > 0.1
    assert f["heldout_rel_rms_error"] < 0.1 * f["heldout_ideal_rel_rms_error"]
    assert f["heldout_rel_rms_error"] < f["heldout_first_order_rel_rms_error"]
    assert 0.8 < model.k_row < 1.5 and 0.8 < model.k_col < 1.5
    assert model.i_sat is None
    assert model.provenance["source"] == "DeviceModel given in memory"


def test_saturating_readout_fits_i_sat(shipped_model):
    tia = SaturatingTIA(r_feedback=10e3, gain=1e4, v_swing=1.0)
    fit = fit_transfer(shipped_model, 16, 16, 2.0, 0.2, 4, np.random.default_rng(7),
                       n_heldout=2, inputs_per_pattern=16, executor=SerialExecutor(),
                       readout=tia, return_simulations=True)
    measured = np.concatenate([r.currents.ravel() for r in fit.train])
    rail = tia.v_swing / tia.r_feedback
    assert np.mean(np.isclose(np.abs(measured), rail, rtol=1e-12)) > 0.05  # some saturate
    np.testing.assert_allclose(fit.model.i_sat, rail, rtol=1e-3)
    f = fit.model.fit
    assert f["heldout_rel_rms_error"] < 0.2 * f["heldout_ideal_rel_rms_error"]
    assert f["i_sat_source"] == "fitted to the saturated samples"
    # a swing that is never reached: i_sat is the nominal rail, above every current
    wide = SaturatingTIA(r_feedback=10e3, gain=1e4, v_swing=50.0)
    model = fit_transfer(shipped_model, 8, 8, 2.0, 0.2, 2, np.random.default_rng(7),
                         n_heldout=1, inputs_per_pattern=8, executor=SerialExecutor(),
                         readout=wide)
    assert model.i_sat == pytest.approx(50.0 / 10e3, rel=1e-12)
    assert model.fit["i_sat_source"].startswith("no sample saturated")


def test_fit_rejects_bad_settings_before_simulating(shipped_model):
    with pytest.raises(TypeError, match="rng"):
        fit_transfer(shipped_model, 8, 8, 1.0, 0.2, 2, None)
    with pytest.raises(ValueError, match="r_wire"):
        fit_transfer(shipped_model, 8, 8, -1.0, 0.2, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="engine"):
        fit_transfer(shipped_model, 8, 8, 1.0, 0.2, 2, np.random.default_rng(0), engine="spice")
    with pytest.raises(ValueError, match="n_patterns"):
        fit_transfer(shipped_model, 8, 8, 1.0, 0.2, 0, np.random.default_rng(0))


@needs_ngspice
def test_ngspice_and_fast_engines_simulate_the_same_pattern(shipped_model):
    window = conductance_window(shipped_model, np.random.default_rng(8))
    seed = task_seeds(np.random.default_rng(9), 1)[0]
    results = {}
    for engine in ("fast", "ngspice"):
        setup = TransferSetup(model=shipped_model, rows=6, cols=5, r_wire=2.0, v_max=0.2,
                              g_window=window, inputs_per_pattern=3, engine=engine)
        results[engine] = simulate_pattern((setup, seed))
    fast, spice = results["fast"], results["ngspice"]
    np.testing.assert_array_equal(fast.conductances, spice.conductances)
    scale = np.max(np.abs(fast.currents))
    assert np.max(np.abs(fast.currents - spice.currents)) / scale < 1e-6


def test_cli_transfer_writes_the_model(tmp_path, capsys):
    from pathlib import Path

    device = Path(__file__).resolve().parents[1] / "calibration_data" / "models" / "example.json"
    out = tmp_path / "t.json"
    rc = main(["crossbar", "transfer", "--device", str(device), "--tile", "8x6", "--r-wire", "2",
               "--patterns", "3", "--inputs", "8", "--workers", "1", "--seed", "1",
               "-o", str(out)])
    assert rc == 0
    model = TransferModel.load(out)
    assert (model.rows, model.cols, model.r_wire) == (8, 6, 2.0)
    assert model.provenance["seed"] == 1
    assert model.fit["heldout_rel_rms_error"] < model.fit["heldout_ideal_rel_rms_error"]
    assert "held-out relative RMS error" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["crossbar", "transfer", "--device", str(device), "--tile", "8by6", "-o", str(out)])
    assert main(["crossbar", "transfer", "--device", str(tmp_path / "none.json"),
                 "-o", str(out)]) == 2
    assert "none.json" in capsys.readouterr().err


def test_report_writes_figures_and_metrics(tmp_path, shipped_model):
    from pyaimc.circuit.transfer_report import write_transfer_report

    fit = fit_transfer(shipped_model, 8, 8, 4.0, 0.2, 3, np.random.default_rng(10),
                       n_heldout=2, inputs_per_pattern=8, executor=SerialExecutor(),
                       return_simulations=True)
    metrics = write_transfer_report(tmp_path, fit, np.random.default_rng(11), sizes=(4, 8),
                                    r_wires=(2.0, 8.0), sweep_patterns=2,
                                    executor=SerialExecutor())
    for name in metrics["figures"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(metrics["figures"]) == ["error_map.png", "error_vs_size.png",
                                          "transfer_curves.png"]
    doc = read_json(tmp_path / "transfer_metrics.json", "pyaimc.transfer_report/1")
    assert [r["rows"] for r in doc["error_vs_size"]] == [4, 8]
    assert [r["r_wire"] for r in doc["error_vs_r_wire"]] == [2.0, 8.0]
    # more wire resistance, more IR drop
    assert doc["error_vs_r_wire"][1]["ir_drop_loss"] > doc["error_vs_r_wire"][0]["ir_drop_loss"]
    assert len(doc["per_column_rel_rms_error"]["model"]) == 8
    assert doc["cell_map_all_rows_at_v_max"]["circuit_deviation_min"] < -0.01
    assert TransferModel.load(tmp_path / "transfer.json") == fit.model

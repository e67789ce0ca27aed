"""The noise model: export from device models, file format and checks, programming simulation,
read noise, defects and the aihwkit mapping."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from _noise_helpers import ROOT, device_model, example_noise_model, transfer_doc

from pyaimc.circuit.transfer import TransferModel
from pyaimc.device.schemes import OneShot, WriteVerify, calibrate_pulses, tolerance_window
from pyaimc.io import SchemaError
from pyaimc.noise import (NoiseModel, NoiseModelError, device_defects, export_noise_model,
                          to_aihwkit)
from pyaimc.noise.programming import spread_parts


# --------------------------------------------------------------------------- files
def test_save_load_round_trip(tmp_path):
    nm = example_noise_model()
    path = nm.save(tmp_path / "noise.json")
    back = NoiseModel.load(path)
    a, b = nm.to_dict(), back.to_dict()
    a["provenance"] = b["provenance"] = None
    assert json.dumps(a, default=lambda o: o.tolist()) == json.dumps(
        b, default=lambda o: o.tolist())
    doc = json.loads(path.read_text())
    assert doc["schema"] == "pyaimc.noise/2"
    assert [doc[p]["kind"] for p in ("programming", "read_noise", "retention", "periphery")] == [
        "table", "johnson_shot", "none", "dac_adc"]
    assert doc["provenance"]["seed"] == 0 and "example.json" in doc["provenance"]["source"]
    assert doc["device"]["provenance"]["citation"] == "pyaimc example data (synthetic)"


def test_ideal_preset_round_trip(tmp_path):
    nm = NoiseModel.ideal(2e-6, 5e-5, rows=16, cols=8)
    back = NoiseModel.load(nm.save(tmp_path / "ideal.json"))
    assert back.window.g_min == 2e-6 and back.tile.rows == 16 and back.dac.bits is None
    assert back.read_noise.bandwidth == 0.0
    t = back.programming.table()
    g = np.linspace(2e-6, 5e-5, 7)
    np.testing.assert_allclose(t.mean_at(g, back.window), g, rtol=1e-12)
    assert np.all(t.std_at(g, back.window) == 0)


def _write(tmp_path, doc, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc, default=lambda o: o.tolist()))
    return path


def _as_version_1(doc: dict) -> dict:
    """The document as pyaimc.noise/1 wrote it: two fixed programming fields, no kinds, the
    converters at the top level, no retention."""
    p = doc["programming"]
    v1 = {k: v for k, v in doc.items() if k not in ("periphery", "retention")}
    v1.update(schema="pyaimc.noise/1", dac=doc["periphery"]["dac"], adc=doc["periphery"]["adc"],
              read_noise={k: v for k, v in doc["read_noise"].items() if k != "kind"},
              programming={"levels": p["levels"], "training_method": p["training_scheme"],
                           "n_devices": p["n_devices"], "n_repeats": p["n_repeats"],
                           "calibration": p["calibration"], **p["schemes"]})
    return v1


def test_version_1_files_still_load(tmp_path):
    nm = example_noise_model()
    doc = json.loads(json.dumps(nm.to_dict(), default=lambda o: o.tolist()))
    back = NoiseModel.load(_write(tmp_path, _as_version_1(doc)))
    assert back.programming.scheme_names == ["one_shot", "write_verify"]
    assert back.programming.training_scheme == "write_verify"
    np.testing.assert_array_equal(back.programming.table("one_shot").std,
                                  nm.programming.table("one_shot").std)
    assert back.dac == nm.dac and back.adc == nm.adc and back.retention.is_identity
    # the committed noise model of the S4D results is a version-1 file
    shipped = NoiseModel.load(ROOT / "results" / "mnist1d_qat_noise.json")
    assert shipped.programming.table().method == "write_verify"


def test_other_schemas_and_versions_are_rejected(tmp_path):
    doc = example_noise_model().to_dict()
    with pytest.raises(SchemaError, match="version 'pyaimc.noise/3' is not supported"):
        NoiseModel.load(_write(tmp_path, dict(doc, schema="pyaimc.noise/3")))
    with pytest.raises(SchemaError, match="schema is 'pyaimc.device/1'"):
        NoiseModel.load(_write(tmp_path, dict(doc, schema="pyaimc.device/1")))
    with pytest.raises(SchemaError, match="no 'schema' field"):
        NoiseModel.load(_write(tmp_path, {k: v for k, v in doc.items() if k != "schema"}))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["programming"]["schemes"]["write_verify"].update(std=[1e-6] * 3),
     "write_verify.std has 3"),
    (lambda d: d["window"].update(g_min=3e-4), "window needs 0 < g_min < g_max"),
    (lambda d: d["programming"].update(levels=[1e-6, 5e-4]), "lie outside the window"),
    (lambda d: d["programming"].update(training_scheme="twice"), "training_scheme"),
    (lambda d: d["defects"].update(stuck_fraction=1.5), "defects.stuck_fraction"),
    (lambda d: d["periphery"]["dac"].update(bits=0), "dac.bits"),
    (lambda d: d["tile"].update(rows=0), "tile needs integer rows"),
    (lambda d: d.pop("read_noise"), "missing field 'read_noise'"),
    (lambda d: d["programming"]["schemes"]["one_shot"].update(std_coeffs=[]),
     "one_shot.std_coeffs"),
    (lambda d: d["retention"].update(kind="forever"), "retention.kind 'forever' is not registered"),
    (lambda d: d["read_noise"].update(kind="pink"), "read_noise.kind 'pink'"),
])
def test_inconsistent_fields_are_rejected(tmp_path, edit, message):
    doc = json.loads(json.dumps(example_noise_model().to_dict(), default=lambda o: o.tolist()))
    edit(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(NoiseModelError, match=message) as err:
        NoiseModel.load(path)
    assert str(path) in str(err.value)


def test_transfer_must_agree_with_tile_window_and_dac():
    nm = example_noise_model()
    w = nm.window
    d = transfer_doc(64, 64, r_wire=1.0, g_min=w.g_min, g_max=w.g_max)
    tile = dataclasses.replace(nm.tile, r_wire=1.0)
    ok = dataclasses.replace(nm, tile=tile, transfer=d).validate()
    assert ok.transfer.to_dict()["ir_drop"] == d["ir_drop"] and ok.transfer.r_wire == 1.0
    with pytest.raises(NoiseModelError, match="r_wire 1.0 ohm, the tile 2.0"):
        dataclasses.replace(nm, tile=dataclasses.replace(tile, r_wire=2.0), transfer=d).validate()
    with pytest.raises(NoiseModelError, match="beyond the transfer fit's range"):
        narrow = transfer_doc(64, 64, r_wire=1.0, g_min=w.g_min, g_max=0.5 * w.g_max)
        dataclasses.replace(nm, tile=tile, transfer=narrow).validate()
    with pytest.raises(NoiseModelError, match="expected .pyaimc.transfer/1"):
        dataclasses.replace(nm, tile=tile, transfer=dict(d, schema="x/1")).validate()


def test_export_with_a_transfer_document_clips_the_window_and_checks_the_tile():
    model = device_model()
    rng = np.random.default_rng(0)
    d = transfer_doc(32, 32, r_wire=0.5, g_min=1e-6, g_max=1.5e-4, v_max=0.25)
    nm = export_noise_model(model, rng, rows=32, cols=32, transfer=d, n_levels=4,
                            n_devices=50, n_repeats=2)
    assert nm.window.g_max == pytest.approx(1.5e-4) and "clipped" in nm.window.rule
    assert nm.dac.v_max == 0.25 and nm.tile.r_wire == 0.5
    with pytest.raises(ValueError, match="32 x 32 tiles, the tile asked for is 64 x 64"):
        export_noise_model(model, rng, rows=64, cols=64, transfer=d, n_levels=4, n_devices=50,
                           n_repeats=2)
    fo = export_noise_model(model, rng, rows=16, cols=16, r_wire=2.0, n_levels=4, n_devices=50,
                            n_repeats=2)
    assert (fo.transfer.k_row, fo.transfer.k_col) == (1.0, 1.0)
    assert fo.transfer.g_max == fo.window.g_max and fo.transfer.r_wire == 2.0


# --------------------------------------------------------------------------- content
def test_window_covers_most_cycles_of_the_device():
    nm = example_noise_model()
    s = device_model().sample(2000, 20, np.random.default_rng(7))
    assert np.mean(1 / s["R_LRS"] >= nm.window.g_max) == pytest.approx(0.95, abs=0.01)
    assert np.mean(1 / s["R_HRS"] <= nm.window.g_min) == pytest.approx(0.95, abs=0.01)


def test_programming_tables_of_the_example_device():
    nm = example_noise_model()
    p = nm.programming
    levels = p.levels
    assert len(levels) == 10 and levels[0] == nm.window.g_min and levels[-1] == nm.window.g_max
    wv, os_ = p.table("write_verify"), p.table("one_shot")
    tol = wv.settings["tolerance"]
    # write-verify: every finished write lies within the band; the few failures stay rare
    assert np.all(wv.failed_fraction < 0.02)
    assert np.all(np.abs(wv.mean / levels - 1) < tol)
    assert np.all(wv.std / levels < tol)
    assert np.all(wv.mean_pulses > 2) and np.all(wv.mean_pulses < 10)
    # one-shot: unbiased by construction of the amplitude calibration, but wide
    assert np.all(np.abs(os_.mean / levels - 1) < 0.01)
    assert np.all(os_.std / levels > 0.1) and np.all(os_.mean_pulses == 3)
    # the two parts of the spread add up (law of total variance, sampling error aside)
    for t in (wv, os_):
        np.testing.assert_allclose(t.c2c_std**2 + t.d2d_std**2, t.std**2, rtol=0.15)
        assert np.all(t.c2c_std > 0) and np.all(t.d2d_std > 0)


def test_spread_parts_recover_known_components():
    rng = np.random.default_rng(3)
    levels, devices, repeats = 3, 4000, 8
    d2d = np.array([1.0, 2.0, 0.5])[:, None, None]
    c2c = np.array([0.5, 1.0, 3.0])[:, None, None]
    g = (d2d * rng.standard_normal((levels, devices, 1))
         + c2c * rng.standard_normal((levels, devices, repeats)))
    c, d = spread_parts(g)
    np.testing.assert_allclose(c, c2c.ravel(), rtol=0.02)
    # the device means carry c2c**2 / repeats on top of d2d**2; 4 standard errors of d2d from
    # the sampling error of the variance of 4000 means
    var_means = d2d.ravel() ** 2 + c2c.ravel() ** 2 / repeats
    tol = 4 * var_means * np.sqrt(2 / devices) / (2 * d2d.ravel())
    assert np.all(np.abs(d - d2d.ravel()) < tol)
    # without the correction the last level would be far off (sqrt(0.25 + 9 / 8) = 1.17)
    naive = np.std(g.mean(axis=2), axis=1)
    assert abs(naive[2] - 0.5) > 4 * tol[2]


def test_write_verify_lands_within_tolerance_and_one_shot_hits_the_mean():
    model = device_model()
    rng = np.random.default_rng(11)
    cal = calibrate_pulses(model, rng, n_cells=5000)
    targets = np.repeat([40e-6, 100e-6, 160e-6], 3000)
    res = WriteVerify(cal, max_pulses=40).program(model.cells(len(targets), rng, dtype=np.float64),
                                                  *tolerance_window(targets, 0.05))
    ok = res.success
    assert ok.mean() > 0.99
    # the verify read has noise of about 0.2 %: the true conductance may sit that far outside
    assert np.all(np.abs(res.g[ok] / targets[ok] - 1) <= 0.05 + 0.01)
    assert res.pulses.max() <= 40
    shot = OneShot(cal).program(model.cells(len(targets), rng, dtype=np.float64),
                                *tolerance_window(targets, 0.05))
    for t in (40e-6, 100e-6, 160e-6):
        g = shot.g[targets == t]
        assert abs(g.mean() / t - 1) < 4 * g.std() / np.sqrt(len(g)) / t + 0.005


def test_read_noise_is_the_device_models():
    nm = example_noise_model()
    iv = device_model().iv_
    g = nm.programming.levels
    for u in (0.05, 0.2, -0.1):
        np.testing.assert_allclose(nm.read_noise.sigma_current(g, u),
                                   iv.noise_sigma(g * u, u, nm.read_noise.bandwidth), rtol=1e-12)
    np.testing.assert_allclose(nm.read_noise.relative,
                               iv.noise_sigma(g * iv.u_read, iv.u_read, 1e8) / (g * iv.u_read),
                               rtol=1e-12)
    assert nm.read_noise.sigma_current(1e-4, 0.0) == 0.0


def test_defects_from_the_device_fit():
    rng = np.random.default_rng(0)
    example = device_defects(device_model(), rng, 3e-5, 2e-4, n_devices=500, n_cycles=20)
    assert example.stuck_fraction == 0 and example.outlier_fraction == 0
    radar = device_defects(device_model("radar_cycling-4-24-20"), rng, 8e-5, 1.5e-4,
                           n_devices=500, n_cycles=20)
    assert radar.stuck_fraction == pytest.approx(2 / 256)  # 2 of 256 cells excluded as stuck
    synref = device_model("synaptogen_ref")
    syn = device_defects(synref, rng, 3e-5, 2e-4, n_devices=500, n_cycles=20)
    assert syn.outlier_fraction == pytest.approx(min(synref.mixture_.weights))
    assert 0.04 < syn.outlier_fraction < 0.06


# --------------------------------------------------------------------------- aihwkit
def test_aihwkit_coefficients_reproduce_the_programming_error():
    nm = example_noise_model()
    a = to_aihwkit(nm)
    t = nm.programming.table("write_verify")
    levels = nm.programming.levels
    x = levels / nm.window.g_max
    # aihwkit's sigma: (g_max / g_ref) * sum c_i x**i in uS, with g_ref = g_max
    sigma_us = sum(c * x**i for i, c in enumerate(a["prog_coeff"]))
    rms_us = np.sqrt(t.std**2 + (t.mean - levels) ** 2) * 1e6
    assert np.max(np.abs(sigma_us - rms_us)) <= a["prog_fit_max_error_us"] * (1 + 1e-9)
    assert a["prog_fit_max_error_us"] < 0.2 * rms_us.max()
    assert a["g_max_us"] == pytest.approx(nm.window.g_max * 1e6)
    np.testing.assert_allclose(a["prog_bias_rel"], t.mean / levels - 1)
    # read noise as ADDITIVE_CONSTANT weight noise at full-scale input
    iv = device_model().iv_
    v, b = nm.dac.v_max, nm.read_noise.bandwidth
    s_hi = iv.noise_sigma(nm.window.g_max * v, v, b) / v
    s_lo = iv.noise_sigma(nm.window.g_min * v, v, b) / v
    assert a["read_noise"]["w_noise"] == pytest.approx(
        np.hypot(s_hi, s_lo) / (nm.window.g_max - nm.window.g_min), rel=1e-9)
    assert a["dac_inp_res"] == pytest.approx(1 / 254)
    ideal = to_aihwkit(NoiseModel.ideal())
    assert ideal["prog_coeff"] == [0.0] and ideal["read_noise"]["w_noise"] == 0.0


def test_first_order_transfer_document_is_valid():
    nm = example_noise_model()
    d = TransferModel.first_order(64, 64, 1.0, nm.dac.v_max, nm.window.g_min,
                                  nm.window.g_max).to_dict()
    ok = dataclasses.replace(nm, tile=dataclasses.replace(nm.tile, r_wire=1.0), transfer=d)
    assert ok.validate() is ok

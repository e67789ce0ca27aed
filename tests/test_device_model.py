"""DeviceModel API: save/load, sampling layout, errors, cell array semantics and read noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyaimc.data import CycleData, DataError
from pyaimc.device import DeviceModel
from pyaimc.device.cells import HRS, LRS, RESETTING
from pyaimc.device.iv import K_BOLTZMANN, Q_ELECTRON
from pyaimc.io import SchemaError


def test_save_load_round_trip_gives_identical_samples(shipped_model, tmp_path):
    p = shipped_model.save(tmp_path / "m.json")
    doc = json.loads(p.read_text())
    assert doc["schema"] == "pyaimc.device/1"
    assert "command" in doc["provenance"] and "source" in doc["provenance"]
    back = DeviceModel.load(p)
    a = shipped_model.sample(5, 7, np.random.default_rng(3))
    b = back.sample(5, 7, np.random.default_rng(3))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_load_rejects_other_schema_and_broken_files(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"schema": "pyaimc.device/9"}))
    with pytest.raises(SchemaError, match="version 'pyaimc.device/9' is not supported"):
        DeviceModel.load(p)
    p.write_text(json.dumps({"schema": "pyaimc.noise/1"}))
    with pytest.raises(SchemaError, match="expected 'pyaimc.device/1'"):
        DeviceModel.load(p)
    p.write_text(json.dumps({"schema": "pyaimc.device/1", "params": {}}))
    with pytest.raises(DataError, match="not a valid pyaimc.device/1 model"):
        DeviceModel.load(p)


def test_same_seed_same_sample(shipped_model):
    a = shipped_model.sample(4, 10, np.random.default_rng(1))
    b = shipped_model.sample(4, 10, np.random.default_rng(1))
    c = shipped_model.sample(4, 10, np.random.default_rng(2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["R_HRS"], c["R_HRS"])


def test_fit_errors_name_the_problem():
    vals = 10 ** np.random.default_rng(0).uniform(3, 5, (2, 50, 2))
    vals[:, :, 0] *= 20
    d = CycleData(vals, np.zeros(vals.shape, bool), ("R_HRS", "R_LRS"), ("ohm", "ohm"),
                  ["a", "b"], "tiny.csv")
    with pytest.raises(DataError, match="tiny.csv: 2 usable cells"):
        DeviceModel().fit(d)
    with pytest.raises(ValueError, match="max_var_order must be >= 0"):
        DeviceModel(max_var_order=-1).fit(d)
    with pytest.raises(RuntimeError, match="not fitted"):
        DeviceModel().sample(1, 1, np.random.default_rng(0))


def test_cell_array_switching_semantics(shipped_model):
    cells = shipped_model.cells(2000, np.random.default_rng(7), dtype=np.float64)
    f0 = cells.cycle_features()
    np.testing.assert_allclose(cells.resistance, f0["R_HRS"], rtol=1e-9)  # starts in its HRS
    cells.apply_voltage(-0.2)  # too small to SET anybody
    assert np.all(cells.mode == HRS)
    cells.apply_voltage(-1.5)
    set_ok = f0["U_SET"] >= -1.5
    assert np.all(cells.mode[set_ok] == LRS)
    np.testing.assert_allclose(cells.resistance[set_ok], f0["R_LRS"][set_ok], rtol=1e-9)
    # a RESET pulse below each cell's own U_RESET changes nothing
    u_below = np.where(set_ok, f0["U_RESET"] - 0.01, 0.0)
    cells.apply_voltage(u_below)
    assert np.all(cells.mode[set_ok] == LRS) and np.all(cells.cycle == 0)
    # partial RESET: draw of the next cycle, resistance between LRS and the next HRS
    u_mid = np.where(set_ok, 0.5 * (f0["U_RESET"] + shipped_model.iv_.u_full_reset), 0.0)
    cells.apply_voltage(u_mid)
    part = set_ok & (cells.mode == RESETTING)
    assert part.mean() > 0.9
    assert np.all(cells.cycle[part] == 1)
    f1 = cells.cycle_features()
    r = cells.resistance[part]
    assert np.all(r > f0["R_LRS"][part] * (1 - 1e-9)) and np.all(r < f1["R_HRS"][part] * (1 + 1e-9))
    # a lower voltage does not undo it; a higher one continues; full RESET reaches the new HRS
    before = cells.resistance.copy()
    cells.apply_voltage(np.where(set_ok, f0["U_RESET"], 0.0))
    np.testing.assert_array_equal(cells.resistance, before)
    cells.apply_voltage(shipped_model.iv_.u_full_reset)
    np.testing.assert_allclose(cells.resistance[part], f1["R_HRS"][part], rtol=1e-9)
    assert np.all(cells.cycle[part] == 1)  # one draw per cycle


def test_read_noise_matches_johnson_and_shot_formula(shipped_model):
    cells = shipped_model.cells(200_000, np.random.default_rng(8), dtype=np.float64, n_threads=2)
    clean = cells.read(0.2)
    bw = 1e9
    noisy = cells.read(0.2, bandwidth=bw)
    z = (noisy - clean) / np.sqrt(bw * np.abs(clean) * (4 * K_BOLTZMANN * 300 / 0.2 + 2 * Q_ELECTRON))
    assert np.mean(z) == pytest.approx(0, abs=0.01)
    assert np.std(z) == pytest.approx(1, abs=0.01)
    q = cells.read(0.2, adc_bits=4, adc_range=(0, 1e-4))
    assert len(np.unique(q)) <= 16


def test_cell_array_statistics_follow_the_model(shipped_model):
    """Drawn cycle features of a cell array follow the model's own sampler."""
    cells = shipped_model.cells(20_000, np.random.default_rng(9))
    feats = []
    for _ in range(20):
        cells.apply_voltage(-1.5)
        cells.apply_voltage(1.6)
        feats.append(np.log10(cells.resistance))
    got = np.concatenate(feats)
    ref = np.log10(shipped_model.sample(20_000, 20, np.random.default_rng(10))["R_HRS"]).ravel()
    assert np.median(got) == pytest.approx(np.median(ref), abs=0.02)
    assert np.std(got) == pytest.approx(np.std(ref), rel=0.05)

"""ISPP, FPPV and RADAR write-verify on the pulse model: known answers, convergence, command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyaimc.device import DeviceModel
from pyaimc.device.schemes import (EVAL_WINDOWS_2BPC, SCHEMES, get_scheme, program_levels,
                                   window_conductances)
from tests._pulse_helpers import KnownPulse, compliance
from tests.conftest import ROOT


@pytest.fixture
def known_model():
    model = DeviceModel.load(ROOT / "calibration_data" / "models" / "example.json")
    model.pulse_ = KnownPulse()
    return model


def _hrs_cells(model, n):
    cells = model.cells(n, np.random.default_rng(0), dtype=np.float64)
    cells.apply_pulse(0.0, 5.0, 4.0, 1e-7)       # far below 10 uS: a fresh HRS
    return cells


def test_registry_has_the_pulse_schemes():
    assert {"ispp", "fppv", "radar"} <= set(SCHEMES)
    assert get_scheme("radar", bl_step=0.2).to_dict()["bl_step"] == 0.2
    with pytest.raises(ValueError, match="unknown write scheme"):
        get_scheme("nope")


def test_ispp_known_pulse_count(known_model):
    # from the HRS the gate ramps 2.0, 2.1, ... (V_BL 2 V sets at once); the first gate whose
    # compliance lies in [g_lo, g_hi] ends the write: 2.4 V (the 5th pulse) for this window
    g_lo, g_hi = compliance(2.35), compliance(2.45)
    cells = _hrs_cells(known_model, 50)
    res = get_scheme("ispp", read_noise=False).program(cells, g_lo, g_hi)
    assert res.success.all()
    assert np.all(res.pulses == 5) and np.all(res.n_reset == 0)
    np.testing.assert_allclose(res.g, compliance(2.4), rtol=1e-6)


def test_fppv_known_pulse_count(known_model):
    # FPPV's gate for the window is where the SET curve meets its centre; the bit line ramps
    # 0.5, 0.6, ... and the device sets at 1.0 V: the 6th pulse
    g_lo, g_hi = 100e-6, 110e-6
    scheme = get_scheme("fppv", read_noise=False)
    res = scheme.program(_hrs_cells(known_model, 50), g_lo, g_hi)
    assert res.success.all() and np.all(res.pulses == 6)
    np.testing.assert_allclose(res.g, 105e-6, rtol=5e-3)  # the gate table: 20 mV steps


def test_radar_coarse_set_lands_at_once(known_model):
    # RADAR's coarse attempt is a SET at V_BL 2 V at the level's gate: one pulse
    res = get_scheme("radar", read_noise=False).program(_hrs_cells(known_model, 50),
                                                        100e-6, 110e-6)
    assert res.success.all() and np.all(res.pulses == 1)


@pytest.mark.parametrize("name", ["ispp", "fppv", "radar"])
def test_schemes_reset_down_to_a_lower_window(known_model, name):
    # from 249.8 uS (compliance at 3 V) the first RESET of every scheme is 1.4 V:
    # 249.8 uS * 10**-0.2 = 157.6 uS, inside [150, 165] uS: one pulse
    cells = known_model.cells(40, np.random.default_rng(0), dtype=np.float64)
    cells.apply_pulse(2.0, 0.0, 3.0, 1e-7)
    assert np.allclose(cells.conductance, compliance(3.0))
    res = get_scheme(name, read_noise=False).program(cells, 150e-6, 165e-6)
    assert res.success.all() and np.all(res.pulses == 1) and np.all(res.n_reset == 1)
    np.testing.assert_allclose(res.g, compliance(3.0) * 10 ** -0.2, rtol=1e-9)


@pytest.mark.parametrize("name", ["fppv", "radar"])
def test_level_gated_schemes_come_back_after_an_overshoot(known_model, name):
    # to [100, 110] uS from 249.8 uS: RESET at 1.4 V gives 157.6 uS, at 1.45 V 88.6 uS (an
    # overshoot); then a SET at the level's gate lands at the window's centre after the
    # bit-line ramp 0.5 .. 1.0 V (6 SETs; RADAR's coarse SET is only a write's first pulse)
    cells = known_model.cells(40, np.random.default_rng(0), dtype=np.float64)
    cells.apply_pulse(2.0, 0.0, 3.0, 1e-7)
    res = get_scheme(name, read_noise=False).program(cells, 100e-6, 110e-6)
    assert res.success.all() and np.all(res.n_reset == 2)
    assert np.all(res.n_set == 6)
    np.testing.assert_allclose(res.g, 105e-6, rtol=5e-3)


def test_ispp_cannot_hit_a_window_between_two_gate_steps(known_model):
    # a property of ISPP, not a bug: with 0.1 V gate steps the deterministic device reaches
    # 67 uS (2.2 V) or 125 uS (2.3 V), never [100, 110] uS; it cycles until its budget is spent
    cells = known_model.cells(10, np.random.default_rng(0), dtype=np.float64)
    cells.apply_pulse(0.0, 5.0, 4.0, 1e-7)
    res = get_scheme("ispp", read_noise=False, max_pulses=40).program(cells, 100e-6, 110e-6)
    assert not res.success.any() and np.all(res.pulses == 40)


def test_hrs_window_gives_up_at_the_top_of_the_reset_ramp(known_model):
    # a cell that no RESET can bring below g_hi: the ramp gives up once past sl_max
    model = known_model
    cells = model.cells(5, np.random.default_rng(0), dtype=np.float64)
    cells.apply_pulse(2.0, 0.0, 3.0, 1e-7)
    scheme = get_scheme("ispp", read_noise=False, sl_start=1.0, sl_step=0.1, sl_max=1.2)
    res = scheme.program(cells, 1e-12, 1e-9)       # the HRS window of an impossible device
    assert not res.success.any()
    assert np.all(res.pulses == 3)                 # 1.0, 1.1, 1.2 V, then it gives up


@pytest.fixture(scope="module")
def fitted_known_device():
    import torch

    from pyaimc.device.pulse import PulseModel
    from tests._pulse_helpers import synthetic_pulses

    torch.set_num_threads(1)
    data = synthetic_pulses(np.random.default_rng(3))
    data[0].source = "synthetic-set-sweep-wl-inner"
    model = DeviceModel.load(ROOT / "calibration_data" / "models" / "example.json")
    model.pulse_ = PulseModel(hidden=16, epochs=25, batch=256, lr=6e-3, seed=1).fit(data)
    return model


@pytest.mark.parametrize("name", ["ispp", "fppv", "radar"])
def test_schemes_converge_on_the_fitted_known_device(fitted_known_device, name):
    windows = np.array([[1e6 / 170, 1e6 / 150], [1e6 / 120, 1e6 / 100]])
    stats = program_levels(fitted_known_device, get_scheme(name), windows, 200,
                           np.random.default_rng(1))
    for lv, (r_lo, r_hi) in zip(stats["levels"], windows):
        assert lv["success"] >= 0.95
        assert 1 / r_hi <= lv["g_mean"] <= 1 / r_lo
        assert lv["energy_mean"] > 0


def test_window_conductances_open_ends():
    g_lo, g_hi = window_conductances(EVAL_WINDOWS_2BPC)
    assert g_hi[0] == np.inf and g_lo[0] == pytest.approx(200e-6)
    assert g_lo[3] == pytest.approx(1e-10) and g_hi[3] == pytest.approx(12.5e-6)
    with pytest.raises(ValueError, match="r_lo < r_hi"):
        window_conductances([[10.0, 5.0]])


def test_program_levels_needs_a_pulse_part():
    old = DeviceModel.load(ROOT / "calibration_data" / "models" / "radar_cycling-4-24-20.json")
    with pytest.raises(ValueError, match="pulse part"):
        program_levels(old, get_scheme("radar"), EVAL_WINDOWS_2BPC, 10, np.random.default_rng(0))


def test_program_command_exact_keys(known_model, tmp_path, capsys):
    from pyaimc.cli import main

    model = tmp_path / "m.json"
    # the known device is not a file format: write the synthetic fit's model instead
    from pyaimc.device.pulse import PulseModel
    from tests._pulse_helpers import synthetic_pulses

    data = synthetic_pulses(np.random.default_rng(3))
    dm = DeviceModel.load(ROOT / "calibration_data" / "models" / "example.json")
    dm.pulse_ = PulseModel(hidden=8, epochs=2, batch=512).fit(data)
    dm.save(model)
    win = tmp_path / "w.csv"
    win.write_text("r_lo,r_hi\n5000,7000\n0,5000\n")
    out = tmp_path / "stats.json"
    assert main(["program", str(model), "--scheme", "fppv", "--windows", str(win), "--cells",
                 "20", "--seed", "3", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [lv["r_lo"] for lv in doc["levels"]] == [5000.0, 0.0]
    assert set(doc["levels"][0]) == {"r_lo", "r_hi", "pulses_mean", "pulses_median",
                                     "pulses_p99", "success", "g_mean", "g_std", "energy_mean"}
    again = tmp_path / "again.json"
    main(["program", str(model), "--scheme", "fppv", "--windows", str(win), "--cells", "20",
          "--seed", "3", "-o", str(again)])
    assert json.loads(again.read_text())["levels"] == doc["levels"]
    bad = tmp_path / "bad.csv"
    bad.write_text("r_lo,r_hi\n7000,5000\n")
    assert main(["program", str(model), "--scheme", "fppv", "--windows", str(bad), "-o",
                 str(out)]) == 2
    assert "row 2: r_hi 5000 <= r_lo 7000" in capsys.readouterr().err

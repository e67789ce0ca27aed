"""Pulse-response part of the device model: fit on a known device, files, the twin's pulses."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.data import DataError
from pyaimc.device import DeviceModel
from pyaimc.device.pulse import PulseModel
from tests._pulse_helpers import compliance, synthetic_pulses
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def synth_model():
    import torch

    torch.set_num_threads(1)
    data = synthetic_pulses(np.random.default_rng(3))
    data[0].source = "synthetic-set-sweep-wl-inner"  # single SETs from the HRS
    return PulseModel(hidden=24, epochs=60, batch=256, lr=6e-3, seed=1).fit(data)


@pytest.fixture(scope="module")
def device_with_pulses(synth_model):
    model = DeviceModel.load(ROOT / "calibration_data" / "models" / "example.json")
    model.pulse_ = synth_model
    return model


def test_fit_recovers_the_known_set_compliance(synth_model):
    v_wl = np.array([2.2, 2.4, 2.6])
    q = synth_model.quantiles("set", np.full(3, 8e-6), 2.0, v_wl, 1e-7, 0.0,
                              tau=np.array([0.5]))[:, 0]
    g_med = 8e-6 * 10 ** q
    # median of the known device: compliance * 10**(0.02 N) (offset 0 for the latent 0)
    np.testing.assert_allclose(g_med, compliance(v_wl), rtol=0.15)


def test_fit_recovers_the_reset_staircase(synth_model):
    # every staircase starts at 200 uS: the states a pulse at each voltage meets
    q = synth_model.quantiles("reset", np.array([200e-6, 150e-6]), np.array([0.9, 2.0]), 3.0,
                              1e-7, 0.0, tau=np.array([0.5]))[:, 0]
    # below 1.2 V nothing happens; at 2.0 V the median drop is 0.04 * 0.8 = 0.032 decades
    assert q[0] == pytest.approx(0.0, abs=0.01)
    assert q[1] == pytest.approx(-0.032, abs=0.02)


def test_respond_same_seed_same_result_and_scalars(synth_model):
    g = np.full(500, 8e-6)
    a = synth_model.respond(g, 2.0, 0.0, 2.5, 1e-7, 0.3, 0.0, np.random.default_rng(5))
    b = synth_model.respond(g, np.full(500, 2.0), np.zeros(500), np.full(500, 2.5),
                            np.full(500, 1e-7), np.full(500, 0.3), np.zeros(500),
                            np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    # no pulse: nothing changes
    c = synth_model.respond(g, 0.0, 0.0, 2.5, 1e-7, 0.0, 0.0, np.random.default_rng(5))
    np.testing.assert_array_equal(c, g)
    with pytest.raises(ValueError, match="both > 0"):
        synth_model.respond(g, 2.0, 1.0, 2.5, 1e-7, 0.0, 0.0, np.random.default_rng(5))


def test_true_state_removes_read_noise(synth_model):
    # below threshold the known device does not move: every staircase starts at 200 uS, so
    # a read after the pulse given a read before it spreads by one read's noise, 0.01 decades
    g = np.full(20000, 200e-6)
    rng = np.random.default_rng(0)
    read = synth_model.respond(g, 0.0, 0.9, 3.0, 1e-7, 0.0, 0.0, rng)
    true = synth_model.respond(g, 0.0, 0.9, 3.0, 1e-7, 0.0, 0.0, rng, true_state=True)
    assert np.std(np.log10(read / g)) == pytest.approx(0.01, rel=0.3)
    assert np.std(np.log10(true / g)) < 0.5 * np.std(np.log10(read / g))


def test_model_file_round_trip_with_pulse_part(device_with_pulses, tmp_path):
    path = device_with_pulses.save(tmp_path / "m.json")
    back = DeviceModel.load(path)
    assert back.pulse_ is not None and back.pulse_.head == device_with_pulses.pulse_.head
    g = np.full(100, 8e-6)
    a = device_with_pulses.pulse_.respond(g, 2.0, 0, 2.5, 1e-7, 0.0, 0.0,
                                          np.random.default_rng(1))
    b = back.pulse_.respond(g, 2.0, 0, 2.5, 1e-7, 0.0, 0.0, np.random.default_rng(1))
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_old_model_files_still_load():
    model = DeviceModel.load(ROOT / "calibration_data" / "models" / "radar_cycling-4-24-20.json")
    assert model.pulse_ is None
    cells = model.cells(10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no pulse part"):
        cells.apply_pulse(2.0, 0.0, 2.5, 1e-7)


def test_bad_pulse_part_is_one_clear_error(device_with_pulses):
    doc = device_with_pulses.to_dict()
    doc["pulse"]["nets"]["set"]["weights"][0] = [[0.0]]
    with pytest.raises(DataError, match="pulse part"):
        DeviceModel.from_dict(doc, "broken.json")


def test_cell_array_apply_pulse(device_with_pulses):
    model = device_with_pulses
    a = model.cells(3000, np.random.default_rng(2))
    b = model.cells(3000, np.random.default_rng(2))
    a.apply_pulse(0.0, 2.0, 3.0, 1e-7)           # RESET everything a little
    b.apply_pulse(np.zeros(3000), np.full(3000, 2.0), np.full(3000, 3.0), np.full(3000, 1e-7))
    np.testing.assert_array_equal(a.conductance, b.conductance)
    assert np.all(a.pulse_energy > 0)
    # SET half the cells from where they are; the other half are left alone
    v_bl = np.where(np.arange(3000) < 1500, 2.0, 0.0)
    before = a.conductance.copy()
    a.apply_pulse(v_bl, 0.0, 2.7, 1e-7)
    after = a.conductance
    np.testing.assert_array_equal(after[1500:], before[1500:])
    assert np.all(a.pulse_energy[1500:] == 0)
    assert np.median(after[:1500]) == pytest.approx(compliance(2.7), rel=0.2)
    with pytest.raises(ValueError, match="both > 0"):
        a.apply_pulse(1.0, 1.0, 2.0, 1e-7)
    with pytest.raises(ValueError, match="shape"):
        a.apply_pulse(np.ones(7), 0.0, 2.0, 1e-7)


def test_apply_pulse_threads_same_seed_same_result(device_with_pulses):
    runs = []
    for _ in range(2):
        c = device_with_pulses.cells(70000, np.random.default_rng(9), n_threads=2)
        c.apply_pulse(2.0, 0.0, 2.5, 1e-7)
        runs.append(c.conductance)
        c.close()
    np.testing.assert_array_equal(runs[0], runs[1])


def _pulse_table(tmp_path):
    rows = ["cell,width_s,v_bl,v_sl,v_wl,r_before,r_after"]
    rng = np.random.default_rng(0)
    for i in range(60):
        cell = f"c{i % 7}"
        if i % 3 == 0:
            rows.append(f"{cell},1e-7,2.0,0,{rng.uniform(2.1, 2.7):.3f},{rng.uniform(6e4, 2e5):.1f},")
        elif i % 3 == 1:
            rows.append(f"{cell},1e-7,0,{rng.uniform(0.8, 2.0):.3f},3.0,{rng.uniform(4e3, 8e3):.1f},")
        else:
            rows.append(f"{cell},1e-7,0,0,2.0,5000.0,")
    path = tmp_path / "pulses.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_pulse_command_replays_reproducibly(device_with_pulses, tmp_path, capsys):
    from pyaimc.cli import main
    from pyaimc.data.pulses import load_pulse_csv

    model = device_with_pulses.save(tmp_path / "m.json")
    table = _pulse_table(tmp_path)
    outs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert main(["pulse", str(model), str(table), "--seed", str(seed), "-o",
                     str(tmp_path / f"{name}.csv")]) == 0
        outs.append((tmp_path / f"{name}.csv").read_text())
    assert "replayed 60 pulses of 7 cells (20 SET, 20 RESET, 20 without a pulse)" in \
        capsys.readouterr().out
    assert outs[0] == outs[1] and outs[0] != outs[2]
    src, got = load_pulse_csv(table), load_pulse_csv(tmp_path / "a.csv")
    np.testing.assert_array_equal(got.cell, src.cell)
    np.testing.assert_array_equal(got.r_before, src.r_before)
    np.testing.assert_array_equal(got.v_sl, src.v_sl)
    none = src.polarity == 0
    np.testing.assert_array_equal(got.r_after[none], src.r_before[none])
    assert np.all(np.isfinite(got.r_after)) and np.all(got.r_after > 0)
    # SET from the HRS of the known device lands near its compliance
    sets = src.polarity == 1
    ratio = (1 / got.r_after[sets]) / compliance(src.v_wl[sets])
    assert np.median(ratio) == pytest.approx(1.0, abs=0.25)


def test_pulse_command_errors(device_with_pulses, tmp_path, capsys):
    from pyaimc.cli import main

    table = _pulse_table(tmp_path)
    old = ROOT / "calibration_data" / "models" / "radar_cycling-4-24-20.json"
    assert main(["pulse", str(old), str(table), "-o", str(tmp_path / "x.csv")]) == 2
    assert "no pulse part" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("cell,width_s,v_bl,v_sl,v_wl,r_before\nc,1e-7,2,0,2.5,-1\n")
    model = device_with_pulses.save(tmp_path / "m.json")
    assert main(["pulse", str(model), str(bad), "-o", str(tmp_path / "x.csv")]) == 2
    assert "row 2, column 6 (r_before): -1" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_non_finite_pulse_weights_are_refused(device_with_pulses):
    doc = device_with_pulses.to_dict()
    doc["pulse"]["nets"]["reset"]["biases"][0][0] = float("nan")
    with pytest.raises(DataError, match="non-finite"):
        DeviceModel.from_dict(doc, "nan.json")

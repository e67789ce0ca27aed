"""The noise export of a model with a pulse response: tables from the pulse-level simulation."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.device import DeviceModel
from tests.conftest import ROOT, need_shared

MODEL = ROOT / "pyaimc" / "models" / "radar_pulse-4-24-20.json"


def test_export_tabulates_the_pulse_schemes():
    from pyaimc.noise import export_noise_model

    model = DeviceModel.load(MODEL)
    nm = export_noise_model(model, np.random.default_rng(0), window=(20e-6, 180e-6),
                            n_levels=3, n_devices=40, n_repeats=2)
    p = nm.programming
    assert p.scheme_names == ["ispp", "fppv", "radar"] and p.training_scheme == "radar"
    for name in p.scheme_names:
        t = p.table(name)
        # write-verify to +-5 % windows: the tables hold the true state, not the verify read,
        # and the measured read noise is 6-18 % below 80 uS: the means land within 15 %
        np.testing.assert_allclose(t.mean, p.levels, rtol=0.15)
        assert np.all(t.mean_pulses >= 1) and np.all(t.failed_fraction <= 0.1)
        assert t.settings["scheme"] == name


def test_export_command_reports_measured_vs_simulated(tmp_path, capsys):
    from pyaimc.cli import main

    log = need_shared("radar_programming", "write_verify", "sdr-4wl-eval-chip1-8-7-20.csv")
    out = tmp_path / "noise.json"
    assert main(["export", "noise", "--device", str(MODEL), "-o", str(out), "--levels", "2",
                 "--devices", "20", "--repeats", "2", "--g-min-us", "20", "--g-max-us", "180",
                 "--scheme", "radar", "--measured", f"radar={log}"]) == 0
    text = capsys.readouterr().out
    assert "measured vs simulated" in text and "5770-6.01e+03" in text
    from pyaimc.noise import NoiseModel

    nm = NoiseModel.load(out)
    rows = nm.programming.table("radar").settings["measured"]["levels"]
    assert [r["r_lo"] for r in rows] == [0.0, 5770.0, 8510.0, 80000.0]
    assert rows[1]["pulses_mean"] == pytest.approx(13.15, abs=0.01)
    assert main(["export", "noise", "--device", str(MODEL), "-o", str(out), "--scheme",
                 "radar", "--measured", f"ispp={log}"]) == 2
    assert "SCHEME one of the tabulated schemes" in capsys.readouterr().err

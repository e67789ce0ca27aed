"""Feature extraction from raw I-V sweeps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pyaimc.data import DataError
from pyaimc.data.sweeps import extract_features


def test_hand_read_values_of_cell0_cycle0(synref_sweeps):
    # read off the printed curve of cell 0, cycle 0: I = 36.75 uA at 0.19697 V and 42.58 uA at
    # 0.22727 V (R_LRS ~ 5358 ohm); the current peaks at 0.7727 V (152.1 uA) and has fallen at
    # 0.8030 V (148.6 uA): the RESET onset lies between them.
    d = synref_sweeps.data
    assert d.values[0, 0, 2] == pytest.approx(5358, rel=2e-3)
    assert 0.7727 <= d.values[0, 0, 3] <= 0.8030
    # SET: the jump lies between two samples 0.0306 V apart; the midpoint is reported
    u = synref_sweeps.u
    k = synref_sweeps.set_index[0, 0]
    assert d.values[0, 0, 1] == pytest.approx(0.5 * (u[k - 1] + u[k]), abs=1e-12)
    assert abs(synref_sweeps.i[0, 0, k] / u[k]) > 3 * abs(synref_sweeps.i[0, 0, k - 1] / u[k - 1])
    # cycle 0's HRS is not observed at +U_read: marked missing, never guessed
    assert d.missing[:, 0, 0].all() and not d.missing[:, 1:, 0].any()


def test_extracted_distributions_match_the_generator(synref_sweeps, synref_data):
    # 32 devices x 50 cycles against 256 x 3000 of the same generator: the tolerances allow for
    # the device-to-device sampling of 32 devices (standard error of a median ~ d2d std / 5.7)
    tol_median = {"R_HRS": 0.06, "U_SET": 0.04, "R_LRS": 0.02, "U_RESET": 0.03}
    tol_ks = {"R_HRS": 0.08, "U_SET": 0.2, "R_LRS": 0.06, "U_RESET": 0.16}
    for name in synref_data.feature_names:
        a = synref_sweeps.data.feature(name)
        b = synref_data.feature(name)
        if name.startswith("R_"):
            a, b = np.log10(a), np.log10(b)
        a = a[np.isfinite(a)]
        assert abs(np.median(a) - np.median(b)) < tol_median[name], name
        assert stats.ks_2samp(a, b.ravel()).statistic < tol_ks[name], name
        assert np.std(a) == pytest.approx(np.std(b), rel=0.15), name


def test_extraction_of_simulated_sweeps_recovers_drawn_features(synref_model):
    from pyaimc.device import simulate_sweeps, triangular_sweep

    u = triangular_sweep(points=200)
    cells = synref_model.cells(8, np.random.default_rng(5), dtype=np.float64)
    i, drawn = simulate_sweeps(cells, u, 12)
    sf = extract_features(u, i)
    step = np.max(np.abs(np.diff(u)))
    ok = np.isfinite(sf.data.feature("U_SET"))
    assert ok.mean() > 0.95
    assert np.max(np.abs(sf.data.feature("U_SET")[ok] - drawn["U_SET"][ok])) <= step / 2 + 1e-9
    ok = np.isfinite(sf.data.feature("U_RESET"))
    assert np.max(np.abs(sf.data.feature("U_RESET")[ok] - drawn["U_RESET"][ok])) <= step
    for name in ("R_LRS", "R_HRS"):
        e, t = sf.data.feature(name), drawn[name]
        ok = np.isfinite(e)
        assert np.max(np.abs(e[ok] / t[ok] - 1)) < 1e-3, name


def test_bad_sweeps():
    u = np.linspace(0, 1, 10)
    with pytest.raises(DataError, match="must go negative first"):
        extract_features(u, np.zeros((1, 1, 10)))
    u = np.concatenate([np.linspace(0, -1, 5), np.linspace(-1, 1, 10), np.linspace(1, 0, 5)])
    with pytest.raises(DataError, match="cells x cycles x 20 points"):
        extract_features(u, np.zeros((1, 20)))
    i = np.zeros((1, 1, 20))
    i[0, 0, 3] = np.nan
    with pytest.raises(DataError, match="not finite at cell 0, cycle 0, point 3"):
        extract_features(u, i)

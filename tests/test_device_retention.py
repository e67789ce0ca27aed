"""The two-step retention model: known steps recovered, temperature interpolation, error rate."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.device.retention import READ_WINDOWS_OHM, RetentionModel, error_rate
from tests.conftest import need_shared


def step(g, shift, std, rng):
    return g + shift + std * rng.standard_normal(g.shape)


def fitted(rng):
    g = rng.uniform(20e-6, 240e-6, 6000)
    wait = [(g, step(g, 0.2e-6, 1e-6, rng))]
    bake = {}
    for temp, std in ((100.0, 2e-6), (150.0, 4e-6)):
        gb = rng.uniform(20e-6, 240e-6, 6000)
        bake[temp] = [(gb, step(gb, -1e-6, std * (1 + (240e-6 - gb) / 240e-6), rng))]
    return RetentionModel(n_knots=24, min_neighbours=300).fit(wait, bake)


def test_steps_recovered_and_interpolated_in_inverse_temperature():
    m = fitted(np.random.default_rng(0))
    g = np.array([60e-6, 120e-6, 200e-6])
    mw, vw = m.wait_.moments(g)
    np.testing.assert_allclose(mw, 0.2e-6, atol=0.1e-6)
    np.testing.assert_allclose(np.sqrt(vw), 1e-6, rtol=0.1)
    scale = 1 + (240e-6 - g) / 240e-6
    for temp, std in ((100.0, 2e-6), (150.0, 4e-6)):
        mb, vb = m.bake_moments(g, temp)
        np.testing.assert_allclose(np.sqrt(vb), std * scale, rtol=0.12)
        np.testing.assert_allclose(mb, -1e-6, atol=0.3e-6)
    # halfway in 1/T: halfway variance; beyond 150 C the segment continues (grows)
    mid = 1 / (0.5 / 373.15 + 0.5 / 423.15) - 273.15
    v100, v150, vmid = (m.bake_moments(g, t)[1] for t in (100.0, 150.0, mid))
    np.testing.assert_allclose(vmid, 0.5 * (v100 + v150), rtol=1e-9)
    assert np.all(m.bake_moments(g, 180.0)[1] > v150)
    # sampled steps have the tables' spread; same seed, same result
    g0 = np.full(20000, 120e-6)
    after = m.bake(g0, 150.0, np.random.default_rng(1))
    assert np.std(after - g0) == pytest.approx(np.sqrt(m.bake_moments([120e-6], 150.0)[1][0]),
                                               rel=0.05)
    assert np.array_equal(after, m.bake(g0, 150.0, np.random.default_rng(1)))


def test_error_rate_counts_cells_outside_their_window():
    lo, hi = READ_WINDOWS_OHM[2]
    level = np.array([0, 1, 2, 3])
    r = np.array([5.0e3, 6.0e3, 10e3, 50e3])
    assert error_rate(r, level, (lo, hi)) == 0.0
    r2 = np.array([5.2e3, 6.0e3, 6.7e3, 50e3])  # 5.2k: gap above level 0; 6.7k: gap
    assert error_rate(r2, level, (lo, hi)) == 0.5
    assert error_rate(np.stack([r, r2]), level, (lo, hi)) == 0.25


def test_read_windows_hold_the_written_cells():
    from pyaimc.data.relaxation import radar_retention_experiments

    exps = radar_retention_experiments(need_shared("radar_programming", "retention"))
    for name in ("3bpc1", "3bpc2", "3bpc3", "3bpc4", "3bpc5", "2bpc4"):
        e = exps[name]
        lo, hi = READ_WINDOWS_OHM[e.bits_per_cell]
        w = np.isfinite(e.r_written) & (e.level < e.n_levels - 1)  # HRS: open upper bound
        # every write window lies inside its read window
        assert np.all(e.window_lo[w] >= lo[e.level[w]])
        assert np.all(e.window_hi[w] <= hi[e.level[w]])

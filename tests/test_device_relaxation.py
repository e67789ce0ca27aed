"""The relaxation part: known parameters recovered, reproducibility, files, temperature, 1/f."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.data.relaxation import BakeData, ReadTraces, RelaxationData
from pyaimc.device import DeviceModel
from pyaimc.device.relaxation import ReadNoise1f, RelaxationModel
from tests.conftest import ROOT

TIMES = np.array([0.01, 0.1, 1.0, 100.0, 1e4])
RHO = 0.7


def true_moments(g0, t):
    """Mean and variance of G(t) - G0 of the synthetic technology (S, S**2)."""
    tau = np.log10(t) + 2.5  # zero at 10**-2.5 s
    gn = g0 / 1e-4
    std_per_sqrt_decade = 1e-6 * (1 + 3 * gn * (1 - gn))  # widest mid-window
    return -0.3e-6 * gn * tau, std_per_sqrt_decade ** 2 * tau


def synthetic(n_cells=20000, seed=0):
    rng = np.random.default_rng(seed)
    g0 = rng.uniform(5e-6, 1e-4, n_cells)
    # the true paths: OU in log10 t, Student-t (5 dof) marginals scaled to unit variance
    z = np.empty((n_cells, len(TIMES)))
    x = rng.standard_normal(n_cells)
    for k, t in enumerate(TIMES):
        if k:
            c = RHO ** np.log10(t / TIMES[k - 1])
            x = c * x + np.sqrt(1 - c * c) * rng.standard_normal(n_cells)
        z[:, k] = x
    from scipy import stats

    u = stats.t.ppf(stats.norm.cdf(z), 5) / np.sqrt(5 / 3)
    m, v = true_moments(g0[:, None], TIMES[None, :])
    g = g0[:, None] + m + np.sqrt(v) * u
    time = TIMES[None, :] * rng.uniform(0.95, 1.05, (n_cells, len(TIMES)))
    return RelaxationData(np.arange(n_cells), np.zeros(n_cells, int), g0, TIMES, time, g,
                          "synthetic-relaxation.tsv")


@pytest.fixture(scope="module")
def fitted():
    return RelaxationModel(n_knots=24, min_neighbours=300).fit(synthetic())


def test_known_parameters_recovered(fitted):
    m = fitted
    inner = (m.g_knots_ > 15e-6) & (m.g_knots_ < 90e-6)
    tm, tv = true_moments(m.g_knots_[:, None], m.t_knots_[None, :])
    # variance: averaged over the inner knots within 8 % at each time, each knot within 35 %
    # (heavy tails: a knot's variance rests on a few hundred cells); mean within 0.15 std
    ratio = m.var_[inner] / tv[inner]
    np.testing.assert_allclose(ratio.mean(axis=0), 1.0, atol=0.08)
    np.testing.assert_allclose(ratio, 1.0, atol=0.35)
    assert np.max(np.abs(m.mean_ - tm)[inner] / np.sqrt(tv[inner])) < 0.15
    assert m.rho_per_decade_ == pytest.approx(RHO, abs=0.05)
    # the heavy tails of the t(5) residuals: kurtosis 9 in theory, 6-12 in a sample
    assert 5 < m.fit_info_["residual_kurtosis"] < 13
    # extrapolation: the true variance grows linearly in log10 t, so a decade past the last
    # knot it is known (within 15 %)
    g = np.array([50e-6])
    _, v = m.moments(g, [1e5])
    assert v[0, 0] == pytest.approx(true_moments(g, 1e5)[1][0], rel=0.15)


def test_sampled_moments_match_the_tables(fitted):
    g0 = np.full(40000, 50e-6)
    out = fitted.relax(g0, [0.0, 1.0, 1e4, 3e7], np.random.default_rng(5))
    mean, var = fitted.moments(g0[:1], [0.0, 1.0, 1e4, 3e7])
    assert np.all(out[:, 0] == g0)  # time 0 is the programmed conductance
    d = out - g0[:, None]
    np.testing.assert_allclose(d[:, 1:].std(axis=0), np.sqrt(var[0, 1:]), rtol=0.04)
    np.testing.assert_allclose(d[:, 1:].mean(axis=0), mean[0, 1:],
                               atol=0.03 * np.sqrt(var[0, -1]))
    # each cell follows one path: two times 4 decades apart have the rank correlation of
    # normal paths with correlation rho ** 4
    from scipy import stats

    rho = fitted.rho_per_decade_ ** 4
    c = stats.spearmanr(d[:, 1], d[:, 2]).statistic
    assert c == pytest.approx(6 / np.pi * np.arcsin(rho / 2), abs=0.03)


def test_same_seed_same_result(fitted):
    g0 = np.linspace(1e-5, 9e-5, 100)
    a = fitted.relax(g0, [3600.0, 1.0], np.random.default_rng(11))
    b = fitted.relax(g0, [3600.0, 1.0], np.random.default_rng(11))
    c = fitted.relax(g0, [3600.0, 1.0], np.random.default_rng(12))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (100, 2) and np.all(a >= 0)


def test_bad_arguments(fitted):
    with pytest.raises(ValueError, match="times must be"):
        fitted.relax([1e-5], [-1.0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="g0 must be"):
        fitted.relax([np.nan], [1.0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="no temperature part"):
        fitted.relax([1e-5], [1.0], np.random.default_rng(0), temperature_c=85)


def test_temperature_factor_recovered(fitted):
    # a bake that doubles the variance and shifts the mean by -2 uS at its time
    rng = np.random.default_rng(3)
    n = 20000
    g0 = rng.uniform(5e-6, 1e-4, n)
    t_b = np.full(n, 5000.0)
    m, v = true_moments(g0, t_b)
    g = g0 + m - 2e-6 + np.sqrt(2 * v) * rng.standard_normal(n)
    bake = BakeData(np.arange(n), np.full(n, 150.0), t_b, g0, g, "synthetic-bake")
    model = RelaxationModel(n_knots=24, min_neighbours=300).fit(synthetic())
    model.fit_temperature(bake)
    inner = (model.g_knots_ > 15e-6) & (model.g_knots_ < 90e-6)
    assert np.median(model.vfactor_[inner, 0]) == pytest.approx(2.0, rel=0.1)
    np.testing.assert_allclose(model.vfactor_[inner, 0], 2.0, rtol=0.35)
    assert np.mean(model.dmean_[inner, 0]) == pytest.approx(-2e-6, abs=0.3e-6)
    np.testing.assert_allclose(model.dmean_[inner, 0], -2e-6, atol=1e-6)
    # at the bake's own time and temperature the model gives the bake's moments
    mm, vv = model.moments([50e-6], [5000.0], temperature_c=150)
    tm, tv = true_moments(np.array([50e-6]), 5000.0)
    assert vv[0, 0] == pytest.approx(2 * tv[0], rel=0.3)
    assert mm[0, 0] == pytest.approx(tm[0] - 2e-6, abs=1e-6)
    # at or below the records' temperature nothing changes; halfway in 1/T about half the excess
    base = model.moments([50e-6], [5000.0])
    assert np.allclose(model.moments([50e-6], [5000.0], temperature_c=20), base)
    inv_mid = 0.5 / (25 + 273.15) + 0.5 / (150 + 273.15)
    _, vm = model.moments([50e-6], [5000.0], temperature_c=1 / inv_mid - 273.15)
    assert vm[0, 0] == pytest.approx(0.5 * (base[1][0, 0] + vv[0, 0]), rel=0.02)


def test_model_files_round_trip(tmp_path, fitted):
    dm = DeviceModel()
    dm.relaxation_ = fitted
    dm.save(tmp_path / "r.json")
    back = DeviceModel.load(tmp_path / "r.json")
    assert not back.has_cycling
    g0 = np.linspace(1e-5, 9e-5, 50)
    a = fitted.relax(g0, [1.0, 1e6], np.random.default_rng(2))
    b = back.relaxation_.relax(g0, [1.0, 1e6], np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="only a relaxation part"):
        back.sample(2, 2, np.random.default_rng(0))


def test_old_model_files_load_and_take_the_part(tmp_path, fitted):
    path = ROOT / "calibration_data" / "models" / "example.json"
    old = DeviceModel.load(path)
    assert old.relaxation_ is None and old.has_cycling
    old.relaxation_ = fitted
    old.save(tmp_path / "both.json")
    both = DeviceModel.load(tmp_path / "both.json")
    assert both.has_cycling and both.relaxation_.technology_ == "synthetic"
    s1 = both.sample(3, 5, np.random.default_rng(0))
    s0 = DeviceModel.load(path).sample(3, 5, np.random.default_rng(0))
    np.testing.assert_array_equal(s1["R_HRS"], s0["R_HRS"])


def test_one_over_f_recovered():
    truth = ReadNoise1f(1.2, [1e-5, 1e-4], [1e-14, 1e-13], [0.0, 0.0])
    rng = np.random.default_rng(0)
    fs, n = 400.0, 1 << 16
    x = truth.sample([1e-5, 1e-4], n, fs, rng)
    g = np.array([[1e-5], [1e-4]]) + x
    tr = ReadTraces(np.array([0, 8]), np.zeros(2, int), g, fs, "synthetic-timeseries")
    part, info = ReadNoise1f.fit(tr, band=(0.1, 20.0))
    assert part.alpha == pytest.approx(1.2, abs=0.08)
    np.testing.assert_allclose(part.amplitude, [1e-14, 1e-13], rtol=0.3)
    # integrated sigma: the analytic band integral
    s = part.sigma(1e-4, 0.1, 20.0)
    assert s == pytest.approx(np.sqrt(part.amplitude_at(1e-4) * (0.1 ** -0.2 - 20 ** -0.2)
                                      / 0.2 * (part.alpha / 1.2) ** 0), rel=0.2)


def test_fit_refuses_too_little_data():
    d = synthetic(100)
    from pyaimc.data import DataError

    with pytest.raises(DataError, match="need at least 240"):
        RelaxationModel().fit(d)

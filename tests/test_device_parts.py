"""Unit checks of the model's parts: marginal tables, VAR, copula map, mixture, I-V."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.device.copula import CopulaMap
from pyaimc.device.iv import IVModel, adc_quantize
from pyaimc.device.marginal import MarginalTransform
from pyaimc.device.mixture import DeviceMixture
from pyaimc.device.var import VARProcess, window_autocovariances


def test_marginal_transform_maps_data_to_normal_and_back():
    rng = np.random.default_rng(0)
    u = rng.gamma(2.0, size=200_000)
    t = MarginalTransform.fit(u)
    x = t.to_normal(u)
    assert abs(np.mean(x)) < 0.01 and np.std(x) == pytest.approx(1, abs=0.01)
    np.testing.assert_allclose(t.to_data(x), u, rtol=1e-10, atol=1e-10)
    assert np.all(np.diff(t.to_data(np.linspace(-6, 6, 1000))) > 0)  # monotone, also beyond knots
    g = t.to_data(rng.standard_normal(200_000))
    assert np.quantile(g, 0.9) == pytest.approx(np.quantile(u, 0.9), rel=0.02)


def test_var_fit_recovers_known_process_and_order():
    a1 = np.array([[0.5, 0.1], [0.0, 0.3]])
    a2 = np.array([[0.2, 0.0], [0.1, 0.2]])
    true = VARProcess(np.stack([a1, a2]), np.linalg.cholesky([[1.0, 0.3], [0.3, 1.0]]))
    x = true.simulate(200, 500, np.random.default_rng(1))
    fit = VARProcess.fit(x, max_order=6, window_correction=False)
    assert fit.order == 2
    np.testing.assert_allclose(fit.coefs, true.coefs, atol=0.01)
    assert fit.spectral_radius() < 1


def test_expected_window_autocovariances_match_simulation():
    proc = VARProcess(np.array([[[0.9]]]), np.array([[np.sqrt(1 - 0.81)]]))
    sim = proc.simulate(20_000, 50, np.random.default_rng(2))
    got = window_autocovariances(sim, 3)[:, 0, 0]
    expected = proc.expected_window_autocovariances(50, 3)[:, 0, 0]
    np.testing.assert_allclose(got, expected, atol=0.01)
    # the window lowers them well below the stationary values (1, 0.9, 0.81, 0.73)
    assert expected[1] < 0.75


def test_window_correction_reproduces_short_record_statistics():
    """Records of 30 cycles, each demeaned over its own window as the model sees them: the
    corrected VAR, simulated over 30-cycle windows, gives back the data's lag-1 autocorrelation
    (0.686 here); the naive least-squares VAR falls short of it (0.623 here)."""
    from pyaimc.device.fidelity import autocorrelation

    proc = VARProcess(np.array([[[0.8]]]), np.array([[0.6]]))

    data = proc.simulate(400, 30, np.random.default_rng(3))
    data -= data.mean(1, keepdims=True)
    target = autocorrelation(data[:, :, 0], 1)[0]
    acf = {}
    for corrected in (False, True):
        fit = VARProcess.fit(data, 1, window_correction=corrected)
        sim = fit.simulate(20_000, 30, np.random.default_rng(4))
        acf[corrected] = autocorrelation(sim[:, :, 0], 1)[0]
    assert abs(acf[True] - target) < 0.005
    assert target - acf[False] > 0.04


def test_copula_map_identity_for_gaussian_and_shrinks_heavy_tails():
    x = np.linspace(-4, 4, 81)
    lin = MarginalTransform(x, x)
    g = CopulaMap(lin, lin)
    for rho in (-0.6, 0.0, 0.3, 0.9):
        assert g(rho) == pytest.approx(rho, abs=1e-9)
    heavy = MarginalTransform(x, np.sinh(x))
    h = CopulaMap(heavy, heavy)
    assert h(0.5) < 0.45
    assert h(h.inverse(0.3)) == pytest.approx(0.3, abs=1e-8)


def test_mixture_bic_finds_a_small_outlier_population():
    rng = np.random.default_rng(4)
    main = rng.normal(0, 1, (480, 2))
    out = rng.normal(6, 0.5, (20, 2))
    mix = DeviceMixture.fit(np.vstack([main, out]), rng=rng)
    assert mix.n_components == 2
    assert mix.weights.min() == pytest.approx(20 / 500, abs=0.005)
    assert np.all(mix.predict(out) == np.argmin(mix.weights))


def test_iv_state_mapping_and_read_resistance():
    iv = IVModel(np.array([2.5e-4, 0.0, 2e-5]), np.array([5e-6, 1e-6, 3e-6]))
    r_read = np.array([4e3, 2e4, 1e5])
    state = iv.state_from_resistance(r_read)
    np.testing.assert_allclose(iv.current(iv.u_read, state), iv.u_read / r_read, rtol=1e-12)
    np.testing.assert_allclose(iv.resistance_from_state(state), r_read, rtol=1e-12)
    # the RESET path starts on the LRS curve and ends at the next HRS
    r_on, r_end = iv.state_from_resistance(4e3), iv.state_from_resistance(1e5)
    assert iv.reset_state(0.7, 0.7, r_on, r_end) == pytest.approx(r_on)
    assert iv.reset_state(iv.u_full_reset, 0.7, r_on, r_end) == pytest.approx(r_end)
    path = iv.reset_state(np.linspace(0.7, iv.u_full_reset, 50), 0.7, r_on, r_end)
    assert np.all(np.diff(path) > 0)  # resistance only grows during RESET


def test_iv_validation_and_adc():
    with pytest.raises(ValueError, match="G_L > G_H"):
        IVModel(np.array([1e-6]), np.array([1e-3]))
    q = adc_quantize(np.array([-1.0, 0.09, 0.49, 2.0]), 2, 0.0, 0.6)
    np.testing.assert_allclose(q, [0.0, 0.0, 0.4, 0.6])

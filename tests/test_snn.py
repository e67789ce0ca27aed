"""The spiking sequence network (issue 18): plasticity rule, device synapses, learning in NEST."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.apps.snn import (IdealSynapses, PlasticityParams, ReRAMSynapses, encode,
                             permanence_update, score)
from pyaimc.errors import InputError


def _need_nest():
    try:
        import nest  # noqa: F401
    except ImportError:
        pytest.skip("NEST is not installed (pip install 'pyaimc[snn]')")


@pytest.fixture(scope="module")
def pulse_model():
    from pyaimc.device import DeviceModel

    return DeviceModel.load("radar_pulse-4-24-20")


# ---------------------------------------------------------------- the rule, without NEST
def test_potentiation_of_a_causal_pair_only():
    p = PlasticityParams(lambda_minus=0.0, lambda_h=0.0)
    pre = np.array([0, 1])           # synapse 0: 0 -> 1, synapse 1: 1 -> 0
    post = np.array([1, 0])
    spikes = (np.array([0, 1]), np.array([10.0, 50.0]))   # 0 fires 40 ms before 1
    dp = permanence_update(pre, post, spikes, np.zeros(2), 2, p)
    assert dp[0] == pytest.approx(p.lambda_plus * np.exp(-40.0 / p.tau_plus), rel=1e-12)
    assert dp[1] == 0.0
    # too close (same element) or too far (two elements back): nothing
    for gap in (p.dt_min - 1.0, p.dt_max + 1.0):
        dp = permanence_update(pre, post, (np.array([0, 1]), np.array([0.0, gap])),
                               np.zeros(2), 2, p)
        assert dp[0] == 0.0


def test_depression_and_homeostasis():
    p = PlasticityParams(lambda_plus=0.0)
    pre, post = np.array([0]), np.array([1])
    # three presynaptic spikes, no postsynaptic one: three depressions
    dp = permanence_update(pre, post, (np.zeros(3, int), np.array([0.0, 50, 100])),
                           np.zeros(3), 2, p)
    assert dp[0] == pytest.approx(-3 * p.lambda_minus)
    # a causal pair of a neuron whose dAP trace is above target: homeostasis takes away
    dp = permanence_update(pre, post, (np.array([0, 1]), np.array([0.0, 40.0])),
                           np.array([0.0, p.z_target + 1.0]), 2, p)
    assert dp[0] == pytest.approx(-p.lambda_minus - p.lambda_h, rel=1e-12)


def test_scores():
    counts = np.array([0, 12, 0, 15, 3])
    assert score(counts, 1, 10) == (0.5, 0.0)          # target and one other predicted
    assert score(counts, 2, 10) == (2 / 3, 1 / 3)
    assert score(np.zeros(5), 2, 10) == (0.0, 1.0)
    seqs, alphabet = encode(["ADBE", "FDBC"])
    assert alphabet == list("ABCDEF") and seqs[1] == [5, 3, 1, 2]


# ---------------------------------------------------------------- device synapses
def test_device_synapse_window_and_levels(pulse_model):
    """Targets land on the levels of the window; the weight is the device's current."""
    rng = np.random.default_rng(0)
    syn = ReRAMSynapses(pulse_model, 2000, rng, on_off_ratio=10, levels=5, variability=0.0)
    assert syn.g_on == pytest.approx(177e-6, rel=0.05)   # median SET level at V_WL 2.9 V
    assert syn.g_off == pytest.approx(syn.g_on / 10, rel=1e-12)
    levels = np.linspace(0, 1, 5)
    # initial permanences: on the levels (median device: within 2 % of the window)
    d = np.abs(syn.permanence[:, None] - levels[None, :]).min(axis=1)
    assert np.percentile(d, 99) < 0.02
    # a large potentiation saturates at the top of the window, not beyond it
    syn.update(np.full(2000, 5.0), rng)
    assert np.median(syn.permanence) == pytest.approx(1.0, abs=0.02)
    assert syn.weights(13.0).max() < 13.0 * 1.03
    # a large depression ends at the bottom: the off device still passes w_max / ratio
    syn.update(np.full(2000, -5.0), rng)
    assert np.median(syn.permanence) == pytest.approx(0.0, abs=0.02)
    # (w = w_max * G / G_on; 0.02 of the window is 0.23 pA here)
    assert np.median(syn.weights(13.0)) == pytest.approx(1.3, abs=0.25)
    assert np.allclose(syn.weights(13.0), 13.0 * syn.g / syn.g_on)
    # a change below half a level moves one level with that probability (stochastic rounding)
    syn.update(np.full(2000, 0.5), rng)                  # to the middle level
    before = syn.pulses
    syn.update(np.full(2000, 0.25 * 0.3), rng)           # 0.3 of a level
    moved = (syn.pulses - before) / 2000
    assert moved == pytest.approx(0.3, abs=0.04)
    d = np.abs(syn.permanence[:, None] - levels[None, :]).min(axis=1)
    assert np.percentile(d, 99) < 0.02


def test_device_variability_and_stuck_cells(pulse_model):
    rng = np.random.default_rng(1)
    n = 3000
    spread = {}
    for s in (0.0, 1.0):
        syn = ReRAMSynapses(pulse_model, n, rng, on_off_ratio=10, variability=s)
        syn.update(0.5 - np.clip(syn.permanence, 0, 1), rng)   # one write to the middle
        spread[s] = np.std(syn.permanence)
    assert spread[0.0] < 0.01          # the median device lands where the inverse aims
    assert 0.05 < spread[1.0] < 0.5    # the fitted device-to-device and cycle-to-cycle spread
    syn = ReRAMSynapses(pulse_model, n, rng, stuck_off=0.1, stuck_on=0.05, variability=0.0)
    off, on = syn.stuck == 1, syn.stuck == 2
    assert off.mean() == pytest.approx(0.1, abs=0.02) and on.mean() == pytest.approx(0.05, abs=0.015)
    g0 = syn.g.copy()
    syn.update(np.full(n, 0.5), rng)
    assert np.array_equal(syn.g[off | on], g0[off | on])
    assert np.allclose(syn.g[on], syn.g_on)
    with pytest.raises(InputError, match="levels"):
        ReRAMSynapses(pulse_model, 10, rng, levels=1)


def test_cycling_only_model_is_a_two_level_synapse():
    """Without a pulse part: a SET sweep to the cycle's LRS, a RESET sweep back to the HRS."""
    from pyaimc.device import DeviceModel

    model = DeviceModel.load("radar_cycling-4-24-20")
    rng = np.random.default_rng(0)
    syn = ReRAMSynapses(model, 500, rng, on_off_ratio=10)
    assert np.median(syn.permanence) < 0.1                 # formed: HRS
    syn.update(np.full(500, 0.8), rng)
    assert np.median(syn.permanence) == pytest.approx(1.0, abs=0.15)
    n = syn.pulses
    syn.update(np.full(500, 0.05), rng)   # cells in the upper half stay: (almost) no sweeps
    assert syn.pulses - n < 0.02 * 500
    syn.update(np.full(500, -0.9), rng)
    assert np.median(syn.permanence) < 0.1


def test_ideal_synapses_threshold():
    syn = IdealSynapses(1000, np.random.default_rng(0), theta_p=0.5, p0_max=0.4)
    assert syn.weights(13.0).max() == 0.0
    syn.update(np.full(1000, 0.2), np.random.default_rng(0))
    w = syn.weights(13.0)
    assert set(np.unique(w)) == {0.0, 13.0}
    assert (w > 0).mean() == pytest.approx(0.25, abs=0.05)   # P0 in [0.3, 0.4] crosses 0.5


# ---------------------------------------------------------------- the network in NEST
def test_network_learns_a_short_sequence():
    """A D B E and F D B C: after training the last element is predicted from its context."""
    _need_nest()
    from pyaimc.apps.snn import run_sequences
    from pyaimc.apps.snn.network import NetworkParams

    params = NetworkParams()
    r = run_sequences(lambda n, rng: IdealSynapses(n, rng), params=params, episodes=20,
                      test_repeats=2, seed=1)
    assert r["prediction_error"] < 0.05, r
    assert r["active_per_element"] < 0.6 * params.n_e      # sparse: predicted neurons win
    assert r["curve"][0][1] > 0.5                           # it was not predicted at first

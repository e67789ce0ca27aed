"""Programmed conductances drawn by the analog layer against the noise model's tables and
against the device model they came from, per conductance level."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _noise_helpers import device_model, example_noise_model, std_error_of_std  # noqa: E402

from pyaimc.analog import AnalogConfig, AnalogLinear, program  # noqa: E402
from pyaimc.device.schemes import calibrate_pulses, get_scheme  # noqa: E402
from pyaimc.noise.programming import programming_statistics  # noqa: E402

N_PER_LEVEL = 4000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def programmed_by_level(nm, method, seed=0):
    """Program a layer whose weights put ``N_PER_LEVEL`` cells on every level of the noise model.

    Returns the conductances (S) reached per level: the cells carrying a weight, and the partner
    cells (which target g_min).
    """
    levels = nm.programming.levels
    u = (levels - nm.window.g_min) / (nm.window.g_max - nm.window.g_min)  # |w| / scale per level
    k = len(levels)
    out_f, in_f = 2 * N_PER_LEVEL // 50, 50 * k  # every row holds every level 50 times
    w = np.tile(np.repeat(u, 50), (out_f, 1))
    w[1::2] *= -1  # half the rows negative: both polarities carry weights
    layer = AnalogLinear(in_f, out_f, bias=False, noise_model=nm,
                         config=AnalogConfig(programming_method=method), seed=seed).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
    program(layer, np.random.default_rng(seed))
    gp, gn = layer.programmed_g_pos.numpy(), layer.programmed_g_neg.numpy()
    carrier = np.where(w > 0, gp, gn)
    partner = np.where(w > 0, gn, gp)
    level = np.tile(np.repeat(np.arange(k), 50), (out_f, 1))
    return ([carrier[level == j] for j in range(k)],
            np.concatenate([partner[level == j] for j in range(1, k)]))


@pytest.mark.parametrize("method", ["write_verify", "one_shot"])
def test_programmed_conductances_follow_the_noise_model(method):
    nm = example_noise_model()
    table = nm.programming.table(method)
    carriers, partners = programmed_by_level(nm, method)
    levels = nm.programming.levels
    mean_poly = table.mean_at(levels, nm.window)
    std_poly = table.std_at(levels, nm.window)
    for j, g in enumerate(carriers):
        se = g.std() / np.sqrt(len(g))
        assert abs(g.mean() - mean_poly[j]) < 4 * se + 1e-12, (method, j)
        assert abs(g.std(ddof=1) - std_poly[j]) < 4 * std_error_of_std(g), (method, j)
    # the polynomials follow the table within their stated fit error
    fe = table.fit_error
    assert np.max(np.abs(mean_poly - table.mean) / table.mean) <= fe["mean_rel"] * (1 + 1e-9)
    assert np.max(np.abs(std_poly - table.std)) <= fe["std_rel"] * table.std.max() * (1 + 1e-9)
    # the partner cells target g_min
    assert abs(partners.mean() - mean_poly[0]) < 4 * partners.std() / np.sqrt(len(partners))


@pytest.mark.parametrize("method", ["write_verify", "one_shot"])
def test_programmed_conductances_follow_the_device_model(method):
    """A fresh pulse-level simulation with the device model's cell array (other seed, other
    devices) agrees with the layer's draws per level, within sampling error plus the fit error
    of the noise model's polynomials."""
    nm = example_noise_model()
    table = nm.programming.table(method)
    carriers, _ = programmed_by_level(nm, method, seed=1)
    levels = nm.programming.levels
    model = device_model()
    rng = np.random.default_rng(1234)
    scheme = get_scheme(method, calibration=calibrate_pulses(model, rng))
    sim = programming_statistics(model, levels, rng, scheme, n_devices=1500, n_repeats=2)
    mean_fit = table.fit_error["mean_rel"] * levels
    std_fit = table.fit_error["std_rel"] * table.std.max()
    # the table itself came from 400 devices x 4 writes per level: its own sampling error counts
    n_table = nm.programming.n_devices * nm.programming.n_repeats
    for j, g in enumerate(carriers):
        d = sim["g"][j].ravel()
        se_mean = np.sqrt(g.var() / len(g) + d.var() / len(d) + d.var() / n_table)
        assert abs(g.mean() - d.mean()) < 4 * se_mean + mean_fit[j], (method, j)
        se_std = np.sqrt(std_error_of_std(g) ** 2 + 2 * std_error_of_std(d) ** 2)
        assert abs(g.std() - d.std()) < 4 * se_std + std_fit, (method, j)
    # and the scheme does what it says: write-verify is tight, one-shot is not
    rel = np.array([g.std() / lv for g, lv in zip(carriers, levels)])
    if method == "write_verify":
        assert rel.max() < nm.programming.table("write_verify").settings["tolerance"]
    else:
        assert rel.min() > 0.1


def test_stuck_cells_hold_their_conductance():
    import dataclasses

    nm = example_noise_model()
    nm = dataclasses.replace(nm, defects=dataclasses.replace(nm.defects, stuck_fraction=0.05,
                                                            stuck_g=1.5e-4))
    layer = AnalogLinear(200, 100, noise_model=nm, seed=0).double()
    program(layer, np.random.default_rng(0))
    g = torch.cat([layer.programmed_g_pos.ravel(), layer.programmed_g_neg.ravel()]).numpy()
    frac = np.mean(g == 1.5e-4)
    assert abs(frac - 0.05) < 4 * np.sqrt(0.05 * 0.95 / len(g))
    # training draws of the pair difference include them too: with an otherwise exact write,
    # a pair is off its target when either cell is stuck
    wv = dataclasses.replace(nm.programming.table("write_verify"), std_coeffs=np.zeros(1),
                             mean_coeffs=np.array([nm.window.g_min,
                                                   nm.window.g_max - nm.window.g_min]))
    exact = dataclasses.replace(nm, programming=dataclasses.replace(
        nm.programming, schemes={**nm.programming.schemes, "write_verify": wv}))
    layer.configure(noise_model=exact)
    layer.train()
    diff = layer._conductances()[1].detach().numpy()  # (out, in)
    target = (layer.weight / layer.weight.abs().amax(dim=1, keepdim=True)).detach().numpy()
    off = np.mean(np.abs(diff - target) > 1e-9)
    p_off = 1 - 0.95**2
    assert abs(off - p_off) < 4 * np.sqrt(p_off * (1 - p_off) / diff.size)

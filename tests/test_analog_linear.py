"""AnalogLinear, convert_to_analog and program: exactness in the ideal case, each non-ideality
on its own, straight-through gradients, saving and loading, and agreement with the crossbar
solver."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _noise_helpers import (device_model, example_noise_model, reference_currents,  # noqa: E402
                            transfer_doc)

from pyaimc.analog import (AnalogConfig, AnalogLinear, analog_layers,  # noqa: E402
                       convert_to_analog, program)
from pyaimc.circuit.transfer import TransferModel  # noqa: E402
from pyaimc.noise import NoiseModel, Tile  # noqa: E402
from pyaimc.noise.model import DAC  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


IDEAL = AnalogConfig.ideal()


def only(**flags) -> AnalogConfig:
    """The ideal config with the named non-idealities switched on, float32 products (the
    checks below are exact; the bf16 products have their own tests, test_analog_half.py)."""
    return dataclasses.replace(IDEAL, **{"products": "float32", **flags})


def with_transfer(nm: NoiseModel, doc: dict) -> NoiseModel:
    doc = doc if isinstance(doc, dict) else doc.to_dict()
    rows, cols = doc["tile"]["rows"], doc["tile"]["cols"]
    return nm.replace(tile=Tile(rows, cols, doc["r_wire"]), transfer=doc,
                      dac=dataclasses.replace(nm.dac, v_max=doc["v_max"])).validate()


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(30, 40), torch.nn.ReLU(),
                               torch.nn.Sequential(torch.nn.Linear(40, 20), torch.nn.Tanh()),
                               torch.nn.Linear(20, 5))


# --------------------------------------------------------------------------- ideal mapping
@pytest.mark.parametrize("shape", [(64, 64), (100, 70), (200, 130)])
def test_ideal_layer_is_linear(shape):
    """Tiles (with padding), differential pairs and scales give back x @ w.T + b exactly."""
    in_f, out_f = shape
    torch.manual_seed(1)
    lin = torch.nn.Linear(in_f, out_f).double()
    layer = convert_to_analog(lin, NoiseModel.ideal(rows=32, cols=48), IDEAL)
    x = torch.randn(3, 5, in_f, dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        torch.testing.assert_close(layer(x), lin(x), rtol=1e-12, atol=1e-12)
    program(layer, np.random.default_rng(0))  # ideal config: the targets exactly
    torch.testing.assert_close(layer(x), lin(x), rtol=1e-12, atol=1e-12)


def test_convert_to_analog_replaces_every_linear_and_keeps_the_original():
    model = mlp()
    analog = convert_to_analog(model, NoiseModel.ideal(), IDEAL, rng=np.random.default_rng(0))
    assert all(isinstance(m, torch.nn.Linear) and not isinstance(m, AnalogLinear)
               for m in model.modules() if isinstance(m, torch.nn.Linear))
    layers = analog_layers(analog)
    assert len(layers) == 3
    assert len({layer.seed for layer in layers}) == 3
    x = torch.randn(7, 30)
    torch.testing.assert_close(analog(x), model(x), rtol=1e-5, atol=1e-6)
    for a, d in zip(layers, [m for m in model.modules() if isinstance(m, torch.nn.Linear)]):
        assert torch.equal(a.weight, d.weight) and torch.equal(a.bias, d.bias)


# --------------------------------------------------------------------------- converters
def test_dac_levels_and_adc_levels():
    nm = example_noise_model()
    layer = AnalogLinear(50, 30, noise_model=nm, config=only(dac=True, adc=True), seed=0)
    x = torch.randn(16, 50)
    v, x_scale = layer.input_voltages(x)
    step = nm.dac.v_max / 127
    k = (v / step).detach().numpy()
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)
    assert float(v.abs().max()) == pytest.approx(nm.dac.v_max, rel=1e-6)
    np.testing.assert_allclose((v * x_scale / nm.dac.v_max).detach().numpy(), x.numpy(),
                               atol=float(x.abs().max()) / 127 / 2 * 1.0001)
    # the ADC: outputs are sums over row tiles of multiples of i_max / 127
    layer.eval()
    with torch.no_grad():
        y = layer(x) - layer.bias
    i_step = nm.adc.i_max / 127
    scale = layer.weight.detach().abs().amax(dim=1)
    unit = (scale / ((layer.g_max - layer.g_min) * layer.v_max)) * x_scale
    codes = (y / unit / i_step).numpy()
    np.testing.assert_allclose(codes, np.round(codes), atol=2e-3)


def test_adc_clips_and_passes_gradient_only_inside():
    from pyaimc.noise.torch_ops import quantize_symmetric

    x = torch.tensor([-3.0, -0.26, 0.0, 0.49, 0.51, 2.0], requires_grad=True)
    y = quantize_symmetric(x, 1.0, 3)  # 3 bits: levels k / 3, k = -3..3
    np.testing.assert_allclose(y.detach().numpy(), [-1.0, -1 / 3, 0.0, 1 / 3, 2 / 3, 1.0],
                               atol=1e-7)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 1, 0])


# --------------------------------------------------------------------------- gradients
def test_programming_noise_is_straight_through():
    """With programming noise the forward changes, the weight gradient is that of nn.Linear."""
    nm = example_noise_model()
    torch.manual_seed(2)
    lin = torch.nn.Linear(80, 40)
    layer = convert_to_analog(lin, nm, only(programming_noise=True), np.random.default_rng(1))
    x = torch.randn(12, 80)
    y_a, y_d = layer(x), lin(x)
    assert float((y_a - y_d).detach().abs().max()) > 1e-3  # the noise is there
    g_out = torch.randn_like(y_d)
    y_a.backward(g_out)
    y_d.backward(g_out)
    torch.testing.assert_close(layer.weight.grad, lin.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(layer.bias.grad, lin.bias.grad)


def test_training_resamples_each_step_and_eval_after_program_is_fixed():
    nm = example_noise_model()
    layer = AnalogLinear(40, 20, noise_model=nm, config=only(programming_noise=True), seed=3)
    x = torch.randn(4, 40)
    layer.train()
    assert not torch.equal(layer(x), layer(x))
    program(layer, np.random.default_rng(0))
    layer.eval()
    y1, y2 = layer(x), layer(x)
    assert torch.equal(y1, y2)
    # read noise on top: every evaluation differs, by about the read noise only
    layer.configure(only(programming_noise=True, read_noise=True))
    y3 = layer(x)
    assert not torch.equal(y3, y1)
    assert float((y3 - y1).detach().abs().max()) < 0.02 * float(y1.detach().abs().max())


def test_program_same_seed_same_conductances():
    nm = example_noise_model()
    model = convert_to_analog(mlp(), nm, rng=np.random.default_rng(0))
    def programmed(seed):
        program(model, np.random.default_rng(seed))
        return [layer.programmed_g_pos.clone() for layer in analog_layers(model)]

    a, b, c = programmed(5), programmed(5), programmed(6)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not any(torch.equal(p, q) for p, q in zip(a, c))


# --------------------------------------------------------------------------- saving
def test_programmed_model_round_trips_through_state_dict_and_torch_save(tmp_path):
    nm = example_noise_model()
    cfg = AnalogConfig(read_noise=False)
    model = convert_to_analog(mlp(), nm, cfg, np.random.default_rng(0))
    program(model, np.random.default_rng(1))
    model.eval()
    x = torch.randn(6, 30)
    y = model(x)

    path = tmp_path / "state.pt"
    torch.save(model.state_dict(), path)
    # other seeds, unprogrammed
    fresh = convert_to_analog(mlp(), nm, cfg, np.random.default_rng(99))
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)  # and other weights: all must come from the file
    fresh.load_state_dict(torch.load(path))  # weights_only loading works
    fresh.eval()
    for a, b in zip(analog_layers(model), analog_layers(fresh)):
        assert bool(b.is_programmed)
        for name in ("programmed_g_pos", "programmed_g_neg", "programmed_scale", "weight"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    assert torch.equal(fresh(x), y)

    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    whole = torch.load(buf, weights_only=False)
    assert torch.equal(whole(x), y)
    whole.train()
    whole(x).sum().backward()  # a loaded model trains on


# --------------------------------------------------------------------------- read noise
def test_read_noise_has_the_device_models_spread():
    """Std of repeated reads of one programmed layer = sqrt(sum over the column's cells of the
    device model's noise_sigma**2), both cells of each pair."""
    nm = example_noise_model()
    layer = AnalogLinear(64, 8, noise_model=nm, config=only(read_noise=True), seed=4).double()
    program(layer, np.random.default_rng(2))
    layer.eval()
    x = torch.rand(1, 64, dtype=torch.float64) * 2 - 1
    x[0, :5] = 0.0  # cells at 0 V add no noise (the device model's convention)
    with torch.no_grad():
        ys = torch.stack([layer(x)[0] for _ in range(4000)]).numpy()
    v, x_scale = layer.input_voltages(x)
    unit = ((layer.programmed_scale / ((layer.g_max - layer.g_min) * layer.v_max))
            * x_scale[0]).numpy()
    iv = device_model().iv_
    u = v[0].numpy()
    var = np.array([
        np.sum(iv.noise_sigma(layer.programmed_g_pos[o].numpy() * u, u, nm.read_noise.bandwidth)**2
               + iv.noise_sigma(layer.programmed_g_neg[o].numpy() * u, u,
                                nm.read_noise.bandwidth)**2)
        for o in range(8)])
    expected = np.sqrt(var) * unit
    measured = ys.std(axis=0, ddof=1)
    # 4000 reads: the std is known to about 1.1 %; 5 % allows for the float rounding of x
    np.testing.assert_allclose(measured, expected, rtol=0.05)


# --------------------------------------------------------------------------- transfer
def test_layer_tiles_apply_the_transfer_model_to_each_polarity():
    """Layer tile currents = the document's formula per tile and polarity, saturation included."""
    nm = example_noise_model()
    d = transfer_doc(16, 8, r_wire=2.0, k_row=0.9, k_col=1.1, c2=(0.2, -0.1), c3=(0.3, 0.1),
                     i_sat=3e-5, g_min=nm.window.g_min * 0.5, g_max=nm.window.g_max * 1.5)
    nmt = with_transfer(nm, d)
    layer = AnalogLinear(40, 20, noise_model=nmt, config=only(programming_noise=True,
                                                             transfer=True), seed=5).double()
    program(layer, np.random.default_rng(3))
    layer.eval()
    v = torch.rand(7, 40, dtype=torch.float64) * 0.4 - 0.2
    got = layer.tile_currents(v).detach().numpy()  # (row tiles, batch, outputs)
    assert got.shape == (3, 7, 20)
    got = np.pad(got, ((0, 0), (0, 0), (0, 4)))
    gp = np.pad(layer.programmed_g_pos.numpy().T, ((0, 8), (0, 4)))
    gn = np.pad(layer.programmed_g_neg.numpy().T, ((0, 8), (0, 4)))
    vp = np.pad(v.numpy(), ((0, 0), (0, 8)))
    saturated = 0
    for t in range(3):
        rows = slice(16 * t, 16 * (t + 1))
        for c in range(3):
            cols = slice(8 * c, 8 * (c + 1))
            ip = reference_currents(vp[:, rows], gp[rows, cols], d)
            im = reference_currents(vp[:, rows], gn[rows, cols], d)
            saturated += np.sum(np.abs(ip) == d["i_sat"]) + np.sum(np.abs(im) == d["i_sat"])
            np.testing.assert_allclose(got[t][:, cols], ip - im, rtol=1e-9, atol=1e-18)
    assert saturated > 0


def _solver_outputs(layer, x, nm):
    """The layer's output computed by the fast crossbar solver on its programmed conductances."""
    from pyaimc.circuit import CrossbarSolver, one_r

    v, x_scale = layer.input_voltages(x)
    v = v.detach().double().numpy()
    r = nm.tile.r_wire
    i = []
    for g in (layer.programmed_g_pos, layer.programmed_g_neg):
        i.append(CrossbarSolver(one_r(g.double().numpy().T, r)).solve(v).column_currents)
    unit = (layer.programmed_scale.double() / ((layer.g_max - layer.g_min) * layer.v_max)).numpy()
    return (i[0] - i[1]) * unit * x_scale.double().numpy() + layer.bias.detach().double().numpy()


def _rel_error(y, ref, bias):
    return float(np.sqrt(np.mean((y - ref) ** 2) / np.mean((ref - bias) ** 2)))


def test_programmed_tile_matches_the_crossbar_solver_within_the_stated_error():
    """First-order IR drop on a 64 x 64 tile with 1 ohm wires: the transfer model's error against
    the solver is measured on one programmed tile (its 'stated error'), then held to on another;
    the ideal product misses by far more."""
    nm = with_transfer(example_noise_model(), TransferModel.first_order(
        64, 64, 1.0, 0.2, example_noise_model().window.g_min, example_noise_model().window.g_max))
    cfg = only(programming_noise=True, dac=True, transfer=True)
    gen = torch.Generator().manual_seed(0)

    def case(seed):
        torch.manual_seed(seed)
        layer = AnalogLinear(64, 64, noise_model=nm, config=cfg, seed=seed).double()
        program(layer, np.random.default_rng(seed))
        layer.eval()
        x = torch.rand(32, 64, generator=gen, dtype=torch.float64)  # post-ReLU-like inputs
        bias = layer.bias.detach().numpy()
        ref = _solver_outputs(layer, x, nm)
        with torch.no_grad():
            y = layer(x).numpy()
            ideal = dataclasses.replace(cfg, transfer=False)
            plain = AnalogLinear(64, 64, noise_model=nm, config=ideal).double()
            plain.load_state_dict(layer.state_dict())
            plain.eval()
            y_ideal = plain(x).numpy()
        return _rel_error(y, ref, bias), _rel_error(y_ideal, ref, bias)

    calib_err, calib_ideal = case(1)
    stated = 1.25 * calib_err
    err, ideal_err = case(2)
    assert err <= stated
    assert ideal_err > 4 * stated  # the IR drop is large enough for the test to mean something
    assert calib_ideal > 4 * stated


def test_input_nonlinearity_matches_polynomial_cells_exactly():
    """Without wire resistance the transfer model of polynomial cells is exact."""
    from pyaimc.circuit import Crossbar, CrossbarSolver, PolynomialCells

    nm = example_noise_model()
    d = transfer_doc(32, 16, r_wire=0.0, c2=(0.4, -0.2), c3=(1.5, 0.5), g_min=nm.window.g_min,
                     g_max=nm.window.g_max)
    nmt = with_transfer(nm, d)
    layer = AnalogLinear(32, 16, noise_model=nmt, config=only(programming_noise=True, dac=True,
                                                             transfer=True), seed=6).double()
    program(layer, np.random.default_rng(4))
    layer.eval()
    x = torch.randn(9, 32, dtype=torch.float64)
    v, x_scale = layer.input_voltages(x)
    currents = []
    for g in (layer.programmed_g_pos.numpy().T, layer.programmed_g_neg.numpy().T):
        gn = (g - d["g_min"]) / (d["g_max"] - d["g_min"])
        a = np.stack([g, g * (0.4 - 0.2 * gn), g * (1.5 + 0.5 * gn)], axis=-1)
        xbar = Crossbar(PolynomialCells(a), r_row=0.0, r_col=0.0)
        currents.append(CrossbarSolver(xbar).solve(v.detach().numpy()).column_currents)
    unit = (layer.programmed_scale / ((layer.g_max - layer.g_min) * layer.v_max)).numpy()
    ref = (currents[0] - currents[1]) * unit * x_scale.numpy() + layer.bias.detach().numpy()
    with torch.no_grad():
        y = layer(x).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-12)
    assert _rel_error(y, ref, layer.bias.detach().numpy()) < 1e-10


def test_configure_switches_the_transfer_model_on_and_off():
    nm = example_noise_model()
    d = TransferModel.first_order(64, 64, 2.0, nm.dac.v_max, nm.window.g_min, nm.window.g_max)
    layer = AnalogLinear(64, 32, noise_model=nm, config=IDEAL, seed=0).double()
    x = torch.rand(4, 64, dtype=torch.float64)
    y0 = layer(x)
    layer.configure(only(transfer=True), with_transfer(nm, d))
    y1 = layer(x)
    assert float((y1 - y0).detach().abs().max()) > 1e-3  # 2 ohm wires: the IR drop shows
    layer.configure(IDEAL)
    torch.testing.assert_close(layer(x), y0)
    assert "mmin" not in layer.state_dict()


def test_noise_model_and_layer_reject_a_mismatched_transfer():
    nm = example_noise_model()
    d = transfer_doc(32, 32, r_wire=1.0, g_min=nm.window.g_min, g_max=nm.window.g_max)
    bad = dataclasses.replace(nm, transfer=d)  # tile stays 64 x 64
    with pytest.raises(ValueError, match="32 x 32 tiles"):
        AnalogLinear(10, 10, noise_model=bad)
    bad = nm.replace(tile=Tile(32, 32, 1.0), transfer=d, dac=DAC(8, 0.3))
    with pytest.raises(ValueError, match="v_max"):
        bad.validate()


# --------------------------------------------------------------------------- training
def test_convert_train_program_evaluate():
    """A small regression trains through every non-ideality and keeps most of it programmed."""
    nm = example_noise_model()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 30, generator=gen)
    w_true = torch.randn(30, 5, generator=gen)
    target = torch.tanh(x @ w_true / 3)
    torch.manual_seed(0)
    digital = torch.nn.Sequential(torch.nn.Linear(30, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))
    model = convert_to_analog(digital, nm, AnalogConfig.hardware(), np.random.default_rng(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.25 * np.mean(losses[:5])
    program(model, np.random.default_rng(1))
    model.eval()
    with torch.no_grad():
        programmed = float(torch.nn.functional.mse_loss(model(x), target))
    assert programmed < 2 * np.mean(losses[-10:])


def test_programmed_tile_matches_solver_within_the_fitted_transfer_error():
    """With a transfer model fitted by pyaimc.circuit (32 x 32, 2 ohm wires), the layer's output on a
    programmed tile matches the fast solver running the device's own non-linear cells at the
    programmed states, within 2x the fit's stated held-out error (same normalisation: the RMS of
    one polarity's column currents; the factor covers pattern-to-pattern spread of one tile)."""
    from pyaimc.circuit import Crossbar, CrossbarSolver, PolynomialCells
    from pyaimc.circuit.transfer_fit import fit_transfer
    from tests._noise_helpers import device_model

    dev = device_model()
    nm0 = example_noise_model()
    fit = fit_transfer(dev, 32, 32, 2.0, 0.2, 6, np.random.default_rng(0),
                       g_window=(nm0.window.g_min, nm0.window.g_max))
    doc = fit.to_dict()
    stated = doc["fit"]["heldout_rel_rms_error"]
    assert stated < 0.2 * doc["fit"]["heldout_ideal_rel_rms_error"]
    nm = with_transfer(nm0, doc)
    cfg = only(programming_noise=True, dac=True, transfer=True)
    layer = AnalogLinear(32, 32, noise_model=nm, config=cfg, seed=3).double()
    program(layer, np.random.default_rng(3))
    layer.eval()
    x = torch.rand(32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    v, x_scale = layer.input_voltages(x)
    v = v.detach().numpy()
    iv = dev.iv_
    currents, ideal = [], []
    for g in (layer.programmed_g_pos.numpy().T, layer.programmed_g_neg.numpy().T):
        r = iv.state_from_resistance(1.0 / g)
        a = iv.lrs_coefs + r[..., None] * (iv.hrs_coefs - iv.lrs_coefs)   # per-cell I-V
        xbar = Crossbar(PolynomialCells(a), r_row=2.0, r_col=2.0)
        currents.append(CrossbarSolver(xbar).solve(v).column_currents)
        ideal.append(v @ g)
    unit = (layer.programmed_scale / ((layer.g_max - layer.g_min) * layer.v_max)).numpy()
    scale = unit * x_scale.numpy()
    with torch.no_grad():
        y = layer(x).numpy() - layer.bias.numpy()
    solver = (currents[0] - currents[1]) * scale
    one_polarity_rms = np.sqrt(0.5 * np.mean((currents[0] * scale) ** 2 + (currents[1] * scale) ** 2))
    err = np.sqrt(np.mean((y - solver) ** 2)) / one_polarity_rms
    err_ideal = np.sqrt(np.mean(((ideal[0] - ideal[1]) * scale - solver) ** 2)) / one_polarity_rms
    assert err <= 2 * stated
    assert err_ideal > 5 * err

"""Analog convolutions and recurrent layers against torch's on the ideal noise model; the
weight-to-conductance mappings; clipping, learned input ranges and output scales; CUDA."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from _noise_helpers import example_noise_model  # noqa: E402

from pyaimc.analog import (WEIGHT_MAPS, AnalogConfig, AnalogConv1d, AnalogLSTM, AnalogTiles, WeightMap, analog_layers,
                           clip_weights, convert_to_analog, hold_draw, program,
                           register_weight_map)
from pyaimc.analog.weight_maps import DifferentialPair  # noqa: E402
from pyaimc.noise import NoiseModel  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IDEAL = AnalogConfig.ideal()
SMALL = NoiseModel.ideal(rows=16, cols=8)   # several tiles per layer: padding and tile sums


def as_analog(module, config=IDEAL, nm=SMALL, seed=0):
    return convert_to_analog(module.double(), nm, config, np.random.default_rng(seed))


# --------------------------------------------------------------------------- conversion, ideal
CONVS = [
    lambda: nn.Conv2d(3, 5, 3, padding=1, stride=2),
    lambda: nn.Conv2d(3, 5, (3, 2), padding="same", padding_mode="reflect", dilation=(1, 2)),
    lambda: nn.Conv2d(3, 20, 2, bias=False),
    lambda: nn.Conv1d(3, 5, 3, padding=2, stride=2),
    lambda: nn.Conv1d(3, 5, 4, padding="same", padding_mode="circular"),
]


@pytest.mark.parametrize("make", CONVS)
def test_convolutions_equal_torch_on_the_ideal_model(make):
    """im2col onto 16x8 tiles (several row and column tiles) gives torch's result to 1e-12."""
    torch.manual_seed(0)
    conv = make().double()
    analog = as_analog(conv)
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    if isinstance(conv, nn.Conv1d):
        x = x[:, :, 0]
    for mode in ("train", "eval"):
        getattr(analog, mode)()
        assert torch.allclose(analog(x), conv(x), rtol=0, atol=1e-12)
    assert torch.equal(analog.conv_weight(), conv.weight)
    assert torch.allclose(analog(x[0]), conv(x[0]), atol=1e-12)      # unbatched input


def test_grouped_convolution_is_refused():
    with pytest.raises(ValueError, match="groups=1"):
        as_analog(nn.Conv2d(4, 4, 3, groups=2))


RNNS = [
    lambda: nn.LSTM(4, 6, num_layers=2, bidirectional=True),
    lambda: nn.GRU(4, 6, batch_first=True),
    lambda: nn.RNN(4, 6, num_layers=2, nonlinearity="relu"),
]


@pytest.mark.parametrize("make", RNNS)
def test_recurrent_layers_equal_torch_on_the_ideal_model(make):
    torch.manual_seed(1)
    rnn = make().double()
    analog = as_analog(rnn)
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    h0 = torch.randn(rnn.num_layers * (2 if rnn.bidirectional else 1), 3 if not rnn.batch_first
                     else 7, 6, dtype=torch.float64)
    y_ref, s_ref = rnn(x) if not isinstance(rnn, nn.GRU) else rnn(x, h0)
    y, s = analog(x) if not isinstance(rnn, nn.GRU) else analog(x, h0)
    assert torch.allclose(y, y_ref, atol=1e-12)
    s, s_ref = (s, s_ref) if isinstance(s, tuple) else ((s,), (s_ref,))
    for a, b in zip(s, s_ref):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("torch_cell", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_recurrent_cells_equal_torch_on_the_ideal_model(torch_cell):
    torch.manual_seed(2)
    cell = torch_cell(4, 6).double()
    analog = as_analog(cell)
    x = torch.randn(3, 4, dtype=torch.float64)
    ref, out = cell(x), analog(x)
    ref, out = (ref[0], out[0]) if isinstance(ref, tuple) else (ref, out)
    assert torch.allclose(out, ref, atol=1e-12)


def test_convert_reaches_every_layer_and_program_round_trips(tmp_path):
    torch.manual_seed(3)
    model = nn.ModuleDict({"conv": nn.Conv1d(2, 4, 3), "lstm": nn.LSTM(4, 5),
                           "head": nn.Linear(5, 3)})
    nm = example_noise_model()
    analog = convert_to_analog(model, nm, AnalogConfig.hardware(), np.random.default_rng(0))
    # conv (1) + LSTM (ih, hh) + head: every product an AnalogLinear over the one tile core
    assert len(analog_layers(analog)) == 4
    assert isinstance(analog["conv"], AnalogConv1d) and isinstance(analog["lstm"], AnalogLSTM)
    program(analog, np.random.default_rng(1))
    analog.eval()
    x = torch.randn(6, 2, 2, 9)

    def run(m):
        y, _ = m["lstm"](m["conv"](x.reshape(12, 2, 9)).reshape(6, 2, 4, 7).mean(-1))
        return m["head"](y)

    torch.save(analog.state_dict(), tmp_path / "a.pt")
    again = convert_to_analog(model, nm, AnalogConfig.hardware(), np.random.default_rng(0))
    again.load_state_dict(torch.load(tmp_path / "a.pt"))
    again.eval()
    # same programmed conductances; read noise differs only through the generators' streams
    for a, b in zip(analog_layers(analog), analog_layers(again)):
        assert torch.equal(a.programmed_g_pos, b.programmed_g_pos)
    assert torch.allclose(run(analog), run(again), rtol=0.05, atol=0.05)


def test_a_sequence_holds_one_programmed_instance():
    """Training: one draw of programming noise per forward pass of a sequence, shared by its
    time steps; a new draw at the next pass."""
    torch.manual_seed(4)
    cfg = dataclasses.replace(AnalogConfig.noise_only(), read_noise=False)
    cell = convert_to_analog(nn.RNNCell(3, 4), example_noise_model(), cfg,
                             np.random.default_rng(0)).train()
    x, h = torch.randn(2, 3), torch.zeros(2, 4)
    with hold_draw(cell):
        a, b = cell(x, h), cell(x, h)
    assert torch.equal(a, b)
    assert not torch.equal(cell(x, h), cell(x, h))


# --------------------------------------------------------------------------- mappings
MAPS = [("differential_pair", {}), ("single_device", {}), ("n_pairs", {"n_pairs": 3}),
        ("n_pairs", {"n_pairs": 2, "significance": 4.0, "correct": True}),
        ("optimised_pairs", {"n_pairs": 2, "significance": 2.0})]


def mapped(name, opts, base=IDEAL):
    return dataclasses.replace(base, mapping=name, mapping_options=opts)


@pytest.mark.parametrize("name,opts", MAPS)
def test_every_mapping_is_exact_on_the_ideal_model(name, opts):
    torch.manual_seed(5)
    lin = nn.Linear(40, 20).double()
    layer = as_analog(lin, mapped(name, opts), NoiseModel.ideal(rows=16, cols=8))
    x = torch.randn(5, 40, dtype=torch.float64)
    layer.train()
    assert torch.allclose(layer(x), lin(x), atol=1e-12)
    program(layer, np.random.default_rng(0))
    layer.eval()
    assert torch.allclose(layer(x), lin(x), atol=1e-12)


def weight_error(name, opts, draws=4):
    """RMS of the programmed effective weight error over the weights' scale (noise only)."""
    torch.manual_seed(6)
    lin = nn.Linear(64, 64)
    layer = as_analog(lin, mapped(name, opts, dataclasses.replace(
        AnalogConfig.noise_only(), read_noise=False)), example_noise_model()).float()
    eye = torch.eye(64)
    errs = []
    for k in range(draws):
        program(layer, np.random.default_rng(k))
        layer.eval()
        with torch.no_grad():
            w = (layer(eye) - layer.bias).T                       # (out, in)
        errs.append(((w - lin.weight) / lin.weight.abs().amax(1, keepdim=True)).pow(2).mean())
    return float(torch.stack(errs).detach().mean().sqrt())


def test_mappings_trade_cells_for_precision_as_expected():
    """Two equal pairs average their random errors (not the write scheme's mean offset: the
    ratio stays above 1/sqrt(2)); one cell against a reference has half the signal (error
    about 2x); a corrected pair of significance 4 cuts the error by
    more than 2x; the optimised split beats every pair holding the weight."""
    e = {n + str(o): weight_error(n, o) for n, o in [
        ("differential_pair", {}), ("single_device", {}), ("n_pairs", {"n_pairs": 2}),
        ("n_pairs", {"n_pairs": 2, "significance": 4.0, "correct": True}),
        ("n_pairs", {"n_pairs": 2, "significance": 2.0}),
        ("optimised_pairs", {"n_pairs": 2, "significance": 2.0})]}
    pair = e["differential_pair{}"]
    assert 0.69 < e["n_pairs{'n_pairs': 2}"] / pair < 0.9
    assert 1.5 < e["single_device{}"] / pair < 2.6
    assert e["n_pairs{'n_pairs': 2, 'significance': 4.0, 'correct': True}"] / pair < 0.5
    assert e["optimised_pairs{'n_pairs': 2, 'significance': 2.0}"] < \
        0.95 * e["n_pairs{'n_pairs': 2, 'significance': 2.0}"]


def test_the_optimiser_lowers_the_expected_error():
    from pyaimc.analog import TileCore

    core = TileCore(example_noise_model(), mapped("optimised_pairs",
                                                  {"n_pairs": 2, "significance": 2.0},
                                                  AnalogConfig.hardware()))
    err = core.mapping.expected_error()
    assert err["optimised"] < 0.9 * err["equal"]
    # the shares reproduce the weight's expected value: sum_k c_k b_k stays within the mean
    # offsets' reach of the weight, and the table is odd-symmetric through 0
    wn = torch.linspace(-1, 1, 41, dtype=torch.float64)
    b = core.mapping.shares(wn)
    assert torch.allclose(b[:, :20], -b[:, 21:].flip(-1), atol=1e-12)


def test_mapping_registry_names_the_known_ones_and_takes_new_ones():
    with pytest.raises(ValueError, match="differential_pair"):
        AnalogConfig(mapping="no_such_map")

    @register_weight_map
    class Doubled(DifferentialPair):     # a pair read with gain 2 from half-range targets
        name = "test_doubled"
        native = False
        gains = (2.0,)

        def targets(self, wn, cols):
            return super().targets(wn / 2, cols)

        def program(self, wn, sampler, generator, cols):
            return super().program(wn / 2, sampler, generator, cols)

    try:
        lin = nn.Linear(10, 4).double()
        layer = as_analog(lin, mapped("test_doubled", {}))
        x = torch.randn(3, 10, dtype=torch.float64)
        assert torch.allclose(layer(x), lin(x), atol=1e-12)
    finally:
        WEIGHT_MAPS.pop("test_doubled")
    assert issubclass(Doubled, WeightMap)


def test_deployment_tiles_refuse_other_mappings():
    with pytest.raises(ValueError, match="differential pairs"):
        AnalogTiles(torch.randn(1, 4, 4), SMALL, mapped("single_device", {}))


# --------------------------------------------------------------------------- clipping, ranges
def test_fixed_and_sigma_clipping():
    torch.manual_seed(7)
    lin = nn.Linear(50, 10).double()
    with torch.no_grad():
        lin.weight[0, 0] = 5.0                                  # an outlier
    fixed = as_analog(lin, dataclasses.replace(IDEAL, weight_clip="fixed",
                                               weight_clip_value=0.1))
    assert float(fixed.mapped_weight().detach().abs().max()) == pytest.approx(0.1)
    sigma = as_analog(lin, dataclasses.replace(IDEAL, weight_clip="sigma",
                                               weight_clip_value=2.0))
    bound = 2.0 * float(lin.weight.std())
    assert float(sigma.mapped_weight().detach().abs().max()) == pytest.approx(bound, rel=1e-12)
    x = torch.randn(4, 50, dtype=torch.float64)
    ref = x @ sigma.mapped_weight().T + lin.bias
    assert torch.allclose(sigma(x), ref, atol=1e-12)            # the clipped weights, exactly
    clip_weights(sigma)
    assert float(sigma.weight.abs().max()) == pytest.approx(bound, rel=1e-12)


def test_learned_input_range_is_set_from_data_then_trained():
    cfg = dataclasses.replace(IDEAL, input_scaling="learned", input_range_init_batches=3,
                              input_range_init_std=2.0, input_range_decay=0.0)
    torch.manual_seed(8)
    layer = as_analog(nn.Linear(20, 5), cfg).train()
    stds = []
    for k in range(3):
        x = torch.randn(16, 20, dtype=torch.float64) * (k + 1)
        stds.append(float(x.std()))
        layer(x)
    assert float(layer.input_range) == pytest.approx(2.0 * np.mean(stds), rel=1e-9)
    # gradient of the range: as the clip gives it (central difference, float64, no DAC)
    x = torch.randn(16, 20, dtype=torch.float64) * 5            # many inputs clipped
    layer.zero_grad()
    layer(x).sum().backward()
    g = float(layer.input_range.grad)
    r0, h = float(layer.input_range), 1e-6
    with torch.no_grad():
        ys = []
        for r in (r0 + h, r0 - h):
            layer.input_range.fill_(r)
            ys.append(float(layer(x).sum()))
        layer.input_range.fill_(r0)
    assert g == pytest.approx((ys[0] - ys[1]) / (2 * h), rel=1e-5)
    assert abs(g) > 0


def test_learned_output_scales_start_at_abs_max_and_learn():
    cfg = dataclasses.replace(IDEAL, learn_out_scale=True)
    torch.manual_seed(9)
    lin = nn.Linear(12, 6).double()
    layer = as_analog(lin, cfg).train()
    x = torch.randn(8, 12, dtype=torch.float64)
    y = layer(x)
    assert torch.allclose(layer.out_scale, lin.weight.abs().amax(1))
    assert torch.allclose(y, lin(x), atol=1e-12)
    with torch.no_grad():
        layer.out_scale.mul_(0.5)                               # clips: a gradient appears
    layer(x).pow(2).sum().backward()
    assert float(layer.out_scale.grad.abs().sum()) > 0
    ref = x @ layer.effective_weight().T + lin.bias
    assert torch.allclose(layer(x), ref, atol=1e-12)


def test_trained_ranges_preset_trains_and_deploys():
    torch.manual_seed(10)
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8, 3))
    analog = convert_to_analog(model, example_noise_model(), AnalogConfig.trained_ranges(),
                               np.random.default_rng(0))
    opt = torch.optim.Adam(analog.parameters(), lr=1e-2)
    x, y = torch.randn(32, 1, 10), torch.randint(0, 3, (32,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(analog(x), y).backward()
        opt.step()
    names = {n for n, _ in analog.named_parameters()}
    assert {"0.input_range", "0.out_scale", "3.input_range", "3.out_scale"} <= names
    program(analog, np.random.default_rng(0))
    analog.eval()
    assert torch.isfinite(analog(x)).all()


# --------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_layers_run_on_cuda_as_on_the_cpu():
    """Ideal: CUDA equals CPU (1e-10, float64); hardware: trains and deploys on the GPU."""
    torch.manual_seed(11)
    model = nn.ModuleDict({"conv": nn.Conv2d(1, 4, 3), "lstm": nn.LSTM(4, 6, batch_first=True),
                           "lin": nn.Linear(6, 3)})

    def run(m, x):
        f = m["conv"](x).mean(-1).transpose(1, 2)                 # (B, W', C)
        return m["lin"](m["lstm"](f)[0][:, -1])

    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    cpu = as_analog(model)
    gpu = as_analog(model).cuda()
    assert torch.allclose(run(gpu, x.cuda()).cpu(), run(cpu, x), atol=1e-10)
    for name, opts in MAPS:
        hw = convert_to_analog(model.float(), example_noise_model(),
                               mapped(name, opts, AnalogConfig.trained_ranges()),
                               np.random.default_rng(0)).cuda().train()
        out = run(hw, x.float().cuda())
        out.sum().backward()
        assert out.is_cuda and torch.isfinite(out).all()
        program(hw, np.random.default_rng(1))
        hw.eval()
        assert torch.isfinite(run(hw, x.float().cuda())).all()


def test_layers_demo_trains_and_deploys_both_networks(tmp_path):
    # the demo's stage 12: a CNN and a GRU on the digits on the example device's noise model
    from examples.demo_layers import demo_layers

    doc = demo_layers(tmp_path, seed=0)
    assert set(doc["rows"]) == {"cnn", "gru"}
    assert "AnalogConv2d" in doc["rows"]["cnn"]["analog_layers"]
    assert "AnalogGRU" in doc["rows"]["gru"]["analog_layers"]
    for r in doc["rows"].values():
        assert r["software_acc"] > 0.93
        # deployed within 3 points of software on this device (measured: within 0.5)
        assert abs(np.mean(r["deployed_acc"]) - r["software_acc"]) < 0.03
        assert abs(np.mean(r["hw_aware_deployed_acc"]) - r["software_acc"]) < 0.03
    assert (tmp_path / "layers.json").exists()

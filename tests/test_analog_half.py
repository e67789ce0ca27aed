"""The bf16 tile products of training passes (pyaimc.analog.half) against float32: the layout
kernels exact, the products and their gradients within bf16 rounding, the read-out equal to the
torch computation on the same normals, and a layer (and its training) that agrees with the
float32 one far inside the noise it models."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _noise_helpers import example_noise_model, transfer_doc  # noqa: E402

from pyaimc.analog import AnalogConfig, AnalogLinear  # noqa: E402
from pyaimc.analog import half  # noqa: E402
from pyaimc.noise import Tile, kernels  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS = 2.0 ** -8  # bf16: 8 significant bits, round to nearest: relative error <= 2**-9


@pytest.fixture(scope="module")
def nm():
    return example_noise_model(n_levels=6, n_devices=200, n_repeats=2)


def test_weight_tiles_round_as_torch_does_and_untile_inverts_the_layout():
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(70, 150, generator=gen)
    w16 = half.weight_tiles(d, 0.7, 64)                                 # (3, 70, 64)
    ref = torch.nn.functional.pad(d * np.float32(0.7), (0, 42))
    ref = ref.view(70, 3, 64).permute(1, 0, 2).to(torch.bfloat16)
    assert w16.shape == (3, 70, 64) and w16.is_contiguous()
    assert torch.equal(w16, ref)
    g = torch.randn(3, 70, 64, generator=gen).to(torch.bfloat16)
    den = torch.linspace(0.5, 2.0, 70)
    out = half.untile(g, 1.5, den.numpy(), 150)         # row o times 1.5 / den[o]
    expect = g.float().permute(1, 0, 2).reshape(70, 192)[:, :150] * (1.5 / den)[:, None]
    # torch divides a number by a tensor as the reciprocal times the number: so does untile
    assert torch.equal(out, expect)
    out = half.untile(g, 1.5, None, 150)
    assert torch.equal(out, g.float().permute(1, 0, 2).reshape(70, 192)[:, :150] * 1.5)


def _grid_inputs(batch, n, step, gen):
    codes = torch.randint(-127, 128, (batch, n), generator=gen).float()
    return codes * step


def test_half_product_and_its_gradients_are_float32_within_bf16_rounding():
    gen = torch.Generator().manual_seed(1)
    step, gain, rows = 0.2 / 127, 1e-4, 64
    v = _grid_inputs(24, 150, step, gen).requires_grad_(True)
    d = torch.randn(70, 150, generator=gen).requires_grad_(True)
    i = half.half_currents(v, d, gain, step, rows)                      # (3, 70, 24) bf16
    assert i.dtype == torch.bfloat16 and i.shape == (3, 70, 24)
    vt = torch.nn.functional.pad(v.detach(), (0, 42)).view(24, 3, 64).transpose(0, 1)
    dt = torch.nn.functional.pad(d.detach(), (0, 42)).view(70, 3, 64).transpose(0, 1)
    ref = torch.bmm(dt, vt.transpose(1, 2)) * gain                      # float32
    terms = torch.bmm(dt.abs(), vt.abs().transpose(1, 2)) * gain
    err = (i.float() - ref).abs()
    assert torch.all(err <= EPS * (terms + ref.abs()))
    assert err.max() > 0          # it is bf16: not the float32 numbers
    g = torch.randn(3, 70, 24, generator=gen)
    i.backward(g.to(torch.bfloat16))
    gb = g.to(torch.bfloat16).float()
    # references on the bf16 output gradient: what remains is the operands' rounding
    ref_d = torch.einsum("tob,tbr->tor", gb, vt).permute(1, 0, 2).reshape(70, 192)[:, :150]
    ref_d = ref_d * gain
    bound_d = torch.einsum("tob,tbr->tor", gb.abs(), vt.abs()).permute(1, 0, 2).reshape(
        70, 192)[:, :150] * gain
    assert torch.all((d.grad - ref_d).abs() <= 2 * EPS * bound_d + 1e-30)
    ref_v = torch.einsum("tob,tor->btr", gb, dt).reshape(24, 192)[:, :150] * gain
    bound_v = torch.einsum("tob,tor->btr", gb.abs(), dt.abs()).reshape(24, 192)[:, :150] * gain
    assert torch.all((v.grad - ref_v).abs() <= 2 * EPS * bound_v + 1e-30)


def test_half_read_out_is_the_torch_computation_on_the_same_normals():
    gen = torch.Generator().manual_seed(2)
    tiles, outs, batch = 3, 40, 16
    full, step, gain = 1.0, 1.0 / 127, 2.5
    i = (torch.randn(tiles, outs, batch, generator=gen) * 0.5).to(torch.bfloat16)
    var = (torch.rand(tiles, outs, batch, generator=gen) * 1e-3).to(torch.bfloat16)
    offs = torch.rand(tiles, batch, generator=gen) * 1e-4
    i.requires_grad_(True)
    y = kernels.read_out_half(i, var, offs, gain, torch.Generator().manual_seed(5), None,
                              full, step)
    assert y.shape == (batch, outs)
    z = torch.empty(tiles * outs * batch).normal_(generator=torch.Generator().manual_seed(5))
    x = i.detach().float() + torch.sqrt(
        (var.float() * gain + offs[:, None, :]).clamp_min(0)) * z.view(tiles, outs, batch)
    inside = (x >= -full) & (x <= full)
    q = torch.round(x.clamp(-full, full) / step) * step
    expect = q.sum(0).t()
    close = torch.isclose(y, expect, rtol=1e-5, atol=1e-6)
    assert close.float().mean() > 0.99   # a rounding tie may fall a step apart
    assert ((y - expect).abs() <= step + 1e-6).all()
    g = torch.randn(batch, outs, generator=gen)
    y.backward(g)
    want = torch.where(inside, g.t().to(torch.bfloat16).float().expand(tiles, -1, -1),
                       torch.zeros(()))
    agree = (i.grad.float() == want).float().mean()
    assert agree > 0.99                  # the same rare ties decide the mask


def test_auto_takes_bf16_only_for_noisy_float32_training_passes_on_the_cpu():
    x = torch.zeros(4, 8)
    assert half.use_half("bfloat16", True, False, x)
    assert not half.use_half("bfloat16", False, True, x)               # evaluation
    assert not half.use_half("float32", True, True, x)
    assert not half.use_half("bfloat16", True, True, x.double())
    assert not half.use_half("auto", True, False, x)                   # an exact layer
    assert half.use_half("auto", True, True, x) == half.cpu_has_native_bf16()
    with pytest.raises(ValueError, match="products"):
        AnalogConfig(products="half")


def _layer_pair(nm, n_in, n_out, config):
    torch.manual_seed(0)
    layers = {}
    for p in ("float32", "bfloat16"):
        layer = AnalogLinear(n_in, n_out, noise_model=nm, seed=7,
                             config=dataclasses.replace(config, products=p))
        layer.train()
        layers[p] = layer
    layers["bfloat16"].load_state_dict(layers["float32"].state_dict())
    return layers


@pytest.mark.parametrize("scaling", ["abs_max", "fixed"])
@pytest.mark.parametrize("wires", [False, True])
def test_layer_in_bf16_agrees_with_float32_far_inside_its_programming_noise(nm, wires,
                                                                            scaling):
    """Same seed and weights, programming noise on (the same normals: the pool), read noise
    and ADC off: the bf16 step's outputs and weight gradients against the float32 step's,
    measured against how much one draw of programming noise moves them. (With the ADC on, a
    current that the rounding moves across an ADC threshold reads one step apart: per output
    the two then differ by about the read noise, which makes the same moves.)"""
    if wires:
        doc = transfer_doc(64, 64, r_wire=1.0, g_min=nm.window.g_min, g_max=nm.window.g_max,
                           v_max=nm.dac.v_max)
        nm = nm.replace(tile=Tile(64, 64, 1.0), transfer=doc).validate()
    cfg = dataclasses.replace(AnalogConfig.hardware(), read_noise=False, adc=False,
                              input_scaling=scaling, input_range=3.0)
    layers = _layer_pair(nm, 200, 96, cfg)
    x0 = torch.randn(32, 200, generator=torch.Generator().manual_seed(3))
    w_out = torch.linspace(-1, 1, 96)
    out = {}
    for p, layer in layers.items():
        runs = []
        for _ in range(2):                                  # two draws of programming noise
            layer.zero_grad()
            x = x0.clone().requires_grad_(True)
            y = layer(x)
            (y * w_out).sum().backward()
            runs.append((y.detach().clone(), layer.weight.grad.clone(), x.grad))
        out[p] = runs
    (yf, gf, xf), (yf2, _, _) = out["float32"]
    (yh, gh, xh), _ = out["bfloat16"]
    cos_x = torch.nn.functional.cosine_similarity(xh.flatten(), xf.flatten(), dim=0)
    assert cos_x > 0.999
    assert (xh - xf).norm() / xf.norm() < 0.02
    draw = (yf2 - yf).pow(2).mean().sqrt()                  # one draw's spread
    gap = (yh - yf).pow(2).mean().sqrt()
    assert gap < 0.1 * draw, (float(gap), float(draw))
    cos = torch.nn.functional.cosine_similarity(gh.flatten(), gf.flatten(), dim=0)
    assert cos > 0.999
    assert (gh - gf).norm() / gf.norm() < 0.02


def test_training_with_bf16_products_learns_as_float32(nm):
    """A noisy analog layer fitted to a linear teacher for 60 Adam steps: the bf16 products
    end at the float32 products' loss."""
    gen = torch.Generator().manual_seed(4)
    teacher = torch.randn(16, 96, generator=gen) / math.sqrt(96)
    x = torch.randn(256, 96, generator=gen)
    target = x @ teacher.t()
    losses = {}
    for p, layer in _layer_pair(nm, 96, 16, AnalogConfig.hardware()).items():
        opt = torch.optim.Adam(layer.parameters(), lr=0.02)
        for _ in range(60):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(layer(x), target)
            loss.backward()
            opt.step()
        layer.eval()
        with torch.no_grad():
            losses[p] = float(torch.nn.functional.mse_loss(layer(x), target))
    start = float(target.pow(2).mean())
    assert losses["float32"] < 0.2 * start
    assert abs(losses["bfloat16"] - losses["float32"]) < 0.25 * losses["float32"], losses


@pytest.mark.parametrize("wires", [False, True])
def test_programming_drawn_into_the_tiles_equals_the_two_step_path(nm, monkeypatch, wires):
    """The fused step (one autograd node: programming error written straight into the bf16
    tiles or through the IR-drop kernel, gradient divided by the scales in the layout pass)
    against drawing float32 conductances first, through the layer's separate autograd steps:
    the same normals, the same outputs, the same gradients."""
    if wires:
        doc = transfer_doc(64, 64, r_wire=1.0, g_min=nm.window.g_min, g_max=nm.window.g_max,
                           v_max=nm.dac.v_max)
        nm = nm.replace(tile=Tile(64, 64, 1.0), transfer=doc).validate()
    n_in, n_out = (192, 128) if wires else (150, 70)        # the IR-drop step: whole tiles
    x = torch.randn(16, n_in, generator=torch.Generator().manual_seed(6))
    runs = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(AnalogLinear, "_programmed_half_forward", lambda self, x: None)
        torch.manual_seed(0)
        layer = AnalogLinear(n_in, n_out, noise_model=nm, seed=9,
                             config=AnalogConfig(products="bfloat16"))
        layer.train()
        if fused:
            assert layer._programmed_half_forward(x) is not None
            layer.reset_generator()
        y = layer(x)
        (y * torch.linspace(-1, 1, n_out)).sum().backward()
        runs.append((y.detach(), layer.weight.grad, layer.bias.grad))
    (y1, g1, b1), (y2, g2, b2) = runs
    assert torch.equal(y1, y2)
    torch.testing.assert_close(g1, g2, rtol=1e-6, atol=1e-7 * float(g2.abs().max()))
    torch.testing.assert_close(b1, b2, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("wires", [False, True])
def test_steps_whose_backward_is_pending_keep_their_buffers(nm, wires):
    """Two training reads in one graph (their backward pending together) against each read's
    backward before the next: the fused step lends a step's buffers to the next only after its
    backward has run, so both give the same outputs and gradients."""
    if wires:
        doc = transfer_doc(64, 64, r_wire=1.0, g_min=nm.window.g_min, g_max=nm.window.g_max,
                           v_max=nm.dac.v_max)
        nm = nm.replace(tile=Tile(64, 64, 1.0), transfer=doc).validate()
    gen = torch.Generator().manual_seed(8)
    x1, x2 = torch.randn(16, 128, generator=gen), torch.randn(16, 128, generator=gen)
    u, v = torch.randn(16, 64, generator=gen), torch.randn(16, 64, generator=gen)

    def layer():
        torch.manual_seed(0)
        m = AnalogLinear(128, 64, noise_model=nm, seed=5,
                         config=AnalogConfig(products="bfloat16"))
        return m.train()

    a = layer()
    ya1, ya2 = a(x1), a(x2)
    ((ya1 * u).sum() + (ya2 * v).sum()).backward()
    b = layer()
    yb1 = b(x1)
    (yb1 * u).sum().backward()
    yb2 = b(x2)
    (yb2 * v).sum().backward()
    assert torch.equal(ya1, yb1) and torch.equal(ya2, yb2)
    torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=1e-6,
                               atol=1e-7 * float(b.weight.grad.abs().max()))


def test_a_second_backward_after_a_later_step_raises(nm):
    torch.manual_seed(0)
    layer = AnalogLinear(128, 64, noise_model=nm, seed=5,
                         config=AnalogConfig(products="bfloat16")).train()
    x = torch.randn(8, 128)
    y = layer(x).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)          # no later step yet: its buffers are its own
    layer(x)                               # a later step borrows them
    with pytest.raises(RuntimeError, match="second backward"):
        y.backward()


def test_float64_weights_with_float32_inputs_leave_the_fused_step(nm):
    """The fused step's kernels read float32 weights through bit views: a float64 layer fed
    float32 inputs takes the separate steps (it wrote past a scales buffer once)."""
    layer = AnalogLinear(64, 8, noise_model=nm, seed=1, dtype=torch.float64,
                         config=AnalogConfig(products="bfloat16")).train()
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    assert layer._programmed_half_forward(x) is None
    y = layer(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(layer.weight.grad).all()
    with pytest.raises(ValueError, match="out must be"):
        kernels.row_abs_max(np.ones((8, 5)), np.empty(8, np.float32))
    with pytest.raises(ValueError, match="out must be"):
        kernels.row_abs_max(np.ones((8, 5), np.float32), np.empty(7, np.float32))

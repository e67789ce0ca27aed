"""The training step's fast paths against the torch reference: the normal pool (marginals,
independence within a step, change across steps, refresh), the compiled programming-noise and
read-out kernels (same values as the torch path on the same normals, same moments, exact
means, gradients straight through unchanged)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _noise_helpers import example_noise_model, transfer_doc  # noqa: E402

from pyaimc.analog import AnalogConfig, AnalogLinear  # noqa: E402
from pyaimc.circuit import wire_kernels  # noqa: E402
from pyaimc.noise import Tile, kernels  # noqa: E402
from pyaimc.noise.torch_ops import NormalPool, PolynomialSampler  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def nm():
    return example_noise_model(n_levels=6, n_devices=200, n_repeats=2)


@pytest.fixture
def torch_only(monkeypatch):
    """Switch the compiled kernels off for the duration of a test."""
    def off(flag: bool):
        monkeypatch.setattr(kernels, "ENABLED", not flag)
        monkeypatch.setattr(wire_kernels, "ENABLED", not flag)
    return off


def sampler():
    return PolynomialSampler("t", (2.9e-5, 1.8e-4, -2.3e-5, 4.5e-5, -2.9e-5),
                             (7.2e-7, -6.1e-7, 2.2e-5, -3.8e-5, 2.1e-5), 2.8e-5, 1.7e-4)


def test_pool_normals_are_standard_distinct_within_a_step_and_change_across_steps():
    gen = torch.Generator().manual_seed(0)
    like = torch.empty(0)
    pool = NormalPool()
    n = 1 << 17
    pool.new_step(2 * n, like, gen)
    a = pool.normals((256, n // 256), gen, like).ravel()
    b = pool.normals((128, 2 * n // 256), gen, like).ravel()
    step = torch.cat([a, b]).double().numpy()
    # within a step: N(0, 1), and distinct pool entries (read a pool of positions the same way)
    values, pool.buf = pool.buf, torch.arange(pool.size, dtype=torch.float32)
    pool.used, pool.takes = 0, 0
    where = torch.cat([pool.normals((256, n // 256), gen, like).ravel(),
                       pool.normals((128, 2 * n // 256), gen, like).ravel()]).abs()
    assert torch.unique(where).numel() == where.numel() == 2 * n
    assert torch.equal(values[where.long()] * pool.sign, torch.cat([a, b]))
    pool.buf = values
    assert abs(step.mean()) < 5 / np.sqrt(step.size)
    assert abs(step.std() - 1) < 5 / np.sqrt(2 * step.size)
    assert abs(np.mean(np.abs(step) > 2) - 0.0455) < 0.003
    # the next step: other values at each position (uncorrelated), still N(0, 1)
    pool.new_step(2 * n, like, gen)
    c = pool.normals((256, n // 256), gen, like).ravel().double().numpy()
    assert abs(np.corrcoef(a.double().numpy(), c)[0, 1]) < 5 / np.sqrt(n)
    assert abs(c.std() - 1) < 5 / np.sqrt(2 * n)
    assert np.mean(a.numpy() == c) < 1e-3


def test_pool_is_redrawn_in_full_every_one_over_refresh_steps():
    gen = torch.Generator().manual_seed(1)
    like = torch.empty(0)
    pool = NormalPool(refresh=1 / 8)
    pool.new_step(1 << 14, like, gen)
    first = pool.buf.clone()
    for k in range(8):
        pool.new_step(1 << 14, like, gen)
        kept = (pool.buf == first).float().mean().item()
        assert kept == pytest.approx(1 - (k + 1) / 8, abs=1e-9)
    with pytest.raises(ValueError, match="refresh"):
        NormalPool(refresh=0)


def test_pair_difference_kernel_matches_torch_on_the_same_normals():
    s = sampler()
    w = torch.randn(96, 200, generator=torch.Generator().manual_seed(2))
    scale = w.abs().amax(dim=1)
    like = torch.empty(0)
    out = []
    for use_kernel in (True, False):
        gen = torch.Generator().manual_seed(3)
        pool = NormalPool()
        pool.new_step(w.numel(), like, gen)
        a = torch.empty_like(w)
        if use_kernel:
            d = kernels.pair_difference(w, scale, s, gen, pool, a)
        else:
            wn = w / scale[:, None]
            d = s.sample_difference(wn, gen, pool=pool)
            torch.abs(wn, out=a)
        out.append((d, a))
    (dk, ak), (dt, at) = out
    assert torch.allclose(dk, dt, rtol=1e-5, atol=1e-6)
    assert torch.allclose(ak, at, rtol=1e-6, atol=0)
    # fresh normals (no pool): the same draws from the same generator
    dk = kernels.pair_difference(w, scale, s, torch.Generator().manual_seed(4))
    dt = s.sample_difference(w / scale[:, None], torch.Generator().manual_seed(4))
    assert torch.allclose(dk, dt, rtol=1e-5, atol=1e-6)


def test_pair_cells_kernel_matches_torch_on_the_same_normals():
    s = sampler()
    w = torch.randn(64, 130, generator=torch.Generator().manual_seed(5))
    scale = w.abs().amax(dim=1)
    like = torch.empty(0)
    res = []
    a = torch.full_like(w, -1.0)
    for use_kernel in (True, False):
        gen = torch.Generator().manual_seed(6)
        pool = NormalPool()
        pool.new_step(2 * w.numel(), like, gen)
        res.append(kernels.pair_cells(w, scale, s, gen, pool, a) if use_kernel
                   else s.sample_cells(w / scale[:, None], gen, pool))
    for k, t in zip(*res):
        assert torch.allclose(k, t, rtol=1e-5, atol=1e-12)
    # |w| / scale for the read noise comes out of the same pass
    assert torch.allclose(a, (w / scale[:, None]).abs(), rtol=1e-6, atol=0)


def test_pair_cells_gradient_kernel_matches_torch():
    w = torch.randn(40, 70, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    w[3, :5] = 0.0  # neither cell follows a zero weight
    scale = w.abs().amax(dim=1)
    gp, gn = torch.randn(2, 40, 70, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(8))
    got = kernels.pair_cells_grad(w, scale, 9e-5, gp, gn)
    want = (torch.where(w > 0, gp, 0.0) - torch.where(w < 0, gn, 0.0)) * 9e-5 / scale[:, None]
    assert torch.allclose(got, want, rtol=1e-12, atol=0)
    assert torch.equal(got[3, :5], torch.zeros(5, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_abs_max_equals_the_torch_scales(dtype):
    from pyaimc.analog.core import TileCore

    rng = np.random.default_rng(3)
    w = rng.normal(size=(37, 101)).astype(dtype)
    w[3] = 0.0                                   # all zero: the floor
    w[5, 17] = -50.0                             # the largest magnitude negative
    w[6, 100] = np.inf
    out = kernels.row_abs_max(w, np.empty(37, dtype))
    assert np.array_equal(out, TileCore.scales(torch.from_numpy(w)).numpy())
    assert out[3] == 1e-12 and out[5] == 50.0 and np.isinf(out[6])
    w[8, 2] = np.nan                             # NaN propagates, as torch's maximum does
    assert np.isnan(kernels.row_abs_max(w, np.empty(37, dtype))[8])


def test_read_out_gradient_is_the_output_gradient_inside_the_adc_range():
    i = torch.linspace(-3, 3, 2 * 5 * 7, dtype=torch.float64).reshape(2, 5, 7).requires_grad_()
    y = kernels.read_out(i, None, None, 1.0, torch.Generator(), None, 2.0, 0.5)
    u = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    (g,) = torch.autograd.grad((y * u).sum(), i)
    want = torch.where(i.detach().abs() <= 2.0, u.expand(2, 5, 7), 0.0)
    assert torch.equal(g, want)
    assert 0 < int((g == 0).sum()) < g.numel()  # both sides of the range occur


def test_pair_difference_kernel_moments():
    """Mean exactly the polynomial's (noise-free sampler), std the pair's summed one."""
    s = sampler()
    w = torch.linspace(-1, 1, 41).repeat(2000, 1).contiguous()   # 2000 draws per weight
    scale = torch.ones(w.shape[0])
    quiet = PolynomialSampler("t", s.mean_coeffs, (0.0,), s.g_min, s.g_span)
    d0 = kernels.pair_difference(w, scale, quiet, None)
    a = w[0].abs().double()
    mean_c = torch.tensor(s.mean_coeffs, dtype=torch.float64)
    ref_mean = (sum(c * a ** k for k, c in enumerate(mean_c)) - mean_c[0]) * torch.sign(w[0])
    assert torch.allclose(d0[0].double(), ref_mean / s.g_span, rtol=1e-5, atol=1e-7)
    assert torch.equal(d0[0], d0[-1])
    gen = torch.Generator().manual_seed(7)
    pool = NormalPool()
    pool.new_step(w.numel(), w, gen)
    d = kernels.pair_difference(w, scale, s, gen, pool).double()
    std_c = torch.tensor(s.std_coeffs, dtype=torch.float64)
    sd = sum(c * a ** k for k, c in enumerate(std_c)).clamp_min(0)
    ref_std = torch.sqrt(sd ** 2 + s.std0 ** 2) / s.g_span
    n = w.shape[0]
    assert torch.all((d.mean(0) - ref_mean / s.g_span).abs() < 5 * ref_std / np.sqrt(n))
    assert torch.all((d.std(0) / ref_std - 1).abs() < 5 / np.sqrt(2 * n))


def _steps(nm, config, use_kernels, torch_only, n_in=150, n_out=70, steps=3):
    torch_only(not use_kernels)
    torch.manual_seed(0)
    layer = AnalogLinear(n_in, n_out, noise_model=nm, config=config, seed=11)
    layer.train()
    x = torch.randn(32, n_in, generator=torch.Generator().manual_seed(12))
    out = []
    for _ in range(steps):
        layer.zero_grad()
        y = layer(x)
        (y * torch.linspace(-1, 1, n_out)).sum().backward()
        out.append((y.detach().clone(), layer.weight.grad.clone(), layer.bias.grad.clone()))
    return out


@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("wires", [False, True])
def test_layer_with_kernels_equals_the_torch_path(nm, torch_only, pool, wires):
    """Same seed, same normals: outputs equal but for rare ADC ties (a step apart), gradients
    (straight through programming, read noise and the ADC) equal."""
    if wires:
        doc = transfer_doc(64, 64, r_wire=1.0, g_min=nm.window.g_min, g_max=nm.window.g_max,
                           v_max=nm.dac.v_max)
        nm = nm.replace(tile=Tile(64, 64, 1.0), transfer=doc).validate()
    cfg = dataclasses.replace(AnalogConfig.hardware(), normal_pool=pool,
                              products="float32")
    fast = _steps(nm, cfg, True, torch_only)
    ref = _steps(nm, cfg, False, torch_only)
    adc_step = nm.adc.i_max / (2 ** (nm.adc.bits - 1) - 1)
    for (yf, gf, bf), (yr, gr, br) in zip(fast, ref):
        # an output unit of current: one ADC step of one tile
        unit = (yr - yf).abs().max().item()
        assert torch.mean((~torch.isclose(yf, yr, rtol=1e-5, atol=1e-6)).float()) < 2e-3
        assert unit < 0.2 * yr.abs().max().item() + 1e-6
        assert torch.allclose(gf, gr, rtol=1e-4, atol=1e-6 * gr.abs().max().item())
        assert torch.equal(bf, br)
    assert adc_step > 0
    # a step draws new noise
    assert not torch.equal(fast[0][0], fast[1][0])


def test_kernels_only_take_cpu_float_tensors():
    assert kernels.applies(torch.zeros(2), torch.zeros(3))
    assert kernels.applies(torch.zeros(2, dtype=torch.float64))
    assert not kernels.applies(torch.zeros(2, dtype=torch.float16))
    assert not kernels.applies(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
    assert not kernels.applies(torch.zeros(2, device="meta"))


def test_evaluation_draws_fresh_normals(nm):
    layer = AnalogLinear(40, 20, noise_model=nm, seed=3)
    layer.eval()
    x = torch.randn(8, 40)
    layer(x)
    assert layer._pool.buf is None
    layer.train()
    layer(x)
    assert layer._pool.buf is not None

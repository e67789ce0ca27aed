"""S4D: convolution mode == recurrent mode, real 2x2-block mapping == complex recurrence."""

import cmath
import math

import pytest
import torch

from pyaimc.s4d.classifier import build_model
from pyaimc.experiments.config import from_dict
from pyaimc.s4d.s4d import S4D, init_A
from pyaimc.s4d.step import DigitalBackend, RecurrentClassifier, export_tiles, ssm_tiles

torch.set_num_threads(1)


def _ssm(init, discretization, seed=0, **kw):
    torch.manual_seed(seed)
    # dt up to 0.5 with the default A: slow and fast modes, rotating by up to several radians.
    return S4D(6, 16, init=init, discretization=discretization, dt_min=0.01, dt_max=0.5,
               **kw).double()


def _run_steps(ssm, u):
    x = ssm.initial_state(u.shape[0], u.dtype)
    ys = []
    for k in range(u.shape[-1]):
        y, x = ssm.step(u[..., k], x)
        ys.append(y)
    return torch.stack(ys, dim=-1)


@pytest.mark.parametrize("init", ["lin", "inv"])
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_convolution_equals_recurrence(init, discretization):
    ssm = _ssm(init, discretization)
    u = torch.randn(3, 6, 57, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y_conv = ssm(u)
    y_step = _run_steps(ssm, u)
    assert y_conv.abs().max() > 1.0  # a non-trivial output
    torch.testing.assert_close(y_step, y_conv, rtol=0, atol=1e-5)
    # in float64 the two differ by rounding only
    assert (y_step - y_conv).abs().max() < 1e-10


def test_float32_modes_agree_to_1e5():
    ssm = _ssm("lin", "zoh").float()
    u = torch.randn(2, 6, 40, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(_run_steps(ssm, u), ssm(u), rtol=0, atol=1e-5)


def test_kernel_is_impulse_response():
    ssm = _ssm("inv", "bilinear")
    L = 20
    impulse = torch.zeros(1, 6, L, dtype=torch.float64)
    impulse[..., 0] = 1.0
    expected = ssm.kernel(L).unsqueeze(0)
    expected[..., 0] += ssm.D.detach()  # the skip term D u acts at lag 0 only
    torch.testing.assert_close(_run_steps(ssm, impulse), expected, rtol=0, atol=1e-12)


def test_initializations():
    lin = init_A(8, "lin")
    torch.testing.assert_close(lin.imag, math.pi * torch.arange(4, dtype=torch.float64))
    inv = init_A(8, "inv")
    n = torch.arange(4, dtype=torch.float64)
    torch.testing.assert_close(inv.imag, 8 / math.pi * (8 / (2 * n + 1) - 1))
    assert torch.all(lin.real == -0.5) and torch.all(inv.real == -0.5)


def test_zoh_discretization_matches_matrix_exponential():
    ssm = _ssm("lin", "zoh")
    Abar, Bbar, _ = (t.detach() for t in ssm.discrete())
    dt = torch.exp(ssm.log_dt).detach()[0].item()
    a = complex(-math.exp(ssm.log_A_real[0, 3].item()), ssm.A_imag[0, 3].item())
    b = complex(*ssm.B[0, 3].tolist())
    expected_abar = cmath.exp(a * dt)
    assert abs(complex(Abar[0, 3]) - expected_abar) < 1e-12
    assert abs(complex(Bbar[0, 3]) - (expected_abar - 1) / a * b) < 1e-12


def test_real_block_mapping_reproduces_complex_recurrence():
    ssm = _ssm("lin", "bilinear")
    tiles = ssm_tiles(ssm)
    H, N = 6, 16
    assert tiles["A"].shape == (H * N // 2, 2, 2)
    assert tiles["B"].shape == (H, N, 1) and tiles["C"].shape == (H, 1, N)
    # each 2x2 block is a scaled rotation [[p, -q], [q, p]]
    A = tiles["A"]
    assert torch.equal(A[:, 0, 0], A[:, 1, 1]) and torch.equal(A[:, 0, 1], -A[:, 1, 0])
    backend = DigitalBackend()
    for name, w in tiles.items():
        backend.program(name, w)
    g = torch.Generator().manual_seed(3)
    u = torch.randn(4, H, 30, dtype=torch.float64, generator=g)
    x_c = ssm.initial_state(4, torch.float64)
    x_r = torch.zeros(4, H, N, dtype=torch.float64)
    for k in range(u.shape[-1]):
        y_c, x_c = ssm.step(u[..., k], x_c)
        x_r = (backend.matvec("A", x_r.reshape(4, -1, 2)).reshape(4, H, N)
               + backend.matvec("B", u[..., k].unsqueeze(-1)))
        y_r = backend.matvec("C", x_r).squeeze(-1) + ssm.D * u[..., k]
        torch.testing.assert_close(torch.view_as_real(x_c).reshape(4, H, N), x_r,
                                   rtol=0, atol=1e-12)
        torch.testing.assert_close(y_r, y_c, rtol=0, atol=1e-12)


def _model(quant=None, **model):
    cfg = from_dict({"model": {"d_model": 8, "d_state": 8, "n_layers": 2, **model},
                     "quant": quant or {}})
    net = build_model(cfg, d_input=3, n_classes=5).double()
    x = torch.randn(6, 25, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    net.train()
    net(x)  # sets the activation ranges and batch-norm statistics
    return net.eval(), x


@pytest.mark.parametrize("quant,model", [
    ({}, {}),
    ({}, {"norm": "batch", "prenorm": True, "init": "inv", "discretization": "bilinear"}),
    ({"a": 8, "b": 4, "c": "ternary", "dense": "ternary", "act": 8}, {}),
    ({"a": 8, "b": 8, "c": 8, "dense": 8, "act": 6, "state": 6}, {}),
])
def test_classifier_step_mode_equals_conv_mode(quant, model):
    net, x = _model(quant, **model)
    logits = net(x)
    stepped = RecurrentClassifier(net)(x)
    torch.testing.assert_close(stepped, logits, rtol=0, atol=1e-5)


class _CountingBackend(DigitalBackend):
    def __init__(self):
        super().__init__()
        self.calls = {}

    def matvec(self, name, x):
        self.calls[name] = self.calls.get(name, 0) + 1
        return super().matvec(name, x)


def test_every_product_goes_through_the_backend():
    net, x = _model()
    backend = _CountingBackend()
    RecurrentClassifier(net, backend)(x)
    L = x.shape[1]
    per_step = ["encoder"] + [f"blocks.{i}.{p}" for i in range(2)
                              for p in ("ssm.A", "ssm.B", "ssm.C", "glu")]
    assert backend.calls == {**{name: L for name in per_step}, "decoder": 1}
    tiles = export_tiles(net)
    assert set(tiles) == set(backend.weights)
    assert tiles["blocks.1.glu"].shape == (1, 16, 8) and tiles["decoder"].shape == (1, 5, 8)


def test_a_perturbing_backend_changes_the_output():
    # The backend really computes the products: scaling one tile changes the logits.
    net, x = _model()

    class Scaled(DigitalBackend):
        def program(self, name, weight):
            super().program(name, weight * (1.1 if name == "blocks.0.ssm.C" else 1.0))

    diff = (RecurrentClassifier(net, Scaled())(x) - net(x)).abs().max()
    assert diff > 1e-3

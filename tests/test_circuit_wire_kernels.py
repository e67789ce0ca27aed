"""The compiled IR-drop kernel (prefix sums, pyaimc.circuit.wire_kernels) against the torch
products of the wire sums (``Mmin``, ``Nmin``): values and gradients in float64, the pair
difference, float32, and the torch path it falls back to."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pyaimc.circuit import transfer_torch, wire_kernels  # noqa: E402
from pyaimc.circuit.transfer_torch import (TorchTransfer, effective_conductance_wl,  # noqa: E402
                                           effective_difference_wl, min_matrices)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

G_MIN, G_MAX = 1e-6, 1e-4


def transfer(rows, cols, r_wire=1.0, k_row=1.0, k_col=1.0):
    return TorchTransfer(rows, cols, r_wire, k_row, k_col, (0.0, 0.0), (0.0, 0.0), None,
                         G_MIN, G_MAX, 0.3)


def torch_path(monkeypatch, flag: bool):
    monkeypatch.setattr(wire_kernels, "ENABLED", not flag)


CASES = [  # rows, cols, out, in, r, k_row, k_col: several tiles each way, rows != cols
    (8, 4, 12, 24, 1.0, 1.0, 1.0),
    (16, 8, 24, 80, 30.0, 0.7, 1.3),   # 5 row tiles: the 4-wide scan and the single one
    (4, 16, 32, 4, 5.0, 1.2, 0.0),
    (64, 64, 128, 256, 1.0, 1.0, 1.0),
]


def grads(fn, inputs, u):
    inputs = [x.clone().requires_grad_() for x in inputs]
    y = fn(*inputs)
    return y.detach(), torch.autograd.grad((y * u).sum(), inputs)


@pytest.mark.parametrize("case", CASES)
def test_ir_drop_kernel_matches_the_wire_sum_products(monkeypatch, case):
    rows, cols, n_out, n_in, r, kr, kc = case
    # stacks of small matrices take the torch products in the layers: here the kernel too
    monkeypatch.setattr(transfer_torch, "KERNEL_MIN_CELLS", 0)
    p = transfer(rows, cols, r, kr, kc)
    mmin, nmin = min_matrices(rows, cols, torch.float64)
    gen = torch.Generator().manual_seed(0)
    g = G_MIN + (G_MAX - G_MIN) * torch.rand(2, n_out, n_in, generator=gen, dtype=torch.float64)
    u = torch.randn(2, n_out, n_in, generator=gen, dtype=torch.float64)
    res = []
    for kernel in (True, False):
        torch_path(monkeypatch, not kernel)
        res.append(grads(lambda g: effective_conductance_wl(g, p, mmin, nmin), [g], u))
    (wk, (gk,)), (wt, (gt,)) = res
    # the IR drop must matter for the comparison to count
    assert (wt / g).min() < 0.999
    assert torch.allclose(wk, wt, rtol=1e-6, atol=0)
    assert (gk - gt).abs().max() <= 1e-6 * gt.abs().max()
    # the pair difference (one pass per polarity) and its gradients
    res = []
    for kernel in (True, False):
        torch_path(monkeypatch, not kernel)
        res.append(grads(lambda a, b: effective_difference_wl(a, b, p, mmin, nmin),
                         [g[0], g[1]], u[0]))
    (dk, (gpk, gnk)), (dt, (gpt, gnt)) = res
    assert (dk - dt).abs().max() <= 1e-6 * dt.abs().max()
    for a, b in ((gpk, gpt), (gnk, gnt)):
        assert (a - b).abs().max() <= 1e-6 * b.abs().max()


def test_ir_drop_kernel_gradient_is_the_derivative():
    g = (G_MIN + (G_MAX - G_MIN) * torch.rand(2, 8, 12, dtype=torch.float64,
                                              generator=torch.Generator().manual_seed(1)))
    g.requires_grad_()
    # a large r so that the non-linear part of W1(G) shows in the finite differences
    assert torch.autograd.gradcheck(lambda x: wire_kernels.ir_drop(x, 2e3, 0.8, 1.1, 4, 6),
                                    (g,))
    assert torch.autograd.gradcheck(
        lambda a, b: wire_kernels.ir_drop_difference(a, b, 2e3, 0.8, 1.1, 4, 6),
        (g[0].detach().clone().requires_grad_(), g[1].detach().clone().requires_grad_()))


def test_ir_drop_kernel_in_float32_and_where_it_applies(monkeypatch):
    p = transfer(64, 64, 1.0)
    mmin, nmin = min_matrices(64, 64, torch.float32)
    g = G_MIN + (G_MAX - G_MIN) * torch.rand(2, 128, 192, generator=torch.Generator()
                                             .manual_seed(2))
    wk = effective_conductance_wl(g, p, mmin, nmin)
    assert wk.dtype == torch.float32
    torch_path(monkeypatch, True)
    wt = effective_conductance_wl(g, p, mmin, nmin)
    assert (wk - wt).abs().max() <= 1e-6 * wt.abs().max()
    monkeypatch.undo()
    assert wire_kernels.applies(g)
    assert not wire_kernels.applies(g.half())
    assert not wire_kernels.applies(g, g.double())


def test_ir_drop_kernel_takes_the_used_rows_of_a_larger_tile(monkeypatch):
    """The deployment tiles pass the wire-sum matrices of the physical tile restricted to the
    rows and columns in use (Nmin[i, l] = min(R-1-i, R-1-l) with R the physical rows)."""
    rows, cols = 24, 64
    mm_full, nm_full = min_matrices(rows, cols, torch.float64)
    r_used, c_used = 9, 20
    p = transfer(r_used, c_used, 3.0, 1.1, 0.9)
    mmin, nmin = mm_full[:c_used, :c_used], nm_full[:r_used, :r_used]
    assert wire_kernels.lines_of(mmin, nmin) == tuple(float(v) for v in range(23, 14, -1))
    g = G_MIN + (G_MAX - G_MIN) * torch.rand(2, 40, 27, dtype=torch.float64,
                                             generator=torch.Generator().manual_seed(3))
    u = torch.randn(2, 40, 27, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    res = []
    for kernel in (True, False):
        torch_path(monkeypatch, not kernel)
        res.append(grads(lambda g: effective_conductance_wl(g, p, mmin, nmin), [g], u))
    (wk, (gk,)), (wt, (gt,)) = res
    assert torch.allclose(wk, wt, rtol=1e-6, atol=0)
    assert (gk - gt).abs().max() <= 1e-6 * gt.abs().max()
    # matrices of another form are not the kernel's: the torch products take them
    assert wire_kernels.lines_of(mmin, nmin.flip(0)) is None
    assert wire_kernels.lines_of(mmin + 1, nmin) is None


def test_stacks_of_small_matrices_take_the_batched_products(monkeypatch):
    """The S4D's thousands of 2 x 2 blocks: one kernel call per block from Python cost ten
    times the batched products; a single matrix, or a stack of large ones, takes the kernel."""
    p = transfer(2, 2, 1.0)
    mmin, nmin = min_matrices(2, 2, torch.float32)
    small = G_MIN + (G_MAX - G_MIN) * torch.rand(500, 2, 2, generator=torch.Generator()
                                                 .manual_seed(3))
    assert transfer_torch._kernel_lines(p, mmin, nmin, small) is None
    assert transfer_torch._kernel_lines(p, mmin, nmin, small[0]) is not None
    p64 = transfer(64, 64, 1.0)
    m64, n64 = min_matrices(64, 64, torch.float32)
    assert transfer_torch._kernel_lines(p64, m64, n64, torch.rand(3, 64, 64)) is not None
    calls = []
    monkeypatch.setattr(wire_kernels, "ir_drop", lambda *a, **k: calls.append(1))
    w = effective_conductance_wl(small, p, mmin, nmin)
    assert calls == [] and w.shape == small.shape

"""Quantizers: levels, scales, straight-through gradients, clipping."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyaimc.s4d.quant import (ActQuantizer, WeightQuantizer, check_precision,
                             quantize_weight_nbit, quantize_weight_ternary)

torch.set_num_threads(1)


def _weights(seed, shape=(5, 40)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_ternary_has_exactly_three_levels_per_channel():
    w = _weights(0)
    q = quantize_weight_ternary(w)
    for row_w, row_q in zip(w, q):
        levels = torch.unique(row_q)
        assert len(levels) == 3
        a = levels[-1]
        torch.testing.assert_close(levels, torch.stack([-a, torch.zeros(()), a]))
        # TWN rule: threshold 0.7 mean|w|, a = mean |w| above it, signs kept
        delta = 0.7 * row_w.abs().mean()
        support = row_w.abs() > delta
        torch.testing.assert_close(a, row_w.abs()[support].mean())
        assert torch.equal(row_q != 0, support)
        assert torch.equal(torch.sign(row_q[support]), torch.sign(row_w[support]))


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_nbit_levels_and_error(bits, seed):
    w = _weights(seed, (3, 300))
    q = quantize_weight_nbit(w, bits)
    qmax = 2 ** (bits - 1) - 1
    for row_w, row_q in zip(w, q):
        assert len(torch.unique(row_q)) <= 2 ** bits
        scale = row_w.abs().max() / qmax
        k = row_q / scale
        torch.testing.assert_close(k, torch.round(k), rtol=0, atol=1e-4)  # on the grid
        assert k.abs().max() <= qmax + 1e-4
        assert (row_q - row_w).abs().max() <= scale / 2 + 1e-6  # round to nearest
        # the largest weight is represented exactly (max scaling: nothing clipped)
        assert torch.isclose(row_q.abs().max(), row_w.abs().max())


def test_two_bit_has_three_levels_and_eight_bit_many():
    w = _weights(1, (1, 1000))
    assert len(torch.unique(quantize_weight_nbit(w, 2))) == 3
    assert len(torch.unique(quantize_weight_nbit(w, 8))) > 100


@pytest.mark.parametrize("precision", [2, 4, 8, "ternary"])
def test_weight_gradient_is_straight_through(precision):
    w = _weights(2).requires_grad_(True)
    g = _weights(3)
    (WeightQuantizer(precision)(w) * g).sum().backward()
    torch.testing.assert_close(w.grad, g, rtol=0, atol=0)


def test_per_channel_scales_follow_channel_dim():
    w = torch.tensor([[1.0, 100.0], [0.75, 30.0]])
    # one scale per column: 0.75 -> 1 (scale 1), 30 -> 0 (scale 100); per row 1.0 would be 0
    q = WeightQuantizer(2, channel_dim=1)(w)
    assert torch.equal(q, torch.tensor([[1.0, 100.0], [1.0, 0.0]]))


def test_activation_quantizer_levels_range_and_clipped_gradient():
    quant = ActQuantizer(bits=4, momentum=0.5)
    quant.train()
    quant(torch.tensor([-2.0, 1.0]))
    assert quant.range.item() == 2.0  # the first batch sets the range
    quant(torch.tensor([4.0]))
    assert quant.range.item() == pytest.approx(3.0)  # 0.5 * 2 + 0.5 * 4
    quant.eval()
    x = torch.linspace(-5, 5, 101, requires_grad=True)
    y = quant(x)
    assert quant.range.item() == pytest.approx(3.0)  # frozen in eval mode
    assert len(torch.unique(y)) == 15  # 2**4 - 1 levels over [-3, 3]
    assert y.abs().max().item() == pytest.approx(3.0)
    y.sum().backward()
    inside = x.detach().abs() <= 3.0
    assert torch.all(x.grad[inside] == 1.0) and torch.all(x.grad[~inside] == 0.0)


def test_no_precision_is_identity():
    w = _weights(4)
    assert WeightQuantizer(None)(w) is w
    assert ActQuantizer(None)(w) is w


@pytest.mark.parametrize("bad", [1, 17, 0, 3.5, "binary", True])
def test_bad_precision_is_rejected_with_its_name(bad):
    with pytest.raises(ValueError, match="quant.b"):
        check_precision(bad, "quant.b")
    with pytest.raises(ValueError, match="state"):
        check_precision("ternary", "state", allow_ternary=False)

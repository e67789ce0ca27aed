"""The torch transfer model against a direct numpy reading of docs/transfer_format.md, and the
analog layer's tiles against the fast crossbar solver."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _noise_helpers import reference_currents, transfer_doc as doc  # noqa: E402

from pyaimc.circuit.transfer_torch import TorchTransfer, tile_currents  # noqa: E402
from pyaimc.circuit.transfer import TransferError, TransferModel  # noqa: E402


def validate_transfer(doc):
    TransferModel.from_dict(doc)
    return doc


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ir_drop_sums_match_explicit_wire_segments():
    """Mmin/Nmin count the wire segments a cell's current shares with every other cell's."""
    rng = np.random.default_rng(0)
    n, m = 5, 7
    g = rng.uniform(1e-6, 1e-4, (n, m))
    d = doc(n, m, r_wire=2.0)
    # loop form: row wire from the driver to (i, j) carries every cell (i, l) with l >= s for
    # each segment s <= j; the column wire from (i, j) down to the read-out likewise
    row = np.array([[sum(g[i, l] for s in range(1, j + 1) for l in range(s, m))
                     for j in range(m)] for i in range(n)])
    col = np.array([[sum(g[l, j] for s in range(i, n - 1) for l in range(0, s + 1))
                     for j in range(m)] for i in range(n)])
    x = rng.uniform(-0.2, 0.2, (3, n))
    expected = x @ (g / (1 + 2.0 * (row + col)))
    got = tile_currents(torch.tensor(x), torch.tensor(g), TorchTransfer.from_model(d)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(reference_currents(x, g, d), expected, rtol=1e-12)


@pytest.mark.parametrize("case", [
    {},
    {"k_row": 0.7, "k_col": 1.3, "r_wire": 3.0},
    {"c2": (0.3, -0.1), "c3": (0.5, 0.2)},
    {"k_row": 1.2, "k_col": 0.8, "c2": (0.1, 0.2), "c3": (-0.4, 0.3), "i_sat": 4e-5},
    {"r_wire": 0.0, "i_sat": 2e-5},
])
def test_torch_transfer_matches_numpy_formula(case):
    rng = np.random.default_rng(1)
    n, m = 16, 12
    d = doc(n, m, **case)
    g = rng.uniform(d["g_min"], d["g_max"], (n, m))
    x = rng.uniform(-0.2, 0.2, (9, n))
    got = tile_currents(torch.tensor(x), torch.tensor(g), TorchTransfer.from_model(d)).numpy()
    want = reference_currents(x, g, d)
    assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want))
    if d["i_sat"] is not None:  # the saturation must have been reached for the case to count
        assert np.any(np.abs(want) == d["i_sat"])


def test_transfer_document_checks():
    good = doc(8, 8)
    assert validate_transfer(good) is good
    bad = dict(good, schema="pyaimc.transfer/2")
    with pytest.raises(TransferError, match="pyaimc.transfer/1"):
        validate_transfer(bad)
    with pytest.raises(TransferError, match="input_nonlinearity.c2"):
        validate_transfer(dict(good, input_nonlinearity={"c2": [0.0], "c3": [0.0, 0.0]}))
    with pytest.raises(TransferError, match="i_sat"):
        validate_transfer(dict(good, i_sat=-1.0))
    with pytest.raises(TransferError, match="ir_drop.k_row"):
        validate_transfer(dict(good, ir_drop={"k_col": 1.0}))
    with pytest.raises(TransferError, match="g_min < g_max"):
        validate_transfer(dict(good, g_min=2e-4))
    fo = TransferModel.first_order(32, 16, 0.5, 0.2, 1e-5, 1e-4).to_dict()
    assert fo["ir_drop"] == {"k_row": 1.0, "k_col": 1.0} and fo["tile"] == {"rows": 32, "cols": 16}

"""Deployment as a chip maps it: packing onto physical tiles, one read-out for A x + B u,
static DAC/ADC calibration, circuit-level currents from the batched solver."""

import dataclasses

import numpy as np
import pytest
import torch

from _noise_helpers import example_noise_model, transfer_doc
from pyaimc.analog import AnalogConfig
from pyaimc.analog.circuit import CircuitCurrents
from pyaimc.analog.mapping import Block, dense_blocks, group_blocks, pack
from pyaimc.circuit import Crossbar, LinearCells, PolynomialCells
from pyaimc.circuit.batched import SparseCrossbars
from pyaimc.circuit.engines import get_engine
from pyaimc.cli import main
from pyaimc.experiments.config import from_dict
from pyaimc.noise import NoiseModel, Tile
from pyaimc.s4d.classifier import build_model
from pyaimc.s4d.packed import PackedBackend, calibrate, ssm_state_blocks
from pyaimc.s4d.step import RecurrentClassifier, export_tiles

torch.set_num_threads(1)

SMALL = {"preset": "tiny", "model": {"d_model": 6, "d_state": 8, "n_layers": 2}}


def _model(quant=None):
    cfg = from_dict({**SMALL, **({"quant": quant} if quant else {})})
    return build_model(cfg, 1, 10).double().eval()


def _x(n=6, length=12, seed=0):
    return torch.randn(n, length, 1, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


def test_mapper_packs_and_unpacks_exactly():
    gen = torch.Generator().manual_seed(0)
    dense = torch.randn(40, 37, generator=gen)                 # split over 3 x 3 tiles
    group = torch.randn(7, 5, 3, generator=gen)
    A, B = torch.randn(12, 2, 2, generator=gen), torch.randn(3, 8, 1, generator=gen)
    for name, n_in, n_out, blocks in (
            ("dense", 37, 40, dense_blocks(dense, 16, 16)),
            ("group", 21, 35, group_blocks(group, 16, 16)),
            ("ab", 27, 24, ssm_state_blocks(A, B))):
        lay = pack(name, n_in, n_out, blocks, 16, 16)
        tiles = lay.pack()
        back = lay.unpack(tiles)
        assert all(torch.equal(a.weight, b.weight) for a, b in zip(lay.blocks, back))
        # the tiles hold every weight once: their sum is the matrix's (exactly, order aside)
        assert torch.allclose(tiles.sum(), lay.dense().sum().to(tiles.dtype), atol=1e-5)
        # cells in use: as many as the blocks have entries
        assert int(lay.used.sum()) == sum(b.weight.numel() for b in blocks)
    # the dense matrix comes back whole from its pieces
    lay = pack("dense", 37, 40, dense_blocks(dense, 16, 16), 16, 16)
    assert torch.equal(lay.dense(), dense)
    assert lay.n_tiles == 9
    # A x + B u: 2 x 3 blocks, each channel's u on one shared row, modes block-diagonal
    lay = pack("ab", 27, 24, ssm_state_blocks(A, B), 16, 16)
    # 16 x 16 tiles: 7 modes of two channels (14 state rows + 2 u rows), then 5 modes of two
    assert lay.n_tiles == 2
    assert [lay.row_input[t].lt(27).sum().item() for t in range(2)] == [16, 12]
    assert [int((lay.row_input[t] >= 24).sum() - (lay.row_input[t] == 27).sum())
            for t in range(2)] == [2, 2]
    assert torch.equal(lay.dense()[:, :24], torch.block_diag(*A))
    assert torch.equal(lay.dense()[:, 24:], torch.block_diag(*B))


def test_pack_refuses_a_block_larger_than_a_tile_and_overlaps():
    with pytest.raises(ValueError, match="larger than"):
        pack("x", 20, 3, [Block(np.arange(3), np.arange(20), torch.zeros(3, 20))], 16, 16)
    with pytest.raises(ValueError, match="repeat"):
        Block([0, 0], [1], torch.zeros(2, 1))


def test_one_read_out_equals_the_sum():
    model = _model()
    x = _x()
    nm = NoiseModel.ideal(rows=16, cols=16)
    digital = RecurrentClassifier(model)(x)
    backend = PackedBackend(nm, AnalogConfig.ideal(), dtype=torch.float64)
    packed = RecurrentClassifier(model, backend)(x)
    assert (packed - digital).abs().max() < 1e-12 * digital.abs().max()
    # one conversion per state element: the AB product has one column per output
    for name, lay in backend.layouts.items():
        if name.endswith(".AB"):
            assert lay.utilisation()["cols_used"] == lay.n_out
    # the state update alone, against A x + B u
    tiles = export_tiles(model)
    A, B = tiles["blocks.0.ssm.A"], tiles["blocks.0.ssm.B"]
    H, N = B.shape[:2]
    xs = torch.randn(5, H, N, dtype=torch.float64)
    u = torch.randn(5, H, dtype=torch.float64)
    expected = (torch.einsum("goi,bgi->bgo", A, xs.reshape(5, -1, 2)).reshape(5, H, N)
                + torch.einsum("goi,bgi->bgo", B, u[..., None]))
    got = backend.state_update("blocks.0.ssm", xs, u)
    assert (got - expected).abs().max() < 1e-12 * expected.abs().max()


def test_static_dac_calibration():
    # a model with 8-bit activation and state quantizers: the DAC takes their ranges, so an
    # 8-bit DAC reproduces their grid and ideal tiles compute the software model exactly
    model = _model({"act": 8, "state": 8})
    x_cal = _x(20, 12, seed=1)
    model.train()
    with torch.no_grad():
        model(x_cal)       # set the quantizers' ranges
    model.eval()
    nm = NoiseModel.ideal(rows=16, cols=16)
    cal = calibrate(model, x_cal, nm, AnalogConfig.ideal())
    summary = cal["summary"]["products"]
    assert summary["blocks.0.ssm.AB"]["x"]["source"] == "quantizer"
    assert summary["blocks.0.ssm.AB"]["x"]["range"] == pytest.approx(
        float(model.blocks[0].ssm.state_quant.range))
    cfg = dataclasses.replace(AnalogConfig.ideal(), dac=True)
    nm8 = dataclasses.replace(nm, periphery=nm.periphery.__class__(
        dataclasses.replace(nm.dac, bits=8), nm.adc))
    x = _x(6, 12, seed=2)
    digital = RecurrentClassifier(model)(x)
    packed = RecurrentClassifier(model, PackedBackend(nm8, cfg, calibration=cal,
                                                       dtype=torch.float64))(x)
    assert (packed - digital).abs().max() < 1e-9 * digital.abs().max()

    # without quantizers the range is the largest input seen: no clipping on the calibration
    # data, and a coarse DAC costs what its step says
    model = _model()
    cal = calibrate(model, x_cal, nm, AnalogConfig.ideal())
    enc = cal["summary"]["products"]["encoder"]["x"]
    assert enc["source"] == "data"
    assert enc["range"] == pytest.approx(float(x_cal.abs().max()))
    digital = RecurrentClassifier(model)(x_cal)
    exact = RecurrentClassifier(model, PackedBackend(nm, AnalogConfig.ideal(), calibration=cal,
                                                      dtype=torch.float64))(x_cal)
    assert (exact - digital).abs().max() < 1e-10 * digital.abs().max()
    # ADC ranges: the largest ideal column current of every tile, A, within the window's reach
    for name, r in cal["adc_ranges"].items():
        assert bool((r > 0).all())
        assert float(r.max()) <= nm.tile.rows * (nm.window.g_max - nm.window.g_min) * \
            nm.dac.v_max * 1.000001


def test_batched_solver_equals_the_fast_engine():
    rng = np.random.default_rng(0)
    rows, cols = 16, 12
    g = rng.uniform(28e-6, 200e-6, (3, rows, cols)) * (rng.random((3, rows, cols)) < 0.4)
    g[0] = rng.uniform(28e-6, 200e-6, (rows, cols))
    v = rng.uniform(-0.2, 0.2, (4, 3, rows))

    def coef(gc):
        return torch.stack([gc, gc * 0.05, gc * -0.3], 1)

    for nonlinear, compiled in ((False, True), (True, True), (True, False)):
        sc = SparseCrossbars.from_tiles(torch.tensor(g), 1.0, 1.5, coef if nonlinear else None)
        sc.compiled = compiled and sc.compiled      # False: the torch path (CUDA's)
        got, stats = sc.solve(torch.tensor(v))
        for t in range(3):
            cells = (PolynomialCells(np.stack([g[t], g[t] * 0.05, g[t] * -0.3], -1))
                     if nonlinear else LinearCells(g[t]))
            ref = get_engine("fast").column_currents(Crossbar(cells, r_row=1.0, r_col=1.5),
                                                     v[:, t])
            assert np.abs(got[:, t].numpy() - ref).max() < 1e-9 * np.abs(ref).max()


def _wired(nm, rows=16, cols=16):
    doc = transfer_doc(rows, cols, g_min=nm.window.g_min * 0.9, g_max=nm.window.g_max * 1.1,
                       v_max=nm.dac.v_max, k_row=1.0, k_col=1.0, c2=(0.03, 0.04),
                       c3=(-0.3, 0.03))
    return dataclasses.replace(nm, tile=Tile(rows, cols, doc["r_wire"]), transfer=doc)


def test_circuit_engine_equals_behavioral_on_an_ideal_device():
    model = _model()
    x = _x()
    nm = NoiseModel.ideal(rows=16, cols=16)
    cfg = AnalogConfig.ideal()
    beh = RecurrentClassifier(model, PackedBackend(nm, cfg, dtype=torch.float64))(x)
    cir = RecurrentClassifier(model, PackedBackend(nm, cfg, currents_from=CircuitCurrents(nm),
                                                   dtype=torch.float64))(x)
    assert (cir - beh).abs().max() < 1e-12 * beh.abs().max()


def test_circuit_engine_against_the_fast_engine_and_the_transfer_model():
    # wires and non-linear cells: the batched solver and the fast engine give the same currents
    # on the packed tiles; the behavioral transfer model stays within a few per cent of them
    model = _model()
    nm = _wired(example_noise_model())
    cfg = dataclasses.replace(AnalogConfig.ideal(), programming_noise=True, transfer=True)
    backend = PackedBackend(nm, cfg, np.random.default_rng(3), dtype=torch.float64)
    RecurrentClassifier(model, backend)
    tiles = backend.products["blocks.0.glu"]
    v, _ = tiles.voltages(torch.randn(3, tiles.layout.n_in, dtype=torch.float64))
    fast = CircuitCurrents(nm, solver="fast")(tiles, v)
    batched = CircuitCurrents(nm)(tiles, v)
    assert (batched - fast).abs().max() < 1e-9 * fast.abs().max()
    behavioral = torch.zeros_like(batched)
    for grp, cur in zip(tiles.layout.groups, tiles.currents(v)):
        behavioral[:, grp.tile[:, None], grp.cols] = cur
    err = (behavioral - batched).norm() / batched.norm()
    assert 1e-4 < err < 0.05


def test_deploy_cli_circuit_engine(tmp_path, capsys):
    from pyaimc.experiments.train import train

    cfg = from_dict({"preset": "tiny", "data": {"task": "digits", "train_size": 64,
                                                 "test_size": 16},
                     "model": {"d_model": 4, "d_state": 4}, "train": {"epochs": 1}})
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    nm = _wired(example_noise_model())
    path = tmp_path / "noise.json"
    nm.save(path)
    assert main(["deploy", str(run), "--noise", str(path), "--draws", "1", "--engine",
                 "circuit", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "packed mapping, circuit engine, static conversion" in out
    assert "behavioral engine on the same chips" in out
    import json

    doc = json.loads((run / "deploy.json").read_text())
    hw = doc["hardware"]
    assert hw["mapping"] == "packed" and hw["engine"] == "circuit"
    assert doc["hardware_behavioral"]["engine"] == "behavioral"
    assert 0 < hw["utilisation"]["utilisation"] <= 1
    assert hw["circuit"][0]["residual_max"] < 1e-9
    assert main(["deploy", str(run), "--noise", str(path), "--engine", "circuit", "--mapping",
                 "per-matrix", "--quiet"]) == 2


def test_cost_counts_follow_the_layout():
    from pyaimc.analog.cost import CostTable, product_cost
    from pyaimc.s4d.packed import inference_cost

    model = _model()
    nm = NoiseModel.ideal(rows=16, cols=16)
    backend = PackedBackend(nm, AnalogConfig.ideal(), dtype=torch.float64)
    RecurrentClassifier(model, backend)
    lay = backend.layouts["blocks.0.ssm.AB"]
    c = CostTable()
    cost = product_cost(lay, 10, 1e-3, c)
    H, N = 6, 8
    assert cost["dac_conversions"] == 10 * (H * N + lay.n_tiles * 0 + sum(
        int((lay.row_input[t] >= H * N).sum() - (lay.row_input[t] == lay.n_in).sum())
        for t in range(lay.n_tiles)))
    assert cost["adc_conversions"] == 10 * H * N           # one conversion per state element
    assert cost["energy_crossbar"] == pytest.approx(10 * 1e-3 * c.t_read)
    total = inference_cost(backend, 12)
    assert total["analog"]["tiles"] == sum(x.n_tiles for x in backend.layouts.values())
    # the digital baseline runs one multiply-add per weight and step (decoder once)
    macs = sum((1 if n == "decoder" else 12) * int(x.used.sum())
               for n, x in backend.layouts.items())
    assert total["digital_int8"]["macs"] == macs

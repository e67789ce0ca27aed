"""Time in the noise model and the layers: the relaxation retention kind, t_inference, drift
compensation restoring a known scale, time sampled in training, deployment over time."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.linear import AnalogLinear, program
from pyaimc.analog.tiles import AnalogTiles
from pyaimc.noise import NoiseModel, NoRetention, RelaxationRetention
from pyaimc.noise.protocols import RETENTION_MODELS, register
from tests.test_device_relaxation import synthetic

torch.set_num_threads(1)


@register(RETENTION_MODELS)
class ScaleRetention:
    """Test kind: every conductance multiplied by ``factor`` at any time > 0."""

    kind = "test_scale"
    is_identity = False

    def __init__(self, factor: float = 0.8):
        self.factor = factor

    def conductance_at(self, g, t, rng=None, temperature=None):
        return np.asarray(g) * (self.factor if t > 0 else 1.0)

    def torch_drift(self, g, t, generator=None, temperature=None):
        return g * self.factor if t > 0 else g

    def validate(self, fail):
        pass

    def to_dict(self):
        return {"kind": self.kind, "factor": self.factor}

    @classmethod
    def from_dict(cls, d):
        return cls(d["factor"])


@pytest.fixture(scope="module")
def relax_model():
    from pyaimc.device.relaxation import RelaxationModel

    return RelaxationModel(n_knots=24, min_neighbours=300).fit(synthetic())


@pytest.fixture(scope="module")
def relax_noise(relax_model):
    return NoiseModel.ideal(g_min=5e-6, g_max=1e-4, rows=16, cols=16).with_retention(
        RelaxationRetention(relax_model, source="synthetic"))


def test_relaxation_kind_draws_the_models_distribution(relax_model):
    ret = RelaxationRetention(relax_model)
    g = np.full(40000, 50e-6)
    m, v = relax_model.moments(g[:1], [3600.0])
    out = ret.conductance_at(g, 3600.0, np.random.default_rng(0))
    assert np.mean(out - g) == pytest.approx(m[0, 0], abs=0.03 * np.sqrt(v[0, 0]))
    assert np.std(out - g) == pytest.approx(np.sqrt(v[0, 0]), rel=0.03)
    gt = torch.full((200, 200), 50e-6, dtype=torch.float32)
    a = ret.torch_drift(gt, 3600.0, torch.Generator().manual_seed(3))
    b = ret.torch_drift(gt, 3600.0, torch.Generator().manual_seed(3))
    assert a.dtype == torch.float32 and torch.equal(a, b)
    assert float((a - gt).double().std()) == pytest.approx(np.sqrt(v[0, 0]), rel=0.03)
    assert torch.equal(ret.torch_drift(gt, 0.0), gt)
    with pytest.raises(ValueError, match="give an rng"):
        ret.conductance_at(g, 1.0)


def test_noise_model_file_keeps_the_retention_part(tmp_path, relax_noise):
    relax_noise.save(tmp_path / "n.json")
    back = NoiseModel.load(tmp_path / "n.json")
    assert isinstance(back.retention, RelaxationRetention)
    assert back.retention == relax_noise.retention
    doc = json.loads((tmp_path / "n.json").read_text())
    assert doc["retention"]["kind"] == "relaxation"
    del doc["retention"]  # files without the part: no retention
    assert isinstance(NoiseModel.from_dict(doc).retention, NoRetention)


def _layer(nm, config, seed=0):
    torch.manual_seed(seed)
    layer = AnalogLinear(40, 24, noise_model=nm, config=config, seed=seed).double()
    return layer


def test_compensation_restores_a_known_scale():
    nm = NoiseModel.ideal(rows=16, cols=16).with_retention(ScaleRetention(0.8))
    x = torch.randn(8, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    base = AnalogConfig.ideal()
    ref = _layer(nm, base)
    program(ref, np.random.default_rng(0))
    ref.eval()
    y0 = ref(x) - ref.bias
    outs = {}
    for comp in (False, True):
        layer = _layer(nm, dataclasses.replace(base, t_inference=3600.0, drift_compensation=comp))
        program(layer, np.random.default_rng(0))
        layer.eval()
        outs[comp] = layer(x) - layer.bias
    # pair differences scale by 0.8 (g_min drifts with them): outputs lose 20 % without
    # compensation and are restored exactly with it
    torch.testing.assert_close(outs[False], 0.8 * y0, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(outs[True], y0, rtol=1e-9, atol=1e-12)
    # the deployment tiles do the same per tile
    w = ref.weight.detach()[None]
    tiles = {c: AnalogTiles(w, nm, dataclasses.replace(base, t_inference=3600.0,
                                                       drift_compensation=c))
             .program(torch.Generator().manual_seed(0)) for c in (False, True)}
    t0 = AnalogTiles(w, nm, base).program(torch.Generator().manual_seed(0))
    yt0 = t0(x[:, None, :])
    torch.testing.assert_close(tiles[False](x[:, None, :]), 0.8 * yt0, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(tiles[True](x[:, None, :]), yt0, rtol=1e-9, atol=1e-12)


def test_t_inference_relaxes_programmed_layers(relax_noise):
    x = torch.randn(64, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cfg = AnalogConfig.ideal()
    errs = []
    for t in (0.0, 1.0, 1e4, 3.15e7):
        layer = _layer(relax_noise, dataclasses.replace(cfg, t_inference=t))
        program(layer, np.random.default_rng(0))
        layer.eval()
        with torch.no_grad():
            exact = x @ layer.weight.T
            errs.append(float(((layer(x) - layer.bias - exact).norm() / exact.norm())))
    assert errs[0] < 1e-9  # the instant of programming, ideal otherwise
    assert 0 < errs[1] < errs[2] < errs[3]  # relaxation grows with time


def test_training_samples_the_time(relax_noise):
    cfg = dataclasses.replace(AnalogConfig.ideal(), t_train=(1.0, 1e6))
    x = torch.randn(16, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = _layer(relax_noise, cfg, seed=3)
    a.train()
    ya = a(x)
    exact = x @ a.weight.T + a.bias
    assert not torch.allclose(ya, exact)
    ya.square().sum().backward()  # straight-through: the clean weight gets a gradient
    assert a.weight.grad is not None and torch.isfinite(a.weight.grad).all()
    b = _layer(relax_noise, cfg, seed=3)
    b.train()
    torch.testing.assert_close(b(x), ya.detach(), rtol=0, atol=0)  # same seed, same draw
    c = _layer(relax_noise, AnalogConfig.ideal(), seed=3)
    c.train()
    torch.testing.assert_close(c(x), exact, rtol=1e-9, atol=1e-12)  # no t_train: no drift


def test_config_checks():
    with pytest.raises(ValueError, match="t_train"):
        AnalogConfig(t_train=(10.0, 1.0))
    with pytest.raises(ValueError, match="t_inference"):
        AnalogConfig(t_inference=-1.0)

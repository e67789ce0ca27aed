"""The plug-in points of the design guide work for a user's own classes: write schemes, noise-model
parts (a retention kind), engines and netlist dialects."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from _noise_helpers import device_model, example_noise_model

from pyaimc.circuit import Crossbar, LinearCells, simulate
from pyaimc.circuit.engines import ENGINES, Engine, get_engine, register_engine
from pyaimc.circuit.netlist import build_netlist
from pyaimc.device.schemes import (SCHEMES, WriteResult, WriteScheme, get_scheme, program,
                                   register_scheme)
from pyaimc.noise import NoiseModel, export_noise_model
from pyaimc.noise.protocols import RETENTION_MODELS, register
from pyaimc.spice.dialect import DIALECTS, NgspiceDialect, register_dialect


# --------------------------------------------------------------------------- write schemes
class _Exact(WriteScheme):
    """Reports every cell at the centre of its window after one pulse: a scheme with a known
    answer (it does not touch the cells)."""

    name = "test_exact"

    def program(self, cells, g_lo, g_hi, rng=None):
        g = 0.5 * (np.asarray(g_lo) + np.asarray(g_hi)) * np.ones(len(cells))
        return WriteResult(g, np.ones(len(cells), dtype=int), np.ones(len(cells), dtype=bool))


@pytest.fixture
def exact_scheme():
    register_scheme(_Exact)
    yield
    SCHEMES.pop("test_exact", None)


def test_unknown_scheme_names_the_registered_ones():
    with pytest.raises(ValueError, match="unknown write scheme 'ispp-x'.*one_shot.*write_verify"):
        get_scheme("ispp-x")
    with pytest.raises(TypeError, match="needs a class attribute 'name'"):
        register_scheme(type("NoName", (), {"program": lambda *a: None, "to_dict": dict}))


def test_a_user_scheme_is_tabulated_by_the_noise_export(exact_scheme):
    model = device_model()
    nm = export_noise_model(model, np.random.default_rng(0), rows=16, cols=16, n_levels=4,
                            n_devices=20, n_repeats=2, schemes=["test_exact", "write_verify"],
                            training_scheme="test_exact")
    t = nm.programming.table("test_exact")
    np.testing.assert_allclose(t.mean, nm.programming.levels, rtol=1e-12)
    assert np.all(t.std < 1e-12 * t.mean) and np.all(t.failed_fraction == 0)
    assert nm.programming.scheme_names == ["test_exact", "write_verify"]
    with pytest.raises(ValueError, match="training scheme 'one_shot' is not among"):
        export_noise_model(model, np.random.default_rng(0), n_levels=4, n_devices=20,
                           n_repeats=2, schemes=["test_exact"], training_scheme="one_shot")


def test_reset_ramp_lands_at_or_below_the_window_top():
    model = device_model()
    targets = np.full(2000, 60e-6)
    cells, res = program(model, get_scheme("reset_ramp"), 0.0, targets * 1.05,
                         np.random.default_rng(3))
    g = 1.0 / cells.resistance
    # cells whose LRS was already below the target stay there; the rest stop inside the window
    assert np.mean(g <= 60e-6 * 1.05) > 0.99
    assert np.array_equal(res.success, g <= 60e-6 * 1.05)
    assert res.pulses.min() >= 1


# --------------------------------------------------------------------------- noise model parts
@register(RETENTION_MODELS)
class _Fade:
    """Every conductance decays by ``exp(-t / tau)``: a retention kind with a known answer."""

    kind = "test_fade"
    is_identity = False

    def __init__(self, tau: float = 100.0):
        self.tau = tau

    def conductance_at(self, g, t, rng=None, temperature=None):
        return np.asarray(g) * np.exp(-t / self.tau)

    def torch_drift(self, g, t, generator=None, temperature=None):
        return g * float(np.exp(-t / self.tau))

    def validate(self, fail):
        if not self.tau > 0:
            fail("retention.tau must be > 0 s")

    def to_dict(self):
        return {"kind": self.kind, "tau_s": self.tau}

    @classmethod
    def from_dict(cls, d):
        return cls(d["tau_s"])


def test_a_user_retention_kind_round_trips_and_drifts_the_layer(tmp_path):
    torch = pytest.importorskip("torch")
    from pyaimc.analog import AnalogConfig, AnalogLinear, program as program_layer

    nm = dataclasses.replace(NoiseModel.ideal(1e-6, 1e-4, 16, 16), retention=_Fade(100.0))
    back = NoiseModel.load(nm.save(tmp_path / "fade.json"))
    assert isinstance(back.retention, _Fade) and back.retention.tau == 100.0
    doc = json.loads((tmp_path / "fade.json").read_text())
    assert doc["retention"] == {"kind": "test_fade", "tau_s": 100.0}
    layer = AnalogLinear(8, 4, bias=False, noise_model=back,
                         config=AnalogConfig.ideal(), seed=0).double()
    x = torch.randn(3, 8, dtype=torch.float64)
    program_layer(layer, np.random.default_rng(0))
    layer.eval()
    y0 = layer(x)
    layer.configure(dataclasses.replace(AnalogConfig.ideal(), t_inference=100.0))
    program_layer(layer, np.random.default_rng(0))
    y1 = layer(x)
    # both cells of every pair faded by 1/e: the difference, and so the output, too
    torch.testing.assert_close(y1, y0 * np.exp(-1.0), rtol=1e-12, atol=1e-15)
    bad = json.loads((tmp_path / "fade.json").read_text())
    bad["retention"]["kind"] = "nothing-like-it"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="retention.kind 'nothing-like-it' is not registered"):
        NoiseModel.load(tmp_path / "bad.json")


def test_the_noise_model_builds_the_layers_samplers():
    pytest.importorskip("torch")
    nm = example_noise_model()
    s = nm.programming_sampler("one_shot")
    t = nm.programming.table("one_shot")
    assert s.method == "one_shot" and s.mean_coeffs == tuple(t.mean_coeffs)
    assert nm.programming_sampler(stuck=False).stuck_fraction == 0.0
    assert nm.read_noise_sampler().active


# --------------------------------------------------------------------------- engines, dialects
class _Ohm(Engine):
    """The ideal product ``v @ G`` (no wires): an engine with a known answer."""

    name = "test_ohm"
    capabilities = frozenset({"1r"})

    def column_currents(self, crossbar, v_rows, **options):
        return crossbar.row_voltages(v_rows) @ crossbar.cells.conductance


@pytest.fixture
def ohm_engine():
    register_engine(_Ohm())
    yield
    ENGINES.pop("test_ohm", None)


def test_a_user_engine_runs_through_simulate_and_the_command(ohm_engine, tmp_path):
    from pyaimc.cli import main

    g = np.random.default_rng(0).uniform(1e-6, 1e-4, (6, 5))
    v = np.random.default_rng(1).uniform(-0.2, 0.2, (3, 6))
    xbar = Crossbar(LinearCells(g))
    np.testing.assert_allclose(simulate(xbar, v, "test_ohm"), v @ g, rtol=1e-14)
    np.testing.assert_allclose(simulate(xbar, v, "test_ohm"), simulate(xbar, v, "fast"),
                               rtol=1e-9)
    np.save(tmp_path / "g.npy", g)
    np.save(tmp_path / "v.npy", v)
    assert main(["crossbar", "simulate", "--conductances", str(tmp_path / "g.npy"), "--inputs",
                 str(tmp_path / "v.npy"), "--r-wire", "0", "--engine", "test_ohm", "-o",
                 str(tmp_path / "i.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "i.npy"), v @ g, rtol=1e-14)
    with pytest.raises(ValueError, match="engine must be one of .*'test_ohm'.*got 'spectre'"):
        get_engine("spectre")


def test_a_dialect_writes_the_same_crossbar_in_its_own_syntax():
    class Bracketed(NgspiceDialect):
        name = "test_bracketed"

        def resistor(self, name, a, b, r):
            return f"R{name} ({a} {b}) r={self.num(r)}"

    register_dialect(Bracketed())
    try:
        xbar = Crossbar(LinearCells(np.full((2, 2), 1e-4)))
        text = build_netlist(xbar, np.zeros(2), dialect="test_bracketed")
        assert "Rcell0_0 (r0 c0) r=10000.0" in text
        assert "Rcell0_0 r0 c0 10000.0" in build_netlist(xbar, np.zeros(2))
    finally:
        DIALECTS.pop("test_bracketed", None)

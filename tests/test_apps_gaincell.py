"""Gain-cell attention: the device model, the two modes of the attention core (whole sequence and
step by step) and the model built on it, the compiled kernels, adaptation, corpus and costs."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pyaimc.apps.gaincell import (CharGPT, GainCellCore, GainCellError,  # noqa: E402
                                  GainCellModel, GPTConfig, Periphery, calibrate_core,
                                  core_error, cost_table)
from pyaimc.apps.gaincell.adapt import map_core_ranges  # noqa: E402
from pyaimc.apps.gaincell.corpus import VOCAB, decode, encode, load_corpus  # noqa: E402
from pyaimc.io import SchemaError  # noqa: E402

torch.set_num_threads(1)


# --------------------------------------------------------------------------- device model
def test_device_file_round_trip_and_errors(tmp_path):
    m = GainCellModel(tau=2e-3, vth_sigma=0.02)
    path = m.save(tmp_path / "cell.json", seed=3)
    doc = json.loads(path.read_text())
    assert doc["schema"] == "pyaimc.gaincell/1" and doc["kind"] == "gain_cell"
    assert doc["provenance"]["seed"] == 3 and "pyaimc_version" in doc["provenance"]
    assert "paper" in doc["sources"]["t_max"]
    assert GainCellModel.load(path) == m
    bad = dict(doc, parameters=dict(doc["parameters"], tau=-1.0))
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(GainCellError, match=r"bad.json: gain cell field 'tau' must be a positive"):
        GainCellModel.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps(dict(doc, schema="pyaimc.noise/1")))
    with pytest.raises(SchemaError, match="expected 'pyaimc.gaincell/1'"):
        GainCellModel.load(tmp_path / "other.json")
    with pytest.raises(GainCellError, match="unknown parameter"):
        GainCellModel.from_dict(dict(doc, parameters={"tau_ms": 5}))


def test_write_noise_levels_and_read_factor():
    m = GainCellModel()
    # kT/C at 1 fF and 300 K is 2.03 mV; with 5 mV injection mismatch 5.40 mV
    assert m.write_noise_std == pytest.approx(5.40e-3, rel=2e-3)
    rng = np.random.default_rng(0)
    target = np.full(40000, 0.52)
    v = m.write(target, rng)
    level = 0.9 * 4 / 7  # nearest of the 8 levels in [0, 0.9] V
    assert v.mean() == pytest.approx(level, abs=1e-4)
    assert v.std() == pytest.approx(m.write_noise_std, rel=0.02)
    g = m.read_factor(np.linspace(0.0, 0.9, 91))
    assert float(m.read_factor(0.45)) == pytest.approx(0.0, abs=1e-12)
    assert float(m.read_factor(0.9)) == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(g) > 0)
    # non-linear: the knee below threshold compresses negative values
    lo, _ = m.read_range()
    assert -0.6 < lo < -0.3
    np.testing.assert_allclose(m.read_factor(m.inverse_read_factor([-0.2, 0.3, 0.8])),
                               [-0.2, 0.3, 0.8], atol=1e-4)


def test_read_table_matches_the_transistor_model():
    m = GainCellModel()
    core = GainCellCore(2, 4, 8, m)
    table = core.read_table()
    x = torch.linspace(-0.05, 0.95, 2001, dtype=torch.float64)
    err = (core._lookup(x, table).double() - torch.from_numpy(m.read_factor(x.numpy()))).abs()
    assert float(err.max()) < 2e-5


# --------------------------------------------------------------------------- retention
def test_decay_follows_the_model():
    """Step by step, a written row decays towards v_leak with each cell's own time constant:
    v(t) = v_leak + (v0 - v_leak) exp(-t / tau_cell), until it is overwritten W tokens later."""
    m = GainCellModel(tau=20e-6, tau_sigma_ln=0.5, write_levels=0)
    w, d = 8, 6
    core = GainCellCore(1, d, w, m, rng=np.random.default_rng(4))
    with torch.no_grad():
        core.k_scale.fill_(0.4)
    state = core.init_state(1, 1, d)
    k0 = torch.linspace(-1, 1, d).view(1, 1, d)
    zeros = torch.zeros(1, 1, d)
    core.step(zeros, k0, zeros, state)
    v0 = state["k"][0, 0, 0].clone()  # row 0 right after the write
    tau_k = core.cell_parameters()[0][0, 0].double()  # the time constants of row 0's cells
    for n in range(1, w):
        core.step(zeros, zeros, zeros, state)
        expect = m.v_leak + (v0.double() - m.v_leak) * torch.exp(-n * m.token_period / tau_k)
        torch.testing.assert_close(state["k"][0, 0, 0].double(), expect, rtol=1e-5, atol=1e-6)
    core.step(zeros, zeros, zeros, state)  # token w overwrites row 0
    torch.testing.assert_close(state["k"][0, 0, 0], torch.full((d,), m.v_offset))
    # the chip's time constants are log-normal around the median with the model's spread
    big = GainCellCore(4, 16, 64, m, rng=np.random.default_rng(1))
    log_tau = torch.log(big.cell_parameters()[0].double()).flatten()
    assert float(log_tau.mean()) == pytest.approx(np.log(m.tau), abs=0.02)
    assert float(log_tau.std()) == pytest.approx(0.5, rel=0.03)


# --------------------------------------------------------------------------- the two modes
def _configured_core(tau=5e-6):
    core = GainCellCore(2, 8, 6, GainCellModel(tau=tau), rng=np.random.default_rng(1))
    with torch.no_grad():
        core.q_scale.fill_(0.6)
        core.k_scale.fill_(0.25)
        core.v_scale.fill_(0.25)
        core.theta.fill_(-0.3)
    return core


def test_kernels_match_the_torch_formulation_values_and_gradients():
    core = _configured_core()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 20, 8, generator=g) for _ in range(3))
    noise = core.sample_write_noise((3, 2, 20, 8), g)
    weights = torch.randn(3, 2, 20, 8, generator=g)
    results = []
    for use_kernels in (True, False):
        qq, kk, vv = (x.clone().requires_grad_() for x in (q, k, v))
        out = core(qq, kk, vv, write_noise=noise, use_kernels=use_kernels)
        (out * weights).sum().backward()
        results.append([out.detach(), qq.grad, kk.grad, vv.grad, core.theta.grad.clone(),
                        core.k_shift.grad.clone()])
        core.zero_grad()
    for fast, ref in zip(*results):  # float32 sums in another order: 1e-4 of the largest value
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert float(results[0][0].abs().max()) > 0.1  # the check is not on zeros


@pytest.mark.parametrize("kind", ["exact", "window", "linear", "analog"])
def test_training_and_generation_modes_agree(kind):
    """Whole-sequence logits (training, perplexity) equal step-by-step generation logits, with
    the same write noise; analog with strong decay so that retention matters."""
    cfg = GPTConfig(vocab=len(VOCAB), context=24, d_model=16, n_layer=2, n_head=2)
    model = CharGPT(cfg, seed=1)
    with torch.no_grad():  # larger weights than the initialisation: outputs far from zero
        for p in model.parameters():
            p.mul_(20.0 if p.dim() >= 2 else 1.0)
    model.set_attention(kind, window=None if kind == "exact" else 5,
                        device_model=GainCellModel(tau=4e-6))
    idx = torch.randint(0, len(VOCAB), (3, 24), generator=torch.Generator().manual_seed(0))
    noise = model.sample_write_noise(3, 24, torch.Generator().manual_seed(1))
    assert (noise is not None) == (kind == "analog")
    with torch.no_grad():
        whole = model(idx, write_noise=noise)
        state = model.init_state(3)
        steps = [model.step(idx[:, i], i, state,
                            write_noise=None if noise is None else [n[..., i, :] for n in noise])
                 for i in range(24)]
    torch.testing.assert_close(torch.stack(steps, 1), whole, rtol=1e-5, atol=2e-5)
    assert float(whole.std()) > 0.5


def test_linear_twin_is_the_ideal_limit_and_swaps_keep_the_adaptation():
    """With ideal cells whose read factor is close to linear over the used range, the gain-cell
    core and its linear twin agree; going linear -> analog keeps the adaptation parameters."""
    cfg = GPTConfig(vocab=len(VOCAB), context=16, d_model=16, n_layer=1, n_head=2)
    model = CharGPT(cfg).set_attention("linear", 4)
    core = model.analog_cores()[0]
    assert core.linear and core.sample_write_noise((1, 2, 3, 8)) is None
    with torch.no_grad():
        core.k_scale.fill_(0.123)
        core.theta.fill_(0.5)
    model.set_attention("analog", 4)
    new = model.analog_cores()[0]
    assert not new.linear and new.k_scale[0, 0].item() == pytest.approx(0.123)
    assert new.theta[0].item() == pytest.approx(0.5)
    # g(v) is linear to 1 % above 0.5 V: keys and values mapped there, the two cores agree
    m = GainCellModel.ideal()
    analog = GainCellCore(1, 4, 4, m, Periphery(query_levels=0, out_levels=0))
    with torch.no_grad():
        analog.k_scale.fill_(0.1)
        analog.k_shift.fill_(0.3)
        analog.v_scale.fill_(0.1)
        analog.v_shift.fill_(0.3)
        analog.log_out_range.fill_(np.log(8.0))  # no ADC clipping
    twin = GainCellCore(1, 4, 4, m, Periphery(query_levels=0, out_levels=0), linear=True)
    twin.load_state_dict(analog.state_dict())
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 1, 10, 4, generator=g).clamp(-1, 1) for _ in range(3))
    with torch.no_grad():
        a, b = analog(q, k, v), twin(q, k, v)
    # the ideal read factor has slope 1/(v_max - v_offset) in triode, so the cores differ by the
    # read transistor's residual curvature only
    assert float(b.abs().max()) > 0.2 and float(b.abs().max()) < 0.99
    assert float((a - b).abs().max()) < 0.02 * float(b.abs().max())


def test_window_forgets_and_decay_changes_the_output():
    core = _configured_core(tau=1e-3).requires_grad_(False)
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 12, 8, generator=g) for _ in range(3))
    base = core(q, k, v)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 0], v2[:, :, 0] = 5.0, -5.0  # token 0 leaves the 6-token window at step 6
    changed = core(q, k2, v2)
    assert float((changed[:, :, :6] - base[:, :, :6]).abs().max()) > 1e-3
    torch.testing.assert_close(changed[:, :, 6:], base[:, :, 6:])
    core.set_device_model(GainCellModel(tau=2e-6))
    assert float((core(q, k, v) - base).abs().max()) > 1e-2


# --------------------------------------------------------------------------- adaptation
def test_adaptation_reduces_the_error_on_a_known_case():
    """Random q, k, v whose exact sliding-window attention is known: the direct abs-max mapping
    misses it (relative error about 1), layer calibration at least halves the error."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(6, 2, 48, 16, generator=g) for _ in range(3))
    q = 1.5 * q
    core = GainCellCore(2, 16, 12, GainCellModel(), rng=np.random.default_rng(3))
    map_core_ranges(core, q, k, v)
    before = core_error(core, q, k, v)
    history = calibrate_core(core, q, k, v, steps=120, lr=0.02, seed=1)
    core.resample_cells(np.random.default_rng(3))
    after = core_error(core, q, k, v)
    assert before > 0.8
    assert after < 0.5 * before
    assert history[-1] < 0.6 * history[0]


# --------------------------------------------------------------------------- corpus, costs
def test_corpus_is_offline_split_and_encoded(tmp_path):
    text = "def f(x):\n\treturn x  # é\n"
    assert decode(encode(text)) == text.replace("é", "\ufffd")
    corpus = load_corpus()
    assert corpus.train.size > 1_000_000 and corpus.test.size > 100_000
    info = corpus.describe()
    assert not set(info["train_modules"]) & set(info["test_modules"])
    assert len(info["digest_sha256"]) == 64
    with pytest.raises(FileNotFoundError, match="argparse.py"):
        load_corpus(tmp_path)


def test_cost_model_parts_and_scaling():
    one = cost_table(heads=4, dim=16, window=32, layers=1)
    two = cost_table(heads=4, dim=16, window=32, layers=2)
    a = one["analog"]
    assert a["energy_j"] == pytest.approx(sum(a["energy_parts_j"].values()))
    assert two["analog"]["energy_j"] == pytest.approx(2 * a["energy_j"])
    assert two["analog"]["latency_s"] == pytest.approx(2 * a["latency_s"])
    # 5 ns write + two-phase stage 1 (2 x 15 ns) + stage 2 (15 ns) + 10 ns ADC
    assert a["latency_s"] == pytest.approx(60e-9)
    unsigned = cost_table(4, 16, 32, 1, periphery=Periphery(signed_query=False))
    assert unsigned["analog"]["latency_s"] == pytest.approx(45e-9)
    d = one["digital_hbm"]
    # 2 * 32 * 16 * 4 values of 16 bit at 3.9 pJ/bit
    assert d["energy_parts_j"]["kv_read"] == pytest.approx(4096 * 16 * 3.9e-12)
    assert one["energy_ratio_vs_hbm"] > 100 and one["speedup_vs_hbm"] > 10
    with pytest.raises(ValueError, match="memory must be"):
        from pyaimc.apps.gaincell import digital_attention_cost

        digital_attention_cost(1, 1, 1, 1, memory="dram")


def test_periphery_unsigned_queries_clip_negative_pulses():
    core = GainCellCore(1, 4, 4, GainCellModel(), Periphery(signed_query=False))
    p = core._query_pulses(torch.tensor([[[-2.0, -0.2, 0.41, 3.0]]]))
    # 16 levels in [0, 1]: 0.41 -> 6/15
    torch.testing.assert_close(p, torch.tensor([[[0.0, 0.0, 0.4, 1.0]]]))


def test_generate_is_seeded():
    cfg = GPTConfig(vocab=len(VOCAB), context=32, d_model=16, n_layer=1, n_head=2)
    model = CharGPT(cfg).set_attention("analog", window=8)
    prompt = torch.from_numpy(encode("def ")).view(1, -1)
    a = model.generate(prompt, 10, torch.Generator().manual_seed(0),
                       write_noise_generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 10, torch.Generator().manual_seed(0),
                       write_noise_generator=torch.Generator().manual_seed(1))
    assert a.shape == (1, 14) and torch.equal(a, b)
    assert decode(a[0, :4]) == "def "


def test_retention_is_a_registered_noise_model_kind():
    from pyaimc.apps.gaincell.device import GainCellRetention
    from pyaimc.noise.protocols import RETENTION_MODELS, build

    m = GainCellModel(tau=1e-3, tau_sigma_ln=0.4)
    ret = m.retention()
    assert RETENTION_MODELS["gain_cell_leak"] is GainCellRetention
    back = build("retention", json.loads(json.dumps(ret.to_dict())), "none", "test")
    assert back == ret
    v = np.full(20000, 0.8)
    np.testing.assert_allclose(ret.conductance_at(v[:3], 1e-3), m.decay(0.8, 1e-3, 1e-3))
    # per-cell time constants from rng: the median cell decays as the median time constant
    v_t = ret.conductance_at(v, 1e-3, np.random.default_rng(0))
    assert float(np.median(v_t)) == pytest.approx(float(m.decay(0.8, 1e-3, 1e-3)), rel=0.02)
    drift = ret.torch_drift(torch.full((4,), 0.8, dtype=torch.float64), 1e-3)
    torch.testing.assert_close(drift, torch.full((4,), float(m.decay(0.8, 1e-3, 1e-3)),
                                                 dtype=torch.float64))
    errors = []
    GainCellRetention(tau=-1.0).validate(errors.append)
    assert errors and "tau_s must be > 0" in errors[0]

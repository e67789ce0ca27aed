"""Hardware-aware training: noise on the S4D tiles and dense layers, checkpoints, the CLI."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from _noise_helpers import example_noise_model
from pyaimc.cli import main
from pyaimc.analog.linear import AnalogConfig
from pyaimc.s4d.classifier import QuantLinear, build_model
from pyaimc.experiments.config import from_dict
from pyaimc.s4d.hardware import QuantAnalogLinear, SSMTileNoise, hardware_model, ssm_part_tiles
from pyaimc.s4d.s4d import S4D
from pyaimc.experiments.train import CheckpointMismatch, load_run, train
from pyaimc.noise import NoiseModel

torch.set_num_threads(1)

TINY = {"preset": "tiny",
        "data": {"task": "digits", "train_size": 128, "test_size": 48},
        "model": {"d_model": 8, "d_state": 4, "dropout": 0.1},
        "quant": {"dense": "ternary", "b": 4, "c": 4, "a": 8, "act": 8},
        "train": {"epochs": 2, "batch_size": 32}}


@pytest.fixture(scope="module")
def noise_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("noise") / "noise.json"
    example_noise_model().save(path)
    return path


@pytest.fixture(scope="module")
def one_shot_file(tmp_path_factory):
    """The same device, one-shot writes: 11-25 % spread, a harsher hardware."""
    nm = example_noise_model()
    nm = dataclasses.replace(nm, programming=dataclasses.replace(
        nm.programming, training_scheme="one_shot"))
    path = tmp_path_factory.mktemp("noise") / "one_shot.json"
    nm.save(path)
    return path


def _ssm(seed=0, **kw):
    torch.manual_seed(seed)
    return S4D(4, 8, dt_min=0.01, dt_max=0.5, **kw).double()


class _Fixed(nn.Module):
    """Returns fixed real 2x2 blocks: a programmed A held still."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = blocks

    def forward(self, w):
        return self.blocks


def test_convolution_equals_recurrence_with_general_real_blocks():
    ssm = _ssm()
    clean = ssm_part_tiles("A", torch.view_as_real(ssm.discrete()[0])).reshape(4, 4, 2, 2)
    perturbed = clean + 0.05 * torch.randn(clean.shape, dtype=torch.float64,
                                           generator=torch.Generator().manual_seed(3))
    ssm.quant["A"] = _Fixed(perturbed)
    u = torch.randn(2, 4, 33, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y_conv = ssm(u)
    x = ssm.initial_state(2, torch.float64)
    ys = []
    for k in range(u.shape[-1]):
        y, x = ssm.step(u[..., k], x)
        ys.append(y)
    assert (torch.stack(ys, -1) - y_conv).abs().max() < 1e-10
    # the blocks are not rotations, so the complex form would give another output
    ssm.quant["A"] = _Fixed(clean)
    assert (ssm(u) - y_conv).abs().max() > 1e-3


def test_ssm_noise_changes_training_outputs_and_not_eval(noise_file):
    nm = NoiseModel.load(noise_file)
    ssm = _ssm().float()
    u = torch.randn(3, 4, 20, generator=torch.Generator().manual_seed(2))
    clean = ssm(u)
    for i, part in enumerate("ABC"):
        ssm.quant[part] = nn.Sequential(ssm.quant[part], SSMTileNoise(part, nm, seed=i))
    ssm.eval()
    assert torch.equal(ssm(u), clean)  # eval without noise: the clean (quantized) matrices
    ssm.train()
    first, second = ssm(u), ssm(u)
    # write-verify spread is a few per cent of g_max - g_min: outputs move by about that much
    rel = (first - clean).abs().max() / clean.abs().max()
    assert 1e-3 < rel < 0.3
    assert not torch.equal(first, second)  # a new draw per forward pass (per mini-batch)
    for part in "ABC":
        single = _ssm().float()
        single.quant[part] = SSMTileNoise(part, nm, seed=7)
        single.train()
        assert not torch.equal(single(u), clean), part


def test_ssm_noise_is_straight_through_and_has_the_programming_spread(noise_file):
    nm = NoiseModel.load(noise_file)
    noise = SSMTileNoise("B", nm, seed=0).train()
    w = torch.randn(64, 100, 2, dtype=torch.float64, requires_grad=True)
    out = noise(w)
    c = torch.randn_like(out)
    (out * c).sum().backward()
    assert torch.allclose(w.grad, c, rtol=0, atol=1e-12)
    # B tiles hold one weight per row: each maps to g_max on one cell, g_min on the other
    ratio = (out / w).detach().numpy().ravel()
    table = nm.programming.table()
    span = nm.window.g_max - nm.window.g_min
    mean = (np.polynomial.polynomial.polyval(1.0, table.mean_coeffs) - table.mean_coeffs[0]) / span
    std = np.hypot(np.polynomial.polynomial.polyval(1.0, table.std_coeffs),
                   table.std_coeffs[0]) / span
    n = ratio.size
    assert abs(ratio.mean() - mean) < 4 * std / np.sqrt(n)
    assert abs(ratio.std() - std) < 4 * std / np.sqrt(2 * n)


def test_quant_analog_linear_quantizes_before_the_mapping():
    torch.manual_seed(0)
    ideal = NoiseModel.ideal()
    analog = QuantAnalogLinear(10, 6, "ternary", None, ideal, AnalogConfig.ideal(), seed=1).double()
    digital = QuantLinear(10, 6, "ternary").double()
    digital.load_state_dict(analog.state_dict(), strict=False)
    x = torch.randn(5, 10, dtype=torch.float64)
    assert torch.allclose(analog(x), digital(x), rtol=0, atol=1e-12)
    levels = analog.effective_weight().detach().abs()
    assert all(len(torch.unique(row[row > 0])) == 1 for row in levels)  # {-a, 0, a} per row


def test_hardware_model_starts_from_the_software_weights(noise_file):
    cfg = from_dict(TINY)
    soft = build_model(cfg, 8, 10)
    hard = hardware_model(cfg, 8, 10, NoiseModel.load(noise_file))
    hs = hard.state_dict()
    for key, value in soft.state_dict().items():
        assert torch.equal(value, hs[key]), key


def _config(noise, **train):
    return dataclasses.replace(from_dict({**TINY, "train": {**TINY["train"], **train}}),
                               noise=str(noise))


def test_hardware_aware_run_resumes_to_the_same_weights(tmp_path, noise_file):
    cfg = _config(noise_file)
    full = train(cfg, tmp_path / "full", progress=False, deploy_draws=2)

    class Stop(Exception):
        pass

    def stop(record):
        raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "cut", progress=False, on_epoch_end=stop)
    resumed = train(cfg, tmp_path / "cut", progress=False, deploy_draws=2)
    a = load_run(tmp_path / "full")[1].state_dict()
    b = load_run(tmp_path / "cut")[1].state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed["hardware"] == {**full["hardware"], "seconds": resumed["hardware"]["seconds"]}
    # another seed draws other noise (and initial weights)
    other = train(dataclasses.replace(cfg, seed=1), tmp_path / "other", progress=False,
                  deploy_draws=1)
    assert other["history"][0]["train_loss"] != full["history"][0]["train_loss"]


def test_checkpoint_of_another_noise_model_is_refused(tmp_path, noise_file, one_shot_file):
    train(_config(noise_file, epochs=1), tmp_path / "run", progress=False, deploy_draws=1)
    with pytest.raises(CheckpointMismatch, match=r"noise model: .*noise\.json.*one_shot\.json"):
        train(_config(one_shot_file, epochs=1), tmp_path / "run", progress=False)
    # the same content under another path is the same noise model
    moved = tmp_path / "moved.json"
    shutil.copy(noise_file, moved)
    train(_config(moved, epochs=1), tmp_path / "run", progress=False, deploy_draws=1)
    # a changed number inside the file is not
    doc = json.loads(moved.read_text())
    doc["read_noise"]["bandwidth_hz"] *= 2
    moved.write_text(json.dumps(doc))
    with pytest.raises(CheckpointMismatch, match="content sha256"):
        train(_config(moved, epochs=1), tmp_path / "run", progress=False)


def test_missing_noise_file_names_the_key(tmp_path):
    cfg = dataclasses.replace(from_dict(TINY), noise=str(tmp_path / "absent.json"))
    with pytest.raises(ValueError, match=r"noise: '.*absent\.json': no such noise-model file"):
        train(cfg, tmp_path / "run", progress=False)


def test_cli_hardware_aware_train_end_to_end(tmp_path, noise_file, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--task", "digits", "--noise", str(noise_file),
            "-o", str(out), "--epochs", "2", "--quiet"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    hw, sw = metrics["hardware"], metrics["software"]
    assert hw["draws"] == 3 and len(hw["accuracies"]) == 3
    assert all(0.0 <= a <= 1.0 for a in hw["accuracies"])
    assert hw["noise_sha256"] and hw["programming_method"] == "write_verify"
    # 2 epochs on 512 digits; well above chance (0.1) in software and on the hardware
    assert sw["test_accuracy"] > 0.2 and hw["accuracy_mean"] > 0.2
    assert sw["test_accuracy_step_mode"] == sw["test_accuracy"]
    assert "test accuracy" in capsys.readouterr().out
    config, model = load_run(out)
    assert isinstance(model.encoder, QuantAnalogLinear)
    assert isinstance(model.blocks[0].ssm.quant["A"][1], SSMTileNoise)
    _, soft = load_run(out, software=True)
    assert isinstance(soft.encoder, QuantLinear)


def test_init_from_starts_from_another_runs_weights(tmp_path, noise_file):
    from pyaimc.experiments.train import _init_from

    cfg = from_dict({**TINY, "train": {**TINY["train"], "epochs": 1}})
    train(cfg, tmp_path / "soft", progress=False)
    start = load_run(tmp_path / "soft")[1].state_dict()
    fine = _config(noise_file, epochs=1, init_from=str(tmp_path / "soft"))
    model = hardware_model(fine, 8, 10, NoiseModel.load(noise_file))
    _init_from(model, str(tmp_path / "soft"))
    for key, value in start.items():
        assert torch.equal(model.state_dict()[key], value), key
    metrics = train(fine, tmp_path / "fine", progress=False, deploy_draws=1)
    assert metrics["epochs"] == 1
    bad = dataclasses.replace(fine, model=dataclasses.replace(fine.model, d_model=6))
    with pytest.raises(ValueError, match="train.init_from"):
        train(bad, tmp_path / "bad", progress=False)


def test_prune_a_trained_run_hardware_aware(tmp_path, noise_file):
    soft = from_dict({**TINY, "train": {**TINY["train"], "epochs": 1}})
    train(soft, tmp_path / "soft", progress=False)
    cfg = from_dict({**TINY, "train": {**TINY["train"], "epochs": 0,
                                       "init_from": str(tmp_path / "soft")},
                     "prune": {"d_state": 2, "d_model": 6, "finetune_epochs": 1}})
    cfg = dataclasses.replace(cfg, noise=str(noise_file))
    metrics = train(cfg, tmp_path / "pruned", progress=False, deploy_draws=1)
    assert [r["phase"] for r in metrics["history"]] == ["finetune"]
    assert metrics["model"]["d_model"] == 6 and metrics["model"]["d_state"] == 2
    assert 0.0 <= metrics["hardware"]["accuracy_mean"] <= 1.0
    _, model = load_run(tmp_path / "pruned")  # analog buffers rebuilt at the pruned size
    assert model.blocks[0].glu.programmed_g_pos.shape == (12, 6)
    with pytest.raises(ValueError, match="train.epochs"):
        from_dict({**TINY, "train": {**TINY["train"], "epochs": 0}})


def test_model_bits_count_each_stored_value():
    from pyaimc.s4d.size import model_bits

    cfg = from_dict({**TINY, "model": {**TINY["model"], "d_model": 4, "d_state": 4},
                     "quant": {"dense": "ternary", "a": 8, "b": None, "c": 4, "act": 8}})
    size = model_bits(build_model(cfg, 8, 10), cfg.quant)
    log3 = np.log2(3)
    analog = (4 * 8 + 8 * 4 + 10 * 4) * log3 + 16 * (8 + 32 + 4)   # dense; A, B, C
    digital = (4 + 4 + 8 + 2 * 4 + 10) * 32                          # biases, D, GLU, norm
    assert size["analog"] == pytest.approx(analog, rel=1e-12)
    assert size["digital"] == pytest.approx(digital, rel=1e-12)
    assert size["total"] == pytest.approx(analog + digital, rel=1e-12)


def test_noise_digest_ignores_provenance_at_any_depth(tmp_path):
    from _noise_helpers import transfer_doc
    from pyaimc.experiments.config import noise_digest

    nm = example_noise_model()
    doc = transfer_doc(64, 64, g_min=nm.window.g_min * 0.9, g_max=nm.window.g_max * 1.1,
                       v_max=nm.dac.v_max)
    nm = dataclasses.replace(nm, tile=dataclasses.replace(nm.tile, r_wire=1.0), transfer=doc)
    nm.save(tmp_path / "a.json")
    again = json.loads((tmp_path / "a.json").read_text())
    again["provenance"]["created"] = "another day"
    again["transfer"]["provenance"] = {"created": "another day", "command": "re-export"}
    (tmp_path / "b.json").write_text(json.dumps(again))
    assert noise_digest(tmp_path / "a.json") == noise_digest(tmp_path / "b.json")
    again["transfer"]["ir_drop"]["k_col"] = 1.01
    (tmp_path / "c.json").write_text(json.dumps(again))
    assert noise_digest(tmp_path / "c.json") != noise_digest(tmp_path / "a.json")


def test_explicit_cpu_device_is_the_default_run(tmp_path, noise_file):
    cfg = _config(noise_file, epochs=1)
    a = train(cfg, tmp_path / "a", progress=False, deploy_draws=1)
    b = train(cfg, tmp_path / "b", progress=False, deploy_draws=1, device="cpu")
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert a["hardware"]["accuracy_mean"] == b["hardware"]["accuracy_mean"]


def test_cli_refuses_a_device_torch_does_not_have(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["train", "--preset", "tiny", "--task", "digits", "--epochs", "1",
                 "-o", str(tmp_path / "r"), "--device", "cuda", "--quiet"])
    assert code == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_hardware_aware_s4d_trains_on_cuda_as_on_the_cpu(tmp_path, noise_file):
    # the noise streams differ between devices (other generators), the learning does not:
    # software runs agree to float32 rounding, hardware-aware runs to the noise's spread
    soft = from_dict({**TINY, "train": {**TINY["train"], "epochs": 2}})
    cpu = train(soft, tmp_path / "cpu", progress=False)
    gpu = train(soft, tmp_path / "gpu", progress=False, device="cuda")
    for r_cpu, r_gpu in zip(cpu["history"], gpu["history"]):
        assert r_gpu["train_loss"] == pytest.approx(r_cpu["train_loss"], rel=1e-3)
    cfg = _config(noise_file, epochs=2)
    cpu = train(cfg, tmp_path / "hw_cpu", progress=False, deploy_draws=1)
    gpu = train(cfg, tmp_path / "hw_gpu", progress=False, deploy_draws=1, device="cuda")
    assert gpu["history"][-1]["train_loss"] == pytest.approx(
        cpu["history"][-1]["train_loss"], rel=0.1)
    assert abs(gpu["hardware"]["accuracy_mean"] - cpu["hardware"]["accuracy_mean"]) < 0.1
    # resuming on the device it was written on continues the run exactly
    class Stop(Exception):
        pass

    def stop(record):
        raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "cut", progress=False, on_epoch_end=stop, device="cuda")
    with pytest.raises(CheckpointMismatch):
        train(cfg, tmp_path / "cut", progress=False)          # on the CPU: refused
    resumed = train(cfg, tmp_path / "cut", progress=False, deploy_draws=1, device="cuda")
    assert [r["train_loss"] for r in resumed["history"]] == [
        r["train_loss"] for r in gpu["history"]]


def test_digital_parts_of_a_hardware_aware_run(tmp_path, noise_file):
    from pyaimc.experiments.config import ConfigError, config_hash, to_dict

    plain = _config(noise_file, epochs=1)
    cfg = dataclasses.replace(plain, digital=("A",))
    assert "digital" not in to_dict(plain) and to_dict(cfg)["digital"] == ["A"]
    assert config_hash(cfg) != config_hash(plain)
    with pytest.raises(ConfigError, match="digital"):
        from_dict({**TINY, "digital": ["D"]})
    assert from_dict({**TINY, "digital": ["B", "A"]}).digital == ("A", "B")
    metrics = train(cfg, tmp_path / "run", progress=False, deploy_draws=1)
    assert metrics["hardware"]["digital"] == ["A"]
    _, model = load_run(tmp_path / "run")
    for block in model.blocks:
        a_noise, b_noise = block.ssm.quant["A"][1], block.ssm.quant["B"][1]
        a_noise.train(), b_noise.train()
        w = torch.randn(4, 3, 2, 2)
        assert torch.equal(a_noise(w), w)               # A: no programming error in training
        wb = torch.randn(4, 3, 2)
        assert not torch.equal(b_noise(wb), wb)         # B keeps it

"""Training: exact resume, determinism, configuration checks, pruning runs, the CLI."""

import dataclasses
import json

import pytest
import torch

from pyaimc.cli import main
from pyaimc.experiments.config import from_dict
from pyaimc.experiments.train import CheckpointMismatch, load_run, train

torch.set_num_threads(1)

# Small but with every stateful part: dropout, act-quantizer ranges, batch norm, warm-up.
TINY = {"preset": "tiny",
        "data": {"task": "digits", "train_size": 192, "test_size": 64, "val_fraction": 0.1},
        "model": {"d_model": 8, "dropout": 0.2, "norm": "batch"},
        "quant": {"dense": "ternary", "b": 4, "act": 8},
        "train": {"epochs": 3, "warmup_epochs": 1, "shift": 2}}


class _Interrupt(Exception):
    pass


def _weights(run_dir):
    return load_run(run_dir)[1].state_dict()


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    cfg = from_dict(TINY)
    full = train(cfg, tmp_path / "full", progress=False)

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(cfg, tmp_path / "cut", progress=False, on_epoch_end=stop_after_first)
    assert not (tmp_path / "cut" / "metrics.json").exists()
    resumed = train(cfg, tmp_path / "cut", progress=False)
    _assert_same_weights(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))
    assert resumed["software"] == full["software"]
    assert [r["train_loss"] for r in resumed["history"]] == [
        r["train_loss"] for r in full["history"]]
    assert resumed["epochs"] == 3


def test_seed_decides_the_result(tmp_path):
    cfg = from_dict({**TINY, "train": {**TINY["train"], "epochs": 1}})
    train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    train(dataclasses.replace(cfg, seed=1), tmp_path / "c", progress=False)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    _assert_same_weights(a, b)
    assert not torch.equal(a["encoder.weight"], c["encoder.weight"])


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    cfg = from_dict({**TINY, "train": {**TINY["train"], "epochs": 1}})
    train(cfg, tmp_path, progress=False)
    other = from_dict({**TINY, "train": {**TINY["train"], "epochs": 1, "lr": 0.02}})
    with pytest.raises(CheckpointMismatch, match=r"train\.lr: 0\.01 != 0\.02"):
        train(other, tmp_path, progress=False)


def test_pruning_with_fine_tuning(tmp_path):
    cfg = from_dict({**TINY, "model": {**TINY["model"], "d_state": 8},
                     "train": {**TINY["train"], "epochs": 2},
                     "prune": {"d_state": 4, "d_model": 6, "finetune_epochs": 1}})
    metrics = train(cfg, tmp_path, progress=False)
    assert [r["phase"] for r in metrics["history"]] == ["train", "train", "finetune"]
    assert metrics["model"]["d_model"] == 6 and metrics["model"]["d_state"] == 4
    _, model = load_run(tmp_path)
    assert model.blocks[0].ssm.C.shape == (6, 2, 2) and model.decoder.weight.shape == (10, 6)
    sw = metrics["software"]
    assert sw["test_accuracy_step_mode"] == sw["test_accuracy"]


def test_cli_train_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--task", "digits", "-o", str(out),
                 "--seed", "0", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == "pyaimc.run/1" and metrics["hardware"] is None
    assert metrics["epochs"] == 3 and metrics["provenance"]["seed"] == 0
    sw = metrics["software"]
    # 3 epochs on 512 digits: well above chance (0.1); measured 0.45 on this machine
    assert sw["test_accuracy"] > 0.25
    assert sw["test_accuracy_step_mode"] == sw["test_accuracy"]
    assert "test accuracy" in capsys.readouterr().out
    # running it again resumes the finished run and gives the same numbers
    assert main(["train", "--preset", "tiny", "--task", "digits", "-o", str(out),
                 "--seed", "0", "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["software"] == sw


def test_cli_reports_config_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"d_state": 7}}))
    assert main(["train", "--config", str(bad), "-o", str(tmp_path / "r"), "--quiet"]) == 2
    assert "model.d_state" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--epochs", "0", "-o", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert "train.epochs" in capsys.readouterr().err

"""Run directories: checkpoints, loading a trained run, evaluating a model.

Shared by training (:mod:`pyaimc.experiments.train`) and deployment
(:mod:`pyaimc.experiments.deploy`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pyaimc.experiments.config import (CONFIG_SCHEMA, ConfigError, RunConfig, config_hash,
                                       differences, from_dict, noise_digest, to_dict)
from pyaimc.io import atomic_write_bytes, read_json
from pyaimc.s4d.classifier import LinearFactory, build_model
from pyaimc.analog.config import AnalogConfig
from pyaimc.s4d.hardware import (analog_linear_factory, attach_ssm_noise, load_noise_model,
                                 load_weights)
from pyaimc.s4d.prune import pruned_config

CHECKPOINT_SCHEMA = "pyaimc.checkpoint/1"


class CheckpointMismatch(ConfigError):
    """A checkpoint was written by another configuration; the message lists the differences."""


@torch.no_grad()
def evaluate(model: Callable, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> dict:
    """Mean cross-entropy and accuracy of ``model`` (an eval-mode module or any callable)."""
    device = None
    if isinstance(model, nn.Module):
        model.eval()
        param = next(model.parameters(), None)
        device = None if param is None or param.device == x.device else param.device
    loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        if device is not None:   # a model on another device (a GPU): batches go there
            xb, yb = xb.to(device), yb.to(device)
        logits = model(xb)
        loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(-1) == yb).sum().item()
    return {"loss": loss / max(1, len(y)), "accuracy": correct / max(1, len(y))}


def save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, config: RunConfig, check_noise: bool = True) -> dict:
    """The checkpoint at ``path`` if it was written by ``config``.

    ``check_noise`` False compares the configuration's keys only, not the noise model's
    content (for loading the trained weights without the training noise model at hand).
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointMismatch(f"{path}: not a readable checkpoint (damaged or truncated: "
                                 f"{type(err).__name__}); delete it to train afresh") from None
    if not isinstance(state, dict) or state.get("schema") != CHECKPOINT_SCHEMA:
        raise CheckpointMismatch(f"{path}: not a {CHECKPOINT_SCHEMA} checkpoint")
    if check_noise:
        diffs = []
        if state["config_hash"] != config_hash(config):
            # the hash covers the noise model's content, not its path
            diffs = [d for d in differences(state["config"], to_dict(config))
                     if not d.startswith("noise:")]
            digest = None if config.noise is None else noise_digest(config.noise)
            if state.get("noise_digest") != digest:
                diffs.append(f"noise model: {state['config'].get('noise')!r} (content sha256 "
                             f"{state.get('noise_digest')}) != {config.noise!r} (content "
                             f"sha256 {digest})")
            diffs = diffs or ["configuration hash"]
    else:
        diffs = differences(state["config"], to_dict(config))
    if diffs:
        raise CheckpointMismatch(
            f"{path}: checkpoint of another configuration ({'; '.join(diffs)}, checkpoint "
            f"value first); resume with the same configuration or use another run directory")
    return state


def load_run(run_dir: str | Path, linear_factory: LinearFactory | None = None, *,
             software: bool = False):
    """The configuration and trained (possibly pruned) model of a run directory.

    Parameters
    ----------
    run_dir : path
    linear_factory : callable, optional
        Factory of the dense layers (default: as the run was trained).
    software : bool
        Load the weights into the software model (fake-quantized layers, no noise modules)
        even when the run was hardware-aware; its noise model is then not needed.

    Returns
    -------
    config : RunConfig
    model : S4DClassifier
        In eval mode, weights of the last checkpoint.
    """
    run_dir = Path(run_dir)
    config = from_dict(read_json(run_dir / "config.json", CONFIG_SCHEMA))
    hardware = config.noise is not None and not software
    state = load_checkpoint(run_dir / "checkpoint.pt", config, check_noise=hardware)
    arch = pruned_config(config) if state["phase"] == "finetune" else config
    if hardware:
        noise_model = load_noise_model(config.noise)
        factory = linear_factory or analog_linear_factory(
            config.quant, noise_model, config.seed, AnalogConfig(products=config.products))
        model = build_model(arch, state["d_input"], state["n_classes"], seed=config.seed,
                            linear_factory=factory)
        attach_ssm_noise(model, noise_model, config.seed, digital=config.digital)
        model.load_state_dict(state["model"])
    else:
        model = build_model(arch, state["d_input"], state["n_classes"], seed=config.seed,
                            linear_factory=linear_factory)
        load_weights(model, state["model"])
    return config, model.eval()

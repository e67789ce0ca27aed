"""Training with checkpoints that resume exactly, then optional pruning and fine-tuning.

A run directory holds ``config.json`` (the resolved configuration), ``checkpoint.pt`` (written
atomically after every epoch: model, optimizer, scheduler, random states, history) and, when the
run is finished, ``metrics.json`` (schema ``pyaimc.run/1``). Calling :func:`train` again on the
same directory resumes from the checkpoint; an interrupted and resumed run ends with the same
weights as an uninterrupted one (same machine, same thread count).

With ``noise`` set in the configuration the run is hardware-aware (:mod:`pyaimc.s4d.hardware`):
dense layers are analog layers of the noise model, the S4D matrices get its programming error,
a fresh draw per mini-batch; the noise generators' states travel in the checkpoint. At the end
the model is deployed on the same noise model (:mod:`pyaimc.experiments.deploy`) and ``metrics.json``'s
``hardware`` entry holds the deployed test accuracy over a few programming draws.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pyaimc.experiments.config import (CONFIG_SCHEMA, ConfigError, RunConfig, config_hash,
                                       noise_digest, to_dict, validate)
from pyaimc.experiments.datasets import SequenceData, load_data
from pyaimc.experiments.deploy import deployed_accuracy
from pyaimc.experiments.runs import (CHECKPOINT_SCHEMA, CheckpointMismatch, evaluate,
                                     load_checkpoint, load_run, save_checkpoint)
from pyaimc.errors import FailedError
from pyaimc.io import provenance, write_json
from pyaimc.s4d.classifier import LinearFactory, S4DClassifier, build_model
from pyaimc.analog.config import AnalogConfig
from pyaimc.s4d.hardware import (analog_linear_factory, attach_ssm_noise, generator_states,
                                 load_noise_model, load_weights, normal_pool_states,
                                 set_generator_states, set_normal_pool_states)
from pyaimc.s4d.prune import prune_model, pruned_config, prunes
from pyaimc.s4d.step import RecurrentClassifier

__all__ = ["CHECKPOINT_SCHEMA", "CheckpointMismatch", "RUN_SCHEMA", "evaluate", "load_run",
           "software_model", "train"]

RUN_SCHEMA = "pyaimc.run/1"
_SSM_DYNAMICS = ("log_dt", "log_A_real", "A_imag", "B")


# ---------------------------------------------------------------------------------------------
# optimisation

def make_optimizer(model: nn.Module, lr: float, ssm_lr: float, weight_decay: float):
    """AdamW; SSM dynamics (``dt``, ``A``, ``B``) at ``ssm_lr``, they and 1-d tensors undecayed."""
    dynamics, flat, matrices = [], [], []
    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[-1] in _SSM_DYNAMICS and ".ssm." in name:
            dynamics.append(param)
        elif param.dim() < 2:
            flat.append(param)
        else:
            matrices.append(param)
    return torch.optim.AdamW([
        {"params": matrices, "lr": lr, "weight_decay": weight_decay},
        {"params": flat, "lr": lr, "weight_decay": 0.0},
        {"params": dynamics, "lr": ssm_lr, "weight_decay": 0.0},
    ])


def make_scheduler(optimizer, total_steps: int, warmup_steps: int):
    """Linear warm-up over ``warmup_steps`` batches, then cosine decay to zero."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _phase_optimizer(model, config: RunConfig, phase: str, steps_per_epoch: int):
    t = config.train
    if phase == "train":
        opt = make_optimizer(model, t.lr, t.ssm_lr, t.weight_decay)
        return opt, make_scheduler(opt, t.epochs * steps_per_epoch,
                                   t.warmup_epochs * steps_per_epoch)
    lr = config.prune.finetune_lr
    opt = make_optimizer(model, lr, min(lr, t.ssm_lr), t.weight_decay)
    return opt, make_scheduler(opt, config.prune.finetune_epochs * steps_per_epoch, 0)


# ---------------------------------------------------------------------------------------------
# one epoch, evaluation

def _shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Roll each sequence by a random number of steps in ``[-max_shift, max_shift]``."""
    L = x.shape[1]
    s = torch.randint(-max_shift, max_shift + 1, (x.shape[0], 1), generator=generator)
    index = (torch.arange(L).unsqueeze(0) - s) % L
    return torch.gather(x, 1, index.unsqueeze(-1).expand_as(x))


class TrainingDiverged(FailedError):
    """The loss became NaN or infinite; the run directory keeps the last good checkpoint."""


def _train_epoch(model, data: SequenceData, config: RunConfig, optimizer, scheduler,
                 generator: torch.Generator, device: torch.device | None = None) -> dict:
    t = config.train
    model.train()
    order = torch.randperm(len(data.y_train), generator=generator)
    total_loss, correct = 0.0, 0
    for start in range(0, len(order), t.batch_size):
        idx = order[start:start + t.batch_size]
        x, y = data.x_train[idx], data.y_train[idx]
        if t.shift:
            x = _shift(x, t.shift, generator)
        if device is not None:
            # batches are drawn and shifted on the CPU (same order on every device), then moved
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=t.label_smoothing)
        if not torch.isfinite(loss):
            # stop before the step: the weights (and the last checkpoint) stay the last good ones
            raise TrainingDiverged(f"training diverged: the loss is {loss.item()} at batch "
                                   f"{start // t.batch_size + 1}; the last good checkpoint is "
                                   f"kept (lower train.lr, now {t.lr:g}, or set "
                                   f"train.grad_clip)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(-1) == y).sum().item()
    return {"train_loss": total_loss / len(order), "train_accuracy": correct / len(order)}


def _init_from(model: S4DClassifier, run_dir: str) -> None:
    """Load the final weights of the run in ``run_dir`` (its software view) into ``model``."""
    try:
        _, source = load_run(run_dir, software=True)
    except FileNotFoundError as err:
        raise ConfigError(f"train.init_from: {run_dir!r}: {err}") from None
    try:
        load_weights(model, source.state_dict())
    except (ValueError, RuntimeError) as err:
        raise ConfigError(f"train.init_from: {run_dir!r}: the run's model does not fit this "
                          f"configuration's ({err})") from None


def _phases(config: RunConfig) -> list[tuple[str, int]]:
    phases = [("train", config.train.epochs)]
    if prunes(config):
        phases.append(("finetune", config.prune.finetune_epochs))
    return phases


# ---------------------------------------------------------------------------------------------
# the run

def train(config: RunConfig, run_dir: str | Path, *, linear_factory: LinearFactory | None = None,
          progress: bool = True, on_epoch_end: Callable[[dict], None] | None = None,
          deploy_draws: int = 3, device: str | torch.device | None = None) -> dict:
    """Train (or resume training) the classifier of ``config`` and write ``run_dir``.

    Parameters
    ----------
    config : RunConfig
    run_dir : path
        Created if needed. An existing ``checkpoint.pt`` of the same configuration is resumed;
        one of another configuration raises :class:`CheckpointMismatch`.
    linear_factory : callable, optional
        Factory of the dense layers (see :func:`pyaimc.s4d.classifier.build_model`). Default:
        fake-quantized layers, or with ``config.noise`` set the analog layers of that noise
        model (:func:`pyaimc.s4d.hardware.analog_linear_factory`).
    progress : bool
        Show a tqdm progress bar (on stderr).
    on_epoch_end : callable, optional
        Called with the epoch's record after its checkpoint is written.
    deploy_draws : int
        Programming draws of the deployment at the end of a hardware-aware run.
    device : str or torch.device, optional
        Where the model trains (``"cuda"`` on a GPU; default the CPU). The model is built and
        initialised on the CPU, mini-batches are drawn there and moved; the final evaluation
        and deployment run on the CPU. A run resumes on the device it was written on.

    Returns
    -------
    dict
        The content of ``run_dir/metrics.json``.
    """
    from tqdm import tqdm

    validate(config)
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    on_cpu = device.type == "cpu"
    noise_model = None
    if config.noise is not None:
        noise_model = load_noise_model(config.noise)
        if linear_factory is None:
            linear_factory = analog_linear_factory(config.quant, noise_model, config.seed,
                                                   AnalogConfig(products=config.products))
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    data = load_data(config.data)
    steps_per_epoch = math.ceil(len(data.y_train) / config.train.batch_size)
    state = load_checkpoint(ckpt_path, config) if ckpt_path.exists() else None
    write_json(run_dir / "config.json", {"schema": CONFIG_SCHEMA, **to_dict(config)})

    def build(arch: RunConfig) -> S4DClassifier:
        model = build_model(arch, data.d_input, data.n_classes, seed=config.seed,
                            linear_factory=linear_factory)
        if noise_model is not None:
            attach_ssm_noise(model, noise_model, config.seed, digital=config.digital)
        return model.to(device)

    phases = _phases(config)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[] if on_cpu else [device]):
        torch.manual_seed(config.seed)  # dropout draws from the (forked) global generator
        generator = torch.Generator().manual_seed(config.seed)  # shuffling and augmentation
        if state is None:
            phase_index, epoch, history, elapsed = 0, 0, [], 0.0
            model = build(config)
            if config.train.init_from is not None:
                _init_from(model, config.train.init_from)
            optimizer, scheduler = _phase_optimizer(model, config, "train", steps_per_epoch)
        else:
            phase_index = [name for name, _ in phases].index(state["phase"])
            epoch, history, elapsed = state["epoch"], state["history"], state["elapsed_s"]
            model = build(pruned_config(config) if state["phase"] == "finetune" else config)
            model.load_state_dict(state["model"])
            optimizer, scheduler = _phase_optimizer(model, config, state["phase"],
                                                    steps_per_epoch)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            if not on_cpu:
                if "device_rng" not in state:
                    raise CheckpointMismatch(f"{ckpt_path}: written by a run on the CPU; resume "
                                             f"it there (device {device} asked)")
                torch.cuda.set_rng_state(state["device_rng"], device)
            generator.set_state(state["generator_rng"])
            try:
                set_generator_states(model, state.get("noise_rng", {}), device)
            except RuntimeError as err:  # a generator state of another device
                raise CheckpointMismatch(f"{ckpt_path}: noise generators of another device; "
                                         f"resume the run where it was written ({err})") from None
            set_normal_pool_states(model, state.get("normal_pools", {}))

        def save(phase: str, epoch: int) -> None:
            bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
            if bad:
                raise TrainingDiverged(f"training diverged: non-finite weights in {bad[0]} after "
                                       f"epoch {epoch}; the last good checkpoint is kept (lower "
                                       f"train.lr, now {config.train.lr:g})")
            save_checkpoint(ckpt_path, {
                "schema": CHECKPOINT_SCHEMA, "config_hash": config_hash(config),
                "config": to_dict(config), "phase": phase, "epoch": epoch,
                "d_input": data.d_input, "n_classes": data.n_classes,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "generator_rng": generator.get_state(), "history": history,
                **({} if on_cpu else {"device_rng": torch.cuda.get_rng_state(device)}),
                "noise_rng": generator_states(model),
                "normal_pools": normal_pool_states(model),
                "noise_digest": None if config.noise is None else noise_digest(config.noise),
                "elapsed_s": elapsed + time.perf_counter() - started})

        if state is None:
            save("train", 0)  # a run of 0 training epochs (init_from) has a checkpoint too
        total = sum(n for _, n in phases)
        done = sum(n for _, n in phases[:phase_index]) + epoch
        bar = tqdm(total=total, initial=done, disable=not progress, unit="epoch",
                   desc=f"train {config.data.task}", dynamic_ncols=True)
        if state is not None and progress:
            bar.write(f"resuming {ckpt_path} after {state['phase']} epoch {epoch}")
        while True:
            phase, n_epochs = phases[phase_index]
            while epoch < n_epochs:
                tic = time.perf_counter()
                record = _train_epoch(model, data, config, optimizer, scheduler, generator,
                                      None if on_cpu else device)
                if len(data.y_val):
                    record["val_accuracy"] = evaluate(model, data.x_val, data.y_val)["accuracy"]
                epoch += 1
                record.update(phase=phase, epoch=epoch, seconds=time.perf_counter() - tic)
                history.append(record)
                save(phase, epoch)
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in record.items()
                                 if k in ("train_loss", "train_accuracy", "val_accuracy")})
                if on_epoch_end is not None:
                    on_epoch_end(record)
            if phase_index + 1 == len(phases):
                break
            # Training done: prune, then fine-tune with a fresh optimizer. The pruned model is
            # checkpointed at once, so a run without fine-tuning epochs also ends pruned.
            phase_index, epoch = phase_index + 1, 0
            prune_model(model, config)
            if noise_model is not None:
                # analog layers keep per-size buffers and read-out ranges: rebuild them at the
                # pruned size around the pruned weights
                model = load_weights(build(pruned_config(config)), model.state_dict())
            optimizer, scheduler = _phase_optimizer(model, config, phases[phase_index][0],
                                                    steps_per_epoch)
            save(phases[phase_index][0], 0)
        bar.close()
    model = model.cpu()  # evaluation and deployment run on the CPU (numpy circuit engines)
    metrics = _final_metrics(model, data, config, history,
                             elapsed + time.perf_counter() - started, noise_model, deploy_draws)
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def software_model(model: S4DClassifier, config: RunConfig, data: SequenceData
                   ) -> S4DClassifier:
    """The software (fake-quantized, noise-free) model with the weights of ``model``."""
    arch = pruned_config(config) if prunes(config) else config
    digital = build_model(arch, data.d_input, data.n_classes, seed=config.seed)
    return load_weights(digital, model.state_dict()).eval()


def _final_metrics(model: S4DClassifier, data: SequenceData, config: RunConfig,
                   history: list, seconds: float, noise_model=None, deploy_draws: int = 3
                   ) -> dict:
    hardware = None
    if noise_model is not None:
        # software figures of a hardware-aware run: its weights without the analog layers
        model = software_model(model, config, data)
        hardware = deployed_accuracy(model, data.x_test, data.y_test, noise_model,
                                     deploy_draws, config.seed, digital=config.digital)
        hardware.update(noise=config.noise, noise_sha256=noise_digest(config.noise))
    test = evaluate(model, data.x_test, data.y_test)
    # The deployed form: the same network stepped through real matrix-vector products.
    step = evaluate(RecurrentClassifier(model), data.x_test, data.y_test)
    software = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
                "test_accuracy_step_mode": step["accuracy"],
                "train_accuracy": evaluate(model, data.x_train, data.y_train)["accuracy"]}
    if len(data.y_val):
        software["val_accuracy"] = evaluate(model, data.x_val, data.y_val)["accuracy"]
    ssm = model.blocks[0].ssm
    return {
        "schema": RUN_SCHEMA,
        "task": config.data.task,
        "config_hash": config_hash(config),
        "config": to_dict(config),
        "data": {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test),
                 "length": data.length, "d_input": data.d_input},
        "model": {"parameters": sum(p.numel() for p in model.parameters()),
                  "d_model": ssm.d_model, "d_state": ssm.d_state,
                  "n_layers": len(model.blocks)},
        "software": software,
        # deployed on the training noise model (hardware-aware runs); else see pyaimc deploy
        "hardware": hardware,
        "epochs": len(history),
        "train_seconds": seconds,
        "threads": torch.get_num_threads(),
        "history": history,
        "provenance": provenance(seed=config.seed, source=config.data.task),
    }

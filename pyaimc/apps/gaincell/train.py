"""Training and evaluation of the character GPT: pre-training, fine-tuning, perplexity.

Training with analog attention is hardware-aware: every mini-batch gets fresh write noise and,
with ``resample_cells``, a fresh chip (cell-to-cell retention and threshold variation), so the
model learns the distribution rather than one instance. Evaluation uses one fixed chip and one
fixed noise draw (seeded).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pyaimc.apps.gaincell.corpus import random_batch
from pyaimc.apps.gaincell.model import CharGPT


@dataclass
class TrainConfig:
    """Optimiser settings.

    Attributes
    ----------
    steps : int
    batch, length : int
        Sequences per mini-batch and tokens per sequence.
    lr : float
        Peak learning rate (AdamW), cosine decay to 10 % after ``warmup`` steps.
    warmup : int
    weight_decay : float
    seed : int
        Seed of the batches and of the hardware noise.
    resample_cells : bool
        Draw a new chip for every mini-batch (analog attention).
    params : str
        ``"all"`` or ``"adaptation"`` (only the analog cores' scales, shifts, thresholds, gains).
    """

    steps: int = 1000
    batch: int = 32
    length: int = 128
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    seed: int = 0
    resample_cells: bool = True
    params: str = "all"

    def to_dict(self) -> dict:
        return asdict(self)


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train(model: CharGPT, data: np.ndarray, cfg: TrainConfig, progress: bool = False
          ) -> dict:
    """Train ``model`` in place on ``data`` (encoded text); returns the loss history.

    Returns
    -------
    dict
        ``{"loss": [...] (mean of every 50 steps), "seconds": float}``.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if cfg.params == "adaptation":
        params = [p for c in model.analog_cores() for p in c.adaptation_parameters()]
    elif cfg.params == "all":
        params = list(model.parameters())
    else:
        raise ValueError(f"params must be 'all' or 'adaptation', got {cfg.params!r}")
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=cfg.lr)
    model.train()
    losses, chunk = [], []
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=f"train {model.attention}", leave=False)
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        if cfg.resample_cells:
            for core in model.analog_cores():
                core.resample_cells(rng)
        x, y = random_batch(data, cfg.batch, cfg.length, gen)
        noise = model.sample_write_noise(cfg.batch, cfg.length, gen)
        logits = model(x, write_noise=noise)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        chunk.append(loss.item())
        if len(chunk) == 50 or step == cfg.steps - 1:
            losses.append(float(np.mean(chunk)))
            chunk = []
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    return {"loss": losses, "seconds": time.perf_counter() - t0}


@torch.no_grad()
def perplexity(model: CharGPT, x: torch.Tensor, y: torch.Tensor, batch: int = 32,
               noise_seed: int | None = 0) -> float:
    """Per-character perplexity ``exp(mean NLL)`` of targets ``y`` given inputs ``x``.

    ``noise_seed``: seed of the write noise (analog attention; None: noiseless writes).
    """
    model.eval()
    gen = torch.Generator().manual_seed(noise_seed) if noise_seed is not None else None
    total, count = 0.0, 0
    for s in range(0, x.shape[0], batch):
        xb, yb = x[s:s + batch], y[s:s + batch]
        noise = (model.sample_write_noise(xb.shape[0], xb.shape[1], gen)
                 if gen is not None else None)
        logits = model(xb, write_noise=noise)
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   yb.reshape(-1), reduction="sum"))
        count += yb.numel()
    return math.exp(total / count)


def save_checkpoint(model: CharGPT, path, meta: dict) -> None:
    """Weights and the attention setup (``torch.save``; written through a temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"state": model.state_dict(), "config": model.cfg.to_dict(),
                "attention": model.attention, "window": model.window, "meta": meta}, tmp)
    os.replace(tmp, path)


def load_checkpoint(model: CharGPT, path) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (same attention setup)."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob["attention"] != model.attention or blob["window"] != model.window:
        raise ValueError(f"{path}: holds attention {blob['attention']!r} window "
                         f"{blob['window']}, the model has {model.attention!r} {model.window}")
    model.load_state_dict(blob["state"])
    return blob["meta"]

"""A small character-level GPT whose attention core can be swapped: exact, window, gain cells.

The blocks are the usual pre-LayerNorm decoder blocks (GPT-2 layout, learned positions). Only the
core between the Q/K/V projection and the output projection changes with ``attention``:

``"exact"``   causal softmax over the whole context;
``"window"``  causal softmax over the last ``window`` tokens (the digital sliding-window baseline);
``"linear"``  the gain-cell core's intermediate model: hard-sigmoid read-out, ideal linear cells
              (the adaptation's first fine-tuning runs on it at digital speed);
``"analog"``  :class:`~pyaimc.apps.gaincell.attention.GainCellCore` (gain-cell arrays).

:meth:`CharGPT.set_attention` swaps the cores of a trained model in place (the projections, MLPs
and embeddings are kept), which is how a pre-trained model goes onto the hardware.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from pyaimc.apps.gaincell.attention import GainCellCore, Periphery, SoftmaxCore
from pyaimc.apps.gaincell.device import GainCellModel

ATTENTION_KINDS = ("exact", "window", "linear", "analog")


@dataclass
class GPTConfig:
    """Sizes of the model.

    Attributes
    ----------
    vocab : int
    context : int
        Longest sequence (learned positions), tokens.
    d_model, n_layer, n_head : int
    """

    vocab: int
    context: int = 128
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAttention(nn.Module):
    """Q/K/V projection (digital), an attention core, output projection (digital)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if cfg.d_model % cfg.n_head:
            raise ValueError(f"d_model {cfg.d_model} is not a multiple of n_head {cfg.n_head}")
        self.n_head, self.head_dim = cfg.n_head, cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.core: nn.Module = SoftmaxCore()

    def heads(self, x):
        """Per-head ``q, k, v`` of ``x`` ``(B, T, C)`` -> each ``(B, H, T, d)``."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split(self.n_head * self.head_dim, dim=-1)
        shape = (b, t, self.n_head, self.head_dim)
        return (q.view(shape).transpose(1, 2), k.view(shape).transpose(1, 2),
                v.view(shape).transpose(1, 2))

    def merge(self, y):
        b, h, t, d = y.shape
        return self.proj(y.transpose(1, 2).reshape(b, t, h * d))

    def forward(self, x, write_noise=None):
        q, k, v = self.heads(x)
        if isinstance(self.core, GainCellCore):
            return self.merge(self.core(q, k, v, write_noise=write_noise))
        return self.merge(self.core(q, k, v))

    def step(self, x, state, write_noise=None):
        """``x`` ``(B, C)`` of one token -> ``(B, C)``."""
        q, k, v = (z.squeeze(-2) for z in self.heads(x.unsqueeze(1)))
        if isinstance(self.core, GainCellCore):
            y = self.core.step(q, k, v, state, write_noise=write_noise)
        else:
            y = self.core.step(q, k, v, state)
        return self.merge(y.unsqueeze(-2)).squeeze(1)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model))

    def forward(self, x, write_noise=None):
        x = x + self.attn(self.ln1(x), write_noise=write_noise)
        return x + self.mlp(self.ln2(x))

    def step(self, x, state, write_noise=None):
        x = x + self.attn.step(self.ln1(x), state, write_noise=write_noise)
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """Character-level decoder-only transformer.

    Parameters
    ----------
    cfg : GPTConfig
    seed : int
        Seed of the weight initialisation.
    """

    def __init__(self, cfg: GPTConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        self.attention, self.window = "exact", None
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    p.copy_(0.02 * torch.randn(p.shape, generator=gen))
                elif name.endswith("bias"):
                    p.zero_()

    # ------------------------------------------------------------------ attention swap
    def set_attention(self, kind: str, window: int | None = None,
                      device_model: GainCellModel | None = None,
                      periphery: Periphery | None = None, seed: int = 0) -> "CharGPT":
        """Replace every layer's attention core (weights of the projections are kept).

        Parameters
        ----------
        kind : {"exact", "window", "linear", "analog"}
        window : int
            Tokens in the window (``"window"``, ``"analog"``).
        device_model : GainCellModel
            Gain-cell technology (``"analog"``; default :class:`GainCellModel`).
        periphery : Periphery, optional
        seed : int
            Seed of the chip (cell-to-cell variation), layer ``l`` uses ``seed + l``.

        Going between ``"linear"`` and ``"analog"`` with the same window keeps the cores'
        adaptation parameters (scales, shifts, threshold, output gain and bias).
        """
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_KINDS)}, "
                             f"got {kind!r}")
        if kind != "exact" and (window is None or window < 1):
            raise ValueError(f"attention {kind!r} needs a window of at least 1 token")
        for layer, block in enumerate(self.blocks):
            attn = block.attn
            if kind == "exact":
                attn.core = SoftmaxCore()
            elif kind == "window":
                attn.core = SoftmaxCore(window)
            else:
                old = attn.core
                attn.core = GainCellCore(attn.n_head, attn.head_dim, window,
                                         device_model or GainCellModel(), periphery,
                                         rng=np.random.default_rng(seed + layer),
                                         linear=kind == "linear")
                if isinstance(old, GainCellCore) and old.window == window:
                    with torch.no_grad():
                        for new_p, old_p in zip(attn.core.adaptation_parameters(),
                                                old.adaptation_parameters()):
                            new_p.copy_(old_p)
        self.attention, self.window = kind, window
        return self

    def analog_cores(self) -> list[GainCellCore]:
        return [b.attn.core for b in self.blocks if isinstance(b.attn.core, GainCellCore)]

    def set_device_model(self, device_model: GainCellModel) -> None:
        """Change the gain-cell technology of every analog core (same chip)."""
        for core in self.analog_cores():
            core.set_device_model(device_model)

    # ------------------------------------------------------------------ whole sequence
    def sample_write_noise(self, batch: int, length: int,
                           generator: torch.Generator | None = None) -> list | None:
        """Write noise of every analog layer for a batch of sequences (None without noise)."""
        cores = self.analog_cores()
        if not cores:
            return None
        noise = [c.sample_write_noise((batch, c.heads, length, c.dim), generator) for c in cores]
        return None if all(n is None for n in noise) else noise

    def forward(self, idx, write_noise: list | None = None):
        """Logits ``(B, T, vocab)`` of token indices ``(B, T)``.

        ``write_noise``: one tensor per layer from :meth:`sample_write_noise` (analog only).
        """
        t = idx.shape[1]
        if t > self.cfg.context:
            raise ValueError(f"sequence of {t} tokens is longer than the context "
                             f"{self.cfg.context}")
        x = self.tok(idx) + self.pos(torch.arange(t))
        for layer, block in enumerate(self.blocks):
            x = block(x, write_noise=None if write_noise is None else write_noise[layer])
        return self.head(self.ln_f(x))

    # ------------------------------------------------------------------ generation
    def init_state(self, batch: int) -> list[dict]:
        return [b.attn.core.init_state(batch, b.attn.n_head, b.attn.head_dim)
                for b in self.blocks]

    def step(self, token, position: int, state: list[dict], write_noise: list | None = None):
        """Logits ``(B, vocab)`` of the next token after ``token`` ``(B,)`` at ``position``.

        ``write_noise``: per layer, the noise of this token ``(2, B, H, d)`` (analog only).
        """
        x = self.tok(token) + self.pos(torch.tensor(position))
        for layer, block in enumerate(self.blocks):
            x = block.step(x, state[layer],
                           write_noise=None if write_noise is None else write_noise[layer])
        return self.head(self.ln_f(x))

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, n: int, generator: torch.Generator | None = None,
                 temperature: float = 1.0, write_noise_generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Sample ``n`` tokens after ``prompt`` ``(B, T0)`` step by step (``T0 + n <= context``).

        With analog attention and ``write_noise_generator``, every written K/V row gets fresh
        write noise.
        """
        b, t0 = prompt.shape
        if t0 + n > self.cfg.context:
            raise ValueError(f"prompt {t0} + {n} tokens exceed the context {self.cfg.context}")
        state = self.init_state(b)
        cores = [blk.attn.core for blk in self.blocks]
        out = [prompt[:, i] for i in range(t0)]

        def noise():
            if write_noise_generator is None or not self.analog_cores():
                return None
            return [c.sample_write_noise((b, c.heads, c.dim), write_noise_generator)
                    for c in cores]

        logits = None
        for i in range(t0):
            logits = self.step(prompt[:, i], i, state, write_noise=noise())
        for i in range(t0, t0 + n):
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            out.append(nxt)
            if i + 1 < t0 + n:
                logits = self.step(nxt, i, state, write_noise=noise())
        return torch.stack(out, dim=1)

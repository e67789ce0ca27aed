"""The perplexity study: exact, sliding-window and gain-cell attention vs window and decay time.

One pre-trained character GPT (exact attention) is the starting point of every run:

``exact``            the pre-trained model itself;
``window``           its attention restricted to the last ``W`` tokens, fine-tuned as many steps
                     as the analog adaptation in all (the digital baseline the analog model is
                     held against);
``analog``           the gain-cell core with the direct abs-max mapping (before adaptation);
``analog_adapted``   after the adaptation: layer-wise calibration of the intermediate model
                     (hard-sigmoid read-out on ideal linear cells) against softmax, its
                     fine-tuning (``linear_steps``, at digital speed, once per window), then on
                     the gain cells layer-wise calibration against that intermediate model and
                     a short hardware-aware fine-tuning (``finetune_steps``, per time constant).

Runs sweep the window at the nominal retention time constant, and the time constant at one
window. Perplexity is on held-out standard-library modules (and, for comparison, on training
text); analog runs are evaluated on chips and write noise never seen in training (mean and
spread over ``eval_chips`` chips). Every trained model is cached as a checkpoint under the work
folder (keyed by the settings), so a re-run only evaluates.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from pyaimc.apps.gaincell.adapt import calibrate, map_ranges
from pyaimc.apps.gaincell.attention import Periphery
from pyaimc.apps.gaincell.corpus import VOCAB, eval_batches, load_corpus, random_batch
from pyaimc.apps.gaincell.device import GainCellModel
from pyaimc.apps.gaincell.model import CharGPT, GPTConfig
from pyaimc.apps.gaincell.train import (TrainConfig, load_checkpoint, perplexity,
                                        save_checkpoint, train)


@dataclass
class StudyConfig:
    """Settings of the study (defaults: the committed results).

    Attributes
    ----------
    d_model, n_layer, n_head, context : int
        Model size; ``context`` is also the evaluation sequence length.
    pretrain_steps, pretrain_batch, pretrain_lr
        Pre-training with exact attention.
    linear_steps, linear_lr
        Fine-tuning of the intermediate linear-cell model (per window).
    finetune_steps, finetune_batch, finetune_lr
        Final fine-tuning on the gain cells (per window and time constant); the window
        baseline is fine-tuned ``linear_steps + finetune_steps`` steps at ``finetune_lr``.
    calib_steps, calib_sequences
        Layer-wise calibration (Adam steps per layer; training sequences used).
    windows : tuple of int
        Window sizes swept at ``nominal_tau``.
    decay_window : int
        Window of the decay sweep.
    decays : tuple of float
        Retention time constants swept (s), besides ``nominal_tau``.
    nominal_tau : float
        Median retention time constant of the window sweep, s.
    token_period : float
        Time between tokens, s.
    eval_sequences : int
        Held-out sequences (and as many training sequences for the in-sample figure).
    eval_chips : int
        Chips (cell variation and write noise) each analog model is evaluated on.
    signed_query : bool
        Sign-magnitude query pulses (two read phases).
    ablation : bool
        Also adapt the ``decay_window`` model at ``nominal_tau`` without any rounding (write
        DAC, query pulses and ADC continuous), to separate the cost of the paper's resolutions
        from that of the hard-sigmoid read-out and the cells.
    seed : int
    """

    d_model: int = 64
    n_layer: int = 3
    n_head: int = 4
    context: int = 128
    pretrain_steps: int = 2000
    pretrain_batch: int = 32
    pretrain_lr: float = 3e-3
    linear_steps: int = 2500
    linear_lr: float = 2e-3
    finetune_steps: int = 300
    finetune_batch: int = 16
    finetune_lr: float = 1e-3
    calib_steps: int = 150
    calib_sequences: int = 16
    windows: tuple = (8, 16, 32, 64)
    decay_window: int = 32
    decays: tuple = (3e-6, 1e-5, 3e-5, 1e-4, 1e-3)
    nominal_tau: float = 5e-3
    token_period: float = 1e-6
    eval_sequences: int = 200
    eval_chips: int = 3
    signed_query: bool = True
    ablation: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["windows"], d["decays"] = list(self.windows), list(self.decays)
        return d

    def key(self, *fields_: str) -> str:
        """Short hash of the named settings (the parts a cached run depends on)."""
        d = self.to_dict()
        blob = json.dumps({f: d[f] for f in fields_}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


MODEL_FIELDS = ("d_model", "n_layer", "n_head", "context", "pretrain_steps", "pretrain_batch",
                "pretrain_lr", "seed")
TUNE_FIELDS = MODEL_FIELDS + ("linear_steps", "linear_lr", "finetune_steps", "finetune_batch",
                              "finetune_lr", "calib_steps", "calib_sequences", "token_period",
                              "signed_query")


@dataclass
class Study:
    """What the runs share: data, the base model, the folder of checkpoints."""

    cfg: StudyConfig
    work: Path
    progress: bool = False
    log: callable = print
    corpus: object = None
    test: tuple = ()
    train_eval: tuple = ()
    calib: torch.Tensor = None
    train_seconds: dict = field(default_factory=dict)

    def __post_init__(self):
        self.work = Path(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.corpus = load_corpus()
        c = self.cfg
        self.test = eval_batches(self.corpus.test, c.context, c.eval_sequences)
        self.train_eval = eval_batches(self.corpus.train, c.context, c.eval_sequences)
        self.calib, _ = random_batch(self.corpus.train, c.calib_sequences, c.context,
                                     torch.Generator().manual_seed(c.seed + 7))

    # ------------------------------------------------------------------ models
    def gpt_config(self) -> GPTConfig:
        c = self.cfg
        return GPTConfig(vocab=len(VOCAB), context=c.context, d_model=c.d_model,
                         n_layer=c.n_layer, n_head=c.n_head)

    def device_model(self, tau: float, rounding: bool = True) -> GainCellModel:
        levels = {} if rounding else {"write_levels": 0}
        return GainCellModel(tau=tau, token_period=self.cfg.token_period, **levels)

    def periphery(self, rounding: bool = True) -> Periphery:
        levels = {} if rounding else {"query_levels": 0, "out_levels": 0}
        return Periphery(signed_query=self.cfg.signed_query, **levels)

    def base(self) -> CharGPT:
        """The pre-trained exact-attention model (trained once, then read from its checkpoint)."""
        c = self.cfg
        path = self.work / f"base-{c.key(*MODEL_FIELDS)}.pt"
        model = CharGPT(self.gpt_config(), seed=c.seed)
        if path.exists():
            meta = load_checkpoint(model, path)
            self.train_seconds["pretrain"] = meta["history"]["seconds"]
            return model
        self.log(f"pre-training the exact-attention model ({c.pretrain_steps} steps)")
        hist = train(model, self.corpus.train,
                     TrainConfig(steps=c.pretrain_steps, batch=c.pretrain_batch,
                                 length=c.context, lr=c.pretrain_lr, seed=c.seed),
                     progress=self.progress)
        save_checkpoint(model, path, {"history": hist})
        self.train_seconds["pretrain"] = hist["seconds"]
        return model

    def _tuned(self, name: str, model: CharGPT, prepare, steps: int, lr: float
               ) -> tuple[CharGPT, dict]:
        """Fine-tune ``model`` after ``prepare(model)`` (cached as ``name``)."""
        c = self.cfg
        path = self.work / f"{name}-{c.key(*TUNE_FIELDS)}.pt"
        if path.exists():
            meta = load_checkpoint(model, path)
            self.train_seconds[name] = meta["seconds"]
            return model, meta
        self.log(f"{name}: calibrating and fine-tuning {steps} steps")
        t0 = time.perf_counter()
        meta = prepare(model) or {}
        hist = train(model, self.corpus.train,
                     TrainConfig(steps=steps, batch=c.finetune_batch, length=c.context, lr=lr,
                                 warmup=20, seed=c.seed + 1),
                     progress=self.progress)
        meta.update(history=hist, seconds=time.perf_counter() - t0)
        save_checkpoint(model, path, meta)
        self.train_seconds[name] = meta["seconds"]
        return model, meta

    def window_model(self, window: int) -> tuple[CharGPT, dict]:
        c = self.cfg
        model = self.base().set_attention("window", window)
        return self._tuned(f"window{window}", model, lambda m: None,
                           c.linear_steps + c.finetune_steps, c.finetune_lr)

    def _calibration(self, model: CharGPT, reference: str) -> dict:
        report = calibrate(model, self.calib, steps=self.cfg.calib_steps, seed=self.cfg.seed,
                           chip_seed=self.cfg.seed, reference=reference)
        return {str(k): {kk: v[kk] for kk in ("error_before", "error_after")}
                for k, v in report.items()}

    def linear_model(self, window: int, rounding: bool = True) -> tuple[CharGPT, dict]:
        """The intermediate model: hard-sigmoid read-out on ideal linear cells, calibrated
        against softmax and fine-tuned (the device model only sets the voltage range)."""
        c = self.cfg
        model = self.base().set_attention("linear", window,
                                          self.device_model(c.nominal_tau, rounding),
                                          self.periphery(rounding), seed=c.seed)
        map_ranges(model, self.calib)

        def prepare(m):
            return {"calibration": self._calibration(m, "softmax"),
                    "perplexity_calibrated": self.evaluate(m)["perplexity"]}

        suffix = "" if rounding else "-norounding"
        return self._tuned(f"linear{window}{suffix}", model, prepare, c.linear_steps,
                           c.linear_lr)

    def analog_model(self, window: int, tau: float, adapted: bool, rounding: bool = True
                     ) -> tuple[CharGPT, dict]:
        """The base model on gain cells: direct mapping, or adapted (see the module docstring).

        ``rounding=False``: write DAC, query pulses and ADC without rounding (ablation)."""
        c = self.cfg
        suffix = "" if rounding else "-norounding"
        if not adapted:
            model = self.base().set_attention("analog", window,
                                              self.device_model(tau, rounding),
                                              self.periphery(rounding), seed=c.seed)
            map_ranges(model, self.calib)
            return model, {}
        model, linear_meta = self.linear_model(window, rounding)
        linear_ppl = self.evaluate(model)["perplexity"]
        model.set_attention("analog", window, self.device_model(tau, rounding),
                            self.periphery(rounding), seed=c.seed)

        def prepare(m):
            return {"linear": {"calibration": linear_meta["calibration"],
                               "perplexity_calibrated": linear_meta["perplexity_calibrated"],
                               "perplexity": linear_ppl},
                    "calibration": self._calibration(m, "linear"),
                    "perplexity_calibrated": self.evaluate(m)["perplexity"]}

        return self._tuned(f"analog{window}-tau{tau:g}{suffix}", model, prepare,
                           c.finetune_steps, c.finetune_lr)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: CharGPT, in_sample: bool = False) -> dict:
        """Held-out perplexity (analog: mean and sample std over ``eval_chips`` chips)."""
        x, y = self.test
        if model.attention != "analog":
            out = {"perplexity": perplexity(model, x, y, noise_seed=None)}
            if in_sample:
                out["perplexity_train"] = perplexity(model, *self.train_eval, noise_seed=None)
            return out
        values, train_values = [], []
        for chip in range(self.cfg.eval_chips):
            seed = 1000 + chip  # chips and noise never drawn in training or calibration
            for layer, core in enumerate(model.analog_cores()):
                core.resample_cells(np.random.default_rng(seed * 100 + layer))
            values.append(perplexity(model, x, y, noise_seed=seed))
            if in_sample:
                train_values.append(perplexity(model, *self.train_eval, noise_seed=seed))
        out = {"perplexity": float(np.mean(values)),
               "perplexity_chip_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
        if in_sample:
            out["perplexity_train"] = float(np.mean(train_values))
        return out


def _row(window, decay, attention, result, **extra) -> dict:
    row = {"window": window, "decay_s": decay, "attention": attention}
    row.update(result)
    row.update(extra)
    return row


def run_study(cfg: StudyConfig, work: str | Path, progress: bool = False, log=print) -> dict:
    """All rows of the study (see the module docstring); trained models are cached in ``work``.

    Returns
    -------
    dict
        ``{"rows", "transfer", "ablation", "calibration", "train_seconds" (training and
        calibration of all runs, cached ones included), "seconds", "corpus"}``.
    """
    st = Study(cfg, work, progress=progress, log=log)
    t0 = time.perf_counter()
    rows, transfer, calibration = [], [], {}
    base = st.base()
    rows.append(_row(None, None, "exact", st.evaluate(base, in_sample=True)))
    log(f"exact: perplexity {rows[-1]['perplexity']:.3f}")

    def window_rows(w):
        raw = st.evaluate(st.base().set_attention("window", w))
        model, meta = st.window_model(w)
        rows.append(_row(w, None, "window", st.evaluate(model, in_sample=True),
                         perplexity_before_finetune=raw["perplexity"]))
        log(f"window {w}: {rows[-1]['perplexity']:.3f} (before fine-tuning "
            f"{raw['perplexity']:.3f})")

    def analog_rows(w, tau, rows=rows, rounding=True):
        model, _ = st.analog_model(w, tau, adapted=False, rounding=rounding)
        rows.append(_row(w, tau, "analog", st.evaluate(model, in_sample=True)))
        model, meta = st.analog_model(w, tau, adapted=True, rounding=rounding)
        rows.append(_row(w, tau, "analog_adapted", st.evaluate(model, in_sample=True),
                         perplexity_calibrated=meta["perplexity_calibrated"],
                         perplexity_linear=meta["linear"]["perplexity"],
                         perplexity_linear_calibrated=meta["linear"]["perplexity_calibrated"]))
        calibration[f"W{w}-tau{tau:g}" + ("" if rounding else "-norounding")] = {
            "linear": meta["linear"]["calibration"], "analog": meta["calibration"]}
        log(f"analog W {w} tau {tau:g} s: direct {rows[-2]['perplexity']:.3f}, adapted "
            f"{rows[-1]['perplexity']:.3f} (calibrated only "
            f"{meta.get('perplexity_calibrated', float('nan')):.3f})")
        return model

    for w in cfg.windows:
        window_rows(w)
        model = analog_rows(w, cfg.nominal_tau)
        if w == cfg.decay_window:
            # the model adapted at the nominal time constant, on chips that leak faster
            for tau in cfg.decays:
                model.set_device_model(st.device_model(tau))
                transfer.append(_row(w, tau, "analog_adapted", st.evaluate(model),
                                     adapted_at_decay_s=cfg.nominal_tau))
    if cfg.decay_window not in cfg.windows:
        window_rows(cfg.decay_window)
    for tau in cfg.decays:
        analog_rows(cfg.decay_window, tau)
    ablation = []
    if cfg.ablation:
        log("ablation: no rounding anywhere")
        analog_rows(cfg.decay_window, cfg.nominal_tau, rows=ablation, rounding=False)
        for r in ablation:
            r["rounding"] = False
    return {"rows": rows, "transfer": transfer, "ablation": ablation, "calibration": calibration,
            "train_seconds": float(sum(st.train_seconds.values())),
            "seconds": time.perf_counter() - t0, "corpus": st.corpus.describe()}

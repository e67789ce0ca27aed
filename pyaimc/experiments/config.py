"""Typed, nested training configuration with presets, file loading and validation.

A configuration is a :class:`RunConfig` of frozen dataclasses (data, model, quant, train, prune).
It comes from a preset (:data:`PRESETS`) or a JSON/TOML file holding any subset of the keys
(missing keys take the defaults of :class:`RunConfig`, or of the preset named by a top-level
``"preset"`` key). An unknown key or an impossible value raises :class:`ConfigError` naming it,
e.g. ``model.d_state: must be an even integer >= 2, got 63``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from pyaimc.s4d.config import NORMS, POOLS, ConfigError, ModelConfig, QuantConfig
from pyaimc.s4d.quant import Precision, check_precision
from pyaimc.s4d.s4d import DISCRETIZATIONS, INITS

__all__ = ["CONFIG_SCHEMA", "ConfigError", "DataConfig", "ModelConfig", "PruneConfig",
           "QuantConfig", "RunConfig", "TrainConfig", "config_hash", "differences",
           "from_dict", "load_config", "noise_digest", "preset", "to_dict", "validate"]

CONFIG_SCHEMA = "pyaimc.train-config/1"
TASKS = ("mnist1d", "digits", "smnist", "recall")
DIGITS_LAYOUTS = ("rows", "pixels")


@dataclass(frozen=True)
class DataConfig:
    """Which data set and how it is split.

    ``seed`` seeds the MNIST-1D generator (42 gives the standard set), the digits and
    pixel-MNIST splits and the delayed-recall generator. ``val_fraction`` holds out that share of
    the training set as a validation set (for tuning without looking at the test set).
    ``train_size``/``test_size`` truncate the sets (tests). ``length``: sequence length of the
    long-sequence tasks (``smnist``: a square number up to 784, the image averaged down to
    ``sqrt(length)`` pixels a side; ``recall``: any length >= 2; default 784 and 1000).
    """
    task: str = "mnist1d"
    seed: int = 42
    digits_layout: str = "rows"
    val_fraction: float = 0.0
    train_size: Optional[int] = None
    test_size: Optional[int] = None
    length: Optional[int] = None


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: AdamW with linear warm-up and cosine decay, per batch.

    ``ssm_lr`` is the learning rate of the SSM dynamics (``dt``, ``A``, ``B``), which get no
    weight decay. ``shift`` augments by a random circular shift of up to that many steps.
    ``init_from``: a run directory whose final weights (software view) start this run instead
    of a fresh initialisation, e.g. hardware-aware fine-tuning of a software-trained model; its
    model must have this run's sizes. With ``init_from``, ``epochs`` may be 0 (prune and
    fine-tune a trained model).
    """
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-2
    ssm_lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    grad_clip: float = 0.0
    label_smoothing: float = 0.0
    shift: int = 0
    init_from: Optional[str] = None


@dataclass(frozen=True)
class PruneConfig:
    """Structured pruning after training, then ``finetune_epochs`` of fine-tuning.

    ``d_state``: real state size kept per channel (``None``: no state pruning);
    ``d_model``: channels kept (``None``: no channel pruning).
    """
    d_state: Optional[int] = None
    d_model: Optional[int] = None
    finetune_epochs: int = 0
    finetune_lr: float = 3e-3


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run (hashed to match checkpoints)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    seed: int = 0
    noise: Optional[str] = None
    #: S4D parts ("A", "B", "C") a hardware-aware run keeps digital: no programming error in
    #: training, computed exactly in its deployment (written only when set)
    digital: tuple = ()
    #: the tile products of a hardware-aware run's noisy training steps
    #: (:attr:`pyaimc.analog.AnalogConfig.products`: "auto", "bfloat16" or "float32"; written
    #: only when not "auto")
    products: str = "auto"


# ---------------------------------------------------------------------------------------------
# presets

def _weights(bits: Precision) -> QuantConfig:
    # A holds the recurrence, whose error compounds over the sequence: it keeps 8 bits in every
    # preset (set quant.a to go lower). Activations use 8-bit DACs in every quantized preset.
    return QuantConfig(a=8, b=bits, c=bits, dense=bits, act=8)


_FP32 = RunConfig()
PRESETS: dict[str, RunConfig] = {
    "fp32": _FP32,
    "8bit": replace(_FP32, quant=_weights(8)),
    "4bit": replace(_FP32, quant=_weights(4)),
    "2bit": replace(_FP32, quant=_weights(2)),
    "ternary": replace(_FP32, quant=_weights("ternary")),
    # A few seconds end to end: for tests and demos, not for accuracy.
    "tiny": RunConfig(
        data=DataConfig(train_size=512, test_size=128),
        model=ModelConfig(d_model=16, d_state=8, n_layers=1, dropout=0.0),
        train=TrainConfig(epochs=3, batch_size=32, warmup_epochs=0)),
}


def preset(name: str) -> RunConfig:
    """The preset called ``name`` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------
# validation

def _fail(key: str, expected: str, value: Any) -> None:
    raise ConfigError(f"{key}: must be {expected}, got {value!r}")


def _int(key, value, low=None, optional=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        _fail(key, "an integer" + (f" >= {low}" if low is not None else "")
              + (" or null" if optional else ""), value)


def _float(key, value, low=None, high=None, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        _fail(key, "a number", value)
    if low is not None and (value < low or (low_open and value == low)):
        _fail(key, f"a number {'>' if low_open else '>='} {low}", value)
    if high is not None and value > high:
        _fail(key, f"a number <= {high}", value)


def _choice(key, value, choices):
    if value not in choices:
        _fail(key, "one of " + ", ".join(map(repr, choices)), value)


def validate(config: RunConfig) -> RunConfig:
    """Check every value of ``config``; raise :class:`ConfigError` naming the first bad key."""
    d, m, q, t, p = config.data, config.model, config.quant, config.train, config.prune
    _choice("data.task", d.task, TASKS)
    _int("data.seed", d.seed, 0)
    _choice("data.digits_layout", d.digits_layout, DIGITS_LAYOUTS)
    _float("data.val_fraction", d.val_fraction, 0.0, 0.5)
    _int("data.train_size", d.train_size, 1, optional=True)
    _int("data.test_size", d.test_size, 1, optional=True)
    _int("data.length", d.length, 2, optional=True)
    if d.task == "smnist" and d.length is not None and (
            d.length > 784 or round(d.length ** 0.5) ** 2 != d.length):
        _fail("data.length", "a square number <= 784 for smnist", d.length)
    _int("model.d_model", m.d_model, 1)
    _int("model.d_state", m.d_state, 2)
    if m.d_state % 2:
        _fail("model.d_state", "an even integer >= 2", m.d_state)
    _int("model.n_layers", m.n_layers, 1)
    _choice("model.init", m.init, INITS)
    _choice("model.discretization", m.discretization, DISCRETIZATIONS)
    _float("model.dt_min", m.dt_min, 0.0, low_open=True)
    _float("model.dt_max", m.dt_max, m.dt_min)
    _float("model.dropout", m.dropout, 0.0, 0.9)
    _choice("model.norm", m.norm, NORMS)
    _choice("model.pool", m.pool, POOLS)
    if not isinstance(m.prenorm, bool):
        _fail("model.prenorm", "true or false", m.prenorm)
    for name in ("a", "b", "c", "dense"):
        _check_precision(f"quant.{name}", getattr(q, name), True)
    for name in ("act", "state"):
        _check_precision(f"quant.{name}", getattr(q, name), False)
    # a run that starts from another run's weights may go straight to pruning and fine-tuning
    _int("train.epochs", t.epochs, 0 if t.init_from is not None else 1)
    _int("train.batch_size", t.batch_size, 1)
    _float("train.lr", t.lr, 0.0, low_open=True)
    _float("train.ssm_lr", t.ssm_lr, 0.0, low_open=True)
    _float("train.weight_decay", t.weight_decay, 0.0)
    _int("train.warmup_epochs", t.warmup_epochs, 0)
    if t.warmup_epochs > t.epochs:
        _fail("train.warmup_epochs", f"at most train.epochs ({t.epochs})", t.warmup_epochs)
    _float("train.grad_clip", t.grad_clip, 0.0)
    _float("train.label_smoothing", t.label_smoothing, 0.0, 0.5)
    _int("train.shift", t.shift, 0)
    if t.init_from is not None and not isinstance(t.init_from, str):
        _fail("train.init_from", "a run directory or null", t.init_from)
    _int("prune.d_state", p.d_state, 2, optional=True)
    if p.d_state is not None and (p.d_state % 2 or p.d_state > m.d_state):
        _fail("prune.d_state", f"an even integer <= model.d_state ({m.d_state})", p.d_state)
    _int("prune.d_model", p.d_model, 1, optional=True)
    if p.d_model is not None and p.d_model > m.d_model:
        _fail("prune.d_model", f"an integer <= model.d_model ({m.d_model})", p.d_model)
    _int("prune.finetune_epochs", p.finetune_epochs, 0)
    _float("prune.finetune_lr", p.finetune_lr, 0.0, low_open=True)
    _int("seed", config.seed, 0)
    if config.noise is not None and not isinstance(config.noise, str):
        _fail("noise", "a path to a noise-model JSON file or null", config.noise)
    if not isinstance(config.digital, (list, tuple)) or \
            any(part not in ("A", "B", "C") for part in config.digital):
        _fail("digital", 'a list of S4D parts among "A", "B", "C"', config.digital)
    _choice("products", config.products, ("auto", "bfloat16", "float32"))
    return config


def _check_precision(key, value, allow_ternary):
    try:
        check_precision(value, key, allow_ternary)
    except ValueError as err:
        raise ConfigError(str(err)) from None


# ---------------------------------------------------------------------------------------------
# dictionaries, files, hashes

#: keys added after the first version of the schema, with their defaults: written only when set
#: otherwise, so that every earlier run keeps its configuration hash and its checkpoints load
_LATER_KEYS = {("data", "length"): None, ("model", "pool"): "mean"}


def to_dict(config: RunConfig) -> dict:
    """Plain nested dictionary (JSON-ready) of ``config`` (later keys at their defaults left
    out, see ``_LATER_KEYS``)."""
    d = dataclasses.asdict(config)
    for (section, key), default in _LATER_KEYS.items():
        if d[section].get(key, default) == default:
            d[section].pop(key, None)
    if d.get("digital"):
        d["digital"] = sorted(d["digital"])
    else:
        d.pop("digital", None)
    if d.get("products") == "auto":
        d.pop("products")
    return d


def _merge(cls, base, values: Mapping[str, Any], prefix: str):
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a table/object, "
                          f"got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    changes = {}
    for key, value in values.items():
        if key not in known:
            where = prefix.rstrip(".") or "the top level"
            raise ConfigError(f"unknown key {prefix + key!r} "
                              f"(known in {where}: {', '.join(sorted(known))})")
        sub = hints[key]
        if dataclasses.is_dataclass(sub):
            value = _merge(sub, getattr(base, key), value, f"{prefix}{key}.")
        changes[key] = value
    return replace(base, **changes)


def from_dict(values: Mapping[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Build and validate a config from (a subset of) its keys, on top of ``base``.

    A top-level ``"preset"`` key picks the base; a ``"schema"`` key must be
    ``"pyaimc.train-config/1"``.
    """
    values = dict(values)
    schema = values.pop("schema", CONFIG_SCHEMA)
    if schema != CONFIG_SCHEMA:
        raise ConfigError(f"schema: expected {CONFIG_SCHEMA!r}, got {schema!r}")
    if "preset" in values:
        base = preset(values.pop("preset"))
    config = validate(_merge(RunConfig, base or RunConfig(), values, ""))
    return replace(config, digital=tuple(sorted(config.digital)))


def load_config(path: str | Path) -> RunConfig:
    """Read a JSON (``.json``) or TOML (``.toml``) configuration file.

    Errors name the file and the key.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such config file")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file; expected a .json or .toml configuration")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot parse ({err})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: the configuration must be an object of sections "
                          f"(data, model, quant, train, prune, ...), got a "
                          f"{type(values).__name__}")
    try:
        return from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"{path}: a value has the wrong type ({type(err).__name__}: {err})"
                          ) from None


def _without_provenance(value: Any) -> Any:
    """``value`` with every ``provenance`` entry removed, at any depth (the transfer document a
    noise model carries has its own, with its creation time)."""
    if isinstance(value, Mapping):
        return {k: _without_provenance(v) for k, v in value.items() if k != "provenance"}
    if isinstance(value, list):
        return [_without_provenance(v) for v in value]
    return value


def noise_digest(path: str | Path) -> str:
    """Short SHA-256 of a noise model's content (its JSON without any ``provenance``).

    Re-exporting the same model (same device, settings and seed) gives the same digest; a
    model with any other number does not. A missing or unreadable file names the ``noise`` key.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"noise: {str(path)!r}: no such noise-model file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"noise: {str(path)!r}: cannot read the noise model ({err})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"noise: {str(path)!r}: not a noise-model document")
    text = json.dumps(_without_provenance(doc), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(config: RunConfig) -> str:
    """Short SHA-256 of the canonical JSON of ``config``: equal hashes, equal runs.

    With ``noise`` set, the noise model's content (:func:`noise_digest`) is hashed instead of
    its path: another noise model gives another hash, a moved file the same.
    """
    values = to_dict(config)
    if config.noise is not None:
        values["noise"] = {"sha256": noise_digest(config.noise)}
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keys (dotted) whose values differ between two config dictionaries, as ``key: a != b``."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} != {vb!r}")
    return out

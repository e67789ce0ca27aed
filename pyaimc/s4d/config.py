"""The model's part of a run configuration: architecture and precision (frozen dataclasses).

The run configuration (data, training, pruning, presets, files) is
:mod:`pyaimc.experiments.config`, which holds these two as ``RunConfig.model`` and
``RunConfig.quant`` and validates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyaimc.errors import InputError
from pyaimc.s4d.quant import Precision

NORMS = ("layer", "batch")
POOLS = ("mean", "last")


class ConfigError(InputError):
    """A configuration key is unknown or its value impossible; the message names the key."""


@dataclass(frozen=True)
class ModelConfig:
    """Sequence classifier: encoder, ``n_layers`` S4D blocks, mean pooling, decoder.

    The step sizes ``dt`` start log-uniform in ``[dt_min, dt_max]``. The defaults suit short
    sequences (tens of steps): time constants ``1 / (dt |Re a|)`` from 2 to 200 steps.
    ``pool``: the decoder reads the mean of the last block's outputs over time (``"mean"``) or
    its output at the last step (``"last"``: whatever the answer needs must be carried in the
    recurrent state to the end, as in delayed recall).
    """
    d_model: int = 64
    d_state: int = 64
    n_layers: int = 4
    init: str = "lin"
    discretization: str = "zoh"
    dt_min: float = 1e-2
    dt_max: float = 1.0
    dropout: float = 0.1
    norm: str = "layer"
    prenorm: bool = False
    pool: str = "mean"


@dataclass(frozen=True)
class QuantConfig:
    """Precision per part: ``None`` (float), bits (2..16) or ``"ternary"`` for weights.

    ``a``, ``b``, ``c``: the discrete SSM matrices; ``dense``: encoder, GLU and decoder weights;
    ``act``: DAC inputs of every matrix-vector product; ``state``: the recurrent state.
    """
    a: Precision = None
    b: Precision = None
    c: Precision = None
    dense: Precision = None
    act: Optional[int] = None
    state: Optional[int] = None

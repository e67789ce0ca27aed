"""Sliding-window attention on gain-cell memories (the system of Leroux et al., arXiv 2409.19315).

Typical use::

    from pyaimc.apps.gaincell import CharGPT, GPTConfig, GainCellModel, map_ranges, calibrate
    model = CharGPT(GPTConfig(vocab=98))            # ... pre-trained with exact attention
    model.set_attention("analog", window=32, device_model=GainCellModel(tau=5e-3))
    map_ranges(model, x_calib)                      # direct mapping ("before adaptation")
    calibrate(model, x_calib)                       # layer-wise adaptation
    train(model, corpus.train, TrainConfig(steps=300, lr=1e-3))   # short fine-tuning
    perplexity(model, x_test, y_test)
    model.generate(prompt, 100)                     # step by step through the gain cells

Parts: :mod:`.device` (the gain-cell model, ``pyaimc.gaincell/1`` JSON), :mod:`.attention`
(exact, window and gain-cell cores), :mod:`.model` (character GPT), :mod:`.adapt`,
:mod:`.train`, :mod:`.corpus` (offline text), :mod:`.cost` (latency and energy per token),
:mod:`.experiment` (the perplexity study behind ``results/gaincell_attention.json``).
"""

from pyaimc.apps.gaincell.adapt import calibrate, calibrate_core, core_error, map_ranges
from pyaimc.apps.gaincell.attention import GainCellCore, Periphery, SoftmaxCore
from pyaimc.apps.gaincell.cost import (analog_attention_cost, constants_table, cost_table,
                                       digital_attention_cost)
from pyaimc.apps.gaincell.device import SCHEMA, GainCellError, GainCellModel
from pyaimc.apps.gaincell.model import CharGPT, GPTConfig
from pyaimc.apps.gaincell.train import TrainConfig, perplexity, train

__all__ = [
    "CharGPT", "GPTConfig", "GainCellCore", "GainCellError", "GainCellModel", "Periphery",
    "SCHEMA", "SoftmaxCore", "TrainConfig", "analog_attention_cost", "calibrate",
    "calibrate_core", "constants_table", "core_error", "cost_table", "digital_attention_cost",
    "map_ranges", "perplexity", "train",
]

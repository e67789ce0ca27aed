"""Model size in bits: what a deployed classifier stores.

Counted per stored value: the matrices on crossbars at their precision (``n`` bits, or
``log2 3`` for ternary weights, 32 for float), everything digital (biases, ``D``, norm scales
and offsets) at 32 bits. The S4D ``A`` counts ``N`` values per channel (the real and imaginary
parts of its ``N/2`` complex modes; its 2x2 tiles repeat them), ``B`` and ``C`` ``N`` each.
Training-only parameters (``log_dt``, ``log_A_real``, ``A_imag``, the continuous ``B``) are
folded into ``Abar`` and ``Bbar`` and do not count.
"""

from __future__ import annotations

import math

from torch import nn

from pyaimc.s4d.config import QuantConfig
from pyaimc.s4d.quant import Precision

FLOAT_BITS = 32


def bits_per_value(precision: Precision) -> float:
    """Information bits of one value at ``precision`` (ternary: ``log2 3``)."""
    if precision is None:
        return float(FLOAT_BITS)
    if precision == "ternary":
        return math.log2(3)
    return float(precision)


def model_bits(model: nn.Module, quant: QuantConfig) -> dict:
    """Bits of a :class:`~pyaimc.s4d.classifier.S4DClassifier` as deployed.

    Returns
    -------
    dict
        ``total``, ``analog`` (crossbar matrices), ``digital`` (the rest), and the value counts
        ``analog_values``, ``digital_values``.
    """
    analog, digital, n_analog, n_digital = 0.0, 0.0, 0, 0

    def dense(layer):
        nonlocal analog, digital, n_analog, n_digital
        n = layer.weight.numel()
        analog += n * bits_per_value(quant.dense)
        n_analog += n
        if layer.bias is not None:
            digital += layer.bias.numel() * FLOAT_BITS
            n_digital += layer.bias.numel()

    dense(model.encoder)
    for block in model.blocks:
        ssm = block.ssm
        hn = ssm.d_model * ssm.d_state
        for precision in (quant.a, quant.b, quant.c):
            analog += hn * bits_per_value(precision)
            n_analog += hn
        digital += ssm.D.numel() * FLOAT_BITS
        n_digital += ssm.D.numel()
        dense(block.glu)
        for p in block.norm.parameters():
            digital += p.numel() * FLOAT_BITS
            n_digital += p.numel()
    dense(model.decoder)
    return {"total": analog + digital, "analog": analog, "digital": digital,
            "analog_values": n_analog, "digital_values": n_digital}

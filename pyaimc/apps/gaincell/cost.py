"""Latency and energy per generated token of the attention: gain-cell arrays vs a digital KV cache.

A first-order model from documented constants (:data:`ANALOG`, :data:`DIGITAL`; each carries its
unit and source; ``docs/gaincell.md`` discusses them). Per layer and generated token, every head:

analog (gain cells, heads in parallel, layers one after another)
    write one K row and one V row (``2 d`` cells: storage node and write bit line charged, one
    write-DAC conversion each); stage 1: ``d`` query pulses along word lines of ``W`` cells,
    the cells' read current integrated for the pulse width; ``W`` charge-to-pulse conversions;
    stage 2: the same for the V array driven by those ``W`` pulses; ``d`` ADC conversions;
    the digital periphery's per-channel scale and shift (``4 d`` multiply-adds).
    Latency: write, the stage-1 pulse window (two with signed queries), the stage-2 window,
    one ADC conversion.
digital (a GPU reading its KV cache)
    read ``2 W d`` 16-bit values from memory (HBM by default, or on-chip SRAM), ``2 W d``
    FP16 multiply-adds, ``W`` exponentials. Latency: the bytes over the memory bandwidth plus
    one kernel launch per layer (the floor for small models).

Only the attention is counted (the projections and MLPs are the same on both sides).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyaimc.apps.gaincell.attention import Periphery
from pyaimc.apps.gaincell.device import GainCellModel


@dataclass(frozen=True)
class Constant:
    value: float
    unit: str
    source: str


ANALOG = {
    "c_line_per_cell": Constant(0.1e-15, "F", "assumption: wire and junction capacitance per "
                                "cell along a word or bit line (28 nm class)"),
    "e_write_dac": Constant(10e-15, "J", "assumption: one 3-bit write-DAC conversion"),
    "e_pulse_gen": Constant(5e-15, "J", "assumption: pulse generator logic per pulse "
                            "(besides charging the word line)"),
    "e_charge_to_pulse": Constant(20e-15, "J", "assumption: one charge-to-pulse conversion "
                                  "(integrator reset, comparator, ramp share)"),
    "adc_fom": Constant(10e-15, "J/conversion-step", "Walden figure of merit of good SAR ADCs "
                        "(Murmann, ADC Performance Survey 1997-2024)"),
    "e_mac8": Constant(0.23e-12, "J", "Horowitz, ISSCC 2014 (45 nm): 8-bit multiply 0.2 pJ + "
                       "add 0.03 pJ"),
    "t_write": Constant(5e-9, "s", "assumption: gain-cell write pulse"),
    "t_adc": Constant(10e-9, "s", "assumption: one 5-bit SAR conversion"),
    "activity": Constant(0.5, "1", "assumption: mean pulse width and mean cell current as a "
                         "fraction of full scale"),
}

DIGITAL = {
    "bits": Constant(16, "bit", "FP16 KV cache"),
    "e_hbm_bit": Constant(3.9e-12, "J/bit", "HBM2 access energy (O'Connor et al., MICRO 2017)"),
    "e_sram_64bit": Constant(20e-12, "J", "Horowitz, ISSCC 2014: 64-bit read of a 32 KB SRAM"),
    "e_fp16_mac": Constant(1.5e-12, "J", "Horowitz, ISSCC 2014: FP16 multiply 1.1 pJ + add "
                           "0.4 pJ"),
    "e_exp": Constant(15e-12, "J", "assumption: one FP16 exponential (about ten FP16 ops)"),
    "bandwidth": Constant(3.35e12, "B/s", "NVIDIA H100 SXM datasheet: HBM3 bandwidth"),
    "t_launch": Constant(5e-6, "s", "assumption: one CUDA kernel launch per layer (a few us)"),
}


def analog_attention_cost(heads: int, dim: int, window: int, layers: int,
                          device_model: GainCellModel | None = None,
                          periphery: Periphery | None = None,
                          constants: dict | None = None) -> dict:
    """Latency (s) and energy (J) per generated token of gain-cell attention, with the parts.

    Parameters
    ----------
    heads, dim, window, layers : int
    device_model : GainCellModel, optional
        Supply (``v_max``), storage capacitance, read current, pulse length.
    periphery : Periphery, optional
        ADC levels.
    constants : dict, optional
        Overrides of :data:`ANALOG` values (plain floats).
    """
    m = device_model or GainCellModel()
    per = periphery or Periphery()
    c = {k: v.value for k, v in ANALOG.items()}
    c.update(constants or {})
    vdd = m.v_max
    line = window * c["c_line_per_cell"]  # a line runs along the W rows of one array
    write = 2 * dim * ((m.c_store + line) * vdd ** 2 + c["e_write_dac"])
    pulses = dim * (line * vdd ** 2 + c["e_pulse_gen"]) + window * (dim * c["c_line_per_cell"]
                                                                    * vdd ** 2
                                                                    + c["e_pulse_gen"])
    # charge drawn by the cells: mean current times mean pulse width, both stages
    cells = 2 * window * dim * vdd * (c["activity"] * m.i_max) * (c["activity"] * m.t_max)
    converters = window * c["e_charge_to_pulse"]
    bits = max(1, (per.out_levels - 1).bit_length()) if per.out_levels >= 2 else 8
    adc = dim * c["adc_fom"] * 2 ** bits
    digital = 4 * dim * c["e_mac8"]
    parts = {"write": write, "pulses": pulses, "cells": cells,
             "charge_to_pulse": converters, "adc": adc, "digital_periphery": digital}
    per_head = sum(parts.values())
    # signed queries are read in two phases (positive, then negative pulses)
    phases = 2 if per.signed_query else 1
    latency = layers * (c["t_write"] + (phases + 1) * m.t_max + c["t_adc"])
    return {"latency_s": latency, "energy_j": per_head * heads * layers,
            "energy_parts_j": {k: v * heads * layers for k, v in parts.items()},
            "adc_bits": bits}


def digital_attention_cost(heads: int, dim: int, window: int, layers: int,
                           memory: str = "hbm", constants: dict | None = None) -> dict:
    """Latency (s) and energy (J) per generated token of digital attention on a KV cache.

    ``memory``: ``"hbm"`` (the cache in off-chip memory, as on a GPU) or ``"sram"`` (resident
    on chip, a lower bound).
    """
    if memory not in ("hbm", "sram"):
        raise ValueError(f"memory must be 'hbm' or 'sram', got {memory!r}")
    c = {k: v.value for k, v in DIGITAL.items()}
    c.update(constants or {})
    values = 2 * window * dim * heads * layers
    bits = values * c["bits"]
    read = bits * c["e_hbm_bit"] if memory == "hbm" else bits / 64 * c["e_sram_64bit"]
    macs = values * c["e_fp16_mac"]
    exps = window * heads * layers * c["e_exp"]
    latency = bits / 8 / c["bandwidth"] + layers * c["t_launch"]
    return {"latency_s": latency, "energy_j": read + macs + exps,
            "energy_parts_j": {"kv_read": read, "mac": macs, "softmax": exps},
            "memory": memory}


def cost_table(heads: int, dim: int, window: int, layers: int,
               device_model: GainCellModel | None = None,
               periphery: Periphery | None = None) -> dict:
    """Analog and both digital baselines side by side, with the ratios."""
    a = analog_attention_cost(heads, dim, window, layers, device_model, periphery)
    out = {"config": {"heads": heads, "dim": dim, "window": window, "layers": layers},
           "analog": a}
    for memory in ("hbm", "sram"):
        d = digital_attention_cost(heads, dim, window, layers, memory)
        out[f"digital_{memory}"] = d
        out[f"speedup_vs_{memory}"] = d["latency_s"] / a["latency_s"]
        out[f"energy_ratio_vs_{memory}"] = d["energy_j"] / a["energy_j"]
    return out


def constants_table() -> list[dict]:
    """Every constant with its unit and source (for the results and the docs)."""
    rows = []
    for side, table in (("analog", ANALOG), ("digital", DIGITAL)):
        for name, const in table.items():
            rows.append({"side": side, "name": name, "value": const.value, "unit": const.unit,
                         "source": const.source})
    return rows

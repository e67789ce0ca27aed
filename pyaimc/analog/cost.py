"""Energy, latency and area of mapped products, beside a digital baseline.

The counts come from the packed layout (:mod:`pyaimc.analog.mapping`): every read of a product
drives each used row of each of its tiles through a DAC and converts each used column pair once
(the plus and minus arrays share the driver and feed one differential read-out). The crossbar's
own energy is ``t_read * sum_rows v_row I_row`` of both arrays, from the solved currents of the
circuit engine or, behaviorally, ``sum_cells g v_row**2`` (no wire loss). Latency per read:
``t_read`` plus the column pairs of a tile converted one after another by the tile's ADC
(``t_adc`` each), tiles of a product in parallel. Area: cells, one ADC per tile and one DAC per
tile row in use.

The constants are inputs, not measurements: one table, :data:`COSTS`, with the source of each
(override any by name). They are order-of-magnitude figures for a ~32-45 nm process; the
ratios between the parts matter more than the absolute values.
"""

from __future__ import annotations

import dataclasses

__all__ = ["COSTS", "CostTable", "digital_cost", "product_cost"]

#: name -> (value, unit, source)
COSTS: dict[str, tuple[float, str, str]] = {
    "e_adc": (2.0e-12, "J per conversion",
              "8-bit SAR ADC at ~1.2 GS/s, ~2 mW each: ISAAC (Shafiee et al., ISCA 2016), "
              "ADC row of its per-tile component table"),
    "t_adc": (0.8e-9, "s per conversion", "same ADC, 1.28 GS/s"),
    "a_adc": (1.2e-9, "m^2 per ADC (0.0012 mm^2)", "ISAAC, same table"),
    "e_dac": (0.1e-12, "J per conversion",
              "assumed: an 8-bit row driver settling a 64-cell row in 100 ns, an order below "
              "the ADC (AIMC macro surveys put DACs well below ADCs)"),
    "a_dac": (1.0e-10, "m^2 per DAC (100 um^2)", "assumed, same reasoning"),
    "t_read": (100e-9, "s per crossbar read", "ISAAC's crossbar read cycle (100 ns)"),
    "a_cell": (4 * (50e-9) ** 2, "m^2 per cell", "4F^2 1R cell at F = 50 nm (assumed)"),
    "e_mac_int8": (0.23e-12, "J per 8-bit multiply-add",
                   "Horowitz, ISSCC 2014 (45 nm): 8-bit multiply 0.2 pJ + add 0.03 pJ"),
    "e_mac_fp32": (4.6e-12, "J per fp32 multiply-add",
                   "Horowitz, ISSCC 2014 (45 nm): fp32 multiply 3.7 pJ + add 0.9 pJ"),
    "e_sram_byte": (1.25e-12, "J per byte read",
                    "Horowitz, ISSCC 2014: 64-bit read from an 8 kB SRAM 10 pJ"),
    "e_digital_op": (0.9e-12, "J per digital periphery operation",
                     "fp32 add (Horowitz, ISSCC 2014); scales, biases, GELU/GLU, norms"),
    "t_mac": (1.0e-9 / 256, "s per multiply-add, digital baseline",
              "assumed: 256 multiply-add units at 1 GHz"),
}


@dataclasses.dataclass(frozen=True)
class CostTable:
    """The constants of :data:`COSTS`, as attributes (SI units); ``CostTable(e_adc=...)``
    overrides one."""

    e_adc: float = COSTS["e_adc"][0]
    t_adc: float = COSTS["t_adc"][0]
    a_adc: float = COSTS["a_adc"][0]
    e_dac: float = COSTS["e_dac"][0]
    a_dac: float = COSTS["a_dac"][0]
    t_read: float = COSTS["t_read"][0]
    a_cell: float = COSTS["a_cell"][0]
    e_mac_int8: float = COSTS["e_mac_int8"][0]
    e_mac_fp32: float = COSTS["e_mac_fp32"][0]
    e_sram_byte: float = COSTS["e_sram_byte"][0]
    e_digital_op: float = COSTS["e_digital_op"][0]
    t_mac: float = COSTS["t_mac"][0]


def product_cost(layout, reads: float, power: float | None = None,
                 costs: CostTable | None = None) -> dict:
    """Energy (J), latency (s) and area (m^2) of ``reads`` reads of one packed product.

    Parameters
    ----------
    layout : ProductLayout
    reads : float
        Reads per inference.
    power : float, optional
        Mean crossbar power per read, W (both arrays of every tile: ``sum v_row I_row``); None
        leaves the crossbar energy out.
    costs : CostTable, optional
    """
    c = costs or CostTable()
    used = layout.used                                            # (T, rows, cols)
    rows = int(used.any(dim=2).sum())
    cols = int(used.any(dim=1).sum())
    per_tile_cols = used.any(dim=1).sum(dim=1)
    e_dac, e_adc = reads * rows * c.e_dac, reads * cols * c.e_adc
    e_xbar = 0.0 if power is None else reads * power * c.t_read
    latency = reads * (c.t_read + float(per_tile_cols.max()) * c.t_adc)
    area = (2 * layout.n_tiles * layout.rows * layout.cols * c.a_cell
            + layout.n_tiles * c.a_adc + rows * c.a_dac)
    return {"reads": reads, "dac_conversions": reads * rows, "adc_conversions": reads * cols,
            "energy_dac": e_dac, "energy_adc": e_adc, "energy_crossbar": e_xbar,
            "energy": e_dac + e_adc + e_xbar, "latency": latency, "area": area,
            "tiles": layout.n_tiles}


def digital_cost(macs: float, weights_bytes_read: float, int8: bool = True,
                 costs: CostTable | None = None) -> dict:
    """A digital baseline: ``macs`` multiply-adds and the weights they read from SRAM."""
    c = costs or CostTable()
    e_mac = macs * (c.e_mac_int8 if int8 else c.e_mac_fp32)
    e_mem = weights_bytes_read * c.e_sram_byte
    return {"macs": macs, "energy_mac": e_mac, "energy_memory": e_mem,
            "energy": e_mac + e_mem, "latency": macs * c.t_mac}

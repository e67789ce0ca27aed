"""Periphery of the noise model: the input DAC and the column ADC (kind ``"dac_adc"``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pyaimc.noise.protocols import PERIPHERY_MODELS, register


@dataclass
class DAC:
    """Input DAC: ``bits`` signed levels ``v_max * k / (2**(bits-1) - 1)`` (None: no rounding).

    Inputs are scaled per sample (largest magnitude to ``v_max``) before the DAC.
    """

    bits: int | None = 8
    v_max: float = 0.2


@dataclass
class ADC:
    """Column ADC on the difference current of each differential column pair.

    Signed levels ``i_max * k / (2**(bits-1) - 1)``, clipped at ``+-i_max`` (None: no rounding
    or clipping). ``i_max = headroom * sqrt(rows) * v_max * (g_max - g_min)`` at export: a
    column of ``rows`` independent products of full-scale magnitude has a spread of about
    ``sqrt(rows)`` single-cell currents.
    """

    bits: int | None = 8
    i_max: float = 1e-3
    headroom: float = 2.0


@register(PERIPHERY_MODELS)
@dataclass
class DacAdc:
    """A uniform signed DAC on every row and a uniform signed ADC on every column pair.

    The layers convert with :meth:`torch_dac` and :meth:`torch_adc` (straight-through rounding).
    """

    kind = "dac_adc"

    dac: DAC = field(default_factory=DAC)
    adc: ADC = field(default_factory=ADC)

    def with_adc_range(self, i_max: float) -> "DacAdc":
        """The same periphery with the ADC full scale ``i_max`` (A)."""
        return DacAdc(self.dac, dataclasses.replace(self.adc, i_max=float(i_max)))

    def torch_dac(self, v, inplace: bool = False, grad: bool = True):
        """Row voltages (V) after the DAC (torch; gradient straight through inside the range;
        ``grad`` False: in place, no graph)."""
        from pyaimc.noise.torch_ops import quantize_, quantize_symmetric

        if not grad:
            return quantize_(v, self.dac.v_max, self.dac.bits)
        return quantize_symmetric(v, self.dac.v_max, self.dac.bits, inplace=inplace)

    def torch_adc(self, i, i_max: float | None = None, inplace: bool = False,
                  grad: bool = True):
        """Currents (A) after the ADC of range ``i_max`` (default the ADC's own)."""
        from pyaimc.noise.torch_ops import quantize_, quantize_symmetric

        i_max = self.adc.i_max if i_max is None else i_max
        if not grad:
            return quantize_(i, i_max, self.adc.bits)
        return quantize_symmetric(i, i_max, self.adc.bits, inplace=inplace)

    def validate(self, fail) -> None:
        for name, conv in (("dac", self.dac), ("adc", self.adc)):
            if conv.bits is not None and not (isinstance(conv.bits, int)
                                              and 2 <= conv.bits <= 24):
                fail(f"{name}.bits must be an integer in [2, 24] or null, got {conv.bits!r}")
        if not self.dac.v_max > 0:
            fail(f"dac.v_max must be > 0 V, got {self.dac.v_max}")
        if self.adc.bits is not None and not self.adc.i_max > 0:
            fail(f"adc.i_max must be > 0 A, got {self.adc.i_max}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dac": vars(self.dac).copy(), "adc": vars(self.adc).copy()}

    @classmethod
    def from_dict(cls, d: dict) -> "DacAdc":
        dac, adc = d["dac"], d["adc"]
        return cls(DAC(dac["bits"], dac["v_max"]),
                   ADC(adc["bits"], adc["i_max"], adc.get("headroom", 0.0)))

"""Products on packed tiles, converted as a chip converts them: :class:`PackedTiles`.

One product (:class:`~pyaimc.analog.mapping.ProductLayout`: its blocks placed on physical tiles)
programmed once and read many times, over the tile core (:mod:`pyaimc.analog.core`):

* **conversion, static** (``input_ranges`` given): input ``j`` has a fixed range ``r_j`` (one
  per input segment, calibrated on training data); the DAC drives ``v = v_max clip(x / r, -1,
  1)``, rounded. The weights are mapped as ``W'_oj = W_oj r_j``, so one column current sums
  inputs of different ranges correctly (the S4D state and the input ``u`` on one read-out).
  Nothing is scaled per vector; values beyond the range clip.
* **conversion, per vector** (``input_ranges`` None): each tile's row vector is scaled so its
  largest magnitude is ``v_max`` before the DAC and multiplied back after the ADC: a
  floating-point pre-scaler per vector and tile (one max over the rows, a multiplying DAC
  reference and a digital multiply per output), which a fixed-reference chip does not have.
* **mapping**: per tile column ``c`` (one block's output) the scale ``s_c = max |W'_c|``,
  differential pairs ``g+- = g_min + (g_max - g_min) max(+-W' / s, 0)`` on a plus and a minus
  array of the same layout, programmed by the noise model's sampler; unused cells 0 S;
* **crossbar**: the transfer model (IR drop, input non-linearity) of each whole tile, so a
  block's wires carry the currents of every block on its tile; or (``currents_from``) any
  column currents, e.g. the circuit solver's (:mod:`pyaimc.analog.circuit`);
* **read-out**: read noise per column, one ADC conversion per column pair with a range per tile
  (the rule of :func:`~pyaimc.analog.core.adc_range` for the most cells a column of the tile
  holds, or calibrated: ``adc_ranges``), then ``s_c / ((g_max - g_min) v_max)`` and a digital
  sum where a split matrix's pieces meet.
"""

from __future__ import annotations

import torch

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.core import TileCore, adc_range
from pyaimc.analog.mapping import ProductLayout
from pyaimc.circuit.transfer_torch import min_matrices, tile_weights

__all__ = ["PackedTiles", "block_product"]

_TINY = 1e-12


def block_product(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``out[b, n, o] = sum_i v[b, n, i] w[n, i, o]`` (broadcast multiply-adds for few inputs,
    a batched matrix product otherwise)."""
    i = v.shape[-1]
    if i > 4:
        return torch.einsum("bni,nio->bno", v, w)
    out = v[..., 0:1] * w[:, 0, :]
    for k in range(1, i):
        out.addcmul_(v[..., k:k + 1], w[:, k, :])
    return out


class PackedTiles:
    """A product's blocks programmed on packed tiles (see the module docstring).

    Parameters
    ----------
    layout : ProductLayout
    noise_model : NoiseModel
        Its tile size must be the layout's.
    config : AnalogConfig, optional
        Which non-idealities apply (``input_scaling`` and ``input_range`` are not used: the
        conversion is set by ``input_ranges``).
    input_ranges : Tensor (n_in,), optional
        Static DAC range of every input (same units as the inputs); None: per-vector scaling.
    adc_ranges : Tensor (n_tiles,), optional
        ADC full scale of every tile, A; default the rule for the cells per column.
    dtype : torch.dtype
    """

    def __init__(self, layout: ProductLayout, noise_model, config: AnalogConfig | None = None,
                 input_ranges: torch.Tensor | None = None,
                 adc_ranges: torch.Tensor | None = None, dtype=torch.float32):
        tile = noise_model.tile
        if (tile.rows, tile.cols) != (layout.rows, layout.cols):
            raise ValueError(f"{layout.name}: layout of {layout.rows} x {layout.cols} tiles, "
                             f"noise model of {tile.rows} x {tile.cols}")
        self.layout, self.noise_model = layout, noise_model.validate()
        self.config = config if config is not None else AnalogConfig()
        self.dtype = dtype
        core = self.core = TileCore(noise_model, self.config)
        self.g_min, self.span, self.v_max = core.g_min, core.span, core.v_max
        self.transfer, self.read = core.transfer, core.read
        if input_ranges is not None:
            input_ranges = torch.as_tensor(input_ranges, dtype=dtype).reshape(-1)
            if input_ranges.numel() != layout.n_in or not bool((input_ranges > 0).all()):
                raise ValueError(f"{layout.name}: input_ranges must be {layout.n_in} positive "
                                 "ranges")
        self.input_ranges = input_ranges
        if adc_ranges is None:
            adc_ranges = torch.tensor([adc_range(noise_model, int(n))
                                       for n in layout.rows_per_column()], dtype=dtype)
        self.adc_ranges = torch.as_tensor(adc_ranges, dtype=dtype).reshape(-1)
        if self.adc_ranges.numel() != layout.n_tiles:
            raise ValueError(f"{layout.name}: adc_ranges must have {layout.n_tiles} entries")
        # mapped weights and scales per group (the DAC ranges folded into the weights)
        self.mapped, self.scales = [], []
        for g in layout.groups:
            w = layout.group_weights(g).detach().to(dtype)                  # (nb, o, i)
            if input_ranges is not None:
                w = w * input_ranges[g.in_idx][:, None, :]
            self.mapped.append(w)
            self.scales.append(core.scales(w))                              # (nb, o)
        self.g_tiles = None
        #: when set to ``[0.0, 0]``, every read adds its crossbar power (W, ``sum g v**2`` over
        #: the used cells of both arrays, no wire loss) and the count of vectors
        self.power = None

    @property
    def static(self) -> bool:
        """Whether inputs are converted with fixed ranges (no per-vector scaling)."""
        return self.input_ranges is not None

    # ------------------------------------------------------------------ programming
    def target_tiles(self) -> torch.Tensor:
        """Target conductances ``(2, n_tiles, rows, cols)`` (plus, minus), S."""
        pos, neg = [], []
        for w, s in zip(self.mapped, self.scales):
            gp, gn = self.core.targets(w, s)
            pos.append(gp)
            neg.append(gn)
        return self._assemble(pos, neg)

    @torch.no_grad()
    def program(self, generator: torch.Generator | None) -> "PackedTiles":
        """Draw the programmed conductances of every block (noise model's sampler, drift to
        ``t_inference``) and keep them."""
        pos, neg = [], []
        for w, s in zip(self.mapped, self.scales):
            gp, gn = self.core.program(w, generator, None, s)
            pos.append(gp)
            neg.append(gn)
        return self.set_conductances(self._assemble(pos, neg))

    def _assemble(self, pos, neg) -> torch.Tensor:
        lay = self.layout
        g = torch.zeros(2, lay.n_tiles, lay.rows, lay.cols, dtype=self.dtype)
        for grp, gp, gn in zip(lay.groups, pos, neg):
            t, r, c = grp.tile[:, None, None], grp.rows[:, :, None], grp.cols[:, None, :]
            g[0, t, r, c] = gp.transpose(1, 2).to(self.dtype)
            g[1, t, r, c] = gn.transpose(1, 2).to(self.dtype)
        return g

    @torch.no_grad()
    def set_conductances(self, g_tiles: torch.Tensor) -> "PackedTiles":
        """Use these conductances ``(2, n_tiles, rows, cols)`` (plus, minus; S)."""
        lay = self.layout
        shape = (2, lay.n_tiles, lay.rows, lay.cols)
        if tuple(g_tiles.shape) != shape:
            raise ValueError(f"conductances must have shape {shape}, got {tuple(g_tiles.shape)}")
        self.g_tiles = g_tiles.to(self.dtype)
        p = self.transfer
        if p is None:
            terms = [self.g_tiles]
        else:
            mmin, nmin = min_matrices(lay.rows, lay.cols, self.dtype)
            terms = tile_weights(self.g_tiles, p, mmin, nmin)
        saturate = p is not None and p.i_sat is not None
        self._terms = []
        for grp in lay.groups:
            cells = [grp.gather(t) for t in terms]                         # (2, nb, i, o)
            self._terms.append(cells if saturate else [c[0] - c[1] for c in cells])
        self._g_sum = [grp.gather(self.g_tiles[0] + self.g_tiles[1]) for grp in lay.groups]
        return self

    # ------------------------------------------------------------------ products
    def voltages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Row voltages ``(batch, n_tiles, rows)`` (V, after the DAC; unused rows 0) of inputs
        ``x`` ``(batch, n_in)``, and the per-vector scales ``(batch, n_tiles, 1)`` (None when
        static)."""
        x = x.to(self.dtype)
        xp = torch.nn.functional.pad(x, (0, 1))                             # index n_in: 0
        idx = self.layout.row_input
        if self.static:
            r = torch.nn.functional.pad(self.input_ranges, (0, 1), value=1.0)
            v = (xp / r).clamp_(-1.0, 1.0).mul_(self.v_max)[:, idx]
            scale = None
        else:
            v = xp[:, idx]
            scale = v.abs().amax(dim=-1, keepdim=True).clamp_min_(_TINY)
            v = v.mul_(self.v_max / scale)
        if self.config.dac:
            v = self.noise_model.periphery.torch_dac(v, inplace=True, grad=False)
        return v, scale

    def block_inputs(self, v: torch.Tensor, k: int) -> torch.Tensor:
        """Row voltages of group ``k``'s blocks ``(batch, nb, i)``."""
        g = self.layout.groups[k]
        return v[:, g.tile[:, None], g.rows]

    def currents(self, v: torch.Tensor) -> list[torch.Tensor]:
        """Column-pair currents ``I+ - I-`` per group ``(batch, nb, o)`` (A) from the transfer
        model, for row voltages ``v`` ``(batch, n_tiles, rows)``; before read noise and ADC."""
        if self.g_tiles is None:
            raise RuntimeError(f"{self.layout.name}: program() or set_conductances() first")
        out = []
        i_sat = None if self.transfer is None else self.transfer.i_sat
        for k, terms in enumerate(self._terms):
            vin = self.block_inputs(v, k)
            powers = [vin, vin * vin, vin * vin * vin][:len(terms)]
            if i_sat is None:
                out.append(sum(block_product(x, t) for x, t in zip(powers, terms)))
            else:
                i = [sum(block_product(x, t[p]) for x, t in zip(powers, terms))
                     .clamp_(-i_sat, i_sat) for p in range(2)]
                out.append(i[0] - i[1])
        return out

    def columns(self, column_currents: torch.Tensor) -> list[torch.Tensor]:
        """Per-group ``(batch, nb, o)`` views of tile column currents ``(batch, n_tiles,
        cols)`` (e.g. from a circuit solver)."""
        return [column_currents[:, g.tile[:, None], g.cols] for g in self.layout.groups]

    def read_out(self, currents: list[torch.Tensor], v: torch.Tensor,
                 scale: torch.Tensor | None, generator: torch.Generator | None
                 ) -> torch.Tensor:
        """Read noise, ADC, output scaling and the digital sum: outputs ``(batch, n_out)``."""
        lay = self.layout
        batch = v.shape[0]
        y = torch.zeros(batch, lay.n_out, dtype=self.dtype)
        gain = 1.0 / (self.span * self.v_max)
        for k, (grp, i) in enumerate(zip(lay.groups, currents)):
            if self.core.reads_noise:
                w = self.read.per_volt_weight(self.block_inputs(v, k))
                sigma = block_product(w, self._g_sum[k]).clamp_min_(0.0).sqrt_()
                z = torch.randn(sigma.shape, generator=generator, dtype=sigma.dtype)
                i = i + sigma.mul_(z)
            if self.config.adc:
                full = self.adc_ranges[grp.tile][:, None]                    # (nb, 1)
                i = self.noise_model.periphery.torch_adc(i / full, 1.0, grad=False).mul_(full)
            out = i * (self.scales[k] * gain)
            if scale is not None:
                out = out * scale[:, grp.tile]
            y.index_add_(1, grp.out_idx.reshape(-1), out.reshape(batch, -1))
        return y

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 currents_from=None) -> torch.Tensor:
        """``y ~ W x`` on the programmed tiles for inputs ``x`` ``(batch, n_in)``.

        ``currents_from(tiles, v)``, when given, returns tile column currents ``(batch,
        n_tiles, cols)`` (``I+ - I-``) for the row voltages instead of the transfer model.
        """
        v, scale = self.voltages(x)
        if self.power is not None:
            for k in range(len(self.layout.groups)):
                vin = self.block_inputs(v, k)
                self.power[0] += float(block_product(vin * vin, self._g_sum[k]).sum())
            self.power[1] += x.shape[0]
        if currents_from is None:
            i = self.currents(v)
        else:
            i = self.columns(currents_from(self, v))
        return self.read_out(i, v, scale, generator)

    # ------------------------------------------------------------------ calibration
    @torch.no_grad()
    def ideal_column_currents(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Column currents per group ``(batch, nb, o)`` of an ideal crossbar with exact
        converters and the target conductances, for inputs ``x`` (ADC calibration of static
        conversion)."""
        if not self.static:
            raise ValueError("ideal column currents need static input ranges")
        out = []
        xp = torch.nn.functional.pad(x.to(self.dtype), (0, 1))
        for grp, w, s in zip(self.layout.groups, self.mapped, self.scales):
            # I_c = span v_max / s_c * sum_j W_cj x_j (the ranges cancel where nothing clips)
            part = torch.einsum("bni,noi->bno", xp[:, grp.in_idx],
                                w / self.input_ranges[grp.in_idx][:, None, :])
            out.append(part * (self.span * self.v_max) / s)
        return out

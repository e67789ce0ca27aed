"""Groups of matrices on crossbar tiles: programmed once, read many times (deployment), a thin
layer over the tile core (:mod:`pyaimc.analog.core`).

A deployed S4D network holds matrices of very different shapes: the dense layers (one matrix
each) and the S4D tiles (thousands of 2x2 blocks, one ``N x 1`` column and one ``1 x N`` row per
channel; see :mod:`pyaimc.s4d.step`). :class:`AnalogTiles` takes a group of ``G`` matrices
``(G, out, in)`` and computes every product as :class:`~pyaimc.analog.linear.AnalogLinear` does
after :func:`~pyaimc.analog.linear.program`, for all ``G`` matrices at once.

Mapping of one matrix (the noise model's, as in ``AnalogLinear``):

* per output row ``o`` the scale ``s_o = max_i |w_oi|``; differential pair targets
  ``g+- = g_min + (g_max - g_min) max(+-w / s_o, 0)``, on two tiles (plus and minus) of the
  same geometry, the output is their current difference;
* a matrix with ``in <= rows`` and ``out <= cols`` (the noise model's tile) sits in rows
  ``0 .. in-1`` and columns ``0 .. out-1`` of one tile (the rest of the tile is empty, 0 S),
  as ``AnalogLinear`` places a layer smaller than a tile; a larger matrix is split into
  ``ceil(in/rows) x ceil(out/cols)`` tiles whose column currents are digitised separately and
  summed digitally;
* each input vector is scaled so its largest magnitude is ``v_max`` (or by a fixed range), then
  rounded by the DAC; each column-pair current gets read noise (the Johnson and shot noise of
  every cell of the column) and is digitised by the ADC.

**ADC range.** The noise model's ``adc.i_max`` is set at export for a column of ``rows`` cells
(``i_max ~ sqrt(rows)``). A tile that uses only ``r`` rows gets ``i_max sqrt(r / rows)``: the
same rule for the rows it uses (a read-out gain per tile). With the full-tile range a 2-row
tile (the S4D ``A`` blocks) would resolve its outputs with about 3 bits of an 8-bit ADC.
:func:`tile_noise_model` gives the noise model with that range for a dense layer, so training
(``AnalogLinear``) and deployment use the same read-out.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.core import TileCore, adc_range, transfer_for
from pyaimc.circuit.transfer_torch import TorchTransfer, min_matrices, tile_weights_wl
from pyaimc.noise.model import NoiseModel

__all__ = ["AnalogTiles", "TileLayout", "adc_range", "tile_noise_model", "transfer_params",
           "transfer_terms"]


def tile_noise_model(noise_model: NoiseModel, in_features: int) -> NoiseModel:
    """``noise_model`` with the ADC range of a layer of ``in_features`` inputs (see module)."""
    return noise_model.with_adc_range(adc_range(noise_model, in_features))


@dataclasses.dataclass(frozen=True)
class TileLayout:
    """How a ``(out, in)`` matrix is cut into tiles of a ``rows x cols`` crossbar.

    Attributes
    ----------
    r, c : int
        Rows (inputs) and columns (outputs) used per tile.
    n_row_tiles, n_col_tiles : int
        Tiles along the inputs and along the outputs.
    rows, cols : int
        The physical tile.
    """

    r: int
    c: int
    n_row_tiles: int
    n_col_tiles: int
    rows: int
    cols: int

    @classmethod
    def of(cls, out_features: int, in_features: int, noise_model: NoiseModel) -> "TileLayout":
        rows, cols = noise_model.tile.rows, noise_model.tile.cols
        r, c = min(in_features, rows), min(out_features, cols)
        return cls(r, c, math.ceil(in_features / r), math.ceil(out_features / c), rows, cols)

    def pad(self, m: torch.Tensor) -> torch.Tensor:
        """Zero-pad the last two axes ``(out, in)`` to whole tiles."""
        out_f, in_f = m.shape[-2:]
        po, pi = self.n_col_tiles * self.c - out_f, self.n_row_tiles * self.r - in_f
        return torch.nn.functional.pad(m, (0, pi, 0, po)) if (po or pi) else m

    def split_inputs(self, m: torch.Tensor) -> torch.Tensor:
        """``(..., O, n_row_tiles * r)`` -> ``(..., O, n_row_tiles, r)``."""
        return m.reshape(*m.shape[:-1], self.n_row_tiles, self.r)

    def transfer(self, p: TorchTransfer) -> tuple[TorchTransfer, torch.Tensor, torch.Tensor]:
        """Transfer constants for the used part of a tile: ``Mmin`` and ``Nmin`` of the physical
        tile restricted to the used columns and rows (the empty cells carry no current, so they
        drop out of the wire sums)."""
        mmin, nmin = min_matrices(self.rows, self.cols, torch.float64)
        return (dataclasses.replace(p, rows=self.r, cols=self.c), mmin[:self.c, :self.c],
                nmin[:self.r, :self.r])


def _product(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``out[b, g, t, o] = sum_r v[b, g, t, r] w[g, t, r, o]``.

    One or two inputs per tile (the S4D ``A`` and ``B`` tiles, the encoder) as broadcast
    multiply-adds: a batched matrix product would copy both operands into its layout first.
    """
    r = v.shape[-1]
    if r > 2:
        return torch.einsum("bgtr,gtro->bgto", v, w)
    out = v[..., 0:1] * w[:, :, 0, :]
    for k in range(1, r):
        out.addcmul_(v[..., k:k + 1], w[:, :, k, :])
    return out


#: the tile core's transfer set-up (kept under its earlier name)
transfer_params = transfer_for


def transfer_terms(g: torch.Tensor, p: TorchTransfer, layout: TileLayout) -> list[torch.Tensor]:
    """``[W1]`` or ``[W1, W2, W3]`` of conductances ``g`` (..., out, in) padded to whole tiles."""
    pt, mmin, nmin = layout.transfer(p)
    return tile_weights_wl(g, pt, mmin.to(g.dtype), nmin.to(g.dtype))


class AnalogTiles:
    """``G`` matrices ``(G, out, in)`` programmed onto crossbar tiles of a noise model.

    Parameters
    ----------
    weight : Tensor (G, out, in)
        The matrices (clean, as trained; quantized when the model is).
    noise_model : NoiseModel
    config : AnalogConfig, optional
        Which non-idealities apply (default all).

    Notes
    -----
    Call :meth:`program` (a draw of the programming error) or :meth:`set_conductances` before
    the first product. Everything runs in the dtype of ``weight``.
    """

    def __init__(self, weight: torch.Tensor, noise_model: NoiseModel,
                 config: AnalogConfig | None = None):
        if weight.dim() != 3:
            raise ValueError(f"weight must be (G, out, in), got shape {tuple(weight.shape)}")
        self.noise_model = noise_model.validate()
        self.config = config if config is not None else AnalogConfig()
        self.weight = weight.detach()
        self.groups, self.out_features, self.in_features = self.weight.shape
        self.layout = TileLayout.of(self.out_features, self.in_features, noise_model)
        core = self.core = TileCore(noise_model, self.config, self.layout.r)
        if not core.mapping.native:
            raise ValueError(f"AnalogTiles holds differential pairs; mapping "
                             f"{self.config.mapping!r} runs in the layers (AnalogLinear and "
                             "those over it)")
        self.g_min, self.span, self.v_max, self.i_max = core.g_min, core.span, core.v_max, \
            core.i_max
        self.scale = core.scales(self.weight)                                # (G, out)
        self.transfer, self.read = core.transfer, core.read
        self.g_pos = self.g_neg = None
        self.alpha = None

    # ------------------------------------------------------------------ programming
    def targets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Target conductances ``g+``, ``g-`` (G, out, in), S."""
        return self.core.targets(self.weight, self.scale)

    @torch.no_grad()
    def program(self, generator: torch.Generator) -> "AnalogTiles":
        """Draw the programmed conductances from the noise model's programming statistics
        (per target conductance, stuck cells included; the targets when programming noise is
        off), drifted to the config's ``t_inference``, and keep them; with the config's drift
        compensation, also each tile's gain (:func:`~pyaimc.analog.core.tile_compensation`)."""
        lay = self.layout
        g_pos, g_neg, alpha = self.core.program_compensated(self.weight, generator, None,
                                                            self.scale, lay.r, lay.c)
        self.set_conductances(g_pos, g_neg)
        # (G, n_row_tiles, O): the global drift compensation gain of each tile's outputs
        self.alpha = alpha if self.config.drift_compensation and self.core.drifts else None
        return self

    @torch.no_grad()
    def set_conductances(self, g_pos: torch.Tensor, g_neg: torch.Tensor) -> "AnalogTiles":
        """Use these conductances (G, out, in; S) for the plus and minus tiles."""
        shape = (self.groups, self.out_features, self.in_features)
        if tuple(g_pos.shape) != shape or tuple(g_neg.shape) != shape:
            raise ValueError(f"conductances must have shape {shape}, got "
                             f"{tuple(g_pos.shape)} and {tuple(g_neg.shape)}")
        lay = self.layout
        self.alpha = None  # conductances set by hand: no compensation gains
        self.g_pos, self.g_neg = g_pos.to(self.weight.dtype), g_neg.to(self.weight.dtype)
        g = lay.pad(torch.stack([self.g_pos, self.g_neg]))                 # (2, G, O, I)

        def arrange(m):  # (..., G, O, Tr * r) -> (..., G, Tr, r, O): what _product reads
            return lay.split_inputs(m).movedim(-3, -1).contiguous()

        if self.transfer is None:
            self._terms = [arrange(g[0] - g[1])]
        elif self.transfer.i_sat is None:
            # no saturation per polarity: the pair's terms can be subtracted before the product
            self._terms = [arrange(t[0] - t[1]) for t in transfer_terms(g, self.transfer, lay)]
        else:
            self._terms = [arrange(t) for t in transfer_terms(g, self.transfer, lay)]
        self._g_sum = arrange(g[0] + g[1])
        return self

    # ------------------------------------------------------------------ products
    def voltages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row voltages (batch, G, n_row_tiles, r; V) after scaling and the DAC, and the input
        scales (batch, G, 1)."""
        v, x_scale = self.core.input_voltages(x, grad=False)
        pad = self.layout.n_row_tiles * self.layout.r - self.in_features
        if pad:
            v = torch.nn.functional.pad(v, (0, pad))
        return v.reshape(*v.shape[:-1], self.layout.n_row_tiles, self.layout.r), x_scale

    def currents(self, v: torch.Tensor) -> torch.Tensor:
        """Column-pair currents ``I+ - I-`` (batch, G, n_row_tiles, O; A) for row voltages ``v``
        (batch, G, n_row_tiles, r), before read noise and ADC. ``O`` counts padded outputs."""
        if self.transfer is None:
            return _product(v, self._terms[0])
        powers = [v, v * v, v * v * v][:len(self._terms)]
        if self.transfer.i_sat is None:
            return sum(_product(x, t) for x, t in zip(powers, self._terms))
        i_sat = self.transfer.i_sat
        i = [sum(_product(x, t[p]) for x, t in zip(powers, self._terms)).clamp_(-i_sat, i_sat)
             for p in range(2)]
        return i[0].sub_(i[1])

    def read_out(self, i: torch.Tensor, v: torch.Tensor, x_scale: torch.Tensor,
                 generator: torch.Generator | None) -> torch.Tensor:
        """Read noise, ADC, the digital sum over row tiles and the scales: outputs
        (batch, G, out) from column-pair currents ``i`` (batch, G, n_row_tiles, O)."""
        if self.core.reads_noise:
            sigma = _product(self.read.per_volt_weight(v), self._g_sum).clamp_min_(0.0).sqrt_()
            z = torch.randn(sigma.shape, generator=generator, dtype=sigma.dtype,
                            device=sigma.device)
            i = i + sigma.mul_(z)
        i = self.core.adc(i if i.is_contiguous() else i.clone(), grad=False)
        if self.alpha is not None:
            i = i * self.alpha
        i = i.squeeze(2) if i.shape[2] == 1 else i.sum(dim=2)
        i = i[..., :self.out_features]
        return (i * (self.scale / (self.span * self.v_max))).mul_(x_scale)  # output_gain

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """``y[b, g] ~ W[g] @ x[b, g]`` on the programmed tiles; ``x`` (batch, G, in)."""
        if self.g_pos is None:
            raise RuntimeError("AnalogTiles: program() or set_conductances() first")
        x = x.to(self.weight.dtype)
        v, x_scale = self.voltages(x)
        return self.read_out(self.currents(v), v, x_scale, generator)

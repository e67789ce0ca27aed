"""Behavioural analog layer for hardware-aware training: ``AnalogLinear``, ``convert_to_analog``
and ``program``: a thin layer over the tile core (:mod:`pyaimc.analog.core`).

The verbs: convert a model (every ``nn.Linear`` becomes an :class:`AnalogLinear`), train it (each
mini-batch sees a fresh draw of programming noise, gradients reach the clean weights straight
through), :func:`program` it (one programmed instance of every weight, kept as buffers), evaluate
it (read noise only).

What one forward pass computes, per tile of the noise model's size::

    weights  w (out, in) -> per output channel scale s_o = max_i |w_oi|
             -> differential pair targets g+ = g_min + (g_max - g_min) max(w, 0) / s_o, g- alike
             -> programmed conductances (training: sampled per mini-batch; after program(): kept)
    inputs   x -> per-sample scale s_x = max |x| -> DAC: v = v_max * round(x / s_x * L) / L
    tile     I = transfer(v, g+) - transfer(v, g-)      (IR drop, input non-linearity, saturation)
             + read noise (Johnson and shot noise of every cell on the column)
             -> ADC on each column-pair current (bits, range +-i_max)
    output   y = sum over row tiles of I * s_o * s_x / ((g_max - g_min) * v_max) + bias
"""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import torch
from torch import nn

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.core import TileCore
from pyaimc.analog.half import (abs_max_codes, half_codes, half_product, half_row_tiles,
                                half_variance_of_tiles, programmed_product, StepPlan,
                                training_step, use_half)
from pyaimc.analog.ops import (Scratch, inputs_of, pair_cells, pair_difference, row_tiles,
                               tile_product)
from pyaimc.circuit import wire_kernels
from pyaimc.circuit.transfer_torch import (effective_difference_wl, input_powers, min_matrices,
                                           tile_weights_wl)
from pyaimc.noise import kernels
from pyaimc.noise.model import NoiseModel
from pyaimc.noise.torch_ops import NormalPool

__all__ = ["AnalogConfig", "AnalogLinear", "analog_layers", "clip_weights", "convert_to_analog",
           "hold_draw", "program", "register_converter"]


class AnalogLinear(nn.Module):
    """A drop-in for ``torch.nn.Linear`` computed as an analog crossbar would.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        The bias is added digitally.
    noise_model : NoiseModel, optional
        Hardware noise model; default :meth:`NoiseModel.ideal`.
    config : AnalogConfig, optional
        Which non-idealities to apply; default all.
    seed : int, optional
        Seed of the layer's own ``torch.Generator`` (programming and read noise of its forward
        passes); default drawn from torch's global generator, like the weight initialisation.
    device, dtype : optional
        As for ``nn.Linear``.

    Attributes
    ----------
    weight, bias : Parameter
        The clean (trained) weights.
    programmed_g_pos, programmed_g_neg : buffer (out, in)
        Conductances of the last :func:`program` call, S.
    programmed_scale : buffer (out,)
        Output channel scales at programming time.
    is_programmed : buffer (bool)
    """

    #: marks analog layers (convert_to_analog leaves them and their parts alone)
    is_analog = True

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 noise_model: NoiseModel | None = None, config: AnalogConfig | None = None,
                 seed: int | None = None, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.bias = nn.Parameter(torch.empty(out_features, **kw)) if bias else None
        self.reset_parameters()
        self.noise_model = noise_model if noise_model is not None else NoiseModel.ideal()
        self.noise_model.validate()
        self.config = config if config is not None else AnalogConfig()
        self.seed = int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        self._generator = None
        self._scratch = Scratch()
        self._pool, self._batch_hint = NormalPool(), 0
        self._hold, self._held = False, None
        self.register_buffer("programmed_g_pos", torch.zeros(out_features, in_features, **kw))
        self.register_buffer("programmed_g_neg", torch.zeros(out_features, in_features, **kw))
        self.register_buffer("programmed_scale", torch.zeros(out_features, **kw))
        self.register_buffer("is_programmed", torch.tensor(False, device=device))
        self._setup()
        # gain of each (row tile, output): the global drift compensation (1: none)
        self.register_buffer("programmed_alpha", torch.ones(
            math.ceil(in_features / self.rows), out_features, **kw))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # layers saved before drift compensation existed hold no gains: 1 (none)
        key = prefix + "programmed_alpha"
        if key not in state_dict and hasattr(self, "programmed_alpha"):
            state_dict[key] = torch.ones_like(self.programmed_alpha)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reset_parameters(self) -> None:
        """The initialisation of ``nn.Linear``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def _setup(self) -> None:
        """Derived constants of the noise model and config."""
        core = self.core = TileCore(self.noise_model, self.config)
        self.__dict__.pop("_plan", None)
        self.__dict__.pop("_fused", None)
        self.__dict__.pop("_fused_key", None)
        self.rows, self.cols = core.rows, core.cols
        self.g_min, self.g_max = core.g_min, core.g_max
        self.v_max = core.v_max
        self.sampler, self.read, self.transfer = core.sampler, core.read, core.transfer
        for name in ("mmin", "nmin"):  # plain attributes of an earlier setup make way
            self.__dict__.pop(name, None)
        if self.transfer is not None and self.transfer.has_ir_drop:
            mmin, nmin = min_matrices(self.rows, self.cols, self.weight.dtype, self.weight.device)
            self.register_buffer("mmin", mmin, persistent=False)
            self.register_buffer("nmin", nmin, persistent=False)
        else:
            self.register_buffer("mmin", None, persistent=False)
            self.register_buffer("nmin", None, persistent=False)
        self._setup_options()

    def _setup_options(self) -> None:
        """Parameters and buffers of the config's options: learned input range and output
        scales, the programmed cells of a mapping with several pairs per weight."""
        cfg, kw = self.config, {"device": self.weight.device, "dtype": self.weight.dtype}
        if cfg.input_scaling == "learned" and getattr(self, "input_range", None) is None:
            self.input_range = nn.Parameter(torch.tensor(float(cfg.input_range), **kw))
            # reads seen while the range is set from data, and their running mean
            self.register_buffer("input_range_batches",
                                 torch.tensor(0, device=self.weight.device))
            self.register_buffer("input_range_init", torch.tensor(float(cfg.input_range), **kw))
        if cfg.learn_out_scale and getattr(self, "out_scale", None) is None:
            # set from the weights at the first forward pass (they are copied in after __init__)
            self.out_scale = nn.Parameter(torch.zeros(self.out_features, **kw))
        shape = (self.out_features, self.in_features)
        if self.core.mapping.n_pairs > 1:
            shape = (self.core.mapping.n_pairs,) + shape
        if hasattr(self, "programmed_g_pos") and tuple(self.programmed_g_pos.shape) != shape:
            self.register_buffer("programmed_g_pos", torch.zeros(shape, **kw))
            self.register_buffer("programmed_g_neg", torch.zeros(shape, **kw))
    def configure(self, config: AnalogConfig | None = None,
                  noise_model: NoiseModel | None = None) -> "AnalogLinear":
        """Switch to another config or noise model (same tile size); programmed state is kept."""
        if noise_model is not None:
            noise_model.validate()
            if (noise_model.tile.rows, noise_model.tile.cols) != (self.rows, self.cols):
                raise ValueError("configure() keeps the tile size; build a new layer for "
                                 f"{noise_model.tile.rows} x {noise_model.tile.cols} tiles")
            self.noise_model = noise_model
        if config is not None:
            self.config = config
        self._setup()
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_generator"] = None  # torch generators do not pickle; re-seeded on first use
        state["_scratch"] = Scratch()
        state["_pool"] = NormalPool()
        state["_hold"], state["_held"] = False, None
        state.pop("_plan", None)
        state.pop("_fused", None)
        state.pop("_fused_key", None)
        return state

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, tile={self.rows}x{self.cols}, "
                f"g=[{self.g_min:.3g}, {self.g_max:.3g}] S, programmed={bool(self.is_programmed)}")

    # ------------------------------------------------------------------ randomness
    def generator(self, device=None) -> torch.Generator:
        """The layer's generator on ``device`` (created from ``seed`` on first use)."""
        device = torch.device(device if device is not None else self.weight.device)
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def reset_generator(self) -> "AnalogLinear":
        """Start the layer's noise generator again from its ``seed`` (and draw a new normal
        pool)."""
        self._generator = None
        self._pool = NormalPool()
        return self

    def _normal_pool(self) -> NormalPool | None:
        """The pool training passes take their normals from (None: fresh normals)."""
        return self._pool if self.training and self.config.normal_pool else None

    def _start_step(self, cells: bool) -> NormalPool | None:
        """A new step of the normal pool (when in use), sized for the programming error of
        ``cells`` (two normals per pair) or pair differences and this batch's read noise."""
        pool = self._normal_pool()
        if pool is not None:
            n = self.out_features * self.in_features * (2 if cells else 1)
            if self.core.reads_noise:
                n += math.ceil(self.in_features / self.rows) * self._batch_hint * \
                    self.out_features
            pool.new_step(n, self.weight, self.generator())
        return pool

    # ------------------------------------------------------------------ mapping
    def mapped_weight(self) -> torch.Tensor:
        """The weight the tiles are programmed with (out, in): the clean ``weight`` here,
        clipped when the config clips weights.

        Subclasses override it to map a transformed weight (a quantized one, say): everything
        the layer programmes or samples starts from it, and gradients flow through it.
        """
        return self.core.clip(self.weight)

    def effective_weight(self) -> torch.Tensor:
        """The weight matrix as programmed, before any analog error: the mapped weight, clipped
        at the learned output scales when the config learns them."""
        w = self.mapped_weight()
        if self.config.learn_out_scale:
            s = self._scale(w)[:, None]
            w = torch.minimum(torch.maximum(w, -s), s)
        return w

    def _scale(self, w: torch.Tensor | None = None) -> torch.Tensor:
        """Output channel scales ``max_i |w_oi|`` (out,) of ``w`` (default the mapped weight),
        detached; the learned output scales (differentiable) when the config learns them."""
        if self.config.learn_out_scale:
            if not bool((self.out_scale != 0).any()):
                with torch.no_grad():
                    self.out_scale.copy_(TileCore.scales(
                        self.mapped_weight() if w is None else w))
            return self.out_scale.abs().clamp_min(1e-12)
        return TileCore.scales(self.mapped_weight() if w is None else w)

    def target_conductances(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Target conductances ``g+``, ``g-`` (out, in; S, differentiable in the weight) and
        the output channel scales (out,; detached)."""
        w = self.mapped_weight()
        scale = self._scale(w)
        return (*self.core.targets(w, scale), scale)

    @torch.no_grad()
    def program_(self, generator: torch.Generator | None = None,
                 method: str | None = None) -> "AnalogLinear":
        """Draw one programmed instance of the weights and keep it (see :func:`program`).

        The conductances are those at the config's ``t_inference`` after programming (the noise
        model's retention part).
        """
        gen = generator if generator is not None else self.generator()
        w = self.mapped_weight()
        scale = self._scale(w)
        g_pos, g_neg, alpha = self.core.program_compensated(w, gen, method, scale)
        self.programmed_g_pos.copy_(g_pos)
        self.programmed_g_neg.copy_(g_neg)
        self.programmed_scale.copy_(scale)
        self.programmed_alpha.copy_(alpha[..., :self.out_features])
        self.is_programmed.fill_(True)
        return self

    def _conductances(self):
        """What the tiles hold now, in the weight layout (out, in).

        Returns
        -------
        cells : (g_pos, g_neg) or None
            Conductances (S) when the transfer model needs each cell.
        diff : tensor or None
            Otherwise ``(g+ - g-) / (g_max - g_min)``.
        read : (offset, gain, g) or None
            The conductance each column pair presents to the read noise is
            ``offset + gain * g`` (S; ``g`` detached); None when there is no read noise.
        scale : tensor (out,)
            Output channel scales.
        """
        if not self.core.mapping.native or self.config.learn_out_scale:
            return self._mapped_conductances()
        need_cells = self.transfer is not None
        span = self.g_max - self.g_min
        if not self.training and bool(self.is_programmed):
            gp, gn = self.programmed_g_pos, self.programmed_g_neg
            diff = None if need_cells else (gp - gn) / span
            return ((gp, gn) if need_cells else None), diff, (0.0, 1.0, gp + gn), \
                self.programmed_scale
        w = self.mapped_weight()
        scale = self._scale(w)
        sampler = self.sampler if self.training and self.config.programming_noise else None
        t_train = self.core.training_time(self.generator()) if self.training else None
        pool = self._start_step(need_cells or t_train is not None)
        read = None
        # the read noise sees the target conductances (programming error changes it by a few
        # per cent): g_min on both cells plus span * |w| / scale on one
        a = self._scratch("a_read", w) if self.core.reads_noise else None
        if a is not None:
            read = (2 * self.g_min, span, a)
        if a is not None and sampler is None and not need_cells:
            with torch.no_grad():
                torch.div(w.detach(), scale[:, None], out=a).abs_()
            a = None
        if t_train is not None:
            # drifted to a sampled time after programming, straight-through to the targets
            gp, gn = pair_cells(w, scale, sampler, self.generator(), self.g_min, span, pool, a)
            gp = gp + (self.core.drift(gp.detach(), self.generator(), t_train) - gp.detach())
            gn = gn + (self.core.drift(gn.detach(), self.generator(), t_train) - gn.detach())
            return ((gp, gn), None, read, scale) if need_cells else \
                (None, (gp - gn) / span, read, scale)
        if need_cells:
            cells = pair_cells(w, scale, sampler, self.generator(), self.g_min, span, pool, a)
            return cells, None, read, scale
        # otherwise |w| / scale comes out of the programming pass (a_out)
        return None, pair_difference(w, scale, sampler, self.generator(), self._scratch, pool,
                                     a), read, scale

    def _mapped_conductances(self):
        """:meth:`_conductances` for the other mappings and learned output scales, through
        autograd: cells (P, out, in) straight-through to their targets."""
        core, m = self.core, self.core.mapping
        span = core.span
        if not self.training and bool(self.is_programmed):
            ga, gb = self.programmed_g_pos, self.programmed_g_neg
            scale = self.programmed_scale
            if m.n_pairs == 1:
                ga, gb = ga.unsqueeze(0), gb.unsqueeze(0)
        else:
            w = self.mapped_weight()
            scale = self._scale(w)
            wn = (w / scale[:, None]).clamp(-1.0, 1.0)
            ta, tb = m.targets(wn, self.cols)
            sampler = self.sampler if self.training and self.config.programming_noise else None
            t_train = core.training_time(self.generator()) if self.training else None
            if sampler is None and t_train is None:
                ga, gb = ta, tb
            else:
                with torch.no_grad():
                    sa, sb = m.program(wn.detach(), sampler, self.generator(), self.cols)
                    if t_train is not None:
                        sa = core.drift(sa, self.generator(), t_train)
                        sb = core.drift(sb, self.generator(), t_train)
                ga, gb = ta + (sa - ta.detach()), tb + (sb - tb.detach())
        read = None
        if core.reads_noise:
            with torch.no_grad():
                read = (0.0, 1.0, m.noise_conductance(ga.detach(), gb.detach()))
        if self.transfer is not None:
            return [(m.gains[k], ga[k], gb[k]) for k in range(m.n_pairs)], None, read, scale
        return None, m.combine(ga, gb) / span, read, scale

    def _draw(self):
        """The conductances of this forward pass: fresh, or those held by :func:`hold_draw`."""
        if not self._hold:
            return self._conductances()
        if self._held is None:
            self._held = self._conductances()
        return self._held

    # ------------------------------------------------------------------ forward
    def input_voltages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row voltages (batch, in; V) after scaling and the DAC; input scales (batch, 1)."""
        if self.config.input_scaling == "learned":
            return self.core.input_voltages(x, input_range=self._learned_range(x))
        return self.core.input_voltages(x)

    def _learned_range(self, x: torch.Tensor) -> torch.Tensor:
        """The learned input range for this read (0-d tensor).

        For the first ``input_range_init_batches`` training reads it is the running mean of
        ``input_range_init_std`` standard deviations of the inputs (a detached copy: the
        parameter is not in any graph yet, so it can be set in place when that phase ends);
        after them, the parameter.
        """
        cfg = self.config
        n = int(self.input_range_batches)
        if self.training and n < cfg.input_range_init_batches:
            with torch.no_grad():
                r = cfg.input_range_init_std * x.detach().std()
                if bool(r > 0):
                    self.input_range_init.copy_((self.input_range_init * n + r) / (n + 1))
                    self.input_range_batches.add_(1)
                    n += 1
                if n < cfg.input_range_init_batches:
                    return self.input_range_init.clone()
                self.input_range.copy_(self.input_range_init)
        return self.input_range.abs().clamp_min(1e-12)

    def _pair_currents(self, v, cells):
        """Column-pair currents of a mapping with several pairs: ``sum_k c_k I_k`` (each pair
        through the transfer model on its own columns)."""
        return sum(c * self._currents(v, (ga, gb), None) for c, ga, gb in cells)

    def tile_currents(self, v: torch.Tensor) -> torch.Tensor:
        """Column-pair currents ``I+ - I-`` (row_tiles, batch, outputs; A) for row voltages ``v``
        (batch, in; V), before read noise and ADC."""
        cells, diff, _, _ = self._conductances()
        if isinstance(cells, list):
            return self._pair_currents(v, cells)
        return self._currents(v, cells, diff)

    def _currents(self, v, cells, diff):
        rows, cols = self.rows, self.cols
        vt = inputs_of(v, rows)
        tr = self.transfer
        if tr is None:
            # column tiles need no structure here: the ADC acts per column anyway
            return tile_product(vt * (self.g_max - self.g_min), diff, rows)
        # both polarities at once, in the weight layout padded to whole tiles (empty cells: 0 S)
        out_f, in_f = self.out_features, self.in_features
        pad_out, pad_in = -out_f % cols, -in_f % rows
        if tr.i_sat is None and not tr.has_nonlinearity:
            # the one term, W1(g+) - W1(g-), in one pass per polarity where the kernel runs
            gp, gn = cells
            if pad_out or pad_in:
                gp, gn = (torch.nn.functional.pad(c, (0, pad_in, 0, pad_out)) for c in cells)
            d = effective_difference_wl(gp, gn, tr, self.mmin, self.nmin)
            return tile_product(vt, d, rows)[..., :out_f]
        g = torch.stack(cells)
        if pad_out or pad_in:
            g = torch.nn.functional.pad(g, (0, pad_in, 0, pad_out))
        terms = tile_weights_wl(g, tr, self.mmin, self.nmin)
        if tr.i_sat is None:
            terms = [t[0] - t[1] for t in terms]
        else:
            terms = [t.reshape(-1, t.shape[-1]) for t in terms]  # + rows, then - rows
        # x, x**2, x**3 side by side within each row tile: one product for all terms
        n = len(terms)
        d = terms[0] if n == 1 else torch.cat(
            [t.reshape(t.shape[0], -1, rows) for t in terms], dim=2).reshape(terms[0].shape[0], -1)
        i = tile_product(input_powers(vt, n), d, n * rows)
        if tr.i_sat is not None:
            width = i.shape[-1] // 2
            i = i.clamp(-tr.i_sat, tr.i_sat)
            i = i[..., :width] - i[..., width:]
        return i[..., :out_f]

    @torch.no_grad()
    def _read_variance(self, v: torch.Tensor, read) -> tuple[torch.Tensor, torch.Tensor]:
        """Read-noise variance (row_tiles, batch, outputs; A**2) for row voltages ``v`` as
        ``var * gain + offs[..., None]``: ``var`` and ``offs`` (row_tiles, batch)."""
        offset, gain, g = read
        weight = inputs_of(self.read.per_volt_weight(v), self.rows)   # A**2 / S per row
        var = torch.bmm(weight, row_tiles(g, self.rows), out=self._scratch(
            "var", g, (weight.shape[0], weight.shape[1], g.shape[0])))
        return var, weight.sum(dim=2).mul_(offset)

    def _read_noise(self, v: torch.Tensor, read) -> torch.Tensor:
        """Current noise (row_tiles, batch, outputs; A) for row voltages ``v``."""
        offset, gain, g = read
        with torch.no_grad():
            var, offs = self._read_variance(v, read)
            if gain != 1.0:
                var.mul_(gain)
            if offset:
                var.add_(offs[..., None])
            noise = var.clamp_min_(0.0).sqrt_()
            pool = self._normal_pool()
            gen = self.generator(v.device)
            z = pool.normals(noise.shape, gen, noise) if pool is not None else \
                self._scratch("z_read", noise).normal_(generator=gen)
            return noise.mul_(z)

    def _read_out_kernel(self, i: torch.Tensor, v: torch.Tensor, read) -> torch.Tensor | None:
        """``sum_t ADC(I_t + read noise)`` (batch, outputs) by the compiled kernel, or None
        where it does not apply (not on the CPU, an ADC it does not know, drift
        compensation)."""
        if not kernels.applies(i, v) or (self.config.drift_compensation
                                         and not self.training and bool(self.is_programmed)):
            return None
        q = self.core.adc_steps()
        if q is False:
            return None
        if q is None and not self.core.reads_noise:
            return None  # nothing to fuse: torch's sum over tiles is as fast
        full, step = q if q is not None else (None, None)
        var = offs = None
        gain = 1.0
        if self.core.reads_noise:
            var, offs = self._read_variance(v, read)
            gain = read[1]
        return kernels.read_out(i, var, offs, gain, self.generator(v.device),
                                self._normal_pool(), full, step)

    def _float_forward(self, x: torch.Tensor, cells, diff, read, scale) -> torch.Tensor:
        """The layer's output before the bias (batch, outputs), products in the layer's
        dtype."""
        v, x_scale = self.input_voltages(x)
        i = self._pair_currents(v, cells) if isinstance(cells, list) else \
            self._currents(v, cells, diff)
        y = self._read_out_kernel(i, v.detach(), read)
        if y is not None:
            i = y
        else:
            if self.core.reads_noise:
                # in place: the product's backward does not need its output
                i = i.add_(self._read_noise(v.detach(), read))
            i = self.core.adc(i)
            if self.config.drift_compensation and not self.training and \
                    bool(self.is_programmed):
                i = i * self.programmed_alpha[:, None, :]
            i = i.sum(dim=0)
        return i * (scale * self.core.output_gain()) * x_scale

    def _half_layer(self) -> bool:
        """The layer's side of the bf16 products: one differential pair per weight, output
        scales not learned, a periphery the compiled read-out knows, an ideal crossbar or the
        linear IR drop."""
        tr = self.transfer
        return (self.core.mapping.native and not self.config.learn_out_scale
                and self.core.adc_steps() is not False
                and (tr is None or (tr.i_sat is None and not tr.has_nonlinearity)))

    def _half_applies(self, x: torch.Tensor) -> bool:
        """Whether this pass multiplies in bf16 (:mod:`pyaimc.analog.half`): a training pass,
        ``config.products`` and the CPU say so, and :meth:`_half_layer`."""
        noisy = self.core.sampler is not None or self.core.reads_noise
        return use_half(self.config.products, self.training, noisy, x) and self._half_layer()

    def _half_inputs(self, x: torch.Tensor):
        """``(stack, tiles, sums, x_scale, scaled)``: the DAC codes as bf16 row tiles
        (row_tiles, batch, rows) followed in ``stack`` by the read noise's per-volt weights
        (same layout; when the layer reads noise) and their tile sums (row_tiles, batch), the
        number of row tiles, the input scales, and whether the read-out is to apply the scales
        (per-sample scaling: one compiled pass; the other scalings convert in torch and keep
        their gradients)."""
        step, rows = self.core.dac_step(), self.rows
        reads = self.core.reads_noise
        tiles = math.ceil(self.in_features / rows)
        if self.config.input_scaling == "abs_max":
            stack, sums, x_scale = abs_max_codes(
                x, round(self.v_max / step), self.read if reads else None, step, rows)
            return stack, tiles, sums, x_scale, True
        v, x_scale = self.input_voltages(x)
        stack, sums = half_codes(v, step, rows), None
        if reads:
            weight = half_row_tiles(self.read.per_volt_weight(v.detach()), rows)
            sums = weight.float().sum(dim=2)
            stack = torch.cat([stack, weight])
        return stack, tiles, sums, x_scale, False

    def _half_read_out(self, i, var, sums, read_gain: float, offset: float, x_scale, scale,
                       scaled: bool, device) -> torch.Tensor:
        """``sum_t ADC(I_t + read noise)`` times the output and input scales (batch, out)."""
        q = self.core.adc_steps()
        full, adc_step = q if q is not None else (None, None)
        gain_out = scale * self.core.output_gain()
        offs = sums.mul_(offset) if var is not None else None
        y = kernels.read_out_half(i, var, offs, read_gain, self.generator(device),
                                  self._normal_pool(), full, adc_step,
                                  gain_out if scaled else None, x_scale if scaled else None)
        return y if scaled else y * gain_out * x_scale

    def _step_plan(self) -> StepPlan:
        """The constants of the fused training step (:func:`pyaimc.analog.half.training_step`),
        built once per config and noise model."""
        plan = self.__dict__.get("_plan")
        if plan is None:
            core, tr = self.core, self.transfer
            step = core.dac_step()
            q = core.adc_steps()
            reads = core.reads_noise
            wires = None
            if tr is not None and tr.has_ir_drop and tr.i_sat is None and \
                    not tr.has_nonlinearity:
                lines = wire_kernels.lines_of(self.mmin, self.nmin)
                if lines is not None:
                    wires = wire_kernels.constants(tr.r_wire, tr.k_row, tr.k_col, tr.cols,
                                                   tr.rows, lines)
            plan = self.__dict__["_plan"] = StepPlan(
                levels=float(round(self.v_max / step)), step=step, rows=self.rows,
                four_kt_b=self.read.four_kt_b if reads else 0.0,
                two_q_b=self.read.two_q_b if reads else 0.0, reads=reads,
                sampler=core.sampler, c=core.span * step, offset=2 * self.g_min,
                read_gain=core.span, output_gain=core.output_gain(),
                full=None if q is None else q[0], adc_step=None if q is None else q[1],
                wires=wires, span=core.span, scratch=self._scratch)
        return plan

    def _fused_static(self) -> bool:
        """The conditions of the fused training step that do not change between calls (see
        :meth:`_programmed_half_forward`), remembered with the plan."""
        cfg = self.config
        # the config is a mutable dataclass: a changed field makes a new plan
        key = (id(cfg), id(self.noise_model), cfg.read_noise, cfg.dac, cfg.adc, cfg.transfer,
               cfg.input_scaling, cfg.products, cfg.programming_noise, cfg.t_train,
               cfg.learn_out_scale, cfg.mapping)
        if self.__dict__.get("_fused_key") != key:
            self.__dict__.pop("_plan", None)
            self.__dict__.pop("_fused", None)
            self.__dict__["_fused_key"] = key
        flag = self.__dict__.get("_fused")
        if flag is None:
            core = self.core
            flag = (core.sampler is not None and kernels.sampler_applies(core.sampler)
                    and self.config.products != "float32" and self._half_layer()
                    and (self.config.t_train is None
                         or getattr(self.noise_model.retention, "is_identity", False)))
            tr = self.transfer
            if flag and tr is not None:
                flag = (self._step_plan().wires is not None
                        and self.config.input_scaling == "abs_max"
                        and self.out_features % self.cols == 0
                        and self.in_features % self.rows == 0)
            self.__dict__["_fused"] = flag
        return flag

    def _programmed_half_forward(self, x: torch.Tensor):
        """``(y, biased)``: the output (batch, out) of a training step whose programming error
        is drawn straight into the bf16 tiles (:func:`pyaimc.analog.half.training_step` for
        per-sample input scaling, an ideal crossbar or the linear IR drop on whole tiles;
        :func:`pyaimc.analog.half.programmed_product` for the other scalings on an ideal
        crossbar) and whether the bias is in it; None where that does not apply (inside
        :func:`hold_draw`, programming noise not by the compiled sampler, drift in
        training, another mapping, not a bf16 pass)."""
        # the static conditions (_fused_static) imply programming noise, so "auto" needs only
        # the CPU's bf16 products
        if not self.training or self._hold or not self._fused_static() or \
                not use_half(self.config.products, True, True, x):
            return None
        core = self.core
        w = self.mapped_weight()
        if not kernels.applies(x, w):   # one dtype: float32 inputs and weights
            return None
        pool = self._start_step(self.transfer is not None)
        if self.config.input_scaling == "abs_max":
            # one autograd node for the whole read, the bias and the output scales included
            return training_step(x, w, self.bias, self._step_plan(), self.generator(),
                                 pool), True
        scale = self._scale(w)
        stack, tiles, sums, x_scale, scaled = self._half_inputs(x)
        i, var = programmed_product(stack, w, scale, core.sampler, self.generator(), pool,
                                    core.span * core.dac_step(), tiles)
        return self._half_read_out(i, var, sums, core.span, 2 * self.g_min, x_scale, scale,
                                   scaled, x.device), False

    def _half_forward(self, x: torch.Tensor, cells, diff, read, scale) -> torch.Tensor | None:
        """The output before the bias (batch, out) with the tile products in bf16 on drawn
        conductances, or None where they do not apply (:meth:`_half_applies`)."""
        if isinstance(cells, list) or not self._half_applies(x):
            return None
        stack, tiles, sums, x_scale, scaled = self._half_inputs(x)
        codes = stack[:tiles]
        step, rows, out_f, tr = self.core.dac_step(), self.rows, self.out_features, self.transfer
        if tr is None:
            i = half_product(codes, diff, (self.g_max - self.g_min) * step)
        else:
            gp, gn = cells
            pad_out, pad_in = -out_f % self.cols, -self.in_features % rows
            if pad_out or pad_in:
                gp, gn = (torch.nn.functional.pad(c, (0, pad_in, 0, pad_out)) for c in cells)
            d = effective_difference_wl(gp, gn, tr, self.mmin, self.nmin)
            i = half_product(codes, d[:, :self.in_features], step)
            if pad_out:
                i = i[:, :out_f]
        var, gain, offset = None, 1.0, 0.0
        if stack.shape[0] > tiles:
            offset, gain, g = read
            var = half_variance_of_tiles(stack[tiles:].detach(), g)
        return self._half_read_out(i, var, sums, gain, offset, x_scale, scale, scaled,
                                   x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        self._batch_hint = x2.shape[0]
        fused = self._programmed_half_forward(x2)
        y, biased = fused if fused is not None else (None, False)
        if y is None:
            cells, diff, read, scale = self._draw()
            y = self._half_forward(x2, cells, diff, read, scale)
            if y is None:
                y = self._float_forward(x2, cells, diff, read, scale)
        if self.bias is not None and not biased:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)


#: torch module types convert_to_analog replaces, and how (conv and recurrent layers register
#: theirs in their modules)
CONVERTERS: dict = {}


def register_converter(torch_type: type, convert) -> None:
    """Make :func:`convert_to_analog` replace modules of ``torch_type`` (exactly that type) by
    ``convert(module, noise_model, config, seed)``."""
    CONVERTERS[torch_type] = convert


def _convert_linear(lin: nn.Linear, noise_model, config, seed) -> AnalogLinear:
    w = lin.weight
    new = AnalogLinear(lin.in_features, lin.out_features, lin.bias is not None, noise_model,
                       config, seed, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if lin.bias is not None:
            new.bias.copy_(lin.bias)
    return new


register_converter(nn.Linear, _convert_linear)


def convert_to_analog(module: nn.Module, noise_model: NoiseModel,
                      config: AnalogConfig | None = None,
                      rng: np.random.Generator | None = None) -> nn.Module:
    """A copy of ``module`` with every ``nn.Linear`` (at any depth) an :class:`AnalogLinear`,
    every ``nn.Conv1d`` / ``nn.Conv2d`` an ``AnalogConv1d`` / ``AnalogConv2d``, every
    ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (and their cells) the analog layer of
    :mod:`pyaimc.analog.recurrent`.

    Weights and biases are copied (biases stay digital). ``rng`` gives each layer its seed (in
    module order); None: seeds from torch's global generator. The original is left as it is.
    """
    module = copy.deepcopy(module)

    def seed():
        return None if rng is None else int(rng.integers(0, 2**62))

    def swap(child: nn.Module, convert) -> nn.Module:
        new = convert(child, noise_model, config, seed())
        new.train(child.training)
        return new

    convert = _converter_for(module)
    if convert is not None:
        return swap(module, convert)
    for parent in list(module.modules()):
        if getattr(parent, "is_analog", False):
            continue                     # an analog layer's parts are analog already
        for name, child in list(parent.named_children()):
            convert = _converter_for(child)
            if convert is not None:
                setattr(parent, name, swap(child, convert))
    return module


def _converter_for(module: nn.Module):
    """The converter of ``module``'s type (or of a registered base class: subclasses of
    ``nn.Linear`` convert as it does); None for analog layers and everything else."""
    if getattr(module, "is_analog", False):
        return None
    convert = CONVERTERS.get(type(module))
    if convert is not None:
        return convert
    for torch_type, convert in CONVERTERS.items():
        if isinstance(module, torch_type):
            return convert
    return None


def analog_layers(module: nn.Module) -> list[AnalogLinear]:
    """Every :class:`AnalogLinear` in ``module`` (convolutions and the parts of recurrent
    layers included), in module order."""
    return [m for m in module.modules() if isinstance(m, AnalogLinear)]


@contextlib.contextmanager
def hold_draw(module: nn.Module):
    """Within the block, every analog layer of ``module`` keeps the conductances it draws at
    its first forward pass (one programmed instance for all the time steps of a sequence, as
    the hardware holds one); they are dropped on leaving.

    Outside it a training forward pass draws fresh programming noise at every call.
    """
    layers = analog_layers(module)
    for layer in layers:
        layer._hold, layer._held = True, None
    try:
        yield module
    finally:
        for layer in layers:
            layer._hold, layer._held = False, None


@torch.no_grad()
def clip_weights(module: nn.Module) -> nn.Module:
    """Clip the clean weights of every analog layer in place, as its config clips them (fixed
    or sigma-based; aihwkit's clipping after each optimiser step). The forward pass maps the
    clipped weights either way; this keeps the parameters themselves inside the bounds."""
    for layer in analog_layers(module):
        if layer.config.weight_clip is not None:
            layer.weight.copy_(layer.core.clip(layer.weight))
    return module


def program(module: nn.Module, rng: np.random.Generator, method: str | None = None) -> nn.Module:
    """Program every analog layer of ``module``: one draw of its conductances, kept as buffers.

    Until the next call, evaluation (``module.eval()``) uses these conductances and adds read
    noise only; they travel with ``state_dict()`` and ``torch.save``. Training forward passes
    keep sampling fresh programming noise from the clean weights.

    Parameters
    ----------
    module : nn.Module
    rng : numpy.random.Generator
        Seeds one generator per layer (same seed, same programmed weights).
    method : {"write_verify", "one_shot"}, optional
        Write scheme; default each layer's configured one.

    Returns
    -------
    module
    """
    for layer in analog_layers(module):
        gen = torch.Generator(device=layer.weight.device).manual_seed(
            int(rng.integers(0, 2**62)))
        layer.program_(gen, method)
    return module

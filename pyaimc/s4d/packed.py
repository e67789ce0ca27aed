"""The recurrent step on packed tiles with fixed calibration: :class:`PackedBackend`.

The per-matrix backend (:class:`~pyaimc.s4d.step.AnalogBackend`) gives every matrix of a group
its own tile and scales every input vector digitally to the DAC range. This backend maps the
step as a chip would (:mod:`pyaimc.analog.mapping`, :mod:`pyaimc.analog.packed`):

==========================  =====================================================================
product                     blocks and placement
==========================  =====================================================================
``encoder``                 the dense ``(H, d_input)`` matrix, split over tiles when larger
``blocks.i.ssm.AB``         one block per complex mode: ``[[Re a, -Im a, Re b], [Im a, Re a,
                            Im b]]`` over the inputs ``(x_2m, x_2m+1, u_h)``: ``A x_{k-1} + B u_k``
                            summed on one column pair, one ADC conversion; the modes of a channel
                            block-diagonal, ``u_h`` on one shared row
``blocks.i.ssm.C``          one ``1 x N`` row per channel, block-diagonal
``blocks.i.glu``            the dense ``(2H, H)`` matrix over tiles
``decoder``                 the dense ``(classes, H)`` matrix
==========================  =====================================================================

**Fixed calibration** (:func:`calibrate`): the model runs step by step in software over
training sequences; each product input segment (a dense layer's input, the state ``x`` and the
input ``u`` of the state update, the state into ``C``) gets one static DAC range, the range of
the model's activation/state quantizer when it has one (the DAC then reproduces its grid),
else the largest magnitude seen; each tile gets the ADC range of the largest ideal column
current seen with those DAC ranges. Per-vector scaling stays available (``calibration=None``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.mapping import (Block, ProductLayout, dense_blocks, group_blocks, pack,
                                   total_utilisation)
from pyaimc.analog.packed import PackedTiles
from pyaimc.s4d.step import DigitalBackend, MatvecBackend, RecurrentClassifier, export_tiles

__all__ = ["PackedBackend", "calibrate", "inference_cost", "ssm_state_blocks", "step_layouts"]


def ssm_state_blocks(A: torch.Tensor, B: torch.Tensor) -> list[Block]:
    """Blocks of ``x_k = A x_{k-1} + B u_k``: one ``2 x 3`` block per mode.

    ``A`` is ``(H N/2, 2, 2)`` and ``B`` ``(H, N, 1)`` (as :func:`~pyaimc.s4d.step.export_tiles`
    gives them); inputs are the state ``x`` (``H N``) then ``u`` (``H``), outputs the state.
    """
    H, N = B.shape[0], B.shape[1]
    modes = A.shape[0]
    if modes != H * N // 2:
        raise ValueError(f"A has {modes} modes, B {H} channels of {N} states")
    weight = torch.cat([A, B.reshape(modes, 2, 1)], dim=2)                  # (modes, 2, 3)
    blocks = []
    for g in range(modes):
        h = g // (N // 2)
        blocks.append(Block([2 * g, 2 * g + 1], [2 * g, 2 * g + 1, H * N + h], weight[g]))
    return blocks


def step_layouts(tiles: dict[str, torch.Tensor], rows: int, cols: int
                 ) -> dict[str, ProductLayout]:
    """The packed layout of every product of one step, by name (module docstring)."""
    layouts = {}
    names = list(tiles)
    for name in names:
        w = tiles[name]
        if name.endswith(".ssm.B"):
            continue
        if name.endswith(".ssm.A"):
            prefix = name[:-2]
            B = tiles[f"{prefix}.B"]
            H, N = B.shape[0], B.shape[1]
            layouts[f"{prefix}.AB"] = pack(f"{prefix}.AB", H * N + H, H * N,
                                           ssm_state_blocks(w, B), rows, cols)
        elif w.shape[0] == 1:
            layouts[name] = pack(name, w.shape[2], w.shape[1], dense_blocks(w[0], rows, cols),
                                 rows, cols)
        else:
            G, out_f, in_f = w.shape
            layouts[name] = pack(name, G * in_f, G * out_f, group_blocks(w, rows, cols),
                                 rows, cols)
    return layouts


def _segments(name: str, layout: ProductLayout) -> list[tuple[str, slice]]:
    """Input segments of a product that share one DAC range."""
    if name.endswith(".AB"):
        n_state = layout.n_out
        return [("x", slice(0, n_state)), ("u", slice(n_state, layout.n_in))]
    return [("x", slice(0, layout.n_in))]


def _quantizer_ranges(model) -> dict[tuple[str, str], float]:
    """DAC ranges the model's own activation and state quantizers fix (trained, eval mode)."""
    def rng(q):
        if q is None or getattr(q, "bits", None) is None or not bool(q.initialized):
            return None
        return float(q.range)

    out = {("encoder", "x"): rng(getattr(model.encoder, "input_quant", None)),
           ("decoder", "x"): rng(getattr(model.decoder, "input_quant", None))}
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        out[(f"{p}.ssm.AB", "u")] = rng(block.ssm.input_quant)
        out[(f"{p}.ssm.AB", "x")] = rng(block.ssm.state_quant)
        out[(f"{p}.ssm.C", "x")] = rng(block.ssm.state_quant)
        out[(f"{p}.glu", "x")] = rng(getattr(block.glu, "input_quant", None))
    return {k: v for k, v in out.items() if v is not None}


class _Recorder(DigitalBackend):
    """Exact products that record what calibration needs: each segment's largest input
    magnitude, or (with ``tiles``) each packed tile's largest ideal column current."""

    def __init__(self, layouts, tiles=None):
        super().__init__()
        self.layouts, self.tiles = layouts, tiles
        self.max_in: dict[tuple[str, str], float] = {}
        self.max_current = {name: torch.zeros(lay.n_tiles, dtype=torch.float64)
                            for name, lay in layouts.items()}

    def _record(self, name: str, x: torch.Tensor) -> None:
        lay = self.layouts[name]
        if self.tiles is None:
            for seg, sl in _segments(name, lay):
                m = float(x[:, sl].abs().max()) if x.shape[1] else 0.0
                self.max_in[(name, seg)] = max(self.max_in.get((name, seg), 0.0), m)
            return
        for grp, cur in zip(lay.groups, self.tiles[name].ideal_column_currents(x)):
            per_block = cur.abs().amax(dim=(0, 2)).double()                   # (nb,)
            m = self.max_current[name]
            m.scatter_reduce_(0, grp.tile, per_block, reduce="amax")

    def matvec(self, name, x):
        self._record(name, x.reshape(x.shape[0], -1))
        return super().matvec(name, x)

    def state_update(self, name, x, u):
        batch, H = u.shape
        self._record(f"{name}.AB", torch.cat([x.reshape(batch, -1), u], dim=1))
        digital = super().matvec
        return (digital(f"{name}.A", x.reshape(batch, -1, 2)).reshape(batch, H, -1)
                + digital(f"{name}.B", u.unsqueeze(-1)))


@torch.no_grad()
def calibrate(model, x: torch.Tensor, noise_model, config: AnalogConfig | None = None,
              batch_size: int = 250) -> dict:
    """Static DAC ranges per product input segment and ADC ranges per tile (module docstring).

    Parameters
    ----------
    model : S4DClassifier
        The software model (eval mode is set).
    x : Tensor (n, L, d_input)
        Calibration sequences (training data).
    noise_model : NoiseModel
        Its tile size and window fix the layout and the currents.
    config : AnalogConfig, optional

    Returns
    -------
    dict
        ``input_ranges`` (name -> Tensor (n_in,)), ``adc_ranges`` (name -> Tensor (n_tiles,);
        A), and ``summary``: per product and segment the range and its source
        (``"quantizer"`` or ``"data"``), the sequences used.
    """
    tiles = export_tiles(model)
    rows, cols = noise_model.tile.rows, noise_model.tile.cols
    layouts = step_layouts(tiles, rows, cols)
    rec = _Recorder(layouts)
    run = RecurrentClassifier(model, rec)
    for start in range(0, len(x), batch_size):
        run(x[start:start + batch_size])
    fixed = _quantizer_ranges(model)
    input_ranges, summary = {}, {}
    for name, lay in layouts.items():
        r = torch.ones(lay.n_in, dtype=torch.float64)
        for seg, sl in _segments(name, lay):
            if (name, seg) in fixed:
                value, source = fixed[(name, seg)], "quantizer"
            else:
                value, source = rec.max_in.get((name, seg), 0.0), "data"
            value = value if value > 0 else 1.0  # an input that never moves: any range
            r[sl] = value
            summary.setdefault(name, {})[seg] = {"range": value, "source": source}
        input_ranges[name] = r
    packed = {name: PackedTiles(lay, noise_model, config, input_ranges[name],
                                dtype=torch.float64) for name, lay in layouts.items()}
    rec2 = _Recorder(layouts, packed)
    run = RecurrentClassifier(model, rec2)
    for start in range(0, len(x), batch_size):
        run(x[start:start + batch_size])
    adc_ranges = {}
    for name, m in rec2.max_current.items():
        # a tile whose columns never carry current keeps the rule's range
        adc_ranges[name] = torch.where(m > 0, m, packed[name].adc_ranges)
        summary[name]["adc_range_a"] = [float(m.min()), float(m.max())]
    return {"input_ranges": input_ranges, "adc_ranges": adc_ranges,
            "summary": {"products": summary, "sequences": len(x)}}


class PackedBackend(MatvecBackend):
    """Products on packed tiles (one programmed chip); see the module docstring.

    Parameters
    ----------
    noise_model : NoiseModel
    config : AnalogConfig, optional
    rng : numpy.random.Generator, optional
        Seeds the programming draw of each product (in order) and the read noise.
    calibration : dict, optional
        :func:`calibrate`'s result: static DAC and ADC ranges. None: per-vector scaling of
        every tile's inputs and the ADC range rule.
    currents_from : callable, optional
        ``currents_from(tiles, v)`` -> tile column currents ``(batch, n_tiles, cols)`` for the
        row voltages ``v``, instead of the behavioral transfer model (the circuit solver).
    dtype : torch.dtype
    """

    def __init__(self, noise_model, config: AnalogConfig | None = None,
                 rng: np.random.Generator | None = None, calibration: dict | None = None,
                 currents_from=None, dtype=torch.float32):
        self.noise_model = noise_model
        self.config = config if config is not None else AnalogConfig()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.read_generator = torch.Generator().manual_seed(self._seed())
        self.calibration = calibration
        self.currents_from = currents_from
        self.dtype = dtype
        self.products: dict[str, PackedTiles] = {}
        self.layouts: dict[str, ProductLayout] = {}
        self.shapes: dict[str, tuple] = {}

    def _seed(self) -> int:
        return int(self.rng.integers(0, 2**62))

    def program_model(self, tiles: dict[str, torch.Tensor]) -> None:
        rows, cols = self.noise_model.tile.rows, self.noise_model.tile.cols
        self.layouts = step_layouts(tiles, rows, cols)
        self.shapes = {name: tuple(w.shape) for name, w in tiles.items()}
        cal = self.calibration
        for name, lay in self.layouts.items():
            gen = torch.Generator().manual_seed(self._seed())
            self.products[name] = PackedTiles(
                lay, self.noise_model, self.config,
                None if cal is None else cal["input_ranges"][name],
                None if cal is None else cal["adc_ranges"][name], self.dtype).program(gen)

    def program(self, name: str, weight: torch.Tensor) -> None:
        raise TypeError("PackedBackend packs the whole step at once: use program_model()")

    def _run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.products[name](x, self.read_generator, self.currents_from)

    def matvec(self, name: str, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        G, out_f, _ = self.shapes[name]
        return self._run(name, x.reshape(batch, -1)).reshape(batch, G, out_f).to(x.dtype)

    def state_update(self, name: str, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        batch = u.shape[0]
        z = torch.cat([x.reshape(batch, -1), u.reshape(batch, -1)], dim=1)
        return self._run(f"{name}.AB", z).reshape(x.shape).to(x.dtype)

    def utilisation(self) -> dict:
        """Tiles and cells in use per product and in total (per array of a pair)."""
        return {"products": {n: lay.utilisation() for n, lay in self.layouts.items()},
                **total_utilisation(list(self.layouts.values()))}


def inference_cost(backend: PackedBackend, length: int, power: dict | None = None,
                   costs=None) -> dict:
    """Energy, latency and area of one inference (a sequence of ``length`` steps) on the
    packed layout of ``backend``, beside a digital baseline (:mod:`pyaimc.analog.cost`).

    Reads per inference: every product once per step, the decoder once. ``power`` (name ->
    mean crossbar power per read, W; e.g. from the circuit engine's solved currents) adds the
    crossbar energy. Digital periphery (the same on both sides): two operations per converted
    output (scale, partial sum) on the chip, and per block and step about ``20 H`` operations
    (``D u``, biases, GELU, GLU gate, residual, layer norm, pooling); per-vector scaling
    (no calibration) adds a max per used row and a multiply per output of every read, the cost
    of that option. The digital baseline
    runs every weight as one 8-bit multiply-add, each weight read from SRAM once per use.
    """
    from pyaimc.analog.cost import CostTable, digital_cost, product_cost

    c = costs or CostTable()
    parts, macs = {}, 0.0
    for name, lay in backend.layouts.items():
        reads = 1 if name == "decoder" else length
        parts[name] = product_cost(lay, reads, None if power is None else power.get(name), c)
        macs += reads * int(lay.used.sum())
    H = next(t for n, t in backend.shapes.items() if n.endswith(".ssm.B"))[0]
    n_blocks = sum(1 for n in backend.layouts if n.endswith(".AB"))
    periphery_ops = length * n_blocks * 20 * H
    chip_ops = periphery_ops + 2 * sum(p["adc_conversions"] for p in parts.values())
    if backend.calibration is None:
        # per-vector scaling: a max over each tile's rows and a multiply per output, each read
        chip_ops += sum(p["dac_conversions"] + p["adc_conversions"] for p in parts.values())
    analog = {k: sum(p[k] for p in parts.values())
              for k in ("energy_dac", "energy_adc", "energy_crossbar", "dac_conversions",
                        "adc_conversions", "area", "tiles")}
    analog["energy_digital"] = chip_ops * c.e_digital_op
    analog["energy"] = (analog["energy_dac"] + analog["energy_adc"] + analog["energy_crossbar"]
                        + analog["energy_digital"])
    # products of one step run one after another (each needs the previous one's output)
    analog["latency"] = sum(p["latency"] for p in parts.values())
    digital = digital_cost(macs, macs, True, c)
    digital["energy_digital"] = periphery_ops * c.e_digital_op
    digital["energy"] += digital["energy_digital"]
    return {"length": length, "analog": analog, "digital_int8": digital, "products": parts,
            "crossbar_energy_from": None if power is None else "power per read given",
            "constants": dataclasses.asdict(c)}

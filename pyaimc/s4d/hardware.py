"""Hardware-aware training of the S4D classifier with a hardware noise model.

Two kinds of crossbar products are made noisy in training, both the way deployment
(:mod:`pyaimc.experiments.deploy`) maps them onto tiles:

* **Dense layers** (encoder, GLU, decoder) become :class:`QuantAnalogLinear`: the preset's
  weight quantizer first, then :class:`~pyaimc.analog.linear.AnalogLinear` on the quantized weight
  (differential-pair mapping, programming error drawn per mini-batch with straight-through
  gradients, DAC, transfer model, read noise, ADC). The order is the hardware's: the quantized
  levels are what is written, the write misses them. The preset's activation quantizer stays in
  front (the digital value the DAC then converts).
* **S4D matrices** ``Abar``, ``Bbar``, ``C``: :class:`SSMTileNoise` after the part's quantizer
  in ``S4D.quant``. It cuts the part into the tiles of :mod:`pyaimc.s4d.step` (2x2 rotation
  blocks for ``A``, a column per channel for ``B``, a row per channel for ``C``), maps each tile
  as deployment does (per output row scale, differential pairs), draws programmed conductances
  per mini-batch (straight-through), applies the transfer model's IR drop to them and returns
  the noisy matrices. A noisy 2x2 block is no longer a rotation, so ``A`` comes back as real
  blocks and the S4D kernel and recurrence use the general real form.

What the convolution mode cannot hold, because it has no per-step products: the read noise,
DAC and ADC of the S4D products and the transfer model's input non-linearity on them. They act
in deployment (and in the deployed accuracy the run reports), not in the S4D's training
forward pass. The example device's read noise is 0.1-0.3 % of a cell current, an order below
its write-verify programming spread.
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch
from torch import nn

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.core import TileCore
from pyaimc.analog.linear import AnalogLinear
from pyaimc.analog.ops import pair_cells, pair_difference
from pyaimc.s4d.classifier import LinearFactory, S4DClassifier, build_model
from pyaimc.s4d.config import ConfigError, QuantConfig
from pyaimc.s4d.quant import ActQuantizer, Precision, WeightQuantizer
from pyaimc.analog.tiles import TileLayout, tile_noise_model, transfer_terms
from pyaimc.noise.model import NoiseModel

#: state_dict entries that only hardware-aware layers have (the programmed instance)
ANALOG_ONLY_KEYS = ("programmed_g_pos", "programmed_g_neg", "programmed_scale", "is_programmed",
                    "programmed_alpha")


def derived_seed(seed: int, name: str) -> int:
    """A 62-bit seed for the layer ``name`` of a run with ``seed`` (stable across runs and
    independent of the order layers are built in)."""
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


def load_noise_model(path) -> NoiseModel:
    """The noise model of a run's ``noise`` key; a missing or bad file names the key."""
    try:
        return NoiseModel.load(path)
    except FileNotFoundError:
        raise ConfigError(f"noise: {str(path)!r}: no such noise-model file") from None
    except ValueError as err:
        raise ConfigError(f"noise: {str(path)!r}: {err}") from None


class QuantAnalogLinear(AnalogLinear):
    """:class:`AnalogLinear` of the quantized weight, behind the activation quantizer.

    Parameters
    ----------
    in_features, out_features : int
    precision : None, int or "ternary"
        Weight precision (quantized before the mapping onto conductances).
    act_bits : int or None
        Activation precision in front of the DAC.
    noise_model : NoiseModel
        Used with the ADC range of a layer of ``in_features`` inputs
        (:func:`pyaimc.analog.tiles.tile_noise_model`), as deployment reads it out.
    config : AnalogConfig, optional
    seed : int, optional
    """

    def __init__(self, in_features: int, out_features: int, precision: Precision,
                 act_bits: int | None, noise_model: NoiseModel,
                 config: AnalogConfig | None = None, seed: int | None = None):
        super().__init__(in_features, out_features, True,
                         tile_noise_model(noise_model, in_features), config, seed)
        self.weight_quant = WeightQuantizer(precision, channel_dim=0)
        self.input_quant = ActQuantizer(act_bits)

    def mapped_weight(self) -> torch.Tensor:
        # the config's clipping (none by default: the weight itself) before the quantizer
        return self.weight_quant(self.core.clip(self.weight))

    def effective_weight(self) -> torch.Tensor:
        """The weight matrix as programmed (quantized, before any analog error)."""
        return self.mapped_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.input_quant(x))


def analog_linear_factory(quant: QuantConfig, noise_model: NoiseModel, seed: int,
                          config: AnalogConfig | None = None) -> LinearFactory:
    """Factory of :class:`QuantAnalogLinear` layers at the ``dense`` and ``act`` precisions.

    Each layer's noise generator is seeded from ``seed`` and its name. The weights are
    initialised exactly as :class:`~pyaimc.s4d.classifier.QuantLinear`'s (same draws from the
    global generator), so a hardware-aware run starts from the software run's weights.
    """
    def make(in_features: int, out_features: int, name: str) -> nn.Module:
        return QuantAnalogLinear(in_features, out_features, quant.dense, quant.act, noise_model,
                                 config, derived_seed(seed, name))
    return make


# ---------------------------------------------------------------------------------------------
# the S4D matrices as tiles

def ssm_part_tiles(part: str, w: torch.Tensor) -> torch.Tensor:
    """The real view ``(H, N/2, 2)`` of ``Abar``, ``Bbar`` or ``C`` as tiles ``(G, out, in)``.

    ``A``: ``[[Re a, -Im a], [Im a, Re a]]`` per mode; ``B``: the column ``[Re b_0, Im b_0, ...]``
    per channel; ``C``: the row ``[Re c_0, Im c_0, ...]`` per channel. (Deployment holds
    ``[2 Re c_0, -2 Im c_0, ...]``: a factor and signs, to which the per-row mapping is
    indifferent.)
    """
    H = w.shape[0]
    if part == "A":
        a, b = w[..., 0], w[..., 1]
        blocks = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)
        return blocks.reshape(-1, 2, 2)
    if part == "B":
        return w.reshape(H, -1, 1)
    if part == "C":
        return w.reshape(H, 1, -1)
    raise ValueError(f"part must be 'A', 'B' or 'C', got {part!r}")


def programmed_matrices(w: torch.Tensor, noise_model: NoiseModel, sampler, generator,
                        transfer) -> torch.Tensor:
    """One programmed instance of the tiles ``w`` (G, out, in) as the matrices they compute.

    Mapping per output row (scale ``max |w|``), conductances drawn by ``sampler`` (None: the
    targets), the IR drop of ``transfer`` (None: none); returns ``(g+ - g-)`` effective, scaled
    back. Straight-through: the gradient is that of ``w`` (through the IR drop when present).
    """
    G, out_f, in_f = w.shape
    scale = TileCore.scales(w).reshape(-1)
    w2 = w.reshape(-1, in_f)
    window = noise_model.window
    span = window.g_max - window.g_min
    if transfer is None or not transfer.has_ir_drop:
        diff = pair_difference(w2, scale, sampler, generator)
        return (diff * scale.unsqueeze(-1)).reshape(G, out_f, in_f)
    g_pos, g_neg = pair_cells(w2, scale, sampler, generator, window.g_min, span)
    layout = TileLayout.of(out_f, in_f, noise_model)
    g = layout.pad(torch.stack([g_pos, g_neg]).reshape(2, G, out_f, in_f))
    w1 = transfer_terms(g, transfer, layout)[0][..., :out_f, :in_f]
    return (w1[0] - w1[1]) / span * scale.reshape(G, out_f, 1)


class SSMTileNoise(nn.Module):
    """Programming error (and IR drop) of one S4D part's tiles, drawn per forward pass in
    training; the identity in eval mode.

    Parameters
    ----------
    part : {"A", "B", "C"}
    noise_model : NoiseModel
    config : AnalogConfig, optional
        ``programming_noise``, ``programming_method``, ``stuck_cells`` and ``transfer`` apply.
    seed : int
        Seed of the module's own generator.
    """

    def __init__(self, part: str, noise_model: NoiseModel, config: AnalogConfig | None = None,
                 seed: int = 0):
        super().__init__()
        if part not in ("A", "B", "C"):
            raise ValueError(f"part must be 'A', 'B' or 'C', got {part!r}")
        self.part = part
        self.noise_model = noise_model.validate()
        self.config = config if config is not None else AnalogConfig()
        self.seed = int(seed)
        self._generator = None
        core = TileCore(noise_model, self.config)
        self.sampler, self.transfer = core.sampler, core.transfer

    def generator(self, device=None) -> torch.Generator:
        """The module's generator on ``device`` (default: where it is, the CPU at first),
        created from ``seed`` on first use or when the device changes."""
        if device is None:
            device = self._generator.device if self._generator is not None else "cpu"
        device = torch.device(device)
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_generator"] = None  # torch generators do not pickle
        return state

    def extra_repr(self) -> str:
        return f"part={self.part!r}, seed={self.seed}"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.sampler is None and self.transfer is None):
            return w
        tiles = programmed_matrices(ssm_part_tiles(self.part, w), self.noise_model,
                                    self.sampler, self.generator(w.device), self.transfer)
        if self.part == "A":
            return tiles.reshape(*w.shape[:2], 2, 2)
        return tiles.reshape(w.shape)


def attach_ssm_noise(model: S4DClassifier, noise_model: NoiseModel, seed: int,
                     config: AnalogConfig | None = None, digital=()) -> S4DClassifier:
    """Put an :class:`SSMTileNoise` after the quantizer of every S4D part (in place); the parts
    in ``digital`` (e.g. ``("A",)``, computed digitally on the chip) get one without programming
    error or transfer model (the identity), so the model's layout stays the same."""
    exact = dataclasses.replace(config if config is not None else AnalogConfig(),
                                programming_noise=False, transfer=False)
    for i, block in enumerate(model.blocks):
        quant = block.ssm.quant
        for part in ("A", "B", "C"):
            noise = SSMTileNoise(part, noise_model, exact if part in digital else config,
                                 derived_seed(seed, f"blocks.{i}.ssm.{part}"))
            quant[part] = nn.Sequential(quant[part], noise)
    return model


# ---------------------------------------------------------------------------------------------
# noise generators in checkpoints, software view

def noise_generators(model: nn.Module, device=None) -> dict[str, torch.Generator]:
    """The noise generators of every hardware-aware module, by module name: analog layers' on
    their weights' device, the S4D parts' on ``device`` (default: where they are)."""
    return {name: m.generator() if isinstance(m, AnalogLinear) else m.generator(device)
            for name, m in model.named_modules() if isinstance(m, (AnalogLinear, SSMTileNoise))}


def generator_states(model: nn.Module) -> dict[str, torch.Tensor]:
    """States of :func:`noise_generators` (for a checkpoint)."""
    return {name: g.get_state() for name, g in noise_generators(model).items()}


def set_generator_states(model: nn.Module, states: dict[str, torch.Tensor],
                         device=None) -> None:
    """Restore :func:`generator_states` (generators of the S4D parts on ``device``, default the
    CPU); a missing or extra module is an error."""
    gens = noise_generators(model, device)
    if set(gens) != set(states):
        raise ValueError(f"noise generators differ: model has {sorted(gens)}, "
                         f"checkpoint {sorted(states)}")
    for name, g in gens.items():
        g.set_state(states[name])


def normal_pool_states(model: nn.Module) -> dict[str, dict]:
    """States of the analog layers' normal pools (``AnalogConfig.normal_pool``), by module
    name, for a checkpoint: a resumed run then draws what an uninterrupted one would."""
    return {name: m._pool.state_dict() for name, m in model.named_modules()
            if isinstance(m, AnalogLinear) and m._pool.buf is not None}


def set_normal_pool_states(model: nn.Module, states: dict[str, dict]) -> None:
    """Restore :func:`normal_pool_states` (layers not named keep an empty pool)."""
    layers = dict(model.named_modules())
    for name, state in states.items():
        if not isinstance(layers.get(name), AnalogLinear):
            raise ValueError(f"normal pool of {name!r}: no analog layer of that name")
        layers[name]._pool.load_state_dict(state)


def software_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``state_dict`` without the entries only hardware-aware layers have."""
    return {k: v for k, v in model.state_dict().items()
            if k.rsplit(".", 1)[-1] not in ANALOG_ONLY_KEYS}


def load_weights(target: nn.Module, source_state: dict[str, torch.Tensor]) -> nn.Module:
    """Load a (software or hardware-aware) state into ``target``, across the two kinds.

    Entries only hardware-aware layers have are skipped on either side; anything else missing
    or left over is an error.
    """
    state = {k: v for k, v in source_state.items()
             if k.rsplit(".", 1)[-1] not in ANALOG_ONLY_KEYS}
    result = target.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k.rsplit(".", 1)[-1] not in ANALOG_ONLY_KEYS]
    if missing or result.unexpected_keys:
        raise ValueError(f"weights do not fit the model: missing {missing}, "
                         f"unexpected {result.unexpected_keys}")
    return target


def hardware_model(config, d_input: int, n_classes: int, noise_model: NoiseModel,
                   analog: AnalogConfig | None = None) -> S4DClassifier:
    """The hardware-aware classifier of ``config`` (see the module docstring)."""
    factory = analog_linear_factory(config.quant, noise_model, config.seed, analog)
    model = build_model(config, d_input, n_classes, linear_factory=factory)
    return attach_ssm_noise(model, noise_model, config.seed, analog,
                            getattr(config, "digital", ()))

"""Deployment: the classifier run one time step at a time as real matrix-vector products.

Every product goes through a :class:`MatvecBackend` under a name, so the same step can run on
exact digital arithmetic (:class:`DigitalBackend`) or on simulated analog tiles (a backend that
programs each matrix into a behavioral or circuit-level crossbar model). A matrix is given as a
group of ``G`` independent tiles, shape ``(G, out, in)``; its input is ``(batch, G, in)``.

How one step maps (``H`` channels, ``N`` real states per channel, complex state interleaved as
``[Re x_0, Im x_0, Re x_1, Im x_1, ...]``):

=====================  ====================  ===============================================
name                   tiles ``(G, out, in)``  content
=====================  ====================  ===============================================
``encoder``            ``(1, H, d_input)``     dense encoder weights
``blocks.i.ssm.A``     ``(H*N/2, 2, 2)``       ``[[Re a, -Im a], [Im a, Re a]]`` per mode:
                                               the complex diagonal ``Abar`` as real rotations
``blocks.i.ssm.B``     ``(H, N, 1)``           ``[Re b_0, Im b_0, ...]`` per channel
``blocks.i.ssm.C``     ``(H, 1, N)``           ``[2 Re c_0, -2 Im c_0, ...]`` per channel
``blocks.i.glu``       ``(1, 2H, H)``          dense GLU weights
``decoder``            ``(1, n_classes, H)``   dense decoder weights, once per sequence
=====================  ====================  ===============================================

Digital periphery (not matrix products): biases, ``D u`` (one scalar per channel), GELU, GLU
gating, residual sums, layer/batch norm (fixed statistics at inference), the running mean over
time and the DAC quantizers of the inputs. The state update is
``x_k = A x_{k-1} + B u_k`` (two products summed, as two tiles driving one read-out would), the
output ``y_k = C x_k + D u_k``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.tiles import AnalogTiles

from pyaimc.s4d.classifier import S4DBlock, S4DClassifier
from pyaimc.s4d.s4d import S4D


class MatvecBackend:
    """Where the matrix-vector products of a step run: program once, then read many times.

    Subclass and override both methods to route products through a hardware model.
    """

    def program(self, name: str, weight: torch.Tensor) -> None:
        """Store the tiles ``weight`` of shape ``(G, out, in)`` under ``name``."""
        raise NotImplementedError

    def matvec(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``y[b, g] = W[g] @ x[b, g]`` for the tiles programmed as ``name``."""
        raise NotImplementedError

    def program_model(self, tiles: dict[str, torch.Tensor]) -> None:
        """Store every matrix of a step (:func:`export_tiles`); by default one
        :meth:`program` call each. A backend that maps matrices jointly (packed tiles)
        overrides it."""
        for name, weight in tiles.items():
            self.program(name, weight)

    def state_update(self, name: str, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``x_k = A x_{k-1} + B u_k`` of the S4D layer ``name`` (``x`` ``(batch, H, N)``,
        ``u`` ``(batch, H)``); by default two products summed digitally. A backend whose
        ``A`` and ``B`` cells share one read-out overrides it."""
        batch, H = u.shape
        return (self.matvec(f"{name}.A", x.reshape(batch, -1, 2)).reshape(batch, H, -1)
                + self.matvec(f"{name}.B", u.unsqueeze(-1)))


class DigitalBackend(MatvecBackend):
    """Exact products in the tiles' dtype (the reference the analog backends are compared to)."""

    def __init__(self):
        self.weights: dict[str, torch.Tensor] = {}

    def program(self, name: str, weight: torch.Tensor) -> None:
        self.weights[name] = weight.detach().clone()

    def matvec(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("goi,bgi->bgo", self.weights[name], x)


#: the groups of matrices of a deployed S4D, by tile name (:func:`part_group`)
PART_GROUPS = ("dense", "A", "B", "C")


def part_group(name: str) -> str:
    """The group of a tile name: ``"A"``, ``"B"``, ``"C"`` for ``blocks.<i>.ssm.<part>``,
    ``"dense"`` for the encoder, decoder and GLU layers."""
    last = name.rsplit(".", 1)[-1]
    return last if ".ssm." in name and last in ("A", "B", "C") else "dense"


class AnalogBackend(MatvecBackend):
    """Products on programmed analog tiles (one programmed instance of the whole network).

    Parameters
    ----------
    noise_model : NoiseModel
    config : AnalogConfig, optional
        Which non-idealities apply (default all of the noise model's).
    rng : numpy.random.Generator, optional
        Seeds the programming draw of each matrix (in the order they are programmed) and the
        read noise. Same seed, same programmed chip and same reads. Default seed 0.
    digital : iterable of str, optional
        Groups of :data:`PART_GROUPS` computed digitally (exact products in the weights' dtype)
        instead of on tiles, e.g. ``("A",)``: the state matrices in a digital unit beside the
        crossbars. The other matrices get the same programming draws as without it.
    """

    def __init__(self, noise_model, config: AnalogConfig | None = None,
                 rng: np.random.Generator | None = None, digital=()):
        self.noise_model = noise_model
        self.config = config if config is not None else AnalogConfig()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.digital = frozenset(digital)
        unknown = self.digital - set(PART_GROUPS)
        if unknown:
            raise ValueError(f"digital: unknown groups {sorted(unknown)} (choose from "
                             f"{', '.join(PART_GROUPS)})")
        self.read_generator = torch.Generator().manual_seed(self._seed())
        self.tiles: dict[str, AnalogTiles] = {}
        self.exact: dict[str, torch.Tensor] = {}

    def _seed(self) -> int:
        return int(self.rng.integers(0, 2**62))

    def program(self, name: str, weight: torch.Tensor) -> None:
        gen = torch.Generator().manual_seed(self._seed())  # drawn either way: same chip
        if part_group(name) in self.digital:
            self.exact[name] = weight.detach().clone()
            return
        self.tiles[name] = AnalogTiles(weight, self.noise_model, self.config).program(gen)

    def matvec(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name in self.exact:
            w = self.exact[name]
            return torch.einsum("goi,bgi->bgo", w, x.to(w.dtype)).to(x.dtype)
        return self.tiles[name](x, self.read_generator).to(x.dtype)


def ssm_tiles(ssm: S4D) -> dict[str, torch.Tensor]:
    """Real tiles ``A``, ``B``, ``C`` of an S4D layer (quantized as in training)."""
    Abar, Bbar, C = ssm.discrete()
    if Abar.dim() == 4:  # already real blocks (a programmed, no longer rotational, A)
        A = Abar
    else:
        a, b = Abar.real, Abar.imag
        A = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)  # (H, N/2, 2, 2)
    H = ssm.d_model
    return {"A": A.reshape(-1, 2, 2),
            "B": torch.view_as_real(Bbar).reshape(H, -1, 1),
            "C": (2 * torch.view_as_real(C.conj().resolve_conj())).reshape(H, 1, -1)}


def _dense_parts(layer: nn.Module):
    weight = layer.effective_weight() if hasattr(layer, "effective_weight") else layer.weight
    quant = getattr(layer, "input_quant", None)
    return weight, layer.bias, (quant if quant is not None else (lambda x: x))


def export_tiles(model: S4DClassifier) -> dict[str, torch.Tensor]:
    """Every matrix of one step, by name, as tiles of shape ``(G, out, in)``."""
    with torch.no_grad():
        tiles = {"encoder": _dense_parts(model.encoder)[0].unsqueeze(0)}
        for i, block in enumerate(model.blocks):
            for part, w in ssm_tiles(block.ssm).items():
                tiles[f"blocks.{i}.ssm.{part}"] = w
            tiles[f"blocks.{i}.glu"] = _dense_parts(block.glu)[0].unsqueeze(0)
        tiles["decoder"] = _dense_parts(model.decoder)[0].unsqueeze(0)
    return {name: w.detach() for name, w in tiles.items()}


class RecurrentClassifier:
    """Run a trained :class:`S4DClassifier` step by step through a matvec backend.

    The model is put in eval mode (fixed quantizer ranges and norm statistics) and its tiles
    are programmed once into ``backend``.

    Parameters
    ----------
    model : S4DClassifier
    backend : MatvecBackend, optional
        Default :class:`DigitalBackend`.
    """

    def __init__(self, model: S4DClassifier, backend: MatvecBackend | None = None):
        self.model = model.eval()
        self.backend = backend or DigitalBackend()
        self.backend.program_model(export_tiles(model))

    def _dense(self, name: str, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        _, bias, quant = _dense_parts(layer)
        y = self.backend.matvec(name, quant(x).unsqueeze(1)).squeeze(1)
        return y if bias is None else y + bias

    def _ssm(self, name: str, ssm: S4D, u: torch.Tensor, x: torch.Tensor):
        u = ssm.input_quant(u)
        x = ssm.state_quant(self.backend.state_update(name, x, u))
        y = self.backend.matvec(f"{name}.C", x).squeeze(-1) + ssm.D * u
        return y, x

    def _block(self, i: int, block: S4DBlock, h: torch.Tensor, x: torch.Tensor):
        z = block.norm(h) if block.prenorm else h
        z, x = self._ssm(f"blocks.{i}.ssm", block.ssm, z, x)
        z = F.glu(self._dense(f"blocks.{i}.glu", block.glu, F.gelu(z)), dim=-1)
        h = h + z
        return (h if block.prenorm else block.norm(h)), x

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """Zero real states, one ``(batch, H, N)`` tensor per block."""
        device = next(self.model.parameters()).device
        return [torch.zeros(batch, b.ssm.d_model, b.ssm.d_state, dtype=dtype, device=device)
                for b in self.model.blocks]

    @torch.no_grad()
    def step(self, u: torch.Tensor, states: list[torch.Tensor]):
        """One step: input ``(batch, d_input)`` -> (last block output ``(batch, H)``, states)."""
        h = self._dense("encoder", self.model.encoder, u)
        new_states = []
        for i, (block, x) in enumerate(zip(self.model.blocks, states)):
            h, x = self._block(i, block, h, x)
            new_states.append(x)
        return h, new_states

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits for ``(batch, L, d_input)`` sequences, computed step by step."""
        states = self.initial_state(inputs.shape[0], inputs.dtype)
        total = 0
        for k in range(inputs.shape[1]):
            h, states = self.step(inputs[:, k], states)
            total = total + h  # running sum: the mean pool needs no stored sequence
        pooled = h if getattr(self.model, "pool", "mean") == "last" else total / inputs.shape[1]
        return self._dense("decoder", self.model.decoder, pooled)

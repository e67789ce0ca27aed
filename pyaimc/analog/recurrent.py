"""Analog recurrent layers: LSTM, GRU and vanilla RNN cells and the sequence layers over them.

Each cell holds two :class:`~pyaimc.analog.linear.AnalogLinear` products, ``ih`` (input to
gates, ``(gates * H, input_size)``) and ``hh`` (hidden state to gates, ``(gates * H, H)``), the
matrices of ``torch.nn.LSTMCell`` / ``GRUCell`` / ``RNNCell`` (``weight_ih``, ``weight_hh``),
each on its own tiles through the one tile core; biases and the gate non-linearities are
digital. The GRU needs ``W_hn h`` apart from ``W_in x`` (the reset gate multiplies it), so the
two products are not merged into one tile read even where the hardware could.

A sequence layer (:class:`AnalogLSTM`, :class:`AnalogGRU`, :class:`AnalogRNN`, drop-ins for
``torch.nn.LSTM`` / ``GRU`` / ``RNN``) holds one programmed instance of its weights for the
whole sequence (:func:`~pyaimc.analog.linear.hold_draw`): in training a fresh draw of
programming noise per forward pass, shared by all its time steps, as on the chip. The input
products of all time steps are read in one call (independent reads, each with its own scaling
and read noise), the hidden-state products step by step. A cell called by hand draws anew at
every call in training unless the caller wraps the loop in ``hold_draw(cell)``.

The ADC range of each product follows the rows it uses (:func:`pyaimc.analog.tiles.
tile_noise_model`), as for the S4D's dense layers.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from pyaimc.analog.config import AnalogConfig
from pyaimc.analog.linear import AnalogLinear, hold_draw, register_converter
from pyaimc.analog.tiles import tile_noise_model
from pyaimc.noise.model import NoiseModel

__all__ = ["AnalogGRU", "AnalogGRUCell", "AnalogLSTM", "AnalogLSTMCell", "AnalogRNN",
           "AnalogRNNCell"]


def _sub_seed(seed: int | None, name: str) -> int | None:
    """A seed for the part ``name`` of a layer seeded with ``seed`` (None stays None)."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


class _AnalogCell(nn.Module):
    """Two analog products ``ih``, ``hh`` and the gate arithmetic of one recurrent cell."""

    gates = 1
    is_analog = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 noise_model: NoiseModel | None = None, config: AnalogConfig | None = None,
                 seed: int | None = None, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), \
            bool(bias)
        nm = noise_model if noise_model is not None else NoiseModel.ideal()
        g = self.gates * self.hidden_size
        self.ih = AnalogLinear(self.input_size, g, bias, tile_noise_model(nm, self.input_size),
                               config, _sub_seed(seed, "ih"), device=device, dtype=dtype)
        self.hh = AnalogLinear(self.hidden_size, g, bias,
                               tile_noise_model(nm, self.hidden_size), config,
                               _sub_seed(seed, "hh"), device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation of recurrent cells: uniform in ``+-1/sqrt(hidden_size)``."""
        bound = 1.0 / self.hidden_size ** 0.5
        for p in (self.ih.weight, self.hh.weight, self.ih.bias, self.hh.bias):
            if p is not None:
                nn.init.uniform_(p, -bound, bound)

    def _zeros(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class AnalogRNNCell(_AnalogCell):
    """``torch.nn.RNNCell`` on analog tiles: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    Parameters
    ----------
    input_size, hidden_size, bias : as ``torch.nn.RNNCell``
    nonlinearity : {"tanh", "relu"}
    noise_model, config, seed : as :class:`~pyaimc.analog.linear.AnalogLinear`
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", noise_model: NoiseModel | None = None,
                 config: AnalogConfig | None = None, seed: int | None = None, device=None,
                 dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, noise_model, config, seed, device,
                         dtype)

    def step(self, gi: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step from the input product ``gi`` (batch, H) and the state ``h``."""
        a = gi + self.hh(h)
        return torch.tanh(a) if self.nonlinearity == "tanh" else torch.relu(a)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        return self.step(self.ih(x), self._zeros(x) if h is None else h)


class AnalogLSTMCell(_AnalogCell):
    """``torch.nn.LSTMCell`` on analog tiles (gates ``i, f, g, o`` in torch's order).

    Parameters
    ----------
    input_size, hidden_size, bias : as ``torch.nn.LSTMCell``
    noise_model, config, seed : as :class:`~pyaimc.analog.linear.AnalogLinear`
    """

    gates = 4

    def step(self, gi: torch.Tensor, state: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = (gi + self.hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, x: torch.Tensor, state: tuple | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            state = (self._zeros(x), self._zeros(x))
        return self.step(self.ih(x), state)


class AnalogGRUCell(_AnalogCell):
    """``torch.nn.GRUCell`` on analog tiles (gates ``r, z, n`` in torch's order).

    Parameters
    ----------
    input_size, hidden_size, bias : as ``torch.nn.GRUCell``
    noise_model, config, seed : as :class:`~pyaimc.analog.linear.AnalogLinear`
    """

    gates = 3

    def step(self, gi: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gh = self.hh(h)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        return self.step(self.ih(x), self._zeros(x) if h is None else h)


class _AnalogRNNBase(nn.Module):
    """Stacked (optionally bidirectional) analog recurrent layers over a cell type."""

    cell_type = AnalogRNNCell
    is_analog = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, noise_model: NoiseModel | None = None,
                 config: AnalogConfig | None = None, seed: int | None = None, device=None,
                 dtype=None, **cell_kw):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, \
            num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bool(bidirectional)
        dirs = 2 if self.bidirectional else 1
        self.cells = nn.ModuleList()
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size * dirs
            for d in range(dirs):
                self.cells.append(self.cell_type(
                    n_in, hidden_size, bias, noise_model=noise_model, config=config,
                    seed=_sub_seed(seed, f"l{layer}d{d}"), device=device, dtype=dtype,
                    **cell_kw))

    def cell(self, layer: int, direction: int = 0) -> _AnalogCell:
        return self.cells[layer * (2 if self.bidirectional else 1) + direction]

    def _initial(self, state, x, unbatched):
        """Per (layer, direction) initial states from torch's ``h_0`` layout."""
        return _split_h(state, len(self.cells), x.shape[1], self.hidden_size, x, unbatched)

    def _final(self, finals, unbatched):
        """torch's ``h_n`` layout (layers * directions, batch, H)."""
        h = torch.stack(finals)
        return h.squeeze(1) if unbatched else h

    def _run(self, cell, x, state, reverse: bool):
        """Outputs (T, B, H) of ``cell`` over ``x`` (T, B, in) from ``state``."""
        steps = x.shape[0]
        gi = cell.ih(x.reshape(-1, x.shape[-1])).reshape(steps, x.shape[1], -1)
        outs = [None] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            state = cell.step(gi[t], state)
            outs[t] = state[0] if isinstance(state, tuple) else state
        return torch.stack(outs), state

    def forward(self, x: torch.Tensor, state=None):
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise TypeError(f"{type(self).__name__} takes padded tensors, not PackedSequence")
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        states = self._initial(state, x, unbatched)
        dirs = 2 if self.bidirectional else 1
        finals = []
        with hold_draw(self):
            for layer in range(self.num_layers):
                outs = []
                for d in range(dirs):
                    k = layer * dirs + d
                    y, s = self._run(self.cells[k], x, states[k], reverse=d == 1)
                    outs.append(y)
                    finals.append(s)
                x = outs[0] if dirs == 1 else torch.cat(outs, dim=-1)
                if self.dropout and self.training and layer < self.num_layers - 1:
                    x = nn.functional.dropout(x, self.dropout, training=True)
        out = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
        return out, self._final(finals, unbatched)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, bidirectional={self.bidirectional}")


def _split_h(h, n: int, batch: int, hidden: int, x, unbatched: bool):
    if h is None:
        return [torch.zeros(batch, hidden, dtype=x.dtype, device=x.device) for _ in range(n)]
    h = h.unsqueeze(1) if unbatched else h
    return list(h.unbind(0))


class AnalogRNN(_AnalogRNNBase):
    """``torch.nn.RNN`` on analog tiles (see the module docstring); ``nonlinearity`` as there."""

    cell_type = AnalogRNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, **kw):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, nonlinearity=nonlinearity, **kw)


class AnalogGRU(_AnalogRNNBase):
    """``torch.nn.GRU`` on analog tiles (see the module docstring)."""

    cell_type = AnalogGRUCell


class AnalogLSTM(_AnalogRNNBase):
    """``torch.nn.LSTM`` on analog tiles (see the module docstring); returns ``output,
    (h_n, c_n)``. ``proj_size`` is not supported."""

    cell_type = AnalogLSTMCell

    def _initial(self, state, x, unbatched):
        n, b, hsz = len(self.cells), x.shape[1], self.hidden_size
        if state is None:
            return [(torch.zeros(b, hsz, dtype=x.dtype, device=x.device),
                     torch.zeros(b, hsz, dtype=x.dtype, device=x.device)) for _ in range(n)]
        hs = _split_h(state[0], n, b, hsz, x, unbatched)
        cs = _split_h(state[1], n, b, hsz, x, unbatched)
        return list(zip(hs, cs))

    def _final(self, finals, unbatched):
        h = torch.stack([s[0] for s in finals])
        c = torch.stack([s[1] for s in finals])
        return (h.squeeze(1), c.squeeze(1)) if unbatched else (h, c)


# ------------------------------------------------------------------------ conversion
def _copy_cell(cell: _AnalogCell, w_ih, w_hh, b_ih, b_hh) -> None:
    with torch.no_grad():
        cell.ih.weight.copy_(w_ih)
        cell.hh.weight.copy_(w_hh)
        if b_ih is not None:
            cell.ih.bias.copy_(b_ih)
            cell.hh.bias.copy_(b_hh)


def _convert_cell(cls):
    def convert(m, noise_model, config, seed):
        w = m.weight_ih
        kw = {"nonlinearity": m.nonlinearity} if cls is AnalogRNNCell else {}
        new = cls(m.input_size, m.hidden_size, m.bias, noise_model=noise_model, config=config,
                  seed=seed, device=w.device, dtype=w.dtype, **kw)
        _copy_cell(new, m.weight_ih, m.weight_hh, m.bias_ih if m.bias else None,
                   m.bias_hh if m.bias else None)
        return new
    return convert


def _convert_seq(cls):
    def convert(m, noise_model, config, seed):
        if getattr(m, "proj_size", 0):
            raise ValueError("convert_to_analog: LSTM with proj_size > 0 is not supported")
        w = m.weight_ih_l0
        kw = {"nonlinearity": m.nonlinearity} if cls is AnalogRNN else {}
        new = cls(m.input_size, m.hidden_size, m.num_layers, bias=m.bias,
                  batch_first=m.batch_first, dropout=m.dropout, bidirectional=m.bidirectional,
                  noise_model=noise_model, config=config, seed=seed, device=w.device,
                  dtype=w.dtype, **kw)
        dirs = 2 if m.bidirectional else 1
        for layer in range(m.num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                _copy_cell(new.cell(layer, d), getattr(m, "weight_ih" + sfx),
                           getattr(m, "weight_hh" + sfx),
                           getattr(m, "bias_ih" + sfx) if m.bias else None,
                           getattr(m, "bias_hh" + sfx) if m.bias else None)
        return new
    return convert


for _torch, _analog in ((nn.RNNCell, AnalogRNNCell), (nn.LSTMCell, AnalogLSTMCell),
                        (nn.GRUCell, AnalogGRUCell)):
    register_converter(_torch, _convert_cell(_analog))
for _torch, _analog in ((nn.RNN, AnalogRNN), (nn.LSTM, AnalogLSTM), (nn.GRU, AnalogGRU)):
    register_converter(_torch, _convert_seq(_analog))

"""The crossbar transfer model (``pyaimc.transfer/1``): what a 1R tile does to ``G.x``.

A compact behavioural description of a simulated crossbar tile, fitted by
:func:`pyaimc.circuit.transfer_fit.fit_transfer` and read by the noise-model export and the torch
layers. The formula (see ``docs/transfer_format.md``, which is the reference) for a tile of ``N``
rows and ``M`` columns with wire resistance ``r`` per segment, rows driven at column 0 and columns
read at row ``N-1``::

    I_j = clip( sum_i W1_ij x_i + W2_ij x_i**2 + W3_ij x_i**3, -i_sat, +i_sat )
    W1  = G / (1 + r (k_row (G @ Mmin) + k_col (Nmin @ G)))
    W2  = W1 (c2_0 + c2_1 gn),   W3 = W1 (c3_0 + c3_1 gn),   gn = (G - g_min) / (g_max - g_min)
    Mmin[l, j] = min(l, j),      Nmin[i, l] = min(N-1-i, N-1-l)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyaimc.io import SchemaError, provenance, read_json, write_json

SCHEMA = "pyaimc.transfer/1"


#: where each field of :class:`TransferModel` sits in the document
_DOC_PATHS = {"rows": "tile.rows", "cols": "tile.cols", "c2": "input_nonlinearity.c2",
              "c3": "input_nonlinearity.c3", "k_row": "ir_drop.k_row", "k_col": "ir_drop.k_col",
              "i_sat": "i_sat", "r_wire": "r_wire", "v_max": "v_max", "g_min": "g_min",
              "g_max": "g_max"}


class TransferError(SchemaError):
    """A transfer document lacks a field or holds an impossible value (named in the message)."""


def row_wire_load(g: np.ndarray) -> np.ndarray:
    """``G @ Mmin`` with ``Mmin[l, j] = min(l, j)``: conductance seen through the row wire, S.

    ``r * (G @ Mmin)[i, j] * x_i`` is the first-order voltage lost on row ``i`` between its driver
    (at column 0) and cell ``(i, j)``: segment ``s`` (between cells ``s-1`` and ``s``) carries the
    current of every cell at or beyond ``s``. Computed with suffix and prefix sums in O(N M)
    instead of the O(N M**2) product.

    Parameters
    ----------
    g : ndarray, shape (..., rows, cols)
        Conductances, siemens.
    """
    g = np.asarray(g, dtype=np.float64)
    out = np.zeros_like(g)
    # suffix[..., s] = sum_{l >= s} G[..., l];  (G @ Mmin)[..., j] = sum_{s=1..j} suffix[..., s]
    suffix = np.cumsum(g[..., ::-1], axis=-1)[..., ::-1]
    np.cumsum(suffix[..., 1:], axis=-1, out=out[..., 1:])
    return out


def column_wire_load(g: np.ndarray) -> np.ndarray:
    """``Nmin @ G`` with ``Nmin[i, l] = min(N-1-i, N-1-l)``: conductance seen through the column, S.

    The column wire runs from row 0 down to the read-out below row ``N-1``; counted from the
    read-out it is the row wire's geometry, so this is :func:`row_wire_load` of the row-flipped,
    transposed conductances.

    Parameters
    ----------
    g : ndarray, shape (..., rows, cols)
        Conductances, siemens.
    """
    g = np.asarray(g, dtype=np.float64)
    flipped = np.swapaxes(g[..., ::-1, :], -1, -2)
    return np.swapaxes(row_wire_load(flipped), -1, -2)[..., ::-1, :]


def _check_conductances(g, where: str = "conductances") -> np.ndarray:
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2 or 0 in g.shape:
        raise ValueError(f"{where} must be a non-empty rows x cols array (siemens), got shape "
                         f"{g.shape}")
    bad = ~np.isfinite(g) | (g < 0)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{where}: cell ({i}, {j}) is {g[i, j]}; conductances must be finite "
                         "and >= 0 S")
    return g


def _check_inputs(v, rows: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[-1] != rows:
        raise ValueError(f"inputs must be (rows,) or (batch, rows) volts with rows = {rows}, got "
                         f"shape {v.shape}")
    v = np.atleast_2d(v)
    bad = ~np.isfinite(v)
    if bad.any():
        b, i = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"input {b}, row {i} is not finite: {v[b, i]}")
    return v


@dataclass
class TransferModel:
    """Behavioural transfer model of a 1R crossbar tile (format ``pyaimc.transfer/1``).

    Parameters
    ----------
    rows, cols : int
        Tile size the model was fitted for (the formula itself accepts any size).
    r_wire : float
        Wire resistance per segment between neighbouring cells, ohm.
    v_max : float
        Largest input magnitude of the fit, volt; the polynomial terms are fitted for
        ``|x| <= v_max`` only.
    g_min, g_max : float
        Conductance window (siemens) that normalises ``gn``.
    k_row, k_col : float
        Scale of the first-order IR-drop terms (1 = first order exactly).
    c2 : tuple of 2 floats
        ``(c2_0, c2_1)``, 1/V: quadratic input term relative to ``W1``, linear in ``gn``.
    c3 : tuple of 2 floats
        ``(c3_0, c3_1)``, 1/V**2: cubic input term relative to ``W1``.
    i_sat : float or None
        Read-out saturation current, ampere; None for an ideal read-out.
    fit : dict
        Held-out errors and the simulation settings of the fit.
    provenance : dict
        Source device model, command, seed, pyaimc version.
    """

    rows: int
    cols: int
    r_wire: float
    v_max: float
    g_min: float
    g_max: float
    k_row: float = 1.0
    k_col: float = 1.0
    c2: tuple[float, float] = (0.0, 0.0)
    c3: tuple[float, float] = (0.0, 0.0)
    i_sat: float | None = None
    fit: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"tile {name} must be an integer >= 1, got {value}")
            setattr(self, name, int(value))
        for name in ("r_wire", "v_max", "g_min", "g_max", "k_row", "k_col"):
            value = float(getattr(self, name))
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            setattr(self, name, value)
        if self.r_wire < 0:
            raise ValueError(f"r_wire must be >= 0 ohm, got {self.r_wire}")
        if self.v_max <= 0:
            raise ValueError(f"v_max must be > 0 V, got {self.v_max}")
        if not 0 <= self.g_min < self.g_max:
            raise ValueError(f"need 0 <= g_min < g_max, got g_min={self.g_min}, g_max={self.g_max}")
        if self.k_row < 0 or self.k_col < 0:
            raise ValueError(f"k_row and k_col must be >= 0, got {self.k_row}, {self.k_col}")
        for name in ("c2", "c3"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (2,) or not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be two finite numbers [{name}_0, {name}_1], got "
                                 f"{getattr(self, name)!r}")
            setattr(self, name, (float(value[0]), float(value[1])))
        if self.i_sat is not None:
            self.i_sat = float(self.i_sat)
            if not (np.isfinite(self.i_sat) and self.i_sat > 0):
                raise ValueError(f"i_sat must be a current > 0 A or None, got {self.i_sat}")

    # ------------------------------------------------------------------ the formula
    def effective_conductances(self, g) -> np.ndarray:
        """``W1``: conductances after the IR-drop correction, siemens (rows x cols)."""
        g = _check_conductances(g)
        load = self.k_row * row_wire_load(g) + self.k_col * column_wire_load(g)
        return g / (1.0 + self.r_wire * load)

    def weights(self, g) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(W1, W2, W3)`` of the formula: A/V, A/V**2, A/V**3 (each rows x cols)."""
        g = _check_conductances(g)
        w1 = self.effective_conductances(g)
        gn = (g - self.g_min) / (self.g_max - self.g_min)
        return w1, w1 * (self.c2[0] + self.c2[1] * gn), w1 * (self.c3[0] + self.c3[1] * gn)

    def cell_coefficients(self, g) -> np.ndarray:
        """The single-cell I-V this model assumes, without wires: ``I = a0 v + a1 v**2 +
        a2 v**3`` with ``(a0, a1, a2) = G (1, c2(gn), c3(gn))`` (A/V**k), shape ``g.shape + (3,)``.

        The cells a circuit simulation of this model's crossbar uses (``PolynomialCells``).
        """
        g = np.asarray(g, dtype=np.float64)
        gn = (g - self.g_min) / (self.g_max - self.g_min)
        return np.stack([g, g * (self.c2[0] + self.c2[1] * gn),
                         g * (self.c3[0] + self.c3[1] * gn)], axis=-1)

    def predict(self, g, v) -> np.ndarray:
        """Column currents of the tile, ampere.

        Parameters
        ----------
        g : array_like, shape (rows, cols)
            Programmed conductances (chord conductance at the read voltage), siemens.
        v : array_like, shape (rows,) or (batch, rows)
            Row input voltages, volt.

        Returns
        -------
        ndarray, shape (batch, cols)
            Currents into the column read-outs (a batch axis also for one input vector).
        """
        g = _check_conductances(g)
        v = _check_inputs(v, g.shape[0])
        w1, w2, w3 = self.weights(g)
        currents = v @ w1 + (v * v) @ w2 + (v * v * v) @ w3
        if self.i_sat is not None:
            np.clip(currents, -self.i_sat, self.i_sat, out=currents)
        return currents

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        """The JSON document of ``docs/transfer_format.md``."""
        return {
            "schema": SCHEMA,
            "tile": {"rows": self.rows, "cols": self.cols},
            "r_wire": self.r_wire,
            "v_max": self.v_max,
            "g_min": self.g_min,
            "g_max": self.g_max,
            "ir_drop": {"k_row": self.k_row, "k_col": self.k_col},
            "input_nonlinearity": {"c2": list(self.c2), "c3": list(self.c3)},
            "i_sat": self.i_sat,
            "fit": self.fit,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, doc: dict, where: str = "transfer model") -> "TransferModel":
        """Build from a ``pyaimc.transfer/1`` document.

        Raises
        ------
        SchemaError
            Wrong schema, a missing field or a field of the wrong kind (named in the message).
        """
        if not isinstance(doc, dict):
            raise TransferError(f"{where}: expected a {SCHEMA} document, got "
                                f"{type(doc).__name__}")
        if doc.get("schema") != SCHEMA:
            raise TransferError(f"{where}: schema is {doc.get('schema')!r}, expected {SCHEMA!r}")

        def get(*keys):
            node = doc
            for k in keys:
                if not isinstance(node, dict) or k not in node:
                    raise TransferError(f"{where}: missing field "
                                        f"{'.'.join(keys)!r}")
                node = node[k]
            if isinstance(node, bool) or (not isinstance(node, (int, float, list))
                                          and node is not None):
                raise TransferError(f"{where}: transfer field {'.'.join(keys)!r} must be a "
                                    f"number, got {node!r}")
            return node

        fields = dict(rows=get("tile", "rows"), cols=get("tile", "cols"), r_wire=get("r_wire"),
                      v_max=get("v_max"), g_min=get("g_min"), g_max=get("g_max"),
                      k_row=get("ir_drop", "k_row"), k_col=get("ir_drop", "k_col"),
                      c2=get("input_nonlinearity", "c2"), c3=get("input_nonlinearity", "c3"),
                      i_sat=get("i_sat"))
        try:
            return cls(**fields, fit=doc.get("fit", {}), provenance=doc.get("provenance", {}))
        except (TypeError, ValueError, OverflowError) as err:
            # name the field as the document spells it
            msg = str(err)
            for name, path in _DOC_PATHS.items():
                if msg.startswith(f"{name} ") or msg.startswith(f"tile {name} "):
                    msg = f"field '{path}': {msg}"
                    break
            raise TransferError(f"{where}: {msg}") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as versioned JSON, atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TransferModel":
        """Read a model written by :meth:`save` (:class:`TransferError` on another schema or a
        bad field)."""
        return cls.from_dict(read_json(path, SCHEMA), str(path))

    @classmethod
    def first_order(cls, rows: int, cols: int, r_wire: float, v_max: float, g_min: float,
                    g_max: float) -> "TransferModel":
        """The first-order IR-drop correction (``k_row = k_col = 1``), not fitted.

        Linear cells, no read-out saturation; its ``fit`` field says so. The layer's agreement
        with the crossbar solver at this geometry is measured by the test suite.
        """
        return cls(rows, cols, r_wire, v_max, g_min, g_max, fit={
            "method": "first-order IR-drop theory (k_row = k_col = 1), not fitted to circuit "
                      "simulations; linear cells, no saturation"}, provenance=provenance())

    # ------------------------------------------------------------------ properties
    @property
    def has_ir_drop(self) -> bool:
        """Whether the wires change the product (``r_wire * max(k_row, k_col) > 0``)."""
        return self.r_wire * max(self.k_row, self.k_col) > 0

    @property
    def has_nonlinearity(self) -> bool:
        """Whether the cells add ``x**2`` and ``x**3`` terms."""
        return any(c != 0 for c in self.c2 + self.c3)

    @property
    def is_linear(self) -> bool:
        """True when the tile computes ``x @ G`` exactly (saturation aside)."""
        return not (self.has_ir_drop or self.has_nonlinearity)

    def to_torch(self):
        """The same model for torch tensors (:class:`~pyaimc.circuit.transfer_torch.TorchTransfer`;
        imports torch)."""
        from pyaimc.circuit.transfer_torch import TorchTransfer

        return TorchTransfer.from_model(self)


def read_transfer(path: str | os.PathLike) -> TransferModel:
    """Read and check a transfer document (schema and every field)."""
    return TransferModel.load(path)


def as_transfer(doc, where: str = "transfer") -> TransferModel:
    """A :class:`TransferModel` from a model or its ``pyaimc.transfer/1`` document (checked)."""
    if isinstance(doc, TransferModel):
        return doc
    return TransferModel.from_dict(doc, where)

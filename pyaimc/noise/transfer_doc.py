"""The crossbar transfer document (``pyaimc.transfer/1``, docs/transfer_format.md): checks and a
first-order (unfitted) instance.

The noise model carries the document as it is; this module only checks that it has every field
the training layer needs, with sane values, so a bad file fails at export or load, not mid-run.
"""

from __future__ import annotations

import math
import os

from pyaimc.io import provenance, read_json

TRANSFER_SCHEMA = "pyaimc.transfer/1"


class TransferError(ValueError):
    """A transfer document lacks a field or holds an impossible value."""


def _number(doc: dict, path: str, where: str, allow_none: bool = False) -> float | None:
    node = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise TransferError(f"{where}: transfer document has no field '{path}'")
        node = node[key]
    if node is None and allow_none:
        return None
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        raise TransferError(f"{where}: transfer field '{path}' must be a finite number, "
                            f"got {node!r}")
    return float(node)


def validate_transfer(doc: dict, where: str = "transfer") -> dict:
    """Check a ``pyaimc.transfer/1`` document; returns it unchanged.

    Raises
    ------
    TransferError
        Naming the missing or bad field.
    """
    if not isinstance(doc, dict) or doc.get("schema") != TRANSFER_SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise TransferError(f"{where}: expected a {TRANSFER_SCHEMA} document, got schema {found!r}")
    rows, cols = _number(doc, "tile.rows", where), _number(doc, "tile.cols", where)
    if rows < 1 or cols < 1 or rows != int(rows) or cols != int(cols):
        raise TransferError(f"{where}: tile must have integer rows, cols >= 1, got {rows} x {cols}")
    if _number(doc, "r_wire", where) < 0:
        raise TransferError(f"{where}: r_wire must be >= 0 ohm, got {doc['r_wire']}")
    if not _number(doc, "v_max", where) > 0:
        raise TransferError(f"{where}: v_max must be > 0 V, got {doc['v_max']}")
    g_min, g_max = _number(doc, "g_min", where), _number(doc, "g_max", where)
    if not 0 <= g_min < g_max:
        raise TransferError(f"{where}: need 0 <= g_min < g_max, got {g_min}, {g_max} S")
    _number(doc, "ir_drop.k_row", where)
    _number(doc, "ir_drop.k_col", where)
    for name in ("c2", "c3"):
        coefs = doc.get("input_nonlinearity", {}).get(name)
        if (not isinstance(coefs, list) or len(coefs) != 2
                or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in coefs)):
            raise TransferError(f"{where}: input_nonlinearity.{name} must be two numbers "
                                f"[{name}_0, {name}_1], got {coefs!r}")
    i_sat = _number(doc, "i_sat", where, allow_none=True)
    if i_sat is not None and not i_sat > 0:
        raise TransferError(f"{where}: i_sat must be > 0 A or null, got {i_sat}")
    return doc


def read_transfer(path: str | os.PathLike) -> dict:
    """Read and check a transfer document (schema and fields)."""
    return validate_transfer(read_json(path, TRANSFER_SCHEMA), str(path))


def first_order_transfer(rows: int, cols: int, r_wire: float, v_max: float, g_min: float,
                         g_max: float) -> dict:
    """The transfer document of the first-order IR-drop correction (``k_row = k_col = 1``).

    Not fitted: linear cells, no read-out saturation. Its ``fit`` field says so; the layer's
    agreement with the crossbar solver at this geometry is measured by the test suite.
    """
    doc = {
        "schema": TRANSFER_SCHEMA,
        "tile": {"rows": int(rows), "cols": int(cols)},
        "r_wire": float(r_wire),
        "v_max": float(v_max),
        "g_min": float(g_min), "g_max": float(g_max),
        "ir_drop": {"k_row": 1.0, "k_col": 1.0},
        "input_nonlinearity": {"c2": [0.0, 0.0], "c3": [0.0, 0.0]},
        "i_sat": None,
        "fit": {"method": "first-order IR-drop theory (k_row = k_col = 1), not fitted to "
                          "circuit simulations; linear cells, no saturation"},
        "provenance": provenance(),
    }
    return validate_transfer(doc, "first-order transfer")

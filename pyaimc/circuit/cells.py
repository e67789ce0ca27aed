"""Current-voltage laws of the cells of a crossbar, shared by the netlist builder and the solver.

A cell is a two-terminal element between its row node (``+``) and its column node (``-``). At a
fixed device state (a read does not switch the device) its current is a function of the voltage
across it alone. Three kinds are supported:

* :class:`LinearCells` -- a conductance per cell, ``I = G V``.
* :class:`PolynomialCells` -- a polynomial per cell without a constant term,
  ``I = sum_k a_k V**k`` (k = 1..K). This is the form the device model gives for a cell at a fixed
  state (a mix of two polynomial envelopes, odd and even terms). The netlist writes it as a
  B-source; the fast solver runs Newton iterations on it.
* :class:`SubcircuitCells` -- an ngspice subcircuit per cell with per-cell instance parameters (the
  full switching device model from :mod:`pyaimc.compact`). Only the ngspice engine can run these.

Every class exposes ``shape`` (rows, cols), ``is_linear``, ``current(v)``,
``current_and_slope(v)`` and two neutral netlist descriptions, ``element(row, col)`` and
``definitions(dialect)``, which a simulator's dialect (:mod:`pyaimc.spice.dialect`) writes in
its syntax. Voltages broadcast against ``(..., rows, cols)``.
"""

from __future__ import annotations

import abc
from typing import Mapping

import numpy as np

from pyaimc.spice.dialect import spice_number  # noqa: F401 - kept importable here


class CellIV(abc.ABC):
    """Current-voltage law of every cell of an array (rows x cols), at a fixed device state."""

    #: True when ``I = G V`` (the nodal matrix does not depend on the voltages).
    is_linear: bool = False
    #: True when the fast solver can evaluate the cells (``current_and_slope`` is implemented).
    solvable: bool = True

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the array."""

    @abc.abstractmethod
    def current_and_slope(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell currents (A, row node to column node) and their slopes dI/dV (S).

        Parameters
        ----------
        v : ndarray, shape (..., rows, cols)
            Voltage across each cell (row node minus column node), volt.
        """

    def current(self, v: np.ndarray) -> np.ndarray:
        """Cell currents in ampere for voltages ``v`` (volt), shape (..., rows, cols)."""
        return self.current_and_slope(v)[0]

    def small_signal_conductance(self) -> np.ndarray:
        """dI/dV at 0 V of every cell, siemens, shape (rows, cols)."""
        return self.current_and_slope(np.zeros(self.shape))[1]

    def definitions(self, dialect) -> list[str]:
        """Netlist lines the instances need once (models, ``.subckt`` blocks, ``.include``), in
        ``dialect``'s syntax."""
        return []

    @abc.abstractmethod
    def element(self, row: int, col: int) -> tuple | None:
        """What cell (row, col) is, for a netlist dialect: ``("resistor", ohm)``,
        ``("poly_current", coefficients)`` (``I = sum_k a_k v**(k+1)``, A/V**(k+1)) or
        ``("instance", (model, {param: value}))``.

        Returns None when the cell carries no current at any voltage (it is left out of the
        netlist, i.e. an open circuit).
        """


def _as_float_array(values, what: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{what} holds a non-finite value at index {where}: {arr[where]}")
    return arr


class LinearCells(CellIV):
    """Ohmic cells: ``I = G V``.

    Parameters
    ----------
    conductance : array_like, shape (rows, cols)
        Cell conductances in siemens; finite and >= 0. A zero cell is an open circuit.
    """

    is_linear = True

    def __init__(self, conductance) -> None:
        g = _as_float_array(conductance, "conductance matrix", 2)
        negative = g < 0
        if negative.any():
            r, c = (int(k) for k in np.argwhere(negative)[0])
            raise ValueError(f"conductance matrix has a negative value at row {r}, column {c}: "
                             f"{g[r, c]} S (conductances must be >= 0)")
        self.conductance = g

    @property
    def shape(self) -> tuple[int, int]:
        return self.conductance.shape  # type: ignore[return-value]

    def current_and_slope(self, v):
        v = np.asarray(v, dtype=np.float64)
        return self.conductance * v, np.broadcast_to(self.conductance, v.shape)

    def small_signal_conductance(self) -> np.ndarray:
        return self.conductance

    def element(self, row, col):
        g = self.conductance[row, col]
        return None if g == 0.0 else ("resistor", 1.0 / g)


class PolynomialCells(CellIV):
    """Cells with a polynomial I-V without constant term: ``I = sum_{k=1..K} a_k V**k``.

    Parameters
    ----------
    coefficients : array_like, shape (rows, cols, K)
        ``coefficients[r, c, k-1]`` is ``a_k`` of cell (r, c) in A / V**k, k = 1..K. Odd and even
        terms are allowed (asymmetric I-V). Must be finite.

    Notes
    -----
    The netlist writes each cell as an ngspice B-source ``I=`` expression in Horner form, so the
    two engines evaluate the same polynomial. The fast solver needs dI/dV > 0 over the voltages
    that occur for its iterative method (it falls back or stops with a clear error otherwise).
    """

    def __init__(self, coefficients) -> None:
        a = _as_float_array(coefficients, "polynomial coefficients", 3)
        self.coefficients = a
        # k * a_k: the coefficients of dI/dV, computed once for the Newton iterations.
        self._slope_coefficients = a * np.arange(1, a.shape[2] + 1)

    @classmethod
    def from_linear_cubic(cls, conductance, nonlinearity: float, v_max: float) -> "PolynomialCells":
        """Cells ``I = G V + a_3 V**3`` whose cubic term adds ``nonlinearity`` x G V at ``v_max``.

        A convenient realistic test case: ``nonlinearity=0.2`` makes the current at ``v_max``
        20 % larger than the linear part.

        Parameters
        ----------
        conductance : array_like, shape (rows, cols)
            Small-signal conductance G in siemens, >= 0.
        nonlinearity : float
            Relative size of the cubic term at ``v_max`` (dimensionless, >= 0).
        v_max : float
            Voltage in volt at which the cubic term equals ``nonlinearity * G * v_max``.
        """
        g = LinearCells(conductance).conductance
        if not (np.isfinite(nonlinearity) and nonlinearity >= 0):
            raise ValueError(f"nonlinearity must be finite and >= 0, got {nonlinearity}")
        if not (np.isfinite(v_max) and v_max > 0):
            raise ValueError(f"v_max must be a positive voltage, got {v_max}")
        a = np.zeros(g.shape + (3,))
        a[..., 0] = g
        a[..., 2] = nonlinearity * g / v_max**2
        return cls(a)

    @property
    def shape(self) -> tuple[int, int]:
        return self.coefficients.shape[:2]  # type: ignore[return-value]

    @property
    def degree(self) -> int:
        """Highest power K of the polynomial."""
        return self.coefficients.shape[2]

    def current_and_slope(self, v):
        v = np.asarray(v, dtype=np.float64)
        a, da = self.coefficients, self._slope_coefficients
        # Horner's scheme on I/V = a_1 + a_2 V + ... and on dI/dV = a_1 + 2 a_2 V + ...
        i = np.broadcast_to(a[..., -1], v.shape).copy()
        s = np.broadcast_to(da[..., -1], v.shape).copy()
        for k in range(self.degree - 2, -1, -1):
            i *= v
            i += a[..., k]
            s *= v
            s += da[..., k]
        i *= v
        return i, s

    def small_signal_conductance(self) -> np.ndarray:
        return self.coefficients[..., 0]

    def element(self, row, col):
        a = self.coefficients[row, col]
        return ("poly_current", [float(c) for c in a]) if a.any() else None


class SubcircuitCells(CellIV):
    """Cells given as an ngspice subcircuit with per-cell instance parameters (ngspice only).

    Parameters
    ----------
    subckt : str
        Name of the subcircuit; its first two pins are the row (+) and column (-) terminals.
    params : mapping of str to array_like, shape (rows, cols)
        Per-cell instance parameters (the sampled device state), in the units the subcircuit
        expects. All arrays must have the same shape; values must be finite.
    definitions : str, optional
        Netlist text that defines the subcircuit (a ``.subckt`` block or an ``.include`` line).
    dialect : str
        The simulator whose syntax ``definitions`` is written in (default ngspice); other
        dialects refuse it.
    """

    solvable = False

    def __init__(self, subckt: str, params: Mapping[str, object], definitions: str = "",
                 dialect: str = "ngspice") -> None:
        if not subckt or not subckt.replace("_", "").isalnum():
            raise ValueError(f"subcircuit name must be a plain identifier, got {subckt!r}")
        if not params:
            raise ValueError("subcircuit cells need at least one per-cell parameter to fix the shape")
        arrays = {}
        shape = None
        for key, values in params.items():
            if not key.replace("_", "").isalnum():
                raise ValueError(f"parameter name must be a plain identifier, got {key!r}")
            arr = _as_float_array(values, f"subcircuit parameter {key!r}", 2)
            if shape is not None and arr.shape != shape:
                raise ValueError(f"subcircuit parameter {key!r} has shape {arr.shape}, "
                                 f"the others have {shape}")
            shape = arr.shape
            arrays[key] = arr
        self.subckt = subckt
        self.params = arrays
        self.definition_text = definitions
        self.dialect = dialect
        self._shape = shape

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape  # type: ignore[return-value]

    def current_and_slope(self, v):
        raise NotImplementedError(
            f"cells given as the ngspice subcircuit {self.subckt!r} can only be simulated with the "
            "ngspice engine")

    def definitions(self, dialect) -> list[str]:
        if dialect.name != self.dialect:
            raise ValueError(f"subcircuit {self.subckt!r} is defined in {self.dialect} syntax; "
                             f"the {dialect.name} netlist cannot use it")
        text = self.definition_text
        return [text.strip("\n")] if text.strip() else []

    def element(self, row, col):
        return ("instance", (self.subckt, {k: v[row, col] for k, v in self.params.items()}))


class VerilogACells(PolynomialCells):
    """Cells of the fitted ReRAM model's Verilog-A module, programmed to read resistances.

    In VACASK every cell is an instance of ``pyaimc_reram.va`` (compiled by OpenVAF) with its
    programmed state (instance parameter ``r_init_ohm``) and a row of the exported cycle table
    (``device``) for what it does when switched. At a read (no switching) its current is the
    module's ``I = L(U) + r (H(U) - L(U))`` with ``r`` the state of the programmed resistance: a
    polynomial, so the fast solver evaluates the same law.

    Parameters
    ----------
    model : DeviceModel
        The fitted device model (its I-V part).
    resistances : array_like, shape (rows, cols)
        Programmed read resistance of each cell at the model's read voltage, ohm.
    exported : path
        A folder written by ``pyaimc export veriloga MODEL --osdi`` (or
        :func:`pyaimc.compact.veriloga.write_veriloga` with ``osdi=True``) for the same model:
        ``pyaimc_reram.osdi`` and ``model_card.vacask``.
    device : array_like of int, shape (rows, cols), optional
        Row of the exported table each cell replays when switched (default 0).
    card : str
        The model card's name.
    """

    def __init__(self, model, resistances, exported, device=None,
                 card: str = "pyaimc_reram_fit") -> None:
        from pathlib import Path

        r = _as_float_array(resistances, "cell resistances", 2)
        if np.any(r <= 0):
            raise ValueError("cell resistances must be > 0 ohm")
        iv = model.iv_
        state = iv.state_from_resistance(r)
        lrs, hrs = iv.lrs_coefs, iv.hrs_coefs
        super().__init__(lrs + state[..., None] * (hrs - lrs))
        self.model = model
        self.resistances = r
        self.exported = Path(exported)
        for name in ("pyaimc_reram.osdi", "model_card.vacask"):
            if not (self.exported / name).is_file():
                raise FileNotFoundError(f"{self.exported / name} not found: export the module "
                                        f"with pyaimc export veriloga MODEL -o DIR --osdi")
        device = np.zeros(r.shape, int) if device is None else np.asarray(device)
        if device.shape != r.shape or not np.issubdtype(device.dtype, np.integer) \
                or device.min() < 0:
            raise ValueError(f"device must be integers >= 0 of shape {r.shape}")
        self.device = device
        self.card = card

    def definitions(self, dialect) -> list[str]:
        if dialect.name != "vacask":
            raise ValueError(f"Verilog-A cells need a simulator that loads OSDI models (vacask); "
                             f"the {dialect.name} netlist cannot use them")
        return [f'load "{(self.exported / "pyaimc_reram.osdi").resolve()}"',
                f'include "{(self.exported / "model_card.vacask").resolve()}"']

    def element(self, row, col):
        return ("instance", (self.card, {"device": int(self.device[row, col]),
                                         "r_init_ohm": float(self.resistances[row, col])}))

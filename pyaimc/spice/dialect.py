"""Netlist dialects: how each simulator writes the elements pyaimc's circuits are made of.

A circuit builder (:func:`pyaimc.circuit.netlist.build_netlist`) describes elements neutrally
(a resistor between two nodes, a current source with a polynomial law, an instance of a
subcircuit or compact model with parameters) and a dialect writes them in one simulator's
syntax; the physics classes never hold simulator syntax. Dialects register by name
(:data:`DIALECTS`, :func:`get_dialect`); ngspice's is built in.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

#: registered dialects, by simulator name
DIALECTS: dict[str, "Dialect"] = {}


def spice_number(value: float) -> str:
    """Format a float for a netlist: the shortest text that reads back to the same double."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"cannot write the non-finite value {value} into a netlist")
    return repr(value)


def register_dialect(dialect: "Dialect") -> "Dialect":
    """Make ``dialect`` available to :func:`get_dialect` under its ``name``."""
    DIALECTS[dialect.name] = dialect
    return dialect


def get_dialect(name: "str | Dialect") -> "Dialect":
    """The dialect registered as ``name`` (a dialect object is returned as it is)."""
    if isinstance(name, Dialect):
        return name
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"no netlist dialect {name!r}; registered: "
                         f"{', '.join(sorted(DIALECTS))}") from None


class Dialect:
    """The elements of a netlist in one simulator's syntax (base: SPICE element letters).

    Every method returns one line (or a list of lines) of netlist text. Node ``0`` is ground.
    """

    name = ""
    comment_prefix = "*"

    num = staticmethod(spice_number)

    def comment(self, text: str) -> str:
        return f"{self.comment_prefix} {text}"

    def resistor(self, name: str, a: str, b: str, r: float) -> str:
        return f"R{name} {a} {b} {self.num(r)}"

    def capacitor(self, name: str, a: str, b: str, c: float) -> str:
        return f"C{name} {a} {b} {self.num(c)}"

    def vsource_dc(self, name: str, p: str, n: str, v: float) -> str:
        return f"V{name} {p} {n} DC {self.num(v)}"

    def vsource_zero(self, name: str, p: str, n: str) -> str:
        """A 0 V source (an ammeter)."""
        return f"V{name} {p} {n} DC 0"

    def vsource_pwl(self, name: str, p: str, n: str, times, volts) -> str:
        pts = " ".join(f"{self.num(t)} {self.num(v)}" for t, v in zip(times, volts))
        return f"V{name} {p} {n} PWL({pts})"

    def vcvs(self, name: str, p: str, n: str, cp: str, cn: str, gain: float) -> str:
        """Voltage-controlled voltage source ``v(p, n) = gain * v(cp, cn)``."""
        return f"E{name} {p} {n} {cp} {cn} {self.num(gain)}"

    def vcvs_exact(self, name: str, p: str, n: str, cp: str, cn: str, gain: float) -> str:
        """As :meth:`vcvs`, with ``gain`` written as given when it is an integer (``1``)."""
        g = str(int(gain)) if float(gain).is_integer() else self.num(gain)
        return f"E{name} {p} {n} {cp} {cn} {g}"

    def poly_current(self, name: str, p: str, n: str, coefficients: Sequence[float]) -> str:
        """A current from ``p`` to ``n``: ``I = sum_k a_k v**(k+1)``, ``v = v(p, n)`` (Horner)."""
        v = f"V({p},{n})"
        expr = self.num(coefficients[-1])
        for coef in coefficients[-2::-1]:
            expr = f"{self.num(coef)}+{v}*({expr})"
        return f"B{name} {p} {n} I={v}*({expr})"

    def instance(self, name: str, nodes: Sequence[str], model: str,
                 params: Mapping[str, float]) -> str:
        """An instance of a subcircuit or compact model with per-instance parameters."""
        values = " ".join(f"{k}={self.num(v)}" for k, v in params.items())
        return f"X{name} {' '.join(nodes)} {model}" + (f" {values}" if values else "")

    def mosfet(self, name: str, d: str, g: str, s: str, b: str, model: str, w: float,
               l: float) -> str:  # noqa: E741 - the SPICE name of the gate length
        return f"M{name} {d} {g} {s} {b} {model} W={self.num(w)} L={self.num(l)}"

    def nmos_level1_card(self, model: str, vto: float, kp: float, lambda_: float) -> str:
        """A level-1 NMOS model card (no body effect, no junction leakage)."""
        return (f".model {model} nmos level=1 vto={self.num(vto)} kp={self.num(kp)} "
                f"lambda={self.num(lambda_)} gamma=0 is=0 js=0")

    def current_vector(self, vsource_name: str) -> str:
        """The simulator's name of the current through the voltage source ``V<name>``."""
        return f"i(v{vsource_name.lower()})"

    def save(self, vectors: Sequence[str]) -> str:
        return ".save " + " ".join(vectors)

    def end(self) -> str:
        return ".end"

    def element(self, name: str, p: str, n: str, element: tuple) -> str:
        """The line of a two-terminal cell element described neutrally (see
        :meth:`pyaimc.circuit.cells.CellIV.element`): ``("resistor", r)``,
        ``("poly_current", coefficients)`` or ``("instance", (model, params))``."""
        kind, value = element
        if kind == "resistor":
            return self.resistor(name, p, n, value)
        if kind == "poly_current":
            return self.poly_current(name, p, n, value)
        if kind == "instance":
            model, params = value
            return self.instance(name, (p, n), model, params)
        raise ValueError(f"dialect {self.name!r} cannot write a {kind!r} element")


class NgspiceDialect(Dialect):
    """ngspice 39 (batch mode and the shared library)."""

    name = "ngspice"


register_dialect(NgspiceDialect())

"""Example crossbars whose netlists live in ``netlists/`` (kept current by a test).

Regenerate them with::

    python -m tools.write_netlists            # writes ./netlists/*.cir
    python -m tools.write_netlists --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pyaimc.circuit.cells import LinearCells, PolynomialCells
from pyaimc.circuit.crossbar import (AccessTransistor, Crossbar, RowDriver, TIAReadout,
                                     differential_conductances)
from pyaimc.circuit.netlist import build_netlist


def _resistances(rng: np.random.Generator, shape) -> np.ndarray:
    """Programmed cell resistances in ohm: log-uniform 10 kohm .. 1 Mohm, 3 significant digits."""
    r = 10.0 ** rng.uniform(4, 6, shape)
    digits = 2 - np.floor(np.log10(r)).astype(int)
    return np.array([round(x, int(d)) for x, d in zip(r.ravel(), digits.ravel())]).reshape(shape)


def example_circuits() -> dict[str, tuple[Crossbar, np.ndarray]]:
    """The example crossbars and their input vectors (row voltages in volt), by file name."""
    examples = {}

    rng = np.random.default_rng(8)
    g = 1.0 / _resistances(rng, (8, 8))
    examples["xbar_8x8_1t1r.cir"] = (
        Crossbar(LinearCells(g), r_row=2.5, r_col=2.5, access=AccessTransistor(v_gate=1.8)),
        np.round(rng.uniform(0.0, 0.2, 8), 3))

    rng = np.random.default_rng(32)
    g = 1.0 / _resistances(rng, (32, 32))
    examples["xbar_32x32_1r_wires.cir"] = (
        Crossbar(LinearCells(g), r_row=1.0, r_col=1.0), np.round(rng.uniform(0.0, 0.2, 32), 3))

    # Signed weights on differential pairs, non-linear cells (20 % cubic excess at 0.2 V),
    # 4-bit DACs with 50 ohm output resistance, TIAs with finite gain.
    rng = np.random.default_rng(16)
    weights = np.round(rng.uniform(-1, 1, (16, 4)), 2)
    g = differential_conductances(weights, g_min=1e-6, g_max=100e-6)
    examples["xbar_16x8_diff_tia_poly.cir"] = (
        Crossbar(PolynomialCells.from_linear_cubic(g, nonlinearity=0.2, v_max=0.2),
                 r_row=1.0, r_col=1.0, driver=RowDriver(r_source=50.0, dac_bits=4, v_max=0.2),
                 readout=TIAReadout(r_feedback=10e3, gain=1e4), differential=True),
        np.round(rng.uniform(-0.2, 0.2, 16), 3))
    return examples


def example_netlists() -> dict[str, str]:
    """Netlist text of every example, by file name."""
    return {name: build_netlist(xbar, v, title=f"pyaimc example {Path(name).stem}")
            for name, (xbar, v) in example_circuits().items()}


def write_examples(directory: str | Path = "netlists") -> list[Path]:
    """Write the example netlists into ``directory`` (atomically); returns the paths."""
    from pyaimc.io import atomic_write_text

    directory = Path(directory)
    return [atomic_write_text(directory / name, text)
            for name, text in example_netlists().items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.write_netlists",
                                     description="Write the example crossbar netlists.")
    parser.add_argument("--out", default="netlists", help="directory (default: ./netlists)")
    args = parser.parse_args(argv)
    for path in write_examples(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

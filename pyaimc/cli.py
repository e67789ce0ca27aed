"""The ``pyaimc`` command: one sub-command per job.

Each job registers its sub-command in :func:`build_parser` through a small ``_add_<job>``
function next to its handler; handlers import their level lazily so ``pyaimc --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys

from pyaimc import __version__


class CLIError(Exception):
    """An error reported to the user as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyaimc",
        description="Circuit-level co-simulation of analog in-memory computing on ReRAM crossbars.")
    parser.add_argument("--version", action="version", version=f"pyaimc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # --- jobs register here, one line each ---
    _add_crossbar(sub)
    return parser


def _add_crossbar(sub) -> None:
    crossbar = sub.add_parser("crossbar", help="crossbar circuits (ngspice or the fast solver)",
                              description="Crossbar circuits: simulate column currents.")
    actions = crossbar.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    sim = actions.add_parser(
        "simulate", help="column currents of a 1R crossbar with wire resistance",
        description="Column currents of a 1R crossbar. Rows are driven at their left end (the "
                    "driver connects straight to the first cell), columns are read at their "
                    "bottom end into 0 V (the last cell connects straight to the read-out); every "
                    "row and column segment between neighbouring cells has resistance --r-wire. "
                    "With --r-wire 0 the result is exactly V.G.")
    sim.add_argument("--conductances", required=True, metavar="G.npy",
                     help="cell conductances, rows x cols, siemens")
    sim.add_argument("--inputs", required=True, metavar="V.npy",
                     help="row voltages in volt: one vector (rows,) or a batch (batch, rows)")
    sim.add_argument("--r-wire", required=True, type=float, metavar="OHMS",
                     help="resistance of each row and column segment between neighbouring cells")
    sim.add_argument("--engine", choices=("fast", "ngspice"), default="fast",
                     help="fast nodal solver (default) or ngspice operating points")
    sim.add_argument("-o", "--output", required=True, metavar="I.npy",
                     help="column currents in ampere, positive into the read-out: (cols,) for "
                          "one input vector, (batch, cols) for a batch")
    sim.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                     help="time limit per ngspice run (default 600)")
    sim.set_defaults(handler=_crossbar_simulate)


def _load_array(path: str, what: str):
    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file ({what})") from None
    except (ValueError, OSError) as err:
        raise CLIError(f"{path}: not a readable .npy array ({what}): {err}") from None
    if not isinstance(arr, np.ndarray) or not (np.issubdtype(arr.dtype, np.integer)
                                               or np.issubdtype(arr.dtype, np.floating)):
        raise CLIError(f"{path}: {what} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _crossbar_simulate(args) -> int:
    import io
    import time

    import numpy as np

    from pyaimc.circuit.crossbar import one_r
    from pyaimc.circuit.errors import ConvergenceError
    from pyaimc.circuit.ngspice import NgspiceError
    from pyaimc.circuit.simulate import simulate
    from pyaimc.io import atomic_write_bytes

    g = _load_array(args.conductances, "conductances")
    v = _load_array(args.inputs, "inputs")
    if g.ndim != 2:
        raise CLIError(f"{args.conductances}: conductances must be rows x cols, got shape {g.shape}")
    if not (np.isfinite(args.r_wire) and args.r_wire >= 0):
        raise CLIError(f"--r-wire must be a finite resistance >= 0 ohm, got {args.r_wire}")
    try:
        xbar = one_r(g, args.r_wire)
    except ValueError as err:
        raise CLIError(f"{args.conductances}: {err}") from None
    try:
        xbar.row_voltages(v)
    except ValueError as err:
        raise CLIError(f"{args.inputs}: {err} (conductances {args.conductances}: {g.shape})") from None
    start = time.perf_counter()
    try:
        currents = simulate(xbar, v, args.engine, timeout=args.timeout)
    except (NgspiceError, ConvergenceError) as err:
        raise CLIError(str(err)) from None
    elapsed = time.perf_counter() - start
    buf = io.BytesIO()
    np.save(buf, currents)
    atomic_write_bytes(args.output, buf.getvalue())
    print(f"wrote {args.output}: column currents {currents.shape} in ampere "
          f"({args.engine} engine, {elapsed:.3g} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CLIError, FileNotFoundError, ValueError) as err:
        print(f"pyaimc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

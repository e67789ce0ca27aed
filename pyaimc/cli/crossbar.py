"""``pyaimc crossbar simulate|transfer``: crossbar column currents and the transfer-model fit."""

from __future__ import annotations

from pyaimc.cli._common import CLIError, load_array, tile


def register(sub) -> None:
    """Add this module's sub-commands to ``sub``."""
    _add_crossbar(sub)


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
    sim.add_argument("--engine", default="fast", metavar="ENGINE",
                     help="a registered engine: fast (pyaimc's nodal solver, default), ngspice "
                          "(operating points), ...")
    sim.add_argument("-o", "--output", required=True, metavar="I.npy",
                     help="column currents in ampere, positive into the read-out: (cols,) for "
                          "one input vector, (batch, cols) for a batch")
    sim.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                     help="time limit per simulator run (default 600)")
    sim.add_argument("--budget", type=float, default=3600.0, metavar="SECONDS",
                     help="time limit of a simulator engine for the whole batch (default 3600)")
    sim.add_argument("--max-cells", type=int, default=65536, metavar="N",
                     help="largest crossbar a simulator engine takes, cells (default 65536)")
    sim.add_argument("--accept-implausible", action="store_true",
                     help="take conductances above 1 S and row voltages beyond 20 V as given")
    sim.set_defaults(handler=_crossbar_simulate)
    _add_crossbar_transfer(actions)


def _crossbar_simulate(args) -> int:
    import io
    import math
    import time

    import numpy as np

    from pyaimc.circuit.crossbar import one_r
    from pyaimc.circuit.engines import get_engine
    from pyaimc.circuit.simulate import simulate
    from pyaimc.data import plausibility
    from pyaimc.io import atomic_write_bytes, check_output

    engine = get_engine(args.engine)
    if not (math.isfinite(args.r_wire) and args.r_wire >= 0):
        raise CLIError(f"--r-wire must be a finite resistance >= 0 ohm, got {args.r_wire}")
    for name, value in (("--timeout", args.timeout), ("--budget", args.budget)):
        if not (math.isfinite(value) and value > 0):
            raise CLIError(f"{name} must be a number of seconds > 0, got {value}")
    if args.max_cells < 1:
        raise CLIError(f"--max-cells must be >= 1, got {args.max_cells}")
    check_output(args.output, "-o")
    g = load_array(args.conductances, "conductances")
    v = load_array(args.inputs, "inputs")
    if g.ndim != 2:
        raise CLIError(f"{args.conductances}: conductances must be rows x cols, got shape "
                       f"{g.shape}")
    try:
        xbar = one_r(g, args.r_wire)
    except ValueError as err:
        raise CLIError(f"{args.conductances}: {err}") from None
    try:
        xbar.row_voltages(v)
    except ValueError as err:
        raise CLIError(f"{args.inputs}: {err} (conductances {args.conductances}: "
                       f"{g.shape})") from None
    if not args.accept_implausible:
        plausibility.check(g, "G", args.conductances, lambda k: f"cell {k}")
        plausibility.check(v, "V", args.inputs, lambda k: f"entry {k}")
    start = time.perf_counter()
    options = ({"timeout": args.timeout, "budget": args.budget, "max_cells": args.max_cells}
               if "external" in engine.capabilities else {})
    currents = simulate(xbar, v, engine, **options)
    elapsed = time.perf_counter() - start
    buf = io.BytesIO()
    np.save(buf, currents)
    atomic_write_bytes(args.output, buf.getvalue())
    print(f"wrote {args.output}: column currents {currents.shape} in ampere "
          f"({args.engine} engine, {elapsed:.3g} s)")
    return 0


def _add_crossbar_transfer(actions) -> None:
    tr = actions.add_parser(
        "transfer", help="fit the crossbar transfer model to Monte-Carlo circuit simulations",
        description="Draw weight patterns of devices from a device model (programmed by "
                    "write-verify), simulate the 1R tile with wires and the cells' non-linear I-V "
                    "for random inputs, and fit the transfer model (IR-drop scales k_row, k_col, "
                    "input non-linearity c2, c3, read-out saturation i_sat); writes it as "
                    "pyaimc.transfer/1 JSON with its held-out error next to the ideal G.x's.")
    tr.add_argument("--device", required=True, metavar="MODEL.json", help="fitted device model")
    tr.add_argument("--tile", type=tile, default=(64, 64), metavar="ROWSxCOLS",
                    help="tile size (default 64x64)")
    tr.add_argument("--r-wire", type=float, default=1.0, metavar="OHMS",
                    help="resistance of each row and column segment (default 1)")
    tr.add_argument("--v-max", type=float, default=0.2, metavar="V",
                    help="largest input magnitude in volt (default 0.2)")
    tr.add_argument("--patterns", type=int, default=16, metavar="N",
                    help="weight patterns to fit on (default 16; half as many more held out)")
    tr.add_argument("--inputs", type=int, default=32, metavar="N",
                    help="random input vectors per pattern (default 32)")
    tr.add_argument("--engine", default="fast", metavar="ENGINE",
                    help="a registered engine (default fast)")
    tr.add_argument("--tia-swing", type=float, metavar="V",
                    help="saturating TIA read-out with this output swing (default: ideal read-out)")
    tr.add_argument("--tia-feedback", type=float, default=10e3, metavar="OHMS",
                    help="TIA feedback resistance (default 10k)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tr.add_argument("--scheduler", metavar="ADDRESS",
                    help="Dask scheduler address (tcp://host:port); default local processes")
    tr.add_argument("--workers", type=int, metavar="N",
                    help="local worker processes (default: all cores; 1 runs in this process)")
    tr.add_argument("-o", "--output", required=True, metavar="TRANSFER.json")
    tr.add_argument("--report", metavar="DIR",
                    help="also write figures and metrics (and the error vs size and wire fits)")
    tr.set_defaults(handler=_crossbar_transfer)


def _crossbar_transfer(args) -> int:
    import numpy as np

    from pyaimc.circuit.engines import get_engine
    from pyaimc.circuit.montecarlo import get_executor
    from pyaimc.circuit.transfer_fit import SaturatingTIA, fit_transfer
    from pyaimc.device.model import DeviceModel

    from pyaimc.io import OutputSet, check_output

    get_engine(args.engine)
    rows, cols = args.tile
    if not (np.isfinite(args.r_wire) and args.r_wire >= 0):
        raise CLIError(f"--r-wire must be a finite resistance >= 0 ohm, got {args.r_wire}")
    if not (np.isfinite(args.v_max) and args.v_max > 0):
        raise CLIError(f"--v-max must be a positive voltage, got {args.v_max}")
    if args.patterns < 1 or args.inputs < 1:
        raise CLIError(f"--patterns and --inputs must be >= 1, got {args.patterns}, {args.inputs}")
    if args.workers is not None and args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    if args.tia_swing is not None and not (np.isfinite(args.tia_swing) and args.tia_swing > 0):
        raise CLIError(f"--tia-swing must be a voltage > 0, got {args.tia_swing}")
    if not (np.isfinite(args.tia_feedback) and args.tia_feedback > 0):
        raise CLIError(f"--tia-feedback must be a resistance > 0 ohm, got {args.tia_feedback}")
    check_output(args.output, "-o")
    if args.report:
        check_output(args.report, "--report", directory=True)
    model = DeviceModel.load(args.device)
    readout = None
    if args.tia_swing is not None:
        readout = SaturatingTIA(r_feedback=args.tia_feedback, v_swing=args.tia_swing)
    rng = np.random.default_rng(args.seed)
    with get_executor(args.scheduler, args.workers) as executor, OutputSet() as outputs:
        fit = fit_transfer(model, rows, cols, args.r_wire, args.v_max, args.patterns, rng,
                           inputs_per_pattern=args.inputs, engine=args.engine,
                           executor=executor, readout=readout, progress=True,
                           source=args.device, seed=args.seed, return_simulations=True)
        fit.model.save(outputs.file(args.output))
        f = fit.model.fit
        if args.report:
            from pyaimc.circuit.transfer_report import write_transfer_report

            write_transfer_report(outputs.folder(args.report), fit, rng, executor=executor,
                                  progress=True, seed=args.seed)
    print(f"wrote {args.output}: {rows}x{cols} tile, r_wire {args.r_wire:g} ohm, IR-drop "
          f"loss {f['ir_drop_loss_mean']:.1%}; k_row {fit.model.k_row:.4f}, k_col "
          f"{fit.model.k_col:.4f}, c2 {fit.model.c2[0]:.4g} {fit.model.c2[1]:+.4g} gn, "
          f"c3 {fit.model.c3[0]:.4g} {fit.model.c3[1]:+.4g} gn, i_sat {fit.model.i_sat}")
    print(f"  held-out relative RMS error: model {f['heldout_rel_rms_error']:.3%}, ideal "
          f"G.x {f['heldout_ideal_rel_rms_error']:.3%} ({f['n_heldout_patterns']} "
          f"patterns x {f['inputs_per_pattern']} inputs)")
    if args.report:
        print(f"wrote report to {args.report}")
    return 0

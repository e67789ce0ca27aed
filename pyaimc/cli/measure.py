"""``pyaimc measure``: run a measurement protocol on a virtual chip or a real instrument."""

from __future__ import annotations

from pyaimc.cli._common import CLIError


def register(sub) -> None:
    """Add this module's sub-commands to ``sub``."""
    p = sub.add_parser(
        "measure", help="run a measurement protocol (cycling, sweeps, pulses, read) on a virtual "
                        "chip or a VISA instrument; data in pyaimc's formats",
        description="Run a measurement protocol through an instrument and write the data in "
                    "pyaimc's own formats, ready for 'pyaimc fit': cycling -> .npz of per-cycle "
                    "features (R_HRS, R_LRS, and U_SET, U_RESET when the protocol sweeps); "
                    "sweeps -> .npz with U (points) and I (cells x cycles x points); pulses -> "
                    "pulse CSV (cell,width_s,v_bl,v_sl,v_wl,r_before,r_after); read -> .npz "
                    "with R and I (cells x repeats) and U. A description of the instrument "
                    "(front end, calibration, time) goes to DATA.json beside the data.")
    p.add_argument("--instrument", required=True, metavar="virtual|visa:RESOURCE",
                   help="'virtual': a virtual board on new devices of --model; 'visa:RESOURCE': "
                        "a VISA resource (a Keithley 2400-style SMU or a NeuroBreakoutBoard-like "
                        "board, told apart by *IDN?)")
    p.add_argument("--protocol", required=True, choices=("cycling", "sweeps", "pulses", "read"))
    p.add_argument("--model", metavar="MODEL.json",
                   help="device model of the virtual chip, a file or a shipped name (virtual "
                        "only; default 'example'; pulses need a pulse model, e.g. "
                        "radar_pulse-4-24-20)")
    p.add_argument("--cells", type=int, required=True, help="devices measured")
    p.add_argument("--cycles", type=int, default=1,
                   help="cycles (cycling, sweeps, pulses) or repeated reads (read); default 1")
    p.add_argument("--seed", type=int, default=0, help="random seed of the virtual chip "
                                                       "(default 0)")
    p.add_argument("-o", "--output", required=True, metavar="DATA")
    p.add_argument("--no-sweep", action="store_true",
                   help="cycling without sweeps: SET step, read, RESET step, read (R_HRS, R_LRS)")
    p.add_argument("--points", type=int, default=400,
                   help="samples per sweep cycle (default 400: 15 mV steps on +-1.5 V)")
    p.add_argument("--compliance", type=float, metavar="A",
                   help="current compliance of sweeps and switching steps, A (default 1 mA)")
    p.add_argument("--uncalibrated", action="store_true",
                   help="skip the board's gain, offset and series-resistance calibration")
    p.add_argument("--visa-library", default="", metavar="LIB",
                   help="VISA library: '' the system's (default), '@py' pyvisa-py, '@sim' "
                        "pyaimc's simulated instruments, 'FILE.yaml@sim' another definition")
    p.add_argument("--one-t-one-r", action="store_true",
                   help="the board's devices have access transistors (visa boards)")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    import numpy as np

    from pyaimc.apps.instruments.measure import measure
    from pyaimc.data.pulses import save_pulse_csv
    from pyaimc.io import OutputSet, check_output, provenance, write_json, write_npz

    if args.cells < 1 or args.cycles < 1:
        raise CLIError(f"--cells and --cycles must be >= 1, got {args.cells}, {args.cycles}")
    if args.cells > 100_000:
        raise CLIError(f"--cells {args.cells}: at most 100,000 per run")
    if args.compliance is not None and not args.compliance > 0:
        raise CLIError(f"--compliance must be > 0 A, got {args.compliance}")
    if args.protocol == "pulses" and not args.output.endswith(".csv"):
        raise CLIError(f"-o {args.output}: the pulses protocol writes a pulse CSV; name it "
                       f"*.csv")
    if args.protocol != "pulses" and not args.output.endswith(".npz"):
        raise CLIError(f"-o {args.output}: the {args.protocol} protocol writes an .npz; name it "
                       f"*.npz")
    check_output(args.output, "-o")
    kind, data, meta = measure(args.instrument, args.protocol, args.cells, args.cycles,
                               np.random.default_rng(args.seed), model=args.model,
                               visa_library=args.visa_library,
                               calibrate=not args.uncalibrated, sweep=not args.no_sweep,
                               points=args.points, compliance=args.compliance,
                               one_t_one_r=args.one_t_one_r, progress=True)
    doc = {"schema": "pyaimc.measurement/1", "protocol": args.protocol,
           "instrument": args.instrument, "cells": args.cells, "cycles": args.cycles,
           "board": meta, "data": args.output,
           "provenance": provenance(source=args.model if args.instrument == "virtual" else
                                    args.instrument, seed=args.seed)}
    with OutputSet() as outputs:
        if kind == "pulse-csv":
            save_pulse_csv(data, outputs.file(args.output))
        else:
            write_npz(outputs.file(args.output), **data)
        write_json(outputs.file(args.output + ".json"), doc)
    if args.protocol == "cycling":
        names = [k for k in ("R_HRS", "U_SET", "R_LRS", "U_RESET") if k in data]
        med = ", ".join(f"{k} {np.median(data[k][np.isfinite(data[k])]):.4g}" for k in names)
        print(f"cycling: {args.cells} cells x {args.cycles} cycles, medians {med}; "
              f"{int(data['missing'].sum())} values not observed")
    elif args.protocol == "read":
        print(f"read: {args.cells} cells x {args.cycles} reads, median R "
              f"{np.median(data['R']):.4g} ohm")
    elif args.protocol == "sweeps":
        print(f"sweeps: {args.cells} cells x {args.cycles} cycles x {len(data['U'])} points")
    else:
        print(f"pulses: {len(data)} pulses on {args.cells} cells")
    print(f"instrument time {meta['elapsed_s']:.3g} s; wrote {args.output} and "
          f"{args.output}.json")
    return 0

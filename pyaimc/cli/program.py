"""``pyaimc program``: write-verify statistics of a scheme on a device model."""

from __future__ import annotations

from pyaimc.cli._common import CLIError


def register(sub) -> None:
    """Add this module's sub-commands to ``sub``."""
    from pyaimc.device.schemes import SCHEMES

    p = sub.add_parser(
        "program", help="program cells to target windows with a write scheme; pulses, success, "
                        "spread and energy per window",
        description="Program N new devices of the model into each target window with a write "
                    "scheme and write per window the pulses (mean, median, p99), the success "
                    "fraction, the final conductance (mean, std, S) and the mean energy of a "
                    "write (J).")
    p.add_argument("model", metavar="MODEL.json")
    p.add_argument("--scheme", required=True, choices=sorted(SCHEMES),
                   help="write scheme (ispp, fppv, radar need a model with a pulse part)")
    p.add_argument("--windows", metavar="WINDOWS.csv",
                   help="target windows, CSV with header r_lo,r_hi (ohm); r_lo 0 means below "
                        "r_hi, a huge r_hi above r_lo (default: the 2-bits-per-cell windows of "
                        "the shared evaluations, 0-5000, 5770-6010, 8510-9310, 80000-1e10 ohm)")
    p.add_argument("--cells", type=int, default=1000, help="cells per window (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--start", choices=("previous", "fresh"), default="previous",
                   help="previous (default): each cell first writes the window before its own, "
                        "as the measured evaluations rotate levels; fresh: new devices")
    p.add_argument("-o", "--output", required=True, metavar="STATS.json")
    p.set_defaults(handler=_run)


def read_windows(path: str):
    """``(k, 2)`` windows from a CSV with header ``r_lo,r_hi`` (ohm)."""
    import csv
    import math

    import numpy as np

    from pyaimc.data.container import DataError

    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [h.strip().lower() for h in rows[0]] != ["r_lo", "r_hi"]:
        raise DataError(f"{path}: row 1 (header) is {','.join(rows[0]) if rows else ''!r}; "
                        f"expected 'r_lo,r_hi'")
    out = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not t.strip() for t in row):
            continue
        if len(row) != 2:
            raise DataError(f"{path}: row {lineno} has {len(row)} fields; expected r_lo,r_hi")
        vals = []
        for col, tok in enumerate(row, start=1):
            try:
                v = float(tok)
            except ValueError:
                raise DataError(f"{path}: row {lineno}, column {col}: {tok.strip()!r} is not a "
                                f"number") from None
            if not math.isfinite(v) or v < 0:
                raise DataError(f"{path}: row {lineno}, column {col}: {tok.strip()}; expected a "
                                f"resistance >= 0 ohm")
            vals.append(v)
        if vals[1] <= vals[0]:
            raise DataError(f"{path}: row {lineno}: r_hi {vals[1]:g} <= r_lo {vals[0]:g}; "
                            f"expected r_lo < r_hi")
        out.append(vals)
    if not out:
        raise DataError(f"{path}: header but no windows")
    return np.asarray(out)


def _run(args) -> int:
    import numpy as np

    from pyaimc.device.model import DeviceModel
    from pyaimc.device.schemes import EVAL_WINDOWS_2BPC, get_scheme, program_levels
    from pyaimc.io import OutputSet, check_output, provenance, write_json

    if args.cells < 1:
        raise CLIError(f"--cells must be >= 1, got {args.cells}")
    if args.cells > 10_000_000:
        raise CLIError(f"--cells {args.cells}: at most 10,000,000 per window")
    check_output(args.output, "-o")
    windows = read_windows(args.windows) if args.windows else EVAL_WINDOWS_2BPC
    model = DeviceModel.load(args.model)
    scheme = get_scheme(args.scheme)
    stats = program_levels(model, scheme, windows, args.cells, np.random.default_rng(args.seed),
                           start=args.start)
    doc = {"schema": "pyaimc.program/1", **stats, "scheme": scheme.to_dict(),
           "cells_per_window": args.cells, "start": args.start,
           "provenance": provenance(source=str(args.model), seed=args.seed)}
    with OutputSet() as outputs:
        write_json(outputs.file(args.output), doc)
    print(f"{args.scheme}: {args.cells} cells per window ({args.start} start)")
    print(f"  {'r_lo':>9} {'r_hi':>9} | {'pulses mean':>11} {'median':>6} {'p99':>5} | "
          f"{'success':>7} | {'G mean uS':>9} {'std':>6} | {'energy pJ':>9}")
    for lv in stats["levels"]:
        g = "-" if lv["g_mean"] is None else f"{lv['g_mean'] * 1e6:9.2f}"
        s = "-" if lv["g_std"] is None else f"{lv['g_std'] * 1e6:6.2f}"
        e = "-" if lv["energy_mean"] is None else f"{lv['energy_mean'] * 1e12:9.1f}"
        print(f"  {lv['r_lo']:9.0f} {lv['r_hi']:9.3g} | {lv['pulses_mean']:11.2f} "
              f"{lv['pulses_median']:6.0f} {lv['pulses_p99']:5.0f} | {lv['success']:7.2%} | "
              f"{g:>9} {s:>6} | {e:>9}")
    print(f"wrote {args.output}")
    return 0

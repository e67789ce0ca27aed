"""``pyaimc relax``: conductances some time after programming, from a model's relaxation part."""

from __future__ import annotations

from pyaimc.cli._common import CLIError, load_array


def register(sub) -> None:
    """Add this module's sub-commands to ``sub``."""
    p = sub.add_parser(
        "relax", help="relaxed conductances at times after programming",
        description="For each programmed conductance in G0 (S, one per cell) draw its relaxed "
                    "conductance at each time (s after programming) from the model's relaxation "
                    "part; writes an array (cells, times) in S. Same seed, same result.")
    p.add_argument("model", metavar="MODEL.json", help="a device model with a relaxation part")
    p.add_argument("--g0", required=True, metavar="G0.npy",
                   help="programmed conductances, S: a 1-D .npy array, one per cell")
    p.add_argument("--times", required=True, nargs="+", type=float, metavar="T",
                   help="times after programming, s (>= 0)")
    p.add_argument("--temperature", type=float, metavar="C",
                   help="constant temperature since programming, C (default: that of the "
                        "relaxation records; needs a model fitted with --bake)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("-o", "--output", required=True, metavar="OUT.npy")
    p.set_defaults(handler=_run_relax)


def _run_relax(args) -> int:
    import numpy as np

    from pyaimc.device.model import DeviceModel
    from pyaimc.io import write_npy

    model = DeviceModel.load(args.model)
    if model.relaxation_ is None:
        raise CLIError(f"{args.model}: the model has no relaxation part; fit one with "
                       f"'pyaimc fit RELAX.tsv.gz' or 'pyaimc fit DATA --relaxation RELAX.tsv.gz'")
    g0 = load_array(args.g0, "--g0")
    if g0.ndim != 1 or g0.size == 0:
        raise CLIError(f"{args.g0}: shape {g0.shape}; expected a 1-D array of conductances (S), "
                       f"one per cell")
    bad = ~np.isfinite(g0) | (g0 < 0) | (g0 >= 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CLIError(f"{args.g0}: cell {i} has G0 = {float(g0[i])!r}; expected a conductance "
                       f"in S (0 <= G0 < 1; {int(bad.sum())} such cells)")
    times = np.asarray(args.times, dtype=np.float64)
    if np.any(~np.isfinite(times) | (times < 0)):
        raise CLIError(f"--times {args.times}: expected finite times >= 0 s")
    r = model.relaxation_
    out = r.relax(g0, times, np.random.default_rng(args.seed), temperature_c=args.temperature)
    write_npy(args.output, out)
    last = r.t_knots_[-1]
    note = (f"; times beyond {last:g} s (the last measured) are extrapolated"
            if np.any(times > last) else "")
    temp = "" if args.temperature is None else f" at {args.temperature:g} C"
    print(f"wrote {args.output}: {out.shape[0]} cells x {out.shape[1]} times{temp} "
          f"({r.technology_}){note}")
    return 0

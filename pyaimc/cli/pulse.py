"""``pyaimc pulse``: replay a pulse table through a device model's pulse response."""

from __future__ import annotations

from pyaimc.cli._common import CLIError


def register(sub) -> None:
    """Add this module's sub-commands to ``sub``."""
    p = sub.add_parser(
        "pulse", help="draw the resistance after each pulse of a pulse table",
        description="Replay a pulse table (CSV cell,width_s,v_bl,v_sl,v_wl,r_before[,r_after], "
                    "SI units) through the model's pulse response and write it back: the same "
                    "rows in the same order, r_after (ohm) drawn for each row's r_before and "
                    "pulse. Each distinct cell is one device.")
    p.add_argument("model", metavar="MODEL.json", help="device model with a pulse part "
                                                         "(pyaimc fit ... --pulses)")
    p.add_argument("pulses", metavar="PULSES.csv")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.csv")
    p.add_argument("--accept-implausible", action="store_true",
                   help="read values outside the physical plausibility ranges as they are")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    import numpy as np

    from pyaimc.data.pulses import load_pulse_csv, save_pulse_csv
    from pyaimc.device.model import DeviceModel
    from pyaimc.device.pulse import replay
    from pyaimc.io import OutputSet, check_output

    check_output(args.output, "-o")
    model = DeviceModel.load(args.model)
    if model.pulse_ is None:
        raise CLIError(f"{args.model}: the model has no pulse part; fit one with "
                       f"'pyaimc fit CYCLING.csv --pulses FILE... -o MODEL.json'")
    data = load_pulse_csv(args.pulses, plausible=not args.accept_implausible)
    out = replay(model.pulse_, data, np.random.default_rng(args.seed))
    with OutputSet() as outputs:
        save_pulse_csv(out, outputs.file(args.output))
    n_set, n_reset = int((data.polarity == 1).sum()), int((data.polarity == -1).sum())
    print(f"replayed {len(data)} pulses of {len(data.cells())} cells ({n_set} SET, {n_reset} "
          f"RESET, {len(data) - n_set - n_reset} without a pulse); wrote {args.output}")
    return 0

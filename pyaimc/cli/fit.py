"""``pyaimc fit`` and ``pyaimc sample``: fit a device model to measurements, draw from it."""

from __future__ import annotations

from pyaimc.cli._common import CLIError

#: most values per feature ``pyaimc sample`` draws at once (float32, four features: ~6 GiB)
MAX_SAMPLE_VALUES = 400_000_000


def register(sub) -> None:
    """Add this module's sub-commands to ``sub``."""
    _add_fit(sub)
    _add_sample(sub)


def _add_fit(sub) -> None:
    p = sub.add_parser(
        "fit", help="fit a stochastic device model to measurements",
        description="Fit the device model (marginals, device-to-device mixture, cycle-to-cycle "
                    "VAR, I-V) to calibration data and write it as versioned JSON.")
    p.add_argument("data", help="calibration data: .npz of cells x cycles arrays, a tab-separated "
                                "HRS/LRS cycling table, a long CSV (cell,cycle,features...), or "
                                "an .npz of raw I-V sweeps (U, I)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.json")
    p.add_argument("--report", metavar="DIR", help="write fidelity metrics and figures here")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", choices=["npz", "radar", "long-csv", "sweeps"],
                   help="data format (detected when omitted)")
    p.add_argument("--sweeps", metavar="SWEEPS.npz",
                   help="raw I-V sweeps to fit the I-V envelopes and RESET path from")
    p.add_argument("--max-var-order", type=int, default=10)
    p.add_argument("--max-components", type=int, default=6)
    p.add_argument("--keep-stuck", action="store_true",
                   help="keep cells that do not switch (excluded and listed by default)")
    p.add_argument("--citation", help="citation of the data, recorded in the model's provenance")
    p.add_argument("--accept-implausible", action="store_true",
                   help="read values outside the physical plausibility ranges (README) as they "
                        "are")
    p.add_argument("--relaxation", metavar="RELAX.tsv.gz",
                   help="relaxation records (addr, time, r, g, g_initial, level, timept) to add "
                        "the relaxation part; DATA may itself be such a file (then the model has "
                        "only that part)")
    p.add_argument("--bake", metavar="BAKE.tsv.gz",
                   help="bake records (addr, time, r, g, temp) of the same technology: "
                        "temperature dependence of the relaxation part")
    p.add_argument("--traces", metavar="TRACES.tsv.gz",
                   help="continuous read traces of the same technology: 1/f read noise of the "
                        "relaxation part")
    g = p.add_argument_group("pulse response (1T1R programming)")
    g.add_argument("--pulses", nargs="+", metavar="FILE",
                   help="pulse records to fit the pulse-response part from: RADAR sweep files "
                        "(tab-separated; SET or RESET from the file name) or CSV "
                        "cell,width_s,v_bl,v_sl,v_wl,r_before,r_after")
    g.add_argument("--hold-out-pulses", action="store_true",
                   help="fit on half of the cells of each pulse file (by address) and keep the "
                        "other half for checks (recorded in the model)")
    g.add_argument("--pulse-head", choices=("mdn", "quantile"), default="mdn",
                   help="output family of the pulse network (default mdn)")
    g.add_argument("--pulse-hidden", type=int, default=128,
                   help="hidden units per layer (default 128)")
    g.add_argument("--pulse-epochs", type=int, default=100,
                   help="passes over the pulses (default 100)")
    p.set_defaults(handler=_run_fit)


def _run_fit(args) -> int:
    import numpy as np

    from pyaimc.data.relaxation import detect_relaxation_format
    from pyaimc.device.fitting import (fit_from_files, fit_relaxation_from_files, fit_summary,
                                       relaxation_summary, report_summary)
    from pyaimc.io import OutputSet, check_output

    if args.max_var_order < 0 or args.max_components < 1:
        raise CLIError(f"--max-var-order must be >= 0 and --max-components >= 1, got "
                       f"{args.max_var_order}, {args.max_components}")
    check_output(args.output, "-o")
    if args.report:
        check_output(args.report, "--report", directory=True)
    kind = None if args.format else detect_relaxation_format(args.data)
    if kind in ("bake", "traces"):
        raise CLIError(f"{args.data}: {kind} records refine a relaxation part; give relaxation "
                       f"records as DATA (or --relaxation) and this file with --{kind}")
    if kind is None and (args.bake or args.traces) and not args.relaxation:
        raise CLIError("--bake and --traces need relaxation records (DATA or --relaxation)")
    if kind == "relaxation":
        if args.relaxation:
            raise CLIError(f"{args.data} is relaxation records already; --relaxation is for "
                           f"adding them to a cycling model")
        model = fit_relaxation_from_files(args.data, bake=args.bake, traces=args.traces,
                                          seed=args.seed, citation=args.citation)
        with OutputSet() as outputs:
            model.save(outputs.file(args.output))
        print("\n".join(relaxation_summary(model)))
        print(f"wrote {args.output} (relaxation part only)")
        return 0
    rng = np.random.default_rng(args.seed)
    model, data, sweeps = fit_from_files(
        args.data, format=args.format, sweeps=args.sweeps, seed=args.seed,
        max_var_order=args.max_var_order, max_components=args.max_components,
        keep_stuck=args.keep_stuck, citation=args.citation, rng=rng,
        plausible=not args.accept_implausible,
        pulses=args.pulses, hold_out_pulses=args.hold_out_pulses,
        pulse_params={"head": args.pulse_head, "hidden": args.pulse_hidden,
                      "epochs": args.pulse_epochs}, progress=True)
    if args.relaxation:
        fit_relaxation_from_files(args.relaxation, bake=args.bake, traces=args.traces,
                                  model=model)
    print("\n".join(fit_summary(model, str(args.data))))
    if args.relaxation:
        print("\n".join(relaxation_summary(model)))
    with OutputSet() as outputs:
        model.save(outputs.file(args.output))
        if args.report:
            from pyaimc.device.report import write_report

            m = write_report(model, data, outputs.folder(args.report), rng, seed=args.seed,
                             progress=True, sweeps=sweeps)
    print(f"wrote {args.output}")
    if args.report:
        print("\n".join(report_summary(m)))
        print(f"wrote report to {args.report}")
    return 0


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="draw feature sequences of new devices from a model",
                       description="Write one devices x cycles array per feature (ohms, volts) "
                                   "to an .npz, in the layout of synaptogen_ref/features.npz.")
    p.add_argument("model", metavar="MODEL.json")
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--cycles", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    p.set_defaults(handler=_run_sample)


def _run_sample(args) -> int:
    import numpy as np

    from pyaimc.device.model import DeviceModel

    from pyaimc.io import check_output

    if args.devices < 1 or args.cycles < 1:
        raise CLIError(f"--devices and --cycles must be >= 1, got {args.devices}, {args.cycles}")
    n_values = args.devices * args.cycles
    if n_values > MAX_SAMPLE_VALUES:
        raise CLIError(f"--devices x --cycles = {n_values:.3g} values per feature; at most "
                       f"{MAX_SAMPLE_VALUES:.0e} (about {MAX_SAMPLE_VALUES * 4 * 4 / 2**30:.0f} "
                       f"GiB in memory): sample in parts with different seeds")
    check_output(args.output, "-o")
    model = DeviceModel.load(args.model)
    model.sample_to_npz(args.output, args.devices, args.cycles, np.random.default_rng(args.seed))
    print(f"wrote {args.output}: {', '.join(model.feature_names_)} "
          f"({args.devices} devices x {args.cycles} cycles)")
    return 0

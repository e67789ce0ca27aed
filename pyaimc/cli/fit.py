"""``pyaimc fit`` and ``pyaimc sample``: fit a device model to measurements, draw from it."""

from __future__ import annotations

from pyaimc.cli._common import CLIError


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
    p.set_defaults(handler=_run_fit)


def _run_fit(args) -> int:
    import numpy as np

    from pyaimc.data import load
    from pyaimc.data.sweeps import extract_features, is_sweep_file, load_sweeps
    from pyaimc.device.iv_fit import fit_iv
    from pyaimc.device.model import DeviceModel

    sweeps = None
    if args.format == "sweeps" or (args.format is None and str(args.data).endswith(".npz")
                                   and is_sweep_file(args.data)):
        u, i = load_sweeps(args.data)
        sweeps = extract_features(u, i, source=str(args.data))
        data = sweeps.data
    else:
        data = load(args.data, args.format)
    if args.sweeps:
        u, i = load_sweeps(args.sweeps)
        sweeps = extract_features(u, i, source=str(args.sweeps))
    iv = fit_iv(sweeps) if sweeps is not None else None
    info = {"sweeps": str(args.sweeps or (args.data if sweeps is not None else "")) or None}
    if args.citation:
        info["citation"] = args.citation
    rng = np.random.default_rng(args.seed)
    model = DeviceModel(max_var_order=args.max_var_order, max_components=args.max_components,
                        exclude_stuck=not args.keep_stuck)
    model.fit(data, iv=iv, rng=rng, source_info={**info, "seed": args.seed})
    model.save(args.output)
    fi = model.fit_info_
    print(f"fitted {args.data}: {fi['n_devices']} devices x {fi['n_cycles']} cycles, "
          f"features {', '.join(model.feature_names_)}")
    for ex in fi["excluded"]:
        print(f"  excluded cell {ex['cell']} (file row {ex['file_row']}): {ex['reason']}")
    print(f"  cycle-to-cycle VAR order {fi['var_order']} (spectral radius "
          f"{fi['var_spectral_radius']:.3f}); {fi['n_components']} device population(s), "
          f"weights {', '.join(f'{w:.3f}' for w in fi['component_weights'])}")
    print(f"  I-V: {model.iv_.source}")
    print(f"wrote {args.output}")
    if args.report:
        from pyaimc.device.report import write_report

        m = write_report(model, data, args.report, rng, seed=args.seed, progress=True,
                         sweeps=sweeps)
        for n, p in m["per_feature"].items():
            print(f"  {n:8s} KS {p['ks']:.4f}  ACF err {p['acf_error']:.4f}  "
                  f"d2d ratio {p['d2d_ratio']:.3f}  within ratio {p['within_ratio']:.3f}")
        print(f"  cross-correlation error {m['xcorr_error']:.4f}; smallest component "
              f"{m['mixture']['smallest_component_fraction']:.3f}")
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

    if args.devices < 1 or args.cycles < 1:
        raise CLIError(f"--devices and --cycles must be >= 1, got {args.devices}, {args.cycles}")
    model = DeviceModel.load(args.model)
    model.sample_to_npz(args.output, args.devices, args.cycles, np.random.default_rng(args.seed))
    print(f"wrote {args.output}: {', '.join(model.feature_names_)} "
          f"({args.devices} devices x {args.cycles} cycles)")
    return 0

"""``pyaimc export veriloga|ngspice|noise``: the fitted model for simulators and training."""

from __future__ import annotations

from pyaimc.cli._common import CLIError, parse_tile

#: the largest per-instance cycle table the compact-model exports write (devices x cycles)
MAX_TABLE_ENTRIES = 10_000_000


def register(sub) -> None:
    """Add this module's sub-commands to ``sub``."""
    _add_export(sub)


def _add_export(sub) -> None:
    export = sub.add_parser("export", help="write the fitted model for other levels and tools",
                            description="Export a fitted device model: Verilog-A, ngspice, the "
                                        "hardware noise model for training.")
    actions = export.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name, what in (("veriloga", "the Verilog-A module, model cards and per-instance tables"),
                       ("ngspice", "an ngspice library: one subcircuit per sampled device")):
        p = actions.add_parser(name, help=f"write {what}",
                               description=f"Write {what}. Devices and their cycles are drawn "
                                           f"in Python with a seeded generator (replayed, so the "
                                           f"Python twin sees the same draws: devices.json).")
        p.add_argument("model", metavar="MODEL.json")
        p.add_argument("-o", "--output", required=True, metavar="DIR")
        p.add_argument("--devices", type=int, default=16, help="devices (instances), default 16")
        p.add_argument("--cycles", type=int, default=100, help="cycles per device, default 100")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--name", default=None, help="model card / subcircuit prefix")
        if name == "veriloga":
            p.add_argument("--osdi", action="store_true",
                           help="also compile the module with OpenVAF (openvaf-r, generic CPU "
                                "target) into DIR/pyaimc_reram.osdi for VACASK and other OSDI "
                                "simulators (needs pip install 'pyaimc[vacask]' and binutils)")
        p.set_defaults(handler=_run_export_compact)
    _add_export_noise(actions)


def _run_export_compact(args) -> int:
    import re
    from pathlib import Path

    from pyaimc.compact.common import draw_devices
    from pyaimc.device.model import DeviceModel
    from pyaimc.io import OutputSet, check_output

    if args.devices < 1 or args.cycles < 1:
        raise CLIError(f"--devices and --cycles must be >= 1, got {args.devices}, {args.cycles}")
    if args.devices * args.cycles > MAX_TABLE_ENTRIES:
        raise CLIError(f"--devices x --cycles = {args.devices * args.cycles} table entries; at "
                       f"most {MAX_TABLE_ENTRIES} fit a netlist a simulator can read")
    if args.name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.name):
        raise CLIError(f"--name must be an identifier (letters, digits, _; not starting with a "
                       f"digit), got {args.name!r}")
    out = check_output(Path(args.output), "-o", directory=True)
    model = DeviceModel.load(args.model)
    table = draw_devices(model, args.devices, args.cycles, args.seed)
    with OutputSet() as outputs:
        tmp = outputs.folder(out)
        if args.action == "veriloga":
            from pyaimc.compact.veriloga import write_veriloga

            files = write_veriloga(tmp, model, table, name=args.name or "pyaimc_reram_fit",
                                   seed=args.seed, osdi=args.osdi)
        else:
            from pyaimc.compact.ngspice_lib import write_library
            from pyaimc.compact.veriloga import write_devices_json
            from pyaimc.io import provenance

            prov = provenance(source=args.model, seed=args.seed)
            files = [write_library(tmp / "pyaimc_reram.lib", model, table,
                                   name=args.name or "pyaimc_reram",
                                   provenance={k: prov[k] for k in ("source", "command", "seed")}),
                     write_devices_json(tmp / "devices.json", model, table, args.seed)]
        names = [Path(f).relative_to(tmp) for f in files]
    for name in names:
        print(f"wrote {out / name}")
    return 0


def _add_export_noise(actions) -> None:
    p = actions.add_parser(
        "noise", help="hardware noise model for hardware-aware training (pyaimc.noise/1)",
        description="Simulate one-shot and write-verify programming of many cells with the "
                    "device model and write the hardware noise model: conductance window, "
                    "programming error per target level (device-to-device and cycle-to-cycle "
                    "parts), stuck cells, read noise, DAC/ADC, tile and crossbar transfer model.")
    p.add_argument("--device", required=True, metavar="MODEL.json", help="fitted device model")
    p.add_argument("--transfer", metavar="TRANSFER.json",
                   help="crossbar transfer model (pyaimc.transfer/1) of this tile; its tile, "
                        "wire resistance and v_max are taken over (and must agree with --tile, "
                        "--r-wire, --v-max when given)")
    p.add_argument("--tile", metavar="ROWSxCOLS",
                   help="tile size, inputs x outputs (default: the transfer's, else 64x64)")
    p.add_argument("--r-wire", type=float, metavar="OHMS",
                   help="wire resistance per segment; without --transfer it adds the first-order "
                        "IR-drop transfer model (not fitted)")
    p.add_argument("-o", "--output", required=True, metavar="NOISE.json")
    p.add_argument("--aihwkit", metavar="AIHWKIT.json",
                   help="also write the programming and read noise as aihwkit's inference "
                        "noise models take them")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--levels", type=int, default=16, help="target levels (default 16)")
    p.add_argument("--devices", type=int, default=2000, help="devices per level (default 2000)")
    p.add_argument("--repeats", type=int, default=8,
                   help="writes per device, to split cycle-to-cycle from device-to-device "
                        "spread (default 8)")
    p.add_argument("--tolerance", type=float, default=0.05,
                   help="write-verify tolerance, relative (default 0.05)")
    p.add_argument("--max-pulses", type=int, default=40,
                   help="write-verify pulse budget per write (default 40)")
    p.add_argument("--scheme", nargs="+", metavar="NAME",
                   help="write schemes to tabulate (registered names: one_shot, write_verify "
                        "for cycling models; ispp, fppv, radar, nn_first on a model with a "
                        "pulse response). Default: one_shot and write_verify, or ispp, fppv "
                        "and radar when the model has a pulse part (tables from the "
                        "pulse-level simulation of each scheme)")
    p.add_argument("--method", default=None, metavar="NAME",
                   help="write scheme the training layer samples (default write_verify, or "
                        "radar for a model with a pulse part)")
    p.add_argument("--measured", nargs="+", metavar="SCHEME=LOG.csv",
                   help="measured write-verify logs (11-column format) to report beside the "
                        "simulation of the same scheme at the log's windows, per level (kept "
                        "in the noise model's table settings)")
    p.add_argument("--bandwidth", type=float, default=1e8, metavar="HZ",
                   help="read-noise bandwidth (default 1e8 Hz)")
    p.add_argument("--dac-bits", type=int, default=8)
    p.add_argument("--adc-bits", type=int, default=8)
    p.add_argument("--v-max", type=float, metavar="VOLTS",
                   help="DAC full scale (default: the transfer's, else the read voltage)")
    p.add_argument("--adc-headroom", type=float, default=2.0,
                   help="ADC range i_max = headroom * sqrt(rows) * v_max * (g_max - g_min) "
                        "(default 2)")
    p.add_argument("--g-min-us", type=float, help="window low end, uS (default from the model)")
    p.add_argument("--g-max-us", type=float, help="window high end, uS (default from the model)")
    p.add_argument("--relaxation", metavar="RELAX_MODEL.json",
                   help="a device model whose relaxation part becomes the retention part "
                        "(default: the device model's own, if it has one; else none)")
    p.add_argument("--temperature", type=float, metavar="C",
                   help="temperature of the retention part, C (default: the relaxation "
                        "records')")
    p.set_defaults(handler=_export_noise)


def _export_noise(args) -> int:
    import math

    import numpy as np

    from pyaimc.circuit.transfer import read_transfer
    from pyaimc.device.model import DeviceModel
    from pyaimc.device.schemes import get_scheme
    from pyaimc.noise import export_noise_model
    from pyaimc.noise.aihwkit import write_aihwkit
    from pyaimc.io import OutputSet, check_output
    from pyaimc.noise.summary import noise_summary

    rows = cols = None
    if args.tile:
        rows, cols = parse_tile(args.tile)
    window = None
    if (args.g_min_us is None) != (args.g_max_us is None):
        raise CLIError("give both --g-min-us and --g-max-us, or neither")
    if args.g_min_us is not None:
        window = (args.g_min_us * 1e-6, args.g_max_us * 1e-6)
    for name in ("levels", "devices", "repeats"):
        if getattr(args, name) < 2:
            raise CLIError(f"--{name} must be >= 2, got {getattr(args, name)}")
    for name in ("dac_bits", "adc_bits"):
        bits = getattr(args, name)
        if not 2 <= bits <= 24:
            raise CLIError(f"--{name.replace('_', '-')} must be in 2..24, got {bits}")
    for name, value in (("--bandwidth", args.bandwidth), ("--adc-headroom", args.adc_headroom),
                        ("--v-max", args.v_max), ("--r-wire", args.r_wire)):
        if value is not None and not (math.isfinite(value) and value > 0
                                      or name == "--r-wire" and value == 0):
            raise CLIError(f"{name} must be a finite number > 0, got {value}")
    if args.max_pulses < 2:
        raise CLIError(f"--max-pulses must be >= 2, got {args.max_pulses}")
    if args.levels * args.devices > 50_000_000:
        raise CLIError(f"--levels x --devices = {args.levels * args.devices} cells to simulate; "
                       f"at most 50,000,000")
    check_output(args.output, "-o")
    if args.aihwkit:
        check_output(args.aihwkit, "--aihwkit")
    if not 0 < args.tolerance < 1:
        raise CLIError(f"--tolerance must be in (0, 1), got {args.tolerance}")
    model = DeviceModel.load(args.device)
    names = args.scheme or (["ispp", "fppv", "radar"] if model.pulse_ is not None
                            else ["one_shot", "write_verify"])
    try:
        schemes = [get_scheme(n, max_pulses=args.max_pulses, bandwidth=args.bandwidth)
                   if n == "write_verify" else get_scheme(n) for n in names]
    except ValueError as err:
        raise CLIError(f"write scheme settings: {err}") from None
    measured = {}
    for item in args.measured or []:
        name, sep, path = item.partition("=")
        if not sep or name not in names:
            raise CLIError(f"--measured {item!r}: expected SCHEME=LOG.csv with SCHEME one of "
                           f"the tabulated schemes ({', '.join(names)})")
        from pyaimc.data.pulses import load_write_log

        measured[name] = (path, load_write_log(path))  # read before the long simulation
    transfer = read_transfer(args.transfer) if args.transfer else None
    retention = None
    relax_src = args.relaxation or (args.device if model.relaxation_ is not None else None)
    if relax_src is not None:
        from pyaimc.noise.retention import RelaxationRetention

        rmodel = DeviceModel.load(relax_src).relaxation_ if args.relaxation else \
            model.relaxation_
        if rmodel is None:
            raise CLIError(f"{args.relaxation}: the model has no relaxation part")
        retention = RelaxationRetention(rmodel, args.temperature, str(relax_src))
    elif args.temperature is not None:
        raise CLIError("--temperature needs a relaxation part (--relaxation)")
    try:
        nm = export_noise_model(
            model, np.random.default_rng(args.seed), rows=rows, cols=cols, transfer=transfer,
            r_wire=args.r_wire, window=window, n_levels=args.levels, n_devices=args.devices,
            n_repeats=args.repeats, schemes=schemes, tolerance=args.tolerance,
            bandwidth=args.bandwidth, dac_bits=args.dac_bits, adc_bits=args.adc_bits,
            v_max=args.v_max, adc_headroom=args.adc_headroom, training_scheme=args.method,
            progress=True, source=str(args.device), seed=args.seed, retention=retention)
    except ValueError as err:
        where = f"{args.transfer}: " if args.transfer and "transfer" in str(err) else ""
        raise CLIError(f"{where}{err}") from None
    if measured:
        from pyaimc.device.pulse_fidelity import write_verify_comparison

        lines = ["measured vs simulated, per level of the measured logs (pulses mean / median "
                 "/ p99, success, final std / window width)"]
        for name, (path, log) in measured.items():
            rows = write_verify_comparison(model, log,
                                           next(s for s in schemes if s.name == name),
                                           max(args.devices // 2, 500),
                                           np.random.default_rng(args.seed + 1))
            nm.programming.table(name).settings["measured"] = {"log": str(path), "levels": rows}
            lines.append(f"  {name} ({path}):")
            for r in rows:
                sw = (f"{r['std_over_width']:.3f} / {r['model_std_over_width']:.3f}"
                      if r["intermediate"] and r["model_std_over_width"] is not None else "-")
                lines.append(
                    f"    {r['r_lo']:8.0f}-{r['r_hi']:<9.3g} pulses {r['pulses_mean']:6.1f} / "
                    f"{r['model_pulses_mean']:6.1f}  {r['pulses_median']:4.0f} / "
                    f"{r['model_pulses_median']:4.0f}  {r['pulses_p99']:5.0f} / "
                    f"{r['model_pulses_p99']:5.0f}  success {r['success']:7.2%} / "
                    f"{r['model_success']:7.2%}  spread {sw}")
        print("\n".join(lines))
    with OutputSet() as outputs:
        nm.save(outputs.file(args.output))
        if args.aihwkit:
            write_aihwkit(outputs.file(args.aihwkit), nm, source=str(args.output),
                          seed=args.seed)
    print("\n".join(noise_summary(nm)))
    print(f"wrote {args.output}" + (f" and {args.aihwkit}" if args.aihwkit else ""))
    return 0

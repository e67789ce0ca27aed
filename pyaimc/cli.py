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
    _add_fit(sub)
    _add_sample(sub)
    _add_crossbar(sub)
    _add_export(sub)
    _add_train(sub)
    _add_deploy(sub)
    return parser


# ----------------------------------------------------------------------------- fit / sample
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
    _add_crossbar_transfer(actions)


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


# ----------------------------------------------------------------------------- export
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
        p.set_defaults(handler=_run_export_compact)
    _add_export_noise(actions)


def _run_export_compact(args) -> int:
    from pathlib import Path

    from pyaimc.compact.common import draw_devices
    from pyaimc.device.model import DeviceModel

    if args.devices < 1 or args.cycles < 1:
        raise CLIError(f"--devices and --cycles must be >= 1, got {args.devices}, {args.cycles}")
    model = DeviceModel.load(args.model)
    table = draw_devices(model, args.devices, args.cycles, args.seed)
    out = Path(args.output)
    if args.action == "veriloga":
        from pyaimc.compact.veriloga import write_veriloga

        files = write_veriloga(out, model, table, name=args.name or "pyaimc_reram_fit",
                               seed=args.seed)
    else:
        from pyaimc.compact.ngspice_lib import write_library
        from pyaimc.compact.veriloga import write_devices_json
        from pyaimc.io import provenance

        prov = provenance(source=args.model, seed=args.seed)
        files = [write_library(out / "pyaimc_reram.lib", model, table,
                               name=args.name or "pyaimc_reram",
                               provenance={k: prov[k] for k in ("source", "command", "seed")}),
                 write_devices_json(out / "devices.json", model, table, args.seed)]
    for f in files:
        print(f"wrote {f}")
    return 0


def _tile(text: str) -> tuple[int, int]:
    rows, sep, cols = text.lower().partition("x")
    try:
        shape = (int(rows), int(cols))
    except ValueError:
        shape = (0, 0)
    if not sep or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"tile must be ROWSxCOLS with both >= 1, got {text!r}")
    return shape


def _add_crossbar_transfer(actions) -> None:
    tr = actions.add_parser(
        "transfer", help="fit the crossbar transfer model to Monte-Carlo circuit simulations",
        description="Draw weight patterns of devices from a device model (programmed by "
                    "write-verify), simulate the 1R tile with wires and the cells' non-linear I-V "
                    "for random inputs, and fit the transfer model (IR-drop scales k_row, k_col, "
                    "input non-linearity c2, c3, read-out saturation i_sat); writes it as "
                    "pyaimc.transfer/1 JSON with its held-out error next to the ideal G.x's.")
    tr.add_argument("--device", required=True, metavar="MODEL.json", help="fitted device model")
    tr.add_argument("--tile", type=_tile, default=(64, 64), metavar="ROWSxCOLS",
                    help="tile size (default 64x64)")
    tr.add_argument("--r-wire", type=float, default=1.0, metavar="OHMS",
                    help="resistance of each row and column segment (default 1)")
    tr.add_argument("--v-max", type=float, default=0.2, metavar="V",
                    help="largest input magnitude in volt (default 0.2)")
    tr.add_argument("--patterns", type=int, default=16, metavar="N",
                    help="weight patterns to fit on (default 16; half as many more held out)")
    tr.add_argument("--inputs", type=int, default=32, metavar="N",
                    help="random input vectors per pattern (default 32)")
    tr.add_argument("--engine", choices=("fast", "ngspice"), default="fast")
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

    from pyaimc.circuit.errors import ConvergenceError
    from pyaimc.circuit.montecarlo import get_executor
    from pyaimc.circuit.ngspice import NgspiceError
    from pyaimc.circuit.transfer_fit import SaturatingTIA, fit_transfer
    from pyaimc.device.model import DeviceModel

    rows, cols = args.tile
    if not (np.isfinite(args.r_wire) and args.r_wire >= 0):
        raise CLIError(f"--r-wire must be a finite resistance >= 0 ohm, got {args.r_wire}")
    if not (np.isfinite(args.v_max) and args.v_max > 0):
        raise CLIError(f"--v-max must be a positive voltage, got {args.v_max}")
    if args.patterns < 1 or args.inputs < 1:
        raise CLIError(f"--patterns and --inputs must be >= 1, got {args.patterns}, {args.inputs}")
    if args.workers is not None and args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    model = DeviceModel.load(args.device)
    readout = None
    if args.tia_swing is not None:
        readout = SaturatingTIA(r_feedback=args.tia_feedback, v_swing=args.tia_swing)
    rng = np.random.default_rng(args.seed)
    try:
        with get_executor(args.scheduler, args.workers) as executor:
            fit = fit_transfer(model, rows, cols, args.r_wire, args.v_max, args.patterns, rng,
                               inputs_per_pattern=args.inputs, engine=args.engine,
                               executor=executor, readout=readout, progress=True,
                               source=args.device, seed=args.seed, return_simulations=True)
            fit.model.save(args.output)
            f = fit.model.fit
            print(f"wrote {args.output}: {rows}x{cols} tile, r_wire {args.r_wire:g} ohm, IR-drop "
                  f"loss {f['ir_drop_loss_mean']:.1%}; k_row {fit.model.k_row:.4f}, k_col "
                  f"{fit.model.k_col:.4f}, c2 {fit.model.c2[0]:.4g} {fit.model.c2[1]:+.4g} gn, "
                  f"c3 {fit.model.c3[0]:.4g} {fit.model.c3[1]:+.4g} gn, i_sat {fit.model.i_sat}")
            print(f"  held-out relative RMS error: model {f['heldout_rel_rms_error']:.3%}, ideal "
                  f"G.x {f['heldout_ideal_rel_rms_error']:.3%} ({f['n_heldout_patterns']} "
                  f"patterns x {f['inputs_per_pattern']} inputs)")
            if args.report:
                from pyaimc.circuit.transfer_report import write_transfer_report

                write_transfer_report(args.report, fit, rng, executor=executor, progress=True,
                                      seed=args.seed)
                print(f"wrote report to {args.report}")
    except (NgspiceError, ConvergenceError, OSError, ImportError) as err:
        raise CLIError(str(err)) from None
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
    p.add_argument("--method", choices=("write_verify", "one_shot"), default="write_verify",
                   help="write scheme the training layer samples (default write_verify)")
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
    p.set_defaults(handler=_export_noise)


def _parse_tile(text: str) -> tuple[int, int]:
    try:
        return _tile(text)
    except argparse.ArgumentTypeError:
        raise CLIError(f"--tile must be ROWSxCOLS with positive integers, e.g. 64x64, got {text!r}"
                       ) from None


def _export_noise(args) -> int:
    import numpy as np

    from pyaimc.device.model import DeviceModel
    from pyaimc.io import provenance, write_json
    from pyaimc.noise import VerifySettings, export_noise_model, read_transfer

    model = DeviceModel.load(args.device)
    transfer = read_transfer(args.transfer) if args.transfer else None
    if args.tile:
        rows, cols = _parse_tile(args.tile)
    elif transfer is not None:
        rows, cols = int(transfer["tile"]["rows"]), int(transfer["tile"]["cols"])
    else:
        rows, cols = 64, 64
    t_tile = (transfer["tile"]["rows"], transfer["tile"]["cols"]) if transfer else None
    if transfer is not None and (rows, cols) != t_tile:
        raise CLIError(f"{args.transfer}: the transfer model is for "
                       f"{transfer['tile']['rows']}x{transfer['tile']['cols']} tiles, --tile is "
                       f"{rows}x{cols}")
    window = None
    if (args.g_min_us is None) != (args.g_max_us is None):
        raise CLIError("give both --g-min-us and --g-max-us, or neither")
    if args.g_min_us is not None:
        window = (args.g_min_us * 1e-6, args.g_max_us * 1e-6)
    for name in ("levels", "devices", "repeats"):
        if getattr(args, name) < 2:
            raise CLIError(f"--{name} must be >= 2, got {getattr(args, name)}")
    verify = VerifySettings(tolerance=args.tolerance, max_pulses=args.max_pulses,
                            bandwidth=args.bandwidth)
    nm = export_noise_model(
        model, np.random.default_rng(args.seed), rows=rows, cols=cols, transfer=transfer,
        r_wire=args.r_wire, window=window, n_levels=args.levels, n_devices=args.devices,
        n_repeats=args.repeats, verify=verify, bandwidth=args.bandwidth,
        dac_bits=args.dac_bits, adc_bits=args.adc_bits, v_max=args.v_max,
        adc_headroom=args.adc_headroom, training_method=args.method, progress=True,
        source=str(args.device), seed=args.seed)
    nm.save(args.output)
    w, p = nm.window, nm.programming
    print(f"window {w.g_min * 1e6:.2f} .. {w.g_max * 1e6:.2f} uS ({w.rule})")
    wv_set = p.write_verify.settings
    print(f"programming, {p.n_devices} devices x {p.n_repeats} writes per level (uS; spread = "
          f"std, c2c = one device rewritten, d2d = between devices); write-verify tolerance "
          f"{wv_set['tolerance']:g}, at most {wv_set['max_pulses']} pulses")
    print(f"  {'target':>7} | {'one-shot mean':>13} {'std':>6} {'c2c':>6} {'d2d':>6} | "
          f"{'write-verify mean':>17} {'std':>6} {'c2c':>6} {'d2d':>6} {'failed':>7} {'pulses':>6}")
    os_, wv = p.one_shot, p.write_verify
    for k, lv in enumerate(p.levels):
        print(f"  {lv * 1e6:7.2f} | {os_.mean[k] * 1e6:13.2f} {os_.std[k] * 1e6:6.2f} "
              f"{os_.c2c_std[k] * 1e6:6.2f} {os_.d2d_std[k] * 1e6:6.2f} | "
              f"{wv.mean[k] * 1e6:17.2f} {wv.std[k] * 1e6:6.2f} {wv.c2c_std[k] * 1e6:6.2f} "
              f"{wv.d2d_std[k] * 1e6:6.2f} {wv.failed_fraction[k]:7.2%} {wv.mean_pulses[k]:6.1f}")
    for method in ("one_shot", "write_verify"):
        fe = p.table(method).fit_error
        print(f"  {method} polynomials (degree {fe['degree']}): mean within "
              f"{fe['mean_rel']:.2%} of the table, std within {fe['std_rel']:.2%} of its maximum")
    d = nm.defects
    print(f"  stuck {d.stuck_fraction:.4f}, outlier population {d.outlier_fraction:.4f}, "
          f"narrow window {d.narrow_window_fraction:.4f}")
    print(f"  read noise at {nm.read_noise.bandwidth:.3g} Hz: {nm.read_noise.relative.min():.2e} "
          f".. {nm.read_noise.relative.max():.2e} of the cell current; DAC {nm.dac.bits} bit "
          f"+-{nm.dac.v_max} V, ADC {nm.adc.bits} bit +-{nm.adc.i_max * 1e6:.1f} uA")
    t = nm.transfer
    print(f"  tile {rows}x{cols}, transfer " + (
        "none (ideal crossbar)" if t is None else
        f"r_wire {t['r_wire']:g} ohm, k_row {t['ir_drop']['k_row']:g}, k_col "
        f"{t['ir_drop']['k_col']:g}, c2 {t['input_nonlinearity']['c2']}, c3 "
        f"{t['input_nonlinearity']['c3']}, i_sat {t['i_sat']}"))
    print(f"wrote {args.output}")
    if args.aihwkit:
        write_json(args.aihwkit, {"schema": "pyaimc.aihwkit-noise/1", **nm.to_aihwkit(),
                                  "provenance": provenance(source=str(args.output),
                                                           seed=args.seed)})
        print(f"wrote {args.aihwkit}")
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train the S4D sequence classifier (quantization-aware, optional pruning)",
        description="Train the S4D classifier; RUN_DIR gets config.json, checkpoint.pt (resumed "
                    "when present) and metrics.json.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="JSON or TOML configuration")
    source.add_argument("--preset", metavar="NAME",
                        help="fp32, 8bit, 4bit, 2bit, ternary or tiny")
    p.add_argument("--task", choices=["mnist1d", "digits"], help="data set (overrides the config)")
    p.add_argument("--noise", metavar="NOISE.json", help="hardware noise model (hardware-aware)")
    p.add_argument("-o", "--out", metavar="RUN_DIR", required=True, help="run directory")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--epochs", type=int, help="training epochs (overrides the config)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_train)


def _run_train(args) -> int:
    import dataclasses

    import torch

    from pyaimc.nn.config import load_config, preset, validate
    from pyaimc.nn.train import train

    config = load_config(args.config) if args.config else preset(args.preset)
    if args.task is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, task=args.task))
    if args.epochs is not None:
        config = dataclasses.replace(config,
                                     train=dataclasses.replace(config.train, epochs=args.epochs))
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.noise is not None:
        config = dataclasses.replace(config, noise=args.noise)
    validate(config)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    metrics = train(config, args.out, progress=not args.quiet)
    sw = metrics["software"]
    print(f"{args.out}: test accuracy {sw['test_accuracy']:.4f} (step mode "
          f"{sw['test_accuracy_step_mode']:.4f}), {metrics['epochs']} epochs, "
          f"{metrics['train_seconds']:.0f} s")
    hw = metrics["hardware"]
    if hw is not None:
        print(f"{args.out}: deployed on {hw['noise']}: test accuracy {hw['accuracy_mean']:.4f} "
              f"+- {hw['accuracy_std']:.4f} over {hw['draws']} programming draws")
    return 0


def _add_deploy(sub) -> None:
    p = sub.add_parser(
        "deploy", help="run a trained S4D on simulated crossbars (programming draws)",
        description="Program every matrix of a trained run onto crossbar tiles of a noise model "
                    "(one draw of the programming error per chip), run the test set in "
                    "recurrent step mode with every matrix-vector product on the behavioral "
                    "tiles (DAC, transfer model, read noise, ADC) and report the accuracy over "
                    "the draws; writes RUN_DIR/deploy.json.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run directory")
    p.add_argument("--noise", required=True, metavar="NOISE.json", help="hardware noise model")
    p.add_argument("--draws", type=int, default=5, help="programmed instances (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--method", choices=("write_verify", "one_shot"),
                   help="write scheme (default: the noise model's training method)")
    p.add_argument("--ngspice-step", action="store_true",
                   help="also run one recurrent step of one test sequence through ngspice "
                        "crossbar netlists and compare with the behavioral tiles (small models)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_deploy)


def _run_deploy(args) -> int:
    import torch

    from pyaimc.nn.deploy import deploy_run

    if args.draws < 1:
        raise CLIError(f"--draws must be >= 1, got {args.draws}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    doc = deploy_run(args.run_dir, args.noise, draws=args.draws, seed=args.seed,
                     method=args.method, ngspice_step=args.ngspice_step,
                     progress=not args.quiet)
    hw, sw = doc["hardware"], doc["software"]
    print(f"{args.run_dir}: software {sw['test_accuracy']:.4f} (step mode "
          f"{sw['test_accuracy_step_mode']:.4f}); deployed on {args.noise} "
          f"({hw['programming_method']}): {hw['accuracy_mean']:.4f} +- "
          f"{hw['accuracy_std']:.4f} over {hw['draws']} draws "
          f"[{', '.join(f'{a:.4f}' for a in hw['accuracies'])}]")
    check = doc["ngspice_step"]
    if check is not None:
        print(f"ngspice step {check['step']} ({check['netlists']} netlists, {check['cells']} "
              f"cells, r_wire {check['r_wire']:g} ohm, {check['ngspice_seconds']:.1f} s): "
              f"currents within {check['current_rel_max']:.2e} (max) / "
              f"{check['current_rel_rms_max']:.2e} (rms) of the behavioral tiles, step output "
              f"within {check['output_rel_max']:.2e}")
    print(f"wrote {args.run_dir}/deploy.json")
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

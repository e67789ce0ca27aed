"""``pyaimc train`` and ``pyaimc deploy``: S4D training and deployment on simulated crossbars."""

from __future__ import annotations

from pyaimc.cli._common import CLIError


def register(sub) -> None:
    """Add this module's sub-commands to ``sub``."""
    _add_train(sub)
    _add_deploy(sub)


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train the S4D sequence classifier (quantization-aware, optional pruning)",
        description="Train the S4D classifier; RUN_DIR gets config.json, checkpoint.pt (resumed "
                    "when present) and metrics.json.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="JSON or TOML configuration")
    source.add_argument("--preset", metavar="NAME",
                        help="fp32, 8bit, 4bit, 2bit, ternary or tiny")
    p.add_argument("--task", choices=["mnist1d", "digits", "smnist", "recall"],
                   help="data set (overrides the config)")
    p.add_argument("--noise", metavar="NOISE.json", help="hardware noise model (hardware-aware)")
    p.add_argument("--products", choices=("auto", "bfloat16", "float32"),
                   help="tile products of the noisy training steps (overrides the config; "
                        "default auto: bf16 on a CPU that multiplies bf16 natively, see "
                        "AnalogConfig.products; float32 for the exact float32 computation)")
    p.add_argument("-o", "--out", metavar="RUN_DIR", required=True, help="run directory")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--epochs", type=int, help="training epochs (overrides the config)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu",
                   help="where the model trains: cpu (default) or cuda[:N]; evaluation and "
                        "deployment run on the CPU")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_train)


def _run_train(args) -> int:
    import dataclasses

    import torch

    from pyaimc.experiments.config import load_config, preset, validate
    from pyaimc.experiments.train import train

    from pyaimc.io import check_output

    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    if args.epochs is not None and args.epochs < 0:
        raise CLIError(f"--epochs must be >= 0, got {args.epochs}")
    check_output(args.out, "-o", directory=True)
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
    if args.products is not None:
        config = dataclasses.replace(config, products=args.products)
    validate(config)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise CLIError(f"--device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device}: torch sees no CUDA device here")
    if device.type not in ("cpu", "cuda"):
        raise CLIError(f"--device must be cpu or cuda[:N], got {args.device!r}")
    metrics = train(config, args.out, progress=not args.quiet, device=device)
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
    p.add_argument("--t-inference", type=float, nargs="+", default=[0.0], metavar="SECONDS",
                   help="times after programming at which the chips are read (the noise "
                        "model's retention part); several: accuracy vs time (default 0)")
    p.add_argument("--drift-compensation", action="store_true",
                   help="global drift compensation: each tile's output gain calibrated by a "
                        "reference read right after programming and at the read time")
    p.add_argument("--mapping", choices=("per-matrix", "packed"),
                   help="per-matrix: one matrix of a group per tile, inputs scaled per vector "
                        "(default); packed: blocks packed onto physical tiles, A x + B u on one "
                        "read-out (default with --engine circuit)")
    p.add_argument("--engine", choices=("behavioral", "circuit"), default="behavioral",
                   help="column currents from the behavioral transfer model (default) or from "
                        "the circuit solver on the packed tiles (also reports the behavioral "
                        "result of the same chips)")
    p.add_argument("--dac", choices=("static", "per-vector"),
                   help="packed mapping: DAC/ADC ranges calibrated on training data (default) "
                        "or per-vector input scaling")
    p.add_argument("--digital", nargs="+", choices=("A", "B", "C", "dense"), default=None,
                   metavar="GROUP",
                   help="compute these groups of matrices digitally instead of on tiles "
                        "(A, B, C of the S4D layers, dense: encoder, GLU, decoder; per-matrix "
                        "mapping), e.g. --digital A; default: the run's own (none unless it "
                        "was trained with digital parts)")
    p.set_defaults(handler=_run_deploy)


def _run_deploy(args) -> int:
    import torch

    from pyaimc.experiments.deploy import deploy_run

    if args.draws < 1:
        raise CLIError(f"--draws must be >= 1, got {args.draws}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if min(args.t_inference) < 0:
        raise CLIError(f"--t-inference must be >= 0 s, got {args.t_inference}")
    mapping = args.mapping or ("packed" if args.engine == "circuit" else "per-matrix")
    if mapping == "per-matrix" and (args.engine == "circuit" or args.dac == "static"):
        raise CLIError("--engine circuit and --dac static need --mapping packed")
    if args.digital and mapping != "per-matrix":
        raise CLIError("--digital needs the per-matrix mapping")
    doc = deploy_run(args.run_dir, args.noise, draws=args.draws, seed=args.seed,
                     method=args.method, ngspice_step=args.ngspice_step,
                     progress=not args.quiet, t_inference=args.t_inference,
                     drift_compensation=args.drift_compensation, mapping=mapping,
                     engine=args.engine, conversion=args.dac, digital=args.digital)
    hw, sw = doc["hardware"], doc["software"]
    print(f"{args.run_dir}: software {sw['test_accuracy']:.4f} (step mode "
          f"{sw['test_accuracy_step_mode']:.4f}); deployed on {args.noise} "
          f"({hw['programming_method']}): {hw['accuracy_mean']:.4f} +- "
          f"{hw['accuracy_std']:.4f} over {hw['draws']} draws "
          f"[{', '.join(f'{a:.4f}' for a in hw['accuracies'])}] ({hw['mapping']} mapping, "
          f"{hw['engine']} engine, {hw['conversion']} conversion"
          + (f"; digital: {', '.join(hw['digital'])}" if hw.get("digital") else "") + ")")
    if "utilisation" in hw:
        u = hw["utilisation"]
        print(f"  packed layout: {u['tiles']} tiles, {100 * u['utilisation']:.1f} % of their "
              f"cells in use")
    if "cost" in hw:
        a, d = hw["cost"]["analog"], hw["cost"]["digital_int8"]
        print(f"  per inference: {a['energy'] * 1e9:.1f} nJ (ADC {a['energy_adc'] * 1e9:.1f}, "
              f"DAC {a['energy_dac'] * 1e9:.1f}, crossbar {a['energy_crossbar'] * 1e9:.2f}, "
              f"digital {a['energy_digital'] * 1e9:.1f}), {a['latency'] * 1e6:.1f} us, "
              f"{a['area'] * 1e6:.3f} mm^2; digital 8-bit baseline {d['energy'] * 1e9:.1f} nJ, "
              f"{d['latency'] * 1e6:.1f} us (constants: pyaimc.analog.cost.COSTS)")
    beh = doc.get("hardware_behavioral")
    if beh is not None:
        print(f"  behavioral engine on the same chips: {beh['accuracy_mean']:.4f} +- "
              f"{beh['accuracy_std']:.4f}; circuit - behavioral: "
              f"{hw['accuracy_mean'] - beh['accuracy_mean']:+.4f}")
    if len(doc["over_time"]) > 1 or doc["over_time"][0]["t_inference"] > 0:
        comp = " with drift compensation" if args.drift_compensation else ""
        print(f"  retention {doc['retention']}{comp}: "
              + ", ".join(f"{r['t_inference']:g} s {r['accuracy_mean']:.4f}"
                          for r in doc["over_time"]))
    check = doc["ngspice_step"]
    if check is not None:
        print(f"ngspice step {check['step']} ({check['netlists']} netlists, {check['cells']} "
              f"cells, r_wire {check['r_wire']:g} ohm, {check['ngspice_seconds']:.1f} s): "
              f"currents within {check['current_rel_max']:.2e} (max) / "
              f"{check['current_rel_rms_max']:.2e} (rms) of the behavioral tiles, step output "
              f"within {check['output_rel_max']:.2e}")
    print(f"wrote {args.run_dir}/deploy.json")
    return 0

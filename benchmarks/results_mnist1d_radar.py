"""The MNIST-1D S4D models of ``results/mnist1d_qat.json`` deployed on the pulse-level RADAR device.

    python benchmarks/results_mnist1d_radar.py [--work out/results_mnist1d_qat] [--draws 3]

The models were trained (software, and hardware-aware on the example device's noise model) by
``benchmarks/results_mnist1d_qat.py``, whose run directories this script reads (``--work``). Each
is deployed, unchanged, on noise models of the RADAR chip's pulse-level device model
(``calibration_data/models/radar_pulse-4-24-20.json``: programming tables of its ISPP, FPPV and
RADAR write-verify schemes, simulated pulse by pulse): the shipped ideal-crossbar noise model,
and the same device on the results table's 64 x 64 tiles with 1 ohm wires (first-order IR-drop
transfer, not fitted to this device's I-V). Rows per (weights, hardware-aware, noise model, write
scheme): deployed accuracy over ``--draws`` programmed chips. Writes
``results/mnist1d_radar.json`` (with the command) and ``results/mnist1d_radar.md``.

``--radar-aware fp32 ternary`` also trains those models hardware-aware on the RADAR device itself
(the wired noise model, RADAR write-verify; from the software run's weights, the epochs of the
example device's hardware-aware run; run directories ``WORK/<weights>_hw_radar`` are resumed or
reused) and deploys them alike; ``--radar-aware-digital-a`` the same with the S4D's ``A``
matrices digital in training and deployment (run directories ``WORK/<weights>_hw_radar_digitalA``). ``--keep FILE`` keeps the rows of an earlier results file
instead of recomputing them (its command is kept beside this one). ``--parts`` adds the
diagnostics of :mod:`pyaimc.experiments.sensitivity` for the fp32 models on the shipped RADAR
noise model: deployed accuracy with the programming error on one group of matrices at a time
(dense, A, B, C) and the spectral radius of the programmed A blocks (RADAR and the example
device's noise model of the S4D table). ``--digital-a`` adds the example-device models deployed
on the shipped RADAR noise model with the S4D's ``A`` matrices computed digitally
(``pyaimc deploy --digital A``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.device import DeviceModel  # noqa: E402
from pyaimc.experiments.config import load_config  # noqa: E402
from pyaimc.experiments.datasets import load_data  # noqa: E402
from pyaimc.experiments.runs import load_run  # noqa: E402
from pyaimc.experiments.sensitivity import part_sensitivity, state_matrix_radius  # noqa: E402
from pyaimc.experiments.train import train  # noqa: E402
from pyaimc.noise import NoiseModel  # noqa: E402
from pyaimc.experiments.deploy import deploy_run  # noqa: E402
from pyaimc.io import provenance, write_json  # noqa: E402
from pyaimc.noise import export_noise_model  # noqa: E402

MODEL = ROOT / "calibration_data" / "models" / "radar_pulse-4-24-20.json"
SHIPPED_NOISE = ROOT / "calibration_data" / "noise" / "radar_pulse-4-24-20.json"
RUNS = [("fp32", False), ("fp32", True), ("8bit", False), ("ternary", False), ("ternary", True)]


def run_dir(work: Path, weights: str, hw: bool) -> Path:
    pattern = f"{weights}_hw-*" if hw else f"{weights}-*"
    found = sorted(work.glob(pattern))
    if not found:
        raise SystemExit(f"no run directory {work}/{pattern}: run "
                         f"benchmarks/results_mnist1d_qat.py first (or give --work)")
    return found[0]


def parts_and_radius(work: Path) -> dict:
    """Part sensitivity of the fp32 models (software, and hardware-aware on the example device)
    on the shipped RADAR noise model, and the A blocks' radii on RADAR and the example device."""
    radar = NoiseModel.load(SHIPPED_NOISE)
    example = NoiseModel.load(work / "noise.json")
    out = {"parts": {}, "radius": {}}
    for label, hw in (("fp32 software", False), ("fp32 hardware-aware (example)", True)):
        cfg, model = load_run(run_dir(work, "fp32", hw), software=True)
        data = load_data(cfg.data)
        rows = part_sensitivity(model, data.x_test, data.y_test, radar, seed=0)
        out["parts"][label] = rows
        for r in rows:
            print(f"  {label:30s} error on {'+'.join(r['noisy']) or 'none':16s} "
                  f"accuracy {r['accuracy']:.3f}", flush=True)
        if not hw:
            for name, nm in (("RADAR (shipped)", radar), ("example device (S4D table)", example)):
                out["radius"][name] = state_matrix_radius(model, nm, seed=0)
                print(f"  A blocks on {name}: {out['radius'][name]}", flush=True)
    return out


def diagnostics_markdown(d: dict) -> list[str]:
    lines = ["", "## Which matrices the RADAR programming error breaks", "",
             "Shipped RADAR noise model, one programmed chip, the 1000 test sequences; the "
             "programming error on the groups listed, the others programmed exactly (read noise, "
             "DAC and ADC everywhere).", "",
             "| model | " + " | ".join(
                 "+".join(r["noisy"]) or "none" for r in next(iter(d["parts"].values())))
             + " |", "|---|" + "---:|" * len(next(iter(d["parts"].values())))]
    for label, rows in d["parts"].items():
        lines.append(f"| {label} | " + " | ".join(f"{100 * r['accuracy']:.1f}" for r in rows)
                     + " |")
    lines += ["", "Spectral radius of the programmed A blocks (fp32 software model; one 2 x 2 "
              "block per complex state; above 1 a state grows every step):", "",
              "| noise model | blocks | trained max | trained > 0.99 | programmed > 1 | "
              "programmed p99 | programmed max | median change |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in d["radius"].items():
        lines.append(f"| {name} | {r['blocks']} | {r['trained_max']:.4f} | "
                     f"{100 * r['trained_above_0p99']:.1f} % | "
                     f"{100 * r['programmed_above_1']:.1f} % | {r['programmed_p99']:.3f} | "
                     f"{r['programmed_max']:.3f} | {r['median_abs_change']:.4f} |")
    return lines


def _row_key(r: dict) -> tuple:
    return (r["weights"], r["hw_aware"], r.get("trained_on", "example"), r["noise"],
            r["scheme"], tuple(r.get("digital", [])))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="out/results_mnist1d_qat", help="the run directories")
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--devices", type=int, default=1000, help="devices per level of the export")
    p.add_argument("--schemes", nargs="+", default=["radar", "fppv", "ispp"])
    p.add_argument("--out", default="results")
    p.add_argument("--radar-aware", nargs="*", default=[], metavar="WEIGHTS",
                   help="also train these models hardware-aware on the RADAR device")
    p.add_argument("--keep", metavar="FILE", help="keep the rows of this earlier results file")
    p.add_argument("--radar-aware-digital-a", nargs="*", default=[], metavar="WEIGHTS",
                   help="also train these models hardware-aware on the RADAR device with the "
                        "S4D's A matrices digital (no programming error on A in training or "
                        "deployment)")
    p.add_argument("--digital-a", action="store_true",
                   help="also deploy the example-device models with the S4D's A matrices "
                        "digital (pyaimc deploy --digital A), on the shipped noise model")
    p.add_argument("--parts", action="store_true",
                   help="which matrices the programming error breaks (fp32 models)")
    args = p.parse_args(argv)
    work = Path(args.work)
    out = Path(args.out)
    tic = time.perf_counter()
    wired = work / "noise_radar_pulse_1ohm.json"
    if not wired.exists():
        nm = export_noise_model(DeviceModel.load(MODEL), np.random.default_rng(0), rows=64,
                                cols=64, r_wire=1.0, window=(12.5e-6, 200e-6),
                                n_devices=args.devices, n_repeats=4, training_scheme="radar",
                                progress=True, source=str(MODEL), seed=0)
        nm.save(wired)
    noises = [("ideal crossbar (shipped)", SHIPPED_NOISE), ("64x64, 1 ohm, first-order", wired)]
    rows, commands, kept = [], [], None
    if args.keep:
        kept = json.loads(Path(args.keep).read_text())
        commands = kept.get("commands", [kept["command"]])
    runs = [(w, hw, "example", run_dir(work, w, hw), ()) for w, hw in RUNS] \
        if not args.keep else []
    for weights, digital in [(w, ()) for w in args.radar_aware] + \
            [(w, ("A",)) for w in args.radar_aware_digital_a]:
        rd = work / (f"{weights}_hw_radar" + ("_digitalA" if digital else ""))
        if not (rd / "metrics.json").exists():
            cfg = load_config(run_dir(work, weights, True) / "config.json")
            cfg = dataclasses.replace(cfg, noise=str(wired), digital=digital)
            print(f"training {weights} hardware-aware on {wired} (digital: {digital}) -> {rd}",
                  flush=True)
            train(cfg, rd, progress=True, deploy_draws=1)
        runs.append((weights, True, "radar", rd, digital))
    jobs = [(w, hw, on, rd, label, noise, dig) for w, hw, on, rd, dig in runs
            for label, noise in noises]
    if args.digital_a:
        jobs += [(w, hw, "example", run_dir(work, w, hw), noises[0][0], noises[0][1], ("A",))
                 for w, hw in RUNS]
    for weights, hw, trained_on, rd, label, noise, digital in jobs:
        for scheme in args.schemes:
            doc = deploy_run(rd, noise, draws=args.draws, seed=0, method=scheme,
                             progress=False, digital=digital)
            h = doc["hardware"]
            rows.append({"weights": weights, "hw_aware": hw, "trained_on": trained_on,
                         "noise": label, "scheme": scheme, "digital": list(digital),
                         "software_acc": doc["software"]["test_accuracy"],
                         "deployed_acc_mean": h["accuracy_mean"],
                         "deployed_acc_std": h["accuracy_std"], "draws": h["draws"]})
            print(f"{weights:8s} hw-aware={hw!s:5s} ({trained_on:7s}) {label:27s} {scheme:6s} "
                  f"digital={'+'.join(digital) or '-':2s} software "
                  f"{rows[-1]['software_acc']:.3f} deployed {h['accuracy_mean']:.3f} "
                  f"+- {h['accuracy_std']:.3f}", flush=True)
    if kept is not None:       # earlier rows not recomputed now come first, in their order
        key = _row_key
        new = {key(r) for r in rows}
        rows = [r for r in kept["rows"] if key(r) not in new] + rows
    diagnostics = parts_and_radius(work) if args.parts else (
        kept.get("diagnostics") if kept is not None else None)
    command = "python benchmarks/results_mnist1d_radar.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    commands.append(command.strip())
    write_json(out / "mnist1d_radar.json", {
        "schema": "pyaimc.results-mnist1d-radar/1", "command": " && ".join(commands),
        "commands": commands, "diagnostics": diagnostics,
        "device": str(MODEL.relative_to(ROOT)), "rows": rows,
        "seconds": time.perf_counter() - tic, "provenance": provenance(seed=0)})
    lines = ["# MNIST-1D S4D deployed on the pulse-level RADAR device", "",
             "; ".join(f"`{c}`" for c in commands) + "; models of `results/mnist1d_qat.json` "
             "(hardware-aware on the example device's noise model), deployed unchanged, and "
             "where listed trained hardware-aware on the RADAR device's own noise model (wired); "
             f"mean +- std over {args.draws} programmed chips.", "",
             "| weights | hardware-aware on | noise model | scheme | digital | software | deployed |",
             "|---|---|---|---|---|---:|---:|"]
    for r in rows:
        on = r.get("trained_on", "example") if r["hw_aware"] else "no"
        on = {"example": "example device", "radar": "RADAR device"}.get(on, on)
        lines.append(f"| {r['weights']} | {on} | {r['noise']} | "
                     f"{r['scheme']} | {', '.join(r.get('digital', [])) or '-'} | "
                     f"{100 * r['software_acc']:.1f} % | "
                     f"{100 * r['deployed_acc_mean']:.1f} +- {100 * r['deployed_acc_std']:.1f} % |")
    if diagnostics is not None:
        lines += diagnostics_markdown(diagnostics)
    (out / "mnist1d_radar.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'mnist1d_radar.json'}, {out / 'mnist1d_radar.md'} "
          f"({time.perf_counter() - tic:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

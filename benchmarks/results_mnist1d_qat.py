"""MNIST-1D results: S4D at FP32, 8, 4, 2 bit and ternary weights, trained without and with
hardware noise, evaluated in software and deployed on simulated crossbars; pruning; model size.

One command regenerates everything (the noise model too) and writes
``results/mnist1d_qat.json`` (the rows), ``results/mnist1d_qat.md`` (the table),
``results/mnist1d_qat_noise.json`` (the noise model used) and three plots beside them::

    python benchmarks/results_mnist1d_qat.py

What it does (every step is resumable: a finished run directory is read, not retrained):

1. Hardware: the shipped example device model, its crossbar transfer model for 64 x 64 tiles
   with 1 ohm wires (``pyaimc crossbar transfer``), the noise model with that transfer model and
   write-verify programming (``pyaimc export noise``); and the same noise model without wires
   (for the ablation rows).
2. Per weight precision (presets ``fp32``, ``8bit``, ``4bit``, ``2bit``, ``ternary``): a software
   run of ``--epochs`` epochs (quantization-aware, no hardware noise), and a hardware-aware run
   that starts from its weights (``train.init_from``) and trains ``--hw-epochs`` more epochs
   with the noise model (fresh programming noise per mini-batch, transfer model, DAC, ADC, read
   noise on the dense layers; programming noise and IR drop on the S4D tiles).
3. Every model is deployed on the noise model: ``--draws`` programmed instances, the 1000 test
   sequences in recurrent step mode with every matrix-vector product on the behavioral tiles.
4. Pruning: the FP32 software model and the ternary hardware-aware model, pruned by a fraction
   of their states and channels (``d_state`` and ``d_model`` alike), fine-tuned
   ``--prune-epochs`` epochs (the hardware-aware one with the noise model), deployed.
5. Ablation: the FP32 and ternary software models deployed without wires (programming error,
   read noise, DAC and ADC only).

Run it with one torch thread on a shared machine (``--threads``, default 1): two threads were
up to 19 times slower on the 2-core machine while other jobs ran.

Every row carries ``"mapping"`` and ``"engine"``: the rows above are ``"per-matrix"`` /
``"behavioral"`` (one matrix of a group per tile, inputs scaled per vector, the transfer model).
``--chip-rows fp32 ternary`` adds, for those precisions' software and hardware-aware models,
rows deployed as a chip maps them (``"packed"``: blocks packed onto 64 x 64 tiles, ``A x + B u``
on one read-out, static DAC/ADC ranges calibrated on 200 training sequences) with the
behavioral engine (``--draws`` chips) and with the circuit engine (one chip, the first
``--circuit-test`` test sequences; the behavioral engine on the same chip and sequences beside
it, for the gap between the two). ``--add-to results/mnist1d_qat.json`` keeps an existing
file's rows, pruning and ablation as they are and adds these (for when the full regeneration
does not fit the time at hand: the run directories of the chip rows are trained or read, and
their per-matrix deployment is recomputed as a check of the kept rows).
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
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.cli import main as pyaimc  # noqa: E402
from pyaimc.io import atomic_write_text, provenance, read_json, write_json  # noqa: E402
from pyaimc.experiments.config import (PruneConfig, RunConfig, config_hash, noise_digest,  # noqa: E402
                              preset)
from pyaimc.experiments.datasets import load_data  # noqa: E402
from pyaimc.experiments.deploy import deployed_accuracy  # noqa: E402
from pyaimc.s4d.size import model_bits  # noqa: E402
from pyaimc.experiments.train import load_run, train  # noqa: E402
from pyaimc.noise import NoiseModel  # noqa: E402

PRECISIONS = ("fp32", "8bit", "4bit", "2bit", "ternary")
RESULTS_SCHEMA = "pyaimc.results/1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# hardware

def make_noise_models(work: Path, device: Path, tile: str, r_wire: float) -> tuple[Path, Path]:
    """The noise model with the fitted transfer model, and the same without wires."""
    transfer, noise, plain = work / "transfer.json", work / "noise.json", work / "noise_nowire.json"
    steps = [
        (transfer, ["crossbar", "transfer", "--device", str(device), "--tile", tile,
                    "--r-wire", str(r_wire), "--seed", "0", "--workers", "1", "-o",
                    str(transfer)]),
        (noise, ["export", "noise", "--device", str(device), "--transfer", str(transfer),
                 "--seed", "0", "-o", str(noise)]),
        (plain, ["export", "noise", "--device", str(device), "--tile", tile, "--seed", "0",
                 "-o", str(plain)]),
    ]
    for path, args in steps:
        if not path.exists():
            log("pyaimc " + " ".join(args))
            if pyaimc(args):
                raise SystemExit(f"pyaimc {' '.join(args)} failed")
    return noise, plain


def describe_noise(path: Path) -> dict:
    nm = NoiseModel.load(path)
    table = nm.programming.table()
    span = nm.window.g_max - nm.window.g_min
    doc = {"file": str(path), "sha256": noise_digest(path),
           "g_min_us": nm.window.g_min * 1e6, "g_max_us": nm.window.g_max * 1e6,
           "programming_method": table.method,
           "programming_std_rel_of_span": [float(table.std.min() / span),
                                           float(table.std.max() / span)],
           "tile": f"{nm.tile.rows}x{nm.tile.cols}", "r_wire_ohm": nm.tile.r_wire,
           "dac_bits": nm.dac.bits, "adc_bits": nm.adc.bits,
           "read_noise_bandwidth_hz": nm.read_noise.bandwidth}
    if nm.transfer is not None:
        fit = nm.transfer.fit
        doc.update(transfer_ir_drop={"k_row": nm.transfer.k_row, "k_col": nm.transfer.k_col},
                   transfer_heldout_rel_rms_error=fit.get("heldout_rel_rms_error"),
                   ideal_product_heldout_rel_rms_error=fit.get("heldout_ideal_rel_rms_error"),
                   ir_drop_loss_mean=fit.get("ir_drop_loss_mean"))
    return doc


# ---------------------------------------------------------------------------------------------
# runs

def run_directory(work: Path, name: str, config: RunConfig) -> Path:
    """``work/name-HASH``: a run directory per configuration, so that changed settings (epochs,
    learning rates, pruning) train afresh instead of meeting a checkpoint they do not fit."""
    return work / f"{name}-{config_hash(config)[:8]}"


def run(config: RunConfig, run_dir: Path, draws: int) -> dict:
    """Train (or resume) ``run_dir``; a finished run of the same configuration is read."""
    path = run_dir / "metrics.json"
    if path.exists():
        metrics = read_json(path, "pyaimc.run/1")
        if metrics["config_hash"] == config_hash(config):
            return metrics
    tic = time.perf_counter()
    metrics = train(config, run_dir, progress=False, deploy_draws=draws)
    log(f"trained {run_dir.name}: software {metrics['software']['test_accuracy']:.4f}"
        + ("" if metrics["hardware"] is None else
           f", deployed {metrics['hardware']['accuracy_mean']:.4f} +- "
           f"{metrics['hardware']['accuracy_std']:.4f}")
        + f" ({time.perf_counter() - tic:.0f} s)")
    return metrics


def deploy(run_dir: Path, noise: Path, draws: int, seed: int = 0) -> dict:
    """Deployed accuracy of a run's software model on ``noise`` (cached in the run directory)."""
    cache = run_dir / f"deploy_{noise_digest(noise)}_{draws}_{seed}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    config, model = load_run(run_dir, software=True)
    data = load_data(config.data)
    result = deployed_accuracy(model, data.x_test, data.y_test, NoiseModel.load(noise), draws,
                               seed)
    write_json(cache, result)
    log(f"deployed {run_dir.name} on {noise.name}: {result['accuracy_mean']:.4f} +- "
        f"{result['accuracy_std']:.4f} ({result['seconds']:.0f} s)")
    return result


def bits(run_dir: Path) -> float:
    config, model = load_run(run_dir, software=True)
    return model_bits(model, config.quant)["total"]


def software_config(name: str, args) -> RunConfig:
    cfg = preset(name)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=args.epochs))
    if args.quick:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_size=256,
                                                                 test_size=64))
    return cfg


def hardware_config(cfg: RunConfig, noise: Path, init_from: Path, args) -> RunConfig:
    t = dataclasses.replace(cfg.train, epochs=args.hw_epochs, lr=args.hw_lr,
                            ssm_lr=args.hw_lr / 3, warmup_epochs=0, init_from=str(init_from))
    return dataclasses.replace(cfg, noise=str(noise), train=t)


def pruned(cfg: RunConfig, init_from: Path, fraction: float, args) -> RunConfig:
    m = cfg.model
    d_state = max(2, 2 * round(m.d_state * (1 - fraction) / 2))
    d_model = max(1, round(m.d_model * (1 - fraction)))
    t = dataclasses.replace(cfg.train, epochs=0, warmup_epochs=0, init_from=str(init_from))
    return dataclasses.replace(cfg, train=t, prune=PruneConfig(
        d_state=d_state, d_model=d_model, finetune_epochs=args.prune_epochs,
        finetune_lr=args.prune_lr))


def chip_cache_name(noise: Path, engine: str, draws: int, n_test: int, seed: int = 0) -> str:
    return f"deploy_{noise_digest(noise)}_packed_{engine}_{draws}_{n_test}_{seed}.json"


def chip_deploy(run_dir: Path, noise: Path, engine: str, draws: int, n_test: int,
                seed: int = 0) -> dict:
    """Deployed accuracy on packed tiles with static calibration (cached in the run dir)."""
    cache = run_dir / chip_cache_name(noise, engine, draws, n_test, seed)
    if cache.exists():
        return json.loads(cache.read_text())
    config, model = load_run(run_dir, software=True)
    data = load_data(config.data)
    result = deployed_accuracy(model, data.x_test[:n_test], data.y_test[:n_test],
                               NoiseModel.load(noise), draws, seed, mapping="packed",
                               engine=engine, x_calibration=data.x_train[:200])
    write_json(cache, result)
    log(f"deployed {run_dir.name} packed/{engine} on {noise.name}: "
        f"{result['accuracy_mean']:.4f} +- {result['accuracy_std']:.4f} "
        f"({result['seconds']:.0f} s, {n_test} sequences)")
    return result


def row(weights: str, hw_aware: bool, metrics: dict, deployed: dict, run_dir: Path,
        mapping: str = "per-matrix", engine: str = "behavioral") -> dict:
    return {"weights": weights, "hw_aware": hw_aware, "mapping": mapping, "engine": engine,
            "software_acc": metrics["software"]["test_accuracy"],
            "deployed_acc_mean": deployed["accuracy_mean"],
            "deployed_acc_std": deployed["accuracy_std"],
            "deployed_accs": deployed["accuracies"],
            "model_bits": bits(run_dir),
            "epochs": metrics["epochs"], "train_seconds": metrics["train_seconds"],
            "run": run_dir.name}


# ---------------------------------------------------------------------------------------------
# output

def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown(doc: dict) -> str:
    hw = doc["noise"]
    lines = [
        "# MNIST-1D: quantization-aware and hardware-aware S4D on simulated crossbars",
        "",
        f"Command: `{doc['command']}` ({doc['seconds'] / 60:.0f} min for the invocation that "
        f"wrote this, which reads finished runs instead of redoing them; training alone, all "
        f"runs: {doc['train_seconds_all_runs'] / 60:.0f} min; {doc['threads']} torch "
        f"thread(s)). Test accuracy on the {doc['test_sequences']} test sequences (%); "
        f"deployed: mean +- sample std over {doc['draws']} programming draws, recurrent step "
        f"mode, every matrix-vector product on the behavioral tiles.",
        "",
        f"Hardware: example device, {hw['programming_method']} programming (spread "
        f"{pct(hw['programming_std_rel_of_span'][0])}-{pct(hw['programming_std_rel_of_span'][1])}"
        f" % of g_max - g_min), {hw['tile']} tiles, {hw['r_wire_ohm']} ohm wires (transfer model"
        f" held-out error {pct(hw.get('transfer_heldout_rel_rms_error') or 0)} %, ideal product"
        f" {pct(hw.get('ideal_product_heldout_rel_rms_error') or 0)} %), DAC {hw['dac_bits']} "
        f"bit, ADC {hw['adc_bits']} bit, read noise at {hw['read_noise_bandwidth_hz']:.0e} Hz.",
        "",
        "| weights | hardware-aware | mapping | engine | epochs | software | deployed | "
        "model size (kbit) |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        note = (f" ({len(r['deployed_accs'])} chip, {r['test_sequences']} seq.)"
                if r.get("test_sequences") not in (None, doc["test_sequences"]) else "")
        lines.append(f"| {r['weights']} | {'yes' if r['hw_aware'] else 'no'} | "
                     f"{r.get('mapping', 'per-matrix')} | {r.get('engine', 'behavioral')} | "
                     f"{r['epochs']} | {pct(r['software_acc'])} | {pct(r['deployed_acc_mean'])} "
                     f"+- {pct(r['deployed_acc_std'])}{note} | {r['model_bits'] / 1e3:.1f} |")
    if doc.get("chip_rows_not_run"):
        lines += ["", "Chip rows not run in the time the invocation had: "
                  + "; ".join(doc["chip_rows_not_run"]) + "."]
    lines += ["", "Hardware-aware runs start from the software run's weights and train the "
              "epochs listed on top (their software column: the same weights without the "
              "hardware, which they have learned to compensate).", "",
              "## Pruning (fraction of states and of channels removed, then fine-tuned)", "",
              "| model | fraction | d_state | d_model | software | deployed | model size (kbit) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in doc["pruning"]:
        lines.append(f"| {r['weights']}{' hardware-aware' if r['hw_aware'] else ''} | "
                     f"{r['fraction']:.2f} | {r['d_state']} | {r['d_model']} | "
                     f"{pct(r['software_acc'])} | {pct(r['deployed_acc_mean'])} +- "
                     f"{pct(r['deployed_acc_std'])} | {r['model_bits'] / 1e3:.1f} |")
    lines += ["", "## Ablation: software models on the same hardware without wires", "",
              "| weights | deployed without wires | with 1 ohm wires |", "|---|---:|---:|"]
    for r in doc["ablation"]:
        lines.append(f"| {r['weights']} | {pct(r['deployed_acc_mean'])} +- "
                     f"{pct(r['deployed_acc_std'])} | {pct(r['with_wires_acc_mean'])} |")
    return "\n".join(lines) + "\n"


def plots(doc: dict, out: Path, stem: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = [r for r in doc["rows"] if r.get("mapping", "per-matrix") == "per-matrix"]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    width = 0.2
    kinds = [(False, "software_acc", "trained without noise, software"),
             (False, "deployed_acc_mean", "trained without noise, deployed"),
             (True, "software_acc", "hardware-aware, software"),
             (True, "deployed_acc_mean", "hardware-aware, deployed")]
    for k, (hw, key, label) in enumerate(kinds):
        vals = [next(r for r in rows if r["weights"] == p and r["hw_aware"] == hw)
                for p in PRECISIONS]
        err = [100 * r["deployed_acc_std"] if key == "deployed_acc_mean" else 0 for r in vals]
        ax.bar(np.arange(len(PRECISIONS)) + (k - 1.5) * width, [100 * r[key] for r in vals],
               width, yerr=err, label=label, capsize=2)
    ax.set_xticks(np.arange(len(PRECISIONS)), PRECISIONS)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax.set_title("MNIST-1D S4D: software and deployed accuracy")
    fig.tight_layout()
    written.append(f"{stem}_accuracy.png")
    fig.savefig(out / written[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for (weights, hw), marker in ((("fp32", False), "o"), (("ternary", True), "s")):
        pts = [r for r in rows if r["weights"] == weights and r["hw_aware"] == hw]
        pts = [{**pts[0], "fraction": 0.0}] + [r for r in doc["pruning"]
                                               if r["weights"] == weights and r["hw_aware"] == hw]
        f = [r["fraction"] for r in pts]
        name = weights + (" hardware-aware" if hw else "")
        ax.plot(f, [100 * r["software_acc"] for r in pts], marker + "--",
                label=f"{name}, software")
        ax.errorbar(f, [100 * r["deployed_acc_mean"] for r in pts],
                    [100 * r["deployed_acc_std"] for r in pts], fmt=marker + "-",
                    label=f"{name}, deployed", capsize=2)
    ax.set_xlabel("fraction of states and channels pruned")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(f"{stem}_pruning.png")
    fig.savefig(out / written[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for hw, marker in ((False, "o"), (True, "s")):
        pts = [r for r in rows if r["hw_aware"] == hw]
        ax.semilogx([r["model_bits"] for r in pts], [100 * r["deployed_acc_mean"] for r in pts],
                    marker, label="hardware-aware" if hw else "trained without noise")
        for r in pts:
            ax.annotate(r["weights"], (r["model_bits"], 100 * r["deployed_acc_mean"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    pr = [r for r in doc["pruning"] if r.get("mapping", "per-matrix") == "per-matrix"]
    ax.semilogx([r["model_bits"] for r in pr], [100 * r["deployed_acc_mean"] for r in pr], "x",
                label="pruned")
    ax.set_xlabel("model size (bits)")
    ax.set_ylabel("deployed test accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(f"{stem}_size.png")
    fig.savefig(out / written[-1], dpi=120)
    plt.close(fig)
    return written


# ---------------------------------------------------------------------------------------------
# chip rows: packed mapping, static calibration, behavioral and circuit engines

def chip_rows(args, noise: Path, configs: dict, soft_dirs: dict, hw_dirs: dict) -> list[dict]:
    rows = []
    for name in args.chip_rows:
        for hw in (True, False):          # the hardware-aware models first: they matter most
            rdir = hw_dirs[name] if hw else soft_dirs[name]
            metrics = read_json(rdir / "metrics.json", "pyaimc.run/1")
            # the circuit engine's chip and sequences also with the behavioral engine: the gap
            for engine, draws, n_test in (("behavioral", args.draws, 1000),
                                          ("behavioral", 1, args.circuit_test),
                                          ("circuit", 1, args.circuit_test)):
                if engine == "behavioral" and draws == 1 and n_test == 1000 and \
                        args.draws == 1:
                    continue
                if args.quick:
                    n_test = min(n_test, 64)
                if args.cached_only and not (rdir / chip_cache_name(
                        noise, engine, draws, n_test)).exists():
                    args.not_run.append(f"{rdir.name} packed/{engine} ({draws} chips, "
                                        f"{n_test} sequences)")
                    continue
                res = chip_deploy(rdir, noise, engine, draws, n_test)
                r = row(name, hw, metrics, res, rdir, "packed", engine)
                r.update(test_sequences=n_test, seconds=res["seconds"],
                         utilisation=res["utilisation"]["utilisation"],
                         tiles=res["utilisation"]["tiles"],
                         energy_per_inference_j=res["cost"]["analog"]["energy"],
                         digital_int8_energy_j=res["cost"]["digital_int8"]["energy"],
                         latency_s=res["cost"]["analog"]["latency"],
                         area_m2=res["cost"]["analog"]["area"])
                if engine == "circuit":
                    r["circuit"] = res["circuit"][0]
                rows.append(r)
    return rows


def add_chip_rows(args, work: Path, out: Path, noise: Path, started: float) -> None:
    """``--add-to``: the kept file plus chip rows for ``--chip-rows`` (module docstring)."""
    doc = read_json(Path(args.add_to), RESULTS_SCHEMA)
    kept = [dict(r, mapping=r.get("mapping", "per-matrix"), engine=r.get("engine", "behavioral"))
            for r in doc["rows"] if r.get("mapping", "per-matrix") == "per-matrix"]
    configs, soft_dirs, hw_dirs, checks = {}, {}, {}, []
    for name in args.chip_rows:
        cfg = software_config(name, args)
        soft_dirs[name] = run_directory(work, name, cfg)
        run(cfg, soft_dirs[name], args.draws)
        hw_cfg = hardware_config(cfg, noise, soft_dirs[name], args)
        hw_dirs[name] = run_directory(work, f"{name}_hw", hw_cfg)
        metrics = run(hw_cfg, hw_dirs[name], args.draws)
        # the kept rows, recomputed for these models: they must agree
        for hw, rdir, dep in ((False, soft_dirs[name], None),
                              (True, hw_dirs[name], metrics["hardware"])):
            dep = dep or deploy(rdir, noise, args.draws)
            old = next(r for r in kept if r["weights"] == name and r["hw_aware"] == hw)
            checks.append({"weights": name, "hw_aware": hw, "kept": old["deployed_acc_mean"],
                           "recomputed": dep["accuracy_mean"], "run": rdir.name})
    new = chip_rows(args, noise, configs, soft_dirs, hw_dirs)
    command = "python benchmarks/results_mnist1d_qat.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    doc["rows"] = kept + new
    for r in doc.get("pruning", []) + doc.get("ablation", []):
        r.setdefault("mapping", "per-matrix")
        r.setdefault("engine", "behavioral")
    doc["chip_rows_not_run"] = args.not_run
    doc["commands"] = [doc["command"], command.strip()]
    doc["command"] = command.strip()
    doc["kept_rows_check"] = checks
    doc["chip_rows_note"] = (
        "rows with mapping 'per-matrix' are the file's earlier rows, kept; rows with mapping "
        "'packed' were added by the command, which trained or read the run directories of "
        "their models and recomputed their per-matrix deployment (kept_rows_check)")
    doc["seconds"] = time.perf_counter() - started
    doc["provenance"] = provenance(source=str(args.device), seed=0, command=command.strip())
    stem = "mnist1d_qat_quick" if args.quick else "mnist1d_qat"
    doc["plots"] = plots(doc, out, stem)
    write_json(out / f"{stem}.json", doc)
    atomic_write_text(out / f"{stem}.md", markdown(doc))
    log(f"wrote {out / stem}.json, .md ({doc['seconds'] / 60:.1f} min)")
    print(markdown(doc))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="calibration_data/models/example.json")
    p.add_argument("--tile", default="64x64")
    p.add_argument("--r-wire", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=30, help="software runs (default 30)")
    p.add_argument("--hw-epochs", type=int, default=5,
                   help="hardware-aware epochs on top of the software run (default 5)")
    p.add_argument("--hw-lr", type=float, default=3e-3)
    p.add_argument("--draws", type=int, default=3, help="programming draws (default 3)")
    p.add_argument("--fractions", type=float, nargs="*", default=[0.25, 0.5, 0.75])
    p.add_argument("--prune-epochs", type=int, default=3)
    p.add_argument("--prune-lr", type=float, default=3e-3)
    p.add_argument("--prune-draws", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="out/results_mnist1d_qat", help="run directories")
    p.add_argument("--out", default="results", help="where the results files go")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: 256 training, 64 test sequences (not the results)")
    p.add_argument("--chip-rows", nargs="*", default=[], metavar="PRECISION",
                   help="add packed-mapping rows (behavioral and circuit engine) for these")
    p.add_argument("--circuit-test", type=int, default=1000,
                   help="test sequences of the circuit-engine rows (default all 1000)")
    p.add_argument("--add-to", metavar="RESULTS.json",
                   help="keep this file's rows, pruning and ablation; add the chip rows")
    p.add_argument("--cached-only", action="store_true",
                   help="chip rows only from deployments the run directories hold; the rest "
                        "is listed as not run")
    args = p.parse_args()
    args.not_run = []
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    noise, plain = make_noise_models(work, Path(args.device), args.tile, args.r_wire)

    if args.add_to:
        return add_chip_rows(args, work, out, noise, started)
    rows, soft_dirs, hw_dirs, configs = [], {}, {}, {}
    for name in PRECISIONS:
        cfg = software_config(name, args)
        soft_dirs[name] = run_directory(work, name, cfg)
        metrics = run(cfg, soft_dirs[name], args.draws)
        rows.append(row(name, False, metrics, deploy(soft_dirs[name], noise, args.draws),
                        soft_dirs[name]))
        hw_cfg = hardware_config(cfg, noise, soft_dirs[name], args)
        configs[name] = (cfg, hw_cfg)
        hw_dirs[name] = run_directory(work, f"{name}_hw", hw_cfg)
        metrics = run(hw_cfg, hw_dirs[name], args.draws)
        rows.append(row(name, True, metrics, metrics["hardware"], hw_dirs[name]))

    rows += chip_rows(args, noise, configs, soft_dirs, hw_dirs)
    pruning = []
    for name, hw in (("fp32", False), ("ternary", True)):
        base = configs[name][1] if hw else configs[name][0]
        source = hw_dirs[name] if hw else soft_dirs[name]
        for fraction in args.fractions:
            cfg = pruned(base, source, fraction, args)
            label = f"{name}{'_hw' if hw else ''}_prune{int(round(100 * fraction))}"
            pdir = run_directory(work, label, cfg)
            metrics = run(cfg, pdir, args.prune_draws)
            deployed = (metrics["hardware"] if hw
                        else deploy(pdir, noise, args.prune_draws))
            pruning.append({**row(name, hw, metrics, deployed, pdir), "fraction": fraction,
                            "d_state": cfg.prune.d_state, "d_model": cfg.prune.d_model,
                            "draws": deployed["draws"]})

    ablation = []
    for name in ("fp32", "ternary"):
        result = deploy(soft_dirs[name], plain, args.draws)
        wires = next(r for r in rows if r["weights"] == name and not r["hw_aware"])
        ablation.append({"weights": name, "hw_aware": False,
                         "deployed_acc_mean": result["accuracy_mean"],
                         "deployed_acc_std": result["accuracy_std"],
                         "deployed_accs": result["accuracies"],
                         "with_wires_acc_mean": wires["deployed_acc_mean"]})

    command = "python benchmarks/results_mnist1d_qat.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    doc = {
        "schema": RESULTS_SCHEMA,
        "command": command.strip(),
        "task": "mnist1d",
        "test_sequences": len(load_data(software_config("fp32", args).data).y_test),
        "draws": args.draws,
        "settings": {k: v for k, v in vars(args).items()
                     if k not in ("work", "out", "not_run")},
        "noise": describe_noise(noise),
        "noise_without_wires": describe_noise(plain),
        "rows": rows,
        "pruning": pruning,
        "ablation": ablation,
        "threads": args.threads,
        "seconds": time.perf_counter() - started,
        "train_seconds_all_runs": sum(r["train_seconds"] for r in rows + pruning),
        "provenance": provenance(source=str(args.device), seed=0, command=command.strip()),
    }
    stem = "mnist1d_qat_quick" if args.quick else "mnist1d_qat"
    doc["plots"] = plots(doc, out, stem)
    write_json(out / f"{stem}.json", doc)
    write_json(out / f"{stem}_noise.json", json.loads(noise.read_text()))
    atomic_write_text(out / f"{stem}.md", markdown(doc))
    log(f"wrote {out / stem}.json, .md ({doc['seconds'] / 60:.1f} min)")
    print(markdown(doc))


if __name__ == "__main__":
    main()

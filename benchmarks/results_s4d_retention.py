"""S4D over time: deployed accuracy at 1 s, 1 h, 1 day, 1 month and 1 year after programming,
with and without global drift compensation (issue 12).

The hardware: the noise model of the MNIST-1D results (``results/mnist1d_qat_noise.json``: the
example device, write-verify, 64 x 64 tiles with 1 ohm wires and their transfer model) with a
retention part: the relaxation model of technology B (``calibration_data/models/
techB-relaxation.json``, fitted to ``rram_relaxation/techB-relaxation.tsv.gz``; measured up to
10^4 s, so a day, a month and a year are extrapolations: the variance keeps its per-decade
growth). Note the two parts come from different technologies (the example device's programming,
technology B's relaxation): a noise model assembled to show the time axis, not a chip.

The network: the demo's S4D (24 channels, two blocks, ternary weights, ``A`` at 8 bits) trained
20 epochs in software on MNIST-1D, then 4 epochs hardware-aware with the noise model (programming
at the instant of writing); the run directories are reused when present. Every time and setting
deploys the same ``--draws`` programmed chips (same seed).

Writes ``results/s4d_retention.json`` (with the command), ``results/s4d_retention.md`` and
``results/s4d_retention.png``::

    python benchmarks/results_s4d_retention.py [--runs out/s4d_retention] [--draws 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.device import DeviceModel  # noqa: E402
from pyaimc.io import atomic_write_text, provenance, write_json  # noqa: E402
from pyaimc.noise import NoiseModel, RelaxationRetention  # noqa: E402

TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 month": 2.63e6, "1 year": 3.156e7}
NOISE = ROOT / "results" / "mnist1d_qat_noise.json"
RELAX = ROOT / "calibration_data" / "models" / "techB-relaxation.json"


def main(argv=None) -> int:
    import torch

    from examples.demo_s4d import software_config
    from pyaimc.experiments.datasets import load_data
    from pyaimc.experiments.deploy import accuracy_over_time
    from pyaimc.experiments.runs import evaluate
    from pyaimc.experiments.train import load_run, train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=str(ROOT / "out" / "s4d_retention"))
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tic = time.perf_counter()
    runs = Path(args.runs)
    relax = DeviceModel.load(RELAX).relaxation_
    nm = NoiseModel.load(NOISE).with_retention(RelaxationRetention(relax, source=str(RELAX)))
    noise_path = runs / "noise_with_retention.json"
    runs.mkdir(parents=True, exist_ok=True)
    nm.save(noise_path)
    soft_cfg = software_config()
    if not (runs / "soft" / "metrics.json").exists():
        train(soft_cfg, runs / "soft", progress=False)
    hw_cfg = dataclasses.replace(soft_cfg, noise=str(NOISE), train=dataclasses.replace(
        soft_cfg.train, epochs=4, lr=3e-3, ssm_lr=1e-3, warmup_epochs=0,
        init_from=str(runs / "soft")))
    if not (runs / "hw" / "metrics.json").exists():
        train(hw_cfg, runs / "hw", progress=False, deploy_draws=1)
    train_s = time.perf_counter() - tic
    data = load_data(soft_cfg.data)
    rows = []
    for name in ("soft", "hw"):
        _, model = load_run(runs / name, software=True)
        sw = evaluate(model, data.x_test, data.y_test)["accuracy"]
        times = [0.0] + list(TIMES.values())
        res = accuracy_over_time(model, data.x_test, data.y_test, nm, times, args.draws, 0,
                                 compensation=(False, True))
        for r in res:
            rows.append({"model": name, "software_accuracy": sw,
                         **{k: r[k] for k in ("t_inference", "drift_compensation",
                                              "accuracy_mean", "accuracy_std", "accuracies")},
                         "extrapolated": r["t_inference"] > relax.t_knots_[-1]})
            print(f"{name}: t {r['t_inference']:>10.4g} s, compensation "
                  f"{'on ' if r['drift_compensation'] else 'off'}: "
                  f"{r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}"
                  + (" (extrapolated)" if rows[-1]["extrapolated"] else ""), flush=True)
    doc = {"schema": "pyaimc.results/1", "name": "s4d_retention",
           "command": "python benchmarks/results_s4d_retention.py"
                      + (f" {shlex.join(argv)}" if argv else ""),
           "noise": str(NOISE), "relaxation": str(RELAX), "draws": args.draws,
           "test_sequences": int(len(data.y_test)), "rows": rows,
           "last_measured_time_s": float(relax.t_knots_[-1]),
           "seconds": time.perf_counter() - tic, "train_seconds": train_s}
    doc["provenance"] = provenance(source=str(NOISE), seed=0, command=doc["command"])
    out = Path(args.out)
    write_json(out / "s4d_retention.json", doc)
    label = {0.0: "0 (programming)", **{v: k for k, v in TIMES.items()}}
    md = ["# S4D on MNIST-1D over time after programming", "",
          f"Deployed accuracy ({args.draws} programmed chips, {len(data.y_test)} test sequences) "
          "on the MNIST-1D results' noise model with technology B's relaxation as retention "
          f"(measured up to {relax.t_knots_[-1]:.0f} s; later times extrapolated). 'soft': "
          "trained in software; 'hw': then 4 epochs hardware-aware (at the instant of "
          "programming). The noise model joins two technologies (the example device's "
          "programming, technology B's relaxation): it shows the time axis, it is no chip. "
          "Chance is 0.1.", "",
          "| time | soft | soft, compensated | hw | hw, compensated |", "|---|---|---|---|---|"]
    for t in [0.0] + list(TIMES.values()):
        cells = []
        for name in ("soft", "hw"):
            for comp in (False, True):
                r = next(r for r in rows if r["model"] == name and r["t_inference"] == t
                         and r["drift_compensation"] == comp)
                cells.append(f"{r['accuracy_mean']:.3f} +- {r['accuracy_std']:.3f}")
        ext = " (extrapolated)" if t > relax.t_knots_[-1] else ""
        md.append(f"| {label[t]}{ext} | " + " | ".join(cells) + " |")
    md += ["", f"Regenerate: `{doc['command']}` ({doc['seconds'] / 60:.0f} min with training).",
           ""]
    atomic_write_text(out / "s4d_retention.md", "\n".join(md))
    _plot(rows, relax.t_knots_[-1], out / "s4d_retention.png")
    print(f"wrote {out / 's4d_retention.json'}, s4d_retention.md, s4d_retention.png "
          f"({doc['seconds'] / 60:.1f} min)")
    return 0


def _plot(rows, last_measured, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for k, name in enumerate(("soft", "hw")):
        for comp, ls in ((False, "--"), (True, "-")):
            rr = [r for r in rows if r["model"] == name and r["drift_compensation"] == comp
                  and r["t_inference"] > 0]
            t = [r["t_inference"] for r in rr]
            ax.errorbar(t, [r["accuracy_mean"] for r in rr], [r["accuracy_std"] for r in rr],
                        color=f"C{k}", ls=ls, marker="o", ms=3, capsize=2,
                        label=f"{name}{', compensated' if comp else ''}")
        r0 = next(r for r in rows if r["model"] == name and r["t_inference"] == 0
                  and not r["drift_compensation"])
        ax.axhline(r0["accuracy_mean"], color=f"C{k}", lw=0.6, alpha=0.6)
    ax.axvspan(last_measured, 1e8, color="0.9", zorder=0)
    ax.text(last_measured * 1.5, ax.get_ylim()[0], " extrapolated", fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("deployed test accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())

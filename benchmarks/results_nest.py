"""Issue 18: ReRAM synapses in the spiking sequence-learning network (arXiv 2211.16592), in NEST.

Trains the network of :mod:`pyaimc.apps.snn` on two second-order sequences (``A D B E``,
``F D B C``) with ideal synapses and with ReRAM synapses of the shipped RADAR pulse model, one
device property changed per row (:data:`pyaimc.apps.snn.study.STUDY`), and tests each with
plasticity off. Writes ``results/nest_sequences.json`` (rows with ``prediction_error``,
``false_positive``, ``false_negative`` per (parameter, value); the reference as ``"parameter":
"ideal"``), ``results/nest_sequences.md`` and plots::

    python benchmarks/results_nest.py --seeds 1 2 --episodes 40 --jobs 2

About 40 min on two loaded cores with ``--jobs 2``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.apps.snn.study import BASE_DEVICE, STUDY, combine, run_one  # noqa: E402
from pyaimc.io import OutputSet, atomic_write_text, provenance, write_json  # noqa: E402

LABELS = {"ideal": "ideal synapses (reference)", "readout": "ideal, linear read-out (control)",
          "base": "base device", "on_off_ratio": "on/off ratio", "levels": "levels",
          "variability": "variability (x fitted)",
          "variability_levels4": "variability, 4 levels", "stuck_off": "stuck off (fraction)",
          "stuck_on": "stuck on (fraction)"}


def _run(args):
    """One (row, seed); with a cache folder, read from it or written to it."""
    parameter, value, device, seed, episodes, cache = args
    path = None if cache is None else cache / f"{parameter}-{value}-{seed}-{episodes}.json"
    if path is not None and path.exists():
        return args, json.loads(path.read_text())
    r = run_one(parameter, value, device, seed, episodes)
    if path is not None:
        write_json(path, r)
    return args, r


def markdown(rows, command) -> str:
    lines = ["# Sequence learning with ReRAM synapses in NEST (issue 18)", "",
             f"`{command}`", "",
             "Two sequences, A D B E and F D B C (second order: after D B only the first element "
             "tells E from C); 6 subpopulations of 100 neurons, "
             f"{rows[0]['n_synapses']} plastic synapses; scores of the last elements in a test "
             "with plasticity off, mean over the seeds. Base device: the shipped RADAR pulse "
             f"model's median device, {BASE_DEVICE}. Every row changes one setting of the base "
             "device.", "",
             "| parameter | value | prediction error | false positive | false negative | "
             "per seed | active / element | pulses (training) |",
             "|---|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        per = ", ".join(f"{e:.2f}" for e in r["prediction_error_per_seed"])
        lines.append(f"| {LABELS.get(r['parameter'], r['parameter'])} | {r['value']} | "
                     f"{r['prediction_error']:.3f} | {r['false_positive']:.3f} | "
                     f"{r['false_negative']:.3f} | {per} | {r['active_per_element']:.1f} | "
                     f"{int(r['pulses']):,} |")
    return "\n".join(lines) + "\n"


def plots(rows, path_sweeps: Path, path_curves: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ideal = next(r for r in rows if r["parameter"] == "ideal")
    base = next(r for r in rows if r["parameter"] == "base")
    panels = [("on_off_ratio", True, BASE_DEVICE["on_off_ratio"]),
              ("levels", True, None), ("variability", False, 0.0),
              ("stuck_off", False, 0.0), ("stuck_on", False, 0.0)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), sharey=True)
    for ax, (par, logx, base_x) in zip(axes, panels):
        rs = [r for r in rows if r["parameter"] == par]
        if not rs:
            ax.set_visible(False)
            continue
        xs = [r["value"] for r in rs]
        if base_x is not None:
            xs, rs = [base_x] + xs, [base] + rs
        order = sorted(range(len(xs)), key=lambda k: xs[k])
        xs = [xs[k] for k in order]
        rs = [rs[k] for k in order]
        for key, style in (("prediction_error", "o-"), ("false_positive", "s--"),
                           ("false_negative", "^:")):
            ax.plot(xs, [r[key] for r in rs], style, label=key.replace("_", " "), ms=4)
        ax.axhline(ideal["prediction_error"], color="k", lw=0.8, label="ideal")
        ax.set_xlabel(LABELS[par])
        if logx:
            # ticks at the values run: matplotlib's minor log labels overlap on a short range
            ax.set_xscale("log")
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("last element, test")
    shown = [ax for ax in axes if ax.get_visible()]
    if shown:
        shown[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path_sweeps, dpi=120, format="png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for par, val in (("ideal", "threshold"), ("readout", "linear"), ("base", "device"),
                     ("variability", 0.25), ("variability", 1.0), ("variability_levels4", 1.0)):
        r = next((r for r in rows if r["parameter"] == par and r["value"] == val), None)
        if r is not None:
            ax.plot(r["curve_episodes"], r["curve"], label=f"{LABELS[par]} {val}")
    ax.set_xlabel("training episode")
    ax.set_ylabel("prediction error (training)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path_curves, dpi=120, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=1, help="rows run in parallel processes")
    ap.add_argument("--only", nargs="*", help="run only these parameters")
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--cache", type=Path, help="keep each (row, seed) result here and reuse it")
    a = ap.parse_args(argv)
    command = "python benchmarks/results_nest.py " + shlex.join(sys.argv[1:] if argv is None
                                                                 else argv)
    study = [s for s in STUDY if not a.only or s[0] in a.only or s[0] in ("ideal", "base")]
    # seed-major order: with --cache, an interrupted run keeps whole seeds of every row
    tasks = [(p, v, d, s, a.episodes, a.cache) for s in a.seeds for p, v, d in study]
    if a.cache is not None:
        a.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done = {}
    pool = ProcessPoolExecutor(a.jobs) if a.jobs > 1 else None
    results = pool.map(_run, tasks) if pool else map(_run, tasks)
    for (p, v, d, s, _, _), r in results:
        done[(p, str(v), s)] = r
        print(f"{p:>20} {v!s:>9} seed {s}  E {r['prediction_error']:.3f} "
              f"FP {r['false_positive']:.3f} FN {r['false_negative']:.3f} "
              f"({r['wall_s']:.0f} s)", flush=True)
    if pool:
        pool.shutdown()
    rows = [combine(p, v, d, [done[(p, str(v), s)] for s in a.seeds], a.seeds)
            for p, v, d in study]
    wall = time.perf_counter() - t0
    payload = {"schema": "pyaimc.nest_sequences/1", "command": command,
               "sequences": ["ADBE", "FDBC"], "episodes": a.episodes, "seeds": a.seeds,
               "base_device": BASE_DEVICE, "device_model": "radar_pulse-4-24-20",
               "wall_s": wall, "rows": rows,
               "provenance": provenance(command=command, seed=a.seeds[0])}
    with OutputSet() as out:
        write_json(out.file(a.out / "nest_sequences.json"), payload)
        atomic_write_text(out.file(a.out / "nest_sequences.md"), markdown(rows, command))
        plots(rows, out.file(a.out / "nest_sequences.png"),
              out.file(a.out / "nest_sequences_curves.png"))
    print(f"wrote {a.out}/nest_sequences.json, .md, .png, _curves.png ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

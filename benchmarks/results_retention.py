"""Retention predicted: the RADAR retention experiments simulated and their error rates compared.

For each experiment of ``radar_programming/retention`` whose read windows are known (3 bits per
cell 1-5 at 4.3 kOhm, 2 bits per cell 4 at 5.1 kOhm): fit the two-step retention model
(:mod:`pyaimc.device.retention`) on everything else (the other experiments' write -> read-back
and read-back -> post-bake pairs; experiment 3bpc5, whose bake temperature is not stated, is
never used for fitting), then simulate the experiment: write every cell into its write window
with the package's write-verify scheme (``device/schemes.py``; RADAR's own scheme is not in the
package yet) on the RADAR cycling model (``radar_cycling-4-24-20``; the one-sided LRS and HRS
windows, which that model's mean SET path does not reach, take conductances resampled from the
other experiments' write logs), wait, bake at the experiment's temperature for 30 min, read with
its read windows. Predicted error rate (cells outside their read window, mean of ``--repeats``
simulations) against the error rate measured in the read-back files (same windows) and the
bit error rate the README states.

The 32-level relaxation file (``relaxation-{pre,post}bake.csv``, 80 C) is left out of the fit by
default: it was written under other conditions than the experiments (its levels sit 14-34 uS
below their stated targets, and its pre-bake levels are 3-6 times wider: std 3-16 uS against
1-3 uS). ``--with-relaxation-file`` adds it (the figures then change for 3bpc1 only, the one
experiment at 80 C: its bake changes are 2-3 times those 3bpc1 shows at the same conductance).

Writes ``results/retention.json`` (with the command), ``results/retention.md`` and
``results/retention.png`` (predicted against measured, 95 % Poisson intervals of the measured
counts)::

    python benchmarks/results_retention.py [--shared ../shared/data] [--repeats 10]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.data.relaxation import load_readback, radar_retention_experiments  # noqa: E402
from pyaimc.device import DeviceModel  # noqa: E402
from pyaimc.device.retention import (RADAR_EXPERIMENTS, READ_WINDOWS_OHM,  # noqa: E402
                                     RetentionModel, error_rate)
from pyaimc.io import atomic_write_text, provenance, write_json  # noqa: E402
from pyaimc.device.schemes import get_scheme, new_cells  # noqa: E402

COMPARED = ("3bpc1", "3bpc2", "3bpc3", "3bpc4", "3bpc5", "2bpc4")
CYCLING_MODEL = ROOT / "calibration_data" / "models" / "radar_cycling-4-24-20.json"


def cell_g(r: np.ndarray) -> np.ndarray:
    """Conductance of each cell from its reads (n_reads, n_cells): 1 / mean resistance."""
    return 1.0 / np.mean(np.atleast_2d(r), axis=0)


def pairs(experiments: dict, relax80: tuple | None, leave_out: str) -> tuple[list, dict]:
    wait, bake = [], {}
    for name, e in experiments.items():
        if name == leave_out or name == "3bpc5":
            continue
        written = np.isfinite(e.r_written)
        g_pre, g_post = cell_g(e.pre), cell_g(e.post)
        wait.append((1.0 / e.r_written[written], g_pre[written]))
        bake.setdefault(RADAR_EXPERIMENTS[name]["temp_c"], []).append((g_pre, g_post))
    if relax80 is not None:
        bake.setdefault(80.0, []).append(relax80)
    return wait, bake


def write_cells(e, others: dict, cycling, scheme, rng, passes: int = 10) -> np.ndarray:
    """Written conductance of every cell of experiment ``e`` (S)."""
    n_levels = e.n_levels
    lo, hi = e.window_lo.copy(), e.window_hi.copy()
    for lv in range(n_levels):  # unwritten cells: the level's most common window
        sel = e.level == lv
        known = sel & np.isfinite(lo)
        pairs_ = np.stack([lo[known], hi[known]], 1)
        vals, counts = np.unique(pairs_, axis=0, return_counts=True)
        lo[sel & ~known], hi[sel & ~known] = vals[np.argmax(counts)]
    g = np.full(e.level.shape, np.nan)
    two_sided = (lo > 0) & np.isfinite(hi) & (hi < 1e6)
    g_lo, g_hi = 1.0 / hi[two_sided], 1.0 / lo[two_sided]
    idx = np.flatnonzero(two_sided)
    todo = np.ones(len(idx), dtype=bool)
    for _ in range(passes):  # cells out of their window are rewritten, as in the experiments
        if not todo.any():
            break
        cells = new_cells(cycling, int(todo.sum()), rng)
        res = scheme.program(cells, g_lo[todo], g_hi[todo], rng)
        cells.close()
        g[idx[todo]] = res.g
        inside = (g[idx] >= g_lo) & (g[idx] <= g_hi)
        todo = ~inside
    # one-sided windows (LRS above, HRS below): the other experiments' written conductances in
    # the same window
    for sel in (lo == 0, ~two_sided & (lo > 0)):
        if not sel.any():
            continue
        bound = (lo[sel][0], hi[sel][0])
        pool = np.concatenate([1.0 / o.r_written[(o.window_lo == bound[0])
                                                 & (o.window_hi == bound[1])]
                               for o in others.values()])
        if len(pool) == 0:
            raise ValueError(f"{e.name}: no other experiment wrote the window {bound} ohm")
        g[sel] = rng.choice(pool, int(sel.sum()))
    return g


def plot(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for k, r in enumerate(rows):
        n = r["measured_post_cells"]
        cells = r["measured_post"] and n / r["measured_post"]
        lo, hi = stats.chi2.ppf(0.025, 2 * n) / 2, stats.chi2.ppf(0.975, 2 * n + 2) / 2
        x = 100 * r["measured_post"]
        ax.errorbar([x], [100 * r["predicted_post"]],
                    xerr=[[x - 100 * lo / cells], [100 * hi / cells - x]], fmt="o",
                    color=f"C{k}", label=f"{r['experiment']} ({r['bake_temp_c']:.0f} C)")
        if r["stated_ber"]:
            ax.plot([100 * r["stated_ber"]], [100 * r["predicted_post"]], "x", color=f"C{k}")
    lim = np.array([0.05, 20.0])
    ax.loglog(lim, lim, "k-", lw=0.8)
    ax.loglog(lim, lim * 1.5, "k:", lw=0.8)
    ax.loglog(lim, lim / 1.5, "k:", lw=0.8)
    ax.set_xlabel("measured error rate after bake (%)  [x: stated]")
    ax.set_ylabel("predicted (%)")
    ax.set_title("RADAR retention, each experiment held out", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--with-relaxation-file", action="store_true",
                   help="also fit the 80 C bake from the 32-level relaxation file")
    args = p.parse_args(argv)
    folder = Path(args.shared) / "radar_programming" / "retention"
    t0 = time.perf_counter()
    exps = radar_retention_experiments(folder)
    relax80 = (cell_g(load_readback(folder / "relaxation-prebake.csv")),
               cell_g(load_readback(folder / "relaxation-postbake.csv")))
    cycling = DeviceModel.load(CYCLING_MODEL)
    rng = np.random.default_rng(args.seed)
    scheme = get_scheme("write_verify", max_pulses=100).prepare(cycling, rng)
    rows = []
    for name in COMPARED:
        e = exps[name]
        meta = RADAR_EXPERIMENTS[name]
        windows = READ_WINDOWS_OHM[e.bits_per_cell]
        wait, bake = pairs(exps, relax80 if args.with_relaxation_file else None, name)
        model = RetentionModel().fit(wait, bake)
        others = {k: v for k, v in exps.items() if k != name}
        pre_p, post_p, write_p, left_p = [], [], [], []
        written = np.isfinite(e.r_written) & (e.window_lo > 0) & (e.window_hi < 1e6)
        w_lo, w_hi = 1.0 / e.window_hi[written], 1.0 / e.window_lo[written]

        def left(g):  # written two-sided cells outside their write window
            return float(np.mean((g[written] < w_lo) | (g[written] > w_hi)))

        for _ in range(args.repeats):
            gw = write_cells(e, others, cycling, scheme, rng)
            g_pre = model.wait(gw, rng)
            g_post = model.bake(g_pre, meta["temp_c"], rng)
            write_p.append(error_rate(1.0 / gw, e.level, windows))
            left_p.append(left(g_pre))
            pre_p.append(error_rate(1.0 / np.maximum(g_pre, 1e-12), e.level, windows))
            post_p.append(error_rate(1.0 / np.maximum(g_post, 1e-12), e.level, windows))
        measured_post = error_rate(e.post, e.level, windows)
        measured_pre = error_rate(e.pre, e.level, windows)
        n_err = measured_post * e.post.size / e.post.shape[0]
        row = {"experiment": name, "bits_per_cell": e.bits_per_cell,
               "bake_temp_c": meta["temp_c"], "assumed": meta.get("assumed"),
               "bake_sources_c": sorted(bake), "predicted_post": float(np.mean(post_p)),
               "predicted_post_spread": [float(np.min(post_p)), float(np.max(post_p))],
               "predicted_pre": float(np.mean(pre_p)), "predicted_write": float(np.mean(write_p)),
               "measured_post": measured_post, "measured_pre": measured_pre,
               "measured_post_cells": float(n_err), "stated_ber": meta["stated_ber"],
               "left_write_window_measured": left(cell_g(e.pre)),
               "left_write_window_predicted": float(np.mean(left_p))}
        row["factor_vs_measured"] = row["predicted_post"] / measured_post if measured_post else None
        row["factor_vs_stated"] = (row["predicted_post"] / meta["stated_ber"]
                                   if meta["stated_ber"] else None)
        rows.append(row)
        fs = row["factor_vs_stated"]
        print(f"{name} ({meta['temp_c']:.0f} C{', assumed' if meta.get('assumed') else ''}): "
              f"predicted {100 * row['predicted_post']:.2f} % (pre-bake "
              f"{100 * row['predicted_pre']:.2f} %), measured {100 * measured_post:.2f} % "
              f"({n_err:.0f} cells; pre-bake {100 * measured_pre:.2f} %), stated "
              + (f"{100 * meta['stated_ber']:.1f} %" if meta["stated_ber"] else "-")
              + f"; factor vs measured {row['factor_vs_measured']:.2f}"
              + (f", vs stated {fs:.2f}" if fs else "")
              + f"; left the write window by the first read-back: measured "
              f"{100 * row['left_write_window_measured']:.0f} %, predicted "
              f"{100 * row['left_write_window_predicted']:.0f} %")
    doc = {"schema": "pyaimc.results/1", "name": "retention",
           "command": "python benchmarks/results_retention.py"
                      + (f" {shlex.join(argv)}" if argv else ""),
           "aim": "predicted bit error rate within a factor 1.5 of the measured",
           "relaxation_file_in_fit": bool(args.with_relaxation_file),
           "rows": rows, "seconds": time.perf_counter() - t0}
    within_m = [r for r in rows if r["factor_vs_measured"] and
                1 / 1.5 <= r["factor_vs_measured"] <= 1.5]
    within_s = [r for r in rows if r["factor_vs_stated"] and
                1 / 1.5 <= r["factor_vs_stated"] <= 1.5]
    doc["summary"] = {"within_1p5_of_measured": f"{len(within_m)} of {len(rows)}",
                      "within_1p5_of_stated": f"{len(within_s)} of "
                                              f"{sum(1 for r in rows if r['stated_ber'])}"}
    doc["provenance"] = provenance(source=str(folder), seed=args.seed, command=doc["command"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "retention.json", doc)
    md = ["# RADAR retention experiments: predicted vs measured error rates", "",
          "Each experiment predicted by a model fitted without it (see the script's docstring). "
          "Error rate: cells outside their read window after the bake.", "",
          "| experiment | bake | predicted | measured (cells) | stated | predicted / measured | "
          "predicted / stated | predicted pre-bake | measured pre-bake | left write window "
          "at read-back: measured / predicted |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['experiment']} | {r['bake_temp_c']:.0f} C"
                  f"{' (assumed)' if r['assumed'] else ''} | {100 * r['predicted_post']:.2f} % | "
                  f"{100 * r['measured_post']:.2f} % ({r['measured_post_cells']:.0f}) | "
                  + (f"{100 * r['stated_ber']:.1f} %" if r["stated_ber"] else "-") + " | "
                  + (f"{r['factor_vs_measured']:.2f}" if r["factor_vs_measured"] else "-")
                  + " | " + (f"{r['factor_vs_stated']:.2f}" if r["factor_vs_stated"] else "-")
                  + f" | {100 * r['predicted_pre']:.2f} % | {100 * r['measured_pre']:.2f} % | "
                  f"{100 * r['left_write_window_measured']:.0f} % / "
                  f"{100 * r['left_write_window_predicted']:.0f} % |")
    md += ["", f"Within a factor 1.5: {doc['summary']['within_1p5_of_measured']} against the "
           f"read-back files, {doc['summary']['within_1p5_of_stated']} against the README's "
           f"stated rates.", "", f"Regenerate: `{doc['command']}` ({doc['seconds']:.0f} s).", ""]
    atomic_write_text(out / "retention.md", "\n".join(md))
    plot(rows, out / "retention.png")
    print(f"within a factor 1.5: {doc['summary']['within_1p5_of_measured']} (measured), "
          f"{doc['summary']['within_1p5_of_stated']} (stated); wrote {out / 'retention.json'}, "
          f"retention.md ({doc['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

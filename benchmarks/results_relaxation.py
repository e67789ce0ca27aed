"""Relaxation models on held-out cells (issue 12): per level and time point, model vs measured.

For each shared relaxation file (technologies B and C): split the cells in two by a hash of the
address, fit the relaxation model on one half and compare, on the other, every (level, time
point) group with >= 50 cells: mean of G(t) - G(0) within 0.25 std + 0.3 uS, std ratio within
0.75-1.33. Both directions; beside it the in-sample score, the half-vs-half reference (one half's
sample moments against the other's) and two baselines (no relaxation; one log-time broadening law
for every level). Also: the last time point left out and predicted (the extrapolation rule), the
temperature part fitted on half of technology B's baked cells (checked on the other half at the
bake time), the 1/f read noise of technology A's traces, and a plot of the std against time with
the extrapolation to a year.

Writes ``results/relaxation.json`` (with the command), ``results/relaxation.md`` and
``results/relaxation_std.png``; prints the figures::

    python benchmarks/results_relaxation.py [--shared ../shared/data]
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

from pyaimc.data.relaxation import (hash_half, load_bake, load_relaxation,  # noqa: E402
                                    load_traces)
from pyaimc.device.relaxation import ReadNoise1f, RelaxationModel  # noqa: E402
from pyaimc.device.relaxation_check import (LogTimeBroadening, NoRelaxation,  # noqa: E402
                                            group_rows, heldout_check, summarize)
from pyaimc.io import atomic_write_text, provenance, write_json  # noqa: E402

FILES = {"techB": "techB-relaxation.tsv.gz", "techC": "techC-relaxation.tsv.gz"}
YEAR = 3.156e7


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def bake_check(model: RelaxationModel, bake, rng) -> list[dict]:
    """Model vs measured G - G0 after each bake, in 8 G0 bins (model sampled at the bake time)."""
    rows = []
    for temp in bake.temperatures:
        sel = bake.temp_c == temp
        g0, dd = bake.g0[sel], bake.g[sel] - bake.g0[sel]
        t_b = float(np.median(bake.time[sel]))
        sim = model.relax(g0, [t_b], rng, temperature_c=temp)[:, 0] - g0
        room = model.relax(g0, [t_b], rng)[:, 0] - g0
        edges = np.quantile(g0, np.linspace(0, 1, 9))
        b = np.clip(np.searchsorted(edges, g0, side="right") - 1, 0, 7)
        ratios = [sim[b == i].std() / dd[b == i].std() for i in range(8)]
        room_ratios = [room[b == i].std() / dd[b == i].std() for i in range(8)]
        dmean = [(sim[b == i].mean() - dd[b == i].mean()) * 1e6 for i in range(8)]
        rows.append({"temp_c": float(temp), "time_s": t_b,
                     "std_ratio_bins": ratios, "std_ratio_room_model_bins": room_ratios,
                     "mean_diff_us_bins": dmean})
    return rows


def plot(models: dict, datas: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.0))
    for ax, (name, model) in zip(np.atleast_1d(axes), models.items()):
        d = datas[name]
        levels = np.unique(d.level)
        counts = np.array([np.sum(d.level == lv) for lv in levels])
        pick = levels[counts >= 100]
        pick = pick[np.linspace(0, len(pick) - 1, 5).round().astype(int)]
        t = np.logspace(-3, np.log10(YEAR), 200)
        for k, lv in enumerate(pick):
            sel = d.level == lv
            meas = np.nanstd(d.delta[sel], axis=0)
            g0 = d.g0[sel]
            m, v = model.moments(g0, t)
            s = np.sqrt(v.mean(axis=0) + m.var(axis=0))
            color = f"C{k}"
            inside = t <= model.t_knots_[-1]
            ax.semilogx(t[inside], s[inside] * 1e6, color=color,
                        label=f"level {lv} ({g0.mean() * 1e6:.0f} uS)")
            ax.semilogx(t[~inside], s[~inside] * 1e6, color=color, ls="--")
            ax.semilogx(d.timepoints, meas * 1e6, "o", color=color, ms=4)
        ax.axvline(model.t_knots_[-1], color="0.6", lw=0.8)
        ax.set_xlabel("time after programming (s)")
        ax.set_ylabel("std of G(t) - G(0) (uS)")
        ax.set_title(f"{name}: measured (dots), model (lines), extrapolated (dashed)",
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--min-cells", type=int, default=50)
    args = p.parse_args(argv)
    shared = Path(args.shared) / "rram_relaxation"
    out = Path(args.out)
    t_start = time.perf_counter()
    doc = {"schema": "pyaimc.results/1", "name": "relaxation",
           "command": "python benchmarks/results_relaxation.py"
                      + (f" {shlex.join(argv)}" if argv else ""),
           "criterion": {"mean": "|model - measured| <= 0.25 * measured std + 0.3 uS",
                         "std": "0.75 <= model / measured <= 1.33",
                         "groups": f"level x time point with >= {args.min_cells} held-out cells",
                         "aim": ">= 85 % of groups agree in both"},
           "technologies": {}}
    models, datas = {}, {}
    md = ["# Relaxation models on held-out cells", "",
          "Fit on one hash half of each file, scored on the other (both directions). A group is "
          f"a level and time point with >= {args.min_cells} held-out cells; it agrees when the "
          "mean of G(t) - G(0) is within 0.25 std + 0.3 uS and the std ratio within 0.75-1.33.",
          "", "| technology | fit half | groups | held-out: both | mean | std | median std "
          "ratio | in-sample: both | half vs half | no relaxation | one log-time law |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, fname in FILES.items():
        data = load_relaxation(shared / fname)
        datas[name] = data
        res = heldout_check(
            data, lambda h: RelaxationModel().fit(h), args.min_cells,
            baselines={"no_relaxation": lambda h: NoRelaxation(),
                       "log_time_law": lambda h: LogTimeBroadening().fit(h)})
        models[name] = RelaxationModel().fit(data)
        doc["technologies"][name] = {"source": str(shared / fname), "heldout": res}
        for e in res["directions"]:
            h, i, r = e["heldout"], e["in_sample"], e["reference_half_vs_half"]
            line = (f"| {name} | {e['fit_half']} | {h['groups']} | {pct(h['both_ok'])} | "
                    f"{pct(h['mean_ok'])} | {pct(h['std_ok'])} | {h['median_std_ratio']:.2f} | "
                    f"{pct(i['both_ok'])} | {pct(r['both_ok'])} | "
                    f"{pct(e['baseline_no_relaxation']['both_ok'])} | "
                    f"{pct(e['baseline_log_time_law']['both_ok'])} |")
            md.append(line)
            print(f"{name} fit half {e['fit_half']}: held-out {h['groups']} groups, both "
                  f"{pct(h['both_ok'])} (mean {pct(h['mean_ok'])}, std {pct(h['std_ok'])}, "
                  f"median std ratio {h['median_std_ratio']:.2f}); in-sample "
                  f"{pct(i['both_ok'])}; half vs half {pct(r['both_ok'])}; baselines: no "
                  f"relaxation {pct(e['baseline_no_relaxation']['both_ok'])}, one log-time law "
                  f"{pct(e['baseline_log_time_law']['both_ok'])}")
    # temperature (technology B) and read noise (technology A)
    bake = load_bake(shared / "techB-bake.tsv.gz")
    # held out: the temperature part fitted on one hash half of the baked cells, checked on the
    # other
    half = hash_half(bake.addr)
    model_b = RelaxationModel().fit(datas["techB"], bake=bake.select(half == 0))
    rows = bake_check(model_b, bake.select(half == 1), np.random.default_rng(0))
    doc["technologies"]["techB"]["bake_check"] = rows
    doc["technologies"]["techB"]["temperature_fit"] = model_b.fit_info_["temperature"]
    md += ["", "## Temperature (technology B bakes: fitted on one hash half of the cells, checked "
           "on the other; model sampled at each bake's time)", "",
           "| bake | median std ratio model/measured (8 G0 bins) | range | room-temperature "
           "model alone | largest mean difference (uS) |", "|---|---|---|---|---|"]
    for r in rows:
        s = np.array(r["std_ratio_bins"])
        md.append(f"| {r['temp_c']:.0f} C, {r['time_s']:.0f} s | {np.median(s):.2f} | "
                  f"{s.min():.2f}-{s.max():.2f} | "
                  f"{np.median(r['std_ratio_room_model_bins']):.2f} | "
                  f"{np.max(np.abs(r['mean_diff_us_bins'])):.2f} |")
        print(f"techB bake {r['temp_c']:.0f} C: std ratio model/measured median "
              f"{np.median(s):.2f} ({s.min():.2f}-{s.max():.2f}); room-temperature model alone "
              f"{np.median(r['std_ratio_room_model_bins']):.2f}")
    traces = load_traces(shared / "techA-timeseries.tsv.gz")
    rn, info = ReadNoise1f.fit(traces)
    doc["read_noise_techA"] = {"part": rn.to_dict(), "fit": info}
    md += ["", "## 1/f read noise (technology A traces, 400 Hz, 250 s)", "",
           f"Common exponent alpha = {rn.alpha:.2f} (per trace "
           + ", ".join(f"{r['alpha']:.2f}" for r in info["traces"]) + ").", "",
           "| level | G (uS) | a at 1 Hz (S^2/Hz) | sigma 0.1-20 Hz (uS) | high-pass kurtosis |",
           "|---|---|---|---|---|"]
    for r, a in zip(info["traces"], rn.amplitude):
        sig = float(rn.sigma(r["g_mean"], 0.1, 20.0)) * 1e6
        md.append(f"| {r['level']} | {r['g_mean'] * 1e6:.1f} | {a:.2e} | {sig:.3f} | "
                  f"{r['highpass_kurtosis']:.1f} |")
    print(f"techA 1/f: alpha {rn.alpha:.2f}, amplitudes at 1 Hz "
          + ", ".join(f"{a:.1e}" for a in rn.amplitude) + " S^2/Hz; high-pass kurtosis "
          + ", ".join(f"{r['highpass_kurtosis']:.1f}" for r in info["traces"]))
    # the extrapolation rule checked: fit on the earlier time points of one hash half, predict
    # the last time point of the other half
    md += ["", "## Extrapolation checked on a held-out time", "",
           "Fitted on one hash half with the last time point left out, scored on the other half "
           "at that last time point (the model extrapolates to it).", "",
           "| technology | fitted up to | predicted | groups | both agree | mean | std | median "
           "std ratio | same, fitted with the last time |", "|---|---|---|---|---|---|---|---|---|"]
    doc["extrapolation_check"] = {}
    for name, data in datas.items():
        half = hash_half(data.addr)
        fit_half, test_half = data.select(half == 0), data.select(half == 1)
        early = fit_half.select_times(np.arange(len(data.timepoints)) < len(data.timepoints) - 1)
        last = test_half.select_times(np.arange(len(data.timepoints)) == len(data.timepoints) - 1)
        rows_x = group_rows(RelaxationModel().fit(early), last, args.min_cells)
        rows_f = group_rows(RelaxationModel().fit(fit_half), last, args.min_cells)
        sx, sf = summarize(rows_x), summarize(rows_f)
        doc["extrapolation_check"][name] = {"fitted_up_to_s": float(early.timepoints[-1]),
                                            "predicted_s": float(last.timepoints[0]),
                                            "extrapolated": sx, "fitted_with_it": sf,
                                            "rows": rows_x}
        md.append(f"| {name} | {early.timepoints[-1]:g} s | {last.timepoints[0]:g} s | "
                  f"{sx['groups']} | {pct(sx['both_ok'])} | {pct(sx['mean_ok'])} | "
                  f"{pct(sx['std_ok'])} | {sx['median_std_ratio']:.2f} | {pct(sf['both_ok'])} |")
        print(f"{name} extrapolated from {early.timepoints[-1]:g} s to {last.timepoints[0]:g} s: "
              f"{sx['groups']} held-out groups, both {pct(sx['both_ok'])} (mean "
              f"{pct(sx['mean_ok'])}, std {pct(sx['std_ok'])}, median std ratio "
              f"{sx['median_std_ratio']:.2f}); fitted with that time {pct(sf['both_ok'])}")
    # extrapolation figures: std at a year, mid-window level
    ext = {}
    for name, model in models.items():
        g_mid = float(np.median(datas[name].g0))
        _, v = model.moments([g_mid], [model.t_knots_[-1], 3600 * 24 * 30, YEAR])
        ext[name] = {"g0_us": g_mid * 1e6, "std_us_last_knot_month_year":
                     (np.sqrt(v[0]) * 1e6).tolist(), "last_knot_s": float(model.t_knots_[-1])}
    doc["extrapolation"] = ext
    md += ["", "## Extrapolation (stated, not measured)", "",
           "Beyond the last measured time the variance keeps its average per-decade growth (a "
           "least-squares line through all time knots). At the median G0:", ""]
    for name, e in ext.items():
        s = e["std_us_last_knot_month_year"]
        md.append(f"- {name} (G0 {e['g0_us']:.1f} uS): std {s[0]:.2f} uS at "
                  f"{e['last_knot_s']:.0f} s (measured), {s[1]:.2f} at a month, {s[2]:.2f} at "
                  f"a year (extrapolated)")
    out.mkdir(parents=True, exist_ok=True)
    plot(models, datas, out / "relaxation_std.png")
    doc["seconds"] = time.perf_counter() - t_start
    doc["provenance"] = provenance(source=str(shared), command=doc["command"])
    write_json(out / "relaxation.json", doc)
    md += ["", f"Regenerate: `{doc['command']}` ({doc['seconds']:.0f} s). Plot: "
           "`relaxation_std.png`.", ""]
    atomic_write_text(out / "relaxation.md", "\n".join(md))
    print(f"wrote {out / 'relaxation.json'}, relaxation.md, relaxation_std.png "
          f"({doc['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 11, "Measure": the pulse model against held-out measured pulses and write-verify logs,
beside the cycling-only model of before.

Writes ``results/pulse.json`` (every bin) and ``results/pulse.md`` (the summary)::

    python benchmarks/results_pulse.py \
        --model pyaimc/models/radar_pulse-4-24-20.json \
        --baseline pyaimc/models/radar_cycling-4-24-20.json

Held out: every second cell (by address) of each shared pulse file
(:meth:`pyaimc.data.pulses.PulseData.split_cells`); the model must have been fitted on the other
half (``pyaimc fit ... --pulses ... --hold-out-pulses``; checked from its provenance). The
write-verify logs are other chips and days than the pulse files: all of them are held out.

1. SET from the HRS vs V_WL (100 ns, 1 us, 10 us): per (width, V_BL, V_WL 0.1 V) bin with at
   least 50 held-out pulses, mean and std of G after: within 5 % and 20 %.
2. Staircases: per (file, polarity, drive V, V_WL, state) bin, median and 10/90 % quantiles of
   log10(G after / G before) within 0.05. The pulse model runs each held-out cell's sequence as
   a new device (free run); the cycling-only model has no state to run, so it is drawn pulse by
   pulse.
3. Write-verify: the three 2-bits-per-cell evaluations (RADAR, ISPP, FPPV) programmed with the
   scheme of the same name on the pulse model, and with the cycling model's write-verify scheme
   (what ``pyaimc export noise`` used) on the baseline: mean pulses per intermediate level
   within 25 %, success within 1 point, final std / window width within 0.05 of measured.
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

from pyaimc.data.pulses import load_pulses, load_write_log, record_kind  # noqa: E402
from pyaimc.device import DeviceModel  # noqa: E402
from pyaimc.device.pulse_fidelity import (cycling_sampler, pulse_model_sampler,  # noqa: E402
                                          set_from_hrs_table, staircase_table, summarize,
                                          write_verify_comparison)
from pyaimc.device.schemes import get_scheme  # noqa: E402
from pyaimc.io import atomic_write_text, provenance, write_json  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "radar_programming"
EVALS = {"radar": "sdr-4wl-eval-chip1-8-7-20.csv", "ispp": "ispp-4wl-eval-chip2-8-9-20.csv",
         "fppv": "fppv-4wl-eval-chip1-8-7-20.csv"}


def held_out_records(shared: Path):
    recs = [load_pulses(f).split_cells()[1] for f in sorted((shared / "pulses").glob("*.csv"))]
    return ([d for d in recs if record_kind(d.source) == "set_from_hrs"],
            [d for d in recs if record_kind(d.source) == "staircase"])


def evaluate(model, sampler, set_recs, stair_recs, rng, n_rep, free_run):
    t = time.time()
    a = set_from_hrs_table(set_recs, sampler, rng, n_rep=n_rep)
    b = staircase_table(stair_recs, sampler, rng, n_rep=n_rep,
                        model=model.pulse_ if free_run else None)
    return {"set_from_hrs": {"summary": summarize(a, ("mean_rel_err", "std_rel_err")),
                             "bins": a},
            "staircase": {"summary": summarize(b, ("max_abs_err",)), "bins": b,
                          "mode": "free run" if free_run else "pulse by pulse"},
            "seconds": time.time() - t}


def write_verify(model, schemes, shared, n_cells, rng):
    out = {}
    for name, fname in EVALS.items():
        log = load_write_log(shared / "write_verify" / fname)
        scheme = get_scheme(schemes[name]) if isinstance(schemes, dict) else get_scheme(schemes)
        out[name] = {"file": fname, "scheme": scheme.to_dict() if hasattr(scheme, "_table")
                     or not hasattr(scheme, "calibration") else {"scheme": scheme.name},
                     "levels": write_verify_comparison(model, log, scheme, n_cells, rng)}
    return out


def markdown(doc) -> str:
    lines = ["# Pulse model vs held-out measurements (issue 11)", "",
             f"Regenerate: `{doc['command']}`", "",
             "## Single pulses (held-out cells)", "",
             "| model | SET from HRS: bins passing (mean 5 %, std 20 %) | median / worst mean err | "
             "median / worst std err | staircases: bins passing (0.05) | median / worst err |",
             "|---|---|---|---|---|---|"]
    for key in ("pulse", "cycling"):
        r = doc["models"][key]
        a, b = r["set_from_hrs"]["summary"], r["staircase"]["summary"]
        lines.append(
            f"| {key} ({r['staircase']['mode']}) | {a['passing']} / {a['bins']} | "
            f"{a['median_mean_rel_err']:.1%} / {a['worst_mean_rel_err']:.1%} | "
            f"{a['median_std_rel_err']:.1%} / {a['worst_std_rel_err']:.1%} | "
            f"{b['passing']} / {b['bins']} | {b['median_max_abs_err']:.3f} / "
            f"{b['worst_max_abs_err']:.3f} |")
    lines += ["", "## Write-verify, intermediate levels (all held out: other chips and days)",
              "", "| evaluation | model | level (ohm) | pulses mean meas / model | median | p99 | "
              "success meas / model | std/width meas / model | energy pJ | ok |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for key in ("pulse", "cycling"):
        for ev, r in doc["models"][key]["write_verify"].items():
            for lv in r["levels"]:
                if not lv["intermediate"]:
                    continue
                e = lv["model_energy_mean"]
                lines.append(
                    f"| {ev} | {key} | {lv['r_lo']:.0f}-{lv['r_hi']:.0f} | "
                    f"{lv['pulses_mean']:.1f} / {lv['model_pulses_mean']:.1f} | "
                    f"{lv['pulses_median']:.0f} / {lv['model_pulses_median']:.0f} | "
                    f"{lv['pulses_p99']:.0f} / {lv['model_pulses_p99']:.0f} | "
                    f"{lv['success']:.2%} / {lv['model_success']:.2%} | "
                    f"{lv['std_over_width']:.3f} / "
                    + ("-" if lv["model_std_over_width"] is None
                       else f"{lv['model_std_over_width']:.3f}")
                    + f" | {'-' if e is None else f'{e * 1e12:.0f}'} | "
                    f"{'yes' if lv['ok'] else 'no'} |")
    lines += ["", "## Write-verify, open levels (LRS below 5 kOhm, HRS above 80 kOhm)", "",
              "| evaluation | model | level (ohm) | pulses mean meas / model | success meas / "
              "model |", "|---|---|---|---|---|"]
    for key in ("pulse", "cycling"):
        for ev, r in doc["models"][key]["write_verify"].items():
            for lv in r["levels"]:
                if lv["intermediate"]:
                    continue
                lines.append(f"| {ev} | {key} | {lv['r_lo']:.0f}-{lv['r_hi']:.3g} | "
                             f"{lv['pulses_mean']:.1f} / {lv['model_pulses_mean']:.1f} | "
                             f"{lv['success']:.2%} / {lv['model_success']:.2%} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "pyaimc/models/radar_pulse-4-24-20.json"))
    p.add_argument("--baseline", default=str(ROOT / "pyaimc/models/radar_cycling-4-24-20.json"))
    p.add_argument("--shared", default=str(SHARED))
    p.add_argument("--cells", type=int, default=2000, help="simulated cells per level")
    p.add_argument("--reps", type=int, default=5, help="draws per held-out pulse")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "results" / "pulse"))
    args = p.parse_args(argv)
    shared = Path(args.shared)
    if not shared.exists():
        print(f"{shared}: the shared RADAR programming data is not here", file=sys.stderr)
        return 2
    model = DeviceModel.load(args.model)
    if model.pulse_ is None:
        print(f"{args.model}: no pulse part", file=sys.stderr)
        return 2
    cells_used = model.provenance_.get("pulse_cells", "")
    if not cells_used.startswith("fit half"):
        print(f"{args.model}: not fitted on the fit half of the pulse cells "
              f"(--hold-out-pulses); held-out figures would be in-sample", file=sys.stderr)
        return 2
    base = DeviceModel.load(args.baseline)
    rng = np.random.default_rng(args.seed)
    set_recs, stair_recs = held_out_records(shared)
    command = "python benchmarks/results_pulse.py " + " ".join(shlex.quote(a) for a in
                                                                (argv or sys.argv[1:]))
    doc = {"schema": "pyaimc.results/1", "command": command.strip(), "models": {}}
    for key, m, sampler, free, schemes in (
            ("pulse", model, pulse_model_sampler(model.pulse_), True,
             {k: k for k in EVALS}),
            ("cycling", base, cycling_sampler(base), False, "write_verify")):
        print(f"{key}: single pulses ...", flush=True)
        res = evaluate(m, sampler, set_recs, stair_recs, rng, args.reps, free)
        print(f"{key}: write-verify ...", flush=True)
        res["write_verify"] = write_verify(m, schemes, shared, args.cells, rng)
        res["model"] = str(args.model if key == "pulse" else args.baseline)
        doc["models"][key] = res
        a, b = res["set_from_hrs"]["summary"], res["staircase"]["summary"]
        print(f"  SET from HRS: {a['passing']}/{a['bins']} bins pass; staircases "
              f"({res['staircase']['mode']}): {b['passing']}/{b['bins']}")
        for ev, r in res["write_verify"].items():
            for lv in r["levels"]:
                if lv["intermediate"]:
                    print(f"  {ev:5s} {lv['r_lo']:6.0f}-{lv['r_hi']:6.0f} ohm: pulses "
                          f"{lv['pulses_mean']:.1f} measured / {lv['model_pulses_mean']:.1f} "
                          f"model, success {lv['success']:.2%} / {lv['model_success']:.2%}, "
                          f"std/width {lv['std_over_width']:.3f} / "
                          f"{lv['model_std_over_width'] or float('nan'):.3f}")
    doc["provenance"] = provenance(source=str(shared), seed=args.seed, command=doc["command"])
    out = Path(args.out)
    write_json(out.with_suffix(".json"), doc)
    atomic_write_text(out.with_suffix(".md"), markdown(doc))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

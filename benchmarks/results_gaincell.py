"""Gain-cell sliding-window attention: perplexity of a character GPT with exact, sliding-window and
analog (gain-cell) attention, before and after adaptation, vs window size and retention time
constant; latency and energy per token against a digital KV cache.

One command regenerates everything and writes ``results/gaincell_attention.json`` (the rows),
``results/gaincell_attention.md`` (the tables), ``results/gaincell_device.json`` (the gain-cell
model used, ``pyaimc.gaincell/1``) and two plots beside them::

    python benchmarks/results_gaincell.py

Trained models are cached in ``--work`` (keyed by the settings): a second invocation only
evaluates. The corpus is the source of Python standard-library modules (training modules and
held-out test modules, listed with their SHA-256 in the JSON), so the figures belong to the Python
version recorded there. Run with one torch thread on the shared machine (``--threads``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.apps.gaincell.attention import Periphery  # noqa: E402
from pyaimc.apps.gaincell.cost import constants_table, cost_table  # noqa: E402
from pyaimc.apps.gaincell.device import GainCellModel  # noqa: E402
from pyaimc.apps.gaincell.experiment import StudyConfig, run_study  # noqa: E402
from pyaimc.io import atomic_write_text, provenance, write_json  # noqa: E402

RESULTS_SCHEMA = "pyaimc.results/1"
AIM = 0.10  # analog after adaptation within 10 % of the exact sliding-window perplexity


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _ppl(row: dict) -> str:
    s = f"{row['perplexity']:.3f}"
    if row.get("perplexity_chip_std"):
        s += f" ± {row['perplexity_chip_std']:.3f}"
    return s


def _find(rows, attention, window, decay=None):
    for r in rows:
        if (r["attention"] == attention and r["window"] == window
                and (decay is None or r["decay_s"] == decay)):
            return r
    return None


def summary(doc: dict) -> dict:
    """Gap of analog-adapted to window per configuration, and where it breaks."""
    cfg, rows = doc["settings"], doc["rows"]
    gaps = []
    for r in rows:
        if r["attention"] != "analog_adapted":
            continue
        ref = _find(rows, "window", r["window"])
        gaps.append({"window": r["window"], "decay_s": r["decay_s"],
                     "relative_gap": r["perplexity"] / ref["perplexity"] - 1,
                     "within_aim": r["perplexity"] <= (1 + AIM) * ref["perplexity"]})
    decay_gaps = sorted((g for g in gaps if g["window"] == cfg["decay_window"]),
                        key=lambda g: g["decay_s"])
    return {"aim": AIM, "gaps": gaps,
            "decays_within_aim_s": [g["decay_s"] for g in decay_gaps if g["within_aim"]],
            "decays_missing_aim_s": [g["decay_s"] for g in decay_gaps if not g["within_aim"]],
            "windows_within_aim_at_nominal": [g["window"] for g in gaps
                                              if g["decay_s"] == cfg["nominal_tau"]
                                              and g["within_aim"]],
            "all_nominal_within_aim": all(g["within_aim"] for g in gaps
                                          if g["decay_s"] == cfg["nominal_tau"])}


def markdown(doc: dict) -> str:
    cfg, rows = doc["settings"], doc["rows"]
    exact = _find(rows, "exact", None)
    lines = [
        "# Gain-cell sliding-window attention: character GPT perplexity",
        "",
        f"Command: `{doc['command']}` ({doc['seconds'] / 60:.1f} min for the invocation that "
        f"wrote this; training and calibration of all runs: {doc['train_seconds'] / 60:.1f} min; "
        f"{doc['threads']} torch thread(s)).",
        "",
        f"Model: {cfg['n_layer']} layers, d_model {cfg['d_model']}, {cfg['n_head']} heads, "
        f"context {cfg['context']} characters; pre-trained {cfg['pretrain_steps']} steps with "
        f"exact attention. Adaptation: calibration and {cfg['linear_steps']} fine-tuning steps of "
        f"the intermediate model (hard-sigmoid read-out on ideal linear cells, once per window), "
        f"then calibration on the gain cells and {cfg['finetune_steps']} hardware-aware steps "
        f"(per window and time constant; batch {cfg['finetune_batch']}); the sliding-window "
        f"baseline is fine-tuned {cfg['linear_steps'] + cfg['finetune_steps']} steps. Corpus: "
        f"Python {doc['corpus']['python']} standard "
        f"library, {doc['corpus']['train_chars']} training characters "
        f"({len(doc['corpus']['train_modules'])} modules), held-out test text "
        f"{doc['corpus']['test_chars']} characters from {len(doc['corpus']['test_modules'])} "
        f"other modules. Perplexity per character on {cfg['eval_sequences']} held-out "
        f"sequences of {cfg['context']} (in-sample: as many training sequences); analog: mean ± "
        f"sample std over {cfg['eval_chips']} chips and write-noise draws not used in training. "
        f"Token period {cfg['token_period'] * 1e6:g} µs; gain cells: "
        f"`results/gaincell_device.json`.",
        "",
        f"Exact attention (context {cfg['context']}): held-out {exact['perplexity']:.3f}, "
        f"in-sample {exact['perplexity_train']:.3f} (the pre-trained model as it is; the "
        f"sliding-window baselines below had {cfg['linear_steps'] + cfg['finetune_steps']} "
        f"more steps, which is why they beat it). Held-out text is other modules than the "
        f"training text, hence the gap to in-sample.",
        "",
        f"## Window size (median retention time constant {cfg['nominal_tau'] * 1e3:g} ms)",
        "",
        "| window | exact | window (before fine-tuning) | window | analog (direct mapping) | "
        "intermediate: calibrated / fine-tuned | analog: calibrated | analog adapted | "
        "adapted / window | in-sample adapted |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in cfg["windows"]:
        win = _find(rows, "window", w)
        an = _find(rows, "analog", w, cfg["nominal_tau"])
        ad = _find(rows, "analog_adapted", w, cfg["nominal_tau"])
        lines.append(
            f"| {w} | {exact['perplexity']:.3f} | {win['perplexity_before_finetune']:.3f} | "
            f"{win['perplexity']:.3f} | {_ppl(an)} | {ad['perplexity_linear_calibrated']:.3f} / "
            f"{ad['perplexity_linear']:.3f} | {ad['perplexity_calibrated']:.3f} | "
            f"{_ppl(ad)} | {ad['perplexity'] / win['perplexity']:.3f} | "
            f"{ad['perplexity_train']:.3f} |")
    w = cfg["decay_window"]
    win = _find(rows, "window", w)
    lines += [
        "",
        f"## Retention time constant (window {w}, window of {w * cfg['token_period'] * 1e6:g} µs"
        f"; exact sliding window {win['perplexity']:.3f})",
        "",
        "| median tau (s) | tau / window time | analog (direct mapping) | analog adapted at this "
        f"tau | adapted / window | adapted at {cfg['nominal_tau']:g} s, run at this tau |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    taus = sorted(set(cfg["decays"]) | {cfg["nominal_tau"]})
    for tau in taus:
        an = _find(rows, "analog", w, tau)
        ad = _find(rows, "analog_adapted", w, tau)
        tr = next((t for t in doc["transfer"] if t["decay_s"] == tau), None)
        if tau == cfg["nominal_tau"]:
            tr = ad
        lines.append(f"| {tau:g} | {tau / (w * cfg['token_period']):.3g} | {_ppl(an)} | "
                     f"{_ppl(ad)} | {ad['perplexity'] / win['perplexity']:.3f} | "
                     f"{_ppl(tr) if tr else '-'} |")
    if doc.get("ablation"):
        an, ad = doc["ablation"]
        ref = _find(rows, "analog_adapted", w, cfg["nominal_tau"])
        lines += [
            "",
            f"Ablation, window {w}, tau {cfg['nominal_tau']:g} s, no rounding anywhere (write "
            f"DAC, query pulses and ADC continuous; noise, non-linearity, decay as above): "
            f"direct mapping {_ppl(an)}, intermediate linear-cell model "
            f"{ad['perplexity_linear']:.3f}, adapted {_ppl(ad)} (with the paper's resolutions: "
            f"intermediate {ref['perplexity_linear']:.3f}, adapted {_ppl(ref)}).",
        ]
    s = doc["summary"]

    def listed(values, unit=""):
        return ", ".join(f"{v:g}{unit}" for v in values) or "none"

    lines += [
        "",
        f"Aim: analog after adaptation within {100 * AIM:.0f} % of the exact sliding-window "
        f"perplexity. Window sweep (tau {cfg['nominal_tau']:g} s): met for windows "
        f"{listed(s['windows_within_aim_at_nominal'])}. Decay sweep (window {w}): met at tau = "
        f"{listed(s['decays_within_aim_s'], ' s')}; missed at tau = "
        f"{listed(s['decays_missing_aim_s'], ' s')}.",
        "",
        "## Latency and energy per generated token (attention only)",
        "",
        "| model | heads x dim, window, layers | analog latency | analog energy | "
        "digital (HBM) latency | digital (HBM) energy | digital (SRAM) energy | speed-up | "
        "energy ratio (HBM / SRAM) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in doc["cost"].items():
        k = c["config"]
        lines.append(
            f"| {name} | {k['heads']} x {k['dim']}, {k['window']}, {k['layers']} | "
            f"{c['analog']['latency_s'] * 1e9:.0f} ns | {c['analog']['energy_j'] * 1e9:.3g} nJ | "
            f"{c['digital_hbm']['latency_s'] * 1e6:.1f} µs | "
            f"{c['digital_hbm']['energy_j'] * 1e9:.3g} nJ | "
            f"{c['digital_sram']['energy_j'] * 1e9:.3g} nJ | {c['speedup_vs_hbm']:.0f}x | "
            f"{c['energy_ratio_vs_hbm']:.3g}x / {c['energy_ratio_vs_sram']:.3g}x |")
    lines += ["", "Constants and their sources: `constants` in the JSON and docs/gaincell.md. "
              "First-order estimates from documented constants, not circuit simulation.", ""]
    for name in doc.get("plots", []):
        lines.append(f"![{name}]({name})")
    return "\n".join(lines) + "\n"


def plots(doc: dict, out: Path, stem: str) -> list[str]:
    """Perplexity vs window and vs decay time constant: all runs (log scale) and a close-up of
    the adapted model against the sliding-window baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, rows = doc["settings"], doc["rows"]
    exact = _find(rows, "exact", None)["perplexity"]
    names = []

    def curve(ax, xs, found, label, style):
        ax.errorbar(xs, [r["perplexity"] for r in found],
                    yerr=[r.get("perplexity_chip_std", 0.0) for r in found], fmt=style,
                    label=label, capsize=3)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ws = cfg["windows"]
    tau = cfg["nominal_tau"]
    window = [_find(rows, "window", w) for w in ws]
    direct = [_find(rows, "analog", w, tau) for w in ws]
    adapted = [_find(rows, "analog_adapted", w, tau) for w in ws]
    for ax, full in zip(axes, (True, False)):
        curve(ax, ws, window, "exact sliding window", "o-")
        if full:
            curve(ax, ws, direct, "analog, direct mapping", "s--")
        else:
            ax.plot(ws, [r["perplexity_linear"] for r in adapted], "d:",
                    label="intermediate (linear cells)")
            ax.plot(ws, [(1 + AIM) * r["perplexity"] for r in window], "r:", lw=0.8,
                    label=f"window + {100 * AIM:.0f} %")
        curve(ax, ws, adapted, "analog, adapted", "^-")
        ax.axhline(exact, color="k", lw=0.8, ls=":", label=f"exact, context {cfg['context']}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("window (tokens)")
        ax.set_ylabel("held-out perplexity per character")
        if full:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[0].set_title(f"all runs, tau = {tau * 1e3:g} ms")
    axes[1].set_title("close-up")
    fig.tight_layout()
    name = f"{stem}_window.png"
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    names.append(name)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    w = cfg["decay_window"]
    taus = sorted(set(cfg["decays"]) | {cfg["nominal_tau"]})
    direct = [_find(rows, "analog", w, t) for t in taus]
    adapted = [_find(rows, "analog_adapted", w, t) for t in taus]
    tr = sorted(doc["transfer"], key=lambda t: t["decay_s"])
    nominal = _find(rows, "analog_adapted", w, cfg["nominal_tau"])
    ref = _find(rows, "window", w)["perplexity"]
    for ax, full in zip(axes, (True, False)):
        if full:
            curve(ax, taus, direct, "analog, direct mapping", "s--")
            if tr:
                ax.plot([t["decay_s"] for t in tr] + [cfg["nominal_tau"]],
                        [t["perplexity"] for t in tr] + [nominal["perplexity"]], "x:",
                        label=f"adapted at {cfg['nominal_tau']:g} s, run at tau")
            ax.set_yscale("log")
        curve(ax, taus, adapted, "analog, adapted at each tau", "^-")
        ax.axhline(ref, color="k", lw=0.8, ls=":", label="exact sliding window")
        ax.axhline(ref * (1 + AIM), color="r", lw=0.8, ls=":",
                   label=f"window + {100 * AIM:.0f} %")
        ax.axvline(w * cfg["token_period"], color="gray", lw=0.8, ls="--",
                   label="window time (W x token period)")
        ax.set_xscale("log")
        ax.set_xlabel("median retention time constant tau (s)")
        ax.set_ylabel("held-out perplexity per character")
        ax.legend(fontsize=7)
    axes[0].set_title(f"all runs, window {w}")
    axes[1].set_title("close-up: adapted at each tau")
    fig.tight_layout()
    name = f"{stem}_decay.png"
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    names.append(name)
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = StudyConfig()
    p.add_argument("--pretrain-steps", type=int, default=d.pretrain_steps)
    p.add_argument("--linear-steps", type=int, default=d.linear_steps)
    p.add_argument("--finetune-steps", type=int, default=d.finetune_steps)
    p.add_argument("--calib-steps", type=int, default=d.calib_steps)
    p.add_argument("--windows", type=int, nargs="+", default=list(d.windows))
    p.add_argument("--decay-window", type=int, default=d.decay_window)
    p.add_argument("--decays", type=float, nargs="+", default=list(d.decays))
    p.add_argument("--eval-sequences", type=int, default=d.eval_sequences)
    p.add_argument("--eval-chips", type=int, default=d.eval_chips)
    p.add_argument("--unsigned-query", action="store_true",
                   help="queries clipped to [0, 1] as in the paper (default: two-phase signed)")
    p.add_argument("--no-ablation", action="store_true",
                   help="skip the run without rounding (write DAC, pulses, ADC continuous)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="out/results_gaincell", help="cached checkpoints")
    p.add_argument("--out", default="results", help="where the results files go")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test with tiny training budgets (not the results)")
    p.add_argument("--replot", action="store_true",
                   help="only rewrite the table and plots from the existing JSON")
    args = p.parse_args()
    if args.replot:
        stem = "gaincell_attention_quick" if args.quick else "gaincell_attention"
        out = Path(args.out)
        doc = json.loads((out / f"{stem}.json").read_text())
        doc["summary"] = summary(doc)
        doc["plots"] = plots(doc, out, stem)
        write_json(out / f"{stem}.json", doc)
        atomic_write_text(out / f"{stem}.md", markdown(doc))
        log(f"rewrote {out / stem}.md and the plots from {out / stem}.json")
        return
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cfg = StudyConfig(pretrain_steps=args.pretrain_steps, linear_steps=args.linear_steps,
                      finetune_steps=args.finetune_steps,
                      calib_steps=args.calib_steps, windows=tuple(args.windows),
                      decay_window=args.decay_window, decays=tuple(args.decays),
                      eval_sequences=args.eval_sequences, eval_chips=args.eval_chips,
                      signed_query=not args.unsigned_query, ablation=not args.no_ablation,
                      seed=args.seed)
    if args.quick:
        cfg = StudyConfig(pretrain_steps=60, linear_steps=10, finetune_steps=10, calib_steps=5,
                          windows=(8, 16),
                          decay_window=16, decays=(1e-5,), eval_sequences=16, eval_chips=2,
                          signed_query=cfg.signed_query, ablation=cfg.ablation, seed=cfg.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    study = run_study(cfg, Path(args.work) / ("quick" if args.quick else "full"),
                      progress=True, log=log)
    command = "python benchmarks/results_gaincell.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    device = GainCellModel(tau=cfg.nominal_tau, token_period=cfg.token_period)
    periphery = Periphery(signed_query=cfg.signed_query)
    heads, dim = cfg.n_head, cfg.d_model // cfg.n_head
    cost = {
        "this model": cost_table(heads, dim, cfg.decay_window, cfg.n_layer, device, periphery),
        "GPT-2 size": cost_table(12, 64, 1024, 12, device, periphery),
    }
    doc = {
        "schema": RESULTS_SCHEMA,
        "command": command.strip(),
        "task": "character-level language modelling, Python standard library",
        "settings": cfg.to_dict(),
        "rows": study["rows"],
        "transfer": study["transfer"],
        "ablation": study["ablation"],
        "calibration": study["calibration"],
        "corpus": study["corpus"],
        "device_model": device.to_dict(),
        "periphery": periphery.to_dict(),
        "cost": cost,
        "constants": constants_table(),
        "threads": args.threads,
        "seconds": time.perf_counter() - started,
        "train_seconds": study["train_seconds"],
        "provenance": provenance(seed=cfg.seed, command=command.strip(),
                                 source="Python standard library (see corpus)"),
    }
    doc["summary"] = summary(doc)
    stem = "gaincell_attention_quick" if args.quick else "gaincell_attention"
    doc["plots"] = plots(doc, out, stem)
    write_json(out / f"{stem}.json", doc)
    device.save(out / ("gaincell_device_quick.json" if args.quick else "gaincell_device.json"),
                command=command.strip(), seed=cfg.seed)
    atomic_write_text(out / f"{stem}.md", markdown(doc))
    log(f"wrote {out / stem}.json, .md ({doc['seconds'] / 60:.1f} min)")
    print(markdown(doc))


if __name__ == "__main__":
    main()

"""Issue 19, "Instruments": the virtual board's accuracy and the round trip through ``pyaimc fit``.

Writes ``results/instrument_accuracy.json``, ``results/instrument_accuracy.md`` and
``results/instrument_accuracy.png``::

    python benchmarks/results_instruments.py

1. Accuracy: relative error of resistance reads (0.2 V) from 100 ohm to 10 Mohm, 4 per decade,
   on 40 boards whose front-end errors are drawn from the default spec (TIA gain 3 %, offset
   0.3 % of full scale, source 0.2 % and 1 mV, switch path 50 +- 5 ohm), 8 reads each, before
   and after the open-short-load calibration. Aim (the seed's figure): below 5 % from 1 kohm to
   1 Mohm after calibration.
2. Round trip: 256 new devices of the shipped ``example`` model x 300 cycles measured with the
   cycling protocol (400-point sweeps) on a calibrated and on an uncalibrated virtual board;
   ``pyaimc fit`` (fit_from_files) on the written .npz; 2000 devices x 300 cycles of the refitted
   model against 2000 x 300 of the generating model with the statistics of FIDELITY.md and the
   thresholds of the device-model checks (KS 0.04, ACF 0.03, xcorr 0.03, d2d 15 %, within 5 %).
   Baseline: the same devices' true per-cycle features (no instrument) fitted the same way.
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

from pyaimc.apps.instruments.calibration import accuracy_vs_resistance  # noqa: E402
from pyaimc.apps.instruments.frontend import FrontEndSpec  # noqa: E402
from pyaimc.apps.instruments.roundtrip import THRESHOLDS, round_trip  # noqa: E402
from pyaimc.device import DeviceModel  # noqa: E402
from pyaimc.io import provenance, write_json  # noqa: E402


def _plot(acc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = np.asarray(acc["resistance_ohm"])
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key, colour in (("before", "C3"), ("after", "C0")):
        ax.loglog(r, 100 * np.asarray(acc[key]["median_abs"]), "o-", color=colour,
                  label=f"{key} calibration, median")
        ax.loglog(r, 100 * np.asarray(acc[key]["max_abs"]), "--", color=colour,
                  label=f"{key} calibration, largest")
    ax.axhline(5, color="k", lw=0.8)
    ax.axvspan(1e3, 1e6, color="0.9", zorder=0, label="aim: < 5 % from 1 k to 1 M")
    ax.set_xlabel("resistance (ohm)")
    ax.set_ylabel("|relative error| (%)")
    ax.set_title(f"virtual board, {acc['n_boards']} boards x {acc['repeats']} reads")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt_rt(name: str, rt: dict) -> list[str]:
    rows = []
    for key in ("measured", "baseline"):
        if key not in rt:
            continue
        s = rt[key]
        rows.append(f"| {name}: {'instrument data' if key == 'measured' else 'true features'} "
                    f"| {max(s['ks'].values()):.4f} | {s['acf_error']:.4f} | "
                    f"{s['xcorr_error']:.4f} | "
                    f"{min(s['d2d_ratio'].values()):.3f}-{max(s['d2d_ratio'].values()):.3f} | "
                    f"{min(s['within_ratio'].values()):.3f}-"
                    f"{max(s['within_ratio'].values()):.3f} | "
                    f"{'yes' if s['passes'] else 'no'} |")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--boards", type=int, default=40)
    p.add_argument("--cells", type=int, default=256)
    p.add_argument("--cycles", type=int, default=300)
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args(argv)
    out = Path(args.out)
    t0 = time.perf_counter()
    acc = accuracy_vs_resistance(np.random.default_rng(0), n_boards=args.boards, repeats=8,
                                 spec=FrontEndSpec())
    print(f"accuracy: {time.perf_counter() - t0:.1f} s", flush=True)
    model = DeviceModel.load("example")
    rts = {}
    for name, calibrated in (("calibrated", True), ("uncalibrated", False)):
        t1 = time.perf_counter()
        rts[name] = round_trip(model, args.cells, args.cycles, np.random.default_rng(1),
                               calibrated=calibrated, baseline=calibrated, progress=True)
        rts[name]["seconds"] = time.perf_counter() - t1
        print(f"round trip ({name}): {rts[name]['seconds']:.1f} s, passes "
              f"{rts[name]['measured']['passes']}", flush=True)
    r = np.asarray(acc["resistance_ohm"])
    band = (r >= 1e3 * 0.999) & (r <= 1e6 * 1.001)
    summary = {
        "after_max_abs_1k_1M": float(np.max(np.asarray(acc["after"]["max_abs"])[band])),
        "after_max_abs_100_10M": float(np.max(acc["after"]["max_abs"])),
        "before_median_abs_1k_1M": [float(np.min(np.asarray(acc["before"]["median_abs"])[band])),
                                    float(np.max(np.asarray(acc["before"]["median_abs"])[band]))],
        "aim_met": bool(np.max(np.asarray(acc["after"]["max_abs"])[band]) < 0.05),
        "round_trip_passes": bool(rts["calibrated"]["measured"]["passes"]),
    }
    command = "python benchmarks/results_instruments.py" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:]) else "")
    doc = {"schema": "pyaimc.instrument-accuracy/1", "command": command, "summary": summary,
           "accuracy": acc, "round_trip": rts, "thresholds": THRESHOLDS,
           "frontend_spec": FrontEndSpec().to_dict(),
           "provenance": provenance(source="pyaimc model 'example' (shipped)", seed=0,
                                    command=command)}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "instrument_accuracy.json", doc)
    _plot(acc, out / "instrument_accuracy.png")
    lines = ["# Instruments: accuracy of the virtual board and the round trip", "",
             f"Regenerate: `{command}` ({time.perf_counter() - t0:.0f} s).", "",
             "## Resistance reads at 0.2 V, relative error", "",
             f"{acc['n_boards']} boards (front-end errors drawn from the default spec) x "
             f"{acc['repeats']} reads per resistance.", "",
             "| R (ohm) | before: median | before: largest | after: median | after: largest |",
             "|---:|---:|---:|---:|---:|"]
    for k, rv in enumerate(r):
        lines.append(f"| {rv:.3g} | {100 * acc['before']['median_abs'][k]:.2f} % | "
                     f"{100 * acc['before']['max_abs'][k]:.2f} % | "
                     f"{100 * acc['after']['median_abs'][k]:.3f} % | "
                     f"{100 * acc['after']['max_abs'][k]:.3f} % |")
    lines += ["", f"After calibration, largest error from 1 kohm to 1 Mohm: "
              f"{100 * summary['after_max_abs_1k_1M']:.3f} % (aim < 5 %); 100 ohm to 10 Mohm: "
              f"{100 * summary['after_max_abs_100_10M']:.3f} %.", "",
              "![accuracy](instrument_accuracy.png)", "",
              f"## Round trip: {args.cells} devices x {args.cycles} cycles of `example`, "
              "measured, refitted, against the generator", "",
              "2000 devices x cycles of each model; thresholds: KS <= 0.04, ACF error <= 0.03, "
              "xcorr error <= 0.03, d2d ratio 0.85-1.15, within ratio 0.95-1.05.", "",
              "| board: data fitted | max KS | ACF error | xcorr error | d2d ratio | "
              "within ratio | passes |", "|---|---:|---:|---:|---|---|---|"]
    lines += _fmt_rt("calibrated", rts["calibrated"]) + _fmt_rt("uncalibrated",
                                                                 rts["uncalibrated"])
    for name in ("calibrated", "uncalibrated"):
        m = rts[name]["measurement"]
        errs = ", ".join(f"{k} {100 * v['median_abs']:.2f} % (mean {100 * v['mean']:+.2f} %)"
                         for k, v in m["relative_error"].items())
        lines += ["", f"{name} board, measured vs true features of the same cycles (median "
                      f"|relative error|): {errs}; instrument time {m['board_time_s']:.0f} s "
                      f"({m['counts']['samples']} samples)."]
    (out / "instrument_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

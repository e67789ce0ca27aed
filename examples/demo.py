"""``make demo``: the pyaimc pipeline on the shipped example, stage by stage.

Stages (each prints what it wrote):
1. fit the device model to the shipped example data and write the fidelity report;
2. export it as Verilog-A (model card, per-instance tables) and as an ngspice library, and run a
   few I-V sweeps through ngspice and the Python twin (``loops.png``);
3. fit the crossbar transfer model of a 32 x 32 tile from Monte-Carlo circuit simulations
   (transfer curves, error maps, error vs size and wire resistance);
4. export the hardware noise model with that transfer model, and train an MLP with AnalogLinear
   layers on it (software vs programmed-hardware accuracy);
5. train a small ternary S4D on MNIST-1D without and with that noise model, deploy both on the
   programmed tiles (recurrent step mode) and check one recurrent step against ngspice;
6. relax programmed conductances with the shipped relaxation model (``pyaimc relax``) and read
   an analog layer at 1 s to 1 year after programming, with and without drift compensation;
7. program 1T1R cells pulse by pulse with the shipped RADAR pulse model: ISPP, FPPV, RADAR and
   RADAR with the network programmer's first shot, to the 2-bits-per-cell windows of the
   measured evaluations; replay a pulse table through the model;
8. map simulated SARS-CoV-2 and background nanopore reads with software LSH and with
   device-noise hashing + a ReRAM TCAM (needs ``../shared/data/nanopore``);
9. measure a virtual chip through a virtual board (gain, offset, series-resistance and ADC
   errors): calibration, resistance accuracy, the cycling protocol written as ``pyaimc fit``
   reads it and fitted, a RADAR write-verify through the board.
10. put a tiny character GPT's attention on gain-cell memories (sliding window, adaptation) and
   compare perplexity, generation and cost with exact and digital sliding-window attention.
11. train the spiking sequence-learning network (NEST) on two second-order sequences with ideal
    synapses and with ReRAM synapses of the RADAR pulse model.
12. train a small CNN and a row-by-row GRU on the digits, convert them to analog layers on the
    noise model of stage 4 and deploy them as trained and after hardware-aware epochs.

``--stages 4 5`` runs a subset; a later stage reads what the earlier ones wrote in ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "calibration_data" / "example"

# What a stage writes for the later ones, relative to --out.
MODEL = Path("model.json")  # stage 1
TRANSFER = Path("transfer") / "transfer.json"  # stage 3
NOISE = Path("noise") / "noise.json"  # stage 4


def _stage(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def _done(t0: float) -> None:
    print(f"    ({time.perf_counter() - t0:.1f} s)", flush=True)


def stage_fit(out: Path) -> None:
    import numpy as np

    from pyaimc.device.fitting import fit_from_files, fit_summary, report_summary
    from pyaimc.device.report import write_report

    t0 = _stage("1. fit the device model to the example data, with the fidelity report")
    rng = np.random.default_rng(0)
    model, data, sweeps = fit_from_files(EXAMPLE / "features.npz", sweeps=EXAMPLE / "sweeps.npz",
                                         seed=0, rng=rng)
    model.save(out / MODEL)
    print("\n".join(fit_summary(model, str(EXAMPLE / "features.npz"))))
    metrics = write_report(model, data, out / "fidelity", rng, seed=0, progress=True,
                           sweeps=sweeps)
    print("\n".join(report_summary(metrics)))
    print(f"    wrote {out / MODEL} and the fidelity report in {out / 'fidelity'}")
    _done(t0)


def stage_compact(out: Path, model: Path) -> None:
    from examples.demo_compact import demo_compact

    t0 = _stage("2. Verilog-A (run in VACASK) and ngspice versions of the model; sweeps against "
                "the twin")
    m = demo_compact(out / "compact", model)
    print(f"    wrote {out / 'compact'}/veriloga (module, OpenVAF build, model cards, cycle "
          f"tables), {out / 'compact'}/ngspice/pyaimc_reram.lib, loops.png")
    if m["vacask"] is not None:
        print(f"    largest twin-VACASK (.va) loop difference: "
              f"{100 * m['vacask']['max_loop_difference_of_peak']:.2f} % of the peak current "
              f"(VACASK {m['vacask']['seconds']:.2f} s)")
    else:
        print("    VACASK not installed (pip install 'pyaimc[vacask]'): the .va was not run")
    print(f"    largest twin-ngspice loop difference: "
          f"{100 * m['max_loop_difference_of_peak']:.2f} % of the peak current "
          f"(ngspice {m['ngspice_seconds']:.1f} s)")
    _done(t0)


def stage_transfer(out: Path, model: Path) -> None:
    from examples.demo_transfer import demo_transfer

    t0 = _stage("3. crossbar transfer model of a 32 x 32 tile from circuit simulations")
    m = demo_transfer((out / TRANSFER).parent, model, progress=True)
    fit = m.get("fit", m)
    model_err = fit.get("heldout_rel_rms_error")
    ideal_err = fit.get("heldout_ideal_rel_rms_error")
    if model_err is not None and ideal_err is not None:
        print(f"    held-out error: fitted model {100 * model_err:.2f} %, ideal product "
              f"{100 * ideal_err:.2f} % (relative RMS)")
    print(f"    wrote {out / TRANSFER} and figures")
    _done(t0)


def stage_noise(out: Path, transfer: Path) -> None:
    from examples.demo_noise import run_demo

    t0 = _stage("4. hardware noise model and AnalogLinear training")
    run_demo((out / NOISE).parent, transfer=str(transfer))
    print(f"    wrote {out / NOISE}, noise_aihwkit.json, noise_demo.json")
    _done(t0)


def stage_s4d(out: Path, noise: Path) -> None:
    from examples.demo_s4d import demo_s4d

    t0 = _stage("5. S4D on MNIST-1D: hardware-aware training and crossbar deployment")
    demo_s4d(out / "s4d", noise)
    _done(t0)


def stage_relax(out: Path) -> None:
    from examples.demo_relax import demo_relax

    t0 = _stage("6. conductance relaxation after programming: pyaimc relax, a layer read later")
    demo_relax(out / "relax")
    print(f"    wrote {out / 'relax'}/relaxed.npy, relax.png, demo_relax.json")
    _done(t0)


def stage_nanopore(out: Path) -> None:
    from examples.demo_nanopore import demo_nanopore

    t0 = _stage("8. raw nanopore reads mapped with device-noise hashing and a ReRAM CAM")
    demo_nanopore(out / "nanopore")
    _done(t0)


def stage_gaincell(out: Path) -> None:
    from examples.demo_gaincell import demo_gaincell

    t0 = _stage("10. gain-cell sliding-window attention on a tiny character GPT")
    demo_gaincell(out / "gaincell")
    print(f"    wrote {out / 'gaincell'}/gaincell_device.json, demo_gaincell.json")
    _done(t0)


def _needs(path: Path, stage: str) -> Path:
    if not path.exists():
        raise SystemExit(f"{path} is missing: run stage {stage!r} first (or all stages)")
    return path


# The stages in order: (name, what it shows, function of the output folder). A stage reads what
# the earlier ones wrote; a new stage is a function and one line here.
def stage_programming(out: Path) -> None:
    from examples.demo_programming import demo_programming

    t0 = _stage("7. write-verify pulse by pulse on the shipped RADAR pulse model")
    stats = demo_programming(out / "programming")
    for name, levels in stats.items():
        print(f"    {name:16s} pulses per level " + ", ".join(
            f"{lv['pulses_mean']:.1f}" for lv in levels) + "; success " + ", ".join(
            f"{lv['success']:.1%}" for lv in levels))
    print(f"    wrote {out / 'programming'}/programming.json, programming.png, replay.csv")
    _done(t0)


def stage_instruments(out: Path) -> None:
    from examples.demo_instruments import demo_instruments

    t0 = _stage("9. instruments: a virtual board measures a virtual chip; pyaimc fit on its data")
    s = demo_instruments(out / "instruments")
    acc = s["accuracy"]
    print("    resistance error before -> after calibration: " + ", ".join(
        f"{r:.0e} ohm {100 * b:.1f} % -> {100 * a:.2f} %" for r, b, a in
        zip(acc["resistance_ohm"], acc["before_median_abs"], acc["after_max_abs"])))
    print("    cycling medians measured: " + ", ".join(f"{k} {v:.4g}" for k, v in
                                                     s["cycling"].items())
          + f" ({s['board_time_s']:.0f} s of instrument time)")
    print("    refitted model vs generator medians: " + ", ".join(
        f"{k} {s['refit_medians'][k]:.4g}/{s['generator_medians'][k]:.4g}"
        for k in s["refit_medians"]))
    print(f"    RADAR write-verify through the board: success {s['radar_success']:.0%}, "
          f"{s['radar_pulses_mean']:.1f} pulses per write, {s['radar_logged_pulses']} pulses "
          f"logged")
    print(f"    wrote {out / 'instruments'}/cycles.npz, model.json, writes.csv, loops.png, "
          f"instruments.json")
    _done(t0)


def stage_snn(out: Path) -> None:
    from examples.demo_snn import EPISODES, demo_snn

    t0 = _stage("11. spiking sequence learning in NEST with ideal and ReRAM synapses")
    for name, r in demo_snn(out / "snn").items():
        print(f"    {name:30s} after {EPISODES} episodes: prediction error {r['prediction_error']:.2f}"
              f" (false positive {r['false_positive']:.2f}, false negative "
              f"{r['false_negative']:.2f}), {r['active_per_element']:.0f} neurons active per "
              f"element, {r['pulses']:,} pulses")
    print(f"    wrote {out / 'snn'}/snn.json, snn.png")
    _done(t0)


def stage_layers(out: Path, noise: Path) -> None:
    from examples.demo_layers import demo_layers

    t0 = _stage("12. analog convolutions and recurrent layers: a CNN and a GRU on the digits")
    doc = demo_layers(out / "layers", noise)
    for name, r in doc["rows"].items():
        print(f"    {name} ({', '.join(r['analog_layers'])}): software {r['software_acc']:.1%}, "
              f"deployed as trained {sum(r['deployed_acc']) / len(r['deployed_acc']):.1%}, after "
              f"{r['hw_aware_epochs']} hardware-aware epochs {sum(r['hw_aware_deployed_acc']) / len(r['hw_aware_deployed_acc']):.1%}"
              f" ({doc['draws']} programmed chips)")
    print(f"    wrote {out / 'layers'}/layers.json")
    _done(t0)


STAGES = [
    ("fit", "device model", stage_fit),
    ("compact", "Verilog-A in VACASK, and ngspice",
     lambda out: stage_compact(out, _needs(out / MODEL, "fit"))),
    ("transfer", "crossbar transfer model",
     lambda out: stage_transfer(out, _needs(out / MODEL, "fit"))),
    ("noise", "noise model and AnalogLinear",
     lambda out: stage_noise(out, _needs(out / TRANSFER, "transfer"))),
    ("s4d", "S4D training and deployment",
     lambda out: stage_s4d(out, _needs(out / NOISE, "noise"))),
    ("relax", "relaxation after programming", stage_relax),
    ("programming", "pulse-level write-verify (RADAR pulse model)",
     lambda out: stage_programming(out)),
    ("nanopore", "nanopore reads in a ReRAM CAM", stage_nanopore),
    ("instruments", "measurement protocols on a virtual board", stage_instruments),
    ("gaincell", "gain-cell attention", stage_gaincell),
    ("snn", "sequence learning in NEST with ReRAM synapses", stage_snn),
    ("layers", "analog convolutions and recurrent layers",
     lambda out: stage_layers(out, _needs(out / NOISE, "noise"))),
]


def _stage_names(items: list[str]) -> list[str]:
    """Stage names from names or 1-based numbers, in the order of :data:`STAGES`."""
    names = [name for name, _, _ in STAGES]
    picked = set()
    for item in items:
        if item.isdigit() and 1 <= int(item) <= len(names):
            picked.add(names[int(item) - 1])
        elif item in names:
            picked.add(item)
        else:
            raise SystemExit(f"unknown stage {item!r}: use 1..{len(names)} or one of "
                             f"{', '.join(names)}")
    return [n for n in names if n in picked]


def main(argv=None) -> int:
    stage_help = "; ".join(f"{k + 1} {name} ({what})" for k, (name, what, _) in enumerate(STAGES))
    p = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--stages", nargs="+", metavar="STAGE",
                   help=f"stages to run, by number or name (default all): {stage_help}")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = _stage_names(args.stages) if args.stages else [name for name, _, _ in STAGES]
    for name, _, function in STAGES:
        if name in run:
            function(out)
    print(f"\nall outputs are in {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

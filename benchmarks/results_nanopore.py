"""Raw nanopore signal mapping with device-noise hashing and a ReRAM CAM (issue 17).

One command regenerates ``results/nanopore_cam.json`` (rows: one per method, read length and
device variability, with F1, precision and recall on the test reads), ``results/nanopore_cam.md``
(the tables) and the plots beside them::

    python benchmarks/results_nanopore.py

What it does:

1. Simulates SARS-CoV-2 reads (positives) and background reads (random sequence: uniform and a
   Markov-5 chain with the virus's composition) from the R9.4 pore model in
   ``../shared/data/nanopore``; a tuning set and a test set with different seeds.
2. Maps them with every method of :mod:`pyaimc.apps.nanopore.experiment` (software LSH, device
   LSH, device LSH + ReRAM TCAM, a seed-index raw-signal mapper, minimap2 on simulated
   basecalls) at each read length (signal samples used), the device methods at each device
   variability; vote thresholds are tuned on the tuning set, figures reported on the test set.
3. A small metagenomic classification (the virus and synthetic genomes).
4. A small TCAM array through the circuit engines (fast solver, and ngspice when installed)
   against the behavioural match-line model; the IR drop's effect on hash bits.
5. Speed and energy per seed of the chip (documented constants) vs the measured software search.
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

from pyaimc.apps.nanopore.cam import TCAM, on_resistance, search_candidates  # noqa: E402
from pyaimc.apps.nanopore.energy import estimate  # noqa: E402
from pyaimc.apps.nanopore.experiment import Config, Run, metagenomic, paired_gap  # noqa: E402
from pyaimc.apps.nanopore.hashing import pack  # noqa: E402
from pyaimc.apps.nanopore.pore import PoreModel, read_fasta  # noqa: E402
from pyaimc.device import DeviceModel  # noqa: E402
from pyaimc.io import atomic_write_text, provenance, write_json  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "nanopore"
MODEL = "radar_cycling-4-24-20"  # shipped with pyaimc (fitted to the RADAR cycling data)
PORE = "r9.4_450bps_6mer_template_median68pA.model"
VIRUS = "nCoV-2019.reference.fasta"


def circuit_check(run: Run, rng: np.random.Generator, words: int = 16, queries: int = 4,
                  r_wires=(0.0, 0.1, 1.0)) -> dict:
    """Match-line currents of a small TCAM of real index words: behaviour vs circuit engines."""
    from pyaimc.circuit import AccessTransistor
    from pyaimc.spice.ngspice import find_ngspice

    cfg = run.cfg
    codes = run.device_codes(run.ref.seeds[:words], 1.0, rng)
    bits = np.unpackbits(codes, axis=1, count=cfg.n_bits).astype(bool)
    acc = AccessTransistor()
    cam = TCAM.build(bits, run.cam_stats, cfg.hamming_threshold, rng, variability=1.0,
                     r_on=on_resistance(acc), bandwidth=0.0)
    q = bits[rng.integers(0, words, queries)].copy()
    for i in range(queries):  # queries 0..queries-1 bits away from a stored word
        q[i, rng.choice(cfg.n_bits, size=3 * i, replace=False)] ^= True
    beh = cam.ml_currents(q)
    dist = (q[:, None, :] != bits[None, :, :]).sum(axis=2)
    out = {"words": words, "bits": cfg.n_bits, "queries": queries,
           "access": "level-1 NMOS (pyaimc AccessTransistor defaults), v_on 1.8 V"}
    for engine in ("fast", "ngspice"):
        if engine == "ngspice":
            try:
                find_ngspice()
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                out["ngspice"] = f"skipped: {exc}"
                continue
        for rw in r_wires:
            t = time.perf_counter()
            circ = cam.circuit_ml_currents(q, r_wire=rw, engine=engine, access=acc)
            rel = np.abs(circ - beh) / beh
            near = np.abs(dist - cfg.hamming_threshold) <= 3  # words within 3 bits of T
            out[f"{engine}_r{rw:g}"] = {
                "max_rel_diff": float(rel.max()),
                "max_rel_diff_near_threshold": float(rel[near].max()) if near.any() else None,
                "seconds": time.perf_counter() - t,
                "decisions_agree": bool(np.all(cam.match(circ) == cam.match(beh)))}
    return out


def ir_drop_bits(run: Run, n: int = 500, r_wire: float = 1.0) -> dict:
    """Hash bits of the hashing crossbar with wires vs without (noise-free)."""
    h = run.hasher
    seeds = run.ref.seeds[:n]
    ideal = h.project(seeds) > 0
    keep = h.r_wire
    h.r_wire = r_wire
    try:
        t = time.perf_counter()
        wired = h.project(seeds) > 0
        sec = time.perf_counter() - t
    finally:
        h.r_wire = keep
    return {"seeds": n, "r_wire_ohm": r_wire, "bit_flip_rate": float(np.mean(ideal != wired)),
            "seconds": sec}


def software_time(run: Run, samples: int = 2000) -> float:
    """CPU seconds per seed query of the faiss Hamming search (software LSH)."""
    rs = run.seeds("test", samples)
    rc = pack(run.gauss.hash(run.ref.seeds))
    qc = pack(run.gauss.hash(rs.seeds))
    t = time.process_time()
    search_candidates(rc, qc, run.cfg.hamming_threshold)
    return (time.process_time() - t) / len(qc)


def markdown(doc: dict) -> str:
    rows = doc["rows"]
    lines = ["# Raw nanopore signal mapping: device-noise LSH and ReRAM CAM", "",
             f"Command: `{doc['command']}`", "",
             "Virus detection (SARS-CoV-2 reads vs random-sequence background, simulated from the "
             "R9.4 pore model). Test-set figures; the vote threshold is tuned on a separate "
             "tuning set (its F1 in the last column).", "",
             "| method | read length (samples) | variability | F1 | F1 95 % interval | precision | "
             "recall | min votes | F1 (tuning set) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v = "-" if r["variability"] is None else f"{r['variability']:g}"
        lo, hi = r["f1_ci95"]
        lines.append(f"| {r['method']} | {r['read_length']} | {v} | {r['f1']:.3f} | "
                     f"[{lo:.3f}, {hi:.3f}] | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r.get('min_votes', '-')} | {r['f1_tune']:.3f} |")
    lines += ["", "## Aim: device LSH + CAM within 3 F1 points of software LSH (variability 1)",
              "", "| read length | software_lsh | device_lsh | device_lsh_cam | gap (points) | "
              "gap 95 % interval (paired bootstrap) |", "|---|---|---|---|---|---|"]
    for a in doc["aim"]:
        lo, hi = a["gap_ci95"]
        lines.append(f"| {a['read_length']} | {a['software_lsh']:.3f} | {a['device_lsh']:.3f} | "
                     f"{a['device_lsh_cam']:.3f} | {a['gap_points']:+.1f} | "
                     f"[{lo:+.1f}, {hi:+.1f}] |")
    mg = doc["metagenomic"]
    lines += ["", f"## Metagenomic classification ({', '.join(mg['genomes'])}; "
              f"{mg['read_length']} samples)", "",
              "| method | accuracy | macro precision | macro recall | macro F1 | F1 (tuning) |",
              "|---|---|---|---|---|---|"]
    for m in ("software_lsh", "device_lsh", "device_lsh_cam"):
        if m in mg:
            r = mg[m]
            lines.append(f"| {m} | {r['accuracy']:.3f} | {r['precision']:.3f} | "
                         f"{r['recall']:.3f} | {r['f1']:.3f} | {r['f1_tune']:.3f} |")
    e = doc["energy"]
    lines += ["", "## Speed and energy per seed (estimate; constants in docs/nanopore.md)", "",
              f"- chip: {e['time_per_seed_s'] * 1e9:.1f} ns, {e['energy_per_seed_j'] * 1e12:.1f} pJ "
              f"(hash {e['hash_energy_j'] * 1e12:.2f} pJ, search {e['search_energy_j'] * 1e12:.1f} pJ, "
              f"{e['arrays']} arrays of {e['constants']['words_per_array']} words)",
              f"- software (faiss Hamming range search, measured CPU time on this machine): "
              f"{e['software_time_s'] * 1e6:.1f} us, {e['software_energy_j'] * 1e6:.1f} uJ at "
              f"{e['constants']['p_cpu']:g} W",
              f"- ratio: {e['speedup']:.0f}x faster, {e['energy_ratio']:.0f}x less energy", ""]
    c = doc["circuit"]
    lines += ["## TCAM match lines: behaviour vs circuit engines", "",
              f"{c['words']} words x {c['bits']} bits, {c['queries']} queries; {c['access']}.", ""]
    for k, v in c.items():
        if isinstance(v, dict):
            near = v["max_rel_diff_near_threshold"]
            near = "-" if near is None else f"{near:.2e}"
            lines.append(f"- {k}: max relative difference {v['max_rel_diff']:.2e} (words within "
                         f"3 bits of the threshold: {near}), decisions agree: "
                         f"{v['decisions_agree']}")
        elif k == "ngspice":
            lines.append(f"- ngspice: {v}")
    ir = doc["ir_drop"]
    lines += ["", f"Hashing crossbar with {ir['r_wire_ohm']:g} ohm wires: "
              f"{100 * ir['bit_flip_rate']:.2f} % of hash bits differ from the wire-free product "
              f"({ir['seeds']} reference seeds).", ""]
    return "\n".join(lines)


def plots(doc: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    files = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in doc["config"]["methods"]:
        sel = [r for r in rows if r["method"] == m and r["variability"] in (None, 1.0)]
        if sel:
            ax.plot([r["read_length"] for r in sel], [r["f1"] for r in sel], "o-", label=m)
    ax.set_xscale("log")
    ax.set_xlabel("signal samples used per read")
    ax.set_ylabel("F1 (test set)")
    ax.set_title("Virus detection vs read length (device variability 1)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = out / "nanopore_cam_f1_length.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    files.append(p.name)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, style in (("device_lsh", "--"), ("device_lsh_cam", "-")):
        for L in doc["config"]["read_lengths"]:
            sel = [r for r in rows if r["method"] == m and r["read_length"] == L]
            ax.plot([r["variability"] for r in sel], [r["f1"] for r in sel], "o" + style,
                    label=f"{m}, {L} samples")
    for L in doc["config"]["read_lengths"]:
        sw = [r for r in rows if r["method"] == "software_lsh" and r["read_length"] == L]
        if sw:
            ax.axhline(sw[0]["f1"], color="gray", lw=0.8, ls=":")
    ax.set_xlabel("device variability (x fitted spread, log space)")
    ax.set_ylabel("F1 (test set)")
    ax.set_title("Virus detection vs device variability (dotted: software LSH)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = out / "nanopore_cam_f1_variability.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    files.append(p.name)
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "results"), help="output folder")
    p.add_argument("--data", default=str(DATA), help="folder with the pore model and genome")
    p.add_argument("--device-model", default=MODEL,
                   help="fitted device model: a JSON file or a shipped model name")
    p.add_argument("--reads", type=int, default=100,
                   help="virus and background reads per set (tuning and test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="one read length, two variabilities")
    args = p.parse_args(argv)
    data = Path(args.data)
    if not (data / PORE).exists():
        raise SystemExit(f"{data / PORE}: not found (the shared data folder is outside the "
                         f"repository; give --data)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/results_nanopore.py" + (
        " " + shlex.join(sys.argv[1:] if argv is None else argv)
        if (sys.argv[1:] if argv is None else argv) else "")
    cfg = Config(n_virus=args.reads, n_background=args.reads, seed=args.seed)
    if args.quick:
        cfg.read_lengths, cfg.variabilities = (2000,), (0.5, 1.0)
        cfg.metagenome_reads = 20
    pore = PoreModel.load(data / PORE)
    virus = read_fasta(data / VIRUS)
    model = DeviceModel.load(args.device_model)
    t0 = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)  # noqa: E731
    run = Run(cfg, pore, virus, model, progress=log)
    log("reads simulated, hashing crossbar and CAM cells programmed")
    rows = run.rows()

    aim = []
    for L in cfg.read_lengths:
        pick = {r["method"]: r["f1"] for r in rows
                if r["read_length"] == L and r["variability"] in (None, 1.0)}
        if {"software_lsh", "device_lsh", "device_lsh_cam"} <= set(pick):
            a = {"read_length": L, "software_lsh": pick["software_lsh"],
                 "device_lsh": pick["device_lsh"], "device_lsh_cam": pick["device_lsh_cam"]}
            # paired on the same test reads: device LSH + CAM minus software LSH
            a.update(paired_gap(run.outcomes[("software_lsh", L, None)],
                                run.outcomes[("device_lsh_cam", L, 1.0)], cfg.seed))
            a["within_3_points"] = bool(a["gap_points"] >= -3.0)
            aim.append(a)

    # metagenomic classification at the middle read length, variability 1
    L = cfg.read_lengths[len(cfg.read_lengths) // 2]
    mg_rng = np.random.default_rng([cfg.seed, 99])
    hash_rng = np.random.default_rng([cfg.seed, 98])

    def dev_hash(seeds):
        return run.device_codes(seeds, 1.0, hash_rng)

    def cam_search(rc):
        bits = np.unpackbits(rc, axis=1, count=cfg.n_bits).astype(bool)
        tcam = TCAM.build(bits, run.cam_stats, cfg.hamming_threshold, hash_rng,
                          bandwidth=cfg.bandwidth)
        radius = tcam.candidate_radius(hash_rng)

        def search(qc):
            q, w, _ = search_candidates(rc, qc, radius)
            hit = tcam.match(tcam.pair_currents(qc, q, w, hash_rng))
            return q[hit], w[hit]
        return search

    mg = metagenomic(cfg, pore, {"sars_cov_2": next(iter(virus.values()))},
                     {"software_lsh": lambda s: pack(run.gauss.hash(s)),
                      "device_lsh": dev_hash, "device_lsh_cam": dev_hash},
                     L, mg_rng, tcam_of={"device_lsh_cam": cam_search})
    log("metagenomic: " + ", ".join(f"{m} F1 {mg[m]['f1']:.3f}" for m in
                                     ("software_lsh", "device_lsh", "device_lsh_cam")))

    circ = circuit_check(run, np.random.default_rng([cfg.seed, 5]))
    log(f"circuit check: {circ}")
    ir = ir_drop_bits(run)
    log(f"IR drop on hash bits: {ir}")

    g = run.hasher.conductances
    v_rms = float(np.sqrt(np.mean(np.clip(run.ref.seeds * run.hasher.v_scale,
                                          -run.hasher.v_max, run.hasher.v_max) ** 2)))
    energy = estimate(len(run.ref.seeds), cfg.n_bits, cfg.k, float(g.mean()), v_rms,
                      software_time(run))
    log(f"energy: {energy['energy_per_seed_j']:.3g} J/seed, speedup {energy['speedup']:.0f}x, "
        f"energy ratio {energy['energy_ratio']:.0f}x")

    hs = run.hasher.matrix
    doc = {
        "schema": "pyaimc.results/1",
        "name": "nanopore_cam",
        "command": command,
        "rows": rows,
        "aim": aim,
        "metagenomic": mg,
        "circuit": circ,
        "ir_drop": ir,
        "energy": energy,
        "hashing_matrix": {
            "device_model": str(Path(args.device_model).name), "scheme": cfg.scheme,
            "mean_conductance_s": float(g.mean()),
            "relative_spread": float(g.std() / g.mean()),
            "difference_skewness": float(np.mean(((hs - hs.mean()) / hs.std()) ** 3)),
            "difference_excess_kurtosis": float(np.mean(((hs - hs.mean()) / hs.std()) ** 4) - 3)},
        "cam_cells": run.cam_stats.moments(1.0),
        "config": run.config_dict(),
        "seconds": time.perf_counter() - t0,
        "provenance": provenance(source=str(data), seed=cfg.seed, command=command,
                                 device_model=str(args.device_model),
                                 note="reads simulated from the pore model; background reads "
                                      "from random sequence (no other genomes offline)"),
    }
    doc["plots"] = plots(doc, out)
    write_json(out / "nanopore_cam.json", doc)
    atomic_write_text(out / "nanopore_cam.md", markdown(doc))
    log(f"wrote {out / 'nanopore_cam.json'}, .md and {', '.join(doc['plots'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

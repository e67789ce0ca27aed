"""Demo stage: raw nanopore reads mapped with device-noise hashing and a ReRAM TCAM.

Simulates SARS-CoV-2 and random-background reads from the R9.4 pore model, writes them to a
POD5 file and reads them back (when ``pod5`` is installed), programs a hashing crossbar and the
CAM cells of the RADAR-fitted device model, maps the reads with software LSH and with device
LSH + TCAM, and checks a few match lines of the CAM against the fast circuit solver. About a
minute on two cores; needs ``../shared/data/nanopore`` (skipped with a message otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nanopore"


def demo_nanopore(out: Path, data: Path = DATA, reads: int = 25) -> dict | None:
    """Run the demo into ``out``; returns its figures (None when the data is missing)."""
    from pyaimc.apps.nanopore.cam import TCAM, on_resistance
    from pyaimc.apps.nanopore.experiment import Config, Run
    from pyaimc.apps.nanopore.pore import PoreModel, read_fasta
    from pyaimc.circuit import AccessTransistor
    from pyaimc.device import DeviceModel

    pore_file = data / "r9.4_450bps_6mer_template_median68pA.model"
    if not pore_file.exists():
        print(f"    skipped: {pore_file} not found (../shared/data is outside the repository)")
        return None
    out.mkdir(parents=True, exist_ok=True)
    pore = PoreModel.load(pore_file)
    virus = read_fasta(data / "nCoV-2019.reference.fasta")
    model = DeviceModel.load("radar_cycling-4-24-20")
    cfg = Config(n_virus=reads, n_background=reads, read_lengths=(2000,), variabilities=(1.0,),
                 methods=("software_lsh", "device_lsh_cam"), cam_pool=5000)
    run = Run(cfg, pore, virus, model)
    figures = {}
    try:
        from pyaimc.apps.nanopore.files import read_reads, write_pod5

        path = write_pod5(out / "reads.pod5", run.sets["test"])
        back = read_reads(path)
        same = all(np.array_equal(a.raw, b.raw) for a, b in zip(run.sets["test"], back))
        print(f"    wrote {len(back)} simulated reads to {path} and read them back "
              f"({'identical' if same else 'DIFFERENT'})")
        figures["pod5_round_trip"] = same
    except ImportError as exc:
        print(f"    POD5 round trip skipped: {exc}")
    for row in run.rows():
        figures[row["method"]] = {k: row[k] for k in ("f1", "precision", "recall")}
        print(f"    {row['method']:>15}: F1 {row['f1']:.3f} (precision {row['precision']:.3f}, "
              f"recall {row['recall']:.3f}) on {2 * reads} test reads of 2000 samples")
    # a few match lines of the CAM, behaviour vs the fast circuit solver
    rng = np.random.default_rng(1)
    codes = run.device_codes(run.ref.seeds[:8], 1.0, rng)
    bits = np.unpackbits(codes, axis=1, count=cfg.n_bits).astype(bool)
    acc = AccessTransistor()
    cam = TCAM.build(bits, run.cam_stats, cfg.hamming_threshold, rng, r_on=on_resistance(acc),
                     bandwidth=0.0)
    q = bits[:2]
    beh = cam.ml_currents(q)
    circ = cam.circuit_ml_currents(q, engine="fast", access=acc)
    figures["cam_circuit_max_rel_diff"] = float(np.max(np.abs(circ - beh) / beh))
    print(f"    TCAM 8 words x {cfg.n_bits} bits, 1T1R cells: behavioural match lines within "
          f"{100 * figures['cam_circuit_max_rel_diff']:.2f} % of the circuit solver")
    (out / "nanopore_demo.json").write_text(json.dumps(figures, indent=1) + "\n")
    return figures

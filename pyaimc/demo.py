"""``make demo``: the pyaimc pipeline on the shipped example, stage by stage.

Stages (each prints what it wrote):
1. fit the device model to the shipped example data and write the fidelity report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pyaimc.cli import main as pyaimc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "calibration_data" / "example"


def _stage(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def _done(t0: float) -> None:
    print(f"    ({time.perf_counter() - t0:.1f} s)", flush=True)


def stage_fit(out: Path) -> Path:
    t0 = _stage("1. fit the device model to the example data, with the fidelity report")
    model = out / "model.json"
    rc = pyaimc(["fit", str(EXAMPLE / "features.npz"), "--sweeps", str(EXAMPLE / "sweeps.npz"),
                 "-o", str(model), "--report", str(out / "fidelity"), "--seed", "0"])
    if rc:
        raise SystemExit(rc)
    _done(t0)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyaimc.demo", description=__doc__)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stage_fit(out)
    print(f"\nall outputs are in {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

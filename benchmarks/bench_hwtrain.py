"""Cost of hardware-aware training and of deployment for the MNIST-1D S4D models.

Prints (1) the forward + backward time of one mini-batch (64 sequences of length 40) of the
``fp32``-sized model in software, hardware-aware without and with the transfer model, and
(2) the time to run sequences in recurrent step mode on the deployment backend, without and
with the transfer model. The variants take turns, the median of ``--repeats`` is reported.

    python benchmarks/bench_hwtrain.py [--threads 1] [--sequences 100] [--repeats 5]

It builds its noise models with the shipped example device (64 x 64 tiles, 1 ohm wires for
the transfer model), a few seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.cli import main as pyaimc  # noqa: E402
from pyaimc.s4d.classifier import build_model  # noqa: E402
from pyaimc.experiments.config import preset  # noqa: E402
from pyaimc.experiments.datasets import load_data  # noqa: E402
from pyaimc.experiments.deploy import AnalogBackend  # noqa: E402
from pyaimc.s4d.hardware import hardware_model  # noqa: E402
from pyaimc.s4d.step import RecurrentClassifier  # noqa: E402
from pyaimc.noise import NoiseModel  # noqa: E402


def noise_models(work: Path) -> dict[str, NoiseModel]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return _noise_models(work)


def _noise_models(work: Path) -> dict[str, NoiseModel]:
    device = str(ROOT / "calibration_data" / "models" / "example.json")
    quiet = ["--seed", "0"]
    assert pyaimc(["crossbar", "transfer", "--device", device, "--tile", "64x64", "--r-wire",
                   "1", "--workers", "1", "-o", str(work / "t.json")] + quiet) == 0
    assert pyaimc(["export", "noise", "--device", device, "--tile", "64x64", "-o",
                   str(work / "plain.json")] + quiet) == 0
    assert pyaimc(["export", "noise", "--device", device, "--transfer", str(work / "t.json"),
                   "-o", str(work / "wires.json")] + quiet) == 0
    return {"no wires": NoiseModel.load(work / "plain.json"),
            "1 ohm wires": NoiseModel.load(work / "wires.json")}


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: first touches of memory, lazy set-up
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sequences", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset("ternary")
    data = load_data(cfg.data)
    with tempfile.TemporaryDirectory() as tmp:
        models = noise_models(Path(tmp))
    x, y = data.x_train[:64], data.y_train[:64]
    variants = {"software": build_model(cfg, 1, 10)}
    for label, nm in models.items():
        variants[f"hardware-aware, {label}"] = hardware_model(cfg, 1, 10, nm)

    def step(model):
        def run():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
        return run

    print(f"ternary preset (64 channels, 64 states, 4 blocks), {args.threads} thread(s)")
    print("training: one mini-batch of 64 x 40, forward + backward")
    base = None
    for label, model in variants.items():
        model.train()
        t = median_time(step(model), args.repeats)
        base = base or t
        print(f"  {label:32s} {1e3 * t:8.1f} ms  ({t / base:.2f} x software)")
    model = variants["software"].eval()
    xs = data.x_test[:args.sequences]
    print(f"deployment: {args.sequences} test sequences in recurrent step mode")
    for label, nm in models.items():
        rc = RecurrentClassifier(model, AnalogBackend(nm, rng=np.random.default_rng(0)))
        t = median_time(lambda: rc(xs), max(1, args.repeats // 2))
        print(f"  {label:32s} {t:8.2f} s  ({1000 * t / args.sequences:.1f} s per 1000)")


if __name__ == "__main__":
    main()

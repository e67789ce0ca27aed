"""Demo: export the shipped example device's noise model and train an analog MLP with it.

``python -m examples.demo_noise --out DIR [--transfer TRANSFER.json] [--epochs 10] [--seed 0]``

1. ``pyaimc export noise`` of ``calibration_data/models/example.json`` (64 x 64 tiles; ideal
   crossbar unless a transfer document is given) -> ``DIR/noise.json`` and
   ``DIR/noise_aihwkit.json``.
2. A 64-32-10 MLP on scikit-learn's digits (8 x 8 images): trained in software, and trained
   hardware-aware (every ``nn.Linear`` an ``AnalogLinear``) once with the write-verify and once
   with the one-shot programming statistics, all from the same initial weights.
3. Test accuracy of the software model, and for each write scheme of the software weights and
   of the hardware-aware weights programmed onto the hardware (one draw of every conductance,
   then read with read noise; mean and range over several draws). Written to
   ``DIR/noise_demo.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_MODEL = ROOT / "calibration_data" / "models" / "example.json"
METHODS = ("write_verify", "one_shot")


def _digits(seed: int):
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6  # pixels at 0 everywhere stay 0

    def t(a, dtype=torch.float32):
        return torch.tensor(a, dtype=dtype)

    return (t((x_tr - mean) / std), t(y_tr, torch.long), t((x_te - mean) / std),
            t(y_te, torch.long))


def _train(model, x, y, epochs: int, seed: int, lr: float = 5e-3, batch: int = 64) -> list:
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    return losses


def _accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def run_demo(out_dir, transfer: str | None = None, epochs: int = 10, seed: int = 0,
             n_programs: int = 5, export_options: dict | None = None) -> dict:
    """Run the demo; returns (and writes) the figures.

    Parameters
    ----------
    out_dir : path
    transfer : path, optional
        A ``pyaimc.transfer/1`` document; the noise model takes its tile (default: an ideal
        64 x 64 tile).
    epochs : int
        Training epochs of each model.
    seed : int
    n_programs : int
        Programming draws the analog accuracies are averaged over.
    export_options : dict, optional
        Further arguments of :func:`pyaimc.noise.export_noise_model` (e.g. smaller simulations
        in tests: ``n_levels``, ``n_devices``, ``n_repeats``).
    """
    import torch

    from pyaimc.analog import AnalogConfig, convert_to_analog, program
    from pyaimc.circuit.transfer import read_transfer
    from pyaimc.device import DeviceModel
    from pyaimc.io import provenance, write_json
    from pyaimc.noise import export_noise_model
    from pyaimc.noise.aihwkit import write_aihwkit
    from pyaimc.noise.summary import noise_summary

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small layers: one thread is fastest, and the machine is shared
    try:
        t0 = time.perf_counter()
        noise_path = out / "noise.json"
        nm = export_noise_model(
            DeviceModel.load(EXAMPLE_MODEL), np.random.default_rng(seed),
            transfer=read_transfer(transfer) if transfer else None, progress=True,
            source=str(EXAMPLE_MODEL), seed=seed, **(export_options or {}))
        nm.save(noise_path)
        print("\n".join(noise_summary(nm)))
        write_aihwkit(out / "noise_aihwkit.json", nm, source=str(noise_path), seed=seed)
        t_export = time.perf_counter() - t0

        t0 = time.perf_counter()
        x_tr, y_tr, x_te, y_te = _digits(seed)
        torch.manual_seed(seed)
        digital = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                      torch.nn.Linear(32, 10))
        # hardware-aware models start from the same initial weights as the software one
        aware = {m: convert_to_analog(digital, nm, AnalogConfig(programming_method=m),
                                      np.random.default_rng(seed)) for m in METHODS}
        loss = {"software": _train(digital, x_tr, y_tr, epochs, seed)[-1]}
        for m in METHODS:
            loss[m] = _train(aware[m], x_tr, y_tr, epochs, seed)[-1]
        rng = np.random.default_rng(seed + 1)
        acc = {"software": _accuracy(digital, x_te, y_te)}
        for m in METHODS:
            as_is = convert_to_analog(digital, nm, AnalogConfig(programming_method=m), rng)
            draws = {"software_weights": [], "hardware_aware": []}
            for _ in range(n_programs):
                draws["software_weights"].append(_accuracy(program(as_is, rng), x_te, y_te))
                draws["hardware_aware"].append(_accuracy(program(aware[m], rng), x_te, y_te))
            acc[m] = {k: {"mean": float(np.mean(v)), "min": float(np.min(v)),
                          "max": float(np.max(v))} for k, v in draws.items()}
        t_train = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)

    result = {
        "schema": "pyaimc.noise-demo/1",
        "dataset": "scikit-learn digits, 8x8, 75/25 split",
        "model": "MLP 64-32-10, Adam lr 5e-3, batch 64",
        "epochs": epochs,
        "noise_model": str(noise_path),
        "transfer": str(transfer) if transfer else None,
        "test_accuracy": dict(acc, programming_draws=n_programs),
        "final_train_loss": loss,
        "seconds": {"export": t_export, "train_and_evaluate": t_train},
        "provenance": provenance(seed=seed, source=str(EXAMPLE_MODEL)),
    }
    write_json(out / "noise_demo.json", result)
    print(f"digits test accuracy ({epochs} epochs; analog: mean (min .. max) over "
          f"{n_programs} programming draws, read noise on):")
    print(f"  software model                                  {acc['software']:.3f}")
    for m in METHODS:
        for k, label in (("software_weights", "software weights"),
                         ("hardware_aware", "hardware-aware trained")):
            a = acc[m][k]
            print(f"  {label:22s} programmed {m.replace('_', '-'):12s} {a['mean']:.3f} "
                  f"({a['min']:.3f} .. {a['max']:.3f})")
    print(f"  export {t_export:.1f} s, training and evaluation {t_train:.1f} s; wrote "
          f"{out / 'noise_demo.json'}")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.demo_noise",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--transfer", help="transfer document (pyaimc.transfer/1) for 64x64 tiles")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    run_demo(args.out, args.transfer, args.epochs, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

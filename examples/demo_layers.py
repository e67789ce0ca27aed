"""Demo: analog layers beyond ``nn.Linear``, a convolutional and a recurrent network.

``python -m examples.demo_layers --out DIR [--noise NOISE.json] [--seed 0]``

On scikit-learn's digits (8 x 8 images; 1437 train, 360 test):

1. a CNN (two 3 x 3 convolutions, a linear read-out) on the images, and a GRU reading each image
   row by row (8 steps of 8 pixels), trained in software;
2. both converted with ``convert_to_analog`` (convolutions unrolled onto tiles by im2col, the GRU's
   input and hidden products on tiles) and deployed unchanged on the noise model (one programmed
   chip per draw, read noise, DAC and ADC);
3. a few hardware-aware epochs from the software weights (fresh programming noise per mini-batch;
   the GRU holds one draw for all steps of a sequence, as a chip does), deployed again.

Writes ``DIR/layers.json``. Default noise model: exported here from the shipped example device
(``calibration_data/models/example.json``, ideal crossbar, a few seconds); the demo passes the
one its stage 4 exported (with the fitted transfer model of stage 3).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_MODEL = ROOT / "calibration_data" / "models" / "example.json"
DRAWS = 3


class DigitsCNN(nn.Module):
    """Two 3 x 3 convolutions (8 and 16 channels, the second with stride 2), a linear read-out."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class RowGRU(nn.Module):
    """A GRU over the image rows; its last hidden state read out by a linear layer."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.gru = nn.GRU(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        y, _ = self.gru(x.squeeze(1))
        return self.head(y[:, -1])


def _digits():
    from pyaimc.experiments.config import DataConfig
    from pyaimc.experiments.datasets import load_data

    d = load_data(DataConfig(task="digits", digits_layout="rows"))
    return d.x_train.unsqueeze(1), d.y_train, d.x_test.unsqueeze(1), d.y_test


def _fit(model, x, y, epochs: int, lr: float, seed: int, hold=None) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for k in range(0, len(x), 64):
            idx = perm[k:k + 64]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


@torch.no_grad()
def _accuracy(model, x, y) -> float:
    model.eval()
    return float((model(x).argmax(-1) == y).float().mean())


def _deployed(model, x, y, seed: int) -> list[float]:
    from pyaimc.analog import program

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(DRAWS):
        program(model, rng)
        out.append(_accuracy(model, x, y))
    return out


def demo_layers(out_dir: Path, noise: Path | None = None, seed: int = 0) -> dict:
    """Run the demo; returns (and writes to ``out_dir/layers.json``) its figures."""
    from pyaimc.analog import analog_layers, convert_to_analog
    from pyaimc.io import provenance, write_json
    from pyaimc.noise import NoiseModel

    torch.set_num_threads(1)  # small layers: one thread is fastest, and the machine is shared
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if noise is not None:
        nm = NoiseModel.load(noise)
    else:
        from pyaimc.device import DeviceModel
        from pyaimc.noise import export_noise_model

        nm = export_noise_model(DeviceModel.load(EXAMPLE_MODEL), np.random.default_rng(seed),
                                n_devices=500, n_repeats=4)
        noise = EXAMPLE_MODEL
    x_tr, y_tr, x_te, y_te = _digits()
    rows = {}
    for name, make, epochs, hw_epochs in (("cnn", DigitsCNN, 15, 2), ("gru", RowGRU, 25, 3)):
        tic = time.perf_counter()
        torch.manual_seed(seed)
        digital = make()
        _fit(digital, x_tr, y_tr, epochs, 5e-3, seed)
        analog = convert_to_analog(digital, nm, rng=np.random.default_rng(seed))
        as_is = _deployed(analog, x_te, y_te, seed)
        _fit(analog, x_tr, y_tr, hw_epochs, 1e-3, seed + 1)
        for layer in analog_layers(analog):
            layer.reset_generator()
        aware = _deployed(analog, x_te, y_te, seed)
        rows[name] = {
            "analog_layers": sorted({type(m).__name__ for m in analog.modules()
                                     if getattr(m, "is_analog", False)}),
            "software_acc": _accuracy(digital, x_te, y_te),
            "deployed_acc": as_is, "hw_aware_epochs": hw_epochs, "hw_aware_deployed_acc": aware,
            "seconds": time.perf_counter() - tic}
    doc = {"schema": "pyaimc.demo_layers/1", "noise_model": str(noise), "draws": DRAWS,
           "rows": rows, "provenance": provenance(seed=seed, source=str(noise))}
    write_json(out_dir / "layers.json", doc)
    return doc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--noise", help="noise model JSON (default: exported from the shipped example device)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    doc = demo_layers(Path(a.out), a.noise, a.seed)
    for name, r in doc["rows"].items():
        print(f"{name}: software {r['software_acc']:.3f}, deployed "
              f"{np.mean(r['deployed_acc']):.3f}, hardware-aware {np.mean(r['hw_aware_deployed_acc']):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

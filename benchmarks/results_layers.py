"""Analog convolutions and recurrent layers shown end to end: a small CNN on the scikit-learn
digits (8x8 images) and an LSTM on MNIST-1D, trained in software and hardware-aware, deployed
on programmed tiles of the S4D table's hardware.

    python benchmarks/results_layers.py [--threads 1] [--draws 3] [--work out/results_layers]

writes ``results/layers.json`` (rows, the command, provenance) and ``results/layers.md`` (tables
with the S4D table's columns: weights, hardware-aware, epochs, software, deployed, model size).

Hardware: the noise model of ``results/mnist1d_qat_noise.json`` (the example device,
write-verify programming, 64 x 64 tiles with 1 ohm wires and the fitted transfer model, 8-bit
DAC and ADC, read noise at 1e8 Hz), the one the S4D table used.

Per task:

1. a software run (``torch.nn`` layers, Adam, cosine decay) of ``--epochs`` epochs;
2. hardware-aware runs that start from its weights, ``convert_to_analog`` it with a config
   (``hardware``: every non-ideality; ``trained_ranges``: plus sigma clipping, learned input
   ranges and output scales) and train ``--hw-epochs`` more epochs (fresh programming noise
   per mini-batch, one draw per sequence for the LSTM);
3. every model deployed: ``--draws`` programmed instances (``program``), test accuracy in eval
   mode (read noise per read), mean and sample std;
4. mappings: the software and the hardware-aware model deployed with each weight-to-conductance
   mapping (no retraining), the software model also on the same hardware without wires.

"software" of a hardware-aware row is its weights evaluated in plain torch. Trained weights are
kept in ``--work`` and read back on a rerun (``--fresh`` retrains). Test sets are never used for
any choice: epochs and learning rates are fixed up front.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.analog import (AnalogConfig, analog_layers, clip_weights,  # noqa: E402
                           convert_to_analog, program)
from pyaimc.experiments.config import DataConfig  # noqa: E402
from pyaimc.experiments.datasets import load_data  # noqa: E402
from pyaimc.io import atomic_write_text, provenance, write_json  # noqa: E402
from pyaimc.noise import NoiseModel  # noqa: E402

NOISE = ROOT / "results" / "mnist1d_qat_noise.json"
MAPPINGS = {
    "differential pair": ("differential_pair", {}),
    "single device + reference": ("single_device", {}),
    "2 pairs": ("n_pairs", {"n_pairs": 2}),
    "2 pairs, F=4, corrected": ("n_pairs", {"n_pairs": 2, "significance": 4.0,
                                            "correct": True}),
    "2 pairs, F=2, optimised": ("optimised_pairs", {"n_pairs": 2, "significance": 2.0}),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------- models
class DigitsCNN(nn.Module):
    """Two 3x3 convolutions (16 and 32 channels, the second with stride 2) and a linear
    read-out of the 4x4x32 map."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class SeqLSTM(nn.Module):
    """One LSTM layer; the last hidden state read out by a linear layer."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


def task_data(task: str):
    if task == "cnn_digits":
        d = load_data(DataConfig(task="digits", digits_layout="rows"))
        return (d.x_train.unsqueeze(1), d.y_train, d.x_test.unsqueeze(1), d.y_test)
    d = load_data(DataConfig(task="mnist1d"))
    return d.x_train, d.y_train, d.x_test, d.y_test


TASKS = {
    # name: (model, software epochs, lr, batch)
    "cnn_digits": (DigitsCNN, 30, 3e-3, 64),
    "lstm_mnist1d": (SeqLSTM, 60, 5e-3, 64),
}


# ---------------------------------------------------------------------------------- training
def fit(model, data, epochs: int, lr: float, batch: int, seed: int, clip: bool = False):
    x, y = data[0], data[1]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for k in range(0, len(x), batch):
            idx = perm[k:k + batch]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            if clip:
                clip_weights(model)
            total += float(loss.detach()) * len(idx)
        if epoch == epochs - 1 or epoch % 10 == 0:
            log(f"    epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}")
    return model


@torch.no_grad()
def accuracy(model, x, y, batch: int = 500) -> float:
    model.eval()
    hits = sum(int((model(x[k:k + batch]).argmax(-1) == y[k:k + batch]).sum())
               for k in range(0, len(x), batch))
    return 100.0 * hits / len(x)


def deployed(model, x, y, draws: int, seed: int) -> list[float]:
    # read noise from each layer's seed, whatever the layer drew in training: a rerun from
    # kept weights gives the same figures as the run that trained them
    for layer in analog_layers(model):
        layer.reset_generator()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        program(model, rng)
        out.append(accuracy(model, x, y))
    return out


def digital_copy(analog_model, template):
    """The analog model's weights in plain torch layers (the 'software' column)."""
    digital = template()
    target = digital.state_dict()
    mods = dict(analog_model.named_modules())
    for name, module in digital.named_modules():
        a = mods.get(name)
        if a is None:
            continue
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            w = a.effective_weight().detach()
            target[f"{name}.weight"] = w.reshape(module.weight.shape)
            if module.bias is not None:
                target[f"{name}.bias"] = a.bias.detach()
        elif isinstance(module, nn.LSTM):
            cell = a.cell(0)
            target[f"{name}.weight_ih_l0"] = cell.ih.effective_weight().detach()
            target[f"{name}.weight_hh_l0"] = cell.hh.effective_weight().detach()
            target[f"{name}.bias_ih_l0"] = cell.ih.bias.detach()
            target[f"{name}.bias_hh_l0"] = cell.hh.bias.detach()
    digital.load_state_dict(target)
    return digital


def model_kbit(model) -> float:
    """Weights and biases at 32 bits (the learned ranges and scales are digital constants)."""
    return sum(p.numel() for p in model.parameters()) * 32 / 1000


# ---------------------------------------------------------------------------------- run
def run_task(task: str, nm: NoiseModel, args, work: Path) -> dict:
    make, epochs, lr, batch = TASKS[task]
    if args.epochs:
        epochs = args.epochs[list(TASKS).index(task)]
    data = task_data(task)
    xte, yte = data[2], data[3]
    rows, mapping_rows = [], []
    torch.manual_seed(0)
    sw_path = work / f"{task}_software.pt"
    sw = make()
    if sw_path.exists() and not args.fresh:
        sw.load_state_dict(torch.load(sw_path))
        log(f"{task}: software weights read from {sw_path}")
    else:
        log(f"{task}: software training, {epochs} epochs")
        t0 = time.time()
        fit(sw, data, epochs, lr, batch, seed=1)
        log(f"  {time.time() - t0:.0f} s")
        torch.save(sw.state_dict(), sw_path)
    sw_acc = accuracy(sw, xte, yte)
    hw = convert_to_analog(sw, nm, AnalogConfig.hardware(), np.random.default_rng(2))
    dep = deployed(hw, xte, yte, args.draws, seed=10)
    rows.append({"weights": "fp32", "config": "hardware", "hardware_aware": False,
                 "epochs": epochs, "software": sw_acc, "deployed": dep,
                 "model_kbit": model_kbit(sw)})
    log(f"  software {sw_acc:.1f} %, deployed {np.mean(dep):.1f} +- {np.std(dep, ddof=1):.1f} %")
    models = {"software": sw}
    for cname in ("hardware", "trained_ranges"):
        cfg = AnalogConfig.preset(cname)
        path = work / f"{task}_hwa_{cname}.pt"
        analog = convert_to_analog(sw, nm, cfg, np.random.default_rng(3))
        if path.exists() and not args.fresh:
            analog.load_state_dict(torch.load(path))
            log(f"{task}: hardware-aware ({cname}) weights read from {path}")
        else:
            log(f"{task}: hardware-aware training ({cname}), {args.hw_epochs} epochs")
            t0 = time.time()
            fit(analog, data, args.hw_epochs, lr / 5, batch, seed=4,
                clip=cfg.weight_clip is not None)
            log(f"  {time.time() - t0:.0f} s")
            torch.save(analog.state_dict(), path)
        soft = accuracy(digital_copy(analog, make), xte, yte)
        dep = deployed(analog, xte, yte, args.draws, seed=10)
        rows.append({"weights": "fp32", "config": cname, "hardware_aware": True,
                     "epochs": args.hw_epochs, "software": soft, "deployed": dep,
                     "model_kbit": model_kbit(sw)})
        log(f"  software {soft:.1f} %, deployed {np.mean(dep):.1f} +- "
            f"{np.std(dep, ddof=1):.1f} %")
        models[cname] = analog
    # mappings: the software model and the hardware-aware (hardware config) model, deployed;
    # the software model also on the same hardware without wires (no IR drop)
    nowire = nm.replace(transfer=None, tile=dataclasses.replace(nm.tile, r_wire=None))
    for label, (name, opts) in MAPPINGS.items():
        cfg = dataclasses.replace(AnalogConfig.hardware(), mapping=name, mapping_options=opts)
        for src, hw_model in (("software", nm), ("software, no wires", nowire),
                              ("hardware", nm)):
            base = sw if src.startswith("software") else digital_copy(models["hardware"], make)
            analog = convert_to_analog(base, hw_model, cfg, np.random.default_rng(2))
            dep = deployed(analog, xte, yte, args.draws, seed=10)
            mapping_rows.append({"mapping": label, "kind": name, "options": opts,
                                 "model": src, "deployed": dep})
            log(f"  mapping {label}, {src} model: {np.mean(dep):.1f} +- "
                f"{np.std(dep, ddof=1):.1f} %")
    return {"task": task, "rows": rows, "mappings": mapping_rows,
            "train": {"epochs": epochs, "hw_epochs": args.hw_epochs, "lr": lr,
                      "hw_lr": lr / 5, "batch": batch, "optimizer": "Adam, cosine decay"},
            "n_train": len(data[0]), "n_test": len(xte)}


def pm(v) -> str:
    return f"{np.mean(v):.1f} +- {np.std(v, ddof=1):.1f}"


TITLES = {"cnn_digits": "Small CNN on the scikit-learn digits (8x8 images, 1437 train / 360 "
                        "test)",
          "lstm_mnist1d": "LSTM (64 hidden) on MNIST-1D (4000 train / 1000 test sequences of "
                          "40 steps)"}


def markdown(doc: dict) -> str:
    lines = ["# Analog convolutions and recurrent layers: trained hardware-aware, deployed", "",
             f"Command: `{doc['command']}` ({doc['minutes']:.0f} min for the invocation that "
             f"wrote this; {doc['threads']} torch thread(s)). Test accuracy (%); deployed: mean "
             f"+- sample std over {doc['draws']} programming draws, every product on the "
             "behavioral tiles (eval mode: the programmed conductances, read noise per read).",
             "", f"Hardware: {doc['hardware']}.", ""]
    for t in doc["tasks"]:
        lines += [f"## {TITLES[t['task']]}", "",
                  "| weights | hardware-aware | epochs | software | deployed | model size "
                  "(kbit) |", "|---|---|---:|---:|---:|---:|"]
        for r in t["rows"]:
            hwa = "no" if not r["hardware_aware"] else f"yes ({r['config']})"
            lines.append(f"| {r['weights']} | {hwa} | {r['epochs']} | {r['software']:.1f} | "
                         f"{pm(r['deployed'])} | {r['model_kbit']:.1f} |")
        lines += ["", "Deployed with each weight-to-conductance mapping (same weights, no "
                  "retraining; no wires: the same hardware with an ideal crossbar):", "",
                  "| mapping | software model | software model, no wires | hardware-aware "
                  "model |", "|---|---:|---:|---:|"]
        by = {}
        for r in t["mappings"]:
            by.setdefault(r["mapping"], {})[r["model"]] = r["deployed"]
        for label, v in by.items():
            lines.append(f"| {label} | {pm(v['software'])} | {pm(v['software, no wires'])} | "
                         f"{pm(v['hardware'])} |")
        lines.append("")
    lines += ["Hardware-aware rows start from the software row's weights and train the epochs "
              "listed on top (learning rate a fifth of the software run's); their software "
              "column is the same weights in plain torch. `trained_ranges`: weights clipped at "
              "3 standard deviations of each layer's weights, learned input ranges and output "
              "scales. The hardware-aware model of the mapping table is the `hardware` one "
              "(trained on the differential pair).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--hw-epochs", type=int, default=5)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--work", default=str(ROOT / "out" / "results_layers"))
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--fresh", action="store_true", help="retrain even where weights are kept")
    p.add_argument("--epochs", type=int, nargs=2, metavar=("CNN", "LSTM"),
                   help="software epochs per task (default 30 60)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    nm = NoiseModel.load(NOISE)
    tasks = [run_task(t, nm, args, work) for t in args.tasks]
    command = "python benchmarks/results_layers.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    t = nm.programming.table(nm.programming.training_scheme)
    span = nm.window.g_max - nm.window.g_min
    hardware = (f"example device, {nm.programming.training_scheme} programming (spread "
                f"{100 * t.std.min() / span:.1f}-{100 * t.std.max() / span:.1f} % of g_max - "
                f"g_min), {nm.tile.rows}x{nm.tile.cols} tiles, {nm.tile.r_wire} ohm wires with "
                f"the fitted transfer model, DAC {nm.dac.bits} bit, ADC {nm.adc.bits} bit, read "
                f"noise at {nm.read_noise.bandwidth:.0e} Hz (`results/mnist1d_qat_noise.json`)")
    doc = {"schema": "pyaimc.results/1", "name": "layers", "command": command.strip(),
           "threads": args.threads, "draws": args.draws, "hardware": hardware,
           "minutes": (time.time() - t_start) / 60, "tasks": tasks,
           "provenance": provenance(source=str(NOISE.relative_to(ROOT)), seed=0,
                                    command=command.strip())}
    write_json(out / "layers.json", doc)
    atomic_write_text(out / "layers.md", markdown(doc))
    log(f"wrote {out / 'layers.json'} and {out / 'layers.md'} "
        f"({doc['minutes']:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

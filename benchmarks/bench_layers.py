"""Cost of the analog convolution and LSTM against torch's layers, as ratios, beside aihwkit's
and aihwkit-lightning's where they are importable.

Every layer runs forward + backward in training mode on the same input in the same process,
the layers taking turns step by step (a change in the shared machine's load hits all alike);
times are medians over ``--repeats`` steps after warm-up; ratio = time / the torch layer's.

pyaimc columns: ``hardware`` (the example device's noise model, 64 x 64 tiles: programming
noise per step, read noise, 8-bit DAC and ADC), ``IR`` (plus the first-order 1 ohm IR-drop
transfer model), ``trained ranges`` (the ``trained_ranges`` preset: sigma clipping, learned
input ranges and output scales, no IR drop).

Others, when importable (they are not pyaimc dependencies: install them in a separate
environment and run this script there with pyaimc on ``PYTHONPATH``):
aihwkit-lightning's layers with a ``TorchInferenceRPUConfig`` of 64-row tiles, 8-bit input and
output resolution (output bound 10), output noise 0.02, additive weight noise 0.05 (per step)
and learned input ranges; aihwkit's with ``InferenceRPUConfig`` and ``mapping.max_input_size = 64``.

Usage: python benchmarks/bench_layers.py [--batch 64] [--repeats 20] [--threads 1]
       [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from _example import example_noise_model, with_wires

from pyaimc.analog import AnalogConfig, convert_to_analog



def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_times(layers: dict, x: torch.Tensor, repeats: int) -> dict:
    """Median seconds of one forward + backward per layer, the layers taking turns."""
    def step(layer):
        layer.zero_grad(set_to_none=True)
        y = layer(x)
        y = y[0] if isinstance(y, tuple) else y
        y.float().sum().backward()
        _sync(x.device)

    for layer in layers.values():
        for _ in range(3):
            step(layer)
    times = {k: [] for k in layers}
    for _ in range(repeats):
        for k, layer in layers.items():
            t0 = time.perf_counter()
            step(layer)
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


class _TimeFirst(nn.Module):
    """Runs a time-first recurrent layer on batch-first input (aihwkit-lightning's AnalogRNN
    refuses ``batch_first``)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        y, state = self.rnn(x.transpose(0, 1))
        return y.transpose(0, 1), state


def lightning_layer(kind: str, shape: dict, device):
    from aihwkit_lightning.nn import AnalogConv2d, AnalogLSTMCell, AnalogRNN
    from aihwkit_lightning.simulator.configs import (TorchInferenceRPUConfig,
                                                     WeightNoiseInjectionType)

    cfg = TorchInferenceRPUConfig()
    cfg.mapping.max_input_size = 64
    cfg.forward.inp_res = 2 ** 8 - 2
    cfg.forward.out_res = 2 ** 8 - 2
    cfg.forward.out_noise = 0.02
    cfg.forward.out_bound = 10.0
    cfg.modifier.noise_type = WeightNoiseInjectionType.ADD_NORMAL
    cfg.modifier.std_dev = 0.05
    cfg.pre_post.input_range.enable = True
    if kind == "conv":
        layer = AnalogConv2d(shape["c_in"], shape["c_out"], 3, padding=1, rpu_config=cfg)
    else:
        layer = _TimeFirst(AnalogRNN(AnalogLSTMCell, shape["n_in"], shape["hidden"],
                                     rpu_config=cfg))
    return layer.to(device)


def aihwkit_layer(kind: str, shape: dict, device):
    from aihwkit.nn import AnalogConv2d, AnalogLSTM
    from aihwkit.simulator.configs import InferenceRPUConfig

    cfg = InferenceRPUConfig()
    cfg.mapping.max_input_size = 64
    if kind == "conv":
        layer = AnalogConv2d(shape["c_in"], shape["c_out"], 3, padding=1, rpu_config=cfg)
    else:
        layer = _TimeFirst(AnalogLSTM(shape["n_in"], shape["hidden"], rpu_config=cfg))
    return layer.to(device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    nm = example_noise_model()
    wired = with_wires(nm, 1.0)
    gen = torch.Generator().manual_seed(0)
    cases = {
        "conv": ({"c_in": 16, "c_out": 32}, nn.Conv2d(16, 32, 3, padding=1),
                 torch.randn(args.batch, 16, 16, 16, generator=gen),
                 "Conv2d 16->32, 3x3, 16x16 maps"),
        "lstm": ({"n_in": 32, "hidden": 128}, nn.LSTM(32, 128, batch_first=True),
                 torch.randn(args.batch, 40, 32, generator=gen),
                 "LSTM 32->128, 40 steps"),
    }
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s), batch "
          f"{args.batch}; ratio = forward + backward time / the torch layer's (training mode, "
          "same process, layers taking turns)")
    for kind, (shape, digital, x, title) in cases.items():
        x = x.to(device)
        layers = {"torch": digital.to(device)}
        for name, model, cfg in (("pyaimc hardware", nm, AnalogConfig.hardware()),
                                 ("pyaimc IR", wired, AnalogConfig.hardware()),
                                 ("pyaimc trained ranges", nm, AnalogConfig.trained_ranges())):
            layers[name] = convert_to_analog(digital, model, cfg,
                                             np.random.default_rng(0)).to(device)
        for name, build in (("aihwkit-lightning", lightning_layer), ("aihwkit", aihwkit_layer)):
            try:
                layer = build(kind, shape, device)
                out = layer(x)                          # a layer that builds but cannot run
                (out[0] if isinstance(out, tuple) else out).float().sum().backward()
                layers[name] = layer
            except Exception as err:  # noqa: BLE001 - not installed or not built: not measured
                print(f"  {name} not measured: {type(err).__name__}: {err}")
        for layer in layers.values():
            layer.train()
        times = step_times(layers, x, args.repeats)
        t0 = times["torch"]
        print(f"{title}: torch {t0 * 1e3:.2f} ms")
        for name, t in times.items():
            if name != "torch":
                print(f"  {name:24s} {t / t0:7.2f}x  ({t * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Forward + backward time of ``AnalogLinear`` against ``torch.nn.Linear``, as a ratio.

Both layers run in the same process on the same inputs (batch 64), in training mode; the analog
layer samples programming noise every step and applies read noise, DAC and ADC (and the crossbar
transfer model when the noise model has one). Times are medians over ``--repeats`` steps after
warm-up, the two layers taking turns step by step; the ratio is analog / digital.

Columns: the full hardware configuration (``AnalogConfig.products`` "auto": the tile products
in bf16 where the CPU multiplies bf16 natively, see ``pyaimc.analog.half``), the same with
float32 products, then with read noise or programming noise switched off, the bare mapping
(tiles, pairs, scales; exact, so float32 products), and the time to draw the normal random
numbers a hardware step needs, alone (the floor torch's CPU generator sets).

Usage: python benchmarks/bench_analog_linear.py [--noise NOISE.json] [--sizes 256 1024]
       [--batch 64] [--repeats 30] [--threads 1] [--r-wire OHMS] [--compare] [--device cuda]
       [--input-grad]

``--input-grad`` times the step of a hidden layer: the input needs a gradient too (both
layers then compute it).

Without ``--noise`` a noise model is exported from calibration_data/models/example.json (64 x 64
tiles, a few seconds); ``--r-wire`` adds the first-order IR-drop transfer document to it.

``--compare`` prints the summary the issue's speed target is stated in: the full hardware
configuration's ratio to ``nn.Linear`` at each size without and with the 1 ohm IR-drop model
(and both again with float32 products), beside aihwkit's ``AnalogLinear`` with an ``InferenceRPUConfig`` (and its torch-only variant,
``TorchInferenceRPUConfig``) and aihwkit-lightning's ``AnalogLinear`` when those packages are
importable (they are not pyaimc dependencies: install them in a separate environment and run
this script there with pyaimc on the path), all timed in the same process, taking turns.
``--device cuda`` runs everything on the GPU (timed with synchronisation). Beside them: pyaimc
with fresh normals every step (``normal_pool=False``), and aihwkit-lightning both with its
default config (no noise, no converters, untiled: close to ``nn.Linear``) and with the
hardware-like one of ``benchmarks/bench_layers.py`` ("hw": 64-row tiles, 8-bit DAC and ADC,
output noise, weight noise every step).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import torch

from _example import example_noise_model, with_wires

from pyaimc.analog import AnalogConfig, AnalogLinear
from pyaimc.noise import NoiseModel


class RandomNormals(torch.nn.Module):
    """Stands in for a layer: draws ``n`` standard normals per step (the RNG floor)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.gen = torch.Generator().manual_seed(0)
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.randn(self.n, generator=self.gen).sum() * 0 + self.anchor


def _sync(x):
    if x.is_cuda:
        torch.cuda.synchronize()


def step_times(layers: list, x: torch.Tensor, repeats: int) -> list[float]:
    """Median seconds of one forward + backward of each layer.

    The layers take turns step by step, so a change in the machine's load (it is shared) hits
    all of them alike.
    """
    def step(layer):
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()
        _sync(x)

    for layer in layers:
        for _ in range(3):
            step(layer)
    times = [[] for _ in layers]
    for _ in range(repeats):
        for k, layer in enumerate(layers):
            t0 = time.perf_counter()
            step(layer)
            times[k].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--noise", help="noise model JSON (default: export the example's)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--r-wire", type=float, help="add a first-order IR-drop transfer (ohm)")
    p.add_argument("--compare", action="store_true",
                   help="summary: hardware config without and with 1 ohm IR drop, beside "
                        "aihwkit / aihwkit-lightning when importable")
    p.add_argument("--device", default="cpu")
    p.add_argument("--input-grad", action="store_true",
                   help="the input needs a gradient too (a hidden layer's step)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.compare:
        return compare(args)
    nm = _noise_model(args)
    if args.r_wire is not None:
        nm = with_wires(nm, args.r_wire)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, tile "
          f"{nm.tile.rows}x{nm.tile.cols}, transfer "
          f"{'none (ideal crossbar)' if nm.transfer is None else 'r_wire %g ohm' % nm.tile.r_wire}")
    print(_products_line())
    configs = {
        "hardware": AnalogConfig.hardware(),
        "hw fp32 prod.": dataclasses.replace(AnalogConfig.hardware(), products="float32"),
        "no read noise": dataclasses.replace(AnalogConfig.hardware(), read_noise=False),
        "no prog. noise": dataclasses.replace(AnalogConfig.hardware(), programming_noise=False),
        "mapping only": AnalogConfig.ideal(),
    }
    gen = torch.Generator().manual_seed(0)
    print("forward + backward, training mode; ratio = time / nn.Linear time (same process, "
          "layers taking turns)")
    print(f"{'size':>11} {'nn.Linear ms':>13} " + " ".join(f"{k:>15}" for k in configs)
          + f" {'normals alone':>14}")
    for n in args.sizes:
        x = torch.randn(args.batch, n, generator=gen).requires_grad_(args.input_grad)
        torch.manual_seed(0)
        digital = torch.nn.Linear(n, n)
        layers = [digital]
        for cfg in configs.values():
            layer = AnalogLinear(n, n, noise_model=nm, config=cfg, seed=0)
            layer.train()
            layers.append(layer)
        # the random numbers one hardware step draws: a programming error per weight (pair
        # difference) and a read noise per row tile, sample and output
        n_normals = n * n + args.batch * n * math.ceil(n / nm.tile.rows)
        normals = RandomNormals(n_normals)
        times = step_times(layers + [normals], x, args.repeats)
        t_d = times[0]
        print(f"{n:>5} x {n:<5} {t_d * 1e3:13.3f} "
              + " ".join(f"{t / t_d:15.2f}" for t in times[1:-1]) + f" {times[-1] / t_d:14.2f}")
        print(f"{'':>11} {'ms:':>13} " + " ".join(f"{t * 1e3:15.3f}" for t in times[1:-1])
              + f" {times[-1] * 1e3:14.3f}")
    return 0


def _products_line() -> str:
    """What ``products="auto"`` resolves to on this machine."""
    try:
        from pyaimc.analog.half import cpu_has_native_bf16
    except ImportError:
        return "tile products: float32 (this pyaimc has no bf16 products)"
    native = cpu_has_native_bf16()
    return ("tile products of noisy training steps: " + ("bf16 (this CPU multiplies bf16 natively)"
            if native else "float32 (this CPU has no native bf16 products)"))


def _noise_model(args) -> NoiseModel:
    """``--noise``, else the example device's."""
    return NoiseModel.load(args.noise) if args.noise else example_noise_model()


def _aihwkit_layers(n: int, device) -> dict:
    """aihwkit's and aihwkit-lightning's inference layers, where importable."""
    out = {}
    # each separately: aihwkit 1.1's C++ tiles refuse torch 2.13's tensors ("weights must be
    # a CPU tensor") while its torch-only variant runs
    for name, config in (("aihwkit", "InferenceRPUConfig"),
                         ("aihwkit torch", "TorchInferenceRPUConfig")):
        try:
            from aihwkit.nn import AnalogLinear as AihwLinear
            from aihwkit.simulator import configs

            rpu = getattr(configs, config)()
            out[name] = AihwLinear(n, n, rpu_config=rpu).to(device)
        except Exception as err:  # noqa: BLE001 - any import or build problem: not measured
            print(f"  {name} not measured: {type(err).__name__}: {err}")
    try:
        from aihwkit_lightning.nn import AnalogLinear as LightLinear
        from aihwkit_lightning.simulator.configs import TorchInferenceRPUConfig as LightConfig

        out["aihwkit-lightning"] = LightLinear(n, n, rpu_config=LightConfig()).to(device)
        out["aihwkit-lightning hw"] = LightLinear(n, n, rpu_config=_lightning_hw()).to(device)
    except Exception as err:  # noqa: BLE001
        print(f"  aihwkit-lightning not measured: {type(err).__name__}: {err}")
    return out


def _lightning_hw():
    """aihwkit-lightning's config nearest the hardware one (as benchmarks/bench_layers.py):
    64-row tiles, 8-bit DAC and ADC, output noise, weight noise every step, input ranges."""
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
    return cfg


def compare(args) -> int:
    device = torch.device(args.device)
    nm = _noise_model(args)
    wired = with_wires(nm, 1.0)
    # fresh normals every step (no pool), for comparison
    fields = AnalogConfig.__dataclass_fields__
    fresh = dataclasses.replace(AnalogConfig.hardware(), normal_pool=False) \
        if "normal_pool" in fields else None
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s), batch "
          f"{args.batch}; ratio = forward + backward time / nn.Linear's (training mode, same "
          "process, layers taking turns)")
    print(_products_line())
    print(f"{'size':>6} {'nn.Linear ms':>13} {'pyaimc':>8} {'pyaimc IR':>10} {'others':>8}")
    gen = torch.Generator().manual_seed(0)
    for n in args.sizes:
        x = torch.randn(args.batch, n, generator=gen).to(device).requires_grad_(args.input_grad)
        torch.manual_seed(0)
        layers = {"nn.Linear": torch.nn.Linear(n, n).to(device),
                  "pyaimc": AnalogLinear(n, n, noise_model=nm, seed=0).to(device),
                  "pyaimc IR": AnalogLinear(n, n, noise_model=wired, seed=0).to(device)}
        if fresh is not None:
            layers["pyaimc fresh"] = AnalogLinear(n, n, noise_model=nm, seed=0,
                                                  config=fresh).to(device)
        if "products" in fields:
            fp32 = dataclasses.replace(AnalogConfig.hardware(), products="float32")
            layers["pyaimc fp32"] = AnalogLinear(n, n, noise_model=nm, seed=0,
                                                 config=fp32).to(device)
            layers["pyaimc IR fp32"] = AnalogLinear(n, n, noise_model=wired, seed=0,
                                                    config=fp32).to(device)
        layers.update(_aihwkit_layers(n, device))
        for layer in layers.values():
            layer.train()
        times = dict(zip(layers, step_times(list(layers.values()), x, args.repeats)))
        t0 = times["nn.Linear"]
        others = "  ".join(f"{k} {t / t0:.2f}" for k, t in times.items()
                           if k not in ("nn.Linear", "pyaimc", "pyaimc IR"))
        print(f"{n:>6} {t0 * 1e3:13.3f} {times['pyaimc'] / t0:8.2f} "
              f"{times['pyaimc IR'] / t0:10.2f}  {others}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

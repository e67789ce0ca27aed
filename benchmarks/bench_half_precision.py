"""What the bf16 tile products of training steps change, measured against the noise they sit in.

``AnalogConfig.products`` ("auto": bf16 on a CPU with native bf16 products) rounds the
weights and the column currents of a training step's products to 8 significant bits (the DAC
codes are exact). This prints, for one ``AnalogLinear`` (default 256 -> 128, batch 64, the noise
model exported from the shipped example device), the rms difference of the outputs between bf16
and float32 products on the same programming draw (the same normals), beside how much one draw
of programming noise and one draw of read noise move the outputs, with and without the ADC
(a current the rounding moves across an ADC threshold reads one step apart); the same for the
weight gradients; and the loss after fitting a noisy layer to a linear teacher with each (the
mean over ``--seeds`` seeds, 150 Adam steps, evaluated on one programmed instance).

    python benchmarks/bench_half_precision.py [--in-features 256] [--out-features 128]
        [--seeds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import torch

from _example import example_noise_model

from pyaimc.analog import AnalogConfig, AnalogLinear, program


def rms(t: torch.Tensor) -> float:
    return float(t.pow(2).mean().sqrt())


def outputs(nm, cfg, products: str, x, n_out: int, draws: int = 2):
    """``draws`` training reads of one layer (seed 7): outputs and weight gradients."""
    torch.manual_seed(0)
    layer = AnalogLinear(x.shape[1], n_out, noise_model=nm, seed=7,
                         config=dataclasses.replace(cfg, products=products))
    layer.train()
    out = []
    w_out = torch.linspace(-1, 1, n_out)
    for _ in range(draws):
        layer.zero_grad()
        y = layer(x)
        (y * w_out).sum().backward()
        out.append((y.detach().clone(), layer.weight.grad.clone()))
    return out


def fit(nm, products: str, seed: int, n_in: int, n_out: int, steps: int = 150) -> float:
    """Test loss of a noisy layer fitted to a linear teacher (one programmed instance)."""
    gen = torch.Generator().manual_seed(100 + seed)
    teacher = torch.randn(n_out, n_in, generator=gen) / math.sqrt(n_in)
    x, x_test = torch.randn(512, n_in, generator=gen), torch.randn(512, n_in, generator=gen)
    torch.manual_seed(seed)
    layer = AnalogLinear(n_in, n_out, noise_model=nm, seed=seed,
                         config=AnalogConfig(products=products))
    opt = torch.optim.Adam(layer.parameters(), lr=0.01)
    layer.train()
    for k in range(steps):
        batch = x[(k * 64) % 512:(k * 64) % 512 + 64]
        opt.zero_grad()
        torch.nn.functional.mse_loss(layer(batch), batch @ teacher.t()).backward()
        opt.step()
    program(layer, np.random.default_rng(seed))
    layer.eval()
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(layer(x_test), x_test @ teacher.t()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--in-features", type=int, default=256)
    p.add_argument("--out-features", type=int, default=128)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from pyaimc.analog.half import cpu_has_native_bf16

    nm = example_noise_model()
    n_in, n_out = args.in_features, args.out_features
    x = torch.randn(64, n_in, generator=torch.Generator().manual_seed(3))
    print(f"AnalogLinear {n_in} -> {n_out}, batch 64; this CPU multiplies bf16 natively: "
          f"{cpu_has_native_bf16()}")
    hw = AnalogConfig.hardware()
    (y0, _), (y1, _) = outputs(nm, dataclasses.replace(hw, read_noise=False, adc=False),
                               "float32", x, n_out)
    prog_spread = rms(y1 - y0) / math.sqrt(2)     # one draw's deviation
    (r0, _), (r1, _) = outputs(nm, dataclasses.replace(hw, programming_noise=False), "float32",
                               x, n_out)
    read_spread = rms(r1 - r0)
    print(f"output rms {rms(y0):.4f}; one draw of programming noise moves it by {prog_spread:.4f}"
          f" rms, one draw of read noise by {read_spread / math.sqrt(2):.4f} rms "
          "(draw-to-draw differences / sqrt 2)")
    print(f"{'products bf16 - float32, same draw':44s} {'outputs rms':>12s} {'/ prog. draw':>13s}"
          f" {'weight grad rel.':>17s}")
    for label, cfg in (("no read noise, no ADC", dataclasses.replace(hw, read_noise=False,
                                                                       adc=False)),
                       ("no read noise, ADC", dataclasses.replace(hw, read_noise=False))):
        (yf, gf), = outputs(nm, cfg, "float32", x, n_out, 1)
        (yh, gh), = outputs(nm, cfg, "bfloat16", x, n_out, 1)
        print(f"  {label:42s} {rms(yh - yf):12.4f} {rms(yh - yf) / prog_spread:13.3f} "
              f"{float((gh - gf).norm() / gf.norm()):17.4f}")
    losses = {p: [fit(nm, p, s, n_in, n_out) for s in range(args.seeds)]
              for p in ("float32", "bfloat16")}
    print(f"linear teacher, 150 Adam steps, test MSE on one programmed instance "
          f"({args.seeds} seeds): float32 products "
          f"{np.mean(losses['float32']):.4f} +- {np.std(losses['float32']):.4f}, bf16 "
          f"{np.mean(losses['bfloat16']):.4f} +- {np.std(losses['bfloat16']):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Speed of the gain-cell core's whole-sequence read: compiled kernels vs the torch formulation.

Forward and backward of one ``GainCellCore`` (both read stages, decay, mismatch, write noise),
both ways in the same process, and the largest difference of the outputs::

    python benchmarks/bench_gaincell_kernels.py [--batch 32 --heads 4 --length 128 --dim 16
                                                 --window 32 --repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyaimc.apps.gaincell import GainCellCore, GainCellModel  # noqa: E402


def timed(core, q, k, v, noise, use_kernels, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        qq, kk, vv = (x.clone().requires_grad_() for x in (q, k, v))
        t0 = time.perf_counter()
        out = core(qq, kk, vv, write_noise=noise, use_kernels=use_kernels)
        out.sum().backward()
        best = min(best, time.perf_counter() - t0)
    return best, out.detach()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    core = GainCellCore(a.heads, a.dim, a.window, GainCellModel(tau=50e-6),
                        rng=np.random.default_rng(0))
    g = torch.Generator().manual_seed(0)
    shape = (a.batch, a.heads, a.length, a.dim)
    q, k, v = (torch.randn(shape, generator=g) for _ in range(3))
    noise = core.sample_write_noise(shape, g)
    timed(core, q, k, v, noise, True, 1)  # compile (or load the cached compilation)
    t_kernel, y_kernel = timed(core, q, k, v, noise, True, a.repeats)
    t_torch, y_torch = timed(core, q, k, v, noise, False, a.repeats)
    print(f"B {a.batch}, H {a.heads}, T {a.length}, d {a.dim}, W {a.window}, "
          f"{a.threads} thread(s), forward + backward, best of {a.repeats}:")
    print(f"  kernels {1e3 * t_kernel:.1f} ms, torch {1e3 * t_torch:.1f} ms, "
          f"ratio {t_torch / t_kernel:.1f}x; largest output difference "
          f"{float((y_kernel - y_torch).abs().max()):.2e}")


if __name__ == "__main__":
    main()

"""Demo: sliding-window attention on gain-cell memories with a tiny character GPT.

``demo_gaincell(out_dir)`` (about a minute on two busy cores):

1. pre-trains a tiny character GPT (2 layers, d_model 32, context 64) on Python standard-library
   source with exact attention;
2. puts it on gain-cell attention with a 16-token window: direct mapping, then the adaptation
   (calibration and fine-tuning of the intermediate linear-cell model, calibration on the gain
   cells, short hardware-aware fine-tuning), and fine-tunes the exact sliding-window model as
   many steps, for comparison;
3. prints held-out perplexity of all four, generates a line of text step by step through the
   gain-cell arrays (write noise on every written row), and prints the attention's latency and
   energy per token against a digital KV cache.

Writes ``out_dir/gaincell_device.json`` (the gain-cell model, ``pyaimc.gaincell/1``),
``out_dir/demo_gaincell.json`` (the figures) and the cached checkpoints in ``out_dir/work``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pyaimc.io import provenance, write_json


def demo_gaincell(out_dir, threads: int = 1) -> dict:
    """Run the demo (see the module docstring) and return its figures."""
    import torch

    from pyaimc.apps.gaincell import cost_table
    from pyaimc.apps.gaincell.corpus import decode, encode
    from pyaimc.apps.gaincell.experiment import Study, StudyConfig

    torch.set_num_threads(threads)
    out = Path(out_dir)
    t0 = time.perf_counter()
    cfg = StudyConfig(d_model=32, n_layer=2, n_head=2, context=64, pretrain_steps=400,
                      pretrain_batch=32, linear_steps=150, finetune_steps=30, finetune_batch=16,
                      calib_steps=40,
                      calib_sequences=8, windows=(16,), decay_window=16, decays=(),
                      eval_sequences=64, eval_chips=1)
    study = Study(cfg, out / "work", log=lambda msg: print(f"    {msg}", flush=True))
    w, tau = 16, cfg.nominal_tau
    exact = study.evaluate(study.base())["perplexity"]
    window_model, _ = study.window_model(w)
    window = study.evaluate(window_model)["perplexity"]
    direct_model, _ = study.analog_model(w, tau, adapted=False)
    direct = study.evaluate(direct_model)["perplexity"]
    adapted_model, meta = study.analog_model(w, tau, adapted=True)
    adapted = study.evaluate(adapted_model)["perplexity"]
    print(f"    held-out perplexity per character: exact {exact:.3f}, window {w} {window:.3f}, "
          f"gain cells direct mapping {direct:.3f}, intermediate linear-cell model "
          f"{meta['linear']['perplexity']:.3f}, gain cells adapted {adapted:.3f} "
          f"({100 * (adapted / window - 1):+.1f} % vs window)")

    prompt = torch.from_numpy(encode("def ")).view(1, -1)
    sample = adapted_model.generate(prompt, 48, torch.Generator().manual_seed(0),
                                    temperature=0.8,
                                    write_noise_generator=torch.Generator().manual_seed(1))
    text = decode(sample[0])
    print(f"    generated through the gain cells: {text!r}")

    device = study.device_model(tau)
    device.save(out / "gaincell_device.json", seed=cfg.seed)
    cost = cost_table(cfg.n_head, cfg.d_model // cfg.n_head, w, cfg.n_layer, device,
                      study.periphery())
    print(f"    attention per token: gain cells {cost['analog']['latency_s'] * 1e9:.0f} ns, "
          f"{cost['analog']['energy_j'] * 1e12:.0f} pJ; digital KV cache in HBM "
          f"{cost['digital_hbm']['latency_s'] * 1e6:.1f} us, "
          f"{cost['digital_hbm']['energy_j'] * 1e9:.1f} nJ (first-order estimates)")
    figures = {"perplexity": {"exact": exact, "window": window, "analog": direct,
                              "intermediate_linear": meta["linear"]["perplexity"],
                              "analog_calibrated": meta["perplexity_calibrated"],
                              "analog_adapted": adapted},
               "window": w, "decay_s": tau, "sample": text, "cost": cost,
               "settings": cfg.to_dict(), "seconds": time.perf_counter() - t0}
    write_json(out / "demo_gaincell.json",
               {**figures, "provenance": provenance(seed=cfg.seed)})
    return figures

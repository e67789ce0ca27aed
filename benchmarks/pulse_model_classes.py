"""Which output family for the pulse network: held-out errors of the model classes tried.

    python benchmarks/pulse_model_classes.py [--epochs 60] [--hidden 64]

Fits the pulse-response network on the fit half of the cells of every shared pulse file with
each head, the same inputs, width, epochs and seed:

* ``mdn``: a Gaussian mixture in log10 G_after, two components relative to G_before (a pulse
  that changes G by a factor) and two absolute (a SET that ends at the gate-set compliance);
* ``quantile``: 15 monotone quantiles of log10(G_after / G_before) (pinball loss);

and prints, on the held-out half: the mean pinball loss of log10(G_after / G_before) at the 15
quantile levels (one pulse at a time from the measured state; lower is better), the SET-from-HRS
bins passing (mean 5 %, std 20 %) and the staircase bins passing (0.05, free run), as
:mod:`benchmarks.results_pulse` counts them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyaimc.data.pulses import load_pulses, record_kind  # noqa: E402
from pyaimc.device.pulse import TAU, PulseModel  # noqa: E402
from pyaimc.device.pulse_fidelity import (pinball_loss, pulse_model_sampler,  # noqa: E402
                                          set_from_hrs_table, staircase_table, summarize)

SHARED = ROOT.parent / "shared" / "data" / "radar_programming" / "pulses"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    files = sorted(SHARED.glob("*.csv"))
    if not files:
        print(f"{SHARED}: no pulse files", file=sys.stderr)
        return 2
    split = [load_pulses(f).split_cells() for f in files]
    fit = [a for a, _ in split]
    held = [b for _, b in split]
    set_recs = [d for d in held if record_kind(d.source) == "set_from_hrs"]
    stair_recs = [d for d in held if record_kind(d.source) == "staircase"]
    print(f"fit on {sum(len(d) for d in fit)} pulses, held out {sum(len(d) for d in held)}; "
          f"hidden {args.hidden}, {args.epochs} epochs")
    for head in ("mdn", "quantile"):
        t = time.time()
        m = PulseModel(head=head, hidden=args.hidden, epochs=args.epochs, seed=args.seed)
        m.fit(fit)
        t_fit = time.time() - t

        def q(d, m=m):
            out = np.empty((len(d), len(TAU)))
            for name, pol in (("set", 1), ("reset", -1)):
                s = d.polarity == pol
                if s.any():
                    v = d.v_bl[s] if pol == 1 else d.v_sl[s]
                    # over devices: the quantiles at latents -1, 0, 1 averaged (a quantile
                    # average, the same for both heads)
                    out[s] = np.mean([m.quantiles(name, d.g_before[s], v, d.v_wl[s], d.width[s],
                                                  e) for e in (-1.0, 0.0, 1.0)], axis=0)
            return out

        loss = pinball_loss(held, q, TAU)
        rng = np.random.default_rng(args.seed)
        a = summarize(set_from_hrs_table(set_recs, pulse_model_sampler(m), rng, n_rep=5),
                      ("mean_rel_err", "std_rel_err"))
        b = summarize(staircase_table(stair_recs, None, rng, n_rep=5, model=m),
                      ("max_abs_err",))
        print(f"{head:8s}: fit {t_fit:.0f} s; held-out pinball {loss:.5f} decades; SET from "
              f"HRS {a['passing']}/{a['bins']} bins (median mean err {a['median_mean_rel_err']:.1%}"
              f", median std err {a['median_std_rel_err']:.1%}); staircases {b['passing']}/"
              f"{b['bins']} bins (median err {b['median_max_abs_err']:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

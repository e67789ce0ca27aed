"""Demo stage 11 (`snn`): the spiking sequence-learning network in NEST with ideal and ReRAM synapses.

Trains the network of :mod:`pyaimc.apps.snn` on A D B E and F D B C (second order: after D B
only the first element tells E from C), once with ideal synapses and once with synapses that
are cells of the shipped RADAR pulse model (the fitted device: one SET/RESET pulse per update,
whose cycle-to-cycle spread is larger than the updates), and writes the scores and learning curves to ``snn.json`` and ``snn.png``.
"""

from __future__ import annotations

from pathlib import Path

from pyaimc.apps.snn import IdealSynapses, ReRAMSynapses, run_sequences
from pyaimc.io import OutputSet, provenance, write_json

EPISODES = 20


def demo_snn(out: Path) -> dict:
    from pyaimc.device import DeviceModel

    model = DeviceModel.load("radar_pulse-4-24-20")
    runs = {
        "ideal": lambda n, rng: IdealSynapses(n, rng),
        "reram fitted device": lambda n, rng: ReRAMSynapses(model, n, rng, variability=1.0),
    }
    results = {name: run_sequences(fac, episodes=EPISODES, seed=1) for name, fac in runs.items()}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, r in results.items():
        ep, err = zip(*r["curve"])
        ax.plot(ep, err, label=f"{name}: test {r['prediction_error']:.2f}")
    ax.set_xlabel("training episode")
    ax.set_ylabel("prediction error (last elements)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with OutputSet() as o:
        write_json(o.file(out / "snn.json"), {"schema": "pyaimc.demo_snn/1", "episodes": EPISODES,
                                              "runs": results,
                                              "provenance": provenance(seed=1)})
        fig.savefig(o.file(out / "snn.png"), dpi=120, format="png")
    plt.close(fig)
    return results

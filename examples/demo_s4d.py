"""Demo: a small S4D trained without and with a hardware noise model, deployed on it, and one
recurrent step checked against ngspice.

``demo_s4d(out_dir, noise_path)`` (a few minutes on two busy cores):

1. trains the ``tiny`` model widened to 24 channels and two blocks (8 states; ternary dense,
   ``B``, ``C`` weights, ``A`` at 8 bits) on MNIST-1D (4000 / 1000 sequences) in software,
   20 epochs;
2. trains it 4 more epochs hardware-aware with the noise model (``train.init_from``);
3. deploys both on the noise model (3 programming draws, recurrent step mode, every product on
   the behavioral tiles) and prints software and deployed accuracy;
4. runs one step of one test sequence with every product's currents from ngspice netlists of
   the programmed tiles and prints the agreement with the behavioral tiles (skipped with a
   message when ngspice is missing).

Writes ``out_dir/soft``, ``out_dir/hw`` (run directories) and ``out_dir/demo_s4d.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

from pyaimc.io import provenance, write_json

PRESET = "tiny"


def software_config():
    """The ``tiny`` model (24 channels, 2 blocks) on all of MNIST-1D, ternary weights (``A`` at
    8 bits), 20 epochs."""
    from pyaimc.experiments.config import QuantConfig, preset

    base = preset(PRESET)
    return dataclasses.replace(
        base, data=dataclasses.replace(base.data, train_size=None, test_size=None),
        quant=QuantConfig(a=8, b="ternary", c="ternary", dense="ternary", act=8),
        model=dataclasses.replace(base.model, d_model=24, n_layers=2),
        train=dataclasses.replace(base.train, epochs=20, batch_size=64, warmup_epochs=1))


def demo_s4d(out_dir, noise_path, draws: int = 3, threads: int = 1) -> dict:
    """Run the demo (see the module docstring) and return its figures.

    Parameters
    ----------
    out_dir : path
    noise_path : path
        A noise model (``pyaimc.noise/1``), e.g. ``pyaimc export noise`` of the example device.
    draws : int
        Programming draws of each deployment.
    threads : int
        Torch CPU threads (one is fastest on a shared machine).
    """
    import torch

    from pyaimc.experiments.datasets import load_data
    from pyaimc.experiments.deploy import deployed_accuracy
    from pyaimc.experiments.train import load_run, train
    from pyaimc.noise import NoiseModel

    torch.set_num_threads(threads)
    out = Path(out_dir)
    noise_path = str(noise_path)
    nm = NoiseModel.load(noise_path)
    tic = time.perf_counter()
    soft_cfg = software_config()
    soft = train(soft_cfg, out / "soft", progress=False)
    hw_cfg = dataclasses.replace(soft_cfg, noise=noise_path, train=dataclasses.replace(
        soft_cfg.train, epochs=4, lr=3e-3, ssm_lr=1e-3, warmup_epochs=0,
        init_from=str(out / "soft")))
    hw = train(hw_cfg, out / "hw", progress=False, deploy_draws=draws)
    data = load_data(soft_cfg.data)
    _, soft_model = load_run(out / "soft", software=True)
    soft_hw = deployed_accuracy(soft_model, data.x_test, data.y_test, nm, draws, seed=0)
    print(f"    tiny S4D on MNIST-1D ({len(data.y_test)} test sequences), deployed on "
          f"{noise_path} ({soft_hw['programming_method']}, {nm.tile.rows}x{nm.tile.cols} "
          f"tiles, r_wire {nm.tile.r_wire} ohm), {draws} programming draws:")
    for label, metrics, deployed in (("trained without noise", soft, soft_hw),
                                     ("hardware-aware", hw, hw["hardware"])):
        print(f"      {label:22s} software {metrics['software']['test_accuracy']:.3f}, "
              f"deployed {deployed['accuracy_mean']:.3f} +- {deployed['accuracy_std']:.3f}")
    check = None
    if shutil.which("ngspice") is None:
        print("    ngspice step check skipped: ngspice is not installed")
    else:
        from pyaimc.experiments.spice_step import ngspice_step_check

        _, hw_model = load_run(out / "hw", software=True)
        check = ngspice_step_check(hw_model, nm, data.x_test[:1], seed=0)
        print(f"    one recurrent step (step {check['step']}) through {check['netlists']} ngspice "
              f"netlists ({check['cells']} cells, r_wire {check['r_wire']:g} ohm): currents "
              f"within {check['current_rel_rms_max']:.2e} (relative rms, worst product) of the "
              f"behavioral tiles, step output within {check['output_rel_max']:.2e} (relative "
              f"max)" + ("" if check["transfer_heldout_rel_rms_error"] is None else
                         f"; the transfer model states "
                         f"{check['transfer_heldout_rel_rms_error']:.2e}"))
    summary = {
        "schema": "pyaimc.demo-s4d/1", "noise": noise_path,
        "software_run": {"software": soft["software"]["test_accuracy"],
                         "deployed": soft_hw},
        "hardware_aware_run": {"software": hw["software"]["test_accuracy"],
                               "deployed": hw["hardware"]},
        "ngspice_step": check, "seconds": time.perf_counter() - tic,
        "provenance": provenance(source=noise_path, seed=0),
    }
    write_json(out / "demo_s4d.json", summary)
    print(f"    wrote {out}/demo_s4d.json ({summary['seconds']:.0f} s)")
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="S4D hardware-aware training and deployment demo")
    p.add_argument("--out", default="out/demo/s4d")
    p.add_argument("--noise", required=True, metavar="NOISE.json")
    p.add_argument("--draws", type=int, default=3)
    args = p.parse_args(argv)
    demo_s4d(args.out, args.noise, args.draws)


if __name__ == "__main__":
    main()

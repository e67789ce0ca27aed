"""Issue 18, scale: wall time of the sequence network vs size, simulated time and NEST threads.

For each subpopulation size ``n_e`` (6 subpopulations, connection probability 0.2: the
synapses grow as ``n_e**2``) and each number of NEST threads, builds the network with ideal
synapses, presents the two sequences for a few training episodes and prints the wall time per
simulated second, split into NEST (``Simulate``), the plasticity rule (numpy), the synapse
update and setting the weights in NEST::

    python benchmarks/bench_nest_scaling.py --sizes 100 200 400 --threads 1 2 --episodes 4

MPI: the PyPI wheel of NEST is built without MPI (``nest.build_info["have_mpi"]`` is False);
the script prints it. Threads are NEST's OpenMP threads (``local_num_threads``). On a machine
whose cores are busy with other jobs, OpenMP's default busy wait made 2 threads 15-24x slower
than 1; run with ``OMP_WAIT_POLICY=passive`` there (docs/snn.md, "Scale").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pyaimc.apps.snn import IdealSynapses, ReRAMSynapses, encode  # noqa: E402
from pyaimc.apps.snn.network import NetworkParams, SequenceNetwork, import_nest  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--device", action="store_true", help="ReRAM synapses (median device)")
    a = ap.parse_args(argv)
    nest = import_nest()
    info = nest.GetKernelStatus("build_info")
    print(f"NEST {info['version']}, MPI {'yes' if info['have_mpi'] else 'no'}, threads model "
          f"{info['threads_model']}")
    seqs, alphabet = encode(["ADBE", "FDBC"])
    model = None
    if a.device:
        from pyaimc.device import DeviceModel
        model = DeviceModel.load("radar_pulse-4-24-20")
    print("n_e  neurons  synapses  threads  build_s  wall/sim_s  nest  rule  synapses  weights")
    for n_e in a.sizes:
        for th in a.threads:
            p = NetworkParams(n_e=n_e, rho=20, threads=th)
            rng = np.random.default_rng(0)
            t0 = time.perf_counter()
            fac = ((lambda n, rng=rng: ReRAMSynapses(model, n, rng, variability=0.0))
                   if a.device else (lambda n, rng=rng: IdealSynapses(n, rng)))
            net = SequenceNetwork(len(alphabet), fac, p, rng)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(a.episodes):
                for s in seqs:
                    net.present(s)
            wall = time.perf_counter() - t0
            sim = net.sim_time / 1e3
            tm = net.timers
            print(f"{n_e:4d} {net.n * 2 + len(alphabet):8d} {len(net.pre):9d} {th:8d} "
                  f"{build:8.1f} {wall / sim:11.2f} " + "  ".join(
                      f"{tm[k] / sim:.2f}" for k in ("nest", "rule", "synapses", "weights")),
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

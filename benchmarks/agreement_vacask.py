"""Agreement figures of the VACASK work, printed by one command.

1. I-V sweeps (8 devices x 20 cycles, 200 points, seed 3) of the Verilog-A module in VACASK and
   of the ngspice library against the Python twin: largest loop error relative to each device's
   peak current (the samples within 5 w_switch of a SET threshold left out, as in the tests),
   switching voltages on the continuous trace, R_HRS and R_LRS read from the sampled loops;
2. crossbars (16x16, 1 ohm wires, 4 input vectors) in VACASK against the fast solver: linear,
   polynomial and Verilog-A cells, TIA read-out with driver resistance, 1T1R level 1, 1T1R PSP 103;
3. the level-1 access transistor refitted to PSP 103: drain-current errors on the fitting grid and
   on held-out bias points, and a 16x16 1T1R read (37 vectors) at two gate voltages;
4. a SET pulse in a 3x3 1T1R array of .va cells under V/2 and V/3: which cells switched, against
   the twin's threshold rule.

Usage: python benchmarks/agreement_vacask.py [--model calibration_data/models/synaptogen_ref.json]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def sweeps(model) -> None:
    from pyaimc.compact.common import W_SWITCH, draw_devices
    from pyaimc.compact.simulate import (ngspice_sweeps, switching_voltages, twin_sweeps,
                                         vacask_sweeps)
    from pyaimc.data.sweeps import extract_features
    from pyaimc.device import triangular_sweep

    n_dev, n_cyc = 8, 20
    table = draw_devices(model, n_dev, n_cyc + 1, seed=3)
    u = triangular_sweep(points=200)
    twin, _ = twin_sweeps(model, table, u, n_cyc)
    peak = np.max(np.abs(twin), axis=(1, 2), keepdims=True)
    ambiguous = np.abs(u[None, None, :] - table["U_SET"][:, :-1, None]) < 5 * W_SWITCH
    b = extract_features(u, twin).data
    print(f"1. sweeps, {n_dev} devices x {n_cyc} cycles ({ambiguous.sum()} of {ambiguous.size} "
          f"samples within 5 w_switch of a SET threshold left out)")
    for name, run in (("VACASK (.va)", vacask_sweeps(model, table, u, n_cyc)),
                      ("ngspice (lib)", ngspice_sweeps(model, table, u, n_cyc))):
        err = np.abs(run.currents - twin) / peak
        u_set, u_reset = switching_voltages(run, len(u), n_cyc)
        a = extract_features(u, run.currents).data
        rel = {}
        for feat in ("R_HRS", "R_LRS"):
            x, y = a.feature(feat), b.feature(feat)
            ok = np.isfinite(x) & np.isfinite(y)
            rel[feat] = np.max(np.abs(x[ok] / y[ok] - 1))
        print(f"  {name:14s} loops {100 * err[~ambiguous].max():.3f} % of peak; U_SET "
              f"{1e3 * np.nanmax(np.abs(u_set - table['U_SET'][:, :-1])):.2f} mV, U_RESET "
              f"{1e3 * np.nanmax(np.abs(u_reset - table['U_RESET'][:, :-1])):.2f} mV; R_HRS "
              f"{100 * rel['R_HRS']:.3f} %, R_LRS {100 * rel['R_LRS']:.4f} %")


def crossbars(model, rng) -> None:
    from pyaimc.circuit import (AccessTransistor, Crossbar, CrossbarSolver, LinearCells,
                                PolynomialCells, RowDriver, TIAReadout, simulate)
    from pyaimc.circuit.cells import VerilogACells
    from pyaimc.compact.common import draw_devices
    from pyaimc.compact.veriloga import write_veriloga
    from pyaimc.spice.vacask import psp103

    n = 16
    g = rng.uniform(1e-6, 1e-4, (n, n))
    v = rng.uniform(0, 0.2, (4, n))
    print(f"\n2. crossbars {n}x{n}, 1 ohm wires, 4 vectors: VACASK against the fast solver "
          f"(largest difference / largest current)")
    with tempfile.TemporaryDirectory() as tmp:
        write_veriloga(Path(tmp) / "va", model, draw_devices(model, 1, 2, seed=0), osdi=True)
        cases = [
            ("linear", Crossbar(LinearCells(g), r_row=1, r_col=1), {}),
            ("polynomial", Crossbar(PolynomialCells.from_linear_cubic(g, 0.2, 0.2), r_row=1,
                                    r_col=1), {}),
            ("Verilog-A cells", Crossbar(VerilogACells(model, 1 / g, Path(tmp) / "va"), r_row=1,
                                         r_col=1), {}),
            ("TIA, 50 ohm drivers", Crossbar(PolynomialCells.from_linear_cubic(g, 0.2, 0.2),
                                             r_row=1, r_col=1, readout=TIAReadout(),
                                             driver=RowDriver(r_source=50)), {}),
            ("1T1R level 1", Crossbar(LinearCells(g), r_row=1, r_col=1,
                                      access=AccessTransistor()), {}),
            ("1T1R PSP 103", Crossbar(LinearCells(g), r_row=1, r_col=1,
                                      access=AccessTransistor()), {"mosfet": psp103()}),
        ]
        for name, xbar, opts in cases:
            got = simulate(xbar, v, "vacask", **opts)
            ref = CrossbarSolver(xbar).solve(v).column_currents
            print(f"  {name:22s} {np.max(np.abs(got - ref)) / np.max(np.abs(ref)):.2e}"
                  + ("   (fast: the generic level-1 stand-in)" if opts else ""))


def psp_refit(rng) -> None:
    from pyaimc.circuit import AccessTransistor, Crossbar, CrossbarSolver, LinearCells, simulate
    from pyaimc.circuit.transistor_fit import fit_level1
    from pyaimc.spice.vacask import psp103

    access, rep = fit_level1(psp103(), np.linspace(1.4, 1.8, 5), np.linspace(-0.2, 0.2, 21))
    f = rep["fitted"]
    print(f"\n3. level 1 refitted to PSP 103 (W/L 1 um / 100 nm; Vgs 1.4-1.8 V, Vds -0.2..0.2 V): "
          f"vto {f['vto']:.3f} V, kp {1e6 * f['kp']:.1f} uA/V^2, lambda {f['lambda']:.2g}")
    for grid in ("fit", "heldout"):
        r = rep[grid]
        print(f"  drain current, {grid:8s}: fitted max {100 * r['fitted']['max']:.2f} % rms "
              f"{100 * r['fitted']['rms']:.2f} %; generic max {100 * r['start']['max']:.1f} % "
              f"rms {100 * r['start']['rms']:.1f} %")
    n = 16
    g = 1.0 / 10 ** rng.uniform(4, 6, (n, n))
    x = np.vstack([np.linspace(-0.2, 0.2, 21)[:, None] * np.ones((1, n)),
                   rng.uniform(-0.2, 0.2, (16, n))])
    for v_gate in (1.8, 1.5):
        xbar = Crossbar(LinearCells(g), r_row=1, r_col=1, access=AccessTransistor(v_gate=v_gate))
        ref = simulate(xbar, x, "vacask", mosfet=psp103())
        generic = CrossbarSolver(xbar).solve(x).column_currents
        fitted = CrossbarSolver(replace(xbar, access=replace(access, v_gate=v_gate))).solve(x)
        s = np.max(np.abs(ref))
        print(f"  16x16 1T1R read, gate {v_gate} V, {len(x)} vectors: generic "
              f"{100 * np.max(np.abs(generic - ref)) / s:.3f} %, refitted "
              f"{100 * np.max(np.abs(fitted.column_currents - ref)) / s:.4f} % of the largest "
              f"column current")


def write_pulse(model) -> None:
    from pyaimc.compact.common import draw_devices
    from pyaimc.compact.write_transient import simulate_write

    table = draw_devices(model, 9, 2, seed=1)
    print("\n4. SET pulse, 1.5 V on cell (1, 1) of a 3x3 1T1R array (.va cells, PSP 103, gates "
          "3.3 V)")
    print(f"  U_SET of the cells: {np.round(table['U_SET'][:9, 0].reshape(3, 3), 3).tolist()}")
    for scheme, gates in (("V/2", "all"), ("V/2", "selected"), ("V/3", "all"),
                          ("V/3", "selected")):
        r = simulate_write(model, table, 3, 3, (1, 1), scheme=scheme, gates=gates)
        print(f"  {scheme} word lines {gates:8s}: switched {int(r.switched.sum())} "
              f"({np.argwhere(r.switched).tolist()}), as the twin's rule: "
              f"{bool(np.array_equal(r.switched, r.predicted))}; selected cell "
              f"{r.u_min[1, 1]:.3f} V, R {r.r_before[1, 1] / 1e3:.1f} -> "
              f"{r.r_after[1, 1] / 1e3:.2f} kohm; half-selected "
              f"{r.u_min[1, [0, 2]].round(3).tolist() + r.u_min[[0, 2], 1].round(3).tolist()} V "
              f"({r.seconds:.2f} s)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "calibration_data/models/synaptogen_ref.json"))
    p.add_argument("--write-model", default=str(ROOT / "calibration_data/models/example.json"))
    args = p.parse_args(argv)
    from pyaimc.device import DeviceModel

    model = DeviceModel.load(args.model)
    example = DeviceModel.load(args.write_model)
    rng = np.random.default_rng(0)
    sweeps(model)
    crossbars(example, rng)
    psp_refit(rng)
    write_pulse(example)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Drive cells with I-V sweeps in a circuit simulator and read the loops back.

Three ways to the same loops: :func:`ngspice_sweeps` (the B-source library in ngspice),
:func:`vacask_sweeps` (the Verilog-A module itself, compiled by OpenVAF, in VACASK) and
:func:`twin_sweeps` (the Python twin). All cells of a run share one piecewise-linear source and
each has its own 0 V sense source, so one simulator process simulates every device.

ngspice gets a PWL breakpoint at every waveform sample and the currents are taken there. VACASK
gets breakpoints only at the waveform's corners: a breakpoint at every sample resets its
integration order and history each time, and its step control then misses the switching
threshold by more (measured: 0.7 % of the peak current worst loop error with a breakpoint per
sample, below 0.3 % corner-only with ``tran_lteratio=0.1``); its currents are interpolated to the
sample times on a trace with at most ``dt/2`` between points.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyaimc.spice.ngspice import Transient, run_netlist
from pyaimc.compact.common import B_PATH, K_RESET, K_SWITCH, W_SWITCH
from pyaimc.compact.ngspice_lib import library_text


@dataclass
class SweepRun:
    """Loops simulated by a circuit simulator (ngspice or VACASK).

    Attributes
    ----------
    currents : ndarray (devices, cycles, points), A
        Current into each cell at every waveform sample.
    seconds : float
        Wall time of the simulator process (for VACASK without the OpenVAF build).
    n_timepoints : int
        Time points the simulator computed.
    dense_time, dense_voltage : ndarray (n_timepoints,)
        Every time point the simulator computed (s) and the applied voltage there (V).
    dense_currents : ndarray (devices, n_timepoints)
        The currents at every computed time point (A).
    """

    currents: np.ndarray
    seconds: float
    n_timepoints: int
    dense_time: np.ndarray
    dense_voltage: np.ndarray
    dense_currents: np.ndarray


def sweep_netlist(model, table: dict, waveform: np.ndarray, n_cycles: int, dt: float = 1e-6,
                  k_switch: float = K_SWITCH, w_switch: float = W_SWITCH,
                  b_path: float = B_PATH, k_reset: float = K_RESET, reltol: float = 1e-4,
                  method: str = "gear") -> tuple[str, np.ndarray]:
    """Netlist text for ``n_cycles`` repetitions of ``waveform`` on every device of ``table``.

    Returns the text and the sample times (s).
    """
    n_dev = table["R_HRS"].shape[0]
    wave = np.tile(np.asarray(waveform, dtype=np.float64), n_cycles)
    times = np.arange(len(wave)) * dt
    pwl = " ".join(f"{t:.12g} {v:.12g}" for t, v in zip(times, wave))
    lines = ["* pyaimc: I-V sweeps of ReRAM cells",
             library_text(model, table, k_switch=k_switch, w_switch=w_switch, b_path=b_path,
                          k_reset=k_reset),
             f"Vsweep drive 0 PWL({pwl})"]
    for d in range(n_dev):
        lines += [f"Vsense{d} drive n{d} 0", f"X{d} n{d} 0 pyaimc_reram_d{d}"]
    # itl4: Newton iterations per time point; the switching transitions need more than the default.
    # Gear integration: the trapezoidal rule rings on the stiff one-sided RESET drive (time
    # constant 1/k_reset, far below the time step) and the drive keeps the overshoot
    lines += [f".options reltol={reltol:g} itl4=100 method={method}", ".end"]
    return "\n".join(lines) + "\n", times


def ngspice_sweeps(model, table: dict, waveform: np.ndarray, n_cycles: int, dt: float = 1e-6,
                   timeout: float = 600.0, transport: str | None = None, **kwargs) -> SweepRun:
    """Simulate the sweeps in ngspice (batch mode) and return the loops.

    Parameters
    ----------
    model : DeviceModel
    table : dict name -> ndarray (devices, cycles)
        Replayed cycles (at least ``n_cycles + 1`` columns: the last RESET draws the next one).
    waveform : ndarray (points,)
        One cycle, V (e.g. :func:`pyaimc.device.triangular_sweep`).
    n_cycles : int
    dt : float
        Time per waveform sample, s.
    timeout : float
        Wall-clock limit of the ngspice run, s.
    transport : {"auto", "shared", "batch"}, optional
        Way into ngspice (:func:`pyaimc.spice.ngspice.run_netlist`).
    **kwargs
        ``k_switch``, ``w_switch``, ``b_path``, ``k_reset``, ``reltol``, ``method``.
    """
    text, times = sweep_netlist(model, table, waveform, n_cycles, dt, **kwargs)
    n_dev = table["R_HRS"].shape[0]
    start = time.perf_counter()
    vec = run_netlist(text, Transient(step=dt, stop=times[-1], max_step=dt / 2),
                      save=[f"i(vsense{d})" for d in range(n_dev)], timeout=timeout,
                      transport=transport)
    seconds = time.perf_counter() - start
    t = vec["time"]
    # the last computed point at each sample time (ngspice may write a breakpoint twice)
    idx = np.searchsorted(t, times + 1e-6 * dt, side="right") - 1
    if np.max(np.abs(t[idx] - times)) > 1e-6 * dt:
        raise RuntimeError("ngspice did not compute a point at every waveform sample")
    dense = np.stack([vec[f"i(vsense{d})"] for d in range(n_dev)])
    cur = dense[:, idx]
    volts = np.interp(t, times, np.tile(np.asarray(waveform, dtype=np.float64), n_cycles))
    return SweepRun(cur.reshape(n_dev, n_cycles, len(waveform)), seconds, len(t), t, volts, dense)


def switching_voltages(run: SweepRun, points: int, n_cycles: int, dt: float = 1e-6
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Switching voltages of every device and cycle on ngspice's continuous trace.

    SET: where the chord conductance ``|I/U|`` on the falling negative branch crosses the
    geometric mean of its values at the branch's start (HRS) and end (LRS), interpolated between
    the computed points. RESET onset: the voltage of the largest current on the rising positive
    branch (the path falls from there). Returns (u_set, u_reset), each (devices, cycles), V; NaN
    where a cycle did not switch.
    """
    n_dev = run.dense_currents.shape[0]
    q = points // 4
    u_set = np.full((n_dev, n_cycles), np.nan)
    u_reset = np.full((n_dev, n_cycles), np.nan)
    t, v = run.dense_time, run.dense_voltage
    for c in range(n_cycles):
        t0 = c * points * dt
        # waveform samples: 0..q-1 fall to U_min, q..3q-1 rise to U_max, then back to 0
        fall = (t > t0 + 0.5 * dt) & (t <= t0 + (q - 1) * dt)
        rise = (t >= t0 + 2 * q * dt) & (t <= t0 + (3 * q - 1) * dt)
        for d in range(n_dev):
            g = np.abs(run.dense_currents[d, fall] / v[fall])
            mid = np.sqrt(g[0] * g[-1])
            above = np.flatnonzero(g > mid)
            if g[-1] > 1.2 * g[0] and len(above) and above[0] > 0:
                k = above[0]
                lg = np.log([g[k - 1], g[k]])
                a = (np.log(mid) - lg[0]) / (lg[1] - lg[0])
                u_set[d, c] = v[fall][k - 1] + a * (v[fall][k] - v[fall][k - 1])
            cur = run.dense_currents[d, rise]
            k = int(np.argmax(cur))
            if 0 < k < len(cur) - 1:
                u_reset[d, c] = v[rise][k]
    return u_set, u_reset


def twin_sweeps(model, table: dict, waveform: np.ndarray, n_cycles: int) -> tuple[np.ndarray, dict]:
    """The same sweeps through the Python twin replaying ``table`` (float64, noise-free)."""
    from pyaimc.device.cells import simulate_sweeps

    cells = model.cells(table["R_HRS"].shape[0], np.random.default_rng(0), dtype=np.float64,
                        table=table, n_threads=1)
    return simulate_sweeps(cells, waveform, n_cycles)


def corner_points(times: np.ndarray, volts: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Indices of the samples where a piecewise-linear waveform changes slope (ends included)."""
    slope = np.diff(volts) / np.diff(times)
    scale = max(np.max(np.abs(slope)), 1e-300)
    bend = np.flatnonzero(np.abs(np.diff(slope)) > rtol * scale) + 1
    return np.unique(np.concatenate([[0], bend, [len(times) - 1]]))


def vacask_netlist(osdi: str | os.PathLike, card: str | os.PathLike, n_devices: int,
                   waveform: np.ndarray, n_cycles: int, dt: float = 1e-6, reltol: float = 1e-4,
                   lteratio: float = 0.1, method: str = "gear2",
                   name: str = "pyaimc_reram_fit") -> tuple[str, np.ndarray]:
    """VACASK netlist of ``n_cycles`` repetitions of ``waveform`` on devices 0..n_devices-1.

    Parameters
    ----------
    osdi, card : path
        The compiled module and the VACASK model card (``pyaimc export veriloga --osdi``).
    n_devices : int
    waveform : ndarray (points,)
        One cycle, V.
    n_cycles : int
    dt : float
        Time per waveform sample, s.
    reltol, lteratio, method : float, float, str
        VACASK's ``reltol``, ``tran_lteratio`` and ``tran_method``: the state drives need a tight
        truncation-error control near the switching thresholds (``reltol <= 1e-4``) and
        ``gear2`` (the trapezoidal rule rings on the one-sided RESET drive).
    name : str
        Model card name.

    Returns the text and the sample times (s).
    """
    from pyaimc.spice.vacask import instance, pwl_source

    wave = np.tile(np.asarray(waveform, dtype=np.float64), n_cycles)
    times = np.arange(len(wave)) * dt
    keep = corner_points(times, wave)
    lines = ["pyaimc: I-V sweeps of ReRAM cells (VACASK, OSDI module from OpenVAF)",
             f'load "{Path(osdi).resolve()}"', f'include "{Path(card).resolve()}"',
             "model vsource vsource",
             pwl_source("vsweep", "drive", "0", times[keep], wave[keep])]
    for d in range(n_devices):
        lines += [instance(f"vsense{d}", ("drive", f"n{d}"), "vsource", dc=0.0),
                  instance(f"x{d}", (f"n{d}", "0"), name, device=d)]
    lines += ["control",
              f'  options tran_method="{method}" reltol={reltol:g} tran_lteratio={lteratio:g}',
              f"  analysis tran1 tran step={dt:g} stop={times[-1]:.12g} maxstep={dt / 2:g}",
              "endc"]
    return "\n".join(lines) + "\n", times


def vacask_sweeps(model, table: dict, waveform: np.ndarray, n_cycles: int, dt: float = 1e-6,
                  timeout: float = 600.0, workdir: str | os.PathLike | None = None,
                  exported: str | os.PathLike | None = None, **kwargs) -> SweepRun:
    """Simulate the sweeps in VACASK running the Verilog-A module and return the loops.

    The module is exported with ``table`` as its cycle table and compiled with OpenVAF (cached by
    content, a few seconds the first time), then one VACASK process runs every device.

    Parameters
    ----------
    model : DeviceModel
    table : dict name -> ndarray (devices, cycles)
        Replayed cycles (at least ``n_cycles + 1`` columns: the last RESET draws the next one).
    waveform : ndarray (points,)
        One cycle, V (e.g. :func:`pyaimc.device.triangular_sweep`).
    n_cycles : int
    dt : float
        Time per waveform sample, s.
    timeout : float
        Wall-clock limit of the VACASK process, s.
    workdir : path, optional
        Keep the exported module, netlist and raw file here (default: a temporary folder).
    exported : path, optional
        A folder written by ``pyaimc export veriloga --osdi`` whose devices 0..n-1 replay
        ``table`` (it may hold more devices and cycles): used as it is, no build.
    **kwargs
        ``reltol``, ``lteratio``, ``method`` of :func:`vacask_netlist`.
    """
    import tempfile

    from pyaimc.compact.veriloga import write_veriloga
    from pyaimc.spice.vacask import flow, run_vacask

    n_dev = table["R_HRS"].shape[0]
    with tempfile.TemporaryDirectory(prefix="pyaimc-va-sweeps-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        va = Path(exported) if exported is not None else work / "va"
        if exported is None:
            write_veriloga(va, model, table, osdi=True)
        text, times = vacask_netlist(va / "pyaimc_reram.osdi", va / "model_card.vacask", n_dev,
                                     waveform, n_cycles, dt, **kwargs)
        start = time.perf_counter()
        res, _ = run_vacask(text, ["tran1"], timeout=timeout,
                            cwd=work if workdir is not None else None)
        seconds = time.perf_counter() - start
    vec = res["tran1"]
    t = vec["time"]
    dense = np.stack([vec[flow(f"vsense{d}")] for d in range(n_dev)])
    # a point computed twice (a breakpoint) keeps its last value: interpolate on unique times
    t_u, last = np.unique(t[::-1], return_index=True)
    idx = len(t) - 1 - last
    cur = np.stack([np.interp(times, t_u, row[idx]) for row in dense])
    volts = vec["drive"]
    return SweepRun(cur.reshape(n_dev, n_cycles, len(waveform)), seconds, len(t), t, volts,
                    dense)

"""A SET pulse in a small 1T1R array of Verilog-A ReRAM cells, in VACASK: the V/2 and V/3 schemes
and the disturb they leave on half-selected cells.

Array (rows x cols): cell (i, j) has its top electrode on bit line ``r{i}`` (a row) and its
bottom electrode on the drain of its access transistor, whose source is on source line ``c{j}``
(a column) and whose gate is word line ``wl{i}``. Every cell is an instance of
``pyaimc_reram.va`` (compiled by OpenVAF) replaying its row of a cycle table, starting in that
row's first HRS; transistors are OSDI MOSFETs (PSP 103 by default).

A SET needs the top electrode below the bottom one (``U = V(te) - V(be) < U_SET < 0``). All
voltages are kept >= 0 so that no source or drain junction is forward biased: the selected
column is driven to ``v_write``, the selected row held at 0 and, for the others:

==========  ======================  ========================  ==========================
scheme      unselected rows         unselected columns        cells see
==========  ======================  ========================  ==========================
``V/2``     ``v_write / 2``         ``v_write / 2``           -v/2 half-selected, 0 others
``V/3``     ``2 v_write / 3``       ``v_write / 3``           -v/3 half-selected, +v/3 others
==========  ======================  ========================  ==========================

Word lines: ``gates="all"`` turns every access transistor on (the array behaves like a 1R
crossbar: the worst case), ``gates="selected"`` only the selected row's. The gate voltage sets the
SET compliance (the transistor limits the current once the cell is in its LRS).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMES = ("V/2", "V/3")


@dataclass
class WriteResult:
    """What a write pulse did to every cell of the array.

    Attributes
    ----------
    r_before, r_after : ndarray (rows, cols)
        Read resistance (at the model's ``u_read``) before and after the pulse, ohm.
    u_min : ndarray (rows, cols)
        Most negative voltage across each cell during the pulse, V.
    u_set : ndarray (rows, cols)
        Each cell's SET threshold (its table row's first ``U_SET``), V.
    switched : ndarray of bool (rows, cols)
        Cells whose resistance changed by more than 1 %.
    time : ndarray (T,)
        Time points VACASK computed, s.
    seconds : float
        Wall time of the VACASK run (without the OpenVAF build).
    """

    r_before: np.ndarray
    r_after: np.ndarray
    u_min: np.ndarray
    u_set: np.ndarray
    switched: np.ndarray
    time: np.ndarray
    seconds: float

    @property
    def predicted(self) -> np.ndarray:
        """Cells the twin's threshold rule switches: the voltage reached below ``U_SET``."""
        return self.u_min < self.u_set


def write_levels(rows: int, cols: int, target: tuple[int, int], v_write: float,
                 scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column voltages (V) of a SET of ``target`` under ``scheme`` (see the module)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if not v_write > 0:
        raise ValueError(f"v_write is the (positive) column drive of a SET, got {v_write}")
    i0, j0 = target
    if not (0 <= i0 < rows and 0 <= j0 < cols):
        raise ValueError(f"target {target} is outside the {rows}x{cols} array")
    frac_row, frac_col = (0.5, 0.5) if scheme == "V/2" else (2.0 / 3.0, 1.0 / 3.0)
    v_rows = np.full(rows, frac_row * v_write)
    v_cols = np.full(cols, frac_col * v_write)
    v_rows[i0] = 0.0
    v_cols[j0] = v_write
    return v_rows, v_cols


def simulate_write(model, table: dict, rows: int, cols: int, target: tuple[int, int], *,
                   v_write: float = 1.5, scheme: str = "V/2", gates: str = "all",
                   v_gate: float = 3.3, mosfet=None, t_edge: float = 100e-9,
                   t_width: float = 1e-6, timeout: float = 600.0,
                   workdir: str | os.PathLike | None = None) -> WriteResult:
    """Simulate one SET pulse on ``target`` in VACASK and read every cell before and after.

    Parameters
    ----------
    model : DeviceModel
    table : dict name -> ndarray (devices, cycles)
        Cycle table; cell (i, j) replays row ``i * cols + j`` (needs rows * cols devices).
    rows, cols : int
    target : (int, int)
        The cell to SET.
    v_write : float
        Column drive of the SET, V (> 0).
    scheme : {"V/2", "V/3"}
    gates : {"all", "selected"}
        Word lines on during the pulse.
    v_gate : float
        Word-line voltage when on, V.
    mosfet : pyaimc.spice.vacask.MosfetModel, optional
        Access transistor (default PSP 103, W/L = 1 um / 100 nm).
    t_edge, t_width : float
        Rise/fall time and flat top of the pulse, s.
    timeout : float
        VACASK limit, s.
    workdir : path, optional
        Keep the module, netlist and raw file here.
    """
    import time as _time

    from pyaimc.compact.veriloga import write_veriloga
    from pyaimc.spice.vacask import (instance, model_card, number, psp103, pwl_source,
                                     run_vacask)

    if gates not in ("all", "selected"):
        raise ValueError(f"gates must be 'all' or 'selected', got {gates!r}")
    n_dev = table["R_HRS"].shape[0]
    if n_dev < rows * cols:
        raise ValueError(f"the table has {n_dev} devices, the array needs {rows * cols}")
    mosfet = mosfet or psp103()
    v_rows, v_cols = write_levels(rows, cols, target, v_write, scheme)
    t = np.array([0.0, 100e-9, 100e-9 + t_edge, 100e-9 + t_edge + t_width,
                  100e-9 + 2 * t_edge + t_width, 300e-9 + 2 * t_edge + t_width])
    shape = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    stop = float(t[-1])
    iv = model.iv_
    with tempfile.TemporaryDirectory(prefix="pyaimc-write-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        write_veriloga(work / "va", model, table, osdi=True)
        lines = [f"pyaimc: {scheme} SET of cell {target} in a {rows}x{cols} 1T1R array",
                 f'load "{work / "va" / "pyaimc_reram.osdi"}"',
                 f'include "{work / "va" / "model_card.vacask"}"',
                 f'load "{mosfet.osdi_path()}"', "model vsource vsource",
                 model_card("nacc", mosfet.module, dict(mosfet.params)).rstrip()]
        for i in range(rows):
            lines.append(pwl_source(f"vbl{i}", f"r{i}", "0", t, v_rows[i] * shape))
            on = gates == "all" or i == target[0]
            lines.append(pwl_source(f"vwl{i}", f"wl{i}", "0", t, (v_gate if on else 0.0) * shape))
        for j in range(cols):
            lines.append(pwl_source(f"vsl{j}", f"c{j}", "0", t, v_cols[j] * shape))
        for i in range(rows):
            for j in range(cols):
                lines.append(instance(f"x{i}_{j}", (f"r{i}", f"m{i}_{j}"), "pyaimc_reram_fit",
                                      device=i * cols + j))
                lines.append(instance(f"macc{i}_{j}", (f"m{i}_{j}", f"wl{i}", f"c{j}", "0"),
                                      "nacc", **dict(mosfet.instance)))
        lines += ["control",
                  '  options tran_method="gear2" reltol=1e-4 tran_lteratio=0.1',
                  f"  analysis tran1 tran step={number(t_edge / 20)} stop={number(stop)} "
                  f"maxstep={number(t_edge / 4)}", "endc"]
        start = _time.perf_counter()
        res, _ = run_vacask("\n".join(lines) + "\n", ["tran1"], timeout=timeout,
                            cwd=work if workdir is not None else None)
        seconds = _time.perf_counter() - start
    vec = res["tran1"]
    st = np.array([[vec[f"x{i}_{j}:st"] for j in range(cols)] for i in range(rows)])
    u = np.array([[vec[f"r{i}"] - vec[f"m{i}_{j}"] for j in range(cols)] for i in range(rows)])
    r_before = iv.resistance_from_state(st[..., 0])
    r_after = iv.resistance_from_state(st[..., -1])
    u_set = table["U_SET"][: rows * cols, 0].reshape(rows, cols)
    return WriteResult(r_before=r_before, r_after=r_after, u_min=u.min(axis=-1), u_set=u_set,
                       switched=np.abs(r_after / r_before - 1) > 0.01, time=vec["time"],
                       seconds=seconds)

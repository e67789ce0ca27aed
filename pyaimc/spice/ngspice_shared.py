"""ngspice as a shared library, through PySpice: runs in the calling process, vectors straight to
numpy (:mod:`pyaimc.spice.ngspice_worker` runs this in a worker process, the default).

Batch mode (``ngspice -b``, :func:`pyaimc.spice.ngspice.run_ngspice`) starts a process, writes
the netlist and a raw file and parses it back for every run: about 20 ms of overhead, which
dominates when a job runs hundreds of small netlists (one recurrent step of an S4D model on
crossbar tiles). Here ``libngspice`` stays loaded in this process (PySpice's ``NgSpiceShared``),
the netlist goes in as lines and the vectors come out of ngspice's memory.

What PySpice does not do, done here:

- Debian ships ``libngspice.so.0`` without the ``libngspice.so`` development link PySpice looks
  for: the library is located with :func:`ctypes.util.find_library` (``$NGSPICE_LIBRARY_PATH``
  still wins);
- a time budget: the simulation runs in ngspice's background thread (``bg_run``) and is halted
  (``bg_halt``) when the budget is spent;
- failures are judged like batch mode's, by the phrases of ngspice's output (PySpice raises on
  any line ngspice writes to stderr, including harmless notes), and the exception carries the
  output's tail;
- one circuit at a time: every run removes its circuit and its plots (ngspice would keep them all);
  a lock serialises threads, a process forked after the library was loaded loads its own.

PySpice 1.5 warns that it does not know ngspice 39 ("Unsupported Ngspice version"); the calls used
here are the same in every ngspice with the shared-library interface (version 26 on).
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import re
import threading
import time
import warnings

import numpy as np

#: Default wall-clock limit for one run, seconds.
DEFAULT_TIMEOUT = 600.0
#: Lines of ngspice's output quoted in exceptions.
LOG_TAIL_LINES = 25
_POLL = 2e-4      # s between checks of the background thread

_FATAL = re.compile(
    r"simulation\(s\) aborted|simulation interrupted|dc solution failed|timestep too small|"
    r"no convergence|singular matrix|^\s*error\b|fatal|could not find|unknown subckt|"
    r"unable to find definition", re.IGNORECASE | re.MULTILINE)
_CONVERGENCE = re.compile(
    r"timestep too small|singular matrix|no convergence|dc solution failed|"
    r"gmin stepping failed|source stepping failed|iteration limit", re.IGNORECASE)

_lock = threading.Lock()
_state: dict = {"pid": None, "ng": None, "error": None}


class SharedNgspiceUnavailable(RuntimeError):
    """PySpice or the ngspice shared library cannot be loaded in this process (``auto`` falls
    back to batch mode)."""


def library_path() -> str | None:
    """The ngspice shared library PySpice should load, or None when none is found."""
    env = os.environ.get("NGSPICE_LIBRARY_PATH")
    if env:
        return env
    return ctypes.util.find_library("ngspice")


def _instance():
    """PySpice's ``NgSpiceShared`` for this process (loaded on first use)."""
    pid = os.getpid()
    if _state["pid"] == pid:
        if _state["ng"] is None:
            raise SharedNgspiceUnavailable(_state["error"])
        return _state["ng"]
    _state.update(pid=pid, ng=None, error=None)
    path = library_path()
    if path is None:
        _state["error"] = ("the ngspice shared library is not installed (Debian/Ubuntu: apt-get "
                           "install libngspice0)")
        raise SharedNgspiceUnavailable(_state["error"])
    # PySpice logs every line ngspice writes to stderr as an error (gmin-stepping notes too) and
    # a warning about ngspice 39; what matters reaches the caller in the exception
    logging.getLogger("PySpice.Spice.NgSpice.Shared").setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unsupported Ngspice version")
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared

            shared = _shared_class(NgSpiceShared)
            shared.LIBRARY_PATH = path
            # a forked child inherits the parent's instance table but not its ngspice thread
            NgSpiceShared._instances.clear()
            shared._instances.clear()
            ng = shared.new_instance()
    except ImportError:
        _state["error"] = "PySpice is not installed (pip install 'pyaimc[spice]')"
        raise SharedNgspiceUnavailable(_state["error"]) from None
    except OSError as err:
        _state["error"] = f"cannot load the ngspice shared library {path}: {err}"
        raise SharedNgspiceUnavailable(_state["error"]) from None
    _state["ng"] = ng
    return ng


def _shared_class(base):
    """PySpice's ``NgSpiceShared`` with a background-thread callback that works.

    PySpice 1.5's callback returns None where ngspice's C interface expects an int (cffi prints
    an error at every ``bg_run``); this one returns 0 and signals the end of the run (waiting on an
    event costs nothing; polling ``ngSpice_running`` costs its interval on every small run).
    """
    from PySpice.Spice.NgSpice.Shared import ffi

    class _Shared(base):
        def __init__(self, *args, **kwargs):
            self.pyaimc_done = threading.Event()
            self.pyaimc_log: list[str] = []
            super().__init__(*args, **kwargs)

        def send_char(self, message, ngspice_id):
            # stdout and stderr in the order ngspice wrote them (PySpice keeps two lists)
            self.pyaimc_log.append(message.partition(" ")[2])
            return 0

        @staticmethod
        def _background_thread_running(stopped, ngspice_id, user_data):
            # ngspice passes false when its background thread starts, true when it ends
            # (measured with ngspice 39; the flag's name in sharedspice.h says the opposite)
            self = ffi.from_handle(user_data)
            self._is_running = not stopped
            if stopped:
                self.pyaimc_done.set()
            return 0

    return _Shared


def installed() -> bool:
    """PySpice and a libngspice are installed (cheap: nothing is loaded), and no worker has
    reported them unusable in this process."""
    import importlib.util

    return (not _state.get("unusable") and library_path() is not None
            and importlib.util.find_spec("PySpice") is not None)


def mark_unavailable() -> None:
    """Remember that the shared library cannot run here (``auto`` then uses batch mode)."""
    _state["unusable"] = True


def available() -> bool:
    """True when ngspice can run in this process through PySpice."""
    try:
        with _lock:
            _instance()
    except SharedNgspiceUnavailable:
        return False
    return True


def _tail(lines: list[str], most: int = LOG_TAIL_LINES) -> str:
    kept = [ln.rstrip() for ln in lines if ln.strip()]
    return "\n".join(kept[-most:])


def _command(ng, command: str) -> None:
    """``ngSpice_Command`` without PySpice's raise-on-any-stderr (harmless notes go there)."""
    from PySpice.Spice.NgSpice.Shared import NgSpiceCommandError

    try:
        ng.exec_command(command)
    except NgSpiceCommandError:
        pass


def _halt(ng, lib) -> None:
    """Stop a background run and leave ngspice clean.

    A halted analysis stays half-done inside ngspice, and a process that exits then dies in
    ngspice's clean-up (SIGSEGV, measured with ngspice 39); one complete run of a trivial circuit
    after it restores a clean state.
    """
    from PySpice.Spice.NgSpice.Shared import NgSpiceCircuitError

    _command(ng, "bg_halt")
    ng.pyaimc_done.wait(10.0)
    deadline = time.monotonic() + 10.0
    while lib.ngSpice_running() and time.monotonic() < deadline:
        time.sleep(_POLL)
    for command in ("destroy all", "remcirc"):
        _command(ng, command)
    try:
        ng.load_circuit("pyaimc: clean-up\nV1 a 0 0\nR1 a 0 1\n.op\n.end\n")
    except NgSpiceCircuitError:
        pass
    ng.pyaimc_done.clear()
    _command(ng, "bg_run")
    ng.pyaimc_done.wait(10.0)
    deadline = time.monotonic() + 10.0
    while lib.ngSpice_running() and time.monotonic() < deadline:
        time.sleep(_POLL)
    # the caller removes this circuit and its plot (a second remcirc with no circuit left
    # crashes ngspice at exit too)


def _vector_name(name: str) -> str:
    # the names batch mode's raw files give (pyaimc.spice.ngspice.normalise_name)
    name = name.strip().lower()
    if name.endswith("#branch"):
        return f"i({name[:-7]})"
    if "(" in name or name in ("time", "frequency", "v-sweep", "i-sweep", "temp-sweep"):
        return name
    return f"v({name})"


def run_shared(netlist: str, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, np.ndarray]:
    """Run a complete netlist (with its analysis line) in the ngspice shared library.

    Parameters
    ----------
    netlist : str
        Title line first, ``.end`` last, one analysis (``.op``, ``.tran`` ...).
    timeout : float
        Wall-clock limit, s: the run is halted when it is spent.

    Returns
    -------
    dict name -> ndarray
        The vectors of the analysis' plot, named as in batch mode (``v(node)``, ``i(source)``,
        ``time``).

    Raises
    ------
    SharedNgspiceUnavailable
        PySpice or libngspice is missing (use batch mode).
    pyaimc.spice.ngspice.NgspiceError and subclasses
        The circuit failed to load or converge, or ran past ``timeout``.
    """
    from pyaimc.spice.ngspice import (NgspiceConvergenceError, NgspiceError,
                                        NgspiceTimeoutError, _failure_lines, log_tail)

    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    with _lock:
        ng = _instance()
        lib = ng._ngspice_shared                     # PySpice's cffi handle on libngspice
        ng.clear_output()
        ng.pyaimc_log = []
        lines = [ln for ln in netlist.splitlines() if ln.strip()] + [""]
        from PySpice.Spice.NgSpice.Shared import NgSpiceCircuitError

        try:
            ng.load_circuit("\n".join(lines))
        except NgSpiceCircuitError:
            pass
        log = ng.pyaimc_log
        try:
            bad = _FATAL.search("\n".join(log))
            if bad:
                raise NgspiceError(f"ngspice could not load the circuit: {bad.group(0)}",
                                   _tail(log))
            ng.pyaimc_done.clear()
            _command(ng, "bg_run")
            try:
                finished = ng.pyaimc_done.wait(timeout)
            except BaseException:
                # Ctrl-C or SIGTERM (raised in this thread): stop ngspice's thread first
                _halt(ng, lib)
                raise
            if not finished:
                _halt(ng, lib)
                raise NgspiceTimeoutError(f"ngspice did not finish within {timeout:g} s",
                                          _tail(ng.pyaimc_log))
            log = ng.pyaimc_log
            text = "\n".join(log)
            if _FATAL.search(text):
                cls = NgspiceConvergenceError if _CONVERGENCE.search(text) else NgspiceError
                raise cls("ngspice failed: " + " | ".join(_failure_lines(text)), log_tail(text))
            plot = ng.last_plot
            if plot == "const":
                raise NgspiceError("ngspice ran no analysis (no analysis line?)", _tail(log))
            vectors = {_vector_name(name): np.array(vec._data, copy=True)
                       for name, vec in ng.plot(None, plot).items()}
        finally:
            # one circuit and one plot at a time: ngspice would keep every one of them
            _command(ng, "destroy all")
            _command(ng, "remcirc")
    if not vectors or any(v.size == 0 for v in vectors.values()):
        raise NgspiceError("ngspice's output holds a vector without points", _tail(log))
    return vectors

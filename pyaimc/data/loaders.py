"""Loaders for calibration data: NPZ arrays, RADAR-style HRS/LRS cycling tables, long CSV.

Every loader returns a :class:`~pyaimc.data.container.CycleData` and raises
:class:`~pyaimc.data.container.DataError` naming the file, the row or cell and what was expected.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from pyaimc.data import plausibility
from pyaimc.data.container import KNOWN_UNITS, CycleData, DataError

FORMATS = ("npz", "radar", "long-csv")


def _unit(name: str) -> str:
    return KNOWN_UNITS.get(name, "")


def existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a readable regular file; else one clear error.

    A directory, FIFO or device given as a data file would fail late or block forever.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a FIFO, socket or device)"
        raise DataError(f"{path}: is {kind}; expected a data file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: not readable (permission denied)")
    return path


def read_text(path: Path) -> str:
    """The text of a data file: UTF-8, a byte-order mark dropped, undecodable bytes replaced."""
    return path.read_text(encoding="utf-8-sig", errors="replace")


def validate_values(values: np.ndarray, missing: np.ndarray, names, source: str,
                    cell_ids=None, plausible: bool = True) -> None:
    """Check physical sanity of feature values; raise DataError on the first violation.

    Rules: every present value is finite; resistances (``R_*``) are > 0; ``U_SET`` < 0 (SET is on
    the negative branch); ``U_RESET`` > 0; and, unless ``plausible`` is False, every value lies in
    its range of :mod:`pyaimc.data.plausibility`.
    """
    def where(i, j):
        cell = cell_ids[i] if cell_ids is not None else i
        return f"{source}: cell {cell} (row {i}), cycle {j}"

    present = ~missing
    bad = present & ~np.isfinite(values)
    if bad.any():
        i, j, k = np.argwhere(bad)[0]
        raise DataError(f"{where(i, j)}: {names[k]} is {values[i, j, k]} "
                        f"({int(bad.sum())} non-finite values in all); expected a finite number")
    for k, name in enumerate(names):
        v = values[:, :, k]
        if name.startswith("R_"):
            bad = present[:, :, k] & (v <= 0)
            expected = "a resistance > 0 ohm"
        elif name == "U_SET":
            bad = present[:, :, k] & (v >= 0)
            expected = "a negative SET voltage (SET switches on the negative branch)"
        elif name == "U_RESET":
            bad = present[:, :, k] & (v <= 0)
            expected = "a positive RESET voltage"
        else:
            continue
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"{where(i, j)}: {name} = {v[i, j]:g}; expected {expected} "
                            f"({int(bad.sum())} such values)")
    if plausible:
        for k, name in enumerate(names):
            key = plausibility.quantity(name)
            if key is not None:
                v = np.where(present[:, :, k], values[:, :, k], np.nan)
                plausibility.check(v, key, source, lambda idx: where(*idx)[len(source) + 2:],
                                   name)


def load_npz(path: str | os.PathLike, features=None, plausible: bool = True) -> CycleData:
    """Load cells x cycles arrays, one per feature, from an ``.npz`` file.

    Parameters
    ----------
    path : path
        File with 2-D arrays named after features (``R_HRS``, ``U_SET``, ``R_LRS``, ``U_RESET`` or
        others, ohms and volts). 1-D arrays with one entry per cell (e.g. ``gmm_component``) become
        ``cell_labels``; NaN in a feature array marks a missing value only if a boolean array
        ``missing`` (cells x cycles x features) says so.
    features : sequence of str, optional
        Which arrays to use as features, in order. Default: every 2-D array, in the file's order.
    plausible : bool
        Check every value against :mod:`pyaimc.data.plausibility` (default).
    """
    path = existing_file(path)
    src = str(path)
    if path.stat().st_size == 0:
        raise DataError(f"{src}: empty file; expected an .npz archive of cells x cycles arrays")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError,
            RuntimeError) as err:
        raise DataError(f"{src}: not a readable .npz archive ({err})") from None
    try:
        with archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError,
            RuntimeError) as err:
        raise DataError(f"{src}: a damaged or truncated .npz archive ({err})") from None
    two_d = [k for k, a in arrays.items() if a.ndim == 2]
    if features is None:
        features = two_d
    if not features:
        raise DataError(f"{src}: no 2-D feature arrays (cells x cycles); found "
                        f"{', '.join(f'{k}{arrays[k].shape}' for k in arrays) or 'nothing'}")
    for name in features:
        if name not in arrays:
            raise DataError(f"{src}: no array named {name!r}; it has {', '.join(arrays)}")
        if arrays[name].ndim != 2:
            raise DataError(f"{src}: {name} has shape {arrays[name].shape}; expected cells x cycles")
        if arrays[name].dtype.kind not in "fiu":
            raise DataError(f"{src}: {name} holds {arrays[name].dtype}, expected numbers")
    shape = arrays[features[0]].shape
    for name in features[1:]:
        if arrays[name].shape != shape:
            raise DataError(f"{src}: {name} has shape {arrays[name].shape} but {features[0]} has "
                            f"{shape}; every feature must be cells x cycles of the same shape")
    if 0 in shape:
        raise DataError(f"{src}: feature arrays are empty (shape {shape})")
    values = np.stack([arrays[n].astype(np.float64) for n in features], axis=-1)
    if "missing" in arrays:
        missing = np.asarray(arrays["missing"], dtype=bool)
        if missing.shape != values.shape:
            raise DataError(f"{src}: 'missing' has shape {missing.shape}, expected {values.shape}")
    else:
        missing = np.zeros(values.shape, dtype=bool)
    cell_ids = arrays["cell_id"].astype(str) if "cell_id" in arrays else np.arange(shape[0]).astype(str)
    validate_values(values, missing, features, src, cell_ids, plausible)
    labels = {k: a for k, a in arrays.items()
              if a.ndim == 1 and len(a) == shape[0] and k != "cell_id"}
    return CycleData(values, missing, tuple(features), tuple(_unit(n) for n in features),
                     cell_ids, src, cell_labels=labels)


def _parse_float(token: str, src: str, row: int, col: int, what: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise DataError(f"{src}: row {row}, column {col} ({what}): {token!r} is not a number") from None


def load_radar(path: str | os.PathLike, plausible: bool = True) -> CycleData:
    """Load the tab-separated HRS/LRS cycling format of the RADAR measurements.

    One row per cell, no header. Column 0 is the cell address; then ``R_HRS``, ``R_LRS`` pairs in
    ohms, one pair per cycle (resistance after RESET, then after SET). Rows and columns in messages
    count from 1 as in a text editor.
    """
    path = existing_file(path)
    src = str(path)
    lines = read_text(path).splitlines()
    rows = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not rows:
        raise DataError(f"{src}: empty file; expected one row per cell: address, then R_HRS and "
                        f"R_LRS pairs (tab-separated)")
    n_cols = None
    cell_ids, table = [], []
    for lineno, line in rows:
        tokens = line.rstrip("\r\n").rstrip("\t").split("\t")
        if n_cols is None:
            n_cols = len(tokens)
            if n_cols < 3:
                raise DataError(f"{src}: row {lineno} has {n_cols} column(s); expected the cell "
                                f"address then at least one R_HRS, R_LRS pair")
            if (n_cols - 1) % 2:
                raise DataError(f"{src}: row {lineno} has {n_cols - 1} resistance columns; expected "
                                f"an even number (R_HRS, R_LRS pairs)")
        elif len(tokens) != n_cols:
            raise DataError(f"{src}: row {lineno} has {len(tokens)} columns but row {rows[0][0]} has "
                            f"{n_cols} (ragged rows: every cell needs the same number of cycles)")
        address = _parse_float(tokens[0], src, lineno, 1, "cell address")
        cell_ids.append(f"{address:g}")
        vals = []
        for col, tok in enumerate(tokens[1:], start=2):
            what = "R_HRS" if col % 2 == 0 else "R_LRS"
            v = _parse_float(tok, src, lineno, col, what)
            if not math.isfinite(v):
                raise DataError(f"{src}: row {lineno}, column {col} ({what}): {tok!r}; expected a "
                                f"finite resistance in ohms")
            if v <= 0:
                raise DataError(f"{src}: row {lineno}, column {col} ({what}): {v:g}; expected a "
                                f"resistance > 0 ohm")
            if plausible:
                plausibility.check(v, "R", src, lambda _: f"row {lineno}, column {col}", what)
            vals.append(v)
        table.append(vals)
    arr = np.asarray(table, dtype=np.float64).reshape(len(table), -1, 2)
    return CycleData(arr, np.zeros(arr.shape, dtype=bool), ("R_HRS", "R_LRS"), ("ohm", "ohm"),
                     np.asarray(cell_ids), src)


def load_long_csv(path: str | os.PathLike, plausible: bool = True) -> CycleData:
    """Load a long CSV: a header ``cell,cycle,<feature>,...`` then one row per cell and cycle.

    Cells and cycles may be any labels; cycles are sorted numerically when they are integers.
    An empty field is a missing value; a (cell, cycle) pair that never appears is missing too.
    Repeated (cell, cycle) pairs are an error.
    """
    path = existing_file(path)
    src = str(path)
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{src}: empty file; expected a header 'cell,cycle,<features...>'")
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader)]
    lower = [h.lower() for h in header]
    if "cell" not in lower or "cycle" not in lower:
        raise DataError(f"{src}: row 1 (header) is {header}; expected columns 'cell' and 'cycle' "
                        f"and one column per feature")
    i_cell, i_cycle = lower.index("cell"), lower.index("cycle")
    feat_cols = [i for i in range(len(header)) if i not in (i_cell, i_cycle)]
    if not feat_cols:
        raise DataError(f"{src}: header {header} has no feature columns")
    names = [header[i] for i in feat_cols]
    records = []
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not t.strip() for t in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{src}: row {lineno} has {len(row)} fields but the header has "
                            f"{len(header)}")
        vals = []
        for i, name in zip(feat_cols, names):
            tok = row[i].strip()
            vals.append(np.nan if tok == "" else _parse_float(tok, src, lineno, i + 1, name))
            if tok != "" and not math.isfinite(vals[-1]):
                raise DataError(f"{src}: row {lineno}, column {i + 1} ({name}): {tok!r}; expected "
                                f"a finite number (leave the field empty for a missing value)")
        records.append((row[i_cell].strip(), row[i_cycle].strip(), vals, lineno))
    if not records:
        raise DataError(f"{src}: header but no data rows")
    cells = list(dict.fromkeys(r[0] for r in records))
    cycles = list(dict.fromkeys(r[1] for r in records))
    try:
        cycles = sorted(cycles, key=int)
    except ValueError:
        pass
    ci = {c: k for k, c in enumerate(cells)}
    yi = {c: k for k, c in enumerate(cycles)}
    values = np.full((len(cells), len(cycles), len(names)), np.nan)
    seen = np.zeros((len(cells), len(cycles)), dtype=np.int64)
    for cell, cycle, vals, lineno in records:
        a, b = ci[cell], yi[cycle]
        if seen[a, b]:
            raise DataError(f"{src}: row {lineno} repeats cell {cell!r}, cycle {cycle!r} "
                            f"(first given in row {seen[a, b]})")
        seen[a, b] = lineno
        values[a, b] = vals
    missing = np.isnan(values)
    validate_values(values, missing, names, src, np.asarray(cells), plausible)
    return CycleData(values, missing, tuple(names), tuple(_unit(n) for n in names),
                     np.asarray(cells), src)


def detect_format(path: str | os.PathLike) -> str:
    """Guess the format of a calibration file: ``"npz"``, ``"radar"`` or ``"long-csv"``."""
    path = existing_file(path)
    if path.suffix.lower() == ".npz":
        return "npz"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PK"):
        return "npz"
    first = head.decode("utf-8-sig", errors="replace").splitlines()[0] if head.strip() else ""
    if "cell" in first.lower() and "cycle" in first.lower():
        return "long-csv"
    if "\t" in first:
        return "radar"
    raise DataError(f"{path}: cannot tell the format from the first line {first[:80]!r}; "
                    f"give it with --format ({', '.join(FORMATS)})")


def load(path: str | os.PathLike, format: str | None = None,
         plausible: bool = True) -> CycleData:
    """Load calibration data in any supported format (detected when ``format`` is None);
    ``plausible`` False skips the range checks of :mod:`pyaimc.data.plausibility`."""
    fmt = format or detect_format(path)
    if fmt == "npz":
        return load_npz(path, plausible=plausible)
    if fmt == "radar":
        return load_radar(path, plausible=plausible)
    if fmt == "long-csv":
        return load_long_csv(path, plausible=plausible)
    raise ValueError(f"unknown format {fmt!r}; supported: {', '.join(FORMATS)}")


def save_long_csv(data: CycleData, path: str | os.PathLike) -> Path:
    """Write ``data`` as a long CSV (the inverse of :func:`load_long_csv`), atomically."""
    from pyaimc.io import atomic_write_text

    lines = [",".join(["cell", "cycle", *data.feature_names])]
    for i, cell in enumerate(data.cell_ids):
        for j in range(data.n_cycles):
            row = data.values[i, j]
            fields = ["" if data.missing[i, j, k] else repr(float(row[k]))
                      for k in range(data.n_features)]
            lines.append(",".join([cell, str(j), *fields]))
    return atomic_write_text(path, "\n".join(lines) + "\n")

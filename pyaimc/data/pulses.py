"""Pulse-level programming records: single pulses, write-verify logs, retention read-backs.

Formats
-------
* **RADAR pulse sweeps** (:func:`load_radar_pulses`): tab-separated, no header, one row per pulse:
  ``addr, pw_ns, v_blsl, v_wl, r_before, r_after``. Whether ``v_blsl`` is the bit-line (SET) or the
  source-line (RESET) voltage is in the file name (``set-...``, ``fppv-...``: SET; ``reset-...``:
  RESET) or given with ``polarity``.
* **Generic pulse CSV** (:func:`load_pulse_csv`): header ``cell,width_s,v_bl,v_sl,v_wl,r_before``
  and optionally ``r_after``, SI units (s, V, ohm). A SET drives the bit line (``v_bl > 0``,
  ``v_sl = 0``), a RESET the source line (``v_sl > 0``, ``v_bl = 0``); both 0 is a pulse that does
  nothing.
* **Write-verify logs** (:func:`load_write_log`): the 11-column tab-separated format of the RADAR
  experiments, one row per write: ``addr, nreads, nsets, nresets, r_final, unused, r_lo, r_hi,
  success, attempts1, attempts2``.
* **Retention read-backs** (:func:`load_readback`): one resistance per line; the level of line
  ``i`` is ``(i + i // 32) mod n_levels``.
* **Bit error rates vs bake** (:func:`load_ber_table`): CSV ``BPC,Temperature (K),Time (s),BER``.

Every loader raises :class:`~pyaimc.data.container.DataError` naming the file, the row (counted
from 1 as in a text editor) and what was expected.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyaimc.data import plausibility
from pyaimc.data.container import DataError

#: polarity codes of :attr:`PulseData.polarity`
SET, RESET, NONE = 1, -1, 0

#: columns of the generic pulse CSV, in SI units
PULSE_COLUMNS = ("cell", "width_s", "v_bl", "v_sl", "v_wl", "r_before", "r_after")

#: columns of the write-verify log format
WRITE_LOG_COLUMNS = ("addr", "nreads", "nsets", "nresets", "r_final", "unused", "r_lo", "r_hi",
                     "success", "attempts1", "attempts2")


@dataclass
class PulseData:
    """One row per programming pulse.

    Attributes
    ----------
    cell : ndarray of str (n,)
        Cell label (address) of each pulse.
    width : ndarray (n,), s
        Pulse width.
    v_bl, v_sl, v_wl : ndarray (n,), V
        Bit-line, source-line and word-line (gate) voltages of the pulse.
    r_before : ndarray (n,), ohm
        Resistance read before the pulse.
    r_after : ndarray (n,), ohm
        Resistance read after the pulse; NaN when not measured (a table to be replayed).
    row : ndarray of int (n,)
        Line of each pulse in its file (from 1).
    source : str
        Where the pulses came from.
    sequence : ndarray of int (n,)
        Position of the pulse in its cell's sequence (0, 1, ...), in file order.
    """

    cell: np.ndarray
    width: np.ndarray
    v_bl: np.ndarray
    v_sl: np.ndarray
    v_wl: np.ndarray
    r_before: np.ndarray
    r_after: np.ndarray
    row: np.ndarray
    source: str = ""
    sequence: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        self.cell = np.asarray(self.cell).astype(str)
        for name in ("width", "v_bl", "v_sl", "v_wl", "r_before", "r_after"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        self.row = np.asarray(self.row, dtype=np.int64)
        n = len(self.cell)
        for name in ("width", "v_bl", "v_sl", "v_wl", "r_before", "r_after", "row"):
            if getattr(self, name).shape != (n,):
                raise DataError(f"{self.source or 'pulses'}: {name} has shape "
                                f"{getattr(self, name).shape}, expected ({n},)")
        if self.sequence is None:
            self.sequence = _sequence(self.cell)
        self.sequence = np.asarray(self.sequence, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.cell)

    @property
    def polarity(self) -> np.ndarray:
        """+1 for a SET (bit line driven), -1 for a RESET (source line), 0 for neither."""
        return np.where(self.v_bl > 0, SET, np.where(self.v_sl > 0, RESET, NONE)).astype(np.int8)

    @property
    def g_before(self) -> np.ndarray:
        """Conductance before each pulse, S."""
        return 1.0 / self.r_before

    @property
    def g_after(self) -> np.ndarray:
        """Conductance after each pulse, S (NaN where not measured)."""
        return 1.0 / self.r_after

    @property
    def has_after(self) -> bool:
        return bool(np.isfinite(self.r_after).all())

    def cells(self) -> np.ndarray:
        """Distinct cell labels in order of first appearance."""
        _, first = np.unique(self.cell, return_index=True)
        return self.cell[np.sort(first)]

    def select(self, mask) -> "PulseData":
        """The pulses where ``mask`` is True (a boolean array or index array)."""
        mask = np.asarray(mask)
        return PulseData(self.cell[mask], self.width[mask], self.v_bl[mask], self.v_sl[mask],
                         self.v_wl[mask], self.r_before[mask], self.r_after[mask],
                         self.row[mask], self.source, self.sequence[mask])

    def split_cells(self) -> tuple["PulseData", "PulseData"]:
        """Split by address into (fit, held-out) halves.

        The distinct addresses are sorted (numerically when they are numbers); every second one,
        starting with the second, is held out. Deterministic, so every script holds out the same
        cells.
        """
        held = held_out_cells(self.cell)
        mask = np.isin(self.cell, held)
        return self.select(~mask), self.select(mask)


def held_out_cells(cells) -> np.ndarray:
    """The held-out half of the distinct labels in ``cells``: every second one in address order."""
    uniq = np.unique(np.asarray(cells).astype(str))
    try:
        order = np.argsort(uniq.astype(np.float64), kind="stable")
    except ValueError:
        order = np.argsort(uniq, kind="stable")
    return uniq[order][1::2]


def concat_pulses(parts) -> PulseData:
    """One :class:`PulseData` of several; cells of different sources are kept apart by label."""
    parts = list(parts)
    if not parts:
        raise ValueError("no pulse data to concatenate")
    if len(parts) == 1:
        return parts[0]
    cells = np.concatenate([f"{k}:" + np.char.asarray(p.cell) for k, p in enumerate(parts)]
                           ).astype(str)
    cat = {name: np.concatenate([getattr(p, name) for p in parts])
           for name in ("width", "v_bl", "v_sl", "v_wl", "r_before", "r_after", "row",
                        "sequence")}
    return PulseData(cells, cat["width"], cat["v_bl"], cat["v_sl"], cat["v_wl"],
                     cat["r_before"], cat["r_after"], cat["row"],
                     "; ".join(p.source for p in parts), cat["sequence"])


def record_kind(source: str) -> str:
    """``"set_from_hrs"`` for the RADAR single-pulse SET sweeps (each pulse from an HRS the
    experiment restored without logging it), ``"staircase"`` for the others (pulses one after
    another on the same cell)."""
    name = Path(source).name.lower()
    if "inner" in name or name.startswith("fppv-sweep"):
        return "set_from_hrs"
    return "staircase"


def sweep_starts(d: PulseData) -> np.ndarray:
    """True where a pulse starts a new sweep of its cell: the cell's first pulse, or a drive or
    gate voltage below the previous pulse's (the experiments restore the cell between sweeps)."""
    start = np.ones(len(d), dtype=bool)
    same = d.cell[1:] == d.cell[:-1]
    v = np.maximum(d.v_bl, d.v_sl)
    down = (v[1:] < v[:-1] - 1e-9) | (d.v_wl[1:] < d.v_wl[:-1] - 1e-9)
    start[1:] = ~same | down
    return start


def _sequence(cell: np.ndarray) -> np.ndarray:
    """Running count of each cell's pulses in file order."""
    _, inverse = np.unique(cell, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    seq = np.empty(len(cell), dtype=np.int64)
    seq[order] = np.arange(len(cell)) - starts
    return seq


# ---------------------------------------------------------------------------- parsing helpers
def _check_file(path) -> tuple[Path, str]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected a file")
    return path, str(path)


def _numeric_table(path: Path, src: str, names: tuple[str, ...], what: str, delimiter="\t",
                   skip_header: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Parse a delimited table of numbers with exactly ``len(names)`` columns.

    Returns the values (rows, columns) and the file line of each row. Blank lines are skipped;
    a trailing delimiter is tolerated. Errors name the file, line, column and what was expected.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    start = 1 if skip_header else 0
    rows, linenos = [], []
    n_cols = len(names)
    for i in range(start, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        tokens = line.rstrip("\r\n").rstrip(delimiter).split(delimiter)
        if len(tokens) != n_cols:
            raise DataError(f"{src}: row {i + 1} has {len(tokens)} column(s); expected {n_cols} "
                            f"({', '.join(names)}) for {what}")
        rows.append(tokens)
        linenos.append(i + 1)
    if not rows:
        raise DataError(f"{src}: no data rows; expected {what}: one row of {n_cols} "
                        f"{'tab-separated ' if delimiter == chr(9) else ''}columns "
                        f"({', '.join(names)}) per line")
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        for tokens, lineno in zip(rows, linenos):
            for col, (tok, name) in enumerate(zip(tokens, names), start=1):
                try:
                    float(tok)
                except ValueError:
                    raise DataError(f"{src}: row {lineno}, column {col} ({name}): {tok!r} is not "
                                    f"a number") from None
        raise  # pragma: no cover - numpy and float() agree on what a number is
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{src}: row {linenos[r]}, column {c + 1} ({names[c]}): "
                        f"{values[r, c]}; expected a finite number")
    return values, np.asarray(linenos, dtype=np.int64)


def _require(cond: np.ndarray, src: str, linenos, col: int, name: str, values, expected: str):
    """Raise for the first row where ``cond`` fails."""
    bad = ~np.asarray(cond, dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{src}: row {linenos[i]}, column {col} ({name}): {values[i]:g}; expected "
                        f"{expected} ({int(bad.sum())} such row(s))")


def _plausible(values, key, src, lines, col, name) -> None:
    """The range check of :mod:`pyaimc.data.plausibility`, located by file row and column."""
    plausibility.check(values, key, src, lambda idx: f"row {lines[idx[0]]}, column {col}",
                       name)


def _cell_label(addr: np.ndarray) -> np.ndarray:
    return np.array([f"{a:g}" for a in addr])


# ---------------------------------------------------------------------------- pulse records
def polarity_from_name(path) -> int:
    """SET or RESET from a RADAR sweep file name (``set-``/``fppv-`` vs ``reset-``)."""
    name = Path(path).name.lower()
    if name.startswith("reset"):
        return RESET
    if name.startswith(("set", "fppv")):
        return SET
    raise DataError(f"{path}: cannot tell from the file name whether its pulses are SET "
                    f"(bit line) or RESET (source line) pulses; expected a name starting with "
                    f"'set', 'fppv' or 'reset', or give the polarity")


def load_radar_pulses(path: str | os.PathLike, polarity: int | str | None = None,
                      plausible: bool = True) -> PulseData:
    """Load a RADAR pulse sweep file (``addr, pw_ns, v_blsl, v_wl, r_before, r_after``).

    Parameters
    ----------
    path : path
        Tab-separated, no header; pulse width in ns, voltages in V, resistances in ohm.
    polarity : {"set", "reset", 1, -1}, optional
        Whether the third column is the bit-line (SET) or source-line (RESET) voltage; read from
        the file name when omitted.
    plausible : bool
        Check voltages and resistances against :mod:`pyaimc.data.plausibility` (default).
    """
    path, src = _check_file(path)
    if polarity is None:
        pol = polarity_from_name(path)
    elif str(polarity).lower() in ("set", "1", "+1"):
        pol = SET
    elif str(polarity).lower() in ("reset", "-1"):
        pol = RESET
    else:
        raise ValueError(f"polarity must be 'set' or 'reset', got {polarity!r}")
    names = ("addr", "pw_ns", "v_bl" if pol == SET else "v_sl", "v_wl", "r_before", "r_after")
    values, lines = _numeric_table(path, src, names, "a RADAR pulse sweep")
    addr, pw, v, vwl, rb, ra = values.T
    _require(pw > 0, src, lines, 2, "pw_ns", pw, "a pulse width > 0 ns")
    _require(v >= 0, src, lines, 3, names[2], v, "a voltage >= 0 V (the line's magnitude)")
    _require(vwl >= 0, src, lines, 4, "v_wl", vwl, "a word-line voltage >= 0 V")
    _require(rb > 0, src, lines, 5, "r_before", rb, "a resistance > 0 ohm")
    _require(ra > 0, src, lines, 6, "r_after", ra, "a resistance > 0 ohm")
    if plausible:
        _plausible(v, "V", src, lines, 3, names[2])
        _plausible(vwl, "V", src, lines, 4, "v_wl")
        _plausible(rb, "R", src, lines, 5, "r_before")
        _plausible(ra, "R", src, lines, 6, "r_after")
    zero = np.zeros_like(v)
    return PulseData(_cell_label(addr), pw * 1e-9, v if pol == SET else zero,
                     zero if pol == SET else v, vwl, rb, ra, lines, src)


def load_pulse_csv(path: str | os.PathLike, max_width: float = 1e-3,
                   plausible: bool = True) -> PulseData:
    """Load the generic pulse CSV: header ``cell,width_s,v_bl,v_sl,v_wl,r_before[,r_after]``.

    Units are SI (s, V, ohm). ``r_after`` may be absent, or empty in some rows (NaN: to be drawn
    by ``pyaimc pulse``). A pulse may drive the bit line (SET) or the source line (RESET), not
    both.

    Parameters
    ----------
    path : path
    max_width : float
        Plausibility limit of a pulse width, s (a width above it is most likely given in ns);
        raise it for genuinely long pulses.
    plausible : bool
        Check voltages and resistances against :mod:`pyaimc.data.plausibility` (default).
    """
    path, src = _check_file(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not text.strip():
        raise DataError(f"{src}: empty file; expected a header "
                        f"'cell,width_s,v_bl,v_sl,v_wl,r_before[,r_after]'")
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader)]
    required = list(PULSE_COLUMNS[:-1])
    if header[:6] != required or len(header) > 7 or (len(header) == 7 and header[6] != "r_after"):
        raise DataError(f"{src}: row 1 (header) is {','.join(header)}; expected "
                        f"'cell,width_s,v_bl,v_sl,v_wl,r_before' optionally followed by ',r_after'")
    n_cols = len(header)
    cells, vals, linenos = [], [], []
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not t.strip() for t in row):
            continue
        if len(row) != n_cols:
            raise DataError(f"{src}: row {lineno} has {len(row)} field(s); the header has "
                            f"{n_cols} ({','.join(header)})")
        cell = row[0].strip()
        if not cell:
            raise DataError(f"{src}: row {lineno}, column 1 (cell): empty; expected a cell label")
        nums = []
        for col in range(1, n_cols):
            tok = row[col].strip()
            name = header[col]
            if tok == "" and name == "r_after":
                nums.append(math.nan)
                continue
            try:
                x = float(tok)
            except ValueError:
                raise DataError(f"{src}: row {lineno}, column {col + 1} ({name}): {tok!r} is not "
                                f"a number") from None
            if not math.isfinite(x):
                raise DataError(f"{src}: row {lineno}, column {col + 1} ({name}): {tok!r}; "
                                f"expected a finite number")
            nums.append(x)
        if n_cols == 6:
            nums.append(math.nan)
        cells.append(cell)
        vals.append(nums)
        linenos.append(lineno)
    if not vals:
        raise DataError(f"{src}: header but no data rows")
    a = np.asarray(vals, dtype=np.float64)
    ln = np.asarray(linenos)
    width, v_bl, v_sl, v_wl, rb, ra = a.T
    _require(width > 0, src, ln, 2, "width_s", width, "a pulse width > 0 s")
    _require(width <= max_width, src, ln, 2, "width_s", width,
             f"a width in seconds <= {max_width:g} (the plausibility limit; is it in ns? "
             f"100 ns is 1e-7)")
    _require(v_bl >= 0, src, ln, 3, "v_bl", v_bl, "a bit-line voltage >= 0 V")
    _require(v_sl >= 0, src, ln, 4, "v_sl", v_sl, "a source-line voltage >= 0 V")
    _require(~((v_bl > 0) & (v_sl > 0)), src, ln, 4, "v_sl", v_sl,
             "0 V when v_bl > 0 (a SET drives the bit line, a RESET the source line, not both)")
    _require(v_wl >= 0, src, ln, 5, "v_wl", v_wl, "a word-line voltage >= 0 V")
    _require(rb > 0, src, ln, 6, "r_before", rb, "a resistance > 0 ohm")
    _require(~(ra <= 0), src, ln, 7, "r_after", ra, "a resistance > 0 ohm (or an empty field)")
    if plausible:
        for col, name, vals in ((3, "v_bl", v_bl), (4, "v_sl", v_sl), (5, "v_wl", v_wl)):
            _plausible(vals, "V", src, ln, col, name)
        _plausible(rb, "R", src, ln, 6, "r_before")
        _plausible(ra, "R", src, ln, 7, "r_after")
    return PulseData(np.asarray(cells), width, v_bl, v_sl, v_wl, rb, ra, ln, src)


def detect_pulse_format(path) -> str:
    """``"csv"`` (a header naming ``cell``) or ``"radar"`` (tab-separated numbers)."""
    path, src = _check_file(path)
    with open(path, "rb") as fh:
        head = fh.read(4096).decode("utf-8", errors="replace")
    first = head.splitlines()[0] if head.strip() else ""
    if first.lower().startswith("cell"):
        return "csv"
    if "\t" in first:
        return "radar"
    raise DataError(f"{src}: cannot tell the pulse format from the first line {first[:80]!r}; "
                    f"expected a CSV header 'cell,width_s,v_bl,v_sl,v_wl,r_before[,r_after]' "
                    f"or a tab-separated RADAR sweep")


def load_pulses(path: str | os.PathLike, polarity=None, plausible: bool = True) -> PulseData:
    """Load pulse records in either format (detected from the first line)."""
    if detect_pulse_format(path) == "csv":
        return load_pulse_csv(path, plausible=plausible)
    return load_radar_pulses(path, polarity, plausible)


def save_pulse_csv(data: PulseData, path: str | os.PathLike) -> Path:
    """Write ``data`` as the generic pulse CSV (with ``r_after``), atomically.

    Numbers are written with ``repr`` so that loading the file gives the same values.
    """
    from pyaimc.io import atomic_write_text

    out = [",".join(PULSE_COLUMNS)]
    for i in range(len(data)):
        ra = data.r_after[i]
        out.append(",".join([data.cell[i], repr(float(data.width[i])), repr(float(data.v_bl[i])),
                             repr(float(data.v_sl[i])), repr(float(data.v_wl[i])),
                             repr(float(data.r_before[i])),
                             "" if not np.isfinite(ra) else repr(float(ra))]))
    return atomic_write_text(path, "\n".join(out) + "\n")


# ---------------------------------------------------------------------------- write-verify logs
@dataclass
class WriteLog:
    """One row per write of a target window (write-verify programming).

    Attributes
    ----------
    addr : ndarray of str (n,)
    nreads, nsets, nresets : ndarray of int (n,)
    r_final : ndarray (n,), ohm
        Resistance read at the end of the write (0 where the log has none).
    r_lo, r_hi : ndarray (n,), ohm
        Target window; ``r_lo = 0`` means "below r_hi", a huge ``r_hi`` "above r_lo".
    success : ndarray of bool (n,)
    attempts1, attempts2 : ndarray of int (n,)
        RADAR's coarse and fine attempt counts (0 for other algorithms).
    row : ndarray of int (n,)
    source : str
    """

    addr: np.ndarray
    nreads: np.ndarray
    nsets: np.ndarray
    nresets: np.ndarray
    r_final: np.ndarray
    r_lo: np.ndarray
    r_hi: np.ndarray
    success: np.ndarray
    attempts1: np.ndarray
    attempts2: np.ndarray
    row: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.addr)

    @property
    def pulses(self) -> np.ndarray:
        """Pulses of each write: ``nsets + nresets - 1`` (the RADAR evaluation logs count one
        pulse too many), at least 0 (the retention logs' rewrite passes hold writes of none)."""
        return np.maximum(self.nsets + self.nresets - 1, 0)

    def windows(self) -> np.ndarray:
        """Distinct target windows ``(r_lo, r_hi)`` in ohm, by increasing ``r_lo``."""
        pairs = np.unique(np.stack([self.r_lo, self.r_hi], axis=1), axis=0)
        return pairs[np.argsort(pairs[:, 0], kind="stable")]

    def select(self, mask) -> "WriteLog":
        mask = np.asarray(mask)
        return WriteLog(*(getattr(self, f)[mask] for f in (
            "addr", "nreads", "nsets", "nresets", "r_final", "r_lo", "r_hi", "success",
            "attempts1", "attempts2", "row")), source=self.source)

    def level_statistics(self, hrs_r_lo: float = 80e3) -> list[dict]:
        """Per window: pulses (mean, median, p99), success, final conductance and its spread.

        The spread ``g_std / window width`` uses successful writes only; windows open at one end
        (``r_lo = 0`` or ``r_lo >= hrs_r_lo``) have no width and report None.
        """
        out = []
        for lo, hi in self.windows():
            m = (self.r_lo == lo) & (self.r_hi == hi)
            p = self.pulses[m]
            ok = self.success[m]
            g = 1.0 / self.r_final[m & self.success & (self.r_final > 0)]
            closed = lo > 0 and lo < hrs_r_lo
            width = (1.0 / lo - 1.0 / hi) if closed else None
            out.append({"r_lo": float(lo), "r_hi": float(hi), "n": int(m.sum()),
                        "pulses_mean": float(p.mean()), "pulses_median": float(np.median(p)),
                        "pulses_p99": float(np.quantile(p, 0.99)),
                        "success": float(ok.mean()),
                        "g_mean": float(g.mean()) if len(g) else None,
                        "g_std": float(g.std()) if len(g) > 1 else None,
                        "std_over_width": (float(g.std() / width)
                                           if width and len(g) > 1 else None),
                        "intermediate": bool(closed)})
        return out


def load_write_log(path: str | os.PathLike, plausible: bool = True) -> WriteLog:
    """Load an 11-column write-verify log (see :data:`WRITE_LOG_COLUMNS`); ``plausible`` checks
    the final resistances read against :mod:`pyaimc.data.plausibility`."""
    path, src = _check_file(path)
    values, ln = _numeric_table(path, src, WRITE_LOG_COLUMNS, "a write-verify log")
    cols = {n: values[:, k] for k, n in enumerate(WRITE_LOG_COLUMNS)}
    for name in ("nreads", "nsets", "nresets", "attempts1", "attempts2"):
        v = cols[name]
        col = WRITE_LOG_COLUMNS.index(name) + 1
        _require((v >= 0) & (v == np.round(v)), src, ln, col, name, v, "a count (integer >= 0)")
    _require(cols["r_final"] >= 0, src, ln, 5, "r_final", cols["r_final"],
             "a resistance >= 0 ohm (0: none read)")
    _require(cols["r_lo"] >= 0, src, ln, 7, "r_lo", cols["r_lo"], "a resistance >= 0 ohm")
    _require(cols["r_hi"] > cols["r_lo"], src, ln, 8, "r_hi", cols["r_hi"],
             "a window top above r_lo (column 7)")
    _require(np.isin(cols["success"], (0, 1)), src, ln, 9, "success", cols["success"], "0 or 1")
    if plausible:
        rf = cols["r_final"]
        _plausible(np.where(rf > 0, rf, np.nan), "R", src, ln, 5, "r_final")
    i = lambda n: cols[n].astype(np.int64)  # noqa: E731
    return WriteLog(_cell_label(cols["addr"]), i("nreads"), i("nsets"), i("nresets"),
                    cols["r_final"], cols["r_lo"], cols["r_hi"], cols["success"] == 1,
                    i("attempts1"), i("attempts2"), ln, src)


# ---------------------------------------------------------------------------- retention
@dataclass
class Readback:
    """Resistances read back after a write (retention experiments).

    Attributes
    ----------
    r : ndarray (n,), ohm
    level : ndarray of int (n,)
        Level written to each line's cell.
    cell : ndarray of int (n,)
        Cell index (line number modulo ``n_cells``, from 0).
    read : ndarray of int (n,)
        Which read of the cell (0 for the first block of ``n_cells`` lines, ...).
    n_levels : int
    source : str
    """

    r: np.ndarray
    level: np.ndarray
    cell: np.ndarray
    read: np.ndarray
    n_levels: int
    source: str = ""


_BPC = re.compile(r"(\d)bpc")


def load_readback(path: str | os.PathLike, n_levels: int | None = None,
                  n_cells: int = 1024, plausible: bool = True) -> Readback:
    """Load a read-back file: one resistance (ohm) per line.

    Parameters
    ----------
    path : path
    n_levels : int, optional
        Levels per cell; from ``<b>bpc`` in the file name (``2**b``) or 32 for ``relaxation-``
        files when omitted.
    n_cells : int
        Cells per read; longer files hold several reads of the same cells, one block each.
    plausible : bool
        Check the resistances against :mod:`pyaimc.data.plausibility` (default).

    Notes
    -----
    The level of line ``i`` (from 0, within its block) is ``(i + i // 32) mod n_levels``: the
    checkerboard-like pattern of the experiments (checked against their write logs).
    """
    path, src = _check_file(path)
    if n_levels is None:
        m = _BPC.search(path.name)
        if m:
            n_levels = 2 ** int(m.group(1))
        elif path.name.startswith("relaxation"):
            n_levels = 32
        else:
            raise DataError(f"{src}: cannot tell the levels per cell from the file name (expected "
                            f"'<bits>bpc' in it); give n_levels")
    values, ln = _numeric_table(path, src, ("r",), "a read-back (one resistance per line)")
    r = values[:, 0]
    _require(r > 0, src, ln, 1, "r", r, "a resistance > 0 ohm")
    if plausible:
        _plausible(r, "R", src, ln, 1, "r")
    if len(r) % n_cells:
        raise DataError(f"{src}: {len(r)} resistances; expected a multiple of {n_cells} "
                        f"(one block of {n_cells} cells per read)")
    i = np.arange(len(r)) % n_cells
    return Readback(r, (i + i // 32) % int(n_levels), i, np.arange(len(r)) // n_cells,
                    int(n_levels), src)


def load_ber_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load bit error rates vs bake time and temperature.

    Returns
    -------
    dict with ``bits_per_cell`` (int), ``temperature`` (K), ``time`` (s), ``ber`` (fraction).
    """
    path, src = _check_file(path)
    names = ("BPC", "Temperature (K)", "Time (s)", "BER")
    first = path.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
    header = [h.strip() for h in first[0].split(",")] if first else []
    if header != list(names):
        raise DataError(f"{src}: row 1 (header) is {','.join(header)!r}; expected "
                        f"'{','.join(names)}'")
    values, ln = _numeric_table(path, src, names, "a bit-error-rate table", delimiter=",",
                                skip_header=True)
    bpc, temp, time, ber = values.T
    _require((bpc >= 1) & (bpc == np.round(bpc)), src, ln, 1, "BPC", bpc, "an integer >= 1")
    _require(temp > 0, src, ln, 2, "Temperature (K)", temp, "a temperature > 0 K")
    _require(time >= 0, src, ln, 3, "Time (s)", time, "a time >= 0 s")
    _require((ber >= 0) & (ber <= 1), src, ln, 4, "BER", ber, "a fraction in [0, 1]")
    return {"bits_per_cell": bpc.astype(np.int64), "temperature": temp, "time": time, "ber": ber}

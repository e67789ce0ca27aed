"""Loaders for conductance relaxation and retention measurements.

Four kinds of file, all tab-separated without a header (gzip or plain text):

- **relaxation records** (``techB-relaxation.tsv.gz``): one row per read of a cell,
  ``addr, time (s after programming), r (ohm), g (S), g_initial (S), level, timept (nominal s)``;
  -> :class:`RelaxationData`, one row per cell, one column per nominal time point.
- **bake records** (``techA-bake.tsv.gz``): ``addr, time (s), r (ohm), g (S), temp (C)``; for each
  cell and bake temperature a read at time 0 (as programmed) and one after the bake;
  -> :class:`BakeData`, one entry per read after a bake.
- **continuous read traces** (``techA-timeseries.tsv.gz``): one cell per row, ``level``, an index
  offset, then conductance samples (S) at a fixed sample rate; -> :class:`ReadTraces`.
- **RADAR retention experiments** (``radar_programming/retention``): a write-verify log
  (11 columns, one row per write) and read-backs before and after a bake (one resistance per line,
  line ``i`` holds a cell of level ``(i + i // 32) mod 2**bits``); -> :class:`RetentionExperiment`.

Every loader raises :class:`~pyaimc.data.container.DataError` naming the file, the row (counted
from 1 as in a text editor), the column and what was expected.
"""

from __future__ import annotations

import gzip
import zlib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyaimc.data.container import DataError

RELAXATION_COLUMNS = ("addr", "time", "r", "g", "g_initial", "level", "timept")
BAKE_COLUMNS = ("addr", "time", "r", "g", "temp")
WRITE_LOG_COLUMNS = ("addr", "nreads", "nsets", "nresets", "r_final", "unused", "r_lo", "r_hi",
                     "success", "attempts1", "attempts2")
RELAXATION_FORMATS = ("relaxation", "bake", "traces")
#: a read's time may lie this factor either side of its nominal time point
TIME_POINT_FACTOR = 2.0
#: g must equal 1/r to this relative tolerance
G_R_RTOL = 1e-6


# --------------------------------------------------------------------------- text and tables
def _read_text(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: a damaged gzip file ({err})") from None
    return path, raw.decode("utf-8", errors="replace")


def _rows(text: str) -> list[tuple[int, list[str]]]:
    return [(i + 1, ln.split()) for i, ln in enumerate(text.splitlines()) if ln.strip()]


def _parse_table(path: str | os.PathLike, columns: tuple[str, ...], what: str
                 ) -> tuple[str, np.ndarray, np.ndarray]:
    """Rows of exactly ``len(columns)`` finite numbers -> (source, array (n, c), line numbers)."""
    path, text = _read_text(path)
    src = str(path)
    rows = _rows(text)
    if not rows:
        raise DataError(f"{src}: empty file; expected {what}: one row per read with columns "
                        f"{', '.join(columns)} (tab-separated)")
    n_cols = len(columns)
    for lineno, tokens in rows:
        if len(tokens) != n_cols:
            raise DataError(f"{src}: row {lineno} has {len(tokens)} columns; expected {n_cols} "
                            f"({', '.join(columns)})")
    flat = [t for _, tokens in rows for t in tokens]
    try:
        arr = np.array(flat, dtype=np.float64).reshape(len(rows), n_cols)
    except ValueError:
        for lineno, tokens in rows:
            for k, tok in enumerate(tokens):
                try:
                    float(tok)
                except ValueError:
                    raise DataError(f"{src}: row {lineno}, column {k + 1} ({columns[k]}): "
                                    f"{tok!r} is not a number") from None
        raise  # pragma: no cover - every token parsed one by one
    lines = np.array([lineno for lineno, _ in rows])
    bad = ~np.isfinite(arr)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise DataError(f"{src}: row {lines[i]}, column {k + 1} ({columns[k]}): {arr[i, k]}; "
                        f"expected a finite number")
    return src, arr, lines


def _fail_where(src: str, lines: np.ndarray, bad: np.ndarray, col: int, columns, arr,
                expected: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{src}: row {lines[i]}, column {col + 1} ({columns[col]}): "
                        f"{arr[i, col]:g}; expected {expected} ({int(bad.sum())} such rows)")


def _check_integer(src, lines, arr, col, columns, what="a non-negative integer"):
    v = arr[:, col]
    _fail_where(src, lines, (v < 0) | (v != np.round(v)), col, columns, arr, what)


def _check_conductance(src, lines, arr, i_r, i_g, columns, negative_reads: bool = False):
    # A cell read at the noise floor can give a slightly negative current (a few such reads in
    # the shared relaxation records): ``negative_reads`` accepts them as measured, g = 1/r still.
    if negative_reads:
        _fail_where(src, lines, arr[:, i_r] == 0, i_r, columns, arr, "a resistance != 0 ohm")
        _fail_where(src, lines, np.abs(arr[:, i_g]) >= 1.0, i_g, columns, arr,
                    "a conductance in siemens (|g| < 1 S); was it given in uS or as a "
                    "resistance?")
    else:
        _fail_where(src, lines, arr[:, i_r] <= 0, i_r, columns, arr, "a resistance > 0 ohm")
        _fail_where(src, lines, arr[:, i_g] <= 0, i_g, columns, arr, "a conductance > 0 S")
        _fail_where(src, lines, arr[:, i_g] >= 1.0, i_g, columns, arr,
                    "a conductance in siemens (< 1 S); was it given in uS or as a resistance?")
    mismatch = np.abs(arr[:, i_g] * arr[:, i_r] - 1.0) > G_R_RTOL
    if mismatch.any():
        i = int(np.flatnonzero(mismatch)[0])
        raise DataError(f"{src}: row {lines[i]}: g = {arr[i, i_g]:.6g} S is not 1/r "
                        f"(r = {arr[i, i_r]:.6g} ohm); expected g * r = 1 "
                        f"({int(mismatch.sum())} such rows)")


def hash_half(addr, salt: str = "pyaimc") -> np.ndarray:
    """Split cells into two halves by a hash of their address (0 or 1 per cell).

    The programmed level follows the address pattern on these chips, so a split by parity (or any
    arithmetic rule) would put whole levels into one half; the SHA-256 of ``"salt:address"`` does
    not. Deterministic: the same address always falls in the same half.
    """
    addr = np.asarray(addr)
    return np.array([hashlib.sha256(f"{salt}:{int(a)}".encode()).digest()[0] & 1
                     for a in addr.ravel()], dtype=np.int8).reshape(addr.shape)


# --------------------------------------------------------------------------- relaxation records
@dataclass
class RelaxationData:
    """Conductance of programmed cells read at time points after programming.

    Attributes
    ----------
    addr : ndarray of int, (n_cells,)
        Cell addresses.
    level : ndarray of int, (n_cells,)
        Programmed level index (as recorded; the model uses ``g0``, not the index).
    g0 : ndarray, (n_cells,)
        Conductance at time 0 (as programmed), S.
    timepoints : ndarray, (n_times,)
        Nominal read times after programming, s (> 0, increasing).
    time : ndarray, (n_cells, n_times)
        Actual read times, s; NaN where the cell was not read at that time point.
    g : ndarray, (n_cells, n_times)
        Conductance read, S; NaN where not read.
    source : str
    """

    addr: np.ndarray
    level: np.ndarray
    g0: np.ndarray
    timepoints: np.ndarray
    time: np.ndarray
    g: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        self.addr = np.asarray(self.addr, dtype=np.int64)
        self.level = np.asarray(self.level, dtype=np.int64)
        self.g0 = np.asarray(self.g0, dtype=np.float64)
        self.timepoints = np.asarray(self.timepoints, dtype=np.float64)
        self.time = np.asarray(self.time, dtype=np.float64)
        self.g = np.asarray(self.g, dtype=np.float64)
        n, k = len(self.addr), len(self.timepoints)
        where = self.source or "relaxation data"
        for name in ("level", "g0"):
            if getattr(self, name).shape != (n,):
                raise DataError(f"{where}: {name} has shape {getattr(self, name).shape}, "
                                f"expected ({n},)")
        for name in ("time", "g"):
            if getattr(self, name).shape != (n, k):
                raise DataError(f"{where}: {name} has shape {getattr(self, name).shape}, "
                                f"expected ({n}, {k})")

    @property
    def n_cells(self) -> int:
        return len(self.addr)

    @property
    def delta(self) -> np.ndarray:
        """``G(t) - G(0)`` per cell and time point, S (NaN where not read)."""
        return self.g - self.g0[:, None]

    def select(self, keep) -> "RelaxationData":
        """The cells where ``keep`` (bool array (n_cells,)) is True."""
        keep = np.asarray(keep, dtype=bool)
        return RelaxationData(self.addr[keep], self.level[keep], self.g0[keep], self.timepoints,
                              self.time[keep], self.g[keep], self.source)

    def select_times(self, keep) -> "RelaxationData":
        """Only the time points where ``keep`` (bool array (n_times,)) is True."""
        keep = np.asarray(keep, dtype=bool)
        return RelaxationData(self.addr, self.level, self.g0, self.timepoints[keep],
                              self.time[:, keep], self.g[:, keep], self.source)

    def summary(self) -> str:
        counts = (~np.isnan(self.g)).sum(axis=0)
        n_neg = int(np.sum(self.g <= 0))
        return (f"{self.source or 'relaxation data'}: {self.n_cells} cells, "
                f"{len(np.unique(self.level))} levels, G0 {self.g0.min() * 1e6:.2f}-"
                f"{self.g0.max() * 1e6:.2f} uS; reads at "
                + ", ".join(f"{t:g} s ({c})" for t, c in zip(self.timepoints, counts))
                + (f"; {n_neg} read(s) at or below 0 S (noise floor), kept" if n_neg else ""))


def load_relaxation(path: str | os.PathLike) -> RelaxationData:
    """Read relaxation records (7 columns, see the module docstring).

    Checks: ``g = 1/r``; ``g_initial`` and ``level`` are the same in every row of a cell; a cell
    is read at most once per time point; the time-0 read equals ``g_initial``; each read's time
    lies within a factor :data:`TIME_POINT_FACTOR` of its nominal time point.
    """
    cols = RELAXATION_COLUMNS
    src, a, lines = _parse_table(path, cols, "relaxation records")
    _check_integer(src, lines, a, 0, cols)
    _check_integer(src, lines, a, 5, cols)
    _fail_where(src, lines, a[:, 1] < 0, 1, cols, a, "a time >= 0 s")
    _fail_where(src, lines, a[:, 6] < 0, 6, cols, a, "a time point >= 0 s")
    _check_conductance(src, lines, a, 2, 3, cols, negative_reads=True)
    _fail_where(src, lines, (a[:, 4] <= 0) | (a[:, 4] >= 1), 4, cols, a,
                "an initial conductance in siemens (0 < g_initial < 1 S)")
    addr, t, g, g0, level, tp = a[:, 0], a[:, 1], a[:, 3], a[:, 4], a[:, 5], a[:, 6]
    zero = tp == 0
    bad = zero & ((t != 0) | (np.abs(g - g0) > 1e-9 * g0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{src}: row {lines[i]}: the time-point-0 read (time {t[i]:g} s, g "
                        f"{g[i]:.6g} S) must be at time 0 with g = g_initial ({g0[i]:.6g} S)")
    ratio = np.where(zero, 1.0, t / np.where(zero, 1.0, tp))
    bad = ~zero & ((ratio > TIME_POINT_FACTOR) | (ratio < 1 / TIME_POINT_FACTOR))
    _fail_where(src, lines, bad, 1, cols, a,
                f"a time within a factor {TIME_POINT_FACTOR:g} of the row's time point")
    cells, first, inv = np.unique(addr.astype(np.int64), return_index=True,
                                  return_inverse=True)
    inv = inv.ravel()
    for name, col in (("g_initial", g0), ("level", level)):
        diff = col != col[first[inv]]
        if diff.any():
            i = int(np.flatnonzero(diff)[0])
            raise DataError(f"{src}: row {lines[i]}: cell {int(addr[i])} has {name} "
                            f"{col[i]:g}, but {col[first[inv[i]]]:g} in row "
                            f"{lines[first[inv[i]]]}; expected one {name} per cell")
    points = np.unique(tp[~zero])
    if len(points) == 0:
        raise DataError(f"{src}: no reads after time 0; expected reads at time points > 0 s")
    k = np.searchsorted(points, tp)
    time = np.full((len(cells), len(points)), np.nan)
    gg = np.full_like(time, np.nan)
    seen = np.zeros(time.shape, dtype=np.int64)
    for i in np.flatnonzero(~zero):
        c, j = inv[i], k[i]
        if seen[c, j]:
            raise DataError(f"{src}: row {lines[i]} repeats cell {int(addr[i])} at time point "
                            f"{tp[i]:g} s (first given in row {seen[c, j]})")
        seen[c, j] = lines[i]
        time[c, j], gg[c, j] = t[i], g[i]
    return RelaxationData(cells, level[first].astype(np.int64), g0[first], points, time, gg, src)


# --------------------------------------------------------------------------- bake records
@dataclass
class BakeData:
    """Reads after a bake, each with the cell's conductance as programmed.

    Attributes
    ----------
    addr : ndarray of int, (n,)
    temp_c : ndarray, (n,)
        Bake temperature, degrees C.
    time : ndarray, (n,)
        Time of the read after programming, s (it includes the bake).
    g0 : ndarray, (n,)
        Conductance as programmed (the time-0 read before this bake), S.
    g : ndarray, (n,)
        Conductance read after the bake, S.
    source : str
    """

    addr: np.ndarray
    temp_c: np.ndarray
    time: np.ndarray
    g0: np.ndarray
    g: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        self.addr = np.asarray(self.addr, dtype=np.int64)
        for name in ("temp_c", "time", "g0", "g"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
            if getattr(self, name).shape != self.addr.shape:
                raise DataError(f"{self.source or 'bake data'}: {name} has shape "
                                f"{getattr(self, name).shape}, expected {self.addr.shape}")

    @property
    def temperatures(self) -> np.ndarray:
        """The distinct bake temperatures, C."""
        return np.unique(self.temp_c)

    def select(self, keep) -> "BakeData":
        keep = np.asarray(keep, dtype=bool)
        return BakeData(self.addr[keep], self.temp_c[keep], self.time[keep], self.g0[keep],
                        self.g[keep], self.source)


def load_bake(path: str | os.PathLike) -> BakeData:
    """Read bake records (5 columns, see the module docstring).

    Each (cell, temperature) needs exactly one read at time 0 (the conductance as programmed)
    and at least one later read.
    """
    cols = BAKE_COLUMNS
    src, a, lines = _parse_table(path, cols, "bake records")
    _check_integer(src, lines, a, 0, cols)
    _fail_where(src, lines, a[:, 1] < 0, 1, cols, a, "a time >= 0 s")
    _check_conductance(src, lines, a, 2, 3, cols)
    _fail_where(src, lines, (a[:, 4] < -273.15) | (a[:, 4] > 1000), 4, cols, a,
                "a temperature in degrees C (-273.15 to 1000)")
    addr, t, g, temp = a[:, 0].astype(np.int64), a[:, 1], a[:, 3], a[:, 4]
    keys = np.stack([addr, np.round(temp * 1000).astype(np.int64)], axis=1)
    uk, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    zero = t == 0
    n_zero = np.bincount(inv[zero], minlength=len(uk))
    n_later = np.bincount(inv[~zero], minlength=len(uk))
    for counts, msg in ((n_zero == 0, "has no read at time 0 (the conductance as programmed)"),
                        (n_zero > 1, "has more than one read at time 0"),
                        (n_later == 0, "has no read after the bake")):
        if counts.any():
            group = int(np.flatnonzero(counts)[0])
            i = int(np.flatnonzero(inv == group)[0])
            raise DataError(f"{src}: row {lines[i]}: cell {addr[i]} at {temp[i]:g} C {msg}; "
                            f"expected one time-0 read and later reads per cell and temperature")
    g0_of = np.empty(len(uk))
    g0_of[inv[zero]] = g[zero]
    later = ~zero
    return BakeData(addr[later], temp[later], t[later], g0_of[inv[later]], g[later], src)


# --------------------------------------------------------------------------- read traces
@dataclass
class ReadTraces:
    """Continuous reads of a few cells: one row per cell.

    Attributes
    ----------
    level : ndarray of int, (n_cells,)
    offset : ndarray of int, (n_cells,)
        The index offset column of the file (kept for reference).
    g : ndarray, (n_cells, n_samples)
        Conductance samples, S.
    fs : float
        Sample rate, Hz.
    source : str
    """

    level: np.ndarray
    offset: np.ndarray
    g: np.ndarray
    fs: float
    source: str = ""

    @property
    def duration(self) -> float:
        """Length of each trace, s."""
        return self.g.shape[1] / self.fs


def _settings_fs(path: Path) -> float | None:
    # The shared data keep the sample rate in '<tech>-settings.json' next to '<tech>-timeseries'.
    m = re.match(r"(.+?)-timeseries", path.name)
    if not m:
        return None
    settings = path.with_name(f"{m.group(1)}-settings.json")
    if not settings.exists():
        return None
    try:
        return float(json.loads(settings.read_text())["fs"])
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{settings}: no readable 'fs' (sample rate, Hz)") from None


def load_traces(path: str | os.PathLike, fs: float | None = None,
                header_columns: int = 2) -> ReadTraces:
    """Read continuous read traces: per row the level, an index offset, then samples in S.

    Parameters
    ----------
    path : path
    fs : float, optional
        Sample rate, Hz. Default: ``fs`` of the ``<tech>-settings.json`` beside the file.
    header_columns : int
        Leading columns before the samples (level, index offset).
    """
    path, text = _read_text(path)
    src = str(path)
    if fs is None:
        fs = _settings_fs(path)
        if fs is None:
            raise DataError(f"{src}: sample rate unknown; give fs (Hz) or put a "
                            f"'<tech>-settings.json' with 'fs' beside the file")
    if not (math.isfinite(fs) and fs > 0):
        raise DataError(f"{src}: sample rate {fs!r}; expected a positive number of Hz")
    rows = _rows(text)
    if not rows:
        raise DataError(f"{src}: empty file; expected one cell per row: level, index offset, "
                        f"then conductance samples (S)")
    n = len(rows[0][1])
    if n < header_columns + 16:
        raise DataError(f"{src}: row {rows[0][0]} has {n} columns; expected level, index "
                        f"offset and at least 16 samples")
    levels, offsets, traces = [], [], []
    for lineno, tokens in rows:
        if len(tokens) != n:
            raise DataError(f"{src}: row {lineno} has {len(tokens)} columns but row {rows[0][0]} "
                            f"has {n}; every trace needs the same number of samples")
        try:
            vals = np.array(tokens, dtype=np.float64)
        except ValueError:
            for k, tok in enumerate(tokens):
                try:
                    float(tok)
                except ValueError:
                    raise DataError(f"{src}: row {lineno}, column {k + 1}: {tok!r} is not a "
                                    f"number") from None
            raise  # pragma: no cover
        head, samples = vals[:header_columns], vals[header_columns:]
        if np.any(head != np.round(head)) or np.any(head < 0):
            raise DataError(f"{src}: row {lineno}: level and offset {head.tolist()}; expected "
                            f"non-negative integers")
        bad = ~np.isfinite(samples) | (samples <= 0) | (samples >= 1)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"{src}: row {lineno}, column {k + header_columns + 1}: "
                            f"{float(samples[k])!r}; expected a conductance in siemens (0 < g < 1)")
        levels.append(int(head[0]))
        offsets.append(int(head[1]) if header_columns > 1 else 0)
        traces.append(samples)
    return ReadTraces(np.array(levels), np.array(offsets), np.stack(traces), float(fs), src)


# --------------------------------------------------------------------------- detection
def detect_relaxation_format(path: str | os.PathLike) -> str | None:
    """``"relaxation"``, ``"bake"``, ``"traces"`` from the first row, or None if none fits.

    Relaxation (7 columns) and bake (5 columns) rows carry ``r`` and ``g = 1/r`` in columns 3
    and 4: that product tells them from a cycling table with the same column count.
    """
    from pyaimc.data.loaders import existing_file

    path = existing_file(path)  # a FIFO or folder is refused here, before it is opened
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(1 << 20)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: a damaged gzip file ({err})") from None
    lines = head.decode("utf-8", errors="replace").splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    tokens = first.split()
    try:
        vals = [float(t) for t in tokens[:8]]
    except ValueError:
        return None
    if len(tokens) in (5, 7) and vals[2] > 0 and abs(vals[2] * vals[3] - 1) < 1e-4:
        return "relaxation" if len(tokens) == 7 else "bake"
    if len(tokens) >= 100 and all(0 < v < 1 for v in vals[2:8]):
        return "traces"
    return None


# --------------------------------------------------------------------------- RADAR retention
@dataclass
class WriteLog:
    """A write-verify log: one row per write of a target window (11-column RADAR format).

    Attributes (arrays over writes, in file order)
    ----------------------------------------------
    addr : int
    nreads, nsets, nresets : int
    r_final : float, ohm
    r_lo, r_hi : float, ohm (the target window of the write)
    success : bool
    attempts1, attempts2 : int
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
    source: str = ""

    @property
    def pulses(self) -> np.ndarray:
        """Pulses of each write: ``nsets + nresets - 1``."""
        return self.nsets + self.nresets - 1

    def last_write(self) -> dict[int, int]:
        """Address -> index of its last write (cells out of window were rewritten later)."""
        return {int(a): i for i, a in enumerate(self.addr)}


def load_write_log(path: str | os.PathLike) -> WriteLog:
    """A RADAR write-verify log (11 columns, see ``radar_programming/README.md``) with integer
    addresses, for pairing with read-backs.

    One reader of the format: :func:`pyaimc.data.pulses.load_write_log` (which allows the 0
    ohm ``r_final`` of a write with no final read) does the parsing and checks.
    """
    from pyaimc.data.pulses import load_write_log as read_log

    log = read_log(path)
    addr = np.asarray([float(a) for a in log.addr])
    if not np.all(addr == np.round(addr)):
        raise DataError(f"{log.source}: cell addresses must be integers for read-back pairing")
    return WriteLog(addr.astype(np.int64), log.nreads, log.nsets, log.nresets, log.r_final,
                    log.r_lo, log.r_hi, log.success, log.attempts1, log.attempts2, log.source)


def line_levels(n_lines: int, n_levels: int, block: int = 32) -> np.ndarray:
    """Level of each line of a RADAR read-back: ``(i + i // block) mod n_levels``."""
    i = np.arange(n_lines)
    return (i + i // block) % n_levels


def load_readback(path: str | os.PathLike, n_cells: int = 1024) -> np.ndarray:
    """A RADAR read-back: one resistance (ohm) per line -> array (n_reads, n_cells).

    Files with a multiple of ``n_cells`` lines hold repeated reads of the same cells. One reader
    of the format: :func:`pyaimc.data.pulses.load_readback` parses and checks.
    """
    from pyaimc.data.pulses import load_readback as read_back

    rb = read_back(path, n_levels=2, n_cells=n_cells)
    if rb.r.size % n_cells:
        raise DataError(f"{rb.source}: {rb.r.size} lines; expected a multiple of {n_cells} (one "
                        f"line per cell, repeated reads one after another)")
    return rb.r.reshape(-1, n_cells)


@dataclass
class RetentionExperiment:
    """One RADAR retention experiment: write, read back, bake, read again.

    Attributes
    ----------
    name : str
        E.g. ``"3bpc1"``.
    bits_per_cell : int
    level : ndarray of int, (n_cells,)
        Level of each cell (line rule of the README); level 0 is the highest conductance.
    addr : ndarray of int, (n_cells,)
        Address of each cell (``base + line``).
    r_written : ndarray, (n_cells,)
        Final resistance of the cell's last write (verify read), ohm; NaN if never written.
    window_lo, window_hi : ndarray, (n_cells,)
        Resistance window of the cell's last write, ohm (NaN if never written).
    pre, post : ndarray, (n_reads, n_cells)
        Read-backs before and after the bake, ohm.
    write : WriteLog
    agreement : float
        Fraction of written cells whose write window belongs to the level the line rule gives.
    """

    name: str
    bits_per_cell: int
    level: np.ndarray
    addr: np.ndarray
    r_written: np.ndarray
    window_lo: np.ndarray
    window_hi: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    write: WriteLog
    agreement: float = 1.0
    sources: dict = field(default_factory=dict)

    @property
    def n_levels(self) -> int:
        return 2 ** self.bits_per_cell


def _window_levels(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Level of each write window: overlapping windows are one level; level 0 lowest R."""
    win = np.unique(np.stack([lo, hi], 1), axis=0)
    win = win[np.argsort(win[:, 0] + win[:, 1])]
    group = np.zeros(len(win), dtype=np.int64)
    top = win[0, 1]
    for k in range(1, len(win)):
        overlap = win[k, 0] < top
        group[k] = group[k - 1] + (0 if overlap else 1)
        top = max(top, win[k, 1]) if overlap else win[k, 1]
    index = {tuple(w): g for w, g in zip(win, group)}
    return np.array([index[(a, b)] for a, b in zip(lo, hi)])


def load_retention_experiment(write_log: str | os.PathLike, prebake: str | os.PathLike,
                              postbake: str | os.PathLike, bits_per_cell: int,
                              name: str = "", n_cells: int = 1024,
                              base_address: int | None = None) -> RetentionExperiment:
    """Load one retention experiment and pair each read-back line with its cell's last write.

    Parameters
    ----------
    write_log, prebake, postbake : path
    bits_per_cell : int
    name : str
    n_cells : int
        Cells per read-back (lines of one read).
    base_address : int, optional
        Address of line 0. Default: of the two candidates (the smallest address written and the
        largest minus ``n_cells - 1``) the one where the write windows agree best with the line
        rule of the levels; at least 99 % must agree.
    """
    if bits_per_cell not in (1, 2, 3, 4):
        raise ValueError(f"bits_per_cell must be 1-4, got {bits_per_cell}")
    log = load_write_log(write_log)
    pre = load_readback(prebake, n_cells)
    post = load_readback(postbake, n_cells)
    n_levels = 2 ** bits_per_cell
    lines = line_levels(n_cells, n_levels)
    wl = _window_levels(log.r_lo, log.r_hi)
    if wl.max() != n_levels - 1:
        raise DataError(f"{log.source}: the write windows form {wl.max() + 1} levels; expected "
                        f"{n_levels} for {bits_per_cell} bits per cell")
    candidates = [base_address] if base_address is not None else sorted(
        {int(log.addr.min()), int(log.addr.max()) - n_cells + 1})
    best = None
    for base in candidates:
        idx = log.addr - base
        inside = (idx >= 0) & (idx < n_cells)
        if not inside.any():
            continue
        agree = float(np.mean(wl[inside] == lines[idx[inside]]))
        if best is None or (agree, inside.sum()) > (best[1], best[2]):
            best = (base, agree, int(inside.sum()))
    if best is None or best[1] < 0.99:
        got = "no write inside any candidate block" if best is None else \
            f"{best[1]:.1%} agreement at base address {best[0]}"
        raise DataError(f"{log.source}: cannot pair the write log with {prebake}: {got}; "
                        f"expected >= 99 % of writes in the level the line rule "
                        f"(i + i // 32) mod {n_levels} gives (give base_address)")
    base = best[0]
    r_written = np.full(n_cells, np.nan)
    lo = np.full(n_cells, np.nan)
    hi = np.full(n_cells, np.nan)
    for a, i in log.last_write().items():
        j = a - base
        if 0 <= j < n_cells:
            r_written[j], lo[j], hi[j] = log.r_final[i], log.r_lo[i], log.r_hi[i]
    return RetentionExperiment(name or Path(prebake).stem, bits_per_cell, lines,
                               base + np.arange(n_cells), r_written, lo, hi, pre, post, log,
                               best[1], {"write": str(write_log), "prebake": str(prebake),
                                         "postbake": str(postbake)})


def radar_retention_experiments(directory: str | os.PathLike) -> dict[str, RetentionExperiment]:
    """All experiments of a ``radar_programming/retention`` folder, by name (``"3bpc1"``, ...).

    File names: ``readtest{b}bpc{n}-prebake.csv`` / ``-postbake.csv``; write logs
    ``writetest{n}.csv`` for 3 bits per cell, ``writetest{b}bpc{n}.csv`` otherwise.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such folder")
    out = {}
    for pre in sorted(directory.glob("readtest*bpc*-prebake.csv")):
        m = re.fullmatch(r"readtest(\d)bpc(\d+)-prebake\.csv", pre.name)
        if not m:
            continue
        bits, n = int(m.group(1)), int(m.group(2))
        post = pre.with_name(f"readtest{bits}bpc{n}-postbake.csv")
        write = directory / (f"writetest{n}.csv" if bits == 3 else f"writetest{bits}bpc{n}.csv")
        if not post.exists() or not write.exists():
            raise DataError(f"{pre}: no matching {post.name} or {write.name} in {directory}")
        out[f"{bits}bpc{n}"] = load_retention_experiment(write, pre, post, bits, f"{bits}bpc{n}")
    if not out:
        raise DataError(f"{directory}: no readtest*bpc*-prebake.csv files")
    return out

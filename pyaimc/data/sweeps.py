"""Switching features from raw triangular I-V sweeps.

A sweep cycle goes ``0 -> U_min < 0 -> U_max > 0 -> 0``. In cycle ``n`` the cell starts in the HRS
reached by the previous RESET, SETs abruptly on the negative branch, is read in the LRS on the
rising positive branch, starts to RESET at the onset ``U_RESET`` and ends in the next HRS:

- ``U_SET``: midpoint of the two samples around the abrupt jump of the chord conductance ``I/U``
  on the falling negative branch (the switching voltage lies between them).
- ``R_LRS``: ``U_read / I(U_read)`` on the rising positive branch (local quadratic interpolation).
- ``U_RESET``: where the rising LRS branch and the falling RESET branch meet (lines through the two
  samples on each side of the current peak, intersected; clamped to the peak's interval).
- ``R_HRS`` of cycle ``n + 1``: ``U_read / I(U_read)`` on the falling positive branch of cycle ``n``.
  Cycle 0's HRS is not observed at ``+U_read`` and is marked missing.

A cycle without a clear SET jump (chord conductance ratio below ``min_jump``) or without a RESET
peak has its features marked missing, never guessed.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyaimc.data import plausibility
from pyaimc.data.container import CycleData, DataError

FEATURES = ("R_HRS", "U_SET", "R_LRS", "U_RESET")


@dataclass
class SweepFeatures:
    """Extracted features and where the events sit in each sweep.

    Attributes
    ----------
    data : CycleData
        R_HRS, U_SET, R_LRS, U_RESET per cell and cycle (missing where not observed).
    u : ndarray (P,)
        The sweep waveform, V.
    i : ndarray (cells, cycles, P)
        Currents, A.
    set_index : ndarray of int (cells, cycles)
        First sample after the SET jump (-1 if none).
    reset_index : ndarray of int (cells, cycles)
        Last sample before the RESET onset (the current peak; -1 if none).
    """

    data: CycleData
    u: np.ndarray
    i: np.ndarray
    set_index: np.ndarray
    reset_index: np.ndarray

    @property
    def branches(self) -> dict:
        return sweep_branches(self.u)


def load_sweeps(path: str | os.PathLike, plausible: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """Read ``U`` (P,) and ``I`` (cells, cycles, P) from an ``.npz`` file, checked (and against
    the ranges of :mod:`pyaimc.data.plausibility` unless ``plausible`` is False)."""
    from pyaimc.data.loaders import existing_file

    path = existing_file(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if "U" not in f.files or "I" not in f.files:
                raise DataError(f"{path}: a sweep file needs arrays 'U' (points) and 'I' "
                                f"(cells x cycles x points); found {', '.join(f.files)}")
            if f["U"].dtype.kind not in "fiu" or f["I"].dtype.kind not in "fiu":
                raise DataError(f"{path}: U and I must hold numbers, got {f['U'].dtype} and "
                                f"{f['I'].dtype}")
            u, i = np.asarray(f["U"], dtype=np.float64), np.asarray(f["I"], dtype=np.float64)
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as err:
        raise DataError(f"{path}: not a readable .npz archive ({err})") from None
    except ValueError as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz archive ({err})") from None
    check_sweeps(u, i, str(path))
    if plausible:
        plausibility.check(u, "U", str(path), lambda k: f"point {k[0]}")
        plausibility.check(i, "I", str(path), lambda k: f"cell {k[0]}, cycle {k[1]}, point {k[2]}")
    return u, i


def is_sweep_file(path: str | os.PathLike) -> bool:
    """True for an ``.npz`` holding sweep arrays ``U`` and ``I``."""
    if not Path(path).is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as f:
            return {"U", "I"} <= set(f.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError,
            RuntimeError):
        return False


def check_sweeps(u: np.ndarray, i: np.ndarray, source: str = "sweeps") -> None:
    """Validate a sweep waveform and currents; raise DataError naming the problem."""
    if u.ndim != 1:
        raise DataError(f"{source}: U must be one waveform (points,), got shape {u.shape}")
    if i.ndim != 3 or i.shape[2] != u.shape[0]:
        raise DataError(f"{source}: I must be cells x cycles x {u.shape[0]} points, got {i.shape}")
    if not np.all(np.isfinite(u)):
        raise DataError(f"{source}: U has non-finite values")
    bad = ~np.isfinite(i)
    if bad.any():
        c, n, p = np.argwhere(bad)[0]
        raise DataError(f"{source}: I is not finite at cell {c}, cycle {n}, point {p}")
    sweep_branches(u, source)


def sweep_branches(u: np.ndarray, source: str = "sweeps") -> dict:
    """Index ranges of the four branches of a ``0 -> U_min -> U_max -> 0`` waveform."""
    i_min, i_max = int(np.argmin(u)), int(np.argmax(u))
    if not (u[i_min] < 0 < u[i_max]) or not i_min < i_max:
        raise DataError(f"{source}: the waveform must go negative first, then positive "
                        f"(0 -> U_min < 0 -> U_max > 0 -> 0)")
    zero_cross = i_min + int(np.argmax(u[i_min:] > 0))  # first positive sample after U_min
    # repeated extreme samples (a flat top) belong to the branch they end
    i_max_last = i_max + int(np.argmax(u[i_max:] < u[i_max])) - 1
    return {"neg_down": np.arange(0, i_min + 1), "neg_up": np.arange(i_min, zero_cross),
            "pos_up": np.arange(zero_cross, i_max + 1),
            "pos_down": np.arange(i_max_last, len(u)), "i_min": i_min, "i_max": i_max}


def _read_at(u: np.ndarray, i: np.ndarray, idx: np.ndarray, u_read: float) -> np.ndarray:
    """Current at ``u_read`` by a quadratic through the 3 samples of branch ``idx`` nearest to it."""
    order = np.argsort(np.abs(u[idx] - u_read), kind="stable")[:3]
    pts = np.sort(idx[order])
    x = u[pts]
    y = i[..., pts]
    # Lagrange quadratic evaluated at u_read
    w = np.array([np.prod([(u_read - x[m]) / (x[k] - x[m]) for m in range(3) if m != k])
                  for k in range(3)])
    return y @ w


def extract_features(u: np.ndarray, i: np.ndarray, u_read: float = 0.2, min_jump: float = 1.1,
                     source: str = "sweeps") -> SweepFeatures:
    """Extract R_HRS, U_SET, R_LRS, U_RESET from sweeps (see module docstring).

    Parameters
    ----------
    u : ndarray (P,)
        One triangular cycle ``0 -> U_min -> U_max -> 0``, V.
    i : ndarray (cells, cycles, P)
        Measured currents, A.
    u_read : float
        Read voltage for the resistances, V (must lie inside both positive branches).
    min_jump : float
        Smallest ratio of chord conductances across the SET jump accepted as a SET.
    source : str
        For messages and provenance.
    """
    u = np.asarray(u, dtype=np.float64)
    i = np.asarray(i, dtype=np.float64)
    check_sweeps(u, i, source)
    br = sweep_branches(u, source)
    if not (u_read < u[br["i_max"]]):
        raise DataError(f"{source}: u_read {u_read} V is above the sweep maximum {u.max()} V")
    n_cells, n_cycles, _ = i.shape
    missing = np.zeros((n_cells, n_cycles, 4), dtype=bool)

    # SET: largest jump of |I/U| between neighbours on the falling negative branch
    down = br["neg_down"][1:]  # skip the 0 V sample
    g = np.abs(i[..., down] / u[down])
    ratio = g[..., 1:] / np.maximum(g[..., :-1], 1e-30)
    k = np.argmax(ratio, axis=-1)
    jump = np.take_along_axis(ratio, k[..., None], -1)[..., 0]
    set_ok = jump >= min_jump
    set_index = np.where(set_ok, down[k + 1], -1)
    u_set = np.where(set_ok, 0.5 * (u[down[k]] + u[down[k + 1]]), np.nan)

    # RESET onset: the current peak on the rising positive branch, refined by two lines
    up = br["pos_up"]
    up = up[u[up] > u_read]
    peak_rel = np.argmax(i[..., up], axis=-1)
    reset_ok = (peak_rel >= 1) & (peak_rel <= len(up) - 3)
    pk = np.clip(peak_rel, 1, len(up) - 3)
    a0, a1, b0, b1 = (up[pk - 1], up[pk], up[pk + 1], up[pk + 2])

    def take(idx):
        return np.take_along_axis(i, idx[..., None], -1)[..., 0]

    ia0, ia1, ib0, ib1 = take(a0), take(a1), take(b0), take(b1)
    sa = (ia1 - ia0) / (u[a1] - u[a0])
    sb = (ib1 - ib0) / (u[b1] - u[b0])
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = u[a1] + (ib0 + sb * (u[a1] - u[b0]) - ia1) / (sa - sb)
    cross = np.where(np.isfinite(cross), cross, u[a1])
    u_reset = np.where(reset_ok, np.clip(cross, u[a1], u[b0]), np.nan)
    reset_index = np.where(reset_ok, a1, -1)

    # resistances at u_read
    lrs_branch = up_all = br["pos_up"]
    i_lrs = _read_at(u, i, lrs_branch, u_read)
    # the LRS read must lie before the RESET onset
    read_before_onset = u_read < np.nan_to_num(u_reset, nan=-np.inf)
    r_lrs = np.where(set_ok & read_before_onset & (i_lrs > 0), u_read / np.where(i_lrs > 0, i_lrs, 1),
                     np.nan)
    i_end = _read_at(u, i, br["pos_down"], u_read)
    r_end = np.where(reset_ok & (i_end > 0), u_read / np.where(i_end > 0, i_end, 1), np.nan)
    r_hrs = np.full((n_cells, n_cycles), np.nan)
    r_hrs[:, 1:] = r_end[:, :-1]
    del up_all

    values = np.stack([r_hrs, u_set, r_lrs, u_reset], axis=-1)
    missing = ~np.isfinite(values)
    values = np.where(missing, np.nan, values)
    data = CycleData(values, missing, FEATURES, ("ohm", "V", "ohm", "V"),
                     np.arange(n_cells).astype(str), source)
    return SweepFeatures(data, u, i, set_index, reset_index)

"""The calibration-data container: cells x cycles x features, with names, units and a mask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pyaimc.errors import InputError

#: Units of the features pyaimc knows by name. Other names are accepted with unit "".
KNOWN_UNITS = {
    "R_HRS": "ohm",
    "R_LRS": "ohm",
    "U_SET": "V",
    "U_RESET": "V",
}


class DataError(InputError):
    """Calibration data that cannot be used; the message names the file, row/cell and problem."""


@dataclass
class ExcludedCell:
    """A cell left out of fitting, and why."""

    index: int  #: row of the cell in the file (0-based)
    cell_id: str  #: the cell's label (address) as in the file
    reason: str


@dataclass
class CycleData:
    """Per-cycle switching features of a set of cells.

    Attributes
    ----------
    values : ndarray, shape (n_cells, n_cycles, n_features), float64
        Feature values in SI units (ohm, volt). Missing entries hold NaN.
    missing : ndarray of bool, same shape as ``values``
        True where no value was measured.
    feature_names : tuple of str
        E.g. ``("R_HRS", "U_SET", "R_LRS", "U_RESET")``.
    units : tuple of str
        One unit per feature (``"ohm"``, ``"V"``).
    cell_ids : ndarray of str, shape (n_cells,)
        Labels of the cells (addresses in the source file).
    source : str
        Where the data came from (a path).
    excluded : list of ExcludedCell
        Cells removed by an explicit rule, with the reason (see :func:`exclude_stuck_cells`).
    cell_labels : dict of str -> ndarray
        Per-cell side information found in the file (e.g. ``gmm_component``).
    """

    values: np.ndarray
    missing: np.ndarray
    feature_names: tuple[str, ...]
    units: tuple[str, ...]
    cell_ids: np.ndarray
    source: str = ""
    excluded: list[ExcludedCell] = field(default_factory=list)
    cell_labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        self.missing = np.asarray(self.missing, dtype=bool)
        self.feature_names = tuple(self.feature_names)
        self.units = tuple(self.units)
        self.cell_ids = np.asarray(self.cell_ids).astype(str)
        where = self.source or "data"
        if self.values.ndim != 3:
            raise DataError(f"{where}: values must be cells x cycles x features, "
                            f"got {self.values.ndim} dimensions")
        if self.missing.shape != self.values.shape:
            raise DataError(f"{where}: mask shape {self.missing.shape} does not match values "
                            f"{self.values.shape}")
        n_cells, _, n_features = self.values.shape
        if len(self.feature_names) != n_features or len(self.units) != n_features:
            raise DataError(f"{where}: {n_features} features but {len(self.feature_names)} names "
                            f"and {len(self.units)} units")
        if len(set(self.feature_names)) != n_features:
            raise DataError(f"{where}: duplicate feature names {self.feature_names}")
        if self.cell_ids.shape != (n_cells,):
            raise DataError(f"{where}: {n_cells} cells but {self.cell_ids.size} cell ids")
        for name, lab in self.cell_labels.items():
            if len(lab) != n_cells:
                raise DataError(f"{where}: cell label {name!r} has {len(lab)} entries, "
                                f"expected {n_cells}")
        self.values[self.missing] = np.nan

    @property
    def n_cells(self) -> int:
        return self.values.shape[0]

    @property
    def n_cycles(self) -> int:
        return self.values.shape[1]

    @property
    def n_features(self) -> int:
        return self.values.shape[2]

    def feature(self, name: str) -> np.ndarray:
        """One feature as a cells x cycles array (NaN where missing)."""
        try:
            return self.values[:, :, self.feature_names.index(name)]
        except ValueError:
            raise KeyError(f"{self.source or 'data'}: no feature {name!r}; "
                           f"it has {', '.join(self.feature_names)}") from None

    def as_dict(self) -> dict[str, np.ndarray]:
        """Features as a name -> cells x cycles dict (the layout of ``pyaimc sample``)."""
        return {name: self.values[:, :, i] for i, name in enumerate(self.feature_names)}

    def select_cells(self, keep: np.ndarray, reasons: Sequence[str] | None = None) -> "CycleData":
        """A copy with only the cells where ``keep`` is True.

        Parameters
        ----------
        keep : bool array, shape (n_cells,)
        reasons : sequence of str, optional
            One reason per cell; the reasons of dropped cells are recorded in ``excluded``.
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.n_cells,):
            raise ValueError(f"keep must have shape ({self.n_cells},), got {keep.shape}")
        index = np.flatnonzero(~keep)
        # indices of the original file rows are kept through repeated selections
        original_rows = self._original_rows()
        excluded = list(self.excluded) + [
            ExcludedCell(int(original_rows[i]), str(self.cell_ids[i]),
                         reasons[i] if reasons is not None else "excluded")
            for i in index]
        out = CycleData(self.values[keep], self.missing[keep], self.feature_names, self.units,
                        self.cell_ids[keep], self.source, excluded,
                        {k: v[keep] for k, v in self.cell_labels.items()})
        out.cell_labels["_row"] = original_rows[keep]
        return out

    def _original_rows(self) -> np.ndarray:
        return np.asarray(self.cell_labels.get("_row", np.arange(self.n_cells)))

    def summary(self) -> str:
        """A short human-readable description."""
        lines = [f"{self.source or 'data'}: {self.n_cells} cells x {self.n_cycles} cycles, "
                 f"features {', '.join(f'{n} [{u}]' for n, u in zip(self.feature_names, self.units))}"]
        n_missing = int(self.missing.sum())
        if n_missing:
            lines.append(f"  {n_missing} missing values ({n_missing / self.missing.size:.2%})")
        for ex in self.excluded:
            lines.append(f"  excluded cell {ex.cell_id} (file row {ex.index + 1}): {ex.reason}")
        return "\n".join(lines)


def exclude_stuck_cells(data: CycleData, min_window: float = 1.5,
                        max_failed_fraction: float = 0.25,
                        failed_window: float = 1.2) -> CycleData:
    """Exclude cells that do not switch, by an explicit rule; they are listed in ``excluded``.

    A cycle *fails* when its ``R_HRS / R_LRS`` is below ``failed_window``. A cell is excluded when
    its median window ``R_HRS / R_LRS`` is below ``min_window`` or when more than
    ``max_failed_fraction`` of its cycles fail. Cells that switch but sit far from the others
    (outlier devices) are kept: the device-to-device mixture models them.

    Data without both ``R_HRS`` and ``R_LRS`` is returned unchanged.
    """
    if not {"R_HRS", "R_LRS"} <= set(data.feature_names):
        return data
    window = data.feature("R_HRS") / data.feature("R_LRS")
    with np.errstate(invalid="ignore"):
        median_window = np.nanmedian(window, axis=1)
        failed = np.nanmean(np.where(np.isnan(window), np.nan, window < failed_window), axis=1)
    reasons = []
    keep = np.ones(data.n_cells, dtype=bool)
    for i in range(data.n_cells):
        if median_window[i] < min_window:
            keep[i] = False
            reasons.append(f"stuck: median R_HRS/R_LRS {median_window[i]:.2f} < {min_window}")
        elif failed[i] > max_failed_fraction:
            keep[i] = False
            reasons.append(f"stuck: {failed[i]:.0%} of cycles have R_HRS/R_LRS < {failed_window} "
                           f"(limit {max_failed_fraction:.0%})")
        else:
            reasons.append("")
    if keep.all():
        return data
    return data.select_cells(keep, reasons)

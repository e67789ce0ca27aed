"""Physical plausibility ranges of measured inputs, checked when data is read.

A value outside its range is almost always a unit or export error (a resistance in milliohm or a
stray ``1e300``); read silently, it becomes a "population" of the fit and samples of ``inf``. The
ranges are wide enough for every ReRAM and read-out the package models, and each check can be
switched off (``plausible=False`` in the loaders, ``--accept-implausible`` on the command line)
for data outside them on purpose.

========================= ======================= ===============================================
quantity                  range                   why
========================= ======================= ===============================================
resistance (``R_*``)      10 ohm .. 10 Gohm       a cell below 10 ohm is a short, above 10 Gohm an
                                                  open read at any practical read current
SET voltage ``U_SET``     -20 V .. 0 V            beyond 20 V an oxide of any thickness here breaks
RESET voltage ``U_RESET`` 0 V .. 20 V             as for SET
sweep voltage ``U``       -20 V .. 20 V           as for SET
sweep current ``I``       |I| <= 1 A              no memory cell carries an ampere
conductance ``G``         0 .. 1 S                1 ohm cells are already wires
row voltage               |V| <= 20 V             as for SET
========================= ======================= ===============================================
"""

from __future__ import annotations

import numpy as np

from pyaimc.data.container import DataError

#: (low, high, unit, what) per quantity
RANGES = {
    "R": (10.0, 1e10, "ohm", "a resistance"),
    "U_SET": (-20.0, 0.0, "V", "a SET voltage"),
    "U_RESET": (0.0, 20.0, "V", "a RESET voltage"),
    "U": (-20.0, 20.0, "V", "a sweep voltage"),
    "I": (-1.0, 1.0, "A", "a cell current"),
    "G": (0.0, 1.0, "S", "a cell conductance"),
    "V": (-20.0, 20.0, "V", "a row voltage"),
}

OVERRIDE_HINT = "(if the data really is outside, pass --accept-implausible)"


def quantity(feature: str) -> str | None:
    """The range key of a feature name (``R_HRS`` -> ``"R"``), or None when unchecked."""
    if feature.startswith("R_"):
        return "R"
    return feature if feature in RANGES else None


def check(values, key: str, source: str, where=None, name: str | None = None) -> None:
    """Raise :class:`DataError` at the first value of ``values`` outside ``RANGES[key]``.

    Parameters
    ----------
    values : array_like
        Finite values (NaN entries are skipped: missing).
    key : str
        A key of :data:`RANGES`.
    source : str
        File or option named in the message.
    where : callable, optional
        ``where(index_tuple) -> str`` locating a value (row, cell, cycle); default the index.
    name : str, optional
        The feature's name in the message (default ``key``).
    """
    lo, hi, unit, what = RANGES[key]
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = (v < lo) | (v > hi)
    if not bad.any():
        return
    idx = tuple(int(k) for k in np.argwhere(bad)[0])
    loc = where(idx) if where is not None else f"index {idx}"
    raise DataError(f"{source}: {loc}: {name or key} = {v[idx]:.6g} {unit} is not plausible as "
                    f"{what} (expected {lo:g} .. {hi:g} {unit}; {int(bad.sum())} such values) "
                    f"{OVERRIDE_HINT}")

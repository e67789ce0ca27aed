"""One entry point for every engine: column currents of a crossbar for one or many vectors."""

from __future__ import annotations

import os

import numpy as np

from pyaimc.circuit.crossbar import Crossbar
from pyaimc.circuit.engines import ENGINES, get_engine
from pyaimc.spice.ngspice import DEFAULT_TIMEOUT

__all__ = ["ENGINES", "simulate", "simulate_ngspice"]


def simulate_ngspice(crossbar: Crossbar, v_rows, *, timeout: float = DEFAULT_TIMEOUT,
                     executable: str | os.PathLike | None = None) -> np.ndarray:
    """Column read-out currents (batch, cols; A) from ngspice operating points, one run per
    input vector (``timeout`` per run, s)."""
    return get_engine("ngspice").column_currents(crossbar, v_rows, timeout=timeout,
                                                 executable=executable)


def simulate(crossbar: Crossbar, v_rows, engine: str = "fast", **options) -> np.ndarray:
    """Column currents (ampere, positive into the read-out) of a crossbar.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit.
    v_rows : array_like, shape (rows,) or (batch, rows)
        Row voltages in volt, applied by the row drivers.
    engine : str or Engine
        A registered engine (:mod:`pyaimc.circuit.engines`: ``"fast"``, ``"ngspice"``, ...).
    **options
        The engine's options (fast: ``method``, ``rtol`` ...; ngspice: ``timeout``,
        ``executable``).

    Returns
    -------
    ndarray
        Shape (cols,) for one vector, (batch, cols) for a batch.
    """
    single = np.ndim(v_rows) == 1
    currents = get_engine(engine).column_currents(crossbar, v_rows, **options)
    return currents[0] if single else currents

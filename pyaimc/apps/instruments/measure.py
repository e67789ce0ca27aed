"""``pyaimc measure`` as a function: open an instrument, run a protocol, return what to write."""

from __future__ import annotations

import numpy as np

from pyaimc.apps.instruments.protocols import (cycling, default_waveform, features_npz_arrays,
                                               iv_sweeps, pulse_train, read_cells)
from pyaimc.errors import FailedError

PROTOCOLS = ("cycling", "sweeps", "pulses", "read")
#: the model of the virtual chip when none is given
DEFAULT_MODEL = "example"


def open_instrument(instrument: str, n_cells: int, rng: np.random.Generator,
                    model: str | None = None, visa_library: str = "", calibrate: bool = True,
                    one_t_one_r: bool = False, compliance: float | None = None):
    """The board named by ``instrument`` (``virtual`` or ``visa:RESOURCE``), calibrated when it
    has calibration standards and ``calibrate`` is set.

    Returns
    -------
    board : Board
    model : DeviceModel or None
        The virtual chip's model.
    """
    from pyaimc.apps.instruments.calibration import calibrate as run_calibration
    from pyaimc.apps.instruments.frontend import FrontEndSpec

    if instrument == "virtual":
        from pyaimc.apps.instruments.virtual import VirtualBoard
        from pyaimc.device.model import DeviceModel

        dev = DeviceModel.load(model or DEFAULT_MODEL)
        spec = FrontEndSpec() if compliance is None else FrontEndSpec(compliance_a=compliance)
        board = VirtualBoard.from_model(dev, n_cells, rng, spec=spec)
        if calibrate:
            run_calibration(board)
        return board, dev
    if not instrument.startswith("visa:") or len(instrument) <= 5:
        raise ValueError(f"--instrument must be 'virtual' or 'visa:RESOURCE', got {instrument!r}")
    if model is not None:
        raise ValueError("--model is for the virtual instrument only (a real instrument "
                         "measures real devices)")
    from pyaimc.apps.instruments.visa import open_board

    options = {"one_t_one_r": one_t_one_r}
    if compliance is not None:
        options["compliance_a"] = compliance
    board = open_board(instrument[5:], visa_library, **options)
    if n_cells > board.n_cells:
        board.close()
        raise ValueError(f"--cells {n_cells}: {instrument} addresses {board.n_cells} device(s)")
    if calibrate and board.reference_ohm is not None:
        run_calibration(board)
    return board, None


def measure(instrument: str, protocol: str, n_cells: int, n_cycles: int,
            rng: np.random.Generator, model: str | None = None, visa_library: str = "",
            calibrate: bool = True, sweep: bool = True, points: int = 400,
            compliance: float | None = None, one_t_one_r: bool = False,
            progress: bool = False) -> tuple[str, object, dict]:
    """Run ``protocol`` on ``n_cells`` devices of ``instrument``.

    Returns
    -------
    kind : {"npz", "pulse-csv"}
        How to write the data.
    data : dict of arrays or PulseData
        ``cycling``: the features ``pyaimc fit`` reads (``R_HRS``, ``R_LRS``; with sweeps also
        ``U_SET``, ``U_RESET``; ``missing``, ``cell_id``); ``sweeps``: ``U``, ``I``;
        ``pulses``: a pulse table; ``read``: ``R``, ``I`` (cells, cycles) and ``U``.
    meta : dict
        The board's description after the run (front end, calibration, time, counts).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if n_cells < 1 or n_cycles < 1:
        raise ValueError(f"--cells and --cycles must be >= 1, got {n_cells}, {n_cycles}")
    if points < 12:
        raise ValueError(f"--points must be >= 12, got {points}")
    board, _ = open_instrument(instrument, n_cells, rng, model, visa_library, calibrate,
                               one_t_one_r or protocol == "pulses", compliance)
    cells = np.arange(n_cells)
    try:
        if protocol == "cycling":
            res = cycling(board, n_cycles, sweep=sweep, cells=cells,
                          waveform=default_waveform(points), compliance=compliance,
                          progress=progress)
            data = features_npz_arrays(res)
            seen = ~data["missing"][:, :, -1]   # U_RESET with sweeps, R_LRS without
            if not seen.any():
                raise FailedError(f"{instrument}: no cycle of any device showed a SET and a "
                                  f"RESET; nothing to write for 'pyaimc fit'")
            kind = "npz"
        elif protocol == "sweeps":
            data, kind = iv_sweeps(board, n_cycles, default_waveform(points), cells, compliance,
                                   progress), "npz"
        elif protocol == "pulses":
            data, kind = pulse_train(board, n_cycles, cells=cells, progress=progress), "pulse-csv"
        else:
            data, kind = read_cells(board, cells, repeats=n_cycles), "npz"
        meta = board.describe()
    finally:
        board.close()
    return kind, data, meta

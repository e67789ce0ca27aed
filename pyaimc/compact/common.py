"""What the Verilog-A and ngspice versions of the device model share.

Both are state-space versions of the Python twin (:mod:`pyaimc.device.cells`) for simulators that
keep no hidden state between time steps: everything that must be remembered lives on internal
nodes, each integrating a smooth drive.

- ``st``: the I-V state ``r`` of the cell (dimensionless; the twin's ``r``).
- ``ph``: the phase, 1 after a SET, 0 once a RESET has begun.
- ``cn``: the RESET counter ``n``, which grows by exactly 1 per RESET onset (it integrates the
  phase's fall). ``m = n + ph`` counts SETs the same way.

A cycle ``k`` of the replayed table holds R_HRS_k, U_SET_k, R_LRS_k, U_RESET_k. The SET of a cell
uses cycle ``round(n)`` (the HRS it sits in), the RESET onset and path cycle ``round(m) - 1`` (the
LRS being reset), the RESET target the HRS of cycle ``round(n)``: each lookup index is constant
while the transition that uses it runs, so no lookup changes under a running transition.

Drives (rates ``k = k_switch`` and ``k_r = k_reset`` in 1/s, logistic ``S`` of width ``w_switch``
in V, softplus ``P`` of sharpness ``b_path``)::

    d r / dt = k S((U_SET - U)/w) (r_LRS - r) + k_r S((U - U_RESET)/w) P(r_path(U) - r)
               + k S((U - U_full)/w) (r_HRS - r)
    d ph / dt = k [ S((U_SET - U)/w) (1 - ph) - S((U - U_RESET)/w) ph ]
    d n / dt = k S((U - U_RESET)/w) ph

plus a small leak towards the initial state so that the DC operating point is defined. The last
term is the full RESET: the twin sets the cycle's HRS there exactly; the path drive alone would keep
any overshoot of the integrator's step across the path's kink at ``U_full`` (it is one-sided).
"""

from __future__ import annotations

import numpy as np

#: Default rate of the SET and phase/counter drives, 1/s (a SET is abrupt).
K_SWITCH = 3e8
#: Default rate of the RESET-path drive, 1/s (it lags the path by (dr/dt)/k_reset).
K_RESET = 3e8
#: Default logistic width of the switching thresholds, V.
W_SWITCH = 1e-4
#: Default softplus sharpness of the RESET-path drive (1/unit of r): past its target the drive
#: creeps by about ln(1 + k_reset t)/B (1e-4 of r per microsecond at most; a full RESET then
#: pulls the state to the HRS exactly).
B_PATH = 1e5
#: Leak conductance of the state nodes (1 F) towards their initial values: defines the DC point
#: (time constant 1e12 s, no drift worth the name); below ngspice's pivot tolerance (1e-13) the
#: matrix is nearly singular and Newton becomes fragile.
G_LEAK = 1e-12
#: Largest polynomial degree of the envelopes the Verilog-A module takes.
MAX_DEGREE = 9
#: Feature order of the cycle tables.
TABLE_FEATURES = ("R_HRS", "U_SET", "R_LRS", "U_RESET")


def table_from_sample(model, sample: dict) -> dict:
    """Complete a sampled feature table with the model's default switching voltages if absent.

    Returns name -> (devices, cycles) float64 for the four table features.
    """
    iv = model.iv_
    ref = np.asarray(sample["R_HRS"], dtype=np.float64)
    out = {"R_HRS": ref, "R_LRS": np.asarray(sample["R_LRS"], dtype=np.float64)}
    out["U_SET"] = np.asarray(sample.get("U_SET", np.full_like(ref, iv.default_u_set)), np.float64)
    out["U_RESET"] = np.asarray(sample.get("U_RESET", np.full_like(ref, iv.default_u_reset)),
                                np.float64)
    return {k: out[k] for k in TABLE_FEATURES}


def draw_devices(model, n_devices: int, n_cycles: int, seed: int) -> dict:
    """The per-instance cycle tables of an export: ``n_devices`` x ``n_cycles`` draws."""
    if n_devices < 1 or n_cycles < 1:
        raise ValueError(f"need at least one device and one cycle, got {n_devices}, {n_cycles}")
    sample = model.sample(n_devices, n_cycles, np.random.default_rng(seed))
    return table_from_sample(model, sample)


def fmt(x: float) -> str:
    """A float written so that it reads back bit-exactly (17 significant digits)."""
    return repr(float(x))


def logistic(x):
    """Overflow-free logistic ``0.5 (1 + tanh(x/2))`` (the form both simulators use)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def softplus(x, sharpness: float):
    """Overflow-free softplus ``max(x, 0) + ln(1 + exp(-|b x|)) / b``.

    ``ln(1 + .)`` as written, not ``log1p``: the same arithmetic as the compact models (Verilog-A
    has no ``log1p``), so the reference equals them to rounding.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0.0) + np.log(1.0 + np.exp(-np.abs(sharpness * x))) / sharpness


def cycle_indices(cn, ph, n_table: int):
    """Table rows used by the state equations: (SET row ``round(n)``, RESET row ``round(m) - 1``)."""
    kn = np.clip(np.floor(np.asarray(cn) + 0.5), 0, n_table - 1).astype(int)
    km = np.clip(np.floor(np.asarray(cn) + np.asarray(ph) + 0.5) - 1, 0, n_table - 1).astype(int)
    return kn, km


def state_rates(iv, u, st, ph, cn, device_table: dict, k_switch: float = K_SWITCH,
                w_switch: float = W_SWITCH, b_path: float = B_PATH, k_reset: float = K_RESET
                ) -> dict:
    """Python reference of the compact models' state equations (without the DC leak).

    Parameters
    ----------
    iv : IVModel
    u, st, ph, cn : arrays (broadcast)
        Cell voltage (V) and the three state-node values.
    device_table : dict name -> ndarray (cycles,)
        One device's cycle table (R_HRS, U_SET, R_LRS, U_RESET).

    Returns
    -------
    dict with the cycle rows, the SET and RESET targets, the drives and the three rates (1/s).
    """
    u = np.asarray(u, dtype=np.float64)
    n_table = len(device_table["R_HRS"])
    kn, km = cycle_indices(cn, ph, n_table)
    r_hrs_n = iv.state_from_resistance(device_table["R_HRS"][kn])
    u_set_n = device_table["U_SET"][kn]
    r_lrs_n = iv.state_from_resistance(device_table["R_LRS"][kn])
    u_res_m = device_table["U_RESET"][km]
    r_lrs_m = iv.state_from_resistance(device_table["R_LRS"][km])
    ue = np.minimum(np.maximum(u, u_res_m), iv.u_full_reset)
    target_reset = iv.reset_state(ue, u_res_m, r_lrs_m, r_hrs_n)
    s_set = logistic((u_set_n - u) / w_switch)
    s_reset = logistic((u - u_res_m) / w_switch)
    s_full = logistic((u - iv.u_full_reset) / w_switch)
    return {
        "row_set": kn, "row_reset": km,
        "target_set": r_lrs_n, "target_reset": target_reset,
        "drive_set": s_set, "drive_reset": s_reset,
        "rate_st": (k_switch * s_set * (r_lrs_n - st)
                    + k_reset * s_reset * softplus(target_reset - st, b_path)
                    + k_switch * s_full * (r_hrs_n - st)),
        "rate_ph": k_switch * (s_set * (1 - ph) - s_reset * ph),
        "rate_cn": k_switch * s_reset * ph,
    }

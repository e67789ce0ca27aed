"""Build a :class:`~pyaimc.noise.model.NoiseModel` from a fitted device model.

The programming error comes from simulating the write schemes of :mod:`pyaimc.device.schemes`
pulse by pulse with the device model's cell array (:func:`~pyaimc.noise.programming.
programming_statistics`), one table per exported scheme; window, defects and read noise come from
the model's parameters and samples; DAC, ADC and tile are settings; the transfer model is passed
through.
"""

from __future__ import annotations

import numpy as np

from pyaimc.circuit.transfer import TransferModel, as_transfer
from pyaimc.device.schemes import SCHEMES, calibrate_pulses, get_scheme
from pyaimc.io import provenance
from pyaimc.noise.model import Defects, NoiseModel, Tile, Window
from pyaimc.noise.periphery import ADC, DAC, DacAdc
from pyaimc.noise.programming import ProgrammingTable, TableProgramming, programming_statistics
from pyaimc.noise.read_noise import ReadNoise

#: a mixture's smallest component at or below this weight is an outlier population
OUTLIER_WEIGHT = 0.1


def device_window(model, rng: np.random.Generator, quantile: float = 0.05,
                  n_devices: int = 4000, n_cycles: int = 50) -> tuple[float, float, str]:
    """Conductance window a write can reach in most cycles.

    ``g_max`` is the ``quantile`` of the LRS conductance over cycles of many devices (so a
    fraction ``1 - quantile`` of SET cycles reach it), ``g_min`` the ``1 - quantile`` quantile of
    the HRS conductance (a full RESET gets below it in the same fraction).

    Returns
    -------
    g_min, g_max : float, S
    rule : str
    """
    feats = model.sample(n_devices, n_cycles, rng)
    g_max = float(np.quantile(1.0 / feats["R_LRS"], quantile))
    g_min = float(np.quantile(1.0 / feats["R_HRS"], 1.0 - quantile))
    if not 0 < g_min < g_max:
        raise ValueError(f"the device model has no usable window: the {1 - quantile:.0%} "
                         f"quantile of the HRS conductance ({g_min:.3g} S) is not below the "
                         f"{quantile:.0%} quantile of the LRS conductance ({g_max:.3g} S)")
    rule = (f"g_max = {quantile:g} quantile of the LRS conductance, g_min = {1 - quantile:g} "
            f"quantile of the HRS conductance, over {n_devices} devices x {n_cycles} cycles")
    return g_min, g_max, rule


def device_defects(model, rng: np.random.Generator, g_min: float, g_max: float,
                   n_devices: int = 4000, n_cycles: int = 50) -> Defects:
    """Stuck, outlier and narrow-window fractions of ``model`` for the window [g_min, g_max]."""
    fit = model.fit_info_
    n_fit = int(fit.get("n_devices", 0))
    n_stuck = len(fit.get("excluded", []))
    stuck = n_stuck / (n_fit + n_stuck) if n_fit + n_stuck else 0.0
    weights = np.asarray(model.mixture_.weights)
    outlier = float(weights.min()) if len(weights) > 1 and weights.min() <= OUTLIER_WEIGHT else 0.0
    feats = model.sample(n_devices, n_cycles, rng)
    med_lrs = np.median(1.0 / feats["R_LRS"], axis=1)
    med_hrs = np.median(1.0 / feats["R_HRS"], axis=1)
    narrow = float(np.mean((med_lrs < g_max) | (med_hrs > g_min)))
    g_lrs = float(np.median(1.0 / feats["R_LRS"]))
    return Defects(
        stuck_fraction=stuck, stuck_g=g_lrs, outlier_fraction=outlier,
        narrow_window_fraction=narrow,
        notes=(f"stuck: {n_stuck} of {n_fit + n_stuck} measured cells excluded from the device "
               f"fit as not switching; a window R_HRS/R_LRS below 1.5 keeps them within a factor "
               f"1.5 of the LRS, so they are taken to hold the median LRS conductance. outlier: "
               f"smallest device population when its weight is <= {OUTLIER_WEIGHT} (mixture "
               f"weights {np.round(weights, 4).tolist()}). outlier and narrow-window devices are "
               f"drawn in the programming simulation: their effect is in the tables already."))


def _table(stats: dict, method: str, levels: np.ndarray, window: Window, degree: int,
           settings: dict) -> ProgrammingTable:
    gn = window.normalise(levels)
    deg = int(min(degree, len(levels) - 1))
    mean_c = np.polynomial.polynomial.polyfit(gn, stats["mean"], deg)
    std_c = np.polynomial.polynomial.polyfit(gn, stats["std"], deg)
    poly = np.polynomial.polynomial.polyval
    fit_error = {
        "mean_rel": float(np.max(np.abs(poly(gn, mean_c) - stats["mean"]) / stats["mean"])),
        "std_rel": float(np.max(np.abs(poly(gn, std_c) - stats["std"]))
                         / max(float(np.max(stats["std"])), 1e-300)),
        "degree": deg,
    }
    return ProgrammingTable(method, stats["mean"], stats["std"], stats["c2c_std"],
                            stats["d2d_std"], stats["failed_fraction"], stats["mean_pulses"],
                            stats["p99_pulses"], mean_c, std_c, fit_error, settings)


def exported_schemes(model) -> list:
    """New instances of every registered scheme that the noise export tabulates by default
    (``exported``) and that applies to ``model``, in registration order. A model with a pulse
    response gets the pulse-level schemes (ISPP, FPPV, RADAR) only: its programming tables come
    from the pulse-level simulation, not from the cycling model's voltage sweeps."""
    schemes = [cls() for cls in SCHEMES.values() if getattr(cls, "exported", False)]
    schemes = [s for s in schemes if s.applies_to(model)]
    if getattr(model, "pulse_", None) is not None:
        from pyaimc.device.schemes import _PulseVerify

        schemes = [s for s in schemes if isinstance(s, _PulseVerify)]
    return schemes


def default_training_scheme(model) -> str:
    """The scheme the training layers sample by default: ``radar`` for a model with a pulse
    response, ``write_verify`` otherwise."""
    return "radar" if getattr(model, "pulse_", None) is not None else "write_verify"


def export_noise_model(model, rng: np.random.Generator, *, rows: int | None = None,
                       cols: int | None = None,
                       transfer=None, r_wire: float | None = None,
                       window: tuple[float, float] | None = None, window_quantile: float = 0.05,
                       n_levels: int = 16, n_devices: int = 2000, n_repeats: int = 8,
                       schemes=None, tolerance: float = 0.05, bandwidth: float = 1e8,
                       dac_bits: int | None = 8, adc_bits: int | None = 8,
                       v_max: float | None = None, adc_headroom: float = 2.0,
                       training_scheme: str | None = None, degree: int = 4,
                       progress: bool = False, source: str | None = None,
                       seed: int | None = None, retention=None) -> NoiseModel:
    """Export the hardware noise model of a fitted device model.

    Parameters
    ----------
    model : DeviceModel
        Fitted, with ``R_HRS`` and ``R_LRS`` features.
    rng : numpy.random.Generator
        Source of every random draw (device samples, programming simulation).
    rows, cols : int, optional
        Tile size (inputs x outputs per tile); default the transfer model's, else 64 x 64.
    transfer : TransferModel or dict, optional
        The transfer model of this tile (or its ``pyaimc.transfer/1`` document); its tile,
        ``r_wire`` and ``v_max`` must agree with the other arguments when those are given.
    r_wire : float, optional
        Wire resistance per segment, ohm. Without ``transfer`` it adds the first-order IR-drop
        model (:meth:`~pyaimc.circuit.transfer.TransferModel.first_order`); None and no
        transfer: ideal crossbar.
    window : (g_min, g_max), optional
        Conductance window, S; default from :func:`device_window` (clipped to the transfer's
        range when a transfer document is given).
    window_quantile : float
        See :func:`device_window`.
    n_levels, n_devices, n_repeats : int
        Target levels across the window; devices per level; writes per device.
    schemes : list of WriteScheme or str, optional
        The write schemes to tabulate (instances with their settings, or registered names);
        default :func:`exported_schemes`. Schemes that calibrate their pulses share one
        calibration.
    tolerance : float
        Relative half-width of each write's target window.
    bandwidth : float
        Read-noise bandwidth of the noise model, Hz (the verify reads of the programming
        simulation use the scheme's own bandwidth; the command line sets both).
    dac_bits, adc_bits : int or None
    v_max : float, optional
        DAC full scale, V; default the transfer's ``v_max``, else the model's read voltage.
    adc_headroom : float
        ``i_max = adc_headroom * sqrt(rows) * v_max * (g_max - g_min)``.
    training_scheme : str, optional
        The scheme the training layers sample by default (one of ``schemes``; default
        :func:`default_training_scheme`, or the first scheme when that is not exported).
    degree : int
        Degree of the mean and std polynomials of the normalised target.
    progress : bool
        Show a progress bar over the programming simulation.
    source, seed : optional
        Recorded in the provenance.
    retention : retention part, optional
        Default: :class:`~pyaimc.noise.retention.RelaxationRetention` of the device model's
        relaxation part when it has one, else no retention (``"none"``).

    Returns
    -------
    NoiseModel
        Validated.
    """
    model._check_fitted()
    if "R_HRS" not in model.feature_names_ or "R_LRS" not in model.feature_names_:
        raise ValueError(f"the device model needs R_HRS and R_LRS features, has "
                         f"{model.feature_names_}")
    if int(n_levels) < 2:
        raise ValueError(f"n_levels must be >= 2, got {n_levels}")
    if not 0 < tolerance < 1:
        raise ValueError(f"write tolerance must be in (0, 1), got {tolerance}")
    schemes = exported_schemes(model) if schemes is None else [
        get_scheme(s) if isinstance(s, str) else s for s in schemes]
    names = [s.name for s in schemes]
    if not schemes or len(set(names)) != len(names):
        raise ValueError(f"need one or more distinct write schemes, got {names}")
    for s in schemes:
        if not s.applies_to(model):
            raise ValueError(f"write scheme {s.name!r} does not apply to this device model")
    if training_scheme is None:
        training_scheme = default_training_scheme(model)
        if training_scheme not in names:
            training_scheme = names[0]
    if training_scheme not in names:
        raise ValueError(f"training scheme {training_scheme!r} is not among the exported "
                         f"schemes {names}")
    iv = model.iv_
    notes = []
    if transfer is not None:
        transfer = as_transfer(transfer)
    if (rows is None) != (cols is None):
        raise ValueError("give both rows and cols of the tile, or neither")
    if rows is None:
        rows, cols = (transfer.rows, transfer.cols) if transfer is not None else (64, 64)
    if transfer is not None:
        if (transfer.rows, transfer.cols) != (int(rows), int(cols)):
            raise ValueError(f"the transfer model is for {transfer.rows} x {transfer.cols} "
                             f"tiles, the tile asked for is {rows} x {cols}")
        if r_wire is not None and not np.isclose(r_wire, transfer.r_wire, rtol=1e-9, atol=0):
            raise ValueError(f"r_wire {r_wire} ohm disagrees with the transfer model's "
                             f"{transfer.r_wire} ohm")
        if v_max is not None and not np.isclose(v_max, transfer.v_max, rtol=1e-9, atol=0):
            raise ValueError(f"v_max {v_max} V disagrees with the transfer model's "
                             f"{transfer.v_max} V")
        r_wire, v_max = transfer.r_wire, transfer.v_max
    v_max = float(v_max if v_max is not None else iv.u_read)

    if window is not None:
        g_min, g_max = (float(g) for g in window)
        rule = "given"
        if not 0 < g_min < g_max:
            raise ValueError(f"window needs 0 < g_min < g_max, got {g_min}, {g_max} S")
    else:
        g_min, g_max, rule = device_window(model, rng, window_quantile)
        if transfer is not None:
            lo, hi = max(g_min, transfer.g_min), min(g_max, transfer.g_max)
            if not lo < hi:
                raise ValueError(f"the device window [{g_min:.4g}, {g_max:.4g}] S and the "
                                 f"transfer fit's range [{transfer.g_min:.4g}, "
                                 f"{transfer.g_max:.4g}] S do not overlap")
            if (lo, hi) != (g_min, g_max):
                rule += (f"; clipped to the transfer fit's range [{transfer.g_min:.4g}, "
                         f"{transfer.g_max:.4g}] S")
                notes.append("window clipped to the transfer fit's range")
            g_min, g_max = lo, hi
    win = Window(g_min, g_max, float(iv.u_read), rule)
    if transfer is None and r_wire is not None:
        transfer = TransferModel.first_order(rows, cols, r_wire, v_max, g_min, g_max)

    defects = device_defects(model, rng, g_min, g_max)
    if getattr(model, "pulse_", None) is not None:
        defects.notes += (" With a pulse response: the narrow-window fraction is the cycling "
                          "model's (its LRS and HRS medians); the pulse-level programming tables "
                          "show what the schemes reach and need no such correction.")
    levels = np.linspace(g_min, g_max, int(n_levels))
    # the schemes driven by the mean RESET path share one calibration
    cal = None
    for s in schemes:
        if getattr(s, "calibration", "none needed") is None:
            cal = cal if cal is not None else calibrate_pulses(model, rng)
            s.calibration = cal
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(schemes) * int(n_repeats), desc="programming simulation",
                   unit="write")
    tick = bar.update if bar is not None else None
    tables = {}
    try:
        for s in schemes:
            stats = programming_statistics(model, levels, rng, s, n_devices, n_repeats,
                                           tolerance, tick)
            settings = {**s.to_dict(), "tolerance": tolerance}
            tables[s.name] = _table(stats, s.name, levels, win, degree, settings)
    finally:
        if bar is not None:
            bar.close()
    programming = TableProgramming(levels, tables, training_scheme, int(n_devices),
                                   int(n_repeats), {} if cal is None else cal.to_dict())
    read = ReadNoise(bandwidth, float(iv.temperature))
    read.levels = levels
    read.sigma_i = read.sigma_current(levels, iv.u_read)
    read.relative = read.sigma_i / (levels * iv.u_read)
    i_max = adc_headroom * np.sqrt(rows) * v_max * (g_max - g_min)
    nm = NoiseModel(
        window=win, programming=programming, defects=defects, read_noise=read,
        periphery=DacAdc(DAC(dac_bits, v_max), ADC(adc_bits, float(i_max), float(adc_headroom))),
        tile=Tile(int(rows), int(cols), None if r_wire is None else float(r_wire)),
        transfer=transfer,
        retention=_retention(model, retention, source),
        device={"source": source, "features": list(model.feature_names_),
                "component_weights": np.asarray(model.mixture_.weights).tolist(),
                "g_lrs_envelope": iv.g_lrs, "g_hrs_envelope": iv.g_hrs, "u_read": iv.u_read,
                "provenance": model.provenance_},
        provenance=provenance(source=source, seed=seed, notes="; ".join(notes) or None))
    return nm.validate("exported noise model")


def _retention(model, retention, source):
    from pyaimc.noise.retention import NoRetention, RelaxationRetention

    if retention is not None:
        return retention
    if getattr(model, "relaxation_", None) is not None:
        return RelaxationRetention(model.relaxation_, source=str(source or ""))
    return NoRetention()

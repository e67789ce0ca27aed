"""Fit a device model from files: the one function behind ``pyaimc fit`` and the demos.

It reads the calibration data (format detected, or given), raw I-V sweeps when there are any
(a sweep file as the data itself, or ``sweeps`` beside cycling data), fits the I-V envelopes from
the sweeps and the stochastic model from the per-cycle features, and records where it all came
from in the model's provenance.
"""

from __future__ import annotations

import os

import numpy as np

from pyaimc.data import load
from pyaimc.data.sweeps import extract_features, is_sweep_file, load_sweeps
from pyaimc.device.iv_fit import fit_iv
from pyaimc.device.model import DeviceModel


def load_calibration(data: str | os.PathLike, format: str | None = None,
                     sweeps: str | os.PathLike | None = None, plausible: bool = True):
    """Per-cycle features and, where there are raw sweeps, their extraction.

    Parameters
    ----------
    data : path
        Calibration data in any supported format; a sweep ``.npz`` (``U``, ``I``) is recognised
        and its features extracted.
    format : str, optional
        ``npz``, ``radar``, ``long-csv`` or ``sweeps`` (detected when omitted).
    sweeps : path, optional
        Raw sweeps of the same technology beside cycling data (for the I-V fit).
    plausible : bool
        Check values against the ranges of :mod:`pyaimc.data.plausibility` (default).

    Returns
    -------
    data : CycleData
    sweep_features : SweepFeatures or None
    """
    sweep_features = None
    if format == "sweeps" or (format is None and str(data).endswith(".npz")
                              and is_sweep_file(data)):
        u, i = load_sweeps(data, plausible)
        sweep_features = extract_features(u, i, source=str(data))
        cycles = sweep_features.data
    else:
        cycles = load(data, format, plausible)
    if sweeps:
        u, i = load_sweeps(sweeps, plausible)
        sweep_features = extract_features(u, i, source=str(sweeps))
    return cycles, sweep_features


def fit_from_files(data: str | os.PathLike, *, format: str | None = None,
                   sweeps: str | os.PathLike | None = None, seed: int = 0,
                   max_var_order: int = 10, max_components: int = 6, keep_stuck: bool = False,
                   citation: str | None = None, rng: np.random.Generator | None = None,
                   plausible: bool = True, pulses=None, hold_out_pulses: bool = False,
                   pulse_params: dict | None = None, progress: bool = False):
    """Fit a :class:`DeviceModel` to calibration files.

    Parameters
    ----------
    data, format, sweeps
        See :func:`load_calibration`.
    seed : int
        Seed of the fit's random draws (recorded).
    max_var_order, max_components : int
        Largest cycle-to-cycle VAR order and mixture size BIC may choose.
    keep_stuck : bool
        Keep cells that do not switch (excluded and listed by default).
    citation : str, optional
        Citation of the data, recorded in the provenance.
    rng : numpy.random.Generator, optional
        The fit's generator (default ``default_rng(seed)``); pass one to continue its stream
        afterwards (the command line draws the fidelity report's sample from it).
    plausible : bool
        Check the data against the ranges of :mod:`pyaimc.data.plausibility` (default).
    pulses : sequence of path, optional
        Pulse records (:func:`pyaimc.data.pulses.load_pulses`) to fit the pulse-response part
        from (:meth:`DeviceModel.fit_pulses`).
    hold_out_pulses : bool
        Fit the pulse part on half of each pulse file's cells (by address; the other half is
        for checks, :meth:`pyaimc.data.pulses.PulseData.split_cells`).
    pulse_params : dict, optional
        :class:`~pyaimc.device.pulse.PulseModel` settings (``head``, ``hidden``, ``epochs``);
        its seed is ``seed``.
    progress : bool
        Progress bars for the pulse fit.

    Returns
    -------
    model : DeviceModel
        Fitted.
    data : CycleData
        What it was fitted to (for a fidelity report).
    sweep_features : SweepFeatures or None
    """
    if int(max_var_order) < 0 or int(max_components) < 1:
        raise ValueError(f"max_var_order must be >= 0 and max_components >= 1, got "
                         f"{max_var_order}, {max_components}")
    cycles, sweep_features = load_calibration(data, format, sweeps, plausible)
    iv = fit_iv(sweep_features) if sweep_features is not None else None
    info = {"sweeps": str(sweeps or (data if sweep_features is not None else "")) or None}
    if citation:
        info["citation"] = citation
    records = None
    if pulses:
        from pyaimc.data.pulses import load_pulses

        records = [load_pulses(f, plausible=plausible) for f in pulses]
        if hold_out_pulses:
            records = [d.split_cells()[0] for d in records]
        info["pulses"] = [str(f) for f in pulses]
        info["pulse_cells"] = ("fit half of each file's cells by address (every second address "
                               "held out)" if hold_out_pulses else "all")
    model = DeviceModel(max_var_order=max_var_order, max_components=max_components,
                        exclude_stuck=not keep_stuck)
    model.fit(cycles, iv=iv, rng=rng if rng is not None else np.random.default_rng(seed),
              source_info={**info, "seed": seed})
    if records is not None:
        import torch

        # a small network: more threads only contend with other work on the machine
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model.fit_pulses(records, progress=progress, **{"seed": seed, **(pulse_params or {})})
        finally:
            torch.set_num_threads(threads)
    return model, cycles, sweep_features


def fit_summary(model: DeviceModel, source: str = "") -> list[str]:
    """What a fit found, as lines for a person: size, excluded cells, VAR, populations, I-V."""
    fi = model.fit_info_
    lines = [f"fitted {source}: {fi['n_devices']} devices x {fi['n_cycles']} cycles, features "
             f"{', '.join(model.feature_names_)}"]
    for ex in fi["excluded"]:
        lines.append(f"  excluded cell {ex['cell']} (file row {ex['file_row']}): {ex['reason']}")
    lines.append(f"  cycle-to-cycle VAR order {fi['var_order']} (spectral radius "
                 f"{fi['var_spectral_radius']:.3f}); {fi['n_components']} device population(s), "
                 f"weights {', '.join(f'{w:.3f}' for w in fi['component_weights'])}")
    lines.append(f"  I-V: {model.iv_.source}")
    if model.pulse_ is not None:
        pm = model.pulse_
        pf = pm.fit_info_
        lines.append(f"  pulse response ({pm.head}): " + "; ".join(
            f"{k.upper()} {pf['n_pulses'][k]} pulses of {pf['n_cells'][k]} cells "
            f"({pf['n_placed_cells'][k]} with their own device latent)" for k in ("set", "reset"))
            + f"; transistor k {pm.transistor_.k:.3g} A/V^2, V_th {pm.transistor_.v_th:.2f} V")
    return lines


def report_summary(metrics: dict) -> list[str]:
    """The fidelity report's figures (:func:`pyaimc.device.report.write_report`) as lines."""
    lines = [f"  {n:8s} KS {p['ks']:.4f}  ACF err {p['acf_error']:.4f}  d2d ratio "
             f"{p['d2d_ratio']:.3f}  within ratio {p['within_ratio']:.3f}"
             for n, p in metrics["per_feature"].items()]
    lines.append(f"  cross-correlation error {metrics['xcorr_error']:.4f}; smallest component "
                 f"{metrics['mixture']['smallest_component_fraction']:.3f}")
    return lines


def fit_relaxation_from_files(relaxation: str | os.PathLike, *,
                              bake: str | os.PathLike | None = None,
                              traces: str | os.PathLike | None = None,
                              model: DeviceModel | None = None, seed: int = 0,
                              citation: str | None = None, **params) -> DeviceModel:
    """Fit the relaxation part (:class:`~pyaimc.device.relaxation.RelaxationModel`) to files.

    Parameters
    ----------
    relaxation : path
        Relaxation records (:func:`pyaimc.data.relaxation.load_relaxation`).
    bake, traces : path, optional
        Bake records and continuous read traces of the same technology.
    model : DeviceModel, optional
        Add the part to this (cycling) model; default a new model with only this part.
    seed : int
        Recorded in a new model's provenance (the fit draws nothing).
    citation : str, optional
        Recorded in a new model's provenance.
    **params
        Passed to :class:`RelaxationModel`.

    Returns
    -------
    DeviceModel
    """
    from pyaimc.data.relaxation import load_bake, load_relaxation, load_traces
    from pyaimc.io import provenance

    data = load_relaxation(relaxation)
    model = model if model is not None else DeviceModel()
    model.fit_relaxation(data, bake=load_bake(bake) if bake else None,
                         traces=load_traces(traces) if traces else None, **params)
    if not model.has_cycling:
        model.provenance_ = provenance(source=str(relaxation), seed=seed,
                                       **({"citation": citation} if citation else {}))
    else:
        model.provenance_["relaxation"] = str(relaxation)
    model.relaxation_.fit_info_["summary"] = data.summary()
    return model


def relaxation_summary(model: DeviceModel) -> list[str]:
    """What the relaxation fit found, as lines for a person."""
    r = model.relaxation_
    fi = r.fit_info_
    lines = [f"relaxation part ({r.technology_}): {fi.get('summary', fi.get('source', ''))}",
             f"  {len(r.g_knots_)} G0 knots x {len(r.t_knots_)} time knots "
             f"({r.t_knots_[0]:.3g}-{r.t_knots_[-1]:.3g} s), residual kurtosis "
             f"{fi['residual_kurtosis']:.1f}, path correlation {r.rho_per_decade_:.3f} per "
             f"decade"]
    if r.temps_c_ is not None:
        rows = fi["temperature"]["per_temperature"]
        ratios = ", ".join(f"{x['std_ratio_median']:.2f}" for x in rows)
        lines.append(f"  temperature: bakes at {', '.join(f'{t:g}' for t in r.temps_c_)} C "
                     f"(median std ratio over room temperature at the bake time: {ratios})")
    if r.read_noise_ is not None:
        lines.append(f"  read noise: 1/f^{r.read_noise_.alpha:.2f} from "
                     f"{len(fi['read_noise']['traces'])} traces")
    return lines

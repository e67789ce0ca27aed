"""Fidelity report of a fitted device model: metrics (JSON) and figures (PNG)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from pyaimc.data.container import CycleData
from pyaimc.device.fidelity import (MAX_LAG, autocorrelation, comparison_space, cross_correlation,
                                    fidelity_report)
from pyaimc.io import provenance, write_json

MIN_DEVICES = 2000
MIN_VALUES = 2000 * 3000


def report_sample_size(n_cycles_data: int) -> tuple[int, int]:
    """Devices and cycles of the generated comparison sample.

    The sample has the data's number of cycles, so statistics that depend on the record length
    (each device's mean and spread, autocorrelation after removing it) compare like with like,
    and enough devices for at least 2000 x 3000 values (and at least 2000 devices).
    """
    n_cycles = int(n_cycles_data)
    return max(MIN_DEVICES, math.ceil(MIN_VALUES / n_cycles)), n_cycles


def data_for_comparison(model, data: CycleData) -> dict:
    """The data's features as the model saw them (excluded cells removed)."""
    from pyaimc.data.container import exclude_stuck_cells
    from pyaimc.device.model import _exclude_constant_cells

    if model.exclude_stuck:
        data = exclude_stuck_cells(data)
    data = _exclude_constant_cells(data)
    return {n: data.feature(n) for n in model.feature_names_}


def write_report(model, data: CycleData, out_dir: str | os.PathLike, rng: np.random.Generator,
                 seed: int | None = None, progress: bool = False, sweeps=None) -> dict:
    """Compare a large generated sample with ``data``; write ``fidelity.json`` and figures.

    Parameters
    ----------
    model : DeviceModel (fitted)
    data : CycleData
        The data the model was fitted to (or other data with the same features).
    out_dir : path
    rng : Generator
    seed : int, optional
        Recorded in provenance.
    progress : bool
        Show progress bars.
    sweeps : SweepFeatures, optional
        Raw sweeps the I-V part was fitted to; adds an I-V figure.

    Returns
    -------
    dict : the metrics written to ``fidelity.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    observed = data_for_comparison(model, data)
    n_dev, n_cyc = report_sample_size(data.n_cycles)
    sample, comp = model.sample(n_dev, n_cyc, rng, dtype=np.float32, return_components=True,
                                progress=progress)
    metrics = fidelity_report(sample, observed, rng)
    counts = np.bincount(comp, minlength=model.mixture_.n_components)
    metrics.update({
        "schema": "pyaimc.fidelity/1",
        "sample": {"n_devices": n_dev, "n_cycles": n_cyc},
        "data": {"source": data.source, "n_devices": int(next(iter(observed.values())).shape[0]),
                 "n_cycles": data.n_cycles},
        "mixture": {"n_components": model.mixture_.n_components,
                    "weights": model.mixture_.weights.tolist(),
                    "smallest_component_fraction": float(model.mixture_.weights.min()),
                    "sample_fraction_per_component": (counts / counts.sum()).tolist()},
        "var": {"order": model.var_.order, "spectral_radius": model.var_.spectral_radius()},
        "fit": model.fit_info_,
        "provenance": provenance(source=data.source, seed=seed),
    })
    if "gmm_component" in data.cell_labels and "_row" not in data.cell_labels:
        labels = np.asarray(data.cell_labels["gmm_component"])
        metrics["data"]["outlier_fraction"] = float(np.mean(labels == labels.max()))
    write_json(out / "fidelity.json", metrics)
    _figures(model, sample, observed, comp, out, sweeps)
    return metrics


def _figures(model, sample, observed, comp, out: Path, sweeps) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(model.feature_names_)
    label = {n: (f"log10 {n} [ohm]" if n.startswith("R_") else f"{n} [V]") for n in names}
    f = len(names)

    # QQ plots
    fig, axs = plt.subplots(1, f, figsize=(3.6 * f, 3.4), squeeze=False)
    q = np.linspace(0.001, 0.999, 200)
    for ax, n in zip(axs[0], names):
        d = comparison_space(n, observed[n])
        s = comparison_space(n, sample[n])
        qd, qs = np.nanquantile(d, q), np.nanquantile(s, q)
        ax.plot(qd, qs, ".", ms=3)
        lim = [min(qd[0], qs[0]), max(qd[-1], qs[-1])]
        ax.plot(lim, lim, "k-", lw=0.7)
        ax.set_xlabel(f"data: {label[n]}")
        ax.set_ylabel("model")
        ax.set_title(f"QQ {n}")
    fig.tight_layout()
    fig.savefig(out / "qq.png", dpi=110)
    plt.close(fig)

    # autocorrelation
    lags = np.arange(1, 11)
    fig, axs = plt.subplots(1, f, figsize=(3.6 * f, 3.2), squeeze=False)
    for ax, n in zip(axs[0], names):
        d = comparison_space(n, observed[n])
        s = comparison_space(n, sample[n])
        ax.plot(lags, autocorrelation(d, 10), "o-", label="data")
        ax.plot(lags, autocorrelation(s, 10), "s--", label="model")
        ax.axvspan(0.5, MAX_LAG + 0.5, color="0.93", zorder=-1)
        ax.set_xlabel("lag [cycles]")
        ax.set_title(f"autocorrelation {n}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "acf.png", dpi=110)
    plt.close(fig)

    # cross-correlation
    if f >= 2:
        xd = cross_correlation([comparison_space(n, observed[n]) for n in names])
        xs = cross_correlation([comparison_space(n, sample[n]) for n in names])
        fig, axs = plt.subplots(1, 3, figsize=(11, 3.4))
        for ax, m, title in zip(axs, (xd, xs, xs - xd), ("data", "model", "model - data")):
            vmax = 1 if title != "model - data" else max(0.05, np.abs(m).max())
            im = ax.imshow(m, vmin=-vmax, vmax=vmax, cmap="RdBu_r")
            ax.set_xticks(range(f), names, rotation=45, fontsize=8)
            ax.set_yticks(range(f), names, fontsize=8)
            for a in range(f):
                for b in range(f):
                    ax.text(b, a, f"{m[a, b]:.2f}", ha="center", va="center", fontsize=7)
            ax.set_title(f"cross-correlation, {title}")
            fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        fig.savefig(out / "xcorr.png", dpi=110)
        plt.close(fig)

    # device-to-device scatter of per-device means
    pairs = [(names[a], names[b]) for a in range(f) for b in range(a + 1, f)] or [(names[0],) * 2]
    fig, axs = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.4), squeeze=False)
    n_show = min(2000, len(comp))
    for ax, (a, b) in zip(axs[0], pairs):
        ma_s = np.nanmean(comparison_space(a, sample[a][:n_show]), axis=1)
        mb_s = np.nanmean(comparison_space(b, sample[b][:n_show]), axis=1)
        ax.scatter(ma_s, mb_s, s=3, c=comp[:n_show], cmap="tab10", alpha=0.4, label="model")
        ma_d = np.nanmean(comparison_space(a, observed[a]), axis=1)
        mb_d = np.nanmean(comparison_space(b, observed[b]), axis=1)
        ax.scatter(ma_d, mb_d, s=10, facecolors="none", edgecolors="k", label="data")
        ax.set_xlabel(f"device mean {label[a]}", fontsize=8)
        ax.set_ylabel(f"device mean {label[b]}", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("device-to-device: per-device means (model coloured by mixture component)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "d2d.png", dpi=110)
    plt.close(fig)

    if sweeps is not None:
        _iv_figure(model, sweeps, out)


def _iv_figure(model, sweeps, out: Path) -> None:
    import matplotlib.pyplot as plt

    iv = model.iv_
    fig, axs = plt.subplots(1, 2, figsize=(10, 3.8))
    u = sweeps.u
    for n in range(min(10, sweeps.i.shape[1])):
        axs[0].plot(u, sweeps.i[0, n] * 1e6, lw=0.7, color="0.6")
    uu = np.linspace(u.min(), u.max(), 301)
    axs[0].plot(uu, iv.i_lrs(uu) * 1e6, "b-", label="LRS envelope")
    axs[0].plot(uu, iv.i_hrs(uu) * 1e6, "r-", label="HRS envelope")
    axs[0].axvline(iv.u_full_reset, color="k", ls=":", lw=0.8, label="full RESET")
    axs[0].set_xlabel("U [V]")
    axs[0].set_ylabel("I [uA]")
    axs[0].set_title("sweeps of cell 0 and fitted envelopes")
    axs[0].legend(fontsize=7)
    deg = iv.fit_info.get("cv_error_by_degree", {}) if iv.fit_info else {}
    if deg:
        k = sorted(deg, key=int)
        axs[1].semilogy([int(x) for x in k], [deg[x] for x in k], "o-")
        axs[1].set_xlabel("envelope polynomial degree")
        axs[1].set_ylabel("held-out relative error (mean square)")
        axs[1].set_title(f"degree chosen: {iv.degree}; RESET eta = {iv.reset_exponent:.2f}")
    fig.tight_layout()
    fig.savefig(out / "iv.png", dpi=110)
    plt.close(fig)

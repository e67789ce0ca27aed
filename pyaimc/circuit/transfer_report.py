"""Transfer-curve report: the fitted model, its metrics and figures (PNG, matplotlib Agg).

``write_transfer_report(out_dir, fit, rng)`` writes

* ``transfer.json``: the transfer model (``pyaimc.transfer/1``);
* ``transfer_metrics.json`` (``pyaimc.transfer_report/1``): held-out errors, per-column errors,
  the error-map summary and the error against array size and wire resistance;
* ``transfer_curves.png``: column current against the ideal ``G.x`` for an input sweep on a
  held-out pattern, with the fitted model, and every held-out sample;
* ``error_map.png``: per-cell deviation of the cell currents from the ideal (circuit) and of the
  model from the circuit, every row at ``v_max``; per-column held-out errors;
* ``error_vs_size.png``: held-out error of the fit and of the ideal product against array size
  and wire resistance (each point a separate fit).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from pyaimc.circuit.montecarlo import Executor
from pyaimc.circuit.solver import CrossbarSolver
from pyaimc.circuit.transfer_fit import (TransferFit, cell_coefficients, fit_transfer,
                                         relative_rms)
from pyaimc.io import atomic_write_bytes, provenance, write_json

REPORT_SCHEMA = "pyaimc.transfer_report/1"
#: Points of the input sweep of the transfer curves.
SWEEP_POINTS = 41


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue())


def _figure(ncols: int, width: float = 4.2, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def sweep_curves(fit: TransferFit, pattern: int = 0, columns: int = 4) -> dict:
    """Column currents for ``x = a * v_max * 1`` with ``a`` in [-1, 1] on a held-out pattern.

    Returns
    -------
    dict
        ``scale`` (points,), ``columns`` (indices), ``ideal``, ``simulated``, ``model``
        (points, columns) in ampere.
    """
    res = fit.heldout[pattern]
    setup = fit.setup
    g = res.conductances
    total = g.sum(axis=0)
    # columns from the smallest to the largest total conductance (least to most IR drop)
    order = np.argsort(total)
    picks = order[np.linspace(0, len(order) - 1, min(columns, len(order))).round().astype(int)]
    scale = np.linspace(-1.0, 1.0, SWEEP_POINTS)
    v = scale[:, None] * np.full((1, setup.rows), setup.v_max)
    xbar = setup.crossbar(cell_coefficients(setup.model.iv_, res.states))
    simulated = setup.read(CrossbarSolver(xbar).solve(v).column_currents)
    return {"scale": scale, "columns": picks, "ideal": (v @ g)[:, picks],
            "simulated": simulated[:, picks], "model": fit.model.predict(g, v)[:, picks]}


def cell_error_maps(fit: TransferFit, pattern: int = 0) -> dict:
    """Per-cell current deviations with every row at ``v_max`` on a held-out pattern.

    Returns
    -------
    dict
        ``circuit``: (I_cell - I_ideal) / I_ideal, the circuit against wire-free cells;
        ``model``: (I_model - I_cell) / I_ideal, the model's per-cell error (rows x cols).
    """
    res = fit.heldout[pattern]
    setup = fit.setup
    xbar = setup.crossbar(cell_coefficients(setup.model.iv_, res.states))
    v = np.full((1, setup.rows), setup.v_max)
    sol = CrossbarSolver(xbar).solve(v, keep_voltages=True)
    i_cell = xbar.cells.current(sol.row_voltages[0] - sol.column_voltages[0])
    i_ideal = xbar.cells.current(np.full(res.states.shape, setup.v_max))
    w1, w2, w3 = fit.model.weights(res.conductances)
    x = setup.v_max
    i_model = w1 * x + w2 * x**2 + w3 * x**3
    return {"circuit": (i_cell - i_ideal) / i_ideal, "model": (i_model - i_cell) / i_ideal}


def per_column_errors(fit: TransferFit) -> dict:
    """Held-out relative RMS error per column (normalised by the RMS over all columns)."""
    measured = np.concatenate([r.currents for r in fit.heldout])
    model = np.concatenate([fit.model.predict(r.conductances, r.inputs) for r in fit.heldout])
    ideal = np.concatenate([r.inputs @ r.conductances for r in fit.heldout])
    rms = np.sqrt(np.mean(measured ** 2))
    return {"model": np.sqrt(np.mean((model - measured) ** 2, axis=0)) / rms,
            "ideal": np.sqrt(np.mean((ideal - measured) ** 2, axis=0)) / rms}


def error_sweep(fit: TransferFit, rng: np.random.Generator, sizes, r_wires,
                n_patterns: int = 6, n_heldout: int = 3, inputs_per_pattern: int = 16,
                executor: Executor | None = None, progress: bool = False) -> dict:
    """Fit separate models over array sizes (at the fit's wire) and wire resistances (at its size).

    Returns
    -------
    dict
        ``size`` and ``r_wire``: lists of {"rows", "cols", "r_wire", "ir_drop_loss",
        "model_error", "ideal_error", "k_row", "k_col"} (errors: held-out relative RMS).
    """
    setup = fit.setup
    common = dict(v_max=setup.v_max, n_heldout=n_heldout, inputs_per_pattern=inputs_per_pattern,
                  engine="fast", executor=executor, readout=setup.readout,
                  g_window=setup.g_window, programming=setup.programming)
    out = {"size": [], "r_wire": []}
    settings = [("size", int(n), int(n), setup.r_wire) for n in sizes]
    settings += [("r_wire", setup.rows, setup.cols, float(r)) for r in r_wires]
    if progress:
        from tqdm import tqdm

        settings = tqdm(settings, desc="error sweep", unit="fit")
    for kind, rows, cols, r_wire in settings:
        model = fit_transfer(setup.model, rows, cols, r_wire, n_patterns=n_patterns, rng=rng,
                             **common)
        f = model.fit
        out[kind].append({"rows": rows, "cols": cols, "r_wire": r_wire,
                          "ir_drop_loss": f["ir_drop_loss_mean"],
                          "model_error": f["heldout_rel_rms_error"],
                          "ideal_error": f["heldout_ideal_rel_rms_error"],
                          "k_row": model.k_row, "k_col": model.k_col})
    return out


def _plot_curves(curves: dict, fit: TransferFit, out: Path) -> Path:
    fig, (ax, ax2) = _figure(2, width=4.8)
    ua = 1e6  # plot in microampere
    for k, col in enumerate(curves["columns"]):
        color = f"C{k}"
        ax.plot(curves["ideal"][:, k] * ua, curves["simulated"][:, k] * ua, "o", ms=3,
                color=color, label=f"column {col} (circuit)")
        ax.plot(curves["ideal"][:, k] * ua, curves["model"][:, k] * ua, "-", color=color, lw=1)
    lim = np.max(np.abs(curves["ideal"])) * ua
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=0.8, label="ideal G.x")
    ax.set(xlabel="ideal G.x (uA)", ylabel="column current (uA)",
           title="input sweep x = a v_max (lines: model)")
    ax.legend(fontsize=7)
    measured = np.concatenate([r.currents.ravel() for r in fit.heldout]) * ua
    ideal = np.concatenate([(r.inputs @ r.conductances).ravel() for r in fit.heldout]) * ua
    model = np.concatenate([fit.model.predict(r.conductances, r.inputs).ravel()
                            for r in fit.heldout]) * ua
    ax2.plot(ideal, measured, ".", ms=2, alpha=0.4, label="circuit vs ideal G.x")
    ax2.plot(model, measured, ".", ms=2, alpha=0.4, label="circuit vs model")
    lim = max(np.max(np.abs(ideal)), np.max(np.abs(measured)))
    ax2.plot([-lim, lim], [-lim, lim], "k:", lw=0.8)
    f = fit.model.fit
    ax2.set(xlabel="predicted current (uA)", ylabel="circuit current (uA)",
            title=f"held-out rel. RMS error: model {f['heldout_rel_rms_error']:.2%}, "
                  f"ideal {f['heldout_ideal_rel_rms_error']:.2%}")
    ax2.legend(fontsize=7, markerscale=4)
    return _save(fig, out / "transfer_curves.png")


def _plot_maps(maps: dict, columns: dict, out: Path) -> Path:
    fig, (a1, a2, a3) = _figure(3)
    for ax, key, title in ((a1, "circuit", "circuit vs wire-free cells"),
                           (a2, "model", "model - circuit")):
        data = maps[key] * 100
        lim = float(np.max(np.abs(data))) or 1.0
        im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set(title=f"{title} (% of ideal cell current)", xlabel="column (driver at 0)",
               ylabel="row (read-out below last)")
        fig.colorbar(im, ax=ax)
    a3.semilogy(columns["ideal"] * 100, label="ideal G.x")
    a3.semilogy(columns["model"] * 100, label="model")
    a3.set(xlabel="column", ylabel="held-out rel. RMS error (%)", title="per column")
    a3.legend(fontsize=8)
    return _save(fig, out / "error_map.png")


def _plot_sweep(sweep: dict, out: Path) -> Path:
    fig, axes = _figure(2)
    for ax, kind, label in ((axes[0], "size", "array size N (N x N)"),
                            (axes[1], "r_wire", "wire resistance per segment (ohm)")):
        rows = sweep[kind]
        if not rows:
            ax.set_visible(False)
            continue
        x = [r["rows"] if kind == "size" else r["r_wire"] for r in rows]
        ax.loglog(x, [r["ideal_error"] * 100 for r in rows], "o-", label="ideal G.x")
        ax.loglog(x, [r["model_error"] * 100 for r in rows], "s-", label="fitted model")
        ax.set(xlabel=label, ylabel="held-out rel. RMS error (%)")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.minorticks_off()
        fixed = (f"r_wire = {rows[0]['r_wire']:g} ohm" if kind == "size"
                 else f"{rows[0]['rows']} x {rows[0]['cols']}")
        ax.set_title(f"error vs {kind.replace('_', ' ')} ({fixed})")
        ax.legend(fontsize=8)
    return _save(fig, out / "error_vs_size.png")


def write_transfer_report(out_dir: str | os.PathLike, fit: TransferFit, rng: np.random.Generator,
                          sizes=(16, 32, 64), r_wires=None, sweep_patterns: int = 6,
                          executor: Executor | None = None, progress: bool = False,
                          seed: int | None = None) -> dict:
    """Write the transfer model, its metrics and the figures into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    fit : TransferFit
        From ``fit_transfer(..., return_simulations=True)``.
    rng : numpy.random.Generator
        Seeds of the error-vs-size and -wire fits.
    sizes : sequence of int
        Array sizes N (N x N) for the error against size, at the fit's wire resistance.
    r_wires : sequence of float, optional
        Wire resistances (ohm) for the error against wire resistance, at the fit's tile size;
        default the fit's value times 1/4, 1/2, 1, 2, 4 (or 0.25 .. 4 ohm without wires).
    sweep_patterns : int
        Training patterns per fit of the sweeps (half as many held out).
    executor : Executor, optional
        For the sweep fits (default: a local process pool per fit).
    progress : bool
        Progress bar over the sweep fits.
    seed : int, optional
        Recorded in the provenance.

    Returns
    -------
    dict
        The metrics written to ``transfer_metrics.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if r_wires is None:
        base = fit.setup.r_wire or 1.0
        r_wires = [base * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]
    fit.model.save(out / "transfer.json")
    curves = sweep_curves(fit)
    maps = cell_error_maps(fit)
    columns = per_column_errors(fit)
    sweep = error_sweep(fit, rng, sizes, r_wires, n_patterns=sweep_patterns,
                        n_heldout=max(2, sweep_patterns // 2), executor=executor,
                        progress=progress)
    figures = [_plot_curves(curves, fit, out).name, _plot_maps(maps, columns, out).name,
               _plot_sweep(sweep, out).name]
    metrics = {
        "schema": REPORT_SCHEMA,
        "transfer_model": "transfer.json",
        "fit": fit.model.fit,
        "parameters": {k: v for k, v in fit.model.to_dict().items()
                       if k in ("tile", "r_wire", "v_max", "g_min", "g_max", "ir_drop",
                                "input_nonlinearity", "i_sat")},
        "sweep_curve_rel_rms_error": {
            "model": relative_rms(curves["model"], curves["simulated"]),
            "ideal": relative_rms(curves["ideal"], curves["simulated"])},
        "cell_map_all_rows_at_v_max": {
            "circuit_deviation_min": float(maps["circuit"].min()),
            "circuit_deviation_max": float(maps["circuit"].max()),
            "model_error_max_abs": float(np.max(np.abs(maps["model"])))},
        "per_column_rel_rms_error": {k: v.tolist() for k, v in columns.items()},
        "error_vs_size": sweep["size"],
        "error_vs_r_wire": sweep["r_wire"],
        "figures": figures,
        "provenance": provenance(source=fit.model.provenance.get("source"), seed=seed),
    }
    write_json(out / "transfer_metrics.json", metrics)
    return metrics


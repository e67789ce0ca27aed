"""How well a pulse model reproduces measured pulses, bin by bin (held-out cells).

Two families of measured records are compared (issue 11, "Measure"):

* **SET from the HRS** (single SET pulses from a fresh HRS, ``r_before`` above 60 kOhm, the
  experiments' RESET criterion): per (width, V_BL, V_WL) bin, the mean and standard deviation of
  the conductance after the pulse. Target: mean within 5 %, std within 20 % in every bin with at
  least 50 measured pulses.
* **Staircases** (pulses applied one after another without restoring the cell): per (file,
  polarity, drive voltage, V_WL, state) bin, the median and the 10 % / 90 % quantiles of
  ``log10(G_after / G_before)``. Target: each within 0.05. The model runs each measured cell's
  pulse sequence as a new device from the measured state at the start of each sweep
  (:func:`simulate_staircases`), so a bin holds what the model's cells did there, with the
  selection a staircase makes (a cell still high at a late step is one that resists); the
  one-step version (:func:`staircase_table` with ``free_run=False``) draws each pulse from the
  measured state before it instead.

A model enters as a *sampler*: ``sampler(data, rng) -> g_after`` draws one conductance after each
pulse of ``data`` from the measured state before it, with new devices for the cells
(:func:`pulse_model_sampler`). Each pulse is drawn ``n_rep`` times, with new devices each time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyaimc.data.pulses import RESET, SET, PulseData, record_kind, sweep_starts

#: the experiments RESET a cell to the HRS when R < 60 kOhm before a SET-from-HRS pulse
R_HRS_MIN = 60e3


def pulse_model_sampler(model):
    """A sampler for :class:`~pyaimc.device.pulse.PulseModel`: every cell a new device."""

    def sample(d: PulseData, rng: np.random.Generator) -> np.ndarray:
        _, inv = np.unique(d.cell, return_inverse=True)
        n_cells = inv.max() + 1
        e_set = rng.standard_normal(n_cells)[inv]
        e_reset = rng.standard_normal(n_cells)[inv]
        return model.respond(d.g_before, d.v_bl, d.v_sl, d.v_wl, d.width, e_set, e_reset, rng)

    return sample


def _bin(v, width):
    return np.floor(np.asarray(v) / width + 0.5) * width


def _groups(keys: np.ndarray):
    """Rows of each distinct key row, keys sorted."""
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    return uniq, [order[bounds[i]:bounds[i + 1]] for i in range(len(uniq))]


def set_from_hrs_table(records: list[PulseData], sampler, rng: np.random.Generator,
                       n_rep: int = 10, min_n: int = 50, v_wl_bin: float = 0.1) -> list[dict]:
    """Mean and std of G after a SET from the HRS, measured vs model, per bin.

    Parameters
    ----------
    records : list of PulseData
        SET-from-HRS records (pulses with ``r_before`` below 60 kOhm are left out).
    sampler : callable or None
        See the module docstring; None gives the measured figures only.
    rng : Generator
    n_rep : int
        Draws per measured pulse.
    min_n : int
        Bins with fewer measured pulses are left out.
    v_wl_bin : float
        Width of the V_WL bins, V.

    Returns
    -------
    list of dict
        Per bin: ``width_s, v_bl, v_wl, n, mean, std`` (measured, S) and ``model_mean,
        model_std, mean_rel_err, std_rel_err``, ``ok`` (mean within 5 %, std within 20 %).
    """
    rows = []
    for d in records:
        d = d.select((d.polarity == SET) & (d.r_before > R_HRS_MIN))
        if not len(d):
            continue
        g_model = None
        if sampler is not None:
            g_model = np.stack([sampler(d, rng) for _ in range(int(n_rep))])
        keys = np.stack([d.width, _bin(d.v_bl, 0.1), _bin(d.v_wl, v_wl_bin)], axis=1)
        uniq, groups = _groups(np.round(keys, 9))
        for key, idx in zip(uniq, groups):
            if len(idx) < min_n:
                continue
            g = d.g_after[idx]
            row = {"source": Path(d.source).name, "width_s": float(key[0]),
                   "v_bl": float(key[1]), "v_wl": float(key[2]), "n": int(len(idx)),
                   "mean": float(g.mean()), "std": float(g.std())}
            if g_model is not None:
                gm = g_model[:, idx].ravel()
                row.update(model_mean=float(gm.mean()), model_std=float(gm.std()))
                row["mean_rel_err"] = row["model_mean"] / row["mean"] - 1
                row["std_rel_err"] = row["model_std"] / row["std"] - 1
                row["ok"] = bool(abs(row["mean_rel_err"]) <= 0.05
                                 and abs(row["std_rel_err"]) <= 0.20)
            rows.append(row)
    return rows


def simulate_staircases(d: PulseData, model, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Run every cell's measured pulse sequence on a new device of a pulse model.

    Each sweep starts from the measured state before its first pulse; within a sweep the
    model's true state carries on (``true_state=True`` transitions) and each read before and
    after a pulse adds the model's read noise, as the measurement does. Pulses that drive
    neither line leave the state as it is.

    Returns
    -------
    g_before, g_after : ndarray (n,), S
        The model's reads before and after each pulse of ``d``.
    """
    _, inv = np.unique(d.cell, return_inverse=True)
    n_cells = inv.max() + 1
    e_set = rng.standard_normal(n_cells)
    e_reset = rng.standard_normal(n_cells)
    start = sweep_starts(d)
    seq = d.sequence
    g_state = np.zeros(n_cells)
    noise = model.read_noise_
    gb = np.empty(len(d))
    ga = np.empty(len(d))
    order = np.argsort(seq, kind="stable")
    bounds = np.searchsorted(seq[order], np.arange(seq.max() + 2))
    for k in range(seq.max() + 1):
        rows = order[bounds[k]:bounds[k + 1]]
        c = inv[rows]
        st = start[rows]
        g_state[c[st]] = d.g_before[rows[st]]
        g = g_state[c]
        gb[rows] = g * noise.draw(g, rng) if noise is not None else g
        g_new = model.respond(g, d.v_bl[rows], d.v_sl[rows], d.v_wl[rows], d.width[rows],
                              e_set[c], e_reset[c], rng, true_state=True)
        ga[rows] = g_new * noise.draw(g_new, rng) if noise is not None else g_new
        g_state[c] = g_new
    return gb, ga


def staircase_table(records: list[PulseData], sampler, rng: np.random.Generator,
                    n_rep: int = 10, min_n: int = 50, v_bin: float = 0.1,
                    state_bin: float = 0.25, tol: float = 0.05, model=None) -> list[dict]:
    """Quantiles of ``log10(G_after / G_before)``, measured vs model, per bin.

    Bins: source file, polarity, drive voltage (``v_bin`` wide), V_WL (``v_bin``), state
    ``log10 G_before`` (``state_bin`` decades). Pulses that drive neither line are left out.
    With ``model`` (a :class:`~pyaimc.device.pulse.PulseModel`) the model side is
    :func:`simulate_staircases` (binned by the model's own state before each pulse) and
    ``sampler`` is not used; otherwise each pulse is drawn by ``sampler`` from the measured
    state before it.

    Returns
    -------
    list of dict
        Per bin: the key, ``n``, measured ``q10, q50, q90`` and ``model_q10, model_q50,
        model_q90``, ``max_abs_err`` (largest of the three differences) and ``ok``.
    """
    rows = []
    for d in records:
        if not (d.polarity != 0).any():
            continue
        v = np.where(d.polarity == SET, d.v_bl, d.v_sl)

        def keys_of(g_before):
            return np.round(np.stack([d.polarity.astype(float), _bin(v, v_bin),
                                      _bin(d.v_wl, v_bin),
                                      _bin(np.log10(g_before), state_bin)], axis=1), 9)

        y = np.log10(d.g_after / d.g_before)
        keys = keys_of(d.g_before)
        y_model = key_model = None
        if model is not None:
            runs = [simulate_staircases(d, model, rng) for _ in range(int(n_rep))]
            y_model = np.concatenate([np.log10(a / b) for b, a in runs])
            key_model = np.concatenate([keys_of(b) for b, _ in runs])
            keep = np.tile(d.polarity != 0, int(n_rep))
            y_model, key_model = y_model[keep], key_model[keep]
        elif sampler is not None:
            y_model = np.concatenate([np.log10(sampler(d, rng) / d.g_before)
                                      for _ in range(int(n_rep))])
            key_model = np.tile(keys, (int(n_rep), 1))
            keep = np.tile(d.polarity != 0, int(n_rep))
            y_model, key_model = y_model[keep], key_model[keep]
        on = d.polarity != 0
        y, keys = y[on], keys[on]
        uniq, groups = _groups(keys)
        model_groups = {}
        if y_model is not None:
            mu, mg = _groups(key_model)
            model_groups = {tuple(k): g for k, g in zip(mu, mg)}
        for key, idx in zip(uniq, groups):
            if len(idx) < min_n:
                continue
            q = np.quantile(y[idx], [0.1, 0.5, 0.9])
            row = {"source": Path(d.source).name,
                   "polarity": "set" if key[0] == SET else "reset",
                   "v_drive": float(key[1]), "v_wl": float(key[2]),
                   "log10_g_before": float(key[3]), "n": int(len(idx)),
                   "q10": float(q[0]), "q50": float(q[1]), "q90": float(q[2])}
            if y_model is not None:
                mi = model_groups.get(tuple(key))
                row["model_n"] = 0 if mi is None else int(len(mi)) // int(n_rep)
                if mi is None or len(mi) < min_n:
                    # the model's cells (almost) never sit in this state at this voltage
                    row.update(model_q10=None, model_q50=None, model_q90=None,
                               max_abs_err=None, ok=False)
                else:
                    qm = np.quantile(y_model[mi], [0.1, 0.5, 0.9])
                    row.update(model_q10=float(qm[0]), model_q50=float(qm[1]),
                               model_q90=float(qm[2]))
                    row["max_abs_err"] = float(np.max(np.abs(qm - q)))
                    row["ok"] = bool(row["max_abs_err"] <= tol)
            rows.append(row)
    return rows


def summarize(rows: list[dict], err_keys: tuple[str, ...]) -> dict:
    """Bins, bins passing, and the worst absolute value of each error key."""
    out = {"bins": len(rows), "passing": int(sum(r.get("ok", False) for r in rows))}
    if any("model_n" in r for r in rows):
        # bins the measured cells visit but the model's cells (almost) never do
        out["model_absent"] = int(sum(r.get("model_n", 1) == 0 or r.get("model_q50") is None
                                      for r in rows))
    for k in err_keys:
        vals = [abs(r[k]) for r in rows if r.get(k) is not None and np.isfinite(r[k])]
        out[f"worst_{k}"] = float(max(vals)) if vals else None
        out[f"median_{k}"] = float(np.median(vals)) if vals else None
    return out


def pinball_loss(records: list[PulseData], quantile_fn, tau: np.ndarray) -> float:
    """Mean pinball loss of predicted quantiles of ``log10(G_after / G_before)`` (log10 units).

    ``quantile_fn(data) -> (n, K)`` gives the quantiles at levels ``tau`` for every pulse
    (marginal over devices where the model has device latents).
    """
    tot, n = 0.0, 0
    for d in records:
        d = d.select(d.polarity != 0)
        if not len(d):
            continue
        y = np.log10(d.g_after / d.g_before)
        q = quantile_fn(d)
        r = y[:, None] - q
        tot += float(np.sum(np.maximum(tau * r, (tau - 1) * r).mean(axis=1)))
        n += len(d)
    return tot / max(n, 1)


__all__ = ["R_HRS_MIN", "RESET", "SET", "cycling_sampler", "pinball_loss", "pulse_model_sampler",
           "record_kind", "write_verify_comparison",
           "set_from_hrs_table", "simulate_staircases", "staircase_table", "summarize",
           "sweep_starts"]


def cycling_sampler(model):
    """A sampler for a cycling-only model (the model before pulse responses), as the noise
    export programmed it: a SET pulse ends in the cycle's LRS whatever its gate, width or bit
    line; a RESET pulse of ``V_SL`` is the one-shot write's partial RESET from a fresh LRS at
    that amplitude (full RESET, SET, RESET pulse). Gate voltage, width and the state before the
    pulse play no part: the model has none of them."""
    u_set = float(model.iv_.default_u_set) - 1.0

    def sample(d: PulseData, rng: np.random.Generator) -> np.ndarray:
        out = d.g_before.copy()
        s = d.polarity == SET
        if s.any():
            lrs = model.sample(int(s.sum()), 1, rng)["R_LRS"][:, 0]
            out[s] = 1.0 / lrs
        r = d.polarity == RESET
        if r.any():
            cells = model.cells(int(r.sum()), rng, dtype=np.float64, n_threads=1)
            cells.apply_voltage(model.iv_.u_full_reset)
            cells.apply_voltage(u_set)
            cells.apply_voltage(d.v_sl[r])
            out[r] = cells.conductance
            cells.close()
        return out

    return sample


def write_verify_comparison(model, log, scheme, n_cells: int, rng: np.random.Generator,
                            start: str = "previous") -> list[dict]:
    """Measured write-verify statistics of a log beside the model's with ``scheme``.

    Parameters
    ----------
    model : DeviceModel
    log : WriteLog
        A measured evaluation (its windows are programmed in its order).
    scheme : WriteScheme
    n_cells : int
        Simulated cells per window.
    rng : Generator
    start : str
        See :func:`pyaimc.device.schemes.program_levels`.

    Returns
    -------
    list of dict, one per window
        Measured and model ``pulses_mean``, ``pulses_median``, ``pulses_p99``, ``success``,
        ``std_over_width`` (final spread of successful writes over the window width; closed
        windows only) and ``energy_mean`` (model), with ``intermediate`` marking the closed
        windows the targets refer to: mean pulses within 25 %, success within 1 point, spread
        within 0.05.
    """
    from pyaimc.device.schemes import program_levels

    measured = log.level_statistics()
    windows = np.array([[m["r_lo"], m["r_hi"]] for m in measured])
    sim = program_levels(model, scheme, windows, n_cells, rng, start=start)["levels"]
    rows = []
    for m, s in zip(measured, sim):
        width = (1.0 / m["r_lo"] - 1.0 / m["r_hi"]) if m["intermediate"] else None
        row = {"r_lo": m["r_lo"], "r_hi": m["r_hi"], "intermediate": m["intermediate"],
               "n_measured": m["n"]}
        for k in ("pulses_mean", "pulses_median", "pulses_p99", "success"):
            row[k] = m[k]
            row[f"model_{k}"] = s[k]
        row["std_over_width"] = m["std_over_width"]
        row["model_std_over_width"] = (s["g_std"] / width if width and s["g_std"] is not None
                                       else None)
        row["model_energy_mean"] = s["energy_mean"]
        if m["intermediate"]:
            row["pulses_rel_err"] = s["pulses_mean"] / m["pulses_mean"] - 1
            row["success_diff"] = s["success"] - m["success"]
            row["spread_diff"] = (None if row["model_std_over_width"] is None
                                  else row["model_std_over_width"] - m["std_over_width"])
            row["ok"] = bool(abs(row["pulses_rel_err"]) <= 0.25
                             and abs(row["success_diff"]) <= 0.01
                             and row["spread_diff"] is not None
                             and abs(row["spread_diff"]) <= 0.05)
        rows.append(row)
    return rows

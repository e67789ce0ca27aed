"""Fit the I-V envelopes and the RESET path of :class:`IVModel` to raw sweeps.

Each sweep is cut into segments of constant state (the LRS from the SET jump to the RESET onset;
the HRS from the full RESET to the next SET). Every segment's current is modelled as
``I(U) = L(U) + r_s * D(U)`` with polynomials ``L`` and ``D = H - L`` (no constant term) shared by
all segments and one state ``r_s`` per segment: a bilinear least-squares problem solved by
alternating least squares. The polynomial degree is chosen by two-fold cross-validation over cells.
The envelopes are then placed at the lowest and highest read resistance seen. Last, the RESET
exponent and full-RESET voltage are fitted to the RESET branches with the envelopes held fixed.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from pyaimc.data.sweeps import SweepFeatures
from pyaimc.device.iv import IVModel


def _segments(sf: SweepFeatures) -> tuple[list, list, list]:
    """Constant-state segments as (cell, cycle, point index array) triples.

    Returns (lrs, hrs, reset) lists; ``hrs[k]`` entries carry the cycle whose start they belong to,
    ``reset`` entries (cell, cycle, indices of the RESET branch).
    """
    br = sf.branches
    n_cells, n_cycles = sf.set_index.shape
    u = sf.u
    i_max = br["i_max"]
    pos_down = br["pos_down"]
    lrs, hrs, reset = [], [], []
    for c in range(n_cells):
        for n in range(n_cycles):
            s, r = sf.set_index[c, n], sf.reset_index[c, n]
            # HRS at the start of cycle n: falling branch of n - 1 (after full RESET) + the
            # negative branch of n before the SET
            head = np.arange(1, s) if s > 0 else br["neg_down"][1:]
            parts = [(n, head)]
            if n > 0 and sf.reset_index[c, n - 1] >= 0:
                parts.insert(0, (n - 1, pos_down))
            hrs.append((c, n, parts))
            if s > 0 and r > 0:
                lrs.append((c, n, [(n, np.arange(s, r + 1))]))
                reset.append((c, n, np.arange(r + 1, i_max + 1)))
    # drop the zero-volt samples: they carry no information about the state
    def clean(entries):
        out = []
        for c, n, parts in entries:
            parts = [(m, idx[u[idx] != 0]) for m, idx in parts]
            if sum(len(idx) for _, idx in parts) >= 3:
                out.append((c, n, parts))
        return out
    return clean(lrs), clean(hrs), reset


def _flatten(sf: SweepFeatures, segs: list):
    uu, ii, sid = [], [], []
    for k, (c, _, parts) in enumerate(segs):
        for m, idx in parts:
            uu.append(sf.u[idx])
            ii.append(sf.i[c, m, idx])
            sid.append(np.full(len(idx), k))
    return np.concatenate(uu), np.concatenate(ii), np.concatenate(sid)


def _powers(u: np.ndarray, degree: int) -> np.ndarray:
    return np.stack([u ** (j + 1) for j in range(degree)], axis=1)


def _als(u, i, sid, n_seg, degree, weights, r_init, max_iter=300, tol=1e-12):
    """Alternating least squares for I = L(U) + r_s D(U). Returns (l, d, r, loss)."""
    pw = _powers(u, degree)
    sw = np.sqrt(weights)
    r = r_init.copy()
    prev = np.inf
    for _ in range(max_iter):
        design = np.concatenate([pw, r[sid, None] * pw], axis=1) * sw[:, None]
        scale = np.linalg.norm(design, axis=0)
        scale[scale == 0] = 1
        coef, *_ = np.linalg.lstsq(design / scale, i * sw, rcond=None)
        coef /= scale
        l, d = coef[:degree], coef[degree:]
        lu, du = pw @ l, pw @ d
        num = np.bincount(sid, weights * (i - lu) * du, n_seg)
        den = np.bincount(sid, weights * du * du, n_seg)
        r = np.where(den > 0, num / np.where(den > 0, den, 1), r)
        loss = float(np.sum(weights * (i - lu - r[sid] * du) ** 2))
        if prev - loss <= tol * max(prev, 1e-300):
            break
        prev = loss
    return l, d, r, loss


def _segment_weights(i, sid, n_seg):
    # equal importance per segment, relative to its own current scale (HRS currents are small)
    ms = np.bincount(sid, i * i, n_seg) / np.maximum(np.bincount(sid, None, n_seg), 1)
    return 1.0 / np.maximum(ms[sid], 1e-30)


def _initial_states(u, i, sid, n_seg, u_read):
    near = np.abs(np.abs(u) - u_read) <= 0.15
    g = np.bincount(sid, np.where(near, i / u, 0), n_seg) / np.maximum(
        np.bincount(sid, near.astype(float), n_seg), 1)
    g_all = np.where(np.isfinite(g) & (g > 0), g, np.median(g[g > 0]))
    g_hi, g_lo = g_all.max(), g_all.min()
    return (g_hi - g_all) / (g_hi - g_lo)


def _heldout_loss(u, i, sid, n_seg, l, d, weights):
    pw = _powers(u, len(l))
    lu, du = pw @ l, pw @ d
    num = np.bincount(sid, weights * (i - lu) * du, n_seg)
    den = np.bincount(sid, weights * du * du, n_seg)
    r = num / np.where(den > 0, den, 1)
    return float(np.sum(weights * (i - lu - r[sid] * du) ** 2))


def fit_iv(sf: SweepFeatures, degree: int | None = None, max_degree: int = 8,
           u_read: float = 0.2, source: str | None = None) -> IVModel:
    """Fit an :class:`IVModel` to extracted sweeps.

    Parameters
    ----------
    sf : SweepFeatures
        From :func:`pyaimc.data.sweeps.extract_features`.
    degree : int, optional
        Polynomial degree of the envelopes; chosen by cross-validation over cells if None.
    max_degree : int
        Largest degree tried.
    u_read : float
        Read voltage, V.
    source : str, optional
        Recorded in the model.
    """
    lrs, hrs, reset = _segments(sf)
    if len(lrs) < 2 or len(hrs) < 2:
        raise ValueError(f"{sf.data.source}: too few complete SET/RESET cycles in the sweeps "
                         f"({len(lrs)} LRS and {len(hrs)} HRS segments) to fit I-V envelopes")
    segs = lrs + hrs
    u, i, sid = _flatten(sf, segs)
    n_seg = len(segs)
    w = _segment_weights(i, sid, n_seg)
    r0 = _initial_states(u, i, sid, n_seg, u_read)
    cells = np.array([c for c, _, _ in segs])
    cv = {}
    if degree is None:
        fold = (cells % 2)[sid]
        for deg in range(1, max_degree + 1):
            err = 0.0
            for f in (0, 1):
                tr, te = fold == f, fold != f
                l, d, _, _ = _als(u[tr], i[tr], sid[tr], n_seg, deg, w[tr], r0)
                err += _heldout_loss(u[te], i[te], sid[te], n_seg, l, d, w[te])
            cv[deg] = err / len(u)
        best = min(cv.values())
        degree = min(d for d, e in cv.items() if e <= 1.02 * best)
    l, d, r, loss = _als(u, i, sid, n_seg, degree, w, r0)
    pw_read = _powers(np.array([u_read]), degree)[0]
    r_read = u_read / (pw_read @ l + r * (pw_read @ d))
    lo, hi = np.argmin(r_read), np.argmax(r_read)
    lrs_coefs, hrs_coefs = l + r[lo] * d, l + r[hi] * d
    rel_rms = float(np.sqrt(loss / len(u)))
    iv = IVModel(lrs_coefs, hrs_coefs, u_read=u_read, u_full_reset=float(sf.u.max()),
                 source=source or sf.data.source)
    eta, u_full, reset_rms = _fit_reset(sf, iv, lrs, hrs, reset)
    info = {"degree": int(degree), "cv_error_by_degree": {str(k): v for k, v in cv.items()},
            "n_lrs_segments": len(lrs), "n_hrs_segments": len(hrs),
            "envelope_rms_relative_residual": rel_rms,
            "reset_rms_relative_residual": reset_rms,
            "r_lrs_envelope": float(r_read[lo]), "r_hrs_envelope": float(r_read[hi])}
    return IVModel(lrs_coefs, hrs_coefs, u_read=u_read, u_full_reset=u_full, reset_exponent=eta,
                   source=source or sf.data.source, fit_info=info)


def _fit_reset(sf, iv, lrs, hrs, reset):
    """Fit eta and the full-RESET voltage to the RESET branches (envelopes fixed)."""
    n_lrs = len(lrs)
    # state of each segment in the final envelope parametrisation
    key_lrs = {(c, n): k for k, (c, n, _) in enumerate(lrs)}
    key_hrs = {(c, n): n_lrs + k for k, (c, n, _) in enumerate(hrs)}
    us, is_, uon, ron, rend = [], [], [], [], []
    u_reset = sf.data.feature("U_RESET")
    for c, n, idx in reset:
        a, b = key_lrs.get((c, n)), key_hrs.get((c, n + 1))
        if a is None or b is None or not np.isfinite(u_reset[c, n]) or len(idx) < 2:
            continue
        us.append(sf.u[idx])
        is_.append(sf.i[c, n, idx])
        uon.append(np.full(len(idx), u_reset[c, n]))
        ron.append(np.full(len(idx), a))
        rend.append(np.full(len(idx), b))
    if not us:
        return iv.reset_exponent, iv.u_full_reset, float("nan")
    u, i = np.concatenate(us), np.concatenate(is_)
    u_on = np.concatenate(uon)
    seg_on, seg_end = np.concatenate(ron).astype(int), np.concatenate(rend).astype(int)
    # each segment's state in the frame of the final envelopes (relative least squares)
    n_seg = len(lrs) + len(hrs)
    seg_u, seg_i, seg_sid = _flatten(sf, lrs + hrs)
    lo = iv.i_lrs(seg_u)
    dd = iv.i_hrs(seg_u) - lo
    num = np.bincount(seg_sid, (seg_i - lo) * dd / np.maximum(seg_i**2, 1e-30), n_seg)
    den = np.bincount(seg_sid, dd * dd / np.maximum(seg_i**2, 1e-30), n_seg)
    r_seg = num / den
    r_on, r_end = r_seg[seg_on], r_seg[seg_end]
    i_on = iv.current(u_on, r_on)
    u_max = float(sf.u.max())

    def loss(eta, u_full):
        model = IVModel(iv.lrs_coefs, iv.hrs_coefs, iv.u_read, u_full, eta)
        i_end = model.current(u_full, r_end)
        pred = np.where(u >= u_full, model.current(u, r_end),
                        model.reset_path_current(u, u_on, i_on, i_end))
        return float(np.mean(((i - pred) / i_on) ** 2))

    lo_u = float(np.nanmax(u_on)) + 1e-3
    best = (np.inf, iv.reset_exponent, u_max)
    for u_full in np.linspace(lo_u, u_max, 60):
        res = optimize.minimize_scalar(lambda e: loss(e, u_full), bounds=(0.1, 12.0),
                                       method="bounded", options={"xatol": 1e-4})
        if res.fun < best[0]:
            best = (res.fun, float(res.x), float(u_full))
    # refine the full-RESET voltage around the grid optimum
    step = (u_max - lo_u) / 59
    res = optimize.minimize(lambda p: loss(p[0], p[1]), x0=[best[1], best[2]], method="Nelder-Mead",
                            options={"xatol": 1e-5, "fatol": 1e-12})
    eta, u_full = float(res.x[0]), float(np.clip(res.x[1], best[2] - step, best[2] + step))
    if not (0 < eta and lo_u <= u_full <= u_max) or res.fun > best[0]:
        _, eta, u_full = best
    return eta, u_full, float(np.sqrt(loss(eta, u_full)))

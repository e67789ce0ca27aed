"""ngspice library of a fitted device model: one subcircuit per device, B-sources and state nodes.

ngspice here has no OSDI, so the model is written with behavioural sources (see
:mod:`pyaimc.compact.common` for the state equations). Each device's cycle table is replayed
through ``pwl()`` staircases of the counters; random draws happen in Python with a seeded
generator, never in ngspice, so a run is reproducible and the Python twin can replay the same
draws (``CellArray(..., table=...)``).

Usage in a netlist::

    .include pyaimc_reram.lib
    X1 top bottom pyaimc_reram_d0
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pyaimc.compact.common import B_PATH, G_LEAK, K_RESET, K_SWITCH, W_SWITCH, fmt
from pyaimc.io import atomic_write_text


def _horner(coefs: np.ndarray, var: str) -> str:
    expr = fmt(coefs[-1])
    for c in coefs[-2::-1]:
        expr = f"({fmt(c)}+{var}*{expr})"
    return f"{var}*{expr}"


def _staircase(values: np.ndarray, index: str) -> str:
    """``pwl`` of ``index`` that is ``values[k]`` on [k - 0.45, k + 0.45], held past the ends."""
    pts = []
    for k, v in enumerate(values):
        pts += [f"{k - 0.45:g}", fmt(v), f"{k + 0.45:g}", fmt(v)]
    return f"pwl({index}, {', '.join(pts)})"


def library_text(model, table: dict, name: str = "pyaimc_reram",
                 k_switch: float = K_SWITCH, w_switch: float = W_SWITCH,
                 b_path: float = B_PATH, k_reset: float = K_RESET,
                 provenance: dict | None = None) -> str:
    """The ngspice library text for the devices of ``table``.

    Parameters
    ----------
    model : DeviceModel
        Fitted model (its I-V part is used).
    table : dict name -> ndarray (devices, cycles)
        R_HRS, U_SET, R_LRS, U_RESET of every device and cycle (ohm, V).
    name : str
        Prefix of the subcircuits (``<name>_d<k>``) and functions.
    k_switch, w_switch, b_path, k_reset : float
        SET rate (1/s), threshold width (V), RESET-path softplus sharpness, RESET rate (1/s).
    """
    iv = model.iv_
    n_dev, n_cyc = table["R_HRS"].shape
    p = name
    g_l, g_h = iv.g_lrs, iv.g_hrs
    uf = iv.u_full_reset
    lines = [
        f"* {name}: pyaimc ReRAM cell model for ngspice (behavioural sources and state nodes)",
        f"* {n_dev} devices x {n_cyc} replayed cycles; I-V from {iv.source}",
    ]
    for k, v in (provenance or {}).items():
        lines.append(f"* provenance {k}: {v}")
    lines += [
        f"* state equations: see pyaimc.compact.common; SET rate {k_switch:g}/s, RESET rate "
        f"{k_reset:g}/s, threshold width {w_switch:g} V",
        f".func {p}_lo(u) = {{{_horner(iv.lrs_coefs, 'u')}}}",
        f".func {p}_hi(u) = {{{_horner(iv.hrs_coefs, 'u')}}}",
        f".func {p}_cur(u, r) = {{{p}_lo(u) + r*({p}_hi(u) - {p}_lo(u))}}",
        f".func {p}_state(res) = {{({fmt(g_l)} - 1/res)/({fmt(g_l - g_h)})}}",
        # overflow-free logistic and softplus: their derivatives stay finite for Newton
        # overflow-free logistic and softplus: finite values and derivatives for Newton
        f".func {p}_sig(x) = {{0.5*(1 + tanh(0.5*x))}}",
        f".func {p}_soft(x) = {{max(x, 0) + ln(1 + exp(-abs({fmt(b_path)}*x)))/{fmt(b_path)}}}",
        f".func {p}_lof() = {{{fmt(iv.i_lrs(uf))}}}",
        f".func {p}_hif() = {{{fmt(iv.i_hrs(uf))}}}",
        "",
    ]
    for d in range(n_dev):
        r_hrs = iv.state_from_resistance(table["R_HRS"][d])
        r_lrs = iv.state_from_resistance(table["R_LRS"][d])
        n_idx, m_idx = "v(cn)", "(v(cn) + v(ph) - 1)"
        uset = _staircase(table["U_SET"][d], n_idx)
        rl_n = _staircase(r_lrs, n_idx)
        rh_n = _staircase(r_hrs, n_idx)
        ures = _staircase(table["U_RESET"][d], m_idx)
        rl_m = _staircase(r_lrs, m_idx)
        w, k, kr = fmt(w_switch), fmt(k_switch), fmt(k_reset)
        lines += [
            f".subckt {p}_d{d} te be",
            f"* device {d}: first cycle R_HRS {table['R_HRS'][d, 0]:.6g} ohm",
            f"Bcell te be I = {{{p}_cur(v(te, be), v(st))}}",
            f"Bset uset 0 V = {{{uset}}}",
            f"Brln rln 0 V = {{{rl_n}}}",
            f"Brhn rhn 0 V = {{{rh_n}}}",
            f"Bures ures 0 V = {{{ures}}}",
            f"Brlm rlm 0 V = {{{rl_m}}}",
            f"Bsset sset 0 V = {{{p}_sig((v(uset) - v(te, be))/{w})}}",
            f"Bsres sres 0 V = {{{p}_sig((v(te, be) - v(ures))/{w})}}",
            f"Bsful sful 0 V = {{{p}_sig((v(te, be) - {fmt(uf)})/{w})}}",
            # RESET path, in small steps on helper nodes (ngspice differentiates each source's
            # expression; one big nested expression is much slower)
            f"Bue ue 0 V = {{min(max(v(te, be), v(ures)), {fmt(uf)})}}",
            f"Bion ion 0 V = {{{p}_cur(v(ures), v(rlm))}}",
            f"Biend iend 0 V = {{{p}_lof() + v(rhn)*({p}_hif() - {p}_lof())}}",
            f"Bfrac frac 0 V = {{(v(ue) - v(ures))/({fmt(uf)} - v(ures))}}",
            f"Bloe loe 0 V = {{{p}_lo(v(ue))}}",
            f"Bhie hie 0 V = {{{p}_hi(v(ue))}}",
            f"Bpath path 0 V = {{(v(iend) + (v(ion) - v(iend))*pow(1 - v(frac), "
            f"{fmt(iv.reset_exponent)}) - v(loe))/(v(hie) - v(loe))}}",
            "Cst st 0 1",
            f"Bst 0 st I = {{{k}*v(sset)*(v(rln) - v(st)) + {kr}*v(sres)*{p}_soft(v(path) - v(st))"
            f" + {k}*v(sful)*(v(rhn) - v(st))"
            f" - {fmt(G_LEAK)}*(v(st) - {fmt(r_hrs[0])})}}",
            "Cph ph 0 1",
            f"Bph 0 ph I = {{{k}*(v(sset)*(1 - v(ph)) - v(sres)*v(ph)) - {fmt(G_LEAK)}*v(ph)}}",
            "Ccn cn 0 1",
            f"Bcn 0 cn I = {{{k}*v(sres)*v(ph) - {fmt(G_LEAK)}*v(cn)}}",
            f".ends {p}_d{d}",
            "",
        ]
    return "\n".join(lines) + "\n"


def write_library(path: str | os.PathLike, model, table: dict, **kwargs) -> Path:
    """Write :func:`library_text` to ``path`` atomically."""
    return atomic_write_text(path, library_text(model, table, **kwargs))

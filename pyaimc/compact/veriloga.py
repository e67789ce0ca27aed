"""Verilog-A export of a fitted device model.

The model logic is hand-written in ``veriloga/pyaimc_reram.va``. What it needs of a fitted model
comes in three kinds of files:

- static includes (same for every model, written by :func:`static_includes` and kept current by a
  test): parameter declarations for the envelopes, marginal tables, VAR and mixture, the
  knot-selection ``case`` blocks and the unrolled VAR sums (Verilog-A as OpenVAF reads it has no
  arrays, so tables are scalar parameters);
- the model card (``model_card.scs`` for Spectre, ``model_card.spice`` for ngspice/Xyce with
  OSDI, ``model_card.vacask`` for VACASK), with the fitted values: :func:`model_card`;
- the per-instance cycle table (``pyaimc_cycles.vams``), an analog function
  ``pyaimc_cycle_row(device, cycle, r_hrs, u_set, r_lrs, u_reset)`` over the replayed draws:
  :func:`cycles_include`.

:func:`write_veriloga` with ``osdi=True`` also compiles the module with OpenVAF
(:func:`pyaimc.spice.osdi.compile_va`, generic target, cached) into ``pyaimc_reram.osdi``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from pyaimc.compact.common import (B_PATH, K_RESET, K_SWITCH, MAX_DEGREE, TABLE_FEATURES, W_SWITCH,
                                   fmt)
from pyaimc.io import atomic_write_text, provenance, write_json

#: the hand-written module and its static includes, shipped inside the package (package data;
#: the repository's top-level ``veriloga/`` links here)
VERILOGA_DIR = Path(__file__).resolve().parents[1] / "veriloga"
MODULE_FILE = "pyaimc_reram.va"
MAX_ORDER = 10        #: largest VAR order the module takes
MAX_FEATURES = 4      #: features of a cycle
MAX_KNOTS = 81        #: knots per marginal table
MAX_COMPONENTS = 6    #: mixture components
STATIC_FILES = ("pyaimc_reram_params.vams", "pyaimc_reram_knots.vams", "pyaimc_reram_var.vams",
                "pyaimc_reram_mixture.vams", "pyaimc_reram_next_cycle.vams")
HEADER = ("// Written by pyaimc.compact.veriloga (python -m pyaimc.compact.veriloga); do not edit.\n")


# ---------------------------------------------------------------------------- static includes
def _params_include() -> str:
    out = [HEADER, "// I-V envelopes: I = sum_j c_j U^j, j = 1..9 (A, V)"]
    for env, c1 in (("lrs", "2.5e-4"), ("hrs", "2.5e-6")):
        for j in range(1, MAX_DEGREE + 1):
            out.append(f"parameter real {env}_c{j} = {c1 if j == 1 else '0.0'};")
    out.append("// marginal tables of the features (u = T_f(x)), equally spaced in x")
    for f in range(MAX_FEATURES):
        out.append(f"parameter real m{f}_x0 = -4.0;")
        out.append(f"parameter real m{f}_dx = 0.1 from (0:inf);")
        out.append(f"parameter integer m{f}_n = {MAX_KNOTS} from [3:{MAX_KNOTS}];")
        for k in range(MAX_KNOTS):
            out.append(f"parameter real m{f}_k{k} = {-4.0 + 0.1 * k:.1f};")
    out.append("// VAR(p): x_n = sum_lag A_lag x_(n-lag) + L e_n; a{lag}_{i}_{j}, l_{i}_{j}")
    out.append(f"parameter integer var_p = 0 from [0:{MAX_ORDER}];")
    for lag in range(1, MAX_ORDER + 1):
        for i in range(MAX_FEATURES):
            for j in range(MAX_FEATURES):
                out.append(f"parameter real var_a{lag}_{i}_{j} = 0.0;")
    for i in range(MAX_FEATURES):
        for j in range(MAX_FEATURES):
            out.append(f"parameter real var_l_{i}_{j} = {'1.0' if i == j else '0.0'};")
    out.append("// device-to-device mixture over theta = (mu_0..3, log sigma_0..3)")
    out.append(f"parameter integer mix_k = 1 from [1:{MAX_COMPONENTS}];")
    for c in range(MAX_COMPONENTS):
        out.append(f"parameter real mix_w{c} = {'1.0' if c == 0 else '0.0'};")
        for d in range(2 * MAX_FEATURES):
            out.append(f"parameter real mix_m{c}_{d} = 0.0;")
            for e in range(d + 1):
                out.append(f"parameter real mix_l{c}_{d}_{e} = {'1.0' if d == e else '0.0'};")
    out.append("// feature spaces: 1 = log10 (resistances), 0 = linear (voltages)")
    for f in range(MAX_FEATURES):
        out.append(f"parameter integer f{f}_log = {1 if f in (0, 2) else 0} from [0:1];")
    out.append("// diagnostic inputs of the (*retrieve*) probes; no effect on a simulation")
    out.append("parameter real probe_resistance = 1e4;")
    out.append("parameter real probe_normal = 0.0;")
    for lag in range(1, MAX_ORDER + 1):
        for f in range(MAX_FEATURES):
            out.append(f"parameter real probe_h{lag}_{f} = 0.0;")
    for f in range(MAX_FEATURES):
        out.append(f"parameter real probe_e{f} = 0.0;")
    return "\n".join(out) + "\n"


def _knots_include() -> str:
    """For each feature slot f: the segment ``kseg{f}`` of ``xin{f}`` on the equally spaced table
    (clamped to the first and last: the ends extrapolate linearly) and its two knots
    ``ulo{f}``, ``uhi{f}``."""
    out = [HEADER]
    for f in range(MAX_FEATURES):
        out.append(f"kseg{f} = floor((xin{f} - m{f}_x0) / m{f}_dx);")
        out.append(f"if (kseg{f} < 0) kseg{f} = 0;")
        out.append(f"if (kseg{f} > m{f}_n - 2) kseg{f} = m{f}_n - 2;")
        out.append(f"case (kseg{f})")
        for k in range(MAX_KNOTS - 1):
            out.append(f"  {k}: begin ulo{f} = m{f}_k{k}; uhi{f} = m{f}_k{k + 1}; end")
        out.append(f"  default: begin ulo{f} = m{f}_k0; uhi{f} = m{f}_k1; end")
        out.append("endcase")
    return "\n".join(out) + "\n"


def _var_include() -> str:
    """VAR step: ``xn{i} = sum_lag sum_j var_a{lag}_{i}_{j} h{lag}_{j} + sum_j var_l_{i}_{j} e{j}``."""
    out = [HEADER]
    for i in range(MAX_FEATURES):
        terms = [f"var_a{lag}_{i}_{j} * h{lag}_{j}" for lag in range(1, MAX_ORDER + 1)
                 for j in range(MAX_FEATURES)]
        terms += [f"var_l_{i}_{j} * e{j}" for j in range(MAX_FEATURES)]
        out.append(f"xn{i} = " + "\n    + ".join(terms) + ";")
    return "\n".join(out) + "\n"


def _mixture_include() -> str:
    """Device draw: component ``comp`` from ``uniform``, then theta = mean + L z."""
    out = [HEADER, "comp = 0;", "acc = mix_w0;"]
    for c in range(1, MAX_COMPONENTS):
        out.append(f"if (uniform > acc && mix_k > {c}) comp = {c};")
        out.append(f"acc = acc + mix_w{c};")
    out.append("case (comp)")
    for c in range(MAX_COMPONENTS):
        out.append(f"  {c}: begin")
        for d in range(2 * MAX_FEATURES):
            terms = [f"mix_l{c}_{d}_{e} * z{e}" for e in range(d + 1)]
            out.append(f"    th{d} = mix_m{c}_{d} + " + " + ".join(terms) + ";")
        out.append("  end")
    out.append("endcase")
    return "\n".join(out) + "\n"


def _next_cycle_include() -> str:
    """Random mode: fresh innovations, one VAR step, the history shifted, the cycle's features."""
    out = [HEADER]
    out += [f"e{f} = `PYAIMC_NORMAL(rseed);" for f in range(MAX_FEATURES)]
    out.append(_var_include().replace(HEADER, ""))
    for lag in range(MAX_ORDER, 1, -1):
        out += [f"h{lag}_{f} = h{lag - 1}_{f};" for f in range(MAX_FEATURES)]
    out += [f"h1_{f} = xn{f};" for f in range(MAX_FEATURES)]
    out += [f"xin{f} = xn{f};" for f in range(MAX_FEATURES)]
    out.append(_knots_include().replace(HEADER, ""))
    for f, name in enumerate(TABLE_FEATURES):
        u = f"(ulo{f} + (xin{f} - (m{f}_x0 + kseg{f} * m{f}_dx)) * (uhi{f} - ulo{f}) / m{f}_dx)"
        v = f"mu{f} + sg{f} * {u}"
        var = {"R_HRS": "cur_rhrs", "U_SET": "cur_uset", "R_LRS": "cur_rlrs",
               "U_RESET": "cur_ures"}[name]
        out.append(f"{var} = " + (f"pow(10.0, {v});" if name.startswith("R_") else f"{v};"))
    return "\n".join(out) + "\n"


def static_includes() -> dict[str, str]:
    """The model-independent include files of the module, by name."""
    return {"pyaimc_reram_params.vams": _params_include(),
            "pyaimc_reram_knots.vams": _knots_include(),
            "pyaimc_reram_var.vams": _var_include(),
            "pyaimc_reram_mixture.vams": _mixture_include(),
            "pyaimc_reram_next_cycle.vams": _next_cycle_include()}


# ---------------------------------------------------------------------------- model card
def card_values(model, k_switch: float = K_SWITCH, w_switch: float = W_SWITCH,
                b_path: float = B_PATH, k_reset: float = K_RESET) -> dict:
    """Parameter name -> value of the module for a fitted model."""
    iv = model.iv_
    if iv.degree > MAX_DEGREE:
        raise ValueError(f"the Verilog-A module takes envelopes up to degree {MAX_DEGREE}, "
                         f"the model has {iv.degree}")
    names = model.feature_names_
    if names not in (("R_HRS", "U_SET", "R_LRS", "U_RESET"), ("R_HRS", "R_LRS")):
        raise ValueError(f"the Verilog-A module takes features R_HRS, U_SET, R_LRS, U_RESET (or "
                         f"R_HRS, R_LRS), the model has {names}")
    if model.var_.order > MAX_ORDER:
        raise ValueError(f"the Verilog-A module takes VAR orders up to {MAX_ORDER}, "
                         f"the model has {model.var_.order}")
    if model.mixture_.n_components > MAX_COMPONENTS:
        raise ValueError(f"the Verilog-A module takes up to {MAX_COMPONENTS} mixture components")
    v = {"u_read": iv.u_read, "u_full": iv.u_full_reset, "eta": iv.reset_exponent,
         "k_switch": k_switch, "w_switch": w_switch, "b_path": b_path, "k_reset": k_reset,
         "voltage_features": 1 if len(names) == 4 else 0,
         "u_set_default": iv.default_u_set, "u_reset_default": iv.default_u_reset}
    for j in range(MAX_DEGREE):
        v[f"lrs_c{j + 1}"] = iv.lrs_coefs[j] if j < iv.degree else 0.0
        v[f"hrs_c{j + 1}"] = iv.hrs_coefs[j] if j < iv.degree else 0.0
    # the module's features are always R_HRS, U_SET, R_LRS, U_RESET; a two-feature model has no
    # switching-voltage statistics (its cycles replay the default voltages)
    slot = {"R_HRS": 0, "U_SET": 1, "R_LRS": 2, "U_RESET": 3}
    for name, m in zip(names, model.marginals_):
        f = slot[name]
        if len(m.x_knots) > MAX_KNOTS:
            raise ValueError(f"the Verilog-A module takes up to {MAX_KNOTS} knots per marginal")
        v[f"m{f}_x0"] = m.x_knots[0]
        v[f"m{f}_dx"] = m.x_knots[1] - m.x_knots[0]
        v[f"m{f}_n"] = len(m.x_knots)
        for k, u in enumerate(m.u_knots):
            v[f"m{f}_k{k}"] = u
    var = model.var_
    v["var_p"] = var.order
    index = [slot[n] for n in names]
    for lag in range(var.order):
        for a, i in enumerate(index):
            for b, j in enumerate(index):
                v[f"var_a{lag + 1}_{i}_{j}"] = var.coefs[lag, a, b]
    for a, i in enumerate(index):
        for b, j in enumerate(index):
            v[f"var_l_{i}_{j}"] = var.noise_chol[a, b]
    mix = model.mixture_
    v["mix_k"] = mix.n_components
    dim = [slot[n] for n in names] + [slot[n] + MAX_FEATURES for n in names]
    for c in range(mix.n_components):
        v[f"mix_w{c}"] = mix.weights[c]
        for a, d in enumerate(dim):
            v[f"mix_m{c}_{d}"] = mix.means[c, a]
            for b, e in enumerate(dim):
                if e <= d:
                    v[f"mix_l{c}_{d}_{e}"] = mix.chols[c, a, b]
    return v


def model_card(model, name: str = "pyaimc_reram_fit", dialect: str = "spectre", **kwargs) -> str:
    """A model card of the module with the fitted values (``spectre``, ``spice`` or ``vacask``)."""
    values = card_values(model, **kwargs)
    body = [f"{k}={fmt(v) if not isinstance(v, (int, np.integer)) else int(v)}"
            for k, v in values.items()]
    src = model.provenance_.get("source", "")
    if dialect == "vacask":
        from pyaimc.spice.vacask import model_card as vacask_card

        return (f"// pyaimc fitted ReRAM model card (source: {src})\n"
                + vacask_card(name, "pyaimc_reram", values))
    if dialect == "spectre":
        lines = [f"// pyaimc fitted ReRAM model card (source: {src})", "simulator lang=spectre",
                 f"model {name} pyaimc_reram \\"]
        lines += [f"    {b} \\" for b in body[:-1]] + [f"    {body[-1]}"]
    elif dialect == "spice":
        lines = [f"* pyaimc fitted ReRAM model card (source: {src})",
                 f".model {name} pyaimc_reram"]
        lines += [f"+ {b}" for b in body]
    else:
        raise ValueError(f"dialect must be 'spectre', 'spice' or 'vacask', got {dialect!r}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- cycle tables
def cycles_include(table: dict) -> str:
    """``pyaimc_cycle_row(device, cycle, r_hrs, u_set, r_lrs, u_reset)`` over a table.

    One analog function with four output arguments, a flat ``case`` over ``device * cycles +
    cycle`` (devices x cycles, SI units: ohm, V, ohm, V). The module clamps the cycle to the
    table; an unknown device reads zeros. One lookup per table row the module needs (three per
    evaluation) keeps OpenVAF's build time low: a function per feature, inlined at each of its
    six uses, took 139 s to compile for 1024 devices x 1 cycle.
    """
    n_dev, n_cyc = table["R_HRS"].shape
    out = [HEADER, f"// cycle table: {n_dev} devices x {n_cyc} cycles",
           f"`define PYAIMC_TABLE_CYCLES {n_cyc}",
           "analog function real pyaimc_cycle_row;",
           "  input dev, cyc;", "  output r_hrs, u_set, r_lrs, u_reset;", "  integer dev, cyc;",
           "  real r_hrs, u_set, r_lrs, u_reset;", "  begin",
           "    r_hrs = 0.0; u_set = 0.0; r_lrs = 0.0; u_reset = 0.0;",
           f"    case (dev * {n_cyc} + cyc)"]
    for d in range(n_dev):
        for c in range(n_cyc):
            vals = [fmt(table[name][d, c]) for name in TABLE_FEATURES]
            out.append(f"      {d * n_cyc + c}: begin r_hrs = {vals[0]}; u_set = {vals[1]}; "
                       f"r_lrs = {vals[2]}; u_reset = {vals[3]}; end")
    out += ["      default: r_hrs = 0.0;", "    endcase", "    pyaimc_cycle_row = 0.0;",
            "  end", "endfunction"]
    return "\n".join(out) + "\n"


def write_veriloga(out_dir: str | os.PathLike, model, table: dict, name: str = "pyaimc_reram_fit",
                   seed: int | None = None, osdi: bool = False, **kwargs) -> list[Path]:
    """Write the module, its includes, the model cards, the cycle table and ``devices.json``.

    Parameters
    ----------
    out_dir : path
    model : DeviceModel
    table : dict name -> ndarray (devices, cycles)
        The replayed draws (:func:`pyaimc.compact.common.draw_devices`).
    name : str
        Model card name.
    seed : int, optional
        Seed of the draws (recorded in ``devices.json``).
    osdi : bool
        Also compile the module with OpenVAF into ``pyaimc_reram.osdi`` (generic target, cached by
        content; needs ``pip install 'pyaimc[vacask]'`` and the linker ``ld``).
    **kwargs
        Switching-dynamics parameters of the card (``k_switch``, ``w_switch``, ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    shutil.copyfile(VERILOGA_DIR / MODULE_FILE, out / MODULE_FILE)
    written.append(out / MODULE_FILE)
    for fname, text in static_includes().items():
        written.append(atomic_write_text(out / fname, text))
    written.append(atomic_write_text(out / "pyaimc_cycles.vams", cycles_include(table)))
    written.append(atomic_write_text(out / "model_card.scs", model_card(model, name, "spectre",
                                                                         **kwargs)))
    written.append(atomic_write_text(out / "model_card.spice", model_card(model, name, "spice",
                                                                           **kwargs)))
    written.append(atomic_write_text(out / "model_card.vacask", model_card(model, name, "vacask",
                                                                            **kwargs)))
    written.append(write_devices_json(out / "devices.json", model, table, seed))
    if osdi:
        from pyaimc.spice.osdi import compile_va

        written.append(compile_va(out / MODULE_FILE, out / "pyaimc_reram.osdi"))
    return written


def write_devices_json(path, model, table: dict, seed: int | None) -> Path:
    """The replayed draws (for the Python twin: ``CellArray(model, n, rng, table=...)``)."""
    return write_json(path, {
        "schema": "pyaimc.devices/1",
        "features": list(TABLE_FEATURES),
        "units": {"R_HRS": "ohm", "U_SET": "V", "R_LRS": "ohm", "U_RESET": "V"},
        "n_devices": int(table["R_HRS"].shape[0]), "n_cycles": int(table["R_HRS"].shape[1]),
        "table": {k: np.asarray(v) for k, v in table.items()},
        "provenance": provenance(source=model.provenance_.get("source"), seed=seed),
    })


def read_devices_json(path) -> dict:
    """The table written by :func:`write_devices_json` (name -> devices x cycles arrays)."""
    from pyaimc.io import read_json

    from pyaimc.io import SchemaError

    doc = read_json(path, "pyaimc.devices/1")
    try:
        table = {str(k): np.asarray(v, dtype=np.float64) for k, v in doc["table"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise SchemaError(f"{path}: 'table' must map feature names to devices x cycles numbers "
                          f"({type(err).__name__}: {err})") from None
    if any(a.ndim != 2 or not np.all(np.isfinite(a)) for a in table.values()):
        raise SchemaError(f"{path}: every table entry must be a finite devices x cycles array")
    return table


def main(argv=None) -> int:
    """Rewrite the static includes in ``veriloga/`` (``python -m pyaimc.compact.veriloga``)."""
    for fname, text in static_includes().items():
        atomic_write_text(VERILOGA_DIR / fname, text)
        print(f"wrote {VERILOGA_DIR / fname}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

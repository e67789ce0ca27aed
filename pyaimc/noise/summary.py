"""A noise model in lines for a person: what ``pyaimc export noise`` prints."""

from __future__ import annotations


def noise_summary(nm) -> list[str]:
    """Window, programming statistics per scheme and level, defects, read noise, converters,
    tile and transfer model of ``nm``, as lines (conductances in uS)."""
    w, p = nm.window, nm.programming
    lines = [f"window {w.g_min * 1e6:.2f} .. {w.g_max * 1e6:.2f} uS ({w.rule})"]
    tol = {t.settings.get("tolerance") for t in p.schemes.values()} - {None}
    lines.append(f"programming, {p.n_devices} devices x {p.n_repeats} writes per level (uS; "
                 f"std = spread, c2c = one device rewritten, d2d = between devices)"
                 + (f"; window +-{next(iter(tol)):g} of the target" if len(tol) == 1 else "")
                 + f"; layers sample {p.training_scheme}")
    for name in p.scheme_names:
        t = p.table(name)
        budget = t.settings.get("max_pulses")
        lines.append(f"  {name}" + (f" (at most {budget} pulses)" if budget else "") + ":")
        lines.append(f"  {'target':>8} {'mean':>8} {'std':>6} {'c2c':>6} {'d2d':>6} "
                     f"{'failed':>7} {'pulses':>6}")
        for k, lv in enumerate(p.levels):
            lines.append(f"  {lv * 1e6:8.2f} {t.mean[k] * 1e6:8.2f} {t.std[k] * 1e6:6.2f} "
                         f"{t.c2c_std[k] * 1e6:6.2f} {t.d2d_std[k] * 1e6:6.2f} "
                         f"{t.failed_fraction[k]:7.2%} {t.mean_pulses[k]:6.1f}")
        fe = t.fit_error
        if "degree" in fe:
            lines.append(f"  {name} polynomials (degree {fe['degree']}): mean within "
                         f"{fe['mean_rel']:.2%} of the table, std within {fe['std_rel']:.2%} of "
                         f"its maximum")
    d = nm.defects
    lines.append(f"  stuck {d.stuck_fraction:.4f}, outlier population {d.outlier_fraction:.4f}, "
                 f"narrow window {d.narrow_window_fraction:.4f}")
    r = nm.read_noise
    rel = (f"{r.relative.min():.2e} .. {r.relative.max():.2e} of the cell current"
           if r.relative.size else "")
    lines.append(f"  read noise ({r.kind}) at {r.bandwidth:.3g} Hz: {rel}; DAC {nm.dac.bits} bit "
                 f"+-{nm.dac.v_max} V, ADC {nm.adc.bits} bit +-{nm.adc.i_max * 1e6:.1f} uA")
    detail = getattr(nm.retention, "describe", None)
    lines.append(f"  retention: {nm.retention.kind}" + (f" ({detail()})" if detail else ""))
    t = nm.transfer
    lines.append(f"  tile {nm.tile.rows}x{nm.tile.cols}, transfer " + (
        "none (ideal crossbar)" if t is None else
        f"r_wire {t.r_wire:g} ohm, k_row {t.k_row:g}, k_col {t.k_col:g}, c2 {list(t.c2)}, "
        f"c3 {list(t.c3)}, i_sat {t.i_sat}"))
    return lines

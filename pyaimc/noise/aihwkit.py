"""Our fitted devices in the form aihwkit's inference noise models take (no aihwkit import).

aihwkit's polynomial noise models (``PCMLikeNoiseModel``, ``ReRamWan2022NoiseModel``) draw the
programmed conductance as ``g_T + sigma(g_T) * N(0, 1)`` with, in microsiemens,

    sigma(g_T) = (g_max / g_ref) * sum_i c_i * (g_T / g_max)**i

where ``g_max`` (uS) is the converter's largest conductance and ``g_ref`` the reference at which
the coefficients were fitted (it defaults to ``g_max`` when the coefficients are passed in).
The mapping used here:

* ``prog_coeff`` are fitted (least squares over our target levels) to the *root-mean-square
  error about the target*, ``sqrt(std**2 + (mean - g_T)**2)``, of the chosen write scheme, in uS,
  against ``x = g_T / g_max``, so ``g_ref = g_max`` (leave the reference argument unset). aihwkit
  has no mean offset: our bias ``mean - g_T`` is folded into the spread (and listed apart).
* Conductance window: ``SinglePairConductanceConverter(g_max=g_max_us, g_min=g_min_us)``; one
  device of the pair holds ``g_min`` for the sign it does not carry, as in our mapping.
* Drift and 1/f noise: our devices have no drift model; with ``PCMLikeNoiseModel`` set
  ``drift_scale=0`` and ``read_noise_scale=0``, so programming noise is all it adds.
* Read noise (per read, not accumulated): aihwkit takes it as weight noise on every
  mat-vec, ``rpu_config.forward.w_noise`` with ``w_noise_type=WeightNoiseType.ADDITIVE_CONSTANT``
  (std relative to the largest weight). We give the equivalent for a full-scale input ``v_max``:
  each cell's current noise ``sigma_I(g, v_max)`` as a conductance noise ``sigma_I / v_max``,
  for the pair at full-scale weight (``g_max`` and ``g_min``) added in quadrature, over
  ``g_max - g_min``. Smaller inputs have relatively more read noise (Johnson noise does not scale
  with the input), so this is the least read noise of the layer. ``read_coeff`` gives the same
  per-cell conductance noise in uS as a polynomial of ``g / g_max`` for tools that take a
  conductance-dependent read noise.
* DAC and ADC: ``forward.inp_res`` and ``forward.out_res`` are ``1 / steps`` with
  ``steps = 2**bits - 2`` over the signed range (aihwkit's default ``1 / (2**7 - 2)`` reads as 7
  bits); ranges differ in units (ours are volts and amperes) and are given as facts.
"""

from __future__ import annotations

import numpy as np

UNITS_US = 1e6


def _fit(x: np.ndarray, y: np.ndarray, degree: int) -> tuple[list, float]:
    degree = int(min(degree, len(x) - 1))
    if np.allclose(y, 0.0):
        return [0.0], 0.0
    coeffs = np.polynomial.polynomial.polyfit(x, y, degree)
    err = float(np.max(np.abs(np.polynomial.polynomial.polyval(x, coeffs) - y)))
    return coeffs.tolist(), err


def to_aihwkit(model, method: str | None = None, degree: int = 3) -> dict:
    """Coefficients of aihwkit's polynomial inference noise models for ``model``.

    Parameters
    ----------
    model : NoiseModel
    method : {"write_verify", "one_shot"}, optional
        Write scheme whose programming error is exported (default: the training method).
    degree : int
        Degree of the fitted polynomials (at most the number of levels - 1).

    Returns
    -------
    dict
        ``g_max_us``, ``g_min_us``, ``prog_coeff`` (uS, ascending powers of ``g_T / g_max``),
        ``prog_fit_max_error_us``, ``prog_bias_rel`` (per level, not representable in aihwkit),
        ``read_noise`` (``w_noise`` for ADDITIVE_CONSTANT, ``read_coeff`` in uS), ``dac_inp_res``,
        ``adc_out_res``, and a ``usage`` line.
    """
    p = model.programming
    method = method or p.training_method
    table = p.table(method)
    w = model.window
    g_max_us = w.g_max * UNITS_US
    levels = p.levels
    x = levels / w.g_max
    rms = np.sqrt(table.std**2 + (table.mean - levels) ** 2) * UNITS_US
    prog_coeff, prog_err = _fit(x, rms, degree)

    r = model.read_noise
    v_max = model.dac.v_max
    sigma_g_us = r.sigma_current(levels, v_max) / v_max * UNITS_US
    read_coeff, read_err = _fit(x, sigma_g_us, degree)
    pair = np.hypot(r.sigma_current(w.g_max, v_max), r.sigma_current(w.g_min, v_max)) / v_max
    w_noise = float(pair / (w.g_max - w.g_min))

    def res(bits):
        return None if bits is None else 1.0 / (2**bits - 2)

    return {
        "mapping": "sigma_prog(g_T) [uS] = sum_i prog_coeff[i] * (g_T / g_max)**i; see "
                   "pyaimc.noise.aihwkit for the full mapping",
        "programming_method": method,
        "g_max_us": g_max_us,
        "g_min_us": w.g_min * UNITS_US,
        "prog_coeff": prog_coeff,
        "prog_fit_max_error_us": prog_err,
        "prog_bias_rel": ((table.mean - levels) / levels).tolist(),
        "read_noise": {"w_noise": w_noise, "w_noise_type": "ADDITIVE_CONSTANT",
                       "at_input_v": v_max, "bandwidth_hz": r.bandwidth,
                       "read_coeff": read_coeff, "read_fit_max_error_us": read_err},
        "dac_inp_res": res(model.dac.bits),
        "adc_out_res": res(model.adc.bits),
        "usage": (f"PCMLikeNoiseModel(prog_coeff=prog_coeff, "
                  f"g_converter=SinglePairConductanceConverter(g_max={g_max_us:.6g}, "
                  f"g_min={w.g_min * UNITS_US:.6g}), drift_scale=0.0, read_noise_scale=0.0); "
                  f"rpu_config.forward.w_noise = {w_noise:.3g} with "
                  f"WeightNoiseType.ADDITIVE_CONSTANT"),
    }


def write_aihwkit(path, model, source: str | None = None, seed: int | None = None,
                  method: str | None = None):
    """Write :func:`to_aihwkit` of ``model`` as ``pyaimc.aihwkit-noise/1`` JSON (atomically)."""
    from pyaimc.io import provenance, write_json

    return write_json(path, {"schema": "pyaimc.aihwkit-noise/1", **to_aihwkit(model, method),
                             "provenance": provenance(source=source, seed=seed)})

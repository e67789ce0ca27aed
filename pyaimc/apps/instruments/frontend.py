"""The analog front end of a measurement board: source, switch path, transimpedance ranges, ADC.

A NeuroBreakoutBoard-like board sources a voltage through a DAC and a switch matrix onto the
device under test and reads the current with a transimpedance amplifier (TIA) whose feedback
resistor selects one of several current ranges, digitised by an ADC. Every stage has an error
that a real board has too, and :class:`FrontEnd` holds one board's draw of them:

* **source**: DAC resolution over ``+-source_range_v``, a gain error and an offset (V);
* **switch path**: the series on-resistance of the multiplexer (ohm) and a leakage resistance in
  parallel with the device;
* **measure**: decade current ranges (full scale ``ranges_a``), per range a TIA gain error
  (feedback resistor tolerance) and an offset (amplifier offset and bias current, a fraction of
  full scale), output noise, an ADC of ``adc_bits`` over ``+-full scale``, autoranging on the
  current (the most sensitive range whose full scale holds it with 5 % headroom);
* **compliance**: the source's current limit;
* **timing**: settling and ADC aperture per sample, range switches, pulse timer resolution and
  minimum width, overhead per pulse.

:class:`Calibration` holds what :func:`pyaimc.apps.instruments.calibration.calibrate` measures
(offset and gain per range, series resistance) and undoes it on every reading.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from pyaimc.device.iv import K_BOLTZMANN

#: headroom of the autorange: a range is used up to this fraction of its full scale
AUTORANGE_FILL = 0.95


@dataclass(frozen=True)
class FrontEndSpec:
    """Nominal design and error statistics of a board's front end (SI units).

    Parameters
    ----------
    source_range_v : float
        The source spans ``+-source_range_v``, V.
    dac_bits : int
        Resolution of the source DAC over that span.
    source_gain_sigma, source_offset_sigma_v : float
        Standard deviation of the source's gain error (relative) and offset (V) across boards.
    ranges_a : tuple of float
        Full scale of each current range, most sensitive first, A.
    adc_bits : int
        ADC resolution over ``+-full scale``.
    gain_sigma : float
        Standard deviation of each range's TIA gain error across boards (relative).
    offset_sigma_fs : float
        Standard deviation of each range's offset, a fraction of its full scale.
    noise_fs : float
        Rms noise at the ADC input, a fraction of full scale (beside the device's own Johnson and
        shot noise and the feedback resistor's Johnson noise).
    r_series, r_series_sigma : float
        Switch-path series resistance and its spread across boards, ohm.
    r_leak : float
        Leakage resistance in parallel with the device, ohm.
    compliance_a : float
        Default current compliance, A.
    u_read : float
        Default read voltage, V.
    settle_s, aperture_s, range_switch_s : float
        Source settling before a sample, ADC aperture (integration) per sample, time to switch a
        range, s. The aperture sets the noise bandwidth (``1 / (2 aperture)``).
    pulse_resolution_s, pulse_min_s, pulse_overhead_s : float
        Pulse timer resolution, shortest pulse, set-up time per pulse, s.
    reference_tolerance : float
        Relative tolerance (standard deviation) of the on-board calibration resistors.
    temperature : float
        K, for the Johnson noise.
    """

    source_range_v: float = 10.0
    dac_bits: int = 16
    source_gain_sigma: float = 0.002
    source_offset_sigma_v: float = 1e-3
    ranges_a: tuple = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    adc_bits: int = 14
    gain_sigma: float = 0.03
    offset_sigma_fs: float = 0.003
    noise_fs: float = 1e-4
    r_series: float = 50.0
    r_series_sigma: float = 5.0
    r_leak: float = 1e10
    compliance_a: float = 1e-3
    u_read: float = 0.2
    settle_s: float = 20e-6
    aperture_s: float = 100e-6
    range_switch_s: float = 500e-6
    pulse_resolution_s: float = 10e-9
    pulse_min_s: float = 20e-9
    pulse_overhead_s: float = 10e-6
    reference_tolerance: float = 1e-3
    temperature: float = 300.0

    def __post_init__(self) -> None:
        r = np.asarray(self.ranges_a, dtype=np.float64)
        if r.ndim != 1 or len(r) < 1 or not np.all(r > 0) or np.any(np.diff(r) <= 0):
            raise ValueError(f"ranges_a must be increasing full scales > 0 A, got {self.ranges_a}")
        for name in ("dac_bits", "adc_bits"):
            if not 2 <= int(getattr(self, name)) <= 32:
                raise ValueError(f"{name} must be 2..32, got {getattr(self, name)}")
        for name in ("source_range_v", "compliance_a", "u_read", "aperture_s", "r_leak",
                     "pulse_resolution_s"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("source_gain_sigma", "source_offset_sigma_v", "gain_sigma",
                     "offset_sigma_fs", "noise_fs", "r_series", "r_series_sigma", "settle_s",
                     "range_switch_s", "pulse_min_s", "pulse_overhead_s", "reference_tolerance"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ranges_a"] = list(self.ranges_a)
        return d

    @property
    def bandwidth(self) -> float:
        """Noise bandwidth of one sample, Hz."""
        return 1.0 / (2.0 * self.aperture_s)

    def calibration_references(self, u: float | None = None) -> np.ndarray:
        """Nominal on-board calibration resistors, one per range at half its full scale at the
        read voltage ``u`` (ohm)."""
        u = self.u_read if u is None else u
        return u / (0.5 * np.asarray(self.ranges_a))


@dataclass
class FrontEnd:
    """One board's front end: the nominal design and this board's errors.

    Build with :meth:`draw` (errors drawn from the spec's statistics) or :meth:`ideal`; set any
    error by hand for a test (``gain``, ``offset`` per range, ``r_series``, ...).

    Attributes
    ----------
    spec : FrontEndSpec
    gain : ndarray (ranges,)
        Reading / true current of each range (1 = no gain error).
    offset : ndarray (ranges,), A
        Reading at zero current of each range.
    source_gain, source_offset : float
        Applied voltage = ``source_gain * programmed + source_offset``.
    r_series : float, ohm
    references : ndarray (ranges,), ohm
        True values of the calibration resistors (nominal within their tolerance).
    """

    spec: FrontEndSpec
    gain: np.ndarray
    offset: np.ndarray
    source_gain: float = 1.0
    source_offset: float = 0.0
    r_series: float = 0.0
    references: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        k = len(self.spec.ranges_a)
        self.gain = np.broadcast_to(np.asarray(self.gain, dtype=np.float64), (k,)).copy()
        self.offset = np.broadcast_to(np.asarray(self.offset, dtype=np.float64), (k,)).copy()
        if not np.all(self.gain > 0):
            raise ValueError(f"range gains must be > 0, got {self.gain}")
        if self.references is None:
            self.references = self.spec.calibration_references()
        self.references = np.asarray(self.references, dtype=np.float64)

    @classmethod
    def draw(cls, rng: np.random.Generator, spec: FrontEndSpec | None = None) -> "FrontEnd":
        """A board with errors drawn from ``spec``'s statistics (same seed, same board)."""
        spec = spec or FrontEndSpec()
        k = len(spec.ranges_a)
        fs = np.asarray(spec.ranges_a)
        gain = 1.0 + spec.gain_sigma * rng.standard_normal(k)
        offset = spec.offset_sigma_fs * fs * rng.standard_normal(k)
        sg = 1.0 + spec.source_gain_sigma * rng.standard_normal()
        so = spec.source_offset_sigma_v * rng.standard_normal()
        rs = max(0.0, spec.r_series + spec.r_series_sigma * rng.standard_normal())
        refs = spec.calibration_references() * (1 + spec.reference_tolerance
                                                * rng.standard_normal(k))
        return cls(spec, gain, offset, sg, so, rs, refs)

    @classmethod
    def ideal(cls, spec: FrontEndSpec | None = None, **overrides) -> "FrontEnd":
        """A board without gain, offset or source errors (quantisation and noise remain);
        ``overrides`` set fields (e.g. ``r_series=0``)."""
        spec = spec or FrontEndSpec()
        k = len(spec.ranges_a)
        fe = cls(spec, np.ones(k), np.zeros(k), 1.0, 0.0, spec.r_series,
                 spec.calibration_references())
        for name, value in overrides.items():
            setattr(fe, name, value)
        fe.__post_init__()
        return fe

    # ------------------------------------------------------------------ source
    def dac(self, u) -> np.ndarray:
        """The programmed voltage as the DAC can set it (quantised, clipped to the range), V."""
        span = self.spec.source_range_v
        step = 2 * span / (2 ** int(self.spec.dac_bits) - 1)
        return np.clip(np.rint(np.asarray(u, dtype=np.float64) / step) * step, -span, span)

    def source(self, u) -> np.ndarray:
        """The voltage the source really applies for a programmed ``u`` (V)."""
        return self.source_gain * self.dac(u) + self.source_offset

    def check_source(self, u, what: str = "voltage") -> None:
        """Raise when a programmed voltage is outside the source range."""
        u = np.asarray(u, dtype=np.float64)
        span = self.spec.source_range_v
        if not np.all(np.isfinite(u)) or np.any(np.abs(u) > span):
            worst = float(np.nanmax(np.abs(np.where(np.isfinite(u), u, np.inf))))
            raise ValueError(f"{what} {worst:g} V is outside the source range +-{span:g} V")

    # ------------------------------------------------------------------ measure
    def autorange(self, i) -> np.ndarray:
        """Index of the range each current is read in (the most sensitive that holds it)."""
        fs = np.asarray(self.spec.ranges_a)
        k = np.searchsorted(AUTORANGE_FILL * fs, np.abs(np.asarray(i, dtype=np.float64)))
        return np.minimum(k, len(fs) - 1)

    def measure(self, i, rng: np.random.Generator, range_index=None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Raw readings (A) of true currents ``i`` and the range each was read in.

        The reading is ``gain * i + offset + noise``, clipped to the range's full scale and
        quantised by the ADC; the noise is the front end's own (``noise_fs`` of full scale) and
        the feedback resistor's Johnson noise over the sample's bandwidth.
        """
        i = np.asarray(i, dtype=np.float64)
        k = self.autorange(i) if range_index is None else np.broadcast_to(
            np.asarray(range_index, dtype=np.int64), i.shape)
        fs = np.asarray(self.spec.ranges_a)[k]
        # the feedback resistor of a range is about 1 V / full scale
        johnson = np.sqrt(4 * K_BOLTZMANN * self.spec.temperature * fs / 1.0
                          * self.spec.bandwidth)
        sigma = np.hypot(self.spec.noise_fs * fs, johnson)
        x = self.gain[k] * i + self.offset[k] + sigma * rng.standard_normal(i.shape)
        levels = 2 ** int(self.spec.adc_bits)
        step = 2 * fs / (levels - 1)
        x = np.clip(np.rint(x / step) * step, -fs, fs)
        return x, k

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "gain": self.gain.tolist(),
                "offset_a": self.offset.tolist(), "source_gain": float(self.source_gain),
                "source_offset_v": float(self.source_offset), "r_series": float(self.r_series),
                "references_ohm": self.references.tolist()}

    # ------------------------------------------------------------------ timing
    def pulse_width(self, width) -> np.ndarray:
        """The width the pulse timer sets for a requested ``width`` (s): rounded to its
        resolution, at least the shortest pulse."""
        res = self.spec.pulse_resolution_s
        w = np.rint(np.asarray(width, dtype=np.float64) / res) * res
        return np.maximum(w, self.spec.pulse_min_s)


@dataclass
class Calibration:
    """Gain and offset per current range and the switch path's series resistance, as measured
    by a calibration; :meth:`current` and :meth:`resistance` undo them.

    Attributes
    ----------
    gain : ndarray (ranges,)
    offset : ndarray (ranges,), A
    r_series : float, ohm
    u : float
        Voltage the calibration was made at, V.
    """

    gain: np.ndarray
    offset: np.ndarray
    r_series: float
    u: float

    def current(self, reading, range_index) -> np.ndarray:
        """Corrected current (A) of raw readings taken in the given ranges."""
        k = np.asarray(range_index)
        return (np.asarray(reading, dtype=np.float64) - self.offset[k]) / self.gain[k]

    def to_dict(self) -> dict:
        return {"gain": np.asarray(self.gain).tolist(),
                "offset_a": np.asarray(self.offset).tolist(),
                "r_series_ohm": float(self.r_series), "u_v": float(self.u)}

    @classmethod
    def identity(cls, n_ranges: int, u: float) -> "Calibration":
        """No correction (an uncalibrated board)."""
        return cls(np.ones(n_ranges), np.zeros(n_ranges), 0.0, u)

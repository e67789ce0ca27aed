"""Locality-sensitive hashing by random projection, with ideal or device-noise projections.

A seed (``k`` consecutive normalised event levels) is projected on ``n_bits`` random directions
and each projection's sign is one hash bit (sign random projection: seeds at a small angle share
most bits). :class:`GaussianHasher` draws the directions from a standard normal in software.
:class:`DeviceHasher` takes them from a crossbar of ReRAM cells all programmed to the *same*
target conductance: the directions are the differences of the conductances of column pairs
(``G+ - G-``), zero-mean random numbers whose distribution is the device model's programming
noise. The projection is the crossbar's matrix-vector product (seed levels as row voltages, the
pair's current difference into a comparator); it can be run through pyaimc's circuit engines
(IR drop on the wires) and carries the cells' read noise, so the same seed may hash differently
twice, as on a chip.
"""

from __future__ import annotations

import math

import numpy as np

from pyaimc.device.iv import K_BOLTZMANN, Q_ELECTRON


def pack(bits: np.ndarray) -> np.ndarray:
    """Hash bits (n, n_bits) of bool as bytes (n, ceil(n_bits / 8)) for binary indexes."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=1)


_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes (uint8), broadcast over leading axes."""
    return _POPCOUNT[np.bitwise_xor(a, b)].sum(axis=-1, dtype=np.int64)


class GaussianHasher:
    """Sign random projection with a standard-normal matrix (the software ideal).

    Parameters
    ----------
    k : int
        Seed length (inputs).
    n_bits : int
        Hash bits (projections).
    rng : numpy.random.Generator
    """

    def __init__(self, k: int, n_bits: int, rng: np.random.Generator):
        if int(k) < 1 or int(n_bits) < 1:
            raise ValueError(f"need k >= 1 and n_bits >= 1, got k={k}, n_bits={n_bits}")
        self.k, self.n_bits = int(k), int(n_bits)
        self.matrix = rng.standard_normal((self.k, self.n_bits))

    def project(self, seeds: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Projections (n, n_bits) of seeds (n, k)."""
        return np.asarray(seeds, dtype=np.float64) @ self.matrix

    def hash(self, seeds: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Hash bits (n, n_bits) of bool."""
        return self.project(seeds, rng) > 0


class DeviceHasher:
    """Sign random projection on a ReRAM crossbar whose randomness is its programming noise.

    Every cell of a ``k x 2 n_bits`` crossbar is programmed to one target conductance with a
    write scheme of the device model; column pair ``(2b, 2b+1)`` gives hash bit ``b`` as the sign
    of ``I[2b] - I[2b+1]`` (a comparator between neighbouring columns).

    Parameters
    ----------
    conductances : ndarray (k, 2 n_bits)
        Programmed conductances, S (see :meth:`program`).
    v_scale : float
        Row voltage per unit of normalised level, V; inputs are clipped to ``+-v_max``.
    v_max : float
        Largest row voltage, V (a read voltage that switches no cell).
    bandwidth : float
        Read-out bandwidth, Hz, for the cells' Johnson and shot noise (0: noise-free).
    noise_scale : float
        Multiplies the read noise (1: the device model's thermal and shot noise).
    temperature : float
        K.
    r_wire : float
        Wire segment resistance, ohm; above 0 the product is solved by the circuit engine.
    engine : str
        Circuit engine when ``r_wire > 0`` (see :func:`pyaimc.circuit.simulate`).
    """

    def __init__(self, conductances: np.ndarray, v_scale: float = 0.05, v_max: float = 0.2,
                 bandwidth: float = 1e8, noise_scale: float = 1.0, temperature: float = 300.0,
                 r_wire: float = 0.0, engine: str = "fast"):
        g = np.asarray(conductances, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] % 2 or not np.all(np.isfinite(g)) or np.any(g < 0):
            raise ValueError(f"conductances must be a finite, non-negative (k, 2 n_bits) array, "
                             f"got shape {g.shape}")
        if not (v_scale > 0 and v_max > 0 and bandwidth >= 0 and noise_scale >= 0):
            raise ValueError("need v_scale > 0, v_max > 0, bandwidth >= 0, noise_scale >= 0")
        self.conductances = g
        self.k, self.n_bits = g.shape[0], g.shape[1] // 2
        self.v_scale, self.v_max = float(v_scale), float(v_max)
        self.bandwidth, self.noise_scale = float(bandwidth), float(noise_scale)
        self.temperature, self.r_wire, self.engine = float(temperature), float(r_wire), engine

    @property
    def matrix(self) -> np.ndarray:
        """The projection matrix ``G+ - G-`` (k, n_bits), S."""
        return self.conductances[:, 0::2] - self.conductances[:, 1::2]

    @classmethod
    def program(cls, model, k: int, n_bits: int, rng: np.random.Generator,
                target: float | None = None, scheme: str = "one_shot", **kwargs) -> "DeviceHasher":
        """Program a fresh ``k x 2 n_bits`` crossbar of cells of ``model`` to one target.

        Parameters
        ----------
        model : DeviceModel
        k, n_bits : int
        rng : numpy.random.Generator
        target : float, optional
            Target conductance, S (default: the geometric mean of the median LRS and HRS
            conductances, the middle of the window where programming is noisiest).
        scheme : {"one_shot", "write_verify"}
            Write scheme (the one-shot write keeps the most programming noise).
        **kwargs
            Passed to the constructor.
        """
        g = program_cells(model, k * 2 * n_bits, rng, target=target, scheme=scheme)
        return cls(g.reshape(k, 2 * n_bits), **kwargs)

    def column_currents(self, seeds: np.ndarray) -> np.ndarray:
        """Noise-free column currents (n, 2 n_bits), A, for seeds (n, k)."""
        v = np.clip(np.asarray(seeds, dtype=np.float64) * self.v_scale, -self.v_max, self.v_max)
        if self.r_wire > 0:
            from pyaimc.circuit import one_r, simulate

            return np.atleast_2d(simulate(one_r(self.conductances, self.r_wire), v,
                                          engine=self.engine))
        return v @ self.conductances

    def read_noise_sigma(self, seeds: np.ndarray) -> np.ndarray:
        """Standard deviation (n, 2 n_bits) of each column current's read noise, A: the sum of
        every cell's Johnson (``4 k T G B``) and shot (``2 q |I| B``) noise, times
        ``noise_scale``."""
        v = np.clip(np.asarray(seeds, dtype=np.float64) * self.v_scale, -self.v_max, self.v_max)
        g = self.conductances
        var = self.bandwidth * (4 * K_BOLTZMANN * self.temperature * g.sum(axis=0)[None, :]
                                + 2 * Q_ELECTRON * (np.abs(v) @ g))
        return self.noise_scale * np.sqrt(var)

    def project(self, seeds: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Comparator inputs ``I[2b] - I[2b+1]`` (n, n_bits), A; with read noise when ``rng``."""
        i = self.column_currents(seeds)
        if rng is not None and self.bandwidth > 0 and self.noise_scale > 0:
            i = i + self.read_noise_sigma(seeds) * rng.standard_normal(i.shape)
        return i[:, 0::2] - i[:, 1::2]

    def hash(self, seeds: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Hash bits (n, n_bits) of bool; one read (with noise) per call when ``rng`` is given."""
        return self.project(seeds, rng) > 0


def program_cells(model, n: int, rng: np.random.Generator, target: float | None = None,
                  scheme: str = "one_shot", tolerance: float = 0.05, **scheme_params
                  ) -> np.ndarray:
    """Conductances (n,), S, of ``n`` fresh cells of ``model`` programmed to one target.

    Parameters
    ----------
    model : DeviceModel
    n : int
    rng : numpy.random.Generator
    target : float, optional
        S; default the geometric mean of the median LRS and HRS conductances.
    scheme : str
        A write scheme registered in :mod:`pyaimc.device.schemes` (``"one_shot"``,
        ``"write_verify"``, ...), aiming at the window ``target * (1 -+ tolerance)``; or
        ``"set"`` / ``"reset"``: a full RESET then (for ``"set"``) a SET pulse, leaving each cell
        in its cycle's LRS or HRS.
    tolerance : float
        Relative half-width of the target window.
    **scheme_params
        Settings of the write scheme (e.g. ``max_pulses``).
    """
    from pyaimc.device.schemes import calibrate_pulses, get_scheme, new_cells, tolerance_window

    n = int(n)
    if n < 1:
        raise ValueError(f"need at least one cell, got {n}")
    # a calibration sample in proportion to the job (the schemes' default is 20,000 cells)
    cal = calibrate_pulses(model, rng, n_cells=min(20000, max(2000, n)))
    if scheme in ("set", "reset"):
        cells = new_cells(model, n, rng)
        cells.apply_voltage(cal.u_full_reset)
        if scheme == "set":
            cells.apply_voltage(cal.u_set)
        g = 1.0 / cells.resistance
        cells.close()
        return g
    ws = get_scheme(scheme, **scheme_params)
    if hasattr(ws, "calibration") and ws.calibration is None:
        ws.calibration = cal
    ws.prepare(model, rng)
    if target is None:
        target = default_target(model, rng)
    lo, hi = tolerance_window(np.full(n, float(target)), tolerance)
    cells = new_cells(model, n, rng)
    try:
        return ws.program(cells, lo, hi, rng).g
    finally:
        cells.close()


def default_target(model, rng: np.random.Generator, n: int = 4000) -> float:
    """Geometric mean of the median LRS and HRS conductances of ``n`` sampled cycles, S."""
    f = model.sample(n, 1, rng)
    return float(1.0 / math.sqrt(np.median(f["R_LRS"]) * np.median(f["R_HRS"])))

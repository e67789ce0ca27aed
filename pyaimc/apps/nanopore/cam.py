"""Content-addressable memories of ReRAM cells: a ternary CAM searched by Hamming distance and an
analog CAM of ReRAM pairs searched by ranges.

**TCAM** (2T2R: two 1T1R cells per bit). A stored bit ``b`` programs one cell of its pair to the
LRS and the other to the HRS (``b = 1``: A in LRS, B in HRS; ``b = 0`` the other way; a
don't-care bit leaves both in the HRS). The search line pair of bit ``j`` opens A's access
transistor when the query bit is 0 and B's when it is 1, so a mismatching bit puts an LRS cell
on the match line and a matching bit an HRS cell. With the match line clamped at virtual ground
and the source lines at ``v_search`` (current-mode sensing), the match-line current is

    I = v_search * (sum_j G_HRS,j + sum_{j mismatch} (G_LRS,j - G_HRS,j)) + read noise,

a noisy Hamming distance; the sense amplifier declares a match when ``I`` is below a reference
current set for the Hamming threshold ``T`` from the *mean* conductances (the designer's
calibration): device variability and read noise blur the threshold. The same array is a
crossbar (rows: the ``2 N`` source lines with the search lines on the access transistors'
gates; columns: the match lines), which :meth:`TCAM.crossbar` hands to pyaimc's circuit engines.

**Analog CAM** (:class:`AnalogCAM`). Each cell stores a range ``[lo, hi]`` of one analog value
with two ReRAM cells (the pair of the 6T2M cell of Li et al., Nat. Commun. 2020): each bound is
set by one cell's conductance through a voltage divider, ``bound = v0 + slope * G``. A cell whose
query lies outside its range pulls the match line down; the word matches when fewer than
``max_mismatch + 1`` cells do. Programming deviations of the pair move the bounds.

Conductance statistics come from the device model's cell array (:class:`CellStatistics`):
a pool of cells is programmed once and the full index draws its cells from that pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from pyaimc.apps.nanopore.hashing import hamming, pack, program_cells
from pyaimc.device.iv import K_BOLTZMANN, Q_ELECTRON


@dataclass
class CellStatistics:
    """Pools of programmed LRS and HRS conductances (S) of a device model.

    Attributes
    ----------
    g_lrs, g_hrs : ndarray
        Conductances of cells left in the LRS and HRS by the write scheme, S.
    source : str
        What produced them.
    """

    g_lrs: np.ndarray
    g_hrs: np.ndarray
    source: str = ""

    @classmethod
    def from_model(cls, model, rng: np.random.Generator, n: int = 20000,
                   lrs: str = "set", hrs: str = "reset", source: str = "") -> "CellStatistics":
        """Program ``n`` fresh cells of ``model`` to each state.

        ``lrs``/``hrs`` name the write of :func:`pyaimc.apps.nanopore.hashing.program_cells`
        (``"set"``: full RESET then SET; ``"reset"``: full RESET; ``"write_verify"`` to the
        median LRS / HRS conductance).
        """
        f = model.sample(4000, 1, rng)
        targets = {"lrs": 1.0 / np.median(f["R_LRS"]), "hrs": 1.0 / np.median(f["R_HRS"])}
        pools = {}
        for state, scheme in (("lrs", lrs), ("hrs", hrs)):
            pools[state] = program_cells(model, n, rng, target=targets[state], scheme=scheme)
        return cls(pools["lrs"], pools["hrs"], source)

    def draw(self, shape, rng: np.random.Generator, variability: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray]:
        """LRS and HRS conductances of ``shape`` cells drawn from the pools (float32, S).

        ``variability`` scales every cell's log-deviation from the pool median (0: every cell at
        the median, 1: the model's spread, 2: twice its spread in log space).
        """
        out = []
        for pool in (self.g_lrs, self.g_hrs):
            g = rng.choice(pool, size=shape)
            med = np.median(pool)
            out.append((med * (g / med) ** float(variability)).astype(np.float32))
        return out[0], out[1]

    def moments(self, variability: float = 1.0, n: int = 200000,
                rng: np.random.Generator | None = None) -> dict:
        """Mean and standard deviation of each state's conductance at a variability (S)."""
        rng = rng or np.random.default_rng(0)
        gl, gh = self.draw(min(n, 10 * len(self.g_lrs)), rng, variability)
        return {"lrs_mean": float(gl.mean()), "lrs_std": float(gl.std()),
                "hrs_mean": float(gh.mean()), "hrs_std": float(gh.std())}


class TCAM:
    """A ReRAM ternary CAM with current-mode match-line sensing.

    Parameters
    ----------
    bits : ndarray (words, n_bits) of bool
        Stored words.
    g_lrs, g_hrs : ndarray (words, n_bits)
        Conductance of each bit's LRS cell and HRS cell, S (a don't-care bit has two HRS cells:
        its ``g_lrs`` entry is then the second HRS cell).
    threshold : int
        Hamming threshold ``T`` of the sense reference: a match is ``distance <= T`` on average.
    g_lrs_mean, g_hrs_mean : float
        Mean conductances the sense reference is set from, S.
    care : ndarray (words, n_bits) of bool, optional
        False marks a don't-care bit.
    v_search : float
        Source-line voltage, V.
    r_on : float
        On-resistance of the access transistor in series with each cell, ohm.
    bandwidth : float
        Sense bandwidth for Johnson and shot noise, Hz (0: none).
    noise_scale : float
        Multiplies the read noise.
    temperature : float
        K.
    """

    def __init__(self, bits, g_lrs, g_hrs, threshold: int, g_lrs_mean: float,
                 g_hrs_mean: float, care=None, v_search: float = 0.2, r_on: float = 0.0,
                 bandwidth: float = 1e8, noise_scale: float = 1.0, temperature: float = 300.0):
        self.bits = np.asarray(bits, dtype=bool)
        if self.bits.ndim != 2:
            raise ValueError(f"bits must be (words, n_bits), got shape {self.bits.shape}")
        w, n = self.bits.shape
        self.care = np.ones_like(self.bits) if care is None else np.asarray(care, dtype=bool)
        g_lrs = np.asarray(g_lrs, dtype=np.float32)
        g_hrs = np.asarray(g_hrs, dtype=np.float32)
        for name, a in (("g_lrs", g_lrs), ("g_hrs", g_hrs), ("care", self.care)):
            if a.shape != (w, n):
                raise ValueError(f"{name} has shape {a.shape}, expected {(w, n)}")
        if not (0 <= int(threshold) <= n):
            raise ValueError(f"threshold must be in 0..{n}, got {threshold}")
        if not (g_lrs_mean > g_hrs_mean > 0):
            raise ValueError(f"the sense reference needs mean LRS > mean HRS conductance > 0, "
                             f"got {g_lrs_mean:g} S and {g_hrs_mean:g} S (variability too high "
                             f"for this device?)")
        if not (v_search > 0 and r_on >= 0):
            raise ValueError("need v_search > 0 V and r_on >= 0 ohm")
        self.n_bits, self.threshold = n, int(threshold)
        self.v_search, self.r_on = float(v_search), float(r_on)
        self.bandwidth, self.noise_scale, self.temperature = (float(bandwidth),
                                                              float(noise_scale),
                                                              float(temperature))
        self.g_lrs, self.g_hrs = g_lrs, g_hrs
        eff = self.effective
        self.g_sel_match = eff(g_hrs)
        # a don't-care bit's "LRS" entry is its second HRS cell (see ``build``)
        self.g_sel_mismatch = eff(g_lrs)
        self.g_match_sum = self.g_sel_match.sum(axis=1, dtype=np.float64)
        self.delta = (self.g_sel_mismatch - self.g_sel_match).astype(np.float32)
        self.codes = pack(self.bits)
        self.care_codes = pack(self.care)
        gl, gh = eff(g_lrs_mean), eff(g_hrs_mean)
        self.i_ref = self.v_search * (n * gh + (self.threshold + 0.5) * (gl - gh))
        self.unit = self.v_search * (gl - gh)  # current of one mismatch, A

    def effective(self, g):
        """Conductance of a cell in series with its access transistor's on-resistance, S."""
        g = np.asarray(g, dtype=np.float64)
        return (g / (1.0 + g * self.r_on)).astype(np.float32) if np.ndim(g) else float(
            g / (1.0 + g * self.r_on))

    @classmethod
    def build(cls, bits, stats: CellStatistics, threshold: int, rng: np.random.Generator,
              variability: float = 1.0, care=None, reference: str = "median",
              **kwargs) -> "TCAM":
        """A TCAM storing ``bits`` with cells drawn from ``stats`` at a variability.

        ``reference``: ``"mean"`` sets the sense reference from the pools' mean conductances,
        ``"median"`` calibrates it on replicas (:meth:`calibrate_reference`).
        """
        if reference not in ("mean", "median"):
            raise ValueError(f"reference must be 'mean' or 'median', got {reference!r}")
        bits = np.asarray(bits, dtype=bool)
        g_lrs, g_hrs = stats.draw(bits.shape, rng, variability)
        if care is not None:
            care = np.asarray(care, dtype=bool)
            g_lrs = np.where(care, g_lrs, stats.draw(bits.shape, rng, variability)[1])
        m = stats.moments(variability)
        cam = cls(bits, g_lrs, g_hrs, threshold, m["lrs_mean"], m["hrs_mean"], care=care,
                  **kwargs)
        if reference == "median":
            cam.calibrate_reference(rng)
        return cam

    # -------------------------------------------------------------- behaviour
    def _noise(self, i: np.ndarray, rng) -> np.ndarray:
        if rng is None or self.bandwidth <= 0 or self.noise_scale <= 0:
            return i
        var = self.bandwidth * (4 * K_BOLTZMANN * self.temperature / self.v_search
                                + 2 * Q_ELECTRON) * np.abs(i)
        return i + self.noise_scale * np.sqrt(var) * rng.standard_normal(i.shape)

    def ml_currents(self, query_bits: np.ndarray, rng: np.random.Generator | None = None
                    ) -> np.ndarray:
        """Match-line currents (queries, words), A, of every word (dense; small arrays)."""
        q = np.atleast_2d(np.asarray(query_bits, dtype=bool))
        mism = (q[:, None, :] != self.bits[None, :, :])
        i = self.v_search * (self.g_match_sum[None, :]
                             + np.einsum("qwn,wn->qw", mism, self.delta.astype(np.float64)))
        return self._noise(i, rng)

    def pair_currents(self, query_codes: np.ndarray, q_idx: np.ndarray, w_idx: np.ndarray,
                      rng: np.random.Generator | None = None) -> np.ndarray:
        """Match-line currents (A) of the (query, word) pairs ``(q_idx, w_idx)``; queries packed.

        Only the pairs asked for are computed (a compiled loop over their mismatching bits), so
        a search of a large index evaluates the words its Hamming pre-search found nearby.
        """
        q_idx = np.ascontiguousarray(q_idx, dtype=np.int64)
        w_idx = np.ascontiguousarray(w_idx, dtype=np.int64)
        acc = np.empty(len(q_idx))
        _mismatch_sums(np.ascontiguousarray(query_codes, dtype=np.uint8), self.codes, q_idx,
                       w_idx, self.delta, acc)
        return self._noise(self.v_search * (self.g_match_sum[w_idx] + acc), rng)

    def match(self, currents: np.ndarray) -> np.ndarray:
        """Sense amplifier: True where a match-line current is below the reference."""
        return np.asarray(currents) < self.i_ref

    def _draw_currents(self, distance: int, rng: np.random.Generator, n: int) -> np.ndarray:
        """Noise-free match-line currents (A) of ``n`` words ``distance`` bits from the query,
        their cells drawn from this array's own cells."""
        gm = self.g_sel_match.ravel()
        gx = self.g_sel_mismatch.ravel()
        i = np.zeros(n)
        for _ in range(self.n_bits - int(distance)):
            i += gm[rng.integers(0, gm.size, n)]
        for _ in range(int(distance)):
            i += gx[rng.integers(0, gx.size, n)]
        return self.v_search * i

    def calibrate_reference(self, rng: np.random.Generator, n: int = 20000) -> float:
        """Set the sense reference midway between the *median* match-line currents of words
        ``T`` and ``T + 1`` bits away (a replica calibration), and return it (A).

        With a heavy-tailed HRS the mean-based reference sits too high: the typical (median)
        word then matches several bits beyond ``T``.
        """
        lo = np.median(self._draw_currents(self.threshold, rng, n))
        hi = np.median(self._draw_currents(self.threshold + 1, rng, n))
        self.i_ref = float(0.5 * (lo + hi))
        return self.i_ref

    def match_probability(self, distance: int, rng: np.random.Generator,
                          n: int = 100000) -> float:
        """Monte-Carlo chance that a word ``distance`` bits from the query matches: cells drawn
        from this array's own cells, read noise included."""
        i = self._noise(self._draw_currents(distance, rng, n), rng)
        return float(np.mean(self.match(i)))

    def candidate_radius(self, rng: np.random.Generator, p_min: float = 1e-5,
                         n: int = 100000) -> int:
        """Hamming distance beyond which a word matches with chance below ``p_min``.

        Searches compute exact match-line currents only for words within it (found by a fast
        Hamming search); farther words are taken as mismatches. The chance is estimated by
        :meth:`match_probability` (``n`` draws, so ``p_min`` should exceed ``1 / n``): the
        radius is the first distance above the threshold where no draw matched and the estimate
        is below ``p_min``, less one.
        """
        for d in range(self.threshold + 1, self.n_bits + 1):
            if self.match_probability(d, rng, n) < p_min:
                return d - 1
        return self.n_bits

    # -------------------------------------------------------------- circuit
    def conductances(self) -> np.ndarray:
        """Cell conductances as a crossbar (2 n_bits, words), S: row ``2j`` is cell A of bit
        ``j`` (selected by query bit 0), row ``2j+1`` cell B (query bit 1)."""
        # A is the LRS cell when the stored bit is 1 (a don't-care bit's "LRS" entry is its
        # second HRS cell, so the same rule holds for it)
        g_l, g_h = self.g_lrs, self.g_hrs
        g = np.empty((2 * self.n_bits, self.bits.shape[0]))
        g[0::2] = np.where(self.bits, g_l, g_h).T
        g[1::2] = np.where(self.bits, g_h, g_l).T
        return g

    def search_voltages(self, query_bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row (source-line) voltages and gate (search-line) voltages for one query."""
        q = np.asarray(query_bits, dtype=bool)
        gates = np.empty(2 * self.n_bits, dtype=bool)
        gates[0::2] = ~q
        gates[1::2] = q
        return np.full(2 * self.n_bits, self.v_search), gates

    def crossbar(self, query_bits: np.ndarray, r_wire: float = 0.0, access=None,
                 v_on: float = 1.8):
        """The array as a :class:`pyaimc.circuit.Crossbar` for one query.

        Every source line is driven at ``v_search``; the search lines are the gates of a 1T1R
        access transistor per cell (``v_on`` on the selected cell of each pair, 0 V on the
        other); the match lines are the columns, read into virtual ground.

        Parameters
        ----------
        query_bits : ndarray (n_bits,) of bool
        r_wire : float
            Wire segment resistance, ohm.
        access : AccessTransistor, optional
            Its ``v_gate`` is replaced by the search-line voltages (default: pyaimc's generic
            level-1 NMOS).
        """
        from dataclasses import replace

        from pyaimc.circuit import AccessTransistor, LinearCells, Crossbar

        _, gates = self.search_voltages(query_bits)
        access = access or AccessTransistor()
        access = replace(access, v_gate=np.where(gates, v_on, 0.0))
        return Crossbar(LinearCells(self.conductances()), r_row=r_wire, r_col=r_wire,
                        access=access)

    def circuit_ml_currents(self, query_bits: np.ndarray, r_wire: float = 0.0,
                            engine: str = "fast", access=None, v_on: float = 1.8
                            ) -> np.ndarray:
        """Noise-free match-line currents (queries, words), A, solved by a circuit engine."""
        from pyaimc.circuit import simulate

        q = np.atleast_2d(np.asarray(query_bits, dtype=bool))
        out = np.empty((q.shape[0], self.bits.shape[0]))
        for k, qb in enumerate(q):
            xb = self.crossbar(qb, r_wire=r_wire, access=access, v_on=v_on)
            v, _ = self.search_voltages(qb)
            out[k] = simulate(xb, v, engine=engine)
        return out


@numba.njit(cache=True)
def _mismatch_sums(qcodes, wcodes, q_idx, w_idx, delta, out):
    """``out[p] = sum of delta[w, j]`` over the bits ``j`` where query ``q`` and word ``w``
    differ, for each pair ``p = (q_idx[p], w_idx[p])`` (codes packed most significant bit
    first)."""
    n_bytes = qcodes.shape[1]
    n_bits = delta.shape[1]
    for p in range(q_idx.shape[0]):
        q = q_idx[p]
        w = w_idx[p]
        acc = 0.0
        for b in range(n_bytes):
            x = np.int64(qcodes[q, b] ^ wcodes[w, b])
            if x == 0:
                continue
            top = min(8, n_bits - 8 * b)
            for t in range(top):  # branch-free: the bits are unpredictable
                acc += delta[w, 8 * b + t] * ((x >> (7 - t)) & 1)
        out[p] = acc


def on_resistance(access, v_on: float = 1.8, v_source: float = 0.0) -> float:
    """Small-signal on-resistance (ohm) of a level-1 access transistor at ``vds -> 0``."""
    vgst = v_on - v_source - access.vto
    if vgst <= 0:
        raise ValueError(f"access transistor is off at v_on = {v_on} V")
    return 1.0 / (access.beta * vgst)


def search_candidates(index_codes: np.ndarray, query_codes: np.ndarray, radius: int,
                      chunk: int = 256):
    """Pairs (query, word) within Hamming distance ``radius`` (inclusive).

    faiss's binary flat index when it is installed (``pip install 'pyaimc[nanopore]'``), else
    the same exact search in numpy (slower), in chunks of ``chunk`` queries.

    Returns
    -------
    q_idx, w_idx : ndarray of int64
    dist : ndarray of int
    """
    index_codes = np.ascontiguousarray(index_codes, dtype=np.uint8)
    query_codes = np.ascontiguousarray(query_codes, dtype=np.uint8)
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        ix = faiss.IndexBinaryFlat(index_codes.shape[1] * 8)
        ix.add(index_codes)
        lims, d, w = ix.range_search(query_codes, int(radius) + 1)
        q = np.repeat(np.arange(len(query_codes)), np.diff(lims.astype(np.int64)))
        return q.astype(np.int64), w.astype(np.int64), d.astype(np.int64)
    qs, ws, ds = [], [], []
    for a in range(0, len(query_codes), chunk):
        d = hamming(query_codes[a:a + chunk, None, :], index_codes[None, :, :])
        q, w = np.nonzero(d <= radius)
        qs.append(q + a)
        ws.append(w)
        ds.append(d[q, w])
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)  # noqa: E731
    return cat(qs), cat(ws), cat(ds)


class AnalogCAM:
    """An analog CAM: each cell stores a range with a pair of ReRAM cells.

    Parameters
    ----------
    lo, hi : ndarray (words, k)
        Intended bounds of each cell (the value's unit: normalised level).
    stats : CellStatistics
        Only the relative spread of programmed conductances is used: a bound written at
        conductance ``G`` lands at ``G (1 + e)`` with ``e`` drawn from the write-verify pool's
        relative deviations; a bound's error is ``slope * G * e``.
    g_window : tuple of float
        Conductances (S) of the lowest and highest bound value.
    value_range : tuple of float
        The bound values those conductances encode (a linear divider: ``bound = v0 + slope G``).
    max_mismatch : int
        Cells that may miss while the word still matches (the sense threshold).
    read_sd : float
        Standard deviation of the read noise on each comparison, in value units.
    variability : float
        Scales the programming deviations.
    rng : numpy.random.Generator
    """

    def __init__(self, lo, hi, stats: CellStatistics, rng: np.random.Generator,
                 g_window=(5e-6, 1e-4), value_range=(-4.0, 4.0), max_mismatch: int = 0,
                 read_sd: float = 0.0, variability: float = 1.0):
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        if lo.shape != hi.shape or lo.ndim != 2 or np.any(hi < lo):
            raise ValueError("lo and hi must be (words, k) arrays with hi >= lo")
        g0, g1 = g_window
        v0, v1 = value_range
        if not (0 < g0 < g1 and v0 < v1):
            raise ValueError("need 0 < g_window[0] < g_window[1] and an increasing value_range")
        slope = (v1 - v0) / (g1 - g0)
        rel = stats.g_lrs / np.median(stats.g_lrs) - 1.0  # relative write deviations
        self.slope, self.v0, self.g0 = slope, v0, g0
        out = []
        for b in (lo, hi):
            g = g0 + (np.clip(b, v0, v1) - v0) / slope
            e = rng.choice(rel, size=b.shape) * float(variability)
            out.append(v0 + slope * (g * (1.0 + e) - g0))
        self.lo, self.hi = out
        self.max_mismatch = int(max_mismatch)
        self.read_sd = float(read_sd)

    def mismatches(self, queries: np.ndarray, rng: np.random.Generator | None = None
                   ) -> np.ndarray:
        """Cells out of range, (queries, words)."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float64))[:, None, :]
        if rng is not None and self.read_sd > 0:
            q = q + self.read_sd * rng.standard_normal((q.shape[0], self.lo.shape[0],
                                                        self.lo.shape[1]))
        return ((q < self.lo[None]) | (q > self.hi[None])).sum(axis=2)

    def match(self, queries: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """True where a word matches, (queries, words)."""
        return self.mismatches(queries, rng) <= self.max_mismatch

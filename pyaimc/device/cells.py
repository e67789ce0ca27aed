"""Pulse-level simulation of many cells: ``CellArray.apply_voltage(U)`` and ``.read(U)``.

Vectorised over millions of cells. The cells are split into contiguous blocks, one per thread,
each with its own random generator spawned from the caller's: numpy releases the GIL in the
array loops, so the blocks run in parallel. Same seed and same ``n_threads`` give the same result.

Per cell the state is the I-V state ``r`` (see :mod:`pyaimc.device.iv`), a mode (HRS, LRS or
partly RESET), the RESET threshold (the cycle's ``U_RESET`` in the LRS, the highest voltage
reached while partly RESET) and the features of the current cycle. A new cycle's features are
drawn from the VAR(p) at the first RESET step of each cycle.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from pyaimc.device.iv import K_BOLTZMANN, Q_ELECTRON, adc_quantize

HRS, LRS, RESETTING = 0, 1, 2


class _Tables:
    """Model constants in the array dtype, shared by all blocks."""

    def __init__(self, model, dtype):
        self.dtype = dtype
        names = model.feature_names_
        self.names = names
        self.iv = model.iv_
        var = model.var_
        self.p, self.f = var.order, var.n_features
        # coefficient matrix acting on the stacked history slots; permuted per ring position
        self.coefs = var.coefs.astype(dtype)
        self.chol = var.noise_chol.astype(dtype)
        self.marg = []
        for m in model.marginals_:
            slope = np.diff(m.u_knots) / np.diff(m.x_knots)
            icpt = m.u_knots[:-1] - slope * m.x_knots[:-1]
            self.marg.append((dtype(m.x_knots[0]), dtype(1.0 / (m.x_knots[1] - m.x_knots[0])),
                              len(m.x_knots) - 2, slope.astype(dtype), icpt.astype(dtype)))
        self.idx = {n: k for k, n in enumerate(names)}
        iv = self.iv
        g_l, g_h = iv.g_lrs, iv.g_hrs
        # r = a - b / R  (state from read resistance)
        self.r_a, self.r_b = g_l / (g_l - g_h), 1.0 / (g_l - g_h)
        # G = g_l - r * g_span  (the read conductance of state r)
        self.g_l, self.g_span = g_l, g_l - g_h
        self.u_full = iv.u_full_reset
        self.ln10 = math.log(10.0)

    def ring_matrix(self, ptr, innovations: bool = False):
        """(F, p*F) matrix acting on the history ring (slots 0..p-1, newest at ``ptr``); with
        ``innovations`` (F, (p+1)*F), also the Cholesky factor on slot p (the innovations)."""
        p, f = self.p, self.f
        out = np.zeros((f, (p + innovations) * f), dtype=self.dtype)
        for j in range(p):  # slot of the value j + 1 cycles back
            s = (ptr - j) % p
            out[:, s * f:(s + 1) * f] = self.coefs[j]
        if innovations:
            out[:, p * f:] = self.chol
        return out


class _Block:
    """A contiguous block of cells with its own generator."""

    def __init__(self, t: _Tables, mu, sigma, rng, model):
        n = mu.shape[0]
        dt = t.dtype
        self.t, self.n, self.rng = t, n, rng
        self.mu = np.ascontiguousarray(mu.T.astype(dt))       # (F, n)
        self.sigma = np.ascontiguousarray(sigma.T.astype(dt))
        # history ring (slots 0..p-1) and, in slot p, the innovations of the next step: one
        # matrix product gives the next values, the generator fills slot p in place
        self.hist = np.zeros((t.p + 1, t.f, n), dtype=dt)
        self._x = np.empty((t.f, n), dtype=dt)
        if t.p:
            # stationary start, in chunks to keep the float64 temporaries small
            for a in range(0, n, 1 << 16):
                b = min(n, a + (1 << 16))
                h0 = model.var_.initial_history(b - a, rng, np.float64)  # newest first
                for j in range(t.p):
                    self.hist[(0 - j) % t.p][:, a:b] = h0[:, j, :].T
        self.ptr = 0
        self.r = np.empty(n, dt)
        self.r_hrs = np.empty(n, dt)
        self.r_lrs = np.empty(n, dt)
        self.u_set = np.empty(n, dt)
        self.u_reset = np.empty(n, dt)
        self.threshold = np.full(n, np.inf, dt)
        self.u_on = np.zeros(n, dt)
        self.r_on = np.zeros(n, dt)
        self.mode = np.full(n, HRS, np.int8)
        self.cycle = np.zeros(n, np.int64)
        self._draw(None)
        self.cycle[:] = 0
        self.r[:] = self.r_hrs

    # ------------------------------------------------------------ features
    def _to_data(self, k, x):
        x0, inv_dx, kmax, slope, icpt = self.t.marg[k]
        pos = (x - x0) * inv_dx
        np.clip(pos, 0, kmax, out=pos)
        seg = pos.astype(np.int32)
        out = slope.take(seg)
        out *= x
        out += icpt.take(seg)
        return out

    def _features_from(self, x, mu, sigma, sel=None):
        """(r_hrs, u_set, r_lrs, u_reset) from VAR values x (F, m) of the selected cells."""
        t = self.t
        res = {}
        for name, k in t.idx.items():
            v = self._to_data(k, x[k])
            v *= sigma[k]
            v += mu[k]
            if name.startswith("R_"):
                v *= -t.ln10
                np.exp(v, out=v)          # 1 / R
                v *= -t.r_b
                v += t.r_a                # r = a - b / R
            res[name] = v
        iv = t.iv
        m = x.shape[1]
        r_hrs = res["R_HRS"]
        r_lrs = res["R_LRS"]
        u_set = res.get("U_SET", np.full(m, iv.default_u_set, t.dtype))
        u_reset = res.get("U_RESET", np.full(m, iv.default_u_reset, t.dtype))
        return r_hrs, u_set, r_lrs, u_reset

    def _var_step(self, cols, keep=None):
        """Next VAR values (F, m) and the history update.

        ``cols`` None: every cell steps (ring rotation, no copies). ``cols`` an index array: only
        those cells step (their histories are shifted). ``keep`` an index array (with ``cols``
        None): every cell is computed and the ring rotated, then the ``keep`` cells' histories
        are restored: cheap when almost all cells step.
        """
        t = self.t
        p, f = t.p, t.f
        if cols is not None:
            e = self.rng.standard_normal((f, len(cols)), dtype=t.dtype)
            x = t.chol @ e
            if p:
                ring = self.hist[:p].reshape(p * f, self.n)
                x += t.ring_matrix(self.ptr) @ ring[:, cols]
                for j in range(p - 1, 0, -1):  # shift only these cells' histories
                    self.hist[(self.ptr - j) % p][:, cols] = self.hist[(self.ptr - j + 1) % p][:, cols]
                self.hist[self.ptr][:, cols] = x
            return x
        self.rng.standard_normal(out=self.hist[p], dtype=t.dtype)
        x = self._x
        np.matmul(t.ring_matrix(self.ptr, innovations=True),
                  self.hist.reshape((p + 1) * f, self.n), out=x)
        if p == 0:
            return x
        new = (self.ptr + 1) % p
        if keep is not None and len(keep):
            oldest = self.hist[new][:, keep]
            for j in range(p - 1):  # new slot j takes the old slot j (= new slot j + 1)
                self.hist[(new - j) % p][:, keep] = self.hist[(new - j - 1) % p][:, keep]
            self.hist[(new - p + 1) % p][:, keep] = oldest
            mask = np.ones(self.n, dtype=bool)
            mask[keep] = False
            np.copyto(self.hist[new], x, where=mask)
        else:
            self.hist[new] = x
        self.ptr = new
        return x

    def _draw(self, mask):
        """Draw a new cycle's features for cells in ``mask`` (None: all)."""
        targets = (self.r_hrs, self.u_set, self.r_lrs, self.u_reset)
        if mask is None or 2 * np.count_nonzero(mask) > self.n:
            keep = None if mask is None else np.flatnonzero(~mask)
            x = self._var_step(None, keep)
            feats = self._features_from(x, self.mu, self.sigma)
            for dst, src in zip(targets, feats):
                np.copyto(dst, src, where=True if mask is None else mask)
            self.cycle += 1 if mask is None else mask
            return
        cols = np.flatnonzero(mask)
        x = self._var_step(cols)
        feats = self._features_from(x, self.mu[:, cols], self.sigma[:, cols])
        for dst, src in zip(targets, feats):
            dst[cols] = src
        self.cycle[cols] += 1

    # ------------------------------------------------------------ switching
    def apply(self, u):
        t = self.t
        setting = (self.mode != LRS) & (u <= self.u_set)
        if setting.any():
            np.copyto(self.r, self.r_lrs, where=setting)
            np.copyto(self.threshold, self.u_reset, where=setting)
            np.copyto(self.mode, LRS, where=setting)
        resetting = u > self.threshold
        if not resetting.any():
            return
        first = resetting & (self.mode == LRS)
        n_first = int(np.count_nonzero(first))
        if n_first:
            np.copyto(self.u_on, self.threshold, where=first)
            np.copyto(self.r_on, self.r, where=first)
            self._draw(None if n_first == self.n else first)
            np.copyto(self.mode, RESETTING, where=first)
        full = resetting & (u >= t.u_full)
        if full.any():
            np.copyto(self.r, self.r_hrs, where=full)
            np.copyto(self.threshold, np.inf, where=full)
            np.copyto(self.mode, HRS, where=full)
        partial = resetting & ~full
        if partial.any():
            cols = np.flatnonzero(partial)
            uu = u[cols] if np.ndim(u) else np.full(len(cols), u, self.t.dtype)
            self.r[cols] = t.iv.reset_state(uu, self.u_on[cols], self.r_on[cols],
                                            self.r_hrs[cols]).astype(self.t.dtype)
            self.threshold[cols] = uu
            self.mode[cols] = RESETTING

    def pulse(self, pm, idx, v_bl, v_sl, v_wl, width, energy):
        """One programming pulse for the block's cells ``idx`` (local, sorted) through the pulse
        model ``pm`` (see :meth:`CellArray.apply_pulse`); voltages and widths are per cell of
        ``idx`` or scalars, the energy of each pulse goes to ``energy`` (len(idx),)."""
        t = self.t
        if getattr(self, "_latent", None) is None:
            # drawn at the first pulse, so cells that are never pulsed keep their streams
            self._latent = self.rng.standard_normal((2, self.n))
        m = len(idx)
        v_bl, v_sl, v_wl, width = (np.broadcast_to(v, (m,)) for v in (v_bl, v_sl, v_wl, width))
        on = (v_bl > 0) | (v_sl > 0)
        energy[:] = 0.0
        if not on.all():
            sel = np.flatnonzero(on)
            idx, v_bl, v_sl, v_wl, width = idx[sel], v_bl[sel], v_sl[sel], v_wl[sel], width[sel]
        else:
            sel = slice(None)
        if not len(idx):
            return
        g = t.g_l - self.r[idx].astype(np.float64) * t.g_span
        g_after = pm.respond(g, v_bl, v_sl, v_wl, width, self._latent[0, idx],
                             self._latent[1, idx], self.rng, dtype=np.float32, true_state=True)
        energy[sel] = pm.energy(g, g_after, v_bl, v_sl, v_wl, width)
        self.r[idx] = ((t.g_l - g_after) / t.g_span).astype(t.dtype)
        # to the cycling model the cell is SET at its present conductance: a RESET voltage
        # starts a new cycle from here
        self.mode[idx] = LRS
        self.threshold[idx] = self.u_reset[idx]

    def read(self, u, out, bandwidth):
        t = self.t
        iv = t.iv
        if np.ndim(u) == 0:
            lo = t.dtype(iv.i_lrs(u))
            dd = t.dtype(iv.i_hrs(u)) - lo
            np.multiply(self.r, dd, out=out)
            out += lo
        else:
            out[:] = iv.current(u, self.r)
        if bandwidth:
            uabs = np.abs(u)
            c = bandwidth * (4 * K_BOLTZMANN * iv.temperature / np.where(uabs > 0, uabs, np.inf)
                             + 2 * Q_ELECTRON)
            sig = np.abs(out)
            sig *= c if np.ndim(c) == 0 else c.astype(t.dtype)
            np.sqrt(sig, out=sig)
            sig *= self.rng.standard_normal(self.n, dtype=t.dtype)
            out += sig


class _TableBlock(_Block):
    """A block whose cycles are replayed from a table instead of drawn from the VAR."""

    def __init__(self, t: _Tables, table: dict, rng):
        n = len(next(iter(table.values())))
        dt = t.dtype
        self.t, self.n, self.rng = t, n, rng
        iv = t.iv
        self.tab = [np.asarray(iv.state_from_resistance(table["R_HRS"]), dt),
                    np.asarray(table.get("U_SET", np.full_like(table["R_HRS"], iv.default_u_set)), dt),
                    np.asarray(iv.state_from_resistance(table["R_LRS"]), dt),
                    np.asarray(table.get("U_RESET", np.full_like(table["R_HRS"],
                                                                 iv.default_u_reset)), dt)]
        self.n_table = self.tab[0].shape[1]
        self.r, self.threshold = np.empty(n, dt), np.full(n, np.inf, dt)
        self.u_on, self.r_on = np.zeros(n, dt), np.zeros(n, dt)
        self.mode = np.full(n, HRS, np.int8)
        self.cycle = np.zeros(n, np.int64)
        self.r_hrs, self.u_set, self.r_lrs, self.u_reset = (c[:, 0].copy() for c in self.tab)
        self.r[:] = self.r_hrs

    def _draw(self, mask):
        # the next cycle's row of the table; the last row repeats past the end
        self.cycle += 1 if mask is None else mask
        col = np.minimum(self.cycle, self.n_table - 1)
        rows = np.arange(self.n)
        for dst, src in zip((self.r_hrs, self.u_set, self.r_lrs, self.u_reset), self.tab):
            np.copyto(dst, src[rows, col], where=True if mask is None else mask)


class CellArray:
    """Many independent cells of a fitted :class:`~pyaimc.device.model.DeviceModel`.

    Parameters
    ----------
    model : DeviceModel
        Fitted model (features, VAR, mixture, I-V).
    n_cells : int
    rng : numpy.random.Generator
        Source of all randomness (device draws, cycles, read noise).
    dtype : numpy dtype
        float32 (default, fast) or float64 (reference simulations).
    n_threads : int, optional
        Blocks stepped in parallel; default ``min(os.cpu_count(), 8)``, and 1 below 65,536
        cells. Results depend on it (each block has its own generator).
    table : dict of name -> ndarray (n_cells, n_cycles), optional
        Replay these cycles (``R_HRS``, ``U_SET``, ``R_LRS``, ``U_RESET`` in ohm and V, as
        :meth:`DeviceModel.sample` gives them) instead of drawing them: the same draws the
        Verilog-A and ngspice versions replay. Past the last cycle the last row repeats.

    Notes
    -----
    Cells start in the HRS of their first cycle. ``apply_voltage(U)`` switches cells whose SET or
    RESET threshold ``U`` crosses; ``read(U)`` returns currents without switching.
    """

    def __init__(self, model, n_cells: int, rng: np.random.Generator, dtype=np.float32,
                 n_threads: int | None = None, table: dict | None = None):
        model._check_fitted()
        if "R_HRS" not in model.feature_names_ or "R_LRS" not in model.feature_names_:
            raise ValueError("a cell array needs a model with R_HRS and R_LRS features, got "
                             f"{model.feature_names_}")
        n_cells = int(n_cells)
        if n_cells < 1:
            raise ValueError(f"n_cells must be >= 1, got {n_cells}")
        self.model = model
        self.n = n_cells
        self.dtype = np.dtype(dtype).type
        if n_threads is None:
            n_threads = 1 if n_cells < 65536 else min(os.cpu_count() or 1, 8)
        n_threads = max(1, min(int(n_threads), n_cells))
        self.tables = _Tables(model, self.dtype)
        bounds = np.linspace(0, n_cells, n_threads + 1).astype(int)
        self._slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        rngs = rng.spawn(n_threads)
        if table is not None:
            table = {k: np.atleast_2d(np.asarray(v, dtype=np.float64)) for k, v in table.items()}
            for k, v in table.items():
                if v.shape[0] != n_cells or v.shape != table["R_HRS"].shape:
                    raise ValueError(f"table {k!r} has shape {v.shape}; expected ({n_cells}, "
                                     f"n_cycles) like R_HRS {table['R_HRS'].shape}")
            self.component = np.full(n_cells, -1)
            self._blocks = [_TableBlock(self.tables, {k: v[s] for k, v in table.items()}, g)
                            for s, g in zip(self._slices, rngs)]
        else:
            mu, sigma, self.component = model.sample_devices(n_cells, rng)
            self._blocks = [_Block(self.tables, mu[s], sigma[s], g, model)
                            for s, g in zip(self._slices, rngs)]
        self._pool = ThreadPoolExecutor(n_threads) if n_threads > 1 else None
        self._energy = None

    def __len__(self) -> int:
        return self.n

    def _run(self, fn, *per_block, blas: bool = False):
        if self._pool is None:
            return [fn(b, *(a[0] for a in per_block)) for b in self._blocks]
        if not blas:
            return list(self._pool.map(fn, self._blocks, *per_block))
        # the blocks already use every core: BLAS threads on top of them oversubscribe the
        # machine (measured: 9.8 instead of 7.7 M cycles/s on 2 cores with one BLAS thread)
        with threadpool_limits(limits=1, user_api="blas"):
            return list(self._pool.map(fn, self._blocks, *per_block))

    def _split(self, u):
        if np.ndim(u) == 0:
            return [self.dtype(u)] * len(self._blocks)
        u = np.asarray(u, dtype=self.dtype)
        if u.shape != (self.n,):
            raise ValueError(f"voltage must be a scalar or shape ({self.n},), got {u.shape}")
        return [u[s] for s in self._slices]

    def apply_voltage(self, u) -> "CellArray":
        """Apply voltage ``u`` (V; scalar or one per cell) and switch cells accordingly.

        SET when ``u <= U_SET`` (abrupt), RESET above the threshold (gradual up to the full-RESET
        voltage). Returns self.
        """
        self._run(lambda b, v: b.apply(v), self._split(u), blas=True)
        return self

    def apply_pulse(self, v_bl, v_sl, v_wl, width, index=None, energy_out=None
                    ) -> "CellArray":
        """Apply one programming pulse to every cell with the model's pulse response.

        Parameters
        ----------
        v_bl, v_sl, v_wl : float or array, V
            Bit-line, source-line and word-line (gate) voltages, one per cell (or per cell of
            ``index``) or scalars. A cell with ``v_bl > 0`` gets a SET, with ``v_sl > 0`` a
            RESET, with neither nothing; both > 0 is an error.
        width : float or array, s
        index : array of int, optional
            Pulse only these cells (increasing, no repeats); the others are left alone. Loops
            that pulse fewer and fewer cells (write-verify) stay fast with it.
        energy_out : array, optional
            Receives the energy (J) of each cell's pulse (shape of the cells pulsed: n_cells,
            or len(index)); otherwise it is :attr:`pulse_energy`.

        Returns
        -------
        self

        Notes
        -----
        Needs a model fitted with pulse records (``DeviceModel.pulse_``). Each cell draws its
        device latents at its first pulse. The cells' state is their true conductance (the
        pulse model's transitions with the read noise taken out); :meth:`read_conductance`
        reads it with the measured read noise. Afterwards the cycling model sees the cell as SET
        at its present conductance (a RESET voltage in :meth:`apply_voltage` starts a new
        cycle).
        """
        pm = getattr(self.model, "pulse_", None)
        if pm is None:
            raise ValueError("this device model has no pulse part; fit it with pulse records "
                             "(pyaimc fit CYCLING.csv --pulses FILE... -o MODEL.json)")
        if index is None:
            m = self.n
        else:
            index = np.asarray(index, dtype=np.int64)
            m = len(index)
            if m and (index[0] < 0 or index[-1] >= self.n or np.any(np.diff(index) <= 0)):
                raise ValueError(f"index must increase strictly within 0..{self.n - 1}")
        args = []
        for name, v in (("v_bl", v_bl), ("v_sl", v_sl), ("v_wl", v_wl), ("width", width)):
            a = np.asarray(v, dtype=np.float64)
            if a.ndim and a.shape != (m,):
                raise ValueError(f"{name} must be a scalar or shape ({m},), got {a.shape}")
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"{name} must be finite and >= 0")
            args.append(a)
        if np.any((args[0] > 0) & (args[1] > 0)):
            raise ValueError("v_bl and v_sl are both > 0 for some cells; a SET drives the bit "
                             "line, a RESET the source line")
        out = energy_out
        if out is None:
            if self._energy is None:
                self._energy = np.zeros(self.n)
            if index is None:
                out = self._energy
            else:
                self._energy[:] = 0.0
                out = np.zeros(m)
        if out.shape != (m,):
            raise ValueError(f"energy_out must have shape ({m},), got {out.shape}")
        if index is None:
            pos = [(s.start, s.stop) for s in self._slices]
            local = [np.arange(b - a) for a, b in pos]
        else:
            cuts = np.searchsorted(index, [s.start for s in self._slices] + [self.n])
            pos = list(zip(cuts[:-1], cuts[1:]))
            local = [index[a:b] - s.start for (a, b), s in zip(pos, self._slices)]
        parts = [[a[i:j] if a.ndim else a for i, j in pos] for a in args]
        views = [out[i:j] for i, j in pos]
        self._run(lambda b, ix, vb, vs, vw, w, e: b.pulse(pm, ix, vb, vs, vw, w, e), local,
                  *parts, views, blas=True)
        if energy_out is None and index is not None:
            self._energy[index] = out
        return self

    @property
    def pulse_energy(self) -> np.ndarray:
        """Energy (J) of each cell's last :meth:`apply_pulse` pulse (0 where none)."""
        return np.zeros(self.n) if self._energy is None else self._energy.copy()

    @property
    def conductance(self) -> np.ndarray:
        """Read conductance of every cell at the read voltage (noise-free), S."""
        return 1.0 / self.resistance

    def read_conductance(self, rng: np.random.Generator | None = None,
                         noise: bool = True, index=None) -> np.ndarray:
        """Conductance (S) as a verify read sees it: with the read-to-read noise of the pulse
        data (:class:`~pyaimc.device.pulse.ReadNoise`) when the model has it, ``noise`` is
        True and ``rng`` is given; noise-free otherwise. ``index`` (increasing) reads only
        those cells."""
        if index is None:
            g = self.conductance
        else:
            index = np.asarray(index, dtype=np.int64)
            cuts = np.searchsorted(index, [s.start for s in self._slices] + [self.n])
            r = np.concatenate([b.r[index[a:c] - s.start] for b, s, a, c in
                                zip(self._blocks, self._slices, cuts[:-1], cuts[1:])])
            g = 1.0 / self.model.iv_.resistance_from_state(r.astype(np.float64))
        pm = getattr(self.model, "pulse_", None)
        if noise and rng is not None and pm is not None and pm.read_noise_ is not None:
            g = g * pm.read_noise_.draw(g, rng)
        return g

    def read(self, u=None, bandwidth: float | None = None, adc_bits: int | None = None,
             adc_range: tuple[float, float] | None = None, out: np.ndarray | None = None
             ) -> np.ndarray:
        """Read currents (A) at voltage ``u`` (default the model's read voltage); no switching.

        Parameters
        ----------
        u : float or array (n_cells,), V
        bandwidth : float, optional
            Noise bandwidth, Hz: adds Johnson and shot noise. None: noise-free.
        adc_bits, adc_range : optional
            Quantise the result to ``2**adc_bits`` levels on ``adc_range`` (A).
        out : array (n_cells,), optional
        """
        u = self.model.iv_.u_read if u is None else u
        out = np.empty(self.n, self.dtype) if out is None else out
        views = [out[s] for s in self._slices]
        self._run(lambda b, v, o: b.read(v, o, bandwidth), self._split(u), views)
        if adc_bits is not None:
            if adc_range is None:
                raise ValueError("adc_range (i_min, i_max) in A is needed with adc_bits")
            out[:] = adc_quantize(out, adc_bits, *adc_range)
        return out

    def _gather(self, name):
        return np.concatenate([getattr(b, name) for b in self._blocks])

    @property
    def state(self) -> np.ndarray:
        """I-V state ``r`` of every cell (dimensionless)."""
        return self._gather("r")

    @property
    def resistance(self) -> np.ndarray:
        """Read resistance of every cell at the read voltage, ohm."""
        return self.model.iv_.resistance_from_state(self.state.astype(np.float64))

    @property
    def mode(self) -> np.ndarray:
        """0 = HRS, 1 = LRS, 2 = partly RESET."""
        return self._gather("mode")

    @property
    def cycle(self) -> np.ndarray:
        """Number of cycles drawn so far per cell (0 for the initial one)."""
        return self._gather("cycle")

    def cycle_features(self) -> dict:
        """Features of each cell's current cycle, SI units: R_HRS, U_SET, R_LRS, U_RESET."""
        iv = self.model.iv_
        return {"R_HRS": iv.resistance_from_state(self._gather("r_hrs").astype(np.float64)),
                "U_SET": self._gather("u_set").astype(np.float64),
                "R_LRS": iv.resistance_from_state(self._gather("r_lrs").astype(np.float64)),
                "U_RESET": self._gather("u_reset").astype(np.float64)}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def triangular_sweep(u_min: float = -1.5, u_max: float = 1.5, points: int = 200) -> np.ndarray:
    """One cycle ``0 -> u_min -> u_max -> 0`` with ``points`` samples (V), as in the reference data."""
    q = points // 4
    return np.concatenate([np.linspace(0, u_min, q), np.linspace(u_min, u_max, 2 * q),
                           np.linspace(u_max, 0, points - 3 * q)])


def simulate_sweeps(cells: CellArray, waveform: np.ndarray, n_cycles: int,
                    bandwidth: float | None = None) -> tuple[np.ndarray, dict]:
    """Drive every cell with ``n_cycles`` repetitions of ``waveform`` and record the I-V loops.

    At each sample the voltage is applied (switching) and then the current read at it.

    Returns
    -------
    currents : ndarray (n_cells, n_cycles, points), A
    drawn : dict name -> ndarray (n_cells, n_cycles)
        Each cycle's features as drawn (read before the cycle's first sample), SI units.
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    out = np.empty((cells.n, n_cycles, len(waveform)), dtype=cells.dtype)
    drawn = {k: np.empty((cells.n, n_cycles)) for k in ("R_HRS", "U_SET", "R_LRS", "U_RESET")}
    for n in range(n_cycles):
        feats = cells.cycle_features()
        for k in drawn:
            drawn[k][:, n] = feats[k]
        for j, u in enumerate(waveform):
            cells.apply_voltage(u)
            out[:, n, j] = cells.read(u, bandwidth=bandwidth)
    return out, drawn

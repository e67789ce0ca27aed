"""Synapse arrays of the sequence network: ideal permanences, or ReRAM devices.

Both hold one state per potential excitatory-to-excitatory synapse, take the plasticity rule's
summed permanence change of a chunk (:func:`.plasticity.permanence_update`) and give the weights
NEST uses for the next chunk.

* :class:`IdealSynapses`: the model of Bouhadjar et al. (2022): a real permanence in ``[0, 1]``;
  the synapse transmits ``w_max`` when the permanence is at least ``theta_p``, nothing below
  (``readout="threshold"``), or ``w_max * P`` (``readout="linear"``, the limit of a perfect
  device read linearly, kept as a control).
* :class:`ReRAMSynapses`: each synapse is a 1T1R ReRAM cell of a fitted
  :class:`~pyaimc.device.model.DeviceModel`. Its conductance *is* the permanence,
  ``P = (G - G_off) / (G_on - G_off)`` over the operating window ``[G_off, G_on]``
  (``G_off = G_on / on_off_ratio``), and the synapse passes the device's current,
  ``w = w_max * G / G_on`` (an off device still passes ``w_max / on_off_ratio``). A permanence
  change becomes a target level (``levels`` equally spaced conductances, stochastic rounding:
  a change of a fraction of a level moves one level with that probability, so small changes
  survive on average) and, where the level changes, *one programming pulse* of the device: a
  SET (bit line) or RESET (source line) whose gate voltage is chosen from the pulse model's median
  response (:class:`PulseInverse`); the device's fitted pulse response then draws where the
  cell really lands (device-to-device latents, cycle-to-cycle spread, scaled by
  ``variability``). Models without a pulse part program by the cycling model's voltage sweeps
  instead (a SET to the cycle's LRS, a RESET to the cycle's HRS: a two-level device). Stuck
  devices (``stuck_off`` at their initial HRS, ``stuck_on`` at the LRS) never change.
"""

from __future__ import annotations

import math

import numpy as np

from pyaimc.errors import InputError

SET_V_BL = 2.0      # V, bit line of a SET (the RADAR sweeps' SET drive)
RESET_V_SL = 2.5    # V, source line of a RESET
WIDTH = 100e-9      # s, pulse width of every update
SET_GATES = (1.9, 2.9)    # V, word-line range of the SET pulses (compliance)
RESET_GATES = (2.4, 4.5)  # V, word-line range of the RESET pulses


class IdealSynapses:
    """Real-valued permanences in ``[0, 1]`` (the reference network).

    Parameters
    ----------
    n : int
        Number of synapses.
    rng : numpy.random.Generator
        Draws the initial permanences, uniform in ``[0, p0_max]``.
    theta_p, p0_max : float
        Transmission threshold and upper end of the initial permanences.
    readout : {"threshold", "linear"}
    """

    kind = "ideal"

    def __init__(self, n: int, rng: np.random.Generator, theta_p: float = 0.5,
                 p0_max: float = 0.4, readout: str = "threshold"):
        if readout not in ("threshold", "linear"):
            raise InputError(f"readout must be 'threshold' or 'linear', got {readout!r}")
        self.p = rng.uniform(0.0, p0_max, int(n))
        self.theta_p = float(theta_p)
        self.readout = readout
        self.pulses = 0

    @property
    def permanence(self) -> np.ndarray:
        return self.p

    def update(self, dp: np.ndarray, rng: np.random.Generator) -> None:
        """Add the chunk's permanence change (clipped to ``[0, 1]``)."""
        np.clip(self.p + dp, 0.0, 1.0, out=self.p)

    def weights(self, w_max: float) -> np.ndarray:
        """Synaptic weights (pA) of every synapse."""
        if self.readout == "linear":
            return w_max * self.p
        return np.where(self.p >= self.theta_p, w_max, 0.0)


class PulseInverse:
    """Gate voltage of one SET or RESET pulse that takes a typical device from ``G`` to a target.

    A table of the pulse model's median conductance after a pulse (device latent 0) over the
    state before (log-spaced) and the gate voltage, inverted by interpolation along the gate
    for each state: cheap to build (a few thousand model evaluations, no training) and exact for
    the median device, which is all a one-shot update can aim at.

    Parameters
    ----------
    pulse_model : pyaimc.device.pulse.PulseModel
    g_range : (float, float), S
        States covered by the table.
    n_states, n_gates : int
    """

    def __init__(self, pulse_model, g_range=(0.5e-6, 300e-6), n_states: int = 48,
                 n_gates: int = 64):
        self.log_g = np.linspace(math.log10(g_range[0]), math.log10(g_range[1]), n_states)
        g = 10.0 ** self.log_g
        self.tables = {}
        for name, v, gates in (("set", SET_V_BL, SET_GATES), ("reset", RESET_V_SL, RESET_GATES)):
            vwl = np.linspace(*gates, n_gates)
            gg, vv = np.meshgrid(g, vwl, indexing="ij")
            q = pulse_model.quantiles(name, gg.ravel(), v, vv.ravel(), WIDTH, 0.0,
                                      tau=np.array([0.5]))[:, 0]
            after = (np.log10(gg.ravel()) + q).reshape(n_states, n_gates)
            # a SET reaches higher the higher the gate, a RESET lower: keep each row monotone
            # in the gate so that it inverts
            if name == "set":
                after = np.maximum.accumulate(after, axis=1)
            else:
                after = np.minimum.accumulate(after, axis=1)
            self.tables[name] = (vwl, after)

    def gate(self, name: str, g_now: np.ndarray, g_target: np.ndarray) -> np.ndarray:
        """Gate voltage (V) per cell for polarity ``name`` ('set' or 'reset')."""
        vwl, after = self.tables[name]
        pos = np.interp(np.log10(g_now), self.log_g, np.arange(len(self.log_g)))
        i0 = np.clip(np.floor(pos).astype(int), 0, len(self.log_g) - 2)
        f = pos - i0
        rows = after[i0] * (1 - f)[:, None] + after[i0 + 1] * f[:, None]   # (m, n_gates)
        t = np.log10(g_target)
        # first gate that reaches the target (a SET: at or above it, a RESET: at or below)
        k = (rows < t[:, None]).sum(axis=1) if name == "set" else (rows > t[:, None]).sum(axis=1)
        k = np.clip(k, 1, len(vwl) - 1)
        m = np.arange(len(k))
        r0, r1 = rows[m, k - 1], rows[m, k]
        d = np.where(r1 != r0, r1 - r0, 1.0)
        frac = np.where(r1 != r0, (t - r0) / d, 1.0)
        return vwl[k - 1] + np.clip(frac, 0.0, 1.0) * (vwl[k] - vwl[k - 1])


class ReRAMSynapses:
    """One ReRAM cell per synapse; potentiation and depression are programming pulses.

    Parameters
    ----------
    model : DeviceModel
        A fitted model; with a pulse part (``model.pulse_``) updates are pulses of the pulse
        response, otherwise SET/RESET sweeps of the cycling model.
    n : int
        Number of synapses.
    rng : numpy.random.Generator
        Devices, initial states, stuck cells, stochastic rounding, pulse outcomes.
    on_off_ratio : float
        ``G_on / G_off`` of the operating window (>= 1.05). Pulse models: ``G_on`` is the median
        SET level at the highest SET gate. Cycling models: ``G_on`` the median LRS conductance
        (their SET and RESET are the device's own; ``on_off_ratio`` sets ``G_off`` of the
        permanence scale).
    levels : int or None
        Number of programmable conductance levels in the window (>= 2); None: continuous.
    variability : float
        Scale of the fitted device-to-device and cycle-to-cycle spread (1: as fitted, 0: every
        device is the median device and every pulse lands on the median outcome). Pulse
        models only.
    stuck_off, stuck_on : float
        Fractions of devices stuck at their initial (HRS) conductance and at ``G_on``.
    p0_max : float
        Initial permanences uniform in ``[0, p0_max]`` (written by one pulse from the formed
        state).
    """

    kind = "reram"

    def __init__(self, model, n: int, rng: np.random.Generator, on_off_ratio: float = 10.0,
                 levels: int | None = None, variability: float = 1.0, stuck_off: float = 0.0,
                 stuck_on: float = 0.0, p0_max: float = 0.4):
        n = int(n)
        if not on_off_ratio >= 1.05:
            raise InputError(f"on_off_ratio must be >= 1.05, got {on_off_ratio}")
        if levels is not None and int(levels) < 2:
            raise InputError(f"levels must be >= 2 or None, got {levels}")
        if not variability >= 0:
            raise InputError(f"variability must be >= 0, got {variability}")
        if not (0 <= stuck_off and 0 <= stuck_on and stuck_off + stuck_on <= 1):
            raise InputError(f"stuck_off and stuck_on must be >= 0 with a sum <= 1, got "
                             f"{stuck_off} and {stuck_on}")
        self.model = model
        self.n = n
        self.levels = None if levels is None else int(levels)
        self.variability = float(variability)
        self.pulses = 0
        self.pm = getattr(model, "pulse_", None)
        if self.pm is not None:
            self.inverse = PulseInverse(self.pm)
            q = self.pm.quantiles("set", np.array([5e-6]), SET_V_BL, np.array([SET_GATES[1]]),
                                  WIDTH, 0.0, tau=np.array([0.5]))[0, 0]
            self.g_on = float(5e-6 * 10.0 ** q)
            s = self.variability
            self.latent = rng.standard_normal((2, n)) * s     # device-to-device (SET, RESET)
            # the cells' initial state: the HRS of their first cycle (formed, not yet written)
            cells = model.cells(n, rng)
            g0 = cells.conductance.astype(np.float64)
            cells.close()
            if s != 1.0:
                med = np.median(g0)
                g0 = med * (g0 / med) ** s
            self.g = g0
        else:
            self.cells = model.cells(n, rng)
            self.g = self.cells.conductance.astype(np.float64)
            r_lrs = model.sample(2000, 1, np.random.default_rng(0))["R_LRS"]
            self.g_on = float(1.0 / np.median(r_lrs))
        self.g_off = self.g_on / on_off_ratio
        u = rng.random(n)
        self.stuck = np.zeros(n, dtype=np.int8)               # 0 works, 1 stuck off, 2 stuck on
        self.stuck[u < stuck_off] = 1
        self.stuck[(u >= stuck_off) & (u < stuck_off + stuck_on)] = 2
        # initial permanences: one write from the formed state to a random level
        p0 = rng.uniform(0.0, p0_max, n)
        if self.levels is not None:
            p0 = np.round(p0 * (self.levels - 1)) / (self.levels - 1)
        self._write(np.arange(n), p0, rng)
        self.g[self.stuck == 2] = self.g_on
        self.pulses = 0

    # ------------------------------------------------------------------ state
    @property
    def permanence(self) -> np.ndarray:
        """The conductances as permanences (may leave ``[0, 1]``: the device is not clipped)."""
        return (self.g - self.g_off) / (self.g_on - self.g_off)

    def weights(self, w_max: float) -> np.ndarray:
        """Synaptic weights (pA): the device's current relative to the on state."""
        return w_max * self.g / self.g_on

    def _read(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A verify read of cells ``idx``: the measured read-to-read noise, scaled."""
        g = self.g[idx]
        if self.pm is not None and self.pm.read_noise_ is not None and self.variability > 0:
            g = g * self.pm.read_noise_.draw(g, rng) ** self.variability
        return g

    # ------------------------------------------------------------------ programming
    def _write(self, idx: np.ndarray, p_target: np.ndarray, rng: np.random.Generator) -> None:
        """One pulse per working cell of ``idx`` towards the permanence ``p_target``."""
        ok = self.stuck[idx] == 0
        idx, p_target = idx[ok], p_target[ok]
        if not len(idx):
            return
        g_t = self.g_off + p_target * (self.g_on - self.g_off)
        g_now = self._read(idx, rng)
        if self.pm is None:
            self._write_cycling(idx, g_now, g_t)
            return
        self.pulses += len(idx)
        up = g_t > g_now
        s = self.variability
        for pol, (name, sel) in enumerate((("set", up), ("reset", ~up))):
            if not sel.any():
                continue
            ii = idx[sel]
            g_before = self.g[ii]
            # the gate is chosen from the read state (what a controller knows)
            vwl = self.inverse.gate(name, g_now[sel], g_t[sel])
            v = SET_V_BL if name == "set" else RESET_V_SL
            g_new = self.pm.respond(g_before, v if name == "set" else 0.0,
                                    0.0 if name == "set" else v, vwl, WIDTH,
                                    self.latent[0, ii], self.latent[1, ii], rng,
                                    true_state=True)
            if s != 1.0:
                # keep the device's median outcome, scale the cycle-to-cycle deviation from it
                q = self.pm.quantiles(name, g_before, v, vwl, WIDTH, self.latent[pol, ii],
                                      tau=np.array([0.5]))[:, 0]
                log_med = np.log10(g_before) + q
                g_new = 10.0 ** (log_med + s * (np.log10(g_new) - log_med))
                np.clip(g_new, *self.pm.g_bounds_, out=g_new)
            self.g[ii] = g_new

    def _write_cycling(self, idx, g_now, g_t) -> None:
        """Cycling-only models: a SET sweep where the target is in the upper half of the window
        and the cell in the lower, a full RESET the other way (their SET is abrupt: a two-level
        synapse)."""
        mid = 0.5 * (self.g_on + self.g_off)
        u = np.zeros(self.n)
        u[idx[(g_t >= mid) & (g_now < mid)]] = -1.5      # V: below the fitted U_SET
        u[idx[(g_t < mid) & (g_now >= mid)]] = 1.5       # V: a full RESET
        for v in (-1.5, 1.5):
            if np.any(u == v):
                self.pulses += int(np.count_nonzero(u == v))
                self.cells.apply_voltage(np.where(u == v, v, 0.0))
        self.g[idx] = self.cells.conductance[idx]

    def update(self, dp: np.ndarray, rng: np.random.Generator) -> None:
        """Apply a chunk's permanence changes: a pulse where the target level changes.

        With ``levels``, the change is counted in levels from the cell's present level and
        rounded stochastically (a change of 0.3 levels moves one level with probability 0.3).
        """
        p_now = np.clip(self.permanence, 0.0, 1.0)
        if self.levels is None:
            target = np.clip(p_now + dp, 0.0, 1.0)
            move = (dp != 0) & (np.abs(target - p_now) > 1e-9)
        else:
            top = self.levels - 1
            cur = np.round(p_now * top)
            x = dp * top
            k = np.floor(x)
            k += rng.random(len(x)) < (x - k)
            new = np.clip(cur + k, 0, top)
            move = new != cur
            target = new / top
        move &= self.stuck == 0
        idx = np.flatnonzero(move)
        if len(idx):
            self._write(idx, target[idx], rng)

"""Synthetic pulse records with a known answer, for the pulse-model and scheme tests."""

from __future__ import annotations

import numpy as np

from pyaimc.data.pulses import PulseData


def compliance(v_wl):
    """The synthetic SET from the HRS ends at 250 uS * sigmoid((V_WL - 2.3) / 0.1)."""
    return 250e-6 / (1.0 + np.exp(-(np.asarray(v_wl) - 2.3) / 0.1))


def synthetic_pulses(rng: np.random.Generator, n_cells: int = 40, n_per_cell: int = 60,
                     source: str = "synthetic") -> list[PulseData]:
    """SET pulses from the HRS and RESET staircases of a known device.

    SET (100 ns, V_BL 2 V): G after = max(G before, compliance(V_WL)) * 10**(0.02 N(0, 1)).
    RESET (100 ns, V_WL 3 V): log10 G drops by 0.04 (V_SL - 1.2) per pulse above 1.2 V, with
    0.05 decades of noise; below 1.2 V the state stays. Every read of the staircase adds 0.01
    decades of read noise (independent per read).
    Each cell has its own compliance offset (device-to-device, 0.03 decades).
    """
    out = []
    n = n_cells * n_per_cell
    cell = np.repeat(np.arange(n_cells), n_per_cell).astype(str)
    offset = np.repeat(rng.normal(0, 0.03, n_cells), n_per_cell)
    # SET from HRS
    v_wl = rng.uniform(2.0, 2.8, n)
    g0 = 10 ** rng.uniform(-5.3, -4.9, n)
    ga = np.maximum(g0, compliance(v_wl) * 10 ** offset) * 10 ** rng.normal(0, 0.02, n)
    out.append(PulseData(cell, np.full(n, 1e-7), np.full(n, 2.0), np.zeros(n), v_wl, 1 / g0,
                         1 / ga, np.arange(n) + 1, source + "-set"))
    # RESET staircases
    v_sl = np.tile(np.linspace(0.8, 2.0, n_per_cell), n_cells)
    gb = np.empty(n)
    gafter = np.empty(n)
    for c in range(n_cells):
        g = 200e-6
        for k in range(n_per_cell):
            i = c * n_per_cell + k
            gb[i] = g * 10 ** rng.normal(0, 0.01)
            if v_sl[i] > 1.2:
                g = max(g * 10 ** (-0.04 * (v_sl[i] - 1.2) + rng.normal(0, 0.05)), 2e-6)
            gafter[i] = g * 10 ** rng.normal(0, 0.01)
    out.append(PulseData(cell, np.full(n, 1e-7), np.zeros(n), v_sl, np.full(n, 3.0), 1 / gb,
                         1 / gafter, np.arange(n) + 1, source + "-reset"))
    return out


class KnownPulse:
    """A deterministic pulse response with answers a test can work out by hand.

    SET (needs V_BL >= 1 V): G after = max(G before, compliance(V_WL)).
    RESET (needs V_SL > 1.2 V): G after = G before * 10**(-(V_SL - 1.2)).
    No read noise; energy V * G * V * width.
    """

    read_noise_ = None

    def respond(self, g_before, v_bl, v_sl, v_wl, width, latent_set, latent_reset, rng,
                dtype=np.float64, true_state=False):
        g = np.asarray(g_before, dtype=np.float64).copy()
        n = len(g)
        v_bl, v_sl, v_wl = (np.broadcast_to(np.asarray(a, dtype=np.float64), (n,))
                            for a in (v_bl, v_sl, v_wl))
        s = v_bl >= 1.0
        g[s] = np.maximum(g[s], compliance(v_wl[s]))
        r = v_sl > 1.2
        g[r] = g[r] * 10.0 ** (-(v_sl[r] - 1.2))
        return g

    def energy(self, g_before, g_after, v_bl, v_sl, v_wl, width):
        v = np.maximum(v_bl, v_sl)
        return v * v * np.maximum(g_before, g_after) * width

    def quantiles(self, polarity, g_before, v_drive, v_wl, width, latent=0.0, dtype=np.float64,
                  tau=None):
        g_before = np.asarray(g_before, dtype=np.float64)
        g = self.respond(g_before, v_drive if polarity == "set" else 0.0,
                         v_drive if polarity == "reset" else 0.0, v_wl, width, 0, 0, None)
        return np.log10(g / g_before)[:, None]

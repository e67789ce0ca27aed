"""Choosing a pulse for a wanted conductance: a small network trained on the pulse model, and a
lookup-table baseline.

The idea of arXiv 2403.06712: a network maps the present state and the wanted conductance to
the pulse parameters, so one pulse lands near the target. Here the pulse is a SET at a fixed bit
line or a RESET at a fixed source line, both at a fixed width, and the network picks the gate
(word-line) voltage, which sets the current compliance of a SET and limits a RESET:

    (log10 G_now, log10 G_target)  ->  V_WL          (one network per polarity)

It is trained only on the fitted pulse model (:class:`~pyaimc.device.pulse.PulseModel`): states
and gates are drawn over the range of the measurements, the model gives the median conductance
after each pulse (a typical device), and the network learns the inverse, gate from state before
and after. (Regressing the gate on *noisy* outcomes instead pulls every answer towards the middle
of the gate range: tried, it landed half as often within +-50 %.) The baseline, :class:`LookupProgrammer`,
is a table built from measured (or any) pulse records: per state bin the median conductance
reached at each gate, inverted by interpolation.

:class:`NNFirstShot` uses the network for the first pulse of a write and then hands the cell to a
write-verify scheme (ISPP, FPPV or RADAR).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from pyaimc.data.pulses import RESET, SET, PulseData
from pyaimc.device.pulse import MLP
from pyaimc.device.schemes import (PulseWriteResult, WriteScheme, _window, get_scheme,
                                   register_scheme)

POLARITY_NAMES = {SET: "set", RESET: "reset"}


@dataclass
class PulseProgrammer:
    """Gate voltage of one SET or RESET pulse that takes a cell from ``G_now`` to ``G_target``.

    Parameters
    ----------
    set_v_bl : float, V
        Bit line of the SET pulses.
    reset_v_sl : float, V
        Source line of the RESET pulses.
    width : float, s
    set_gates, reset_gates : (float, float), V
        Gate ranges the training draws (and the answers) cover.
    set_states, reset_states : (float, float), S
        Ranges of the state before the pulse in training (log-uniform): SETs from the HRS,
        RESETs from the LRS and intermediate states.
    n_train : int
        Training pairs per polarity.
    hidden, epochs, batch, lr, seed
        The network and its fit (torch, seeded).
    """

    set_v_bl: float = 2.0
    reset_v_sl: float = 2.5
    width: float = 100e-9
    set_gates: tuple = (1.8, 2.9)
    reset_gates: tuple = (2.0, 4.0)
    set_states: tuple = (2e-6, 25e-6)
    reset_states: tuple = (60e-6, 260e-6)
    n_train: int = 100000
    hidden: int = 32
    epochs: int = 30
    batch: int = 1024
    lr: float = 3e-3
    seed: int = 0

    nets_: dict = field(default_factory=dict, init=False, repr=False)

    def fit(self, pulse_model, rng: np.random.Generator) -> "PulseProgrammer":
        """Train both networks on the median response of ``pulse_model``."""
        import torch

        for pol in (SET, RESET):
            name = POLARITY_NAMES[pol]
            lo, hi = self.set_states if pol == SET else self.reset_states
            g0 = np.exp(rng.uniform(math.log(lo), math.log(hi), self.n_train))
            gates = self.set_gates if pol == SET else self.reset_gates
            v_wl = rng.uniform(gates[0], gates[1], self.n_train)
            v = self.set_v_bl if pol == SET else self.reset_v_sl
            q = pulse_model.quantiles(name, g0, v, v_wl, self.width, 0.0,
                                      tau=np.array([0.5]))[:, 0]
            x = np.stack([np.log10(g0), np.log10(g0) + q], axis=1)
            self.nets_[name] = _fit_regression(x, v_wl, self, torch)
        return self

    def gate(self, g_now, g_target) -> tuple[np.ndarray, np.ndarray]:
        """Polarity (+1 SET where the target is above the state, -1 RESET) and gate (V)."""
        if not self.nets_:
            raise RuntimeError("this PulseProgrammer is not fitted yet")
        g_now = np.asarray(g_now, dtype=np.float64)
        g_target = np.broadcast_to(np.asarray(g_target, dtype=np.float64), g_now.shape)
        pol = np.where(g_target > g_now, SET, RESET).astype(np.int8)
        v_wl = np.empty(g_now.shape)
        for p in (SET, RESET):
            m = pol == p
            if m.any():
                x = np.stack([np.log10(g_now[m]), np.log10(g_target[m])], axis=1)
                gates = self.set_gates if p == SET else self.reset_gates
                v_wl[m] = np.clip(self.nets_[POLARITY_NAMES[p]](x)[:, 0], *gates)
        return pol, v_wl

    def pulse(self, g_now, g_target):
        """``(v_bl, v_sl, v_wl)`` (V) of the chosen pulse for each cell."""
        pol, v_wl = self.gate(g_now, g_target)
        return (np.where(pol == SET, self.set_v_bl, 0.0),
                np.where(pol == RESET, self.reset_v_sl, 0.0), v_wl)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "nets_"}
        d["nets"] = {k: v.to_dict() for k, v in self.nets_.items()}
        return d


def _fit_regression(x: np.ndarray, y: np.ndarray, cfg, torch) -> MLP:
    """Least-squares MLP ``x -> y`` (one output), returned as a numpy :class:`MLP`."""
    g = torch.Generator().manual_seed(int(cfg.seed))
    torch.manual_seed(int(cfg.seed))
    xm, xs = x.mean(axis=0), x.std(axis=0)
    ym, ys = float(y.mean()), float(y.std())
    h = int(cfg.hidden)
    layers = torch.nn.Sequential(torch.nn.Linear(x.shape[1], h), torch.nn.SiLU(),
                                 torch.nn.Linear(h, h), torch.nn.SiLU(), torch.nn.Linear(h, 1))
    X = torch.tensor((x - xm) / xs, dtype=torch.float32)
    Y = torch.tensor((y - ym) / ys, dtype=torch.float32)[:, None]
    opt = torch.optim.Adam(layers.parameters(), lr=cfg.lr)
    steps = max(1, math.ceil(len(X) / cfg.batch))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps * int(cfg.epochs),
                                                       eta_min=cfg.lr * 0.01)
    for _ in range(int(cfg.epochs)):
        perm = torch.randperm(len(X), generator=g)
        for s in range(steps):
            idx = perm[s * cfg.batch:(s + 1) * cfg.batch]
            loss = torch.mean((layers(X[idx]) - Y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    lin = [m for m in layers if isinstance(m, torch.nn.Linear)]
    ws = [m.weight.detach().numpy().T.astype(np.float64) for m in lin]
    bs = [m.bias.detach().numpy().astype(np.float64) for m in lin]
    # fold the output scaling into the last layer
    ws[-1] = ws[-1] * ys
    bs[-1] = bs[-1] * ys + ym
    return MLP(ws, bs, np.asarray(xm), np.asarray(xs), 1.0)


@dataclass
class LookupProgrammer:
    """Gate voltage from a table of median outcomes of pulse records (the baseline).

    For each polarity and bin of ``log10 G_before`` (``state_bin`` decades) the median of
    ``log10 G_after`` at each gate (rounded to ``gate_bin`` V) of the records is kept; the gate
    for a target is interpolated on the table's running maximum (SET) or minimum (RESET) in
    that state bin, the nearest state bin with data standing in for an empty one.

    Parameters
    ----------
    state_bin, gate_bin : float
    min_count : int
        Table entries with fewer records are left out.
    """

    state_bin: float = 0.1
    gate_bin: float = 0.02
    min_count: int = 5

    table_: dict = field(default_factory=dict, init=False, repr=False)

    def fit(self, records: list[PulseData], set_v_bl: float, reset_v_sl: float,
            width: float) -> "LookupProgrammer":
        """Tables from the records' pulses with these drive voltages and width."""
        for pol, v in ((SET, set_v_bl), (RESET, reset_v_sl)):
            rows = []
            for d in records:
                drive = d.v_bl if pol == SET else d.v_sl
                m = (d.polarity == pol) & np.isclose(drive, v) & np.isclose(d.width, width)
                if m.any():
                    rows.append((np.log10(d.g_before[m]), d.v_wl[m], np.log10(d.g_after[m])))
            if not rows:
                continue
            sb, gw, ga = (np.concatenate(c) for c in zip(*rows))
            sbin = np.floor(sb / self.state_bin).astype(int)
            gbin = np.round(gw / self.gate_bin).astype(int)
            table = {}
            for s in np.unique(sbin):
                ms = sbin == s
                gates, meds = [], []
                for gb in np.unique(gbin[ms]):
                    mg = ms & (gbin == gb)
                    if mg.sum() >= self.min_count:
                        gates.append(gb * self.gate_bin)
                        meds.append(np.median(ga[mg]))
                if len(gates) >= 2:
                    meds = np.asarray(meds)
                    mono = (np.maximum.accumulate(meds) if pol == SET
                            else np.minimum.accumulate(meds))
                    table[int(s)] = (np.asarray(gates), mono)
            self.table_[POLARITY_NAMES[pol]] = table
        return self

    def gate(self, g_now, g_target):
        g_now = np.asarray(g_now, dtype=np.float64)
        g_target = np.broadcast_to(np.asarray(g_target, dtype=np.float64), g_now.shape)
        pol = np.where(g_target > g_now, SET, RESET).astype(np.int8)
        out = np.full(g_now.shape, np.nan)
        for i in range(len(g_now)):
            table = self.table_.get(POLARITY_NAMES[int(pol[i])])
            if not table:
                continue
            s = int(np.floor(np.log10(g_now[i]) / self.state_bin))
            keys = np.fromiter(table, dtype=int)
            gates, med = table[int(keys[np.argmin(np.abs(keys - s))])]
            t = np.log10(g_target[i])
            if pol[i] == SET:
                keep = np.concatenate([[True], np.diff(med) > 0])
                out[i] = np.interp(t, med[keep], gates[keep])
            else:
                keep = np.concatenate([[True], np.diff(med) < 0])
                out[i] = np.interp(-t, -med[keep], gates[keep])
        return pol, out


def one_shot_score(programmer, records: list[PulseData], targets: np.ndarray, polarity: int,
                   v_drive: float, width: float, states: tuple = (0.0, np.inf),
                   state_bin: float = 0.1, gate_tol: float = 0.006, min_matches: int = 5
                   ) -> dict:
    """How close one chosen pulse lands, judged by measured outcomes.

    For each measured pulse of ``records`` with this polarity, drive and width, and each target
    of ``targets`` (S) on the right side of its state: the programmer picks a gate from the
    measured state before; the outcome of that choice is the set of measured pulses of the
    records with a gate within ``gate_tol`` of it and a state in the same ``state_bin`` (the
    device's answers to that pulse from that state). Only states in ``states`` (S) are used.
    Scores are averaged over queries.

    Returns
    -------
    dict
        ``within_50``, ``within_10`` (fractions of outcomes within +-50 % and +-10 % of the
        target), ``queries`` (with at least ``min_matches`` outcomes), ``skipped``.
    """
    sb, gw, ga = [], [], []
    for d in records:
        drive = d.v_bl if polarity == SET else d.v_sl
        m = ((d.polarity == polarity) & np.isclose(drive, v_drive) & np.isclose(d.width, width)
             & (d.g_before >= states[0]) & (d.g_before <= states[1]))
        sb.append(np.log10(d.g_before[m]))
        gw.append(d.v_wl[m])
        ga.append(d.g_after[m])
    sb, gw, ga = np.concatenate(sb), np.concatenate(gw), np.concatenate(ga)
    if not len(sb):
        raise ValueError("no measured pulses with this polarity, drive voltage and width")
    sbin = np.floor(sb / state_bin).astype(int)
    order = np.lexsort((gw, sbin))
    sbin_s, gw_s, ga_s = sbin[order], gw[order], ga[order]
    # queries: a subsample of the measured states, each with every target beyond it
    states = 10 ** sb[:: max(1, len(sb) // 400)]
    g_now = np.repeat(states, len(targets))
    g_t = np.tile(targets, len(states))
    right = (g_t > g_now) if polarity == SET else (g_t < g_now)
    g_now, g_t = g_now[right], g_t[right]
    _, v_wl = programmer.gate(g_now, g_t)
    w50, w10, n, skipped = 0.0, 0.0, 0, 0
    qbin = np.floor(np.log10(g_now) / state_bin).astype(int)
    for q in range(len(g_now)):
        if not np.isfinite(v_wl[q]):
            skipped += 1
            continue
        a = np.searchsorted(sbin_s, qbin[q])
        b = np.searchsorted(sbin_s, qbin[q], side="right")
        lo = a + np.searchsorted(gw_s[a:b], v_wl[q] - gate_tol)
        hi = a + np.searchsorted(gw_s[a:b], v_wl[q] + gate_tol, side="right")
        if hi - lo < min_matches:
            skipped += 1
            continue
        rel = np.abs(ga_s[lo:hi] / g_t[q] - 1.0)
        w50 += np.mean(rel <= 0.5)
        w10 += np.mean(rel <= 0.1)
        n += 1
    return {"within_50": w50 / max(n, 1), "within_10": w10 / max(n, 1), "queries": n,
            "skipped": skipped}


@register_scheme
@dataclass
class NNFirstShot(WriteScheme):
    """The network's pulse first, then a write-verify scheme (``base``: ispp, fppv or radar).

    Cells outside their window get one pulse chosen by a :class:`PulseProgrammer` trained on the
    model's pulse response (in :meth:`prepare`) for the window's centre; the base scheme takes it
    from there. Pulses and energy count both parts.
    """

    name = "nn_first"
    base: str = "radar"
    n_train: int = 60000
    epochs: int = 20
    seed: int = 0

    def __post_init__(self):
        self._base = get_scheme(self.base)
        self._programmer = None

    def applies_to(self, model) -> bool:
        return getattr(model, "pulse_", None) is not None

    def prepare(self, model, rng: np.random.Generator) -> "WriteScheme":
        import torch

        self._base.prepare(model, rng)
        if self._programmer is None:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                self._programmer = PulseProgrammer(n_train=self.n_train, epochs=self.epochs,
                                                   seed=self.seed).fit(
                    model.pulse_, np.random.default_rng(self.seed))
            finally:
                torch.set_num_threads(threads)
        return self

    def program(self, cells, g_lo, g_hi, rng=None) -> PulseWriteResult:
        rng = rng if rng is not None else np.random.default_rng(0)
        self.prepare(cells.model, rng)
        n = len(cells)
        lo, hi = _window(g_lo, g_hi, n)
        g = cells.read_conductance(rng if getattr(self._base, "read_noise", True) else None)
        out = np.flatnonzero((g < lo) | (g > hi))
        target = np.where(np.isfinite(hi), 0.5 * (lo + hi), lo * 1.1)
        e0 = np.zeros(n)
        first = np.zeros(n, dtype=np.int64)
        n_set0 = np.zeros(n, dtype=np.int64)
        if len(out):
            v_bl, v_sl, v_wl = self._programmer.pulse(g[out], target[out])
            e = np.empty(len(out))
            cells.apply_pulse(v_bl, v_sl, v_wl, self._programmer.width, index=out,
                              energy_out=e)
            e0[out] = e
            first[out] = 1
            n_set0[out] = v_bl > 0
        res = self._base.program(cells, lo, hi, rng)
        return PulseWriteResult(res.g, res.pulses + first, res.success, res.energy + e0,
                                res.g_read, res.n_set + n_set0, res.n_reset + first - n_set0)

    def to_dict(self) -> dict:
        return {"scheme": self.name, "base": self._base.to_dict(), "n_train": self.n_train,
                "epochs": self.epochs, "seed": self.seed,
                "programmer": None if self._programmer is None else
                {k: v for k, v in self._programmer.to_dict().items() if k != "nets"}}

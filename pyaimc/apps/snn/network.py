"""The spiking temporal-memory network of Bouhadjar et al. (2022), built from NEST's own models.

The published network uses a NESTML neuron (``iaf_psc_exp_nonlineardendrite``: a leaky
integrate-and-fire soma with a dendritic current that, when it crosses a threshold, is replaced
by a plateau, the dendritic action potential or dAP) and a NESTML structural-plasticity synapse.
The PyPI build of NEST has neither. Here each excitatory neuron is two NEST nodes:

* the **soma**, ``iaf_psc_exp_multisynapse`` with three receptors: 1 the external input and 2 the
  inhibition (exponential currents), 3 the dAP: a current with a time constant so long
  (``1e7`` ms) that it is a step, switched on by the dendrite's spike and off by the same spike
  arriving ``tau_dap`` later with the opposite sign (two connections, two delays), so the soma
  gets a plateau of ``i_dap`` for exactly ``tau_dap``;
* the **dendrite**, ``iaf_psc_exp`` receiving the plastic recurrent synapses (exponential
  currents, ``tau_syn_dend``); its membrane time constant is short (0.5 ms) so its voltage
  follows the summed dendritic current, and its threshold is the dAP threshold current times
  its resistance: it spikes when the dendritic current crosses ``theta_dap``. Its refractory
  time is ``tau_dap``: no second dAP during a plateau.

Each of the ``n_symbols`` subpopulations of ``n_e`` excitatory neurons has one inhibitory
neuron that fires when about ``rho`` of them have fired and then silences the rest: neurons
depolarised by a dAP (predicted) fire first and win; when none is predicted, all fire (a
burst). The plastic synapses are set between chunks from a synapse array
(:mod:`.synapses`) by the plasticity rule (:mod:`.plasticity`) applied to the chunk's spikes.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from pyaimc.apps.snn.plasticity import PlasticityParams, dap_trace, permanence_update
from pyaimc.errors import InputError


def import_nest():
    """Import NEST quietly; an :class:`InputError` naming the extra when it is missing."""
    os.environ.setdefault("PYNEST_QUIET", "1")
    try:
        import nest
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise InputError("the spiking network needs NEST: pip install 'pyaimc[snn]' "
                         f"(nest-simulator >= 3.10; {e})") from e
    try:
        nest.verbosity = nest.VerbosityLevel.ERROR
    except AttributeError:  # pragma: no cover - older NEST
        nest.set_verbosity("M_ERROR")
    return nest


@dataclass
class NetworkParams:
    """Sizes, neurons, connections and timing of the network (ms, pA, pF, mV).

    The defaults are a small version of the published network (``n_e`` 100 instead of 150 per
    subpopulation), with weights chosen from the neuron equations: ``w_ext`` makes a resting
    soma fire about 2.5 ms after its input and a dAP-depolarised one about 1 ms earlier;
    ``w_ie`` makes the inhibitory neuron fire after about ``rho`` coincident spikes;
    ``theta_dap`` needs about ``dap_synapses`` coincident inputs at ``w_max``.
    """

    n_e: int = 100
    rho: int = 20
    p_conn: float = 0.2
    # soma
    c_m: float = 250.0
    tau_m: float = 10.0
    v_th: float = 20.0
    t_ref: float = 10.0
    tau_syn_ext: float = 2.0
    tau_syn_inh: float = 1.0
    # dendrite
    tau_syn_dend: float = 5.0
    w_max: float = 13.0
    dap_synapses: float = 4.5
    i_dap: float = 200.0
    tau_dap: float = 60.0
    # inhibition
    c_i: float = 250.0
    tau_m_i: float = 5.0
    v_th_i: float = 15.0
    tau_syn_i: float = 0.5
    w_ie: float = 580.0
    w_ei: float = -12000.0
    # input and delays
    w_ext: float = 4100.0
    d_ee: float = 2.0
    d_short: float = 0.1
    dt: float = 0.1
    # task timing
    interval: float = 40.0
    gap: float = 100.0
    threads: int = 1
    plasticity: PlasticityParams = field(default_factory=PlasticityParams)

    @property
    def theta_dap(self) -> float:
        """dAP threshold of the dendritic current, pA."""
        return self.dap_synapses * self.w_max

    def to_dict(self) -> dict:
        return asdict(self)


class SequenceNetwork:
    """The network in a fresh NEST kernel, with its plastic synapses in a synapse array.

    Parameters
    ----------
    n_symbols : int
        Alphabet size: one subpopulation per symbol.
    synapses_factory : callable ``n -> synapse array``
        Builds the plastic synapses (:class:`~.synapses.IdealSynapses` or
        :class:`~.synapses.ReRAMSynapses`) once the number of synapses is known.
    params : NetworkParams
    rng : numpy.random.Generator
        Connectivity and everything the synapses draw; NEST's own seed is drawn from it.

    Notes
    -----
    NEST has one kernel per process: building a network resets it.
    """

    def __init__(self, n_symbols: int, synapses_factory, params: NetworkParams | None = None,
                 rng: np.random.Generator | None = None):
        if n_symbols < 2:
            raise InputError(f"n_symbols must be >= 2, got {n_symbols}")
        self.p = p = params or NetworkParams()
        if p.rho > p.n_e:
            raise InputError(f"rho ({p.rho}) must be <= n_e ({p.n_e})")
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.n_symbols = n_symbols
        self.n = n = n_symbols * p.n_e
        nest = self.nest = import_nest()
        nest.ResetKernel()
        nest.set(resolution=p.dt, local_num_threads=int(p.threads),
                 rng_seed=int(self.rng.integers(1, 2**31 - 1)), print_time=False)

        self.soma = nest.Create("iaf_psc_exp_multisynapse", n, params={
            "C_m": p.c_m, "tau_m": p.tau_m, "E_L": 0.0, "V_reset": 0.0, "V_m": 0.0,
            "V_th": p.v_th, "t_ref": p.t_ref,
            "tau_syn": [p.tau_syn_ext, p.tau_syn_inh, 1e7]})
        # the dendrite: V follows R * I_dend (tau_m << tau_syn_dend), threshold theta_dap * R
        c_d, tau_d = 50.0, 0.5
        r_d = tau_d / c_d                               # GOhm: pA * GOhm = mV
        self.dend = nest.Create("iaf_psc_exp", n, params={
            "C_m": c_d, "tau_m": tau_d, "E_L": 0.0, "V_reset": 0.0, "V_m": 0.0,
            "V_th": p.theta_dap * r_d * _peak_factor(tau_d, p.tau_syn_dend),
            "t_ref": p.tau_dap, "tau_syn_ex": p.tau_syn_dend, "tau_syn_in": p.tau_syn_dend})
        self.inh = nest.Create("iaf_psc_exp", n_symbols, params={
            "C_m": p.c_i, "tau_m": p.tau_m_i, "E_L": 0.0, "V_reset": 0.0, "V_m": 0.0,
            "V_th": p.v_th_i, "t_ref": 2.0, "tau_syn_ex": p.tau_syn_i, "tau_syn_in": p.tau_syn_i})
        self.gens = nest.Create("spike_generator", n_symbols)

        # the dAP plateau: on at d_short, off at d_short + tau_dap
        nest.Connect(self.dend, self.soma, "one_to_one",
                     {"weight": p.i_dap, "delay": p.d_short, "receptor_type": 3})
        nest.Connect(self.dend, self.soma, "one_to_one",
                     {"weight": -p.i_dap, "delay": p.d_short + p.tau_dap, "receptor_type": 3})
        for m in range(n_symbols):
            sub = self.soma[m * p.n_e:(m + 1) * p.n_e]
            nest.Connect(sub, self.inh[m], "all_to_all", {"weight": p.w_ie, "delay": p.d_short})
            nest.Connect(self.inh[m], sub, "all_to_all",
                         {"weight": p.w_ei, "delay": p.d_short, "receptor_type": 2})
            nest.Connect(self.gens[m], sub, "all_to_all",
                         {"weight": p.w_ext, "delay": p.d_short, "receptor_type": 1})

        # potential recurrent synapses: each ordered pair with probability p_conn, no autapses
        mask = self.rng.random((n, n)) < p.p_conn
        np.fill_diagonal(mask, False)
        self.post, self.pre = np.nonzero(mask)          # row = post, column = pre
        self.synapses = synapses_factory(len(self.pre))
        w = self.synapses.weights(p.w_max)
        nest.Connect(np.asarray(self.soma.tolist())[self.pre],
                     np.asarray(self.dend.tolist())[self.post], "one_to_one",
                     {"synapse_model": "static_synapse", "weight": w,
                      "delay": np.full(len(w), p.d_ee)})
        self._conns = nest.GetConnections(source=self.soma, target=self.dend)
        src = np.asarray(self._conns.source) - self.soma[0].global_id
        tgt = np.asarray(self._conns.target) - self.dend[0].global_id
        key = self.pre.astype(np.int64) * n + self.post
        order = np.argsort(key)
        self._nest_to_syn = order[np.searchsorted(key[order], src.astype(np.int64) * n + tgt)]

        self.rec_soma = nest.Create("spike_recorder")
        self.rec_dend = nest.Create("spike_recorder")
        nest.Connect(self.soma, self.rec_soma)
        nest.Connect(self.dend, self.rec_dend)
        self.z = np.zeros(n)                             # dAP traces at self.t_z
        self.t_z = 0.0
        self.sim_time = 0.0                              # ms simulated
        # wall seconds spent in NEST, in the plasticity rule, in the synapses, setting weights
        self.timers = {"nest": 0.0, "rule": 0.0, "synapses": 0.0, "weights": 0.0}

    # ------------------------------------------------------------------ running
    def _set_weights(self) -> None:
        t = time.perf_counter()
        w = self.synapses.weights(self.p.w_max)
        self._conns.set(weight=w[self._nest_to_syn])
        self.timers["weights"] += time.perf_counter() - t

    def present(self, sequence, plastic: bool = True) -> dict:
        """Present one sequence (symbol indices), then the gap; learn from it if ``plastic``.

        Returns
        -------
        dict
            ``onsets`` (ms), ``soma`` and ``dap`` spikes as (neuron, time) arrays,
            ``predicted`` (n_elements, n_symbols) counts of neurons with an active dAP at each
            element's onset, ``active`` (n_elements, n_symbols) somatic spikes within
            ``interval`` of each onset.
        """
        nest, p = self.nest, self.p
        seq = [int(s) for s in sequence]
        if any(s < 0 or s >= self.n_symbols for s in seq):
            raise InputError(f"symbols must be in 0..{self.n_symbols - 1}, got {seq}")
        t0 = nest.biological_time
        onsets = t0 + 1.0 + p.interval * np.arange(len(seq))
        onsets = np.round(onsets / p.dt) * p.dt
        for m in range(self.n_symbols):
            self.gens[m].set(spike_times=onsets[[i for i, s in enumerate(seq) if s == m]].tolist(),
                             origin=0.0)
        duration = 1.0 + p.interval * len(seq) + p.gap
        t = time.perf_counter()
        nest.Simulate(duration)
        self.timers["nest"] += time.perf_counter() - t
        self.sim_time += duration
        soma = self._events(self.rec_soma, self.soma)
        dap = self._events(self.rec_dend, self.dend)
        predicted = np.zeros((len(seq), self.n_symbols), dtype=int)
        active = np.zeros((len(seq), self.n_symbols), dtype=int)
        sub_d = dap[0] // p.n_e
        sub_s = soma[0] // p.n_e
        for k, t in enumerate(onsets):
            on = (dap[1] <= t) & (dap[1] > t - p.tau_dap)
            predicted[k] = np.bincount(sub_d[on], minlength=self.n_symbols)
            fired = (soma[1] >= t) & (soma[1] < t + p.interval)
            active[k] = np.bincount(sub_s[fired], minlength=self.n_symbols)
        if plastic:
            self._learn(soma, dap, t0)
        self._advance_z(dap, t0, nest.biological_time)
        return {"onsets": onsets, "soma": soma, "dap": dap, "predicted": predicted,
                "active": active}

    def _events(self, rec, nodes) -> tuple[np.ndarray, np.ndarray]:
        ev = rec.get("events")
        rec.set(n_events=0)
        senders = np.asarray(ev["senders"], dtype=np.int64) - nodes[0].global_id
        times = np.asarray(ev["times"], dtype=np.float64)
        order = np.argsort(times, kind="stable")
        return senders[order], times[order]

    def _learn(self, soma, dap, t0) -> None:
        pp = self.p.plasticity
        t = time.perf_counter()
        z_at, _ = dap_trace(self.z, self.t_z, dap[0], dap[1], soma[0], soma[1], pp.tau_h)
        dp = permanence_update(self.pre, self.post, soma, z_at, self.n, pp)
        t1 = time.perf_counter()
        self.synapses.update(dp, self.rng)
        self.timers["rule"] += t1 - t
        self.timers["synapses"] += time.perf_counter() - t1
        self._set_weights()

    def _advance_z(self, dap, t0, t1) -> None:
        _, z_fn = dap_trace(self.z, self.t_z, dap[0], dap[1], np.zeros(0, int), np.zeros(0),
                            self.p.plasticity.tau_h)
        self.z = z_fn(t1)
        self.t_z = t1


def _peak_factor(tau_m: float, tau_s: float) -> float:
    """Peak of ``V / (R * I0)`` for an exponential current ``I0 exp(-t/tau_s)`` into a leaky
    membrane ``tau_m``: the dendrite's threshold is scaled by it so that a current peaking at
    ``theta_dap`` just reaches it."""
    t_peak = np.log(tau_s / tau_m) * tau_m * tau_s / (tau_s - tau_m)
    return float(tau_s / (tau_s - tau_m) * (np.exp(-t_peak / tau_s) - np.exp(-t_peak / tau_m)))

"""The plasticity rule of the spiking temporal-memory model, computed from recorded spikes.

Bouhadjar et al. (2022) give each potential excitatory-to-excitatory synapse a *permanence*
``P`` (here normalised to ``0 <= P <= 1``) that grows by spike-timing-dependent potentiation,
shrinks by a constant depression at each presynaptic spike, and is pulled by a homeostatic term
that keeps the rate of dendritic action potentials (dAPs) of the postsynaptic neuron near a
target. The synapse transmits only when its permanence is above a threshold (structural
plasticity). NEST's PyPI build does not have that synapse, so the rule runs here, in numpy,
between simulation chunks (one sequence presentation each, see :mod:`.network`), on the spikes
NEST recorded in the chunk:

* potentiation, at each postsynaptic spike ``t_post`` and each earlier presynaptic spike
  ``t_pre`` with ``dt_min <= t_post - t_pre <= dt_max``:
  ``dP += lambda_plus * exp(-(t_post - t_pre) / tau_plus)``;
* depression, at each presynaptic spike: ``dP -= lambda_minus``;
* homeostasis, with each potentiating pair: ``dP += lambda_h * (z_target - z)``, ``z`` the
  postsynaptic neuron's dAP trace at the postsynaptic spike (each dAP adds 1, decaying with
  ``tau_h``): a neuron that is predicted (has dAPs) more often than ``z_target`` says loses
  the synapses that would make it more so, one that is never predicted learns faster.

(How the homeostatic term enters is our reading of the description: applied at every
postsynaptic spike to all synapses, it lets neurons that burst at every unpredicted first
element grow synapses from everything and predict themselves; tried and dropped.)

A chunk is much shorter than the time the permanences take to change (tens of presentations),
and the gap between presentations is longer than ``dt_max``, so summing a chunk's updates and
applying them at its end is the online rule up to the order of the clipping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PlasticityParams:
    """Parameters of the permanence dynamics (times in ms, permanences normalised to 0..1).

    Parameters
    ----------
    lambda_plus : float
        Potentiation per spike pair at zero delay.
    tau_plus : float, ms
        Decay of the potentiation with the pair's delay.
    dt_min, dt_max : float, ms
        Pairs closer than ``dt_min`` (spikes of one sequence element) or farther than
        ``dt_max`` (two elements back) do not potentiate.
    lambda_minus : float
        Depression per presynaptic spike.
    lambda_h : float
        Homeostatic change per postsynaptic spike and unit of ``z_target - z``.
    z_target : float
        Target value of the dAP trace.
    tau_h : float, ms
        Decay of the dAP trace.
    theta_p : float
        Permanence above which an ideal synapse transmits.
    p0_max : float
        Initial permanences are uniform in ``[0, p0_max]``.
    """

    lambda_plus: float = 0.3
    tau_plus: float = 20.0
    dt_min: float = 4.0
    dt_max: float = 60.0
    lambda_minus: float = 0.015
    lambda_h: float = 0.02
    z_target: float = 1.0
    tau_h: float = 440.0
    theta_p: float = 0.5
    p0_max: float = 0.4


def dap_trace(z0: np.ndarray, t0: float, dap_senders: np.ndarray, dap_times: np.ndarray,
              query_senders: np.ndarray, query_times: np.ndarray, tau_h: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """The dAP trace of each neuron at given times, and its value at the chunk's end.

    Parameters
    ----------
    z0 : ndarray (n_neurons,)
        Trace at time ``t0`` (ms), the start of the chunk.
    dap_senders, dap_times : ndarray
        Neuron index (0..n-1) and time (ms) of each dAP in the chunk.
    query_senders, query_times : ndarray
        Neuron and time of each postsynaptic spike where the trace is wanted (the value just
        before any dAP at the same time step counts it: a dAP precedes the spike it causes).

    Returns
    -------
    z_at_query : ndarray (len(query_times),)
    z_fn : callable ``t -> ndarray (n_neurons,)``, the trace of every neuron at time ``t``.
    """
    z_q = z0[query_senders] * np.exp(-(query_times - t0) / tau_h)
    if len(dap_times) and len(query_times):
        same = query_senders[:, None] == dap_senders[None, :]
        dt = query_times[:, None] - dap_times[None, :]
        z_q += np.where(same & (dt >= 0), np.exp(-np.clip(dt, 0, None) / tau_h), 0.0).sum(axis=1)

    def z_fn(t: float) -> np.ndarray:
        z = z0 * np.exp(-(t - t0) / tau_h)
        keep = dap_times <= t
        np.add.at(z, dap_senders[keep], np.exp(-(t - dap_times[keep]) / tau_h))
        return z

    return z_q, z_fn


def permanence_update(pre: np.ndarray, post: np.ndarray, spikes: tuple[np.ndarray, np.ndarray],
                      z_at_spike: np.ndarray, n_neurons: int, p: PlasticityParams) -> np.ndarray:
    """Summed change of every synapse's permanence over one chunk.

    Parameters
    ----------
    pre, post : ndarray of int (n_synapses,)
        Presynaptic and postsynaptic neuron (0..n_neurons-1) of each synapse.
    spikes : (senders, times)
        Somatic spikes of the chunk: neuron index and time (ms).
    z_at_spike : ndarray (n_spikes,)
        The dAP trace of the spiking neuron at each spike (:func:`dap_trace`).
    n_neurons : int

    Returns
    -------
    ndarray (n_synapses,)
        Permanence change (unclipped).
    """
    senders, times = spikes
    senders = np.asarray(senders, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    z_at_spike = np.asarray(z_at_spike, dtype=np.float64)
    # potentiation (and homeostasis) of every pair of neurons, summed over their spike pairs:
    # a dense (post, pre) matrix is small at the sizes simulated here
    pot = np.zeros((n_neurons, n_neurons))
    if len(times):
        dt = times[:, None] - times[None, :]                 # post spike x pre spike
        pair = (dt >= p.dt_min) & (dt <= p.dt_max)
        k = np.where(pair, p.lambda_plus * np.exp(-dt / p.tau_plus)
                     + p.lambda_h * (p.z_target - z_at_spike)[:, None], 0.0)
        q, r = np.nonzero(pair)
        np.add.at(pot, (senders[q], senders[r]), k[q, r])
    n_spikes = np.bincount(senders, minlength=n_neurons).astype(np.float64)
    return pot[post, pre] - p.lambda_minus * n_spikes[pre]

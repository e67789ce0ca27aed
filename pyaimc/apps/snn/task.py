"""The sequence task: training by repeated presentation, prediction error, false positives and
negatives.

After each element of a sequence the network *predicts* a subpopulation when at least
``theta_pred`` (``rho / 2``) of its neurons carry an active dAP at the next element's onset. As in
Bouhadjar et al. (2022) the prediction that counts is the one of each sequence's **last**
element, which needs the whole context (``A D B E`` and ``F D B C`` share ``D B``: after ``B``
only the first element says whether ``E`` or ``C`` follows). With ``v`` the predicted set and
``o`` the target set (one symbol) of a last element:

* ``false_positive`` = ``|v - o| / |v | o|`` (predicted but wrong),
* ``false_negative`` = ``|o - v| / |v | o|`` (the target not predicted),
* ``prediction_error`` = their sum, ``1 - |v & o| / |v | o|`` (the Jaccard distance: 0 when the
  prediction is exactly the target, 0.5 when the target and one other symbol are predicted, 1
  when nothing or only wrong symbols are).

Each is averaged over the sequences and the presentations of a test phase with plasticity off.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from pyaimc.errors import InputError

#: Two sequences that share two elements: a second-order task (the study's kind of set)
SEQUENCES_SHORT = ("ADBE", "FDBC")


def encode(sequences) -> tuple[list[list[int]], list[str]]:
    """Symbol indices of string sequences, and the alphabet (sorted letters)."""
    if not sequences or any(len(s) < 2 for s in sequences):
        raise InputError(f"need sequences of at least two symbols, got {sequences!r}")
    alphabet = sorted(set("".join(sequences)))
    idx = {c: i for i, c in enumerate(alphabet)}
    return [[idx[c] for c in s] for s in sequences], alphabet


def score(predicted_counts: np.ndarray, target: int, theta_pred: float) -> tuple[float, float]:
    """(false_positive, false_negative) of one prediction (counts per subpopulation)."""
    v = set(np.flatnonzero(predicted_counts >= theta_pred).tolist())
    o = {int(target)}
    union = len(v | o)
    return len(v - o) / union, len(o - v) / union


def evaluate(records: list[dict], seqs: list[list[int]], theta_pred: float) -> dict:
    """Mean scores of the last elements (and of all elements after the first) over records.

    ``records`` are :meth:`SequenceNetwork.present` results, ``seqs`` their sequences.
    """
    fp, fn, fp_all, fn_all, act = [], [], [], [], []
    for rec, seq in zip(records, seqs):
        pred = rec["predicted"]
        for k in range(1, len(seq)):
            a, b = score(pred[k], seq[k], theta_pred)
            fp_all.append(a)
            fn_all.append(b)
            act.append(rec["active"][k, seq[k]])
        a, b = score(pred[-1], seq[-1], theta_pred)
        fp.append(a)
        fn.append(b)
    fp, fn = float(np.mean(fp)), float(np.mean(fn))
    return {"prediction_error": fp + fn, "false_positive": fp, "false_negative": fn,
            "prediction_error_all": float(np.mean(fp_all) + np.mean(fn_all)),
            "active_per_element": float(np.mean(act))}


def run_sequences(synapses_factory, sequences=SEQUENCES_SHORT, params=None, episodes: int = 40,
                  test_repeats: int = 3, seed: int = 0, progress: bool = False,
                  curve_every: int = 1) -> dict:
    """Train the network on ``sequences`` and test it with plasticity off.

    Parameters
    ----------
    synapses_factory : callable ``(n, rng) -> synapse array``
    sequences : sequence of str
        Letters are symbols; one subpopulation per distinct letter.
    params : NetworkParams, optional
    episodes : int
        Training episodes; each presents every sequence once, in a random order.
    test_repeats : int
        Presentations of each sequence in the test.
    seed : int
        Seeds connectivity, NEST, devices and the order of presentation.
    progress : bool
        A progress bar over episodes.

    Returns
    -------
    dict
        Test scores (:func:`evaluate`), ``curve`` (episode, prediction error of the last
        elements during training), ``pulses`` (device pulses during training), ``n_synapses``,
        ``n_neurons``, ``sim_time_s`` and ``wall_s``.
    """
    from pyaimc.apps.snn.network import NetworkParams, SequenceNetwork

    seqs, alphabet = encode(sequences)
    params = params or NetworkParams()
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()
    net = SequenceNetwork(len(alphabet), lambda n: synapses_factory(n, rng), params, rng)
    theta_pred = params.rho / 2
    curve = []
    it = range(episodes)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="episodes", leave=False)
    for ep in it:
        order = rng.permutation(len(seqs))
        recs = [net.present(seqs[i], plastic=True) for i in order]
        if (ep + 1) % curve_every == 0 or ep == episodes - 1:
            curve.append([ep + 1, evaluate(recs, [seqs[i] for i in order],
                                           theta_pred)["prediction_error"]])
    pulses = int(net.synapses.pulses)
    test_seqs = [s for _ in range(test_repeats) for s in seqs]
    recs = [net.present(s, plastic=False) for s in test_seqs]
    out = evaluate(recs, test_seqs, theta_pred)
    out.update(curve=curve, pulses=pulses, n_synapses=len(net.pre), n_neurons=int(net.n),
               sim_time_s=net.sim_time / 1e3, wall_s=time.perf_counter() - t_start,
               alphabet="".join(alphabet))
    return out


def with_plasticity(params, **changes):
    """A copy of ``params`` with some plasticity parameters changed."""
    return replace(params, plasticity=replace(params.plasticity, **changes))

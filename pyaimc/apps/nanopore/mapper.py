"""Raw-signal mapping by seed and vote: hash seeds of events, search them, vote for a place.

The reference is the pore model's expected level of every k-mer of each genome, both strands,
normalised as reads are. A *seed* is ``k`` consecutive levels (events in a read). Each read seed
is searched in an index of all reference seeds (approximately: a Hamming-threshold search of
their hashes, or an exact search of quantised levels); every hit votes for a diagonal (reference
position minus read position, the read's positions scaled to bases) and the read maps where most
of its seeds agree, when at least ``min_votes`` do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyaimc.apps.nanopore.events import EventSettings, collapse, events
from pyaimc.apps.nanopore.pore import PoreModel, reverse_complement


@dataclass
class Reference:
    """Normalised reference levels of genomes, both strands, and their seeds.

    Attributes
    ----------
    names : list of str
        Genome names; ``genome`` arrays index into it.
    lengths : ndarray
        Genome lengths, bases.
    seeds : ndarray (S, k)
        Every window of ``k`` consecutive levels of every genome and strand.
    genome, strand, pos : ndarray (S,)
        Where each seed lies: genome index, strand (0 ``+``, 1 ``-``) and position in that
        strand's own coordinates (bases from the strand's 5' end).
    k : int
    """

    names: list
    lengths: np.ndarray
    seeds: np.ndarray
    genome: np.ndarray
    strand: np.ndarray
    pos: np.ndarray
    k: int

    @classmethod
    def build(cls, genomes: dict[str, str], pore: PoreModel, k: int,
              merge_delta: float = 0.0) -> "Reference":
        """Seeds of all genomes (both strands) from a pore model; consecutive levels closer than
        ``merge_delta`` (normalised units) are merged (:func:`~.events.collapse`)."""
        names = list(genomes)
        levels, meta = [], []
        for gi, name in enumerate(names):
            for si, seq in enumerate((genomes[name], reverse_complement(genomes[name]))):
                levels.append(pore.levels(seq))
                meta.append((gi, si))
        # one normalisation for all, as every read is normalised by its own median and MAD
        allv = np.concatenate(levels)
        med = np.median(allv)
        mad = 1.4826 * np.median(np.abs(allv - med))
        seeds, g, s, p = [], [], [], []
        for lv, (gi, si) in zip(levels, meta):
            z, first = collapse((lv - med) / mad, merge_delta)
            w = windows(z, k)
            seeds.append(w)
            g.append(np.full(len(w), gi))
            s.append(np.full(len(w), si))
            p.append(first[:len(w)])
        return cls(names, np.array([len(genomes[n]) for n in names]), np.concatenate(seeds),
                   np.concatenate(g), np.concatenate(s), np.concatenate(p), int(k))


def windows(x: np.ndarray, k: int) -> np.ndarray:
    """All windows of ``k`` consecutive values, (len(x) - k + 1, k) (empty when too short)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < k:
        return np.empty((0, k))
    return np.lib.stride_tricks.sliding_window_view(x, k).copy()


@dataclass
class ReadSeeds:
    """Seeds of a batch of reads.

    Attributes
    ----------
    seeds : ndarray (Q, k)
    read : ndarray (Q,)
        Index of the read each seed comes from.
    offset : ndarray (Q,)
        Seed position in the read scaled to bases (event index times the read's estimated
        bases per event).
    n_reads : int
    """

    seeds: np.ndarray
    read: np.ndarray
    offset: np.ndarray
    n_reads: int


def read_seeds(signals: list, k: int, samples: int | None = None,
               settings: EventSettings = EventSettings(), mean_dwell: float = 4000 / 450,
               merge_delta: float = 0.0) -> ReadSeeds:
    """Segment, normalise and cut reads into seeds, using each read's first ``samples`` samples.

    Parameters
    ----------
    signals : list of ndarray
        Raw signals, pA (any affine scale: each read is normalised).
    k : int
    samples : int, optional
        Samples of each read used (the read-until length); all when None.
    settings : EventSettings
    mean_dwell : float
        Samples per base, to turn event indices into bases (events per base vary between reads:
        the read's own events per sample times ``mean_dwell`` estimates it).
    merge_delta : float
        Consecutive events closer than this (normalised) are merged, as the reference's levels.
    """
    seeds, rid, off = [], [], []
    for r, sig in enumerate(signals):
        x = np.asarray(sig, dtype=np.float64)[:samples]
        if x.size < 4 * k:
            continue
        try:
            ev, _ = events(x, settings)
        except ValueError:  # a constant stretch: no events to map
            continue
        ev, _ = collapse(ev, merge_delta)
        w = windows(ev, k)
        if not len(w):
            continue
        bases_per_event = (x.size / mean_dwell) / len(ev)
        seeds.append(w)
        rid.append(np.full(len(w), r))
        off.append(np.arange(len(w)) * bases_per_event)
    if not seeds:
        return ReadSeeds(np.empty((0, k)), np.empty(0, int), np.empty(0), len(signals))
    return ReadSeeds(np.concatenate(seeds), np.concatenate(rid), np.concatenate(off),
                     len(signals))


@dataclass
class Mappings:
    """Where each read mapped.

    Attributes
    ----------
    votes : ndarray (reads,)
        Votes of the best place (0: no hit).
    genome, strand, pos : ndarray (reads,)
        The best place (``-1`` without hits); ``pos`` in the strand's coordinates, bases.
    second : ndarray (reads,)
        Votes of the best place in another genome or strand, or far from the best (for
        confidence filters).
    """

    votes: np.ndarray
    genome: np.ndarray
    strand: np.ndarray
    pos: np.ndarray
    second: np.ndarray = field(default=None)

    def mapped(self, min_votes: int) -> np.ndarray:
        return self.votes >= min_votes


def vote(rs: ReadSeeds, ref: Reference, q_idx: np.ndarray, w_idx: np.ndarray,
         bin_bases: int = 64) -> Mappings:
    """Seed-and-vote: each hit (read seed ``q_idx``, reference seed ``w_idx``) votes for its
    read's diagonal; a seed votes once per place. Two binnings half a bin apart are counted and
    the better one kept, so a place on a bin edge is not split.
    """
    n = rs.n_reads
    votes = np.zeros(n, dtype=np.int64)
    second = np.zeros(n, dtype=np.int64)
    genome, strand, pos = (np.full(n, -1, dtype=np.int64) for _ in range(3))
    q_idx = np.asarray(q_idx, dtype=np.int64)
    w_idx = np.asarray(w_idx, dtype=np.int64)
    if len(q_idx) == 0:
        return Mappings(votes, genome, strand, pos, second)
    r = rs.read[q_idx]
    diag = ref.pos[w_idx] - rs.offset[q_idx]
    gs = ref.genome[w_idx] * 2 + ref.strand[w_idx]
    n_gs = 2 * len(ref.names)
    lo = np.floor(diag.min() / bin_bases) - 1
    n_q = len(rs.seeds) + 1
    for shift in (0.0, 0.5 * bin_bases):
        b = np.floor((diag + shift) / bin_bases - lo).astype(np.int64)
        nb = int(b.max()) + 1
        n_place = n_gs * nb
        key = r * n_place + gs * nb + b
        once = np.unique(key * n_q + q_idx) // n_q          # one vote per seed and place
        k_u, cnt = np.unique(once, return_counts=True)
        rd = k_u // n_place
        order = np.lexsort((-cnt, rd))
        rd, k_u, cnt = rd[order], k_u[order], cnt[order]
        head = np.flatnonzero(np.concatenate([[True], rd[1:] != rd[:-1]]))
        nxt = head + 1
        has2 = nxt < len(rd)
        has2[has2] = rd[nxt[has2]] == rd[head[has2]]
        c2 = np.zeros(len(head), dtype=np.int64)
        c2[has2] = cnt[nxt[has2]]
        rr, c = rd[head], cnt[head]
        better = c > votes[rr]
        rr, c, c2, place = rr[better], c[better], c2[better], k_u[head][better] % n_place
        votes[rr], second[rr] = c, c2
        g_s, bb = np.divmod(place, nb)
        genome[rr], strand[rr] = np.divmod(g_s, 2)
        pos[rr] = np.rint((bb + lo + 0.5) * bin_bases - shift).astype(np.int64)
    return Mappings(votes, genome, strand, pos, second)


def truth_positions(reads, ref: Reference) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Genome index, strand and strand-coordinate start of simulated reads (-1: not in ref)."""
    g = np.full(len(reads), -1)
    s = np.full(len(reads), -1)
    p = np.full(len(reads), -1)
    for i, rd in enumerate(reads):
        if rd.genome in ref.names:
            gi = ref.names.index(rd.genome)
            g[i] = gi
            s[i] = 0 if rd.strand == "+" else 1
            p[i] = rd.start if rd.strand == "+" else ref.lengths[gi] - rd.end
    return g, s, p


def correct(m: Mappings, truth, tolerance: int = 200) -> np.ndarray:
    """True where a read mapped to its true genome and strand within ``tolerance`` bases of
    where its seeds start (the read's first base)."""
    g, s, p = truth
    return (m.genome == g) & (m.strand == s) & (np.abs(m.pos - p) <= tolerance) & (g >= 0)


class SeedIndex:
    """The software baseline: an exact-match index of quantised seeds (as raw-signal mappers
    such as RawHash quantise normalised events into a few levels and hash runs of them).

    Parameters
    ----------
    ref : Reference
    levels : int
        Quantisation levels over ``[-clip, clip]`` of the normalised value.
    clip : float
    """

    def __init__(self, ref: Reference, levels: int = 8, clip: float = 2.5):
        if not 2 <= int(levels) <= 64:
            raise ValueError(f"levels must be in 2..64, got {levels}")
        self.levels, self.clip = int(levels), float(clip)
        bits = int(np.ceil(np.log2(self.levels)))
        if bits * ref.k > 63:
            raise ValueError(f"k = {ref.k} seeds of {bits} bits do not fit a 63-bit key")
        self.bits = bits
        keys = self.keys(ref.seeds)
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def quantise(self, x: np.ndarray) -> np.ndarray:
        step = 2 * self.clip / self.levels
        return np.clip(np.floor((np.asarray(x) + self.clip) / step), 0,
                       self.levels - 1).astype(np.int64)

    def keys(self, seeds: np.ndarray) -> np.ndarray:
        q = self.quantise(seeds)
        key = np.zeros(len(q), dtype=np.int64)
        for j in range(q.shape[1]):
            key = (key << self.bits) | q[:, j]
        return key

    def search(self, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, reference seed) pairs of equal keys."""
        keys = self.keys(seeds)
        lo = np.searchsorted(self.sorted, keys, side="left")
        hi = np.searchsorted(self.sorted, keys, side="right")
        n = hi - lo
        q = np.repeat(np.arange(len(keys)), n)
        start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
        w = self.order[np.arange(n.sum()) + start]
        return q, w


def metrics(mapped: np.ndarray, right: np.ndarray, positive: np.ndarray) -> dict:
    """Precision (right among mapped), recall (right among positives) and F1, in [0, 1]."""
    n_map = int(mapped.sum())
    tp = int((mapped & right).sum())
    n_pos = int(positive.sum())
    prec = tp / n_map if n_map else 0.0
    rec = tp / n_pos if n_pos else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "mapped": n_map, "correct": tp,
            "positives": n_pos}


def best_threshold(votes: np.ndarray, right: np.ndarray, positive: np.ndarray,
                   candidates=range(1, 40)) -> int:
    """The ``min_votes`` of highest F1 (ties: the smallest)."""
    best, arg = -1.0, 1
    for t in candidates:
        f = metrics(votes >= t, right, positive)["f1"]
        if f > best + 1e-12:
            best, arg = f, t
    return arg

"""The virus-detection and metagenomic experiments: every mapper on the same simulated reads.

Reads are simulated from the pore model (the shared data has no real reads): SARS-CoV-2 reads
are the positives; background reads come from random sequence (uniform bases, and a 5th-order
Markov chain trained on the virus so its k-mer composition matches: other genomes are not
available offline, a stated limitation). Each read set is drawn twice with different seeds: the
*tuning* set picks each method's vote threshold, the *test* set reports precision, recall and
F1 (both are recorded).

Methods (``METHODS``):

* ``software_lsh``: Gaussian sign random projections in software, Hamming-threshold search
  with faiss (exact).
* ``device_lsh``: projections on a ReRAM crossbar programmed to one target (the programming
  noise is the random matrix), with the cells' read noise at every hashing; exact search.
* ``device_lsh_cam``: the device hashes searched in a ReRAM TCAM (match-line currents with
  device variability and read noise, sense threshold).
* ``seed_index``: exact matches of quantised event seeds (a software raw-signal mapper).
* ``minimap2``: simulated basecalls (the read's bases with random errors) mapped with mappy:
  the upper bound that basecalling gives.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from pyaimc.apps.nanopore.cam import CellStatistics, TCAM, search_candidates
from pyaimc.apps.nanopore.hashing import DeviceHasher, GaussianHasher, pack
from pyaimc.apps.nanopore.mapper import (Reference, SeedIndex, best_threshold, correct,
                                         metrics, read_seeds, truth_positions, vote)
from pyaimc.apps.nanopore.pore import BASES, PoreModel, encode
from pyaimc.apps.nanopore.signal import SignalSettings, sample_reads

METHODS = ("software_lsh", "device_lsh", "device_lsh_cam", "seed_index", "minimap2")


@dataclass
class Config:
    """Settings of one experiment (defaults: the committed results)."""

    k: int = 12                    # events per seed
    n_bits: int = 64               # hash length
    merge_delta: float = 0.3       # merge consecutive levels closer than this (normalised)
    hamming_threshold: int = 6     # search threshold T (software search and CAM sense reference)
    read_lengths: tuple = (1000, 2000, 4000)    # signal samples used per read
    variabilities: tuple = (0.5, 0.75, 1.0, 1.25)
    n_virus: int = 100             # per set (tuning and test)
    n_background: int = 100
    background_bases: int = 100000  # per background genome
    read_bases: int = 600
    seed: int = 0
    scheme: str = "one_shot"       # write scheme of the hashing crossbar
    bandwidth: float = 1e8         # read-out bandwidth of hashing and CAM search, Hz
    seed_levels: int = 8           # seed-index baseline: quantisation levels
    seed_k: int = 8                # seed-index baseline: events per seed
    basecall_error: float = 0.05   # minimap2 baseline: error rate of simulated basecalls
    tolerance: int = 200           # bases: a mapping is right within this of the true start
    metagenome_genomes: int = 3    # synthetic genomes besides the virus
    metagenome_reads: int = 60     # per genome and set
    methods: tuple = METHODS
    cam_pool: int = 20000          # cells programmed per state for the CAM statistics
    extra: dict = field(default_factory=dict)


def markov_sequence(template: str, length: int, order: int, rng: np.random.Generator) -> str:
    """A random sequence with the ``order``-mer transition frequencies of ``template``."""
    b = encode(template)
    n_ctx = 4 ** order
    ctx = np.zeros(len(b) - order, dtype=np.int64)
    for j in range(order):
        ctx = ctx * 4 + b[j:len(b) - order + j]
    counts = np.ones((n_ctx, 4))
    np.add.at(counts, (ctx, b[order:]), 1)
    cum = np.cumsum(counts / counts.sum(axis=1, keepdims=True), axis=1)
    out = np.empty(length, dtype=np.int64)
    out[:order] = b[:order]
    c = int(ctx[0])
    u = rng.random(length)
    for i in range(order, length):
        x = int(np.searchsorted(cum[c], u[i]))
        out[i] = min(x, 3)
        c = (c * 4 + out[i]) % n_ctx
    return "".join(np.array(list(BASES))[out])


def background_genomes(virus: str, cfg: Config, rng: np.random.Generator) -> dict[str, str]:
    """Uniform random sequence and a Markov-5 sequence with the virus's composition."""
    n = int(cfg.background_bases)
    return {"random_uniform": "".join(np.array(list(BASES))[rng.integers(0, 4, n)]),
            "random_markov5": markov_sequence(virus, n, 5, rng)}


def basecalls(seq: str, error: float, rng: np.random.Generator) -> str:
    """Bases with errors: each base substituted, deleted or followed by an insertion, each with
    chance ``error / 3``."""
    out = []
    for c in seq:
        u = rng.random()
        if u < error / 3:
            out.append(BASES[rng.integers(0, 4)])
        elif u < 2 * error / 3:
            continue
        elif u < error:
            out.append(c)
            out.append(BASES[rng.integers(0, 4)])
        else:
            out.append(c)
    return "".join(out)


class Run:
    """One experiment: references, read sets, device arrays, and each method's evaluation."""

    def __init__(self, cfg: Config, pore: PoreModel, virus: dict[str, str], device_model,
                 progress=None):
        self.cfg, self.pore, self.virus, self.model = cfg, pore, virus, device_model
        self.progress = progress or (lambda msg: None)
        rng = np.random.default_rng(cfg.seed)
        self.rng = rng
        vname, vseq = next(iter(virus.items()))
        self.background = background_genomes(vseq, cfg, rng)
        sig = SignalSettings()
        self.signal_settings = sig
        self.sets = {}
        for split in ("tune", "test"):
            pos = sample_reads(virus, pore, cfg.n_virus, cfg.read_bases, rng, sig, prefix=f"v{split}")
            neg = sample_reads(self.background, pore, cfg.n_background, cfg.read_bases, rng, sig,
                               prefix=f"b{split}")
            self.sets[split] = pos + neg
        self.ref = Reference.build(virus, pore, cfg.k, cfg.merge_delta)
        self.gauss = GaussianHasher(cfg.k, cfg.n_bits, np.random.default_rng(cfg.seed + 1))
        t = time.perf_counter()
        self.hasher = DeviceHasher.program(device_model, cfg.k, cfg.n_bits,
                                           np.random.default_rng(cfg.seed + 2),
                                           scheme=cfg.scheme, bandwidth=cfg.bandwidth)
        self.cam_stats = CellStatistics.from_model(device_model, np.random.default_rng(cfg.seed + 3),
                                                   n=cfg.cam_pool)
        self.timing = {"program_s": time.perf_counter() - t}
        self._seeds = {}
        self.cam_radius = {}
        self.outcomes = {}      # (method, read length, variability) -> per-read test outcome

    # ------------------------------------------------------------ pieces
    def seeds(self, split: str, samples: int):
        key = (split, samples)
        if key not in self._seeds:
            self._seeds[key] = read_seeds([r.current for r in self.sets[split]], self.cfg.k,
                                          samples=samples, merge_delta=self.cfg.merge_delta)
        return self._seeds[key]

    def truth(self, split: str):
        reads = self.sets[split]
        return truth_positions(reads, self.ref), np.array([r.genome in self.virus for r in reads])

    def _evaluate(self, votes_of) -> dict:
        """Tune ``min_votes`` on the tuning set, report on the test set."""
        out = {}
        for split in ("tune", "test"):
            m = votes_of(split)
            truth, positive = self.truth(split)
            out[split] = (m, correct(m, truth, self.cfg.tolerance), positive)
        m, right, positive = out["tune"]
        thr = best_threshold(m.votes, right, positive)
        tuned = metrics(m.votes >= thr, right, positive)
        m, right, positive = out["test"]
        mapped = m.votes >= thr
        res = metrics(mapped, right, positive)
        res["min_votes"] = int(thr)
        res["f1_tune"] = tuned["f1"]
        self.last_outcome = (mapped, right & mapped, positive)
        res["f1_ci95"] = bootstrap_f1(*self.last_outcome, self.cfg.seed)
        return res

    def device_codes(self, seeds: np.ndarray, noise: float, rng) -> np.ndarray:
        h = self.hasher
        h.noise_scale = noise
        return pack(h.hash(seeds, rng))

    # ------------------------------------------------------------ methods
    def software_lsh(self, samples: int) -> dict:
        T = self.cfg.hamming_threshold
        rc = pack(self.gauss.hash(self.ref.seeds))

        def votes(split):
            rs = self.seeds(split, samples)
            q, w, _ = search_candidates(rc, pack(self.gauss.hash(rs.seeds)), T)
            return vote(rs, self.ref, q, w)
        return self._evaluate(votes)

    def device_lsh(self, samples: int, variability: float, cam: bool) -> dict:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 7, int(round(variability * 1000)), samples])
        # the index is hashed once on the chip (one noisy read per reference seed)
        rc = self.device_codes(self.ref.seeds, variability, rng)
        tcam = None
        if cam:
            bits = np.unpackbits(rc, axis=1, count=cfg.n_bits).astype(bool)
            tcam = TCAM.build(bits, self.cam_stats, cfg.hamming_threshold, rng,
                              variability=variability, bandwidth=cfg.bandwidth,
                              noise_scale=variability)
            radius = tcam.candidate_radius(rng)
            self.cam_radius[variability] = radius

        def votes(split):
            rs = self.seeds(split, samples)
            qc = self.device_codes(rs.seeds, variability, rng)
            if tcam is None:
                q, w, _ = search_candidates(rc, qc, cfg.hamming_threshold)
            else:
                q, w, _ = search_candidates(rc, qc, radius)
                hit = tcam.match(tcam.pair_currents(qc, q, w, rng))
                q, w = q[hit], w[hit]
            return vote(rs, self.ref, q, w)
        return self._evaluate(votes)

    def seed_index(self, samples: int) -> dict:
        cfg = self.cfg
        ref = Reference.build(self.virus, self.pore, cfg.seed_k, cfg.merge_delta)
        ix = SeedIndex(ref, levels=cfg.seed_levels)
        keep_ref = self.ref

        def votes(split):
            rs = read_seeds([r.current for r in self.sets[split]], cfg.seed_k, samples=samples,
                            merge_delta=cfg.merge_delta)
            q, w = ix.search(rs.seeds)
            return vote(rs, ref, q, w)
        self.ref = ref
        try:
            return self._evaluate(votes)
        finally:
            self.ref = keep_ref

    def minimap2(self, samples: int) -> dict:
        import mappy

        cfg = self.cfg
        name, seq = next(iter(self.virus.items()))
        aligner = mappy.Aligner(seq=seq, preset="map-ont")
        if not aligner:
            raise RuntimeError("mappy could not index the reference")
        res = {}
        for split in ("tune", "test"):
            rng = np.random.default_rng([cfg.seed, 11, samples, split == "test"])
            reads = self.sets[split]
            truth, positive = self.truth(split)
            g, s, p = truth
            mapped = np.zeros(len(reads), dtype=bool)
            right = np.zeros(len(reads), dtype=bool)
            for i, r in enumerate(reads):
                # the bases whose k-mer entered the pore within the first ``samples`` samples
                n_b = int(np.searchsorted(r.boundaries, samples)) + self.pore.k - 1
                bc = basecalls(r.sequence[:n_b], cfg.basecall_error, rng)
                hits = list(aligner.map(bc))
                if not hits:
                    continue
                h = hits[0]
                mapped[i] = True
                strand = 0 if h.strand == 1 else 1
                start = h.r_st if strand == 0 else len(seq) - h.r_en
                right[i] = (g[i] == 0) and strand == s[i] and abs(start - p[i]) <= cfg.tolerance
            res[split] = metrics(mapped, right, positive)
        out = dict(res["test"])
        out["f1_tune"] = res["tune"]["f1"]
        self.last_outcome = (mapped, right & mapped, positive)
        out["f1_ci95"] = bootstrap_f1(*self.last_outcome, self.cfg.seed)
        return out

    # ------------------------------------------------------------ all
    def rows(self) -> list[dict]:
        cfg = self.cfg
        rows = []
        for samples in cfg.read_lengths:
            for method in cfg.methods:
                vs = cfg.variabilities if method in ("device_lsh", "device_lsh_cam") else (None,)
                for v in vs:
                    t = time.perf_counter()
                    if method == "software_lsh":
                        r = self.software_lsh(samples)
                    elif method == "device_lsh":
                        r = self.device_lsh(samples, v, cam=False)
                    elif method == "device_lsh_cam":
                        r = self.device_lsh(samples, v, cam=True)
                    elif method == "seed_index":
                        r = self.seed_index(samples)
                    elif method == "minimap2":
                        r = self.minimap2(samples)
                    else:
                        raise ValueError(f"unknown method {method!r}; known: {METHODS}")
                    row = {"method": method, "read_length": int(samples), "variability": v}
                    row.update(r)
                    if method == "device_lsh_cam":
                        row["cam_radius"] = int(self.cam_radius[v])
                    row["seconds"] = time.perf_counter() - t
                    rows.append(row)
                    self.outcomes[(method, int(samples), v)] = self.last_outcome
                    self.progress(f"{method} samples={samples} variability={v}: "
                                  f"F1 {row['f1']:.3f} (tune {row['f1_tune']:.3f})")
        return rows

    def config_dict(self) -> dict:
        return asdict(self.cfg)


def metagenomic(cfg: Config, pore: PoreModel, virus: dict[str, str], hasher_of,
                samples: int, rng: np.random.Generator, tcam_of=None) -> dict:
    """Classify reads of several genomes by the genome their seeds vote for.

    The genomes are the virus and ``cfg.metagenome_genomes`` synthetic ones (random sequences
    of different composition: a stated stand-in for real microbial genomes). ``hasher_of`` maps
    a method name to a hashing function ``seeds -> packed codes``; ``tcam_of`` optionally to a
    function ``(index codes) -> search(query codes) -> (q, w)``.

    Returns
    -------
    dict
        Per method: accuracy over all reads, macro precision/recall/F1 over genomes, on the test
        set with the vote threshold tuned on the tuning set.
    """
    vname, vseq = next(iter(virus.items()))
    genomes = dict(virus)
    gcs = np.linspace(0.3, 0.6, cfg.metagenome_genomes)
    for j, gc in enumerate(gcs):
        p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
        genomes[f"synthetic_gc{gc:.2f}"] = "".join(
            np.array(list(BASES))[rng.choice(4, size=len(vseq), p=p)])
    names = list(genomes)
    ref = Reference.build(genomes, pore, cfg.k, cfg.merge_delta)
    sets = {s: sample_reads(genomes, pore, cfg.metagenome_reads * len(names), cfg.read_bases, rng,
                            prefix=f"m{s}", weights=np.ones(len(names))) for s in ("tune", "test")}
    out = {}
    for method, hash_fn in hasher_of.items():
        rc = hash_fn(ref.seeds)
        search = tcam_of[method](rc) if tcam_of and method in tcam_of else (
            lambda qc, rc=rc: search_candidates(rc, qc, cfg.hamming_threshold)[:2])
        res = {}
        for split, reads in sets.items():
            rs = read_seeds([r.current for r in reads], cfg.k, samples=samples,
                            merge_delta=cfg.merge_delta)
            q, w = search(hash_fn(rs.seeds))
            res[split] = (vote(rs, ref, q, w), np.array([names.index(r.genome) for r in reads]))
        m, true = res["tune"]
        best, thr = -1.0, 1
        for t in range(1, 40):
            f = _macro(m, true, t, len(names))["f1"]
            if f > best + 1e-12:
                best, thr = f, t
        m, true = res["test"]
        r = _macro(m, true, thr, len(names))
        r["min_votes"] = thr
        r["f1_tune"] = best
        out[method] = r
    out["genomes"] = names
    out["read_length"] = int(samples)
    return out


def _f1(mapped, right, positive) -> np.ndarray:
    """F1 of each row of boolean outcome arrays (resamples x reads)."""
    n_map = mapped.sum(axis=-1)
    tp = right.sum(axis=-1)
    n_pos = positive.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n_map > 0, tp / np.maximum(n_map, 1), 0.0)
        r = np.where(n_pos > 0, tp / np.maximum(n_pos, 1), 0.0)
        return np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)


def bootstrap_f1(mapped, right, positive, seed: int = 0, n: int = 2000) -> list:
    """95 % bootstrap interval of F1 over the test reads (reads resampled with replacement)."""
    rng = np.random.default_rng([seed, 2024])
    idx = rng.integers(0, len(mapped), (n, len(mapped)))
    f = _f1(mapped[idx], right[idx], positive[idx])
    return [float(np.quantile(f, 0.025)), float(np.quantile(f, 0.975))]


def paired_gap(a, b, seed: int = 0, n: int = 2000) -> dict:
    """F1 of outcome ``b`` minus F1 of ``a`` on the same reads, with a paired 95 % bootstrap
    interval (points of F1 x 100)."""
    rng = np.random.default_rng([seed, 2025])
    idx = rng.integers(0, len(a[0]), (n, len(a[0])))
    fa = _f1(*(x[idx] for x in a))
    fb = _f1(*(x[idx] for x in b))
    d = 100 * (fb - fa)
    return {"gap_points": float(100 * (_f1(*b) - _f1(*a))),
            "gap_ci95": [float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))]}


def _macro(m, true, thr: int, n_classes: int) -> dict:
    pred = np.where(m.votes >= thr, m.genome, -1)
    ps, rs = [], []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (true == c))
        ps.append(tp / max(1, np.sum(pred == c)))
        rs.append(tp / max(1, np.sum(true == c)))
    p, r = float(np.mean(ps)), float(np.mean(rs))
    return {"accuracy": float(np.mean(pred == true)), "precision": p, "recall": r,
            "f1": 2 * p * r / (p + r) if p + r > 0 else 0.0}

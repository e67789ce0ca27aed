"""Raw nanopore signal mapping (issue 17): pore-model signals, events, device-noise hashing, the
ReRAM TCAM against its circuit simulation, the seed-and-vote mapper."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.apps.nanopore.cam import TCAM, CellStatistics, on_resistance, search_candidates
from pyaimc.apps.nanopore.events import EventSettings, collapse, events, segment
from pyaimc.apps.nanopore.hashing import DeviceHasher, GaussianHasher, hamming, pack
from pyaimc.apps.nanopore.mapper import (Reference, SeedIndex, correct, read_seeds,
                                         truth_positions, vote, windows)
from pyaimc.apps.nanopore.pore import PoreModel, read_fasta, reverse_complement
from pyaimc.apps.nanopore.signal import SignalSettings, digitise, sample_reads, simulate_signal
from tests.conftest import need_ngspice, need_shared

PORE = "r9.4_450bps_6mer_template_median68pA.model"


@pytest.fixture(scope="module")
def pore():
    return PoreModel.load(need_shared("nanopore", PORE))


@pytest.fixture(scope="module")
def virus():
    return read_fasta(need_shared("nanopore", "nCoV-2019.reference.fasta"))


@pytest.fixture(scope="module")
def cam_stats(shipped_model):
    return CellStatistics.from_model(shipped_model, np.random.default_rng(0), n=4000)


# ------------------------------------------------------------------ signals


def test_pore_model_and_reference(pore, virus):
    assert pore.k == 6 and pore.level_mean.size == 4096
    assert pore.levels("AAAAAA")[0] == pytest.approx(86.486336)
    seq = virus["MN908947.3"]
    assert len(seq) == 29903
    lv = pore.levels(seq[:100])
    assert lv.size == 95 and np.all((lv > 40) & (lv < 140))
    assert reverse_complement("AACGT") == "ACGTT"


def test_signal_dwell_noise_and_drift(pore):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4096, 20000)
    levels, sd = pore.level_mean[codes], pore.level_stdv[codes]
    flat = SignalSettings(gain_sd=0.0, offset_sd=0.0, drift_sd=0.0)
    x, starts = simulate_signal(levels, sd, rng, flat)
    # mean dwell 4000 / 450 = 8.89 samples per base
    assert x.size / len(levels) == pytest.approx(flat.mean_dwell, rel=0.03)
    dwell = np.diff(np.concatenate([starts, [x.size]]))
    truth = np.repeat(levels, dwell)
    z = (x - truth) / np.repeat(sd, dwell)
    assert np.std(z) == pytest.approx(1.0, abs=0.02)
    assert abs(np.mean(z)) < 0.02
    # each read its own gain and offset: two reads of the same k-mers differ before normalising
    a, _ = simulate_signal(levels[:300], sd[:300], np.random.default_rng(2))
    b, _ = simulate_signal(levels[:300], sd[:300], np.random.default_rng(3))
    assert abs(np.median(a) - np.median(b)) > 0.5
    # ADC round trip: int16 counts back to pA within half a count (0.09 pA)
    raw = digitise(x[:1000])
    back = (raw + flat.adc_offset) * flat.adc_range / flat.digitisation
    assert np.max(np.abs(back - x[:1000])) <= 0.5 * flat.adc_range / flat.digitisation + 1e-9


def test_segmentation_finds_clear_steps():
    rng = np.random.default_rng(4)
    levels = np.cumsum(rng.choice([-1, 1], 300) * rng.uniform(8, 15, 300)) + 100
    dwell = rng.integers(6, 14, 300)
    x = np.repeat(levels, dwell) + 0.8 * rng.standard_normal(dwell.sum())
    b = segment(x, EventSettings())
    true = np.cumsum(dwell)[:-1]
    d = np.abs(b[:, None] - true[None, :]).min(axis=0)
    assert np.mean(d <= 1) > 0.97
    # three-sample t-tests split some dwells (12 % extra events here); merging steps smaller
    # than the smallest true step removes the splits and keeps every true event
    extra = len(b) - 2 - len(true)
    assert 0 <= extra <= 0.15 * len(true)
    means, starts = events(x)
    assert np.median(means) == pytest.approx(0.0, abs=1e-9)
    assert len(collapse(means, 0.1)[0]) == len(true) + 1


def test_collapse_merges_small_steps():
    v, first = collapse(np.array([0.0, 0.1, 1.0, 1.05, 1.1, -1.0]), 0.3)
    assert np.allclose(v, [0.05, 1.05, -1.0]) and list(first) == [0, 2, 5]


def test_pod5_and_slow5_round_trip(pore, virus, tmp_path):
    from pyaimc.apps.nanopore.files import read_reads, write_pod5, write_slow5

    reads = sample_reads(virus, pore, 3, 80, np.random.default_rng(5))
    for name, write, module in (("r.pod5", write_pod5, "pod5"),
                                ("r.blow5", write_slow5, "pyslow5")):
        pytest.importorskip(module)
        back = read_reads(write(tmp_path / name, reads))
        assert len(back) == 3
        for a, b in zip(reads, back):
            assert np.array_equal(a.raw, b.raw)
            assert np.max(np.abs(a.current - b.current)) < 1e-4  # pA
            assert b.sample_rate == 4000.0
    with pytest.raises(ValueError, match="unknown raw-read format"):
        read_reads(write_pod5(tmp_path / "x.pod5", reads).rename(tmp_path / "x.fast5"))


# ------------------------------------------------------------------ hashing


def test_device_hashing_is_reproducible_by_seed(shipped_model):
    seeds = np.random.default_rng(6).standard_normal((50, 12))
    a = DeviceHasher.program(shipped_model, 12, 32, np.random.default_rng(7))
    b = DeviceHasher.program(shipped_model, 12, 32, np.random.default_rng(7))
    c = DeviceHasher.program(shipped_model, 12, 32, np.random.default_rng(8))
    assert np.array_equal(a.conductances, b.conductances)
    assert not np.array_equal(a.conductances, c.conductances)
    ha = a.hash(seeds, np.random.default_rng(9))
    assert np.array_equal(ha, b.hash(seeds, np.random.default_rng(9)))
    assert np.mean(ha != c.hash(seeds, np.random.default_rng(9))) > 0.3
    g1 = GaussianHasher(12, 32, np.random.default_rng(1)).hash(seeds)
    assert np.array_equal(g1, GaussianHasher(12, 32, np.random.default_rng(1)).hash(seeds))
    # every cell was programmed to one target: the projection is their zero-mean deviations
    m = a.matrix
    assert abs(m.mean()) < 0.2 * m.std()
    assert a.conductances.std() / a.conductances.mean() > 0.05


def test_device_hash_is_locality_sensitive(shipped_model):
    """Sign random projection: P(bit differs) = angle / pi for Gaussian directions; the device's
    programming noise gives directions close enough to that law."""
    rng = np.random.default_rng(10)
    h = DeviceHasher.program(shipped_model, 16, 256, rng)
    x = rng.standard_normal((200, 16))
    y = x + 0.4 * rng.standard_normal((200, 16))
    cos = np.sum(x * y, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    expect = np.arccos(cos) / np.pi
    got = hamming(pack(h.hash(x)), pack(h.hash(y))) / 256
    assert np.mean(got) == pytest.approx(np.mean(expect), abs=0.03)
    assert np.corrcoef(got, expect)[0, 1] > 0.8


# ------------------------------------------------------------------ CAM


def test_tcam_match_line_against_circuit_engine(cam_stats):
    from pyaimc.circuit import AccessTransistor

    rng = np.random.default_rng(11)
    bits = rng.random((8, 16)) < 0.5
    acc = AccessTransistor()
    cam = TCAM.build(bits, cam_stats, 3, rng, r_on=on_resistance(acc), bandwidth=0.0)
    q = bits[[0, 1, 2, 3]].copy()
    for i, flips in enumerate((0, 2, 4, 8)):
        q[i, :flips] ^= True
    beh = cam.ml_currents(q)
    circ = cam.circuit_ml_currents(q, r_wire=0.0, engine="fast", access=acc)
    # the behavioural model takes the access transistor as its small-signal on-resistance
    assert np.max(np.abs(circ - beh) / beh) < 5e-3
    assert np.array_equal(cam.match(circ), cam.match(beh))
    # the word the query came from matches unless too many bits were flipped
    assert cam.match(beh[np.arange(4), [0, 1, 2, 3]]).tolist() == [True, True, False, False]
    # wires: a small IR drop lowers the currents
    wired = cam.circuit_ml_currents(q[:1], r_wire=0.1, engine="fast", access=acc)
    assert np.all(wired < circ[:1]) and np.max(1 - wired / circ[:1]) < 0.05


def test_tcam_circuit_engines_agree(cam_stats):
    need_ngspice()
    from pyaimc.circuit import AccessTransistor

    rng = np.random.default_rng(12)
    bits = rng.random((4, 8)) < 0.5
    cam = TCAM.build(bits, cam_stats, 2, rng, bandwidth=0.0)
    q = bits[:1]
    acc = AccessTransistor()
    fast = cam.circuit_ml_currents(q, r_wire=1.0, engine="fast", access=acc)
    spice = cam.circuit_ml_currents(q, r_wire=1.0, engine="ngspice", access=acc)
    assert np.max(np.abs(fast - spice) / np.abs(spice)) < 1e-5


def test_tcam_pair_currents_and_candidate_radius(cam_stats):
    rng = np.random.default_rng(13)
    bits = rng.random((3000, 32)) < 0.5
    cam = TCAM.build(bits, cam_stats, 4, rng, variability=1.0, bandwidth=0.0)
    q = bits[:40].copy()
    q[:, :3] ^= True
    q[20:, 3:8] ^= True
    dense = cam.ml_currents(q)
    qc = pack(q)
    qi = np.repeat(np.arange(40), 3000)
    wi = np.tile(np.arange(3000), 40)
    assert np.allclose(cam.pair_currents(qc, qi, wi), dense.ravel(), rtol=1e-6)
    # the truncated search (exact currents only within the radius) finds every dense match
    radius = cam.candidate_radius(rng)
    assert cam.threshold <= radius < 32
    qs, ws, _ = search_candidates(cam.codes, qc, radius)
    got = set(zip(qs[cam.match(cam.pair_currents(qc, qs, ws))].tolist(),
                  ws[cam.match(cam.pair_currents(qc, qs, ws))].tolist()))
    want = set(zip(*np.nonzero(cam.match(dense))))
    assert got == {(int(a), int(b)) for a, b in want}
    # more spread blurs the threshold: words 2 bits beyond T match more often
    p1 = cam.match_probability(cam.threshold + 2, rng, 20000)
    wide = TCAM.build(bits, cam_stats, 4, rng, variability=2.0, bandwidth=0.0)
    assert wide.match_probability(4 + 2, rng, 20000) > p1


# ------------------------------------------------------------------ mapping


def test_seed_and_vote_maps_virus_reads(pore, virus):
    rng = np.random.default_rng(14)
    g = {"v": virus["MN908947.3"][:6000]}
    bg = {"bg": "".join(rng.choice(list("ACGT"), 6000))}
    reads = sample_reads(g, pore, 10, 400, rng) + sample_reads(bg, pore, 10, 400, rng)
    ref = Reference.build(g, pore, 12, 0.3)
    rs = read_seeds([r.current for r in reads], 12, samples=2000, merge_delta=0.3)
    h = GaussianHasher(12, 64, np.random.default_rng(15))
    q, w, _ = search_candidates(pack(h.hash(ref.seeds)), pack(h.hash(rs.seeds)), 6)
    m = vote(rs, ref, q, w)
    right = correct(m, truth_positions(reads, ref))
    assert right[:10].sum() >= 8          # virus reads mapped to their place
    assert np.max(m.votes[10:]) < np.median(m.votes[:10])   # background gets few votes


def test_seed_index_is_exact_match():
    x = np.random.default_rng(16).standard_normal(500)
    ref = Reference(["g"], np.array([500]), windows(x, 6), np.zeros(495, int),
                    np.zeros(495, int), np.arange(495), 6)
    ix = SeedIndex(ref, levels=4)
    qs = windows(x[100:150], 6)
    q, w = ix.search(qs)
    keys_r, keys_q = ix.keys(ref.seeds), ix.keys(qs)
    brute = {(i, j) for i in range(len(qs)) for j in range(len(ref.seeds)) if keys_q[i] == keys_r[j]}
    assert set(zip(q.tolist(), w.tolist())) == brute
    assert all((i, i + 100) in brute for i in range(len(qs)))


def test_numpy_search_equals_faiss(monkeypatch):
    pytest.importorskip("faiss")
    import sys

    rng = np.random.default_rng(17)
    idx = pack(rng.random((500, 64)) < 0.5)
    qry = pack(rng.random((30, 64)) < 0.5)
    a = search_candidates(idx, qry, 26)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now fails
    b = search_candidates(idx, qry, 26, chunk=7)
    assert len(a[0]) > 100
    assert set(zip(*(x.tolist() for x in a))) == set(zip(*(x.tolist() for x in b)))


def test_analog_cam_ranges_and_programming_spread(cam_stats):
    from pyaimc.apps.nanopore.cam import AnalogCAM

    rng = np.random.default_rng(18)
    x = rng.uniform(-2, 2, (400, 8))
    ideal = AnalogCAM(x - 0.3, x + 0.3, cam_stats, rng, variability=0.0)
    assert np.allclose(ideal.lo, x - 0.3) and np.allclose(ideal.hi, x + 0.3)
    q = x[:50] + rng.uniform(-0.25, 0.25, (50, 8))
    hit = ideal.match(q)
    assert np.all(hit[np.arange(50), np.arange(50)])        # every word finds its own query
    q_far = x[:50].copy()
    q_far[:, 0] += 0.5
    assert not np.any(ideal.match(q_far)[np.arange(50), np.arange(50)])
    loose = AnalogCAM(x - 0.3, x + 0.3, cam_stats, rng, max_mismatch=1, variability=0.0)
    assert np.all(loose.match(q_far)[np.arange(50), np.arange(50)])
    # programmed bounds move by the pool's relative write spread, scaled by the variability
    real = AnalogCAM(x - 0.3, x + 0.3, cam_stats, rng, variability=1.0)
    g = np.concatenate([cam_stats.g_lrs])
    rel = np.std(g / np.median(g) - 1)
    slope = 8.0 / (1e-4 - 5e-6)
    g_lo = 5e-6 + (x - 0.3 + 4.0) / slope
    expect = np.sqrt(np.mean((slope * g_lo * rel) ** 2))
    assert np.std(real.lo - ideal.lo) == pytest.approx(expect, rel=0.15)

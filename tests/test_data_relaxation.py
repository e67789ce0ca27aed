"""Relaxation, bake, read-trace and RADAR retention loaders: shapes, values, clear errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyaimc.data import DataError
from pyaimc.data.relaxation import (detect_relaxation_format, hash_half, line_levels, load_bake,
                                    load_readback, load_relaxation, load_retention_experiment,
                                    load_traces, load_write_log, radar_retention_experiments)
from tests.conftest import need_shared


def relax_rows(n_cells=4, times=(0.0, 0.01, 1.0, 100.0), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_cells):
        g0 = rng.uniform(5e-6, 1e-4)
        for tp in times:
            g = g0 if tp == 0 else g0 * (1 + 0.05 * rng.standard_normal())
            t = tp * rng.uniform(0.9, 1.1)
            rows.append([100 + c, t, 1 / g, g, g0, c % 3, tp])
    return rows


def write_rows(path, rows, gz=False):
    text = "\n".join("\t".join(repr(float(v)) if not isinstance(v, str) else v for v in r)
                     for r in rows) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_relaxation_round_trip(tmp_path):
    rows = relax_rows()
    d = load_relaxation(write_rows(tmp_path / "r.tsv.gz", rows, gz=True))
    assert d.n_cells == 4 and list(d.timepoints) == [0.01, 1.0, 100.0]
    r = np.array(rows)
    assert d.g0[1] == r[4, 4] and d.g[1, 2] == r[7, 3] and d.time[1, 2] == r[7, 1]
    assert list(d.level) == [0, 1, 2, 0]
    np.testing.assert_allclose(d.delta[:, 0], r[1::4, 3] - r[1::4, 4], rtol=0, atol=1e-20)
    assert detect_relaxation_format(tmp_path / "r.tsv.gz") == "relaxation"


@pytest.mark.parametrize("edit, message", [
    (lambda r: r[3].__setitem__(3, 2e-5), "is not 1/r"),
    (lambda r: r[3].pop(), "row 4 has 6 columns; expected 7"),
    (lambda r: r[2].__setitem__(1, "abc"), "row 3, column 2 (time): 'abc' is not a number"),
    (lambda r: r[5].__setitem__(4, r[5][4] * 1.5), "expected one g_initial per cell"),
    (lambda r: r[5].__setitem__(5, 7), "expected one level per cell"),
    (lambda r: r.append(list(r[2])), "repeats cell 100 at time point 1 s"),
    (lambda r: r[2].__setitem__(1, 5.0), "within a factor 2 of the row's time point"),
    (lambda r: r[0].__setitem__(1, 0.5), "the time-point-0 read"),
    (lambda r: r[3].__setitem__(0, 1.5), "column 1 (addr): 1.5; expected a non-negative integer"),
    (lambda r: (r[3].__setitem__(2, 1e-5), r[3].__setitem__(3, 1e5)), "conductance in siemens"),
])
def test_relaxation_bad_input(tmp_path, edit, message):
    rows = [list(r) for r in relax_rows()]
    edit(rows)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_relaxation(write_rows(tmp_path / "bad.tsv", rows))


def test_relaxation_empty_and_missing(tmp_path):
    (tmp_path / "e.tsv").write_text("\n\n")
    with pytest.raises(DataError, match="empty file"):
        load_relaxation(tmp_path / "e.tsv")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_relaxation(tmp_path / "nope.tsv")
    (tmp_path / "z.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="damaged gzip"):
        load_relaxation(tmp_path / "z.gz")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 15), col=st.integers(0, 6),
       token=st.sampled_from(["nan", "inf", "x", "", "1e999", "--1"]))
def test_relaxation_fuzz_one_bad_token(tmp_path, row, col, token):
    rows = [list(r) for r in relax_rows()]
    rows[row][col] = token
    path = write_rows(tmp_path / "f.tsv", rows)
    with pytest.raises(DataError) as err:
        load_relaxation(path)
    # one line naming the file and the row
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"row {row + 1}" in msg


def bake_rows():
    rows = []
    for c, g0 in enumerate([1e-5, 5e-5, 9e-5]):
        for temp in (100.0, 150.0):
            g1 = g0 * 0.9
            rows += [[10 + c, 0.0, 1 / g0, g0, temp], [10 + c, 4000.0 + c, 1 / g1, g1, temp]]
    return rows


def test_bake_pairs(tmp_path):
    b = load_bake(write_rows(tmp_path / "b.tsv", bake_rows()))
    assert len(b.addr) == 6 and list(b.temperatures) == [100.0, 150.0]
    k = np.flatnonzero((b.addr == 11) & (b.temp_c == 150.0))[0]
    assert b.g0[k] == 5e-5 and b.g[k] == pytest.approx(4.5e-5) and b.time[k] == 4001.0
    assert detect_relaxation_format(tmp_path / "b.tsv") == "bake"


def test_bake_bad_input(tmp_path):
    rows = bake_rows()
    with pytest.raises(DataError, match=r"row 1: cell 10 at 100 C has no read after the bake"):
        load_bake(write_rows(tmp_path / "a.tsv", [rows[0]] + rows[2:]))
    with pytest.raises(DataError, match=r"cell 10 at 100 C has no read at time 0"):
        load_bake(write_rows(tmp_path / "b.tsv", rows[1:]))
    bad = [list(r) for r in rows]
    bad[4][4] = 5000.0
    with pytest.raises(DataError, match=r"row 5, column 5 \(temp\): 5000; expected a temperature"):
        load_bake(write_rows(tmp_path / "c.tsv", bad))


def test_traces(tmp_path):
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-5, 2e-5, (2, 64))
    text = "\n".join("\t".join([str(lv), "0"] + [repr(float(v)) for v in row])
                     for lv, row in zip((3, 9), g))
    p = tmp_path / "techX-timeseries.tsv"
    p.write_text(text)
    with pytest.raises(DataError, match="sample rate unknown"):
        load_traces(p)
    (tmp_path / "techX-settings.json").write_text('{"fs": 250}')
    tr = load_traces(p)
    assert tr.fs == 250 and list(tr.level) == [3, 9] and tr.duration == pytest.approx(64 / 250)
    np.testing.assert_array_equal(tr.g, g)
    assert detect_relaxation_format(p) is None  # fewer than 100 columns
    p.write_text(text.replace(repr(float(g[1, 5])), "-1e-6"))
    with pytest.raises(DataError, match="row 2, column 8"):
        load_traces(p, fs=10.0)


def test_hash_half_is_balanced_and_not_parity():
    addr = np.arange(20000)
    h = hash_half(addr)
    assert abs(h.mean() - 0.5) < 0.01
    assert abs(np.mean(h == addr % 2) - 0.5) < 0.02
    assert np.array_equal(h, hash_half(addr))


def test_line_levels_rule():
    lv = line_levels(1024, 8)
    assert list(lv[:3]) == [0, 1, 2] and lv[32] == 1 and lv[33] == 2
    assert np.bincount(lv).min() == 128


def test_readback_and_write_log_errors(tmp_path):
    (tmp_path / "r.csv").write_text("4000\n5000\n")
    with pytest.raises(DataError, match="2 resistances; expected a multiple of 4"):
        load_readback(tmp_path / "r.csv", n_cells=4)
    (tmp_path / "r.csv").write_text("4000\n-5\n")
    with pytest.raises(DataError, match="r.csv.*row 2.*-5"):
        load_readback(tmp_path / "r.csv", n_cells=2)
    (tmp_path / "w.csv").write_text("1\t2\t1\t1\t5000\t0\t6000\t5000\t1\t1\t1\n")
    with pytest.raises(DataError, match=r"row 1, column 8 \(r_hi\).*window top above r_lo"):
        load_write_log(tmp_path / "w.csv")


def test_retention_experiment_pairs_writes_with_lines(tmp_path):
    # 2 bits per cell, 64 cells at base 500; windows per level in ohm
    windows = [(0.0, 5000.0), (5900.0, 6600.0), (8400.0, 9400.0), (80000.0, 1e7)]
    lv = line_levels(64, 4)
    rows = []
    for i in range(64):
        lo, hi = windows[lv[i]]
        rows.append([500 + i, 2, 1, 1, (lo + hi) / 2 if hi < 1e7 else 1e5, 0, lo, hi, 1, 1, 1])
    rows.append([500 + 5, 3, 2, 1, 6000.0, 0, 5900.0, 6600.0, 1, 1, 1])  # rewrite of line 5
    write_rows(tmp_path / "w.csv", rows)
    (tmp_path / "pre.csv").write_text("\n".join(["6000"] * 64))
    (tmp_path / "post.csv").write_text("\n".join(["6100"] * 128))
    ex = load_retention_experiment(tmp_path / "w.csv", tmp_path / "pre.csv",
                                   tmp_path / "post.csv", 2, n_cells=64)
    assert ex.addr[0] == 500 and ex.agreement == 1.0
    assert ex.post.shape == (2, 64) and ex.r_written[5] == 6000.0
    assert ex.window_lo[2] == 8400.0
    rows[3][6], rows[3][7] = windows[0]  # a write in another level's window ...
    rows[5][6], rows[5][7] = windows[0]
    write_rows(tmp_path / "w.csv", rows)
    with pytest.raises(DataError, match="cannot pair the write log"):  # ... 3 % disagree
        load_retention_experiment(tmp_path / "w.csv", tmp_path / "pre.csv",
                                  tmp_path / "post.csv", 2, n_cells=64)


def test_shared_relaxation_files():
    d = load_relaxation(need_shared("rram_relaxation", "techB-relaxation.tsv.gz"))
    assert d.n_cells == 7981 and list(d.timepoints) == [0.01, 0.1, 1, 100, 1000, 10000]
    i = np.flatnonzero(d.addr == 32769)[0]  # first row of the file
    assert d.g0[i] == pytest.approx(4.817059241803271e-05, rel=1e-12) and d.level[i] == 12
    c = load_relaxation(need_shared("rram_relaxation", "techC-relaxation.tsv.gz"))
    assert c.n_cells == 8163 and int(np.sum(c.g <= 0)) == 1
    b = load_bake(need_shared("rram_relaxation", "techB-bake.tsv.gz"))
    assert len(b.addr) == 81920 and list(b.temperatures) == [100, 140, 180, 220, 260]
    tr = load_traces(need_shared("rram_relaxation", "techA-timeseries.tsv.gz"))
    assert tr.g.shape == (5, 100000) and tr.fs == 400 and list(tr.level) == [0, 8, 16, 24, 31]


def test_shared_retention_experiments():
    ex = radar_retention_experiments(need_shared("radar_programming", "retention"))
    assert sorted(ex) == ["2bpc1", "2bpc2", "2bpc4", "3bpc1", "3bpc2", "3bpc3", "3bpc4", "3bpc5"]
    assert all(e.agreement == 1.0 for e in ex.values())
    assert ex["3bpc1"].addr[0] == 31024 and ex["2bpc1"].addr[0] == 1024
    assert ex["3bpc2"].post.shape == (3, 1024) and ex["3bpc3"].pre.shape == (3, 1024)

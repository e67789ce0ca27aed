"""Pulse records, write-verify logs and retention read-backs: formats and errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.data import DataError
from pyaimc.data.pulses import (RESET, SET, held_out_cells, load_ber_table, load_pulse_csv,
                                load_pulses, load_radar_pulses, load_readback, load_write_log,
                                save_pulse_csv)
from tests.conftest import need_shared

HEADER = "cell,width_s,v_bl,v_sl,v_wl,r_before,r_after\n"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_pulse_csv_round_trip_and_polarity(tmp_path):
    p = write(tmp_path, "p.csv", HEADER + "a,1e-7,2.0,0,2.4,1e5,1.1e4\n"
                                          "a,2e-7,0,1.5,3.0,1.1e4,\n"
                                          "b,1e-7,0,0,2.0,5e4,5.01e4\n")
    d = load_pulse_csv(p)
    assert len(d) == 3
    assert d.polarity.tolist() == [SET, RESET, 0]
    assert d.sequence.tolist() == [0, 1, 0]
    assert np.isnan(d.r_after[1]) and d.r_after[0] == 1.1e4
    q = save_pulse_csv(d, tmp_path / "q.csv")
    e = load_pulses(q)
    for name in ("width", "v_bl", "v_sl", "v_wl", "r_before"):
        np.testing.assert_array_equal(getattr(e, name), getattr(d, name))
    np.testing.assert_array_equal(np.isnan(e.r_after), np.isnan(d.r_after))


def test_pulse_csv_without_r_after(tmp_path):
    d = load_pulse_csv(write(tmp_path, "p.csv", "cell,width_s,v_bl,v_sl,v_wl,r_before\n"
                                                "7,1e-7,2,0,2.5,1e5\n"))
    assert np.isnan(d.r_after).all() and d.cell.tolist() == ["7"]


@pytest.mark.parametrize("body, match", [
    ("cell,width,v_bl,v_sl,v_wl,r_before\n", r"row 1 \(header\)"),
    (HEADER + "a,1e-7,2,0,2.4,1e5\n", r"row 2 has 6 field\(s\); the header has 7"),
    (HEADER + "a,1e-7,two,0,2.4,1e5,1e4\n", r"row 2, column 3 \(v_bl\): 'two' is not a number"),
    (HEADER + "a,1e-7,2,0,2.4,1e5,1e4\na,100,2,0,2.4,1e5,1e4\n",
     r"row 3, column 2 \(width_s\): 100; expected a width in seconds"),
    (HEADER + "a,1e-7,2,1,2.4,1e5,1e4\n", r"row 2, column 4 \(v_sl\).*not both"),
    (HEADER + "a,1e-7,-2,0,2.4,1e5,1e4\n", r"row 2, column 3 \(v_bl\): -2; expected"),
    (HEADER + "a,1e-7,2,0,2.4,0,1e4\n", r"row 2, column 6 \(r_before\): 0; expected a resistance"),
    (HEADER + "a,1e-7,2,0,2.4,1e5,nan\n", r"row 2, column 7 \(r_after\).*finite"),
    (HEADER + ",1e-7,2,0,2.4,1e5,1e4\n", r"row 2, column 1 \(cell\): empty"),
    (HEADER, r"header but no data rows"),
    ("", r"empty file"),
])
def test_pulse_csv_bad_input(tmp_path, body, match):
    with pytest.raises(DataError, match=match):
        load_pulse_csv(write(tmp_path, "bad.csv", body))


def test_radar_sweep_parsing(tmp_path):
    row = "1450.000\t100.000\t2.000\t2.300\t80000.0\t20000.0\n"
    d = load_radar_pulses(write(tmp_path, "set-sweep-x.csv", row * 2))
    assert d.width[0] == pytest.approx(1e-7) and d.v_bl[0] == 2.0 and d.v_sl[0] == 0.0
    assert d.cell.tolist() == ["1450", "1450"] and d.sequence.tolist() == [0, 1]
    r = load_radar_pulses(write(tmp_path, "reset-sweep-x.csv", row))
    assert r.v_sl[0] == 2.0 and r.v_bl[0] == 0.0 and r.polarity[0] == RESET
    assert load_radar_pulses(write(tmp_path, "other.csv", row), polarity="reset").v_sl[0] == 2.0


@pytest.mark.parametrize("name, body, match", [
    ("other.csv", "1\t100\t2\t2.3\t8e4\t2e4\n", r"cannot tell from the file name"),
    ("set-a.csv", "1\t100\t2\t2.3\t8e4\n", r"row 1 has 5 column\(s\); expected 6"),
    ("set-a.csv", "1\t100\t2\t2.3\t8e4\t2e4\n\n1\t100\t2\tx\t8e4\t2e4\n",
     r"row 3, column 4 \(v_wl\): 'x' is not a number"),
    ("set-a.csv", "1\t0\t2\t2.3\t8e4\t2e4\n", r"row 1, column 2 \(pw_ns\): 0; expected a pulse"),
    ("set-a.csv", "1\t100\t2\t2.3\t8e4\t-5\n", r"row 1, column 6 \(r_after\): -5"),
    ("set-a.csv", "1\t100\t2\t2.3\tinf\t5\n", r"row 1, column 5 \(r_before\).*finite"),
    ("set-a.csv", "\n\n", r"no data rows"),
])
def test_radar_sweep_bad_input(tmp_path, name, body, match):
    with pytest.raises(DataError, match=match):
        load_radar_pulses(write(tmp_path, name, body))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_pulses(tmp_path / "nope.csv")


WL_ROW = "30001\t11\t5\t6\t5876.2\t0\t5770\t6010\t1\t1\t2\n"


def test_write_log_counts_and_levels(tmp_path):
    body = WL_ROW + "30002\t5\t2\t3\t9026.2\t0\t8510\t9310\t0\t1\t2\n"
    w = load_write_log(write(tmp_path, "wv.csv", body))
    assert w.pulses.tolist() == [10, 4]
    assert w.success.tolist() == [True, False]
    stats = w.level_statistics()
    assert [s["r_lo"] for s in stats] == [5770.0, 8510.0]
    assert stats[0]["success"] == 1.0 and stats[1]["g_mean"] is None


@pytest.mark.parametrize("body, match", [
    (WL_ROW.replace("\t2\n", "\n"), r"row 1 has 10 column\(s\); expected 11"),
    (WL_ROW.replace("\t1\t1\t2", "\t2\t1\t2"), r"row 1, column 9 \(success\): 2; expected 0 or 1"),
    (WL_ROW.replace("5770\t6010", "6010\t5770"), r"row 1, column 8 \(r_hi\)"),
    (WL_ROW.replace("30001\t11", "30001\t1.5"), r"row 1, column 2 \(nreads\): 1.5; expected a count"),
    (WL_ROW + WL_ROW.replace("5876.2", "abc"), r"row 2, column 5 \(r_final\): 'abc'"),
])
def test_write_log_bad_input(tmp_path, body, match):
    with pytest.raises(DataError, match=match):
        load_write_log(write(tmp_path, "wv.csv", body))


def test_readback_levels_and_errors(tmp_path):
    r = load_readback(write(tmp_path, "readtest2bpc9-prebake.csv", "5000\n" * 1024))
    assert r.n_levels == 4
    # line 32 (from 0) is the first of the second row of 32: level (32 + 1) mod 4 = 1
    assert r.level[:4].tolist() == [0, 1, 2, 3] and r.level[32] == 1
    with pytest.raises(DataError, match=r"1000 resistances; expected a multiple of 1024"):
        load_readback(write(tmp_path, "readtest2bpc9-postbake.csv", "5000\n" * 1000))
    with pytest.raises(DataError, match=r"row 3, column 1 \(r\): -1"):
        load_readback(write(tmp_path, "readtest3bpc9-x.csv", "5000\n5000\n-1\n"), n_cells=3)
    with pytest.raises(DataError, match=r"levels per cell"):
        load_readback(write(tmp_path, "reads.csv", "5000\n"), n_cells=1)


def test_ber_table_errors(tmp_path):
    good = "BPC,Temperature (K),Time (s),BER\n3,338,1E+08,2.44E-06\n"
    t = load_ber_table(write(tmp_path, "ber.csv", good))
    assert t["bits_per_cell"].tolist() == [3] and t["ber"][0] == pytest.approx(2.44e-6)
    with pytest.raises(DataError, match=r"row 2, column 4 \(BER\): 2.*fraction"):
        load_ber_table(write(tmp_path, "ber.csv", good.replace("2.44E-06", "2")))
    with pytest.raises(DataError, match=r"row 1 \(header\)"):
        load_ber_table(write(tmp_path, "ber.csv", "a,b\n1,2\n"))


def test_held_out_cells_by_address():
    held = held_out_cells(["10", "9", "100", "11", "9"])
    # sorted numerically: 9, 10, 11, 100 -> every second one from the second
    assert held.tolist() == ["10", "100"]


def test_shared_files_load():
    base = need_shared("radar_programming")
    d = load_pulses(base / "pulses" / "set-sweep-wl-inner-5-31-20.csv")
    assert len(d) == 70570 and len(d.cells()) == 50
    # first row: 1450, 100 ns, V_BL 2, V_WL 2, 69498.046 -> 81053.828 ohm
    assert d.width[0] == pytest.approx(1e-7) and d.r_after[0] == pytest.approx(81053.828)
    fit, held = d.split_cells()
    assert len(fit.cells()) == len(held.cells()) == 25
    assert not set(fit.cells()) & set(held.cells())
    w = load_write_log(base / "write_verify" / "sdr-4wl-eval-chip1-8-7-20.csv")
    mid = [s for s in w.level_statistics() if s["intermediate"]]
    assert [s["r_lo"] for s in mid] == [5770.0, 8510.0]
    assert mid[0]["pulses_mean"] == pytest.approx(13.15, abs=0.01)
    assert mid[0]["std_over_width"] == pytest.approx(0.296, abs=0.002)


def test_implausible_values_need_the_override(tmp_path):
    p = write(tmp_path, "p.csv", HEADER + "a,1e-7,2.0,0,2.4,1e5,1e12\n")
    with pytest.raises(DataError, match=r"row 2, column 7: r_after = 1e\+12 ohm is not plausible"):
        load_pulse_csv(p)
    assert load_pulse_csv(p, plausible=False).r_after[0] == 1e12
    q = write(tmp_path, "set-x.csv", "1\t100\t200\t2.3\t8e4\t2e4\n")
    with pytest.raises(DataError, match=r"row 1, column 3: v_bl = 200 V is not plausible"):
        load_radar_pulses(q)

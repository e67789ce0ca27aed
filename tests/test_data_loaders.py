"""Loaders: formats, clear errors on bad input, explicit stuck-cell rule, fuzzing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyaimc.data import (CycleData, DataError, detect_format, exclude_stuck_cells, load,
                         load_long_csv, load_npz, load_radar, save_long_csv)
from tests.conftest import need_shared


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def radar_text(h, l, addr=None):
    rows = []
    for c in range(h.shape[0]):
        vals = []
        for a, b in zip(h[c], l[c]):
            vals += [f"{a:.3f}", f"{b:.3f}"]
        rows.append("\t".join([f"{(addr or 100) + c:.3f}"] + vals))
    return "\n".join(rows) + "\n"


def test_radar_reference_file_shape_and_values():
    d = load(need_shared("radar_cycling", "cycling-4-24-20.csv"))
    assert d.values.shape == (256, 300, 2)
    assert d.feature_names == ("R_HRS", "R_LRS")
    # first row of the file: address 200, HRS 318049.805, LRS 12649.915
    assert d.cell_ids[0] == "200"
    assert d.values[0, 0, 0] == pytest.approx(318049.805, rel=1e-12)
    assert d.values[0, 0, 1] == pytest.approx(12649.915, rel=1e-12)


def test_npz_reference_file():
    d = load(need_shared("synaptogen_ref", "features.npz"))
    assert d.feature_names == ("R_HRS", "U_SET", "R_LRS", "U_RESET")
    assert d.values.shape == (256, 3000, 4)
    assert np.mean(d.cell_labels["gmm_component"] == 2) == pytest.approx(12 / 256)


def test_stuck_cells_are_listed_with_reasons():
    d = exclude_stuck_cells(load(need_shared("radar_cycling", "cycling-4-24-20.csv")))
    assert d.n_cells == 254
    assert {e.cell_id for e in d.excluded} == {"219", "402"}
    assert all("stuck" in e.reason for e in d.excluded)
    d = exclude_stuck_cells(load(need_shared("radar_cycling", "cycling-4-14-20.csv")))
    assert [e.cell_id for e in d.excluded] == ["175"]
    assert "32%" in d.excluded[0].reason


def test_stuck_rule_on_synthetic_cells(tmp_path):
    h = np.full((3, 10), 1e5)
    l = np.full((3, 10), 5e3)
    h[1] = 6e3  # window 1.2 < 1.5: does not switch
    d = exclude_stuck_cells(load_radar(write(tmp_path, "a.tsv", radar_text(h, l))))
    assert d.n_cells == 2 and d.excluded[0].cell_id == "101"


def test_long_csv_round_trip_with_missing(tmp_path):
    rng = np.random.default_rng(1)
    vals = np.stack([10 ** rng.uniform(4, 5, (3, 5)), -rng.uniform(0.5, 1, (3, 5)),
                     10 ** rng.uniform(3, 4, (3, 5)), rng.uniform(0.5, 1, (3, 5))], -1)
    missing = np.zeros(vals.shape, bool)
    missing[1, 2, 0] = True
    d = CycleData(vals, missing, ("R_HRS", "U_SET", "R_LRS", "U_RESET"),
                  ("ohm", "V", "ohm", "V"), ["a", "b", "c"])
    p = save_long_csv(d, tmp_path / "d.csv")
    assert detect_format(p) == "long-csv"
    back = load(p)
    assert back.missing[1, 2, 0] and back.missing.sum() == 1
    np.testing.assert_allclose(back.values[~back.missing], vals[~missing], rtol=1e-15)


@pytest.mark.parametrize("text, expected", [
    ("", "empty file"),
    ("200.0\t1000\t500\n201.0\t1000\n", "row 2 has 2 columns but row 1 has 3"),
    ("200.0\t1000\tabc\n", "row 1, column 3 (R_LRS): 'abc' is not a number"),
    ("200.0\t1000\tnan\n", "row 1, column 3 (R_LRS): 'nan'; expected a finite resistance"),
    ("200.0\t1000\tinf\n", "expected a finite resistance"),
    ("200.0\t0\t500\n", "row 1, column 2 (R_HRS): 0; expected a resistance > 0 ohm"),
    ("200.0\t-5\t500\n", "expected a resistance > 0 ohm"),
    ("200.0\t1000\t500\t7\n", "expected an even number"),
])
def test_radar_bad_input_messages(tmp_path, text, expected):
    p = write(tmp_path, "bad.tsv", text)
    with pytest.raises(DataError) as err:
        load_radar(p)
    assert str(p) in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize("text, expected", [
    ("", "empty file"),
    ("x,y,R_HRS\n1,2,3\n", "expected columns 'cell' and 'cycle'"),
    ("cell,cycle,R_HRS\n", "header but no data rows"),
    ("cell,cycle,R_HRS\na,0,1e4\na,1\n", "row 3 has 2 fields but the header has 3"),
    ("cell,cycle,R_HRS\na,0,1e4\na,0,2e4\n", "row 3 repeats cell 'a', cycle '0'"),
    ("cell,cycle,U_SET\na,0,0.7\n", "U_SET = 0.7; expected a negative SET voltage"),
    ("cell,cycle,U_RESET\na,0,-0.7\n", "expected a positive RESET voltage"),
    ("cell,cycle,R_LRS\na,0,oops\n", "row 2, column 3 (R_LRS): 'oops' is not a number"),
    ("cell,cycle,R_LRS\na,0,nan\n", "expected a finite number"),
])
def test_long_csv_bad_input_messages(tmp_path, text, expected):
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError) as err:
        load_long_csv(p)
    assert str(p) in str(err.value) and expected in str(err.value)


def test_npz_bad_input_messages(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, R_HRS=np.ones((3, 4)) * 1e4, R_LRS=np.ones((3, 5)) * 1e3)
    with pytest.raises(DataError, match="R_LRS has shape \\(3, 5\\) but R_HRS has \\(3, 4\\)"):
        load_npz(p)
    np.savez(p, R_HRS=np.array([[1e4, np.nan]]))
    with pytest.raises(DataError, match="cell 0 \\(row 0\\), cycle 1: R_HRS is nan"):
        load_npz(p)
    np.savez(p, U_SET=np.array([[-0.5, 0.2]]))
    with pytest.raises(DataError, match="U_SET = 0.2; expected a negative SET voltage"):
        load_npz(p)
    p.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        load_npz(p)
    q = tmp_path / "b.npz"
    q.write_bytes(b"PK not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(q)


def test_detect_format_and_unknown(tmp_path):
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(write(tmp_path, "x.txt", "hello world\n"))
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.csv")


# ------------------------------------------------------------------ fuzzing
cell_text = st.text(alphabet="0123456789.-eE+naifx \t", max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(cell_text, min_size=0, max_size=7), min_size=0, max_size=5))
def test_fuzz_radar_never_crashes_unexpectedly(tmp_path, rows):
    p = tmp_path / "f.tsv"
    p.write_text("\n".join("\t".join(r) for r in rows))
    try:
        d = load_radar(p)
    except DataError as err:
        assert str(p) in str(err)
    else:  # anything accepted is valid data
        assert np.all(np.isfinite(d.values)) and np.all(d.values > 0)
        assert d.values.shape[2] == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(cell_text, min_size=0, max_size=5), min_size=0, max_size=6),
       header=st.sampled_from(["cell,cycle,R_HRS,U_SET", "cycle,cell,U_RESET", "cell,R_LRS"]))
def test_fuzz_long_csv_never_crashes_unexpectedly(tmp_path, rows, header):
    p = tmp_path / "f.csv"
    p.write_text(header + "\n" + "\n".join(",".join(r) for r in rows))
    try:
        d = load_long_csv(p)
    except DataError as err:
        assert str(p) in str(err)
    else:
        present = d.values[~d.missing]
        assert np.all(np.isfinite(present))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_radar_round_trip(tmp_path, data):
    n_cells = data.draw(st.integers(1, 4))
    n_cyc = data.draw(st.integers(1, 6))
    vals = data.draw(st.lists(st.floats(10.0, 1e7), min_size=2 * n_cells * n_cyc,
                              max_size=2 * n_cells * n_cyc))
    arr = np.round(np.array(vals).reshape(n_cells, n_cyc, 2), 3)
    arr[arr < 10] = 10.0  # the plausible range starts at 10 ohm
    p = write(tmp_path, "r.tsv", radar_text(arr[:, :, 0], arr[:, :, 1]))
    d = load_radar(p)
    np.testing.assert_allclose(d.values, arr, rtol=1e-9)

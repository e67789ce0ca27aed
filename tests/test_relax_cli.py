"""``pyaimc fit`` on relaxation records and ``pyaimc relax``: the contract of issue 12."""

from __future__ import annotations

import numpy as np
import pytest

from pyaimc.cli import main
from pyaimc.device import DeviceModel
from tests.conftest import EXAMPLE, ROOT
from tests.test_device_relaxation import synthetic


@pytest.fixture(scope="module")
def relax_file(tmp_path_factory):
    d = synthetic(3000, seed=4)
    rows = []
    for i in range(d.n_cells):
        g0 = float(d.g0[i])
        rows.append(f"{d.addr[i]}\t0.0\t{1 / g0!r}\t{g0!r}\t{g0!r}\t0\t0.0")
        for k, tp in enumerate(d.timepoints):
            g, t = float(d.g[i, k]), float(d.time[i, k])
            rows.append(f"{d.addr[i]}\t{t!r}\t{1 / g!r}\t{g!r}\t{g0!r}\t0\t{float(tp)!r}")
    path = tmp_path_factory.mktemp("relax") / "techS-relaxation.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def relax_model(relax_file):
    out = relax_file.with_name("model.json")
    assert main(["fit", str(relax_file), "-o", str(out)]) == 0
    return out


def test_fit_detects_relaxation_records(relax_model):
    m = DeviceModel.load(relax_model)
    assert m.relaxation_ is not None and not m.has_cycling
    assert m.relaxation_.technology_ == "techS"
    assert "relaxation" in m.provenance_["source"]


def test_relax_contract(tmp_path, relax_model, capsys):
    g0 = np.linspace(1e-5, 9e-5, 64)
    np.save(tmp_path / "g0.npy", g0)
    args = ["relax", str(relax_model), "--g0", str(tmp_path / "g0.npy"), "--times", "0", "1",
            "3600", "3.15e7", "--seed", "7"]
    assert main(args + ["-o", str(tmp_path / "a.npy")]) == 0
    assert "extrapolated" in capsys.readouterr().out
    assert main(args + ["-o", str(tmp_path / "b.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (64, 4) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, 0], g0)
    assert np.all(a >= 0) and np.std(a[:, 3] - g0) > np.std(a[:, 1] - g0) > 0
    args[-1] = "8"
    assert main(args + ["-o", str(tmp_path / "c.npy")]) == 0
    assert not np.array_equal(np.load(tmp_path / "c.npy"), a)


def test_relax_errors(tmp_path, relax_model, capsys):
    np.save(tmp_path / "us.npy", np.array([10.0, 20.0]))  # microsiemens, not S
    np.save(tmp_path / "ok.npy", np.array([1e-5]))
    base = ["--times", "1", "--seed", "0", "-o", str(tmp_path / "o.npy")]
    assert main(["relax", str(relax_model), "--g0", str(tmp_path / "us.npy")] + base) == 2
    assert "cell 0 has G0 = 10.0; expected a conductance in S" in capsys.readouterr().err
    example = ROOT / "calibration_data" / "models" / "example.json"
    assert main(["relax", str(example), "--g0", str(tmp_path / "ok.npy")] + base) == 2
    assert "has no relaxation part" in capsys.readouterr().err
    assert main(["relax", str(relax_model), "--g0", str(tmp_path / "ok.npy"),
                 "--temperature", "85"] + base) == 2
    assert "no temperature part" in capsys.readouterr().err
    assert main(["relax", str(relax_model), "--g0", str(tmp_path / "ok.npy"), "--times", "-1",
                 "--seed", "0", "-o", str(tmp_path / "o.npy")]) == 2
    assert "expected finite times >= 0 s" in capsys.readouterr().err
    assert not (tmp_path / "o.npy").exists()


def test_fit_adds_relaxation_to_a_cycling_model(tmp_path, relax_file):
    out = tmp_path / "full.json"
    assert main(["fit", str(EXAMPLE / "features.npz"), "--relaxation", str(relax_file),
                 "--max-var-order", "2", "--max-components", "2", "-o", str(out)]) == 0
    m = DeviceModel.load(out)
    assert m.has_cycling and m.relaxation_ is not None
    assert m.provenance_["relaxation"] == str(relax_file)


def test_fit_refuses_bake_alone(tmp_path, capsys):
    p = tmp_path / "b.tsv"
    p.write_text("1\t0.0\t20000.0\t5e-05\t100\n1\t5000.0\t25000.0\t4e-05\t100\n")
    assert main(["fit", str(p), "-o", str(tmp_path / "m.json")]) == 2
    assert "bake records refine a relaxation part" in capsys.readouterr().err


def test_export_noise_takes_a_relaxation_part(tmp_path, relax_model, capsys):
    from pyaimc.noise import NoiseModel, RelaxationRetention

    example = ROOT / "calibration_data" / "models" / "example.json"
    out = tmp_path / "noise.json"
    small = ["--levels", "3", "--devices", "20", "--repeats", "2"]
    assert main(["export", "noise", "--device", str(example), "--relaxation", str(relax_model),
                 "-o", str(out)] + small) == 0
    assert "retention: relaxation (techS" in capsys.readouterr().out
    nm = NoiseModel.load(out)
    assert isinstance(nm.retention, RelaxationRetention)
    assert nm.retention.model.technology_ == "techS"
    assert main(["export", "noise", "--device", str(example), "--temperature", "85",
                 "-o", str(out)] + small) == 2
    assert "--temperature needs a relaxation part" in capsys.readouterr().err

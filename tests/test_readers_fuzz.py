"""Every file reader, fed damaged or arbitrary bytes, either reads the file or raises the error
policy's input error (one line naming the file): never another exception (property-based)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyaimc.errors import PyaimcError, exit_code

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=int(__import__("os").environ.get("PYAIMC_FUZZ_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _readers():
    from pyaimc.circuit.transfer import TransferModel
    from pyaimc.compact.veriloga import read_devices_json
    from pyaimc.data.loaders import load_long_csv, load_npz, load_radar
    from pyaimc.data.pulses import load_pulse_csv, load_radar_pulses
    from pyaimc.data.pulses import load_write_log as load_write_log_pulses
    from pyaimc.data.sweeps import load_sweeps
    from pyaimc.device import DeviceModel
    from pyaimc.experiments.config import load_config
    from pyaimc.noise import NoiseModel

    from pyaimc.data.relaxation import load_bake, load_readback, load_relaxation, load_write_log

    return {"relaxation": (load_relaxation, ".tsv"), "bake": (load_bake, ".tsv"),
            "write_log": (load_write_log, ".csv"), "readback": (load_readback, ".csv"),
            "radar": (load_radar, ".csv"), "long_csv": (load_long_csv, ".csv"),
            "npz": (load_npz, ".npz"), "sweeps": (load_sweeps, ".npz"),
            "device": (DeviceModel.load, ".json"), "noise": (NoiseModel.load, ".json"),
            "transfer": (TransferModel.load, ".json"), "config": (load_config, ".json"),
            "devices": (read_devices_json, ".json"),
            "pulse_csv": (load_pulse_csv, ".csv"),
            "radar_pulses": (lambda p: load_radar_pulses(p, "set"), ".csv"),
            "pulse_write_log": (load_write_log_pulses, ".csv")}


def _seed_file(name: str, tmp: Path) -> bytes:
    """A valid file of each format, to damage."""
    if name == "relaxation":
        return (b"32769\t0.0\t20759.55\t4.81706e-05\t4.81706e-05\t12\t0.0\n"
                b"32769\t1.0\t20859.55\t4.79397e-05\t4.81706e-05\t12\t1.0\n")
    if name == "bake":
        return (b"32768\t0.0\t302397.41\t3.306906e-06\t100\n"
                b"32768\t1800.0\t312397.41\t3.201051e-06\t100\n")
    if name == "write_log":
        return b"0\t3\t2\t1\t5100.0\t0\t4000.0\t6000.0\t1\t1\t0\n"
    if name == "readback":
        return b"5100.0\n" * 1024
    if name == "radar":
        return b"200.000\t1.2e5\t5.1e3\t1.4e5\t4.9e3\n201.000\t1.1e5\t5.3e3\t1.3e5\t5.0e3\n"
    if name == "long_csv":
        return b"cell,cycle,R_HRS,R_LRS\na,0,1.2e5,5e3\na,1,1.3e5,5.1e3\n"
    if name == "npz":
        path = tmp / "seed_features.npz"
        rng = np.random.default_rng(0)
        np.savez(path, R_HRS=rng.uniform(8e4, 2e5, (3, 4)), R_LRS=rng.uniform(4e3, 9e3, (3, 4)))
        return path.read_bytes()
    if name == "sweeps":
        u = np.linspace(0, -1, 5).tolist() + np.linspace(-1, 1, 9).tolist()
        path = tmp / "seed_sweeps.npz"
        np.savez(path, U=np.array(u), I=np.ones((1, 1, len(u))) * 1e-5)
        return path.read_bytes()
    if name == "device":
        return (ROOT / "pyaimc" / "models" / "example.json").read_bytes()
    if name == "noise":
        return (ROOT / "results" / "mnist1d_qat_noise.json").read_bytes()
    if name == "transfer":
        return json.dumps({"schema": "pyaimc.transfer/1", "tile": {"rows": 4, "cols": 4},
                           "r_wire": 1.0, "v_max": 0.2, "g_min": 1e-6, "g_max": 1e-4,
                           "ir_drop": {"k_row": 1, "k_col": 1},
                           "input_nonlinearity": {"c2": [0, 0], "c3": [0, 0]},
                           "i_sat": None}).encode()
    if name == "pulse_csv":
        return (b"cell,width_s,v_bl,v_sl,v_wl,r_before,r_after\na,1e-7,2.0,0,2.4,1e5,1.1e4\n"
                b"a,2e-7,0,1.5,3.0,1.1e4,\n")
    if name == "radar_pulses":
        return b"1450.000\t100.000\t2.000\t2.300\t80000.0\t20000.0\n" * 2
    if name == "pulse_write_log":
        return b"30001\t11\t5\t6\t5876.2\t0\t5770\t6010\t1\t1\t2\n" * 2
    if name == "config":
        return b'{"preset": "tiny", "train": {"epochs": 2}}'
    return json.dumps({"schema": "pyaimc.devices/1", "table": {"R_HRS": [[1e5]]}}).encode()


def _check(reader, path: Path) -> None:
    try:
        reader(path)
    except (PyaimcError, ValueError, FileNotFoundError) as err:
        assert exit_code(err) == 2, (type(err).__name__, err)
        assert str(err).strip() and "\n" not in str(err).strip(), repr(str(err))
    except Exception as err:  # noqa: BLE001 - the property under test
        pytest.fail(f"{reader.__qualname__} raised {type(err).__name__}: {err}")


@pytest.mark.parametrize("name", ["radar", "long_csv", "npz", "sweeps", "device", "noise",
                                  "transfer", "config", "devices", "relaxation", "bake",
                                  "write_log", "readback", "pulse_csv", "radar_pulses",
                                  "pulse_write_log"])
@SETTINGS
@given(data=st.data())
def test_damaged_files_give_one_line(tmp_path, name, data):
    reader, suffix = _readers()[name]
    seed = _seed_file(name, tmp_path)
    kinds = ["truncate", "flip", "random", "json"] + (["mutate"] * 3 if suffix == ".json" else [])
    kind = data.draw(st.sampled_from(kinds))
    if kind == "truncate":
        blob = seed[:data.draw(st.integers(0, len(seed)))]
    elif kind == "flip":
        pos = data.draw(st.integers(0, max(len(seed) - 1, 0)))
        blob = seed[:pos] + bytes([data.draw(st.integers(0, 255))]) + seed[pos + 1:]
    elif kind == "random":
        blob = data.draw(st.binary(max_size=300))
    else:
        value = data.draw(st.recursive(
            st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                       inner, max_size=3),
            max_leaves=8))
        if kind == "json":  # well-formed JSON of the wrong shape
            blob = json.dumps(value).encode()
        else:  # a valid document with one field, at any depth, replaced
            doc = json.loads(seed)
            node, key = doc, None
            for _ in range(data.draw(st.integers(1, 4))):
                keys = (list(node) if isinstance(node, dict) else
                        list(range(len(node))) if isinstance(node, list) else [])
                if not keys:
                    break
                key = data.draw(st.sampled_from(keys))
                parent, node = node, node[key]
            if key is not None:
                parent[key] = value
            blob = json.dumps(doc).encode()
    path = tmp_path / f"f{suffix}"
    path.write_bytes(blob)
    _check(reader, path)

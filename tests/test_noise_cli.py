"""``pyaimc export noise`` and the noise demo."""

from __future__ import annotations

import json

import pytest
from _noise_helpers import EXAMPLE_MODEL, transfer_doc

from pyaimc.cli import main
from pyaimc.noise import NoiseModel

SMALL = ["--levels", "4", "--devices", "40", "--repeats", "2"]


def export(tmp_path, *extra):
    out = tmp_path / "noise.json"
    rc = main(["export", "noise", "--device", str(EXAMPLE_MODEL), "-o", str(out), *SMALL, *extra])
    return rc, out


def test_export_noise_writes_a_loadable_model_and_the_aihwkit_file(tmp_path, capsys):
    rc, out = export(tmp_path, "--tile", "32x16", "--aihwkit", str(tmp_path / "aihwkit.json"),
                     "--dac-bits", "6", "--seed", "3")
    assert rc == 0
    nm = NoiseModel.load(out)
    assert (nm.tile.rows, nm.tile.cols) == (32, 16) and nm.dac.bits == 6
    assert nm.transfer is None and nm.provenance["seed"] == 3
    assert nm.provenance["source"] == str(EXAMPLE_MODEL)
    a = json.loads((tmp_path / "aihwkit.json").read_text())
    assert a["schema"] == "pyaimc.aihwkit-noise/1" and len(a["prog_coeff"]) >= 2
    text = capsys.readouterr().out
    assert "write_verify" in text and f"wrote {out}" in text


def test_export_noise_with_a_transfer_document(tmp_path):
    nm0 = NoiseModel.load(export(tmp_path)[1])
    doc = transfer_doc(16, 16, r_wire=0.5, g_min=nm0.window.g_min * 0.9,
                       g_max=nm0.window.g_max * 1.1)
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(doc))
    rc, out = export(tmp_path, "--transfer", str(path))
    assert rc == 0
    nm = NoiseModel.load(out)
    assert nm.tile.rows == 16 and nm.tile.r_wire == 0.5 and nm.transfer.r_wire == 0.5


@pytest.mark.parametrize("args, message", [
    (["--tile", "64by64"], "--tile must be ROWSxCOLS"),
    (["--g-min-us", "30"], "both --g-min-us and --g-max-us"),
    (["--levels", "1"], "--levels must be >= 2"),
    (["--g-min-us", "50", "--g-max-us", "40"], "window needs 0 < g_min < g_max"),
])
def test_export_noise_bad_arguments(tmp_path, capsys, args, message):
    rc, _ = export(tmp_path, *args)
    assert rc == 2
    assert message in capsys.readouterr().err


def test_export_noise_bad_transfer_files(tmp_path, capsys):
    doc = transfer_doc(16, 16)
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(doc))
    assert export(tmp_path, "--transfer", str(path), "--tile", "64x64")[0] == 2
    assert "transfer model is for 16 x 16 tiles, the tile asked for is 64 x 64" in capsys.readouterr().err
    path.write_text(json.dumps(dict(doc, schema="pyaimc.transfer/9")))
    assert export(tmp_path, "--transfer", str(path))[0] == 2
    assert "schema version 'pyaimc.transfer/9' is not supported" in capsys.readouterr().err
    path.write_text(json.dumps(dict(doc, ir_drop={"k_row": 1.0})))
    assert export(tmp_path, "--transfer", str(path))[0] == 2
    assert "missing field 'ir_drop.k_col'" in capsys.readouterr().err
    assert export(tmp_path, "--transfer", str(tmp_path / "missing.json"))[0] == 2
    assert "no such file" in capsys.readouterr().err


def test_demo_runs_small(tmp_path):
    pytest.importorskip("torch")
    from examples.demo_noise import run_demo

    res = run_demo(tmp_path, epochs=2, n_programs=2,
                   export_options={"n_levels": 4, "n_devices": 40, "n_repeats": 2})
    acc = res["test_accuracy"]
    assert acc["software"] > 0.8  # 2 epochs of digits
    for m in ("write_verify", "one_shot"):
        for k in ("software_weights", "hardware_aware"):
            assert 0.5 < acc[m][k]["mean"] <= 1.0
    assert (tmp_path / "noise_demo.json").exists() and (tmp_path / "noise.json").exists()

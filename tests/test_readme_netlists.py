"""Every netlist in README.md and veriloga/README.md runs as written.

Blocks fenced as ``vacask`` run in VACASK, ``spice`` in ngspice, each in a folder holding what the
README's export commands write (``va/``, ``ng/``). The Spectre block is documented only (no
Spectre here); the test counts it so that a new, unrun dialect cannot slip in.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.conftest import ROOT, need_ngspice, need_vacask

DOCS = [ROOT / "README.md", ROOT / "veriloga" / "README.md"]
MODEL = ROOT / "calibration_data" / "models" / "example.json"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for tag, body in _FENCE.findall(doc.read_text(encoding="utf-8")):
            if tag == lang:
                out.append((doc.relative_to(ROOT).as_posix(), body))
    return out


def test_only_known_netlist_dialects_in_the_docs():
    tags = {tag for doc in DOCS for tag, _ in _FENCE.findall(doc.read_text(encoding="utf-8"))}
    assert tags <= {"sh", "python", "vacask", "spice", "spectre", "text"}, tags
    assert len(blocks("spectre")) == 1          # documented, not run: no Spectre here
    assert len(blocks("vacask")) >= 1 and len(blocks("spice")) >= 1


def _falling_branch_ratio(t, i, v_of_t):
    """Chord conductance at the end of the negative ramp over that near its start (a SET makes it
    large)."""
    early, late = np.argmin(np.abs(t - 10e-6)), np.argmin(np.abs(t - 50e-6))
    return abs(i[late] / v_of_t(t[late])) / abs(i[early] / v_of_t(t[early]))


def _drive(t):
    return np.interp(t, [0, 50e-6, 150e-6, 200e-6], [0, -1.5, 1.5, 0])


@pytest.mark.parametrize("where, text", blocks("vacask"), ids=lambda x: str(x)[:20])
def test_vacask_netlists_run(where, text, tmp_path):
    need_vacask()
    from pyaimc.cli import main
    from pyaimc.spice.vacask import flow, run_vacask

    assert main(["export", "veriloga", str(MODEL), "-o", str(tmp_path / "va"), "--devices", "2",
                 "--cycles", "4", "--seed", "0", "--osdi"]) == 0
    names = re.findall(r"^\s*analysis\s+(\w+)", text, re.MULTILINE)
    res, _ = run_vacask(text, names, cwd=tmp_path)
    tran = res["tran1"]
    # the two cells SET on the negative ramp: their chord conductance grows by far
    assert _falling_branch_ratio(tran["time"], tran[flow("vin")], _drive) > 5, where


@pytest.mark.parametrize("where, text", blocks("spice"), ids=lambda x: str(x)[:20])
def test_ngspice_netlists_run(where, text, tmp_path):
    need_ngspice()
    from pyaimc.spice.ngspice import run_netlist
    from pyaimc.cli import main

    assert main(["export", "ngspice", str(MODEL), "-o", str(tmp_path / "ng"), "--devices", "2",
                 "--cycles", "4", "--seed", "0"]) == 0
    # include paths are relative to the folder ngspice runs in: the README's folder layout
    text = text.replace(".include ng/", f".include {tmp_path}/ng/")
    vec = run_netlist(text)
    assert _falling_branch_ratio(vec["time"], vec["i(vin)"], _drive) > 5, where

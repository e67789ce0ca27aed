"""Shared fixtures: reference data paths (skipped with a reason when ../shared/data is absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SYNREF = SHARED / "synaptogen_ref"
RADAR = SHARED / "radar_cycling"
EXAMPLE = ROOT / "calibration_data" / "example"


def need_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data {path} not present (../shared/data is outside the repository)")
    return path


def need_ngspice() -> str:
    exe = shutil.which("ngspice")
    if exe is None:
        pytest.skip("ngspice is not installed (apt-get install ngspice libngspice0)")
    return exe


def need_vacask() -> None:
    """Skip unless VACASK, OpenVAF (openvaf-r) and the linker it needs are all here."""
    from pyaimc.spice.vacask import available

    if not available():
        pytest.skip("VACASK and openvaf-r are not installed (pip install 'pyaimc[vacask]'; "
                    "openvaf-r also needs ld: apt-get install binutils)")


@pytest.fixture(scope="session")
def synref_data():
    from pyaimc.data import load

    return load(need_shared("synaptogen_ref", "features.npz"))


@pytest.fixture(scope="session")
def synref_sweeps():
    from pyaimc.data.sweeps import extract_features, load_sweeps

    u, i = load_sweeps(need_shared("synaptogen_ref", "sweeps.npz"))
    return extract_features(u, i, source="sweeps.npz")


@pytest.fixture(scope="session")
def synref_model(synref_data, synref_sweeps):
    from pyaimc.device import DeviceModel
    from pyaimc.device.iv_fit import fit_iv

    return DeviceModel().fit(synref_data, iv=fit_iv(synref_sweeps), rng=np.random.default_rng(0))


@pytest.fixture(scope="session")
def shipped_model():
    """The model fitted to the shipped example data (no ../shared needed)."""
    from pyaimc.device import DeviceModel

    path = ROOT / "calibration_data" / "models" / "example.json"
    return DeviceModel.load(path)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: the machines running the suite are shared, and the small
    operations of the tests gain nothing from more (two threads made one test 18x slower here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""The example netlists in netlists/ are what the builder writes today."""

from pathlib import Path

import pytest

from tools.write_netlists import example_netlists

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"
REGENERATE = "regenerate with: python -m tools.write_netlists"


def test_every_example_is_written_and_nothing_else():
    on_disk = {p.name for p in NETLISTS.glob("*.cir")}
    assert on_disk == set(example_netlists()), REGENERATE


@pytest.mark.parametrize("name", sorted(example_netlists()))
def test_example_netlist_is_current(name):
    assert (NETLISTS / name).read_text(encoding="utf-8") == example_netlists()[name], \
        f"netlists/{name} differs from what the builder writes; {REGENERATE}"

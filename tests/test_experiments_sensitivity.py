"""Which part of a deployed S4D the programming error breaks: part_sensitivity, state radius."""

import dataclasses

import numpy as np
import pytest
import torch

from _noise_helpers import example_noise_model
from pyaimc.analog.config import AnalogConfig
from pyaimc.experiments.config import from_dict
from pyaimc.experiments.runs import evaluate
from pyaimc.experiments.sensitivity import (PART_GROUPS, part_group, part_sensitivity,
                                            state_matrix_radius)
from pyaimc.noise import NoiseModel
from pyaimc.s4d.classifier import build_model
from pyaimc.s4d.step import RecurrentClassifier

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    cfg = from_dict({"preset": "tiny", "model": {"d_model": 8, "d_state": 8, "n_layers": 2}})
    model = build_model(cfg, 4, 5, seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, 4, generator=gen)
    y = torch.randint(0, 5, (40,), generator=gen)
    return model, x, y


def test_tile_names_fall_into_their_groups():
    assert [part_group(n) for n in ("encoder", "decoder", "blocks.0.glu", "blocks.3.ssm.A",
                                    "blocks.1.ssm.B", "blocks.0.ssm.C")] == \
        ["dense", "dense", "dense", "A", "B", "C"]


def test_exact_programming_keeps_every_radius(tiny):
    model, _, _ = tiny
    r = state_matrix_radius(model, NoiseModel.ideal(rows=8, cols=8))
    assert r["blocks"] == 2 * 8 * 4                     # layers x H x N/2
    assert r["programmed_max"] == pytest.approx(r["trained_max"], abs=1e-12)
    assert r["median_abs_change"] < 1e-12


def test_programming_error_moves_the_radii(tiny):
    model, _, _ = tiny
    r = state_matrix_radius(model, example_noise_model())
    assert r["trained_max"] < 1.0
    assert r["median_abs_change"] > 1e-4                # write-verify spread: ~0.5-3 % per cell
    assert r == state_matrix_radius(model, example_noise_model())   # same seed, same chip


def test_part_rows_exact_where_the_error_is_off(tiny):
    model, x, y = tiny
    nm = example_noise_model()
    # no read noise, no converters, ideal crossbar: a row without programming error is the
    # exact product, so its predictions are the digital model's
    cfg = dataclasses.replace(AnalogConfig(), read_noise=False, dac=False, adc=False,
                              transfer=False)
    rows = part_sensitivity(model, x, y, nm, seed=3, config=cfg)
    assert [r["noisy"] for r in rows] == [[], list(PART_GROUPS)] + \
        [[g] for g in PART_GROUPS] + [[h for h in PART_GROUPS if h != g] for g in PART_GROUPS]
    digital = evaluate(RecurrentClassifier(model), x, y)
    assert rows[0]["accuracy"] == digital["accuracy"]
    assert rows[0]["loss"] == pytest.approx(digital["loss"], rel=1e-4)
    again = part_sensitivity(model, x, y, nm, seed=3, config=cfg)
    assert [r["loss"] for r in again] == [r["loss"] for r in rows]
    # each group's error changes the loss (the model's products all matter)
    assert all(r["loss"] != rows[0]["loss"] for r in rows[2:6])


def test_digital_groups_are_exact_and_leave_the_other_tiles_alone(tiny):
    from pyaimc.s4d.step import AnalogBackend

    model, x, y = tiny
    nm = example_noise_model()
    # every group digital: the digital model's predictions
    all_digital = AnalogBackend(nm, rng=np.random.default_rng(5), digital=PART_GROUPS)
    r = evaluate(RecurrentClassifier(model, all_digital), x, y)
    digital = evaluate(RecurrentClassifier(model), x, y)
    assert r["accuracy"] == digital["accuracy"]
    assert r["loss"] == pytest.approx(digital["loss"], rel=1e-6)
    assert not all_digital.tiles
    # A digital: the other matrices are programmed as on the all-analog chip of the same seed
    analog = AnalogBackend(nm, rng=np.random.default_rng(5))
    a_digital = AnalogBackend(nm, rng=np.random.default_rng(5), digital=("A",))
    evaluate(RecurrentClassifier(model, analog), x[:4], y[:4])
    evaluate(RecurrentClassifier(model, a_digital), x[:4], y[:4])
    assert set(a_digital.exact) == {n for n in analog.tiles if part_group(n) == "A"}
    for name, tiles in a_digital.tiles.items():
        assert torch.equal(tiles.g_pos, analog.tiles[name].g_pos), name
    with pytest.raises(ValueError, match="unknown groups"):
        AnalogBackend(nm, digital=("D",))


def test_deployed_accuracy_reports_its_digital_groups(tiny):
    from pyaimc.experiments.deploy import deployed_accuracy

    model, x, y = tiny
    r = deployed_accuracy(model, x, y, example_noise_model(), draws=1, digital=("A", "B"))
    assert r["digital"] == ["A", "B"]
    with pytest.raises(ValueError, match="per-matrix"):
        deployed_accuracy(model, x, y, example_noise_model(), draws=1, mapping="packed",
                          x_calibration=x, digital=("A",))

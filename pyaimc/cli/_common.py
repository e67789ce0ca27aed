"""What every sub-command module shares: the one-line error and option parsers."""

from __future__ import annotations

import argparse

from pyaimc.errors import InputError


class CLIError(InputError):
    """An error reported to the user as one line, exit status 2."""


def load_array(path: str, what: str):
    """A real numeric array from a ``.npy`` file (float64), or one line saying why not."""
    import numpy as np

    from pyaimc.data.loaders import existing_file

    try:
        existing_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file ({what})") from None
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CLIError(f"{path}: not a readable .npy array ({what}): {err}") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise CLIError(f"{path}: an .npz archive; {what} must be one .npy array (numpy.save)")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise CLIError(f"{path}: {what} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def tile(text: str) -> tuple[int, int]:
    rows, sep, cols = text.lower().partition("x")
    try:
        shape = (int(rows), int(cols))
    except ValueError:
        shape = (0, 0)
    if not sep or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"tile must be ROWSxCOLS with both >= 1, got {text!r}")
    return shape


def parse_tile(text: str) -> tuple[int, int]:
    try:
        return tile(text)
    except argparse.ArgumentTypeError:
        raise CLIError(f"--tile must be ROWSxCOLS with positive integers, e.g. 64x64, got {text!r}"
                       ) from None

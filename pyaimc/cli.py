"""The ``pyaimc`` command: one sub-command per job.

Each job registers its sub-command in :func:`build_parser` through a small ``_add_<job>``
function next to its handler; handlers import their level lazily so ``pyaimc --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys

from pyaimc import __version__


class CLIError(Exception):
    """An error reported to the user as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyaimc",
        description="Circuit-level co-simulation of analog in-memory computing on ReRAM crossbars.")
    parser.add_argument("--version", action="version", version=f"pyaimc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # --- jobs register here, one line each ---
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CLIError, FileNotFoundError, ValueError) as err:
        print(f"pyaimc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

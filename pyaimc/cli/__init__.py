"""The ``pyaimc`` command: argument parsing and printing over the package's API, nothing else.

One module per job registers its sub-commands (``register(subparsers)``); the modules import
their level lazily inside the handlers so ``pyaimc --help`` stays fast. A new command is a new
module here and one entry in :data:`COMMAND_MODULES`.

Errors follow :mod:`pyaimc.errors`: one line on stderr naming what is wrong, an exit code by
kind, no traceback unless ``--debug``; SIGTERM is handled like Ctrl-C (child processes ended,
temporary files removed).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pyaimc import __version__
from pyaimc.cli._common import CLIError
from pyaimc.errors import TerminateAsInterrupt, exit_code, message

#: sub-command modules, in the order ``pyaimc --help`` lists them
COMMAND_MODULES = ("fit", "pulse", "program", "relax", "crossbar", "export", "train",
                   "measure")

__all__ = ["CLIError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyaimc",
        description="Circuit-level co-simulation of analog in-memory computing on ReRAM crossbars.")
    parser.add_argument("--version", action="version", version=f"pyaimc {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (default: one line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"pyaimc.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code (see :mod:`pyaimc.errors`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with TerminateAsInterrupt():
            return int(args.handler(args) or 0)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - the policy's one place
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"pyaimc {args.command}: error: {message(err)}", file=sys.stderr)
        return exit_code(err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

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
    _add_train(sub)
    return parser


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train the S4D sequence classifier (quantization-aware, optional pruning)",
        description="Train the S4D classifier; RUN_DIR gets config.json, checkpoint.pt (resumed "
                    "when present) and metrics.json.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="JSON or TOML configuration")
    source.add_argument("--preset", metavar="NAME",
                        help="fp32, 8bit, 4bit, 2bit, ternary or tiny")
    p.add_argument("--task", choices=["mnist1d", "digits"], help="data set (overrides the config)")
    p.add_argument("--noise", metavar="NOISE.json", help="hardware noise model (hardware-aware)")
    p.add_argument("-o", "--out", metavar="RUN_DIR", required=True, help="run directory")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--epochs", type=int, help="training epochs (overrides the config)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_train)


def _run_train(args) -> int:
    import dataclasses

    import torch

    from pyaimc.nn.config import load_config, preset, validate
    from pyaimc.nn.train import train

    config = load_config(args.config) if args.config else preset(args.preset)
    if args.task is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, task=args.task))
    if args.epochs is not None:
        config = dataclasses.replace(config,
                                     train=dataclasses.replace(config.train, epochs=args.epochs))
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.noise is not None:
        config = dataclasses.replace(config, noise=args.noise)
    validate(config)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    metrics = train(config, args.out, progress=not args.quiet)
    sw = metrics["software"]
    print(f"{args.out}: test accuracy {sw['test_accuracy']:.4f} (step mode "
          f"{sw['test_accuracy_step_mode']:.4f}), {metrics['epochs']} epochs, "
          f"{metrics['train_seconds']:.0f} s")
    return 0


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

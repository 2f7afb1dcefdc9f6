"""The ``divprune-video`` command line: thin subcommands over the library.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its subcommand(s) and sets
``func`` to a callable taking the parsed arguments and returning an exit code. Heavy imports stay inside those
callables, so ``divprune-video --help`` is fast and works without optional dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from . import __version__

COMMAND_MODULES = (
    "divprune_video.demo",
    "divprune_video.selection.benchmark",
    "divprune_video.video.benchmark",
    "divprune_video.models.benchmark",
    "divprune_video.eval.cli",
    "divprune_video.streaming.cli",
    "divprune_video.streaming.benchmark",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="divprune-video",
        description="Training-free diverse visual-token pruning (DivPrune) for long-video question answering.",
        epilog="Run 'divprune-video COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

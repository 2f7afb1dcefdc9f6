"""The ``divprune-video`` command line: thin subcommands over the library.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its subcommand(s) and sets
``func`` to a callable taking the parsed arguments and returning an exit code. Heavy imports stay inside those
callables, so ``divprune-video --help`` is fast and works without optional dependencies.

The argument checks the model commands share (``demo``, ``stream``) live here too: each returns a problem (one
line, naming the option and what was expected) or None, and :func:`argument_error` reports it as argparse does, so
a bad argument stops a command before it builds a model or reads a video.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any, Optional, Sequence

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
#: ``--model`` value (and default) for the embedded tiny random-weight LLaVA-NeXT-Video.
TINY_MODEL = "tiny"


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
    describe_subcommands(parser)
    return parser


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser below ``parser``, by its words (``{"bench check": ..., "demo": ...}``)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                found[name] = subparser
                found.update({f"{name} {words}": below for words, below in subcommand_parsers(subparser).items()})
    return found


def describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give a subcommand registered with only a help line that line as its ``--help`` description too, so every
    ``divprune-video COMMAND --help`` says what the command does."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, subparser in action.choices.items():
            if not subparser.description and helps.get(name):
                subparser.description = helps[name][:1].upper() + helps[name][1:] + "."
            describe_subcommands(subparser)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # a command without its own Ctrl-C handling: no traceback for a deliberate stop
        print("\ninterrupted (Ctrl-C)", file=sys.stderr)
        return 130


# -- argument types and checks shared by the commands ------------------------------------------------------------


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated integers (``"32,64"``); a bad value is argparse's one-line error, exit 2."""
    try:
        return [int(value) for value in text.split(",") if value.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def argument_error(problem: str) -> int:
    """Report a bad argument as argparse does (one ``error:`` line on stderr); returns its exit status, 2."""
    print(f"error: {problem}", file=sys.stderr)
    return 2


def looks_like_path(text: str) -> bool:
    """Whether ``--model`` names a local folder rather than a hub id (``name`` or ``org/name``): it starts with
    ".", "~" or "/", or has a backslash or more than one "/"."""
    return text.startswith((".", "~", "/", os.sep)) or "\\" in text or text.count("/") > 1


def model_problem(model: Optional[str]) -> Optional[str]:
    """A ``--model`` that looks like a local path but is no folder here (a typo, not a hub id)."""
    if model is None or model == TINY_MODEL:
        return None
    path = os.path.expanduser(model)
    if os.path.isfile(path):
        return f"--model must be a checkpoint folder (with config.json), not a file: {model}"
    if looks_like_path(model) and not os.path.isdir(path):
        return f"--model: no such folder: {model}"
    return None


def resolved_model(model: Optional[str]) -> Optional[str]:
    """``--model`` as the loaders take it: None for the embedded tiny model, "~" expanded for a folder."""
    if model is None or model == TINY_MODEL:
        return None
    path = os.path.expanduser(model)
    return path if os.path.isdir(path) else model


def model_config(model: Optional[str]) -> Any:
    """The transformers config of ``--model`` (None: the embedded tiny LLaVA-NeXT-Video's), read without building
    the model. Raises ``ValueError`` naming the model when it cannot be read."""
    if model is None:
        from .models.llava_next_video.presets import tiny_config

        return tiny_config()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"--model {model}: cannot read its config.json: {reason}") from None


def decoder_layers(config: Any) -> int:
    """The number of decoder layers of the LLM in a (multimodal) transformers config."""
    return int(config.get_text_config().num_hidden_layers)


def device_problem(device: Optional[str]) -> Optional[str]:
    """A ``--device`` torch does not know, or CUDA where there is none."""
    if device is None:
        return None
    import torch

    try:
        target = torch.device(device)
    except RuntimeError:
        return f"--device must be cpu or cuda (cuda:N); got {device!r}"
    if target.type == "cuda" and not torch.cuda.is_available():
        return f"--device {device}: no CUDA device is available here (use --device cpu, or leave it out)"
    if target.type == "cuda" and (target.index or 0) >= torch.cuda.device_count():
        return f"--device {device}: there are only {torch.cuda.device_count()} CUDA devices"
    return None


def cpu_smoke_test_default(args: argparse.Namespace, command: str) -> None:
    """GPU benchmarks with a ``--tiny`` smoke test: with no CUDA device and no ``--device``, run the smoke test on
    the CPU (and say so) rather than fail."""
    import torch

    if args.tiny or args.device is not None or torch.cuda.is_available():
        return
    args.tiny = True
    print(
        f"{command}: no CUDA device, so the tiny test model runs on the CPU (a smoke test, not a measurement; "
        f"--device cpu runs the full-size architecture on the CPU)",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())

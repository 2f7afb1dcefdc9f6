"""The one harness of the commands that measure speed (``bench-select``, ``bench-model``, ``bench-stream``,
``bench-video``; ``bench scaling`` reports through its own Markdown block): the options they share, one timing
helper, one Markdown table writer and the record of the command that produced a table (pasted into BENCHMARKS.md
with it).

::

    add_common_options(parser, repeats=3)                 # --device, --repeats N, --json FILE
    timing = time_calls(lambda: model(x), device=device, repeats=args.repeats)
    print(markdown_table(["size", "ms"], [[f"{n:,}", f"{timing.median_ms:.2f}"]]))
    write_json(args.json_path, rows)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch

__all__ = [
    "Timing",
    "add_common_options",
    "command_line",
    "device_name",
    "markdown_table",
    "synchronize",
    "time_calls",
    "write_json",
]


def add_common_options(
    parser: argparse.ArgumentParser,
    *,
    device: bool = True,
    device_help: str = "cuda or cpu (default: cuda when available)",
    repeats: Optional[int] = 3,
    repeats_help: str = "timed runs per measurement (median)",
    json_rows: bool = True,
) -> None:
    """Add the options every speed command shares: ``--device``, ``--repeats`` (default ``repeats``; None: the
    command picks one) and ``--json FILE`` (the rows also written as JSON, stored as ``json_path``)."""
    if device:
        parser.add_argument("--device", default=None, help=device_help)
    parser.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    if json_rows:
        parser.add_argument("--json", dest="json_path", default=None, help="also write the rows as JSON here")


def synchronize(device: Union[str, torch.device, None]) -> None:
    """Wait for ``device``'s queued work (CUDA); nothing elsewhere."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds of repeated calls.

    Attributes:
        seconds: each timed call's seconds, in order.
    """

    seconds: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.seconds)

    @property
    def spread_ms(self) -> float:
        """Slowest minus fastest call."""
        return 1e3 * (max(self.seconds) - min(self.seconds))


def time_calls(
    fn: Callable[[], Any], *, device: Union[str, torch.device, None] = None, repeats: int = 3, warmup: int = 1
) -> Timing:
    """Time ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, each from a synchronized device to its
    synchronized end (CUDA work is waited for)."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(max(1, repeats)):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return Timing(tuple(seconds))


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], align: Union[str, Sequence[str]] = "right"
) -> str:
    """A Markdown table: ``header`` cells, then one line per row (cells already formatted, or ``str()``-ed);
    ``align``: ``"right"``, ``"left"``, or one of those per column."""
    aligns = [align] * len(header) if isinstance(align, str) else list(align)
    if len(aligns) != len(header):
        raise ValueError(f"{len(aligns)} alignments for {len(header)} columns")
    rule = "|" + "".join("---:|" if side == "right" else "---|" for side in aligns)
    lines = ["| " + " | ".join(header) + " |", rule]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells under {len(header)} columns: {row!r}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """The command as typed (``divprune-video bench-model --frames 32 ...``), for the header of a results table."""
    return "divprune-video " + " ".join(shlex.quote(arg) for arg in (sys.argv[1:] if argv is None else argv))


def device_name(device: Union[str, torch.device]) -> str:
    """The GPU's name (``NVIDIA H200``) or ``CPU``."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def write_json(path: Union[str, Path, None], rows: Sequence[Any]) -> None:
    """Write ``rows`` (dataclasses or mappings) as a JSON list to ``path``; nothing when ``path`` is None."""
    if not path:
        return
    records = [dataclasses.asdict(row) if dataclasses.is_dataclass(row) else dict(row) for row in rows]
    Path(path).write_text(json.dumps(records, indent=2, default=str) + "\n")

"""Results on disk: ``samples.jsonl`` (one record per finished sample, appended and flushed at once), per-rank
shard files and their merge, ``run.json`` (the configuration a resumed run must match), ``summary.json`` and
``summary.md``, and ``ranks/rank<r>.json`` (what each process is doing: its pid, device and timers)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from .base import BenchmarkError

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
SUMMARY_MD_FILE = "summary.md"
RUN_FILE = "run.json"
SHARD_PATTERN = "samples.rank*.jsonl"
RANKS_DIR = "ranks"


class ResultsError(BenchmarkError):
    """A results file is corrupt, or a resumed run's configuration differs from the one on disk."""


def shard_path(output_dir: Path, rank: int) -> Path:
    return Path(output_dir) / f"samples.rank{rank}.jsonl"


def _decode_line(line: bytes) -> Any:
    """One JSONL line's value; ValueError (UnicodeDecodeError, JSONDecodeError) when it is not whole JSON."""
    return json.loads(line.decode("utf-8"))


def _finish_or_drop_tail(path: Path) -> None:
    """Before appending: a last line without its newline (a writer killed mid-line) is cut, unless it is a whole
    record that only lacks the newline, which is then added; so the writer keeps exactly what the reader counts."""
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        try:
            _decode_line(data[keep:])
        except ValueError:
            logger.warning(
                "%s: dropping an unfinished last line (%d bytes) left by an interrupted run", path, len(data) - keep
            )
            handle.truncate(keep)
            return
        handle.write(b"\n")


class JsonlWriter:
    """Appends one JSON record per line; each line is flushed and fsynced before :meth:`write` returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _finish_or_drop_tail(self.path)
        self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: Path, *, require_id: bool = True) -> list[dict[str, Any]]:
    """Records of a JSONL file. A last line without its newline that is not whole JSON (a writer killed mid-line,
    cut anywhere, inside a UTF-8 character too) is dropped with a warning; a bad line elsewhere, or a record that is
    not an object with an ``id`` (unless not ``require_id``), raises :class:`ResultsError` naming file and line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = _decode_line(line)
        except ValueError as error:
            if number == len(lines):  # no newline after it: unfinished
                logger.warning("%s: ignoring an unfinished last line (line %d, %d bytes)", path, number, len(line))
                continue
            raise ResultsError(f"{path} line {number}: not a JSON record ({error})") from error
        if not isinstance(record, dict) or (require_id and "id" not in record):
            raise ResultsError(f"{path} line {number}: expected a JSON object with an 'id', got {line[:80]!r}")
        records.append(record)
    return records


def collect_records(output_dir: Path) -> dict[str, dict[str, Any]]:
    """id -> record over ``samples.jsonl`` and every shard file; a later record of the same id replaces an
    earlier one (a retried error)."""
    output_dir = Path(output_dir)
    by_id: dict[str, dict[str, Any]] = {}
    for path in [output_dir / SAMPLES_FILE, *sorted(output_dir.glob(SHARD_PATTERN))]:
        for record in read_records(path):
            by_id[record["id"]] = record
    return by_id


def write_jsonl_atomic(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write all records to a temporary file and move it over ``path`` (never a half-written file)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def merge_shards(output_dir: Path) -> list[dict[str, Any]]:
    """Fold the shard files into ``samples.jsonl`` (one record per id, in benchmark order) and delete them.

    Returns the merged records. Safe to repeat: a crash between the move and the deletion leaves duplicates that
    the next merge removes.
    """
    output_dir = Path(output_dir)
    records = sorted(collect_records(output_dir).values(), key=lambda record: (record["index"], record["id"]))
    write_jsonl_atomic(output_dir / SAMPLES_FILE, records)
    for shard in output_dir.glob(SHARD_PATTERN):
        shard.unlink()
    return records


def check_results_folder(path: Path) -> None:
    """``path`` must be a folder or creatable as one: ValueError when it, or a folder above it, is a file."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                raise ValueError(f"results folder {path}: {place} is a file, not a folder")
            return


#: The files of one variant's results, as :func:`move_results` moves them.
_RESULT_FILES = (RUN_FILE, SAMPLES_FILE, SUMMARY_FILE, SUMMARY_MD_FILE)


def read_run_file(output_dir: Path) -> Optional[dict[str, Any]]:
    """The ``run.json`` in ``output_dir``, None when there is none."""
    path = Path(output_dir) / RUN_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ResultsError(f"cannot read {path}: {error}") from error


def move_results(source: Path, target: Path) -> None:
    """Move one variant's result files (``run.json``, ``samples.jsonl``, shards, summaries) from ``source`` into
    the folder ``target``, which must hold none yet."""
    source, target = Path(source), Path(target)
    if (target / RUN_FILE).exists():
        raise ResultsError(f"{source} and {target} both hold results of a run; move one of them away")
    target.mkdir(parents=True, exist_ok=True)
    for path in [*(source / name for name in _RESULT_FILES), *sorted(source.glob(SHARD_PATTERN))]:
        if path.exists():
            os.replace(path, target / path.name)


def rank_status_path(output_dir: Path, rank: int) -> Path:
    return Path(output_dir) / RANKS_DIR / f"rank{rank}.json"


def write_rank_status(output_dir: Path, rank: int, status: Mapping[str, Any]) -> None:
    """Replace ``ranks/rank<rank>.json`` atomically (a reader never sees half a file)."""
    path = rank_status_path(output_dir, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(status, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def read_rank_statuses(output_dir: Path) -> dict[int, dict[str, Any]]:
    """rank -> the last status that rank wrote under ``output_dir`` (empty when none did)."""
    statuses = {}
    for path in sorted((Path(output_dir) / RANKS_DIR).glob("rank*.json")):
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ResultsError(f"cannot read {path}: {error}") from error
        statuses[int(status["rank"])] = status
    return statuses


def _holds_results(output_dir: Path) -> bool:
    files = [output_dir / SAMPLES_FILE, *output_dir.glob(SHARD_PATTERN)]
    return any(path.exists() and path.stat().st_size > 0 for path in files)


def check_run_config(output_dir: Path, fingerprint: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Record the run's configuration in ``run.json``; when one is already there with results beside it (a resumed
    run) it must match, else :class:`ResultsError` names the settings that differ (``overwrite`` replaces it
    instead). A ``run.json`` without results (a run stopped by its settings before answering) is replaced."""
    path = Path(output_dir) / RUN_FILE
    current = json.loads(json.dumps(fingerprint))  # normalise tuples/paths to JSON types
    if path.exists() and not overwrite and _holds_results(Path(output_dir)):
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ResultsError(f"cannot read {path}: {error}") from error
        differing = sorted(key for key in set(previous) | set(current) if previous.get(key) != current.get(key))
        if differing:
            details = ", ".join(f"{key}: {previous.get(key)!r} -> {current.get(key)!r}" for key in differing)
            raise ResultsError(
                f"{output_dir} holds results of a different configuration ({details}); use another --output, or "
                f"--overwrite to discard them"
            )
        return
    if overwrite:
        for stale in [Path(output_dir) / SAMPLES_FILE, *Path(output_dir).glob(SHARD_PATTERN)]:
            stale.unlink(missing_ok=True)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(RUN_FILE + ".tmp")
    temporary.write_text(json.dumps(current, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def write_summary(output_dir: Path, summary: Mapping[str, Any]) -> None:
    """``summary.json`` and ``summary.md``."""
    output_dir = Path(output_dir)
    temporary = output_dir / (SUMMARY_FILE + ".tmp")
    temporary.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, output_dir / SUMMARY_FILE)
    (output_dir / SUMMARY_MD_FILE).write_text(format_summary_md(summary), encoding="utf-8")


def load_summary(path: Path) -> dict[str, Any]:
    """A ``summary.json`` (the file, or a run folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"no summary found at {path}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ResultsError(f"cannot read {path}: {error}") from error


def _table(title: str, rows: Sequence[tuple[str, Mapping[str, Any]]], columns: Sequence[str]) -> list[str]:
    lines = [f"### {title}", "", "| " + " | ".join(["name", *columns]) + " |", "|---|" + "---:|" * len(columns)]
    for name, info in rows:
        cells = [f"{info[c]:.2f}" if isinstance(info.get(c), float) else str(info.get(c, "")) for c in columns]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return lines + [""]


def format_summary_md(summary: Mapping[str, Any]) -> str:
    """A Markdown report: headline, counts, configuration, breakdown tables and stage times."""
    variant = summary.get("variant", {})
    counts = summary.get("counts", {})
    lines = [
        f"# {summary.get('benchmark', '?')}: {summary.get('label', variant.get('name', ''))}",
        "",
        f"**overall: {summary.get('overall', float('nan')):.2f}** - {summary.get('overall_definition', '')}",
        "",
        f"samples {counts.get('samples', 0)} of {summary.get('selected', '?')} selected; scored "
        f"{counts.get('scored', 0)}, errors {counts.get('errors', 0)}, empty responses "
        f"{counts.get('empty_responses', 0)}, from partial videos {counts.get('partial', 0)}; complete: "
        f"{summary.get('complete')}",
        "",
        f"model `{summary.get('config', {}).get('model')}`, frames {summary.get('config', {}).get('num_frames')}, "
        f"method {variant.get('method')}, keep ratio {variant.get('keep_ratio')}, prune layer "
        f"{variant.get('prune_layer')}; git {summary.get('git_commit')}",
        "",
    ]
    breakdowns = [
        ("per_task", "per task"),
        ("per_duration", "per duration"),
        ("per_domain", "per domain"),
        ("per_task_type", "per task type"),
        ("per_sub_category", "per sub-category"),
    ]
    for key, title in breakdowns:
        table = summary.get(key)
        if table:
            columns = [
                c
                for c in ("accuracy", "plain_accuracy", "correct", "answered", "total", "errors")
                if any(c in info for info in table.values())
            ]
            lines += _table(title, list(table.items()), columns)
    timings = summary.get("timings")
    if timings:
        lines += _table("time per stage (seconds)", list(timings.items()), ["total", "mean"])
    return "\n".join(lines)


def summaries_under(paths: Sequence[Path], depth: int = 2) -> list[tuple[Path, dict[str, Any]]]:
    """Every ``summary.json`` in the given run folders (searching ``depth`` levels down) or files, each file once
    however many of the given paths lead to it."""
    found: dict[Path, dict[str, Any]] = {}
    for path in map(Path, paths):
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            patterns = ["/".join(["*"] * level + [SUMMARY_FILE]) for level in range(1, depth + 1)]
            candidates = [path / SUMMARY_FILE] + [found for pattern in patterns for found in sorted(path.glob(pattern))]
        else:
            raise ResultsError(f"no such run folder or summary file: {path}")
        for candidate in candidates:
            if candidate.exists() and candidate.resolve() not in found:
                found[candidate.resolve()] = load_summary(candidate)
    if not found:
        raise ResultsError(f"no summary.json under {', '.join(map(str, paths))}")
    return list(found.items())

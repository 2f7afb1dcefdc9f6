"""Compare the results of two runs of one configuration (a single process against a sharded run, a resumed run
against an uninterrupted one): the same samples, each once, with the same answers and the same scores.

Timings, the run's configuration (output folder, world size), versions and devices are expected to differ and are
not compared; everything else in every record and in ``summary.json`` is, exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .results import SAMPLES_FILE, SHARD_PATTERN, SUMMARY_FILE, load_summary, read_records

#: Record fields that legitimately differ between runs of one configuration.
RECORD_FIELDS_IGNORED = ("timings",)
#: summary.json sections that describe the run rather than its answers and scores.
SUMMARY_KEYS_IGNORED = ("config", "timings", "versions", "git_commit", "model", "lmms_eval_reference")


@dataclass
class Comparison:
    """What :func:`compare_results` found. ``differences`` is empty when the candidate matches the reference."""

    reference: Path
    candidate: Path
    reference_samples: int = 0
    candidate_samples: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences

    def summary_text(self, max_listed: int = 20) -> str:
        """One line when identical; else the count and the first ``max_listed`` differences, one per line."""
        if self.identical:
            return (
                f"identical: {self.candidate_samples} samples, every record field but timings and the summary's "
                f"scores and counts"
            )
        listed = "\n".join(f"  - {difference}" for difference in self.differences[:max_listed])
        more = len(self.differences) - max_listed
        return f"{len(self.differences)} difference(s) between {self.reference} and {self.candidate}:\n{listed}" + (
            f"\n  ... and {more} more" if more > 0 else ""
        )


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def diff_values(reference: Any, candidate: Any, path: str) -> list[str]:
    """Every place where two JSON values differ, as ``path: reference != candidate`` (dict keys recursed into)."""
    if isinstance(reference, Mapping) and isinstance(candidate, Mapping):
        differences = []
        for key in sorted(set(reference) | set(candidate), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in candidate:
                differences.append(f"{where}: only in the reference ({_short(reference[key])})")
            elif key not in reference:
                differences.append(f"{where}: only in the candidate ({_short(candidate[key])})")
            else:
                differences.extend(diff_values(reference[key], candidate[key], where))
        return differences
    if reference != candidate or type(reference) is not type(candidate):
        return [f"{path}: {_short(reference)} != {_short(candidate)}"]
    return []


def _read_run(folder: Path, label: str, differences: list[str]) -> dict[str, dict[str, Any]]:
    """id -> record of ``samples.jsonl``; duplicates and leftover shard files are reported as differences."""
    path = folder / SAMPLES_FILE
    if not path.is_file():
        differences.append(f"{label}: no {SAMPLES_FILE} in {folder}")
        return {}
    records = read_records(path)
    for sample_id, count in sorted(Counter(record["id"] for record in records).items()):
        if count > 1:
            differences.append(f"{label}: sample {sample_id} appears {count} times in {path}")
    shards = sorted(folder.glob(SHARD_PATTERN))
    if shards:
        differences.append(f"{label}: unmerged shard files {[shard.name for shard in shards]} in {folder}")
    return {record["id"]: record for record in records}


def compare_results(reference: Path | str, candidate: Path | str) -> Comparison:
    """Compare the results folder ``candidate`` (``samples.jsonl`` and ``summary.json``) with ``reference``."""
    comparison = Comparison(Path(reference), Path(candidate))
    differences = comparison.differences
    expected = _read_run(comparison.reference, "reference", differences)
    actual = _read_run(comparison.candidate, "candidate", differences)
    comparison.reference_samples, comparison.candidate_samples = len(expected), len(actual)
    for label, ids in (
        ("only in the reference", expected.keys() - actual.keys()),
        ("only in the candidate", actual.keys() - expected.keys()),
    ):
        if ids:
            differences.append(
                f"{len(ids)} sample(s) {label}: {', '.join(sorted(ids)[:10])}" + (" ..." if len(ids) > 10 else "")
            )
    for sample_id in sorted(expected.keys() & actual.keys(), key=lambda key: (expected[key].get("index", 0), key)):
        strip = [
            {k: v for k, v in record.items() if k not in RECORD_FIELDS_IGNORED}
            for record in (expected[sample_id], actual[sample_id])
        ]
        differences.extend(diff_values(strip[0], strip[1], f"sample {sample_id}"))
    differences.extend(_compare_summaries(comparison.reference, comparison.candidate))
    return comparison


def _compare_summaries(reference: Path, candidate: Path) -> list[str]:
    summaries = []
    for folder in (reference, candidate):
        if not (folder / SUMMARY_FILE).is_file():
            return [f"no {SUMMARY_FILE} in {folder}"]
        summary = load_summary(folder)
        summaries.append({key: value for key, value in summary.items() if key not in SUMMARY_KEYS_IGNORED})
    return diff_values(summaries[0], summaries[1], "summary")


def duplicate_lines(paths: Sequence[Path]) -> dict[str, int]:
    """id -> number of records over the given JSONL files, for the ids written more than once."""
    counts = Counter(record["id"] for path in paths for record in read_records(path))
    return {sample_id: count for sample_id, count in counts.items() if count > 1}

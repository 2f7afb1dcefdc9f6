"""MLVU multiple-choice (HF ``sy1998/MLVU_dev`` and ``sy1998/MLVU_Test``, split ``test``) as lmms-eval's
``mlvu_dev`` / ``mlvu_test`` run it.

Layout under the data root (the repository snapshot with its video archives unzipped in place, as lmms-eval does):
dev ``mlvu/test-00000-of-00001.parquet``, test ``mlvu_test/test-00000-of-00001.parquet`` (or any ``test-*.parquet``
/ ``*.parquet`` at the root), videos at ``<root>/<video_name>``. Columns: ``video_name``, ``duration``,
``question``, ``candidates``, ``answer`` (a letter), ``task_type``, ``question_id``. The options are inside the
question text (``"...?\\n(A) ...\\n(B) ...\\n"``); lmms-eval does not add ``candidates`` to the prompt.

Prompt: dev ``question + "\\nOnly give the best option.\\nBest option: ("``; test: the question alone (mlvu_test.yaml
sets no post prompt). Parsing: :func:`~divprune_video.eval.mcq.extract_mcq_answer` with choices A-D (also on the
test split, whose questions have up to six options). Headline (M-Avg): accuracy per task type, summed over *all* the
split's task types (0 for a type without samples) and divided by their number.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .base import (
    AnnotationError,
    Benchmark,
    CheckReport,
    Sample,
    count_summary,
    find_annotation_file,
    group_accuracy,
    read_parquet_rows,
    register_benchmark,
    scored,
)
from .mcq import LetterExtractionScoring

logger = logging.getLogger(__name__)

TASK_TYPES = {
    "dev": ("anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning"),
    "test": (
        "anomaly_reco",
        "count",
        "ego",
        "needleQA",
        "order",
        "plotQA",
        "sportsQA",
        "topic_reasoning",
        "tutorialQA",
    ),
}
POST_PROMPTS = {"dev": "\nOnly give the best option.\nBest option: (", "test": ""}
ANNOTATION_PATTERNS = {
    "dev": ("mlvu/test-*.parquet", "test-*.parquet", "*.parquet"),
    "test": ("mlvu_test/test-*.parquet", "test-*.parquet", "*.parquet"),
}
_COLUMNS = ("video_name", "question", "answer", "task_type")


def build_prompt(question: str, split: str = "dev") -> str:
    """lmms-eval's mlvu_doc_to_text with the split's default kwargs."""
    return question + POST_PROMPTS[split]


@register_benchmark
class MLVU(LetterExtractionScoring, Benchmark):
    """MLVU multiple-choice tasks (dev: 7 task types, test: 9); see the module docstring. Parsing and correctness:
    the letter :func:`~divprune_video.eval.mcq.extract_mcq_answer` finds among A-D must equal ``answer``."""

    name = "mlvu"
    all_tasks = tuple(sorted(set(TASK_TYPES["dev"]) | set(TASK_TYPES["test"])))
    description = (
        "Run MLVU multiple choice (sy1998/MLVU_dev or MLVU_Test: mlvu/test-*.parquet and the videos under "
        "--data-root) scored as lmms-eval's mlvu_dev / mlvu_test: extract_mcq_answer over A-D, headline "
        "M-Avg (the mean over the split's task types)."
    )
    settings = ("split",)

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument("--split", choices=["dev", "test"], help="MLVU split (default dev)")

    @classmethod
    def detect(cls, data_root: Path) -> bool:
        return bool(list(data_root.glob("mlvu/*.parquet")) or list(data_root.glob("mlvu_test/*.parquet")))

    @classmethod
    def write_fixture(cls, root: Path, num_samples: int, *, num_frames: int = 32) -> Any:
        """The dev split's questions over as many of its 7 task types as divide ``num_samples``."""
        from .fixtures import FixtureSet, largest_divisor, write_mlvu_fixture

        count = largest_divisor(num_samples, len(TASK_TYPES["dev"]))
        tasks = tuple(TASK_TYPES["dev"][:count])
        questions = [
            question
            for question in write_mlvu_fixture(root, questions_per_task=num_samples // count, num_frames=num_frames)
            if question.task in tasks
        ]
        return FixtureSet(cls.name, root, tuple(questions), tasks)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.options.split not in TASK_TYPES:
            raise ValueError(f"mlvu split must be 'dev' or 'test', got {self.options.split!r}")
        self.task_types = TASK_TYPES[self.options.split]

    def annotation_path(self) -> Path:
        patterns = ANNOTATION_PATTERNS[self.options.split]
        return find_annotation_file(self.data_root, patterns, self.options.annotations)

    def read_samples(self, tasks: Optional[Sequence[str]] = None) -> list[Sample]:
        if tasks:
            unknown = sorted(set(tasks) - set(self.task_types))
            if unknown:
                raise ValueError(
                    f"unknown mlvu {self.options.split} task type(s) {unknown}; expected some of: "
                    f"{', '.join(self.task_types)}"
                )
        path = self.annotation_path()
        rows = read_parquet_rows(path, _COLUMNS)
        return [self._sample(row_index, row, path) for row_index, row in enumerate(rows)]

    def _sample(self, row_index: int, row: Mapping[str, Any], path: Path) -> Sample:
        where = f"{path} row {row_index}"
        if row["task_type"] not in self.task_types:
            raise AnnotationError(
                f"{where}: unknown task_type {row['task_type']!r} for the {self.options.split} "
                f"split; expected one of {list(self.task_types)}"
            )
        for column in ("video_name", "question", "answer"):
            if not isinstance(row[column], str) or not row[column]:
                raise AnnotationError(f"{where}: {column!r} must be a non-empty string, got {row[column]!r}")
        candidates = row.get("candidates") or []
        video_path = self.data_root / row["video_name"]
        fields: dict[str, Any] = {"task_type": row["task_type"], "question_id": row.get("question_id")}
        if row.get("duration") is not None:
            fields["video_duration"] = float(row["duration"])
        if not video_path.exists():
            fields["expected_path"] = str(video_path)
        return Sample(
            id=f"{row_index:05d}",
            benchmark=self.name,
            task=row["task_type"],
            index=row_index,
            video=row["video_name"],
            question=row["question"],
            options=tuple(str(c) for c in candidates),
            gold=row["answer"],
            prompt=build_prompt(row["question"], self.options.split),
            video_path=video_path if video_path.exists() else None,
            fields=fields,
        )

    def check_tasks(self) -> Sequence[str]:
        return self.task_types

    def check(self) -> CheckReport:
        report = super().check()
        report.benchmark = f"{self.name} ({self.options.split})"
        return report

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        per_type = group_accuracy(scored(records), lambda record: record["task"], self.task_types)
        scores = {task: per_type[task]["accuracy"] if task in per_type else 0.0 for task in self.task_types}
        present = [task for task in self.task_types if task in per_type]
        if len(present) < len(self.task_types):
            logger.warning(
                "mlvu: %d of %d task types have no scored sample; lmms-eval's M-Avg counts them as 0",
                len(self.task_types) - len(present),
                len(self.task_types),
            )
        return {
            "overall": sum(scores.values()) / len(self.task_types),
            "overall_definition": f"M-Avg: mean of the per-task-type accuracies over all {len(self.task_types)} "
            f"{self.options.split} task types, 0 for a type without samples (lmms-eval "
            f"mlvu_percetion_score)",
            "overall_present_tasks": sum(scores[t] for t in present) / len(present) if present else 0.0,
            "per_task": per_type,
            "counts": count_summary(records),
        }

    def settings_record(self) -> dict[str, Any]:
        return {"benchmark": self.name, "split": self.options.split, "post_prompt": POST_PROMPTS[self.options.split]}

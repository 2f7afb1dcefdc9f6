"""MVBench (OpenGVLab/MVBench, revision ``video``) as lmms-eval's ``mvbench`` group runs it.

Layout under the data root (lmms-eval unzips the release's video archives into its cache folder):
``json/<task>.json`` (a list of records: ``video``, ``question``, ``candidates``, ``answer``, and for some tasks
``start``/``end`` in seconds) and one video folder per task (:data:`TASK_VIDEO_FOLDERS`). A video is looked up in
``<root>/<folder>``, then ``<root>/video/<folder>`` (the release's own tree), then, for clevrer and star,
``<root>/data0613/<folder>``. episodic_reasoning's "videos" are folders of JPEG frames at 3 fps.

Prompt: ``"Question:" + question + "\\nOption:\\n" + "(A) cand\\n" ... + "Only give the best option.\\n"``.
Scoring: mcq_acc (:mod:`.mcq`); per task 100 * correct / answered where empty responses are not answered; the
headline is the mean of the task scores.
"""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .base import (
    AnnotationError,
    Benchmark,
    CheckReport,
    Sample,
    count_summary,
    percent,
    register_benchmark,
    scored,
    scored_response,
)
from .mcq import mvbench_extract, mvbench_match

logger = logging.getLogger(__name__)

# lmms-eval's group order (mvbench.yaml).
TASKS = (
    "action_sequence",
    "moving_count",
    "action_prediction",
    "episodic_reasoning",
    "action_antonym",
    "action_count",
    "scene_transition",
    "object_shuffle",
    "object_existence",
    "fine_grained_pose",
    "unexpected_action",
    "moving_direction",
    "state_change",
    "object_interaction",
    "character_order",
    "action_localization",
    "counterfactual_inference",
    "fine_grained_action",
    "moving_attribute",
    "egocentric_navigation",
)

TASK_VIDEO_FOLDERS = {
    "object_interaction": "star/Charades_segment",
    "action_sequence": "star/Charades_segment",
    "action_prediction": "star/Charades_segment",
    "action_localization": "sta/sta_video_segment",
    "moving_count": "clevrer/video_validation",
    "fine_grained_pose": "nturgbd_convert",
    "character_order": "perception/videos",
    "object_shuffle": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "moving_direction": "clevrer/video_validation",
    "episodic_reasoning": "tvqa/video_fps3_hq_segment",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "scene_transition": "scene_qa/video",
    "state_change": "perception/videos",
    "moving_attribute": "clevrer/video_validation",
    "action_antonym": "ssv2_video_mp4",
    "unexpected_action": "FunQA_test/test",
    "counterfactual_inference": "clevrer/video_validation",
    "object_existence": "clevrer/video_validation",
    "action_count": "perception/videos",
}

FRAME_FOLDER_TASKS = {"episodic_reasoning": 3.0}  # task -> frames per second of its frame folders
POST_PROMPT = "Only give the best option.\n"
_REQUIRED = ("video", "question", "candidates", "answer")
_KNOWN_KEYS = set(_REQUIRED) | {"start", "end"}


def build_prompt(question: str, candidates: Sequence[str]) -> str:
    """lmms-eval's mvbench_doc_to_text with the default post prompt."""
    options = "".join(f"({letter}) {option}\n" for letter, option in zip(string.ascii_uppercase, candidates))
    return "Question:" + question + "\nOption:\n" + options + POST_PROMPT


def gold_letter(candidates: Sequence[str], answer: str) -> Optional[str]:
    """The letter of the first candidate equal to the answer text, None when no candidate is."""
    for letter, option in zip(string.ascii_uppercase, candidates):
        if option == answer:
            return letter
    return None


@register_benchmark
class MVBench(Benchmark):
    """MVBench: 20 tasks of per-task JSON annotations; see the module docstring for layout and rules."""

    name = "mvbench"
    all_tasks = TASKS
    limit_per_task = True
    description = (
        "Run MVBench (OpenGVLab/MVBench, 20 tasks: json/<task>.json and the task video folders under "
        "--data-root) scored as lmms-eval's mvbench group: mcq_acc parsing, per-task accuracy with empty "
        "responses left out of the denominator, headline the mean over tasks."
    )
    settings = ("time_bounds",)

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument(
            "--time-bounds",
            action="store_true",
            default=None,
            help="MVBench: sample frames inside the records' start/end (lmms-eval ignores them)",
        )

    @classmethod
    def detect(cls, data_root: Path) -> bool:
        return (data_root / "json").is_dir()

    @classmethod
    def write_fixture(cls, root: Path, num_samples: int, *, num_frames: int = 32) -> Any:
        """The questions spread over as many of the 20 tasks as divide ``num_samples`` (64: 16 tasks x 4)."""
        from .fixtures import FixtureSet, largest_divisor, write_mvbench_fixture

        count = largest_divisor(num_samples, len(TASKS))
        tasks = tuple(TASKS[:count])
        questions = write_mvbench_fixture(
            root, tasks=tasks, questions_per_task=num_samples // count, num_frames=num_frames
        )
        return FixtureSet(cls.name, root, tuple(questions), tasks)

    def annotation_path(self, task: str) -> Path:
        base = self.options.annotations or self.data_root / "json"
        return Path(base) / f"{task}.json"

    def video_dirs(self, task: str) -> list[Path]:
        folder = TASK_VIDEO_FOLDERS[task]
        dirs = [self.data_root / folder, self.data_root / "video" / folder]
        if folder.split("/")[0] in ("clevrer", "star"):
            dirs.append(self.data_root / "data0613" / folder)
        return dirs

    def resolve_video(self, task: str, video: str) -> Optional[Path]:
        for directory in self.video_dirs(task):
            path = directory / video
            if path.exists():
                return path
        return None

    def read_task(self, task: str, task_position: int) -> list[Sample]:
        path = self.annotation_path(task)
        records = _read_json_list(path)
        extra = sorted({key for record in records if isinstance(record, dict) for key in record} - _KNOWN_KEYS)
        if extra:
            logger.warning("%s: fields %s are not used by the runner", path, extra)
        samples = []
        for row, record in enumerate(records):
            samples.append(self._sample(task, task_position, row, record, path))
        return samples

    def _sample(self, task: str, task_position: int, row: int, record: Any, path: Path) -> Sample:
        where = f"{path} record {row}"
        if not isinstance(record, dict):
            raise AnnotationError(f"{where}: expected an object, got {type(record).__name__}")
        missing = [key for key in _REQUIRED if key not in record]
        if missing:
            raise AnnotationError(f"{where}: missing field(s) {missing}")
        candidates = record["candidates"]
        if not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) for c in candidates):
            raise AnnotationError(f"{where}: 'candidates' must be a non-empty list of strings, got {candidates!r}")
        if not isinstance(record["question"], str) or not isinstance(record["video"], str):
            raise AnnotationError(f"{where}: 'question' and 'video' must be strings")
        gold = gold_letter(candidates, record["answer"])
        if gold is None:
            raise AnnotationError(f"{where}: answer {record['answer']!r} is not one of the candidates {candidates}")
        fields: dict[str, Any] = {}
        for key in ("start", "end"):
            if key in record:
                fields[key] = float(record[key])
        # lmms-eval ignores the records' bounds; with time_bounds the frames are sampled inside them.
        bounded = self.options.time_bounds and "start" in fields and "end" in fields
        window = (fields["start"], fields["end"]) if bounded else None
        video_path = self.resolve_video(task, record["video"])
        if video_path is None:
            fields["expected_path"] = str(self.video_dirs(task)[0] / record["video"])
        return Sample(
            id=f"{task}/{row:04d}",
            benchmark=self.name,
            task=task,
            index=task_position * 100_000 + row,
            video=record["video"],
            question=record["question"],
            options=tuple(candidates),
            gold=gold,
            prompt=build_prompt(record["question"], candidates),
            video_path=video_path,
            fields=fields,
            frame_rate=FRAME_FOLDER_TASKS.get(task),
            window=window,
        )

    def read_samples(self, tasks: Optional[Sequence[str]] = None) -> list[Sample]:
        samples: list[Sample] = []
        for position, task in enumerate(TASKS):
            if tasks is None or task in tasks:
                samples.extend(self.read_task(task, position))
        return samples

    def check(self) -> CheckReport:
        report = CheckReport(self.name, self.data_root)
        for position, task in enumerate(TASKS):
            path = self.annotation_path(task)
            try:
                samples = self.read_task(task, position)
            except AnnotationError as error:
                report.problems.append(str(error))
                continue
            report.annotation_files.append(str(path))
            report.add_task(task, samples)
        return report

    def parse(self, response: str) -> str:
        return mvbench_extract(response)

    def is_correct(self, response: str, parsed: str, gold: str) -> bool:
        return mvbench_match(gold, response)

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        per_task: dict[str, dict[str, Any]] = {}
        for task in TASKS:
            task_records = [record for record in records if record["task"] == task]
            if not task_records:
                continue
            answered = [record for record in scored(task_records) if scored_response(record) != ""]
            correct = sum(1 for record in answered if record["correct"])
            total = len(scored(task_records))
            per_task[task] = {
                "accuracy": percent(correct, len(answered)),
                "plain_accuracy": percent(correct, total),
                "correct": correct,
                "answered": len(answered),
                "total": total,
                "errors": len(task_records) - total,
            }
        overall = sum(info["accuracy"] for info in per_task.values()) / len(per_task) if per_task else 0.0
        plain = sum(info["plain_accuracy"] for info in per_task.values()) / len(per_task) if per_task else 0.0
        return {
            "overall": overall,
            "overall_definition": "mean over tasks of lmms-eval's mvbench_accuracy (100 * correct / answered, "
            "empty responses not answered)",
            "overall_plain": plain,
            "micro_accuracy": percent(
                sum(i["correct"] for i in per_task.values()), sum(i["total"] for i in per_task.values())
            ),
            "per_task": per_task,
            "counts": count_summary(records),
        }

    def settings_record(self) -> dict[str, Any]:
        return {"benchmark": self.name, "time_bounds": self.options.time_bounds, "post_prompt": POST_PROMPT}


def _read_json_list(path: Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise AnnotationError(f"annotation file not found: {path} (select the tasks you have with --tasks)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(f"cannot read annotation file {path}: {error}") from error
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data

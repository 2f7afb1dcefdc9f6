"""What every benchmark shares: the sample record, the errors, the benchmark interface and its registry, the data
check report, and the accuracy helpers the metrics are built from."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, Optional, Sequence, TypeVar

from ..errors import DivPruneVideoError
from ..registry import Registry

logger = logging.getLogger(__name__)


class BenchmarkError(DivPruneVideoError):
    """Base class of the benchmark runner's own failures."""


class AnnotationError(BenchmarkError):
    """An annotation file is missing, unreadable, or has a record with missing or unknown fields."""


class MissingVideoError(BenchmarkError):
    """Videos named by the annotations are not on disk (run with ``skip_missing`` to record them per sample)."""


class SampleError(BenchmarkError):
    """Answering one sample failed (decoding, model); the message names the sample and its video."""


class ConfigurationError(BenchmarkError):
    """The run's settings cannot work for any sample (a prune layer the model does not have, a sequence longer
    than its context ...); raised once, before any video is decoded, whatever ``skip_missing`` says."""


@dataclass(frozen=True)
class BenchmarkOptions:
    """Benchmark-specific switches; each benchmark reads the ones that concern it.

    subtitles: Video-MME with subtitles (lmms-eval's ``videomme_w_subtitle``).
    prompt_variant: Video-MME's prompt: "default", "llava_vid" (its post prompt) or "qwen3_vl" (its format); see
        docs/benchmarks.md.
    split: MLVU split, "dev" or "test".
    time_bounds: MVBench: sample frames inside the records' ``start``/``end`` (lmms-eval ignores them: off).
    subtitle_frames: Video-MME: frames whose subtitles enter the prompt (lmms-eval's ``frame_num``, 32).
    annotations: an explicit annotation file instead of the one found under the data root.
    extra: the settings of benchmarks registered elsewhere (names in their :attr:`Benchmark.settings` that are not
        fields here), read with :meth:`get`: a new benchmark's options need no edit of this class.
    """

    subtitles: bool = False
    prompt_variant: str = "default"
    split: str = "dev"
    time_bounds: bool = False
    subtitle_frames: int = 32
    annotations: Optional[Path] = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """A setting by name: a field of this class, else ``extra[name]``, else ``default``."""
        if name != "extra" and name in self.__dataclass_fields__:
            return getattr(self, name)
        return self.extra.get(name, default)

    def as_settings(self) -> dict[str, Any]:
        """The flat mapping of every setting (the fields, then ``extra``'s items), as run configs write them."""
        flat = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "extra"}
        flat.update(self.extra)
        return flat


@dataclass(frozen=True)
class Sample:
    """One question of a benchmark, ready to be answered.

    ``video`` is the video reference as the annotations write it (the key replay files use, with ``question``);
    ``video_path`` the resolved file or frame folder (None when missing); ``prompt`` the text the model sees (None
    when it depends on the video, e.g. Video-MME subtitles, and is built when the sample is prepared); ``fields``
    the benchmark's extra columns (duration, domain, time bounds ...); ``index`` the position in the benchmark's
    full order, which sharding and merging keep. Which frames to read is said here, by the benchmark: ``frame_rate``
    the frames per second of a frame folder (its images carry no timing; None for video files) and ``window`` the
    (start, end) seconds to sample frames in (None: the whole video); the answerer reads nothing else.
    """

    id: str
    benchmark: str
    task: str
    index: int
    video: str
    question: str
    options: tuple[str, ...]
    gold: str
    prompt: Optional[str]
    video_path: Optional[Path] = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    frame_rate: Optional[float] = None
    window: Optional[tuple[float, float]] = None


@dataclass
class CheckReport:
    """What ``bench check`` found for one benchmark: per task, questions and missing videos."""

    benchmark: str
    data_root: Path
    annotation_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and all(not info["missing"] for info in self.tasks.values())

    def add_task(self, task: str, samples: Sequence["Sample"]) -> None:
        """Count a task's questions and distinct videos, and list the videos not found."""
        videos = {sample.video: sample for sample in samples}
        missing = [
            sample.fields.get("expected_path", sample.video) for sample in videos.values() if sample.video_path is None
        ]
        self.tasks[task] = {"questions": len(samples), "videos": len(videos), "missing": missing}

    def format(self, max_listed: int = 5) -> str:
        """A human-readable report."""
        lines = [f"{self.benchmark} under {self.data_root}: {'OK' if self.ok else 'INCOMPLETE'}"]
        lines += [f"  annotations: {name}" for name in self.annotation_files]
        lines += [f"  problem: {problem}" for problem in self.problems]
        for task, info in self.tasks.items():
            present = info["videos"] - len(info["missing"])
            lines.append(f"  {task:<26} {info['questions']:>5} questions  {present:>5}/{info['videos']} videos present")
            for name in info["missing"][:max_listed]:
                lines.append(f"      missing: {name}")
            if len(info["missing"]) > max_listed:
                lines.append(f"      ... and {len(info['missing']) - max_listed} more")
        lines += [f"  {key}: {value}" for key, value in self.extras.items()]
        return "\n".join(lines)


class Benchmark(ABC):
    """A benchmark: reader of the released layout, prompt, answer parsing and metric, as lmms-eval has them.

    A new benchmark is one module: a subclass registered with :func:`register_benchmark` (its ``name`` becomes a
    ``divprune-video bench NAME`` command, a config value and a fixture kind; see docs/extending.md).
    """

    name: ClassVar[str]
    all_tasks: ClassVar[tuple[str, ...]]
    #: lmms-eval applies ``--limit`` to each task separately when the benchmark is a group of tasks.
    limit_per_task: ClassVar[bool] = False
    #: The ``divprune-video bench NAME`` command's description (what is read, how it is scored).
    description: ClassVar[str] = ""
    #: The names of the settings that concern this benchmark only (given for another: an error): fields of
    #: :class:`BenchmarkOptions` for the built-in benchmarks, any other name for a new one (its value then comes in
    #: ``options.extra``; read it with ``self.options.get(name, default)``).
    settings: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        """Add the benchmark's own command-line flags (one per name in :attr:`settings`) to ``parser``."""

    @classmethod
    def detect(cls, data_root: Path) -> bool:
        """Whether ``data_root`` holds this benchmark's released layout (``bench check`` without --benchmark)."""
        return False

    @classmethod
    def write_fixture(cls, root: Path, num_samples: int, *, num_frames: int = 32) -> Any:
        """Write exactly ``num_samples`` questions in the released layout under ``root`` (a
        :class:`~divprune_video.eval.fixtures.FixtureSet`) for smoke tests and ``bench scaling``."""
        raise NotImplementedError(f"benchmark {cls.name!r} has no fixture writer")

    def __init__(self, data_root: Path | str, options: Optional[BenchmarkOptions] = None) -> None:
        self.data_root = Path(data_root).expanduser()
        self.options = options or BenchmarkOptions()

    # -- data --------------------------------------------------------------------------------------------------
    @abstractmethod
    def read_samples(self, tasks: Optional[Sequence[str]] = None) -> list[Sample]:
        """The samples of ``tasks`` (all when None) in the benchmark's order, videos resolved (``video_path`` None
        when missing). Benchmarks with one annotation file may return every task; :meth:`load` filters."""

    def annotation_path(self) -> Path:
        """The annotation file of a benchmark that has one (benchmarks with several override :meth:`check`)."""
        raise NotImplementedError(f"{self.name} has no single annotation file")

    def check_tasks(self) -> Sequence[str]:
        """The tasks :meth:`check` reports on."""
        return self.all_tasks

    def check(self) -> CheckReport:
        """What is present and what is missing under the data root."""
        report = CheckReport(self.name, self.data_root)
        try:
            path = self.annotation_path()
            samples = self.read_samples()
        except AnnotationError as error:
            report.problems.append(str(error))
            return report
        report.annotation_files.append(str(path))
        for task in self.check_tasks():
            report.add_task(task, [sample for sample in samples if sample.task == task])
        return report

    def load(
        self,
        tasks: Optional[Sequence[str]] = None,
        limit: Optional[int] = None,
        *,
        skip_missing: bool = False,
        require_videos: bool = True,
    ) -> list[Sample]:
        """The selected samples. Missing videos raise :class:`MissingVideoError` naming them, unless
        ``skip_missing`` (each such sample then carries an ``error``) or not ``require_videos``."""
        selected = select_tasks(self.read_samples(tasks or None), self.name, self.all_tasks, tasks)
        selected = apply_limit(selected, limit, per_task=self.limit_per_task)
        missing = [sample for sample in selected if sample.video_path is None]
        if missing and require_videos and not skip_missing:
            listed = ", ".join(f"{sample.fields.get('expected_path', sample.video)}" for sample in missing[:5])
            raise MissingVideoError(
                f"{self.name}: {len(missing)} of {len(selected)} selected samples have no video under "
                f"{self.data_root} (first: {listed}); run 'divprune-video bench check {self.data_root}' for the "
                f"full list, or pass --skip-missing to record them as per-sample errors"
            )
        self.check_inputs(selected)
        if missing and require_videos:
            logger.warning("%s: %d samples have no video and are recorded as errors", self.name, len(missing))
            selected = [
                _with_error(sample, f"missing video: {sample.fields.get('expected_path', sample.video)}")
                if sample.video_path is None
                else sample
                for sample in selected
            ]
        return selected

    def check_inputs(self, samples: Sequence[Sample]) -> None:
        """Check the files besides the videos that answering ``samples`` will read (subtitles ...), so a bad one
        stops the run before any work, naming the file; nothing to check by default."""

    # -- prompt, parsing, metric -------------------------------------------------------------------------------
    def needs_video_for_prompt(self) -> bool:
        """True when the prompt depends on the video file (built by :meth:`build_prompt` at prepare time)."""
        return False

    def build_prompt(self, sample: Sample) -> str:
        """The prompt for a sample; benchmarks whose prompt needs the video override this."""
        if sample.prompt is None:
            raise BenchmarkError(f"{self.name}: sample {sample.id} has no prompt")
        return sample.prompt

    @abstractmethod
    def parse(self, response: str) -> str:
        """The choice letter the response gives, ``""`` when none."""

    @abstractmethod
    def is_correct(self, response: str, parsed: str, gold: str) -> bool:
        """lmms-eval's per-sample correctness."""

    @abstractmethod
    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``overall`` (the headline as lmms-eval computes it), its definition, and the breakdowns, from the
        records of ``samples.jsonl`` (records with an ``error`` are not scored; they are counted)."""

    def settings_record(self) -> dict[str, Any]:
        """The benchmark settings a run records (prompt variant, split ...)."""
        return {"benchmark": self.name}


def _with_error(sample: Sample, message: str) -> Sample:
    return replace(sample, error=message)


def select_tasks(
    samples: Sequence[Sample], benchmark: str, all_tasks: Sequence[str], tasks: Optional[Sequence[str]]
) -> list[Sample]:
    """Samples of the given tasks (all when None); an unknown task name raises ValueError listing the valid ones."""
    if not tasks:
        return list(samples)
    unknown = sorted(set(tasks) - set(all_tasks))
    if unknown:
        raise ValueError(f"unknown {benchmark} task(s) {unknown}; expected some of: {', '.join(all_tasks)}")
    wanted = set(tasks)
    return [sample for sample in samples if sample.task in wanted]


def apply_limit(samples: Sequence[Sample], limit: Optional[int], *, per_task: bool) -> list[Sample]:
    """The first ``limit`` samples overall, or of each task (lmms-eval's ``--limit`` on a group of tasks)."""
    if limit is None:
        return list(samples)
    if limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    if not per_task:
        return list(samples[:limit])
    taken: dict[str, int] = {}
    kept = []
    for sample in samples:
        if taken.get(sample.task, 0) < limit:
            taken[sample.task] = taken.get(sample.task, 0) + 1
            kept.append(sample)
    return kept


# --- metric helpers -----------------------------------------------------------------------------------------------


def percent(correct: float, total: float) -> float:
    """100 * correct / total, 0 when total is 0 (lmms-eval's convention)."""
    return 100.0 * correct / total if total > 0 else 0.0


def scored_response(record: Mapping[str, Any]) -> str:
    """The text a record was parsed from: ``filtered_response`` (reasoning blocks removed, stripped), or the raw
    ``response`` of records written before that field existed."""
    return record.get("filtered_response", record.get("response", ""))


def scored(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records that carry an answer (no ``error``)."""
    return [record for record in records if not record.get("error")]


def group_accuracy(
    records: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str], order: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Micro accuracy per group: {group: {"accuracy", "correct", "total"}}, groups in ``order`` first; groups
    without records are left out."""
    groups: dict[str, list[int]] = {name: [0, 0] for name in order}
    for record in records:
        counts = groups.setdefault(key(record), [0, 0])
        counts[0] += int(bool(record["correct"]))
        counts[1] += 1
    return {
        name: {"accuracy": percent(correct, total), "correct": correct, "total": total}
        for name, (correct, total) in groups.items()
        if total
    }


def count_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many records, how many scored, errors, empty responses, correct ones, and how many were answered from a
    partial video (some source frames could not be read)."""
    answered = scored(records)
    return {
        "samples": len(records),
        "scored": len(answered),
        "errors": len(records) - len(answered),
        "empty_responses": sum(1 for record in answered if scored_response(record) == ""),
        "correct": sum(1 for record in answered if record["correct"]),
        "partial": sum(1 for record in records if record.get("partial")),
    }


def _builtin_benchmarks() -> None:
    from . import mlvu, mvbench, videomme  # noqa: F401  (each registers itself)


#: The benchmarks by name (MVBench, Video-MME and MLVU are built in).
BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark", discover=_builtin_benchmarks)

BenchmarkType = TypeVar("BenchmarkType", bound=type[Benchmark])


def register_benchmark(cls: BenchmarkType) -> BenchmarkType:
    """Class decorator: register a benchmark in :data:`BENCHMARKS` under its ``name``."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__name__} needs a non-empty 'name' to be registered")
    return BENCHMARKS.register(cls.name, cls)


def get_benchmark(name: str) -> type[Benchmark]:
    """The benchmark class registered under ``name``."""
    return BENCHMARKS.get(name)


def available_benchmarks() -> list[str]:
    """Names of the registered benchmarks."""
    return BENCHMARKS.names()


def benchmark_settings() -> dict[str, str]:
    """Each benchmark-specific setting and the benchmark it belongs to."""
    return {setting: name for name, cls in BENCHMARKS.items() for setting in cls.settings}


def read_parquet_rows(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of a parquet annotation file as dicts; a missing file, unreadable file or missing column raises
    :class:`AnnotationError` naming the file."""
    from .._optional import require

    parquet = require("pyarrow.parquet", "eval", "pyarrow")
    if not Path(path).is_file():
        raise AnnotationError(f"annotation file not found: {path}")
    try:
        table = parquet.read_table(path)
    except Exception as error:  # pyarrow raises several exception kinds for corrupt files
        raise AnnotationError(f"cannot read annotation file {path}: {error}") from error
    absent = [column for column in required if column not in table.column_names]
    if absent:
        raise AnnotationError(f"{path}: missing column(s) {absent}; found {table.column_names}")
    return table.to_pylist()


def find_annotation_file(data_root: Path, candidates: Sequence[str], explicit: Optional[Path]) -> Path:
    """The explicit file, else the first of the glob patterns (relative to the data root) that matches a file."""
    if explicit is not None:
        return Path(explicit)
    for pattern in candidates:
        matches = sorted(path for path in data_root.glob(pattern) if path.is_file())
        if matches:
            return matches[0]
    raise AnnotationError(
        f"no annotation file under {data_root}: looked for {', '.join(candidates)} (pass --annotations FILE)"
    )

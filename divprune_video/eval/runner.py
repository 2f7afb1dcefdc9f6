"""The benchmark runner: load the selected samples, skip the ones already finished, shard the rest over the
torchrun ranks, prepare them in prefetch workers, answer every variant, append each record as it finishes, then
merge the shards and write the summaries (rank 0).

Every variant's results live in ``<output>/<variant folder>/`` (:meth:`RunConfig.variant_dir`), however many variants
a run has. Settings that would fail every sample are checked before any video is decoded (the configuration when
it is built; the loaded model through :meth:`Answerer.check_settings`) and stop the run whatever ``skip_missing``
says. Responses are parsed after lmms-eval's reasoning-block filter (:mod:`.reasoning`).

Crash safety: every finished record is flushed to disk before the next sample starts; a rerun of the same command
reads what is there and continues; on Ctrl-C the prefetch workers are stopped and the rank's status says
``interrupted``. Determinism: each sample gets the seed ``config.seed + sample.index``, so a sharded run answers
exactly as a single process does.

Each process keeps ``<output>/ranks/rank<r>.json`` up to date: its pid, host and device, how long the model took to
load, and once its shard is answered the answering phase's wall-clock start and end, its seconds per stage and
when each sample finished (``divprune-video bench scaling`` reads them; a person can see which rank is where).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .._optional import require
from .answerers import Answer, Answerer, PreparedSample, answerer_class, make_answerer
from .base import Benchmark, ConfigurationError, Sample, SampleError, get_benchmark
from .config import RunConfig, Variant, variant_folder
from .distributed import DistributedContext
from .prefetch import Prefetcher
from .reasoning import describe_reasoning_filter, strip_reasoning_blocks
from .results import (
    RUN_FILE,
    SAMPLES_FILE,
    JsonlWriter,
    ResultsError,
    check_results_folder,
    check_run_config,
    collect_records,
    merge_shards,
    move_results,
    read_run_file,
    shard_path,
    write_rank_status,
    write_summary,
)

logger = logging.getLogger(__name__)

LMMS_EVAL_REFERENCE = {
    "repository": "EvolvingLMMs-Lab/lmms-eval",
    "commit": "75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3",
    "files": [
        "lmms_eval/tasks/mvbench/",
        "lmms_eval/tasks/videomme/",
        "lmms_eval/tasks/mlvu/",
        "lmms_eval/tasks/_task_utils/mcq_extract.py",
        "lmms_eval/models/model_utils/load_video.py",
    ],
}
FRAME_SAMPLING = "uniform: numpy.linspace(0, total_frames - 1, num_frames, dtype=int)"
#: Failures of the model on this many samples in a row, all with the same message and none answered, stop a run
#: even under ``skip_missing``: that is a setting that fails every sample, not a few bad videos.
REPEATED_FAILURE_LIMIT = 3


@dataclass
class RunResult:
    """What one call of :func:`run_benchmark` did: the summaries (rank 0; empty on other ranks), how many samples
    this process answered, its seconds per stage, and when each of its samples was finished (seconds since it
    started answering)."""

    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    processed: int = 0
    skipped_done: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    finished_after: list[float] = field(default_factory=list)


def build_record(
    benchmark: Benchmark,
    prepared: PreparedSample,
    variant: Variant,
    answer: Optional[Answer],
    error: Optional[str],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """One line of ``samples.jsonl``. The response is parsed and scored after its reasoning blocks are removed
    (``filtered_response``, as lmms-eval's command line does); ``response`` keeps the raw text."""
    sample = prepared.sample
    response = answer.response if answer is not None and error is None else ""
    filtered = strip_reasoning_blocks(response)
    parsed = benchmark.parse(filtered) if error is None else ""
    correct = error is None and benchmark.is_correct(filtered, parsed, sample.gold)
    record: dict[str, Any] = {
        "id": sample.id,
        "index": sample.index,
        "benchmark": sample.benchmark,
        "task": sample.task,
        "variant": variant.name,
        "video": sample.video,
        "question": sample.question,
        "options": list(sample.options),
        "gold": sample.gold,
        "prompt": prepared.prompt,
        "response": response,
        "filtered_response": filtered,
        "parsed": parsed,
        "correct": bool(correct),
        "visual_tokens_total": answer.num_visual_tokens if answer is not None else None,
        "visual_tokens_kept": answer.num_kept if answer is not None else None,
        "timings": {key: round(float(value), 6) for key, value in timings.items()},
        "error": error,
        "partial": prepared.partial,
        "lost_frames": [list(span) for span in prepared.lost_frames],
        "fields": {key: value for key, value in sample.fields.items() if key != "expected_path"},
        "details": dict(answer.details) if answer is not None else {},
    }
    if "duration" in sample.fields:
        record["duration"] = sample.fields["duration"]
    return record


def _describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def lost_frames_of(frames: Any) -> tuple[tuple[tuple[int, int], ...], bool]:
    """(lost source-frame ranges as half-open ``(start, end)`` pairs, partial) of decoded frames: a
    :class:`~divprune_video.video.VideoClip` says both (``lost_frames``, ``partial``); anything else is whole."""
    lost = tuple((int(start), int(end)) for start, end in getattr(frames, "lost_frames", ()) or ())
    return lost, bool(getattr(frames, "partial", False)) or bool(lost)


def _format_ranges(ranges: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"[{start}, {end})" for start, end in ranges) or "some"


class _SampleProcessor:
    """Prepares (worker threads) and answers (main thread) samples for one process."""

    def __init__(self, benchmark: Benchmark, answerer: Answerer, config: RunConfig) -> None:
        self.benchmark = benchmark
        self.answerer = answerer
        self.config = config
        self.stage_seconds: dict[str, float] = defaultdict(float)
        self.failures: list[str] = []  # the model's failures since it last answered a sample

    def prepare(self, sample: Sample) -> PreparedSample:
        if sample.error:
            return PreparedSample(sample, None, error=sample.error)
        timings: dict[str, float] = {}
        try:
            started = time.perf_counter()
            prompt = self.benchmark.build_prompt(sample)
            timings["prompt"] = time.perf_counter() - started
            frames = None
            if self.answerer.needs_frames:
                started = time.perf_counter()
                frames = self.answerer.decode(sample)
                timings["decode"] = time.perf_counter() - started
        except Exception as error:  # becomes a per-sample error (or a SampleError without --skip-missing)
            return PreparedSample(sample, None, error=_describe_error(error), timings=timings)
        lost, partial = lost_frames_of(frames)
        if partial and self.config.strict_video:
            return PreparedSample(
                sample,
                prompt,
                error=f"partial video (--strict-video): source frames {_format_ranges(lost)} could not be read",
                timings=timings,
                lost_frames=lost,
                partial=True,
            )
        return PreparedSample(sample, prompt, frames, timings=timings, lost_frames=lost, partial=partial)

    def _note_failure(self, sample: Sample, message: str) -> None:
        """Under ``skip_missing`` a failure is the sample's error, unless the same failure has now stopped
        :data:`REPEATED_FAILURE_LIMIT` samples in a row with none answered between them: that is a setting or a
        missing dependency failing every sample, not a few bad videos, and it stops the run."""
        self.failures.append(message)
        recent = self.failures[-REPEATED_FAILURE_LIMIT:]
        if len(recent) == REPEATED_FAILURE_LIMIT and len(set(recent)) == 1:
            raise ConfigurationError(
                f"{REPEATED_FAILURE_LIMIT} samples in a row failed with the same error, which "
                f"--skip-missing does not cover (a setting or a missing dependency that fails "
                f"every sample?); last: sample {sample.id} ({sample.video_path}): {message}"
            )

    def _model_failed(self, sample: Sample, failure: Exception) -> str:
        """The model's failure on ``sample`` as its error; raised instead unless ``skip_missing``, and always for a
        configuration error."""
        message = _describe_error(failure)
        if isinstance(failure, ConfigurationError):
            raise failure
        if not self.config.skip_missing:
            raise SampleError(f"sample {sample.id} ({sample.video_path}): {message}") from failure
        self._note_failure(sample, message)
        return message

    def _answers(
        self, prepared: PreparedSample, variants: Sequence[Variant]
    ) -> tuple[list[Optional[Answer]], Optional[str], float]:
        """(one answer per variant or Nones, the error, seconds the model took)."""
        sample = prepared.sample
        started = time.perf_counter()
        try:
            answers: list[Optional[Answer]] = list(
                self.answerer.answer(prepared, variants, self.config.seed + sample.index)
            )
        except Exception as failure:
            return [None] * len(variants), self._model_failed(sample, failure), time.perf_counter() - started
        if len(answers) != len(variants):
            raise SampleError(f"answerer returned {len(answers)} answers for {len(variants)} variants")
        self.failures.clear()
        return answers, None, time.perf_counter() - started

    def answer(self, prepared: PreparedSample, variants: Sequence[Variant]) -> list[dict[str, Any]]:
        sample = prepared.sample
        for stage, seconds in prepared.timings.items():
            self.stage_seconds[stage] += seconds
        if prepared.error and sample.error is None:
            if not self.config.skip_missing:
                raise SampleError(f"sample {sample.id} ({sample.video_path}): {prepared.error}")
            if not prepared.partial:  # a decoding failure, not --strict-video's verdict on a partial clip
                self._note_failure(sample, prepared.error)
        answers: list[Optional[Answer]] = [None] * len(variants)
        error, elapsed = prepared.error, 0.0
        if error is None:
            answers, error, elapsed = self._answers(prepared, variants)
            self.stage_seconds["model"] += elapsed
        started = time.perf_counter()
        records = []
        for variant, answer in zip(variants, answers):
            timings = dict(prepared.timings)
            if answer is not None:
                timings.update(answer.timings)
                timings.setdefault("model", elapsed / len(variants))
            records.append(build_record(self.benchmark, prepared, variant, answer, error, timings))
        self.stage_seconds["score"] += time.perf_counter() - started
        return records


def _done_ids(records: Mapping[str, Mapping[str, Any]], retry_errors: bool) -> set[str]:
    return {key for key, record in records.items() if not (retry_errors and record.get("error"))}


def run_benchmark(config: RunConfig, *, answerer: Optional[Answerer] = None, progress: bool = True) -> RunResult:
    """Run (or resume) ``config``; see the module docstring. ``answerer`` overrides the one ``config.model``
    names (tests pass their own).

    Everything that can make every sample fail is checked before the model answers anything: the output folders,
    the data (annotations, missing videos, subtitle files), the results already on disk, then, once the model is
    loaded, the settings against it (:meth:`Answerer.check_settings`)."""
    for variant in config.variants:
        check_results_folder(config.variant_dir(variant))
    context = DistributedContext.from_environment()
    own_answerer = answerer is None
    try:
        benchmark = get_benchmark(config.benchmark)(config.data_root, config.options)
        kind = type(answerer) if answerer is not None else answerer_class(config)
        if kind.max_variants is not None and len(config.variants) > kind.max_variants:
            raise ValueError(
                f"{kind.__name__} answers at most {kind.max_variants} variant(s) per run, got {len(config.variants)}"
            )
        # Data problems surface before any weights are loaded.
        samples = benchmark.load(
            config.tasks,
            config.limit,
            skip_missing=config.skip_missing,
            require_videos=kind.needs_frames or benchmark.needs_video_for_prompt(),
        )
        context.on_main(lambda: _prepare_output(config))
        context.barrier()
        done = {v: _done_ids(collect_records(config.variant_dir(v)), config.retry_errors) for v in config.variants}
        load_started = time.perf_counter()
        if answerer is None:
            answerer = make_answerer(config, local_rank=context.local_rank)
        load_seconds = time.perf_counter() - load_started
        answerer.check_settings(
            config, [sample.prompt or "\n".join([sample.question, *sample.options]) for sample in samples]
        )
        result = _answer_shard(config, context, benchmark, answerer, samples, done, progress, load_seconds)
        context.barrier()
        summaries = context.on_main(lambda: _finish(config, benchmark, answerer, samples, context.world_size))
        result.summaries = summaries or {}
        context.barrier()
        return result
    finally:
        if own_answerer and answerer is not None:
            answerer.close()
        context.close()


def _prepare_output(config: RunConfig) -> None:
    """Adopt a results folder of the older single-variant layout, then record or check each variant's settings."""
    _adopt_single_variant_layout(config.output)
    for variant in config.variants:
        check_run_config(config.variant_dir(variant), config.fingerprint(variant), overwrite=config.overwrite)


def _adopt_single_variant_layout(output: Path) -> None:
    """Runs with one variant used to keep their files in the output folder itself; move them into the variant's
    sub-folder, where this and every later run (with more variants or not) looks for them."""
    previous = read_run_file(output)
    if previous is None:
        return
    name = (previous.get("variant") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise ResultsError(f"{output / RUN_FILE} names no variant; move it away to start afresh")
    target = output / variant_folder(str(previous.get("model", "")), name)
    logger.warning(
        "%s: moving a single-variant run's results into %s (one layout for any number of variants)", output, target
    )
    move_results(output, target)


def _answer_shard(
    config: RunConfig,
    context: DistributedContext,
    benchmark: Benchmark,
    answerer: Answerer,
    samples: Sequence[Sample],
    done: Mapping[Variant, set[str]],
    progress: bool,
    load_seconds: float = 0.0,
) -> RunResult:
    mine = samples[context.rank :: context.world_size]
    pending = [s for s in mine if any(s.id not in done[v] for v in config.variants)]
    result = RunResult(skipped_done=len(mine) - len(pending))
    if result.skipped_done:
        logger.info("rank %d: %d of %d samples already done", context.rank, result.skipped_done, len(mine))
    model = answerer.model_record()
    status: dict[str, Any] = {
        "rank": context.rank,
        "world_size": context.world_size,
        "local_rank": context.local_rank,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "device": model.get("device"),
        "device_name": model.get("device_name"),
        "state": "answering",
        "load_seconds": round(load_seconds, 6),
        "assigned": len(mine),
        "pending": len(pending),
        "skipped_done": result.skipped_done,
        "answering_started": time.time(),
    }
    write_rank_status(config.output, context.rank, status)
    try:
        _answer_pending(config, context, answerer, benchmark, pending, done, result, progress)
    except BaseException as error:
        state = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        write_rank_status(
            config.output,
            context.rank,
            {**status, "state": state, "processed": result.processed, "error": _describe_error(error)},
        )
        raise
    write_rank_status(
        config.output,
        context.rank,
        {
            **status,
            "state": "done",
            "answering_finished": time.time(),
            "processed": result.processed,
            "stage_seconds": {stage: round(seconds, 6) for stage, seconds in result.stage_seconds.items()},
            "finished_after": result.finished_after,
        },
    )
    return result


def _answer_pending(
    config: RunConfig,
    context: DistributedContext,
    answerer: Answerer,
    benchmark: Benchmark,
    pending: Sequence[Sample],
    done: Mapping[Variant, set[str]],
    result: RunResult,
    progress: bool,
) -> None:
    processor = _SampleProcessor(benchmark, answerer, config)
    writers = {}
    for variant in config.variants:
        directory = config.variant_dir(variant)
        path = directory / SAMPLES_FILE if context.world_size == 1 else shard_path(directory, context.rank)
        writers[variant] = JsonlWriter(path)
    tqdm = require("tqdm.auto", "eval", "tqdm").tqdm
    started = time.perf_counter()
    try:
        with (
            Prefetcher(processor.prepare, pending, workers=config.workers, lookahead=config.prefetch) as loader,
            tqdm(
                total=len(pending),
                unit="sample",
                desc=f"{config.benchmark}[{context.rank}]",
                disable=not progress or not context.is_main,
                dynamic_ncols=True,
            ) as bar,
        ):
            for prepared in loader:
                todo = [v for v in config.variants if prepared.sample.id not in done[v]]
                records = processor.answer(prepared, todo)
                write_started = time.perf_counter()
                for variant, record in zip(todo, records):
                    writers[variant].write(record)
                processor.stage_seconds["write"] += time.perf_counter() - write_started
                result.processed += 1
                result.finished_after.append(round(time.perf_counter() - started, 6))
                bar.update(1)
            processor.stage_seconds["waiting for prefetch"] = loader.waited_seconds
    finally:
        for writer in writers.values():
            writer.close()
    processor.stage_seconds["wall"] = time.perf_counter() - started
    result.stage_seconds = dict(processor.stage_seconds)
    logger.info(
        "rank %d: %d samples in %.1f s; %s",
        context.rank,
        result.processed,
        result.stage_seconds["wall"],
        format_stage_seconds(result.stage_seconds),
    )


def format_stage_seconds(stage_seconds: Mapping[str, float]) -> str:
    """``stage 1.2 s (34%)`` per stage, shares of the wall time (prepare stages run in workers, overlapped)."""
    wall = stage_seconds.get("wall", 0.0) or 1e-9
    parts = [
        f"{stage} {seconds:.2f} s ({100 * seconds / wall:.0f}%)"
        for stage, seconds in stage_seconds.items()
        if stage != "wall"
    ]
    return ", ".join(parts) + f"; wall {stage_seconds.get('wall', 0.0):.2f} s"


def _finish(
    config: RunConfig, benchmark: Benchmark, answerer: Answerer, samples: Sequence[Sample], world_size: int
) -> dict[str, dict[str, Any]]:
    selected = {sample.id for sample in samples}
    summaries = {}
    for variant in config.variants:
        directory = config.variant_dir(variant)
        records = [record for record in merge_shards(directory) if record["id"] in selected]
        summary = build_summary(benchmark, answerer, config, variant, records, len(selected), world_size)
        write_summary(directory, summary)
        summaries[variant.name] = summary
    return summaries


def _timing_totals(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for record in records:
        for stage, seconds in (record.get("timings") or {}).items():
            totals[stage][0] += seconds
            totals[stage][1] += 1
    return {stage: {"total": total, "mean": total / count} for stage, (total, count) in totals.items()}


def build_summary(
    benchmark: Benchmark,
    answerer: Answerer,
    config: RunConfig,
    variant: Variant,
    records: Sequence[Mapping[str, Any]],
    selected: int,
    world_size: int = 1,
) -> dict[str, Any]:
    """``summary.json``: the benchmark's scores first, then what makes the run comparable and reproducible."""
    scores = benchmark.summarize(records)
    return {
        "benchmark": benchmark.name,
        "label": config.variant_label(variant),
        "variant": variant.to_dict(),
        **scores,
        "selected": selected,
        "complete": len(records) == selected,
        "config": {**config.to_dict(), "frame_sampling": FRAME_SAMPLING, "world_size": world_size},
        "benchmark_settings": benchmark.settings_record(),
        "response_filter": describe_reasoning_filter(),
        "model": answerer.model_record(),
        "lmms_eval_reference": LMMS_EVAL_REFERENCE,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "timings": _timing_totals(records),
    }


def package_versions() -> dict[str, Optional[str]]:
    """Versions of Python and of the packages that change results (None when not installed)."""
    versions: dict[str, Optional[str]] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in (
        "divprune-video",
        "torch",
        "transformers",
        "numpy",
        "av",
        "opencv-python-headless",
        "opencv-python",
        "pyarrow",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def git_commit() -> Optional[str]:
    """The commit of the checkout this package runs from (suffixed ``-dirty`` with local changes), else None."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")

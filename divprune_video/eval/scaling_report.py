"""Measurements and the Markdown report of ``divprune-video bench scaling`` (see :mod:`.scaling`).

Throughput is counted two ways. **Answering**: samples over the answering wall time of the slowest rank, from the
rank starting to answer (its model loaded) to its last record written, read from the ranks' own timers
(``ranks/rank<r>.json``); it includes decoding in the prefetch threads, encoding, selection, prefill, generation,
scoring and the record writes (and the first sample's warm-up), and excludes process start, imports, reading the
annotations, building or loading the model, and rank 0's merge and summary. The span from the first rank's start
to the last rank's end is given beside it (it adds the ranks' different model-load times). **Steady**: the same
after each rank's first :data:`WARMUP_SAMPLES` samples, which carry the per-process warm-up (CUDA library handles,
allocator growth, first kernel loads): samples after them over the slowest rank's time from its
``WARMUP_SAMPLES``-th to its last record. **End to end**: samples over the command's wall time from launch to exit,
everything included.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from .results import SAMPLES_FILE, ResultsError, load_summary, read_rank_statuses, read_records

if TYPE_CHECKING:
    from .compare import Comparison
    from .scaling import KillTest, ScalingOptions

#: The per-sample stages of the records' timings shown in the breakdown ("model" is their sum as the runner
#: measures it around the model call).
STAGES = ("decode", "encode", "select", "prefill", "generate", "model")
SPEEDUP_TARGET = 1.8
#: Samples per rank left out of the steady rate.
WARMUP_SAMPLES = 2


@dataclass
class RunMeasurement:
    """One run's throughput and per-stage costs."""

    label: str
    processes: int
    command: str
    end_to_end_seconds: float
    answering_seconds: float
    answering_span_seconds: float
    answered: int
    load_seconds: float
    ranks: list[dict[str, Any]] = field(default_factory=list)
    #: variant name -> stage -> mean milliseconds per sample (from the records' timings)
    stage_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    #: variant name -> the summary's headline
    overall: dict[str, float] = field(default_factory=dict)
    #: samples/s after each rank's first WARMUP_SAMPLES samples; None when a rank answered no more than that
    steady_rate: Optional[float] = None

    @property
    def answering_rate(self) -> float:
        return self.answered / self.answering_seconds if self.answering_seconds > 0 else float("nan")

    @property
    def end_to_end_rate(self) -> float:
        return self.answered / self.end_to_end_seconds if self.end_to_end_seconds > 0 else float("nan")


def stage_means_ms(records: list[Mapping[str, Any]]) -> dict[str, float]:
    """stage -> mean milliseconds per record over ``records`` (a record without the stage counts as 0)."""
    if not records:
        return {stage: float("nan") for stage in STAGES}
    return {
        stage: 1e3 * sum((record.get("timings") or {}).get(stage, 0.0) for record in records) / len(records)
        for stage in STAGES
    }


def steady_rate(finished_after: list[list[float]], warmup: int = WARMUP_SAMPLES) -> Optional[float]:
    """Samples/s after each rank's first ``warmup`` samples: ``finished_after[r]`` are rank r's sample finish times
    (seconds since it started answering); the time is the slowest rank's from its ``warmup``-th finish to its last.
    None when a rank has no sample after its warm-up."""
    if not finished_after or any(len(times) <= warmup for times in finished_after):
        return None
    seconds = max(times[-1] - (times[warmup - 1] if warmup else 0.0) for times in finished_after)
    samples = sum(len(times) - warmup for times in finished_after)
    return samples / seconds if seconds > 0 else None


def measure_run(
    label: str, processes: int, output: Path, variant_dirs: Mapping[str, Path], end_to_end_seconds: float, command: str
) -> RunMeasurement:
    """Read a finished run's rank status files, records and summaries."""
    statuses = read_rank_statuses(output)
    if len(statuses) != processes or any(status.get("state") != "done" for status in statuses.values()):
        states = {rank: status.get("state") for rank, status in statuses.items()}
        raise ResultsError(f"{output}: expected {processes} finished rank status files, found {states}")
    started = min(status["answering_started"] for status in statuses.values())
    finished = max(status["answering_finished"] for status in statuses.values())
    ranks = [
        {
            "rank": rank,
            "device": status.get("device"),
            "device_name": status.get("device_name"),
            "host": status.get("host"),
            "answered": status.get("processed", 0),
            "load_seconds": status.get("load_seconds", 0.0),
            "answering_seconds": status["answering_finished"] - status["answering_started"],
        }
        for rank, status in sorted(statuses.items())
    ]
    measurement = RunMeasurement(
        label,
        processes,
        command,
        end_to_end_seconds,
        max(rank["answering_seconds"] for rank in ranks),
        finished - started,
        sum(rank["answered"] for rank in ranks),
        max(rank["load_seconds"] for rank in ranks),
        ranks,
    )
    measurement.steady_rate = steady_rate([status.get("finished_after", []) for _, status in sorted(statuses.items())])
    for name, directory in variant_dirs.items():
        measurement.stage_ms[name] = stage_means_ms(read_records(Path(directory) / SAMPLES_FILE))
        measurement.overall[name] = load_summary(directory).get("overall", float("nan"))
    return measurement


@dataclass
class ScalingReport:
    """Everything ``bench scaling`` found, and its Markdown."""

    options: "ScalingOptions"
    command_line: str
    config_text: str
    measurements: list[RunMeasurement]
    comparisons: dict[str, "Comparison"]
    kill_test: Optional["KillTest"]
    versions: dict[str, Any]
    markdown: str = ""

    @property
    def identical(self) -> bool:
        return all(comparison.identical for comparison in self.comparisons.values())

    @property
    def passed(self) -> bool:
        """Identical merged results, and the kill test (when run) passed. The speedup target is reported, not
        required."""
        return self.identical and (self.kill_test is None or self.kill_test.passed)

    def speedup(self, kind: str = "answering") -> Optional[float]:
        """The sharded run's samples/s over the single process's: ``kind`` "answering", "steady" or "end_to_end"."""
        single, sharded = self.measurements
        if kind == "steady":
            if single.steady_rate is None or sharded.steady_rate is None:
                return None
            return sharded.steady_rate / single.steady_rate
        if kind == "end_to_end":
            return sharded.end_to_end_rate / single.end_to_end_rate
        if kind == "answering":
            return sharded.answering_rate / single.answering_rate
        raise ValueError(f"kind must be 'answering', 'steady' or 'end_to_end'; got {kind!r}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _devices(measurement: RunMeasurement) -> str:
    return ", ".join(f"rank {rank['rank']} {rank['device']} ({rank['device_name']})" for rank in measurement.ranks)


def _throughput_table(report: ScalingReport) -> list[str]:
    lines = [
        "| run | processes | samples | answering wall s | samples/s (answering) "
        f"| samples/s (steady, after {WARMUP_SAMPLES} per rank) | answering span s | end-to-end wall s "
        "| samples/s (end to end) | model load s (slowest rank) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in report.measurements:
        lines.append(
            f"| {m.label} | {m.processes} | {m.answered} | {m.answering_seconds:.2f} | "
            f"{m.answering_rate:.2f} | {_number(m.steady_rate)} | {m.answering_span_seconds:.2f} | "
            f"{m.end_to_end_seconds:.2f} | {m.end_to_end_rate:.2f} | {m.load_seconds:.2f} |"
        )
    return lines


def _number(value: Optional[float], suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def _speedup_lines(report: ScalingReport) -> list[str]:
    processes = report.options.nproc
    answering = report.speedup("answering")
    if processes == 1:
        verdict = "no target with one process: this run checks the command, the results and the resume"
    else:
        verdict = f"target >= {SPEEDUP_TARGET}x: **{'met' if answering >= SPEEDUP_TARGET else 'NOT met'}**"
    return [
        f"Speedup with {processes} process(es): **{answering:.2f}x** answering ({verdict}); "
        f"{_number(report.speedup('steady'), 'x')} steady (after {WARMUP_SAMPLES} samples per rank); "
        f"{report.speedup('end_to_end'):.2f}x end to end."
    ]


def _stage_table(report: ScalingReport) -> list[str]:
    several = len(report.comparisons) > 1
    lines = [
        "| run | " + ("variant | " if several else "") + " | ".join(f"{stage} ms" for stage in STAGES) + " |",
        "|---|" + ("---|" if several else "") + "---:|" * len(STAGES),
    ]
    for m in report.measurements:
        for name, means in m.stage_ms.items():
            cells = " | ".join(f"{means[stage]:.1f}" for stage in STAGES)
            lines.append(f"| {m.label} | " + (f"{name} | " if several else "") + cells + " |")
    return lines


def _rank_table(report: ScalingReport) -> list[str]:
    lines = [
        "| run | rank | device | samples | model load s | answering s | samples/s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for m in report.measurements:
        for rank in m.ranks:
            rate = rank["answered"] / rank["answering_seconds"] if rank["answering_seconds"] > 0 else float("nan")
            lines.append(
                f"| {m.label} | {rank['rank']} | {rank['device']} ({rank['device_name']}) | "
                f"{rank['answered']} | {rank['load_seconds']:.2f} | {rank['answering_seconds']:.2f} | "
                f"{rate:.2f} |"
            )
    return lines


def _identity_lines(report: ScalingReport) -> list[str]:
    lines = []
    for name, comparison in report.comparisons.items():
        scores = ", ".join(f"{m.label} {m.overall.get(name, float('nan')):.2f}" for m in report.measurements)
        verdict = "**identical**" if comparison.identical else "**DIFFERENT**"
        lines.append(f"- {name}: {verdict}; {comparison.summary_text()} (overall: {scores})")
    return lines


def _kill_lines(test: "KillTest", samples: int) -> list[str]:
    verdict = "**passed**" if test.passed else "**FAILED**"
    if test.killed_pid < 0:
        return [f"Kill and resume: {verdict}: " + "; ".join(test.problems)]
    identical = all(comparison.identical for comparison in test.comparisons.values())
    lines = [
        f"Kill and resume: {verdict}. Rank {test.killed_rank} (pid {test.killed_pid}) got SIGKILL when "
        f"{test.records_at_kill} of {samples} records were on disk ({test.rank_records_at_kill} of its "
        f"{test.rank_assigned}); torchrun stopped the other ranks and exited with {test.torchrun_returncode}. "
        f"{test.done_before_rerun} samples were complete on disk "
        f"({sum(test.duplicates_before_rerun.values())} duplicate records). The same command rerun answered "
        f"{test.rerun_answered} and skipped {test.rerun_skipped}; the merged result holds {test.final_records} records "
        f"of {test.final_unique} distinct samples, the summary counts {test.summary_samples}; identical to the "
        f"single-process run: {'yes' if identical else 'no'}.",
    ]
    lines += [f"- {problem}" for problem in test.problems]
    return lines


def _version_line(versions: Mapping[str, Any]) -> str:
    names = ("python", "torch", "cuda", "transformers", "numpy", "av", "divprune-video", "git_commit")
    return (
        ", ".join(f"{name} {versions.get(name)}" for name in names if versions.get(name))
        + f"; {versions.get('platform', platform.platform())}"
    )


def format_report(report: ScalingReport) -> str:
    """The Markdown block for BENCHMARKS.md."""
    options, single, sharded = report.options, report.measurements[0], report.measurements[1]
    model = report.versions.get("model", {})
    attention = model.get("attention") or model.get("attn_implementation") or "default"
    weights = f"; {model['weights']}" if model.get("weights") else ""
    title = (
        f"### Multi-process scaling: {options.benchmark} fixture, {options.samples} samples, model "
        f"`{options.model}`, {options.nproc} process(es)"
    )
    lines = [
        title,
        "",
        f"Devices: torchrun: {_devices(sharded)}; single process: {_devices(single)}. Host: {_cpu_name()}, "
        f"{os.cpu_count()} cores.",
        "",
        f"Model: `{options.model}` ({model.get('adapter', '?')}, {model.get('model_dtype', '?')}, attention "
        f"{attention}{weights}); "
        f"{options.num_frames} frames, {options.method} keep {', '.join(f'{r:g}' for r in options.keep_ratios)}, "
        f"greedy, {options.max_new_tokens} new tokens, batch 1 per sample.",
        "",
        f"Versions: {_version_line(report.versions)}.",
        "",
        *_throughput_table(report),
        "",
        *_speedup_lines(report),
        "",
        "Both timed runs follow an untimed one-sample warm-up run (compile caches on disk). "
        "Answering wall: the slowest rank's time from starting to answer (model loaded) to its last record written "
        "(the ranks' own timers); it includes decoding (prefetch threads), encoding, selection, prefill, generation, "
        "scoring, record writes and the first sample's warm-up, and excludes process start, imports, annotation "
        "reading, model build/load and the merge. Steady: the same after each rank's first "
        f"{WARMUP_SAMPLES} samples (per-process warm-up: CUDA library handles, allocator growth, first kernel loads). "
        "Answering span: first rank's start to last rank's end (adds the ranks' different load times). End to end: "
        "the command's wall time from launch to exit.",
        "",
        "Per-stage time, mean ms per sample (records' `timings`; summed over the ranks' samples):",
        "",
        *_stage_table(report),
        "",
        *_rank_table(report),
        "",
        f"Merged results of the {options.nproc}-process run against the single process "
        "(sample ids, every record field but timings, the summary's scores and counts):",
        "",
        *_identity_lines(report),
        "",
    ]
    if report.kill_test is not None:
        lines += [*_kill_lines(report.kill_test, options.samples), ""]
    commands = [
        f"# this check (writes {options.workdir}/data, run.yaml and report.md):",
        report.command_line,
        "# single process:",
        single.command,
        f"# {options.nproc} processes:",
        sharded.command,
    ]
    if report.kill_test is not None:
        commands += [
            "# kill test: this command, SIGKILL to one worker, then the same command again:",
            report.kill_test.command,
        ]
    lines += [
        "Commands:",
        "",
        "```bash",
        *commands,
        "```",
        "",
        "run.yaml:",
        "",
        "```yaml",
        report.config_text.rstrip(),
        "```",
    ]
    return "\n".join(lines) + "\n"

"""``divprune-video bench scaling``: one benchmark configuration run once in a single process and once sharded with
``torchrun --nproc-per-node N``, checked for identical merged results, timed, and then killed and resumed.

Steps (everything under ``--workdir``):

1. ``data/``: a generated fixture of exactly ``--samples`` questions in the benchmark's released layout
   (:func:`~divprune_video.eval.fixtures.write_fixture_set`); ``run.yaml``: the run configuration. An untimed
   one-sample run into ``warmup/`` fills the compile caches (Triton's, on disk) that the first timed run would
   otherwise pay for alone.
2. ``single/``: ``python -m divprune_video bench run --config run.yaml`` in one process (GPU 0, or the CPU).
3. ``torchrun/``: the same command under ``python -m torch.distributed.run --standalone --nproc-per-node N``.
4. The merged results are compared (:func:`~divprune_video.eval.compare.compare_results`): same sample ids, same
   records in every field but timings, same summary scores and counts.
5. Timing: samples/s over the answering phase (from the ranks' own timers, ``ranks/rank<r>.json``) and end to end
   (the command's wall time), with the per-stage breakdown from the records' timings.
6. ``killed/``: the torchrun command again; once ``--kill-after`` records are on disk the last rank's worker
   process (its pid from its status file, checked to be a child of torchrun) gets SIGKILL; torchrun stops the
   others; the same command is rerun and must resume: every sample once, results identical to ``single/``.
7. ``report.md``: a Markdown block (tables, the exact commands, devices, versions) for BENCHMARKS.md.

Every child gets the NVLink multicast switches off (``NCCL_NVLS_ENABLE=0``, ``TORCH_SYMM_MEM_DISABLE_MULTICAST=1``,
``NVSHMEM_DISABLE_NVLS=1``) and ``PYTHONPATH`` naming this package's checkout, so an uninstalled copy works.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .answerers import RANDOM_7B_MODEL, TINY_MODEL
from .base import BenchmarkError
from .compare import Comparison, compare_results, duplicate_lines
from .config import DTYPES, config_from_mapping, expand_variants
from .fixtures import write_fixture_set
from .results import SAMPLES_FILE, SHARD_PATTERN, load_summary, read_rank_statuses, read_records
from .scaling_report import RunMeasurement, ScalingReport, format_report, measure_run

logger = logging.getLogger(__name__)

#: NVLink multicast off in NCCL, PyTorch symmetric memory and NVSHMEM (set in every child's environment).
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
DEFAULT_SAMPLES = {TINY_MODEL: 64, RANDOM_7B_MODEL: 16}
OTHER_MODEL_SAMPLES = 16
RUN_FOLDERS = ("data", "warmup", "single", "torchrun", "killed", "logs")
POLL_SECONDS = 0.01


class ScalingError(BenchmarkError):
    """A run of the scaling check failed to complete (the message names its log file)."""


@dataclass
class ScalingOptions:
    """The settings of one scaling check; None means the default :meth:`resolved` picks."""

    workdir: Path
    model: str = TINY_MODEL
    nproc: Optional[int] = None
    samples: Optional[int] = None
    benchmark: str = "mvbench"
    kill_after: Optional[int] = None
    kill_test: bool = True
    num_frames: int = 32
    method: str = "divprune"
    keep_ratios: tuple[float, ...] = (0.15,)
    max_new_tokens: int = 16
    dtype: Optional[str] = None
    seed: int = 0
    timeout: float = 1800.0

    def resolved(self, cuda_devices: int) -> "ScalingOptions":
        """A copy with the defaults filled in for a host with ``cuda_devices`` visible GPUs; ValueError names the
        first bad option."""
        options = dataclasses.replace(self, workdir=Path(self.workdir), keep_ratios=tuple(self.keep_ratios))
        from .base import BENCHMARKS

        if options.benchmark not in BENCHMARKS:
            raise ValueError(f"--benchmark must be one of {', '.join(BENCHMARKS)}; got {options.benchmark!r}")
        if options.nproc is None:
            options.nproc = cuda_devices or 2
        _positive("--nproc", options.nproc)
        if cuda_devices and options.nproc > cuda_devices:
            raise ValueError(
                f"--nproc {options.nproc} asks for more processes than the {cuda_devices} visible CUDA "
                f"GPU(s); one process per GPU"
            )
        if options.model == RANDOM_7B_MODEL and not cuda_devices:
            raise ValueError(
                f"--model {RANDOM_7B_MODEL} needs CUDA GPUs (about 14 GB of weights per process); none "
                f"is visible (use --model {TINY_MODEL} on the CPU)"
            )
        if options.samples is None:
            options.samples = DEFAULT_SAMPLES.get(options.model, OTHER_MODEL_SAMPLES)
        _positive("--samples", options.samples)
        if options.samples < options.nproc:
            raise ValueError(
                f"--samples {options.samples} is fewer than --nproc {options.nproc}: every rank needs at "
                f"least one sample"
            )
        if options.kill_after is None:
            options.kill_after = max(1, options.samples // 4)
        _positive("--kill-after", options.kill_after)
        if options.kill_test and options.kill_after >= options.samples:
            raise ValueError(
                f"--kill-after {options.kill_after} must be below --samples {options.samples}, so the "
                f"kill lands mid-run"
            )
        _positive("--num-frames", options.num_frames)
        _positive("--max-new-tokens", options.max_new_tokens)
        if options.dtype is None and options.model == RANDOM_7B_MODEL:
            options.dtype = "float16"
        if options.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {[d for d in DTYPES if d]}; got {options.dtype!r}")
        if not options.timeout > 0:
            raise ValueError(f"--timeout must be positive seconds; got {options.timeout}")
        expand_variants([options.method], list(options.keep_ratios))  # ValueError for a bad method or ratio
        return options

    def command_line(self) -> str:
        """The ``bench scaling`` command that repeats this check."""
        words = [
            "python",
            "-m",
            "divprune_video",
            "bench",
            "scaling",
            "--model",
            self.model,
            "--nproc",
            str(self.nproc),
            "--samples",
            str(self.samples),
            "--benchmark",
            self.benchmark,
            "--workdir",
            str(self.workdir),
            "--num-frames",
            str(self.num_frames),
            "--method",
            self.method,
            "--keep-ratio",
            *[f"{ratio:g}" for ratio in self.keep_ratios],
            "--max-new-tokens",
            str(self.max_new_tokens),
            "--seed",
            str(self.seed),
        ]
        if self.dtype:
            words += ["--dtype", self.dtype]
        words += ["--kill-after", str(self.kill_after)] if self.kill_test else ["--no-kill-test"]
        return shlex.join(words)


def _positive(option: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{option} must be a positive integer; got {value!r}")


@dataclass
class KillTest:
    """What the kill-and-resume step saw. ``problems`` is empty when it passed."""

    command: str
    killed_rank: int = -1
    killed_pid: int = -1
    records_at_kill: int = 0
    rank_records_at_kill: int = 0
    rank_assigned: int = 0
    torchrun_returncode: Optional[int] = None
    done_before_rerun: int = 0
    duplicates_before_rerun: dict[str, int] = field(default_factory=dict)
    rerun_answered: int = 0
    rerun_skipped: int = 0
    final_records: int = 0
    final_unique: int = 0
    summary_samples: int = 0
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def child_environment(nproc: int) -> dict[str, str]:
    """This process's environment with the multicast switches off, this checkout first on ``PYTHONPATH`` and, unless
    set already, ``OMP_NUM_THREADS`` = cores / nproc for every run (the single process gets one rank's share too)."""
    env = dict(os.environ)
    env.update(MULTICAST_OFF)
    checkout = str(Path(__file__).resolve().parents[2])
    paths = [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path and path != checkout]
    env["PYTHONPATH"] = os.pathsep.join([checkout, *paths])
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def shown_command(command: Sequence[str], env: dict[str, str]) -> str:
    """``command`` as a shell line, prefixed by the variables this tool sets."""
    names = [*MULTICAST_OFF, "OMP_NUM_THREADS", "PYTHONPATH"]
    prefix = " ".join(f"{name}={shlex.quote(env[name])}" for name in names if name in env)
    words = ["python" if word == sys.executable else word for word in command]
    return f"{prefix} {shlex.join(words)}"


def _start(command: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        # A session of its own, so that a timeout can stop torchrun and its workers together.
        return subprocess.Popen(list(command), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the process group this tool started (torchrun and its workers)."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait(process: subprocess.Popen, timeout: float, log_path: Path) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        raise ScalingError(f"the run did not finish within {timeout:.0f} s (--timeout); log: {log_path}") from None
    except BaseException:
        _stop_group(process)
        raise


def _log_tail(log_path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_to_completion(command: Sequence[str], env: dict[str, str], log_path: Path, timeout: float) -> float:
    """Run ``command``; its wall seconds. ScalingError with the log's tail when it fails."""
    started = time.perf_counter()
    returncode = _wait(_start(command, env, log_path), timeout, log_path)
    seconds = time.perf_counter() - started
    if returncode != 0:
        raise ScalingError(f"{shlex.join(command)} exited with {returncode}; log {log_path}:\n{_log_tail(log_path)}")
    return seconds


class ScalingCheck:
    """One scaling check: the fixture, the config, the runs and their comparison (see the module docstring)."""

    def __init__(self, options: ScalingOptions, progress: Callable[[str], None] = logger.info) -> None:
        import torch

        from .._optional import require

        require("av", "video", "av")  # writes the fixture's videos; the runs decode them
        self.cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.options = options.resolved(self.cuda_devices)
        self.progress = progress
        self.workdir = self.options.workdir.resolve()
        self.config_path = self.workdir / "run.yaml"
        self.env = child_environment(self.options.nproc)

    def run_command(self, output: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "divprune_video",
            "bench",
            "run",
            "--config",
            str(self.config_path),
            "--output",
            str(output),
            "--no-progress",
        ]

    def torchrun_command(self, output: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(self.options.nproc),
            *self.run_command(output)[1:],
        ]

    def run(self) -> ScalingReport:
        options = self.options
        self._prepare()
        self._warm_up()
        single_dir, sharded_dir = self.workdir / "single", self.workdir / "torchrun"
        measurements = []
        for label, directory, command, processes in (
            ("single process", single_dir, self.run_command(single_dir), 1),
            (
                f"torchrun --nproc-per-node {options.nproc}",
                sharded_dir,
                self.torchrun_command(sharded_dir),
                options.nproc,
            ),
        ):
            self.progress(f"running {label} ({options.samples} samples, model {options.model}) ...")
            seconds = run_to_completion(
                command, self.env, self.workdir / "logs" / f"{directory.name}.log", options.timeout
            )
            measurements.append(
                measure_run(
                    label,
                    processes,
                    directory,
                    self._variant_dirs(directory),
                    seconds,
                    shown_command(command, self.env),
                )
            )
            self.progress(f"  done in {seconds:.1f} s")
        comparisons = {
            name: compare_results(reference, candidate)
            for (name, reference), (_, candidate) in zip(
                self._variant_dirs(single_dir).items(), self._variant_dirs(sharded_dir).items()
            )
        }
        kill_test = self._kill_test(single_dir) if options.kill_test else None
        report = ScalingReport(
            options=options,
            command_line=options.command_line(),
            config_text=self._config_text(),
            measurements=measurements,
            comparisons=comparisons,
            kill_test=kill_test,
            versions=self._versions(single_dir),
        )
        report.markdown = format_report(report)
        (self.workdir / "report.md").write_text(report.markdown, encoding="utf-8")
        return report

    # -- setup -----------------------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Start afresh: the tool's own folders in the workdir are removed (nothing else is touched)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in RUN_FOLDERS:
            shutil.rmtree(self.workdir / name, ignore_errors=True)
        options = self.options
        fixture = write_fixture_set(
            options.benchmark, self.workdir / "data", options.samples, num_frames=options.num_frames
        )
        settings = {
            "benchmark": options.benchmark,
            "data_root": str(fixture.root),
            "model": options.model,
            "num_frames": options.num_frames,
            "methods": [options.method],
            "keep_ratios": list(options.keep_ratios),
            "max_new_tokens": options.max_new_tokens,
            "seed": options.seed,
            "dtype": options.dtype,
        }
        if fixture.tasks is not None:
            settings["tasks"] = list(fixture.tasks)
        from .._optional import require

        yaml = require("yaml", "eval", "pyyaml")
        self.config_path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        self.config = config_from_mapping({**settings, "output": str(self.workdir / "single")})
        self.progress(
            f"wrote {len(fixture.questions)} {options.benchmark} samples under {fixture.root} and {self.config_path}"
        )

    def _warm_up(self) -> None:
        """One sample, single process, untimed: the first timed run would otherwise pay alone for compiling the
        selector's Triton kernels (cached on disk) and the like."""
        command = [*self.run_command(self.workdir / "warmup"), "--limit", "1"]
        if self.config.tasks:
            command += ["--tasks", self.config.tasks[0]]
        self.progress("warm-up: one sample, untimed ...")
        run_to_completion(command, self.env, self.workdir / "logs" / "warmup.log", self.options.timeout)

    def _config_text(self) -> str:
        return self.config_path.read_text(encoding="utf-8")

    def _variant_dirs(self, output: Path) -> dict[str, Path]:
        config = dataclasses.replace(self.config, output=output)
        return {variant.name: config.variant_dir(variant) for variant in config.variants}

    def _versions(self, single_dir: Path) -> dict[str, Any]:
        import torch

        summary = load_summary(next(iter(self._variant_dirs(single_dir).values())))
        return {
            **summary.get("versions", {}),
            "cuda": torch.version.cuda,
            "git_commit": summary.get("git_commit"),
            "model": summary.get("model", {}),
        }

    # -- kill and resume ---------------------------------------------------------------------------------------------

    def _kill_test(self, single_dir: Path) -> KillTest:
        options = self.options
        folder = self.workdir / "killed"
        command = self.torchrun_command(folder)
        test = KillTest(command=shown_command(command, self.env), killed_rank=options.nproc - 1)
        first_variant = next(iter(self._variant_dirs(folder).values()))
        self.progress(
            f"kill test: rank {test.killed_rank} gets SIGKILL once {options.kill_after} records are written ..."
        )
        log_path = self.workdir / "logs" / "killed.log"
        process = _start(command, self.env, log_path)
        try:
            self._kill_when_due(process, folder, first_variant, test)
            test.torchrun_returncode = _wait(process, options.timeout, log_path)
        except BaseException:
            _stop_group(process)
            raise
        if test.killed_pid < 0:
            return test
        if test.torchrun_returncode == 0:
            test.problems.append("torchrun exited with 0 although one of its workers was killed")
        shard_files = [
            path
            for directory in self._variant_dirs(folder).values()
            for path in [directory / SAMPLES_FILE, *directory.glob(SHARD_PATTERN)]
        ]
        test.duplicates_before_rerun = duplicate_lines(shard_files)
        done_per_variant = [
            {record["id"] for path in [d / SAMPLES_FILE, *d.glob(SHARD_PATTERN)] for record in read_records(path)}
            for d in self._variant_dirs(folder).values()
        ]
        test.done_before_rerun = len(set.intersection(*done_per_variant))
        self.progress(
            f"  killed rank {test.killed_rank} (pid {test.killed_pid}) at {test.records_at_kill} records; "
            f"torchrun exited with {test.torchrun_returncode}; rerunning the same command ..."
        )
        run_to_completion(command, self.env, self.workdir / "logs" / "resumed.log", options.timeout)
        self._check_resumed(folder, single_dir, test)
        return test

    def _kill_when_due(self, process: subprocess.Popen, folder: Path, first_variant: Path, test: KillTest) -> None:
        """Poll the results until ``--kill-after`` records are on disk, then SIGKILL the target rank's worker."""
        deadline = time.monotonic() + self.options.timeout
        while process.poll() is None and time.monotonic() < deadline:
            records = _complete_lines([first_variant / SAMPLES_FILE, *first_variant.glob(SHARD_PATTERN)])
            status = read_rank_statuses(folder).get(test.killed_rank) if records >= self.options.kill_after else None
            if status is not None and status.get("state") != "answering":
                test.problems.append(
                    f"inconclusive: rank {test.killed_rank} was {status.get('state')} before "
                    f"{self.options.kill_after} records were written (lower --kill-after)"
                )
                return
            if status is not None:
                pid = int(status["pid"])
                if _is_descendant(pid, process.pid) is False:
                    raise ScalingError(
                        f"rank {test.killed_rank}'s status file names pid {pid}, which is not a "
                        f"worker of torchrun (pid {process.pid})"
                    )
                os.kill(pid, signal.SIGKILL)
                test.killed_pid, test.records_at_kill = pid, records
                test.rank_assigned = int(status["assigned"])
                own_file = SAMPLES_FILE if self.options.nproc == 1 else f"samples.rank{test.killed_rank}.jsonl"
                test.rank_records_at_kill = _complete_lines([first_variant / own_file])
                if test.rank_records_at_kill >= test.rank_assigned:
                    test.problems.append(
                        f"inconclusive: rank {test.killed_rank} had written all its "
                        f"{test.rank_assigned} samples before the kill (lower --kill-after)"
                    )
                return
            time.sleep(POLL_SECONDS)
        test.problems.append(
            f"inconclusive: the run ended before {self.options.kill_after} records were written "
            f"(lower --kill-after or raise --samples)"
        )

    def _check_resumed(self, folder: Path, single_dir: Path, test: KillTest) -> None:
        total = self.options.samples
        statuses = read_rank_statuses(folder)
        test.rerun_answered = sum(int(status.get("processed", 0)) for status in statuses.values())
        test.rerun_skipped = sum(int(status.get("skipped_done", 0)) for status in statuses.values())
        if test.duplicates_before_rerun:
            test.problems.append(f"records written twice before the rerun: {test.duplicates_before_rerun}")
        if test.rerun_skipped != test.done_before_rerun:
            test.problems.append(
                f"the rerun skipped {test.rerun_skipped} samples but {test.done_before_rerun} were on disk"
            )
        if test.rerun_answered != total - test.done_before_rerun:
            test.problems.append(
                f"the rerun answered {test.rerun_answered} samples; {total - test.done_before_rerun} were missing"
            )
        references = self._variant_dirs(single_dir)
        for name, directory in self._variant_dirs(folder).items():
            ids = [record["id"] for record in read_records(directory / SAMPLES_FILE)]
            summary = load_summary(directory)
            test.final_records, test.final_unique = len(ids), len(set(ids))
            test.summary_samples = int(summary["counts"]["samples"])
            if not (
                test.final_records == test.final_unique == test.summary_samples == total and summary.get("complete")
            ):
                test.problems.append(
                    f"{name}: {test.final_records} records, {test.final_unique} distinct ids, summary "
                    f"counts {test.summary_samples} (complete: {summary.get('complete')}); expected "
                    f"{total} of each"
                )
            test.comparisons[name] = compare_results(references[name], directory)
            if not test.comparisons[name].identical:
                test.problems.append(
                    f"{name}: the resumed results differ from the single-process run: "
                    f"{test.comparisons[name].summary_text(max_listed=5)}"
                )


def _complete_lines(paths: Sequence[Path]) -> int:
    """Finished records (newline-terminated lines) in the files that exist."""
    count = 0
    for path in paths:
        try:
            count += path.read_bytes().count(b"\n")
        except FileNotFoundError:
            continue
    return count


def _is_descendant(pid: int, ancestor: int) -> Optional[bool]:
    """Whether ``pid`` descends from ``ancestor`` (Linux /proc); None where that cannot be read."""
    current = pid
    for _ in range(8):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        current = int(fields[1])  # the parent's pid
        if current == ancestor:
            return True
        if current <= 1:
            return False
    return False


def run_scaling(options: ScalingOptions, progress: Callable[[str], None] = logger.info) -> ScalingReport:
    """Run the scaling check ``options`` describe; the report is also written to ``<workdir>/report.md``."""
    return ScalingCheck(options, progress).run()


__all__ = [
    "KillTest",
    "MULTICAST_OFF",
    "RunMeasurement",
    "ScalingCheck",
    "ScalingError",
    "ScalingOptions",
    "ScalingReport",
    "child_environment",
    "run_scaling",
]

"""``divprune-video bench``: run MVBench / Video-MME / MLVU scored as lmms-eval scores them, check a data folder,
and plot accuracy against keep ratio.

  divprune-video bench mvbench --data-root DIR --model ID_OR_PATH --keep-ratio 0.15 0.25 0.5 --output OUT
  divprune-video bench run --config pipelines/mvbench_divprune.yaml --data-root DIR --output OUT
  torchrun --nproc-per-node 8 -m divprune_video bench videomme --data-root DIR --output OUT
  divprune-video bench check DATA_ROOT [--benchmark videomme]
  divprune-video bench plot OUT1 OUT2 ... -o accuracy.png
  divprune-video bench fixture mvbench data/smoke --samples 8     (a small data root for smoke tests)
  divprune-video bench scaling --model tiny --nproc 2 --workdir runs/scaling   (1 process vs torchrun, kill/resume)

Rerunning a command resumes it: finished samples are read back from OUT/<variant>/ and skipped.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from .config import RunConfig
    from .runner import RunResult

RUN_EPILOG = """\
Rerunning the same command resumes it: finished samples are read back from OUT and skipped, and a keep ratio added
later reuses what the others already answered. Ctrl-C stops cleanly; every finished sample is kept.
Settings that cannot work (a prune layer the model lacks, a sequence beyond its context ...) stop the run before any
video is decoded, whatever --skip-missing says. See docs/benchmarks.md.
"""
RUN_DESCRIPTION = (
    "Run the benchmark a --config YAML file names (pipelines/*.yaml); flags override the file. The "
    "benchmark-specific flags apply to their benchmark only (given for another, they are an error)."
)
CHECK_DESCRIPTION = (
    "Report which annotation files and videos are present under DATA_ROOT, per task, and list the "
    "missing ones. Exit code 0 when complete, 1 when something is missing, 2 for an error (no such "
    "folder ...)."
)
PLOT_DESCRIPTION = (
    "Plot each benchmark's headline accuracy against the fraction of visual tokens kept, one panel "
    "per benchmark setting and one line per model and method, over any number of run folders; "
    "unpruned and replayed runs are horizontal reference lines. A run reached through several of "
    "the given paths is drawn once."
)
FIXTURE_DESCRIPTION = """\
Write a small data root in a benchmark's released layout (tiny index-coded videos, annotations with known answers)
for smoke tests, with the package's own fixture writers, and print a command that runs on it (MVBench and MLVU
fixtures hold a subset of the tasks, which that command selects). --replay also writes a replay file answering every
question correctly, so a run without a model scores 100:

  divprune-video bench fixture videomme data/vmme-smoke --samples 6 --replay data/vmme-smoke/gold.jsonl
  divprune-video bench videomme --data-root data/vmme-smoke --model replay:data/vmme-smoke/gold.jsonl \\
      --output runs/vmme-replay
  divprune-video bench videomme --data-root data/vmme-smoke --model tiny --num-frames 8 --output runs/vmme-tiny
"""
SCALING_DESCRIPTION = """\
Write a fixture of --samples questions in the benchmark's layout, run one config (WORKDIR/run.yaml) once in a single
process and once under torchrun --nproc-per-node N, check that the merged results are identical, report samples/s
(answering phase and end to end) with the per-stage times, then kill one rank mid-run, rerun the command and check
that it resumes with nothing lost or counted twice. Prints a Markdown block for BENCHMARKS.md (also in
WORKDIR/report.md); exit code 1 when the results differ or the kill test fails. See docs/benchmarks.md.

  divprune-video bench scaling --model tiny --workdir runs/scaling-tiny          # 64 samples
  divprune-video bench scaling --model random-7b --workdir runs/scaling-7b       # 16 samples, GPUs only
"""
logger = logging.getLogger(__name__)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every run takes. Each defaults to None here, so a YAML config supplies it unless given."""
    parser.add_argument("--config", type=Path, help="YAML run config (pipelines/*.yaml); flags override it")
    parser.add_argument("--data-root", type=Path, help="the benchmark's folder, laid out as the release unpacks")
    parser.add_argument(
        "--model",
        help="hub id or local folder, 'tiny' (embedded test model), or replay:FILE.jsonl "
        "(re-score saved outputs); default llava-hf/LLaVA-NeXT-Video-7B-hf",
    )
    parser.add_argument("--output", type=Path, help="results folder, one sub-folder per variant (rerun to resume)")
    parser.add_argument(
        "--keep-ratio",
        type=float,
        nargs="+",
        dest="keep_ratios",
        metavar="R",
        help="fractions of visual tokens kept; several share decoded frames (1 = unpruned)",
    )
    parser.add_argument(
        "--method",
        nargs="+",
        dest="methods",
        metavar="M",
        help="pruning method(s): divprune, uniform, random, attention, none (default divprune when "
        "--keep-ratio is given)",
    )
    parser.add_argument(
        "--prune-layer", type=int, metavar="K", help="prune after LLM layer K (default: before the LLM)"
    )
    parser.add_argument("--num-frames", type=int, metavar="F", help="frames sampled uniformly per video (default 32)")
    parser.add_argument("--keyframes", type=int, metavar="k", help="keyframe pre-selection (pipeline option)")
    parser.add_argument(
        "--limit", type=int, metavar="N", help="first N questions (per task for MVBench, as lmms-eval's --limit)"
    )
    parser.add_argument("--tasks", help="comma-separated tasks (MVBench tasks, Video-MME durations, MLVU task types)")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        default=None,
        help="record missing or unreadable videos as per-sample errors instead of stopping",
    )
    parser.add_argument(
        "--strict-video",
        action="store_true",
        default=None,
        help="treat a video with unreadable frames (a partial clip) as unreadable: a per-sample "
        "error, instead of answering from the frames that were read",
    )
    parser.add_argument(
        "--retry-errors",
        action="store_true",
        default=None,
        help="on resume, answer again the samples recorded with an error",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="discard results of a different configuration in --output",
    )
    parser.add_argument("--seed", type=int, help="base seed (sample i uses seed + i; default 0)")
    parser.add_argument("--max-new-tokens", type=int, help="generation budget (lmms-eval: 16)")
    parser.add_argument("--workers", type=int, help="prefetch worker threads (default 2)")
    parser.add_argument("--prefetch", type=int, help="samples prepared ahead of the model (default 4)")
    parser.add_argument("--dtype", help="model dtype (float16, bfloat16, float32; default: the checkpoint's)")
    parser.add_argument("--attn-implementation", help="attention kernels (sdpa, flash_attention_2, eager)")
    parser.add_argument("--annotations", type=Path, help="annotation file or folder instead of the default place")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


#: The settings every run takes (each benchmark adds its own :attr:`~.base.Benchmark.settings`).
_RUN_KEYS = (
    "data_root",
    "model",
    "output",
    "keep_ratios",
    "methods",
    "prune_layer",
    "num_frames",
    "keyframes",
    "limit",
    "tasks",
    "skip_missing",
    "strict_video",
    "retry_errors",
    "overwrite",
    "seed",
    "max_new_tokens",
    "workers",
    "prefetch",
    "dtype",
    "attn_implementation",
    "annotations",
)


def _benchmark_names() -> list[str]:
    from .base import available_benchmarks

    return available_benchmarks()


def settings_from_args(args: argparse.Namespace, benchmark: Optional[str]) -> dict[str, Any]:
    """The YAML config's settings overridden by the flags given on the command line."""
    from .config import read_config_file

    settings: dict[str, Any] = read_config_file(args.config) if args.config else {}
    if benchmark is not None:
        if settings.get("benchmark", benchmark) != benchmark:
            raise ValueError(f"{args.config} is a {settings['benchmark']} config, not {benchmark}")
        settings["benchmark"] = benchmark
    from .base import benchmark_settings

    keys = (*_RUN_KEYS, *benchmark_settings())
    given = {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}
    if "keep_ratios" in given or "methods" in given or "prune_layer" in given:
        for key in ("variants", "keep_ratio", "keep_ratios", "method", "methods", "prune_layer"):
            settings.pop(key, None)
    settings.update(given)
    return settings


def _reporting_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print the runner's own errors (bad data, bad settings) as one line and exit with 2, without a traceback."""

    @functools.wraps(command)
    def wrapped(args: argparse.Namespace) -> int:
        from .._optional import MissingDependencyError
        from .base import BenchmarkError
        from .distributed import RankFailedError

        try:
            return command(args)
        except (BenchmarkError, RankFailedError, ValueError, MissingDependencyError, OSError) as error:
            print(f"divprune-video bench: error: {error}", file=sys.stderr)
            return 2

    return wrapped


def _run(args: argparse.Namespace) -> int:
    """``bench run`` / ``bench <name>``; a torchrun worker ends its process right after (see ``exit_worker``)."""
    from .distributed import exit_worker, is_torchrun_worker

    code = _run_benchmark_command(args)
    if is_torchrun_worker():
        exit_worker(code)
    return code


@_reporting_errors
def _run_benchmark_command(args: argparse.Namespace) -> int:
    from .config import config_from_mapping
    from .runner import run_benchmark

    benchmark = args.bench_command if args.bench_command in _benchmark_names() else None
    config = config_from_mapping(settings_from_args(args, benchmark))
    try:
        result = run_benchmark(config, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(
            f"divprune-video bench: interrupted: {_finished_count(config)} finished samples are saved under "
            f"{config.output}; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    _print_result(config, result)
    return 0


def _finished_count(config: "RunConfig") -> str:
    """How many samples have a record for every variant, for the interruption message."""
    from .results import collect_records

    try:
        return str(min(len(collect_records(config.variant_dir(variant))) for variant in config.variants))
    except Exception:  # the message must not fail: the records are on disk either way
        return "the"


def _print_result(config: "RunConfig", result: "RunResult") -> None:
    from .runner import format_stage_seconds

    if result.processed or result.skipped_done:
        print(f"answered {result.processed} samples here, {result.skipped_done} were already done")
    if result.stage_seconds:
        print("time per stage:", format_stage_seconds(result.stage_seconds))
    for variant in config.variants:
        summary = result.summaries.get(variant.name)
        if summary is None:  # not rank 0
            continue
        counts = summary["counts"]
        print(
            f"{config.benchmark} {summary['label']}: overall {summary['overall']:.2f} "
            f"({summary['overall_definition']}); {counts['samples']}/{summary['selected']} samples, "
            f"{counts['errors']} errors, {counts['partial']} from partial videos -> {config.variant_dir(variant)}"
        )


def _detect_benchmarks(data_root: Path) -> list[str]:
    """The registered benchmarks whose released layout ``data_root`` holds."""
    from .base import BENCHMARKS

    return [name for name, cls in BENCHMARKS.items() if cls.detect(data_root)]


@_reporting_errors
def _check(args: argparse.Namespace) -> int:
    from .base import BenchmarkOptions, get_benchmark

    if not args.data_root.is_dir():
        raise ValueError(f"DATA_ROOT {args.data_root} is not a folder")
    names = [args.benchmark] if args.benchmark else _detect_benchmarks(args.data_root)
    if not names:
        print(
            f"no benchmark layout recognised under {args.data_root} (MVBench: json/<task>.json; Video-MME: "
            f"videomme/test-*.parquet; MLVU: mlvu/test-*.parquet); pass --benchmark NAME to check one"
        )
        return 1
    options = BenchmarkOptions(split=args.split, annotations=args.annotations)
    all_ok = True
    for name in names:
        if name == "mlvu" and not args.benchmark and not args.annotations:
            split = "test" if not list(args.data_root.glob("mlvu/*.parquet")) else args.split
            options = BenchmarkOptions(split=split)
        report = get_benchmark(name)(args.data_root, options).check()
        print(report.format(max_listed=args.max_listed))
        all_ok = all_ok and report.ok
    return 0 if all_ok else 1


@_reporting_errors
def _plot(args: argparse.Namespace) -> int:
    from .plots import check_writable, distinct_summaries, plot_accuracy_vs_keep_ratio
    from .results import summaries_under

    check_writable(args.output)
    summaries = distinct_summaries([summary for _path, summary in summaries_under(args.runs)])
    path = plot_accuracy_vs_keep_ratio(summaries, args.output)
    print(f"plotted {len(summaries)} runs -> {path}")
    return 0


@_reporting_errors
def _fixture(args: argparse.Namespace) -> int:
    from .fixtures import write_fixture_set, write_replay_file

    if args.root.exists() and (not args.root.is_dir() or any(args.root.iterdir())):
        raise ValueError(f"{args.root} exists and is not an empty folder; choose a new one")
    fixture = write_fixture_set(args.benchmark, args.root, args.samples, num_frames=args.num_frames)
    if args.replay:
        write_replay_file(
            args.replay,
            [{"video": q.video, "question": q.question, "task": q.task, "response": q.gold} for q in fixture.questions],
        )
    tasks = f" --tasks {','.join(fixture.tasks)}" if fixture.tasks else ""
    model = f"replay:{args.replay}" if args.replay else "tiny"
    print(
        f"wrote {len(fixture.questions)} {args.benchmark} questions under {args.root}; try:\n"
        f"  divprune-video bench {args.benchmark} --data-root {args.root} --model {model}{tasks} "
        f"--num-frames {min(args.num_frames, 8)} --output runs/{args.benchmark}-smoke"
    )
    return 0


@_reporting_errors
def _scaling(args: argparse.Namespace) -> int:
    from .scaling import ScalingOptions, run_scaling

    workdir = args.workdir or Path("runs") / f"scaling-{Path(args.model).name or 'model'}"
    options = ScalingOptions(
        workdir=workdir,
        model=args.model,
        nproc=args.nproc,
        samples=args.samples,
        benchmark=args.benchmark,
        kill_after=args.kill_after,
        kill_test=not args.no_kill_test,
        num_frames=args.num_frames,
        method=args.method,
        keep_ratios=tuple(args.keep_ratios),
        max_new_tokens=args.max_new_tokens,
        dtype=args.dtype,
        seed=args.seed,
        timeout=args.timeout,
    )
    report = run_scaling(options, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(report.markdown)
    print(f"report written to {report.options.workdir / 'report.md'}", file=sys.stderr)
    if not report.passed:
        print(
            "divprune-video bench scaling: FAILED: the runs disagree or the kill test failed (see the report)",
            file=sys.stderr,
        )
        return 1
    return 0


def _add_scaling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nproc", type=int, help="torchrun processes (default: the visible CUDA GPUs, else 2)")
    parser.add_argument(
        "--model",
        default="tiny",
        help="tiny (embedded test model), random-7b (LLaVA-NeXT-Video-7B architecture, random "
        "weights, GPU only) or a hub id / local folder (default tiny)",
    )
    parser.add_argument("--samples", type=int, help="fixture questions (default 64 for tiny, 16 otherwise)")
    parser.add_argument(
        "--benchmark",
        choices=_benchmark_names(),
        default="mvbench",
        help="layout of the generated fixture (default mvbench)",
    )
    parser.add_argument("--workdir", type=Path, help="where data, runs and report.md go (default runs/scaling-MODEL)")
    parser.add_argument(
        "--kill-after",
        type=int,
        metavar="K",
        help="kill test: SIGKILL one rank once K records are written (default samples // 4)",
    )
    parser.add_argument("--no-kill-test", action="store_true", help="skip the kill-and-resume test")
    parser.add_argument("--num-frames", type=int, default=32, help="frames per video, fixture and run (default 32)")
    parser.add_argument("--method", default="divprune", help="pruning method (default divprune)")
    parser.add_argument(
        "--keep-ratio",
        type=float,
        nargs="+",
        dest="keep_ratios",
        default=[0.15],
        metavar="R",
        help="keep ratio(s); 1 = unpruned (default 0.15)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=16, help="generation budget (default 16)")
    parser.add_argument("--dtype", help="model dtype (default: float16 for random-7b, else the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0, help="base seed, also of random-7b's weights (default 0)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per run (default 1800)")


def _add_run_command(
    commands: argparse._SubParsersAction, name: str, help: str, description: str, benchmarks: list[str]
) -> None:
    parser = commands.add_parser(
        name,
        help=help,
        description=description,
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .base import get_benchmark

    _add_run_arguments(parser)
    for benchmark in benchmarks:
        get_benchmark(benchmark).add_arguments(parser)
    parser.set_defaults(func=_run)


def _add_check_command(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check", help="report which annotations and videos are present under DATA_ROOT", description=CHECK_DESCRIPTION
    )
    check.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    check.add_argument("--benchmark", choices=_benchmark_names(), help="check this benchmark (default: detect)")
    check.add_argument("--split", choices=["dev", "test"], default="dev", help="MLVU split")
    check.add_argument("--annotations", type=Path, help="annotation file or folder instead of the default place")
    check.add_argument("--max-listed", type=int, default=5, help="missing videos listed per task")
    check.set_defaults(func=_check)


def _add_plot_command(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser(
        "plot", help="plot accuracy against keep ratio across run folders", description=PLOT_DESCRIPTION
    )
    plot.add_argument("runs", nargs="+", type=Path, metavar="OUT", help="run folders or summary.json files")
    plot.add_argument("-o", "--output", type=Path, required=True, help="image file to write (PNG)")
    plot.set_defaults(func=_plot)


def _add_fixture_command(commands: argparse._SubParsersAction) -> None:
    fixture = commands.add_parser(
        "fixture",
        help="write a small data root in a benchmark's layout for smoke tests",
        description=FIXTURE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fixture.add_argument("benchmark", choices=_benchmark_names())
    fixture.add_argument("root", type=Path, metavar="ROOT", help="new (or empty) folder to write it to")
    fixture.add_argument("--samples", type=int, default=8, help="questions to write (default 8)")
    fixture.add_argument("--num-frames", type=int, default=16, help="frames per video (default 16)")
    fixture.add_argument(
        "--replay", type=Path, metavar="FILE", help="also write a replay file answering every question correctly"
    )
    fixture.set_defaults(func=_fixture)


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="run MVBench / Video-MME / MLVU scored like lmms-eval; check; plot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    from .base import get_benchmark

    names = _benchmark_names()
    for name in names:
        _add_run_command(commands, name, f"run {name}", get_benchmark(name).description, [name])
    _add_run_command(commands, "run", "run the benchmark a --config file names", RUN_DESCRIPTION, names)
    _add_check_command(commands)
    _add_plot_command(commands)
    _add_fixture_command(commands)
    scaling = commands.add_parser(
        "scaling",
        help="one config in 1 process and under torchrun: identical results, samples/s, kill + resume",
        description=SCALING_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_scaling_arguments(scaling)
    scaling.set_defaults(func=_scaling)

"""Sharding over two torchrun processes on CPU (gloo): each rank answers half, rank 0 merges, and the merged
result equals a one-process run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from divprune_video.eval import BenchmarkOptions, RunConfig, run_benchmark
from divprune_video.eval.results import read_records

REPO = Path(__file__).parents[2]


def _without_timings(path):
    return [{k: v for k, v in record.items() if k != "timings"} for record in read_records(path)]


@pytest.mark.slow
def test_two_ranks_merge_to_the_single_process_result(replay_files, tmp_path):
    root, questions, replay, _ = replay_files["videomme"]
    sharded = tmp_path / "sharded"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "divprune_video",
        "bench",
        "videomme",
        "--data-root",
        str(root),
        "--model",
        f"replay:{replay}",
        "--subtitles",
        "--output",
        str(sharded),
        "--no-progress",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    half = len(questions) // 2
    assert done.stdout.count(f"answered {half} samples here") == 2, done.stdout
    assert not list(sharded.glob("*/samples.rank*.jsonl")), "rank 0 folds the shards into samples.jsonl"

    single = tmp_path / "single"
    subtitles = BenchmarkOptions(subtitles=True)
    result = run_benchmark(
        RunConfig(benchmark="videomme", data_root=root, model=f"replay:{replay}", output=single, options=subtitles),
        progress=False,
    )
    merged_records = _without_timings(sharded / "replay" / "samples.jsonl")
    assert merged_records == _without_timings(single / "replay" / "samples.jsonl")
    merged = json.loads((sharded / "replay" / "summary.json").read_text())
    assert merged["config"]["world_size"] == 2
    for key in ("overall", "per_duration", "per_domain", "per_task_type", "counts"):
        assert merged[key] == result.summaries["unpruned"][key]

    # Resuming the finished sharded run with one process finds everything done.
    again = run_benchmark(
        RunConfig(benchmark="videomme", data_root=root, model=f"replay:{replay}", output=sharded, options=subtitles),
        progress=False,
    )
    assert again.processed == 0 and again.skipped_done == len(questions)


@pytest.mark.slow
def test_a_failure_on_rank_0_stops_every_rank(replay_files, tmp_path):
    root, _questions, replay, _ = replay_files["mlvu"]
    run_benchmark(
        RunConfig(benchmark="mlvu", data_root=root, model=f"replay:{replay}", output=tmp_path), progress=False
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "divprune_video",
        "bench",
        "mlvu",
        "--data-root",
        str(root),
        "--model",
        f"replay:{replay}",
        "--seed",
        "3",
        "--output",
        str(tmp_path),
        "--no-progress",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    assert "holds results of a different configuration" in done.stderr
    assert "rank 0 failed" in done.stderr  # rank 1 learned of it instead of waiting at a barrier

"""The runner end to end through replay and fake answerers: scores, files, resume after a kill, determinism,
variants sharing decoded frames, prefetch overlap, per-sample errors."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from divprune_video.eval import (
    Answer,
    Answerer,
    BenchmarkOptions,
    MissingVideoError,
    ReplayAnswerer,
    RunConfig,
    SampleError,
    Variant,
    run_benchmark,
)
from divprune_video.eval.mcq import extract_mcq_answer, mvbench_match
from divprune_video.eval.results import ResultsError, read_records
from divprune_video.testing import write_mvbench_fixture, write_replay_file

REQUIRED_KEYS = {
    "id",
    "benchmark",
    "task",
    "video",
    "question",
    "options",
    "gold",
    "response",
    "parsed",
    "correct",
    "visual_tokens_total",
    "visual_tokens_kept",
    "timings",
    "error",
}


def replay_config(replay, name, output, **overrides):
    root, _questions, path, _responses = replay[name]
    return RunConfig(benchmark=name, data_root=root, model=f"replay:{path}", output=output, **overrides)


def expected_overall(name, questions, responses):
    """The headline computed straight from lmms-eval's definitions."""
    if name == "mvbench":
        per_task = {}
        for q, r in zip(questions, responses):
            if r != "":
                per_task.setdefault(q.task, []).append(mvbench_match(q.gold, r))
        return 100 * sum(sum(v) / len(v) for v in per_task.values()) / len(per_task)
    hits = [extract_mcq_answer(r, ["A", "B", "C", "D"]) == q.gold for q, r in zip(questions, responses)]
    if name == "videomme":
        return 100 * sum(hits) / len(hits)
    per_type = {}
    for q, hit in zip(questions, hits):
        per_type.setdefault(q.task, []).append(hit)
    return 100 * sum(sum(v) / len(v) for v in per_type.values()) / 7


@pytest.mark.parametrize("name", ["mvbench", "videomme", "mlvu"])
def test_replay_run_scores_like_lmms_eval(replay_files, tmp_path, name):
    _root, questions, _path, responses = replay_files[name]
    result = run_benchmark(replay_config(replay_files, name, tmp_path), progress=False)
    summary = result.summaries["unpruned"]
    assert summary["overall"] == pytest.approx(expected_overall(name, questions, responses))
    tmp_path = tmp_path / "replay"  # a replayed run's folder says what it holds
    records = read_records(tmp_path / "samples.jsonl")
    assert [r["response"] for r in records] == responses
    assert all(REQUIRED_KEYS <= set(r) for r in records)
    assert summary["complete"] and summary["counts"]["samples"] == len(questions)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["overall"] == summary["overall"]
    assert on_disk["lmms_eval_reference"]["commit"].startswith("75571cfe")
    assert {"config", "versions", "git_commit", "timings"} <= set(on_disk)
    assert f"{summary['overall']:.2f}" in (tmp_path / "summary.md").read_text()
    if name == "videomme":
        assert all(r["duration"] in ("short", "medium", "long") for r in records)


def test_same_config_same_results(replay_files, tmp_path):
    subtitles = BenchmarkOptions(subtitles=True)
    runs = [
        run_benchmark(replay_config(replay_files, "videomme", tmp_path / str(i), options=subtitles), progress=False)
        for i in range(2)
    ]
    strip = [
        [
            {k: v for k, v in r.items() if k != "timings"}
            for r in read_records(tmp_path / str(i) / "replay" / "samples.jsonl")
        ]
        for i in range(2)
    ]
    assert strip[0] == strip[1]
    assert runs[0].summaries["unpruned"]["per_duration"] == runs[1].summaries["unpruned"]["per_duration"]


_SLOW_RUN = """
import sys, time
from divprune_video.eval import ReplayAnswerer, RunConfig, run_benchmark

class Slow(ReplayAnswerer):
    def answer(self, prepared, variants, seed):
        time.sleep(0.1)
        return super().answer(prepared, variants, seed)

root, replay, output = sys.argv[1:4]
config = RunConfig(benchmark="mvbench", data_root=root, model="replay:" + replay, output=output)
run_benchmark(config, answerer=Slow(replay), progress=False)
"""


def test_resume_after_kill(replay_files, tmp_path):
    root, questions, replay, _ = replay_files["mvbench"]
    script = tmp_path / "slow_run.py"
    script.write_text(_SLOW_RUN)
    output = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(script), str(root), str(replay), str(output)], cwd=Path(__file__).parents[2]
    )
    samples = output / "replay" / "samples.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and len(read_records(samples)) < 5:
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finished = len(read_records(samples))
    assert 5 <= finished < len(questions), "the run must be killed part-way"
    with open(samples, "a") as handle:  # what a kill during a write leaves behind
        handle.write('{"id": "action_count/00')

    result = run_benchmark(replay_config(replay_files, "mvbench", output), progress=False)
    assert result.skipped_done == finished and result.processed == len(questions) - finished
    records = read_records(samples)
    assert [r["id"] for r in records] == sorted({r["id"] for r in records}, key=[r["id"] for r in records].index)
    assert len(records) == len(questions)
    clean = run_benchmark(replay_config(replay_files, "mvbench", tmp_path / "clean"), progress=False)
    assert result.summaries["unpruned"]["per_task"] == clean.summaries["unpruned"]["per_task"]
    clean_records = read_records(tmp_path / "clean" / "replay" / "samples.jsonl")
    assert [r["id"] for r in records] == [r["id"] for r in clean_records]

    again = run_benchmark(replay_config(replay_files, "mvbench", output), progress=False)
    assert again.processed == 0 and again.skipped_done == len(questions)


def test_changed_config_refuses_to_resume(replay_files, tmp_path):
    run_benchmark(replay_config(replay_files, "mlvu", tmp_path, limit=3), progress=False)
    with pytest.raises(ResultsError, match="seed: 0 -> 5"):
        run_benchmark(replay_config(replay_files, "mlvu", tmp_path, seed=5), progress=False)
    result = run_benchmark(replay_config(replay_files, "mlvu", tmp_path, seed=5, overwrite=True), progress=False)
    assert result.processed == 14 and result.skipped_done == 0


class FakeModel(Answerer):
    """Decodes by reading the file size (in a worker thread), answers the gold letter when keep_ratio >= 0.5."""

    def __init__(self, decode_seconds=0.0, answer_seconds=0.0, fail_on=()):
        self.decode_seconds, self.answer_seconds, self.fail_on = decode_seconds, answer_seconds, set(fail_on)
        self.decoded, self.events, self.lock = [], [], threading.Lock()

    def decode(self, sample):
        started = time.perf_counter()
        time.sleep(self.decode_seconds)
        if sample.id in self.fail_on:
            raise OSError(f"cannot decode {sample.video_path}")
        with self.lock:
            self.decoded.append(sample.id)
            self.events.append(("decode", sample.index, started, time.perf_counter()))
        return os.path.getsize(sample.video_path) if sample.video_path.is_file() else 0

    def answer(self, prepared, variants, seed):
        started = time.perf_counter()
        time.sleep(self.answer_seconds)
        self.events.append(("answer", prepared.sample.index, started, time.perf_counter()))
        return [
            Answer(
                prepared.sample.gold if v.keep_ratio >= 0.5 else "", 64, round(64 * v.keep_ratio), {"generate": 0.001}
            )
            for v in variants
        ]


def test_variants_share_one_decode(mvbench_data, tmp_path):
    root, questions = mvbench_data
    variants = (Variant(), Variant("divprune", 0.5), Variant("divprune", 0.15, prune_layer=2))
    model = FakeModel()
    config = RunConfig(benchmark="mvbench", data_root=root, model="fake", output=tmp_path, variants=variants)
    result = run_benchmark(config, answerer=model, progress=False)
    assert sorted(model.decoded) == sorted({f"{q.task}/{i % 2:04d}" for i, q in enumerate(questions)})
    assert set(result.summaries) == {"unpruned", "divprune-keep0.5", "divprune-keep0.15-layer2"}
    assert result.summaries["divprune-keep0.5"]["overall"] == 100.0
    assert result.summaries["divprune-keep0.15-layer2"]["counts"]["empty_responses"] == len(questions)
    kept = read_records(tmp_path / "divprune-keep0.15-layer2" / "samples.jsonl")
    assert {(r["visual_tokens_total"], r["visual_tokens_kept"]) for r in kept} == {(64, 10)}
    assert json.loads((tmp_path / "unpruned" / "run.json").read_text())["variant"]["method"] == "none"


def test_decoding_overlaps_the_model(mvbench_data, tmp_path):
    root, _ = mvbench_data
    model = FakeModel(decode_seconds=0.03, answer_seconds=0.03)
    config = RunConfig(
        benchmark="mvbench", data_root=root, model="fake", output=tmp_path, limit=1, workers=2, prefetch=3
    )
    run_benchmark(config, answerer=model, progress=False)
    answers = {index: (start, end) for kind, index, start, end in model.events if kind == "answer"}
    decodes = [(index, start, end) for kind, index, start, end in model.events if kind == "decode"]
    overlapping = [
        index
        for index, start, end in decodes
        if any(a_start < end and start < a_end for i, (a_start, a_end) in answers.items() if i != index)
    ]
    assert len(overlapping) >= len(decodes) // 2


def test_missing_and_unreadable_videos(tmp_path):
    root = tmp_path / "data"
    write_mvbench_fixture(
        root, tasks=["action_count", "object_shuffle"], questions_per_task=2, missing_videos=["action_count_1.mp4"]
    )
    base = dict(
        benchmark="mvbench",
        data_root=root,
        model="fake",
        output=tmp_path / "out",
        tasks=("action_count", "object_shuffle"),
    )
    with pytest.raises(MissingVideoError, match="action_count_1.mp4"):
        run_benchmark(RunConfig(**base), answerer=FakeModel(), progress=False)
    with pytest.raises(SampleError, match="object_shuffle/0001.*cannot decode"):
        run_benchmark(
            RunConfig(**{**base, "tasks": ("object_shuffle",)}),
            answerer=FakeModel(fail_on={"object_shuffle/0001"}),
            progress=False,
        )

    result = run_benchmark(
        RunConfig(**base, skip_missing=True), answerer=FakeModel(fail_on={"object_shuffle/0001"}), progress=False
    )
    summary = result.summaries["unpruned"]
    assert summary["counts"]["errors"] == 2 and summary["counts"]["scored"] == 2
    errors = {r["id"]: r["error"] for r in read_records(tmp_path / "out" / "unpruned" / "samples.jsonl") if r["error"]}
    assert "missing video" in errors["action_count/0001"] and "cannot decode" in errors["object_shuffle/0001"]

    from divprune_video.eval.fixtures import write_tiny_video

    write_tiny_video(root / "perception" / "videos" / "action_count_1.mp4")
    retried = run_benchmark(
        RunConfig(**base, skip_missing=True, retry_errors=True), answerer=FakeModel(), progress=False
    )
    assert retried.processed == 2 and retried.summaries["unpruned"]["counts"]["errors"] == 0
    assert len(read_records(tmp_path / "out" / "unpruned" / "samples.jsonl")) == 4


def test_replay_without_a_response_names_the_sample(mvbench_data, tmp_path):
    root, questions = mvbench_data
    replay = write_replay_file(
        tmp_path / "partial.jsonl", [{"video": q.video, "question": q.question, "response": "A"} for q in questions[1:]]
    )
    config = RunConfig(benchmark="mvbench", data_root=root, model=f"replay:{replay}", output=tmp_path / "out")
    with pytest.raises(SampleError, match=f"{replay} has no response for sample action_sequence/0000"):
        run_benchmark(config, progress=False)
    with pytest.raises(ValueError, match="ReplayAnswerer answers at most 1 variant"):
        run_benchmark(
            RunConfig(**{**config.__dict__, "variants": (Variant(), Variant("divprune", 0.5))}), progress=False
        )
    # Replay needs no video: a data folder without them still re-scores.
    assert ReplayAnswerer(replay).needs_frames is False


@pytest.mark.parametrize("model_type", ["llava_onevision", "qwen2_5_vl", "qwen3_vl"])
def test_every_family_runs_through_the_runner(tmp_path, model_type):
    """A checkpoint folder of any family answers a benchmark as LLaVA-NeXT-Video does (its tiny checkpoint here)."""
    pytest.importorskip("av")
    from divprune_video.testing import save_tiny_model

    root = tmp_path / "data"
    write_mvbench_fixture(root, tasks=["action_count"], questions_per_task=2)
    checkpoint = save_tiny_model(tmp_path / model_type, model_type)
    config = RunConfig(
        benchmark="mvbench",
        data_root=root,
        model=str(checkpoint),
        output=tmp_path / "out",
        variants=(Variant(), Variant("divprune", 0.25)),
        num_frames=6,
        tasks=("action_count",),
    )
    result = run_benchmark(config, progress=False)
    for name in ("unpruned", "divprune-keep0.25"):
        records = read_records(tmp_path / "out" / name / "samples.jsonl")
        assert len(records) == 2 and all(record["error"] is None for record in records)
        assert result.summaries[name]["counts"]["errors"] == 0
    kept = read_records(tmp_path / "out" / "divprune-keep0.25" / "samples.jsonl")[0]
    assert kept["visual_tokens_kept"] == round(0.25 * kept["visual_tokens_total"])

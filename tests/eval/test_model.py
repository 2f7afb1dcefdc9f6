"""The embedded tiny LLaVA-NeXT-Video through the runner: frames decoded once and visual tokens encoded once per
sample, shared by an unpruned and a pruned variant."""

import pytest

from divprune_video.eval import BenchmarkOptions, RunConfig, Variant, run_benchmark
from divprune_video.eval.results import read_records

pytest.importorskip("transformers")


@pytest.mark.slow
def test_tiny_model_variants_share_visual_tokens(mvbench_data, tmp_path):
    root, _ = mvbench_data
    config = RunConfig(
        benchmark="mvbench",
        data_root=root,
        model="tiny",
        output=tmp_path,
        num_frames=4,
        limit=1,
        tasks=("action_sequence", "episodic_reasoning"),
        options=BenchmarkOptions(time_bounds=True),
        variants=(Variant(), Variant("divprune", 0.25)),
    )
    result = run_benchmark(config, progress=False)
    assert set(result.summaries) == {"unpruned", "divprune-keep0.25"}
    full = read_records(tmp_path / "unpruned" / "samples.jsonl")
    pruned = read_records(tmp_path / "divprune-keep0.25" / "samples.jsonl")
    assert [r["id"] for r in full] == ["action_sequence/0000", "episodic_reasoning/0000"]  # benchmark order
    # 12 frames at 8 fps, bounds 0.25-1.0 s: four frames uniform in frames 2..8; the frame folder is read at 3 fps.
    assert full[0]["details"]["frame_indices"] == [2, 4, 6, 8]
    assert full[1]["details"]["frame_indices"] == [0, 3, 7, 11] and full[1]["details"]["frame_times"][-1] == 3.6667
    for whole, kept in zip(full, pruned):
        assert whole["error"] is None and kept["error"] is None
        assert whole["visual_tokens_total"] == kept["visual_tokens_total"] == whole["visual_tokens_kept"] > 0
        assert kept["visual_tokens_kept"] == round(0.25 * kept["visual_tokens_total"])
        assert {"decode", "encode", "model"} <= set(kept["timings"])
        assert isinstance(kept["response"], str)
    assert result.summaries["unpruned"]["model"]["adapter"]


@pytest.mark.slow
def test_questions_on_one_video_share_its_prefill_and_answer_as_alone(videomme_data, tmp_path):
    """Video-MME asks three questions per video: the shared run prefills each video once per variant (not for the
    question-dependent "attention" method nor the per-sample seeded "random" one) and answers exactly as a run
    without sharing."""
    from divprune_video.eval.answerers import PipelineAnswerer

    root, _ = videomme_data
    variants = (
        Variant(),
        Variant("divprune", 0.25),
        Variant("uniform", 0.3, prune_layer=1),
        Variant("attention", 0.3, prune_layer=1),
        Variant("random", 0.3),
    )
    config = RunConfig(
        benchmark="videomme",
        data_root=root,
        model="tiny",
        output=tmp_path / "shared",
        num_frames=4,
        limit=6,
        variants=variants,
    )
    run_benchmark(config, progress=False)
    alone = PipelineAnswerer(config)
    for pipe in alone.pipelines.values():
        pipe.share_prefill = False
    run_benchmark(RunConfig(**{**config.__dict__, "output": tmp_path / "alone"}), answerer=alone, progress=False)
    for variant in variants:
        shared = read_records(tmp_path / "shared" / variant.name / "samples.jsonl")
        plain = read_records(tmp_path / "alone" / variant.name / "samples.jsonl")
        assert [r["id"] for r in shared] == [r["id"] for r in plain] and len(shared) == 6
        assert [r["response"] for r in shared] == [r["response"] for r in plain]
        flags = [r["details"]["shared_prefill"] for r in shared]
        assert flags == ([variant.method not in ("attention", "random")] * 6)
        assert not any(r["details"]["shared_prefill"] for r in plain)
        videos = [r["details"]["frame_indices"] for r in shared]
        assert videos[0] == videos[1] == videos[2], "the fixture asks three questions per video, in order"

"""VideoQAPipeline on the tiny checkpoint: answers, counts, timings, batching, reuse of encoded videos."""
# ruff: noqa: F811  (the fixtures below are imported from tests.models.helpers and used as arguments)

import pytest
import torch

from divprune_video import VideoQAPipeline, VideoQAResult
from tests.models.helpers import (  # noqa: F401  (fixtures)
    adapter,
    literal_prompt_ids,
    offline_hub,
    one_cpu_thread,
    plain_model,
    sample_frames,
    tiny_checkpoint,
)

QUESTION = "What is happening in this video?"
STAGES = {"decode", "encode", "select", "prefill", "generate"}


@pytest.fixture
def pipeline(adapter):
    return VideoQAPipeline(adapter, keep_ratio=0.25, num_frames=8)


def test_keep_all_answers_exactly_as_plain_transformers(adapter, plain_model):
    frames = sample_frames(8)
    result = VideoQAPipeline(adapter, keep_ratio=1.0, num_frames=8)(frames, QUESTION, max_new_tokens=10)
    ids = literal_prompt_ids(adapter.tokenizer, QUESTION, 8 * 16)
    pixels = adapter.frame_preprocessor(frames).unsqueeze(0)
    with torch.inference_mode():
        output = plain_model.generate(
            input_ids=ids,
            pixel_values_videos=pixels,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=adapter.tokenizer.pad_token_id,
        )
    assert result.answer == adapter.tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True).strip()
    assert result.num_kept == result.num_visual_tokens == 128


def test_result_fields(pipeline):
    result = pipeline(sample_frames(12), QUESTION, max_new_tokens=4)
    assert isinstance(result, VideoQAResult) and isinstance(result.answer, str)
    assert (result.num_frames, result.grid, result.num_visual_tokens, result.num_kept) == (8, (4, 4), 128, 32)
    assert result.kept_indices.shape == (32,) and torch.equal(result.kept_indices, result.kept_indices.unique())
    assert 0 <= int(result.kept_indices.min()) and int(result.kept_indices.max()) < 128
    assert sum(result.kept_per_frame()) == 32 and len(result.kept_per_frame()) == 8
    assert set(result.timings) == STAGES and min(result.timings.values()) >= 0
    assert result.timings["encode"] > 0 and result.timings["prefill"] > 0 and result.question == QUESTION


def test_a_list_of_pairs_is_batched_and_equals_one_by_one(pipeline):
    first, second = sample_frames(8), sample_frames(6, seed=5)
    pairs = [(first, "Why?"), (second, "Which object moves fastest?"), (first, "How many shapes are there?")]
    batched = pipeline(pairs, max_new_tokens=6)
    for (video, question), result in zip(pairs, batched):
        alone = pipeline(video, question, max_new_tokens=6)
        assert result.answer == alone.answer and result.question == question
        assert torch.equal(result.kept_indices, alone.kept_indices)
    assert [result.num_visual_tokens for result in batched] == [128, 96, 128]


def test_questions_on_one_video_share_its_encoding(adapter, monkeypatch):
    calls = []
    encode = adapter.encode_frames
    monkeypatch.setattr(
        adapter, "encode_frames", lambda frames, timing=None: calls.append(frames.shape) or encode(frames, timing)
    )
    pipeline = VideoQAPipeline(adapter, num_frames=4, batch_size=2)
    frames = sample_frames(4)
    results = pipeline([(frames, "Why?"), (frames, "Who?"), (frames, "Where?")], max_new_tokens=2)
    assert len(results) == 3 and len(calls) == 1
    encoded = pipeline.encode(frames)
    again = pipeline(encoded, "When?", max_new_tokens=2)
    assert len(calls) == 2 and again.timings["encode"] == 0 and again.timings["decode"] == 0


def test_video_file_through_load_video(pipeline, tmp_path):
    av = pytest.importorskip("av")
    from divprune_video.demo import sample_video

    path = sample_video(tmp_path / "shapes.mp4", num_frames=24)
    assert path == tmp_path / "shapes.mp4" and av is not None
    result = pipeline(str(path), QUESTION, max_new_tokens=3)
    assert result.num_frames == 8 and result.timings["decode"] > 0


def test_video_clip_frames_are_used_as_given(pipeline):
    video = pytest.importorskip("divprune_video.video")
    clip = video.load_video(sample_frames(5), num_frames=5)
    result = pipeline(clip, QUESTION, max_new_tokens=2)
    assert result.num_frames == 5


def test_method_and_prune_layer_reach_the_model(adapter):
    frames = sample_frames(8)
    results = {
        (method, layer): VideoQAPipeline(adapter, keep_ratio=0.25, method=method, prune_layer=layer, num_frames=8)(
            frames, QUESTION, max_new_tokens=2
        )
        for method, layer in [("divprune", 0), ("uniform", 0), ("divprune", 2), ("attention", 2)]
    }
    assert results[("uniform", 0)].kept_indices.tolist() == list(range(0, 128, 4))
    assert not torch.equal(results[("divprune", 0)].kept_indices, results[("divprune", 2)].kept_indices)
    assert not torch.equal(results[("attention", 2)].kept_indices, results[("divprune", 2)].kept_indices)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda pipe: pipe(sample_frames(2), 3), ValueError, "question"),
        (lambda pipe: pipe([]), TypeError, "pairs"),
        (lambda pipe: pipe([(sample_frames(2),)]), TypeError, "pair"),
        (lambda pipe: pipe(sample_frames(2), "Why?", num_return_sequences=2), ValueError, "num_return_sequences"),
    ],
)
def test_bad_calls(pipeline, call, error, match):
    with pytest.raises(error, match=match):
        call(pipeline)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"keep_ratio": 0}, ValueError, "keep_ratio"),
        ({"method": "attention"}, ValueError, "prune_layer >= 1"),
        ({"num_frames": 0}, ValueError, "num_frames"),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_bad_settings(adapter, kwargs, error, match):
    with pytest.raises(error, match=match):
        VideoQAPipeline(adapter, **kwargs)


def test_model_argument_types(tiny_checkpoint):
    pipe = VideoQAPipeline(tiny_checkpoint, num_frames=2, device="cpu")
    assert pipe.adapter.device.type == "cpu"
    with pytest.raises(TypeError, match="model must be"):
        VideoQAPipeline(42)


@pytest.mark.parametrize("model_type", ["llava_onevision", "qwen2_5_vl", "qwen3_vl"])
def test_every_family_answers_about_a_video_file(tmp_path, model_type):
    """VideoQAPipeline(checkpoint folder)(video file, question) for each family, frames in pairs for Qwen."""
    pytest.importorskip("av")
    from divprune_video.demo import sample_video
    from divprune_video.testing import save_tiny_model

    checkpoint = save_tiny_model(tmp_path / model_type, model_type)
    path = sample_video(tmp_path / "shapes.mp4", num_frames=24)
    result = VideoQAPipeline(str(checkpoint), keep_ratio=0.15, num_frames=8, device="cpu")(
        str(path), QUESTION, max_new_tokens=3
    )
    pairs = model_type.startswith("qwen")
    assert result.frames_per_group == (2 if pairs else 1) and result.num_frames == (4 if pairs else 8)
    assert result.num_kept == round(0.15 * result.num_visual_tokens)
    assert sum(result.kept_per_frame()) == result.num_kept and len(result.kept_per_frame()) == result.num_frames

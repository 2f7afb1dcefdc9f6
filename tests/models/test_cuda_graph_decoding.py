"""CUDA only: decoding steps replayed as CUDA graphs give generate()'s greedy tokens, whole-prompt and from a shared
video prefill, for every family's tiny model (float32, so that the two paths' rounding cannot swap tokens)."""

import pytest
import torch

from divprune_video import VideoQAPipeline
from divprune_video.models import PruningConfig, load_adapter
from divprune_video.testing import moving_shapes_video, save_tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
pytest.importorskip("transformers")

QUESTIONS = ["What is happening in this video?", "Why?"]


@pytest.mark.parametrize("model_type", ["llava_next_video", "llava_onevision", "qwen2_5_vl", "qwen3_vl"])
def test_graph_replayed_steps_answer_like_generate(tmp_path, model_type):
    checkpoint = save_tiny_model(tmp_path / model_type, model_type)
    adapter = load_adapter(str(checkpoint), device="cuda", dtype=torch.float32)
    assert adapter.static_decoder.use_graphs
    video = adapter.encode_frames(moving_shapes_video(8, 72, 96, seed=1))
    cases = [
        PruningConfig(method="none"),
        PruningConfig(keep_ratio=0.25),
        PruningConfig(keep_ratio=0.3, method="uniform", prune_layer=2),
    ]
    for pruning in cases:
        adapter.decoding = "generate"
        expected = [
            row.tolist()
            for row in adapter.generate([video] * 2, QUESTIONS, pruning, max_new_tokens=12, do_sample=False).sequences
        ]
        adapter.decoding = "static"
        for _ in range(2):
            got = adapter.generate([video] * 2, QUESTIONS, pruning, max_new_tokens=12, do_sample=False)
            assert [row.tolist() for row in got.sequences] == expected
        shared = adapter.answer(adapter.prefill(video, pruning), QUESTIONS, max_new_tokens=12, do_sample=False)
        assert [row.tolist() for row in shared.sequences] == expected
    assert adapter.static_decoder.capture_seconds > 0


def test_pipeline_warmup_captures_the_decoding_step(tmp_path):
    checkpoint = save_tiny_model(tmp_path / "tiny", "llava_next_video")
    pipe = VideoQAPipeline(str(checkpoint), num_frames=4, device="cuda", dtype=torch.float32)
    seconds = pipe.warmup(max_new_tokens=8, size=(72, 96))
    assert seconds["capture"] > 0 and seconds["total"] >= seconds["capture"]
    frames = moving_shapes_video(4, 72, 96, seed=2)
    static = pipe(frames, "Why?", max_new_tokens=8)
    assert (
        VideoQAPipeline(pipe.adapter, num_frames=4, decode="generate")(frames, "Why?", max_new_tokens=8).answer
        == static.answer
    )

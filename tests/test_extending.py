"""Every extension point is one class plus its registration (docs/extending.md): a toy selection method, streaming
memory and video backend registered here work through the public API and the commands, with nothing else edited.
(The toy benchmark is in tests/eval/test_extending.py.)"""
# ruff: noqa: F811  (the fixtures below are imported from tests.models.helpers and used as arguments)

import numpy as np
import pytest
import torch

from divprune_video import VideoQAPipeline, get_selector, load_video
from divprune_video.selection import SELECTORS, TokenSelector
from divprune_video.streaming import MEMORIES, StreamingVideoQA, TokenMemory
from divprune_video.video import VIDEO_BACKENDS, BackendSpec, register_backend
from divprune_video.video.backends.base import VideoInfo, VideoReader, timestamps_from_rate
from tests.models.helpers import adapter, offline_hub, one_cpu_thread, sample_frames, tiny_checkpoint  # noqa: F401


class EveryOther(TokenSelector):
    def select(self, tokens, num_keep, **context):
        return torch.arange(0, 2 * num_keep, 2, device=tokens.device)[:num_keep]


class FirstTokens(TokenMemory):
    """The first ``token_budget`` tokens of the stream."""

    def _choose(self, start, end):
        return None if end <= self.token_budget else torch.arange(self.token_budget)


class NumpyReader(VideoReader):
    """Videos saved as (T, H, W, 3) uint8 ``.npy`` arrays."""

    name = "npy"

    def __init__(self, source, *, threads=None, timeout=None):
        super().__init__(source)
        self.frames = np.load(source.value)
        count, height, width = self.frames.shape[:3]
        self.info = VideoInfo(count, 10.0, count / 10.0, width, height, timestamps_from_rate(count, 10.0), "npy")

    def _decode(self, indices):
        return {int(index): self.frames[index] for index in indices}


@pytest.fixture
def registered():
    SELECTORS.register("every-other", EveryOther)
    MEMORIES.register("first", FirstTokens)
    register_backend(BackendSpec("npy", NumpyReader, frozenset({"path"}), probe=False))
    yield
    SELECTORS.unregister("every-other")
    MEMORIES.unregister("first")
    VIDEO_BACKENDS.unregister("npy")


def test_a_registered_selector_prunes_through_the_pipeline(registered, adapter):
    assert get_selector("every-other").select(torch.zeros(10, 4), 3).tolist() == [0, 2, 4]
    result = VideoQAPipeline(adapter, method="every-other", keep_ratio=0.25, num_frames=8)(
        sample_frames(8), "Why?", max_new_tokens=2
    )
    assert result.kept_indices.tolist() == list(range(0, 64, 2))


def test_a_registered_memory_serves_streaming(registered, adapter):
    qa = StreamingVideoQA(adapter, method="first", token_budget=32)
    for frame in sample_frames(5):
        qa.ingest(frame)
    assert qa.memory_frame_ids.tolist() == [0] * 16 + [1] * 16
    assert qa.ask("What came first?", max_new_tokens=2).num_kept == 32


def test_a_registered_video_backend_reads_through_load_video(registered, tmp_path):
    frames = sample_frames(12)
    np.save(tmp_path / "clip.npy", frames)
    clip = load_video(tmp_path / "clip.npy", num_frames=4, backend="npy")
    assert clip.backend == "npy" and len(clip.indices) == 4 and clip.total_frames == 12
    assert np.array_equal(clip.frames, frames[clip.indices])


def test_registered_names_reach_the_commands(registered):
    from divprune_video.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["stream", "clip.mp4", "--method", "first", "--question", "Why?"])
    assert args.method == "first"

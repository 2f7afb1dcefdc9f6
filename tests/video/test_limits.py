"""Absurd sizes are refused before anything is allocated or decoded: counts and rates at once (before the source
is even opened), the bytes of the frames asked for as soon as the metadata gives their size."""

import math
import time

import numpy as np
import pytest

from divprune_video.testing import read_frame_index
from divprune_video.video import VideoError, VideoTooLargeError, load_video, loader

from .conftest import CODED_FRAMES


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_frames": 10**12}, "num_frames"),
        ({"num_frames": loader.MAX_NUM_FRAMES + 1}, "num_frames"),
        ({"keyframes": 4, "candidates": 10**9}, "candidates"),
        ({"keyframes": 10**8}, "keyframes"),
        ({"fps": float("inf")}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"fps": 1e9}, "fps"),
        ({"fps": 0.0}, "fps"),
        ({"fps": True}, "fps"),
        ({"fps": "2"}, "fps"),
        ({"num_frames": 8, "max_bytes": 0}, "max_bytes"),
    ],
)
def test_absurd_counts_and_rates_are_value_errors_before_the_source_is_opened(tmp_path, kwargs, name):
    missing = tmp_path / "missing.mp4"  # opening it would raise VideoNotFoundError
    began = time.monotonic()
    with pytest.raises(ValueError, match=name) as info:
        load_video(missing, **kwargs)
    assert not isinstance(info.value, VideoError) and time.monotonic() - began < 1.0


def test_the_limits_themselves_are_accepted(coded_mp4):
    clip = load_video(coded_mp4, fps=loader.MAX_FPS)  # far above the video's 30 fps: every frame once
    assert clip.indices.tolist() == list(range(CODED_FRAMES))
    assert len(load_video(coded_mp4, loader.MAX_NUM_FRAMES)) == CODED_FRAMES  # lmms_eval caps at the frame count


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_frames": loader.MAX_NUM_FRAMES, "sampling": "llava_next_video"},  # repeats frames: 61 GB of 160 x 128
        {"keyframes": 2, "candidates": 400_000, "sampling": "llava_next_video"},
    ],
)
def test_frames_over_the_byte_limit_are_refused_before_decoding(coded_mp4, kwargs):
    began = time.monotonic()
    with pytest.raises(VideoTooLargeError, match=r"coded\.mp4.*128 x 160.*GiB.*max_bytes") as info:
        load_video(coded_mp4, **kwargs)
    assert isinstance(info.value, ValueError) and time.monotonic() - began < 5.0


def test_the_byte_limit_can_be_changed(coded_mp4, monkeypatch):
    frame_bytes = 160 * 128 * 3
    with pytest.raises(VideoTooLargeError, match="8 frames"):
        load_video(coded_mp4, 8, max_bytes=8 * frame_bytes - 1)
    clip = load_video(coded_mp4, 8, max_bytes=8 * frame_bytes)
    assert [read_frame_index(frame) for frame in clip.frames] == clip.indices.tolist()
    monkeypatch.setattr(loader, "MAX_CLIP_BYTES", 4 * frame_bytes)
    with pytest.raises(VideoTooLargeError, match="MAX_CLIP_BYTES"):
        load_video(coded_mp4, 8)
    frames = np.zeros((3, 40, 40, 3), np.uint8)  # in memory too: the output is a new array
    with pytest.raises(VideoTooLargeError, match="3 frames of 40 x 40"):
        load_video(frames, 3, max_bytes=math.prod(frames.shape) - 1)

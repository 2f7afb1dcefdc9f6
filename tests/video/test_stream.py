"""stream_frames on files and on a live stream emulated on 127.0.0.1 (no camera, no outside network)."""

import _thread
import threading
import time

import numpy as np
import pytest

from divprune_video.testing import read_frame_index, write_index_coded_video
from divprune_video.video import Frame, StreamGoneError, VideoError, load_video, stream_frames

from ._server import LocalVideoServer
from .conftest import CODED_FRAMES, require_backend


@pytest.fixture(scope="module")
def short_mp4(video_dir):
    """1 s at 30 fps: for tests that pace in real time."""
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    return write_index_coded_video(video_dir / "short.mp4", 30, height=40, width=32)


def test_every_frame_of_a_file_in_order(coded_ts):
    with stream_frames(coded_ts, fps=None) as stream:
        frames = list(stream)
    assert all(isinstance(frame, Frame) for frame in frames)
    assert [f.index for f in frames] == list(range(CODED_FRAMES)) == [read_frame_index(f.image) for f in frames]
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(CODED_FRAMES) / 30.0, atol=1e-3)
    assert stream.dropped == 0 and stream.delivered == CODED_FRAMES and not stream.running


def test_opencv_streams_a_file_too(coded_mp4):
    require_backend("opencv")
    with stream_frames(coded_mp4, fps=10.0, backend="opencv") as stream:
        frames = list(stream)
    assert [f.index for f in frames] == list(range(0, CODED_FRAMES, 3)) == [read_frame_index(f.image) for f in frames]
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(0, CODED_FRAMES, 3) / 30.0, atol=1e-3)


def test_rate_selection_by_timestamp(coded_mp4):
    with stream_frames(coded_mp4, fps=5.0) as stream:
        indices = [frame.index for frame in stream]
    assert indices == list(range(0, CODED_FRAMES, 6))


def test_slow_consumer_of_a_file_waits_and_the_queue_stays_bounded(coded_mp4):
    longest = 0
    with stream_frames(coded_mp4, fps=10.0, max_queue=2) as stream:
        received = []
        for frame in stream:
            longest = max(longest, len(stream._queue))
            received.append(frame.index)
            time.sleep(0.005)
    assert longest <= 2 and stream.dropped == 0
    assert received == list(range(0, CODED_FRAMES, 3))


def test_real_time_pacing_drops_the_oldest_frames_for_a_slow_consumer(short_mp4):
    began = time.monotonic()
    with stream_frames(short_mp4, fps=None, max_queue=2, realtime=True) as stream:
        received = []
        for frame in stream:
            received.append(frame.index)
            time.sleep(0.1)
    assert time.monotonic() - began >= 0.9  # paced: 30 frames at 30 fps
    assert stream.dropped > 0 and len(received) + stream.dropped == 30
    assert received == sorted(received) and received[-1] == 29  # the newest frames survive


def test_closing_stops_the_thread_promptly(coded_mp4):
    stream = stream_frames(coded_mp4, fps=None, max_queue=2)
    assert next(stream).index == 0
    began = time.monotonic()
    stream.close()
    assert not stream.running and time.monotonic() - began < 2.0
    with pytest.raises(StopIteration):
        next(stream)
    stream.close()  # twice is fine


def test_ctrl_c_interrupts_the_loop_and_stops_the_thread(coded_mp4):
    stream = stream_frames(coded_mp4, fps=None, realtime=True)  # 5 s of paced frames
    timer = threading.Timer(0.3, _thread.interrupt_main)
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        timer.start()
        for _ in stream:
            pass
    timer.cancel()
    assert time.monotonic() - began < 2.0
    assert not stream.running


def test_bad_arguments_and_sources():
    with pytest.raises(ValueError, match="fps"):
        stream_frames(np.zeros((2, 8, 8, 3), np.uint8), fps=0)
    with pytest.raises(ValueError, match="max_queue"):
        stream_frames(np.zeros((2, 8, 8, 3), np.uint8), max_queue=0)
    with pytest.raises(ValueError, match="'pyav' or 'opencv'"):
        stream_frames(np.zeros((2, 8, 8, 3), np.uint8), backend="decord")
    with pytest.raises(VideoError, match="/dev/video93"):
        stream_frames("/dev/video93")
    frames = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(4)])
    with stream_frames(frames, fps=None) as stream:
        assert [f.index for f in stream] == [0, 1, 2, 3]


def test_missing_webcam_index_fails_fast():
    began = time.monotonic()
    with pytest.raises(VideoError):
        with stream_frames(93, max_retries=1, backoff=0.01, timeout=1.0) as stream:
            next(stream)
    assert time.monotonic() - began < 10.0


@pytest.fixture(scope="module")
def served(video_dir):
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    ts = write_index_coded_video(video_dir / "live.ts", CODED_FRAMES, height=40, width=32).read_bytes()
    mp4 = write_index_coded_video(video_dir / "served.mp4", CODED_FRAMES, height=40, width=32).read_bytes()
    return mp4, ts


def test_http_file_is_frame_exact_with_range_requests(served):
    mp4, _ = served
    with LocalVideoServer(mp4) as server:
        clip = load_video(server.url("/file.mp4"), 6, timeout=5)
    assert [read_frame_index(f) for f in clip.frames] == clip.indices.tolist() == [0, 29, 59, 89, 119, 149]


def test_live_stream_reconnects_then_gives_up(served):
    _, ts = served
    # Served at real-time speed, each connection cut after 0.5 s, at most 3 connections, then 503.
    with LocalVideoServer(live_bytes=ts, live_rate=len(ts) / 5.0, live_seconds=0.5, max_connections=3) as server:
        began = time.monotonic()
        stream = stream_frames(server.url("/live.ts"), fps=None, timeout=2.0, max_retries=2, backoff=0.05)
        received = []
        with pytest.raises(StreamGoneError, match="gone after 2 reconnect attempts") as info:
            with stream:
                for frame in stream:
                    received.append(frame)
        elapsed = time.monotonic() - began
        connections, refused = server.live_connections, server.refused
    assert stream.live and connections == 3 and refused >= 1 and stream.reconnects >= 3
    assert info.value.attempts == 3 and "live.ts" in str(info.value)
    # Frames from all three connections, numbered on across reconnects, each a real frame of the stream.
    assert len(received) > 3 * 5 and [f.index for f in received] == list(range(len(received)))
    assert all(0 <= read_frame_index(f.image) < CODED_FRAMES for f in received)
    assert np.all(np.diff([f.timestamp for f in received]) >= 0)
    assert elapsed < 15.0

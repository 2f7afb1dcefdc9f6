"""Partial input says so: a clip from truncated or damaged data names its lost frames (``lost_frames``,
``partial``) and still has the frames asked for while enough are readable (sampled among the readable frames by
the same rule); a URL that stops sending data mid-body raises a timeout error instead of giving half a clip."""

import random
import time
import warnings

import numpy as np
import pytest

from divprune_video.testing import read_frame_index, write_index_coded_video
from divprune_video.video import (
    VIDEO_BACKENDS,
    CorruptVideoError,
    TruncatedVideoWarning,
    VideoClip,
    VideoTimeoutError,
    load_video,
    resolve_source,
    uniform_indices,
)
from divprune_video.video.backends import open_reader
from divprune_video.video.backends.base import runs

from ._server import LocalVideoServer
from .conftest import require_backend

FRAMES = 90


def codes(clip: VideoClip) -> list[int]:
    return [read_frame_index(frame) for frame in clip.frames]


def quiet_load(*args, **kwargs) -> VideoClip:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedVideoWarning)
        return load_video(*args, **kwargs)


def lost_set(clip: VideoClip) -> set[int]:
    return {frame for start, end in clip.lost_frames for frame in range(start, end)}


@pytest.fixture(scope="module")
def damaged(video_dir):
    """name -> a damaged copy of a 90-frame index-coded video (keyframe every 10 frames, 2 B-frames)."""
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    ts = write_index_coded_video(video_dir / "partial_src.ts", FRAMES, gop=10).read_bytes()
    web = write_index_coded_video(video_dir / "partial_web.mp4", FRAMES, gop=10, faststart=True).read_bytes()
    mp4 = write_index_coded_video(video_dir / "partial_src.mp4", FRAMES, gop=10).read_bytes()
    garbage = bytes(random.Random(0).randrange(256) for _ in range(3000))
    variants = {
        "cut.ts": ts[: len(ts) // 2],
        "cut_web.mp4": web[: len(web) // 2],
        "overwritten.ts": ts[: len(ts) // 2] + garbage + ts[len(ts) // 2 + 3000 :],
        "overwritten.mp4": mp4[: len(mp4) // 2] + garbage + mp4[len(mp4) // 2 + 3000 :],
    }
    paths = {}
    for name, data in variants.items():
        paths[name] = video_dir / f"partial_{name}"
        paths[name].write_bytes(data)
    return paths


def test_an_intact_video_is_not_partial(coded_mp4):
    clip = load_video(coded_mp4, 8)
    assert clip.lost_frames == () and not clip.partial and clip.num_lost_frames == 0
    assert not load_video(np.zeros((4, 8, 8, 3), np.uint8), 2).partial


@pytest.mark.parametrize("backend", VIDEO_BACKENDS.names())
@pytest.mark.parametrize("case", ["cut.ts", "cut_web.mp4", "overwritten.ts", "overwritten.mp4"])
@pytest.mark.parametrize("num_frames", [8, 24])
def test_damaged_video_gives_the_frames_asked_for_and_names_the_lost_ones(backend, case, num_frames, damaged):
    require_backend(backend)
    if backend == "decord" and case.endswith(".ts"):
        pytest.skip("decord refuses MPEG-TS (test_damaged.py checks that)")
    with pytest.warns(TruncatedVideoWarning, match=damaged[case].name):
        clip = load_video(damaged[case], num_frames, backend=backend)
    assert clip.partial and clip.lost_frames
    if backend == "opencv" and case.endswith(".ts"):
        # OpenCV's seeks back in MPEG-TS land on other frames: it cannot place some intact frames either, and
        # these count as lost too, so a few rounds of sampling again may not reach the count.
        assert len(clip) >= num_frames - 4
    else:
        assert len(clip) == num_frames  # at least 24 of the 90 frames are readable in every case
    assert codes(clip) == clip.indices.tolist()  # what is returned is exact
    assert not lost_set(clip) & set(clip.indices.tolist())  # nothing returned is called lost
    assert clip.lost_frames == runs(lost_set(clip))  # ascending, disjoint, merged half-open ranges


def test_lost_frames_include_what_the_index_found_and_frames_past_the_cut(damaged):
    clip = quiet_load(damaged["cut_web.mp4"], 8, backend="pyav")
    # The MP4 index declares 90 frames, the data holds about half: the rest is lost, past total_frames.
    assert clip.lost_frames[-1][1] == FRAMES and clip.total_frames < FRAMES
    assert set(range(clip.total_frames, FRAMES)) <= lost_set(clip)
    clip = quiet_load(damaged["overwritten.ts"], 8, backend="pyav")
    with pytest.warns(TruncatedVideoWarning), open_reader(resolve_source(damaged["overwritten.ts"]), "pyav") as reader:
        known = {frame for start, end in reader.info.lost_frames for frame in range(start, end)}
    assert known and known <= lost_set(clip)
    window = quiet_load(damaged["overwritten.ts"], 4, backend="pyav", start=0.0, end=1.0)
    assert window.lost_frames == () and not window.partial  # the damage lies after the window


@pytest.mark.parametrize("sampling", ["lmms_eval", "llava_next_video"])
def test_the_sampling_rule_runs_over_the_readable_frames(damaged, sampling):
    clip = quiet_load(damaged["overwritten.ts"], 8, backend="pyav", sampling=sampling)
    readable = [frame for frame in range(clip.total_frames) if frame not in lost_set(clip)]
    expected = np.asarray(readable)[uniform_indices(len(readable), 8, sampling)]
    assert clip.indices.tolist() == expected.tolist()
    rate = quiet_load(damaged["overwritten.ts"], fps=10.0, backend="pyav")  # one every 3rd frame, 30 fps video
    assert set(rate.indices.tolist()).isdisjoint(lost_set(rate)) and len(rate) >= 26


def test_keyframes_keep_the_lost_frames(damaged):
    clip = quiet_load(damaged["overwritten.mp4"], keyframes=4, candidates=16, backend="pyav")
    assert len(clip) == 4 and clip.partial and codes(clip) == clip.indices.tolist()


def test_nothing_readable_in_the_window_is_corrupt_not_empty(damaged):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedVideoWarning)
        with open_reader(resolve_source(damaged["overwritten.ts"]), "pyav") as reader:
            start, end = max(reader.info.lost_frames, key=lambda lost: lost[1] - lost[0])
    assert end - start > 2
    with pytest.raises(CorruptVideoError, match="overwritten.ts"):
        quiet_load(damaged["overwritten.ts"], 4, backend="pyav", start=start / 30.0, end=(end - 1) / 30.0)


def test_clip_checks_its_lost_frames():
    frames, indices, stamps = np.zeros((1, 2, 2, 3), np.uint8), np.zeros(1, np.int64), np.zeros(1)
    assert VideoClip(frames, indices, stamps, 1.0, 1.0, "x", lost_frames=[(3, 5), (7, 8)]).lost_frames == (
        (3, 5),
        (7, 8),
    )
    for bad in ([(5, 3)], [(3, 5), (4, 6)], [(-1, 2)]):
        with pytest.raises(ValueError, match="lost_frames"):
            VideoClip(frames, indices, stamps, 1.0, 1.0, "x", lost_frames=bad)


@pytest.mark.parametrize("backend", ["pyav", "opencv"])  # the backends that read http(s) with a timeout
@pytest.mark.parametrize("name", ["web.mp4", "stream.ts"])
def test_a_url_that_stalls_mid_body_times_out(video_dir, name, backend):
    require_backend(backend)
    extra = {"faststart": True} if name.endswith(".mp4") else {}
    data = write_index_coded_video(video_dir / f"stall_{name}", FRAMES, gop=10, **extra).read_bytes()
    with LocalVideoServer(data, stall_after=len(data) // 2) as server:
        began = time.monotonic()
        with pytest.raises(VideoTimeoutError, match="127.0.0.1") as info:
            load_video(server.url("/file.mp4"), 8, timeout=1.0, backend=backend)
        assert time.monotonic() - began < 15 and server.stalled >= 1  # the server stalls for 60 s
    assert isinstance(info.value, TimeoutError)


def test_a_url_that_stalls_while_frames_are_decoded_times_out(video_dir):
    data = write_index_coded_video(video_dir / "stall_late.ts", FRAMES, gop=10).read_bytes()
    with (
        LocalVideoServer(data) as server,
        open_reader(resolve_source(server.url("/file.mp4")), "pyav", timeout=0.5) as reader,
    ):
        server.stall_after = 1000  # the index is read; the seeks back to the frames now stall
        began = time.monotonic()
        with pytest.raises(VideoTimeoutError, match="127.0.0.1"):
            reader.read([0, 40])
        assert time.monotonic() - began < 30 and server.stalled >= 1

"""Truncated and damaged files on every backend: the readable frames, exact, with a warning that names the source
and the lost frames; a :class:`VideoError` when nothing is readable."""

import random
import warnings

import numpy as np
import pytest

from divprune_video.testing import read_frame_index, write_index_coded_video
from divprune_video.video import VIDEO_BACKENDS, load_video, resolve_source
from divprune_video.video.backends import open_reader
from divprune_video.video.errors import TruncatedVideoWarning, UnsupportedSourceError, VideoError

from .conftest import require_backend

FRAMES = 90


def codes(frames: np.ndarray) -> list[int]:
    return [read_frame_index(frame) for frame in frames]


def _garbage(size: int) -> bytes:
    generator = random.Random(0)
    return bytes(generator.randrange(256) for _ in range(size))


@pytest.fixture(scope="module")
def damaged(video_dir):
    """name -> path of a damaged copy of a 90-frame index-coded video (keyframe every 10, 2 B-frames)."""
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    ts = write_index_coded_video(video_dir / "damage_src.ts", FRAMES, gop=10).read_bytes()
    web = write_index_coded_video(video_dir / "damage_src_web.mp4", FRAMES, gop=10, faststart=True).read_bytes()
    mp4 = write_index_coded_video(video_dir / "damage_src.mp4", FRAMES, gop=10).read_bytes()
    middle_ts, middle_web, middle_mp4 = len(ts) // 2, len(web) // 2, len(mp4) // 2
    variants = {
        "cut.ts": ts[:middle_ts],  # ends mid-packet; the B-frames before the last P-frame are lost
        "cut_web.mp4": web[:middle_web],  # the index (moov) first: it declares 90 frames
        "overwritten.ts": ts[:middle_ts] + _garbage(3000) + ts[middle_ts + 3000 :],  # packets lost mid-stream
        "injected_web.mp4": web[:middle_web] + _garbage(3000) + web[middle_web:],  # later samples shifted
        "overwritten.mp4": mp4[:middle_mp4] + _garbage(3000) + mp4[middle_mp4 + 3000 :],
    }
    paths = {}
    for name, data in variants.items():
        paths[name] = video_dir / f"damaged_{name}"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("backend", VIDEO_BACKENDS.names())
@pytest.mark.parametrize("case", ["cut.ts", "cut_web.mp4", "overwritten.ts", "injected_web.mp4", "overwritten.mp4"])
def test_damaged_files_give_exact_readable_frames_and_warn(backend, case, damaged):
    require_backend(backend)
    path = damaged[case]
    if backend == "decord" and case.endswith(".ts"):
        with pytest.raises(UnsupportedSourceError, match="MPEG-TS"):
            load_video(path, FRAMES, backend=backend)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = load_video(path, FRAMES, backend=backend)
    messages = [str(w.message) for w in caught if issubclass(w.category, TruncatedVideoWarning)]
    assert messages, f"{backend} read the damaged {case} without a warning"
    assert all(path.name in message for message in messages)
    assert any("frames" in message for message in messages)  # names what was lost
    assert 20 < len(clip) < FRAMES
    assert codes(clip.frames) == clip.indices.tolist()  # what is returned is exact


def test_the_warning_names_the_lost_frames(damaged):
    with pytest.warns(TruncatedVideoWarning, match=r"frames 4\d-89 are past the end of the readable data") as caught:
        load_video(damaged["cut_web.mp4"], 8, backend="pyav")
    assert "cut_web.mp4" in str(caught[0].message)
    with pytest.warns(TruncatedVideoWarning, match=r"lost: frames \d+-\d+"):
        clip = load_video(damaged["cut.ts"], FRAMES, backend="pyav")
    # The frames after the lost ones keep their numbers (constant frame rate): the last is the last in the file.
    assert codes(clip.frames)[-1] == clip.indices[-1] == clip.total_frames - 1


@pytest.mark.parametrize("backend", VIDEO_BACKENDS.names())
def test_nothing_readable_raises(backend, video_dir):
    require_backend(backend)
    data = bytearray(write_index_coded_video(video_dir / "zeroed_src.mp4", 30, gop=10, faststart=True).read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = bytes(len(data) - start)  # the index intact, every frame's data zeroed
    path = video_dir / f"zeroed_{backend}.mp4"
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(VideoError, match=path.name):
            load_video(path, 8, backend=backend)


def test_decord_is_exact_on_many_keyframe_groups(video_dir):
    """decord's own get_batch can return an earlier frame under the wanted number (its frame skipping gives up
    after 10,000 empty polls of its decoding thread); the reader only seeks to keyframes and walks forwards."""
    require_backend("decord")
    path = write_index_coded_video(video_dir / "decord_groups.mp4", 600, gop=30, height=80, width=64)
    picks = np.sort(np.random.default_rng(0).choice(600, 48, replace=False))
    with open_reader(resolve_source(path), "decord") as reader:
        for _ in range(2):  # again from wherever the first pass left the decoder
            decoded = reader.read(picks)
            assert codes(decoded.frames) == picks.tolist()

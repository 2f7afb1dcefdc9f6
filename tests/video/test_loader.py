import numpy as np
import pytest
import torch

import divprune_video
from divprune_video.testing import (
    index_coded_frames,
    read_frame_index,
    write_index_coded_folder,
    write_index_coded_video,
)
from divprune_video.video import (
    CorruptVideoError,
    NoFramesError,
    NotAVideoError,
    TimeRangeError,
    TruncatedVideoWarning,
    UnsupportedSourceError,
    VideoClip,
    VideoError,
    load_video,
    resolve_source,
)

from .conftest import CODED_FRAMES


def codes(clip: VideoClip) -> list[int]:
    return [read_frame_index(frame) for frame in clip.frames]


def test_top_level_exports_are_the_video_package():
    assert divprune_video.load_video is load_video
    for name in ("VideoError", "VideoClip", "Frame", "stream_frames", "select_keyframes"):
        assert getattr(divprune_video, name) is getattr(divprune_video.video, name)


def test_default_is_32_uniform_frames_with_metadata(coded_mp4):
    clip = load_video(coded_mp4)
    assert clip.frames.shape == (32, 160, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.indices.tolist() == np.linspace(0, CODED_FRAMES - 1, 32, dtype=int).tolist() == codes(clip)
    np.testing.assert_allclose(clip.timestamps, clip.indices / 30.0, atol=1e-3)
    assert clip.fps == pytest.approx(30.0) and clip.duration == pytest.approx(5.0, abs=0.05)
    assert clip.source == str(coded_mp4) and len(clip) == 32


def test_sampling_rules_window_and_rate(coded_mp4):
    llava = load_video(coded_mp4, 8, sampling="llava_next_video")
    assert llava.indices.tolist() == np.arange(0, CODED_FRAMES, CODED_FRAMES / 8).astype(int).tolist() == codes(llava)
    window = load_video(coded_mp4, 5, start=1.0, end=2.0)
    assert window.indices.tolist() == (30 + np.linspace(0, 30, 5, dtype=int)).tolist() == codes(window)
    rate = load_video(coded_mp4, fps=2.0, start=1.0)
    assert rate.indices.tolist() == list(range(30, CODED_FRAMES, 15)) == codes(rate)
    assert len(load_video(coded_mp4, 500)) == CODED_FRAMES  # lmms-eval caps at the frame count


def test_bad_arguments_raise_value_errors(coded_mp4):
    for kwargs, match in [
        ({"num_frames": 4, "fps": 1.0}, "one of num_frames"),
        ({"num_frames": 0}, "num_frames"),
        ({"fps": -1.0}, "fps"),
        ({"sampling": "middle"}, "sampling"),
        ({"candidates": 10}, "candidates needs keyframes"),
        ({"keyframes": 8, "candidates": 4}, "at least as many"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_video(coded_mp4, **kwargs)
    with pytest.raises(TimeRangeError, match="coded.mp4") as info:
        load_video(coded_mp4, 4, start=6.0)
    assert isinstance(info.value, ValueError)
    with pytest.raises(TimeRangeError, match="after the video's end"):
        load_video(coded_mp4, 4, start=1.0, end=9.0)


def test_in_memory_frames_tensors_pil_and_folders(tmp_path):
    frames = index_coded_frames(40, 40, 32)
    for source in (frames, torch.from_numpy(frames), list(frames)):
        clip = load_video(source, 5)
        assert clip.backend == "frames" and clip.indices.tolist() == [0, 9, 19, 29, 39] == codes(clip)
    from PIL import Image

    assert codes(load_video([Image.fromarray(f) for f in frames[:3]], 3)) == [0, 1, 2]
    folder = write_index_coded_folder(tmp_path / "frames", 12, height=40, width=32)
    clip = load_video(folder, 4)
    assert clip.indices.tolist() == [0, 3, 7, 11] == codes(clip)  # natural order: 1.png, 2.png, ... 12.png
    clip = load_video(resolve_source(folder, fps=3.0), fps=1.0)
    assert clip.indices.tolist() == [0, 3, 6, 9] and clip.fps == 3.0


def test_keyframes_from_candidates_in_time_order(coded_mp4):
    clip = load_video(coded_mp4, keyframes=4, candidates=16)
    assert len(clip) == 4 and np.all(np.diff(clip.indices) > 0)
    candidates = np.linspace(0, CODED_FRAMES - 1, 16, dtype=int)
    assert set(clip.indices.tolist()) <= set(candidates.tolist())
    assert codes(clip) == clip.indices.tolist()


def test_missing_empty_text_and_audio_files(tmp_path):
    pytest.importorskip("av")  # the probe that tells a video from other files is PyAV's
    with pytest.raises(VideoError, match="missing.mp4"):
        load_video(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    with pytest.raises(NotAVideoError, match="notes.mp4"):
        load_video(text)
    import av

    audio = tmp_path / "tone.wav"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(NotAVideoError, match="no video stream"):
        load_video(audio)
    with pytest.raises(UnsupportedSourceError, match="stream_frames"):
        load_video("rtsp://127.0.0.1:9/live")


def test_zero_frame_files(tmp_path, coded_ts):
    import av

    empty = tmp_path / "zero.mp4"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 80, "yuv420p"
        container.start_encoding()
    with pytest.raises(NoFramesError, match="zero.mp4"):
        load_video(empty)
    header_only = tmp_path / "header.ts"
    header_only.write_bytes(coded_ts.read_bytes()[: 188 * 2])
    with pytest.raises(NoFramesError, match="header.ts"):
        load_video(header_only)


def test_truncated_files_give_the_readable_frames_with_a_warning(tmp_path, video_dir):
    data = write_index_coded_video(video_dir / "cut_source.mp4", 90, gop=10).read_bytes()
    cut_mp4 = tmp_path / "cut.mp4"  # the index (moov) is at the end: a cut file has none
    cut_mp4.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptVideoError, match="truncated or damaged"):
        load_video(cut_mp4)
    data = write_index_coded_video(video_dir / "web.mp4", 90, gop=10, faststart=True).read_bytes()
    cut_web = tmp_path / "cut_web.mp4"  # the index first: it declares 90 frames, the data holds fewer
    cut_web.write_bytes(data[: len(data) // 2])
    with pytest.warns(TruncatedVideoWarning, match="cut_web.mp4"):
        clip = load_video(cut_web, 90)
    assert 20 < len(clip) < 90 and codes(clip) == clip.indices.tolist()
    ts = write_index_coded_video(video_dir / "cut_source.ts", 90, gop=10).read_bytes()
    cut_ts = tmp_path / "cut.ts"  # MPEG-TS declares no length: a cut file is a shorter video
    cut_ts.write_bytes(ts[: len(ts) // 2])
    clip = load_video(cut_ts, 90)
    # Frames are numbered as they are in the cut file: the same as the encoder's up to the cut, where B-frames
    # whose packets were lost leave gaps.
    assert 20 < len(clip) < 60 and codes(clip)[:30] == list(range(30)) and np.all(np.diff(codes(clip)) > 0)
    damaged = bytearray(ts)
    damaged[188 * 4 :] = bytes(len(damaged) - 188 * 4)  # everything after the stream headers zeroed
    with pytest.raises(VideoError, match="bytes"):
        load_video(bytes(damaged))


def test_clip_helpers(coded_mp4):
    clip = load_video(coded_mp4, 4)
    images = clip.to_pil()
    assert len(images) == 4 and images[0].size == (128, 160)
    subset = clip.take([3, 0])
    assert subset.indices.tolist() == [clip.indices[3], clip.indices[0]] and codes(subset) == subset.indices.tolist()
    assert "coded.mp4" in repr(clip)
    with pytest.raises(ValueError, match="differ in length"):
        VideoClip(np.zeros((2, 4, 4, 3), np.uint8), np.arange(3), np.arange(2.0), 1.0, 2.0, "x")

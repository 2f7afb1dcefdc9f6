"""Frame exactness on every installed backend: frames[t] must be the source's frame indices[t]."""

import io

import numpy as np
import pytest

from divprune_video.testing import marker_colours, read_frame_index, write_index_coded_video
from divprune_video.video import VIDEO_BACKENDS, load_video, resolve_source
from divprune_video.video.backends import available_backends, choose_backend, open_reader
from divprune_video.video.backends.pyav import PyAVReader
from divprune_video.video.errors import BackendUnavailableError, UnsupportedSourceError

from .conftest import CODED_FRAMES, require_backend

# Unsorted, repeated, first, last, neighbours, across keyframes (every 12) and B-frames.
PICKS = [149, 0, 13, 12, 11, 77, 77, 1, 100, 24, 148, 50]


def codes(frames: np.ndarray) -> list[int]:
    return [read_frame_index(frame) for frame in frames]


@pytest.mark.parametrize("backend", VIDEO_BACKENDS.names())
def test_random_access_is_frame_exact(backend, coded_mp4):
    require_backend(backend)
    with open_reader(resolve_source(coded_mp4), backend) as reader:
        assert reader.info.num_frames == CODED_FRAMES
        decoded = reader.read(PICKS)
    assert decoded.indices.tolist() == PICKS
    assert codes(decoded.frames) == PICKS
    np.testing.assert_allclose(decoded.timestamps, np.array(PICKS) / 30.0, atol=1e-3)


@pytest.mark.parametrize("backend", VIDEO_BACKENDS.names())
def test_uniform_clip_is_frame_exact_and_rgb(backend, coded_mp4):
    require_backend(backend)
    clip = load_video(coded_mp4, 16, backend=backend)
    assert clip.backend == backend and clip.total_frames == CODED_FRAMES
    assert clip.indices.tolist() == np.linspace(0, CODED_FRAMES - 1, 16, dtype=int).tolist()
    assert codes(clip.frames) == clip.indices.tolist()
    markers = marker_colours(clip.frames[0])
    np.testing.assert_allclose(markers, [[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0]], atol=40)


def test_backends_return_the_same_frames(coded_mp4):
    installed = available_backends()
    clips = {name: load_video(coded_mp4, 12, backend=name) for name in installed}
    reference = clips["pyav"]
    for name, clip in clips.items():
        np.testing.assert_array_equal(clip.indices, reference.indices)
        difference = np.abs(clip.frames.astype(np.int16) - reference.frames).mean()
        assert difference < 2.0, f"{name} differs from pyav by {difference:.2f} grey levels on average"


@pytest.mark.parametrize("backend", ["pyav", "decord", "torchcodec"])
def test_variable_frame_rate_numbering_and_timestamps(backend, video_dir):
    require_backend(backend)
    gaps = np.random.default_rng(1).choice([0.02, 0.033, 0.05, 0.1], size=59)
    stamps = np.concatenate([[0.0], np.cumsum(gaps)])
    path = write_index_coded_video(video_dir / f"vfr_{backend}.mp4", 60, timestamps=stamps, gop=10)
    clip = load_video(path, fps=4, backend=backend)
    assert codes(clip.frames) == clip.indices.tolist()
    expected = np.unique(np.searchsorted(stamps, np.arange(0, stamps[-1] + 0.03, 0.25) + 1e-6, side="right") - 1)
    if backend == "pyav":  # exact timestamps from the packet scan
        np.testing.assert_array_equal(clip.indices, expected)
        np.testing.assert_allclose(clip.timestamps, stamps[clip.indices], atol=2e-3)


@pytest.mark.parametrize("suffix", [".ts", ".mkv", ".avi", ".h264"])  # .h264: no timestamps, no seeking
def test_other_containers_are_frame_exact(suffix, video_dir):
    codec = "mpeg4" if suffix == ".avi" else "libx264"
    path = write_index_coded_video(video_dir / f"coded{suffix}", 60, codec=codec, bframes=0 if codec == "mpeg4" else 2)
    clip = load_video(path, 7, backend="pyav")
    assert clip.total_frames == 60
    assert codes(clip.frames) == clip.indices.tolist() == np.linspace(0, 59, 7, dtype=int).tolist()


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])  # MPEG-TS seeks land a GOP late: corrected, not re-decoded
def test_seeking_decodes_a_fraction_of_a_long_file(suffix, video_dir):
    path = write_index_coded_video(video_dir / f"long{suffix}", 900, height=40, width=32, gop=30)
    with PyAVReader(resolve_source(path), threads=1) as reader:
        decoded = reader.read([5, 450, 890])
        assert codes(decoded.frames) == [5, 450, 890]
        # Three groups of at most one GOP each (B-frames that nothing references are skipped).
        assert reader.frames_decoded <= 3 * 30
    with PyAVReader(resolve_source(path), threads=2) as reader:  # the threaded path picks the same frames
        picks = np.linspace(0, 899, 9, dtype=int)
        assert codes(reader.read(picks).frames) == picks.tolist()


def test_sequential_iteration_counts_every_frame(coded_ts):
    with open_reader(resolve_source(coded_ts), "pyav") as reader:
        seen = [(index, read_frame_index(image)) for index, _, image in reader.iter_frames()]
    assert [index for index, _ in seen] == list(range(CODED_FRAMES))
    assert all(index == code for index, code in seen)


@pytest.mark.parametrize("backend", ["pyav", "decord", "torchcodec"])
def test_bytes_and_file_objects(backend, coded_mp4):
    require_backend(backend)
    data = coded_mp4.read_bytes()
    for source in (data, io.BytesIO(data)):
        clip = load_video(source, 5, backend=backend)
        assert codes(clip.frames) == clip.indices.tolist() == [0, 37, 74, 111, 149]


def test_rotation_metadata_is_applied(video_dir):
    path = write_index_coded_video(video_dir / "rotated.mp4", 24, rotation=90)
    clip = load_video(path, 3, backend="pyav")
    assert clip.frames.shape[1:] == (128, 160, 3)  # shown turned: height and width swap
    upright = np.rot90(clip.frames, k=1, axes=(1, 2))  # undo the clockwise display turn
    assert codes(upright) == clip.indices.tolist()
    np.testing.assert_allclose(marker_colours(upright[0])[0], [255, 0, 0], atol=40)


def test_ten_bit_and_odd_sizes(video_dir):
    ten_bit = write_index_coded_video(video_dir / "10bit.mkv", 30, pix_fmt="yuv420p10le")
    clip = load_video(ten_bit, 4)
    assert clip.frames.dtype == np.uint8 and codes(clip.frames) == clip.indices.tolist()
    odd = write_index_coded_video(video_dir / "odd.mp4", 30, height=81, width=63, pix_fmt="yuv444p")
    clip = load_video(odd, 4)
    assert clip.frames.shape == (4, 81, 63, 3) and codes(clip.frames) == clip.indices.tolist()


def test_auto_choice_and_unavailable_backends(coded_mp4, monkeypatch):
    assert choose_backend(resolve_source(coded_mp4)) in available_backends()
    with pytest.raises(UnsupportedSourceError, match="cannot read a url"):
        choose_backend(resolve_source("http://127.0.0.1:9/v.mp4"), "decord")
    with pytest.raises(ValueError, match="backend must be one of"):
        choose_backend(resolve_source(coded_mp4), "ffmpeg-cli")
    from divprune_video.video.backends import _loading

    def fail(name):
        raise ImportError("simulated")

    monkeypatch.setattr(_loading.importlib, "import_module", fail)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'divprune-video\[video-all\]'"):
        _loading.load_backend("opencv")


def test_torchcodec_loads_or_skips_cleanly(coded_mp4):
    require_backend("torchcodec")
    clip = load_video(coded_mp4, 6, backend="torchcodec")
    assert codes(clip.frames) == clip.indices.tolist()


def test_a_torchcodec_that_cannot_load_says_why(monkeypatch):
    from divprune_video.video.backends import _loading

    def fail(name):  # what torchcodec 0.17.0 from PyPI raises next to a CPU-only torch 2.13
        try:
            raise OSError("libnvrtc.so.13: cannot open shared object file: No such file or directory")
        except OSError as cause:
            raise OSError("Could not load this library: .../libtorchcodec_core7.so") from cause

    monkeypatch.setattr(_loading.importlib, "import_module", fail)
    with pytest.raises(BackendUnavailableError, match=r"libnvrtc\.so\.13.*CUDA build of torch.*backend='pyav'"):
        _loading.load_backend("torchcodec")

import io

import numpy as np
import pytest
import torch

from divprune_video.testing import index_coded_frames
from divprune_video.video import (
    EmptyVideoError,
    NotAVideoError,
    UnsupportedSourceError,
    VideoError,
    VideoNotFoundError,
    resolve_source,
)
from divprune_video.video.sources import as_frame_array, list_frame_images, redact_url


def test_paths_urls_bytes_and_file_objects(coded_mp4):
    assert resolve_source(coded_mp4).kind == "path"
    assert resolve_source(str(coded_mp4)).kind == "path"
    assert resolve_source(f"file://{coded_mp4}").kind == "path"
    assert resolve_source("https://example.invalid/v.mp4").kind == "url"
    rtsp = resolve_source("rtsp://user:secret@127.0.0.1:8554/cam")
    assert rtsp.kind == "url" and rtsp.is_live and "secret" not in rtsp.name
    data = coded_mp4.read_bytes()
    assert resolve_source(data).kind == "bytes"
    assert resolve_source(bytearray(data)).kind == "bytes"
    assert resolve_source(io.BytesIO(data)).kind == "fileobj"
    assert resolve_source(0).kind == "webcam" and resolve_source(0).is_live


def test_missing_empty_and_unsupported_sources_name_the_source(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoNotFoundError, match="nope.mp4") as info:
        resolve_source(missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, VideoError)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyVideoError, match="empty.mp4"):
        resolve_source(empty)
    with pytest.raises(EmptyVideoError):
        resolve_source(b"")
    with pytest.raises(UnsupportedSourceError, match="ftp://"):
        resolve_source("ftp://127.0.0.1/v.mp4")
    with pytest.raises(VideoNotFoundError, match="/dev/video97"):
        resolve_source("/dev/video97")
    (tmp_path / "frames").mkdir()
    with pytest.raises(EmptyVideoError, match="no frame images"):
        resolve_source(tmp_path / "frames")
    image = tmp_path / "still.png"
    image.write_bytes(b"\x89PNG not really")
    with pytest.raises(NotAVideoError, match="single image"):
        resolve_source(image)
    with pytest.raises(TypeError, match="source"):
        resolve_source(3.5)


def test_frame_folders_sort_naturally(tmp_path):
    for name in ["10.jpg", "2.jpg", "1.jpg", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_frame_images(tmp_path)] == ["1.jpg", "2.jpg", "10.jpg"]
    assert resolve_source(tmp_path).kind == "folder"


def test_in_memory_frames_are_checked_and_converted():
    frames = index_coded_frames(3, 40, 32)
    assert resolve_source(frames).kind == "frames"
    np.testing.assert_array_equal(as_frame_array(torch.from_numpy(frames)), frames)
    from PIL import Image

    np.testing.assert_array_equal(as_frame_array([Image.fromarray(f) for f in frames]), frames)
    with pytest.raises(ValueError, match="channels first"):
        as_frame_array(torch.from_numpy(frames).permute(0, 3, 1, 2))
    with pytest.raises(TypeError, match="uint8"):
        as_frame_array(frames.astype(np.float32))
    with pytest.raises(ValueError, match="one size"):
        as_frame_array([frames[0], frames[0, :20]])


def test_redact_url_keeps_host_and_path():
    assert redact_url("rtsp://admin:pw@127.0.0.1:554/stream1") == "rtsp://127.0.0.1:554/stream1"
    assert redact_url("http://127.0.0.1/v.mp4") == "http://127.0.0.1/v.mp4"

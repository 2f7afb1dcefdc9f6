"""Data that is no real video raises NotAVideoError naming the source, on every backend: text files (FFmpeg's tty
demuxer draws them as a 25 fps "video"), cover art of an audio file, single still images. Frame folders refuse
images over the pixel limit before decoding them."""

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from divprune_video.testing import write_index_coded_folder
from divprune_video.video import (
    VIDEO_BACKENDS,
    NotAVideoError,
    VideoError,
    VideoTooLargeError,
    load_video,
    resolve_source,
)
from divprune_video.video.backends import frames as frame_backend
from divprune_video.video.backends import open_reader
from divprune_video.video.backends.frames import FolderReader

from .conftest import require_backend


def text_files(folder):
    """name -> path of text that FFmpeg's tty demuxer accepts: its extensions, plain text and ANSI art."""
    notes = "Meeting notes\nbring the camera\n" * 30
    ansi = "\x1b[1;31mRED\x1b[0m \x1b[32mgreen\x1b[0m art\n" * 30
    files = {"notes.txt": notes, "readme.nfo": notes, "art.ans": ansi, "code.asc": notes}
    for name, text in files.items():
        (folder / name).write_text(text)
    return {name: folder / name for name in files}


def cover_art_mp3(path):
    """An MP3 (one second of silence) with a JPEG cover: FFmpeg shows the cover as a one-frame video stream."""
    import av

    jpeg = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(jpeg, "JPEG")
    with av.open(str(path), "w", format="mp3") as container:
        audio = container.add_stream("mp3", rate=8000)
        cover = container.add_stream("mjpeg")
        cover.width = cover.height = 32
        cover.pix_fmt = "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(jpeg.getvalue())
        packet.stream, packet.pts, packet.dts = cover, 0, 0
        container.mux(packet)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        silence.sample_rate, silence.pts = 8000, 0
        container.mux(audio.encode(silence))
        container.mux(audio.encode(None))
    return path


@pytest.mark.parametrize("backend", VIDEO_BACKENDS.names())
@pytest.mark.parametrize("name", ["notes.txt", "readme.nfo", "art.ans", "code.asc"])
def test_text_files_are_not_videos_on_any_backend(backend, name, tmp_path):
    pytest.importorskip("av")  # the probe that tells a video from other files is PyAV's
    require_backend(backend)
    path = text_files(tmp_path)[name]
    with pytest.raises(NotAVideoError, match=name) as info:
        load_video(path, 4, backend=backend)
    assert "text" in str(info.value) or "cannot open" in str(info.value)
    with pytest.raises(NotAVideoError, match="text"):
        load_video(path, 4)  # the automatic choice


@pytest.mark.parametrize("backend", VIDEO_BACKENDS.names())
def test_cover_art_of_an_audio_file_is_not_a_video(backend, tmp_path):
    require_backend(backend)
    path = cover_art_mp3(tmp_path / "song.mp3")
    with pytest.raises(NotAVideoError, match=r"song\.mp3.*cover art"):
        load_video(path, 4, backend=backend)


@pytest.mark.parametrize("backend", VIDEO_BACKENDS.names())
@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "BMP", "TIFF", "WEBP"])
def test_a_still_image_under_a_video_name_is_not_a_video(backend, image_format, tmp_path):
    pytest.importorskip("av")  # the probe that tells a video from other files is PyAV's
    require_backend(backend)
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 16, 3), 90, np.uint8)).save(buffer, image_format)
    path = tmp_path / "clip.mp4"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(NotAVideoError, match=r"clip\.mp4.*image"):
        load_video(path, 4, backend=backend)
    if backend in ("pyav", "decord"):  # the backends that read bytes
        with pytest.raises(NotAVideoError, match="image"):
            load_video(buffer.getvalue(), 4, backend=backend)


def test_a_file_object_is_rewound_after_the_probe(coded_mp4):
    require_backend("decord")
    with open(coded_mp4, "rb") as handle:
        clip = load_video(handle, 4, backend="decord")
    assert clip.indices.tolist() == [0, 49, 99, 149]


def png_claiming(path, width, height):
    """A small PNG whose header claims ``width`` x ``height``: opening reads the claim, decoding would allocate it."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # and its checksum
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("size", [(12_000, 12_500), (40_000, 40_000)])  # 150 and 1,600 megapixels
@pytest.mark.parametrize("position", ["first", "later"])
def test_frame_folders_refuse_images_over_the_pixel_limit_before_decoding(tmp_path, monkeypatch, size, position):
    folder = write_index_coded_folder(tmp_path / "frames", 6, height=40, width=32)
    huge = png_claiming(folder / ("1.png" if position == "first" else "5.png"), *size)
    convert = Image.Image.convert

    def guarded_convert(image, *args, **kwargs):
        assert image.size[0] * image.size[1] <= frame_backend.MAX_IMAGE_PIXELS, "an image over the limit was decoded"
        return convert(image, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", guarded_convert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Pillow's own warning, above 89 MP
        with pytest.raises(VideoTooLargeError, match=huge.name) as info:
            load_video(folder, 6)
    assert isinstance(info.value, VideoError) and str(huge) in str(info.value)


def test_the_pixel_limit_can_be_changed(tmp_path, monkeypatch):
    folder = write_index_coded_folder(tmp_path / "frames", 4, height=40, width=32)
    source = resolve_source(folder)
    with pytest.raises(VideoTooLargeError, match=r"1\.png: a 32 x 40 image"):
        FolderReader(source, max_pixels=1000)
    assert FolderReader(source, max_pixels=1280).info.num_frames == 4
    monkeypatch.setattr(frame_backend, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(VideoTooLargeError, match="MAX_IMAGE_PIXELS"):
        load_video(folder, 2)
    with pytest.raises(VideoTooLargeError), open_reader(source):
        pass

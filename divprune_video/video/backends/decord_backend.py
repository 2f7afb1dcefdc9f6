"""decord / decord2 (``pip install decord2``; the original decord 0.6.0 was last released in 2021).

decord builds its own frame index when opening. Its ``get_batch`` (and ``reader[i]``) reach a frame by seeking to
the keyframe before it and then skipping frames in ``SkipFramesImpl``, which polls its decoding thread without
waiting and gives up after 10,000 empty polls ("Failed to skip frames effectively"); the frame read next is then
an earlier one, returned under the wanted number. Whether it gives up depends on how fast the decoding thread
keeps up, and polls only stop failing once the demuxer reaches the end of the file, so it happens on long files
(more than 10,000 packets after the frame) with frames that are slow to decode: wrong frames in some runs and not
others. This reader therefore never asks decord to skip: it seeks to keyframes only (``seek_accurate`` on a
keyframe does no skipping) and walks forwards with ``next()``, which waits for each frame.

decord also misnumbers MPEG-TS files: its seek to the first frame lands on the second keyframe, shifting every
frame number, so MPEG-TS sources are refused (use ``pyav``). ``backend="auto"`` never picks decord."""

from __future__ import annotations

import io
import math
from typing import Iterator

import numpy as np

from ..errors import NoFramesError, NotAVideoError, UnsupportedSourceError
from ..sources import VideoSource
from ._loading import load_backend
from .base import VideoInfo, VideoReader, default_threads

# Walk forwards instead of seeking when the next wanted frame is at most this many frames ahead (and after its
# keyframe, where a seek would land anyway).
_WALK_AHEAD = 16
_TS_PACKET = 188


def is_mpeg_ts(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts an MPEG transport stream: sync bytes every 188 bytes."""
    return len(head) >= 3 * _TS_PACKET and all(head[i * _TS_PACKET] == 0x47 for i in range(3))


def _head(source: VideoSource) -> bytes:
    if source.kind == "path":
        with open(source.value, "rb") as handle:
            return handle.read(3 * _TS_PACKET)
    if source.kind == "bytes":
        return bytes(source.value[: 3 * _TS_PACKET])
    if source.kind == "fileobj" and getattr(source.value, "seekable", lambda: False)():
        source.value.seek(0)
        head = source.value.read(3 * _TS_PACKET)
        source.value.seek(0)
        return head
    return b""


class DecordReader(VideoReader):
    """Random access with decord. Reads paths, bytes and file objects (not MPEG-TS)."""

    name = "decord"

    def __init__(self, source: VideoSource, *, threads: int | None = None, **_: object) -> None:
        super().__init__(source)
        decord = load_backend("decord")
        self._error = decord.DECORDError
        if source.kind == "path":
            target: object = str(source.value)
        elif source.kind == "bytes":
            target = io.BytesIO(source.value)
        elif source.kind == "fileobj":
            target = source.value
        else:
            raise UnsupportedSourceError(source.name, f"the decord backend cannot read a {source.kind} source")
        if is_mpeg_ts(_head(source)):
            raise UnsupportedSourceError(
                source.name,
                "decord misnumbers MPEG-TS files (its seek to the first frame "
                "lands on the second keyframe); use backend='pyav'",
            )
        try:
            self._reader = decord.VideoReader(target, ctx=decord.cpu(0), num_threads=threads or default_threads())
        except (decord.DECORDError, RuntimeError) as error:  # RuntimeError: data no demuxer recognises
            raise NotAVideoError(source.name, f"decord cannot open it: {str(error).splitlines()[0]}") from error
        num_frames = len(self._reader)
        if num_frames == 0:
            raise NoFramesError(source.name, "the video stream holds no frame")
        stamps = np.asarray(self._reader.get_frame_timestamp(np.arange(num_frames)), dtype=np.float64)[:, 0]
        self._keyframes = np.unique(np.asarray(self._reader.get_key_indices() or [0], dtype=np.int64))
        fps = float(self._reader.get_avg_fps())
        fps = fps if math.isfinite(fps) and fps > 0 else 1.0  # NaN for a GIF of one frame
        self._reader.seek_accurate(0)
        first = self._reader.next().asnumpy()
        self._position = 1  # number of the frame the next ``next()`` returns
        height, width = first.shape[:2]
        duration = float(stamps[-1] - stamps[0]) + 1.0 / fps
        self.info = VideoInfo(num_frames, fps, duration, width, height, stamps - stamps[0], "decord")

    def _keyframe_before(self, index: int) -> int:
        return int(self._keyframes[max(np.searchsorted(self._keyframes, index, side="right") - 1, 0)])

    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        decoded: dict[int, np.ndarray] = {}
        for index in indices.tolist():
            key = self._keyframe_before(index)
            try:
                if not (self._position <= index and (self._position >= key or index - self._position <= _WALK_AHEAD)):
                    self._reader.seek_accurate(key)  # a keyframe: decord decodes it and skips nothing
                    self._position = key
                while self._position < index:
                    self._reader.next()
                    self._position += 1
                decoded[index] = self._reader.next().asnumpy()
                self._position += 1
            except self._error:  # damaged data: leave the frame out; the next one starts from a fresh seek
                self._position = self.info.num_frames
        return decoded

    def iter_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        self._reader.seek_accurate(0)
        self._position = 0
        for index in range(self.info.num_frames):
            try:
                image = self._reader.next().asnumpy()
            except self._error:
                return
            self._position = index + 1
            yield index, float(self.info.timestamps[index]), image

    def close(self) -> None:
        self._reader = None  # decord frees its decoder when the reader is collected

"""torchcodec (``pip install torchcodec``; needs FFmpeg's shared libraries from the system, e.g. Debian's
``ffmpeg`` package, and a wheel built for the installed torch).

Uses ``seek_mode="exact"`` (torchcodec scans the file once, like the PyAV backend) and ``get_frames_at``.
Timestamps before decoding are ``begin + i / average_fps``; the returned frames carry their exact ones."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import NoFramesError, NotAVideoError, UnsupportedSourceError
from ..sources import VideoSource
from ._loading import load_backend
from .base import VideoInfo, VideoReader, default_threads, timestamps_from_rate


class TorchCodecReader(VideoReader):
    """Random access with torchcodec. Reads paths, URLs, bytes and file objects."""

    name = "torchcodec"

    def __init__(self, source: VideoSource, *, threads: int | None = None, **_: object) -> None:
        super().__init__(source)
        decoders = load_backend("torchcodec")
        if source.kind in ("path", "url"):
            target: object = str(source.value)
        elif source.kind == "bytes":
            target = source.value
        elif source.kind == "fileobj":
            target = source.value
        else:
            raise UnsupportedSourceError(source.name, f"the torchcodec backend cannot read a {source.kind} source")
        try:
            self._decoder = decoders.VideoDecoder(
                target, seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=threads or default_threads()
            )
        except (RuntimeError, ValueError) as error:
            raise NotAVideoError(source.name, f"torchcodec cannot open it: {error}") from error
        metadata = self._decoder.metadata
        num_frames = int(metadata.num_frames or 0)
        if num_frames == 0:
            raise NoFramesError(source.name, "the video stream holds no frame")
        fps = float(metadata.average_fps or 1.0)
        self.info = VideoInfo(
            num_frames,
            fps,
            float(metadata.duration_seconds or num_frames / fps),
            int(metadata.width),
            int(metadata.height),
            timestamps_from_rate(num_frames, fps),
            str(metadata.codec or "torchcodec"),
        )

    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        batch = self._decoder.get_frames_at(indices.tolist())
        frames = batch.data.numpy()
        begin = float(self._decoder.metadata.begin_stream_seconds or 0.0)
        for i, stamp in zip(indices, batch.pts_seconds.tolist()):
            self.info.timestamps[int(i)] = stamp - begin
        return {int(i): np.ascontiguousarray(frame) for i, frame in zip(indices, frames)}

    def iter_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        for begin in range(0, self.info.num_frames, 32):
            indices = np.arange(begin, min(begin + 32, self.info.num_frames))
            decoded = self._decode(indices)
            for i in indices:
                yield int(i), float(self.info.timestamps[i]), decoded[int(i)]

    def close(self) -> None:
        self._decoder = None

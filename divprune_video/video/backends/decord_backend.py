"""decord / decord2 (``pip install decord2``; the original decord 0.6.0 was last released in 2021).

decord builds its own frame index when opening and reads batches with ``get_batch``. Numbering follows
presentation order like the other backends on the tests' index-coded videos with B-frames, but on the 10-minute
720p file of ``bench-video`` decord2 3.4.0 returned wrong frames in some runs and not in others (it logs "Failed to
skip frames effectively"), so ``backend="auto"`` never picks it: ask for it by name."""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np

from ..errors import CorruptVideoError, NoFramesError, NotAVideoError, UnsupportedSourceError
from ..sources import VideoSource
from ._loading import load_backend
from .base import VideoInfo, VideoReader, default_threads


class DecordReader(VideoReader):
    """Random access with decord. Reads paths, bytes and file objects."""

    name = "decord"

    def __init__(self, source: VideoSource, *, threads: int | None = None, **_: object) -> None:
        super().__init__(source)
        decord = load_backend("decord")
        if source.kind == "path":
            target: object = str(source.value)
        elif source.kind == "bytes":
            target = io.BytesIO(source.value)
        elif source.kind == "fileobj":
            target = source.value
        else:
            raise UnsupportedSourceError(source.name, f"the decord backend cannot read a {source.kind} source")
        try:
            self._reader = decord.VideoReader(target, ctx=decord.cpu(0), num_threads=threads or default_threads())
        except decord.DECORDError as error:
            raise NotAVideoError(source.name, f"decord cannot open it: {str(error).splitlines()[0]}") from error
        num_frames = len(self._reader)
        if num_frames == 0:
            raise NoFramesError(source.name, "the video stream holds no frame")
        stamps = np.asarray(self._reader.get_frame_timestamp(np.arange(num_frames)), dtype=np.float64)[:, 0]
        fps = float(self._reader.get_avg_fps()) or 1.0
        first = self._reader[0].asnumpy()
        height, width = first.shape[:2]
        duration = float(stamps[-1] - stamps[0]) + 1.0 / fps
        self.info = VideoInfo(num_frames, fps, duration, width, height, stamps - stamps[0], "decord")

    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        decord = load_backend("decord")
        try:
            batch = self._reader.get_batch(indices.tolist()).asnumpy()
            return {int(i): frame for i, frame in zip(indices, batch)}
        except decord.DECORDError:
            decoded = {}
            for i in indices:  # decode what is readable, one by one
                try:
                    decoded[int(i)] = self._reader[int(i)].asnumpy()
                except decord.DECORDError:
                    continue
            if not decoded:
                raise CorruptVideoError(self.source.name, "decord could not decode the requested frames") from None
            return decoded

    def iter_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        self._reader.seek(0)
        for index in range(self.info.num_frames):
            yield index, float(self.info.timestamps[index]), self._reader.next().asnumpy()

    def close(self) -> None:
        self._reader = None  # decord frees its decoder when the reader is collected

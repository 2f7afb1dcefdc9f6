"""Readers for sources that are already frames: in-memory arrays and folders of frame images.

Neither carries timing, so frame ``i`` is at ``i / fps`` seconds with ``fps`` from the source
(:data:`~divprune_video.video.sources.DEFAULT_FRAMES_FPS` unless given). Folder images are read lazily (only the
sampled ones) in a thread pool, each checked against :data:`MAX_IMAGE_PIXELS` from its header before it is
decoded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np

from ..._optional import require
from ..errors import NotAVideoError, VideoTooLargeError
from ..sources import DEFAULT_FRAMES_FPS, VideoSource
from .base import VideoInfo, VideoReader, default_threads, timestamps_from_rate

#: The largest frame image a folder may hold, in pixels (100 megapixels: a 12,000 x 8,000 photo; a 4K frame has
#: 8.3). Larger images raise :class:`VideoTooLargeError` before they are decoded: a decompression bomb of a few
#: kilobytes can expand to gigabytes. Read when a folder is opened: assign a new value to change it for every
#: reader, or pass ``max_pixels`` to :class:`FolderReader`. (Pillow refuses images over twice its own
#: ``Image.MAX_IMAGE_PIXELS`` whatever this says.)
MAX_IMAGE_PIXELS = 100_000_000


def _info(num_frames: int, height: int, width: int, fps: float, codec: str) -> VideoInfo:
    return VideoInfo(num_frames, fps, num_frames / fps, width, height, timestamps_from_rate(num_frames, fps), codec)


class ArrayReader(VideoReader):
    """Frames already in memory: source.value is a (T, H, W, 3) uint8 array."""

    name = "frames"

    def __init__(self, source: VideoSource) -> None:
        super().__init__(source)
        frames = source.value
        fps = source.fps or DEFAULT_FRAMES_FPS
        self.info = _info(frames.shape[0], frames.shape[1], frames.shape[2], fps, "array")

    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        return {int(i): self.source.value[i] for i in indices}

    def iter_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        for index, frame in enumerate(self.source.value):
            yield index, float(self.info.timestamps[index]), frame


class FolderReader(VideoReader):
    """A folder of frame images (natural order: ``2.jpg`` before ``10.jpg``). Images are converted to RGB; an
    image of another size than the first is resized to it. ``max_pixels``: the largest image accepted (default
    :data:`MAX_IMAGE_PIXELS`); a larger one raises :class:`VideoTooLargeError` naming the file, undecoded."""

    name = "frames"

    def __init__(self, source: VideoSource, *, threads: int | None = None, max_pixels: int | None = None) -> None:
        super().__init__(source)
        self._image_module = require("PIL.Image", "video", "pillow")
        self._threads = threads or default_threads()
        self._max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
        first = self._load(source.images[0])
        if first is None:
            raise NotAVideoError(source.name, f"{source.images[0].name} is not a readable image")
        height, width = first.shape[:2]
        self.info = _info(len(source.images), height, width, source.fps or DEFAULT_FRAMES_FPS, "images")

    def _load(self, path) -> np.ndarray | None:
        Image = self._image_module
        try:
            with Image.open(path) as image:  # reads the header only
                self._check_size(path, image.size)
                image = image.convert("RGB")
                info = getattr(self, "info", None)
                if info is not None and image.size != (info.width, info.height):
                    image = image.resize((info.width, info.height), Image.Resampling.BILINEAR)
                return np.asarray(image)
        except Image.DecompressionBombError as error:  # over twice Pillow's own limit: refused in open()
            raise VideoTooLargeError(str(path), f"the image is too large to decode ({error})") from error
        except VideoTooLargeError:
            raise
        except (OSError, ValueError, SyntaxError):
            return None

    def _check_size(self, path, size: tuple[int, int]) -> None:
        width, height = size
        if width * height > self._max_pixels:
            raise VideoTooLargeError(
                str(path),
                f"a {width} x {height} image ({width * height / 1e6:.0f} megapixels) "
                f"is over the limit of {self._max_pixels / 1e6:g} megapixels per "
                "frame (frames.MAX_IMAGE_PIXELS; FolderReader(max_pixels=...))",
            )

    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        paths = [self.source.images[i] for i in indices]
        with ThreadPoolExecutor(max_workers=min(self._threads, len(paths))) as pool:
            images = list(pool.map(self._load, paths))
        return {int(i): image for i, image in zip(indices, images) if image is not None}

"""OpenCV (``pip install opencv-python-headless``): its FFmpeg capture, for files, URLs and webcams.

OpenCV seeks by frame number through a timestamp computed from the average frame rate, so random access is exact
for constant-frame-rate files only; variable-frame-rate files should use PyAV (the default). Nearby frames are
reached by grabbing forwards instead of seeking. OpenCV applies rotation metadata itself and returns BGR, which is
converted to RGB here."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..errors import NoFramesError, NotAVideoError, UnsupportedSourceError
from ..sources import VideoSource
from ._loading import load_backend
from .base import VideoInfo, VideoReader, timestamps_from_rate

# Grab forwards instead of seeking when the next wanted frame is at most this many frames ahead.
_GRAB_AHEAD = 48


def open_capture(source: VideoSource) -> Any:
    """A ``cv2.VideoCapture`` for a path, URL or webcam, or :class:`NotAVideoError`."""
    cv2 = load_backend("opencv")
    if source.kind == "webcam":
        capture = cv2.VideoCapture(source.value)
    elif source.kind in ("path", "url"):
        capture = cv2.VideoCapture(str(source.value), cv2.CAP_FFMPEG)
    else:
        raise UnsupportedSourceError(source.name, f"the opencv backend cannot read a {source.kind} source")
    if not capture.isOpened():
        raise NotAVideoError(source.name, "OpenCV cannot open it (not a video, or no such device)")
    return capture


def to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB copy of an OpenCV BGR image (cvtColor: ~30x faster than a reversed-stride numpy copy)."""
    cv2 = load_backend("opencv")
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


class OpenCVReader(VideoReader):
    """Random access with OpenCV (exact for constant-frame-rate files)."""

    name = "opencv"

    def __init__(self, source: VideoSource, **_: object) -> None:
        super().__init__(source)
        cv2 = load_backend("opencv")
        self._cv2 = cv2
        self._capture = open_capture(source)
        num_frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if num_frames <= 0:
            self._capture.release()
            raise NoFramesError(source.name, "OpenCV reports no frames (a stream without a frame count?)")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS)) or 1.0
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.info = VideoInfo(num_frames, fps, num_frames / fps, width, height, timestamps_from_rate(num_frames, fps),
                              "opencv")
        self._position = 0  # number of the frame the next read() returns

    def _number_read(self) -> int:
        """The number of the frame just read, from its timestamp (OpenCV's own count drifts when data is lost)."""
        return int(round(self._capture.get(self._cv2.CAP_PROP_POS_MSEC) * self.info.fps / 1000.0))

    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        cv2, capture = self._cv2, self._capture
        decoded = {}
        for index in indices:
            index = int(index)
            if not (self._position <= index <= self._position + _GRAB_AHEAD):
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                self._position = index
            while self._position < index and capture.grab():
                self._position += 1
            ok, image = capture.read()
            # Frames are checked by timestamp: after lost data (a cut or damaged file) OpenCV's seek may land
            # early, and its count of grabbed frames no longer matches the file's numbering.
            number = self._number_read() if ok else -1
            while ok and number < index and index - number <= _GRAB_AHEAD:
                ok, image = capture.read()
                number = self._number_read() if ok else -1
            if not ok or number != index:
                self._position = number + 1 if ok else -_GRAB_AHEAD - 1  # unknown: seek next time
                continue
            self._position = index + 1
            decoded[index] = to_rgb(image)
        return decoded

    def iter_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
        for index in range(self.info.num_frames):
            ok, image = self._capture.read()
            if not ok:
                return
            self._position = index + 1
            yield index, float(self.info.timestamps[index]), to_rgb(image)

    def close(self) -> None:
        self._capture.release()

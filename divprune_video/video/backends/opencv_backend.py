"""OpenCV (``pip install opencv-python-headless``): its FFmpeg capture, for files, URLs and webcams.

OpenCV seeks by frame number through a timestamp computed from the average frame rate, so random access is exact
for constant-frame-rate files only; variable-frame-rate files should use PyAV (the default). Nearby frames are
reached by grabbing forwards instead of seeking. OpenCV applies rotation metadata itself and returns BGR, which is
converted to RGB here."""

from __future__ import annotations

import time
from typing import Any, Iterator, Optional

import numpy as np

from ..errors import NoFramesError, NotAVideoError, UnsupportedSourceError, VideoTimeoutError
from ..sources import VideoSource
from ._loading import load_backend
from .base import VideoInfo, VideoReader, timestamps_from_rate

# Grab forwards instead of seeking when the next wanted frame is at most this many frames ahead.
_GRAB_AHEAD = 48
#: Seconds to wait on a URL when no timeout is given (as the PyAV backend).
DEFAULT_TIMEOUT = 10.0


def open_capture(source: VideoSource, *, timeout: Optional[float] = None) -> Any:
    """A ``cv2.VideoCapture`` for a path, URL or webcam, or :class:`NotAVideoError`. ``timeout``: seconds a URL
    may take to open and to deliver each read (OpenCV's own default otherwise: 30 s)."""
    cv2 = load_backend("opencv")
    if source.kind == "webcam":
        capture = cv2.VideoCapture(source.value)
    elif source.kind == "url" and timeout is not None:
        milliseconds = max(1, int(timeout * 1000))
        capture = cv2.VideoCapture(
            str(source.value),
            cv2.CAP_FFMPEG,
            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds, cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds],
        )
    elif source.kind in ("path", "url"):
        capture = cv2.VideoCapture(str(source.value), cv2.CAP_FFMPEG)
    else:
        raise UnsupportedSourceError(source.name, f"the opencv backend cannot read a {source.kind} source")
    if not capture.isOpened():
        raise NotAVideoError(source.name, "OpenCV cannot open it (not a video, or no such device)")
    return capture


def to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB copy of an OpenCV BGR image (cvtColor: much faster than a reversed-stride numpy copy, see
    notes/design-history.md#divprune_videovideobackendsopencv_backend)."""
    cv2 = load_backend("opencv")
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


class OpenCVReader(VideoReader):
    """Random access with OpenCV (exact for constant-frame-rate files). ``timeout``: seconds to wait on a URL
    (default 10): opening or a frame that fails after waiting that long raises :class:`VideoTimeoutError`."""

    name = "opencv"

    def __init__(self, source: VideoSource, *, timeout: float = DEFAULT_TIMEOUT, **_: object) -> None:
        super().__init__(source)
        cv2 = load_backend("opencv")
        self._cv2 = cv2
        self._timeout = timeout
        began = time.monotonic()
        self._capture = open_capture(source, timeout=timeout)
        try:
            self._check_stalled(began, "opening")  # OpenCV gives a half-read stream when opening times out
        except VideoTimeoutError:
            self._capture.release()
            raise
        num_frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if num_frames <= 0:
            self._capture.release()
            raise NoFramesError(source.name, "OpenCV reports no frames (a stream without a frame count?)")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS)) or 1.0
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.info = VideoInfo(
            num_frames, fps, num_frames / fps, width, height, timestamps_from_rate(num_frames, fps), "opencv"
        )
        self._position = 0  # number of the frame the next read() returns

    def _check_stalled(self, began: float, doing: str) -> None:
        """After a failure: raise :class:`VideoTimeoutError` when a URL took the whole timeout since ``began``
        (``time.monotonic()``), since OpenCV reports a server that stopped sending like lost data (and its seeks
        wait on regardless of the timeout)."""
        if self.source.is_network and time.monotonic() - began >= 0.9 * self._timeout:
            raise VideoTimeoutError(
                self.source.name, f"no data for {self._timeout:g} s while {doing}; nothing partial is returned"
            )

    def _number_read(self) -> int:
        """The number of the frame just read, from its timestamp (OpenCV's own count drifts when data is lost)."""
        return int(round(self._capture.get(self._cv2.CAP_PROP_POS_MSEC) * self.info.fps / 1000.0))

    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        cv2, capture = self._cv2, self._capture
        decoded = {}
        for index in indices:
            index, began = int(index), time.monotonic()
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
                self._check_stalled(began, "reading frames")
                self._position = number + 1 if ok else -_GRAB_AHEAD - 1  # unknown: seek next time
                continue
            self._position = index + 1
            decoded[index] = to_rgb(image)
        return decoded

    def iter_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
        for index in range(self.info.num_frames):
            began = time.monotonic()
            ok, image = self._capture.read()
            if not ok:
                self._check_stalled(began, "reading frames")
                return
            self._position = index + 1
            yield index, float(self.info.timestamps[index]), to_rgb(image)

    def close(self) -> None:
        self._capture.release()

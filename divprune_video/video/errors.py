"""The video package's exceptions. Every one is a :class:`VideoError` whose message names the source.

Where a standard exception fits too, the class also derives from it (a missing file is also a
``FileNotFoundError``, a time window outside the video also a ``ValueError``), so callers can catch either.
"""

from __future__ import annotations

from typing import Optional

from ..errors import DivPruneVideoError


class VideoError(DivPruneVideoError):
    """A video could not be opened, read or streamed. ``source`` is the printable name of what was asked for."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The file, folder or device does not exist."""


class EmptyVideoError(VideoError):
    """The file, bytes or folder is empty (0 bytes, no images)."""


class NotAVideoError(VideoError):
    """The data is not a container with a decodable video stream (a text file, audio only, an unknown codec)."""


class NoFramesError(VideoError):
    """The container opened but holds no decodable frame."""


class CorruptVideoError(VideoError):
    """Truncated or damaged data from which the requested frames cannot be decoded."""


class UnsupportedSourceError(VideoError, ValueError):
    """A URL scheme or source type that no backend reads (ftp://, an int for a non-webcam call ...)."""


class TimeRangeError(VideoError, ValueError):
    """``start`` / ``end`` lie outside the video or do not form a window."""


class StreamGoneError(VideoError, ConnectionError):
    """A stream failed and did not come back after the allowed number of reconnects."""

    def __init__(self, source: str, problem: str, *, attempts: int = 0, last_error: Optional[BaseException] = None):
        super().__init__(source, problem)
        self.attempts = attempts
        self.last_error = last_error


class VideoTimeoutError(VideoError, TimeoutError):
    """A bounded wait ran out (opening, reading or decoding took longer than the allowed time, e.g. a URL that
    stopped sending data mid-body): nothing partial is returned."""


class VideoTooLargeError(VideoError, ValueError):
    """A frame image, or the frames asked for, exceed a size limit (checked before decoding or allocating them);
    the message names the limit and how to raise it."""


class BackendUnavailableError(VideoError, ImportError):
    """The requested decoding backend is not installed or cannot load; the message says how to install it."""


__all__ = [
    "BackendUnavailableError",
    "CorruptVideoError",
    "EmptyVideoError",
    "NoFramesError",
    "NotAVideoError",
    "StreamGoneError",
    "TimeRangeError",
    "UnsupportedSourceError",
    "VideoError",
    "VideoNotFoundError",
    "VideoTimeoutError",
    "VideoTooLargeError",
]


class TruncatedVideoWarning(UserWarning):
    """Part of the video could not be read (truncated or damaged data); what was readable is returned, and the
    clip's ``lost_frames`` say which frames were lost."""


__all__ += ["TruncatedVideoWarning"]

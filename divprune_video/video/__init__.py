"""Video input: sources, decoding backends, sampling rules, background streaming, diverse keyframes.

Knows nothing about models: everything returns numpy uint8 RGB frames.

- :func:`load_video` -> :class:`VideoClip`: sampled frames of a file, URL, bytes, frame folder or in-memory frames.
- :func:`stream_frames` -> :class:`FrameStream` of :class:`Frame`: webcams, rtsp/http streams and files, decoded
  in a background thread with a bounded queue.
- :func:`select_keyframes`: the Max-Min diverse subset of frames (DivPrune's selector over frame features).
- :class:`VideoError` and its subclasses: every failure, naming the source.
"""

from .backends import (
    AUTO_ORDER,
    VIDEO_BACKENDS,
    BackendSpec,
    VideoInfo,
    VideoReader,
    available_backends,
    open_reader,
    register_backend,
)
from .clip import Frame, VideoClip
from .errors import (
    BackendUnavailableError,
    CorruptVideoError,
    EmptyVideoError,
    NoFramesError,
    NotAVideoError,
    StreamGoneError,
    TimeRangeError,
    TruncatedVideoWarning,
    UnsupportedSourceError,
    VideoError,
    VideoNotFoundError,
    VideoTimeoutError,
    VideoTooLargeError,
)
from .keyframes import FEATURES, histogram_features, select_keyframes, thumbnail_features
from .loader import load_video
from .sampling import SAMPLING_RULES, rate_indices, uniform_indices
from .sources import VideoSource, resolve_source
from .stream import FrameStream, stream_frames

__all__ = [
    "AUTO_ORDER",
    "VIDEO_BACKENDS",
    "BackendSpec",
    "register_backend",
    "BackendUnavailableError",
    "CorruptVideoError",
    "EmptyVideoError",
    "FEATURES",
    "Frame",
    "FrameStream",
    "NoFramesError",
    "NotAVideoError",
    "SAMPLING_RULES",
    "StreamGoneError",
    "TimeRangeError",
    "TruncatedVideoWarning",
    "UnsupportedSourceError",
    "VideoClip",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoReader",
    "VideoSource",
    "VideoTimeoutError",
    "VideoTooLargeError",
    "available_backends",
    "histogram_features",
    "load_video",
    "open_reader",
    "rate_indices",
    "resolve_source",
    "select_keyframes",
    "stream_frames",
    "thumbnail_features",
    "uniform_indices",
]

"""``load_video``: one call from a source to a :class:`VideoClip` of sampled frames."""

from __future__ import annotations

import logging
import time
from typing import Optional, Union

import numpy as np

from .backends import open_reader
from .clip import VideoClip
from .keyframes import FeatureFn, select_keyframes
from .sampling import SAMPLING_RULES, SamplingRule, plan_indices
from .sources import Source, resolve_source

logger = logging.getLogger("divprune_video.video")

DEFAULT_NUM_FRAMES = 32
#: Candidates per keyframe when ``keyframes`` is given without ``candidates``.
DEFAULT_CANDIDATES_PER_KEYFRAME = 8


def _check_count(name: str, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"{name} must be a positive int; got {value!r}")


def _check_arguments(num_frames, fps, keyframes, candidates, sampling) -> None:
    _check_count("num_frames", num_frames)
    _check_count("keyframes", keyframes)
    _check_count("candidates", candidates)
    if num_frames is not None and fps is not None:
        raise ValueError("pass one of num_frames (uniform) and fps (a frame every 1/fps seconds), not both")
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"fps must be a positive number; got {fps!r}")
    if sampling not in SAMPLING_RULES:
        raise ValueError(f"sampling must be one of {SAMPLING_RULES}; got {sampling!r}")
    if candidates is not None and keyframes is None:
        raise ValueError("candidates needs keyframes (the number of diverse frames to keep from them)")
    if keyframes is not None:
        if candidates is not None and (num_frames is not None or fps is not None):
            raise ValueError("with keyframes, give the candidates as candidates= or num_frames= / fps=, not both")
        pool = candidates or num_frames
        if pool is not None and pool < keyframes:
            raise ValueError(f"keyframes={keyframes} needs at least as many candidates; got {pool}")


def load_video(
    source: Source,
    num_frames: Optional[int] = None,
    *,
    fps: Optional[float] = None,
    start: Optional[float] = None,
    end: Optional[float] = None,
    backend: str = "auto",
    keyframes: Optional[int] = None,
    candidates: Optional[int] = None,
    keyframe_features: Union[str, FeatureFn] = "thumbnail",
    sampling: SamplingRule = "lmms_eval",
    threads: Optional[int] = None,
    timeout: Optional[float] = None,
) -> VideoClip:
    """Sample frames from a video.

    Args:
        source: a path or ``pathlib.Path``; an http(s) URL (rtsp and webcams are live: use
            :func:`stream_frames`); bytes or a binary file object; a folder of frame images; or frames in memory:
            a (T, H, W, 3) uint8 array or tensor, or a list of PIL images (a :class:`VideoSource` made with
            :func:`resolve_source` may set the frame rate of frames, which have none: 1 fps otherwise).
        num_frames: frames uniform over the [start, end] window by ``sampling``. Default 32 when neither this nor
            ``fps`` is given.
        fps: instead, one frame every ``1 / fps`` seconds of the window (each frame at most once).
        start, end: the window in seconds from the first frame (default: the whole video).
        backend: ``"auto"``, ``"pyav"``, ``"torchcodec"``, ``"decord"`` or ``"opencv"``.
        keyframes: keep this many mutually most different frames (:func:`select_keyframes`) out of
            ``candidates`` sampled ones (default ``num_frames``, else 8 x keyframes; or the ``fps`` ones).
        keyframe_features: features for the keyframe choice: ``"thumbnail"``, ``"histogram"`` or a callable.
        sampling: the uniform rule, ``"lmms_eval"`` (default) or ``"llava_next_video"``; see
            :mod:`divprune_video.video.sampling`.
        threads: decoding threads (default: the CPUs available). timeout: seconds to wait on a network source.

    Returns:
        A :class:`VideoClip`; ``frames[t]`` is the source's frame ``indices[t]``. Frames in time order.

    Raises:
        VideoError subclasses naming the source (missing, empty, not a video, no frames, corrupt, unsupported
        URL scheme, start/end outside the video); ``ValueError`` for bad arguments. Truncated files give the
        readable frames with a :class:`TruncatedVideoWarning`.
    """
    _check_arguments(num_frames, fps, keyframes, candidates, sampling)
    if num_frames is None and fps is None:
        if keyframes is not None:
            num_frames = candidates or DEFAULT_CANDIDATES_PER_KEYFRAME * keyframes
        else:
            num_frames = DEFAULT_NUM_FRAMES
    resolved = resolve_source(source)
    began = time.perf_counter()
    with open_reader(resolved, backend, threads=threads, timeout=timeout) as reader:
        info = reader.info
        indices = plan_indices(info.timestamps, info.duration, num_frames=num_frames, fps=fps, start=start,
                               end=end, rule=sampling, source=resolved.name)
        decoded = reader.read(indices)
        clip = VideoClip(decoded.frames, decoded.indices, decoded.timestamps, info.fps, info.duration,
                         resolved.name, info.num_frames, reader.name)
    logger.debug("%s: %d frames with %s in %.3f s", resolved.name, len(clip), clip.backend,
                 time.perf_counter() - began)
    if keyframes is not None and keyframes < len(clip):
        clip = clip.take(select_keyframes(clip.frames, keyframes, features=keyframe_features))
    return clip


__all__ = ["DEFAULT_NUM_FRAMES", "load_video"]


"""``load_video``: one call from a source to a :class:`VideoClip` of sampled frames."""

from __future__ import annotations

import logging
import math
import numbers
import time
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from .backends import VideoReader, open_reader
from .backends.base import frame_ranges, runs, stack_frames, warn_lost
from .clip import VideoClip
from .errors import CorruptVideoError, VideoTooLargeError
from .keyframes import FeatureFn, select_keyframes
from .sampling import SAMPLING_RULES, SamplingRule, Window, sample_window, time_window
from .sources import Source, resolve_source

logger = logging.getLogger("divprune_video.video")

DEFAULT_NUM_FRAMES = 32
#: Candidates per keyframe when ``keyframes`` is given without ``candidates``.
DEFAULT_CANDIDATES_PER_KEYFRAME = 8
#: The most frames ``num_frames``, ``candidates`` and ``keyframes`` may ask for (over 9 hours at 30 fps), checked
#: at once: larger counts are mistakes, and the llava_next_video rule would allocate an index per frame asked.
MAX_NUM_FRAMES = 1_000_000
#: The highest ``fps`` (frames sampled per second of video). A rate above the video's own gives every frame once;
#: the limit only bounds the times computed (duration x fps).
MAX_FPS = 1000.0
#: The most bytes of frames one call may decode, T x H x W x 3 from the source's metadata, checked before anything
#: is decoded or allocated (16 GiB: 2,700 frames of 1080p, 700 of 4K). Pass ``max_bytes`` to :func:`load_video`
#: to change it for one call, or assign a new value here.
MAX_CLIP_BYTES = 16 * 2**30
#: Times the sampling rule runs again after sampled frames fail to decode (each time without them, and avoiding
#: a band of 1, 2, 4 ... frames around them); after the last, the frames that did decode are returned.
RESAMPLING_ROUNDS = 8


def _check_count(name: str, value: Optional[int]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    if value > MAX_NUM_FRAMES:
        raise ValueError(f"{name}={value} is more than MAX_NUM_FRAMES={MAX_NUM_FRAMES:,} frames")


def _check_fps(fps: Optional[float]) -> None:
    if fps is None:
        return
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise ValueError(f"fps must be a finite number of frames per second in (0, {MAX_FPS:g}]; got {fps!r}")


def _check_arguments(num_frames, fps, keyframes, candidates, sampling, max_bytes) -> None:
    _check_count("num_frames", num_frames)
    _check_count("keyframes", keyframes)
    _check_count("candidates", candidates)
    _check_fps(fps)
    if num_frames is not None and fps is not None:
        raise ValueError("pass one of num_frames (uniform) and fps (a frame every 1/fps seconds), not both")
    if sampling not in SAMPLING_RULES:
        raise ValueError(f"sampling must be one of {SAMPLING_RULES}; got {sampling!r}")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise ValueError(f"max_bytes must be a positive int (bytes); got {max_bytes!r}")
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
    max_bytes: Optional[int] = None,
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
        threads: decoding threads (default: the CPUs available).
        timeout: seconds to wait for data from a network source, at each wait (default 10).
        max_bytes: the most bytes of frames to decode (T x H x W x 3, checked from the metadata before decoding;
            default :data:`MAX_CLIP_BYTES`, 16 GiB).

    Returns:
        A :class:`VideoClip`; ``frames[t]`` is the source's frame ``indices[t]``. Frames in time order.

    Truncated or damaged data: the sampling rule runs over the readable frames of the window only (frames found
    lost while indexing, and frames that fail to decode, are left out and the rule runs again), so the clip has
    as many frames as an intact video would while enough are readable. ``clip.lost_frames`` names the lost
    frames of the window and ``clip.partial`` is True; a :class:`TruncatedVideoWarning` says so too.

    Raises:
        VideoError subclasses naming the source: missing, empty, not a video (a text file, cover art, a still
        image: :class:`NotAVideoError`), no frames, nothing readable (:class:`CorruptVideoError`), unsupported
        URL scheme, start/end outside the video, a URL that stops sending data for ``timeout`` seconds
        (:class:`VideoTimeoutError`: no partial clip), frames over ``max_bytes`` (:class:`VideoTooLargeError`).
        ``ValueError`` for bad arguments: counts outside 1..:data:`MAX_NUM_FRAMES`, ``fps`` not finite or
        outside (0, :data:`MAX_FPS`], checked before the source is opened.
    """
    _check_arguments(num_frames, fps, keyframes, candidates, sampling, max_bytes)
    if num_frames is None and fps is None:
        if keyframes is not None:
            num_frames = candidates or DEFAULT_CANDIDATES_PER_KEYFRAME * keyframes
        else:
            num_frames = DEFAULT_NUM_FRAMES
    resolved = resolve_source(source)
    began = time.perf_counter()
    with open_reader(resolved, backend, threads=threads, timeout=timeout) as reader:
        info = reader.info
        window = time_window(info.timestamps, info.duration, start, end, source=resolved.name)
        rule = _SamplingRequest(num_frames, fps, sampling, MAX_CLIP_BYTES if max_bytes is None else max_bytes)
        frames, indices, lost = _read_sampled(reader, window, rule)
        clip = VideoClip(
            frames,
            indices,
            info.timestamps[indices].astype(np.float64),
            info.fps,
            info.duration,
            resolved.name,
            info.num_frames,
            reader.name,
            lost_frames=lost,
        )
    logger.debug("%s: %d frames with %s in %.3f s", resolved.name, len(clip), clip.backend, time.perf_counter() - began)
    if keyframes is not None and keyframes < len(clip):
        clip = clip.take(select_keyframes(clip.frames, keyframes, features=keyframe_features))
    return clip


@dataclass(frozen=True)
class _SamplingRequest:
    """What to sample: ``num_frames`` by ``rule`` or one every ``1 / fps`` s, at most ``max_bytes`` of frames."""

    num_frames: Optional[int]
    fps: Optional[float]
    rule: SamplingRule
    max_bytes: int

    def sample(self, reader: VideoReader, window: Window, readable: np.ndarray) -> np.ndarray:
        return sample_window(
            reader.info.timestamps, window, num_frames=self.num_frames, fps=self.fps, rule=self.rule, readable=readable
        )

    def check_size(self, reader: VideoReader, count: int) -> None:
        """Raise :class:`VideoTooLargeError` when ``count`` frames of the source's size exceed ``max_bytes``."""
        info = reader.info
        size = count * info.height * info.width * 3
        if size > self.max_bytes:
            raise VideoTooLargeError(
                reader.source.name,
                f"{count:,} frames of {info.width} x {info.height} would "
                f"take {size / 2**30:.1f} GiB, over the limit of {self.max_bytes / 2**30:.1f} "
                "GiB (MAX_CLIP_BYTES): ask for fewer frames (num_frames, fps, candidates) or "
                "pass max_bytes",
            )


def _read_sampled(
    reader: VideoReader, window: Window, request: _SamplingRequest
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, int], ...]]:
    """Decode the frames ``request`` samples among the readable frames of ``window``.

    Frames known to be lost (``info.lost_frames``) are left out of the sampling; frames that then fail to decode
    are left out too and the rule runs again (up to :data:`RESAMPLING_ROUNDS` times), so that a damaged video
    still gives the count asked for while it has enough readable frames. Returns (T, H, W, 3) frames, their (T,)
    frame numbers, and the lost frames of the window as ranges (see :attr:`VideoClip.lost_frames`). Raises
    :class:`CorruptVideoError` when no frame of the window could be decoded."""
    info, (first, stop, _, _) = reader.info, window
    lost = {i for start, end in info.lost_frames for i in range(max(start, first), min(end, stop))}
    readable, avoid = np.ones(info.num_frames, dtype=bool), np.zeros(info.num_frames, dtype=bool)
    readable[list(lost)] = False
    indices = request.sample(reader, window, readable)
    request.check_size(reader, len(indices))  # the largest plan: later ones only leave frames out
    decoded: dict[int, np.ndarray] = {}
    failures: list[int] = []
    for round_ in range(RESAMPLING_ROUNDS + 1):
        failed = _decode_missing(reader, indices, decoded)
        if not failed:
            break
        failures += failed
        readable[failed] = False
        for frame in failed:  # damage usually runs on to the next keyframe: avoid a widening band around it
            avoid[max(frame - 2**round_, 0) : frame + 2**round_ + 1] = True
        if round_ < RESAMPLING_ROUNDS:
            indices = request.sample(reader, window, readable & ~avoid)
            indices = indices if len(indices) else request.sample(reader, window, readable)
    indices = indices[np.isin(indices, list(decoded))]
    if failures:
        warn_lost(
            reader.source.name,
            f"{frame_ranges(failures)} could not be decoded (truncated or damaged "
            f"data); sampled {len(indices)} frames among the others",
            stacklevel=4,
        )
    if not len(indices):
        raise CorruptVideoError(reader.source.name, "no frame of the requested window could be decoded")
    # Frames past the end of the data (a cut file whose header declares more) count when the window reaches it.
    tail = tuple((max(start, stop), end) for start, end in info.lost_frames if stop == info.num_frames < end)
    return stack_frames(decoded, indices), indices, _merged(runs(lost | set(failures)) + tail)


def _decode_missing(reader: VideoReader, indices: np.ndarray, decoded: dict[int, np.ndarray]) -> list[int]:
    """Decode the frames of ``indices`` not in ``decoded`` into it, first dropping the frames no longer sampled;
    return those that could not be decoded."""
    wanted = set(indices.tolist())
    for frame in set(decoded) - wanted:
        del decoded[frame]
    missing = np.array(sorted(wanted - decoded.keys()), dtype=np.int64)
    if len(missing):
        decoded.update(reader.read_available(missing))
    return [frame for frame in missing.tolist() if frame not in decoded]


def _merged(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Ascending half-open ``ranges`` with the touching or overlapping ones joined."""
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


__all__ = ["DEFAULT_NUM_FRAMES", "MAX_CLIP_BYTES", "MAX_FPS", "MAX_NUM_FRAMES", "load_video"]

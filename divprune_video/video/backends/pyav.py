"""The default backend: PyAV (FFmpeg's libraries, wheels on every platform).

Frame-exact random access. Opening scans the packets once (no decoding, so it is cheap next to decoding; see
notes/design-history.md#divprune_videovideobackendspyav) to get every frame's presentation timestamp and the
keyframes; frame ``i`` is the ``i``-th smallest timestamp. To read frames, the wanted ones are grouped by the
keyframe they follow, and each group is decoded from a seek to that keyframe, matching frames by timestamp, so
B-frames, variable frame rate and odd start times cannot shift the numbering. Packets that are not wanted are
decoded with ``skip_frame=NONREF``, which drops frames that no other frame references (most B-frames) without
changing any frame that is kept. Groups are spread over threads, each with its own demuxer and decoder (PyAV
releases the GIL while decoding).
"""

from __future__ import annotations

import collections
import io
import logging
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Iterator, Optional

import numpy as np

from ..._optional import require
from ..errors import (
    CorruptVideoError,
    NoFramesError,
    NotAVideoError,
    StreamGoneError,
    TruncatedVideoWarning,
    VideoError,
    VideoNotFoundError,
    VideoTimeoutError,
)
from ..sources import VideoSource
from .base import VideoInfo, VideoReader, default_threads, frame_ranges, rotate_to_display, runs

logger = logging.getLogger("divprune_video.video")

#: Seconds to wait for a network source to open or to deliver data before giving up.
DEFAULT_TIMEOUT = 10.0
# Frames converted to RGB ahead of the consumer when decoding sequentially.
_CONVERT_AHEAD = 3


def load_av() -> ModuleType:
    return require("av", "video", "av")


def _container_target(source: VideoSource) -> tuple[Any, Optional[str]]:
    """What to hand to ``av.open`` for ``source``, and the input format to force (webcams)."""
    if source.kind == "path":
        return str(source.value), None
    if source.kind == "bytes":
        return io.BytesIO(source.value), None
    if source.kind == "fileobj":
        if getattr(source.value, "seekable", lambda: False)():
            source.value.seek(0)
        return source.value, None
    if source.kind == "url":
        return source.value, None
    if source.kind == "webcam":
        device = f"/dev/video{source.value}" if isinstance(source.value, int) else source.value
        return device, "v4l2"
    raise NotAVideoError(source.name, f"PyAV cannot open a {source.kind} source")


def _looks_like_mp4(source: VideoSource) -> bool:
    head = b""
    if source.kind == "path":
        with open(source.value, "rb") as handle:
            head = handle.read(12)
    elif source.kind == "bytes":
        head = source.value[:12]
    return head[4:8] == b"ftyp"


def open_container(source: VideoSource, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """``av.open`` with errors mapped to :class:`VideoError` subclasses naming the source. Waits at most
    ``timeout`` seconds for a network source to open and for each later read."""
    av = load_av()
    target, input_format = _container_target(source)
    # PyAV's timeout covers opening and demuxing only; FFmpeg's rw_timeout also bounds the reads a seek makes
    # (new range requests), which otherwise wait as long as the server keeps the connection open.
    options = {"rw_timeout": str(int(timeout * 1e6))} if source.kind == "url" else {}
    try:
        return av.open(target, mode="r", format=input_format, timeout=(timeout, timeout), options=options)
    except (av.error.FileNotFoundError, av.error.HTTPNotFoundError) as error:
        raise VideoNotFoundError(source.name, f"not found ({error.strerror or error})") from error
    except av.error.ExitError as error:
        raise VideoTimeoutError(source.name, f"no answer within {timeout:g} s") from error
    except av.error.EOFError as error:
        raise NoFramesError(source.name, "the data ends before the first frame (empty or truncated)") from error
    except av.error.InvalidDataError as error:
        if _looks_like_mp4(source):
            raise CorruptVideoError(
                source.name,
                "an MP4 file that cannot be opened: truncated or damaged "
                "(its index, the 'moov' box, is missing or broken)",
            ) from error
        raise NotAVideoError(source.name, "not a video: no container format recognised") from error
    except (av.error.FFmpegError, OSError) as error:
        if source.kind in ("url", "webcam"):
            raise StreamGoneError(source.name, f"cannot connect: {error}", attempts=1, last_error=error) from error
        raise NotAVideoError(source.name, f"cannot open: {error}") from error


#: FFmpeg demuxers and decoders that draw text as frames: the tty demuxer takes any .txt, .nfo, .asc or .ans
#: file (plain text or ANSI art) for a 25 fps "video"; bintext, xbin and idf do the same for other text art.
TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
_ATTACHED_PICTURE = 1024  # AV_DISPOSITION_ATTACHED_PIC: cover art of an audio file


def not_a_video(container: Any, stream: Any) -> Optional[str]:
    """Why the video ``stream`` of ``container`` is no real video (text drawn as frames, cover art, a single
    still image), or None for a real one."""
    formats = set(container.format.name.split(","))
    codec = stream.codec_context.name
    if formats & TEXT_FORMATS or codec in TEXT_CODECS:
        return f"text, not a video (FFmpeg's {container.format.name} demuxer would draw it as frames)"
    if int(getattr(stream, "disposition", 0)) & _ATTACHED_PICTURE:
        return f"a {codec} picture attached as cover art, not a video"
    if "image2" in formats or any(name.endswith("_pipe") for name in formats):
        return f"a single {codec} image, not a video (pass a folder of frame images to read frames)"
    return None


def video_stream(container: Any, source: VideoSource) -> Any:
    """The container's first real video stream, or :class:`NotAVideoError` saying what the data is instead (no
    video stream, text drawn as frames, cover art, a still image)."""
    streams = container.streams.video
    real = [stream for stream in streams if not_a_video(container, stream) is None]
    if real:
        return real[0]
    if streams:
        raise NotAVideoError(source.name, str(not_a_video(container, streams[0])))
    kinds = sorted({s.type for s in container.streams})
    if not kinds:
        raise NoFramesError(source.name, "an empty container: no stream, no frame")
    raise NotAVideoError(source.name, f"no video stream (streams: {', '.join(kinds)})")


def probe_video(source: VideoSource, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Raise :class:`NotAVideoError` when FFmpeg opens ``source`` and finds no real video in it (see
    :func:`video_stream`), before another backend decodes it: decord, OpenCV and torchcodec are built on FFmpeg
    too and would return text or cover art as frames. Silent when ``source`` is a file object that cannot be
    rewound, or when FFmpeg cannot open it or finds no stream at all (the backend then reports that itself)."""
    if source.kind == "fileobj" and not getattr(source.value, "seekable", lambda: False)():
        return
    try:
        container = open_container(source, timeout=timeout)
    except VideoError:
        return
    try:
        video_stream(container, source)
    except NoFramesError:
        return
    finally:
        container.close()
        if source.kind == "fileobj":
            source.value.seek(0)


def frame_to_rgb(frame: Any, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame: scaled to the coded ``width`` x ``height`` (so that frames of a
    stream whose size changes midway still stack), then turned by its display rotation (after a 90-degree turn
    the array is (width, height, 3))."""
    image = frame.to_ndarray(format="rgb24", width=width, height=height)
    return rotate_to_display(image, getattr(frame, "rotation", 0))


@dataclass
class PacketIndex:
    """Presentation timestamps (stream time base) of every frame and of the keyframes, both ascending. For
    streams without timestamps (raw H.264 ...) ``in_order`` is set and ``pts`` just counts the packets: frames are
    then numbered in the order a decoder outputs them from the start.

    ``missing``: frame numbers whose data is lost or damaged (their ``pts`` is where they would be); ``problems``:
    what was found wrong with the data (empty for an intact file), for the warning; ``declared``: the frame count
    the container's header declares (0 when it declares none), which is more than ``len(pts)`` when the data
    was cut."""

    pts: np.ndarray
    keyframe_pts: np.ndarray
    truncated: bool
    in_order: bool = False
    missing: frozenset = frozenset()
    problems: tuple = ()
    declared: int = 0


#: Holes among the last frames of a constant-rate stream are the mark of a cut file: the B-frames shown before
#: the last reference frame came after it in the file, and were cut off.
_TAIL_FRAMES = 8
_TS_PACKET = 188


def _ends_mid_packet(source: VideoSource) -> bool:
    """Whether an MPEG-TS file or bytes end inside a 188-byte transport packet (the last two packets, counted
    from the end, do not start with the sync byte): the data was cut."""
    if source.kind == "path":
        with open(source.value, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(size - 2 * _TS_PACKET, 0))
            tail = handle.read()
    elif source.kind == "bytes":
        tail = bytes(source.value[-2 * _TS_PACKET :])
    else:
        return False
    return len(tail) == 2 * _TS_PACKET and not (tail[0] == 0x47 and tail[_TS_PACKET] == 0x47)


def _constant_rate_numbers(ordered: np.ndarray) -> Optional[np.ndarray]:
    """Frame numbers ``round((pts - first) / step)`` of ascending ``ordered`` pts when the stream has a constant
    frame rate with some frames lost (90 % of the gaps are one step, the others whole multiples of it); None for
    variable frame rate, where a lost frame cannot be told from a long one."""
    if len(ordered) < 3:
        return None
    gaps = np.diff(ordered).astype(np.float64)
    step = float(np.median(gaps))
    if step <= 0:
        return None
    ratios = gaps / step
    regular = np.abs(ratios - 1.0) <= 0.02
    whole = np.abs(ratios - np.round(ratios)) <= 0.02
    if regular.mean() < 0.9 or not whole.all():
        return None
    return np.round((ordered - ordered[0]) / step).astype(np.int64)


def scan_packets(container: Any, stream: Any, source: VideoSource, *, deadline: Optional[float] = None) -> PacketIndex:
    """Read every packet of ``stream`` once (no decoding). Stops at damaged data (``truncated`` is then set) and
    notes packets the demuxer flags as damaged; in a damaged constant-rate stream, lost frames keep their
    numbers (as ``missing``) so that the frames after them are numbered as in the intact file. Raises
    :class:`VideoTimeoutError` past ``deadline`` (``time.monotonic()`` seconds: a live stream has no end) and
    :class:`NoFramesError` when there is no frame at all."""
    av = load_av()
    pts, keyframes, damaged, without_pts, problems = [], [], set(), 0, []
    last_pts = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.pts is None:
                without_pts += 1
            else:
                pts.append(packet.pts)
                last_pts = packet.pts
                if packet.is_corrupt:
                    damaged.add(packet.pts)
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
            if deadline is not None and len(pts) % 256 == 0 and time.monotonic() > deadline:
                raise VideoTimeoutError(
                    source.name,
                    "reading the stream's index did not finish in time: a live "
                    "stream? use stream_frames() for live sources",
                )
    except (av.error.ExitError, av.error.TimeoutError) as error:
        # A source that stops sending data is not a shorter video: a half index would give a half clip.
        raise VideoTimeoutError(
            source.name,
            "the data stopped coming while reading the stream (no data within the "
            "timeout); nothing partial is returned",
        ) from error
    except av.error.FFmpegError as error:
        problems.append(f"reading stopped at damaged data ({error.strerror or error})")
    if without_pts:
        logger.info(
            "%s: %d packets carry no timestamp: numbering frames in decoding order (reads decode from the "
            "start; remux to MP4 for fast seeking)",
            source.name,
            without_pts,
        )
        count = without_pts + len(pts)
        return PacketIndex(
            np.arange(count, dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            bool(problems),
            in_order=True,
            problems=tuple(problems),
        )
    if not pts:
        raise NoFramesError(source.name, "the video stream holds no frame")
    if "mpegts" in container.format.name and last_pts is not None and _ends_mid_packet(source):
        damaged.add(last_pts)  # the file ends inside a transport packet: the last frame's data is cut
        problems.append("the file ends in the middle of a frame")
    if damaged:
        problems.append(f"{len(damaged)} damaged packet{'s' if len(damaged) > 1 else ''}")
    declared = int(stream.frames or 0)
    if declared > len(pts):
        problems.append(
            f"the header declares {declared} frames, the data holds {len(pts)}: frames "
            f"{len(pts)}-{declared - 1} are past the end of the readable data"
        )
    ordered = np.unique(np.asarray(pts, dtype=np.int64))
    keys = np.unique(np.asarray(keyframes, dtype=np.int64)) if keyframes else ordered[:1]
    numbers = _constant_rate_numbers(ordered)
    missing: frozenset = frozenset(int(i) for i in np.searchsorted(ordered, sorted(damaged)))
    if numbers is not None and numbers[-1] + 1 > len(ordered):
        holes_at_end = np.any(np.diff(numbers[-_TAIL_FRAMES:]) > 1)
        if problems or damaged or holes_at_end:
            if holes_at_end and not problems:
                problems.append("the file is cut off (frames shown before its last frame are missing)")
            full = ordered[0] + np.round(np.arange(numbers[-1] + 1) * (ordered[-1] - ordered[0]) / numbers[-1])
            full = full.astype(np.int64)
            full[numbers] = ordered
            present = set(numbers.tolist())
            lost = {i for i in range(len(full)) if i not in present}
            missing = frozenset(lost | {int(numbers[i]) for i in missing})
            ordered = full
    return PacketIndex(ordered, keys, bool(problems), missing=missing, problems=tuple(problems), declared=declared)


class PyAVReader(VideoReader):
    """Frame-exact random access with PyAV. ``threads``: decoding threads (default: the CPUs available);
    ``timeout``: seconds to wait on a network source before giving up."""

    name = "pyav"

    def __init__(self, source: VideoSource, *, threads: Optional[int] = None, timeout: float = DEFAULT_TIMEOUT):
        super().__init__(source)
        self._threads = threads or default_threads()
        self._timeout = timeout
        self._count_lock = threading.Lock()
        #: Frames the decoder has output so far (all reads): how much work the seeks saved.
        self.frames_decoded = 0
        self._container = open_container(source, timeout=timeout)
        try:
            self._stream = video_stream(self._container, source)
            deadline = time.monotonic() + 6 * timeout if source.is_network else None
            self._index = scan_packets(self._container, self._stream, source, deadline=deadline)
            self.info = self._make_info()
        except BaseException:
            self._container.close()
            raise
        if self._index.truncated:
            missing = self._index.missing
            lost = f"; lost: {frame_ranges(missing)}" if missing else ""
            message = (
                f"{source.name}: truncated or damaged data ({'; '.join(self._index.problems)}){lost}; "
                f"reading the other {self.info.num_frames - len(missing)} frames"
            )
            logger.warning(message)
            warnings.warn(message, TruncatedVideoWarning, stacklevel=4)

    def _lost_frames(self) -> tuple[tuple[int, int], ...]:
        """The index's lost frames as ranges, and the frames past the end of the data that the header declares."""
        lost = runs(self._index.missing)
        count, declared = len(self._index.pts), self._index.declared
        return lost + ((count, declared),) if declared > count else lost

    def _make_info(self) -> VideoInfo:
        stream, pts = self._stream, self._index.pts
        context = stream.codec_context
        if self._index.in_order:
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            timestamps = np.arange(len(pts), dtype=np.float64) / fps
            return VideoInfo(
                len(pts),
                fps,
                len(pts) / fps,
                context.width,
                context.height,
                timestamps,
                context.name,
                self._lost_frames(),
            )
        time_base = float(stream.time_base)
        timestamps = (pts - pts[0]).astype(np.float64) * time_base
        rate = stream.average_rate or stream.guessed_rate
        if len(pts) > 1:
            step = float(np.median(np.diff(pts))) * time_base
            fps = float(rate) if rate else 1.0 / step
            duration = float(timestamps[-1] + (1.0 / fps if rate else step))
        else:
            fps = float(rate) if rate else 1.0
            duration = 1.0 / fps
        return VideoInfo(
            len(pts), fps, duration, context.width, context.height, timestamps, context.name, self._lost_frames()
        )

    # --- random access -------------------------------------------------------------------------------------

    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        av = load_av()
        try:
            return self._decode_frames(indices)
        except VideoError:  # already named (a worker's reopening failed)
            raise
        except (av.error.ExitError, av.error.TimeoutError) as error:
            raise VideoTimeoutError(
                self.source.name, f"no data for {self._timeout:g} s while decoding frames; nothing partial is returned"
            ) from error
        except (av.error.FFmpegError, OSError) as error:
            if not self.source.is_network:
                raise
            raise StreamGoneError(
                self.source.name, f"the connection failed while decoding frames: {error}", attempts=1, last_error=error
            ) from error

    def _decode_frames(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        if self._index.missing:
            indices = indices[~np.isin(indices, list(self._index.missing))]
            if len(indices) == 0:
                return {}
        if self._index.in_order:
            return self._decode_in_order(indices)
        groups = self._group_by_keyframe(indices)
        workers = 1 if self.source.kind in ("fileobj", "url") else min(self._threads, len(groups))
        if workers <= 1:
            return self._decode_groups(self._container, groups, threaded=True)
        # Contiguous runs (not interleaved), so that each worker's seeks go forwards through the file.
        bounds = np.linspace(0, len(groups), workers + 1).astype(int)
        chunks = [groups[bounds[i] : bounds[i + 1]] for i in range(workers)]
        cancel = threading.Event()  # set when the caller stops waiting (Ctrl-C): workers end after their group
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="divprune-pyav")
        try:
            futures = [pool.submit(self._decode_chunk, chunk, cancel) for chunk in chunks]
            results: dict[int, np.ndarray] = {}
            for future in futures:
                results.update(future.result())
            return results
        except BaseException:
            cancel.set()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _decode_in_order(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        """Decode from the start, counting output frames, up to the last wanted one (streams without timestamps)."""
        wanted, found, last = {int(i) for i in indices}, {}, int(indices[-1])
        for number, _, image in iter_container_frames(
            self._rewind(), self.source, self._index, self.info, wanted=wanted
        ):
            found[number] = image
            if number >= last:
                break
        return found

    def _group_by_keyframe(self, indices: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """[(position of the keyframe in ``keyframe_pts``, frame numbers after it)], in time order."""
        target_pts = self._index.pts[indices]
        key_of = np.searchsorted(self._index.keyframe_pts, target_pts, side="right") - 1
        key_of = np.maximum(key_of, 0)
        return [(int(k), indices[key_of == k]) for k in np.unique(key_of)]

    def _decode_chunk(self, groups: list[tuple[int, np.ndarray]], cancel: threading.Event) -> dict[int, np.ndarray]:
        """One worker: its own demuxer and single-threaded decoder (the workers are the parallelism)."""
        container = open_container(self.source, timeout=self._timeout)
        try:
            return self._decode_groups(container, groups, threaded=False, cancel=cancel)
        finally:
            container.close()

    def _decode_groups(
        self,
        container: Any,
        groups: list[tuple[int, np.ndarray]],
        *,
        threaded: bool,
        cancel: Optional[threading.Event] = None,
    ) -> dict:
        stream = container.streams[self._stream.index]
        if not stream.codec_context.is_open:
            stream.thread_type = "AUTO" if threaded else "NONE"
        found: dict[int, np.ndarray] = {}
        keyframes = self._index.keyframe_pts
        for key, frame_numbers in groups:
            if cancel is not None and cancel.is_set():
                break
            wanted = {int(self._index.pts[i]): int(i) for i in frame_numbers}
            # Some demuxers (MPEG-TS) land a GOP late, and frames just before a keyframe in decode order may need
            # the GOP before (open GOPs): fall back to earlier keyframes, and to the start of the file when every
            # seek overshot.
            overshot = True
            for seek_to in [int(keyframes[k]) for k in (key, key - 1, key - 2) if k >= 0] + [None]:
                if not wanted or (seek_to is None and not overshot):
                    break
                landed_late = self._decode_from(container, stream, seek_to, int(keyframes[key]), wanted, found)
                overshot = overshot and landed_late
        return found

    def _decode_from(
        self, container: Any, stream: Any, key_pts: Optional[int], needed_pts: int, wanted: dict[int, int], found: dict
    ) -> bool:
        """Seek to the keyframe at ``key_pts`` (None: the start of the file) and decode until every pts in
        ``wanted`` is found (moving them from ``wanted`` into ``found``) or the decoder has passed them. Returns
        True at once, decoding nothing, when the seek landed after ``needed_pts`` (the keyframe the wanted frames
        follow); False otherwise."""
        av = load_av()
        context = stream.codec_context
        width, height = self.info.width, self.info.height
        last = max(wanted)
        if key_pts is None:
            container.seek(0, backward=True, any_frame=False)
        else:
            container.seek(key_pts, stream=stream, backward=True, any_frame=False)
        context.flush_buffers()
        passed, first, count = False, True, 0
        damaged = DamageTracker(self.source)
        for packet in container.demux(stream):
            if first and key_pts is not None and packet.pts is not None and packet.pts > needed_pts:
                return True  # the seek overshot: nothing decoded, try an earlier keyframe
            first = False
            context.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in wanted else "NONREF"
            try:
                frames = context.decode(packet) if packet.size else context.decode(None)
            except av.error.FFmpegError as error:
                damaged.failed(packet, error)
                continue
            count += len(frames)
            for frame in frames:
                if frame.pts is not None and frame.pts > last:
                    passed = True
                if damaged.intact(frame) and frame.pts in wanted:
                    found[wanted.pop(frame.pts)] = frame_to_rgb(frame, width, height)
            if not wanted or passed:
                break
        context.skip_frame = "DEFAULT"
        with self._count_lock:
            self.frames_decoded += count
        return False

    # --- sequential ----------------------------------------------------------------------------------------

    def iter_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """Every frame from the start, decoded in order with FFmpeg's own threads."""
        return iter_container_frames(self._rewind(), self.source, self._index, self.info)

    def _rewind(self) -> Any:
        """The reader's container positioned at the start (reopened when it cannot seek, e.g. raw H.264)."""
        av = load_av()
        try:
            self._container.seek(0, backward=True, any_frame=False)  # a timestamp seek may land a GOP late
            self._container.streams[self._stream.index].codec_context.flush_buffers()
        except av.error.FFmpegError:
            self._container.close()
            self._container = open_container(self.source, timeout=self._timeout)
        return self._container

    def close(self) -> None:
        self._container.close()


class DamageTracker:
    """Which decoded frames to trust: after a packet fails to decode, the frames that follow may be built on the
    lost one (the decoder conceals the hole with other pictures), so none is trusted until the next keyframe."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.damaged = False

    def failed(self, packet: Any, error: Exception) -> None:
        logger.debug(
            "%s: a damaged packet at pts %s (frames up to the next keyframe are dropped): %s",
            self.source.name,
            packet.pts,
            error,
        )
        self.damaged = True

    def intact(self, frame: Any) -> bool:
        if frame.key_frame:
            self.damaged = False
        return not self.damaged


def decode_packets(container: Any, stream: Any, source: VideoSource) -> Iterator[Any]:
    """Decoded frames of ``stream`` from the container's current position. Packets that fail to decode are
    skipped, and so are the frames after them up to the next keyframe (:class:`DamageTracker`); errors reading
    the container (a dropped connection) propagate."""
    av = load_av()
    damaged = DamageTracker(source)
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as error:
            damaged.failed(packet, error)
            continue
        yield from (frame for frame in frames if damaged.intact(frame))


def iter_container_frames(
    container: Any, source: VideoSource, index: PacketIndex, info: VideoInfo, *, wanted: Optional[set] = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Frames of ``container``'s video stream from its current position (the start), as ``(frame number,
    seconds from the first frame, (H, W, 3) uint8 RGB)``, numbered by ``index`` (frames it does not list are left
    out; with ``index.in_order``, by output order). ``wanted``: only these frame numbers are converted and
    yielded. The RGB conversion runs in a helper thread while the next frames decode."""
    stream = video_stream(container, source)
    if not stream.codec_context.is_open:
        stream.thread_type = "AUTO"
    position = None if index.in_order else {int(p): i for i, p in enumerate(index.pts)}
    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="divprune-rgb") as converter:
        for count, frame in enumerate(decode_packets(container, stream, source)):
            number = count if position is None else position.get(frame.pts)
            if (
                number is None
                or number >= info.num_frames
                or number in index.missing
                or (wanted is not None and number not in wanted)
            ):
                continue
            pending.append((number, converter.submit(frame_to_rgb, frame, info.width, info.height)))
            if len(pending) > _CONVERT_AHEAD:
                number, image = pending.popleft()
                yield number, float(info.timestamps[number]), image.result()
        while pending:
            number, image = pending.popleft()
            yield number, float(info.timestamps[number]), image.result()

"""``stream_frames``: frames from webcams, rtsp/http streams and files, decoded by a background thread.

The thread decodes into a bounded queue, so memory does not grow with the stream's length. For live sources (and
files paced in real time) a slow consumer makes the queue drop its *oldest* frames, counted in
:attr:`FrameStream.dropped`; for files read as fast as possible the thread waits for the consumer instead.
Network sources and webcams that fail (or a live stream that ends) are reopened with exponential backoff, up to
``max_retries`` times in a row, then :class:`StreamGoneError` is raised to the consumer. Every wait is bounded:
network reads time out after ``timeout`` seconds, the consumer never waits longer than the producer's worst case,
and waits are sliced so that Ctrl-C interrupts at once. ``close()`` (or leaving a ``with`` block, or Ctrl-C in
the loop) stops the thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Iterator, Optional

import numpy as np

from .backends.frames import ArrayReader, FolderReader
from .backends.pyav import DEFAULT_TIMEOUT, decode_packets, frame_to_rgb, open_container, video_stream
from .clip import Frame
from .errors import StreamGoneError, VideoError, VideoTimeoutError
from .sources import Source, VideoSource, resolve_source

logger = logging.getLogger("divprune_video.video")

# (pts or None, media time in seconds or None, a function that returns the (H, W, 3) RGB image)
_Item = tuple[Optional[int], Optional[float], Callable[[], np.ndarray]]

#: Backends that stream_frames can read with.
STREAM_BACKENDS = ("auto", "pyav", "opencv")
_WAIT_SLICE = 0.1  # seconds: the longest uninterruptible wait
_MAX_BACKOFF = 8.0


class FrameStream(Iterator[Frame]):
    """An iterator of :class:`Frame` fed by a background decoding thread; a context manager that stops it.

    Attributes: ``dropped`` (frames discarded because the consumer was slow), ``reconnects`` (reopening attempts
    after failures), ``delivered`` (frames handed out), ``live`` (whether the source is treated as live)."""

    def __init__(
        self,
        source: VideoSource,
        *,
        fps: Optional[float],
        max_queue: int,
        realtime: Optional[bool],
        live: Optional[bool],
        backend: str,
        max_retries: int,
        backoff: float,
        timeout: float,
    ) -> None:
        self.source = source
        self.fps = fps
        self.max_queue = max_queue
        self.realtime = bool(realtime)
        self.live = source.is_live if live is None else live
        self._live_forced = live
        self.backend = backend
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.dropped = 0
        self.reconnects = 0
        self.delivered = 0
        self._queue: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self._finished = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"divprune-stream {source.name}", daemon=True)
        self._thread.start()

    # --- consumer ------------------------------------------------------------------------------------------

    @property
    def stall_timeout(self) -> float:
        """The longest the consumer waits for one frame: the producer's worst case of timeouts and backoffs."""
        backoffs = sum(min(self.backoff * 2**i, _MAX_BACKOFF) for i in range(self.max_retries))
        return self.timeout * (self.max_retries + 2) + backoffs + 5.0

    def __iter__(self) -> "FrameStream":
        return self

    def __next__(self) -> Frame:
        try:
            return self._next()
        except KeyboardInterrupt:
            self.close()
            raise

    def _next(self) -> Frame:
        deadline = time.monotonic() + self.stall_timeout
        with self._cond:
            while True:
                if self._queue:
                    frame = self._queue.popleft()
                    self.delivered += 1
                    self._cond.notify_all()
                    return frame
                if self._error is not None:
                    error, self._error = self._error, None
                    self._closed = True
                    raise error
                if self._finished or self._closed:
                    raise StopIteration
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise VideoTimeoutError(self.source.name, f"no frame for {self.stall_timeout:.0f} s")
                self._cond.wait(min(_WAIT_SLICE, remaining))

    def close(self) -> None:
        """Stop the decoding thread and drop queued frames. Safe to call twice; returns within ~``timeout``."""
        self._stop.set()
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=self.timeout + 1.0)
            if self._thread.is_alive():
                logger.warning(
                    "%s: the reader thread is still blocked in I/O; it is a daemon thread and will end "
                    "at its next read",
                    self.source.name,
                )

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._stop.set()

    # --- producer ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._produce()
        except BaseException as error:  # handed to the consumer, raised from __next__
            if not self._stop.is_set():
                with self._cond:
                    self._error = error
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _put(self, frame: Frame) -> bool:
        """Queue ``frame``; False when the stream was closed."""
        drop_oldest = self.live or self.realtime
        with self._cond:
            while len(self._queue) >= self.max_queue and not self._stop.is_set():
                if drop_oldest:
                    self._queue.popleft()
                    self.dropped += 1
                    break
                self._cond.wait(_WAIT_SLICE)
            if self._stop.is_set():
                return False
            self._queue.append(frame)
            self._cond.notify_all()
            return True

    def _produce(self) -> None:
        failures = 0
        resume_pts: Optional[int] = None  # files reopened after a network error resume after this pts
        state = _Pacing(self.fps)
        while not self._stop.is_set():
            try:
                items, close_source = self._open(None if self.live else resume_pts)
            except VideoError as error:
                if not self._reconnectable(error):
                    raise
                failures = self._failed(failures, error)
                continue
            try:
                for pts, seconds, image in items:
                    if self._stop.is_set():
                        return
                    failures = 0
                    frame = state.select(seconds, image, live=self.live, realtime=self.realtime, stop=self._stop)
                    if frame is not None and not self._put(frame):
                        return
                    resume_pts = pts if pts is not None else resume_pts
                if not self.live:
                    return
                failures = self._failed(failures, StreamGoneError(self.source.name, "the live stream ended"))
            except Exception as error:  # network errors mid-stream: reopen
                wrapped = error if isinstance(error, VideoError) else StreamGoneError(self.source.name, str(error))
                if not self._reconnectable(wrapped):
                    raise
                failures = self._failed(failures, error)
            finally:
                close_source()

    def _reconnectable(self, error: VideoError) -> bool:
        return self.source.kind in ("url", "webcam") and isinstance(error, (StreamGoneError, VideoTimeoutError))

    def _failed(self, failures: int, error: BaseException) -> int:
        """Count a failure; wait the backoff before the next try, or raise once the retries are used up."""
        failures += 1
        detail = error.problem if isinstance(error, VideoError) else str(error)
        if failures > self.max_retries:
            raise StreamGoneError(
                self.source.name,
                f"gone after {self.max_retries} reconnect attempts: {detail}",
                attempts=failures,
                last_error=error,
            )
        delay = min(self.backoff * 2 ** (failures - 1), _MAX_BACKOFF)
        logger.warning(
            "%s: %s; reconnecting in %.2f s (attempt %d of %d)",
            self.source.name,
            detail,
            delay,
            failures,
            self.max_retries,
        )
        self._stop.wait(delay)
        self.reconnects += 1
        return failures

    def _open(self, resume_pts: Optional[int]) -> tuple[Iterator[_Item], Callable[[], None]]:
        source = self.source
        if source.kind in ("frames", "folder"):
            reader = ArrayReader(source) if source.kind == "frames" else FolderReader(source)
            items = ((i, t, (lambda image=image: image)) for i, t, image in reader.iter_frames())
            return items, reader.close
        use_opencv = self.backend == "opencv" or (
            self.backend == "auto" and source.kind == "webcam" and isinstance(source.value, int) and _has_opencv()
        )
        if use_opencv:
            return _opencv_items(source)
        container = open_container(source, timeout=self.timeout)
        if self._live_forced is None and source.kind == "url" and not source.is_live:
            self.live = not container.duration or container.duration <= 0
        return _pyav_items(container, source, resume_pts), container.close


class _Pacing:
    """Chooses frames at the requested rate, paces files in real time, and numbers and stamps the frames."""

    def __init__(self, fps: Optional[float]) -> None:
        self.interval = 1.0 / fps if fps else 0.0
        self.next_due: Optional[float] = None
        self.count = 0
        self.first_seconds: Optional[float] = None
        self.started: Optional[float] = None

    def select(
        self,
        seconds: Optional[float],
        image: Callable[[], np.ndarray],
        *,
        live: bool,
        realtime: bool,
        stop: threading.Event,
    ) -> Optional[Frame]:
        """The next decoded frame (media time ``seconds``, or None) as a :class:`Frame` when it is due, else None
        (the RGB conversion ``image()`` only runs for frames that are kept)."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if live or seconds is None:
            stamp = now - self.started
        else:
            if self.first_seconds is None:
                self.first_seconds = seconds
            stamp = seconds - self.first_seconds
        index = self.count
        self.count += 1
        if self.next_due is not None and stamp < self.next_due - 1e-6:
            return None
        if self.next_due is None or stamp > self.next_due + self.interval:
            self.next_due = stamp + self.interval  # the first frame, or far behind: restart the schedule
        else:
            self.next_due += self.interval
        if realtime and not live:
            stop.wait(max(0.0, self.started + stamp - time.monotonic()))
        return Frame(image(), index, float(stamp))


def _pyav_items(container: Any, source: VideoSource, resume_pts: Optional[int]) -> Iterator[_Item]:
    stream = video_stream(container, source)
    stream.thread_type = "AUTO"
    time_base = float(stream.time_base)
    if resume_pts is not None:
        container.seek(resume_pts, stream=stream, backward=True, any_frame=False)
    for frame in decode_packets(container, stream, source):
        if resume_pts is not None and frame.pts is not None and frame.pts <= resume_pts:
            continue
        seconds = frame.pts * time_base if frame.pts is not None else None
        yield frame.pts, seconds, (lambda frame=frame: frame_to_rgb(frame, frame.width, frame.height))


def _has_opencv() -> bool:
    from .backends import backend_problem

    return backend_problem("opencv") is None


def _opencv_items(source: VideoSource) -> tuple[Iterator[_Item], Callable[[], None]]:
    from .backends._loading import load_backend
    from .backends.opencv_backend import open_capture, to_rgb

    capture = open_capture(source)
    position_msec = load_backend("opencv").CAP_PROP_POS_MSEC

    def items() -> Iterator[_Item]:
        while True:
            ok, image = capture.read()
            if not ok:
                if source.kind in ("url", "webcam"):
                    raise StreamGoneError(source.name, "the capture stopped delivering frames")
                return
            yield None, capture.get(position_msec) / 1000.0, (lambda image=image: to_rgb(image))

    return items(), capture.release


def stream_frames(
    source: Source,
    *,
    fps: Optional[float] = 1.0,
    max_queue: int = 8,
    realtime: Optional[bool] = None,
    live: Optional[bool] = None,
    backend: str = "auto",
    max_retries: int = 5,
    backoff: float = 0.5,
    timeout: float = DEFAULT_TIMEOUT,
) -> FrameStream:
    """Frames from a webcam (an int index or ``/dev/videoN``), an rtsp/http stream, a file, or frames in memory,
    decoded in a background thread.

    Args:
        fps: frames per second to deliver (by timestamp: one every ``1 / fps`` s); ``None`` for every frame.
        max_queue: frames buffered between the thread and the consumer (memory bound).
        realtime: pace a file at its own speed, dropping frames like a live source when the consumer is slow
            (default: as fast as possible, never dropping).
        live: treat the source as live (drop-oldest, reconnect when it ends). Default: webcams and rtsp are live;
            an http source is live when it has no known duration (e.g. a served MPEG-TS stream).
        backend: ``"auto"`` (OpenCV for webcam indices when installed, PyAV otherwise), ``"pyav"`` or ``"opencv"``.
        max_retries: reopen attempts in a row for a failed network source or webcam before
            :class:`StreamGoneError`; backoff: the first wait between attempts (seconds, doubling, at most 8).
        timeout: seconds to wait for a network source to open or deliver data.

    Returns:
        A :class:`FrameStream`: iterate it for :class:`Frame` objects; use it in a ``with`` block or ``close()``
        it to stop the thread."""
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive or None; got {fps!r}")
    if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
        raise ValueError(f"max_queue must be a positive int; got {max_queue!r}")
    if max_retries < 0 or backoff < 0 or not timeout > 0:
        raise ValueError("max_retries and backoff must be >= 0 and timeout > 0")
    if backend not in STREAM_BACKENDS:
        raise ValueError(f"stream_frames reads with backend {' or '.join(map(repr, STREAM_BACKENDS))}; got {backend!r}")
    resolved = resolve_source(source)
    return FrameStream(
        resolved,
        fps=fps,
        max_queue=max_queue,
        realtime=realtime,
        live=live,
        backend=backend,
        max_retries=max_retries,
        backoff=backoff,
        timeout=timeout,
    )

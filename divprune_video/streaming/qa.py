"""``StreamingVideoQA``: a live feed (webcam, rtsp/http stream, a file played as live) answerable at any moment,
with constant memory and constant per-frame cost.

::

    from divprune_video import StreamingVideoQA

    with StreamingVideoQA("llava-hf/LLaVA-NeXT-Video-7B-hf", token_budget=2048, sample_fps=1.0) as qa:
        qa.run("rtsp://camera/stream")            # ingests in a background thread
        ...
        result = qa.ask("What just happened?")   # any time, from a consistent snapshot of the memory

Each sampled frame goes through the model's own vision path (in the groups of ``adapter.frames_per_group`` frames
the model encodes together: one for the LLaVA families, two for temporal patches) and its tokens are merged into a
:class:`~divprune_video.streaming.memory.TokenMemory` that never holds more than ``token_budget`` tokens
(``method="divprune"``: the Max-Min diverse subset of everything seen, updated incrementally). A question is
answered from the memory's tokens in time order, unpruned (the memory *is* the pruned set); the memory's prefill is
kept and reused by the next questions while no new frame group has entered the memory, so a second question only
prefills its own tokens.

Threads: ``ingest`` may be called from any thread (calls are serialized, so frames enter in call order); the
memory is mutated under a lock that ``ask`` holds only to copy it, so answering never blocks ingestion for longer
than a copy and ingestion never changes what a question sees.
"""

from __future__ import annotations

import collections
import logging
import numbers
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

from ..errors import DivPruneVideoError
from ..models import EncodedVideo, FrameTiming, ModelAdapter, PruningConfig, resolve_adapter
from ..models.decoding import static_decoding_unsupported
from ..models.runtime import synchronize_stream
from ..models.video_context import VideoContext
from ..pipeline import DEFAULT_MAX_NEW_TOKENS, DEFAULT_MODEL, VideoQAResult
from ..selection._validate import Metric
from .memory import MEMORIES, MemorySnapshot, TokenMemory, UpdateMode, token_memory

logger = logging.getLogger(__name__)

#: Seconds ``close()`` waits for the ingestion thread by default.
DEFAULT_CLOSE_TIMEOUT = 30.0
#: Per-frame timings kept for the statistics (the most recent ones; bounded).
TIMING_WINDOW = 256


class EmptyMemoryError(DivPruneVideoError, RuntimeError):
    """A question was asked before any frame was ingested."""


@dataclass(frozen=True)
class IngestRecord:
    """What one :meth:`StreamingVideoQA.ingest` did: the number of the frame group the frame belongs to (ingest
    order; the frame's own number when the model encodes frames one by one), the group's tokens, the memory size
    after it, and the seconds spent encoding (vision path) and updating the memory. A frame that does not complete
    its group is held until it does: its record has ``num_tokens`` 0 and no timings.

    ``update_seconds`` is the time ``ingest`` spent on the memory. On CUDA the DivPrune memory's selection runs on
    a stream of its own after ``ingest`` returns, during the next frame's encode (see
    :class:`~divprune_video.streaming.DiverseTokenMemory`), so it is not in it; ``bench-stream`` reports what it
    adds to the per-frame time."""

    frame_id: int
    num_tokens: int
    memory_tokens: int
    encode_seconds: float
    update_seconds: float


@dataclass(frozen=True)
class StreamStats:
    """Counters of a :class:`StreamingVideoQA` (a snapshot; times in seconds).

    ``frames_dropped`` and ``reconnects`` are the stream reader's (:func:`~divprune_video.stream_frames`): frames
    a live source delivered while ingestion was busy, and reopening attempts. ``recent_*_seconds``: the last
    :data:`TIMING_WINDOW` frames' times, oldest first."""

    frames_ingested: int
    frames_dropped: int
    reconnects: int
    tokens_seen: int
    memory_tokens: int
    memory_frames: int
    token_budget: int
    last_encode_seconds: float
    last_update_seconds: float
    total_encode_seconds: float
    total_update_seconds: float
    recent_encode_seconds: tuple[float, ...]
    recent_update_seconds: tuple[float, ...]
    running: bool

    @property
    def last_update_ms(self) -> float:
        return 1e3 * self.last_update_seconds

    @property
    def mean_encode_ms(self) -> float:
        return 1e3 * self.total_encode_seconds / max(1, self.frames_ingested)

    @property
    def mean_update_ms(self) -> float:
        return 1e3 * self.total_update_seconds / max(1, self.frames_ingested)


FrameInput = Any  # an (H, W, 3) uint8 array or tensor, or a divprune_video.Frame


class StreamingVideoQA:
    """Answer questions about a live video at any moment from a bounded memory of its most diverse visual tokens.

    Args:
        model: hub id or local folder of a checkpoint, or a loaded :class:`~divprune_video.models.ModelAdapter`.
        token_budget: the most visual tokens the memory holds (and the LLM receives), at least one frame's
            (144 for the 7B model at 336 px).
        sample_fps: frames per second taken from a source by :meth:`run` (and the default clock of
            :meth:`ingest`: frame ``i`` is at ``i / sample_fps`` seconds unless the frame carries its own time).
        method: ``"divprune"`` (Max-Min diverse memory), ``"uniform"`` (evenly spaced over the stream),
            ``"random"`` (reservoir sample), ``"recent"`` (the latest tokens) or another registered memory; see
            :mod:`divprune_video.streaming.memory`.
        device, dtype: where and in which precision the model runs (default: CUDA float16, else CPU float32).
        metric: the DivPrune distance (``"cosine"``, ``"l2"``, ``"l1"``).
        update: DivPrune's memory update: ``"auto"`` (default: recompute on CUDA, cached on CPU),
            ``"cached"`` or ``"recompute"`` (same picks; see :class:`~divprune_video.streaming.DiverseTokenMemory`).
        seed: seed of ``method="random"``.
        timestamps_in_prompt: tell the LLM when the frames in memory were taken (a sentence before the question),
            so answers can say when something happened.
        attn_implementation: transformers attention backend when ``model`` is loaded here.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike, ModelAdapter] = DEFAULT_MODEL,
        *,
        token_budget: int = 2048,
        sample_fps: float = 1.0,
        method: str = "divprune",
        device: Optional[str] = None,
        dtype: Optional[Any] = None,
        metric: Metric = "cosine",
        update: UpdateMode = "auto",
        seed: int = 0,
        timestamps_in_prompt: bool = False,
        attn_implementation: Optional[str] = None,
    ) -> None:
        if isinstance(sample_fps, bool) or not isinstance(sample_fps, numbers.Real) or not sample_fps > 0:
            raise ValueError(f"sample_fps must be a positive number; got {sample_fps!r}")
        if method not in MEMORIES:
            raise ValueError(f"method must be one of {', '.join(map(repr, MEMORIES.names()))}; got {method!r}")
        self.memory: TokenMemory = token_memory(method, token_budget, metric=metric, update=update, seed=seed)
        self.token_budget = self.memory.token_budget
        self.sample_fps = float(sample_fps)
        self.method = method
        self.timestamps_in_prompt = bool(timestamps_in_prompt)
        self.adapter = resolve_adapter(model, device=device, dtype=dtype, attn_implementation=attn_implementation)
        self.grid: Optional[tuple[int, int]] = None
        self._pending: list[tuple[np.ndarray, float]] = []  # frames of a group not complete yet
        self._layer_features: dict[int, tuple[torch.Tensor, ...]] = {}  # group -> its DeepStack features
        self._frames_ingested = 0  # frames whose group is in the memory
        self._memory_lock = threading.Lock()  # held while the memory changes or is copied
        self._ingest_lock = threading.Lock()  # serializes ingest() calls (frames enter in call order)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stream: Any = None
        self._error: Optional[BaseException] = None
        self._dropped_before = self._reconnects_before = 0  # counters of earlier run() streams
        self._last_timestamp: Optional[float] = None  # of the latest frame ingested: where a new run() continues
        self._encode_total = self._update_total = 0.0
        self._last: Optional[IngestRecord] = None
        self._recent_encode: collections.deque[float] = collections.deque(maxlen=TIMING_WINDOW)
        self._recent_update: collections.deque[float] = collections.deque(maxlen=TIMING_WINDOW)
        # The memory's prefill, with the memory version it was made for (see _answer).
        self._context: Optional[tuple[tuple[int, int], VideoContext]] = None

    # -- ingestion -------------------------------------------------------------------------------------------------

    def ingest(self, frame: FrameInput, *, timestamp: Optional[float] = None) -> IngestRecord:
        """Encode one frame with the model's vision path and merge its tokens into the memory.

        Frames are encoded in groups of ``adapter.frames_per_group`` (one for the LLaVA families): a frame that
        does not complete a group is held until the next ones arrive.

        Args:
            frame: (H, W, 3) uint8 RGB (numpy array or tensor), or a :class:`~divprune_video.Frame` (its
                ``timestamp`` is used).
            timestamp: the frame's time in seconds (default: the Frame's, else ``frame_number / sample_fps``).

        Returns:
            An :class:`IngestRecord` (frame group number, tokens, memory size, encode / update seconds).

        Raises:
            TypeError / ValueError: a frame of the wrong type, dtype or shape; tokens with NaN/Inf; a
                ``token_budget`` smaller than one frame group's tokens.
        """
        image, frame_time = _frame_image(frame)
        timestamp = frame_time if timestamp is None else timestamp
        with self._ingest_lock:
            frame_number = self._frames_ingested + len(self._pending)
            stamp = frame_number / self.sample_fps if timestamp is None else float(timestamp)
            self._pending.append((image, stamp))
            self._last_timestamp = stamp
            group_id = self.memory.num_frames_seen
            if len(self._pending) < self.adapter.frames_per_group:
                return IngestRecord(group_id, 0, self.memory.num_tokens, 0.0, 0.0)
            images, stamps = zip(*self._pending)
            self._pending.clear()
            group_time = (stamps[0] + stamps[-1]) / 2  # the group's time, as Qwen3-VL's processor stamps groups
            encoded = self.adapter.encode_frames(np.stack(images), FrameTiming(stamps, self.sample_fps))
            tokens = encoded.features
            if tokens.shape[0] > self.token_budget:
                raise ValueError(
                    f"token_budget={self.token_budget} is smaller than one frame's "
                    f"{tokens.shape[0]} visual tokens ({encoded.grid[0]}x{encoded.grid[1]}); use a "
                    f"budget of at least {tokens.shape[0]}"
                )
            start = time.perf_counter()
            with self._memory_lock:
                self._drop_layer_features()
                self.memory.add(tokens, frame_id=group_id, timestamp=group_time)
                if encoded.layer_features:
                    self._layer_features[group_id] = encoded.layer_features
                self._frames_ingested += len(images)
                self.grid = encoded.grid
                # The update's kernels on this stream. On CUDA the DivPrune memory's selection runs on a stream of
                # its own and is not waited for here: it runs during the next frame's encode (bench-stream
                # measures what it costs the stream).
                synchronize_stream(tokens.device)
                update_seconds = time.perf_counter() - start
                record = IngestRecord(
                    group_id, int(tokens.shape[0]), self.memory.num_tokens, encoded.seconds, update_seconds
                )
                self._record(record)
        return record

    def _drop_layer_features(self) -> None:
        """Per-layer features (Qwen3-VL's DeepStack) are held for each group while any of its tokens is in the
        memory (a question must add exactly the kept tokens' features): drop those of the groups gone. Called
        before a memory update, so a group leaves one update after its last token (reading the memory's frames
        right after an update would wait for its selection, which runs meanwhile on CUDA)."""
        if self._layer_features:
            present = set(torch.unique(self.memory.frame_ids).tolist())
            for group in [group for group in self._layer_features if group not in present]:
                del self._layer_features[group]

    def _memory_layer_features(self, snapshot: MemorySnapshot) -> tuple[torch.Tensor, ...]:
        """Per layer, (M, D): the held features of the snapshot's tokens, in its order (none for most families)."""
        if not self._layer_features:
            return ()
        groups = snapshot.frame_ids.tolist()
        cells = snapshot.positions.tolist()
        levels = len(next(iter(self._layer_features.values())))
        return tuple(
            torch.stack([self._layer_features[group][level][cell] for group, cell in zip(groups, cells)])
            for level in range(levels)
        )

    def _record(self, record: IngestRecord) -> None:
        self._last = record
        self._encode_total += record.encode_seconds
        self._update_total += record.update_seconds
        self._recent_encode.append(record.encode_seconds)
        self._recent_update.append(record.update_seconds)

    # -- questions -------------------------------------------------------------------------------------------------

    def snapshot(self) -> MemorySnapshot:
        """A consistent copy of the memory now (tokens in time order, frame ids, timestamps)."""
        with self._memory_lock:
            return self.memory.snapshot()

    def encoded_memory(self) -> tuple[EncodedVideo, MemorySnapshot]:
        """The memory as the LLM receives it: an :class:`~divprune_video.models.EncodedVideo` of the snapshot's
        (M, D) tokens in time order (with the model's unframed tokens, if it has any), and the snapshot. Raises
        :class:`EmptyMemoryError` before the first frame (group)."""
        start = time.perf_counter()
        with self._memory_lock:
            snapshot = self.memory.snapshot()
            layer_features = self._memory_layer_features(snapshot)
        if snapshot.num_tokens == 0 or self.grid is None:
            raise EmptyMemoryError("nothing to answer from yet: no frame has been ingested (call ingest() or run())")
        group_times = snapshot.timestamps[
            torch.unique_consecutive(snapshot.frame_ids, return_counts=True)[1].cumsum(0) - 1
        ]
        video = self.adapter.video_from_tokens(
            snapshot.tokens,
            snapshot.frame_ids,
            snapshot.positions,
            self.grid,
            snapshot.num_frames,
            group_times=group_times,
            sampled_fps=self.sample_fps,
        )
        video.layer_features = layer_features
        video.seconds = time.perf_counter() - start
        return video, snapshot

    def ask(self, question: str, **generate_kwargs: Any) -> VideoQAResult:
        """Answer ``question`` from the memory as it is now (ingestion goes on meanwhile).

        ``generate_kwargs`` go to transformers' ``generate()`` (``max_new_tokens`` defaults to 64; greedy unless
        ``do_sample=True``).

        Returns:
            A :class:`~divprune_video.VideoQAResult`: ``num_visual_tokens`` = tokens seen in total,
            ``num_kept`` = memory size, ``kept_indices`` = (num_kept,) ascending indices of the memory's tokens in
            the stream of all tokens (frame-major: token ``i`` is frame ``i // tokens_per_frame``),
            ``num_frames`` = frame groups encoded (frames for the LLaVA families), ``timings`` = ``snapshot``
            (copying the memory), ``select`` (0: the selection happens during ingestion), ``prefill``, ``generate``.

        Raises:
            The error that stopped the background ingestion of :meth:`run`, if any (once);
            :class:`EmptyMemoryError` before the first frame; ``ValueError`` for an empty question.
        """
        self._raise_background_error()
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty str; got {question!r}")
        if generate_kwargs.get("num_return_sequences", 1) != 1:
            raise ValueError("ask() returns one answer; num_return_sequences must be 1")
        if "max_new_tokens" not in generate_kwargs and "max_length" not in generate_kwargs:
            generate_kwargs["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        video, snapshot = self.encoded_memory()
        prompt = timestamp_preamble(snapshot) + question if self.timestamps_in_prompt else question
        output = self._answer(video, snapshot, prompt, generate_kwargs)
        return VideoQAResult(
            answer=output.texts[0],
            num_visual_tokens=snapshot.num_tokens_seen,
            num_kept=snapshot.num_tokens,
            kept_indices=snapshot.token_indices,
            timings={"snapshot": video.seconds, **output.timings},
            question=question,
            num_frames=snapshot.num_frames_seen,
            grid=video.grid,
            frames_per_group=self.adapter.frames_per_group,
        )

    def _answer(
        self, video: EncodedVideo, snapshot: MemorySnapshot, prompt: str, generate_kwargs: dict[str, Any]
    ) -> Any:
        """Answer from the memory's prefill: reused while no frame group entered the memory since it was made (the
        memory is the pruned set, so the prefill is unpruned); ``generate()`` for calls the static decoder does not
        implement."""
        adapter = self.adapter
        pruning = PruningConfig(method="none")
        if not hasattr(adapter, "prefill") or static_decoding_unsupported(adapter.model, generate_kwargs):
            return adapter.generate([video], [prompt], pruning, **generate_kwargs)
        version = (snapshot.num_frames_seen, snapshot.num_tokens_seen)
        cached = self._context
        if cached is not None and cached[0] == version:
            return adapter.answer(cached[1], [prompt], **generate_kwargs)
        context = adapter.prefill(video, pruning)
        self._context = (version, context)
        output = adapter.answer(context, [prompt], **generate_kwargs)
        output.timings = {**output.timings, "prefill": output.timings["prefill"] + context.prefill_seconds}
        return output

    @property
    def reuses_prefill(self) -> bool:
        """Whether the next :meth:`ask` reuses the memory's prefill (no frame group arrived since the last one)."""
        cached = self._context
        return cached is not None and cached[0] == (self.memory.num_frames_seen, self.memory.num_tokens_seen)

    # -- reading the memory ----------------------------------------------------------------------------------------

    @property
    def num_memory_tokens(self) -> int:
        """Tokens in memory now (never more than ``token_budget``)."""
        return self.memory.num_tokens

    @property
    def num_frames(self) -> int:
        """Frames ingested so far (not counting those held until their group is complete)."""
        return self._frames_ingested

    @property
    def memory_frame_ids(self) -> torch.Tensor:
        """(M,) int64: for each memory token, in the order the LLM receives them (time order), the number of the
        frame group (ingest order, from 0; the frame itself for models that encode frames one by one) it came
        from."""
        with self._memory_lock:
            return self.memory.frame_ids

    @property
    def memory_timestamps(self) -> torch.Tensor:
        """(M,) float64: the time in seconds of each memory token's frame."""
        with self._memory_lock:
            return self.memory.timestamps

    @property
    def stats(self) -> StreamStats:
        """Counters and timings (see :class:`StreamStats`)."""
        stream = self._stream
        with self._memory_lock:
            last = self._last
            return StreamStats(
                frames_ingested=self._frames_ingested,
                frames_dropped=self._dropped_before + (stream.dropped if stream is not None else 0),
                reconnects=self._reconnects_before + (stream.reconnects if stream is not None else 0),
                tokens_seen=self.memory.num_tokens_seen,
                memory_tokens=self.memory.num_tokens,
                memory_frames=int(torch.unique_consecutive(self.memory.frame_ids).numel()),
                token_budget=self.token_budget,
                last_encode_seconds=last.encode_seconds if last else 0.0,
                last_update_seconds=last.update_seconds if last else 0.0,
                total_encode_seconds=self._encode_total,
                total_update_seconds=self._update_total,
                recent_encode_seconds=tuple(self._recent_encode),
                recent_update_seconds=tuple(self._recent_update),
                running=self.running,
            )

    # -- background ingestion --------------------------------------------------------------------------------------

    def run(
        self,
        source: Any,
        *,
        realtime: Optional[bool] = None,
        live: Optional[bool] = None,
        max_queue: int = 4,
        backend: str = "auto",
        max_retries: int = 5,
        backoff: float = 0.5,
        timeout: Optional[float] = None,
    ) -> "StreamingVideoQA":
        """Ingest ``source`` in a background thread, ``sample_fps`` frames per second, until it ends or
        :meth:`close`.

        Args:
            source: what :func:`~divprune_video.stream_frames` reads: a webcam index or ``/dev/videoN``, an
                rtsp/http URL, a file, frames in memory.
            realtime: play a file at its own speed like a live source (default: as fast as ingestion goes);
                ``qa.run("file.mp4", realtime=True)`` is "a file played as live".
            live, backend, max_retries, backoff, timeout: as in :func:`~divprune_video.stream_frames` (reconnects
                with backoff, then :class:`~divprune_video.video.StreamGoneError`).
            max_queue: frames buffered between the reader and ingestion; when ingestion is slower than a live
                source, the oldest are dropped and counted in ``stats.frames_dropped``.

        The memory's timeline goes on across calls: frames of a source read after an earlier one (or after
        frames given to :meth:`ingest`) are stamped after the latest frame ingested, however the source counts
        its own time.

        Returns:
            ``self`` (so ``with qa.run(source): ...`` works). Errors of the source that show at once (a missing
            file or device) raise here; later ones (the stream gone for good) are raised by the next
            :meth:`ask`, :meth:`wait` or :meth:`close`.
        """
        from ..video import stream_frames
        from ..video.backends.pyav import DEFAULT_TIMEOUT

        if self.running:
            raise RuntimeError("already ingesting a source; close() it before run() starts another")
        self._raise_background_error()
        self._retire_stream()
        stream = stream_frames(
            source,
            fps=self.sample_fps,
            max_queue=max_queue,
            realtime=realtime,
            live=live,
            backend=backend,
            max_retries=max_retries,
            backoff=backoff,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        )
        self._stop.clear()
        self._stream = stream
        self._thread = threading.Thread(
            target=self._ingest_loop, args=(stream,), daemon=True, name=f"divprune-streaming-qa {stream.source.name}"
        )
        self._thread.start()
        return self

    def _ingest_loop(self, stream: Any) -> None:
        offset: Optional[float] = None
        try:
            for frame in stream:
                if self._stop.is_set():
                    break
                if offset is None:
                    offset = self._timeline_offset(frame.timestamp)
                self.ingest(frame, timestamp=frame.timestamp + offset)
        except BaseException as error:  # re-raised by the next ask / wait / close
            if not self._stop.is_set():
                logger.debug("ingestion stopped by %r", error)
                self._error = error
        finally:
            stream.close()

    def _timeline_offset(self, first_time: float) -> float:
        """Seconds added to a source's own frame times so that the timeline continues across :meth:`run` calls:
        0 for the first source, else its first frame comes ``1 / sample_fps`` after the latest frame ingested."""
        if self._last_timestamp is None:
            return 0.0
        return self._last_timestamp + 1.0 / self.sample_fps - first_time

    @property
    def source_name(self) -> Optional[str]:
        """The printable name of the source :meth:`run` reads (URL credentials removed), or None."""
        return None if self._stream is None else self._stream.source.name

    @property
    def running(self) -> bool:
        """Whether the background ingestion of :meth:`run` is going on."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the background ingestion to end (the source ended or failed). Returns whether it has ended;
        raises the error that ended it, if any."""
        if self._thread is not None:
            self._thread.join(timeout)
        self._raise_background_error()
        return not self.running

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Stop the background ingestion and join its threads (waiting at most ``timeout`` s, then warning).
        Raises the error that had stopped ingestion, if it was not raised yet. Safe to call twice."""
        self._stop.set()
        stream, thread = self._stream, self._thread
        if stream is not None:
            stream.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning(
                    "the ingestion thread did not stop within %.0f s (a frame still encoding?); it is a "
                    "daemon thread and ends with its current frame",
                    timeout,
                )
        self._raise_background_error()

    def _retire_stream(self) -> None:
        if self._stream is not None:
            self._dropped_before += self._stream.dropped
            self._reconnects_before += self._stream.reconnects
            self._stream = None

    def _raise_background_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def __enter__(self) -> "StreamingVideoQA":
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # an exception is already on its way out: do not hide it behind the ingestion's
            self.close()
        except BaseException as error:
            logger.error("background ingestion had failed too: %s", error)

    def __repr__(self) -> str:
        return (
            f"StreamingVideoQA(method={self.method!r}, token_budget={self.token_budget}, "
            f"sample_fps={self.sample_fps}, frames={self.num_frames}, memory={self.num_memory_tokens})"
        )


def timestamp_preamble(snapshot: MemorySnapshot) -> str:
    """A sentence that tells the LLM when the frames in memory were taken, e.g. ``"The video is a live stream; the
    frames shown were taken at 0, 3, 17.5, 41 seconds from its start. "``."""
    stamps = torch.unique_consecutive(snapshot.timestamps).tolist()
    times = ", ".join(f"{stamp:.0f}" if abs(stamp - round(stamp)) < 0.05 else f"{stamp:.1f}" for stamp in stamps)
    return f"The video is a live stream; the frames shown were taken at {times} seconds from its start. "


def _frame_image(frame: FrameInput) -> tuple[np.ndarray, Optional[float]]:
    """(H, W, 3) uint8 RGB numpy image and the frame's own time (None if it has none)."""
    timestamp = None
    if hasattr(frame, "image") and hasattr(frame, "timestamp"):  # a divprune_video.Frame
        frame, timestamp = frame.image, float(frame.timestamp)
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be an (H, W, 3) uint8 RGB array or tensor, or a Frame; got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[-1] != 3 or min(frame.shape) == 0:
        hint = " (channels first? use image.transpose(1, 2, 0))" if frame.ndim == 3 and frame.shape[0] == 3 else ""
        raise ValueError(f"frame must have shape (H, W, 3); got {tuple(frame.shape)}{hint}")
    if frame.dtype != np.uint8:
        raise TypeError(f"frame must be uint8 RGB (0..255); got dtype {frame.dtype}")
    return np.ascontiguousarray(frame), timestamp

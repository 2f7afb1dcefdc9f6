"""``VideoQAPipeline``: video -> frames -> visual tokens -> DivPrune -> answer, with per-stage timings.

::

    from divprune_video import VideoQAPipeline

    pipe = VideoQAPipeline("llava-hf/LLaVA-NeXT-Video-7B-hf", keep_ratio=0.15)
    result = pipe("clip.mp4", "What happens after the dog jumps?", max_new_tokens=32)
    result.answer, result.num_kept, result.timings

    # A batch (left-padded, one generate() call per ``batch_size`` pairs); questions on one video share its tokens.
    results = pipe([("clip.mp4", "Who enters?"), ("clip.mp4", "What colour is the car?")])
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import numbers
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable, Iterator, Literal, Optional, Sequence, Union

import numpy as np
import torch

from ._optional import require
from .models import EncodedVideo, FrameTiming, ModelAdapter, PruningConfig, resolve_adapter
from .models.base import DEFAULT_MODEL, PositionMode
from .models.decoding import DECODE_MODES, DecodeMode, static_decoding_unsupported
from .models.video_context import VideoContext, shares_prefill

logger = logging.getLogger(__name__)

#: Answer length when neither ``max_new_tokens`` nor ``max_length`` is passed.
DEFAULT_MAX_NEW_TOKENS = 64


@dataclass
class VideoQAResult:
    """One answer and what it cost.

    Attributes:
        answer: the generated text.
        num_visual_tokens: N, the video's visual tokens (frames x tokens per frame).
        num_kept: how many of them the LLM kept.
        kept_indices: (num_kept,) int64, ascending, indices into the N visual tokens (frame-major: token ``i`` is
            frame ``i // tokens_per_frame``, grid cell ``i % tokens_per_frame``, row-major over ``grid``).
        timings: seconds per stage: ``decode`` (reading the video), ``encode`` (frames -> visual tokens),
            ``select`` (the selector), ``prefill`` (the LLM's first forward pass, selection excluded), ``generate``
            (the remaining decoding steps). In a batch, select/prefill/generate are the batch's.
        question: the question asked.
        num_frames: the frame groups the video was encoded in: the frames it was sampled to, divided by
            ``frames_per_group``.
        grid: (rows, cols) of visual tokens per frame (group).
        frames_per_group: frames encoded together (1 for the LLaVA families, 2 for models with temporal patches):
            ``kept_per_frame`` and ``kept_indices // tokens_per_frame`` count frame groups.
        lost_frames: source frame ranges ``(start, end)`` of the video lost to damaged or missing data (the clip's
            :attr:`~divprune_video.VideoClip.lost_frames`); empty for an intact video.
        error: ``"ExceptionType: message"`` when this pair failed in a list run with ``errors="record"``; the
            answer is then None and the token counts are 0.
    """

    answer: Optional[str]
    num_visual_tokens: int
    num_kept: int
    kept_indices: torch.Tensor
    timings: dict[str, float]
    question: str = ""
    num_frames: int = 0
    grid: tuple[int, int] = (0, 0)
    frames_per_group: int = 1
    lost_frames: tuple[tuple[int, int], ...] = ()
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        """Whether the question was answered (False: see :attr:`error`)."""
        return self.error is None

    @property
    def partial(self) -> bool:
        """Whether frames of the video were lost to damaged or missing data (see :attr:`lost_frames`)."""
        return bool(self.lost_frames)

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    def kept_per_frame(self) -> list[int]:
        """How many tokens were kept in each frame (group)."""
        counts = torch.bincount(self.kept_indices // self.tokens_per_frame, minlength=self.num_frames)
        return counts.tolist()


#: What a list call does with a failing pair: raise (with the finished results) or record it and go on.
ErrorPolicy = Literal["raise", "record"]

#: What the pipeline takes as a video: anything :func:`divprune_video.load_video` accepts (a path, URL, bytes, frame
#: folder, (T, H, W, 3) uint8 frames), a :class:`~divprune_video.VideoClip`, or an EncodedVideo from
#: :meth:`VideoQAPipeline.encode`.
VideoInput = Any


class VideoQAPipeline:
    """Answer questions about videos with LLaVA-NeXT-Video (or another registered adapter) and DivPrune.

    Args:
        model: hub id or local folder of a checkpoint, or a loaded :class:`~divprune_video.models.ModelAdapter`.
        keep_ratio: fraction of each video's visual tokens the LLM keeps, in (0, 1].
        method: ``"divprune"``, ``"uniform"``, ``"random"``, ``"attention"`` (FastV-style, needs
            ``prune_layer >= 1``), another registered selector, or ``"none"`` (unpruned).
        prune_layer: 0 prunes before the LLM; K >= 1 after decoder layer K (see :class:`PruningConfig`).
        num_frames: frames sampled from each video.
        keyframes: keep this many mutually most different frames out of the ``num_frames`` sampled ones
            (:func:`divprune_video.load_video`'s keyframe pre-selection); None: the ``num_frames`` uniform ones.
        device, dtype: where and in which precision the model runs (default: CUDA in float16, else CPU float32).
        positions: ``"renumber"`` or ``"original"`` positions for the kept tokens; default: the family's
            (``"renumber"`` for the LLaVA families, ``"original"`` for Qwen's 3-D positions).
        seed: seed of the ``"random"`` method.
        batch_size: pairs per ``generate()`` call when called with a list.
        attn_implementation: transformers attention backend (default: flash-attention 2 when installed, else
            sdpa).
        decode: how answers are decoded: ``"auto"`` (default: a preallocated KV cache with CUDA-graph steps on
            CUDA, transformers' ``generate()`` on its dynamic cache elsewhere), ``"static"`` or ``"generate"``.
            Calls the static decoder does not implement (beam search, several sequences, streamers, other logits
            processors) use ``generate()`` either way. Sets the adapter's ``decoding``.
        share_prefill: in a list, prefill each video asked several questions once and answer them all from that
            :class:`~divprune_video.models.VideoContext` (only for question-independent methods: not
            ``"attention"``); answers equal those of whole-prompt prefills.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike, ModelAdapter] = DEFAULT_MODEL,
        *,
        keep_ratio: float = 0.15,
        method: str = "divprune",
        prune_layer: int = 0,
        num_frames: int = 32,
        keyframes: Optional[int] = None,
        device: Optional[str] = None,
        dtype: Optional[Any] = None,
        positions: Optional[PositionMode] = None,
        seed: int = 0,
        batch_size: int = 8,
        attn_implementation: Optional[str] = None,
        decode: DecodeMode = "auto",
        share_prefill: bool = True,
    ) -> None:
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}; got {decode!r}")
        self.pruning = PruningConfig(
            keep_ratio=keep_ratio, method=method, prune_layer=prune_layer, positions=positions, seed=seed
        )
        for name, value in (("num_frames", num_frames), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        self.num_frames, self.keyframes, self.batch_size = int(num_frames), keyframes, int(batch_size)
        self.adapter = resolve_adapter(model, device=device, dtype=dtype, attn_implementation=attn_implementation)
        self.adapter.decoding = decode
        self.share_prefill = bool(share_prefill)

    def __call__(
        self,
        video: Union[VideoInput, Sequence[tuple[VideoInput, str]]],
        question: Optional[str] = None,
        *,
        errors: ErrorPolicy = "raise",
        progress: Optional[bool] = None,
        seed: Optional[int] = None,
        **generate_kwargs: Any,
    ) -> Union[VideoQAResult, list[VideoQAResult]]:
        """``pipe(video, question)`` -> one :class:`VideoQAResult`; ``pipe([(video, question), ...])`` -> a list, in
        the order of the pairs (see :meth:`run_batch` for ``errors`` and ``progress``).

        ``generate_kwargs`` go to transformers' ``generate()`` (``max_new_tokens`` defaults to 64; greedy unless
        ``do_sample=True``).
        """
        if question is None:
            if not isinstance(video, (list, tuple)) or not video:
                raise TypeError("call with (video, question) or with a non-empty list of (video, question) pairs")
            return self.run_batch(video, errors=errors, progress=progress, seed=seed, **generate_kwargs)
        return self.run_batch([(video, question)], errors=errors, progress=False, seed=seed, **generate_kwargs)[0]

    def prefill(self, video: VideoInput, *, seed: Optional[int] = None) -> VideoContext:
        """Read, encode and prefill ``video`` once: ``ctx = pipe.prefill(video)``, then ``pipe(ctx, question)`` for
        each question prefills only the question's tokens (the pipeline's pruning must be question-independent: not
        ``"attention"``). The context holds the pruned prefix's KV cache (``ctx.nbytes``)."""
        encoded, _, _ = self._encode_timed(video)
        return self.adapter.prefill(encoded, self.pruning, seed=seed)

    def warmup(
        self, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, size: tuple[int, int] = (360, 640)
    ) -> dict[str, float]:
        """Answer one question about a blank video of ``num_frames`` frames, whole-prompt and from a shared prefill,
        so that the first real call pays no one-time costs (CUDA-graph capture of the decoding step for this prompt
        size, kernel selection). Returns seconds: ``total`` and ``capture`` (graph capture within it)."""
        frames = np.zeros((self.num_frames, *size, 3), dtype=np.uint8)
        static = getattr(self.adapter, "static_decoder", None)
        captured = static.capture_seconds if static is not None else 0.0
        start = time.perf_counter()
        video = self.encode(frames)
        self(video, "Describe the video.", max_new_tokens=max_new_tokens)
        if self.share_prefill and shares_prefill(self.pruning) and hasattr(self.adapter, "prefill"):
            self(self.adapter.prefill(video, self.pruning), "Describe the video.", max_new_tokens=max_new_tokens)
        capture = (static.capture_seconds - captured) if static is not None else 0.0
        return {"total": time.perf_counter() - start, "capture": capture}

    def run_batch(
        self,
        pairs: Sequence[tuple[VideoInput, str]],
        *,
        errors: ErrorPolicy = "raise",
        progress: Optional[bool] = None,
        seed: Optional[int] = None,
        **generate_kwargs: Any,
    ) -> list[VideoQAResult]:
        """Answer (video, question) pairs, ``batch_size`` per ``generate()`` call.

        Pairs about the same video (the same path or URL, or the same object) are answered together and the video is
        read and encoded once; it is released after its last question, so memory holds at most one batch of
        videos however long the list. Results come back in the order of ``pairs``.

        Args:
            pairs: (video, question) pairs.
            errors: ``"raise"`` (default): the first failure raises its own exception, which carries the results
                finished before it as ``exception.results`` (a list in the order of ``pairs``, None where not
                answered) and the failing pair's index as ``exception.pair_index``; an interrupt (Ctrl-C) carries
                them too. ``"record"``: a failing pair's result has ``error`` set and no answer, and every other
                pair is answered (a failing batch is retried pair by pair).
            progress: a progress bar over the pairs (tqdm); None shows one for lists longer than ``batch_size``.
            seed: this call's selection seed (random methods; default the pipeline's ``seed``), passed to the
                selector with each pair's question and token frames.

        Raises:
            ContextLengthError: a prompt longer than the model's context, before its video is read (and, for
                families whose frames keep their own resolution, again once the tokens are counted, before the LLM
                runs).
        """
        if errors not in ("raise", "record"):
            raise ValueError(f"errors must be 'raise' or 'record'; got {errors!r}")
        pairs = [self._check_pair(pair) for pair in pairs]
        if generate_kwargs.get("num_return_sequences", 1) != 1:
            raise ValueError("VideoQAPipeline returns one answer per question; num_return_sequences must be 1")
        if "max_new_tokens" not in generate_kwargs and "max_length" not in generate_kwargs:
            generate_kwargs["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        if errors == "raise":
            for index, (video, question) in enumerate(pairs):
                self.check_context(
                    video, question, generate_kwargs, source=f"pair {index}" if len(pairs) > 1 else "the prompt"
                )
        run = _BatchRun(self, pairs, errors, generate_kwargs, self.pruning.seed if seed is None else seed)
        with _progress_bar(len(pairs), self.batch_size, progress) as bar:
            try:
                for chunk in run.chunks():
                    run.answer(chunk)
                    bar.update(len(chunk))
            except BaseException as exc:
                run.attach(exc)
                raise
        return run.results  # type: ignore[return-value]

    def check_context(
        self,
        video: VideoInput,
        question: str,
        generate_kwargs: Optional[dict[str, Any]] = None,
        source: str = "the prompt",
    ) -> None:
        """Raise :class:`~divprune_video.models.context.ContextLengthError` when ``question`` about ``video`` cannot
        fit the model's context, without reading the video: its visual tokens are counted from the frames asked
        for where the family fixes the tokens per frame (the LLaVA families), else only the text and the new tokens
        are counted here and the adapter checks the rest once the video is encoded."""
        adapter = self.adapter
        text = adapter.text_tokens(question)
        if text is None or adapter.context_length is None:
            return
        if isinstance(video, VideoContext):
            video = video.video
        if isinstance(video, EncodedVideo):
            visual, unframed = video.num_tokens, video.num_unframed
        else:
            per_group = type(adapter).frame_tokens(getattr(adapter, "config", None))
            frames = min(self.keyframes or self.num_frames, self.num_frames)
            groups = -(-frames // adapter.frames_per_group)
            visual = groups * per_group if per_group else 0
            extra = adapter.unframed_tokens() if per_group else None
            unframed = 0 if extra is None else int(extra.shape[0])
        adapter.check_context([text + visual + unframed], [visual], self.pruning, generate_kwargs, [source])

    def load_clip(self, video: VideoInput) -> tuple[Any, float]:
        """The :class:`~divprune_video.VideoClip` the pipeline uses for ``video`` and the seconds reading it took.

        A VideoClip is used as it is; anything else (a path, URL, bytes, frame folder, or frames in memory) goes to
        :func:`divprune_video.load_video` with ``num_frames`` and ``keyframes``.
        """
        start = time.perf_counter()
        if getattr(video, "frames", None) is None:
            from .video import load_video

            video = load_video(video, num_frames=self.num_frames, keyframes=self.keyframes)
        return video, time.perf_counter() - start

    def load_frames(self, video: VideoInput) -> tuple[np.ndarray, float]:
        """The (T, H, W, 3) uint8 frames of :meth:`load_clip` and the seconds reading them took."""
        clip, seconds = self.load_clip(video)
        return np.asarray(clip.frames), seconds

    def encode(self, video: VideoInput) -> EncodedVideo:
        """The video's visual tokens; pass the result back as ``video`` to ask more questions without re-encoding."""
        return self._encode_timed(video)[0]

    def _encode_timed(self, video: VideoInput) -> tuple[EncodedVideo, float, tuple[tuple[int, int], ...]]:
        """(visual tokens, seconds reading the video, the clip's lost frame ranges)."""
        if isinstance(video, VideoContext):
            return dataclasses.replace(video.video, seconds=0.0), 0.0, ()
        if isinstance(video, EncodedVideo):
            return dataclasses.replace(video, seconds=0.0), 0.0, ()
        clip, decode_seconds = self.load_clip(video)
        timing = FrameTiming.of_clip(clip) if hasattr(clip, "timestamps") else None
        lost = tuple(getattr(clip, "lost_frames", ()))
        return self.adapter.encode_frames(np.asarray(clip.frames), timing), decode_seconds, lost

    @staticmethod
    def _check_pair(pair: Any) -> tuple[VideoInput, str]:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"each batch item must be a (video, question) pair; got {type(pair).__name__}")
        video, question = pair
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty str; got {question!r}")
        return video, question


def _source_key(video: VideoInput) -> Hashable:
    """Same key for the same source path/URL, or the same object."""
    if isinstance(video, (str, os.PathLike)):
        return ("source", os.fspath(video))
    return ("object", id(video))


class _BatchRun:
    """One :meth:`VideoQAPipeline.run_batch` call: the pairs grouped by video, each video encoded when its first
    batch comes and released after its last, and the results in the order of the pairs."""

    def __init__(
        self,
        pipe: VideoQAPipeline,
        pairs: list[tuple[VideoInput, str]],
        errors: ErrorPolicy,
        generate_kwargs: dict[str, Any],
        seed: int,
    ) -> None:
        self.pipe, self.pairs, self.errors, self.generate_kwargs = pipe, pairs, errors, generate_kwargs
        self.seed = seed
        self.results: list[Optional[VideoQAResult]] = [None] * len(pairs)
        self.keys = [_source_key(video) for video, _ in pairs]
        first: dict[Hashable, int] = {}
        for index, key in enumerate(self.keys):
            first.setdefault(key, index)
        self.order = sorted(range(len(pairs)), key=lambda index: (first[self.keys[index]], index))
        self.remaining = Counter(self.keys)
        self.encoded: dict[Hashable, Union[tuple[EncodedVideo, float, tuple[tuple[int, int], ...]], BaseException]] = {}
        self.current: Optional[int] = None
        # Videos asked several questions share one prefill (and a context passed in is always used).
        adapter = pipe.adapter
        self.can_share = (
            (hasattr(adapter, "prefill") and static_decoding_unsupported(adapter.model, generate_kwargs) is None)
            if hasattr(adapter, "model")
            else False
        )
        counts = Counter(self.keys)
        self.shared = {
            key
            for key, count in counts.items()
            if self.can_share and pipe.share_prefill and shares_prefill(pipe.pruning) and count >= 2
        }
        self.contexts: dict[Hashable, Union[VideoContext, BaseException]] = {}
        self.context_cost: dict[Hashable, tuple[float, float]] = {}
        for key, (video, _) in zip(self.keys, pairs):
            if isinstance(video, VideoContext):
                self.contexts[key] = video

    def chunks(self) -> Iterator[list[int]]:
        """Pair indices, ``batch_size`` at a time, grouped by video."""
        size = self.pipe.batch_size
        for start in range(0, len(self.order), size):
            yield self.order[start : start + size]

    def answer(self, chunk: list[int]) -> None:
        """Encode what ``chunk`` needs, answer it in one ``generate()`` call, and release finished videos."""
        ready = [index for index in chunk if self._prepare(index)]
        if ready:
            try:
                self._generate(ready)
            except Exception as exc:
                if self.errors == "raise" or len(ready) == 1:
                    self._fail(ready[0] if len(ready) == 1 else None, exc)
                else:
                    logger.warning("a batch of %d pairs failed (%s); answering them one at a time", len(ready), exc)
                    for index in ready:
                        try:
                            self._generate([index])
                        except Exception as single:
                            self._fail(index, single)
        for index in chunk:
            key = self.keys[index]
            self.remaining[key] -= 1
            if not self.remaining[key]:
                self.encoded.pop(key, None)
                self.contexts.pop(key, None)

    def attach(self, exc: BaseException) -> None:
        """Put the finished results on an exception leaving :meth:`VideoQAPipeline.run_batch`."""
        if getattr(exc, "results", None) is None:
            try:
                exc.results = list(self.results)  # type: ignore[attr-defined]
                exc.pair_index = self.current  # type: ignore[attr-defined]
            except AttributeError:  # an exception type with __slots__
                return
            done = sum(result is not None for result in self.results)
            where = "" if self.current is None else f" at pair {self.current}"
            exc.add_note(
                f"VideoQAPipeline: stopped{where}; {done} of {len(self.results)} pairs were answered "
                f"before it and are in this exception's .results (or pass errors='record')"
            )

    def _prepare(self, index: int) -> bool:
        """Check pair ``index``'s prompt against the context and encode its video (once per video)."""
        self.current = index
        video, question = self.pairs[index]
        key = self.keys[index]
        try:
            if self.errors == "record":  # "raise" checked every pair before the first video was read
                self.pipe.check_context(video, question, self.generate_kwargs, source=f"pair {index}")
            if key not in self.encoded:
                try:
                    self.encoded[key] = self.pipe._encode_timed(video)
                except Exception as exc:
                    self.encoded[key] = exc
            cached = self.encoded[key]
            if isinstance(cached, BaseException):
                raise cached
            if key in self.shared and key not in self.contexts:
                try:
                    context = self.pipe.adapter.prefill(cached[0], self.pipe.pruning, seed=self.seed)
                    self.contexts[key] = context
                    self.context_cost[key] = (context.select_seconds, context.prefill_seconds)
                except Exception as exc:
                    self.contexts[key] = exc
            context = self.contexts.get(key)
            if isinstance(context, BaseException):
                raise context
        except Exception as exc:
            self._fail(index, exc)
            return False
        return True

    def _generate(self, indices: list[int]) -> None:
        """Answer ``indices``: the pairs of each shared context in one call on it, the others in one
        ``generate()`` call."""
        self.current = indices[0] if len(indices) == 1 else None
        by_context: dict[Hashable, list[int]] = {}
        plain = []
        for index in indices:
            key = self.keys[index]
            (by_context.setdefault(key, []) if key in self.contexts else plain).append(index)
        for key, group in by_context.items():
            context = self.contexts[key]
            output = self.pipe.adapter.answer(
                context, [self.pairs[index][1] for index in group], **self.generate_kwargs
            )
            select, prefill = self.context_cost.pop(key, (0.0, 0.0))  # the first answer carries the shared cost
            output.timings = {
                **output.timings,
                "select": output.timings["select"] + select,
                "prefill": output.timings["prefill"] + prefill,
            }
            self._store(group, output)
        if plain:
            videos = [self.encoded[self.keys[index]][0] for index in plain]  # type: ignore[index]
            questions = [self.pairs[index][1] for index in plain]
            output = self.pipe.adapter.generate(
                videos, questions, self.pipe.pruning, seed=self.seed, **self.generate_kwargs
            )
            self._store(plain, output)

    def _store(self, indices: list[int], output: Any) -> None:
        for index, text, record in zip(indices, output.texts, output.records):
            video, decode_seconds, lost = self.encoded[self.keys[index]]  # type: ignore[misc]
            timings = {"decode": decode_seconds, "encode": video.seconds, **output.timings}
            self.results[index] = VideoQAResult(
                answer=text,
                num_visual_tokens=record.num_visual_tokens,
                num_kept=record.num_kept,
                kept_indices=record.kept_indices,
                timings=timings,
                question=self.pairs[index][1],
                num_frames=video.num_frames,
                grid=video.grid,
                frames_per_group=video.frames_per_group,
                lost_frames=lost,
            )

    def _fail(self, index: Optional[int], exc: Exception) -> None:
        """Raise ``exc`` (errors="raise") or record it as pair ``index``'s result."""
        if self.errors == "raise":
            self.current = index
            raise exc
        assert index is not None
        logger.warning("pair %d failed: %s: %s", index, type(exc).__name__, exc)
        self.results[index] = VideoQAResult(
            answer=None,
            num_visual_tokens=0,
            num_kept=0,
            kept_indices=torch.zeros(0, dtype=torch.int64),
            timings={},
            question=self.pairs[index][1],
            error=f"{type(exc).__name__}: {exc}",
        )


@contextlib.contextmanager
def _progress_bar(total: int, batch_size: int, progress: Optional[bool]) -> Iterator[Any]:
    """A tqdm bar over ``total`` pairs when asked for (None: lists longer than one batch, when tqdm is
    installed); otherwise an object whose ``update`` does nothing."""
    show = total > batch_size if progress is None else bool(progress)
    if show:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            if progress:
                require("tqdm.auto", "model", "tqdm")
        else:
            with tqdm(total=total, unit="pair", desc="VideoQAPipeline") as bar:
                yield bar
            return
    yield _NoBar()


class _NoBar:
    def update(self, count: int) -> None:
        """Nothing to show."""

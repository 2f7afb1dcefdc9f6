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

import dataclasses
import logging
import numbers
import os
import time
from dataclasses import dataclass
from typing import Any, Hashable, Optional, Sequence, Union

import numpy as np
import torch

from .models import EncodedVideo, FrameTiming, ModelAdapter, PruningConfig, resolve_adapter

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "llava-hf/LLaVA-NeXT-Video-7B-hf"
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
    """

    answer: str
    num_visual_tokens: int
    num_kept: int
    kept_indices: torch.Tensor
    timings: dict[str, float]
    question: str = ""
    num_frames: int = 0
    grid: tuple[int, int] = (0, 0)
    frames_per_group: int = 1

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    def kept_per_frame(self) -> list[int]:
        """How many tokens were kept in each frame (group)."""
        counts = torch.bincount(self.kept_indices // self.tokens_per_frame, minlength=self.num_frames)
        return counts.tolist()


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
        positions: Optional[str] = None,
        seed: int = 0,
        batch_size: int = 8,
        attn_implementation: Optional[str] = None,
    ) -> None:
        self.pruning = PruningConfig(keep_ratio=keep_ratio, method=method, prune_layer=prune_layer,
                                     positions=positions, seed=seed)
        for name, value in (("num_frames", num_frames), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        self.num_frames, self.keyframes, self.batch_size = int(num_frames), keyframes, int(batch_size)
        self.adapter = resolve_adapter(model, device=device, dtype=dtype, attn_implementation=attn_implementation)

    def __call__(
        self, video: Union[VideoInput, Sequence[tuple[VideoInput, str]]], question: Optional[str] = None,
        **generate_kwargs: Any,
    ) -> Union[VideoQAResult, list[VideoQAResult]]:
        """``pipe(video, question)`` -> one :class:`VideoQAResult`; ``pipe([(video, question), ...])`` -> a list.

        ``generate_kwargs`` go to transformers' ``generate()`` (``max_new_tokens`` defaults to 64; greedy unless
        ``do_sample=True``).
        """
        if question is None:
            if not isinstance(video, (list, tuple)) or not video:
                raise TypeError("call with (video, question) or with a non-empty list of (video, question) pairs")
            return self.run_batch(video, **generate_kwargs)
        return self.run_batch([(video, question)], **generate_kwargs)[0]

    def run_batch(self, pairs: Sequence[tuple[VideoInput, str]], **generate_kwargs: Any) -> list[VideoQAResult]:
        """Answer (video, question) pairs, ``batch_size`` per ``generate()`` call; each distinct video is read and
        encoded once."""
        pairs = [self._check_pair(pair) for pair in pairs]
        if generate_kwargs.get("num_return_sequences", 1) != 1:
            raise ValueError("VideoQAPipeline returns one answer per question; num_return_sequences must be 1")
        if "max_new_tokens" not in generate_kwargs and "max_length" not in generate_kwargs:
            generate_kwargs["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        encoded: dict[Hashable, tuple[EncodedVideo, float]] = {}
        prepared = []
        for video, question in pairs:
            key = _video_key(video)
            if key not in encoded:
                encoded[key] = self._encode_timed(video)
            prepared.append((encoded[key], question))
        results = []
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start: start + self.batch_size]
            videos = [video for (video, _), _ in chunk]
            questions = [question for _, question in chunk]
            output = self.adapter.generate(videos, questions, self.pruning, **generate_kwargs)
            for ((video, decode_seconds), question), text, record in zip(chunk, output.texts, output.records):
                timings = {"decode": decode_seconds, "encode": video.seconds, **output.timings}
                results.append(VideoQAResult(
                    answer=text, num_visual_tokens=record.num_visual_tokens, num_kept=record.num_kept,
                    kept_indices=record.kept_indices, timings=timings, question=question,
                    num_frames=video.num_frames, grid=video.grid, frames_per_group=video.frames_per_group,
                ))
        return results

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

    def _encode_timed(self, video: VideoInput) -> tuple[EncodedVideo, float]:
        if isinstance(video, EncodedVideo):
            return dataclasses.replace(video, seconds=0.0), 0.0
        clip, decode_seconds = self.load_clip(video)
        timing = FrameTiming.of_clip(clip) if hasattr(clip, "timestamps") else None
        return self.adapter.encode_frames(np.asarray(clip.frames), timing), decode_seconds

    @staticmethod
    def _check_pair(pair: Any) -> tuple[VideoInput, str]:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"each batch item must be a (video, question) pair; got {type(pair).__name__}")
        video, question = pair
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty str; got {question!r}")
        return video, question


def _video_key(video: VideoInput) -> Hashable:
    """Same key for the same source path/URL, or the same object."""
    if isinstance(video, (str, os.PathLike)):
        return ("source", os.fspath(video))
    return ("object", id(video))


"""Answerers: what turns a prepared sample into raw model text, one answer per pruning variant.

The runner only knows the small :class:`Answerer` interface. :class:`ReplayAnswerer` re-scores saved outputs (a
JSONL of ``{"video", "question", "response"}`` lines); :class:`PipelineAnswerer` runs
:class:`~divprune_video.pipeline.VideoQAPipeline` (a hub id, a local folder, the embedded tiny model, or the
random-weight 7B model for throughput benchmarks), decoding each video once in the prefetch workers and encoding it
once, every variant generating from the same visual tokens.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..models.presets import random_llava_next_video_7b, tiny_model_path  # the runner's "tiny" and "random-7b"
from .base import BenchmarkError, Sample, SampleError

if TYPE_CHECKING:
    from .config import RunConfig, Variant

logger = logging.getLogger(__name__)

REPLAY_PREFIX = "replay:"
TINY_MODEL = "tiny"
#: For throughput benchmarks only: the LLaVA-NeXT-Video-7B architecture with random weights (see
#: :func:`random_llava_next_video_7b`). Its answers are meaningless; its compute is the real model's.
RANDOM_7B_MODEL = "random-7b"
_VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov")


@dataclass
class PreparedSample:
    """A sample after the prefetch stage: its prompt, the decoded frames when the answerer needs them, and the
    half-open ``[start, end)`` source-frame ranges the decoder could not read (``partial``: some were lost)."""

    sample: Sample
    prompt: Optional[str]
    frames: Any = None
    error: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)
    lost_frames: tuple[tuple[int, int], ...] = ()
    partial: bool = False


@dataclass
class Answer:
    """Raw model text for one variant, with the visual-token counts, per-stage seconds and other details (the
    frames used ...) when known."""

    response: str
    num_visual_tokens: Optional[int] = None
    num_kept: Optional[int] = None
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class Answerer(ABC):
    """Produces one :class:`Answer` per variant for a prepared sample.

    ``decode`` runs in the prefetch worker threads (it must be thread-safe); ``answer`` runs in the main thread.
    """

    #: Whether :meth:`decode` needs the video (replay does not: it re-scores saved text).
    needs_frames: bool = True
    #: How many variants one instance can answer (replay: one).
    max_variants: Optional[int] = None

    def decode(self, sample: Sample) -> Any:
        """Decoded frames for ``sample`` (called in a worker thread); None to let :meth:`answer` read the file."""
        return None

    @abstractmethod
    def answer(self, prepared: PreparedSample, variants: Sequence["Variant"], seed: int) -> list[Answer]:
        """One answer per variant, in order. ``seed`` is fixed per sample, so results do not depend on sharding."""

    def model_record(self) -> dict[str, Any]:
        """What a run records about the model."""
        return {}

    def check_settings(self, config: "RunConfig", prompts: Sequence[str]) -> None:
        """Raise :class:`~divprune_video.eval.base.ConfigurationError` when ``config`` cannot work with this
        answerer's model for any sample; called once, before any video is decoded. ``prompts``: the benchmark
        texts the run will ask (their longest one sizes the text). Nothing to check by default."""

    def close(self) -> None:
        """Release resources."""


def _video_name(video: str) -> str:
    """A video reference without its file extension (replay files and annotations may differ in it)."""
    for suffix in _VIDEO_SUFFIXES:
        if video.endswith(suffix):
            return video[: -len(suffix)]
    return video


class ReplayAnswerer(Answerer):
    """Answers from saved outputs: JSONL lines ``{"video", "question", "response"}`` (optionally ``"id"`` and
    ``"task"`` to tell apart samples that share video and question). ``video`` is the file name as the annotations
    write it (a trailing video extension is ignored); ``question`` the annotation's question text."""

    needs_frames = False
    max_variants = 1

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._by_id: dict[str, str] = {}
        self._by_key: dict[tuple[str, ...], list[str]] = {}
        for entry in self._read():
            response = entry["response"]
            if "id" in entry:
                self._by_id[str(entry["id"])] = response
            video, question = _video_name(entry["video"]), entry["question"]
            self._by_key.setdefault((video, question), []).append(response)
            if "task" in entry:
                self._by_key.setdefault((str(entry["task"]), video, question), []).append(response)

    def _read(self) -> list[dict[str, Any]]:
        from .results import read_records

        if not self.path.is_file():
            raise BenchmarkError(f"replay file not found: {self.path}")
        entries = read_records(self.path, require_id=False)
        for number, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k), str) for k in ("video", "question", "response")
            ):
                raise BenchmarkError(
                    f"{self.path} record {number}: expected string fields 'video', 'question' and 'response'"
                )
        return entries

    def lookup(self, sample: Sample) -> str:
        """The saved response for ``sample``; raises :class:`SampleError` when there is none or it is ambiguous."""
        if sample.id in self._by_id:
            return self._by_id[sample.id]
        video = _video_name(sample.video)
        for key in ((sample.task, video, sample.question), (video, sample.question)):
            responses = self._by_key.get(key)
            if responses is None:
                continue
            if len(set(responses)) > 1:
                raise SampleError(
                    f"{self.path}: {len(responses)} different responses for sample {sample.id} "
                    f"(video {sample.video!r}); add 'id' or 'task' fields to tell them apart"
                )
            return responses[0]
        raise SampleError(
            f"{self.path} has no response for sample {sample.id} (video {sample.video!r}, question "
            f"{sample.question[:60]!r})"
        )

    def answer(self, prepared: PreparedSample, variants: Sequence["Variant"], seed: int) -> list[Answer]:
        return [Answer(self.lookup(prepared.sample)) for _ in variants]

    def model_record(self) -> dict[str, Any]:
        return {"answerer": "replay", "replay_file": str(self.path)}


class PipelineAnswerer(Answerer):
    """A model run through :class:`~divprune_video.pipeline.VideoQAPipeline`, one pipeline per variant over one
    loaded adapter. Frames come from :func:`~divprune_video.video.load_video` in the prefetch workers; each sample
    is encoded once (``pipe.encode``) and every variant generates from those shared visual tokens.

    Consecutive samples on the same frames (Video-MME's three questions per video, MLVU's several) share more: the
    video is encoded once, and each variant whose selection does not depend on the question or the sample's seed
    (every method but ``"attention"`` and ``"random"``) prefills the video once and answers each question from that
    :class:`~divprune_video.models.VideoContext` (answers equal those of whole-prompt prefills). The first question
    of a video carries the shared encode and prefill in its timings.
    """

    needs_frames = True

    def __init__(self, config: "RunConfig", *, local_rank: int = 0) -> None:
        import torch

        from ..pipeline import VideoQAPipeline

        self.config = config
        device = f"cuda:{local_rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
        if device != "cpu":
            torch.cuda.set_device(device)  # kernels (Triton's included) launch on this rank's GPU
        model: Any
        if config.model == TINY_MODEL:
            model = str(tiny_model_path())
        elif config.model == RANDOM_7B_MODEL:
            model = random_llava_next_video_7b(
                device,
                seed=config.seed,
                dtype=config.dtype or "float16",
                attn_implementation=config.attn_implementation,
            )
        else:
            model = config.model
        self.pipelines: dict["Variant", Any] = {}
        for variant in config.variants:
            pipe = VideoQAPipeline(
                model,
                keep_ratio=variant.keep_ratio,
                method=variant.method,
                prune_layer=variant.prune_layer or 0,
                num_frames=config.num_frames,
                keyframes=config.keyframes,
                device=device,
                dtype=getattr(torch, config.dtype) if config.dtype else None,
                attn_implementation=config.attn_implementation,
            )
            self.pipelines[variant] = pipe
            model = pipe.adapter  # the other variants share the loaded model
        self.encoder = next(iter(self.pipelines.values()))
        # The last video's frames, visual tokens and per-variant contexts (see the class text).
        self._last_frames: Any = None
        self._last_encoded: Any = None
        self._contexts: dict["Variant", Any] = {}

    def decode(self, sample: Sample) -> Any:
        from ..video import load_video, resolve_source

        source = resolve_source(sample.video_path, fps=sample.frame_rate)
        kwargs: dict[str, Any] = {"num_frames": self.config.num_frames, "keyframes": self.config.keyframes}
        if sample.window is not None:
            kwargs.update(start=sample.window[0], end=sample.window[1])
        return load_video(source, **kwargs)

    def answer(self, prepared: PreparedSample, variants: Sequence["Variant"], seed: int) -> list[Answer]:

        import numpy as np
        import torch

        from ..models.decoding import static_decoding_unsupported
        from ..models.video_context import shares_prefill

        clip = prepared.frames
        same_video = self._last_frames is not None and np.array_equal(self._last_frames, clip.frames)
        if same_video:
            encoded, encode_seconds = self._last_encoded, 0.0
        else:
            self._contexts.clear()
            encoded = self.encoder.encode(clip)
            encode_seconds = encoded.seconds
            self._last_frames, self._last_encoded = clip.frames, encoded
        frames = {
            "frame_indices": [int(i) for i in clip.indices],
            "frame_times": [round(float(t), 4) for t in clip.timestamps],
            "video_frames": clip.total_frames,
        }
        generate = {"max_new_tokens": self.config.max_new_tokens, "do_sample": False}
        answers = []
        for variant in variants:
            pipe = self.pipelines[variant]
            torch.manual_seed(seed)
            started = time.perf_counter()
            shared = {"select": 0.0, "prefill": 0.0}
            video: Any = encoded
            if (
                pipe.share_prefill
                and pipe.pruning.method != "random"
                and shares_prefill(pipe.pruning)
                and hasattr(pipe.adapter, "prefill")
                and static_decoding_unsupported(pipe.adapter.model, generate) is None
            ):
                video = self._contexts.get(variant)
                if video is None:
                    video = self._contexts[variant] = pipe.adapter.prefill(encoded, pipe.pruning)
                    shared = {"select": video.select_seconds, "prefill": video.prefill_seconds}
            result = pipe(video, prepared.prompt, seed=seed, **generate)  # the sample's seed: its random draw
            timings = {
                **{
                    k: float(v) + shared.get(k, 0.0) for k, v in result.timings.items() if k not in ("decode", "encode")
                },
                "encode": encode_seconds,
                "model": time.perf_counter() - started + encode_seconds,
            }
            answers.append(
                Answer(
                    result.answer,
                    result.num_visual_tokens,
                    result.num_kept,
                    timings,
                    {**frames, "shared_prefill": video is not encoded},
                )
            )
        return answers

    def check_settings(self, config: "RunConfig", prompts: Sequence[str]) -> None:
        from .preflight import check_model_settings

        check_model_settings(self.encoder.adapter, config, prompts)

    def model_record(self) -> dict[str, Any]:
        import torch

        adapter = self.encoder.adapter
        device = adapter.device
        return {
            "answerer": "pipeline",
            "model": self.config.model,
            "adapter": type(adapter).__name__,
            "device": str(device),
            "dtype": self.config.dtype,
            "model_dtype": str(adapter.model.dtype),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "attn_implementation": self.config.attn_implementation,
            "attention": getattr(adapter.model.config, "_attn_implementation", None),
            **(
                {"weights": f"random (seed {self.config.seed}): answers are meaningless"}
                if self.config.model == RANDOM_7B_MODEL
                else {}
            ),
        }


def model_type_of(model: str) -> Optional[str]:
    """The transformers ``model_type`` of ``config.model`` without loading weights (``tiny`` and ``random-7b`` are
    LLaVA-NeXT-Video); None for replays and for checkpoints whose config cannot be read here (loading them later
    says why)."""
    if model.startswith(REPLAY_PREFIX):
        return None
    if model in (TINY_MODEL, RANDOM_7B_MODEL):
        return "llava_next_video"
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(model).model_type
    except (OSError, ValueError, ImportError) as error:
        logger.info("could not read the config of %s (%s); Video-MME's default prompt applies", model, error)
        return None


def answerer_class(config: "RunConfig") -> type[Answerer]:
    """The kind of answerer ``config.model`` names, known before any weights are loaded."""
    return ReplayAnswerer if config.model.startswith(REPLAY_PREFIX) else PipelineAnswerer


def make_answerer(config: "RunConfig", *, local_rank: int = 0) -> Answerer:
    """The answerer ``config.model`` names: ``replay:FILE``, ``tiny``, ``random-7b`` (benchmarks only), or a hub id /
    local folder."""
    if answerer_class(config) is ReplayAnswerer:
        return ReplayAnswerer(config.model[len(REPLAY_PREFIX) :])
    return PipelineAnswerer(config, local_rank=local_rank)

"""What every model adapter shares: the pruning settings, the encoded video, the per-sample record and the
adapter interface.

An adapter owns one model family: loading (hub id or folder), the chat prompt, frames -> visual tokens, where the
visual tokens sit in the sequence (from the input ids), and the two pruning points (before the LLM; after LLM
layer K with a consistent KV cache). New families are new adapters, registered in :mod:`.registry`.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Optional, Sequence

import numpy as np
import torch

from ..selection import available_methods
from ..selection._validate import check_keep_ratio

#: ``"renumber"``: the pruned sequence gets contiguous positions 0..L'-1 (as the published DivPrune code);
#: ``"original"``: every kept token keeps the position it had in the full sequence, and new tokens continue after
#: the full sequence's last position. ``None`` in a :class:`PruningConfig` means the family's default (the first
#: mode its decoder supports: ``"renumber"`` for 1-D positions, ``"original"`` for Qwen's 3-D positions, which
#: have no renumbering).
POSITION_MODES = ("renumber", "original")
#: How kept visual tokens are numbered (see :data:`POSITION_MODES`).
PositionMode = Literal["renumber", "original"]
#: The method name that turns pruning off (the unpruned model, run exactly as plain transformers runs it).
NO_PRUNING = "none"
#: The checkpoint used when none is named (``VideoQAPipeline()``, the commands, benchmark configs).
DEFAULT_MODEL = "llava-hf/LLaVA-NeXT-Video-7B-hf"


@dataclass(frozen=True)
class PruningConfig:
    """Which visual tokens the model keeps, where, and how the kept tokens are numbered.

    Attributes:
        keep_ratio: fraction of each video's visual tokens to keep, in (0, 1]; the count is
            ``max(1, round(keep_ratio * N))``.
        method: a registered selection method (``"divprune"``, ``"uniform"``, ``"random"``, ``"attention"``, ...,
            see :func:`divprune_video.available_methods`) or ``"none"`` for the unpruned model.
        prune_layer: 0 prunes the projected visual tokens before the LLM; K >= 1 runs the first K decoder layers on
            the full sequence, selects on the visual tokens' hidden states after layer K, and drops the others from
            the hidden states and from those K layers' KV cache.
        positions: ``"renumber"``, ``"original"`` or None (the family's default), see :data:`POSITION_MODES`.
        seed: seed of the ``"random"`` method (each sample draws from a generator seeded with it).
        selector_options: keyword options for the selector (e.g. ``{"metric": "l2"}`` for DivPrune).
    """

    keep_ratio: float = 0.15
    method: str = "divprune"
    prune_layer: int = 0
    positions: Optional[PositionMode] = None
    seed: int = 0
    selector_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_keep_ratio(self.keep_ratio)
        methods = [NO_PRUNING, *available_methods()]
        if self.method not in methods:
            raise ValueError(f"method must be one of {', '.join(map(repr, methods))}; got {self.method!r}")
        if isinstance(self.prune_layer, bool) or not isinstance(self.prune_layer, numbers.Integral):
            raise TypeError(f"prune_layer must be an int >= 0; got {self.prune_layer!r}")
        if self.prune_layer < 0:
            raise ValueError(
                f"prune_layer must be >= 0 (0: before the LLM, K: after decoder layer K); got {self.prune_layer}"
            )
        if self.positions is not None and self.positions not in POSITION_MODES:
            raise ValueError(
                f"positions must be one of {POSITION_MODES} or None (the family's default); got {self.positions!r}"
            )
        if self.method == "attention" and self.prune_layer == 0:
            raise ValueError(
                "method='attention' ranks tokens by the attention they receive inside the LLM, which "
                "needs prune_layer >= 1 (FastV uses 2)"
            )

    @property
    def enabled(self) -> bool:
        """False for ``method="none"``: the model runs unpruned."""
        return self.method != NO_PRUNING

    def num_keep(self, num_tokens: int) -> int:
        """How many of ``num_tokens`` visual tokens are kept (all of them when pruning is off)."""
        if not self.enabled:
            return num_tokens
        return min(num_tokens, max(1, int(round(self.keep_ratio * num_tokens))))


@dataclass(frozen=True)
class FrameTiming:
    """When the sampled frames of a video were taken (Qwen's positions and timestamps depend on it).

    Attributes:
        timestamps: (T,) seconds of each frame from the source's start, increasing.
        sampled_fps: the rate of the sampled frames, frames taken / source frames x source fps (as qwen-vl-utils
            computes it and passes it to the processor as ``fps``).
    """

    timestamps: tuple[float, ...]
    sampled_fps: float

    def __post_init__(self) -> None:
        if not self.timestamps:
            raise ValueError("timestamps must hold one time per frame; got none")
        if not math.isfinite(self.sampled_fps) or self.sampled_fps <= 0:
            raise ValueError(f"sampled_fps must be a positive number; got {self.sampled_fps!r}")

    @classmethod
    def uniform(cls, num_frames: int, fps: float = 1.0) -> "FrameTiming":
        """``num_frames`` frames ``1 / fps`` seconds apart from 0 (frames that came without times)."""
        return cls(tuple(index / fps for index in range(num_frames)), float(fps))

    def group_times(self, frames_per_group: int) -> torch.Tensor:
        """(ceil(T / frames_per_group),) float64: each group's time, the mean of its first and last frame's (the
        last group is completed by repeating the last frame, as the processors pad it)."""
        stamps = torch.tensor(self.timestamps, dtype=torch.float64)
        pad = -len(stamps) % frames_per_group
        stamps = torch.cat([stamps, stamps[-1:].expand(pad)]).view(-1, frames_per_group)
        return (stamps[:, 0] + stamps[:, -1]) / 2

    @classmethod
    def of_clip(cls, clip: Any) -> "FrameTiming":
        """The timing of a :class:`~divprune_video.VideoClip` (its timestamps, and its frames over the source's)."""
        total, fps = int(getattr(clip, "total_frames", 0) or 0), float(clip.fps)
        sampled = len(clip.timestamps) / total * fps if total > 0 and fps > 0 else (fps or 1.0)
        return cls(tuple(float(stamp) for stamp in clip.timestamps), sampled)


@dataclass
class EncodedVideo:
    """A video's visual tokens as the LLM receives them (after vision tower, pooling or merging, and projector).

    The tokens DivPrune chooses from are ``features``; ``unframed`` are tokens of the video that belong to no frame
    (LLaVA-OneVision's newline token after the frames), always kept and not counted in ``num_tokens``. In the
    prompt the video occupies ``num_tokens + num_unframed`` placeholder positions: ``features`` in order, then
    ``unframed``.

    Attributes:
        features: (N, D) float tensor on the model's device. Dense (``frame_ids`` None): frame-major, token ``i``
            belongs to frame ``i // tokens_per_frame`` at grid cell ``i % tokens_per_frame`` (row-major over
            ``grid``). Sparse (``frame_ids`` given, e.g. a streaming memory): any subset of the frames' tokens in
            time order.
        num_frames: T, the frames (or frame groups, see ``frames_per_group``) the tokens come from.
        grid: (rows, cols) of tokens per frame (group) of this video; videos may differ.
        seconds: wall time of the encoding (preprocessing included).
        frame_ids: None (dense) or (N,) int64, the frame (group) each token came from, non-decreasing.
        cells: None (dense) or (N,) int64, each token's grid cell within its frame (row-major over ``grid``).
        unframed: None or (E, D) tokens after the frame tokens that belong to no frame.
        frames_per_group: source frames per frame group (1; 2 for models with temporal patches of two frames).
        group_times: None or (num_frames,) float64 seconds of each frame group present (the mean of its first and
            last frame's time, as Qwen3-VL's processor stamps groups); None: unknown.
        sampled_fps: the rate the frames were sampled at (:class:`FrameTiming`); None: unknown.
        layer_features: per LLM layer k, (N, D) features added to the visual tokens' hidden states after that
            layer (Qwen3-VL's DeepStack); empty for most families.
    """

    features: torch.Tensor
    num_frames: int
    grid: tuple[int, int]
    seconds: float = 0.0
    frame_ids: Optional[torch.Tensor] = None
    cells: Optional[torch.Tensor] = None
    unframed: Optional[torch.Tensor] = None
    frames_per_group: int = 1
    group_times: Optional[torch.Tensor] = None
    sampled_fps: Optional[float] = None
    layer_features: tuple[torch.Tensor, ...] = ()

    def __post_init__(self) -> None:
        if self.features.dim() != 2:
            raise ValueError(f"features must have shape (N, D); got {tuple(self.features.shape)}")
        if self.frame_ids is None:
            expected = self.num_frames * self.grid[0] * self.grid[1]
            if self.features.shape[0] != expected:
                raise ValueError(
                    f"features hold {self.features.shape[0]} tokens but {self.num_frames} frames of "
                    f"{self.grid[0]}x{self.grid[1]} tokens make {expected}"
                )
        elif tuple(self.frame_ids.shape) != (self.features.shape[0],):
            raise ValueError(
                f"frame_ids must have shape (N,) = ({self.features.shape[0]},); got {tuple(self.frame_ids.shape)}"
            )
        if self.cells is not None and tuple(self.cells.shape) != (self.features.shape[0],):
            raise ValueError(f"cells must have shape (N,) = ({self.features.shape[0]},); got {tuple(self.cells.shape)}")
        if self.unframed is not None and (self.unframed.dim() != 2 or self.unframed.shape[1] != self.features.shape[1]):
            raise ValueError(
                f"unframed must have shape (E, {self.features.shape[1]}); got {tuple(self.unframed.shape)}"
            )
        for level, extra in enumerate(self.layer_features):
            if extra.shape[0] != self.features.shape[0]:
                raise ValueError(
                    f"layer_features[{level}] holds {extra.shape[0]} tokens for {self.num_tokens} visual tokens"
                )

    @property
    def num_tokens(self) -> int:
        """N, the tokens DivPrune chooses from (the frames' tokens)."""
        return int(self.features.shape[0])

    @property
    def num_unframed(self) -> int:
        """E, the video's tokens that belong to no frame (always kept)."""
        return 0 if self.unframed is None else int(self.unframed.shape[0])

    @property
    def num_placeholders(self) -> int:
        """N + E, the positions the video occupies in the prompt."""
        return self.num_tokens + self.num_unframed

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    def sequence_features(self) -> torch.Tensor:
        """(N + E, D): what fills the video's placeholder positions, in order."""
        if self.unframed is None:
            return self.features
        return torch.cat([self.features, self.unframed.to(self.features.device, self.features.dtype)])

    def token_frames(self) -> torch.Tensor:
        """(N,) int64 on the CPU: the frame (group) of each of the N tokens."""
        if self.frame_ids is not None:
            return self.frame_ids.cpu()
        return torch.arange(self.num_frames).repeat_interleave(self.tokens_per_frame)

    def token_cells(self) -> torch.Tensor:
        """(N,) int64 on the CPU: the grid cell (row-major) of each of the N tokens within its frame (group)."""
        if self.cells is not None:
            return self.cells.cpu()
        if self.frame_ids is not None:
            raise ValueError("a sparse video (frame_ids given) needs cells to know its tokens' grid positions")
        return torch.arange(self.num_tokens) % self.tokens_per_frame

    def times(self) -> tuple[torch.Tensor, float]:
        """((num_frames,) float64 group times, sampled fps), one frame a second from 0 where unknown."""
        fps = self.sampled_fps or 1.0
        if self.group_times is not None:
            return self.group_times.double().cpu(), fps
        starts = torch.arange(self.num_frames, dtype=torch.float64) * self.frames_per_group
        return (starts + (self.frames_per_group - 1) / 2) / fps, fps


@dataclass
class PruneRecord:
    """What the model kept of one sample's visual tokens.

    ``kept_indices``: (k,) int64 on the CPU, ascending, indices into the video's N visual tokens (the order of
    :attr:`EncodedVideo.features`).
    """

    num_visual_tokens: int
    kept_indices: torch.Tensor

    @property
    def num_kept(self) -> int:
        return int(self.kept_indices.numel())


@dataclass
class GenerationResult:
    """The output of :meth:`ModelAdapter.generate` for a batch.

    Attributes:
        sequences: per sample, the (n,) int64 ids of the new tokens (CPU), the prompt excluded.
        texts: per sample, the decoded answer.
        records: per sample, what was kept.
        timings: seconds for the whole batch: ``select`` (the selector), ``prefill`` (the first forward pass
            minus the selection), ``generate`` (the remaining decoding steps).
        raw: what transformers' ``generate()`` returned (a tensor, or its output object with ``scores`` /
            ``logits`` when asked for with ``return_dict_in_generate=True``).

    With ``num_return_sequences=r`` ``sequences`` and ``texts`` hold r entries per sample, sample by sample.
    """

    sequences: list[torch.Tensor]
    texts: list[str]
    records: list[PruneRecord]
    timings: dict[str, float]
    raw: Any = None


class ModelAdapter(ABC):
    """One model family over transformers: the contract every adapter passes (``tests/models/contract.py``).

    An adapter turns (T, H, W, 3) uint8 frames into an :class:`EncodedVideo` with the model's own vision path and
    answers questions about encoded videos, pruning their tokens as a :class:`PruningConfig` says. Families are
    registered in :mod:`.registry`; :class:`~divprune_video.models.adapter.TransformersVideoAdapter` implements
    everything but loading, encoding and the prompt for models that take one placeholder token per visual token.
    """

    #: The ``model_type`` values (from the checkpoint's config.json) this adapter serves.
    model_types: ClassVar[tuple[str, ...]] = ()
    #: Frames the vision path encodes together (a temporal patch); streaming ingests frames in groups of this size.
    frames_per_group: ClassVar[int] = 1

    @classmethod
    @abstractmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: Optional[str] = None,
        dtype: Optional[torch.dtype] = None,
        attn_implementation: Optional[str] = None,
    ) -> "ModelAdapter":
        """Load a checkpoint (hub id or local folder)."""

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """The device the model runs on."""

    @abstractmethod
    def encode_frames(self, frames: np.ndarray, timing: Optional[FrameTiming] = None) -> EncodedVideo:
        """frames: (T, H, W, 3) uint8 RGB -> the video's visual tokens. ``timing``: when the frames were taken
        (families whose positions or prompt depend on time use it; default one frame a second)."""

    @abstractmethod
    def generate(
        self,
        videos: Sequence[EncodedVideo],
        questions: Sequence[str],
        pruning: PruningConfig,
        *,
        seed: Optional[int] = None,
        **generate_kwargs: Any,
    ) -> GenerationResult:
        """Answer ``questions[i]`` about ``videos[i]`` in one batch, pruning as ``pruning`` says; ``seed``: this
        call's selection seed (default ``pruning.seed``), for random methods."""

    @classmethod
    def frame_tokens(cls, config: Any) -> Optional[int]:
        """Visual tokens one frame (group) becomes under checkpoint ``config``, when the config alone fixes it
        (None for families whose frames keep their own resolution); lets a caller check a token budget before
        loading any weights."""
        return None

    def unframed_tokens(self) -> Optional[torch.Tensor]:
        """(E, D) tokens the model puts after every video's frame tokens (None for most families)."""
        return None

    @property
    def context_length(self) -> Optional[int]:
        """Positions the model's text decoder takes; None (the default) when unknown, and nothing is checked."""
        return None

    def check_context(
        self,
        prompt_lengths: Sequence[int],
        visual_tokens: Sequence[int],
        pruning: PruningConfig,
        generate_kwargs: Optional[dict[str, Any]] = None,
        sources: Optional[Sequence[str]] = None,
    ) -> None:
        """Raise :class:`~divprune_video.models.context.ContextLengthError` when prompt ``i`` (``prompt_lengths[i]``
        tokens, ``visual_tokens[i]`` of them visual), pruned as ``pruning`` says, with the answer's new tokens,
        exceeds :attr:`context_length`. The default checks nothing."""

    def text_tokens(self, question: str) -> Optional[int]:
        """Tokens of the prompt for ``question`` other than the video's visual tokens; None (the default) when the
        adapter cannot count them before encoding."""
        return None

    def video_from_tokens(
        self,
        features: torch.Tensor,
        frame_ids: torch.Tensor,
        cells: torch.Tensor,
        grid: tuple[int, int],
        num_frames: int,
        group_times: Optional[torch.Tensor] = None,
        sampled_fps: Optional[float] = None,
    ) -> EncodedVideo:
        """An :class:`EncodedVideo` of chosen frame tokens (a streaming memory), with the model's unframed tokens.

        Args:
            features: (N, D) frame tokens in time order.
            frame_ids: (N,) int64 frame group of each token in the stream (from 0), non-decreasing.
            cells: (N,) int64 grid cell of each token within its group.
            grid: (rows, cols) of tokens per frame group of the source.
            num_frames: how many distinct frame groups the tokens come from.
            group_times: (num_frames,) seconds of each of those groups, in order.
            sampled_fps: the rate the stream is sampled at.
        """
        return EncodedVideo(
            features,
            num_frames,
            grid,
            frame_ids=frame_ids,
            cells=cells,
            unframed=self.unframed_tokens(),
            frames_per_group=self.frames_per_group,
            group_times=group_times,
            sampled_fps=sampled_fps,
        )

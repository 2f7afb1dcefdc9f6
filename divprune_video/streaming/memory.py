"""Token memories with a fixed budget: the visual tokens of an endless stream of frames, kept bounded.

A memory takes each frame's tokens (F, D) and holds at most ``token_budget`` of all the tokens seen, in time order
(frame by frame, grid cell within a frame). Every update chooses the new memory among the candidates
``[memory ; new tokens]`` (the memory first, in time order), so it costs the same at frame 10 and frame 10 million:
what it touches is bounded by the budget and F, never by the stream's length.

* :class:`DiverseTokenMemory` (``"divprune"``): the new memory is exactly the set :func:`divprune_video.divprune`
  keeps of the candidates with ``num_keep=token_budget`` (the Max-Min diverse subset), so new tokens compete with
  the memory on equal terms and a long static scene cannot crowd out what happens later. Two ways to run it, with
  the same picks: ``"cached"`` keeps the (B + F)^2 distance matrix of the candidates between frames and computes
  only the F new rows and columns (O((B + F) F D)), then runs the greedy of :mod:`divprune_video.selection.greedy`
  on it (on the CPU, where that greedy is cheap next to the distances); ``"recompute"`` calls
  :func:`~divprune_video.divprune` on the candidates (on CUDA, where its Triton kernel rebuilds the Gram matrix
  and runs all greedy steps in one launch, far faster than the cached path's step-by-step PyTorch greedy, which
  launches kernels for each of its B steps; measurements: notes/design-history.md#divprune_videostreamingmemory).
* :class:`FifoTokenMemory` (``"recent"``): the latest ``token_budget`` tokens (a sliding window, no selection).
* :class:`UniformTokenMemory` (``"uniform"``): every s-th token of the stream, s a power of two doubled whenever
  the memory would overflow: evenly spaced over the whole history, between B/2 and B tokens.
* :class:`RandomTokenMemory` (``"random"``): a reservoir sample: every token seen so far is in the memory with the
  same probability B / N (seeded).

Every memory is usable without a model: ``memory.add(tokens)`` returns which candidates it kept. The memories are
registered by name in :data:`MEMORIES`; a new one is a :class:`TokenMemory` subclass with its :meth:`_choose`,
registered there.
"""

from __future__ import annotations

import numbers
import random
from dataclasses import dataclass
from typing import Callable, ClassVar, Literal, Optional, Union

import torch

from ..registry import Registry
from ..selection import _validate
from ..selection._validate import Metric
from ..selection.distance import (
    check_nonzero_norms,
    compute_dtype,
    cosine_from_gram,
    gram,
    inverse_norms,
    minkowski,
)
from ..selection.divprune_selector import divprune, launch_graphed
from ..selection.duplicates import first_occurrences, share_duplicate_distances
from ..selection.graphs import GRAPHS
from ..selection.greedy import first_pick_scores, greedy_from_distances

#: ``update`` modes of :class:`DiverseTokenMemory`.
UPDATE_MODES = ("auto", "cached", "recompute")


#: How the diverse memory is updated: "cached" distances (CPU), "recompute" (CUDA), or "auto" by device.
UpdateMode = Literal["auto", "cached", "recompute"]


class MemoryUpdate:
    """What one :meth:`TokenMemory.add` did.

    Attributes:
        frame_id: the frame number the tokens were filed under.
        kept: (k,) int64 on the CPU, ascending: the candidates kept, as indices into ``[memory before the call ;
            the frame's tokens]``; k = min(budget, candidates) for most methods. Where the selection still runs on
            the GPU when ``add`` returns (:class:`DiverseTokenMemory` on CUDA), reading it waits for the selection.
        num_candidates: memory size before the call plus the frame's tokens.
    """

    __slots__ = ("frame_id", "num_candidates", "_kept", "_wait")

    def __init__(
        self,
        frame_id: int,
        kept: Optional[torch.Tensor],
        num_candidates: int,
        wait: Optional[Callable[[], torch.Tensor]] = None,
    ) -> None:
        """kept: the indices, or None with ``wait``: a function that waits for them and returns them."""
        if kept is None and wait is None:
            raise ValueError("a MemoryUpdate needs its kept indices or a function that waits for them")
        self.frame_id = frame_id
        self.num_candidates = num_candidates
        self._kept = kept
        self._wait = wait

    @property
    def kept(self) -> torch.Tensor:
        if self._kept is None:
            self._kept = self._wait()
            self._wait = None
        return self._kept

    def __repr__(self) -> str:
        kept = "pending" if self._kept is None else f"{self._kept.numel()} kept"
        return f"MemoryUpdate(frame_id={self.frame_id}, num_candidates={self.num_candidates}, {kept})"


class DeferredChoice:
    """A choice still being computed on the GPU when :meth:`TokenMemory._choose` returned (its picks come from
    :meth:`TokenMemory._finish_choice`): ``count`` candidates will be kept; ``kept`` is filled when it is done."""

    def __init__(self, count: int, pending: object) -> None:
        self.count = count
        self.pending = pending
        self.kept: Optional[torch.Tensor] = None  # (count,) ascending, CPU


@dataclass(frozen=True)
class MemorySnapshot:
    """A copy of a memory at one moment (consistent: taken between two updates).

    Attributes:
        tokens: (M, D) tokens in time order, on the memory's device.
        frame_ids: (M,) int64 (CPU), the frame each token came from; non-decreasing.
        positions: (M,) int64 (CPU), each token's index within its frame (grid cell, row-major).
        token_indices: (M,) int64 (CPU), ascending, each token's index in the stream of all tokens seen.
        timestamps: (M,) float64 (CPU), the time of each token's frame in seconds.
        num_frames_seen, num_tokens_seen: what the memory was given in total.
    """

    tokens: torch.Tensor
    frame_ids: torch.Tensor
    positions: torch.Tensor
    token_indices: torch.Tensor
    timestamps: torch.Tensor
    num_frames_seen: int
    num_tokens_seen: int

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_frames(self) -> int:
        """How many distinct frames the tokens come from."""
        return int(torch.unique_consecutive(self.frame_ids).numel())


class TokenMemory:
    """A fixed-budget memory of a stream's visual tokens; subclasses decide which candidates stay (:meth:`_choose`).

    The storage is allocated once, at the first frame, for ``token_budget + F`` tokens (reallocated only if a
    later frame has more tokens than every earlier one), so nothing grows with the stream.

    Args:
        token_budget: the most tokens the memory ever holds, an int >= 1.
    """

    method: ClassVar[str] = ""

    @classmethod
    def from_options(
        cls, token_budget: int, *, metric: Metric = "cosine", update: UpdateMode = "auto", seed: int = 0
    ) -> "TokenMemory":
        """The memory for ``token_budget`` from the options every memory is offered (``metric`` and ``update``:
        the diverse memory's; ``seed``: the random one's); a memory takes the ones it has."""
        return cls(token_budget)

    def __init__(self, token_budget: int) -> None:
        if isinstance(token_budget, bool) or not isinstance(token_budget, numbers.Integral) or token_budget < 1:
            raise ValueError(f"token_budget must be an int >= 1; got {token_budget!r}")
        self.token_budget = int(token_budget)
        self.reset()

    def reset(self) -> None:
        """Forget everything (the storage is freed too)."""
        self._size = 0
        self._capacity = 0
        self.num_frames_seen = 0
        self.num_tokens_seen = 0
        self._last_frame_id = -1
        self._tokens: Optional[torch.Tensor] = None  # (capacity, D)
        self._frame_ids = torch.empty(0, dtype=torch.long)  # (capacity,) and the rest: CPU metadata
        self._positions = torch.empty(0, dtype=torch.long)
        self._token_indices = torch.empty(0, dtype=torch.long)
        self._timestamps = torch.empty(0, dtype=torch.float64)
        # A choice still running on the GPU, with its number of candidates: finished (the kept candidates moved to
        # the front) by the next add or read (_settle).
        self._deferred: Optional[tuple[DeferredChoice, int]] = None

    # -- reading ---------------------------------------------------------------------------------------------------

    @property
    def num_tokens(self) -> int:
        """M, the tokens held now (never more than ``token_budget``)."""
        return self._size

    @property
    def tokens(self) -> torch.Tensor:
        """(M, D) the tokens held, in time order: a view, valid until the next :meth:`add` (see :meth:`snapshot`)."""
        if self._tokens is None:
            raise ValueError("the memory is empty: no frame has been added yet")
        self._settle()
        return self._tokens[: self._size]

    @property
    def frame_ids(self) -> torch.Tensor:
        """(M,) int64, the frame each held token came from, in time order."""
        self._settle()
        return self._frame_ids[: self._size].clone()

    @property
    def timestamps(self) -> torch.Tensor:
        """(M,) float64, the time (seconds) of each held token's frame."""
        self._settle()
        return self._timestamps[: self._size].clone()

    @property
    def storage_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of every buffer the memory holds (they stay fixed once the first frame is in)."""
        shapes = {
            "tokens": tuple(self._tokens.shape) if self._tokens is not None else (0,),
            "frame_ids": tuple(self._frame_ids.shape),
            "token_indices": tuple(self._token_indices.shape),
        }
        return shapes

    def snapshot(self) -> MemorySnapshot:
        """A copy of the memory (tokens cloned on their device, metadata on the CPU)."""
        self._settle()
        size = self._size
        tokens = self.tokens.clone() if self._tokens is not None else torch.empty(0, 0)
        return MemorySnapshot(
            tokens=tokens,
            frame_ids=self._frame_ids[:size].clone(),
            positions=self._positions[:size].clone(),
            token_indices=self._token_indices[:size].clone(),
            timestamps=self._timestamps[:size].clone(),
            num_frames_seen=self.num_frames_seen,
            num_tokens_seen=self.num_tokens_seen,
        )

    # -- updating --------------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def add(
        self, tokens: torch.Tensor, *, frame_id: Optional[int] = None, timestamp: Optional[float] = None
    ) -> MemoryUpdate:
        """Merge one frame's tokens into the memory.

        Args:
            tokens: (F, D) float16, bfloat16, float32 or float64 tensor, the frame's tokens in grid order;
                F <= ``token_budget``; the same D, dtype and device as the earlier frames'. Tokens that require
                grad are copied without their autograd graph (selection is not differentiable).
            frame_id: the frame's number; default: the number of frames added before (0, 1, 2, ...). Must
                increase from frame to frame (the memory is in time order).
            timestamp: the frame's time in seconds; default: ``float(frame_id)``.

        Returns:
            A :class:`MemoryUpdate`; ``kept`` indexes ``[memory before the call ; tokens]``.

        Raises:
            TypeError / ValueError: naming the frame, for tokens that are not a non-empty (F, D) tensor of those
                dtypes holding values (float8 tokens and meta tensors are TypeErrors), that hold NaN / Inf (or an
                all-zero token under cosine), that do not match the earlier frames, or that outnumber the budget;
                for a frame_id that does not increase.
        """
        frame_id = self._check_frame_id(frame_id)
        self._check_tokens(tokens, frame_id)
        self._settle()  # the previous frame's choice, if it still ran
        num_new = int(tokens.shape[0])
        # The frame is written right after the memory, so the candidates [memory ; frame] are the slots [0, end) of
        # the storage (capacity B + F): no concatenation and no allocation per frame.
        self._ensure_capacity(num_new, tokens)
        start, end = self._size, self._size + num_new
        self._tokens[start:end].copy_(tokens)
        self._frame_ids[start:end] = frame_id
        self._positions[start:end] = torch.arange(num_new)
        self._token_indices[start:end] = torch.arange(self.num_tokens_seen, self.num_tokens_seen + num_new)
        self._timestamps[start:end] = float(frame_id) if timestamp is None else float(timestamp)
        self._appended(start, end)  # before the choice: the cached diverse memory chooses from these distances
        kept = self._choose(start, end)
        if kept is None:
            update = MemoryUpdate(frame_id, torch.arange(end), end)
            self._size = end
        elif isinstance(kept, DeferredChoice):
            # Still running: the compaction waits for the next add or read (_settle); the size is known already.
            self._deferred = (kept, end)
            self._size = kept.count
            update = MemoryUpdate(frame_id, None, end, wait=lambda: self._kept_of(kept))
        else:
            update = MemoryUpdate(frame_id, self._keep(kept, end), end)
        self.num_frames_seen += 1
        self.num_tokens_seen += num_new
        self._last_frame_id = frame_id
        return update

    def wait(self) -> None:
        """Wait for a choice still running on the GPU and apply it (reading the memory and the next :meth:`add`
        do this themselves)."""
        self._settle()

    @torch.inference_mode()  # as add: the storage is made of inference tensors, and a read may call this
    def _settle(self) -> None:
        """Finish the deferred choice, if any: wait for its picks and move the kept candidates to the front."""
        if self._deferred is None:
            return
        choice, end = self._deferred
        choice.kept = self._keep(self._finish_choice(choice, end), end)
        self._deferred = None

    def _keep(self, kept: torch.Tensor, end: int) -> torch.Tensor:
        """Evict: move the ``kept`` (ascending, so time order stays) of the ``end`` candidates to the front and
        shrink the size to them; the others' slots are reused by the next frame. Returns ``kept`` on the CPU."""
        kept_cpu = kept.cpu()
        self._compact(kept, kept_cpu, end)
        self._size = int(kept_cpu.numel())
        return kept_cpu

    def _kept_of(self, choice: DeferredChoice) -> torch.Tensor:
        if choice.kept is None:
            self._settle()
        return choice.kept

    def _choose(self, start: int, end: int) -> Union[torch.Tensor, DeferredChoice, None]:
        """Which of the ``end`` candidates stay (``start`` of them the old memory): (k,) int64 ascending indices on
        the CPU or the tokens' device, None to keep them all, or a :class:`DeferredChoice` still running on the
        GPU (then :meth:`_finish_choice` gives its indices; the candidates stay as they are until then)."""
        raise NotImplementedError

    def _finish_choice(self, choice: DeferredChoice, end: int) -> torch.Tensor:
        """The (k,) int64 ascending indices of a :class:`DeferredChoice` among the ``end`` candidates (waits)."""
        raise NotImplementedError

    def _appended(self, start: int, end: int) -> None:
        """Hook: candidates ``start:end`` were just written (DiverseTokenMemory computes their distances here)."""

    def _compact(self, kept: torch.Tensor, kept_cpu: torch.Tensor, num_candidates: int) -> None:
        """Move the kept candidates (of the first ``num_candidates`` slots) to the front, in time order."""
        count = int(kept_cpu.numel())
        device_kept = kept.to(self._tokens.device)
        self._tokens[:count] = self._tokens[:num_candidates].index_select(0, device_kept)
        for buffer in (self._frame_ids, self._positions, self._token_indices, self._timestamps):
            buffer[:count] = buffer.index_select(0, kept_cpu)

    # -- checks and storage ----------------------------------------------------------------------------------------

    def _check_frame_id(self, frame_id: Optional[int]) -> int:
        if frame_id is None:
            return max(self.num_frames_seen, self._last_frame_id + 1)
        if isinstance(frame_id, bool) or not isinstance(frame_id, numbers.Integral):
            raise TypeError(f"frame_id must be an int; got {frame_id!r}")
        if frame_id <= self._last_frame_id:
            raise ValueError(
                f"frame_id must increase from frame to frame (the memory is in time order); got "
                f"{frame_id} after {self._last_frame_id}"
            )
        return int(frame_id)

    def _check_tokens(self, tokens: torch.Tensor, frame_id: int) -> None:
        try:
            _validate.check_tokens(tokens, rank=2)
        except (TypeError, ValueError) as error:
            raise type(error)(f"frame {frame_id}: {error}") from None
        if tokens.shape[0] > self.token_budget:
            raise ValueError(
                f"frame {frame_id} has {tokens.shape[0]} tokens, more than token_budget="
                f"{self.token_budget}; the budget must hold at least one frame's tokens"
            )
        if self._tokens is not None:
            reference = self._tokens
            if tokens.shape[1] != reference.shape[1]:
                raise ValueError(
                    f"frame {frame_id} has tokens of dimension {tokens.shape[1]}; the memory holds "
                    f"dimension {reference.shape[1]}"
                )
            if tokens.dtype != reference.dtype or tokens.device != reference.device:
                raise ValueError(
                    f"frame {frame_id}'s tokens are {tokens.dtype} on {tokens.device}; the memory holds "
                    f"{reference.dtype} on {reference.device}"
                )
        self._check_values(tokens, frame_id)

    def _check_values(self, tokens: torch.Tensor, frame_id: int) -> None:
        if not bool(torch.isfinite(tokens).all()):
            _raise_named(lambda: _validate.check_finite(tokens), frame_id)

    def _ensure_capacity(self, num_new: int, tokens: torch.Tensor) -> None:
        needed = self.token_budget + num_new
        if needed <= self._capacity:
            return
        size, old = self._size, self._tokens
        self._tokens = torch.empty(needed, tokens.shape[1], dtype=tokens.dtype, device=tokens.device)
        if old is not None:
            self._tokens[:size] = old[:size]
        self._frame_ids = _grown(self._frame_ids, needed, size)
        self._positions = _grown(self._positions, needed, size)
        self._token_indices = _grown(self._token_indices, needed, size)
        self._timestamps = _grown(self._timestamps, needed, size)
        self._grow_extra(needed, size, tokens)
        self._capacity = needed

    def _grow_extra(self, capacity: int, size: int, tokens: torch.Tensor) -> None:
        """Hook: reallocate method-specific buffers to ``capacity`` keeping the first ``size`` entries."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_budget={self.token_budget}, tokens={self._size}, "
            f"frames_seen={self.num_frames_seen})"
        )


class DiverseTokenMemory(TokenMemory):
    """The memory DivPrune keeps: after every frame, exactly the tokens
    ``divprune(cat([memory, tokens]), num_keep=token_budget, metric=metric)`` picks (in time order), or all of them
    while they fit.

    Args:
        token_budget: the most tokens held.
        metric: ``"cosine"`` (default), ``"l2"`` or ``"l1"``, as in :func:`~divprune_video.divprune`.
        update: ``"cached"`` (keep the candidates' distance matrix between frames; compute only the new rows and
            columns), ``"recompute"`` (call :func:`~divprune_video.divprune` on the candidates, which rebuilds the
            matrix: the fused Triton kernel on CUDA) or ``"auto"`` (recompute on CUDA, cached elsewhere). Both pick
            the same tokens wherever the BLAS computes each inner product the same way whatever the matrix shape
            (MKL on the CPU: tested frame by frame). Exact duplicates (a static scene) tie the same way on both
            whatever the BLAS: both give them their first occurrence's distances and 0 between copies. On CUDA,
            cuBLAS chooses kernels by shape, so near-ties between different tokens may still go differently, one
            more reason ``"auto"`` recomputes there.

    Cost per frame with M memory tokens and F new ones (C = M + F <= B + F): cached: O(C F D) for the new
    distances, O(C^2) for the first pick's scores and the compaction, O(B C) for the greedy steps; recompute:
    O(C^2 D) for the Gram matrix plus the same greedy. Memory: O(C D) tokens and, cached, one (B + F)^2 matrix.

    On CUDA (recompute), once ``divprune`` replays a CUDA graph for the candidates' shape (from the second
    selection of one shape: the first runs eagerly), :meth:`add` queues the selection on a stream of the memory's
    own and returns without waiting: the size is known at once, and the next :meth:`add` or read (or :meth:`wait`)
    waits for the picks and applies them. The caller's next frame encode, host-bound, runs meanwhile (see
    :meth:`_launch`).
    """

    method = "divprune"

    @classmethod
    def from_options(
        cls, token_budget: int, *, metric: Metric = "cosine", update: UpdateMode = "auto", seed: int = 0
    ) -> "DiverseTokenMemory":
        return cls(token_budget, metric=metric, update=update)

    def __init__(self, token_budget: int, *, metric: Metric = "cosine", update: UpdateMode = "auto") -> None:
        _validate.check_metric(metric)
        if update not in UPDATE_MODES:
            raise ValueError(f"update must be one of {UPDATE_MODES}; got {update!r}")
        self.metric = metric
        self.update = update
        super().__init__(token_budget)

    def reset(self) -> None:
        super().reset()
        # The cached mode's state between frames: _distances[:M, :M] is the distance matrix of the M tokens held,
        # in the order of _tokens[:M] (row i: the distances from token i, as divprune's matrix would have them,
        # exact duplicates resolved), and under cosine _inverse_norms[:M] their 1 / ||x||. It stays valid while
        # tokens come and go because an entry depends only on its two tokens (and their inverse norms), never on
        # which other tokens are candidates; _compact moves rows and columns along with their tokens. So a frame
        # adds only its F rows and columns (_appended). The diagonal holds no distance (first_pick_scores writes
        # +inf there in place before each greedy; the duplicate sharing masks it to 0), so nothing relies on it.
        self._distances: Optional[torch.Tensor] = None  # (capacity, capacity) = (B + F)^2, cached mode
        self._inverse_norms: Optional[torch.Tensor] = None  # (capacity,), cached mode under cosine
        self._new_inverse: Optional[torch.Tensor] = None  # (F,) of the frame being added
        self._stream: Optional[torch.cuda.Stream] = None  # where the recompute mode's selections run (_launch)

    @property
    def resolved_update(self) -> str:
        """``"cached"`` or ``"recompute"`` (``"auto"`` resolved for the memory's device; CPU until a frame is in)."""
        if self.update != "auto":
            return self.update
        # Fixed from the first frame on: later frames must be on the same device (_check_tokens). _grow_extra runs
        # after the storage is allocated, so it already sees the right answer.
        on_cuda = self._tokens is not None and self._tokens.is_cuda
        return "recompute" if on_cuda else "cached"

    @property
    def storage_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = super().storage_shapes
        if self._distances is not None:
            shapes["distances"] = tuple(self._distances.shape)
        return shapes

    def _check_values(self, tokens: torch.Tensor, frame_id: int) -> None:
        if self.metric != "cosine":
            return super()._check_values(tokens, frame_id)
        # One pass and one host sync: a token is finite with a non-zero norm exactly when 1 / ||x|| is finite and
        # positive; the precise checks run only to name the problem.
        inverse = inverse_norms(tokens)
        self._new_inverse = inverse  # reused for the cached distances
        if not bool((torch.isfinite(inverse) & (inverse > 0)).all()):
            _raise_named(lambda: _validate.check_finite(tokens), frame_id)
            _raise_named(lambda: check_nonzero_norms(inverse), frame_id)
            raise ValueError(f"frame {frame_id}: a token's norm overflows float32; its cosine distance is undefined")

    def _grow_extra(self, capacity: int, size: int, tokens: torch.Tensor) -> None:
        if self.resolved_update != "cached":
            return  # recompute keeps no matrix between frames
        dtype = compute_dtype(tokens.dtype)
        old = self._distances
        self._distances = torch.empty(capacity, capacity, dtype=dtype, device=tokens.device)
        if old is not None:
            self._distances[:size, :size] = old[:size, :size]
        if self.metric == "cosine":
            inverse = self._inverse_norms
            self._inverse_norms = torch.empty(capacity, dtype=dtype, device=tokens.device)
            if inverse is not None:
                self._inverse_norms[:size] = inverse[:size]

    def _appended(self, start: int, end: int) -> None:
        if self.resolved_update != "cached":
            return
        # The new rows and columns of the candidates' distance matrix, with the formulas of
        # selection.distance.pairwise_distance (so the matrix equals the one divprune would build). The old rows'
        # new columns are computed, not copied from the transposed new rows: computed distances are not
        # bit-symmetric (d_ij and d_ji round differently), and divprune's matrix holds each as computed.
        candidates, new = self._tokens[:end], self._tokens[start:end]
        distances = self._distances
        if self.metric == "cosine":
            inverse = self._inverse_norms
            inverse[start:end] = self._new_inverse
            distances[start:end, :end] = cosine_from_gram(gram(new, candidates), inverse[start:end], inverse[:end])
            if start:
                distances[:start, start:end] = cosine_from_gram(
                    gram(candidates[:start], new), inverse[:start], inverse[start:end]
                )
        else:
            distances[start:end, :end] = minkowski(new, candidates, self.metric)
            if start:
                distances[:start, start:end] = minkowski(candidates[:start], new, self.metric)
        first = first_occurrences(candidates)
        if first is not None:
            self._share_duplicates(first, start, end)

    def _share_duplicates(self, first: torch.Tensor, start: int, end: int) -> None:
        """Give exact duplicates among the candidates (``first``: (end,) first occurrences) the distances of their
        first occurrence and 0 between them, as divprune's matrix has them (a static scene repeats every token).
        The old block already has them, so only the new rows and columns change."""
        block = self._distances[:end, :end]
        new_first, old_first = first[start:end], first[:start]
        new_rows = share_duplicate_distances(block.index_select(0, new_first), new_first, first)
        old_columns = share_duplicate_distances(block.index_select(0, old_first), old_first, new_first)
        block[start:end] = new_rows
        block[:start, start:end] = old_columns

    def _choose(self, start: int, end: int) -> Optional[torch.Tensor]:
        # The memory after every frame is divprune([memory ; frame], num_keep=budget): not divprune of the whole
        # stream (that needs every token ever seen), but the offline selector's choice among what is still held
        # plus the new frame. So the cost is bounded by B + F whatever the stream's length, one rule defines the
        # memory (both update paths and the tests check against divprune itself, frame by frame), and old and new
        # tokens are scored alike: a new token displaces an old one only by being more diverse, never for being new.
        #
        # Eviction is implicit: the greedy picks `budget` of the `end` candidates and the others are dropped (while
        # everything fits nothing is chosen). Ties go to the lowest index (argmax returns the first maximum) and
        # the candidates are in time order, so on a tie the older token stays; exact copies (a static scene) tie at
        # every step, so of each set of copies the oldest is picked first and the new frame's copies are the first
        # to be dropped.
        if end <= self.token_budget:
            return None
        if self.resolved_update == "recompute":
            # CUDA: divprune's Triton path rebuilds the Gram matrix and runs every greedy step in one launch, where
            # the cached path's greedy launches kernels for each of its B steps. And cuBLAS picks kernels by shape,
            # so a matrix grown block by block could round differently from the one divprune builds.
            deferred = self._launch(end)
            if deferred is not None:
                return deferred
            # _launch asked the graph cache already (a call counts towards a capture, or an eager call after a
            # fallback): not again here.
            picks = divprune(self._tokens[:end], num_keep=self.token_budget, metric=self.metric, cuda_graph=False)
        else:
            # CPU: the distances are the expensive part (rebuilding them is O(C^2 D), extending them O(C F D)); the
            # greedy over the cached matrix is O(B C) of cheap steps.
            distances = self._distances[:end, :end].unsqueeze(0)
            valid = torch.ones(1, end, dtype=torch.bool, device=distances.device)
            scores = first_pick_scores(distances, valid)  # sets the diagonal to +inf, as divprune does
            picks = greedy_from_distances(distances, scores, valid, [self.token_budget])[0]
        return picks.sort().values  # picks come in selection order; sorted, the memory stays in time order

    def _launch(self, end: int) -> Optional[DeferredChoice]:
        """Queue ``divprune(candidates, budget)`` as a replay of its CUDA graph on the memory's own stream and
        return without waiting (None where divprune would not replay a graph: it then runs as usual).

        The selection (4 ms at budget 4,096 on an H200) then runs on the GPU while the caller goes on, typically
        encoding the next frame, whose preprocessing and vision tower leave the GPU mostly idle; the next add or
        read waits for it. It has its own stream so that the caller's synchronizing work (the next frame's upload,
        say) does not wait behind it. The picks are the replay's, so they are divprune's, as always."""
        candidates = self._tokens[:end]
        if not candidates.is_cuda:
            return None
        device = candidates.device
        if self._stream is None:
            self._stream = torch.cuda.Stream(device)
        self._stream.wait_stream(torch.cuda.current_stream(device))  # the candidates are written
        with torch.cuda.stream(self._stream):
            pending = launch_graphed(candidates, self.token_budget, self.metric)
        return None if pending is None else DeferredChoice(self.token_budget, pending)

    def _finish_choice(self, choice: DeferredChoice, end: int) -> torch.Tensor:
        picks = GRAPHS.finish(choice.pending)  # waits for the replay on the host
        if picks is None:  # the replay fell back (possible copies): the eager path, on the unchanged candidates
            picks = divprune(self._tokens[:end], num_keep=self.token_budget, metric=self.metric, cuda_graph=False)
        return picks.sort().values

    def _compact(self, kept: torch.Tensor, kept_cpu: torch.Tensor, num_candidates: int) -> None:
        super()._compact(kept, kept_cpu, num_candidates)
        if self.resolved_update != "cached":
            return
        # The same index on rows and columns: the kept tokens' block, in their new order (see reset for why it
        # stays valid).
        count = int(kept_cpu.numel())
        device_kept = kept.to(self._distances.device)
        block = self._distances[:num_candidates, :num_candidates]
        self._distances[:count, :count] = block.index_select(0, device_kept).index_select(1, device_kept)
        if self._inverse_norms is not None:
            self._inverse_norms[:count] = self._inverse_norms[:num_candidates].index_select(0, device_kept)


class FifoTokenMemory(TokenMemory):
    """The latest ``token_budget`` tokens (method ``"recent"``: no selection, a sliding window)."""

    method = "recent"

    def _choose(self, start: int, end: int) -> Optional[torch.Tensor]:
        if end <= self.token_budget:
            return None
        return torch.arange(end - self.token_budget, end)  # the oldest candidates are evicted


class UniformTokenMemory(TokenMemory):
    """Tokens evenly spaced over the whole stream: every ``stride``-th token seen (by index in the stream), the
    stride a power of two that doubles whenever more than ``token_budget`` tokens would stay. Holds between about
    B/2 and B tokens."""

    method = "uniform"

    def reset(self) -> None:
        super().reset()
        self.stride = 1

    def _choose(self, start: int, end: int) -> Optional[torch.Tensor]:
        # Strides are powers of two, so the tokens kept at stride 2s are a subset of those kept at stride s: the
        # memory never needs a token it dropped earlier. Each doubling evicts every other held token; of the new frame,
        # only the tokens at multiples of the stride join.
        indices = self._token_indices[:end]
        while int((indices % self.stride == 0).sum()) > self.token_budget:
            self.stride *= 2
        if self.stride == 1:
            return None
        return torch.nonzero(indices % self.stride == 0).flatten()


class RandomTokenMemory(TokenMemory):
    """A uniform random sample of every token seen (reservoir sampling, seeded): after N tokens each one is held
    with probability min(1, B / N)."""

    method = "random"

    @classmethod
    def from_options(
        cls, token_budget: int, *, metric: Metric = "cosine", update: UpdateMode = "auto", seed: int = 0
    ) -> "RandomTokenMemory":
        return cls(token_budget, seed=seed)

    def __init__(self, token_budget: int, *, seed: int = 0) -> None:
        self.seed = seed
        super().__init__(token_budget)

    def reset(self) -> None:
        super().reset()
        self._rng = random.Random(self.seed)

    def _choose(self, start: int, end: int) -> Optional[torch.Tensor]:
        if end <= self.token_budget:
            return None
        # Reservoir sampling (Algorithm R), one token at a time in stream order: the n-th token seen
        # (n = seen + offset in the frame + 1) joins while the memory has room, and after that replaces a uniformly
        # chosen member with probability B / n, which keeps every token seen so far in the memory with the same
        # probability B / n. `members` holds candidate indices by slot; an evicted member is simply overwritten.
        members = list(range(start))
        seen = self.num_tokens_seen
        for candidate in range(start, end):
            if len(members) < self.token_budget:
                members.append(candidate)
            else:
                slot = self._rng.randrange(seen + candidate - start + 1)
                if slot < self.token_budget:
                    members[slot] = candidate  # any fixed slot order is fine: the evicted member is uniform
        return torch.tensor(sorted(members), dtype=torch.long)


#: The streaming memories by method name.
MEMORIES: Registry[type[TokenMemory]] = Registry("streaming memory")
for _memory in (DiverseTokenMemory, FifoTokenMemory, UniformTokenMemory, RandomTokenMemory):
    MEMORIES.register(_memory.method, _memory)


def token_memory(
    method: str, token_budget: int, *, metric: Metric = "cosine", update: UpdateMode = "auto", seed: int = 0
) -> TokenMemory:
    """The memory registered as ``method`` in :data:`MEMORIES` (``"divprune"``, ``"uniform"``, ``"random"``,
    ``"recent"``, or one of yours); ``metric`` and ``update`` apply to divprune, ``seed`` to random."""
    return MEMORIES.get(method).from_options(token_budget, metric=metric, update=update, seed=seed)


def _grown(buffer: torch.Tensor, capacity: int, size: int) -> torch.Tensor:
    grown = torch.zeros(capacity, dtype=buffer.dtype)
    grown[:size] = buffer[:size]
    return grown


def _raise_named(check, frame_id: int) -> None:  # type: ignore[no-untyped-def]
    """Run ``check``; re-raise its ValueError with the frame named."""
    try:
        check()
    except ValueError as error:
        raise ValueError(f"frame {frame_id}: {error}") from None

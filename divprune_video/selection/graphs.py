"""CUDA graphs of the full Triton path, for selections repeated at one shape.

At 32 frames (N = 4,608) the GPU's work in :func:`~.divprune_selector.divprune` is under a millisecond, and
queuing it (about 40 PyTorch operations and two Triton launches, plus the host sync of the input checks) costs
about as much again: the call is bound by the host. A pipeline asks the same question shape over and over (the
same frames, tokens per frame and keep ratio), so the second call of a shape captures the whole selection once
(:class:`GraphedSelection`) and every later call replays it: one copy of the tokens in, one replay, one sync.

The graph runs the same operations, in the same order, as the eager path (the Gram matrix, inverse norms, first-pick
scores and step loop of :mod:`._triton`), so it picks the same tokens. It cannot stop half way for the input checks
or for exact duplicates (which the eager path resolves before its step loop, :mod:`.duplicates`), so it computes
their answers beside the picks, and when the tokens are not finite, have a zero norm or may contain exact duplicates
its picks are dropped and the caller runs the eager path, which raises or resolves the duplicates as always.

Exact duplicates are ruled out from the first-pick scores, without the eager path's fingerprints and sort (a fifth
of the replay at N = 4,608): two bitwise-equal tokens i and k have a computed cosine distance
``1 - (g_ik r_i) r_k`` within about ``2 D u`` of 0 (u = 2^-24: the Gram entry and the squared norm are float32
sums of the same D products, each within ``D u`` of the exact sum in any order), so their first-pick scores are at
most that. When every score is above :func:`duplicate_threshold` (four times the bound) no two tokens are equal;
when one is not, the replay falls back. Distinct tokens closer than the threshold only cost that fallback, and a
shape whose replays keep falling back (a static scene repeats every token) is sent to the eager path for a growing
number of calls (:data:`MAX_EAGER_STREAK`), so it pays for a failed replay rarely.

Graphs hold their buffers (the Gram matrix: 85 MB at N = 4,608), so only rows up to :data:`GRAPH_MAX_TOKENS` are
captured and at most :data:`GRAPH_CACHE_SIZE` graphs are kept (least recently used dropped); :func:`clear_graphs`
frees them all.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple, Optional

import torch

from .devices import free_bytes
from .distance import gram, inverse_norms
from .duplicates import find_duplicates
from .greedy import first_pick_scores

logger = logging.getLogger(__name__)

#: Longest row that is captured (its graph holds an (N, N) float32 Gram matrix: 268 MB at 8,192).
GRAPH_MAX_TOKENS = 8192
#: Graphs kept at once; the least recently used is dropped beyond this.
GRAPH_CACHE_SIZE = 4
#: Calls of one shape before it is captured: a shape seen once may never come back.
CAPTURE_AFTER_CALLS = 2
#: Most calls a shape runs eagerly after its replays fell back (doubling from 1 with each fallback in a row).
MAX_EAGER_STREAK = 64
#: A shape is not captured when its graph would keep more than this share of the device's free memory.
GRAPH_MEMORY_FRACTION = 0.1


def graph_bytes(num_tokens: int, dim: int, element_size: int, resolve_duplicates: bool) -> int:
    """About the memory a captured selection keeps: its copy of the (N, D) tokens and its (N, N) float32 Gram
    matrix; with the duplicates resolved also the two gathered distance matrices and the fingerprints' products."""
    tokens = num_tokens * dim * element_size
    matrix = 4 * num_tokens * num_tokens
    return 2 * tokens + 3 * matrix if resolve_duplicates else tokens + matrix


def duplicate_threshold(dim: int) -> float:
    """The first-pick score at or below which (N, ``dim``) tokens may hold exact duplicates: four times the
    rounding bound ``2 (dim + 8) u`` on the computed distance between equal tokens (u = 2^-24; the Gram matrix of
    float32 tokens is an IEEE product, :func:`~.distance.gram`, so float32 products add one rounding each)."""
    return 4 * 2 * (dim + 8) * 2.0**-24


class GraphKey(NamedTuple):
    """What a captured selection is specific to."""

    num_tokens: int
    dim: int
    dtype: torch.dtype
    count: int
    device: torch.device


class Replay(NamedTuple):
    """A replay's answer: the picks, or None with why the caller must run the eager path instead."""

    picks: Optional[torch.Tensor]
    fallback: Optional[Literal["unusable", "duplicates"]] = None


class LaunchedReplay:
    """A replay queued on a stream (:meth:`GraphedSelection.launch`): its picks and checks are copies, so later
    replays do not overwrite them; :meth:`result` waits for it."""

    def __init__(self, picks: torch.Tensor, checks: torch.Tensor, done: torch.cuda.Event, threshold: float) -> None:
        self.picks, self.checks, self.done, self.threshold = picks, checks, done, threshold

    def result(self) -> Replay:
        """Wait for the replay (on the host) and say whether its picks stand: (count,) int64 picks in selection
        order, usable on the caller's current stream, or no picks and why (see :meth:`GraphedSelection.__call__`)."""
        self.done.synchronize()
        lowest_inv, highest_inv, closest = self.checks.tolist()
        if not (lowest_inv > 0 and highest_inv < math.inf):  # False for NaN too
            return Replay(None, "unusable")
        if not closest > self.threshold:
            return Replay(None, "duplicates")
        # Made on the launching stream and read on the caller's: not reused before the caller's reads are done.
        self.picks.record_stream(torch.cuda.current_stream(self.picks.device))
        return Replay(self.picks)


class GraphedSelection:
    """One captured cosine selection of ``count`` picks from (N, D) CUDA tokens of one dtype.

    Two variants, as the eager path has two routes:

    * ``resolve_duplicates=False``: the Gram route (the kernels read the Gram matrix). Its replay falls back when two
      tokens may be equal (:func:`duplicate_threshold`).
    * ``resolve_duplicates=True``: the eager path's route for tokens with exact duplicates. Every token reads its
      distances from its first occurrence (:mod:`.duplicates`: fingerprints and a sort, then two gathers of the
      (N, N) distance matrix), so copies are resolved inside the graph; with no copies the distances, and so the
      picks, are those of the Gram route. It falls back only when two different tokens share a fingerprint.

    Built from example tokens: a warm-up run on a side stream (it compiles the Triton kernels and fills the
    caches the capture must not touch), then the capture. :meth:`__call__` replays it on new tokens.
    """

    def __init__(self, example: torch.Tensor, count: int, resolve_duplicates: bool = False) -> None:
        """example: (N, D) float16, bfloat16 or float32 CUDA tokens (their values are not kept); count: picks."""
        self.count = count
        self.resolve_duplicates = resolve_duplicates
        self._lock = threading.Lock()
        # Normal tensors even when the capture runs under torch.inference_mode (as the streaming memory's does):
        # a replay outside it must be able to copy new tokens into the graph's input.
        with torch.inference_mode(False), torch.no_grad(), torch.cuda.device(example.device):
            self.tokens = torch.empty_like(example, memory_format=torch.contiguous_format)
            self.tokens.copy_(example)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._run()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: other threads (a question's prefill while the stream ingests, the next frame's encode
            # while the memory updates) may allocate or synchronize during this capture.
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.picks, self.checks = self._run()
        self.threshold = duplicate_threshold(example.shape[1])
        self._last: Optional[torch.cuda.Event] = None  # the end of the latest replay's copies

    def _run(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The selection without a host sync: (count,) picks and (3,) float32 checks: the smallest and largest
        inverse norm (every token is usable under cosine when both are finite and positive; NaN propagates), then
        on the Gram route the smallest first-pick score (no two tokens are equal when it is above
        :func:`duplicate_threshold`), on the other route +inf, or -inf when two different tokens share a
        fingerprint."""
        from ._triton import cosine_first_scores, resolved_cosine, step_loop

        batch = self.tokens.unsqueeze(0)
        src = gram(batch, batch)  # (1, N, N), queued first as on the eager path
        inv = inverse_norms(batch)  # (1, N), as the eager path's input check computes them
        lowest, highest = torch.aminmax(inv)
        if not self.resolve_duplicates:
            scores = cosine_first_scores(src, inv, None)
            checks = torch.stack([lowest, highest, scores.amin()])
            return step_loop(src, inv, scores, [self.count])[0], checks
        duplicates = find_duplicates(batch)
        first = duplicates.fingerprint_firsts()
        dist = resolved_cosine(src, inv, first)
        scores = first_pick_scores(dist, None)
        resolved = torch.where(duplicates.mismatches(first), -math.inf, math.inf).to(lowest)
        return step_loop(dist, None, scores, [self.count])[0], torch.stack([lowest, highest, resolved])

    def __call__(self, tokens: torch.Tensor) -> Replay:
        """Replay on (N, D) ``tokens`` of the captured shape: (count,) int64 picks in selection order, or no picks
        and why: ``"unusable"`` (a token is not finite or has a zero norm: the eager path raises) or
        ``"duplicates"`` (two tokens may be equal, or share a fingerprint: the eager path resolves them)."""
        return self.launch(tokens).result()

    def launch(self, tokens: torch.Tensor) -> LaunchedReplay:
        """Queue a replay on (N, D) ``tokens`` on the current stream, without waiting for it."""
        with self._lock, torch.cuda.device(self.tokens.device):
            stream = torch.cuda.current_stream()
            if self._last is not None:  # the graph's buffers are shared: after the last replay, whatever its stream
                stream.wait_event(self._last)
            self.tokens.copy_(tokens)
            self.graph.replay()
            picks, checks = self.picks.clone(), self.checks.clone()
            self._last = torch.cuda.Event()
            self._last.record(stream)
        return LaunchedReplay(picks, checks, self._last, self.threshold)


@dataclass
class GraphStats:
    """What a :class:`GraphCache` has done: graphs captured (of them, of the variant that resolves duplicates),
    shapes not captured for want of memory (:data:`GRAPH_MEMORY_FRACTION`), replays whose picks were returned,
    replays that fell back to the eager path, and calls sent to the eager path after fallbacks."""

    captures: int = 0
    duplicate_captures: int = 0
    too_large: int = 0
    replays: int = 0
    fallbacks: int = 0
    eager_after_fallback: int = 0


class GraphCache:
    """Captured selections by :class:`GraphKey`, built on the ``capture_after``-th call of a shape.

    A shape is first captured on the Gram route; the first replay that finds possible copies captures it again
    with the duplicates resolved in the graph (:class:`GraphedSelection`) and returns that replay's picks.
    After a replay falls back, the shape's next calls run eagerly: 1 call, then 2, 4, ... up to
    :data:`MAX_EAGER_STREAK` while replays keep falling back; a replay whose picks are returned resets it.
    """

    def __init__(
        self,
        size: int = GRAPH_CACHE_SIZE,
        capture_after: int = CAPTURE_AFTER_CALLS,
        build: Callable[[torch.Tensor, int, bool], GraphedSelection] = GraphedSelection,
    ) -> None:
        """size: graphs kept; capture_after: calls of a shape before it is captured; build: (example tokens,
        count, resolve_duplicates) -> a :class:`GraphedSelection` (or a stand-in with its ``__call__``, ``launch``
        and ``resolve_duplicates``)."""
        self.size = size
        self.capture_after = capture_after
        self.stats = GraphStats()
        self._build_graph = build
        self._graphs: OrderedDict[GraphKey, GraphedSelection] = OrderedDict()
        self._calls: dict[GraphKey, int] = {}
        self._failed: set[GraphKey] = set()
        self._streak: dict[GraphKey, int] = {}  # eager calls after the last fallback, before the next replay
        self._eager_left: dict[GraphKey, int] = {}  # of them, still to run
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._graphs)

    def clear(self) -> None:
        """Drop every graph (their memory returns to PyTorch's caching allocator), the call counts and the stats."""
        with self._lock:
            self._graphs.clear()
            self._calls.clear()
            self._failed.clear()
            self._streak.clear()
            self._eager_left.clear()
            self.stats = GraphStats()

    def select(self, tokens: torch.Tensor, count: int) -> Optional[torch.Tensor]:
        """Picks from a replayed graph, or None when this call should run eagerly: the shape is not captured (yet),
        its capture failed, its recent replays fell back, or this replay did (a token is not finite or has a zero
        norm, or two different tokens share a fingerprint). tokens: (N, D) CUDA, N <= :data:`GRAPH_MAX_TOKENS`."""
        pending = self.launch(tokens, count)
        return None if pending is None else self.finish(pending)

    def launch(self, tokens: torch.Tensor, count: int) -> Optional["PendingSelection"]:
        """:meth:`select` in two halves: queue the replay on the current stream and return at once (None where
        :meth:`select` would run eagerly before any replay); :meth:`finish` waits for it. ``tokens`` must keep
        their values until then (a fallback reads them again)."""
        key = GraphKey(tokens.shape[0], tokens.shape[1], tokens.dtype, count, tokens.device)
        with self._lock:
            graphed = self._graphs.get(key)
            if graphed is not None:
                self._graphs.move_to_end(key)
                if self._eager_left.get(key, 0) > 0:
                    self._eager_left[key] -= 1
                    self.stats.eager_after_fallback += 1
                    return None
            elif key in self._failed:
                return None
            else:
                self._calls[key] = self._calls.get(key, 0) + 1
                if self._calls[key] < self.capture_after:
                    return None
                graphed = self._build(key, tokens, count)
                if graphed is None:
                    return None
        return PendingSelection(key, tokens, count, graphed, graphed.launch(tokens))

    def finish(self, pending: "PendingSelection") -> Optional[torch.Tensor]:
        """The picks of a :meth:`launch`, or None when the caller must run the eager path (see :meth:`select`);
        waits for the replay."""
        key, tokens, count, graphed = pending.key, pending.tokens, pending.count, pending.graphed
        result = pending.replay.result()
        if result.fallback == "duplicates" and not graphed.resolve_duplicates:
            # This shape's tokens repeat (a static scene): from now on resolve the copies inside the graph.
            with self._lock:
                graphed = self._build(key, tokens, count, resolve_duplicates=True)
            if graphed is not None:
                result = graphed(tokens)
        with self._lock:
            if result.picks is None:
                self.stats.fallbacks += 1
                streak = min(2 * self._streak.get(key, 0) or 1, MAX_EAGER_STREAK)
                self._streak[key] = self._eager_left[key] = streak
            else:
                self.stats.replays += 1
                self._streak.pop(key, None)
        return result.picks

    def _build(
        self, key: GraphKey, tokens: torch.Tensor, count: int, resolve_duplicates: bool = False
    ) -> Optional[GraphedSelection]:
        """Capture ``key``'s selection (replacing its graph, if any); None when the graph would keep more than
        :data:`GRAPH_MEMORY_FRACTION` of the free device memory, or, with a warning, when the capture fails: the
        shape then runs eagerly from now on."""
        need = graph_bytes(key.num_tokens, key.dim, tokens.element_size(), resolve_duplicates)
        free = free_bytes(tokens.device)
        if free is not None and need > GRAPH_MEMORY_FRACTION * free:
            logger.info(
                "divprune: no CUDA graph for %s: it would keep %d MiB of %d MiB free", key, need >> 20, free >> 20
            )
            self.stats.too_large += 1
            return self._give_up(key)
        try:
            graphed = self._build_graph(tokens, count, resolve_duplicates)
        except RuntimeError as error:  # e.g. out of memory for the graph's buffers
            logger.warning("divprune: no CUDA graph for %s (%s); this shape runs eagerly", key, error)
            return self._give_up(key)
        self.stats.captures += 1
        self.stats.duplicate_captures += int(resolve_duplicates)
        self._calls.pop(key, None)
        self._graphs[key] = graphed
        self._graphs.move_to_end(key)
        while len(self._graphs) > self.size:
            dropped, _ = self._graphs.popitem(last=False)
            self._streak.pop(dropped, None)
            self._eager_left.pop(dropped, None)
        return graphed

    def _give_up(self, key: GraphKey) -> None:
        """Run ``key`` eagerly from now on (dropping its graph, if any)."""
        self._graphs.pop(key, None)
        self._failed.add(key)


class PendingSelection(NamedTuple):
    """A replay queued by :meth:`GraphCache.launch`, for :meth:`GraphCache.finish`."""

    key: GraphKey
    tokens: torch.Tensor
    count: int
    graphed: GraphedSelection
    replay: LaunchedReplay


#: The process-wide cache :func:`~.divprune_selector.divprune` uses.
GRAPHS = GraphCache()


def clear_graphs() -> None:
    """Free every captured selection graph (see :data:`GRAPH_MAX_TOKENS` for what one holds)."""
    GRAPHS.clear()


def graph_eligible(tokens: torch.Tensor, metric: str, path: str, backend: str) -> bool:
    """Whether a :func:`~.divprune_selector.divprune` call of (N, D) ``tokens`` may replay a graph: the full Triton
    path under cosine below float64 (the Gram kernels), a row short enough to capture, and no capture under way
    on the caller's stream (a graph cannot be captured inside another)."""
    return (
        tokens.is_cuda
        and metric == "cosine"
        and tokens.dtype != torch.float64
        and path == "full"
        and backend == "triton"
        and tokens.shape[0] <= GRAPH_MAX_TOKENS
        and not torch.cuda.is_current_stream_capturing()
    )

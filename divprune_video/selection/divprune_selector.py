"""DivPrune: the selector's public entry points (:func:`divprune`, :func:`divprune_batch`, :func:`plan_selection`)
and the choice between its execution paths.

Paths, all picking the same tokens as the pure-PyTorch definition in :mod:`.greedy`:

* ``"full"``: the whole (N, N) distance (or Gram) matrix is built once, then the greedy steps read one row each.
  On CUDA with Triton the step loop runs in one fused kernel (:mod:`._triton`); otherwise in plain PyTorch.
* ``"chunked"``: never holds an (N, N) matrix: the first pick's scores come from tiles with running minima, and
  the greedy runs in rounds over the tokens most likely to be picked next, each round ending with one pass over
  all tokens (:mod:`.chunked`).

``path="auto"`` takes ``"full"`` when its matrix fits in the free memory of the tokens' device, else ``"chunked"``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Union

import torch

from . import _validate
from ._validate import Metric
from .devices import free_bytes, total_bytes, triton_unusable_reason, triton_usable
from .distance import check_nonzero_norms, formula_distance, gram, inverse_norms
from .duplicates import PendingDuplicates, find_duplicates, merge_duplicates
from .graphs import GRAPHS, PendingSelection, graph_eligible
from .greedy import first_pick_scores, greedy_from_distances

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "triton")
PATHS = ("auto", "full", "chunked")
Backend = Literal["auto", "torch", "triton"]
SelectionPath = Literal["auto", "full", "chunked"]
#: Fraction of the free device memory the full path may use for its (B, N, N) matrix.
FULL_PATH_MEMORY_FRACTION = 0.7


@dataclass(frozen=True)
class SelectionPlan:
    """How a call will run: the resolved path and backend (see :func:`plan_selection`)."""

    path: str
    backend: str
    matrix_bytes: int
    free_bytes: Optional[int]


def divprune(
    tokens: torch.Tensor,
    keep_ratio: Optional[float] = None,
    *,
    num_keep: Optional[int] = None,
    metric: Metric = "cosine",
    backend: Backend = "auto",
    path: SelectionPath = "auto",
    cuda_graph: bool = True,
) -> torch.Tensor:
    """Pick the most diverse subset of ``tokens`` (DivPrune: greedy Max-Min diversity).

    Selection is not differentiable: it returns indices, and tokens that require grad (a model's output outside
    ``torch.no_grad()``) are read without recording an autograd graph. Exact duplicates are one point: at
    distance 0 from each other, their ties go to the lowest index on every path.

    Args:
        tokens: (N, D) float16, bfloat16, float32 or float64 tensor, on CPU or CUDA.
        keep_ratio: fraction of tokens to keep, in (0, 1]; the count is ``max(1, round(keep_ratio * N))``.
        num_keep: number of tokens to keep, in 1..N. Pass exactly one of ``keep_ratio`` and ``num_keep``.
        metric: ``"cosine"`` (``1 - cosine similarity``, the default), ``"l2"`` or ``"l1"``.
        backend: ``"auto"`` (the fused Triton kernels on CUDA when available), ``"torch"`` or ``"triton"``.
        path: ``"auto"``, ``"full"`` (build the (N, N) matrix) or ``"chunked"`` (never build it).
        cuda_graph: on the full Triton path under cosine, with N <= 8,192, the second call of one shape (N, D,
            dtype, k, device) captures the whole selection in a CUDA graph and later calls replay it: the same
            picks without the host's per-call launch cost (:mod:`.graphs`; :func:`~.graphs.clear_graphs` frees
            them). False always runs eagerly.

    Returns:
        (k,) int64 indices into ``tokens`` in selection order, on the tokens' device.

    Raises:
        TypeError: non-tensor ``tokens``, another dtype (float8, integers), or tokens on the meta device.
        ValueError: wrong rank, empty or non-finite tokens, zero-norm tokens under cosine, or a bad
            ``keep_ratio`` / ``num_keep`` / ``metric`` / ``backend`` / ``path``.
    """
    _validate.check_tokens(tokens, rank=2)
    tokens = tokens.detach()  # the picks are indices: no gradient flows through them
    count = _validate.resolve_num_keep(tokens.shape[0], keep_ratio, num_keep)
    plan = plan_selection(tokens, metric, backend, path)
    pending = launch_graphed(tokens, count, metric, plan) if cuda_graph else None
    if pending is not None:
        picks = GRAPHS.finish(pending)
        if picks is not None:
            return picks
    batch = tokens.unsqueeze(0)
    early_gram = _early_gram(batch, metric, plan)
    duplicates = _early_duplicates(batch, plan)
    checks = _queue_checks(tokens, None, metric, duplicates)
    return _select(batch, None, [count], metric, plan, checks, early_gram, duplicates)[0]


def launch_graphed(
    tokens: torch.Tensor, count: int, metric: Metric = "cosine", plan: Optional[SelectionPlan] = None
) -> Optional[PendingSelection]:
    """:func:`divprune`'s CUDA-graph replay for (N, D) checked ``tokens`` and ``count`` picks, queued on the current
    stream without waiting (:meth:`~.graphs.GraphCache.launch`), or None where :func:`divprune` would run eagerly
    (not the full Triton path under cosine, no graph for the shape yet, or its replays fell back). ``plan``:
    :func:`plan_selection`'s for the tokens (default: the automatic one). :meth:`~.graphs.GraphCache.finish` on
    ``GRAPHS`` gives the picks, or None when the eager path must run after all."""
    plan = plan or plan_selection(tokens, metric)
    if not graph_eligible(tokens, metric, plan.path, plan.backend):
        return None
    return GRAPHS.launch(tokens, count)


def divprune_batch(
    tokens: torch.Tensor,
    keep_ratio: Optional[float] = None,
    *,
    num_keep: Union[int, Sequence[int], None] = None,
    mask: Optional[torch.Tensor] = None,
    metric: Metric = "cosine",
    backend: Backend = "auto",
    path: SelectionPath = "auto",
) -> list[torch.Tensor]:
    """:func:`divprune` over a padded batch. Not differentiable either: tokens that require grad are read
    without recording an autograd graph.

    Args:
        tokens: (B, N, D) float16, bfloat16, float32 or float64 tensor.
        keep_ratio: as in :func:`divprune`, applied to each row's number of valid tokens.
        num_keep: one count for every row, or a sequence of B counts.
        mask: optional (B, N) bool tensor, True for valid tokens; invalid tokens are never picked and do not
            count towards ``keep_ratio``.
        metric, backend, path: as in :func:`divprune`.

    Returns:
        A list of B int64 tensors, row b holding its k_b picks (indices into ``tokens[b]``) in selection order.

    Raises:
        As :func:`divprune`, and ``ValueError`` / ``TypeError`` for a ``mask`` that is not (B, N) bool with a
        valid token in every row.
    """
    _validate.check_tokens(tokens, rank=3)
    tokens = tokens.detach()
    valid = _validate.check_mask(mask, tokens)
    counts = _validate.resolve_batch_num_keep(valid.sum(dim=1).tolist(), keep_ratio, num_keep)
    plan = plan_selection(tokens, metric, backend, path)
    early_gram = _early_gram(tokens, metric, plan)
    duplicates = _early_duplicates(tokens, plan, None if mask is None else valid)
    checks = _queue_checks(tokens, valid, metric, duplicates)
    picks = _select(tokens, None if mask is None else valid, counts, metric, plan, checks, early_gram, duplicates)
    return [row[:count] for row, count in zip(picks, counts)]


def plan_selection(
    tokens: torch.Tensor, metric: str = "cosine", backend: str = "auto", path: str = "auto"
) -> SelectionPlan:
    """Resolve ``path`` and ``backend`` for (N, D) or (B, N, D) ``tokens`` without running anything."""
    _validate.check_metric(metric)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}; got {path!r}")
    batch = tokens.shape[0] if tokens.dim() == 3 else 1
    num_tokens = tokens.shape[-2]
    matrix_bytes = batch * num_tokens * num_tokens * 4 * (2 if tokens.dtype == torch.float64 else 1)
    # Querying free memory costs a driver call; skip it when the matrix is small next to the device's memory.
    total = total_bytes(tokens.device)
    free = None if total is not None and matrix_bytes <= 0.05 * total else free_bytes(tokens.device)
    if path == "auto":
        path = "full" if free is None or matrix_bytes <= FULL_PATH_MEMORY_FRACTION * free else "chunked"
    if backend == "auto":
        backend = "triton" if triton_usable(tokens) else "torch"
    elif backend == "triton":
        reason = triton_unusable_reason(tokens)
        if reason:
            raise ValueError(f"backend='triton' is not available here: {reason}")
    return SelectionPlan(path=path, backend=backend, matrix_bytes=matrix_bytes, free_bytes=free)


def _early_gram(tokens: torch.Tensor, metric: str, plan: SelectionPlan) -> Optional[torch.Tensor]:
    """The (B, N, N) Gram matrix of the Triton cosine path, queued before the input checks.

    The GPU computes the largest kernel while the host queues the checks (:func:`_queue_checks`) and the first-pick
    scores behind it; the host then waits for the checks' answer alone (an event recorded right behind them), not
    for the scores, and queues the step loop while the GPU still computes them, so the GPU does not idle between
    the kernels. Values that fail the checks only ever reach work that is then dropped. None on the other paths.
    """
    if plan.path != "full" or plan.backend != "triton":
        return None
    from ._triton import uses_gram

    return gram(tokens, tokens) if uses_gram(tokens, metric) else None


def _early_duplicates(
    tokens: torch.Tensor, plan: SelectionPlan, valid: Optional[torch.Tensor] = None
) -> Optional[PendingDuplicates]:
    """The full path's search for exact duplicates among the valid tokens (:mod:`.duplicates`), queued with the
    input checks, which carry its answer to the host with theirs. None on the chunked path, which searches each
    row's valid tokens itself."""
    return find_duplicates(tokens, valid) if plan.path == "full" else None


@dataclass
class _QueuedChecks:
    """The input checks, queued on the tokens' device, with their answer on its way to the host.

    ``inv_norms``: the tokens' inverse norms under cosine (the check's own pass), else None. ``answer`` (2,) bool on
    the host: every valid token is usable; some valid tokens are exact duplicates.
    ``done`` marks the answer's arrival (CUDA; None where the copy was synchronous).
    """

    tokens: torch.Tensor
    valid: Optional[torch.Tensor]
    inv_norms: Optional[torch.Tensor]
    answer: torch.Tensor
    done: Optional["torch.cuda.Event"]

    def wait(self, duplicates: Optional[PendingDuplicates]) -> None:
        """Wait for the answer (one host sync, for the checks alone), raise naming the first bad token, and hand
        the duplicates' answer to ``duplicates``."""
        if self.done is not None:
            self.done.synchronize()
        usable, repeats = self.answer.tolist()
        if not usable:
            _validate.check_finite(self.tokens, self.valid)
            if self.inv_norms is not None:
                mask = None if self.valid is None else self.valid.reshape(self.inv_norms.shape)
                check_nonzero_norms(self.inv_norms, mask)
                raise ValueError("a token's norm overflows float32, so its cosine distance cannot be computed")
        if duplicates is not None:
            duplicates.any_repeats = repeats


def _queue_checks(
    tokens: torch.Tensor, valid: Optional[torch.Tensor], metric: str, duplicates: Optional[PendingDuplicates]
) -> _QueuedChecks:
    """Queue the input checks without waiting for them: every valid token finite, and under cosine a non-zero norm
    that does not overflow (folded into the inverse norms: ``1 / ||x||`` is finite and positive exactly then), plus
    whether ``duplicates`` found any. tokens: (N, D) or (B, N, D); valid: (B, N) bool or None (all valid)."""
    inv = None
    if metric == "cosine":
        inv = inverse_norms(tokens)
        good = torch.isfinite(inv) & (inv > 0)
    else:
        good = torch.isfinite(tokens).all(dim=-1)
    if valid is not None:
        good = good | ~valid.reshape(good.shape)
    repeats = (
        duplicates.repeats.any() if duplicates is not None else torch.zeros((), dtype=torch.bool, device=good.device)
    )
    flags = torch.stack([good.all(), repeats])
    if not tokens.is_cuda:
        return _QueuedChecks(tokens, valid, inv, flags, None)
    answer = torch.empty(2, dtype=torch.bool, pin_memory=True)
    answer.copy_(flags, non_blocking=True)
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(tokens.device))
    return _QueuedChecks(tokens, valid, inv, answer, done)


def _select(
    tokens: torch.Tensor,
    valid: Optional[torch.Tensor],
    counts: list[int],
    metric: str,
    plan: SelectionPlan,
    checks: _QueuedChecks,
    gram_matrix: Optional[torch.Tensor] = None,
    duplicates: Optional[PendingDuplicates] = None,
) -> torch.Tensor:
    """tokens: (B, N, D) (shapes checked); valid: (B, N) bool or None (all valid); checks: the queued value checks
    (waited for here, before the picks are decided); gram_matrix: the (B, N, N) Gram matrix if already computed
    (Triton cosine path); duplicates: the search for exact duplicates if already queued (full path; searched here
    when None). Returns (B, max(counts)) picks, -1 padded."""
    inv_norms = None
    if metric == "cosine":
        inv_norms = checks.inv_norms.reshape(tokens.shape[:2])
    logger.debug(
        "divprune: %s path, %s backend, B=%d N=%d k=%s",
        plan.path,
        plan.backend,
        tokens.shape[0],
        tokens.shape[1],
        counts,
    )
    if plan.backend == "triton" and plan.path == "full":
        from ._triton import select_full_triton

        return select_full_triton(
            tokens, valid, counts, metric, inv_norms, gram_matrix, duplicates, lambda: checks.wait(duplicates)
        )
    checks.wait(duplicates)
    valid_mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device) if valid is None else valid
    if plan.path == "chunked":
        from .chunked import select_chunked

        return select_chunked(tokens, valid_mask, counts, metric, use_triton=plan.backend == "triton")
    first = (duplicates or find_duplicates(tokens, valid)).resolve()
    dist = merge_duplicates(formula_distance(tokens, metric, inv_norms), first)  # as pairwise_distance gives it
    scores = first_pick_scores(dist, valid_mask)
    return greedy_from_distances(dist, scores, valid_mask, counts)

"""The matrix-free path: DivPrune without ever holding the (N, N) distance matrix, in rounds of candidates.

Memory is O(N * D + tile). The first pick's scores come from row tiles of the distance matrix with a running
column minimum (on CUDA, a fused kernel that computes only the lower triangle). After that, a naive step would
read all N tokens to compute the one row of distances it needs: ~1.2 GB per step at N = 147,456, D = 4,096, or
tens of seconds per selection. Instead the greedy runs in *rounds*:

1. Every token's running minimum ``m`` (its distance to the nearest pick so far) is exact at the start of a round.
   Order the tokens as the greedy does, by ``m`` and then by lower position, and take the first ``candidates`` of
   them. The best token left out has ``m = tau`` and position ``i_out``.
2. Run the greedy among the candidates only, on their (M, M) distance matrix. A candidate's ``m`` is kept exact
   (it sees every pick of the round); a token left out still has ``m <= tau``, because running minima only
   decrease. So while the best candidate comes before (``tau``, ``i_out``) in the greedy's order (``m > tau``, or
   ``m == tau`` at a position below ``i_out``) it is the greedy's next pick over all N tokens, and the round goes on.
   The round's first pick is the overall best, so every round picks at least one token; and exact ties (a static
   video's copies, all at ``m = 0``) are taken in position order within a round rather than one per round.
3. When the best candidate falls behind (``tau``, ``i_out``), the round ends: the round's picks update every token's
   ``m`` in one pass over the tokens (a matrix product with R rows instead of R matrix-vector products).

The picks are those of the step-by-step greedy: only which token is compared where changes, never a decision.
Distances come from the formulas of :func:`~.distance.pairwise_distance`, exact duplicates included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Union

import torch

from .distance import compute_dtype, cosine_from_gram, gram, inverse_norms, minkowski
from .duplicates import first_occurrences

if TYPE_CHECKING:
    from ._triton import FusedCosine

#: Bytes of one tile of distances (first-pick scores, and the update that ends each round).
DEFAULT_TILE_BYTES = 512 * 1024 * 1024
#: Candidates per round: their (M, M) distances are computed once per round, and on CUDA the round's greedy runs
#: in one kernel that holds every candidate's running minimum in registers (at most 16,384).
DEFAULT_CANDIDATES = 4096

BlockFunction = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
RoundFunction = Callable[[torch.Tensor, torch.Tensor, float, int, int], torch.Tensor]
#: The fused passes over all tokens: :class:`~._triton.FusedCosine`, or :class:`_DistinctCosine` with duplicates.
FusedPasses = Union["FusedCosine", "_DistinctCosine"]


def distance_block(tokens: torch.Tensor, metric: str, first: Optional[torch.Tensor] = None) -> BlockFunction:
    """Return ``block(rows, cols=None) -> (len(rows), len(cols) or N)`` distances between tokens.

    tokens: (N, D); ``rows`` / ``cols``: int64 positions. The formulas are those of
    :func:`~.distance.pairwise_distance`, exact duplicates included: a token's distances are its first
    occurrence's, with 0 between copies. ``first``: the tokens' :func:`~.duplicates.first_occurrences` if already
    known (None: found here).
    """
    first = first_occurrences(tokens) if first is None else first
    # With duplicates, every token is replaced by its first occurrence (bitwise the same values) and copies are set
    # to 0 afterwards: the formulas alone leave identical cosine tokens about 1e-7 apart.
    inv = inverse_norms(tokens) if metric == "cosine" else None
    x = tokens if metric == "cosine" else tokens.to(compute_dtype(tokens.dtype))

    def raw(rows: torch.Tensor, cols: Optional[torch.Tensor]) -> torch.Tensor:
        a = x.index_select(0, rows)
        b = x if cols is None else x.index_select(0, cols)
        if inv is None:
            return minkowski(a, b, metric)
        inv_b = inv if cols is None else inv[cols]
        return cosine_from_gram(gram(a, b), inv[rows], inv_b)

    if first is None:
        return raw

    def block(rows: torch.Tensor, cols: Optional[torch.Tensor]) -> torch.Tensor:
        row_first = first[rows]
        col_first = first if cols is None else first[cols]
        out = raw(row_first, col_first)
        return out.masked_fill_(row_first.unsqueeze(-1) == col_first.unsqueeze(-2), 0.0)

    return block


def select_chunked(
    tokens: torch.Tensor,
    valid: torch.Tensor,
    counts: list[int],
    metric: str,
    tile_bytes: int = DEFAULT_TILE_BYTES,
    candidates: int = DEFAULT_CANDIDATES,
    use_triton: bool = False,
) -> torch.Tensor:
    """tokens: (B, N, D), valid: (B, N) bool, counts: B keep counts. Returns (B, max(counts)) picks, -1 padded.

    ``tile_bytes`` bounds each tile of distances; ``candidates`` is the number of tokens per round (module
    docstring); ``use_triton``: run the rounds' greedy, and for cosine tokens without exact duplicates the passes
    over all tokens, in the Triton kernels (CUDA). None of them changes the picks.
    """
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1; got {candidates}")
    picks = torch.full((tokens.shape[0], max(counts)), -1, dtype=torch.long, device=tokens.device)
    for row, (row_tokens, row_valid, count) in enumerate(zip(tokens, valid, counts)):
        kept = row_valid.nonzero().flatten()
        subset = row_tokens if len(kept) == row_tokens.shape[0] else row_tokens[kept]
        picks[row, :count] = kept[select_in_rounds(subset, count, metric, tile_bytes, candidates, use_triton)]
    return picks


def select_in_rounds(
    tokens: torch.Tensor,
    count: int,
    metric: str,
    tile_bytes: int = DEFAULT_TILE_BYTES,
    candidates: int = DEFAULT_CANDIDATES,
    use_triton: bool = False,
) -> torch.Tensor:
    """DivPrune over (N, D) ``tokens`` without an (N, N) matrix (module docstring). Returns (count,) int64 picks.

    ``use_triton``: as in :func:`select_chunked`; the caller checks that Triton can run on the tokens."""
    num_tokens = tokens.shape[0]
    device = tokens.device
    first = first_occurrences(tokens)
    fused = _fused_cosine(tokens, metric, first) if use_triton else None
    block = distance_block(tokens, metric, first)
    if fused is not None:
        first_scores = fused.first_pick_scores()
    else:
        first_scores = _first_pick_scores(block, num_tokens, device, tile_bytes)
    picks = torch.empty(count, dtype=torch.long, device=device)
    picks[0] = first_scores.argmax()
    min_dist = block(picks[:1], None)[0]
    min_dist[picks[0]] = float("-inf")
    run_round = _round_function(use_triton)
    done = 1
    while done < count:
        unpicked = num_tokens - done
        chosen, tau, before = _candidates(min_dist, min(candidates, unpicked), unpicked)
        local = run_round(block(chosen, chosen), min_dist[chosen], tau, before, count - done)
        new = chosen[local]
        picks[done : done + len(new)] = new
        done += len(new)
        if done < count:
            _lower_minima(min_dist, new, block, fused, tile_bytes)
        min_dist[new] = float("-inf")
    return picks


def _candidates(min_dist: torch.Tensor, size: int, unpicked: int) -> tuple[torch.Tensor, float, int]:
    """Step 1 of the module docstring: the ``size`` unpicked tokens first in the greedy's order (largest running
    minimum, then lowest position), in ascending positions, and the best token left out as (``tau``, ``before``):
    its running minimum, and how many candidates sit at positions below its own. (-inf, 0) when none is left out.

    min_dist: (N,) running minima, -inf for the ``N - unpicked`` picked tokens."""
    if size == unpicked:  # every unpicked token is a candidate
        return (min_dist > float("-inf")).nonzero().flatten(), float("-inf"), 0
    tau = torch.topk(min_dist, size + 1, sorted=True).values[size]  # the (size + 1)-th largest running minimum
    above = (min_dist > tau).nonzero().flatten()
    level = (min_dist == tau).nonzero().flatten()  # ascending positions: the greedy's order among equals
    take = size - len(above)  # < len(level): the (size + 1)-th token in the greedy's order is at this level
    chosen = torch.cat([above, level[:take]]).sort().values
    before = int(torch.searchsorted(chosen, level[take]))
    return chosen, float(tau), before


def greedy_round(dist: torch.Tensor, start: torch.Tensor, tau: float, before: int, limit: int) -> torch.Tensor:
    """The greedy among M candidates (pure PyTorch): step 2 of the module docstring.

    dist: (M, M) distances between the candidates (row s from candidate s), start: (M,) their running minima, in
    ascending positions; (``tau``, ``before``): the best token left out (its running minimum, and the number of
    candidates at positions below it); ``limit``: at most this many picks. The first pick is the arg-max of
    ``start``; each next pick is taken only while it comes before the best token left out in the greedy's order
    (a running minimum above ``tau``, or equal to it at a candidate index below ``before``).
    Returns (R,) int64 indices among the candidates, 1 <= R <= limit.
    """
    values = start.clone()
    local: list[int] = []
    while len(local) < limit:
        pick = int(values.argmax())  # the first of equal maxima: the lowest position
        value = float(values[pick])
        if local and not (value > tau or (value == tau and pick < before)):
            break
        local.append(pick)
        torch.minimum(values, dist[pick], out=values)
        values[pick] = float("-inf")
    return torch.tensor(local, dtype=torch.long, device=dist.device)


def _round_function(use_triton: bool) -> RoundFunction:
    """The round's greedy: one Triton program (when the candidates fit in its registers), or PyTorch."""
    if use_triton:
        from ._triton import greedy_round_triton

        return greedy_round_triton
    return greedy_round


def _fused_cosine(tokens: torch.Tensor, metric: str, first: Optional[torch.Tensor]) -> Optional[FusedPasses]:
    """The fused Triton kernels for the two passes over all tokens (cosine), or None. ``first``: the tokens'
    first occurrences (None: no exact duplicates)."""
    if metric != "cosine":
        return None
    from ._triton import FusedCosine

    return FusedCosine(tokens) if first is None else _DistinctCosine(tokens, first)


class _DistinctCosine:
    """The fused passes with exact duplicates: run over the distinct tokens only, then read back for every token.

    The kernels compute each distance from its formula, under which copies come out about 1e-7 apart instead of at
    exactly 0; over the distinct tokens no pair is a copy, and the zeros are written here: a token with a copy has
    first-pick score 0, and a pick's copies are at distance 0 from it. Every other distance is its first
    occurrence's, as :func:`distance_block` gives it. tokens: (N, D); first: (N,) from
    :func:`~.duplicates.first_occurrences`.
    """

    def __init__(self, tokens: torch.Tensor, first: torch.Tensor) -> None:
        from ._triton import FusedCosine

        is_first = first == torch.arange(len(first), device=first.device)
        self.row_of = (torch.cumsum(is_first, 0) - 1)[first]  # each token's row among the distinct tokens
        self.has_copy = torch.bincount(self.row_of, minlength=int(is_first.sum()))[self.row_of] > 1
        self.distinct = FusedCosine(tokens[is_first])

    def first_pick_scores(self) -> torch.Tensor:
        scores = self.distinct.first_pick_scores()[self.row_of]
        return scores.masked_fill_(self.has_copy, 0.0)

    def column_minima(self, rows: torch.Tensor) -> torch.Tensor:
        picked = self.row_of[rows]
        minima = self.distinct.column_minima(picked)
        minima[picked] = 0.0  # a pick's copies; the pick itself is masked out by the caller
        return minima[self.row_of]


def _lower_minima(
    min_dist: torch.Tensor, new: torch.Tensor, block: BlockFunction, fused: Optional[FusedPasses], tile_bytes: int
) -> None:
    """Step 3 of the module docstring: ``min_dist = min(min_dist, d(new, .))`` over all tokens, in place."""
    if fused is not None:
        torch.minimum(min_dist, fused.column_minima(new), out=min_dist)
        return
    rows = max(1, tile_bytes // (4 * min_dist.shape[0]))
    for part in new.split(rows):
        torch.minimum(min_dist, block(part, None).amin(dim=0), out=min_dist)


def _first_pick_scores(block: BlockFunction, num_tokens: int, device: torch.device, tile_bytes: int) -> torch.Tensor:
    """Each token's smaller of column and row minimum, diagonal excluded, one row tile at a time. -> (N,).

    Same values as :func:`~.greedy.first_pick_scores`: a running minimum over the tiles' columns, and the tiles'
    own row minima for their rows.
    """
    tile_rows = max(1, min(num_tokens, tile_bytes // (4 * num_tokens)))
    col_min = torch.full((num_tokens,), float("inf"), device=device)
    row_min = torch.empty(num_tokens, device=device)
    for start in range(0, num_tokens, tile_rows):
        index = torch.arange(start, min(start + tile_rows, num_tokens), device=device)
        tile = block(index, None)
        if col_min.dtype != tile.dtype:
            col_min, row_min = col_min.to(tile.dtype), row_min.to(tile.dtype)
        tile[torch.arange(len(index), device=device), index] = float("inf")
        torch.minimum(col_min, tile.amin(dim=0), out=col_min)
        row_min[start : start + len(index)] = tile.amin(dim=1)
    return torch.minimum(col_min, row_min)

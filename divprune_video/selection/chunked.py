"""The matrix-free path: DivPrune without ever holding the (N, N) distance matrix.

Memory is O(N * D + tile): the first pick's scores come from row tiles of the distance matrix with a running
column minimum, and each greedy step computes the one row of distances it needs from the tokens (one
matrix-vector product, which reads the tokens once). Used when the full matrix does not fit.
"""

from __future__ import annotations

from typing import Callable

import torch

from .distance import compute_dtype, cosine_from_gram, gram, inverse_norms, minkowski
from .duplicates import first_occurrences, share_duplicate_distances

#: Bytes of one row tile of the distance matrix while computing the first pick's scores.
DEFAULT_TILE_BYTES = 512 * 1024 * 1024

RowFunction = Callable[[torch.Tensor], torch.Tensor]


def distance_rows(tokens: torch.Tensor, metric: str) -> RowFunction:
    """Return ``rows(index) -> (len(index), N)`` distances from the tokens ``index`` to all N tokens.

    tokens: (N, D). The formulas are those of :func:`~.distance.pairwise_distance`, exact duplicates included:
    a token's row is its first occurrence's, with 0 at its copies.
    """
    if metric == "cosine":
        inv = inverse_norms(tokens)

        def rows(index: torch.Tensor) -> torch.Tensor:
            return cosine_from_gram(gram(tokens.index_select(0, index), tokens), inv[index], inv)
    else:
        x = tokens.to(compute_dtype(tokens.dtype))

        def rows(index: torch.Tensor) -> torch.Tensor:
            return minkowski(x.index_select(0, index), x, metric)

    first = first_occurrences(tokens)
    if first is None:
        return rows
    return lambda index: share_duplicate_distances(rows(first[index]), first[index], first)


def select_chunked(
    tokens: torch.Tensor,
    valid: torch.Tensor,
    counts: list[int],
    metric: str,
    tile_bytes: int = DEFAULT_TILE_BYTES,
) -> torch.Tensor:
    """tokens: (B, N, D), valid: (B, N) bool, counts: B keep counts. Returns (B, max(counts)) picks, -1 padded."""
    picks = torch.full((tokens.shape[0], max(counts)), -1, dtype=torch.long, device=tokens.device)
    for row, (row_tokens, row_valid, count) in enumerate(zip(tokens, valid, counts)):
        kept = row_valid.nonzero().flatten()
        subset = row_tokens if len(kept) == row_tokens.shape[0] else row_tokens[kept]
        picks[row, :count] = kept[_select_one(subset, count, metric, tile_bytes)]
    return picks


def _select_one(tokens: torch.Tensor, count: int, metric: str, tile_bytes: int) -> torch.Tensor:
    num_tokens = tokens.shape[0]
    device = tokens.device
    rows = distance_rows(tokens, metric)
    first_scores = _first_pick_scores(rows, num_tokens, device, tile_bytes)
    picks = torch.empty(count, dtype=torch.long, device=device)
    pick = first_scores.argmax().view(1)
    picks[0] = pick[0]
    min_dist = torch.full((num_tokens,), float("inf"), dtype=first_scores.dtype, device=device)
    for step in range(1, count):
        torch.minimum(min_dist, rows(pick)[0], out=min_dist)
        min_dist[pick] = float("-inf")
        pick = min_dist.argmax().view(1)
        picks[step] = pick[0]
    return picks


def _first_pick_scores(rows: RowFunction, num_tokens: int, device: torch.device, tile_bytes: int) -> torch.Tensor:
    """Each token's smaller of column and row minimum, diagonal excluded, one row tile at a time. -> (N,).

    Same values as :func:`~.greedy.first_pick_scores`: a running minimum over the tiles' columns, and the tiles'
    own row minima for their rows.
    """
    tile_rows = max(1, min(num_tokens, tile_bytes // (4 * num_tokens)))
    col_min = torch.full((num_tokens,), float("inf"), device=device)
    row_min = torch.empty(num_tokens, device=device)
    for start in range(0, num_tokens, tile_rows):
        index = torch.arange(start, min(start + tile_rows, num_tokens), device=device)
        tile = rows(index)
        if col_min.dtype != tile.dtype:
            col_min, row_min = col_min.to(tile.dtype), row_min.to(tile.dtype)
        tile[torch.arange(len(index), device=device), index] = float("inf")
        torch.minimum(col_min, tile.amin(dim=0), out=col_min)
        row_min[start : start + len(index)] = tile.amin(dim=1)
    return torch.minimum(col_min, row_min)

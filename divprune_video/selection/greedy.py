"""The Max-Min diversity greedy (DivPrune) in plain PyTorch: the readable definition every fast path matches.

Given pairwise distances ``d`` over N tokens, pick k of them:

1. the first pick is the token whose smallest distance to any *other* token is largest
   (the published code takes the second-smallest entry of each column; the diagonal is excluded here explicitly).
   A token's score is the smaller of its row and column minimum: computed distances are not bit-symmetric
   (``d_ij`` and ``d_ji`` round differently), and the first pick is often an exact tie between two mutual nearest
   neighbours, which must go to the lower index as it does in exact arithmetic;
2. each next pick is the token whose smallest distance to the tokens picked so far is largest;
3. ties go to the lowest index, and a picked token is never picked again (exact duplicates cannot break this:
   picked tokens are masked out, where the published code could pick a duplicate twice).

Scores are the columns of ``d`` reduced over the picked *rows*, as in the published code.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch


def first_pick_scores(dist: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """Each token's smallest distance to any other valid token (the smaller of its column and row minimum);
    invalid tokens score -inf.

    dist: (B, N, N) float, **modified in place**: its diagonal and the rows and columns of invalid tokens are set to
    +inf (the greedy reads them afterwards only at masked entries). valid: (B, N) bool, or None when every token is
    valid (then no host sync). Returns (B, N) scores.
    """
    inf = float("inf")
    dist.diagonal(dim1=-2, dim2=-1).fill_(inf)
    if valid is None:
        return torch.minimum(dist.amin(dim=-2), dist.amin(dim=-1))
    if not bool(valid.all()):
        dist.masked_fill_(~valid.unsqueeze(-1), inf).masked_fill_(~valid.unsqueeze(-2), inf)
    scores = torch.minimum(dist.amin(dim=-2), dist.amin(dim=-1))
    return scores.masked_fill_(~valid, -inf)


def greedy_from_distances(
    dist: torch.Tensor, first_scores: torch.Tensor, valid: torch.Tensor, num_keep: Sequence[int]
) -> torch.Tensor:
    """Run the greedy on precomputed distances.

    dist: (B, N, N) float (row s holds the distances from token s), first_scores: (B, N) from
    :func:`first_pick_scores`, valid: (B, N) bool, num_keep: B counts. Returns (B, max(num_keep)) int64 picks in
    selection order; entries past a row's own count are -1.
    """
    batch = dist.shape[0]
    rows = torch.arange(batch, device=dist.device)
    max_keep = max(num_keep)
    picks = torch.empty(batch, max_keep, dtype=torch.long, device=dist.device)
    pick = first_scores.argmax(dim=-1)  # argmax returns the first (lowest) index among equal maxima
    picks[:, 0] = pick
    min_dist = torch.where(valid, float("inf"), float("-inf")).to(dist.dtype)
    for step in range(1, max_keep):
        torch.minimum(min_dist, dist[rows, pick], out=min_dist)
        min_dist[rows, pick] = float("-inf")
        pick = min_dist.argmax(dim=-1)
        picks[:, step] = pick
    keep = torch.tensor(list(num_keep), device=dist.device)
    past_end = torch.arange(max_keep, device=dist.device).unsqueeze(0) >= keep.unsqueeze(1)
    return picks.masked_fill_(past_end, -1)

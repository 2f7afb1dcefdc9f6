"""Quality measures of a kept set."""

from __future__ import annotations

import torch

from .distance import pairwise_distance


def min_pairwise_distance(tokens: torch.Tensor, indices: torch.Tensor, metric: str = "cosine") -> float:
    """The smallest distance between two distinct kept tokens: the Max-Min objective DivPrune maximizes.

    tokens: (N, D) float; indices: (k,) int64 with k >= 2. Returns a Python float (``inf`` when k < 2).
    """
    if indices.numel() < 2:
        return float("inf")
    dist = pairwise_distance(tokens[indices.to(tokens.device)], metric)
    dist.fill_diagonal_(float("inf"))
    return float(dist.min())

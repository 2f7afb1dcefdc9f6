"""A slow, obviously correct float64 DivPrune: the published greedy, written plainly in NumPy."""

from __future__ import annotations

import numpy as np
import torch


def distance_matrix(tokens: torch.Tensor, metric: str) -> np.ndarray:
    """Distances in float64; identical tokens are one point: at exactly 0, with the same distances to all others
    (as computed, float64 would leave cosine copies ~1e-16 apart and break their ties by rounding)."""
    x = tokens.detach().cpu().double().numpy()
    rows = []
    for i in range(len(x)):
        if metric == "cosine":
            rows.append(1.0 - (x @ x[i]) / (np.linalg.norm(x, axis=1) * np.linalg.norm(x[i])))
        elif metric == "l2":
            rows.append(np.sqrt(((x - x[i]) ** 2).sum(axis=1)))
        else:
            rows.append(np.abs(x - x[i]).sum(axis=1))
    _, first_of_group, group = np.unique(x, axis=0, return_index=True, return_inverse=True)
    first = first_of_group[group.reshape(-1)]  # each token's first identical token
    dist = np.stack(rows)[first][:, first]
    dist[first[:, None] == first[None, :]] = 0.0
    return dist


def reference_divprune(tokens: torch.Tensor, num_keep: int, metric: str = "cosine") -> list[int]:
    """First pick: the token whose smallest distance to another token is largest. Then, repeatedly, the token
    whose smallest distance to the picked set is largest. Ties: lowest index. Never the same token twice."""
    dist = distance_matrix(tokens, metric)
    n = len(dist)
    picked: list[int] = []
    for _ in range(num_keep):
        best, best_score = -1, -np.inf
        for j in range(n):
            if j in picked:
                continue
            if picked:
                score = min(dist[s, j] for s in picked)
            else:
                others = [dist[i, j] for i in range(n) if i != j]
                score = min(others) if others else np.inf
            if best < 0 or score > best_score:
                best, best_score = j, score
        picked.append(best)
    return picked

"""Inputs of the full path's step loop, shared by the GPU tests of its Triton and CUDA C kernels."""

from __future__ import annotations

import torch

from divprune_video.testing import clustered_tokens, random_tokens

#: (N, k) of the two shapes whose repeated runs exposed the Triton kernel's exchange race: the streaming memory
#: (keep 4,096 of 4,240) and 32 frames at 15%.
RACE_SHAPES = [(4240, 4096), (4608, 691)]


def step_loop_inputs(tokens: torch.Tensor, valid: torch.Tensor | None = None):
    """(1, N, N) Gram matrix, (1, N) inverse norms and (1, N) first-pick scores of (N, D) tokens: the step loop's
    inputs on the cosine path."""
    from divprune_video.selection import _triton
    from divprune_video.selection.distance import gram, inverse_norms

    batch = tokens.unsqueeze(0)
    inv = inverse_norms(batch).contiguous()
    g = gram(batch, batch).contiguous()
    return g, inv, _triton.cosine_first_scores(g, inv, valid)


def race_tokens(num_tokens: int) -> torch.Tensor:
    """CUDA fp16 tokens, D = 4,096, of a :data:`RACE_SHAPES` size: random at the streaming shape, 64 clusters at
    N = 4,608."""
    if num_tokens == 4240:
        return random_tokens(num_tokens, 4096, seed=0, dtype=torch.float16, device="cuda")
    return clustered_tokens(num_tokens, 4096, num_clusters=64, seed=1).to("cuda", torch.float16)

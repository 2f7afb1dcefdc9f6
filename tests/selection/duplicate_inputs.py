"""Token sets full of exact duplicates, as a static video gives them: shared by the selection tests of every path."""

from __future__ import annotations

import torch


def repeated_tokens(num_distinct: int, num_tokens: int, dim: int, *, seed: int) -> torch.Tensor:
    """(num_tokens, dim): ``num_distinct`` random tokens, each repeated at random positions."""
    generator = torch.Generator().manual_seed(seed)
    distinct = torch.randn(num_distinct, dim, generator=generator)
    which = torch.randint(num_distinct, (num_tokens,), generator=generator)
    which[:num_distinct] = torch.randperm(num_distinct, generator=generator)  # every one appears
    return distinct[which[torch.randperm(num_tokens, generator=generator)]]


def static_video_tokens(num_frames: int, per_frame: int, dim: int, *, seed: int) -> torch.Tensor:
    """(num_frames * per_frame, dim), frame-major: one frame's tokens, identical in every frame, except one frame
    in the middle (a passing object) that holds other tokens."""
    generator = torch.Generator().manual_seed(seed)
    frame, change = torch.randn(2, per_frame, dim, generator=generator)
    frames = [change if index == num_frames // 2 else frame for index in range(num_frames)]
    return torch.cat(frames)


def duplicate_heavy_cases() -> list[tuple[str, torch.Tensor, int]]:
    """(name, (N, D) float32 tokens, num_keep): keep counts past the number of distinct tokens, so that the picks
    run into ties between copies (at distance exactly 0), which must go to the lowest index."""
    return [
        ("5 tokens x 24", repeated_tokens(5, 120, 16, seed=0), 30),
        ("12 tokens x 10", repeated_tokens(12, 120, 48, seed=1), 40),
        ("half copies", torch.cat([repeated_tokens(60, 60, 8, seed=2), repeated_tokens(60, 60, 8, seed=2)]), 90),
        ("static video 12 x 16", static_video_tokens(12, 16, 32, seed=3), 48),
        ("one token x 50", repeated_tokens(1, 50, 8, seed=4), 7),
    ]

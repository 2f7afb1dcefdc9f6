"""Synthetic token sets for selector tests: random, clustered, and video-like (redundant within a scene)."""

from __future__ import annotations

from typing import Optional

import torch


def random_tokens(
    num_tokens: int, dim: int, *, seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> torch.Tensor:
    """(num_tokens, dim) standard-normal tokens from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_tokens, dim, generator=generator).to(dtype=dtype, device=device)


def clustered_tokens(
    num_tokens: int,
    dim: int,
    *,
    num_clusters: int = 8,
    spread: float = 0.3,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> torch.Tensor:
    """(num_tokens, dim) tokens around ``num_clusters`` random centres, each token centre + spread * noise."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_clusters, dim, generator=generator)
    members = torch.randint(num_clusters, (num_tokens,), generator=generator)
    tokens = centres[members] + spread * torch.randn(num_tokens, dim, generator=generator)
    return tokens.to(dtype=dtype, device=device)


def synthetic_video_tokens(
    num_frames: int = 32,
    tokens_per_frame: int = 144,
    dim: int = 1024,
    *,
    num_scenes: int = 3,
    scene_lengths: Optional[list[int]] = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens that behave like a video's: redundant within a scene, different between scenes.

    Each scene has a fixed set of ``tokens_per_frame`` "patch" vectors (a few of them background patches that
    repeat across the frame); each frame of the scene is those patches plus small noise that drifts slowly.

    Returns ``(tokens, scene_of_token)``: (num_frames * tokens_per_frame, dim) tokens in frame-major order and
    (num_frames * tokens_per_frame,) int64 scene ids. ``scene_lengths`` (frames per scene) defaults to equal parts.
    """
    generator = torch.Generator().manual_seed(seed)
    if scene_lengths is None:
        base, extra = divmod(num_frames, num_scenes)
        scene_lengths = [base + (i < extra) for i in range(num_scenes)]
    if sum(scene_lengths) != num_frames or min(scene_lengths) < 1:
        raise ValueError(f"scene_lengths must be positive and sum to num_frames={num_frames}; got {scene_lengths}")
    frames, scene_ids = [], []
    for scene, length in enumerate(scene_lengths):
        distinct = torch.randn(tokens_per_frame // 4, dim, generator=generator)
        background = torch.randn(1, dim, generator=generator)
        patches = torch.cat([distinct, background.expand(tokens_per_frame - distinct.shape[0], dim)])
        patches = patches[torch.randperm(tokens_per_frame, generator=generator)]
        drift = torch.zeros(tokens_per_frame, dim)
        for _ in range(length):
            drift = drift + 0.02 * torch.randn(tokens_per_frame, dim, generator=generator)
            frames.append(patches + drift + 0.05 * torch.randn(tokens_per_frame, dim, generator=generator))
            scene_ids.append(torch.full((tokens_per_frame,), scene, dtype=torch.long))
    return torch.cat(frames).to(dtype), torch.cat(scene_ids)

"""Diverse keyframe pre-selection: the Max-Min diversity objective (DivPrune's selector) over frame features.

Picks ``k`` frames out of many (e.g. 32 of 512 candidates from a long video) before token-level pruning, so the
model sees the most different moments rather than evenly spaced, possibly repetitive ones. Built-in features need
no weights; any callable mapping (T, H, W, 3) uint8 frames to (T, D) features works too (e.g. a vision tower's
pooled features).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..selection import divprune
from .clip import VideoClip
from .sources import as_frame_array

FeatureFn = Callable[[np.ndarray], Any]

# Frames converted to float at a time by the built-in extractors (bounds memory for 512 x 720p candidates).
_CHUNK = 16


def thumbnail_features(frames: np.ndarray, size: int = 16) -> torch.Tensor:
    """(T, size * size * 3) float32 in [0, 1]: each frame area-averaged down to size x size RGB.

    frames: (T, H, W, 3) uint8."""
    rows = []
    for begin in range(0, len(frames), _CHUNK):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[begin : begin + _CHUNK])).permute(0, 3, 1, 2).float()
        rows.append(F.adaptive_avg_pool2d(chunk, size).flatten(1) / 255.0)
    return torch.cat(rows)


def histogram_features(frames: np.ndarray, bins: int = 16) -> torch.Tensor:
    """(T, 3 * bins) float32: per-channel colour histograms, each normalised to sum to 1.

    frames: (T, H, W, 3) uint8. Insensitive to where things are in the frame, sensitive to what colours appear."""
    features = np.empty((len(frames), 3 * bins), dtype=np.float32)
    for t, frame in enumerate(frames):
        for channel in range(3):
            values = frame[..., channel].reshape(-1).astype(np.int32)
            counts = np.bincount(values * bins // 256, minlength=bins)
            features[t, channel * bins : (channel + 1) * bins] = counts / counts.sum()
    return torch.from_numpy(features)


#: name -> (extractor, distance the selector compares the features with)
FEATURES: dict[str, tuple[FeatureFn, str]] = {
    "thumbnail": (thumbnail_features, "l2"),
    "histogram": (histogram_features, "l1"),
}


def frame_features(frames: np.ndarray, features: Union[str, FeatureFn] = "thumbnail") -> tuple[torch.Tensor, str]:
    """(T, D) float features of ``frames`` ((T, H, W, 3) uint8) and the metric to compare them with: the
    built-in's metric, or ``"cosine"`` for a callable."""
    if callable(features):
        values, metric = features(frames), "cosine"
    elif features in FEATURES:
        extractor, metric = FEATURES[features]
        values = extractor(frames)
    else:
        raise ValueError(f"features must be one of {sorted(FEATURES)} or a callable; got {features!r}")
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    if tensor.ndim != 2 or tensor.shape[0] != len(frames):
        raise ValueError(
            f"features: expected ({len(frames)}, D) features for {len(frames)} frames; got shape {tuple(tensor.shape)}"
        )
    return tensor.float(), metric


def select_keyframes(
    frames: Union[np.ndarray, torch.Tensor, list, VideoClip],
    k: int,
    *,
    features: Union[str, FeatureFn] = "thumbnail",
    metric: Optional[str] = None,
) -> np.ndarray:
    """Positions of ``k`` mutually most different frames, in time order: (k,) int64 ascending.

    frames: (T, H, W, 3) uint8 array or tensor, a list of PIL images, or a :class:`VideoClip`. features:
    ``"thumbnail"`` (16 x 16 RGB thumbnails, L2 distance), ``"histogram"`` (colour histograms, L1 distance), or a
    callable (T, H, W, 3) uint8 -> (T, D) features (cosine distance). metric overrides the distance. The greedy
    Max-Min selection is :func:`divprune_video.divprune` over the (T, D) features."""
    array = frames.frames if isinstance(frames, VideoClip) else as_frame_array(frames, name="frames")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int; got {k!r}")
    if k > len(array):
        raise ValueError(f"k={k} is more than the {len(array)} frames given")
    values, default_metric = frame_features(array, features)
    picks = divprune(values, num_keep=int(k), metric=metric or default_metric)
    return np.sort(picks.cpu().numpy().astype(np.int64))

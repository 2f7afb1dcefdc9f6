"""divprune-video: training-free diverse visual-token pruning (DivPrune) for long-video question answering.

The selector is imported eagerly (it needs only torch); everything that needs optional dependencies (video
decoding, transformers) is imported on first use, so ``import divprune_video`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import DivPruneVideoError
from .selection import (
    available_methods,
    divprune,
    divprune_batch,
    get_selector,
    min_pairwise_distance,
    pairwise_distance,
    plan_selection,
    register_selector,
)

__version__ = "0.1.0"

# name -> module that defines it (imported lazily on first access).
_LAZY = {
    "VideoError": "divprune_video.video",
    "VideoClip": "divprune_video.video",
    "Frame": "divprune_video.video",
    "load_video": "divprune_video.video",
    "stream_frames": "divprune_video.video",
    "select_keyframes": "divprune_video.video",
    "VideoQAPipeline": "divprune_video.pipeline",
    "VideoQAResult": "divprune_video.pipeline",
    "ContextLengthError": "divprune_video.models.context",
    "StreamingVideoQA": "divprune_video.streaming",
    "DiverseTokenMemory": "divprune_video.streaming",
}

__all__ = [
    "DivPruneVideoError",
    "__version__",
    "available_methods",
    "divprune",
    "divprune_batch",
    "get_selector",
    "min_pairwise_distance",
    "pairwise_distance",
    "plan_selection",
    "register_selector",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'divprune_video' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

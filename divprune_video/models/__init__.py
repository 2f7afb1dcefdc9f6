"""Model adapters over transformers: frames -> visual tokens -> pruned prefill -> answer.

One adapter per model family (LLaVA-NeXT-Video first), found by the checkpoint's ``model_type``::

    from divprune_video.models import PruningConfig, load_adapter

    adapter = load_adapter("llava-hf/LLaVA-NeXT-Video-7B-hf")
    video = adapter.encode_frames(frames)                      # (T, H, W, 3) uint8 -> EncodedVideo
    result = adapter.generate([video], ["What happens?"], PruningConfig(keep_ratio=0.15), max_new_tokens=32)

Importing this package needs only torch; transformers is imported when an adapter is loaded.
"""

from .base import (
    NO_PRUNING,
    POSITION_MODES,
    EncodedVideo,
    GenerationResult,
    ModelAdapter,
    PruneRecord,
    PruningConfig,
    SparseEncodedVideo,
)
from .registry import adapter_class, available_adapters, load_adapter, register_adapter, resolve_adapter

__all__ = [
    "NO_PRUNING",
    "POSITION_MODES",
    "EncodedVideo",
    "GenerationResult",
    "ModelAdapter",
    "PruneRecord",
    "PruningConfig",
    "SparseEncodedVideo",
    "adapter_class",
    "available_adapters",
    "load_adapter",
    "register_adapter",
    "resolve_adapter",
]

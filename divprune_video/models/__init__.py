"""Model adapters over transformers: frames -> visual tokens -> pruned prefill -> answer.

One adapter per model family, each in its own folder (``llava_next_video/``, ``llava_onevision/``), found by the
checkpoint's ``model_type``::

    from divprune_video.models import PruningConfig, load_adapter

    adapter = load_adapter("llava-hf/llava-onevision-qwen2-7b-ov-hf")
    video = adapter.encode_frames(frames)                      # (T, H, W, 3) uint8 -> EncodedVideo
    result = adapter.generate([video], ["What happens?"], PruningConfig(keep_ratio=0.15), max_new_tokens=32)

Importing this package needs only torch; transformers is imported when an adapter is loaded.
"""

from .base import (
    NO_PRUNING,
    POSITION_MODES,
    EncodedVideo,
    FrameTiming,
    GenerationResult,
    ModelAdapter,
    PruneRecord,
    PruningConfig,
)
from .context import ContextLengthError, context_length
from .registry import (
    ADAPTERS,
    FAMILIES,
    ModelFamily,
    adapter_class,
    available_adapters,
    available_families,
    load_adapter,
    model_family,
    register_adapter,
    register_family,
    resolve_adapter,
)

__all__ = [
    "ADAPTERS",
    "FAMILIES",
    "NO_PRUNING",
    "ContextLengthError",
    "POSITION_MODES",
    "EncodedVideo",
    "FrameTiming",
    "GenerationResult",
    "ModelAdapter",
    "ModelFamily",
    "PruneRecord",
    "PruningConfig",
    "adapter_class",
    "available_adapters",
    "available_families",
    "context_length",
    "load_adapter",
    "model_family",
    "register_adapter",
    "register_family",
    "resolve_adapter",
]

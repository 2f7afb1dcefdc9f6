"""LLaVA-NeXT-Video (transformers ``model_type`` "llava_next_video"): CLIP ViT-L/14 at 336 px, 2 x 2 average pooling,
Vicuna-7B."""

from ..base import DEFAULT_MODEL
from ..registry import ModelFamily, register_family
from . import presets
from .adapter import LlavaNextVideoAdapter

FAMILY = register_family(
    ModelFamily(
        name="llava_next_video",
        adapter=LlavaNextVideoAdapter,
        checkpoints=(DEFAULT_MODEL, "llava-hf/LLaVA-NeXT-Video-7B-DPO-hf"),
        reference_config=presets.reference_config,
        save_tiny_checkpoint=presets.save_tiny_checkpoint,
        lmms_eval_model="llava_hf",
        tokens_per_frame="144 (12 x 12) at 336 px: CLIP's 24 x 24 patches, 2 x 2 average pooling",
        positions="1-D: 'renumber' (contiguous, default) or 'original' (each kept token keeps its own)",
    )
)

__all__ = ["DEFAULT_MODEL", "FAMILY", "LlavaNextVideoAdapter"]

"""LLaVA-OneVision and LLaVA-Video (transformers ``model_type`` "llava_onevision"): SigLIP at 384 px, 2 x 2 bilinear
pooling to 196 tokens per frame, a newline token after the video, Qwen2."""

from ..registry import ModelFamily, register_family
from . import presets
from .adapter import DEFAULT_MODEL, LlavaOnevisionAdapter

FAMILY = register_family(
    ModelFamily(
        name="llava_onevision",
        adapter=LlavaOnevisionAdapter,
        checkpoints=(
            DEFAULT_MODEL,
            "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
            "llava-hf/llava-onevision-qwen2-72b-ov-hf",
            "llava-hf/LLaVA-Video-7B-Qwen2-hf",
        ),
        reference_config=presets.reference_config,
        save_tiny_checkpoint=presets.save_tiny_checkpoint,
        lmms_eval_model="llava_onevision",
        tokens_per_frame="196 (14 x 14) at 384 px: SigLIP's 27 x 27 patches, 2 x 2 bilinear pooling; plus 1 newline "
        "token per video (always kept, not counted)",
        positions="1-D: 'renumber' (contiguous, default) or 'original' (each kept token keeps its own)",
    )
)

__all__ = ["DEFAULT_MODEL", "FAMILY", "LlavaOnevisionAdapter"]

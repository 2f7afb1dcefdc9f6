"""Qwen2.5-VL (transformers ``model_type`` "qwen2_5_vl"): dynamic resolution, 14 px patches, two frames per temporal
patch, a windowed vision tower, 2 x 2 merging, 3-D M-RoPE positions."""

from ..registry import ModelFamily, register_family
from . import presets
from .adapter import DEFAULT_MODEL, Qwen2_5_VLAdapter

FAMILY = register_family(
    ModelFamily(
        name="qwen2_5_vl",
        adapter=Qwen2_5_VLAdapter,
        checkpoints=(
            DEFAULT_MODEL,
            "Qwen/Qwen2.5-VL-3B-Instruct",
            "Qwen/Qwen2.5-VL-32B-Instruct",
            "Qwen/Qwen2.5-VL-72B-Instruct",
        ),
        reference_config=presets.reference_config,
        save_tiny_checkpoint=presets.save_tiny_checkpoint,
        lmms_eval_model="qwen2_5_vl",
        tokens_per_frame="(H / 28) x (W / 28) per frame pair at the processor's resolution (256 at 448 x 448)",
        positions="3-D (time, height, width): 'original' only (each kept token keeps its own; 'renumber' is refused)",
    )
)

__all__ = ["DEFAULT_MODEL", "FAMILY", "Qwen2_5_VLAdapter"]

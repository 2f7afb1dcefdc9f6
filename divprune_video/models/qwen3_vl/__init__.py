"""Qwen3-VL (transformers ``model_type`` "qwen3_vl"): dynamic resolution, 16 px patches, two frames per temporal patch,
2 x 2 merging, DeepStack features added inside the LLM's first layers, text timestamps between frame pairs, 3-D
M-RoPE positions."""

from ..registry import ModelFamily, register_family
from . import presets
from .adapter import DEFAULT_MODEL, Qwen3VLAdapter

FAMILY = register_family(
    ModelFamily(
        name="qwen3_vl",
        adapter=Qwen3VLAdapter,
        checkpoints=(DEFAULT_MODEL, "Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen3-VL-2B-Instruct"),
        reference_config=presets.reference_config,
        save_tiny_checkpoint=presets.save_tiny_checkpoint,
        lmms_eval_model="qwen3_vl",
        tokens_per_frame="(H / 32) x (W / 32) per frame pair at the processor's resolution (196 at 448 x 448), each "
        "pair after its timestamp text",
        positions="3-D (time, height, width): 'original' only (each kept token keeps its own; 'renumber' is refused)",
    )
)

__all__ = ["DEFAULT_MODEL", "FAMILY", "Qwen3VLAdapter"]

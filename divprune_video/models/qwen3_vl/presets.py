"""Qwen3-VL presets: the real 8B architecture (random-weight benchmarks) and the tiny offline checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from ..tiny import (
    INPUT_SENSITIVE_SCALE,
    QWEN_VL_SPECIAL_TOKENS,
    QWEN_VL_TOKEN_FIELDS,
    chatml_tokenizer,
    qwen_vl_processor_files,
    special_token_ids,
    write_json_files,
    write_random_model,
)
from .adapter import HALF_MEAN, HALF_STD

#: Qwen3-VL's chat template, for the message shapes a video question has (system, user and assistant turns whose
#: content is a string or a list of image, video and text items): ChatML without a default system turn, each video
#: as ``<|vision_start|><|video_pad|><|vision_end|>`` (the processor replaces the pad by timestamped frame pairs).
CHAT_TEMPLATE = (
    "{%- macro render(content) %}{%- if content is string %}{{- content }}{%- else %}"
    "{%- for item in content %}"
    "{%- if 'image' in item or 'image_url' in item or item.type == 'image' %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif 'video' in item or item.type == 'video' %}{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in item %}{{- item.text }}{%- endif %}{%- endfor %}{%- endif %}{%- endmacro %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\n' }}{{- render(message.content) }}{{- '<|im_end|>\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
#: The tiny checkpoint's pixel limits (all frames of a video together): eight 72 x 96 frames become 64 x 96 =
#: 4 x 6 patches of 16 px, merged to 2 x 3 = 6 tokens per frame pair.
TINY_MIN_PIXELS = 64 * 64
TINY_MAX_PIXELS = 96 * 96 * 8


def reference_config() -> Any:
    """The configuration of ``Qwen/Qwen3-VL-8B-Instruct`` (values from its config.json): a 27-block vision tower of
    width 1152 in 16 px patches with DeepStack features from blocks 8, 16 and 24, Qwen3-8B text model (36 layers,
    width 4096, 32 heads sharing 8 key/value heads, interleaved M-RoPE sections 24/20/20)."""
    from transformers import Qwen3VLConfig

    vision = dict(
        depth=27,
        hidden_size=1152,
        intermediate_size=4304,
        num_heads=16,
        in_channels=3,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=4096,
        num_position_embeddings=2304,
        deepstack_visual_indexes=[8, 16, 24],
        hidden_act="gelu_pytorch_tanh",
    )
    text = dict(
        vocab_size=151936,
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=262144,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5000000.0,
            "mrope_section": [24, 20, 20],
            "mrope_interleaved": True,
        },
        bos_token_id=151643,
        eos_token_id=151645,
        tie_word_embeddings=False,
    )
    return Qwen3VLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=False,
    )


def tiny_config(vocab_size: int, token_ids: dict[str, int]) -> Any:
    """A Qwen3-VL config small enough for CPU tests: a 4-block vision tower (width 32, 16 px patches, a 4 x 4
    learned position grid) with DeepStack features from blocks 0 and 2 (added after LLM layers 0 and 1), Qwen3 text
    model (4 layers, width 64, 4 heads of 16 sharing 2 key/value heads, interleaved M-RoPE sections 2/3/3)."""
    from transformers import Qwen3VLConfig

    vision = dict(
        depth=4,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        in_channels=3,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=64,
        num_position_embeddings=16,
        deepstack_visual_indexes=[0, 2],
    )
    text = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5000000.0,
            "mrope_section": [2, 3, 3],
            "mrope_interleaved": True,
        },
        bos_token_id=None,
        eos_token_id=token_ids["eos_token_id"],
        pad_token_id=token_ids["pad_token_id"],
        tie_word_embeddings=False,
    )
    return Qwen3VLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=token_ids["image_token_id"],
        video_token_id=token_ids["video_token_id"],
        vision_start_token_id=token_ids["vision_start_token_id"],
        vision_end_token_id=token_ids["vision_end_token_id"],
        tie_word_embeddings=False,
    )


def tiny_tokenizer() -> Any:
    """Byte-level BPE without a BOS token, as Qwen's, with its chat and vision special tokens."""
    return chatml_tokenizer(QWEN_VL_SPECIAL_TOKENS, CHAT_TEMPLATE)


def save_tiny_checkpoint(
    path: Union[str, os.PathLike], *, seed: int = 0, weight_scale: Optional[float] = INPUT_SENSITIVE_SCALE
) -> Path:
    """Write a tiny random Qwen3-VL checkpoint to folder ``path`` and return it.

    The folder holds what ``Qwen/Qwen3-VL-8B-Instruct`` holds (config, weights, generation config, tokenizer with
    the chat template, image, video and processor configs), so ``AutoProcessor`` and
    ``AutoModelForImageTextToText`` load it the same way (sizes: :func:`tiny_config`, pixel limits
    :data:`TINY_MIN_PIXELS` / :data:`TINY_MAX_PIXELS`). Nothing is downloaded. ``weight_scale``: see
    :func:`~divprune_video.models.tiny.redraw_weights`.
    """
    from transformers import Qwen3VLForConditionalGeneration

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    config = tiny_config(len(tokenizer), special_token_ids(tokenizer, QWEN_VL_TOKEN_FIELDS))
    write_random_model(folder, Qwen3VLForConditionalGeneration, config, tokenizer, seed=seed, weight_scale=weight_scale)
    write_json_files(
        folder,
        qwen_vl_processor_files(
            "Qwen3VLProcessor",
            "Qwen2VLImageProcessor",
            "Qwen3VLVideoProcessor",
            patch_size=16,
            mean=HALF_MEAN,
            std=HALF_STD,
            min_pixels=TINY_MIN_PIXELS,
            max_pixels=TINY_MAX_PIXELS,
            video_extra={"fps": 2},
        ),
    )
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return folder

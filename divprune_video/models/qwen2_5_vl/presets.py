"""Qwen2.5-VL presets: the real 7B architecture (random-weight benchmarks) and the tiny offline checkpoint."""

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
from .adapter import CLIP_MEAN, CLIP_STD

#: The chat template of the Qwen2-VL / Qwen2.5-VL checkpoints: ChatML with a default system turn, each video as
#: ``<|vision_start|><|video_pad|><|vision_end|>`` (the processor repeats the pad once per visual token).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: The tiny checkpoint's frame pixel limits: a 72 x 96 frame becomes 84 x 84 = 6 x 6 patches of 14 px, merged to
#: 3 x 3 = 9 tokens per frame pair; its vision windows (56 px: 2 x 2 merged tokens) do not divide that grid.
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 112 * 140


def reference_config() -> Any:
    """The configuration of ``Qwen/Qwen2.5-VL-7B-Instruct`` (values from its config.json): a 32-block vision tower
    of width 1280 (windowed attention except blocks 7, 15, 23, 31), Qwen2-7B text model (28 layers, width 3584,
    28 heads sharing 4 key/value heads, M-RoPE sections 16/24/24)."""
    from transformers import Qwen2_5_VLConfig

    vision = dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        in_channels=3,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,
        window_size=112,
        out_hidden_size=3584,
        fullatt_block_indexes=[7, 15, 23, 31],
        hidden_act="silu",
    )
    text = dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        bos_token_id=151643,
        eos_token_id=151645,
        tie_word_embeddings=False,
    )
    return Qwen2_5_VLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=False,
    )


def tiny_config(vocab_size: int, token_ids: dict[str, int]) -> Any:
    """A Qwen2.5-VL config small enough for CPU tests: a 4-block vision tower (width 32; blocks 1 and 3 with full
    attention, the others windowed), Qwen2 text model (4 layers, width 64, 4 heads sharing 2 key/value heads,
    M-RoPE sections 2/3/3 of the 8 rotary frequencies)."""
    from transformers import Qwen2_5_VLConfig

    vision = dict(
        depth=4,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        in_channels=3,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,
        window_size=56,
        out_hidden_size=64,
        fullatt_block_indexes=[1, 3],
        hidden_act="silu",
    )
    text = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=None,
        eos_token_id=token_ids["eos_token_id"],
        pad_token_id=token_ids["pad_token_id"],
        tie_word_embeddings=False,
    )
    return Qwen2_5_VLConfig(
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
    """Write a tiny random Qwen2.5-VL checkpoint to folder ``path`` and return it.

    The folder holds what ``Qwen/Qwen2.5-VL-7B-Instruct`` holds (config, weights, generation config, tokenizer with
    the chat template, image, video and processor configs), so ``AutoProcessor`` and
    ``AutoModelForImageTextToText`` load it the same way (sizes: :func:`tiny_config`, frame pixel limits
    :data:`TINY_MIN_PIXELS` / :data:`TINY_MAX_PIXELS`). Nothing is downloaded. ``weight_scale``: see
    :func:`~divprune_video.models.tiny.redraw_weights`.
    """
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    config = tiny_config(len(tokenizer), special_token_ids(tokenizer, QWEN_VL_TOKEN_FIELDS))
    write_random_model(
        folder, Qwen2_5_VLForConditionalGeneration, config, tokenizer, seed=seed, weight_scale=weight_scale
    )
    write_json_files(
        folder,
        qwen_vl_processor_files(
            "Qwen2_5_VLProcessor",
            "Qwen2VLImageProcessor",
            "Qwen2VLVideoProcessor",
            patch_size=14,
            mean=CLIP_MEAN,
            std=CLIP_STD,
            min_pixels=TINY_MIN_PIXELS,
            max_pixels=TINY_MAX_PIXELS,
        ),
    )
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return folder

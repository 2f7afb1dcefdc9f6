"""LLaVA-OneVision presets: the real 7B architecture (random-weight benchmarks) and the tiny offline checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from ..tiny import INPUT_SENSITIVE_SCALE, chatml_tokenizer, special_token_ids, write_json_files, write_random_model
from .adapter import SIGLIP_MEAN, SIGLIP_STD

#: The chat template of the llava-hf LLaVA-OneVision checkpoints (ChatML: "<|im_start|>user\n<video>\n...").
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
#: Frame side of the tiny model: 35 px in 7 px patches = 5 x 5, pooled to ceil(5 / 2) = 3 x 3 = 9 tokens per frame
#: (an odd patch grid, as the real 27 x 27).
TINY_IMAGE_SIZE = 35
TINY_PATCH_SIZE = 7
_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>")


def reference_config() -> Any:
    """The configuration of ``llava-hf/llava-onevision-qwen2-7b-ov-hf`` (values from its config.json): SigLIP
    so400m at 384 px (26 layers, width 1152), Qwen2-7B (28 layers, width 3584, 28 heads sharing 4 key/value
    heads)."""
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    vision = SiglipVisionConfig(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=26,
        num_attention_heads=16,
        image_size=384,
        patch_size=14,
        vision_use_head=False,
    )
    text = Qwen2Config(
        vocab_size=152128,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        bos_token_id=151643,
        eos_token_id=151645,
        tie_word_embeddings=False,
    )
    return LlavaOnevisionConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_index=151646,
        video_token_index=151647,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )


def tiny_config(
    vocab_size: int, *, video_token_id: int, image_token_id: int, pad_token_id: int, eos_token_id: int
) -> Any:
    """A LLaVA-OneVision config small enough for CPU tests: SigLIP vision tower (2 layers, width 32, 35 px frames in
    7 px patches), Qwen2 text model (4 layers, width 64, 4 heads sharing 2 key/value heads), 2 x 2 bilinear pooling
    to 3 x 3 = 9 tokens per frame, plus the newline token after each video."""
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=TINY_IMAGE_SIZE,
        patch_size=TINY_PATCH_SIZE,
        vision_use_head=False,
    )
    text = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        eos_token_id=eos_token_id,
        tie_word_embeddings=False,
    )
    side = TINY_IMAGE_SIZE
    return LlavaOnevisionConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_index=image_token_id,
        video_token_index=video_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_grid_pinpoints=[[side, side], [side, 2 * side], [2 * side, side], [2 * side, 2 * side]],
        tie_word_embeddings=False,
    )


def tiny_tokenizer() -> Any:
    """The tiny model's tokenizer: byte-level BPE without a BOS token, as Qwen2's, with ChatML's special tokens."""
    return chatml_tokenizer(_SPECIAL_TOKENS, CHAT_TEMPLATE)


def save_tiny_checkpoint(
    path: Union[str, os.PathLike], *, seed: int = 0, weight_scale: Optional[float] = INPUT_SENSITIVE_SCALE
) -> Path:
    """Write a tiny random LLaVA-OneVision checkpoint to folder ``path`` and return it.

    The folder holds what ``llava-hf/llava-onevision-qwen2-7b-ov-hf`` holds (config, weights, generation config,
    tokenizer with the chat template, image, video and processor configs), so ``AutoProcessor`` and
    ``AutoModelForImageTextToText`` load it the same way (see :func:`tiny_config` for the sizes). Nothing is
    downloaded. ``weight_scale``: see :func:`~divprune_video.models.tiny.redraw_weights`.
    """
    from transformers import LlavaOnevisionForConditionalGeneration

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    ids = special_token_ids(
        tokenizer,
        {
            "video_token_id": "<video>",
            "image_token_id": "<image>",
            "pad_token_id": "<|endoftext|>",
            "eos_token_id": "<|im_end|>",
        },
    )
    config = tiny_config(len(tokenizer), **ids)
    write_random_model(
        folder, LlavaOnevisionForConditionalGeneration, config, tokenizer, seed=seed, weight_scale=weight_scale
    )
    side = TINY_IMAGE_SIZE
    frame_settings = {
        "processor_class": "LlavaOnevisionProcessor",
        "do_resize": True,
        "size": {"height": side, "width": side},
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(SIGLIP_MEAN),
        "image_std": list(SIGLIP_STD),
        "do_convert_rgb": True,
    }
    write_json_files(
        folder,
        {
            "video_preprocessor_config.json": {
                **frame_settings,
                "video_processor_type": "LlavaOnevisionVideoProcessor",
                "do_sample_frames": False,
            },
            "preprocessor_config.json": {
                **frame_settings,
                "image_processor_type": "LlavaOnevisionImageProcessor",
                "do_pad": True,
                "image_grid_pinpoints": config.image_grid_pinpoints,
            },
            "processor_config.json": {
                "processor_class": "LlavaOnevisionProcessor",
                "num_image_tokens": (side // TINY_PATCH_SIZE) ** 2,
                "vision_feature_select_strategy": config.vision_feature_select_strategy,
                "video_token": "<video>",
                "image_token": "<image>",
                "vision_aspect_ratio": config.vision_aspect_ratio,
            },
        },
    )
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return folder

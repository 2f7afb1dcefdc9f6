"""LLaVA-NeXT-Video presets: the real 7B architecture (random-weight benchmarks) and the tiny offline checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from ..tiny import INPUT_SENSITIVE_SCALE, train_tiny_tokenizer, write_json_files, write_random_model
from .adapter import CLIP_MEAN, CLIP_STD

#: The chat template of the llava-hf LLaVA-NeXT-Video checkpoints ("USER: <video>\n... ASSISTANT:").
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}"
    "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
#: Frame side of the tiny model: 56 px in 7 px patches = 8 x 8, pooled 2 x 2 -> 16 visual tokens per frame.
TINY_IMAGE_SIZE = 56
_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<video>", "<image>")


def reference_config() -> Any:
    """The configuration of ``llava-hf/LLaVA-NeXT-Video-7B-hf`` (values from its config.json)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextVideoConfig

    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
        vocab_size=32000,
    )
    text = LlamaConfig(
        vocab_size=32064,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
    )
    return LlavaNextVideoConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        video_token_index=32000,
        image_token_index=32001,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        spatial_pool_mode="average",
        spatial_pool_stride=2,
        spatial_pool_out_channels=1024,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )


def tiny_config(
    vocab_size: int = 335, *, video_token_id: int = 4, image_token_id: int = 5, pad_token_id: int = 3
) -> Any:
    """A LLaVA-NeXT-Video config small enough for CPU tests: CLIP vision tower (2 layers, width 32, 56 px frames
    in 7 px patches), Llama text model (4 layers, width 64, 4 heads sharing 2 key/value heads), 2 x 2 average
    pooling: 16 visual tokens per frame."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextVideoConfig

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=TINY_IMAGE_SIZE,
        patch_size=7,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        initializer_range=0.1,
        pad_token_id=pad_token_id,
        bos_token_id=1,
        eos_token_id=2,
    )
    side = TINY_IMAGE_SIZE
    return LlavaNextVideoConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        video_token_index=video_token_id,
        image_token_index=image_token_id,
        spatial_pool_out_channels=32,
        image_seq_length=64,
        video_seq_length=16,
        image_grid_pinpoints=[[side, 2 * side], [2 * side, side], [2 * side, 2 * side]],
    )


def tiny_tokenizer() -> Any:
    """The tiny model's tokenizer: SentencePiece-like BPE with ``<s>`` first, as Llama's; the chat template set."""
    tokenizer = train_tiny_tokenizer(
        _SPECIAL_TOKENS, style="metaspace", bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tiny_checkpoint(
    path: Union[str, os.PathLike], *, seed: int = 0, weight_scale: Optional[float] = INPUT_SENSITIVE_SCALE
) -> Path:
    """Write a tiny random LLaVA-NeXT-Video checkpoint to folder ``path`` and return it.

    The folder holds what a real checkpoint holds: ``config.json``, ``model.safetensors``,
    ``generation_config.json``, a tokenizer (``tokenizer.json``, trained locally, with the chat template), the
    video and image processor configs and the processor config with the chat template, so it loads through the same
    ``from_pretrained`` calls as ``llava-hf/LLaVA-NeXT-Video-7B-hf`` (see :func:`tiny_config` for the sizes).
    Nothing is downloaded. ``weight_scale``: see :func:`~divprune_video.models.tiny.redraw_weights` (None keeps
    transformers' initialisation, whose answers barely depend on the input).
    """
    from transformers import LlavaNextVideoForConditionalGeneration

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    config = tiny_config(
        len(tokenizer),
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    write_random_model(
        folder, LlavaNextVideoForConditionalGeneration, config, tokenizer, seed=seed, weight_scale=weight_scale
    )
    side = TINY_IMAGE_SIZE
    frame_settings = {
        "processor_class": "LlavaNextVideoProcessor",
        "do_resize": True,
        "size": {"shortest_edge": side},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": side, "width": side},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "do_convert_rgb": True,
    }
    write_json_files(
        folder,
        {
            "video_preprocessor_config.json": {
                **frame_settings,
                "video_processor_type": "LlavaNextVideoVideoProcessor",
                "do_sample_frames": False,
            },
            "preprocessor_config.json": {
                **frame_settings,
                "image_processor_type": "LlavaNextImageProcessor",
                "do_pad": True,
                "image_grid_pinpoints": config.image_grid_pinpoints,
            },
            "processor_config.json": {
                "processor_class": "LlavaNextVideoProcessor",
                "patch_size": config.vision_config.patch_size,
                "vision_feature_select_strategy": config.vision_feature_select_strategy,
                "num_additional_image_tokens": 1,
                "video_token": "<video>",
                "image_token": "<image>",
            },
        },
    )
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return folder

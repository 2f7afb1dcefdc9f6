"""Shared pieces of the tiny random checkpoints every family writes (``save_tiny_checkpoint`` in each family's
``presets`` module; :func:`divprune_video.testing.save_tiny_model` picks the family): a tokenizer trained here on a
few sentences (no download), input-sensitive random weights, and the processor files.

Weights: a tiny model initialised as transformers initialises it gives the same answer to every question and every
video (its logits barely depend on the input), so equivalence tests on it prove nothing. :func:`redraw_weights`
draws every matrix again with standard deviation ``scale / sqrt(fan_in)`` (``scale`` about 3), which makes answers
depend on every pixel, token and position.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import torch
from torch import nn

#: Text the tiny tokenizers are trained on.
TINY_CORPUS = (
    "USER: What is happening in this video? ASSISTANT: A red ball moves to the left.",
    "USER: Which object moves fastest? ASSISTANT: The blue square moves right, then the green circle stops.",
    "USER: How many shapes are there? ASSISTANT: There are three shapes: a circle, a square and a triangle.",
    "USER: Describe the video. ASSISTANT: Colored shapes slide over a dark background and bounce off the edges.",
    "USER: What color is the largest object? ASSISTANT: It is yellow; the small one is white.",
    "USER: When does the ball stop? ASSISTANT: Near the end, after it hits the wall.",
    "The camera is still. A person walks in, picks up a cup and leaves the room.",
    "Answer with the option's letter from the given choices directly. (A) (B) (C) (D)",
    "You are a helpful assistant. Only give the best option. Best option: (",
)
#: The weight scale of the tiny checkpoints (see :func:`redraw_weights`).
INPUT_SENSITIVE_SCALE = 3.0


def train_tiny_tokenizer(
    special_tokens: Sequence[str],
    *,
    style: Literal["metaspace", "byte_level"],
    vocab_size: int = 384,
    bos_token: str | None = None,
    **token_roles: str,
) -> Any:
    """A fast BPE tokenizer trained on :data:`TINY_CORPUS`.

    Args:
        special_tokens: the special tokens, given the first ids in order.
        style: ``"metaspace"`` (SentencePiece-like, as Llama's) or ``"byte_level"`` (as Qwen2's).
        vocab_size: the vocabulary size to train to.
        bos_token: prepended to every encoded text when given (Llama); Qwen has none.
        token_roles: ``eos_token``, ``unk_token``, ``pad_token`` ... as :class:`PreTrainedTokenizerFast` takes them.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if style == "metaspace":
        backend = Tokenizer(models.BPE(unk_token=token_roles.get("unk_token")))
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        alphabet = ["\n"]
    else:
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(special_tokens), show_progress=False, initial_alphabet=alphabet
    )
    backend.train_from_iterator(TINY_CORPUS, trainer)
    if bos_token is not None:
        bos_id = backend.token_to_id(bos_token)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A $B", special_tokens=[(bos_token, bos_id)]
        )
    elif style == "byte_level":
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos_token, **token_roles)


#: The special tokens of the Qwen-VL tokenizers (Qwen2.5-VL, Qwen3-VL): ChatML's and the vision markers.
QWEN_VL_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def chatml_tokenizer(special_tokens: Sequence[str], chat_template: str) -> Any:
    """A tiny Qwen-style tokenizer: byte-level BPE without a BOS token, ``<|im_end|>`` ending turns,
    ``<|endoftext|>`` padding, and ``chat_template`` set."""
    tokenizer = train_tiny_tokenizer(
        special_tokens, style="byte_level", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def special_token_ids(tokenizer: Any, tokens: dict[str, str]) -> dict[str, int]:
    """``{config field: token}`` -> ``{config field: the tokenizer's id of that token}``."""
    return {name: tokenizer.convert_tokens_to_ids(token) for name, token in tokens.items()}


#: The token-id fields of a Qwen-VL config and the tokens they name.
QWEN_VL_TOKEN_FIELDS = {
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
    "eos_token_id": "<|im_end|>",
    "pad_token_id": "<|endoftext|>",
}


@torch.no_grad()
def redraw_weights(model: nn.Module, scale: float = INPUT_SENSITIVE_SCALE, *, seed: int = 0) -> nn.Module:
    """Draw ``model``'s weights again so that its outputs depend strongly on its inputs, in place.

    Every parameter of two or more dimensions (linear, convolution and embedding weights) gets standard deviation
    ``scale / sqrt(fan_in)``, fan_in being the product of all but its first dimension; vectors (biases, norm
    weights, learned tokens) get ``N(default, 0.1)`` around their current value's mean, so that norms stay near 1
    and biases near 0. Returns ``model``.
    """
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
        if parameter.dim() >= 2:
            value = noise * (scale / math.sqrt(parameter[0].numel()))
        else:
            value = parameter.float().mean() + 0.1 * noise
        parameter.copy_(value.to(parameter.dtype))
    return model


def write_random_model(
    folder: Path, model_class: Any, config: Any, tokenizer: Any, *, seed: int, weight_scale: float | None
) -> Any:
    """Build ``model_class(config)`` from ``seed``, redraw its weights at ``weight_scale`` (None: keep
    transformers' initialisation), and save it and ``tokenizer`` into ``folder``. Returns the model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    if weight_scale is not None:
        redraw_weights(model, weight_scale, seed=seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def write_json_files(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    """Write each ``{file name: content}`` as indented JSON into ``folder``."""
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n")


def qwen_vl_processor_files(
    processor_class: str,
    image_processor: str,
    video_processor: str,
    *,
    patch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    min_pixels: int,
    max_pixels: int,
    video_extra: Optional[dict[str, Any]] = None,
) -> dict[str, dict[str, Any]]:
    """The image, video and processor configs of a Qwen-VL-style checkpoint (2 frames per temporal patch, 2 x 2
    merge, pixel limits as ``size``), for :func:`write_json_files`. ``video_extra``: the video processor's own
    further settings (Qwen3-VL's ``fps``)."""
    frame_settings = {
        "processor_class": processor_class,
        "do_resize": True,
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(mean),
        "image_std": list(std),
        "do_convert_rgb": True,
        "patch_size": patch_size,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels},
    }
    return {
        "preprocessor_config.json": {**frame_settings, "image_processor_type": image_processor},
        "video_preprocessor_config.json": {
            **frame_settings,
            "video_processor_type": video_processor,
            "do_sample_frames": False,
            **(video_extra or {}),
        },
        "processor_config.json": {"processor_class": processor_class},
    }

"""Settings checked once against the loaded model, before any video is decoded: a prune layer the decoder has, and
a sequence that fits the model's context. Either would fail every sample (or run the model past the positions it
was trained for), so they stop the run with a :class:`~divprune_video.eval.base.ConfigurationError` whatever
``skip_missing`` says. The settings that need no model (keep ratio, method at its layer, frame counts) are checked
when the :class:`~divprune_video.eval.config.RunConfig` is built."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from ..models.context import context_length as model_context_length
from .base import ConfigurationError

if TYPE_CHECKING:
    from .config import RunConfig, Variant

logger = logging.getLogger(__name__)

#: Side of the blank frame encoded to count tokens per frame: families with one input size resize it to that size;
#: families that keep a frame's own resolution within pixel limits (Qwen-VL) scale it up to their fewest tokens.
_PROBE_SIZE = 64
#: Side of the blank frame that such families scale down to their most tokens per frame (Qwen2.5-VL's and
#: Qwen3-VL's default limits are about 776 and 887 px square).
_LARGE_PROBE_SIZE = 2048


def context_length(adapter: Any) -> Optional[int]:
    """The loaded model's context (:func:`divprune_video.models.context.context_length` of its configuration)."""
    config = getattr(adapter, "config", None) or adapter.model.config
    return model_context_length(config)


def visual_tokens(adapter: Any, num_frames: int, size: int = _PROBE_SIZE) -> tuple[int, int]:
    """(frame tokens, tokens outside the frames) of a ``num_frames``-frame video of ``size`` x ``size`` frames,
    counted by encoding one blank frame group with the adapter."""
    group = int(getattr(adapter, "frames_per_group", 1))
    encoded = adapter.encode_frames(np.zeros((group, size, size, 3), dtype=np.uint8))
    per_group = encoded.num_tokens // max(1, encoded.num_frames)
    return -(-num_frames // group) * per_group, encoded.num_unframed


def text_tokens(adapter: Any, prompt: str) -> int:
    """Tokens of the chat prompt around ``prompt`` (the video placeholder counted once); 0 without a tokenizer."""
    tokenizer = getattr(adapter, "tokenizer", None)
    if tokenizer is None:
        return 0
    return len(tokenizer(adapter.build_prompt(prompt))["input_ids"])


def check_prune_layers(adapter: Any, variants: Sequence["Variant"]) -> None:
    """Every variant's ``prune_layer`` must name a decoder layer that has layers after it."""
    layers = getattr(getattr(adapter, "decoder", None), "num_layers", None)
    if not isinstance(layers, int):
        return
    for variant in variants:
        if variant.prune_layer is not None and variant.prune_layer >= layers:
            raise ConfigurationError(
                f"variant {variant.name}: prune_layer {variant.prune_layer} is at or beyond the model's {layers} "
                f"decoder layers (0 prunes before the LLM, K in 1..{layers - 1} after decoder layer K)"
            )


def _sequence_length(variant: "Variant", visual: int, fixed: int) -> int:
    """Positions one sample reaches: the kept visual tokens plus ``fixed`` (text, unframed tokens, new tokens).
    Pruning after layer K >= 1 runs the first K layers on every visual token, so those count in full."""
    if not variant.pruned or variant.prune_layer:
        return visual + fixed
    return max(1, int(round(variant.keep_ratio * visual))) + fixed


def check_context(adapter: Any, config: "RunConfig", prompts: Sequence[str]) -> None:
    """Every variant's sequence (frames x tokens per frame x keep ratio, plus the longest prompt's text and the new
    tokens) must fit the model's context (:func:`context_length`).

    Where the tokens per frame follow each video's resolution (Qwen-VL), the check counts the fewest a frame can
    get, so a run is stopped only when no video could fit; a warning names the variants that the largest frames
    would take past the context (such samples are then refused one by one, before their prefill).
    """
    context = context_length(adapter)
    if context is None:
        return
    frames = min(config.keyframes or config.num_frames, config.num_frames)
    visual, unframed = visual_tokens(adapter, frames)
    text = text_tokens(adapter, max(prompts, key=len) if prompts else "")
    fixed = unframed + text + config.max_new_tokens
    logger.info("preflight: %d frames -> %d visual tokens, %d text tokens, context %d", frames, visual, text, context)
    for variant in config.variants:
        length = _sequence_length(variant, visual, fixed)
        if length > context:
            raise ConfigurationError(
                f"variant {variant.name}: about {length} positions per sample ({frames} frames -> {visual} visual "
                f"tokens{'' if length - fixed == visual else f', {length - fixed} kept'}, + {text} prompt tokens, "
                f"{unframed} other video tokens and {config.max_new_tokens} new tokens) exceed the model's context "
                f"of {context}; use fewer --num-frames or a lower keep ratio"
            )
    largest, _ = visual_tokens(adapter, frames, _LARGE_PROBE_SIZE)
    if largest <= visual:
        return
    for variant in config.variants:
        length = _sequence_length(variant, largest, fixed)
        if length > context:
            logger.warning(
                "variant %s: videos at this model's largest frame size (%d frames -> %d visual tokens) would need "
                "about %d positions, more than its context of %d; such samples will be refused one by one (smaller "
                "videos fit: %d frames of the smallest size give %d visual tokens)",
                variant.name,
                frames,
                largest,
                length,
                context,
                frames,
                visual,
            )


def check_model_settings(adapter: Any, config: "RunConfig", prompts: Sequence[str]) -> None:
    """:func:`check_prune_layers` and :func:`check_context` for a loaded model adapter."""
    check_prune_layers(adapter, config.variants)
    check_context(adapter, config, prompts)

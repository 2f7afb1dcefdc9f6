"""Tiny random checkpoints of every model family, written to disk like real ones (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ..models.tiny import INPUT_SENSITIVE_SCALE


def save_tiny_model(
    path: Union[str, os.PathLike],
    model_type: str,
    *,
    seed: int = 0,
    weight_scale: Optional[float] = INPUT_SENSITIVE_SCALE,
) -> Path:
    """Write a tiny random checkpoint of the family serving ``model_type`` to folder ``path`` and return it.

    ``model_type``: ``"llava_next_video"``, ``"llava_onevision"`` or any registered family's
    (:func:`divprune_video.models.available_families`). The folder holds a real checkpoint's files (config,
    weights, generation config, tokenizer trained locally with the chat template, processor configs), so
    ``AutoProcessor`` and ``AutoModelForImageTextToText`` load it like the real one. Nothing is downloaded.

    ``weight_scale``: the weights are drawn again with standard deviation ``weight_scale / sqrt(fan_in)``
    (:func:`~divprune_video.models.tiny.redraw_weights`), so answers depend on every pixel, token and position;
    None keeps transformers' initialisation (whose answers barely depend on the input).
    """
    from ..models import model_family

    return model_family(model_type).save_tiny_checkpoint(path, seed=seed, weight_scale=weight_scale)


def save_tiny_llava_next_video(
    path: Union[str, os.PathLike], *, seed: int = 0, weight_scale: Optional[float] = INPUT_SENSITIVE_SCALE
) -> Path:
    """:func:`save_tiny_model` of ``"llava_next_video"`` (16 visual tokens per 56 px frame)."""
    return save_tiny_model(path, "llava_next_video", seed=seed, weight_scale=weight_scale)

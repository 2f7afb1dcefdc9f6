"""The model's context: how many positions its text decoder takes, and the check that a prompt fits before any work.

A sequence longer than the decoder's trained positions does not fail in transformers: RoPE runs on past the
positions the model was trained for and the answers degrade silently. The adapters and the pipeline therefore
check every prompt (its text, its visual tokens as the decoder will see them, and the answer's new tokens) against
:func:`context_length` before decoding video or running the LLM, and raise :class:`ContextLengthError` naming the
limit and a keep ratio that fits.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from ..errors import DivPruneVideoError

__all__ = ["ContextLengthError", "check_fits", "context_length", "fitting_keep_ratio"]


class ContextLengthError(DivPruneVideoError, ValueError):
    """A prompt, with its visual tokens and the answer's new tokens, longer than the model's context."""


def _text_config(config: Any) -> Any:
    if hasattr(config, "get_text_config"):
        return config.get_text_config()
    return getattr(config, "text_config", config)


def context_length(config: Any) -> Optional[int]:
    """Positions the text decoder of a checkpoint ``config`` takes (a transformers config, the whole model's or the
    text model's): ``max_position_embeddings``, stretched by the factor of a RoPE scaling (LLaVA-NeXT-Video-7B: 4096
    with linear factor 2, so 8192; lmms-eval runs it unpruned at 32 x 144 visual tokens, beyond 4096). None when the
    configuration does not say."""
    text = _text_config(config)
    positions = getattr(text, "max_position_embeddings", None)
    if isinstance(positions, bool) or not isinstance(positions, int):
        return None
    scaling = getattr(text, "rope_parameters", None) or getattr(text, "rope_scaling", None)
    if not isinstance(scaling, dict) or scaling.get("rope_type", scaling.get("type")) in (None, "default"):
        return positions
    factor = scaling.get("factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1:
        return positions
    base = scaling.get("original_max_position_embeddings") or positions
    return max(positions, int(base * factor))


def fitting_keep_ratio(context: int, visual: int, fixed: int) -> Optional[float]:
    """The largest keep ratio, rounded down to a hundredth, at which ``visual`` tokens pruned to
    ``max(1, round(ratio * visual))`` plus ``fixed`` other positions fit ``context``; None when none does."""
    room = context - fixed
    if visual < 1 or room < 1:
        return None
    ratio = math.floor(100 * min(1.0, (room + 0.5) / visual)) / 100  # round(x) <= room needs x <= room + 0.5
    while ratio > 0 and max(1, round(ratio * visual)) > room:
        ratio = round(ratio - 0.01, 2)
    return ratio if ratio > 0 else None


def check_fits(
    context: Optional[int],
    *,
    visual: int,
    reached_visual: int,
    fixed: int,
    prunable: bool,
    source: str = "the prompt",
) -> None:
    """Raise :class:`ContextLengthError` when ``reached_visual + fixed`` positions exceed ``context``.

    Args:
        context: the model's context (:func:`context_length`); None checks nothing.
        visual: the video's visual tokens before pruning.
        reached_visual: the visual positions the decoder reaches (the kept tokens when pruning before the LLM and
            renumbering them, else all of ``visual``).
        fixed: every other position: the prompt's text and special tokens and the answer's new tokens.
        prunable: whether a lower keep ratio would shorten the sequence (pruning before the LLM with renumbered
            positions); the message then names a ratio that fits.
        source: what is being checked, for the message (e.g. ``"question 3"``).
    """
    if context is None or reached_visual + fixed <= context:
        return
    advice = "ask a shorter question or fewer new tokens"
    if visual:
        ratio = fitting_keep_ratio(context, visual, fixed) if prunable else None
        if ratio is not None:
            advice = f"use keep_ratio <= {ratio:g} (pruning before the LLM) or fewer frames"
        elif fixed < context:
            advice = "use fewer frames" + (
                ""
                if prunable
                else ", or prune before the LLM (prune_layer=0) with "
                "renumbered positions so only the kept tokens take positions"
            )
    raise ContextLengthError(
        f"{source} needs {reached_visual + fixed} positions ({reached_visual} visual of the video's {visual}, "
        f"{fixed} text and new tokens), more than the model's context of {context}; {advice}"
    )

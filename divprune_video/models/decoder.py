"""The decoder interface: what visual-token pruning needs from a model family's text decoder.

:class:`~.decoder_pruning.VisualTokenPruning` never touches a decoder's internals directly; it asks a
:class:`DecoderAccess` for the pieces that differ between decoders:

* **positions**: the positions the full prompt gets, those of a shorter (pruned) sequence, and those of each decoding
  step. 1-D positions are (B, L) int64; multi-axis positions (Qwen's M-RoPE: time, height, width) are (A, B, L) with
  the axes first, and every function here keeps the sequence in the last dimension;
* **rotary embeddings** of given positions, as the decoder layers receive them;
* **attention masks** for each kind of layer (full or sliding-window attention);
* **the KV cache**: finding it among a call's keyword arguments and keeping only some positions of its first layers;
* **the last-token attention** FastV ranks visual tokens by.

:class:`LlamaStyleDecoder` serves the decoders of transformers' Llama and Qwen2 models (``layers``, ``rotary_emb``,
``config``; each layer called as ``layer(hidden_states, attention_mask=..., position_ids=..., position_embeddings=...,
<cache>=...)`` with ``input_layernorm`` and ``self_attn.q_proj``). A family with other positions subclasses it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn

#: Keyword under which decoders receive their KV cache (transformers renamed ``past_key_values`` to ``cache``).
CACHE_KWARGS = ("cache", "past_key_values")
FULL_ATTENTION = "full_attention"


def find_cache(kwargs: dict[str, Any]) -> Any:
    """The KV cache among a decoder call's keyword arguments, whichever name this transformers version uses."""
    for name in CACHE_KWARGS:
        if kwargs.get(name) is not None:
            return kwargs[name]
    return None


def full_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions of a left-padded sequence as ``generate()`` numbers them: 0.. over the valid tokens, 0 on
    padding. attention_mask: (B, L) bool or 0/1."""
    mask = attention_mask.long()
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


def gather_last(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[..., b, index[b, j]]``: (..., B, L) -> (..., B, L'), for index (B, L') (1-D or multi-axis positions)."""
    index = index.to(values.device)
    return values.gather(-1, index.expand(*values.shape[:-2], *index.shape))


@dataclass
class PrunedLayout:
    """Where the kept tokens of each row come from, and how the shorter sequence is masked and numbered.

    Attributes:
        index: (B, L') int64 positions in the full sequence of the kept tokens, in order, left padded (padding
            entries point at position 0 and are masked out).
        attention_mask: (B, L') int64, 0 on the left padding.
        position_ids: (B, L') or (A, B, L') int64 positions of the kept tokens.
        next_position: (B,) or (A, B) int64 position of the first generated token.
    """

    index: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    next_position: torch.Tensor

    @property
    def length(self) -> int:
        return int(self.index.shape[1])

    def gather(self, states: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Keep the layout's positions of ``states`` along ``dim`` (the batch is dim 0).

        states: (B, L, D) hidden states (``dim=1``) or (B, H, L, d) cached keys/values (``dim=2``).
        """
        shape = [1] * states.dim()
        shape[0], shape[dim] = self.index.shape
        index = (
            self.index.to(states.device)
            .view(shape)
            .expand(*[size if axis not in (0, dim) else -1 for axis, size in enumerate(states.shape)])
        )
        return states.gather(dim, index)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class DecoderAccess(ABC):
    """A text decoder seen through the operations visual-token pruning needs (see the module text).

    Implementations: :class:`LlamaStyleDecoder`. ``module`` is the decoder (it has ``layers``).
    """

    position_modes: tuple[str, ...] = ("renumber", "original")
    module: nn.Module

    @property
    def layers(self) -> Sequence[nn.Module]:
        return self.module.layers

    @property
    def num_layers(self) -> int:
        return len(self.module.layers)

    @abstractmethod
    def check_prunable(self) -> None:
        """Raise ValueError when this decoder's layers cannot run on a pruned sequence."""

    @abstractmethod
    def prompt_positions(self, kwargs: dict[str, Any], attention_mask: torch.Tensor) -> torch.Tensor:
        """Positions of the full prompt in its prefill, from the decoder call's ``kwargs`` and its (B, L) mask."""

    @abstractmethod
    def pruned_positions(
        self, prompt_positions: torch.Tensor, index: torch.Tensor, mask: torch.Tensor, mode: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions of the kept tokens, position of the first new token); see :class:`LlamaStyleDecoder`."""

    @abstractmethod
    def step_positions(self, next_position: torch.Tensor, generated: int, steps: int) -> torch.Tensor:
        """Positions of ``steps`` new tokens after ``generated`` ones."""

    @abstractmethod
    def rotary(self, hidden: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) the decoder layers receive as ``position_embeddings`` for these positions."""

    @abstractmethod
    def layer_masks(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> dict[str, Any]:
        """Attention masks of a fresh sequence per layer type (keys of :meth:`layer_type`)."""

    @abstractmethod
    def layer_type(self, index: int) -> str:
        """The attention kind of decoder layer ``index`` (a key of :meth:`layer_masks`)."""

    @abstractmethod
    def find_cache(self, kwargs: dict[str, Any]) -> Any:
        """The KV cache among a decoder call's keyword arguments (None when absent)."""

    @abstractmethod
    def cached_length(self, cache: Any) -> int:
        """Positions the cache holds."""

    @abstractmethod
    def check_cache(self, cache: Any) -> None:
        """Raise ValueError when ``cache`` is of a kind that pruning cannot shorten."""

    @abstractmethod
    def cached_keys(self, cache: Any, layer: int) -> torch.Tensor:
        """(B, H_kv, L, head_dim) cached keys of decoder layer ``layer``."""

    @abstractmethod
    def prune_cache(self, cache: Any, num_layers: int, layout: PrunedLayout, full_length: int) -> None:
        """Keep only ``layout``'s positions in the first ``num_layers`` layers of the cache, in place."""

    @abstractmethod
    def last_token_attention(
        self,
        layer_index: int,
        hidden_last: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        keys: torch.Tensor,
        key_mask: torch.Tensor,
    ) -> torch.Tensor:
        """(B, L) float32 attention of the last token over the positions of one layer, averaged over heads."""


class LlamaStyleDecoder(DecoderAccess):
    """transformers' ``LlamaModel`` and ``Qwen2Model`` (LLaVA-NeXT-Video, LLaVA-OneVision / LLaVA-Video): 1-D
    positions numbered over the attention mask, rotary embeddings from ``rotary_emb``, causal masks from
    ``transformers.masking_utils``, the dynamic KV cache.

    Args:
        decoder: the text decoder module.
    """

    def __init__(self, decoder: nn.Module) -> None:
        self.module = decoder
        self.config = decoder.config

    # -- structure -----------------------------------------------------------------------------------------------

    def layer_type(self, index: int) -> str:
        """``"full_attention"`` or ``"sliding_attention"`` for decoder layer ``index``."""
        types = getattr(self.config, "layer_types", None)
        return types[index] if types else FULL_ATTENTION

    def check_prunable(self) -> None:
        """Raise ValueError when this decoder's layers cannot run on a pruned sequence."""
        sliding = [index for index in range(self.num_layers) if self.layer_type(index) != FULL_ATTENTION]
        if sliding:
            raise ValueError(
                f"decoder layers {sliding} use sliding-window attention, which visual-token pruning "
                f"does not support (the window would span other tokens once some are dropped)"
            )

    # -- positions -----------------------------------------------------------------------------------------------

    def prompt_positions(self, kwargs: dict[str, Any], attention_mask: torch.Tensor) -> torch.Tensor:
        """Positions of the full prompt in its prefill. attention_mask: (B, L) bool. Returns (B, L)."""
        return full_positions(attention_mask)

    def pruned_positions(
        self, prompt_positions: torch.Tensor, index: torch.Tensor, mask: torch.Tensor, mode: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of the kept tokens and of the first new token.

        Args:
            prompt_positions: what :meth:`prompt_positions` returned, (B, L) (or (A, B, L)).
            index: (B, L') positions in the full sequence of the kept tokens (left padded).
            mask: (B, L') int64, 0 on the left padding.
            mode: ``"renumber"`` (contiguous 0..) or ``"original"`` (each kept token keeps its position; new
                tokens continue after the full prompt's last one).

        Returns:
            (position_ids (B, L') (or (A, B, L')), next_position (B,) (or (A, B))).
        """
        if mode not in self.position_modes:
            raise ValueError(
                f"positions={mode!r} is not supported by {type(self).__name__}; supported: "
                f"{', '.join(map(repr, self.position_modes))}"
            )
        if mode == "renumber":
            positions = full_positions(mask)
            return positions, positions[..., -1] + 1
        positions = gather_last(prompt_positions, index) * mask
        return positions, prompt_positions[..., -1] + 1

    def step_positions(self, next_position: torch.Tensor, generated: int, steps: int) -> torch.Tensor:
        """Positions of ``steps`` new tokens after ``generated`` ones: (B, steps) (or (A, B, steps))."""
        offsets = torch.arange(generated, generated + steps, device=next_position.device)
        return next_position[..., None] + offsets

    # -- rotary embeddings and masks -----------------------------------------------------------------------------

    def rotary(self, hidden: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) the decoder layers receive as ``position_embeddings`` for these positions."""
        return self.module.rotary_emb(hidden, position_ids)

    def layer_masks(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> dict[str, Any]:
        """Attention masks of a fresh (prefill) sequence, per layer type, as the decoder builds them.

        hidden: (B, L, D); attention_mask: (B, L) 0/1; position_ids as :meth:`pruned_positions` returns them.
        """
        from transformers.masking_utils import create_causal_mask

        return {FULL_ATTENTION: create_causal_mask(self.config, hidden, attention_mask, None, position_ids)}

    # -- KV cache ------------------------------------------------------------------------------------------------

    def find_cache(self, kwargs: dict[str, Any]) -> Any:
        return find_cache(kwargs)

    def cached_length(self, cache: Any) -> int:
        return int(cache.get_seq_length())

    def check_cache(self, cache: Any) -> None:
        """Only transformers' dynamic cache (``generate()``'s default) has per-layer tensors that can be cut."""
        layers = getattr(cache, "layers", None)
        kinds = {type(layer).__name__ for layer in layers or ()}
        if layers is None or "Dynamic" not in type(cache).__name__ or kinds - {"DynamicLayer"}:
            raise ValueError(
                f"only the dynamic KV cache (the generate() default) can be pruned; got a "
                f"{type(cache).__name__}{f' of {sorted(kinds)}' if kinds else ''}"
            )

    def cached_keys(self, cache: Any, layer: int) -> torch.Tensor:
        """(B, H_kv, L, head_dim) cached keys of decoder layer ``layer`` (rotary applied)."""
        return cache.layers[layer].keys

    def prune_cache(self, cache: Any, num_layers: int, layout: PrunedLayout, full_length: int) -> None:
        """Keep only ``layout``'s positions in the first ``num_layers`` layers of a dynamic KV cache, in place."""
        layers = getattr(cache, "layers", None)
        if layers is None or len(layers) < num_layers:
            raise ValueError(
                f"cannot prune a {type(cache).__name__}: expected a cache with per-layer key/value "
                f"tensors (transformers' DynamicCache, the generate() default)"
            )
        for layer in layers[:num_layers]:
            keys = getattr(layer, "keys", None)
            if type(layer).__name__ != "DynamicLayer" or keys is None or keys.shape[-2] != full_length:
                raise ValueError(
                    f"only the dynamic KV cache (the generate() default) can be pruned; got a "
                    f"{type(layer).__name__} holding {None if keys is None else keys.shape[-2]} "
                    f"positions for a prompt of {full_length}"
                )
            layer.keys = layout.gather(layer.keys, dim=2)
            layer.values = layout.gather(layer.values, dim=2)

    # -- FastV -----------------------------------------------------------------------------------------------------

    def last_token_attention(
        self,
        layer_index: int,
        hidden_last: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        keys: torch.Tensor,
        key_mask: torch.Tensor,
    ) -> torch.Tensor:
        """The attention the last token pays to every position in one layer, averaged over heads.

        FastV ranks visual tokens by this score at the last layer that saw the full sequence. Computed from one query
        (the last token's) and the layer's cached keys, so it works with any attention implementation.

        Args:
            layer_index: the decoder layer (``input_layernorm``, ``self_attn`` with ``q_proj``, ``head_dim``,
                ``scaling``, and ``q_norm`` where the family has one).
            hidden_last: (B, 1, D) the layer's input at the last position.
            rope: (cos, sin), each (B or 1, 1, head_dim), the last position's rotary embedding.
            keys: (B, H_kv, L, head_dim) the layer's cached keys (rotary applied).
            key_mask: (B, L) bool, False at padding.

        Returns:
            (B, L) float32 attention probabilities (each row sums to 1).
        """
        layer = self.layers[layer_index]
        attention = layer.self_attn
        batch = hidden_last.shape[0]
        query = attention.q_proj(layer.input_layernorm(hidden_last))
        query = query.view(batch, 1, -1, attention.head_dim)
        norm: Optional[nn.Module] = getattr(attention, "q_norm", None)
        if norm is not None:
            query = norm(query)
        query = query.transpose(1, 2)
        cos, sin = (part.unsqueeze(1) for part in rope)
        query = query * cos + _rotate_half(query) * sin
        keys = keys.repeat_interleave(query.shape[1] // keys.shape[1], dim=1)
        logits = torch.matmul(query, keys.transpose(-1, -2)).float() * attention.scaling
        logits = logits.masked_fill(~key_mask[:, None, None, :].to(logits.device), float("-inf"))
        return logits.softmax(dim=-1).mean(dim=1)[:, 0]


class MultimodalRopeDecoder(LlamaStyleDecoder):
    """Qwen2-VL-style decoders (Qwen2.5-VL, Qwen3-VL): positions are (3, B, L) (time, height, width; text tokens
    have the same value on all three axes), given by the adapter from the input ids and the videos' grids and
    timing; the rotary embedding takes them as they are.

    Renumbering is not defined for 3-D positions (a video's height and width positions are its grid cells), so the
    only mode is ``"original"``: a kept token keeps its own (t, h, w), text keeps its positions, and new tokens
    continue after the largest position of the full prompt on all three axes, as unpruned generation does (the
    model's "rope deltas").
    """

    position_modes = ("original",)

    def prompt_positions(self, kwargs: dict[str, Any], attention_mask: torch.Tensor) -> torch.Tensor:
        raise ValueError("3-D positions come from the adapter (pass prompt_positions to VisualTokenPruning)")

    def pruned_positions(
        self, prompt_positions: torch.Tensor, index: torch.Tensor, mask: torch.Tensor, mode: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions, _ = super().pruned_positions(prompt_positions, index, mask, mode)
        following = prompt_positions.amax(dim=(0, 2)) + 1  # (B,): past every axis of the full prompt
        return positions, following.expand(prompt_positions.shape[0], -1)

    def layer_masks(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> dict[str, Any]:
        # The model builds its causal mask from the attention mask alone when positions are 3-D.
        from transformers.masking_utils import create_causal_mask

        return {FULL_ATTENTION: create_causal_mask(self.config, hidden, attention_mask, None, None)}

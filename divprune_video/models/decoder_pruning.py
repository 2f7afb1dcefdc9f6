"""Visual-token pruning inside a text decoder, for one ``generate()`` call, through forward pre-hooks.

The decoder runs unchanged; :class:`VisualTokenPruning` rewrites the inputs of its calls while it is active, reaching
into the decoder only through its :class:`~.decoder.DecoderAccess` (positions, rotary embeddings, masks, KV cache):

* prefill, ``prune_layer = 0``: the decoder's ``inputs_embeds`` (visual features already in place), attention mask
  and positions are replaced by those of the shorter sequence holding the text tokens and the kept visual tokens,
  in their original order;
* prefill, ``prune_layer = K >= 1``: layers ``0..K-1`` run on the full sequence; before layer K the visual tokens'
  hidden states are handed to the selector, the dropped positions leave the hidden states *and* the KV cache of
  layers ``0..K-1``, and layers ``K..`` get the shorter sequence's mask and rotary embeddings;
* decoding steps: ``generate()`` keeps counting in the full sequence's coordinates (its attention mask has L + t
  columns); the mask is replaced by the pruned prompt's mask plus the new tokens, and the positions by the
  pruned numbering (see :data:`~.base.POSITION_MODES`).

Sampling, stopping, streaming and beam search stay ``generate()``'s own; only the cache must be the default
dynamic one (its layers are pruned in place).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import time
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..selection import SelectionContext, get_selector
from .base import PruningConfig
from .decoder import DecoderAccess, PrunedLayout
from .runtime import synchronize

logger = logging.getLogger(__name__)


def build_layout(
    decoder: DecoderAccess,
    attention_mask: torch.Tensor,
    visual_mask: torch.Tensor,
    kept: Sequence[torch.Tensor],
    positions: str,
    prompt_positions: torch.Tensor,
    ends_with_text: bool = True,
) -> PrunedLayout:
    """The layout of the pruned sequence.

    Args:
        decoder: the decoder whose positions the layout uses.
        attention_mask: (B, L) bool, True for valid tokens; left padded (the last column is valid).
        visual_mask: (B, L) bool, True at the prunable visual tokens.
        kept: per row, the kept visual tokens as indices into that row's prunable visual tokens (ascending).
        positions: ``"renumber"`` or ``"original"``.
        prompt_positions: the full prompt's positions (:meth:`~.decoder.DecoderAccess.prompt_positions`).
        ends_with_text: require the sequence's last token to be kept (a prompt whose last logits are read); a
            video context's prefix may end with a dropped visual token.
    """
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("pruning needs left-padded inputs: the last column of the attention mask must be valid")
    keep = attention_mask.clone()
    for row, kept_row in enumerate(kept):
        visual_positions = visual_mask[row].nonzero().squeeze(1)
        dropped = torch.ones(visual_positions.numel(), dtype=torch.bool, device=keep.device)
        dropped[kept_row.to(keep.device)] = False
        keep[row, visual_positions[dropped]] = False
    if ends_with_text and not bool(keep[:, -1].all()):
        raise ValueError("the prompt must end with a text token, not a visual one")
    counts = keep.sum(dim=1)
    length = int(counts.max())
    batch = keep.shape[0]
    index = torch.zeros(batch, length, dtype=torch.long, device=keep.device)
    mask = torch.zeros(batch, length, dtype=torch.long, device=keep.device)
    for row in range(batch):
        kept_positions = keep[row].nonzero().squeeze(1)
        index[row, length - kept_positions.numel() :] = kept_positions
        mask[row, length - kept_positions.numel() :] = 1
    position_ids, next_position = decoder.pruned_positions(prompt_positions, index, mask, positions)
    return PrunedLayout(index, mask, position_ids, next_position)


def select_visual_tokens(
    tokens: torch.Tensor, config: PruningConfig, context: Optional[SelectionContext] = None
) -> torch.Tensor:
    """The kept visual tokens of one sample, ascending. tokens: (N, D); ``context``: what the selector may read
    (default: the config's seed and nothing else).

    When the count to keep is N (``keep_ratio`` 1.0) every token is kept without running the selector.
    """
    num_tokens = tokens.shape[0]
    num_keep = config.num_keep(num_tokens)
    if num_keep >= num_tokens:
        return torch.arange(num_tokens, device=tokens.device)
    context = context or SelectionContext(seed=config.seed)
    selector = get_selector(config.method, **config.selector_options)
    picks = selector.select(tokens, num_keep, **context.as_kwargs())
    return torch.sort(picks.to(tokens.device)).values


def _contiguous_span(row_mask: torch.Tensor) -> Optional[tuple[int, int]]:
    """(start, end) when the True entries of a (L,) bool CPU mask form one run, else None."""
    positions = row_mask.nonzero().squeeze(1)
    if positions.numel() == 0:
        return None
    start, end = int(positions[0]), int(positions[-1]) + 1
    return (start, end) if end - start == positions.numel() else None


class _Stage(enum.Enum):
    READY = "ready"
    PREFILLING = "prefilling"
    DECODING = "decoding"


class VisualTokenPruning:
    """Prune visual tokens inside a decoder for the ``generate()`` call made while this context is active.

    Args:
        decoder: the text decoder, seen through its :class:`~.decoder.DecoderAccess`.
        visual_mask: (B, L) bool, True at the prompt's prunable visual tokens (from the input ids; a video's
            unframed tokens are not among them).
        config: what to keep and where. With ``method="none"`` nothing is dropped and only the positions are
            set (families whose positions the model cannot compute from ``inputs_embeds``, such as Qwen's 3-D
            ones, run every generation through this context).
        prompt_positions: the full prompt's positions as the model numbers them ((B, L) or (A, B, L)); default:
            the decoder's own numbering of the attention mask.
        layer_features: per decoder layer k (from 0), per row, (N_row, D) features added to that row's visual
            tokens' hidden states after layer k in the prefill (Qwen3-VL's DeepStack): to every visual token before
            the pruning point, to the kept ones at their new places after it.
        prefix: the call prefills a video context's prefix (the prompt up to the video's last token, see
            :mod:`.video_context`): its last token may be dropped, and with ``prune_layer = K >= 1`` the first K
            layers' cache keeps every position (the question, added later, must see them there as it would in one
            prefill); :attr:`layout` then describes the later layers.
        contexts: per sample (row of ``visual_mask``), what its selector may read (its question, seed, the frame of
            each visual token); default: the config's seed alone. The attention scores are added when the method
            needs them.

    After the call: :attr:`kept` (per sample, the kept visual-token indices, ascending, CPU) and
    :attr:`select_seconds`. ``generate()`` may expand the batch (``num_return_sequences``, beams); the selection
    then runs per expanded row and :attr:`kept` reports each sample once.
    """

    def __init__(
        self,
        decoder: DecoderAccess,
        visual_mask: torch.Tensor,
        config: PruningConfig,
        prompt_positions: Optional[torch.Tensor] = None,
        layer_features: Sequence[Sequence[torch.Tensor]] = (),
        prefix: bool = False,
        contexts: Optional[Sequence[SelectionContext]] = None,
    ) -> None:
        if config.prune_layer >= decoder.num_layers:
            raise ValueError(
                f"prune_layer must be below the decoder's {decoder.num_layers} layers; got {config.prune_layer}"
            )
        if visual_mask.dim() != 2 or visual_mask.dtype != torch.bool:
            raise ValueError(
                f"visual_mask must be a (B, L) bool tensor; got {visual_mask.dtype} {tuple(visual_mask.shape)}"
            )
        self.positions = config.positions or decoder.position_modes[0]
        if self.positions not in decoder.position_modes:
            raise ValueError(
                f"positions={config.positions!r} is not supported by this model's decoder; supported: "
                f"{', '.join(map(repr, decoder.position_modes))}"
            )
        if config.enabled:
            decoder.check_prunable()
        self.decoder, self.config = decoder, config
        self.visual_mask = visual_mask
        self._given_positions = prompt_positions
        if len(layer_features) > decoder.num_layers:
            raise ValueError(f"layer_features for {len(layer_features)} layers; the decoder has {decoder.num_layers}")
        self._layer_features = [list(level) for level in layer_features]
        self.prefix = prefix
        rows = visual_mask.shape[0]
        self._contexts = list(contexts) if contexts is not None else [SelectionContext(seed=config.seed)] * rows
        if len(self._contexts) != rows:
            raise ValueError(f"{len(self._contexts)} selection contexts for {rows} rows")
        self._in_prefill = False
        self._kept_rows: list[torch.Tensor] = []
        # Where each row's visual tokens sit, read once here (not inside the timed prefill): a contiguous span
        # (one video per row) is sliced without a copy or a device-to-host sync.
        self._spans = [_contiguous_span(row) for row in visual_mask.cpu()]
        self.kept: list[torch.Tensor] = []
        self.select_seconds = 0.0
        self._stage = _Stage.READY
        self._repeats = 1
        self._full_mask: Optional[torch.Tensor] = None
        self._prompt_positions: Optional[torch.Tensor] = None
        self._layout: Optional[PrunedLayout] = None
        self._pruned_masks: dict[str, Any] = {}
        self._pruned_layer_kwargs: dict[str, Any] = {}
        self._last_query_input: Optional[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = None
        self._handles: list[Any] = []

    @property
    def layout(self) -> Optional[PrunedLayout]:
        """The pruned sequence's layout once the prefill ran (None before)."""
        return self._layout

    def __enter__(self) -> "VisualTokenPruning":
        module, layers, layer = self.decoder.module, self.decoder.layers, self.config.prune_layer
        needs_query = self.config.enabled and "attention" in get_selector(self.config.method).requires
        self._handles.append(module.register_forward_pre_hook(self._decoder_pre_hook, with_kwargs=True))
        self._handles.append(module.register_forward_hook(self._decoder_post_hook))
        for level in range(len(self._layer_features)):
            hook = functools.partial(self._add_layer_features_hook, level)
            self._handles.append(layers[level].register_forward_hook(hook))
        if layer >= 1:
            self._handles.append(layers[layer].register_forward_pre_hook(self._prune_layer_hook, with_kwargs=True))
            for index in range(layer + 1, self.decoder.num_layers):
                hook = functools.partial(self._later_layer_hook, index)
                self._handles.append(layers[index].register_forward_pre_hook(hook, with_kwargs=True))
            if needs_query:
                self._handles.append(
                    layers[layer - 1].register_forward_pre_hook(self._capture_query_hook, with_kwargs=True)
                )
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # -- hooks -------------------------------------------------------------------------------------------------

    def _decoder_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        cache = self.decoder.find_cache(kwargs)
        embeds = kwargs.get("inputs_embeds")
        if cache is None or embeds is None:
            raise ValueError(
                "visual-token pruning needs generate() with its KV cache (use_cache=True) and "
                "inputs_embeds; got a decoder call without them"
            )
        if self._stage is _Stage.READY:
            self._start_prefill(kwargs, embeds, cache)
        elif self._stage is _Stage.DECODING:
            self._decode_step(kwargs, embeds, cache)
        return args, kwargs

    def _decoder_post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._in_prefill = False
        if self._stage is _Stage.PREFILLING:
            if self._layout is None:
                raise RuntimeError(f"decoder layer {self.config.prune_layer} never ran during the prefill")
            self._stage = _Stage.DECODING

    def _capture_query_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self._stage is _Stage.PREFILLING:
            hidden = args[0] if args else kwargs["hidden_states"]
            cos, sin = kwargs["position_embeddings"]
            self._last_query_input = (hidden[:, -1:], (cos[..., -1:, :], sin[..., -1:, :]))

    def _prune_layer_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> Optional[tuple[tuple, dict]]:
        if self._stage is not _Stage.PREFILLING:
            return None
        hidden = args[0] if args else kwargs.pop("hidden_states")
        cache = self.decoder.find_cache(kwargs)
        scores = self._attention_scores(cache) if self._last_query_input is not None else None
        layout = self._select_and_layout(hidden, scores)
        pruned = layout.gather(hidden)
        if not self.prefix:
            self.decoder.prune_cache(cache, self.config.prune_layer, layout, hidden.shape[1])
        self._pruned_masks = self.decoder.layer_masks(pruned, layout.attention_mask, layout.position_ids)
        self._pruned_layer_kwargs = {
            "position_ids": layout.position_ids,
            "position_embeddings": self.decoder.rotary(pruned, layout.position_ids),
        }
        self._check_layer_kwargs(kwargs)
        self._update_layer_kwargs(self.config.prune_layer, kwargs)
        return (pruned, *args[1:]), kwargs

    def _add_layer_features_hook(self, level: int, module: nn.Module, args: tuple, output: Any) -> Any:
        if not self._in_prefill:
            return None
        hidden = output[0] if isinstance(output, tuple) else output
        pruned = self._layout is not None and level >= self.config.prune_layer
        rows = range(hidden.shape[0])
        if pruned:
            visual = (
                self.visual_mask.gather(1, self._layout.index.to(hidden.device))
                & self._layout.attention_mask.to(hidden.device).bool()
            )
            parts = [self._layer_features[level][row // self._repeats][self._kept_rows[row]] for row in rows]
        else:
            visual = self.visual_mask
            parts = [self._layer_features[level][row // self._repeats] for row in rows]
        hidden = hidden.clone()
        hidden[visual] = hidden[visual] + torch.cat(parts).to(hidden.device, hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    def _later_layer_hook(
        self, index: int, module: nn.Module, args: tuple, kwargs: dict
    ) -> Optional[tuple[tuple, dict]]:
        if self._stage is not _Stage.PREFILLING:
            return None
        self._update_layer_kwargs(index, kwargs)
        return args, kwargs

    def _update_layer_kwargs(self, index: int, kwargs: dict) -> None:
        kwargs.update(self._pruned_layer_kwargs)
        kwargs["attention_mask"] = self._pruned_masks[self.decoder.layer_type(index)]

    # -- steps -------------------------------------------------------------------------------------------------

    def _start_prefill(self, kwargs: dict, embeds: torch.Tensor, cache: Any) -> None:
        batch, length = embeds.shape[:2]
        rows, full_length = self.visual_mask.shape
        self.decoder.check_cache(cache)
        cached = self.decoder.cached_length(cache)
        if cached != 0 or length != full_length or batch % rows:
            raise ValueError(
                f"expected the prefill of the {rows} x {full_length} prompt on an empty cache; got "
                f"{batch} x {length} after {cached} cached positions "
                f"(prefill_chunk_size and continued generation are not supported with pruning)"
            )
        self._repeats = batch // rows
        self._in_prefill = True
        self.visual_mask = self.visual_mask.to(embeds.device).repeat_interleave(self._repeats, dim=0)
        mask = kwargs.get("attention_mask")
        if mask is None:
            mask = torch.ones(batch, length, dtype=torch.long, device=embeds.device)
        if mask.dim() != 2:
            raise ValueError(f"expected a 2D attention mask in the prefill; got shape {tuple(mask.shape)}")
        self._full_mask = mask.bool()
        if self._given_positions is not None:
            self._prompt_positions = self._given_positions.to(embeds.device).repeat_interleave(self._repeats, dim=-2)
            kwargs["position_ids"] = self._prompt_positions  # the layers before the pruning point see these
        else:
            self._prompt_positions = self.decoder.prompt_positions(kwargs, self._full_mask)
        if self.config.prune_layer > 0:
            self._stage = _Stage.PREFILLING
            return
        layout = self._select_and_layout(embeds, None)
        kwargs["inputs_embeds"] = layout.gather(embeds)
        kwargs["attention_mask"] = layout.attention_mask
        kwargs["position_ids"] = layout.position_ids
        self._stage = _Stage.DECODING

    def _decode_step(self, kwargs: dict, embeds: torch.Tensor, cache: Any) -> None:
        layout = self._layout
        past, steps = self.decoder.cached_length(cache), embeds.shape[1]
        generated = past - layout.length
        if generated < 0 or embeds.shape[0] != layout.index.shape[0]:
            raise ValueError(
                f"decoding step inconsistent with the pruned prompt: {past} cached positions for a "
                f"pruned prompt of {layout.length}, batch {embeds.shape[0]}"
            )
        mask = layout.attention_mask.to(embeds.device)
        ones = torch.ones(mask.shape[0], generated + steps, dtype=mask.dtype, device=mask.device)
        kwargs["attention_mask"] = torch.cat([mask, ones], dim=1)
        kwargs["position_ids"] = self.decoder.step_positions(layout.next_position.to(embeds.device), generated, steps)

    def _select_and_layout(self, states: torch.Tensor, scores: Optional[torch.Tensor]) -> PrunedLayout:
        """states: (B, L, D) the visual tokens' representation to select on (inputs or hidden states)."""
        synchronize(states.device)
        start = time.perf_counter()
        kept = []
        for row in range(states.shape[0]):
            span = self._spans[row // self._repeats]
            positions = slice(*span) if span else self.visual_mask[row].nonzero().squeeze(1)
            context = self._contexts[row // self._repeats]
            if scores is not None:
                context = dataclasses.replace(context, attention=scores[row, positions])
            kept.append(select_visual_tokens(states[row, positions], self.config, context))
        synchronize(states.device)
        self.select_seconds += time.perf_counter() - start
        self._kept_rows = kept
        self.kept = [row.cpu() for row in kept[:: self._repeats]]
        self._layout = build_layout(
            self.decoder,
            self._full_mask,
            self.visual_mask,
            kept,
            self.positions,
            self._prompt_positions,
            ends_with_text=not self.prefix,
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "pruned %s visual tokens to %s at layer %d",
                self.visual_mask.sum(1).tolist(),
                [row.numel() for row in kept],
                self.config.prune_layer,
            )
        return self._layout

    def _attention_scores(self, cache: Any) -> torch.Tensor:
        hidden_last, rope = self._last_query_input
        previous = self.config.prune_layer - 1
        keys = self.decoder.cached_keys(cache, previous)
        return self.decoder.last_token_attention(previous, hidden_last, rope, keys, self._full_mask)

    @staticmethod
    def _check_layer_kwargs(kwargs: dict) -> None:
        missing = [name for name in ("attention_mask", "position_embeddings") if name not in kwargs]
        if missing:
            raise RuntimeError(
                f"decoder layers were called without {missing}: this transformers version's "
                f"decoder is not supported by prune_layer >= 1"
            )


class FirstForwardTimer:
    """Times the first forward call of ``module`` while active (the prefill of a ``generate()`` call)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.seconds: Optional[float] = None
        self._start: Optional[float] = None
        self._handles: list[Any] = []

    def __enter__(self) -> "FirstForwardTimer":
        self._handles = [
            self.module.register_forward_pre_hook(self._pre),
            self.module.register_forward_hook(self._post),
        ]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for handle in self._handles:
            handle.remove()

    def _pre(self, module: nn.Module, args: tuple) -> None:
        if self._start is None:
            synchronize(_module_device(module))
            self._start = time.perf_counter()

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.seconds is None and self._start is not None:
            synchronize(_module_device(module))
            self.seconds = time.perf_counter() - self._start


def _module_device(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")

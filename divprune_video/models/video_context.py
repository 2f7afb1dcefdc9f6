"""One video prefill for every question about it, and generation on a preallocated cache.

In every supported chat template the video comes before the question, and DivPrune's choice does not depend on
the question: the KV cache of the prompt up to the video's last token, pruned, is the same for every question. A
:class:`VideoContext` holds it (prefilled once, at prune layer 0 or K); each question then prefills only its own
tokens on a copy and decodes (:func:`answer_from_context`).

Which methods can share a prefill: the question-independent ones (``divprune``, ``uniform``, ``random``,
``none``). FastV-style ``attention`` ranks the visual tokens by the attention the *last prompt token* (a question
token) pays them, so its selection changes with the question and needs the whole prompt.

Exactness: the context's cache is what a whole-prompt prefill computes for those positions (causal attention:
nothing before the question sees it). With pruning after layer K >= 1 the first K layers must let the question
attend to *every* visual token, as a whole-prompt prefill does, so the context keeps those layers' full cache and
prunes them only after the question has been added; the later layers hold only the kept tokens. Positions follow
the same rule as a whole-prompt prefill (:data:`~.base.POSITION_MODES`).

Generation here uses :class:`~.decoding.StaticDecoder` (a preallocated cache, CUDA graphs on CUDA);
:func:`generate_static` is the whole-prompt path on the same decoder.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch

from ..selection import SelectionContext
from .base import EncodedVideo, GenerationResult, PruneRecord, PruningConfig
from .decoder import CACHE_KWARGS, PrunedLayout, full_positions
from .decoder_pruning import VisualTokenPruning
from .decoding import PREFILL_BUCKETS, capacity_for, prefill_bucket, token_chooser
from .runtime import reproducible_attention, synchronize

if TYPE_CHECKING:
    from .adapter import TransformersVideoAdapter

__all__ = ["VideoContext", "answer_from_context", "generate_static", "prefill_context", "shares_prefill"]

#: The question used to find where the prompt's video part ends (any text works: only the part before it is kept).
_PROBE_QUESTION = "?"


def shares_prefill(pruning: PruningConfig) -> bool:
    """Whether the pruning's selection is independent of the question, so one video prefill serves every question
    (every method but those that read the prompt's attention, such as ``"attention"``)."""
    if not pruning.enabled:
        return True
    from ..selection import get_selector

    return "attention" not in get_selector(pruning.method).requires


@dataclass
class _Prefill:
    logits: torch.Tensor
    cache: Any
    layout: PrunedLayout
    kept: list[torch.Tensor]
    select_seconds: float
    prefill_seconds: float


def _prefill(
    adapter: "TransformersVideoAdapter",
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    videos: Sequence[EncodedVideo],
    pruning: PruningConfig,
    prefix: bool = False,
    positions: Optional[torch.Tensor] = None,
    contexts: Optional[Sequence[SelectionContext]] = None,
) -> _Prefill:
    """Run the decoder once over a (B, L) left-padded prompt with visual-token pruning, on a fresh dynamic cache
    (``positions``: the prompt's positions when given, else the adapter's).

    Returns the last position's (B, V) logits, the pruned cache, the pruned sequence's layout, the kept indices
    per row, and the seconds of the selection and of the rest of the pass.
    """
    from transformers import DynamicCache

    from .adapter import _layer_features

    decoder = adapter.decoder
    input_ids, attention_mask = input_ids.to(adapter.device), attention_mask.to(adapter.device)
    embeds, visual_mask = adapter.embed(input_ids, videos)
    if positions is None:
        positions = adapter.prompt_positions(input_ids, attention_mask, videos)
    pruner = VisualTokenPruning(
        decoder, visual_mask, pruning, positions, _layer_features(videos), prefix=prefix, contexts=contexts
    )
    cache = DynamicCache(config=decoder.module.config)
    parameters = inspect.signature(decoder.module.forward).parameters
    cache_kwarg = next((name for name in CACHE_KWARGS if name in parameters), "past_key_values")
    kwargs = {
        "inputs_embeds": embeds,
        "attention_mask": attention_mask,
        "use_cache": True,
        cache_kwarg: cache,
        "position_ids": positions if positions is not None else full_positions(attention_mask),
    }
    with pruner, reproducible_attention(adapter.device):
        synchronize(adapter.device)
        start = time.perf_counter()
        hidden = decoder.module(**kwargs).last_hidden_state
        logits = adapter.model.get_output_embeddings()(hidden[:, -1:])[:, -1]
        synchronize(adapter.device)
        seconds = time.perf_counter() - start
    select = pruner.select_seconds if pruning.enabled else 0.0
    kept = pruner.kept if pruning.enabled else [torch.arange(video.num_tokens) for video in videos]
    return _Prefill(logits, cache, pruner.layout, kept, select, seconds - select)


def _result(
    adapter: "TransformersVideoAdapter",
    tokens: torch.Tensor,
    videos: Sequence[EncodedVideo],
    kept: Sequence[torch.Tensor],
    timings: dict[str, float],
) -> GenerationResult:
    sequences = tokens.cpu()
    records = [PruneRecord(video.num_tokens, row.cpu()) for video, row in zip(videos, kept)]
    return GenerationResult(
        sequences=list(sequences), texts=adapter.decode(sequences), records=records, timings=timings
    )


def generate_static(
    adapter: "TransformersVideoAdapter",
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    videos: Sequence[EncodedVideo],
    pruning: PruningConfig,
    generate_kwargs: dict[str, Any],
    contexts: Optional[Sequence[SelectionContext]] = None,
) -> GenerationResult:
    """:meth:`~.adapter.TransformersVideoAdapter.generate_from_ids` on the static decoder: the pruned prefill as
    ``generate()`` runs it, its cache copied into a preallocated buffer, the new tokens chosen as ``generate()``
    chooses them."""
    static = adapter.static_decoder
    chooser = token_chooser(adapter.model, generate_kwargs, input_ids.shape[1], attention_mask.to(adapter.device))
    start = time.perf_counter()
    prefill = _prefill(adapter, input_ids, attention_mask, videos, pruning, contexts=contexts)
    layout = prefill.layout
    keys = prefill.cache.layers[0].keys
    next_position = layout.next_position.to(adapter.device)
    with reproducible_attention(adapter.device):
        buffer, graphed = static.buffer(
            input_ids.shape[0],
            capacity_for(layout.length + chooser.max_new_tokens),
            keys,
            position_shape=(*next_position.shape, 1),
        )
        static.load_cache(buffer, prefill.cache, layout.attention_mask)
        del prefill.cache
        tokens = static.decode(buffer, graphed, prefill.logits, next_position, chooser, input_ids.to(adapter.device))
    synchronize(adapter.device)
    end = time.perf_counter()
    timings = {
        "select": prefill.select_seconds,
        "prefill": prefill.prefill_seconds,
        "generate": end - start - prefill.select_seconds - prefill.prefill_seconds,
    }
    return _result(adapter, tokens, videos, prefill.kept, timings)


@dataclass
class VideoContext:
    """A video's prompt prefix, prefilled once and pruned: pass it with each question to answer without reading
    the video again (see the module text for which methods can share one).

    Attributes:
        video: the encoded video.
        pruning: how its tokens were pruned (every answer from this context uses it).
        prefix_ids: (P,) int64 ids of the prompt up to the video's last token (the chat template's part before the
            question).
        kept: (num_kept,) int64 kept visual-token indices, ascending (as :attr:`~.base.PruneRecord.kept_indices`).
        cache: the prefix's KV cache: per layer (1, H_kv, L, head_dim) keys and values; L is the kept length for
            layers at or after ``pruning.prune_layer`` and P for the layers before it.
        layout: the kept prefix's layout (index into the P prefix positions, mask, positions, next position).
        full_next_position: (1,) or (A, 1) the next position in the unpruned numbering (the first layers' numbering
            of the question with ``prune_layer >= 1``).
        select_seconds, prefill_seconds: what making the context cost.
    """

    video: EncodedVideo
    pruning: PruningConfig
    prefix_ids: torch.Tensor
    kept: torch.Tensor
    cache: list[tuple[torch.Tensor, torch.Tensor]] = field(repr=False)
    layout: PrunedLayout = field(repr=False)
    full_next_position: torch.Tensor = field(repr=False)
    select_seconds: float = 0.0
    prefill_seconds: float = 0.0

    @property
    def num_kept(self) -> int:
        return int(self.kept.numel())

    @property
    def prefix_length(self) -> int:
        """P, the prefix's tokens before pruning."""
        return int(self.prefix_ids.numel())

    @property
    def nbytes(self) -> int:
        """Memory the context's KV cache holds."""
        return sum(keys.nbytes + values.nbytes for keys, values in self.cache)


def prefill_context(
    adapter: "TransformersVideoAdapter",
    video: EncodedVideo,
    pruning: PruningConfig,
    prompt_ids: Optional[torch.Tensor] = None,
    seed: Optional[int] = None,
) -> VideoContext:
    """Prefill ``video``'s prompt prefix once, pruned as ``pruning`` says (see :class:`VideoContext`).

    ``prompt_ids``: (1, L) ids of any whole prompt about the video (default: the chat template's, from the
    tokenizer); the prefix is its part up to the last video placeholder.
    """
    if not shares_prefill(pruning):
        raise ValueError(
            f"method={pruning.method!r} selects with the question's attention, so its prefill cannot "
            f"be shared between questions; ask each question with the video itself"
        )
    ids = adapter.tokenize([video], [_PROBE_QUESTION])[0] if prompt_ids is None else prompt_ids.cpu()
    placeholders = (ids[0] == adapter.video_token_id).nonzero()
    if placeholders.numel() == 0:
        raise ValueError("the prompt holds no video token")
    split = int(placeholders[-1]) + 1
    ids = ids.to(adapter.device)
    positions = adapter.prompt_positions(ids, torch.ones_like(ids), [video])
    if positions is not None:  # the adapter's own numbering (3-D): the prefix's part of the whole prompt's
        positions = positions[..., :split]
    prefill = _prefill(
        adapter,
        ids[:, :split],
        torch.ones_like(ids[:, :split]),
        [video],
        pruning,
        prefix=True,
        positions=positions,
        # The selection must not depend on the question: the context carries none.
        contexts=[SelectionContext(seed=pruning.seed if seed is None else seed, frames=video.token_frames())],
    )
    # The unpruned numbering continues at P (1-D positions); 3-D positions have one mode, the layout's.
    full_next = (
        prefill.layout.next_position
        if positions is not None
        else torch.full((1,), split, dtype=torch.long, device=adapter.device)
    )
    prefix_ids = ids[:, :split]
    cache = [(layer.keys, layer.values) for layer in prefill.cache.layers]
    return VideoContext(
        video=video,
        pruning=pruning,
        prefix_ids=prefix_ids[0].cpu(),
        kept=prefill.kept[0].cpu(),
        cache=cache,
        layout=prefill.layout,
        full_next_position=full_next.to(adapter.device),
        select_seconds=prefill.select_seconds,
        prefill_seconds=prefill.prefill_seconds,
    )


def answer_from_context(
    adapter: "TransformersVideoAdapter",
    context: VideoContext,
    questions: Optional[Sequence[str]],
    generate_kwargs: dict[str, Any],
    prompt_ids: Optional[Sequence[torch.Tensor]] = None,
) -> GenerationResult:
    """Answer ``questions`` (a batch) about ``context``'s video: each question's tokens are prefilled on a copy of
    the context's cache, then decoded on the static decoder. ``prompt_ids``: instead of ``questions``, each whole
    prompt's (L_r,) ids (they must start with the context's prefix)."""
    device = adapter.device
    if prompt_ids is not None:
        prompts = [ids.cpu() for ids in prompt_ids]
    else:
        prompts = [adapter.tokenize([context.video], [question])[0][0] for question in questions or ()]
    if not prompts:
        raise ValueError("no question to answer")
    length = context.prefix_length
    for index, ids in enumerate(prompts):
        if ids.numel() <= length or not torch.equal(ids[:length], context.prefix_ids):
            raise ValueError(
                f"question {index}'s prompt does not start with the context's prefix (the chat template "
                f"puts text from the question before the video?)"
            )
    suffixes = [ids[length:] for ids in prompts]
    longest_suffix = max(suffix.numel() for suffix in suffixes)
    static = adapter.static_decoder
    # On the graph path the questions are left-padded to a captured length (padding is masked, so it changes nothing).
    steps = (prefill_bucket(longest_suffix) or longest_suffix) if static.use_graphs else longest_suffix
    batch = len(prompts)
    pad = getattr(adapter.tokenizer, "pad_token_id", None) or 0
    suffix_ids = torch.full((batch, steps), pad, dtype=torch.long)
    suffix_valid = torch.zeros(batch, steps, dtype=torch.bool)
    history = torch.full((batch, length + longest_suffix), pad, dtype=torch.long)
    history_mask = torch.zeros(batch, length + longest_suffix, dtype=torch.long)
    for row, (ids, suffix) in enumerate(zip(prompts, suffixes)):
        suffix_ids[row, steps - suffix.numel() :] = suffix
        suffix_valid[row, steps - suffix.numel() :] = True
        history[row, history.shape[1] - ids.numel() :] = ids
        history_mask[row, history.shape[1] - ids.numel() :] = 1
    adapter.check_context(
        [int(ids.numel()) for ids in prompts], [context.video.num_tokens] * batch, context.pruning, generate_kwargs
    )
    suffix_ids, suffix_valid = suffix_ids.to(device), suffix_valid.to(device)
    history, history_mask = history.to(device), history_mask.to(device)
    chooser = token_chooser(adapter.model, generate_kwargs, history.shape[1], history_mask)

    split = context.pruning.prune_layer if context.pruning.enabled else 0
    layout = context.layout
    longest = max(keys.shape[-2] for keys, _ in context.cache)
    keys = context.cache[-1][0]
    next_position = layout.next_position.to(device)
    axes = next_position.shape[:-1]
    with reproducible_attention(device):  # the graphs are captured here on first use of their shapes
        buffer, graphed = static.buffer(
            batch,
            capacity_for(longest + steps + chooser.max_new_tokens),
            keys,
            split=split,
            position_shape=(*axes, batch, 1),
        )
        prefill = None
        if graphed is not None and steps in PREFILL_BUCKETS:
            prefill = static.prefill_step(graphed, steps, [(*axes, batch, steps)] * len(buffer.lengths))
    synchronize(device)
    start = time.perf_counter()
    for layer, (layer_keys, layer_values) in enumerate(context.cache):
        buffer.load(layer, layer_keys, layer_values)
    if split:
        buffer.set_valid(0, torch.ones(1, length, dtype=torch.bool, device=device))
    buffer.set_valid(len(buffer.lengths) - 1, layout.attention_mask.to(device))
    positions, following = _suffix_positions(adapter, context, prompts, suffix_valid)
    with reproducible_attention(device):
        if prefill is not None:
            logits = prefill(suffix_ids, positions, suffix_valid)
        else:
            logits = static.runner.step(suffix_ids, buffer, positions, suffix_valid)
        if split:
            buffer.keep(torch.cat([layout.index[0].to(device), torch.arange(length, length + steps, device=device)]))
        synchronize(device)
        first = time.perf_counter()
        tokens = static.decode(buffer, graphed, logits, following, chooser, history)
        synchronize(device)
    end = time.perf_counter()
    timings = {"select": 0.0, "prefill": first - start, "generate": end - first}
    return _result(adapter, tokens, [context.video] * batch, [context.kept] * batch, timings)


def _suffix_positions(
    adapter: "TransformersVideoAdapter",
    context: VideoContext,
    prompts: Sequence[torch.Tensor],
    suffix_valid: torch.Tensor,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Positions of the questions' tokens after the prefix, per buffer group, and of each row's first new token.

    1-D positions continue the kept prefix's numbering (and, in the first K layers of a context pruned after layer
    K, the unpruned numbering). Positions the adapter computes itself (Qwen's 3-D ones, where text after a video
    does not simply continue its largest position) are taken from each whole prompt's own numbering.
    """
    device = suffix_valid.device
    batch, steps = suffix_valid.shape
    split = context.pruning.prune_layer if context.pruning.enabled else 0
    layout = context.layout
    whole = [
        adapter.prompt_positions(
            ids[None].to(device), torch.ones(1, ids.numel(), dtype=torch.long, device=device), [context.video]
        )
        for ids in prompts
    ]
    if whole[0] is None:
        offsets = (suffix_valid.long().cumsum(dim=1) - 1).clamp(min=0)
        positions = [layout.next_position.to(device)[..., None] + offsets]
        if split:
            positions.insert(0, context.full_next_position[..., None] + offsets)
        return positions, layout.next_position.to(device) + suffix_valid.sum(dim=1)
    length = context.prefix_length
    suffix = torch.zeros(whole[0].shape[0], batch, steps, dtype=torch.long, device=device)
    following = []
    for row, numbering in enumerate(whole):
        size = numbering.shape[-1] - length
        suffix[:, row, steps - size :] = numbering[:, 0, length:]
        index = torch.arange(numbering.shape[-1], device=device)[None]
        following.append(adapter.decoder.pruned_positions(numbering, index, torch.ones_like(index), "original")[1])
    return [suffix] * (2 if split else 1), torch.cat(following, dim=-1)

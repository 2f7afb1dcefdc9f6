"""Decoding on a preallocated KV cache: the decoder's layers run one by one over a :class:`~.kv_buffer.KVBuffer`,
and on CUDA each single-token step is a replayed CUDA graph.

``generate()`` with transformers' default dynamic cache grows every layer's keys and values by one position per new
token and launches each kernel from Python, so a step costs several times what reading the weights does (see
notes/design-history.md#divprune_videomodelsdecoding). Here the cache has a fixed capacity (rounded up to
:data:`CAPACITY_STEP` positions so that prompts of varying length share a few shapes), the masks hide the unwritten
slots, and a step is the same kernels on the same addresses every time, which a CUDA graph replays without Python in
the loop.

The prompt's prefill stays the adapter's own (with visual-token pruning, see :mod:`.decoder_pruning`); its cache is
copied into the buffer and the new tokens are chosen as ``generate()`` chooses them: the checkpoint's generation
config updated by the call's keyword arguments, greedy or sampled with temperature / top-k / top-p and a repetition
penalty, stopping at the end-of-sequence tokens or after ``max_new_tokens``. Anything else (beam search, several
sequences per prompt, streamers, other logits processors) is answered by ``generate()`` itself:
:func:`static_decoding_unsupported` says why a call cannot use this path.
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Sequence

import torch
from torch import nn

from .decoder import DecoderAccess, MultimodalRopeDecoder
from .kv_buffer import KVBuffer
from .runtime import synchronize

logger = logging.getLogger(__name__)

#: Buffer capacities are multiples of this many positions.
CAPACITY_STEP = 256
#: Decoding modes: transformers' ``generate()`` on its dynamic cache, or the preallocated buffer (CUDA graphs on
#: CUDA); ``"auto"`` is ``"static"`` on CUDA and ``"generate"`` elsewhere.
DECODE_MODES = ("auto", "generate", "static")
DecodeMode = Literal["auto", "generate", "static"]
#: Graph-captured buffers kept per adapter (each holds a whole KV cache of its capacity).
MAX_GRAPHS = 4

#: ``generate()`` keyword arguments the static path implements itself.
_SUPPORTED_KWARGS = {
    "max_new_tokens",
    "max_length",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "eos_token_id",
    "pad_token_id",
    "bos_token_id",
    "use_cache",
}
#: Generation-config fields whose non-default values only ``generate()`` implements.
_UNSUPPORTED_SETTINGS = {
    "num_beams": 1,
    "num_return_sequences": 1,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "min_length": 0,
    "min_new_tokens": None,
    "sequence_bias": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "min_p": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "top_h": None,
    "guidance_scale": None,
    "renormalize_logits": False,
    "watermarking_config": None,
    "exponential_decay_length_penalty": None,
    "remove_invalid_values": False,
    "max_time": None,
    "stop_strings": None,
    "penalty_alpha": None,
    "output_scores": False,
    "output_logits": False,
    "return_dict_in_generate": False,
    "output_attentions": False,
    "output_hidden_states": False,
    "prefill_chunk_size": None,
}


def resolve_decode_mode(mode: DecodeMode, device: torch.device) -> DecodeMode:
    """``"auto"`` -> ``"static"`` on CUDA, ``"generate"`` elsewhere; other modes are checked and returned."""
    if mode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}; got {mode!r}")
    if mode == "auto":
        return "static" if device.type == "cuda" else "generate"
    return mode


def capacity_for(positions: int) -> int:
    """The buffer capacity for ``positions`` positions: the next multiple of :data:`CAPACITY_STEP`."""
    return max(CAPACITY_STEP, -(-positions // CAPACITY_STEP) * CAPACITY_STEP)


# -- choosing tokens as generate() does --------------------------------------------------------------------------


@dataclass
class TokenChooser:
    """The new-token rule of one call: ``generate()``'s, from the checkpoint's generation config and the call's
    keyword arguments.

    Attributes:
        max_new_tokens: new tokens at most.
        do_sample: sample (else greedy).
        eos: (E,) int64 end-of-sequence ids (empty: stop only at ``max_new_tokens``).
        pad_token_id: what finished rows get.
        processors: transformers' logits processors (repetition penalty, temperature, top-k, top-p), applied to
            float32 logits as ``generate()`` applies them.
    """

    max_new_tokens: int
    do_sample: bool
    eos: torch.Tensor
    pad_token_id: int
    processors: Any

    def choose(self, history: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """(B,) next tokens for (B, V) logits, ``history`` (B, L) being the ids so far (prompt and new tokens)."""
        scores = self.processors(history, logits.float())
        if self.do_sample:
            return torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)
        return scores.argmax(dim=-1)


def static_decoding_unsupported(model: nn.Module, generate_kwargs: dict[str, Any]) -> Optional[str]:
    """Why a ``generate()`` call with these keyword arguments cannot use the static path (None: it can)."""
    unknown = sorted(set(generate_kwargs) - _SUPPORTED_KWARGS)
    if unknown:
        return f"generate() arguments {unknown}"
    if generate_kwargs.get("use_cache") is False:
        return "use_cache=False"
    config = _generation_config(model, generate_kwargs)
    for name, default in _UNSUPPORTED_SETTINGS.items():
        value = getattr(config, name, default)
        if value is not None and value != default and not (name == "guidance_scale" and value == 1):
            return f"generation setting {name}={value!r}"
    return None


def _generation_config(model: nn.Module, generate_kwargs: dict[str, Any]) -> Any:
    config = copy.deepcopy(model.generation_config)
    config.update(**{key: value for key, value in generate_kwargs.items() if key != "use_cache"})
    return config


def _repetition_penalty(process: Any, penalty: float, attention_mask: torch.Tensor) -> Any:
    """The repetition penalty as the installed ``generate()`` builds it. transformers 5.2x passes each row's left
    padding as ``prompt_ignore_length`` (a (B,) tensor), so padding is not penalized; 5.17's processor takes only
    an int there and its ``generate()`` passes nothing, so a processor that refuses the tensor is built without."""
    processor = process.RepetitionPenaltyLogitsProcessor
    if "prompt_ignore_length" in inspect.signature(processor.__init__).parameters:
        try:
            return processor(penalty, prompt_ignore_length=(attention_mask != 0).int().argmax(dim=1))
        except ValueError:  # an int-only prompt_ignore_length (transformers 5.17)
            pass
    return processor(penalty)


def token_chooser(
    model: nn.Module, generate_kwargs: dict[str, Any], prompt_length: int, attention_mask: torch.Tensor
) -> TokenChooser:
    """The :class:`TokenChooser` of a call on a (B, ``prompt_length``) left-padded prompt (``attention_mask``),
    counted in the full prompt's tokens as ``generate()`` counts them (``max_length`` included)."""
    from transformers.generation import logits_process as process

    config = _generation_config(model, generate_kwargs)
    if generate_kwargs.get("max_new_tokens") is not None or "max_length" not in generate_kwargs:
        new_tokens = config.max_new_tokens if config.max_new_tokens is not None else config.max_length - prompt_length
    else:
        new_tokens = config.max_length - prompt_length
    processors = process.LogitsProcessorList()
    if config.repetition_penalty is not None and config.repetition_penalty != 1.0:
        processors.append(_repetition_penalty(process, config.repetition_penalty, attention_mask))
    if config.do_sample:
        if config.temperature is not None and config.temperature != 1.0:
            processors.append(process.TemperatureLogitsWarper(config.temperature))
        if config.top_k is not None and config.top_k != 0:
            processors.append(process.TopKLogitsWarper(top_k=config.top_k, min_tokens_to_keep=1))
        if config.top_p is not None and config.top_p < 1.0:
            processors.append(process.TopPLogitsWarper(top_p=config.top_p, min_tokens_to_keep=1))
    eos = config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    pad = config.pad_token_id if config.pad_token_id is not None else (eos[0] if eos else 0)
    return TokenChooser(
        max(0, int(new_tokens)),
        bool(config.do_sample),
        torch.tensor(eos, dtype=torch.long, device=attention_mask.device),
        int(pad),
        processors,
    )


# -- running the decoder's layers over a buffer --------------------------------------------------------------------


class LayerRunner:
    """The text decoder run layer by layer over a :class:`~.kv_buffer.KVBuffer` (the decoder's own layers, norm,
    embeddings and LM head; each layer called as its decoder calls it).

    Args:
        model: the whole model (input embeddings and LM head).
        decoder: its text decoder.
    """

    def __init__(self, model: nn.Module, decoder: DecoderAccess) -> None:
        self.decoder = decoder
        self.embed = model.get_input_embeddings()
        self.lm_head = model.get_output_embeddings()
        self.norm = decoder.module.norm
        parameters = inspect.signature(decoder.layers[0].forward).parameters
        self.cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
        self.one_axis = not isinstance(decoder, MultimodalRopeDecoder)
        self.dtype = self.embed.weight.dtype

    def forward(
        self, embeds: torch.Tensor, buffer: KVBuffer, positions: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Run S new tokens through every layer, writing their keys and values into ``buffer``.

        Args:
            embeds: (B, S, D) input embeddings.
            buffer: the KV buffer, :meth:`~.kv_buffer.KVBuffer.set_step` already called for the S tokens.
            positions: per buffer group, the tokens' positions, (B, S) or (A, B, S).
            masks: per buffer group, the (B, 1, S, capacity) additive mask.

        Returns:
            (B, V) logits of the last token.
        """
        hidden = embeds
        rope = [self.decoder.rotary(hidden, group_positions) for group_positions in positions]
        for index, layer in enumerate(self.decoder.layers):
            group = buffer.group_of[index]
            output = layer(
                hidden,
                attention_mask=masks[group],
                position_embeddings=rope[group],
                position_ids=positions[group] if self.one_axis else None,
                use_cache=True,
                **{self.cache_kwarg: buffer},
            )
            hidden = output[0] if isinstance(output, tuple) else output
        return self.lm_head(self.norm(hidden[:, -1:]))[:, -1]

    def step(
        self,
        tokens: torch.Tensor,
        buffer: KVBuffer,
        positions: Sequence[torch.Tensor],
        new_valid: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """:meth:`forward` for (B, S) token ids appended to every row of ``buffer`` (``new_valid`` (B, S): False at
        padding among them). Returns the last token's (B, V) logits."""
        if new_valid is None:
            new_valid = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
        buffer.set_step(new_valid)
        return self.forward(self.embed(tokens), buffer, positions, buffer.masks(tokens.shape[1], self.dtype))


# -- CUDA graphs of decoding steps and question prefills ------------------------------------------------------------

#: Question prefills on a shared video context are padded to one of these lengths and replayed as CUDA graphs
#: (longer questions run eagerly): a short prefill launches as many kernels as a long one, and Python launching them
#: one by one costs more than the GPU's work.
PREFILL_BUCKETS = (16, 32, 64, 128, 256, 512)


def prefill_bucket(steps: int) -> Optional[int]:
    """The smallest of :data:`PREFILL_BUCKETS` holding ``steps`` tokens (None: longer than the largest)."""
    return next((bucket for bucket in PREFILL_BUCKETS if bucket >= steps), None)


def _capture(run: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Capture ``run`` in a CUDA graph after two warm-up calls on a side stream (lazy initialisation and kernel
    selection happen outside the capture); return the graph and ``run``'s output tensor, refreshed by each
    replay."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(2):
            run()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # other threads may use the GPU meanwhile
        output = run()
    return graph, output


class _GraphedStep:
    """One captured single-token step over its own buffer of (batch, capacity): fixed input tensors (token, positions,
    mask, write slot) updated in place, then the graph replayed. ``capture=False`` runs the same step eagerly on
    the same tensors (the CPU tests of this bookkeeping).

    Attributes:
        prefills: the buffer's captured question prefills, by (tokens, group structure, position shapes).
    """

    def __init__(
        self, runner: LayerRunner, buffer: KVBuffer, position_shape: tuple[int, ...], capture: bool = True
    ) -> None:
        device = buffer.device
        self.buffer, self.capture = buffer, capture
        self.tokens = torch.zeros(buffer.batch, 1, dtype=torch.long, device=device)
        self.positions = torch.zeros(position_shape, dtype=torch.long, device=device)
        self.mask = torch.full(
            (buffer.batch, 1, 1, buffer.capacity), torch.finfo(runner.dtype).min, dtype=runner.dtype, device=device
        )
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.prefills: dict[tuple[Any, ...], _GraphedPrefill] = {}
        buffer.slots[0] = self.slot

        def run() -> torch.Tensor:
            return runner.forward(runner.embed(self.tokens), buffer, [self.positions], [self.mask])

        self._run = run
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        if capture:
            self.graph, self.logits = _capture(run, device)

    def prepare(self) -> None:
        """Set the mask from the buffer's valid slots (after its prompt was loaded)."""
        valid = self.buffer.valid[0]
        self.mask.fill_(torch.finfo(self.mask.dtype).min)
        self.mask[:, 0, 0].masked_fill_(valid, 0)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        buffer = self.buffer
        slot = buffer.lengths[0]
        if slot >= buffer.capacity:
            raise ValueError(f"the KV buffer of {buffer.capacity} positions is full")
        self.tokens.copy_(tokens.view(-1, 1))
        self.positions.copy_(positions)
        self.slot.fill_(slot)
        self.mask[:, 0, 0, slot] = 0
        buffer.valid[0][:, slot] = True
        buffer.lengths[0] = slot + 1
        if self.graph is None:
            buffer.slots[0] = self.slot
            return self._run()
        self.graph.replay()
        return self.logits


class _GraphedPrefill:
    """A captured step of S new tokens per row over a pooled buffer in its current group structure (a question's
    prefill on a video context): token, per-group position, mask and slot tensors filled in place, then replayed.
    Captured before the buffer is loaded (its warm-up writes into the buffer)."""

    def __init__(
        self,
        runner: LayerRunner,
        buffer: KVBuffer,
        steps: int,
        position_shapes: Sequence[tuple[int, ...]],
        capture: bool = True,
    ) -> None:
        device, groups = buffer.device, len(buffer.lengths)
        self.buffer, self.runner, self.steps = buffer, runner, steps
        self.group_of = list(buffer.group_of)
        self.tokens = torch.zeros(buffer.batch, steps, dtype=torch.long, device=device)
        self.positions = [torch.zeros(shape, dtype=torch.long, device=device) for shape in position_shapes]
        self.masks = [
            torch.full(
                (buffer.batch, 1, steps, buffer.capacity),
                torch.finfo(runner.dtype).min,
                dtype=runner.dtype,
                device=device,
            )
            for _ in range(groups)
        ]
        self.slots = [torch.arange(steps, device=device) for _ in range(groups)]
        buffer.slots = list(self.slots)

        def run() -> torch.Tensor:
            return runner.forward(runner.embed(self.tokens), buffer, self.positions, self.masks)

        self._run = run
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        if capture:
            self.graph, self.logits = _capture(run, device)

    def __call__(
        self, tokens: torch.Tensor, positions: Sequence[torch.Tensor], new_valid: torch.Tensor
    ) -> torch.Tensor:
        """(B, S) tokens (False in ``new_valid`` at padding), their positions per group -> the last token's logits."""
        buffer = self.buffer
        if buffer.group_of != self.group_of:
            raise RuntimeError("the buffer's layer groups changed since this prefill was captured")
        buffer.set_step(new_valid)
        for static, slots in zip(self.slots, buffer.slots):
            static.copy_(slots)
        buffer.slots = list(self.slots)
        for static, mask in zip(self.masks, buffer.masks(self.steps, self.runner.dtype)):
            static.copy_(mask)
        for static, group_positions in zip(self.positions, positions):
            static.copy_(group_positions)
        self.tokens.copy_(tokens)
        if self.graph is None:
            return self._run()
        self.graph.replay()
        return self.logits


class StaticDecoder:
    """The static decoding path of one adapter: buffers by (batch, capacity), graph-captured steps on CUDA.

    Args:
        model: the whole model.
        decoder: its text decoder.
        use_graphs: capture single-token steps in CUDA graphs (default: on CUDA).
        capture: with ``use_graphs``, really capture (default); False runs the graph path's fixed-tensor steps
            eagerly (to test its bookkeeping on the CPU).
    """

    def __init__(
        self, model: nn.Module, decoder: DecoderAccess, use_graphs: Optional[bool] = None, capture: bool = True
    ) -> None:
        self.model, self.runner = model, LayerRunner(model, decoder)
        device = self.runner.embed.weight.device
        self.use_graphs = device.type == "cuda" if use_graphs is None else bool(use_graphs)
        self.capture = capture
        self._graphs: OrderedDict[tuple[int, int, tuple[int, ...]], _GraphedStep] = OrderedDict()
        self.capture_seconds = 0.0

    def buffer(
        self, batch: int, capacity: int, like: torch.Tensor, split: int = 0, position_shape: tuple[int, ...] = ()
    ) -> tuple[KVBuffer, Optional[_GraphedStep]]:
        """A zeroed-length buffer for (batch, capacity), shaped like the cached keys ``like`` (B, H_kv, L, d),
        with its graph-captured step when graphs are used (captured on first use of the shape)."""
        num_layers = self.runner.decoder.num_layers
        if not self.use_graphs:
            return KVBuffer(
                num_layers, batch, like.shape[1], like.shape[3], capacity, like.dtype, like.device, split
            ), None
        key = (batch, capacity, position_shape)
        graphed = self._graphs.get(key)
        if graphed is None:
            while len(self._graphs) >= MAX_GRAPHS:
                self._graphs.popitem(last=False)
            synchronize(like.device)
            start = time.perf_counter()
            buffer = KVBuffer(num_layers, batch, like.shape[1], like.shape[3], capacity, like.dtype, like.device)
            buffer.set_step(torch.ones(batch, 1, dtype=torch.bool, device=like.device))
            graphed = _GraphedStep(self.runner, buffer, position_shape, capture=self.capture)
            synchronize(like.device)
            self.capture_seconds += time.perf_counter() - start
            logger.info(
                "captured a decoding step for batch %d, capacity %d in %.2f s",
                batch,
                capacity,
                time.perf_counter() - start,
            )
            self._graphs[key] = graphed
        else:
            self._graphs.move_to_end(key)
        buffer = graphed.buffer
        buffer.group_of = [int(split > 0 and layer >= split) for layer in range(num_layers)]
        groups = 2 if split else 1
        buffer.valid = [torch.zeros(batch, capacity, dtype=torch.bool, device=like.device) for _ in range(groups)]
        buffer.lengths = [0] * groups
        buffer.slots = [graphed.slot] + [torch.zeros(1, dtype=torch.long, device=like.device)] * (groups - 1)
        return buffer, graphed

    def prefill_step(
        self, graphed: _GraphedStep, steps: int, position_shapes: Sequence[tuple[int, ...]]
    ) -> _GraphedPrefill:
        """The captured S-token step of ``graphed``'s buffer in its current group structure (captured on first use;
        call before loading the buffer)."""
        buffer = graphed.buffer
        key = (steps, tuple(buffer.group_of), tuple(tuple(shape) for shape in position_shapes))
        prefill = graphed.prefills.get(key)
        if prefill is None:
            device = buffer.device
            synchronize(device)
            start = time.perf_counter()
            prefill = _GraphedPrefill(self.runner, buffer, steps, position_shapes, capture=self.capture)
            synchronize(device)
            self.capture_seconds += time.perf_counter() - start
            graphed.prefills[key] = prefill
        return prefill

    def decode(
        self,
        buffer: KVBuffer,
        graphed: Optional[_GraphedStep],
        first_logits: torch.Tensor,
        next_position: torch.Tensor,
        chooser: TokenChooser,
        history: torch.Tensor,
        on_token: Optional[Callable[[int], None]] = None,
    ) -> torch.Tensor:
        """Choose new tokens from ``first_logits`` (B, V) on, each step feeding the last token back.

        Args:
            buffer: the prompt's cache (one group).
            graphed: the buffer's captured step (None: eager steps).
            first_logits: (B, V) the prompt's last logits.
            next_position: (B,) or (A, B) position of the first new token per row.
            chooser: the new-token rule.
            history: (B, L) the prompt's ids (for the repetition penalty).
            on_token: called with the step number after each chosen token (timing).

        Returns:
            (B, T) int64 new tokens, T <= ``max_new_tokens`` (finished rows padded with ``pad_token_id``).
        """
        batch = first_logits.shape[0]
        device = first_logits.device
        unfinished = torch.ones(batch, dtype=torch.bool, device=device)
        logits, chosen = first_logits, []
        if graphed is not None:
            graphed.prepare()
        for step in range(chooser.max_new_tokens):
            tokens = chooser.choose(history, logits)
            if chooser.eos.numel():
                tokens = torch.where(unfinished, tokens, torch.full_like(tokens, chooser.pad_token_id))
                unfinished &= ~torch.isin(tokens, chooser.eos)
            chosen.append(tokens)
            history = torch.cat([history, tokens[:, None]], dim=1)
            if on_token is not None:
                on_token(step)
            if step + 1 == chooser.max_new_tokens or (chooser.eos.numel() and not bool(unfinished.any())):
                break
            positions = next_position[..., None] + step
            if graphed is not None:
                logits = graphed(tokens, positions)
            else:
                logits = self.runner.step(tokens[:, None], buffer, [positions])
        if not chosen:
            return torch.zeros(batch, 0, dtype=torch.long, device=device)
        return torch.stack(chosen, dim=1)

    def load_cache(
        self, buffer: KVBuffer, cache: Any, valid: torch.Tensor, group: int = 0, layers: Optional[Sequence[int]] = None
    ) -> None:
        """Copy a dynamic cache's layers (all, or ``layers``) into ``buffer``'s ``group`` with (B or 1, L) valid
        flags."""
        for layer in range(self.runner.decoder.num_layers) if layers is None else layers:
            buffer.load(layer, cache.layers[layer].keys, cache.layers[layer].values)
        buffer.set_valid(group, valid)

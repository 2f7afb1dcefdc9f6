"""``TransformersVideoAdapter``: the family-neutral half of an adapter over a transformers video LLM whose prompt
holds one placeholder token per visual token (the LLaVA families).

A family subclass says which transformers classes it loads (:attr:`~TransformersVideoAdapter.model_class`,
:attr:`~TransformersVideoAdapter.processor_class`), how pixel values become visual tokens
(:meth:`~TransformersVideoAdapter.video_tokens`), where its text decoder is
(:meth:`~TransformersVideoAdapter.text_decoder`) and, if it has one, its default system prompt. Everything else is
here:

* the prompt is the checkpoint's chat template (an optional system turn, then a user turn holding the video and the
  question) with the video placeholder repeated once per token of the video, tokenized as the checkpoint's processor
  does; the visual tokens' positions are where the input ids hold the config's ``video_token_id``;
* ``generate()`` runs on ``inputs_embeds`` built exactly as the models build them themselves (token embeddings with
  the video's tokens scattered into its placeholder positions), so ``method="none"`` (or ``keep_ratio=1.0``) gives
  what plain transformers gives on the same pixel values; pruning happens inside that call
  (:mod:`.decoder_pruning`), over the video's frame tokens only (its unframed tokens are always kept).
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Sequence

import numpy as np
import torch

from .._optional import require
from ..selection import SelectionContext
from .base import EncodedVideo, FrameTiming, GenerationResult, ModelAdapter, PruneRecord, PruningConfig
from .context import check_fits, context_length
from .decoder import DecoderAccess, LlamaStyleDecoder
from .decoder_pruning import FirstForwardTimer, VisualTokenPruning
from .decoding import StaticDecoder, resolve_decode_mode, static_decoding_unsupported
from .preprocess import FramePreprocessor, check_frames, load_frame_preprocessor
from .runtime import (
    default_attention,
    reproducible_attention,
    resolve_device,
    resolve_dtype,
    synchronize,
    synchronize_stream,
)
from .video_context import VideoContext, answer_from_context, generate_static, prefill_context

logger = logging.getLogger(__name__)


@dataclass
class VisualTokens:
    """What a family's vision path makes of one video (see :class:`~.base.EncodedVideo` for the meanings).

    Attributes:
        features: (N, D) frame tokens, frame-group-major, row-major over ``grid``.
        grid: (rows, cols) of tokens per frame group.
        unframed: (E, D) tokens after the frame tokens that belong to no frame, or None.
        layer_features: per LLM layer, (N, D) features added after it (Qwen3-VL's DeepStack); empty otherwise.
    """

    features: torch.Tensor
    grid: tuple[int, int]
    unframed: Optional[torch.Tensor] = None
    layer_features: tuple[torch.Tensor, ...] = ()


#: Use the family's default system prompt (:attr:`TransformersVideoAdapter.default_system_prompt`).
FAMILY_DEFAULT = "family-default"


class TransformersVideoAdapter(ModelAdapter):
    """An adapter over a transformers ``...ForConditionalGeneration`` video model (see the module text).

    Args:
        model: the loaded transformers model.
        tokenizer: its tokenizer (needed for text prompts and answers; :meth:`generate_from_ids` works without).
        frame_preprocessor: frames -> pixel values; default: :meth:`default_frame_preprocessor`.
        chat_template: the processor's chat template (Jinja); default: the tokenizer's.
        system_prompt: text of a system turn before the user's (None: no system turn); default: the family's
            :attr:`default_system_prompt`.
        fast_vision: let the family replace parts of the vision tower by faster exact equivalents
            (:meth:`speed_up_vision`; in place, on CUDA). False leaves the model exactly as transformers built it.
    """

    #: The transformers model class (a name in ``transformers``) and processor class of the family.
    model_class: ClassVar[str] = ""
    processor_class: ClassVar[str] = ""
    #: The system turn the family's benchmark prompts use by default (None: none).
    default_system_prompt: ClassVar[Optional[str]] = None

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        frame_preprocessor: Optional[FramePreprocessor] = None,
        chat_template: Optional[str] = None,
        system_prompt: Optional[str] = FAMILY_DEFAULT,
        fast_vision: bool = True,
    ) -> None:
        self.model = model.eval()
        self.config = model.config
        self.video_token_id = int(self.config.video_token_id)
        self.tokenizer = tokenizer
        if tokenizer is not None:
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        self.system_prompt = self.default_system_prompt if system_prompt == FAMILY_DEFAULT else system_prompt
        self.frame_preprocessor = frame_preprocessor or self.default_frame_preprocessor()
        self._decoder: Optional[DecoderAccess] = None
        self._static_decoder: Optional[Any] = None
        #: How answers are decoded: ``"auto"`` (CUDA graphs on a preallocated cache on CUDA, ``generate()``
        #: elsewhere), ``"static"`` or ``"generate"`` (see :mod:`.decoding`).
        self.decoding = "auto"
        self.fast_vision = bool(fast_vision)
        if fast_vision:
            self.speed_up_vision()

    # -- loading -----------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: Optional[str] = None,
        dtype: Optional[Any] = None,
        attn_implementation: Optional[str] = None,
        system_prompt: Optional[str] = FAMILY_DEFAULT,
    ) -> "TransformersVideoAdapter":
        """Load a checkpoint of the family (hub id or local folder): model, tokenizer, chat template, frame
        preprocessing. float16 on CUDA and float32 on CPU unless ``dtype`` says otherwise."""
        transformers = require("transformers", "model")
        target = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, target)
        attention = attn_implementation or default_attention(target)
        network = (
            getattr(transformers, cls.model_class)
            .from_pretrained(model, dtype=torch_dtype, attn_implementation=attention)
            .to(target)
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(model)
        processor_settings, _ = getattr(transformers, cls.processor_class).get_processor_dict(model)
        template = processor_settings.get("chat_template") or tokenizer.chat_template
        if isinstance(template, dict):
            template = template.get("default")
        if not template:
            raise ValueError(f"{model!r} has no chat template (chat_template.jinja / chat_template.json)")
        logger.info("loaded %s on %s (%s, %s attention)", model, target, torch_dtype, attention)
        return cls(network, tokenizer, cls.load_frame_preprocessor(model), template, system_prompt=system_prompt)

    @classmethod
    def load_frame_preprocessor(cls, model: str) -> Any:
        """The checkpoint's frame preprocessing (its transformers video processor, or the same steps in PyTorch
        without torchvision); what it returns is what :meth:`video_tokens` takes."""
        return load_frame_preprocessor(model)

    def speed_up_vision(self) -> None:
        """Replace parts of the vision tower by faster equivalents with the same outputs, in place (none here)."""

    @property
    def vision_tower(self) -> torch.nn.Module:
        """The model's vision tower module."""
        return self.model.model.vision_tower

    def sized_frame_preprocessor(self, height: int, width: int, num_frames: int) -> Optional[FramePreprocessor]:
        """Preprocessing that keeps ``num_frames`` frames of ``height`` x ``width`` at that size, for families that
        take any resolution (benchmarks at a chosen size); None for families with one input size."""
        return None

    def placeholder_ids(self, video: EncodedVideo, text_id: int) -> torch.Tensor:
        """(P,) int64: the token ids ``video`` occupies in a prompt as the processor lays it out, for prompts built
        without a tokenizer (benchmarks); text inside the video's span (timestamps) becomes ``text_id``. Here: the
        placeholder once per token."""
        return torch.full((video.num_placeholders,), self.video_token_id, dtype=torch.long)

    def plain_inputs(self, pixels: Any, input_ids: torch.Tensor, video: EncodedVideo) -> dict[str, Any]:
        """The keyword arguments that carry the video into the model's own ``forward``/``generate``, as its
        processor makes them, for prompt ``input_ids`` (benchmarks of plain transformers)."""
        return {"pixel_values_videos": pixels.unsqueeze(0)}

    @abstractmethod
    def default_frame_preprocessor(self) -> FramePreprocessor:
        """The preprocessing used when none is given (a model built without a checkpoint folder)."""

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def decoder(self) -> DecoderAccess:
        """The text decoder, seen through the interface pruning uses."""
        if self._decoder is None:
            self._decoder = LlamaStyleDecoder(self.text_decoder())
        return self._decoder

    def text_decoder(self) -> torch.nn.Module:
        """The text decoder module (transformers' ``model.model.language_model``)."""
        return self.model.model.language_model

    # -- video -> visual tokens ---------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode_frames(self, frames: np.ndarray, timing: Optional[FrameTiming] = None) -> EncodedVideo:
        """frames: (T, H, W, 3) uint8 RGB -> the video's visual tokens, through the model's own video path.

        The frames are preprocessed on the model's device (see :mod:`.preprocess`). A family that encodes frames
        in groups pads the last group by repeating the last frame, as its processor does. ``timing``: when the
        frames were taken (default: one frame a second from 0)."""
        frames = check_frames(frames)
        timing = timing or FrameTiming.uniform(frames.shape[0])
        if len(timing.timestamps) != frames.shape[0]:
            raise ValueError(f"timing holds {len(timing.timestamps)} timestamps for {frames.shape[0]} frames")
        start = time.perf_counter()
        pixels = self.frame_preprocessor(frames, device=self.device)
        tokens = self.video_tokens(pixels)
        synchronize_stream(self.device)  # the encode's own work: a memory update may run on another stream
        return EncodedVideo(
            tokens.features,
            -(-frames.shape[0] // self.frames_per_group),
            tokens.grid,
            seconds=time.perf_counter() - start,
            unframed=tokens.unframed,
            frames_per_group=self.frames_per_group,
            group_times=timing.group_times(self.frames_per_group),
            sampled_fps=timing.sampled_fps,
            layer_features=tokens.layer_features,
        )

    @abstractmethod
    def video_tokens(self, pixels: Any) -> VisualTokens:
        """The frame preprocessor's output ((T, 3, H, W) pixel values for the LLaVA families) -> the video's
        :class:`VisualTokens`."""

    # -- prompt ------------------------------------------------------------------------------------------------

    def build_prompt(self, question: str) -> str:
        """The chat-template prompt for one question about one video (a single video placeholder, not yet
        repeated)."""
        if self.tokenizer is None or not self.chat_template:
            raise ValueError("text prompts need the checkpoint's tokenizer and chat template")
        if not isinstance(question, str):
            raise TypeError(f"question must be a str; got {type(question).__name__}")
        conversation = []
        if self.system_prompt:
            conversation.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        conversation.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]})
        return self.tokenizer.apply_chat_template(
            conversation, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )

    def tokenize(self, videos: Sequence[EncodedVideo], questions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded (B, L) input ids and attention mask, the video placeholder repeated once per token of the
        video (as the checkpoint's processor does)."""
        if len(videos) != len(questions) or not videos:
            raise ValueError(
                f"need one question per video and at least one; got {len(videos)} videos and {len(questions)} questions"
            )
        video_token = self.tokenizer.convert_ids_to_tokens(self.video_token_id)
        prompts = []
        for video, question in zip(videos, questions):
            prompt = self.build_prompt(question)
            if prompt.count(video_token) != 1:
                raise ValueError(
                    f"the chat template must place the video token {video_token!r} once; got "
                    f"{prompt.count(video_token)} in {prompt!r}"
                )
            prompts.append(self.expand_video(prompt, video))
        encoded = self.tokenizer(prompts, padding=True, return_tensors="pt")
        return encoded["input_ids"], encoded["attention_mask"]

    def expand_video(self, prompt: str, video: EncodedVideo) -> str:
        """``prompt`` with its single video placeholder token replaced by the text the processor puts there: the
        placeholder once per token of the video (families that interleave timestamps override this)."""
        video_token = self.tokenizer.convert_ids_to_tokens(self.video_token_id)
        return prompt.replace(video_token, video_token * video.num_placeholders)

    def embed(self, input_ids: torch.Tensor, videos: Sequence[EncodedVideo]) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's input embeddings with the videos' tokens scattered into the video placeholder positions.

        Returns (B, L, D) ``inputs_embeds`` and the (B, L) bool mask of the prunable visual tokens (each video's
        frame tokens; its unframed tokens, which follow them, are left out).
        """
        placeholders = input_ids == self.video_token_id
        counts = placeholders.sum(dim=1).tolist()
        expected = [video.num_placeholders for video in videos]
        if counts != expected:
            raise ValueError(f"the input ids hold {counts} video tokens per row but the videos have {expected}")
        embeds = self.model.get_input_embeddings()(input_ids)
        features = torch.cat([video.sequence_features() for video in videos]).to(embeds.device, embeds.dtype)
        embeds = embeds.masked_scatter(placeholders.unsqueeze(-1).expand_as(embeds), features)
        frame_tokens = torch.tensor([video.num_tokens for video in videos], device=input_ids.device)
        visual_mask = placeholders & (placeholders.long().cumsum(dim=1) <= frame_tokens[:, None])
        return embeds, visual_mask

    # -- generation --------------------------------------------------------------------------------------------

    def generate(
        self,
        videos: Sequence[EncodedVideo],
        questions: Sequence[str],
        pruning: PruningConfig,
        *,
        seed: Optional[int] = None,
        **generate_kwargs: Any,
    ) -> GenerationResult:
        """Answer ``questions[i]`` about ``videos[i]``, batched (left padding); ``generate_kwargs`` go to
        transformers' ``generate()`` (``max_new_tokens``, ``do_sample``, ``temperature``, ...). Each sample's
        selector sees its question, the frame of each visual token and ``seed`` (default ``pruning.seed``)."""
        input_ids, attention_mask = self.tokenize(videos, questions)
        contexts = selection_contexts(videos, questions, pruning.seed if seed is None else seed)
        return self.generate_from_ids(input_ids, attention_mask, videos, pruning, contexts=contexts, **generate_kwargs)

    @torch.inference_mode()
    def generate_from_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        videos: Sequence[EncodedVideo],
        pruning: PruningConfig,
        *,
        contexts: Optional[Sequence[SelectionContext]] = None,
        **generate_kwargs: Any,
    ) -> GenerationResult:
        """:meth:`generate` on prepared (B, L) left-padded input ids and mask (row i holding video i's tokens);
        ``contexts``: per row, what the selector may read (default: ``pruning.seed`` and the token frames)."""
        if contexts is None:
            contexts = selection_contexts(videos, [None] * len(videos), pruning.seed)
        if generate_kwargs.get("use_cache") is False and pruning.enabled:
            raise ValueError("pruning works on the KV cache: use_cache=False is not supported")
        self.check_context(
            attention_mask.sum(dim=1).tolist(), [video.num_tokens for video in videos], pruning, generate_kwargs
        )
        if self.tokenizer is not None and self.tokenizer.pad_token_id is not None:
            generate_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        if self.static_decoding_for(generate_kwargs):
            return generate_static(self, input_ids, attention_mask, videos, pruning, generate_kwargs, contexts)
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        embeds, visual_mask = self.embed(input_ids, videos)
        positions = self.prompt_positions(input_ids, attention_mask, videos)
        layer_features = _layer_features(videos)
        pruner = None
        if pruning.enabled or positions is not None or layer_features:
            pruner = VisualTokenPruning(
                self.decoder, visual_mask, pruning, positions, layer_features, contexts=contexts
            )
        with (
            FirstForwardTimer(self.model) as timer,
            pruner or contextlib.nullcontext(),
            reproducible_attention(self.device),
        ):
            start = time.perf_counter()
            output = self.model.generate(
                input_ids=input_ids, inputs_embeds=embeds, attention_mask=attention_mask, **generate_kwargs
            )
            synchronize(self.device)
            total = time.perf_counter() - start
        sequences = getattr(output, "sequences", output)[:, input_ids.shape[1] :].cpu()
        select = pruner.select_seconds if pruner and pruning.enabled else 0.0
        first_forward = timer.seconds or 0.0
        if pruner is not None and pruning.enabled:
            records = [PruneRecord(video.num_tokens, kept) for video, kept in zip(videos, pruner.kept)]
        else:
            records = [PruneRecord(video.num_tokens, torch.arange(video.num_tokens)) for video in videos]
        return GenerationResult(
            sequences=list(sequences),
            texts=self.decode(sequences),
            records=records,
            timings={"select": select, "prefill": first_forward - select, "generate": total - first_forward},
            raw=output,
        )

    # -- decoding on a preallocated cache, and one prefill per video ----------------------------------------------

    @property
    def static_decoder(self) -> StaticDecoder:
        """The adapter's :class:`~.decoding.StaticDecoder` (created on first use; holds the captured graphs)."""
        if self._static_decoder is None:
            self._static_decoder = StaticDecoder(self.model, self.decoder)
        return self._static_decoder

    def static_decoding_for(self, generate_kwargs: dict[str, Any]) -> bool:
        """Whether a call with ``generate_kwargs`` decodes on the static decoder (:attr:`decoding` and the
        arguments allow it; see :func:`~.decoding.static_decoding_unsupported`)."""
        if resolve_decode_mode(self.decoding, self.device) != "static":
            return False
        reason = static_decoding_unsupported(self.model, generate_kwargs)
        if reason is not None:
            logger.debug("decoding with generate(): %s", reason)
        return reason is None

    @torch.inference_mode()
    def prefill(self, video: EncodedVideo, pruning: PruningConfig, *, seed: Optional[int] = None) -> VideoContext:
        """Prefill ``video``'s prompt up to its last token once, pruned as ``pruning`` says; answer questions about
        it with :meth:`answer` (see :mod:`.video_context` for the methods that can share a prefill)."""
        return prefill_context(self, video, pruning, seed=seed)

    @torch.inference_mode()
    def answer(self, context: VideoContext, questions: Sequence[str], **generate_kwargs: Any) -> GenerationResult:
        """Answer ``questions`` about a :class:`~.video_context.VideoContext`'s video from its shared prefill.

        ``generate_kwargs`` as for :meth:`generate`, within what the static decoder implements (greedy or sampled
        with temperature / top-k / top-p / repetition penalty); others raise ValueError.
        """
        if self.tokenizer is not None and self.tokenizer.pad_token_id is not None:
            generate_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        reason = static_decoding_unsupported(self.model, generate_kwargs)
        if reason is not None:
            raise ValueError(f"answers from a shared video prefill cannot use {reason}; ask with the video itself")
        return answer_from_context(self, context, questions, generate_kwargs)

    @property
    def context_length(self) -> Optional[int]:
        """Positions the text decoder takes (:func:`~divprune_video.models.context.context_length`); None when the
        checkpoint's configuration does not say."""
        return context_length(self.config)

    def check_context(
        self,
        prompt_lengths: Sequence[int],
        visual_tokens: Sequence[int],
        pruning: PruningConfig,
        generate_kwargs: Optional[dict[str, Any]] = None,
        sources: Optional[Sequence[str]] = None,
    ) -> None:
        """Raise :class:`~divprune_video.models.context.ContextLengthError` when a prompt of ``prompt_lengths[i]``
        tokens holding ``visual_tokens[i]`` visual tokens, pruned as ``pruning`` says, plus the answer's
        ``max_new_tokens`` would run past :attr:`context_length`. ``sources[i]`` names prompt ``i`` in the message.

        Only pruning before the LLM with renumbered positions shortens the positions the decoder reaches; pruning
        after layer K runs the first K layers on every token, and original positions keep the full numbering.
        """
        context = self.context_length
        if context is None:
            return
        kwargs = generate_kwargs or {}
        new_tokens = kwargs.get("max_new_tokens")
        if new_tokens is None and "max_length" not in kwargs:
            new_tokens = getattr(getattr(self.model, "generation_config", None), "max_new_tokens", None)
        positions = pruning.positions or self.decoder.position_modes[0]
        prunable = pruning.prune_layer == 0 and positions == "renumber"
        for row, (length, visual) in enumerate(zip(prompt_lengths, visual_tokens)):
            reached = pruning.num_keep(visual) if prunable else visual
            source = (
                sources[row] if sources is not None else (f"prompt {row}" if len(prompt_lengths) > 1 else "the prompt")
            )
            check_fits(
                context,
                visual=visual,
                reached_visual=reached,
                fixed=int(length) - visual + int(new_tokens or 0),
                prunable=prunable,
                source=source,
            )

    def text_tokens(self, question: str) -> Optional[int]:
        """Tokens of the chat prompt for ``question`` without the video's visual tokens (its placeholder and
        markers around it counted); None without a tokenizer."""
        if self.tokenizer is None:
            return None
        ids = self.tokenizer(self.build_prompt(question))["input_ids"]
        return len(ids) - sum(1 for token in ids if token == self.video_token_id)

    def prompt_positions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, videos: Sequence[EncodedVideo]
    ) -> Optional[torch.Tensor]:
        """The prompt's positions when the model cannot number them from the attention mask alone (Qwen's 3-D
        positions): (A, B, L) int64; None (the default) lets the decoder number them."""
        return None

    def decode(self, sequences: torch.Tensor) -> list[str]:
        """(B, n) generated ids -> answers (special tokens skipped, stripped); empty strings without a tokenizer."""
        if self.tokenizer is None:
            return ["" for _ in range(sequences.shape[0])]
        return [text.strip() for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=True)]


def _layer_features(videos: Sequence[EncodedVideo]) -> list[list[torch.Tensor]]:
    """Per layer, per video, the features added after that layer (Qwen3-VL's DeepStack); empty when none."""
    levels = {len(video.layer_features) for video in videos}
    if len(levels) > 1:
        raise ValueError(
            f"the videos of one batch carry layer features for different numbers of layers: {sorted(levels)}"
        )
    return [[video.layer_features[level] for video in videos] for level in range(levels.pop())]


def selection_contexts(
    videos: Sequence[EncodedVideo], questions: Sequence[Optional[str]], seed: int
) -> list[SelectionContext]:
    """Per video, the :class:`~divprune_video.selection.SelectionContext` of its selection: the question, the seed
    and the frame (group) of each visual token."""
    return [
        SelectionContext(question=question, seed=seed, frames=video.token_frames())
        for video, question in zip(videos, questions)
    ]

"""The LLaVA-NeXT-Video adapter: transformers' ``LlavaNextVideoForConditionalGeneration`` with DivPrune.

* Frames go through the model's own video path: the checkpoint's frame preprocessing, the vision tower
  (``vision_feature_layer``, CLS dropped under the "default" strategy), the spatial pooling (2 x 2 average: 144
  tokens per frame at 336 px for the 7B model) and the projector (``get_video_features``).
* The prompt is the checkpoint's chat template (a user turn holding the video, then the question) with the video
  token repeated once per visual token, tokenized as the checkpoint's processor does; the visual tokens'
  positions are where the input ids hold the config's ``video_token_id``.
* ``generate()`` runs on ``inputs_embeds`` built exactly as the model builds them itself (token embeddings with the
  visual features scattered into the video positions), so ``method="none"`` (or ``keep_ratio=1.0``) gives what
  plain transformers gives on the same frames; pruning happens inside that call (:mod:`.decoder_pruning`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from .._optional import require
from .base import EncodedVideo, GenerationResult, ModelAdapter, PruneRecord, PruningConfig
from .decoder_pruning import FirstForwardTimer, VisualTokenPruning
from .preprocess import ClipFramePreprocessor, FramePreprocessor, load_frame_preprocessor

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "llava-hf/LLaVA-NeXT-Video-7B-hf"
#: CLIP's normalization, used when a model is built without a checkpoint (benchmarks).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float32": torch.float32, "fp32": torch.float32}


def resolve_device(device: Optional[str]) -> torch.device:
    """``None`` -> CUDA when available, else CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def resolve_dtype(dtype: Optional[Any], device: torch.device) -> torch.dtype:
    """``None`` -> float16 on CUDA, float32 elsewhere; strings like ``"bf16"`` are accepted."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or a torch.dtype; got {dtype!r}")
        return _DTYPES[dtype]
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or a string; got {type(dtype).__name__}")
    return dtype


def default_attention(device: torch.device) -> str:
    """flash-attention 2 on CUDA when installed, else PyTorch's scaled-dot-product attention."""
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


@contextlib.contextmanager
def reproducible_attention(device: torch.device) -> Iterator[None]:
    """Keep PyTorch's scaled-dot-product attention off its cuDNN kernels while active (CUDA only).

    On an H100 (torch 2.11), cuDNN's attention made the logits of the decoding steps of two identical greedy
    ``generate()`` calls differ (by up to 1.9 on random 7B weights, enough to change answers); with the flash,
    memory-efficient and math kernels they are bit-identical (``scripts/check_reproducible.py``, see
    BENCHMARKS.md). PyTorch switches the backends process-wide and restores them on exit.
    """
    if device.type != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        yield


class LlavaNextVideoAdapter(ModelAdapter):
    """LLaVA-NeXT-Video with visual-token pruning before the LLM or after decoder layer K.

    Args:
        model: a loaded ``LlavaNextVideoForConditionalGeneration``.
        tokenizer: its tokenizer (needed for text prompts and answers; :meth:`generate_from_ids` works without).
        frame_preprocessor: frames -> pixel values; default: CLIP preprocessing at the vision tower's image size.
        chat_template: the processor's chat template (Jinja); default: the tokenizer's.
        fused_activation: replace the vision tower's QuickGELU by the bit-identical fused kernel
            (:mod:`.fused`; CUDA float16/bfloat16 only, the eager formula elsewhere).
    """

    model_types = ("llava_next_video",)

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        frame_preprocessor: Optional[FramePreprocessor] = None,
        chat_template: Optional[str] = None,
        fused_activation: bool = True,
    ) -> None:
        self.model = model.eval()
        if fused_activation:
            from .fused import fuse_quick_gelu

            fuse_quick_gelu(model.model.vision_tower)
        self.config = model.config
        self.video_token_id = int(self.config.video_token_id)
        self.tokenizer = tokenizer
        if tokenizer is not None:
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        if frame_preprocessor is None:
            size = int(self.config.vision_config.image_size)
            frame_preprocessor = ClipFramePreprocessor(size, (size, size), CLIP_MEAN, CLIP_STD)
        self.frame_preprocessor = frame_preprocessor

    @classmethod
    def from_pretrained(
        cls,
        model: str = DEFAULT_MODEL,
        *,
        device: Optional[str] = None,
        dtype: Optional[Any] = None,
        attn_implementation: Optional[str] = None,
    ) -> "LlavaNextVideoAdapter":
        """Load a LLaVA-NeXT-Video checkpoint (hub id or local folder): model, tokenizer, chat template, frame
        preprocessing. float16 on CUDA and float32 on CPU unless ``dtype`` says otherwise."""
        transformers = require("transformers", "model")
        target = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, target)
        attention = attn_implementation or default_attention(target)
        network = transformers.LlavaNextVideoForConditionalGeneration.from_pretrained(
            model, dtype=torch_dtype, attn_implementation=attention
        ).to(target)
        tokenizer = transformers.AutoTokenizer.from_pretrained(model)
        processor_settings, _ = transformers.LlavaNextVideoProcessor.get_processor_dict(model)
        template = processor_settings.get("chat_template") or tokenizer.chat_template
        if isinstance(template, dict):
            template = template.get("default")
        if not template:
            raise ValueError(f"{model!r} has no chat template (chat_template.jinja / chat_template.json)")
        logger.info("loaded %s on %s (%s, %s attention)", model, target, torch_dtype, attention)
        return cls(network, tokenizer, load_frame_preprocessor(model), template)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def decoder(self) -> torch.nn.Module:
        """The text decoder (a ``LlamaModel`` for the published checkpoints)."""
        return self.model.model.language_model

    # -- video -> visual tokens ---------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode_frames(self, frames: np.ndarray) -> EncodedVideo:
        """frames: (T, H, W, 3) uint8 RGB -> the (T * rows * cols, D) visual tokens the LLM receives.

        The frames are preprocessed on the model's device (see :mod:`.preprocess`)."""
        start = time.perf_counter()
        pixels = self.frame_preprocessor(frames, device=self.device)
        features = self.video_features(pixels.unsqueeze(0))[0]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        num_frames = pixels.shape[0]
        side = math.isqrt(features.shape[0] // num_frames)
        return EncodedVideo(features, num_frames, (side, side), seconds=time.perf_counter() - start)

    def video_features(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) pixel values -> (B, T * tokens_per_frame, D) projected, pooled visual tokens."""
        weight = self.model.get_input_embeddings().weight
        pixels = pixel_values_videos.to(device=weight.device, dtype=weight.dtype)
        output = self.model.get_video_features(pixels, return_dict=True)
        pooled = getattr(output, "pooler_output", output)
        # transformers < 5.2x returns one (T, tokens, D) tensor per video, later ones a (B, T * tokens, D) tensor.
        return torch.stack([video.reshape(-1, video.shape[-1]) for video in pooled])

    # -- prompt ------------------------------------------------------------------------------------------------

    def build_prompt(self, question: str) -> str:
        """The chat-template prompt for one question about one video (a single video token, not yet repeated)."""
        if self.tokenizer is None or not self.chat_template:
            raise ValueError("text prompts need the checkpoint's tokenizer and chat template")
        if not isinstance(question, str):
            raise TypeError(f"question must be a str; got {type(question).__name__}")
        conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
        return self.tokenizer.apply_chat_template(
            conversation, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )

    def tokenize(
        self, videos: Sequence[EncodedVideo], questions: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded (B, L) input ids and attention mask, each video token repeated once per visual token (as
        the checkpoint's processor does)."""
        if len(videos) != len(questions) or not videos:
            raise ValueError(f"need one question per video and at least one; got {len(videos)} videos and "
                             f"{len(questions)} questions")
        video_token = self.tokenizer.convert_ids_to_tokens(self.video_token_id)
        prompts = []
        for video, question in zip(videos, questions):
            prompt = self.build_prompt(question)
            if prompt.count(video_token) != 1:
                raise ValueError(f"the chat template must place the video token {video_token!r} once; got "
                                 f"{prompt.count(video_token)} in {prompt!r}")
            prompts.append(prompt.replace(video_token, video_token * video.num_tokens))
        encoded = self.tokenizer(prompts, padding=True, return_tensors="pt")
        return encoded["input_ids"], encoded["attention_mask"]

    def embed(self, input_ids: torch.Tensor, videos: Sequence[EncodedVideo]) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's input embeddings with the videos' features scattered into the video-token positions.

        Returns (B, L, D) ``inputs_embeds`` and the (B, L) bool visual-token mask.
        """
        visual_mask = input_ids == self.video_token_id
        counts = visual_mask.sum(dim=1).tolist()
        expected = [video.num_tokens for video in videos]
        if counts != expected:
            raise ValueError(f"the input ids hold {counts} video tokens per row but the videos have {expected}")
        embeds = self.model.get_input_embeddings()(input_ids)
        features = torch.cat([video.features for video in videos]).to(embeds.device, embeds.dtype)
        embeds = embeds.masked_scatter(visual_mask.unsqueeze(-1).expand_as(embeds), features)
        return embeds, visual_mask

    # -- generation --------------------------------------------------------------------------------------------

    def generate(
        self,
        videos: Sequence[EncodedVideo],
        questions: Sequence[str],
        pruning: PruningConfig,
        **generate_kwargs: Any,
    ) -> GenerationResult:
        """Answer ``questions[i]`` about ``videos[i]``, batched (left padding); ``generate_kwargs`` go to
        transformers' ``generate()`` (``max_new_tokens``, ``do_sample``, ``temperature``, ...)."""
        input_ids, attention_mask = self.tokenize(videos, questions)
        return self.generate_from_ids(input_ids, attention_mask, videos, pruning, **generate_kwargs)

    @torch.inference_mode()
    def generate_from_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        videos: Sequence[EncodedVideo],
        pruning: PruningConfig,
        **generate_kwargs: Any,
    ) -> GenerationResult:
        """:meth:`generate` on prepared (B, L) left-padded input ids and mask (row i holding video i's tokens)."""
        if generate_kwargs.get("use_cache") is False and pruning.enabled:
            raise ValueError("pruning works on the KV cache: use_cache=False is not supported")
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        embeds, visual_mask = self.embed(input_ids, videos)
        if self.tokenizer is not None and self.tokenizer.pad_token_id is not None:
            generate_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        pruner = VisualTokenPruning(self.decoder, visual_mask, pruning) if pruning.enabled else None
        with FirstForwardTimer(self.model) as timer, (pruner or contextlib.nullcontext()), \
                reproducible_attention(self.device):
            start = time.perf_counter()
            output = self.model.generate(
                input_ids=input_ids, inputs_embeds=embeds, attention_mask=attention_mask, **generate_kwargs
            )
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            total = time.perf_counter() - start
        sequences = getattr(output, "sequences", output)[:, input_ids.shape[1]:].cpu()
        select = pruner.select_seconds if pruner else 0.0
        first_forward = timer.seconds or 0.0
        if pruner is not None:
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

    def decode(self, sequences: torch.Tensor) -> list[str]:
        """(B, n) generated ids -> answers (special tokens skipped, stripped); empty strings without a tokenizer."""
        if self.tokenizer is None:
            return ["" for _ in range(sequences.shape[0])]
        return [text.strip() for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=True)]

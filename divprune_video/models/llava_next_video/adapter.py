"""The LLaVA-NeXT-Video adapter: transformers' ``LlavaNextVideoForConditionalGeneration`` with DivPrune.

Frames go through the model's own video path: the checkpoint's frame preprocessing (CLIP, 336 px), the vision tower
(``vision_feature_layer``, CLS dropped under the "default" strategy), the spatial pooling (2 x 2 average: 144 tokens
per frame at 336 px for the 7B model) and the projector (``get_video_features``). The prompt, the placeholder
positions and generation are :class:`~divprune_video.models.adapter.TransformersVideoAdapter`'s.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..adapter import TransformersVideoAdapter, VisualTokens
from ..preprocess import FramePreprocessor, TorchFramePreprocessor

#: CLIP's normalization, used when a model is built without a checkpoint (benchmarks).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class LlavaNextVideoAdapter(TransformersVideoAdapter):
    """LLaVA-NeXT-Video with visual-token pruning before the LLM or after decoder layer K.

    Args:
        model: a loaded ``LlavaNextVideoForConditionalGeneration``.
        tokenizer, frame_preprocessor, chat_template, system_prompt, fast_vision: see
            :class:`~divprune_video.models.adapter.TransformersVideoAdapter` (default preprocessing: CLIP's at the
            vision tower's image size; no system turn, as the llava-hf chat template and lmms-eval use it;
            ``fast_vision``: the vision tower's QuickGELU becomes the bit-identical fused kernel of :mod:`..fused`,
            used for CUDA float16/bfloat16 tensors).
    """

    model_types = ("llava_next_video",)
    model_class = "LlavaNextVideoForConditionalGeneration"
    processor_class = "LlavaNextVideoProcessor"

    @classmethod
    def frame_tokens(cls, config: Any) -> int:
        """The vision tower's patch grid after the spatial pooling (rounded down): 144 at 336 px."""
        vision = config.vision_config
        side = int(vision.image_size) // int(vision.patch_size) // int(getattr(config, "spatial_pool_stride", 2))
        return side * side

    def speed_up_vision(self) -> None:
        from ..fused import fuse_quick_gelu

        fuse_quick_gelu(self.model.model.vision_tower)

    def default_frame_preprocessor(self) -> FramePreprocessor:
        size = int(self.config.vision_config.image_size)
        return TorchFramePreprocessor(shortest_edge=size, crop_size=(size, size), mean=CLIP_MEAN, std=CLIP_STD)

    def video_tokens(self, pixels: torch.Tensor) -> VisualTokens:
        features = self.video_features(pixels.unsqueeze(0))[0]
        side = math.isqrt(features.shape[0] // pixels.shape[0])
        return VisualTokens(features, (side, side))

    def video_features(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) pixel values -> (B, T * tokens_per_frame, D) projected, pooled visual tokens."""
        weight = self.model.get_input_embeddings().weight
        pixels = pixel_values_videos.to(device=weight.device, dtype=weight.dtype)
        output = self.model.get_video_features(pixels, return_dict=True)
        pooled = getattr(output, "pooler_output", output)
        # transformers < 5.2x returns one (T, tokens, D) tensor per video, later ones a (B, T * tokens, D) tensor.
        return torch.stack([video.reshape(-1, video.shape[-1]) for video in pooled])

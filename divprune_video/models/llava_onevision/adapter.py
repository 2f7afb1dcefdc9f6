"""The LLaVA-OneVision / LLaVA-Video adapter: transformers' ``LlavaOnevisionForConditionalGeneration`` with DivPrune.

Frames go through the model's own video path: the checkpoint's frame preprocessing (SigLIP: resized to exactly
384 x 384, no crop), the SigLIP vision tower (all 729 patch tokens of the last layer, the "full" strategy), the
projector and a 2 x 2 bilinear pooling of each frame's 27 x 27 grid to 14 x 14 = 196 tokens (``ceil(27 / 2)``),
then one learned newline token after the whole video (``image_newline``). DivPrune chooses among the T x 196 frame
tokens; the newline is the video's unframed token, always kept and not counted in N.

The default prompt has the system turn "You are a helpful assistant." before the user's turn, as lmms-eval's
``llava_onevision`` model wrapper builds it (LLaVA's ``qwen_1_5`` conversation), so that scores are comparable with
published LLaVA-OneVision tables; ``system_prompt=None`` leaves it out (the llava-hf model card's prompt).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..adapter import TransformersVideoAdapter, VisualTokens
from ..preprocess import FramePreprocessor, TorchFramePreprocessor

DEFAULT_MODEL = "llava-hf/llava-onevision-qwen2-7b-ov-hf"
#: SigLIP's normalization, used when a model is built without a checkpoint (benchmarks).
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
#: The system turn of LLaVA's ``qwen_1_5`` conversation, which lmms-eval's ``llava_onevision`` wrapper uses.
QWEN_SYSTEM_PROMPT = "You are a helpful assistant."


class LlavaOnevisionAdapter(TransformersVideoAdapter):
    """LLaVA-OneVision / LLaVA-Video with visual-token pruning before the LLM or after decoder layer K.

    Args: see :class:`~divprune_video.models.adapter.TransformersVideoAdapter` (default preprocessing: SigLIP's at
    the vision tower's image size; default system turn: :data:`QWEN_SYSTEM_PROMPT`).
    """

    model_types = ("llava_onevision",)
    model_class = "LlavaOnevisionForConditionalGeneration"
    processor_class = "LlavaOnevisionProcessor"
    default_system_prompt = QWEN_SYSTEM_PROMPT

    def default_frame_preprocessor(self) -> FramePreprocessor:
        size = int(self.config.vision_config.image_size)
        return TorchFramePreprocessor(
            shortest_edge=None, crop_size=None, resize_to=(size, size), mean=SIGLIP_MEAN, std=SIGLIP_STD
        )

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of tokens per frame after pooling: ``ceil(patches / 2)`` each way (14 x 14 at 384 px)."""
        side = math.isqrt(self.frame_tokens(self.config))
        return side, side

    @classmethod
    def frame_tokens(cls, config: Any) -> int:
        """The SigLIP patch grid after the 2 x 2 bilinear pooling, rounded up: 196 at 384 px."""
        vision = config.vision_config
        return math.ceil((int(vision.image_size) // int(vision.patch_size)) / 2) ** 2

    def unframed_tokens(self) -> torch.Tensor:
        """(1, D): the learned newline token the model puts after every video's frames."""
        return self.model.model.image_newline[None]

    def video_tokens(self, pixels: torch.Tensor) -> VisualTokens:
        weight = self.model.get_input_embeddings().weight
        pixels = pixels.to(weight.device, weight.dtype)
        grid = self.grid
        num_tokens = pixels.shape[0] * grid[0] * grid[1]
        if self.fast_vision:
            features = self._frame_tokens(pixels)
        else:
            output = self.model.get_video_features(pixels.unsqueeze(0), return_dict=True)
            pooled = getattr(output, "pooler_output", output)
            features = pooled.reshape(-1, pooled.shape[-1])
        # transformers >= 5.2x appends the newline itself (T * 196 + 1 rows); earlier versions add it in forward().
        if features.shape[0] not in (num_tokens, num_tokens + 1):
            raise RuntimeError(
                f"the video path returned {features.shape[0]} tokens for {pixels.shape[0]} frames "
                f"of {grid[0]}x{grid[1]}"
            )
        return VisualTokens(features[:num_tokens], grid, self.unframed_tokens().to(features.dtype))

    def _frame_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """``get_video_features`` without its bookkeeping: the same modules in the same order, but only the vision
        layers up to ``vision_feature_layer`` run and no layer's output is kept (the stock path runs the whole tower,
        its last norm included, and holds every layer's hidden states), and the pooling reads the projected tokens
        where they are (:func:`bilinear_pool`). pixels: (T, 3, S, S) -> (T * 196, D)."""
        model = self.model.model
        tower = getattr(model.vision_tower, "vision_model", model.vision_tower)
        layers = tower.encoder.layers
        feature_layer = self.config.vision_feature_layer
        if not isinstance(feature_layer, int):
            raise NotImplementedError("several vision_feature_layer values: use fast_vision=False")
        depth = feature_layer % (len(layers) + 1)  # hidden state k is the output of the first k layers
        hidden = tower.embeddings(pixels)
        for layer in layers[:depth]:
            hidden = layer(hidden, None)
        if self.config.vision_feature_select_strategy == "default":
            hidden = hidden[:, 1:]
        projected = model.multi_modal_projector(hidden)
        return bilinear_pool(projected).reshape(-1, projected.shape[-1])


def bilinear_pool(features: torch.Tensor) -> torch.Tensor:
    """LLaVA-OneVision's 2 x 2 bilinear pooling of each frame's token grid: (T, P * P, D) -> (T, ceil(P / 2) ** 2,
    D), as transformers' ``apply_pooling`` computes it, without its copy to channels-first memory.

    The interpolation reads the (T, P, P, D) tokens as a channels-last view; PyTorch's channels-last bilinear kernel
    weighs the same four neighbours in the same order, so the result is bit-identical (tested), while the
    channels-first kernel (and the copy into its layout) is slow with thousands of channels on a 27 x 27 grid
    (measurements: notes/design-history.md#divprune_videomodelsllava_onevisionadapter).
    """
    frames, count, dim = features.shape
    side = math.isqrt(count)
    grid = features.view(frames, side, side, dim).permute(0, 3, 1, 2)
    pooled = F.interpolate(grid, size=[math.ceil(side / 2)] * 2, mode="bilinear")
    return pooled.permute(0, 2, 3, 1).reshape(frames, -1, dim)

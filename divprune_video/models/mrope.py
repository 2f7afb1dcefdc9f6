"""The shared half of the adapters of Qwen2-VL-style models (Qwen2.5-VL, Qwen3-VL): patches in, 3-D positions.

* Frames become :class:`~.patches.VideoPatches` (the checkpoint's own video processor with torchvision, the same
  steps in PyTorch without it) and go through the model's ``visual`` tower; its merged tokens are the video's
  visual tokens (and its DeepStack features, where the tower has them, the video's ``layer_features``).
* Positions are 3-D (M-RoPE: time, height, width). For whole videos they are the model's own ``get_rope_index`` on
  the input ids and the videos' grids (so they follow the installed transformers exactly); for the partial videos
  of a streaming memory the family numbers each kept token as the model numbers it in the whole video
  (:meth:`MultimodalRopeAdapter.sparse_positions`). A kept token keeps its (t, h, w), text keeps its positions, and
  new tokens continue after the prompt's largest position, as the model's rope deltas make unpruned generation do.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any, Sequence

import torch

from .adapter import TransformersVideoAdapter, VisualTokens
from .base import EncodedVideo
from .decoder import DecoderAccess, MultimodalRopeDecoder
from .patches import PatchFramePreprocessor, VideoPatches

#: The system turn lmms-eval's Qwen wrappers pass (and Qwen2.5-VL's chat template adds by default).
QWEN_SYSTEM_PROMPT = "You are a helpful assistant."


class MultimodalRopeAdapter(TransformersVideoAdapter):
    """An adapter over a Qwen2-VL-style model (see the module text); a family adds its preprocessing, its extra
    ``get_rope_index`` arguments and its sparse numbering."""

    default_system_prompt = QWEN_SYSTEM_PROMPT
    frames_per_group = 2

    @property
    def decoder(self) -> DecoderAccess:
        if self._decoder is None:
            self._decoder = MultimodalRopeDecoder(self.text_decoder())
        return self._decoder

    def speed_up_vision(self) -> None:
        """One attention call per chunk length instead of one per window or frame pair (:mod:`.vision_attention`;
        unless the tower runs flash-attention, whose variable-length kernel already takes all chunks at once);
        on CUDA also MLP widths padded to a multiple of 128 (same outputs up to the kernels' order of addition)."""
        from .vision_attention import batch_vision_attention, pad_mlp_width

        tower = self.model.model.visual
        if getattr(self.model.config.vision_config, "_attn_implementation", None) != "flash_attention_2":
            batch_vision_attention(tower)
        if self.device.type == "cuda":
            for block in tower.blocks:
                pad_mlp_width(block.mlp)

    @property
    def merge_size(self) -> int:
        return int(self.config.vision_config.spatial_merge_size)

    def video_tokens(self, pixels: VideoPatches) -> VisualTokens:
        visual = self.model.model.visual
        output = visual(
            pixels.pixel_values.to(self.device, visual.dtype), grid_thw=pixels.grid_thw.to(self.device).view(1, 3)
        )
        deepstack = tuple(getattr(output, "deepstack_features", None) or ())
        return VisualTokens(output.pooler_output, pixels.merged_grid(self.merge_size), layer_features=deepstack)

    @property
    def vision_tower(self) -> torch.nn.Module:
        return self.model.model.visual

    def sized_frame_preprocessor(self, height: int, width: int, num_frames: int) -> PatchFramePreprocessor:
        default = self.default_frame_preprocessor()
        pixels = height * width * (num_frames if default.budget == "video" else 1)
        return dataclasses.replace(default, min_pixels=pixels, max_pixels=pixels)

    def plain_inputs(self, pixels: VideoPatches, input_ids: torch.Tensor, video: EncodedVideo) -> dict[str, Any]:
        return {
            "pixel_values_videos": pixels.pixel_values,
            "video_grid_thw": pixels.grid_thw.view(1, 3),
            "mm_token_type_ids": (input_ids == self.video_token_id).int() * 2,
            **self.rope_index_options(video, input_ids.device),
        }

    def video_grid(self, video: EncodedVideo, device: torch.device) -> torch.Tensor:
        """(1, 3) the whole video's (groups, patch rows, patch columns), as the processor reports it."""
        return torch.tensor(
            [[video.num_frames, video.grid[0] * self.merge_size, video.grid[1] * self.merge_size]], device=device
        )

    def prompt_positions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, videos: Sequence[EncodedVideo]
    ) -> torch.Tensor:
        """(3, B, L) M-RoPE positions of the prompts (see the module text)."""
        rows = []
        for row, video in enumerate(videos):
            ids, mask = input_ids[row : row + 1], attention_mask[row : row + 1]
            if video.frame_ids is None:
                token_types = (ids == self.video_token_id).int() * 2
                positions, _ = self.model.model.get_rope_index(
                    ids,
                    mm_token_type_ids=token_types,
                    video_grid_thw=self.video_grid(video, ids.device),
                    attention_mask=mask,
                    **self.rope_index_options(video, ids.device),
                )
            else:
                positions = self.sparse_positions(ids, mask, video)
            rows.append(positions)
        return torch.cat(rows, dim=1)

    def rope_index_options(self, video: EncodedVideo, device: torch.device) -> dict[str, Any]:
        """Extra keyword arguments of the model's ``get_rope_index`` for ``video`` (none here)."""
        return {}

    @abstractmethod
    def sparse_positions(self, ids: torch.Tensor, mask: torch.Tensor, video: EncodedVideo) -> torch.Tensor:
        """(3, 1, L) positions of a one-row prompt whose video holds only some tokens of its groups (each with its
        ``frame_ids`` and ``cells``), numbered as the model numbers those tokens in the whole video."""


def text_positions(valid: torch.Tensor, start: int, device: torch.device) -> torch.Tensor:
    """start, start + 1, ... over the True entries of ``valid``: (count,) int64."""
    return torch.arange(start, start + int(valid.sum()), device=device)

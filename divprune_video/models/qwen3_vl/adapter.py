"""The Qwen3-VL adapter: transformers' ``Qwen3VLForConditionalGeneration`` with DivPrune.

* Frames go through the model's own video path (:mod:`..patches`): the processor's smart resize, whose pixel
  limits bound the whole video's frames together, 16 px patches, two frames per temporal patch, the vision tower
  (with learned position embeddings resampled to the grid) and the 2 x 2 merger. Its DeepStack features (from three
  intermediate vision layers in the 8B model, merged the same way) are the video's ``layer_features``: the LLM adds
  them to the visual tokens' hidden states after its first layers. When tokens are pruned (before the LLM or after
  layer K), the DeepStack features of exactly the kept tokens are added at the kept tokens' new places.
* Each frame pair is introduced by its timestamp in text, as the processor writes it:
  ``<t.t seconds><|vision_start|>`` + the pair's tokens + ``<|vision_end|>``, with t the mean time of the pair's
  two frames (from the frames' real timing). These text tokens are never pruned.
* Positions are 3-D (:mod:`..mrope`): each frame pair is numbered as a one-frame grid starting where the text
  before it ends (time is carried by the timestamps). ``positions="renumber"`` is refused.
"""

from __future__ import annotations

from typing import Any

import torch

from ..base import EncodedVideo
from ..mrope import QWEN_SYSTEM_PROMPT, MultimodalRopeAdapter
from ..patches import PatchFramePreprocessor, load_patch_preprocessor

DEFAULT_MODEL = "Qwen/Qwen3-VL-8B-Instruct"
#: Qwen3-VL's normalization (to -1..1).
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)
#: transformers' Qwen3VLVideoProcessor defaults: pixel limits of a whole video's frames together.
VIDEO_MIN_PIXELS = 128 * 32 * 32
VIDEO_MAX_PIXELS = 768 * 32 * 32

__all__ = ["DEFAULT_MODEL", "QWEN_SYSTEM_PROMPT", "Qwen3VLAdapter"]


class Qwen3VLAdapter(MultimodalRopeAdapter):
    """Qwen3-VL with visual-token pruning before the LLM or after decoder layer K (see the module text).

    Args: see :class:`~divprune_video.models.adapter.TransformersVideoAdapter` (default preprocessing: the
    processor's steps in PyTorch at transformers' default video pixel limits; default system turn:
    :data:`~divprune_video.models.mrope.QWEN_SYSTEM_PROMPT`, as lmms-eval's ``qwen3_vl`` wrapper passes it).
    """

    model_types = ("qwen3_vl",)
    model_class = "Qwen3VLForConditionalGeneration"
    processor_class = "Qwen3VLProcessor"

    @classmethod
    def load_frame_preprocessor(cls, model: str) -> Any:
        return load_patch_preprocessor(model, budget="video")

    def default_frame_preprocessor(self) -> PatchFramePreprocessor:
        vision = self.config.vision_config
        return PatchFramePreprocessor(
            min_pixels=VIDEO_MIN_PIXELS,
            max_pixels=VIDEO_MAX_PIXELS,
            patch_size=int(vision.patch_size),
            temporal_patch_size=int(vision.temporal_patch_size),
            merge_size=int(vision.spatial_merge_size),
            mean=HALF_MEAN,
            std=HALF_STD,
            budget="video",
        )

    def expand_video(self, prompt: str, video: EncodedVideo) -> str:
        """Each frame pair's timestamp, then its tokens between vision markers, in place of the placeholder."""
        tokenizer = self.tokenizer
        pad = tokenizer.convert_ids_to_tokens(self.video_token_id)
        start = tokenizer.convert_ids_to_tokens(int(self.config.vision_start_token_id))
        end = tokenizer.convert_ids_to_tokens(int(self.config.vision_end_token_id))
        times, _ = video.times()
        counts = torch.unique_consecutive(video.token_frames(), return_counts=True)[1].tolist()
        blocks = "".join(
            f"<{stamp:.1f} seconds>{start}{pad * count}{end}" for stamp, count in zip(times.tolist(), counts)
        )
        return prompt.replace(pad, blocks)

    def placeholder_ids(self, video: EncodedVideo, text_id: int) -> torch.Tensor:
        """Per frame pair: a timestamp's worth of text (five ``text_id``), the vision start, the pair's placeholders,
        the vision end, as :meth:`expand_video` lays the video out."""
        start, end = int(self.config.vision_start_token_id), int(self.config.vision_end_token_id)
        counts = torch.unique_consecutive(video.token_frames(), return_counts=True)[1].tolist()
        blocks = [[text_id] * 5 + [start] + [self.video_token_id] * count + [end] for count in counts]
        return torch.tensor([token for block in blocks for token in block], dtype=torch.long)

    def sparse_positions(self, ids: torch.Tensor, mask: torch.Tensor, video: EncodedVideo) -> torch.Tensor:
        """As ``get_rope_index`` numbers a whole video: each frame pair's tokens as a one-frame grid at the
        position where the text before it ends (time ``start``, height ``start + row``, width ``start + col``),
        the text after it from ``start + max(rows, cols)``."""
        valid = mask[0].bool()
        where = valid.nonzero().squeeze(1)
        kinds = (ids[0] == self.video_token_id)[where]
        change = torch.ones_like(kinds)
        change[1:] = kinds[1:] != kinds[:-1]
        bounds = change.nonzero().squeeze(1).tolist() + [int(kinds.numel())]
        cells = video.token_cells().to(ids.device)
        positions = torch.zeros(3, 1, ids.shape[1], dtype=torch.long, device=ids.device)
        current, token = 0, 0
        for begin, end in zip(bounds, bounds[1:]):  # runs of text and of one frame pair's tokens, alternating
            span = where[begin:end]
            if bool(kinds[begin]):
                group = cells[token : token + span.numel()]
                token += span.numel()
                positions[:, 0, span] = current + torch.stack(
                    [torch.zeros_like(group), group // video.grid[1], group % video.grid[1]]
                )
                current += max(video.grid)
            else:
                positions[:, 0, span] = torch.arange(current, current + span.numel(), device=ids.device)
                current += span.numel()
        return positions

"""The Qwen2.5-VL adapter: transformers' ``Qwen2_5_VLForConditionalGeneration`` with DivPrune.

* Frames go through the model's own video path at their own resolution: the processor's smart resize within its
  per-frame pixel limits, 14 px patches, two frames per temporal patch, the windowed vision tower and the 2 x 2
  patch merger (:mod:`..patches`). A video of T frames becomes ceil(T / 2) frame groups of (H / 28) x (W / 28)
  tokens, in group-major, row-major order; a visual token belongs to a frame *pair*, and ``kept_indices`` /
  ``kept_per_frame`` count pairs.
* Positions are 3-D (:mod:`..mrope`); the time axis advances ``tokens_per_second x seconds per group`` per frame
  pair, ``seconds per group = 2 / fps`` with fps the sampled frames' rate (as qwen-vl-utils passes it to the
  processor), rounded as the installed transformers rounds it (5.17 truncates the seconds per group to an
  integer, 5.2x floors the scaled time). ``positions="renumber"`` is refused: renumbering has no meaning for 3-D
  positions.
* The prompt is the checkpoint's chat template; its default system turn, "You are a helpful assistant.", is also
  what lmms-eval's ``qwen2_5_vl`` wrapper passes.
"""

from __future__ import annotations

from typing import Any

import torch

from ..base import EncodedVideo
from ..mrope import QWEN_SYSTEM_PROMPT, MultimodalRopeAdapter, text_positions
from ..patches import PatchFramePreprocessor, load_patch_preprocessor

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
#: CLIP's normalization, which Qwen2.5-VL's processors use.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: The processor's default video pixel limits (per frame).
VIDEO_MIN_PIXELS = 128 * 28 * 28
VIDEO_MAX_PIXELS = 768 * 28 * 28

__all__ = ["DEFAULT_MODEL", "QWEN_SYSTEM_PROMPT", "Qwen2_5_VLAdapter"]


class Qwen2_5_VLAdapter(MultimodalRopeAdapter):
    """Qwen2.5-VL with visual-token pruning before the LLM or after decoder layer K (see the module text).

    Args: see :class:`~divprune_video.models.adapter.TransformersVideoAdapter` (default preprocessing: the
    processor's steps in PyTorch at its default video pixel limits; default system turn:
    :data:`~divprune_video.models.mrope.QWEN_SYSTEM_PROMPT`).
    """

    model_types = ("qwen2_5_vl",)
    model_class = "Qwen2_5_VLForConditionalGeneration"
    processor_class = "Qwen2_5_VLProcessor"

    @classmethod
    def load_frame_preprocessor(cls, model: str) -> Any:
        return load_patch_preprocessor(model)

    def default_frame_preprocessor(self) -> PatchFramePreprocessor:
        vision = self.config.vision_config
        return PatchFramePreprocessor(
            min_pixels=VIDEO_MIN_PIXELS,
            max_pixels=VIDEO_MAX_PIXELS,
            patch_size=int(vision.patch_size),
            temporal_patch_size=int(vision.temporal_patch_size),
            merge_size=int(vision.spatial_merge_size),
            mean=CLIP_MEAN,
            std=CLIP_STD,
        )

    def seconds_per_group(self, video: EncodedVideo) -> float:
        """Seconds of video time one frame group spans: ``temporal_patch_size / sampled fps``."""
        return self.frames_per_group / video.times()[1]

    def rope_index_options(self, video: EncodedVideo, device: torch.device) -> dict[str, Any]:
        return {"second_per_grid_ts": torch.tensor([self.seconds_per_group(video)], device=device)}

    def group_time_positions(self, video: EncodedVideo, num_groups: int, device: torch.device) -> torch.Tensor:
        """(num_groups,) int64 time positions of groups 0 .. num_groups - 1 of ``video``, from 0, as the model's own
        ``get_rope_index`` numbers them: it is run on a video of one merged token per group. transformers versions
        differ here (5.17 truncates the seconds per group to an integer before scaling, 5.2x floors the scaled
        float32 time), so the numbering is taken from the installed one rather than written down."""
        merge = self.merge_size
        ids = torch.full((1, num_groups), self.video_token_id, dtype=torch.long, device=device)
        positions, _ = self.model.model.get_rope_index(
            ids,
            mm_token_type_ids=torch.full_like(ids, 2, dtype=torch.int),
            video_grid_thw=torch.tensor([[num_groups, merge, merge]], device=device),
            **self.rope_index_options(video, device),
        )
        return positions[0, 0]

    def sparse_positions(self, ids: torch.Tensor, mask: torch.Tensor, video: EncodedVideo) -> torch.Tensor:
        """The numbering ``get_rope_index`` gives a whole video at each kept token: time ``start + t(group)``
        (:meth:`group_time_positions`), height ``start + row``, width ``start + col``, the text after the video
        from ``start + max(rows, cols)``."""
        valid = mask[0].bool()
        visual = ((ids[0] == self.video_token_id) & valid).nonzero().squeeze(1)
        first, last = int(visual[0]), int(visual[-1])
        start = int(valid[:first].sum())
        cells, groups = video.token_cells().to(ids.device), video.token_frames().to(ids.device)
        times = self.group_time_positions(video, int(groups.max()) + 1, ids.device)
        positions = torch.zeros(3, 1, ids.shape[1], dtype=torch.long, device=ids.device)
        before, after = valid.clone(), valid.clone()
        before[first:], after[: last + 1] = False, False
        positions[:, 0, before] = text_positions(before, 0, ids.device)
        positions[0, 0, visual] = start + times[groups]
        positions[1, 0, visual] = start + cells // video.grid[1]
        positions[2, 0, visual] = start + cells % video.grid[1]
        positions[:, 0, after] = text_positions(after, start + max(video.grid), ids.device)
        return positions
